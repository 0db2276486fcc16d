/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - the workload generator and what one run measures.
 *
 * One run builds a machine (with one CMA area if the scenario has one), an
 * IOMMU with a DMA domain, the scenario's devices, processes, and then:
 *
 *   fill  every kind of memory is topped up to its share, one object at a
 *         time, the kind chosen at random weighted by what it lacks, so
 *         they interleave in physical memory as on a running system.
 *   load  @steps steps. Each frees a churn share of every kind (long-lived
 *         objects excepted) and tops up again, makes the step's high-order
 *         allocation attempts (held until the load ends, as stress-highalloc
 *         holds its huge pages), every 10th step its CMA allocations, and
 *         runs one round of kcompactd. Device threads keep writing
 *         sequence-stamped records into the live DMA buffers meanwhile.
 *   rest  the processes exit, short-lived kernel objects and DMA buffers
 *         are freed; page cache, long-lived objects, long-lived DMA buffers
 *         and pins stay. Memory is compacted (echo 1 > compact_memory),
 *         then each order is asked for, rest_share of memory of it, held
 *         and released; then the CMA allocations at rest.
 *
 * The choices come from one xorshift generator seeded by --seed, in the
 * main thread: the same seed makes the same sequence of requests in every
 * mode (a mode can only change whether a request succeeds). With device
 * threads the timing of their writes varies from run to run; with
 * device_threads = 0 the whole run is repeatable to the page.
 *
 * Modes: no DMA (no buffers, no pins: the ideal), legacy (the 2013
 * kernel: unmovable DMA pages from order 4 down to 0, pins without
 * FOLL_LONGTERM), IOMAP (seed 000's movable DMA pages migrated PER_PAGE,
 * FOLL_LONGTERM pins) and IOMAP with non-blocking migration. Without
 * compaction the high-order requests carry no __GFP_DIRECT_RECLAIM (no
 * direct compaction), kcompactd never runs and there is no compaction
 * at rest: the kernel with defrag off.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <iommig/trace.h>

#include "frag.h"

#define PG			IOM_PAGE_SIZE
#define REC_SIZE		16	/* one device record: generation, sequence */
#define REST_GIVE_UP		32	/* consecutive failures that end an order at rest */
#define CMA_EVERY		10	/* steps between CMA allocation rounds */
#define DEV_MAX			64
#define FILLER_CHUNK		512	/* pages of one mmap of the dma_into_holes filler */

/* ---- small helpers ----------------------------------------------------- */

/* xorshift64*: the same seed gives the same workload on every host. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return n ? (rng_next(s) >> 11) % n : 0;
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / (double)(1ULL << 53);
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A growable array of fixed-size elements; removal swaps in the last. */
struct vec {
	char *a;
	size_t n, cap, esz;
};

static void *vec_push(struct vec *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		char *a = realloc(v->a, cap * v->esz);

		if (!a)
			return NULL;
		v->a = a;
		v->cap = cap;
	}
	return memset(v->a + v->n++ * v->esz, 0, v->esz);
}

static void *vec_at(const struct vec *v, size_t i)
{
	return v->a + i * v->esz;
}

static void vec_remove(struct vec *v, size_t i)
{
	if (i != --v->n)
		memcpy(v->a + i * v->esz, v->a + v->n * v->esz, v->esz);
}

/* Log2 of the power of two @x (x > 0). */
static unsigned int ilog2_u64(uint64_t x)
{
	return 63u - (unsigned int)__builtin_clzll(x);
}

/* ---- the objects of the workload --------------------------------------- */

enum kind { K_ANON, K_FILE, K_UNMOV, K_RECL, K_DMA, K_PIN, NR_KINDS };

struct anon_region {
	unsigned int proc;
	uint64_t addr;
	unsigned long nr;
	unsigned long touched;		/* pages faulted in, from the start */
};

struct file_obj {
	struct iom_inode *inode;
	unsigned long nr;
	unsigned long written;		/* pages read in, from the start */
};

struct kobj {			/* an unmovable or reclaimable kernel allocation */
	struct iom_page *page;
	unsigned int order;
};

struct pin_obj {
	uint64_t addr;
	unsigned long nr;
	struct iom_page **pages;
};

struct hold {			/* a successful high-order allocation */
	struct iom_page *page;
	unsigned int order;
};

/*
 * A DMA buffer slot. The device threads pick slots at random and write
 * under the slot's lock; the main thread allocates and frees under it, so
 * a buffer is never freed under a device's write.
 */
struct dma_slot {
	pthread_mutex_t lock;
	bool live;
	bool longlived;
	unsigned int dev;
	void *cpu;
	iom_dma_addr_t iova;
	size_t size;
	uint64_t gen;		/* which buffer this is (stamped in records) */
	uint64_t seq;		/* records written and acknowledged */
};

struct dev_thread {
	pthread_t tid;
	struct wl *wl;
	unsigned int idx;
	struct frag_latency lat;
};

struct wl {
	const struct frag_scenario *s;
	struct frag_mode mode;
	struct frag_result *r;
	uint64_t rng;

	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *domain;
	struct iom_device *dev[DEV_MAX];
	unsigned int nr_dev;
	struct iom_cma *cma;
	struct iom_mm **mm;
	unsigned int nr_mm;
	size_t *anon_pending;		/* per process: region being faulted in */
	bool file_writing;		/* the last file is being read in */
	struct iom_mm *guest;
	struct iom_mm *filler;		/* dma_into_holes: fills memory, punched */

	unsigned long nr_pages;
	unsigned long target[NR_KINDS];	/* pages */
	unsigned long used[NR_KINDS];	/* pages, as allocated */
	bool full[NR_KINDS];		/* an allocation of this kind failed this step */

	struct vec anon, files, unmov, unmov_long, recl, pins, holds;
	struct dma_slot *slots;
	unsigned long nr_slots;		/* capacity */
	_Atomic unsigned long slots_hw;	/* slots [0, hw) may be live */
	unsigned long *free_slots;	/* stack of free slot indices */
	unsigned long nr_free_slots;
	uint64_t next_gen;

	/* device threads */
	struct dev_thread *threads;
	unsigned int nr_threads;
	atomic_bool stop;

	/* high-order attempts left under load and at rest, per scenario order */
	unsigned long load_left[FRAG_MAX_ORDERS];

	/* per-pfn class scratch for samples and maps */
	uint8_t *pfn_cls;
	unsigned long first_pfn;

	/* log hook */
	atomic_ulong pfns_busy;

	uint64_t t0_wall, t0_cpu;
	unsigned int samples_cap;
	unsigned int step;
	int phase;
	frag_progress_fn progress;
	void *progress_priv;
	double work_done, work_total;
};

/* ---- the machine's messages -------------------------------------------- */

/*
 * Allocation failures are what this benchmark counts, so warnings are not
 * printed; "PFNs busy" (alloc_contig_range()'s message, seed 002) is
 * counted. Bug reports are printed, and the run fails on them.
 */
static void wl_log(void *priv, enum iom_log_level level, const char *msg)
{
	struct wl *wl = priv;

	if (strstr(msg, "PFNs busy"))
		atomic_fetch_add(&wl->pfns_busy, 1);
	if (level < IOM_LOG_WARNING)
		fprintf(stderr, "iommig: %s\n", msg);
}

/* ---- gfp of each request ------------------------------------------------ */

/* Without compaction a request never enters direct reclaim/compaction. */
static iom_gfp_t wl_gfp(const struct wl *wl, iom_gfp_t gfp, unsigned int order)
{
	gfp |= IOM___GFP_NOWARN;
	if (!wl->mode.compaction && order)
		gfp &= ~(iom_gfp_t)IOM___GFP_DIRECT_RECLAIM;
	return gfp;
}

/* ---- the device threads ------------------------------------------------ */

static void lat_add(struct frag_latency *l, uint64_t ns)
{
	unsigned int b = ns ? ilog2_u64(ns) + 1 : 0;

	if (b >= FRAG_LAT_BUCKETS)
		b = FRAG_LAT_BUCKETS - 1;
	l->bucket[b]++;
	l->n++;
	if (ns > l->max_ns)
		l->max_ns = ns;
}

static size_t rec_offset(const struct dma_slot *sl, uint64_t seq)
{
	return (size_t)(seq % (sl->size / REC_SIZE)) * REC_SIZE;
}

/* One stamped write into slot @sl (its lock held). */
static void slot_write(struct wl *wl, struct dma_slot *sl, struct frag_latency *lat)
{
	uint64_t rec[2] = { sl->gen, sl->seq };
	size_t off = rec_offset(sl, sl->seq);
	uint64_t t0 = now_ns(CLOCK_MONOTONIC), t1;
	int err;

	err = iom_device_dma_write(wl->dev[sl->dev], sl->iova + off, rec, sizeof(rec));
	t1 = now_ns(CLOCK_MONOTONIC);
	if (!err) {
		sl->seq++;
		lat_add(lat, t1 - t0);
	}
}

static void *dev_thread_fn(void *arg)
{
	struct dev_thread *t = arg;
	struct wl *wl = t->wl;
	uint64_t rng = (wl->s->seed + 1) * 0x9E3779B97F4A7C15ULL + t->idx + 1;
	unsigned int misses = 0;

	while (!atomic_load_explicit(&wl->stop, memory_order_acquire)) {
		unsigned long hw = atomic_load_explicit(&wl->slots_hw, memory_order_acquire);
		struct dma_slot *sl;

		if (!hw) {
			/* no buffer yet (dma_late): do not spin a core away */
			nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
			continue;
		}
		sl = &wl->slots[rng_below(&rng, hw)];
		pthread_mutex_lock(&sl->lock);
		if (sl->live) {
			slot_write(wl, sl, &t->lat);
			misses = 0;
		} else if (++misses > 64) {
			misses = 0;
			nanosleep(&(struct timespec){ .tv_nsec = 10000 }, NULL);
		}
		pthread_mutex_unlock(&sl->lock);
	}
	return NULL;
}

/* ---- allocating and freeing one object of each kind --------------------- */

static unsigned long pages_of(uint64_t bytes)
{
	return (unsigned long)(bytes / PG);
}

/* A page count in [min, max] bytes, page granular. */
static unsigned long rand_pages(struct wl *wl, uint64_t min, uint64_t max)
{
	unsigned long lo = pages_of(min), hi = pages_of(max);

	return lo + (unsigned long)rng_below(&wl->rng, hi - lo + 1);
}

/*
 * Anonymous memory and page cache grow a page at a time, the pages of
 * several regions and files interleaved, as processes fault and write
 * over time: freeing one of them later leaves holes all over memory, not
 * one contiguous gap. Each process has at most one region being faulted
 * in; files are written one at a time, 4 KiB a call.
 */
static int anon_touch(struct wl *wl, struct anon_region *a)
{
	uint64_t v = a->addr + a->touched;
	int err = iom_write(wl->mm[a->proc], a->addr + a->touched * PG, &v, sizeof(v));

	if (err)
		return err;
	a->touched++;
	wl->used[K_ANON]++;
	return 0;
}

static int anon_alloc(struct wl *wl)
{
	const struct frag_scenario *s = wl->s;
	unsigned int proc = (unsigned int)rng_below(&wl->rng, wl->nr_mm);
	struct anon_region *a;
	unsigned long nr;
	uint64_t addr;
	int err;

	if (wl->anon_pending[proc] != SIZE_MAX) {
		a = vec_at(&wl->anon, wl->anon_pending[proc]);
		err = anon_touch(wl, a);
		if (!err && a->touched == a->nr)
			wl->anon_pending[proc] = SIZE_MAX;
		return err;
	}
	nr = rand_pages(wl, s->anon_region_min, s->anon_region_max);
	err = iom_mmap(wl->mm[proc], 0, nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0, &addr);
	if (err)
		return err;
	a = vec_push(&wl->anon);
	if (!a) {
		iom_munmap(wl->mm[proc], addr, nr * PG);
		return -ENOMEM;
	}
	a->proc = proc;
	a->addr = addr;
	a->nr = nr;
	wl->anon_pending[proc] = wl->anon.n - 1;
	err = anon_touch(wl, a);
	if (!err && a->touched == a->nr)
		wl->anon_pending[proc] = SIZE_MAX;
	return err;
}

static void anon_free(struct wl *wl, size_t i)
{
	struct anon_region *a = vec_at(&wl->anon, i);
	size_t last = wl->anon.n - 1;

	iom_munmap(wl->mm[a->proc], a->addr, a->nr * PG);
	wl->used[K_ANON] -= a->touched;
	if (wl->anon_pending[a->proc] == i)
		wl->anon_pending[a->proc] = SIZE_MAX;
	/* the last region moves into slot i */
	if (i != last) {
		struct anon_region *l = vec_at(&wl->anon, last);

		if (wl->anon_pending[l->proc] == last)
			wl->anon_pending[l->proc] = i;
	}
	vec_remove(&wl->anon, i);
}

/*
 * Read 4 KiB a call, so the page cache it fills is clean, as a build's
 * sources are: reclaim may drop it. (Written and synced files would cost
 * the host a second copy, on the file's simulated disk.)
 */
static int file_alloc(struct wl *wl)
{
	static char buf[PG];
	const struct frag_scenario *s = wl->s;
	struct file_obj *f;
	ssize_t r;
	int err;

	if (!wl->file_writing) {
		unsigned long nr = rand_pages(wl, s->file_size_min, s->file_size_max);
		struct iom_inode *inode;

		err = iom_inode_create(wl->m, (uint64_t)nr * PG, &inode);
		if (err)
			return err;
		f = vec_push(&wl->files);
		if (!f) {
			iom_inode_destroy(inode);
			return -ENOMEM;
		}
		f->inode = inode;
		f->nr = nr;
		wl->file_writing = true;
	}
	f = vec_at(&wl->files, wl->files.n - 1);
	r = iom_file_read(f->inode, (uint64_t)f->written * PG, buf, PG);
	if (r != (ssize_t)PG)
		return r < 0 ? (int)r : -ENOMEM;
	f->written++;
	wl->used[K_FILE]++;
	if (f->written == f->nr)
		wl->file_writing = false;
	return 0;
}

static void file_free(struct wl *wl, size_t i)
{
	struct file_obj *f = vec_at(&wl->files, i);

	/* the file being written is the last one */
	iom_inode_destroy(f->inode);
	/* reclaim may have taken some of them already: see resync_file() */
	wl->used[K_FILE] -= f->written < wl->used[K_FILE] ? f->written : wl->used[K_FILE];
	if (i == wl->files.n - 1)
		wl->file_writing = false;
	vec_remove(&wl->files, i);
}

/* Slab-like: order 0 mostly, up to unmovable_max_order. */
static unsigned int kobj_order(struct wl *wl)
{
	unsigned int u = (unsigned int)rng_below(&wl->rng, 100), o;

	o = u < 70 ? 0 : u < 85 ? 1 : u < 95 ? 2 : 3;
	return o > wl->s->unmovable_max_order ? wl->s->unmovable_max_order : o;
}

static int kobj_alloc(struct wl *wl, enum kind k)
{
	iom_gfp_t base = k == K_RECL ? IOM_GFP_KERNEL_RECLAIMABLE : IOM_GFP_KERNEL;
	unsigned int order = kobj_order(wl);
	struct iom_page *page;
	struct vec *v;
	struct kobj *o;

	page = iom_alloc_pages(wl->m, wl_gfp(wl, base, order), order);
	if (!page)
		return -ENOMEM;
	if (k == K_RECL)
		v = &wl->recl;
	else if (rng_unit(&wl->rng) < wl->s->unmovable_longlived)
		v = &wl->unmov_long;
	else
		v = &wl->unmov;
	o = vec_push(v);
	if (!o) {
		iom___free_pages(wl->m, page, order);
		return -ENOMEM;
	}
	o->page = page;
	o->order = order;
	wl->used[k] += 1ul << order;
	return 0;
}

static void kobj_free(struct wl *wl, struct vec *v, size_t i, enum kind k)
{
	struct kobj *o = vec_at(v, i);

	iom___free_pages(wl->m, o->page, o->order);
	wl->used[k] -= 1ul << o->order;
	vec_remove(v, i);
}

/* A power-of-two size in [dma_size_min, dma_size_max], log-uniform. */
static size_t dma_size(struct wl *wl)
{
	unsigned int lo = ilog2_u64(wl->s->dma_size_min);
	unsigned int hi = ilog2_u64(wl->s->dma_size_max);

	return (size_t)1 << (lo + rng_below(&wl->rng, hi - lo + 1));
}

static int dma_alloc(struct wl *wl)
{
	size_t size = dma_size(wl);
	unsigned int dev = (unsigned int)rng_below(&wl->rng, wl->nr_dev);
	bool longlived = rng_unit(&wl->rng) < wl->s->dma_longlived;
	iom_dma_addr_t iova;
	struct dma_slot *sl;
	unsigned long idx;
	void *cpu;

	if (!wl->nr_free_slots)
		return -ENOSPC;
	cpu = iom_dma_alloc_coherent(wl->dev[dev], size, &iova,
				     wl_gfp(wl, IOM_GFP_KERNEL, 1), 0);
	if (!cpu) {
		wl->r->dma_alloc_fail++;
		return -ENOMEM;
	}
	idx = wl->free_slots[--wl->nr_free_slots];
	sl = &wl->slots[idx];
	pthread_mutex_lock(&sl->lock);
	sl->dev = dev;
	sl->cpu = cpu;
	sl->iova = iova;
	sl->size = size;
	sl->gen = ++wl->next_gen;
	sl->seq = 0;
	sl->longlived = longlived;
	sl->live = true;
	/* without device threads, the main thread writes each buffer once */
	if (!wl->nr_threads)
		slot_write(wl, sl, &wl->r->lat);
	pthread_mutex_unlock(&sl->lock);
	if (idx + 1 > atomic_load(&wl->slots_hw))
		atomic_store_explicit(&wl->slots_hw, idx + 1, memory_order_release);
	wl->used[K_DMA] += pages_of(size);
	wl->r->dma_buffers++;
	return 0;
}

/*
 * Free slot @idx: first check, through the CPU view, that the device's
 * last acknowledged record is there (a write lost by a migration would
 * show here), then free the buffer.
 */
static int dma_free(struct wl *wl, unsigned long idx)
{
	struct dma_slot *sl = &wl->slots[idx];
	uint64_t rec[2];
	int err = 0;

	pthread_mutex_lock(&sl->lock);
	if (sl->seq) {
		err = iom_dma_vmap_read(wl->dev[sl->dev], sl->cpu,
					rec_offset(sl, sl->seq - 1), rec, sizeof(rec));
		if (err || rec[0] != sl->gen || rec[1] != sl->seq - 1)
			wl->r->lat.lost_writes++;
	}
	err = iom_dma_free_coherent(wl->dev[sl->dev], sl->size, sl->cpu, sl->iova, 0);
	sl->live = false;
	pthread_mutex_unlock(&sl->lock);
	if (err) {
		fprintf(stderr, "frag: iom_dma_free_coherent: %s\n", strerror(-err));
		return err;
	}
	wl->used[K_DMA] -= pages_of(sl->size);
	wl->free_slots[wl->nr_free_slots++] = idx;
	return 0;
}

/* Guest RAM pinned as VFIO's type1 does, with or without FOLL_LONGTERM. */
static int pin_alloc(struct wl *wl)
{
	unsigned long nr = pages_of(wl->s->pin_chunk);
	unsigned int flags = IOM_FOLL_WRITE;
	struct pin_obj *p;
	uint64_t addr;
	long got;
	int err;

	if (wl->mode.dma != FRAG_LEGACY)
		flags |= IOM_FOLL_LONGTERM;
	err = iom_mmap(wl->guest, 0, nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE,
		       NULL, 0, &addr);
	if (err)
		return err;
	p = vec_push(&wl->pins);
	if (!p || !(p->pages = calloc(nr, sizeof(*p->pages)))) {
		if (p)
			vec_remove(&wl->pins, wl->pins.n - 1);
		iom_munmap(wl->guest, addr, nr * PG);
		return -ENOMEM;
	}
	got = iom_pin_user_pages(wl->guest, addr, nr, flags, p->pages);
	if (got != (long)nr) {
		if (got > 0)
			iom_unpin_user_pages(wl->m, p->pages, (unsigned long)got);
		free(p->pages);
		vec_remove(&wl->pins, wl->pins.n - 1);
		iom_munmap(wl->guest, addr, nr * PG);
		return got < 0 ? (int)got : -ENOMEM;
	}
	p->addr = addr;
	p->nr = nr;
	wl->used[K_PIN] += nr;
	return 0;
}

static void pin_free(struct wl *wl, size_t i)
{
	struct pin_obj *p = vec_at(&wl->pins, i);

	iom_unpin_user_pages(wl->m, p->pages, p->nr);
	iom_munmap(wl->guest, p->addr, p->nr * PG);
	free(p->pages);
	wl->used[K_PIN] -= p->nr;
	vec_remove(&wl->pins, i);
}

static int kind_alloc(struct wl *wl, enum kind k)
{
	switch (k) {
	case K_ANON: return anon_alloc(wl);
	case K_FILE: return file_alloc(wl);
	case K_UNMOV:
	case K_RECL: return kobj_alloc(wl, k);
	case K_DMA: return dma_alloc(wl);
	case K_PIN: return pin_alloc(wl);
	default: return -EINVAL;
	}
}

/* ---- churn and top-up --------------------------------------------------- */

/*
 * Top every kind up to its target, one object at a time, the kind chosen
 * at random weighted by its deficit. A kind whose allocation fails is left
 * alone for the rest of the step (memory is full).
 */
static void topup(struct wl *wl, unsigned int kinds)
{
	for (;;) {
		unsigned long deficit[NR_KINDS], total = 0, pick;
		int k;

		for (k = 0; k < NR_KINDS; k++) {
			deficit[k] = 0;
			if (!(kinds & (1u << k)) || wl->full[k] ||
			    wl->used[k] >= wl->target[k])
				continue;
			deficit[k] = wl->target[k] - wl->used[k];
			total += deficit[k];
		}
		if (!total)
			return;
		pick = (unsigned long)rng_below(&wl->rng, total);
		for (k = 0; pick >= deficit[k]; k++)
			pick -= deficit[k];
		if (kind_alloc(wl, (enum kind)k))
			wl->full[k] = true;
	}
}

/* Free about @share of the pages of @v's objects, at random. */
#define CHURN(wl, v, share, nr_of, free_fn)				\
	do {								\
		unsigned long _goal = (unsigned long)((share) * (double)(nr_of)); \
		unsigned long _freed = 0;				\
		while (_freed < _goal && (v)->n) {			\
			size_t _i = (size_t)rng_below(&(wl)->rng, (v)->n); \
			_freed += free_fn;				\
		}							\
	} while (0)

static unsigned long anon_free_ret(struct wl *wl, size_t i)
{
	unsigned long nr = ((struct anon_region *)vec_at(&wl->anon, i))->touched;

	anon_free(wl, i);
	return nr;
}

static unsigned long file_free_ret(struct wl *wl, size_t i)
{
	unsigned long nr = ((struct file_obj *)vec_at(&wl->files, i))->written;

	file_free(wl, i);
	return nr;
}

static unsigned long kobj_free_ret(struct wl *wl, struct vec *v, size_t i, enum kind k)
{
	unsigned long nr = 1ul << ((struct kobj *)vec_at(v, i))->order;

	kobj_free(wl, v, i, k);
	return nr;
}

/* The live DMA slots that are not long-lived, for churn. */
static int dma_churn(struct wl *wl, double share)
{
	unsigned long goal = (unsigned long)(share * (double)wl->used[K_DMA]);
	unsigned long freed = 0, hw = atomic_load(&wl->slots_hw), tries = 0;

	while (freed < goal && hw && tries++ < 16 * hw) {
		unsigned long idx = (unsigned long)rng_below(&wl->rng, hw);
		struct dma_slot *sl = &wl->slots[idx];
		int err;

		/* live and longlived change only in this thread */
		if (!sl->live || sl->longlived)
			continue;
		freed += pages_of(sl->size);
		err = dma_free(wl, idx);
		if (err)
			return err;
	}
	return 0;
}

static int churn(struct wl *wl)
{
	const struct frag_scenario *s = wl->s;
	int err;

	CHURN(wl, &wl->anon, s->anon_churn, wl->used[K_ANON], anon_free_ret(wl, _i));
	CHURN(wl, &wl->files, s->file_churn, wl->used[K_FILE], file_free_ret(wl, _i));
	CHURN(wl, &wl->unmov, s->unmovable_churn, wl->used[K_UNMOV],
	      kobj_free_ret(wl, &wl->unmov, _i, K_UNMOV));
	CHURN(wl, &wl->recl, s->unmovable_churn, wl->used[K_RECL],
	      kobj_free_ret(wl, &wl->recl, _i, K_RECL));
	err = dma_churn(wl, s->dma_churn);
	/* an I/O burst ending: buffers go until the target is met */
	if (!err && wl->used[K_DMA] > wl->target[K_DMA])
		err = dma_churn(wl, (double)(wl->used[K_DMA] - wl->target[K_DMA]) /
				    (double)wl->used[K_DMA]);
	return err;
}

/* ---- high-order and CMA allocations ------------------------------------ */

static int hold_push(struct wl *wl, struct iom_page *page, unsigned int order)
{
	struct hold *h = vec_push(&wl->holds);

	if (!h) {
		iom___free_pages(wl->m, page, order);
		return -ENOMEM;
	}
	h->page = page;
	h->order = order;
	return 0;
}

static void holds_release(struct wl *wl)
{
	while (wl->holds.n) {
		struct hold *h = vec_at(&wl->holds, wl->holds.n - 1);

		iom___free_pages(wl->m, h->page, h->order);
		wl->holds.n--;
	}
}

/*
 * One attempt at @order, as stress-highalloc's module makes them: movable
 * (GFP_HIGHUSER_MOVABLE, as hugetlbfs), no warning, giving up rather than
 * retrying. A failure wakes kcompactd for the order.
 */
static bool high_attempt(struct wl *wl, unsigned int order)
{
	iom_gfp_t gfp = wl_gfp(wl, IOM_GFP_HIGHUSER_MOVABLE | IOM___GFP_COMP |
				   IOM___GFP_NORETRY, order);
	struct iom_page *page = iom_alloc_pages(wl->m, gfp, order);

	if (!page) {
		if (wl->mode.compaction)
			for (unsigned int nid = 0; nid < iom_nr_nodes(wl->m); nid++)
				iom_wakeup_kcompactd(wl->m, (int)nid, order);
		return false;
	}
	return !hold_push(wl, page, order);
}

/* The step's attempts under load, round robin over the orders. */
static void high_load_step(struct wl *wl)
{
	const struct frag_scenario *s = wl->s;
	unsigned int n = 0, i = 0, idle = 0;

	while (n < s->highalloc_per_step && idle < s->nr_orders) {
		unsigned int k = i++ % s->nr_orders;

		if (!wl->load_left[k]) {
			idle++;
			continue;
		}
		idle = 0;
		wl->load_left[k]--;
		wl->r->load[k].attempts++;
		wl->r->load[k].successes += high_attempt(wl, s->orders[k]);
		n++;
	}
}

/*
 * cma_alloc() of the whole chunk, aligned to its size up to a pageblock
 * (as dma_alloc_contiguous() aligns, up to CONFIG_CMA_ALIGNMENT), so a
 * busy run is skipped a pageblock at a time; released at once.
 */
static void cma_round(struct wl *wl, unsigned int n, struct frag_count *c)
{
	unsigned long count = pages_of(wl->s->cma_alloc_size);
	unsigned int align;

	if (!wl->cma || !n || !count)
		return;
	/* aligned to the largest power of two not above the count */
	align = ilog2_u64(count);
	if (align > iom_pageblock_order(wl->m))
		align = iom_pageblock_order(wl->m);
	for (unsigned int i = 0; wl->cma && i < n; i++) {
		struct iom_page *page = iom_cma_alloc(wl->cma, count, align, true);

		c->attempts++;
		if (!page)
			continue;
		c->successes++;
		iom_cma_release(wl->cma, page, count);
	}
}

/* ---- measuring ----------------------------------------------------------- */

/* Per-pfn classes while building a map (beyond the block classes). */
enum { P_FREE, P_MOVABLE, P_RECL, P_UNMOV, P_DMA_LEGACY, P_DMA_MOVABLE,
       P_PINNED, P_HIGH, P_NR };

static void mark_range(struct wl *wl, struct iom_page *page, unsigned long nr,
		       uint8_t cls)
{
	unsigned long pfn = iom_page_to_pfn(wl->m, page) - wl->first_pfn;

	memset(wl->pfn_cls + pfn, cls, nr);
}

/*
 * Classify every page: first what the workload knows it holds (kernel
 * objects, DMA buffers where they are now, pins, high-order holds), then
 * the rest from the page itself: on an LRU list movable, free when its
 * count is 0, else a kernel page (page tables, IOMMU tables): unmovable.
 */
static void classify_pages(struct wl *wl)
{
	unsigned long nr = wl->nr_pages, i;
	size_t j;

	iom_drain_all_pages(wl->m);
	memset(wl->pfn_cls, 0xff, nr);
	for (j = 0; j < wl->unmov.n; j++) {
		struct kobj *o = vec_at(&wl->unmov, j);

		mark_range(wl, o->page, 1ul << o->order, P_UNMOV);
	}
	for (j = 0; j < wl->unmov_long.n; j++) {
		struct kobj *o = vec_at(&wl->unmov_long, j);

		mark_range(wl, o->page, 1ul << o->order, P_UNMOV);
	}
	for (j = 0; j < wl->recl.n; j++) {
		struct kobj *o = vec_at(&wl->recl, j);

		mark_range(wl, o->page, 1ul << o->order, P_RECL);
	}
	for (j = 0; j < wl->pins.n; j++) {
		struct pin_obj *p = vec_at(&wl->pins, j);

		for (unsigned long k = 0; k < p->nr; k++)
			mark_range(wl, p->pages[k], 1, P_PINNED);
	}
	for (j = 0; j < wl->holds.n; j++) {
		struct hold *h = vec_at(&wl->holds, j);

		mark_range(wl, h->page, 1ul << h->order, P_HIGH);
	}
	for (i = 0; i < atomic_load(&wl->slots_hw); i++) {
		struct dma_slot *sl = &wl->slots[i];
		uint8_t cls = wl->mode.dma == FRAG_LEGACY ? P_DMA_LEGACY : P_DMA_MOVABLE;

		if (!sl->live)
			continue;
		for (size_t off = 0; off < sl->size; off += PG) {
			struct iom_page *page = iom_dma_buffer_page(wl->dev[sl->dev],
								    sl->cpu, off);

			if (!page)
				continue;
			mark_range(wl, page, 1, cls);
			iom_put_page(wl->m, page);
		}
	}
	for (i = 0; i < nr; i++) {
		struct iom_page *page;

		if (wl->pfn_cls[i] != 0xff)
			continue;
		page = iom_pfn_to_page(wl->m, wl->first_pfn + i);
		if (iom_PageLRU(page))
			wl->pfn_cls[i] = P_MOVABLE;
		else if (!iom_page_ref_count(page) || iom_PageBuddy(page))
			wl->pfn_cls[i] = P_FREE;
		else
			wl->pfn_cls[i] = P_UNMOV;
	}
}

/* Outside CMA: the first page class in this order that a block holds. */
static const struct {
	uint8_t page, block;
} block_prio[] = {
	{ P_UNMOV, FRAG_BLK_UNMOVABLE },
	{ P_DMA_LEGACY, FRAG_BLK_DMA_LEGACY },
	{ P_RECL, FRAG_BLK_RECLAIMABLE },
	{ P_PINNED, FRAG_BLK_PINNED },
	{ P_DMA_MOVABLE, FRAG_BLK_DMA_MOVABLE },
	{ P_HIGH, FRAG_BLK_HIGHALLOC },
};

static uint8_t block_class(const unsigned long *cnt, unsigned long per)
{
	for (size_t i = 0; i < sizeof(block_prio) / sizeof(block_prio[0]); i++)
		if (cnt[block_prio[i].page])
			return block_prio[i].block;
	return cnt[P_FREE] == per ? FRAG_BLK_FREE : FRAG_BLK_MOVABLE;
}

/*
 * Pageblock classes from the page classes: what holds an unmovable page
 * is unmovable whatever else it holds (that is what blocks compaction),
 * then legacy DMA, reclaimable, pins, movable DMA, high-order holds,
 * movable; a CMA pageblock is CMA used or free unless it holds a pin.
 */
static void classify_blocks(struct wl *wl, uint8_t *out, unsigned long *unmov_blocks,
			    unsigned long *mixed_blocks)
{
	unsigned int bo = iom_pageblock_order(wl->m);
	unsigned long per = 1ul << bo, nb = wl->nr_pages >> bo, b;

	*unmov_blocks = *mixed_blocks = 0;
	for (b = 0; b < nb; b++) {
		unsigned long cnt[P_NR] = { 0 };
		int mt = iom_get_pageblock_migratetype(wl->m, wl->first_pfn + b * per);
		uint8_t c;

		for (unsigned long i = 0; i < per; i++)
			cnt[wl->pfn_cls[b * per + i]]++;
		if (cnt[P_UNMOV] || cnt[P_DMA_LEGACY]) {
			(*unmov_blocks)++;
			if (mt == IOM_MIGRATE_MOVABLE)
				(*mixed_blocks)++;
		}
		if (mt == IOM_MIGRATE_CMA)
			c = cnt[P_PINNED] ? FRAG_BLK_PINNED :
			    cnt[P_FREE] == per ? FRAG_BLK_CMA_FREE : FRAG_BLK_CMA_USED;
		else
			c = block_class(cnt, per);
		if (out)
			out[b] = c;
	}
}

/*
 * Classify memory once: the pageblocks holding unmovable pages (*@unmov,
 * *@mixed), and the memory map of moment @mo when the scenario asks for
 * one (FRAG_NR_MOMENTS: no map).
 */
static void snapshot(struct wl *wl, enum frag_moment mo, unsigned long *unmov,
		     unsigned long *mixed)
{
	struct frag_memmap *map = mo < FRAG_NR_MOMENTS ? &wl->r->maps[mo] : NULL;

	if (map && (wl->s->memmap_at & (1u << mo))) {
		map->pageblock_order = iom_pageblock_order(wl->m);
		map->nr_blocks = wl->nr_pages >> map->pageblock_order;
		map->moment = mo;
		map->cls = malloc(map->nr_blocks);
		wl->r->have_map[mo] = map->cls != NULL;
	}
	classify_pages(wl);
	classify_blocks(wl, map && wl->r->have_map[mo] ? map->cls : NULL, unmov, mixed);
}

/* One sample of the time series, and the map of @mo if one is asked for. */
static int sample(struct wl *wl, enum frag_moment mo)
{
	struct frag_result *r = wl->r;
	struct frag_sample *sm;
	struct iom_contig_page_info info;
	unsigned long nr_free[32] = { 0 };
	unsigned int max_order = iom_max_order(wl->m), o, k;

	if (r->nr_samples == wl->samples_cap) {
		size_t cap = wl->samples_cap ? 2 * (size_t)wl->samples_cap : 64;
		struct frag_sample *a = realloc(r->samples, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		r->samples = a;
		wl->samples_cap = (unsigned int)cap;
	}
	sm = &r->samples[r->nr_samples++];
	memset(sm, 0, sizeof(*sm));
	sm->step = wl->step;
	sm->phase = wl->phase;
	sm->t_wall = (double)(now_ns(CLOCK_MONOTONIC) - wl->t0_wall) / 1e9;

	snapshot(wl, mo, &sm->unmovable_blocks, &sm->mixed_blocks);
	for (unsigned int nid = 0; nid < iom_nr_nodes(wl->m); nid++) {
		for (int zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
			struct iom_zone_info zi;

			if (iom_zone_info(wl->m, (int)nid, zt, &zi) || !zi.populated)
				continue;
			sm->free_pages += zi.nr_free_pages;
			for (o = 0; o <= max_order && o < 32; o++)
				nr_free[o] += zi.nr_free[o];
		}
	}
	for (o = 0; o < FRAG_SERIES_ORDERS; o++) {
		if (o > max_order) {
			sm->unusable[o] = 1000;
			sm->extfrag[o] = -1000;
			continue;
		}
		iom_fill_contig_page_info(nr_free, max_order, o, &info);
		sm->unusable[o] = iom_unusable_free_index(o, &info);
		sm->extfrag[o] = iom_fragmentation_index(o, &info);
	}
	sm->used_anon = wl->used[K_ANON];
	sm->used_file = 0;
	for (unsigned int nid = 0; nid < iom_nr_nodes(wl->m); nid++)
		sm->used_file += iom_lru_size(wl->m, (int)nid, IOM_LRU_INACTIVE_FILE) +
				 iom_lru_size(wl->m, (int)nid, IOM_LRU_ACTIVE_FILE);
	sm->used_unmovable = wl->used[K_UNMOV] + wl->used[K_RECL];
	sm->used_dma = wl->used[K_DMA];
	sm->used_pinned = wl->used[K_PIN];
	for (k = 0; k < wl->s->nr_orders; k++) {
		sm->high[k].attempts = r->load[k].attempts + r->rest[k].attempts;
		sm->high[k].successes = r->load[k].successes + r->rest[k].successes;
	}
	sm->compact_migrate_scanned = iom_vm_event_count(wl->m, IOM_COMPACTMIGRATE_SCANNED);
	sm->compact_free_scanned = iom_vm_event_count(wl->m, IOM_COMPACTFREE_SCANNED);
	sm->compact_stall = iom_vm_event_count(wl->m, IOM_COMPACTSTALL);
	sm->compact_fail = iom_vm_event_count(wl->m, IOM_COMPACTFAIL);
	sm->compact_success = iom_vm_event_count(wl->m, IOM_COMPACTSUCCESS);
	sm->pgmigrate_success = iom_vm_event_count(wl->m, IOM_PGMIGRATE_SUCCESS);
	sm->pgmigrate_fail = iom_vm_event_count(wl->m, IOM_PGMIGRATE_FAIL);
	return 0;
}

static void progress(struct wl *wl, double units)
{
	wl->work_done += units;
	if (wl->progress)
		wl->progress(wl->progress_priv, wl->work_done, wl->work_total);
}

/* ---- building and tearing down ------------------------------------------ */

static int wl_build(struct wl *wl)
{
	const struct frag_scenario *s = wl->s;
	struct iom_machine_config cfg;
	unsigned long max_bufs;
	int err;

	iom_machine_config_init(&cfg);
	cfg.mem_size = s->mem;
	if (s->cma_size) {
		cfg.nr_cma_areas = 1;
		cfg.cma[0].size = s->cma_size;
	}
	/* -1: 0 (the config's 0 means the default, 20) */
	cfg.compaction_proactiveness = wl->mode.compaction && s->compaction_proactiveness ?
				       (int)s->compaction_proactiveness : -1;
	cfg.dma_legacy = wl->mode.dma == FRAG_LEGACY;
	/*
	 * dma_into_holes needs every page used but the holes: with watermarks
	 * the reserve below them stays free in whole pageblocks, and the
	 * allocator's fallback (largest block first) would put every buffer
	 * there. The slides' machine, like tests/dma/test_dma_compaction.c,
	 * runs without them.
	 */
	if (s->dma_into_holes)
		cfg.min_free_kbytes = -1;
	cfg.log = wl_log;
	cfg.log_priv = wl;
	err = iom_machine_create(&cfg, &wl->m);
	if (err) {
		fprintf(stderr, "frag: iom_machine_create(mem %" PRIu64 ", cma %" PRIu64
			"): %s\n", s->mem, s->cma_size, strerror(-err));
		return err;
	}
	wl->first_pfn = iom_first_pfn(wl->m);
	wl->nr_pages = iom_end_pfn(wl->m) - wl->first_pfn;
	wl->pfn_cls = malloc(wl->nr_pages);
	if (!wl->pfn_cls)
		return -ENOMEM;
	if (s->cma_size)
		wl->cma = iom_cma_get(wl->m, 0);

	err = iom_iommu_create(wl->m, NULL, &wl->iommu);
	if (err) {
		fprintf(stderr, "frag: iom_iommu_create: %s\n", strerror(-err));
		return err;
	}
	wl->domain = iom_iommu_domain_alloc(wl->iommu, IOM_IOMMU_DOMAIN_DMA);
	if (!wl->domain)
		return -ENOMEM;
	/* a 64-bit device: the IOVA space covers any share of memory */
	err = iom_iommu_dma_init_domain(wl->domain, 1ULL << 20, 1ULL << 46);
	if (err) {
		fprintf(stderr, "frag: iom_iommu_dma_init_domain: %s\n", strerror(-err));
		return err;
	}
	wl->nr_dev = s->dma_devices < DEV_MAX ? s->dma_devices : DEV_MAX;
	for (unsigned int d = 0; d < wl->nr_dev; d++) {
		char name[32];

		snprintf(name, sizeof(name), "frag-dev%u", d);
		err = iom_device_create(wl->iommu, name, &wl->dev[d]);
		if (!err)
			err = iom_iommu_attach_device(wl->domain, wl->dev[d]);
		if (!err)
			err = iom_dma_set_mask_and_coherent(wl->dev[d], ~0ULL);
		if (!err)
			err = iom_dma_set_alloc_mode(wl->dev[d],
				wl->mode.dma == FRAG_LEGACY ? IOM_DMA_ALLOC_LEGACY :
							      IOM_DMA_ALLOC_MOVABLE);
		if (!err && wl->mode.dma != FRAG_LEGACY)
			err = iom_dma_set_migrate_mode(wl->dev[d],
				wl->mode.dma == FRAG_IOMAP_NONBLOCK ?
				IOM_DMA_MIGRATE_NONBLOCK : IOM_DMA_MIGRATE_PER_PAGE);
		if (err) {
			/* the teardown detaches (a no-op if attach failed) and destroys */
			fprintf(stderr, "frag: device %u: %s\n", d, strerror(-err));
			return err;
		}
	}

	wl->nr_mm = s->processes;
	wl->mm = calloc(wl->nr_mm, sizeof(*wl->mm));
	wl->anon_pending = malloc(wl->nr_mm * sizeof(*wl->anon_pending));
	if (!wl->mm || !wl->anon_pending)
		return -ENOMEM;
	for (unsigned int p = 0; p < wl->nr_mm; p++)
		wl->anon_pending[p] = SIZE_MAX;
	for (unsigned int p = 0; p < wl->nr_mm; p++) {
		err = iom_mm_create(wl->m, &wl->mm[p]);
		if (err) {
			fprintf(stderr, "frag: process %u of %u (processes): %s (too many "
				"for %" PRIu64 " MiB?)\n", p + 1, wl->nr_mm, strerror(-err),
				s->mem >> 20);
			return err;
		}
	}
	err = iom_mm_create(wl->m, &wl->guest);
	if (!err && s->dma_into_holes)
		err = iom_mm_create(wl->m, &wl->filler);
	if (err) {
		fprintf(stderr, "frag: the guest or filler process: %s\n", strerror(-err));
		return err;
	}

	/* the kinds and their targets; no DMA and no pins in the ideal */
	wl->target[K_ANON] = (unsigned long)(s->anon_share * (double)wl->nr_pages);
	wl->target[K_FILE] = (unsigned long)(s->file_share * (double)wl->nr_pages);
	wl->target[K_UNMOV] = (unsigned long)(s->unmovable_share * (double)wl->nr_pages);
	wl->target[K_RECL] = (unsigned long)(s->reclaimable_share * (double)wl->nr_pages);
	if (wl->mode.dma != FRAG_NODMA) {
		wl->target[K_DMA] = (unsigned long)(s->dma_share * (double)wl->nr_pages);
		wl->target[K_PIN] = (unsigned long)(s->pin_share * (double)wl->nr_pages);
	}
	wl->anon.esz = sizeof(struct anon_region);
	wl->files.esz = sizeof(struct file_obj);
	wl->unmov.esz = wl->unmov_long.esz = wl->recl.esz = sizeof(struct kobj);
	wl->pins.esz = sizeof(struct pin_obj);
	wl->holds.esz = sizeof(struct hold);

	max_bufs = (unsigned long)((1.0 + s->dma_burst) * (double)wl->target[K_DMA]) /
		   pages_of(s->dma_size_min) + 16;
	wl->slots = calloc(max_bufs, sizeof(*wl->slots));
	wl->free_slots = calloc(max_bufs, sizeof(*wl->free_slots));
	if (!wl->slots || !wl->free_slots)
		return -ENOMEM;
	wl->nr_slots = max_bufs;
	for (unsigned long i = 0; i < max_bufs; i++) {
		pthread_mutex_init(&wl->slots[i].lock, NULL);
		wl->free_slots[max_bufs - 1 - i] = i;
	}
	wl->nr_free_slots = max_bufs;

	if (wl->mode.dma != FRAG_NODMA && s->device_threads) {
		wl->threads = calloc(s->device_threads, sizeof(*wl->threads));
		if (!wl->threads)
			return -ENOMEM;
		for (unsigned int t = 0; t < s->device_threads; t++) {
			wl->threads[t].wl = wl;
			wl->threads[t].idx = t;
			err = pthread_create(&wl->threads[t].tid, NULL, dev_thread_fn,
					     &wl->threads[t]);
			if (err) {
				fprintf(stderr, "frag: pthread_create: %s\n", strerror(err));
				return -err;
			}
			wl->nr_threads++;
		}
	}
	return 0;
}

static void stop_threads(struct wl *wl)
{
	atomic_store_explicit(&wl->stop, true, memory_order_release);
	for (unsigned int t = 0; t < wl->nr_threads; t++) {
		struct frag_latency *l = &wl->threads[t].lat, *r = &wl->r->lat;

		pthread_join(wl->threads[t].tid, NULL);
		r->n += l->n;
		for (int b = 0; b < FRAG_LAT_BUCKETS; b++)
			r->bucket[b] += l->bucket[b];
		if (l->max_ns > r->max_ns)
			r->max_ns = l->max_ns;
	}
	wl->nr_threads = 0;
}

/* Everything back, in the reverse order. Return: 0 or the first error. */
static int wl_teardown(struct wl *wl)
{
	int err = 0, e;

	stop_threads(wl);
	free(wl->threads);
	holds_release(wl);
	while (wl->pins.n)
		pin_free(wl, wl->pins.n - 1);
	for (unsigned long i = 0; wl->slots && i < atomic_load(&wl->slots_hw); i++) {
		if (wl->slots[i].live) {
			e = dma_free(wl, i);
			err = err ? err : e;
		}
	}
	while (wl->anon.n)
		anon_free(wl, wl->anon.n - 1);
	while (wl->files.n)
		file_free(wl, wl->files.n - 1);
	while (wl->unmov.n)
		kobj_free(wl, &wl->unmov, wl->unmov.n - 1, K_UNMOV);
	while (wl->unmov_long.n)
		kobj_free(wl, &wl->unmov_long, wl->unmov_long.n - 1, K_UNMOV);
	while (wl->recl.n)
		kobj_free(wl, &wl->recl, wl->recl.n - 1, K_RECL);
	for (unsigned int p = 0; wl->mm && p < wl->nr_mm; p++)
		if (wl->mm[p])
			iom_mm_destroy(wl->mm[p]);
	if (wl->guest)
		iom_mm_destroy(wl->guest);
	if (wl->filler)
		iom_mm_destroy(wl->filler);
	for (unsigned int d = 0; d < wl->nr_dev; d++) {
		if (!wl->dev[d])
			continue;
		iom_iommu_detach_device(wl->domain, wl->dev[d]);
		e = iom_device_destroy(wl->dev[d]);
		err = err ? err : e;
	}
	if (wl->domain) {
		e = iom_iommu_domain_free(wl->domain);
		err = err ? err : e;
	}
	if (wl->iommu) {
		e = iom_iommu_destroy(wl->iommu);
		err = err ? err : e;
	}
	iom_rcu_barrier();
	if (wl->m) {
		if (iom_machine_bug_count(wl->m)) {
			fprintf(stderr, "frag: the machine reported %lu bugs\n",
				iom_machine_bug_count(wl->m));
			err = err ? err : -EIO;
		}
		iom_machine_destroy(wl->m);
	}
	for (unsigned long i = 0; wl->slots && i < wl->nr_slots; i++)
		pthread_mutex_destroy(&wl->slots[i].lock);
	free(wl->slots);
	free(wl->free_slots);
	free(wl->mm);
	free(wl->anon_pending);
	free(wl->pfn_cls);
	free(wl->anon.a);
	free(wl->files.a);
	free(wl->unmov.a);
	free(wl->unmov_long.a);
	free(wl->recl.a);
	free(wl->pins.a);
	free(wl->holds.a);
	return err;
}

/* ---- the phases ---------------------------------------------------------- */

static void clear_full(struct wl *wl)
{
	memset(wl->full, 0, sizeof(wl->full));
}

static void kcompactd_step(struct wl *wl)
{
	if (!wl->mode.compaction)
		return;
	for (unsigned int nid = 0; nid < iom_nr_nodes(wl->m); nid++)
		iom_kcompactd_run(wl->m, (int)nid, 0);
}

/*
 * dma_into_holes: a process faults in every page it can get (reclaim
 * makes room from the page cache as it goes), then unmaps single pages
 * picked at random, a tenth more than the DMA buffers need: the holes are
 * spread over every pageblock it filled, as in seed 000's slides.
 */
static int fill_and_punch(struct wl *wl)
{
	unsigned long want, holes = 0, k, done = 0;
	bool full = false;
	struct vec chunks = { .esz = sizeof(uint64_t) };
	double p;
	int err;

	/*
	 * wl->filler was created with the others (its page table's root
	 * needs a page, and memory is full by now). 2 MiB mmaps, each its own anon_vma: a hole splits its VMA, and a
	 * VMA list of one anon_vma is what rmap walks for each page
	 * migrated (a list here, the kernel's interval tree is not modelled).
	 */
	while (!full) {
		uint64_t addr, *c;

		err = iom_mmap(wl->filler, 0, FILLER_CHUNK * PG,
			       IOM_PROT_READ | IOM_PROT_WRITE,
			       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0, &addr);
		if (err)
			break;
		c = vec_push(&chunks);
		if (!c) {
			err = -ENOMEM;
			goto out;
		}
		*c = addr;
		for (k = 0; k < FILLER_CHUNK; k++) {
			uint64_t v = done + k;

			if (iom_write(wl->filler, addr + k * PG, &v, sizeof(v))) {
				full = true;
				break;
			}
		}
		done += k;
	}
	want = (unsigned long)(1.1 * wl->s->dma_share * (double)wl->nr_pages);
	p = done ? (double)want / (double)done : 0.0;
	err = 0;
	for (size_t i = 0; i < chunks.n && holes < want; i++) {
		uint64_t addr = *(uint64_t *)vec_at(&chunks, i);

		for (k = 0; k < FILLER_CHUNK && holes < want; k++) {
			if (rng_unit(&wl->rng) >= p)
				continue;
			err = iom_munmap(wl->filler, addr + k * PG, PG);
			if (err)
				goto out;
			holes++;
		}
	}
out:
	free(chunks.a);
	return err;
}

static int phase_fill(struct wl *wl)
{
	unsigned int all = (1u << NR_KINDS) - 1;

	wl->phase = 0;
	/*
	 * Pins of guest RAM meant for CMA come once the rest is in place (CMA
	 * is used once normal memory runs short); late DMA buffers come with
	 * the load, into memory already full.
	 */
	if (wl->s->pin_in_cma)
		all &= ~(1u << K_PIN);
	if (wl->s->dma_late)
		all &= ~(1u << K_DMA);
	topup(wl, all);
	if (wl->s->pin_in_cma)
		topup(wl, 1u << K_PIN);
	/* the same holes in every mode, the ideal's too: only who takes them differs */
	if (wl->s->dma_into_holes) {
		int err = fill_and_punch(wl);

		if (err)
			return err;
		topup(wl, 1u << K_DMA);
	}
	clear_full(wl);
	return sample(wl, FRAG_AT_FILLED);
}

/*
 * Reclaim drops clean page cache under pressure: what the page cache holds
 * is what the LRU lists say, and the top-up writes new files to make up.
 */
static void resync_file(struct wl *wl)
{
	unsigned long n = 0;

	for (unsigned int nid = 0; nid < iom_nr_nodes(wl->m); nid++)
		n += iom_lru_size(wl->m, (int)nid, IOM_LRU_INACTIVE_FILE) +
		     iom_lru_size(wl->m, (int)nid, IOM_LRU_ACTIVE_FILE);
	wl->used[K_FILE] = n;
}

/* The DMA target of this step: a triangle wave around dma_share. */
static void dma_target(struct wl *wl)
{
	const struct frag_scenario *s = wl->s;
	double f = 1.0;

	if (wl->mode.dma == FRAG_NODMA)
		return;
	if (s->dma_burst > 0 && s->dma_burst_period) {
		unsigned int per = s->dma_burst_period, ph = wl->step % per;
		double tri = ph < per / 2 ? (double)ph / (per / 2.0) :
				(double)(per - ph) / (per / 2.0);	/* 0..1..0 */

		f = 1.0 - s->dma_burst + 2.0 * s->dma_burst * tri;
	}
	wl->target[K_DMA] = (unsigned long)(f * s->dma_share * (double)wl->nr_pages);
}

static int phase_load(struct wl *wl)
{
	const struct frag_scenario *s = wl->s;
	int err;

	wl->phase = 1;
	for (unsigned int k = 0; k < s->nr_orders; k++)
		wl->load_left[k] = (unsigned long)(s->highalloc_share *
						   (double)(wl->nr_pages >> s->orders[k]));
	for (wl->step = 1; wl->step <= s->steps; wl->step++) {
		dma_target(wl);
		resync_file(wl);
		err = churn(wl);
		if (err)
			return err;
		topup(wl, (1u << NR_KINDS) - 1);
		clear_full(wl);
		high_load_step(wl);
		if (wl->cma && s->cma_allocs_per_step && !(wl->step % CMA_EVERY))
			cma_round(wl, s->cma_allocs_per_step, &wl->r->cma_load);
		kcompactd_step(wl);
		/* the last step is always sampled, with the load's end map */
		if (!(wl->step % s->sample_every) || wl->step == s->steps) {
			err = sample(wl, wl->step == s->steps ? FRAG_AT_LOAD_END :
								FRAG_NR_MOMENTS);
			if (err)
				return err;
		}
		progress(wl, 1);
	}
	wl->step = s->steps;
	wl->r->unmovable_blocks_load = wl->r->samples[wl->r->nr_samples - 1].unmovable_blocks;
	wl->r->pages_unmovable = wl->used[K_UNMOV] + wl->used[K_RECL];
	wl->r->pages_dma = wl->used[K_DMA];
	wl->r->pages_pinned = wl->used[K_PIN];
	holds_release(wl);
	return 0;
}

/* rest_share of memory at @order (index @k), held, then released. */
static void rest_order(struct wl *wl, unsigned int k)
{
	unsigned int order = wl->s->orders[k];
	unsigned long n = (unsigned long)(wl->s->rest_share *
					  (double)(wl->nr_pages >> order));
	unsigned long i, fails = 0;

	for (i = 0; i < n; i++) {
		wl->r->rest[k].attempts++;
		if (fails >= REST_GIVE_UP)
			continue;	/* counted as failed: see the file comment */
		if (high_attempt(wl, order)) {
			wl->r->rest[k].successes++;
			fails = 0;
		} else {
			fails++;
		}
	}
	holds_release(wl);
}

static int phase_rest(struct wl *wl)
{
	const struct frag_scenario *s = wl->s;
	unsigned long mixed;
	int err;

	wl->phase = 2;
	/* the load goes: processes exit, short-lived objects are freed */
	while (wl->anon.n)
		anon_free(wl, wl->anon.n - 1);
	if (wl->filler) {
		iom_mm_destroy(wl->filler);
		wl->filler = NULL;
	}
	while (wl->unmov.n)
		kobj_free(wl, &wl->unmov, wl->unmov.n - 1, K_UNMOV);
	for (unsigned long i = 0; i < atomic_load(&wl->slots_hw); i++) {
		if (wl->slots[i].live && !wl->slots[i].longlived) {
			err = dma_free(wl, i);
			if (err)
				return err;
		}
	}
	wl->step++;
	err = sample(wl, FRAG_AT_REST);
	if (err)
		return err;
	if (wl->mode.compaction) {
		for (unsigned int nid = 0; nid < iom_nr_nodes(wl->m); nid++)
			iom_compact_node(wl->m, (int)nid);
	}
	snapshot(wl, FRAG_AT_REST_COMPACTED, &wl->r->unmovable_blocks_rest, &mixed);
	progress(wl, 1);
	for (unsigned int k = 0; k < s->nr_orders; k++) {
		rest_order(wl, k);
		progress(wl, 1);
	}
	cma_round(wl, s->cma_allocs_at_rest, &wl->r->cma_rest);
	wl->step++;
	return sample(wl, FRAG_NR_MOMENTS);
}

static void copy_events(struct wl *wl)
{
	struct frag_result *r = wl->r;
	struct iom_machine *m = wl->m;

	r->compact_migrate_scanned = iom_vm_event_count(m, IOM_COMPACTMIGRATE_SCANNED) +
				     iom_vm_event_count(m, IOM_KCOMPACTD_MIGRATE_SCANNED);
	r->compact_free_scanned = iom_vm_event_count(m, IOM_COMPACTFREE_SCANNED) +
				  iom_vm_event_count(m, IOM_KCOMPACTD_FREE_SCANNED);
	r->compact_isolated = iom_vm_event_count(m, IOM_COMPACTISOLATED);
	r->compact_stall = iom_vm_event_count(m, IOM_COMPACTSTALL);
	r->compact_fail = iom_vm_event_count(m, IOM_COMPACTFAIL);
	r->compact_success = iom_vm_event_count(m, IOM_COMPACTSUCCESS);
	r->kcompactd_wake = iom_vm_event_count(m, IOM_KCOMPACTD_WAKE);
	r->pgmigrate_success = iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS);
	r->pgmigrate_fail = iom_vm_event_count(m, IOM_PGMIGRATE_FAIL);
}

/* --trace: ring size and where the next run exports (main thread only). */
static size_t trace_events;
static const char *trace_path;

void frag_set_trace(size_t events, const char *path)
{
	trace_events = events;
	trace_path = path;
}

int frag_run(const struct frag_scenario *s, const struct frag_mode *mode,
	     uint64_t seed, frag_progress_fn progress_fn, void *progress_priv,
	     struct frag_result *r)
{
	struct iom_machine_memcost mc;
	struct rusage ru;
	struct wl *wl;
	bool tracing;
	int err, err2;

	if (!s || !mode || !r || mode->dma >= FRAG_NR_DMA_MODES)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->mode = *mode;
	frag_mode_name(mode, r->mode_name, sizeof(r->mode_name));
	wl = calloc(1, sizeof(*wl));
	if (!wl)
		return -ENOMEM;
	wl->s = s;
	wl->mode = *mode;
	wl->r = r;
	wl->rng = seed * 0x9E3779B97F4A7C15ULL + 0x1234567;
	if (!wl->rng)
		wl->rng = 1;
	wl->progress = progress_fn;
	wl->progress_priv = progress_priv;
	wl->work_total = 1 + s->steps + 1 + s->nr_orders;
	wl->t0_wall = now_ns(CLOCK_MONOTONIC);
	wl->t0_cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID);

	tracing = trace_events && trace_path;
	err = wl_build(wl);
	if (!err && tracing) {
		err = iom_trace_enable(wl->m, trace_events);
		if (err)
			fprintf(stderr, "frag: iom_trace_enable(%zu): %s\n", trace_events,
				strerror(-err));
	}
	if (!err) {
		r->nr_blocks = wl->nr_pages >> iom_pageblock_order(wl->m);
		err = phase_fill(wl);
		progress(wl, 1);
	}
	if (!err)
		err = phase_load(wl);
	if (!err)
		err = phase_rest(wl);
	if (!err && tracing) {
		err = iom_trace_export_json_path(wl->m, trace_path);
		if (err)
			fprintf(stderr, "frag: writing the trace %s: %s\n", trace_path,
				strerror(-err));
	}
	if (wl->m) {
		r->cma_busy = atomic_load(&wl->pfns_busy);
		iom_machine_memcost(wl->m, &mc);
		r->metadata_bytes = mc.metadata_peak;
		copy_events(wl);
	}
	err2 = wl_teardown(wl);
	err = err ? err : err2;
	r->wall_s = (double)(now_ns(CLOCK_MONOTONIC) - wl->t0_wall) / 1e9;
	r->cpu_s = (double)(now_ns(CLOCK_PROCESS_CPUTIME_ID) - wl->t0_cpu) / 1e9;
	if (!getrusage(RUSAGE_SELF, &ru))
		r->peak_rss_bytes = (uint64_t)ru.ru_maxrss * 1024;
	if (r->lat.lost_writes)
		fprintf(stderr, "frag: %s: %llu device writes lost\n", r->mode_name,
			r->lat.lost_writes);
	free(wl);
	if (err)
		frag_result_free(r);
	return err;
}

void frag_result_free(struct frag_result *r)
{
	if (!r)
		return;
	free(r->samples);
	r->samples = NULL;
	r->nr_samples = 0;
	for (int i = 0; i < FRAG_NR_MOMENTS; i++) {
		free(r->maps[i].cls);
		r->maps[i].cls = NULL;
		r->have_map[i] = false;
	}
}
