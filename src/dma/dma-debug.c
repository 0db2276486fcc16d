/* SPDX-License-Identifier: MIT */
/*
 * dma-debug: kernel/dma/debug.c. Each streaming mapping and coherent
 * buffer of a machine with cfg.dma_debug gets an entry; unmaps, frees and
 * syncs are checked against it, and misuse is reported with the kernel's
 * texts (prefixed by the device name, as dev_err() would) and counted per
 * class (struct iom_dma_debug_stats).
 *
 * Simplified: the state is per machine (iom_machine_ext_get()), behind one
 * mutex instead of per-bucket spinlocks; entries are allocated one by one
 * through the machine's metadata hook, not from a pool; no debugfs,
 * driver filter, stack traces, stack/rodata or sg segment checks; every
 * error is shown (the kernel shows the first unless all_errors is set).
 * The 16384 hash lists become a uthash of 8 KiB DMA-address chunks per
 * device, walked back chunk by chunk for syncs as the kernel walks its
 * buckets; the active-cacheline radix tree becomes a uthash keyed by
 * cacheline with a plain overlap counter (no limit of 7). Coherent buffers
 * are not cacheline-tracked: their handle is no address with a pfn, and
 * movable ones change pages when they migrate.
 *
 * Conventions in this file:
 *   @dd:    a machine's dma-debug state (struct dma_debug).
 *   @ref:   the operation being checked, as an on-stack entry (the
 *           kernel's "ref"); @entry: the tracked mapping it is checked
 *           against.
 *   @rep:   reports collected under dd->lock and printed once it is
 *           dropped, so the machine's log hook never runs under our lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <iommig/dma-mapping.h>

#include "../core/debug.h"
#include "../core/list.h"
#include "../core/machine.h"
#include "dma-debug.h"

/*
 * uthash allocates through the machine's metadata hook and survives an
 * allocation failure (the element's hh.tbl is left NULL); every HASH_*
 * use below has a struct dma_debug *dd in scope.
 */
#define HASH_NONFATAL_OOM 1
#define uthash_malloc(sz)	iom_meta_alloc(dd->m, (sz), 16, false)
#define uthash_free(ptr, sz)	iom_meta_free(dd->m, (ptr), (sz))
#include <uthash.h>

#define DD_PREFIX		"DMA-API: "
/* The kernel's HASH_FN_SHIFT: the hash groups DMA addresses in 8 KiB chunks. */
#define DD_CHUNK_SHIFT		13
/* The kernel's HASH_SIZE: how far back a containing search may walk. */
#define DD_MAX_WALK		16384ULL
#define L1_CACHE_SHIFT		6
/* Most reports one check makes (check_unmap(): size, type, sg, dir, map error). */
#define DD_MAX_REPORTS		6
#define DD_MSG_LEN		512

enum {
	dma_debug_single,
	dma_debug_sg,
	dma_debug_coherent,
};

enum map_err_types {
	MAP_ERR_CHECK_NOT_APPLICABLE,
	MAP_ERR_NOT_CHECKED,
	MAP_ERR_CHECKED,
};

static const char *const type2name[] = {
	[dma_debug_single] = "single",
	[dma_debug_sg] = "scather-gather",	/* sic, the kernel's spelling */
	[dma_debug_coherent] = "coherent",
};

static const char *const dir2name[] = {
	[IOM_DMA_BIDIRECTIONAL] = "DMA_BIDIRECTIONAL",
	[IOM_DMA_TO_DEVICE] = "DMA_TO_DEVICE",
	[IOM_DMA_FROM_DEVICE] = "DMA_FROM_DEVICE",
	[IOM_DMA_NONE] = "DMA_NONE",
};

/*
 * struct dma_debug_entry - one dma_map_page(), one DMA segment of
 * dma_map_sg(), or one dma_alloc_coherent().
 * @paddr:     physical address of the first byte (page and offset of a
 *             streaming mapping); valid when @has_paddr.
 * @cpu_addr:  a coherent buffer's handle, compared at free.
 * @cln_tracked: counted in the cacheline table (removed with the entry).
 */
struct dma_debug_entry {
	struct list_head list;
	const struct iom_device *dev;
	uint64_t dev_addr;
	uint64_t size;
	int type;
	int direction;
	int sg_call_ents;
	int sg_mapped_ents;
	uint64_t paddr;
	const void *cpu_addr;
	enum map_err_types map_err_type;
	bool has_paddr;
	bool cln_tracked;
};

/* The entries of one device whose DMA address lies in one 8 KiB chunk. */
struct dd_key {
	uint64_t dev;
	uint64_t chunk;
};

struct dd_bucket {
	struct dd_key key;
	struct list_head entries;
	UT_hash_handle hh;
};

/* An active cacheline: @overlap mappings beyond the first share it. */
struct dd_cacheline {
	uint64_t cln;
	unsigned int overlap;
	UT_hash_handle hh;
};

struct dma_debug {
	struct iom_machine *m;
	pthread_mutex_t lock;
	struct dd_bucket *buckets;
	struct dd_cacheline *cachelines;
	uint64_t max_size;		/* largest entry ever: bounds the walk */
	uint64_t errors[IOM_DMA_DEBUG_NR_ERRORS];
	uint64_t nr_entries;
	uint64_t max_entries;
	atomic_bool disabled;		/* out of memory: the kernel's global_disable */
};

struct dd_reports {
	unsigned int nr;
	char msg[DD_MAX_REPORTS][DD_MSG_LEN];
};

typedef bool (*match_fn)(const struct dma_debug_entry *ref,
			 const struct dma_debug_entry *entry);

/* ---- state ---------------------------------------------------------------- */

static void *dma_debug_make(struct iom_machine *m)
{
	struct dma_debug *dd = iom_meta_alloc(m, sizeof(*dd), 64, true);

	if (!dd)
		return NULL;
	dd->m = m;
	if (pthread_mutex_init(&dd->lock, NULL)) {
		iom_meta_free(m, dd, sizeof(*dd));
		return NULL;
	}
	return dd;
}

static void dma_debug_release(void *priv)
{
	struct dma_debug *dd = priv;
	struct dd_bucket *b, *btmp;
	struct dd_cacheline *c, *ctmp;

	HASH_ITER(hh, dd->buckets, b, btmp) {
		while (!list_empty(&b->entries)) {
			struct dma_debug_entry *e =
				list_first_entry(&b->entries, struct dma_debug_entry, list);

			list_del(&e->list);
			iom_meta_free(dd->m, e, sizeof(*e));
		}
		HASH_DEL(dd->buckets, b);
		iom_meta_free(dd->m, b, sizeof(*b));
	}
	HASH_ITER(hh, dd->cachelines, c, ctmp) {
		HASH_DEL(dd->cachelines, c);
		iom_meta_free(dd->m, c, sizeof(*c));
	}
	pthread_mutex_destroy(&dd->lock);
	iom_meta_free(dd->m, dd, sizeof(*dd));
}

bool dma_debug_enabled(struct iom_device *dev)
{
	struct iom_machine *m = dev ? iom_device_machine(dev) : NULL;
	struct dma_debug *dd;

	if (!m || !m->cfg.dma_debug)
		return false;
	dd = atomic_load_explicit(&m->ext[IOM_MACHINE_EXT_DMA_DEBUG].priv,
				  memory_order_acquire);
	return !dd || !atomic_load_explicit(&dd->disabled, memory_order_relaxed);
}

/* @dev's machine's state, made on first use; NULL when off or out of memory. */
static struct dma_debug *get_dd(struct iom_device *dev)
{
	struct dma_debug *dd;

	if (!dma_debug_enabled(dev))
		return NULL;
	dd = iom_machine_ext_get(iom_device_machine(dev), IOM_MACHINE_EXT_DMA_DEBUG,
				 dma_debug_make, dma_debug_release);
	if (dd && atomic_load_explicit(&dd->disabled, memory_order_relaxed))
		return NULL;
	return dd;
}

static void dd_lock(struct dma_debug *dd)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&dd->lock));
}

/* Drop the lock, then print what was reported under it. */
static void dd_unlock(struct dma_debug *dd, struct dd_reports *rep)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&dd->lock));
	for (unsigned int i = 0; i < rep->nr; i++)
		iom_printk(dd->m, IOM_LOG_WARNING, "%s", rep->msg[i]);
	rep->nr = 0;
}

/* Out of memory: the kernel's global_disable, for this machine. Under dd->lock. */
static void dd_disable(struct dma_debug *dd, struct dd_reports *rep,
		       const char *msg)
{
	if (!atomic_exchange(&dd->disabled, true) && rep->nr < DD_MAX_REPORTS)
		snprintf(rep->msg[rep->nr++], DD_MSG_LEN, DD_PREFIX "%s", msg);
}

/*
 * err_printk(): count the error and queue its report. Under dd->lock; the
 * device's name is read now, while the caller still holds @dev.
 */
IOM_PRINTF(5, 6)
static void err_printk(struct dma_debug *dd, struct dd_reports *rep,
		       const struct iom_device *dev, unsigned int class,
		       const char *fmt, ...)
{
	va_list ap;
	int n;

	dd->errors[class]++;
	if (rep->nr >= DD_MAX_REPORTS)
		return;
	n = snprintf(rep->msg[rep->nr], DD_MSG_LEN, "%s: " DD_PREFIX,
		     iom_dev_name(dev));
	if (n < 0 || n >= DD_MSG_LEN)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(rep->msg[rep->nr] + n, DD_MSG_LEN - (size_t)n, fmt, ap);
	va_end(ap);
	rep->nr++;
}

/* Directions come from the caller unchecked: never index past the table. */
static const char *dir_name(int dir)
{
	if (dir < 0 || dir >= (int)(sizeof(dir2name) / sizeof(dir2name[0])))
		return "invalid direction";
	return dir2name[dir];
}

/* ---- the entry hash ------------------------------------------------------- */

static struct dd_key bucket_key(const struct iom_device *dev, uint64_t chunk)
{
	struct dd_key key;

	memset(&key, 0, sizeof(key));
	key.dev = (uint64_t)(uintptr_t)dev;
	key.chunk = chunk;
	return key;
}

static struct dd_bucket *find_bucket(struct dma_debug *dd,
				     const struct iom_device *dev, uint64_t chunk)
{
	struct dd_key key = bucket_key(dev, chunk);
	struct dd_bucket *b;

	HASH_FIND(hh, dd->buckets, &key, sizeof(key), b);
	return b;
}

static bool exact_match(const struct dma_debug_entry *ref,
			const struct dma_debug_entry *entry)
{
	return ref->dev_addr == entry->dev_addr && ref->dev == entry->dev;
}

/* @entry holds all of @ref (written so that no end address overflows). */
static bool containing_match(const struct dma_debug_entry *ref,
			     const struct dma_debug_entry *entry)
{
	uint64_t off;

	if (ref->dev != entry->dev || ref->dev_addr < entry->dev_addr)
		return false;
	off = ref->dev_addr - entry->dev_addr;
	return off <= entry->size && ref->size <= entry->size - off;
}

/* @entry holds @ref's first byte (a sync that runs past its end). */
static bool start_match(const struct dma_debug_entry *ref,
			const struct dma_debug_entry *entry)
{
	return ref->dev == entry->dev && ref->dev_addr >= entry->dev_addr &&
	       ref->dev_addr - entry->dev_addr < entry->size;
}

/*
 * __hash_bucket_find(): the best fit among @match's hits in @b. A driver
 * may map one address twice (not behind an IOMMU, or by lying to us), so
 * a perfect fit (size, type, direction, sg count) wins; otherwise the best
 * partial fit, but only if it is the only hit.
 */
static struct dma_debug_entry *bucket_find(struct dd_bucket *b,
					   const struct dma_debug_entry *ref,
					   match_fn match)
{
	struct dma_debug_entry *ret = NULL;
	struct list_head *pos;
	int matches = 0, last_lvl = -1;

	if (!b)
		return NULL;
	list_for_each(pos, &b->entries) {
		struct dma_debug_entry *e = list_entry(pos, struct dma_debug_entry, list);
		int lvl = 0;

		if (!match(ref, e))
			continue;
		matches++;
		lvl += e->size == ref->size;
		lvl += e->type == ref->type;
		lvl += e->direction == ref->direction;
		lvl += e->sg_call_ents == ref->sg_call_ents;
		if (lvl == 4)
			return e;
		if (lvl > last_lvl) {
			last_lvl = lvl;
			ret = e;
		}
	}
	return matches == 1 ? ret : NULL;
}

static struct dma_debug_entry *find_exact(struct dma_debug *dd,
					  const struct dma_debug_entry *ref)
{
	return bucket_find(find_bucket(dd, ref->dev, ref->dev_addr >> DD_CHUNK_SHIFT),
			   ref, exact_match);
}

/*
 * bucket_find_contain(): walk back from @ref's chunk, as the kernel walks
 * back its buckets (at most HASH_SIZE of them), but never further than
 * the largest entry could reach.
 */
static struct dma_debug_entry *find_contain(struct dma_debug *dd,
					    const struct dma_debug_entry *ref,
					    match_fn match)
{
	uint64_t chunk = ref->dev_addr >> DD_CHUNK_SHIFT;
	uint64_t limit = chunk + 1;

	if (limit > DD_MAX_WALK || limit == 0)
		limit = DD_MAX_WALK;
	if (limit > (dd->max_size >> DD_CHUNK_SHIFT) + 2)
		limit = (dd->max_size >> DD_CHUNK_SHIFT) + 2;
	for (uint64_t i = 0; i < limit; i++, chunk--) {
		struct dma_debug_entry *e = bucket_find(find_bucket(dd, ref->dev, chunk),
							ref, match);

		if (e)
			return e;
	}
	return NULL;
}

/* ---- active cachelines ----------------------------------------------------- */

/*
 * Only the first cacheline of a mapping is tracked, and only when the
 * device may write it: a CPU reading stale data is the concern, so
 * DMA_TO_DEVICE mappings may overlap anything.
 */
static int active_cacheline_insert(struct dma_debug *dd,
				   struct dma_debug_entry *entry)
{
	uint64_t cln = entry->paddr >> L1_CACHE_SHIFT;
	struct dd_cacheline *c;

	if (!entry->has_paddr || entry->direction == IOM_DMA_TO_DEVICE)
		return 0;
	HASH_FIND(hh, dd->cachelines, &cln, sizeof(cln), c);
	if (c) {
		c->overlap++;
		entry->cln_tracked = true;
		return -EEXIST;
	}
	c = iom_meta_alloc(dd->m, sizeof(*c), 16, true);
	if (!c)
		return -ENOMEM;
	c->cln = cln;
	HASH_ADD(hh, dd->cachelines, cln, sizeof(c->cln), c);
	if (!c->hh.tbl) {
		iom_meta_free(dd->m, c, sizeof(*c));
		return -ENOMEM;
	}
	entry->cln_tracked = true;
	return 0;
}

static void active_cacheline_remove(struct dma_debug *dd,
				    struct dma_debug_entry *entry)
{
	uint64_t cln = entry->paddr >> L1_CACHE_SHIFT;
	struct dd_cacheline *c;

	if (!entry->cln_tracked)
		return;
	entry->cln_tracked = false;
	HASH_FIND(hh, dd->cachelines, &cln, sizeof(cln), c);
	if (!c)
		return;
	if (c->overlap) {
		c->overlap--;
		return;
	}
	HASH_DEL(dd->cachelines, c);
	iom_meta_free(dd->m, c, sizeof(*c));
}

/* ---- adding and removing entries -------------------------------------------- */

static struct dma_debug_entry *dma_entry_alloc(struct dma_debug *dd)
{
	struct dma_debug_entry *e = iom_meta_alloc(dd->m, sizeof(*e), 16, true);
	struct dd_reports rep = { 0 };

	if (e)
		return e;
	dd_lock(dd);
	dd_disable(dd, &rep, "debugging out of memory - disabling");
	dd_unlock(dd, &rep);
	return NULL;
}

/* add_dma_entry(): hash @entry (ours from now on) and mark its cacheline. */
static void add_dma_entry(struct dma_debug *dd, struct dd_reports *rep,
			  struct dma_debug_entry *entry, unsigned long attrs)
{
	uint64_t chunk = entry->dev_addr >> DD_CHUNK_SHIFT;
	struct dd_bucket *b;
	int rc;

	if (atomic_load(&dd->disabled)) {
		iom_meta_free(dd->m, entry, sizeof(*entry));
		return;
	}
	b = find_bucket(dd, entry->dev, chunk);
	if (!b) {
		b = iom_meta_alloc(dd->m, sizeof(*b), 16, true);
		if (b) {
			b->key = bucket_key(entry->dev, chunk);
			INIT_LIST_HEAD(&b->entries);
			HASH_ADD(hh, dd->buckets, key, sizeof(b->key), b);
			if (!b->hh.tbl) {
				iom_meta_free(dd->m, b, sizeof(*b));
				b = NULL;
			}
		}
		if (!b) {
			iom_meta_free(dd->m, entry, sizeof(*entry));
			dd_disable(dd, rep, "debugging out of memory - disabling");
			return;
		}
	}
	list_add_tail(&entry->list, &b->entries);
	if (++dd->nr_entries > dd->max_entries)
		dd->max_entries = dd->nr_entries;
	if (entry->size > dd->max_size)
		dd->max_size = entry->size;

	rc = active_cacheline_insert(dd, entry);
	if (rc == -ENOMEM)
		dd_disable(dd, rep, "cacheline tracking ENOMEM, dma-debug disabled");
	else if (rc == -EEXIST && !(attrs & IOM_DMA_ATTR_SKIP_CPU_SYNC))
		err_printk(dd, rep, entry->dev, IOM_DMA_DEBUG_OVERLAP,
			   "cacheline tracking EEXIST, overlapping mappings aren't supported");
}

static void remove_dma_entry(struct dma_debug *dd, struct dma_debug_entry *entry)
{
	struct dd_bucket *b = find_bucket(dd, entry->dev,
					  entry->dev_addr >> DD_CHUNK_SHIFT);

	list_del(&entry->list);
	if (b && list_empty(&b->entries)) {
		HASH_DEL(dd->buckets, b);
		iom_meta_free(dd->m, b, sizeof(*b));
	}
	active_cacheline_remove(dd, entry);
	dd->nr_entries--;
	iom_meta_free(dd->m, entry, sizeof(*entry));
}

/* ---- checks --------------------------------------------------------------- */

/*
 * check_unmap(): @ref against the entry it should undo. The entry goes
 * only when the DMA API did the unmap (@done); if it stays, its missing
 * dma_mapping_error() has been reported and is not reported again.
 */
static void check_unmap(struct dma_debug *dd, struct dd_reports *rep,
			const struct dma_debug_entry *ref, bool done)
{
	const struct iom_device *dev = ref->dev;
	unsigned long long addr = ref->dev_addr, size = ref->size;
	struct dma_debug_entry *entry = find_exact(dd, ref);

	if (!entry) {
		if (ref->dev_addr == IOM_DMA_MAPPING_ERROR)
			err_printk(dd, rep, dev, IOM_DMA_DEBUG_FREE_INVALID,
				   "device driver tries to free an invalid DMA memory address");
		else
			err_printk(dd, rep, dev, IOM_DMA_DEBUG_FREE_INVALID,
				   "device driver tries to free DMA memory it has not allocated "
				   "[device address=0x%016llx] [size=%llu bytes]",
				   addr, size);
		return;
	}

	if (ref->size != entry->size)
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_UNMAP_SIZE,
			   "device driver frees DMA memory with different size "
			   "[device address=0x%016llx] [map size=%llu bytes] "
			   "[unmap size=%llu bytes]",
			   addr, (unsigned long long)entry->size, size);

	if (ref->type != entry->type)
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_UNMAP_TYPE,
			   "device driver frees DMA memory with wrong function "
			   "[device address=0x%016llx] [size=%llu bytes] "
			   "[mapped as %s] [unmapped as %s]",
			   addr, size, type2name[entry->type], type2name[ref->type]);
	else if (entry->type == dma_debug_coherent &&
		 ref->cpu_addr != entry->cpu_addr)
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_UNMAP_CPU_ADDR,
			   "device driver frees DMA memory with different CPU address "
			   "[device address=0x%016llx] [size=%llu bytes] "
			   "[cpu alloc address=0x%016llx] [cpu free address=0x%016llx]",
			   addr, size,
			   (unsigned long long)(uintptr_t)entry->cpu_addr,
			   (unsigned long long)(uintptr_t)ref->cpu_addr);

	if (ref->sg_call_ents && ref->type == dma_debug_sg &&
	    ref->sg_call_ents != entry->sg_call_ents)
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_SG_COUNT,
			   "device driver frees DMA sg list with different entry count "
			   "[map count=%d] [unmap count=%d]",
			   entry->sg_call_ents, ref->sg_call_ents);

	/* Not always a bug, but most DMA API implementations get it wrong. */
	if (ref->direction != entry->direction)
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_UNMAP_DIR,
			   "device driver frees DMA memory with different direction "
			   "[device address=0x%016llx] [size=%llu bytes] "
			   "[mapped with %s] [unmapped with %s]",
			   addr, size, dir_name(entry->direction),
			   dir_name(ref->direction));

	if (entry->map_err_type == MAP_ERR_NOT_CHECKED) {
		/* sic: no space before the bracket, as in the kernel */
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_MAPPING_ERROR_UNCHECKED,
			   "device driver failed to check map error"
			   "[device address=0x%016llx] [size=%llu bytes] "
			   "[mapped as %s]",
			   addr, size, type2name[entry->type]);
		entry->map_err_type = MAP_ERR_CHECKED;
	}

	if (done)
		remove_dma_entry(dd, entry);
}

/*
 * check_sync(): @ref must lie in one mapping of its device, synced in the
 * mapping's direction. The kernel's containing search finds no entry for a
 * sync that runs past a mapping's end; here the mapping holding its first
 * byte is then looked for, so the report can say "outside allocated
 * range" (with the sync's end as an offset into the mapping) instead of
 * "not allocated".
 */
static void check_sync(struct dma_debug *dd, struct dd_reports *rep,
		       const struct dma_debug_entry *ref, bool to_cpu)
{
	const struct iom_device *dev = ref->dev;
	unsigned long long addr = ref->dev_addr;
	struct dma_debug_entry *entry = find_contain(dd, ref, containing_match);

	if (!entry) {
		entry = find_contain(dd, ref, start_match);
		if (!entry) {
			err_printk(dd, rep, dev, IOM_DMA_DEBUG_SYNC_RANGE,
				   "device driver tries to sync DMA memory it has not allocated "
				   "[device address=0x%016llx] [size=%llu bytes]",
				   addr, (unsigned long long)ref->size);
			return;
		}
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_SYNC_RANGE,
			   "device driver syncs DMA memory outside allocated range "
			   "[device address=0x%016llx] [allocation size=%llu bytes] "
			   "[sync offset+size=%llu]",
			   (unsigned long long)entry->dev_addr,
			   (unsigned long long)entry->size,
			   (unsigned long long)(ref->dev_addr - entry->dev_addr + ref->size));
	}

	if (entry->direction == IOM_DMA_BIDIRECTIONAL)
		return;

	if (ref->direction != entry->direction)
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_SYNC_DIR,
			   "device driver syncs DMA memory with different direction "
			   "[device address=0x%016llx] [size=%llu bytes] "
			   "[mapped with %s] [synced with %s]",
			   addr, (unsigned long long)entry->size,
			   dir_name(entry->direction), dir_name(ref->direction));

	if (to_cpu && entry->direction != IOM_DMA_FROM_DEVICE &&
	    ref->direction != IOM_DMA_TO_DEVICE)
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_SYNC_DIR,
			   "device driver syncs device read-only DMA memory for cpu "
			   "[device address=0x%016llx] [size=%llu bytes] "
			   "[mapped with %s] [synced with %s]",
			   addr, (unsigned long long)entry->size,
			   dir_name(entry->direction), dir_name(ref->direction));

	if (!to_cpu && entry->direction != IOM_DMA_TO_DEVICE &&
	    ref->direction != IOM_DMA_FROM_DEVICE)
		err_printk(dd, rep, dev, IOM_DMA_DEBUG_SYNC_DIR,
			   "device driver syncs device write-only DMA memory to device "
			   "[device address=0x%016llx] [size=%llu bytes] "
			   "[mapped with %s] [synced with %s]",
			   addr, (unsigned long long)entry->size,
			   dir_name(entry->direction), dir_name(ref->direction));
}

/* ---- the hooks ------------------------------------------------------------ */

/* Physical address of @offset into @page, if @page is one of @dev's machine's. */
static bool page_paddr(struct iom_device *dev, struct iom_page *page,
		       size_t offset, uint64_t *paddr)
{
	uint64_t phys;

	if (!page)
		return false;
	phys = iom_page_to_phys(iom_device_machine(dev), page);
	if (phys == UINT64_MAX)
		return false;
	*paddr = phys + offset;
	return true;
}

void debug_dma_map_page(struct iom_device *dev, struct iom_page *page,
			size_t offset, size_t size, int dir,
			iom_dma_addr_t dma_addr, unsigned long attrs)
{
	struct dd_reports rep = { 0 };
	struct dma_debug_entry *entry;
	struct dma_debug *dd = get_dd(dev);

	if (!dd || dma_addr == IOM_DMA_MAPPING_ERROR)
		return;
	entry = dma_entry_alloc(dd);
	if (!entry)
		return;
	entry->dev = dev;
	entry->type = dma_debug_single;
	entry->has_paddr = page_paddr(dev, page, offset, &entry->paddr);
	entry->dev_addr = dma_addr;
	entry->size = size;
	entry->direction = dir;
	entry->map_err_type = MAP_ERR_NOT_CHECKED;

	dd_lock(dd);
	add_dma_entry(dd, &rep, entry, attrs);
	dd_unlock(dd, &rep);
}

void debug_dma_mapping_error(struct iom_device *dev, iom_dma_addr_t dma_addr)
{
	struct dd_reports rep = { 0 };
	struct dma_debug *dd = get_dd(dev);
	struct dma_debug_entry ref = { .dev = dev, .dev_addr = dma_addr };
	struct dd_bucket *b;
	struct list_head *pos;

	if (!dd)
		return;
	dd_lock(dd);
	b = find_bucket(dd, dev, dma_addr >> DD_CHUNK_SHIFT);
	/* the first unchecked mapping of this address is the one checked */
	if (b) {
		list_for_each(pos, &b->entries) {
			struct dma_debug_entry *e =
				list_entry(pos, struct dma_debug_entry, list);

			if (exact_match(&ref, e) && e->map_err_type == MAP_ERR_NOT_CHECKED) {
				e->map_err_type = MAP_ERR_CHECKED;
				break;
			}
		}
	}
	dd_unlock(dd, &rep);
}

void debug_dma_unmap_page(struct iom_device *dev, iom_dma_addr_t addr,
			  size_t size, int dir, bool done)
{
	struct dd_reports rep = { 0 };
	struct dma_debug *dd = get_dd(dev);
	struct dma_debug_entry ref = {
		.type = dma_debug_single,
		.dev = dev,
		.dev_addr = addr,
		.size = size,
		.direction = dir,
	};

	if (!dd)
		return;
	dd_lock(dd);
	check_unmap(dd, &rep, &ref, done);
	dd_unlock(dd, &rep);
}

/*
 * One entry per DMA segment (@mapped_ents of them, never more than the
 * @nents entries the caller vouches for), each with the page of the sg
 * entry at the same index, as the kernel does.
 */
void debug_dma_map_sg(struct iom_device *dev, struct iom_scatterlist *sg,
		      int nents, int mapped_ents, int dir, unsigned long attrs)
{
	struct dma_debug *dd = get_dd(dev);
	int n = mapped_ents < nents ? mapped_ents : nents;

	if (!dd || !sg || n <= 0)
		return;
	for (int i = 0; i < n; i++) {
		struct dd_reports rep = { 0 };
		struct dma_debug_entry *entry = dma_entry_alloc(dd);

		if (!entry)
			return;
		entry->type = dma_debug_sg;
		entry->dev = dev;
		entry->has_paddr = page_paddr(dev, sg[i].page, sg[i].offset,
					      &entry->paddr);
		entry->size = sg[i].dma_length;
		entry->dev_addr = sg[i].dma_address;
		entry->direction = dir;
		entry->sg_call_ents = nents;
		entry->sg_mapped_ents = mapped_ents;

		dd_lock(dd);
		add_dma_entry(dd, &rep, entry, attrs);
		dd_unlock(dd, &rep);
	}
}

/*
 * @nelems is what was passed to map_sg; the first segment's entry says how
 * many segments were mapped. If it is not found, every element is checked
 * (and reported), as in the kernel.
 */
void debug_dma_unmap_sg(struct iom_device *dev, struct iom_scatterlist *sg,
			int nelems, int dir, bool done)
{
	struct dd_reports rep = { 0 };
	struct dma_debug *dd = get_dd(dev);
	int mapped_ents = 0;

	if (!dd || nelems <= 0)
		return;
	if (!sg) {
		dd_lock(dd);
		err_printk(dd, &rep, dev, IOM_DMA_DEBUG_FREE_INVALID,
			   "device driver tries to free an invalid DMA memory address");
		dd_unlock(dd, &rep);
		return;
	}
	for (int i = 0; i < nelems; i++) {
		struct dma_debug_entry ref = {
			.type = dma_debug_sg,
			.dev = dev,
			.dev_addr = sg[i].dma_address,
			.size = sg[i].dma_length,
			.direction = dir,
			.sg_call_ents = nelems,
		};

		if (mapped_ents && i >= mapped_ents)
			break;
		dd_lock(dd);
		if (!i) {
			struct dma_debug_entry *first = find_exact(dd, &ref);

			mapped_ents = first ? first->sg_mapped_ents : 0;
		}
		check_unmap(dd, &rep, &ref, done);
		dd_unlock(dd, &rep);
	}
}

void debug_dma_alloc_coherent(struct iom_device *dev, size_t size,
			      iom_dma_addr_t dma_addr, void *virt,
			      unsigned long attrs)
{
	struct dd_reports rep = { 0 };
	struct dma_debug_entry *entry;
	struct dma_debug *dd = get_dd(dev);

	if (!dd || !virt)
		return;
	entry = dma_entry_alloc(dd);
	if (!entry)
		return;
	entry->type = dma_debug_coherent;
	entry->dev = dev;
	entry->cpu_addr = virt;
	entry->size = size;
	entry->dev_addr = dma_addr;
	entry->direction = IOM_DMA_BIDIRECTIONAL;

	dd_lock(dd);
	add_dma_entry(dd, &rep, entry, attrs);
	dd_unlock(dd, &rep);
}

/*
 * The kernel skips the check when @virt is no kernel address (it needs
 * its pfn); the handle is compared as it is here, so a NULL or foreign
 * @virt is reported as a different CPU address.
 */
void debug_dma_free_coherent(struct iom_device *dev, size_t size, void *virt,
			     iom_dma_addr_t addr, bool done)
{
	struct dd_reports rep = { 0 };
	struct dma_debug *dd = get_dd(dev);
	struct dma_debug_entry ref = {
		.type = dma_debug_coherent,
		.dev = dev,
		.cpu_addr = virt,
		.dev_addr = addr,
		.size = size,
		.direction = IOM_DMA_BIDIRECTIONAL,
	};

	if (!dd)
		return;
	dd_lock(dd);
	check_unmap(dd, &rep, &ref, done);
	dd_unlock(dd, &rep);
}

static void debug_dma_sync_single(struct iom_device *dev,
				  iom_dma_addr_t dma_handle, size_t size,
				  int dir, bool to_cpu)
{
	struct dd_reports rep = { 0 };
	struct dma_debug *dd = get_dd(dev);
	struct dma_debug_entry ref = {
		.type = dma_debug_single,
		.dev = dev,
		.dev_addr = dma_handle,
		.size = size,
		.direction = dir,
	};

	if (!dd)
		return;
	dd_lock(dd);
	check_sync(dd, &rep, &ref, to_cpu);
	dd_unlock(dd, &rep);
}

void debug_dma_sync_single_for_cpu(struct iom_device *dev,
				   iom_dma_addr_t dma_handle, size_t size, int dir)
{
	debug_dma_sync_single(dev, dma_handle, size, dir, true);
}

void debug_dma_sync_single_for_device(struct iom_device *dev,
				      iom_dma_addr_t dma_handle, size_t size,
				      int dir)
{
	debug_dma_sync_single(dev, dma_handle, size, dir, false);
}

/*
 * dma_debug_device_change(BUS_NOTIFY_UNBOUND_DRIVER): one report for all
 * of @dev's entries, with one of them in detail. They stay tracked.
 */
long debug_dma_device_release(struct iom_device *dev)
{
	struct dd_reports rep = { 0 };
	struct dma_debug *dd = get_dd(dev);
	struct dma_debug_entry *leaked = NULL;
	struct dd_bucket *b, *tmp;
	long count = 0;

	if (!dd)
		return 0;
	dd_lock(dd);
	HASH_ITER(hh, dd->buckets, b, tmp) {
		struct list_head *pos;

		if (b->key.dev != (uint64_t)(uintptr_t)dev)
			continue;
		list_for_each(pos, &b->entries) {
			struct dma_debug_entry *e =
				list_entry(pos, struct dma_debug_entry, list);

			if (e->dev != dev)
				continue;
			count++;
			if (!leaked)
				leaked = e;
		}
	}
	if (leaked)
		err_printk(dd, &rep, dev, IOM_DMA_DEBUG_PENDING,
			   "device driver has pending DMA allocations while released from device "
			   "[count=%ld]\n"
			   "One of leaked entries details: "
			   "[device address=0x%016llx] [size=%llu bytes] "
			   "[mapped with %s] [mapped as %s]",
			   count, (unsigned long long)leaked->dev_addr,
			   (unsigned long long)leaked->size,
			   dir_name(leaked->direction), type2name[leaked->type]);
	dd_unlock(dd, &rep);
	return count;
}

/**
 * iom_dma_debug_get_stats() - dma-debug's counters for machine @m.
 * @m:  the machine.
 * @st: filled in (all zero before the first tracked DMA operation).
 *
 * Context: any thread; takes the machine's dma-debug lock.
 * Return: 0; -EINVAL if @m or @st is NULL; -ENODEV if @m's config has
 * dma_debug off.
 */
int iom_dma_debug_get_stats(struct iom_machine *m, struct iom_dma_debug_stats *st)
{
	struct dma_debug *dd;

	if (!m || !st)
		return -EINVAL;
	if (!m->cfg.dma_debug)
		return -ENODEV;
	memset(st, 0, sizeof(*st));
	dd = atomic_load_explicit(&m->ext[IOM_MACHINE_EXT_DMA_DEBUG].priv,
				  memory_order_acquire);
	if (!dd)
		return 0;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&dd->lock));
	memcpy(st->errors, dd->errors, sizeof(st->errors));
	st->nr_entries = dd->nr_entries;
	st->max_entries = dd->max_entries;
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&dd->lock));
	return 0;
}
