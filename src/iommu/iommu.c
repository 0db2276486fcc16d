/* SPDX-License-Identifier: MIT */
/*
 * The IOMMU core: drivers/iommu/iommu.c (domains, attach/detach,
 * iommu_map/unmap/iova_to_phys, report_iommu_fault), the hardware side an
 * IOMMU driver talks to (arm-smmu-v3.c's TLB invalidation and its
 * completion wait, the stall model of its event queue), seed 000's
 * iommu_block/unblock, and the device side of a migration (transactions
 * that wait for a blocked range, write faults on fault-on-write entries).
 * Seed 000's iommu_migrate with its TODO (per-range and non-blocking
 * migration) is in iommu-migrate.c; the IOVA + flush-queue part of
 * drivers/iommu/dma-iommu.c is in iommu-dma.c. What the three share is in
 * iommu-internal.h.
 *
 * Simplified: no buses, groups, default domains or driver probing: a
 * device is made behind one IOMMU and attached by hand. One page-table
 * format (io-pgtable.c). Faults are delivered synchronously in the
 * device's thread (the stall model), not through an event queue.
 *
 * The transaction / invalidation contract is in include/iommig/iommu.h
 * and docs/locking.md: a transaction is "in flight" in a per-thread slot
 * of its device from before it translates until after its last byte; an
 * invalidation drops IOTLB entries, then waits for every slot of the
 * domain's devices that was in flight. The two sides meet with
 * sequentially consistent fences (Dekker's pattern): either the
 * transaction sees the cleared entry, or the invalidation sees the slot.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iommig/iommu.h>
#include <iommig/mm.h>
#include <iommig/rcu.h>

#include "iommu-internal.h"
#include "iommu-priv.h"

#include "../core/debug.h"
#include "../core/list.h"
#include "../core/machine.h"
#include "../core/percpu.h"
#include "../core/rcu.h"
#include "../core/trace.h"

#define IOMMU_MAX_DOMAINS	65536U	/* 16-bit domain ids, 0 unused */
#define FAULT_MAX_RETRIES	16	/* handler said "fixed" without fixing */
#define SPIN_BEFORE_SLEEP	2000

/* ---- structures --------------------------------------------------------- */

/* What one thread did on one device; written only by that thread. */
struct dev_slot {
	_Atomic unsigned long seq;	/* odd: a transaction in flight */
	_Atomic uint64_t transactions, bytes_read, bytes_written;
	_Atomic uint64_t hits, misses, walks, stale_hits, stale_freed_hits;
} __attribute__((aligned(64)));


/* Install @made in @slot unless another thread's won: that one is kept. */
static void *dma_state_install(struct dma_state_slot *slot, void *made,
			       int (*release)(void *state))
{
	void *expected = NULL;

	if (!made)
		return NULL;
	if (!atomic_compare_exchange_strong(&slot->state, &expected, made)) {
		release(made);
		return expected;
	}
	slot->release = release;
	return made;
}

/* At the owner's end: 0 when released (or none), else the owner's error. */
static int dma_state_release(struct dma_state_slot *slot)
{
	void *state = atomic_load(&slot->state);

	if (state && slot->release(state))
		return -EBUSY;
	atomic_store(&slot->state, NULL);
	return 0;
}

struct iom_device {
	struct iom_iommu *iommu;
	char name[64];
	struct iom_iommu_domain *_Atomic domain;
	struct list_head domain_node;	/* domain->devices, under dev_lock */
	struct list_head iommu_node;	/* iommu->devices, under iommu->lock */
	struct dev_slot *_Atomic slots[IOM_DEVICE_MAX_THREADS];
	_Atomic unsigned int nr_slots;	/* high-water mark of slot indices + 1 */
	_Atomic uint64_t failed, faults, migrate_faults;
	_Atomic uint64_t stalls, stall_ns_total, stall_ns_max;
	/* the DMA API's state of the device (struct device's dma_* fields) */
	struct dma_state_slot dma_state;
};


uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * A full barrier. TSan does not model fences; its builds use a
 * sequentially consistent read-modify-write instead (a full barrier on
 * the machines we run on), and see the release/acquire pairs that carry
 * the data.
 */
#if defined(__SANITIZE_THREAD__)
static atomic_int tsan_mb;
#define smp_mb() atomic_fetch_add_explicit(&tsan_mb, 0, memory_order_seq_cst)
#else
#define smp_mb() atomic_thread_fence(memory_order_seq_cst)
#endif

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---- thread ids: the index of a thread's slot --------------------------- */

static atomic_ulong tid_map[IOM_DEVICE_MAX_THREADS / 64];
static IOM_TLS int dma_tid = -1;
static pthread_key_t tid_key;
static pthread_once_t tid_once = PTHREAD_ONCE_INIT;

static void tid_release(void *p)
{
	int id = (int)(intptr_t)p - 1;

	atomic_fetch_and(&tid_map[id / 64], ~(1UL << (id % 64)));
	dma_tid = -1;
}

static void tid_key_init(void)
{
	IOM_CHECK_PTHREAD(pthread_key_create(&tid_key, tid_release));
}

/* A slot index for the calling thread, freed when it exits; -1 if none left. */
int dma_tid_get(void)
{
	if (likely(dma_tid >= 0))
		return dma_tid;
	pthread_once(&tid_once, tid_key_init);
	for (int w = 0; w < IOM_DEVICE_MAX_THREADS / 64; w++) {
		unsigned long v = atomic_load(&tid_map[w]);

		while (~v) {
			int b = __builtin_ctzl(~v);

			if (atomic_compare_exchange_weak(&tid_map[w], &v, v | (1UL << b))) {
				dma_tid = w * 64 + b;
				pthread_setspecific(tid_key, (void *)(intptr_t)(dma_tid + 1));
				return dma_tid;
			}
		}
	}
	return -1;
}

static struct dev_slot *dev_slot(struct iom_device *dev, int tid)
{
	struct dev_slot *s = atomic_load_explicit(&dev->slots[tid], memory_order_acquire);
	struct dev_slot *expected = NULL;
	unsigned int hw;

	if (likely(s))
		return s;
	s = aligned_alloc(64, sizeof(*s));
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	if (!atomic_compare_exchange_strong(&dev->slots[tid], &expected, s)) {
		free(s);
		return expected;
	}
	hw = atomic_load(&dev->nr_slots);
	while (hw < (unsigned int)tid + 1 &&
	       !atomic_compare_exchange_weak(&dev->nr_slots, &hw, (unsigned int)tid + 1))
		;
	return s;
}

/* Enter the in-flight state: later loads cannot pass this (Dekker). */
static inline void slot_enter(struct dev_slot *s)
{
	atomic_store_explicit(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	smp_mb();
}

static inline void slot_leave(struct dev_slot *s)
{
	atomic_store_explicit(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1,
			      memory_order_release);
}

static inline void slot_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* ---- the completion wait ----------------------------------------------- */

static void dev_wait_inflight(struct iom_device *dev, uint64_t *waits)
{
	unsigned int n = atomic_load_explicit(&dev->nr_slots, memory_order_acquire);

	for (unsigned int i = 0; i < n; i++) {
		struct dev_slot *s = atomic_load_explicit(&dev->slots[i], memory_order_acquire);
		unsigned long seq;
		int spins = 0;

		if (!s)
			continue;
		seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (!(seq & 1))
			continue;
		(*waits)++;
		while (atomic_load_explicit(&s->seq, memory_order_acquire) == seq) {
			if (++spins > 64)
				sched_yield();
			else
				cpu_relax();
		}
	}
}

/*
 * Wait until no transaction of @d's devices that may have used a
 * translation dropped before the call is still in flight (the completion
 * of an invalidation: CMD_SYNC).
 */
void domain_wait_inflight(struct iom_iommu_domain *d)
{
	uint64_t waits = 0;

	smp_mb();
	pthread_mutex_lock(&d->dev_lock);
	for (struct list_head *p = d->devices.next; p != &d->devices; p = p->next)
		dev_wait_inflight(list_entry(p, struct iom_device, domain_node), &waits);
	pthread_mutex_unlock(&d->dev_lock);
	atomic_fetch_add_explicit(&d->iommu->inv_syncs, 1, memory_order_relaxed);
	if (waits)
		atomic_fetch_add_explicit(&d->iommu->inv_sync_waits, waits,
					  memory_order_relaxed);
}

void domain_inv_range(struct iom_iommu_domain *d, unsigned long start,
		      unsigned long last)
{
	iom_iotlb_inv_range(&d->iommu->tlb, d->id, start, last);
}

/* ---- io-pgtable's flush ops -------------------------------------------- */

static void iommu_tlb_flush_all(void *cookie)
{
	struct iom_iommu_domain *d = cookie;

	iom_iotlb_inv_domain(&d->iommu->tlb, d->id);
}

static void iommu_tlb_flush_walk(unsigned long iova, size_t size,
				 size_t granule, void *cookie)
{
	/* no walk cache is modelled; the leaves were gathered */
	(void)iova;
	(void)size;
	(void)granule;
	(void)cookie;
}

static void iommu_tlb_add_page(struct iom_iommu_iotlb_gather *gather,
			       unsigned long iova, size_t granule, void *cookie)
{
	(void)cookie;
	iom_iommu_iotlb_gather_add_range(gather, iova, granule);
	if (granule > gather->pgsize)
		gather->pgsize = granule;
}

static void iommu_iotlb_sync_cb(struct iom_iommu_iotlb_gather *gather, void *cookie)
{
	iom_iommu_iotlb_sync(cookie, gather);
}

static const struct iom_iommu_flush_ops iommu_flush_ops = {
	.tlb_flush_all = iommu_tlb_flush_all,
	.tlb_flush_walk = iommu_tlb_flush_walk,
	.tlb_add_page = iommu_tlb_add_page,
	.iotlb_sync = iommu_iotlb_sync_cb,
};

/* ---- the unit ----------------------------------------------------------- */

void iom_iommu_config_init(struct iom_iommu_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->name = "iommu";
	cfg->iotlb_entries = 2048;
	cfg->iotlb_ways = 8;
	cfg->iotlb_replacement = IOM_IOTLB_LRU;
	cfg->fq_size = 256;
	cfg->fq_timeout_us = 10000;
	cfg->pgsize_bitmap = (1UL << 12) | (1UL << 21) | (1UL << 30);
	cfg->ias = 48;
	cfg->oas = 48;
}

static int check_config(struct iom_machine *m, struct iom_iommu_config *c)
{
	struct iom_iommu_config d;

	iom_iommu_config_init(&d);
	if (!c->name)
		c->name = d.name;
	if (!c->iotlb_entries)
		c->iotlb_entries = d.iotlb_entries;
	if (!c->iotlb_ways)
		c->iotlb_ways = d.iotlb_ways;
	if (!c->fq_size)
		c->fq_size = d.fq_size;
	if (!c->fq_timeout_us)
		c->fq_timeout_us = d.fq_timeout_us;
	if (!c->pgsize_bitmap)
		c->pgsize_bitmap = d.pgsize_bitmap;
	if (!c->ias)
		c->ias = d.ias;
	if (!c->oas)
		c->oas = d.oas;
	if (c->iotlb_entries % c->iotlb_ways) {
		iom_warn(m, "iommu: iotlb_entries %u is not a multiple of iotlb_ways %u",
			 c->iotlb_entries, c->iotlb_ways);
		return -EINVAL;
	}
	if (c->iotlb_entries / c->iotlb_ways & (c->iotlb_entries / c->iotlb_ways - 1)) {
		iom_warn(m, "iommu: iotlb_entries / iotlb_ways = %u sets is not a power of two",
			 c->iotlb_entries / c->iotlb_ways);
		return -EINVAL;
	}
	if (c->iotlb_entries > (1U << 24)) {
		iom_warn(m, "iommu: iotlb_entries %u is above 2^24", c->iotlb_entries);
		return -EINVAL;
	}
	if (c->iotlb_replacement != IOM_IOTLB_LRU &&
	    c->iotlb_replacement != IOM_IOTLB_RANDOM) {
		iom_warn(m, "iommu: unknown iotlb_replacement %d", (int)c->iotlb_replacement);
		return -EINVAL;
	}
	if (c->fq_size < 2 || c->fq_size > 65536) {
		iom_warn(m, "iommu: fq_size %u is outside 2..65536", c->fq_size);
		return -EINVAL;
	}
	if (!(c->pgsize_bitmap & (1UL << 12))) {
		iom_warn(m, "iommu: pgsize_bitmap %#lx lacks 4 KiB", c->pgsize_bitmap);
		return -EINVAL;
	}
	if (c->ias < 32 || c->ias > 48 || c->oas < 32 || c->oas > 48) {
		iom_warn(m, "iommu: ias %u / oas %u outside 32..48", c->ias, c->oas);
		return -EINVAL;
	}
	return 0;
}

int iom_iommu_create(struct iom_machine *m, const struct iom_iommu_config *cfg,
		     struct iom_iommu **out)
{
	struct iom_iommu_config c;
	struct iom_iommu *iommu;
	int ret;

	if (!m || !out)
		return -EINVAL;
	if (cfg)
		c = *cfg;
	else
		memset(&c, 0, sizeof(c));
	ret = check_config(m, &c);
	if (ret)
		return ret;
	iommu = calloc(1, sizeof(*iommu));
	if (!iommu)
		return -ENOMEM;
	iommu->domid_map = calloc(IOMMU_MAX_DOMAINS / 64, sizeof(unsigned long));
	if (!iommu->domid_map || iom_iotlb_init(&iommu->tlb, c.iotlb_entries,
						c.iotlb_ways, c.iotlb_replacement)) {
		free(iommu->domid_map);
		free(iommu);
		return -ENOMEM;
	}
	iommu->domid_map[0] = 1;	/* id 0 is never used */
	iommu->m = m;
	iommu->cfg = c;
	snprintf(iommu->name, sizeof(iommu->name), "%s", c.name);
	iommu->cfg.name = iommu->name;
	iommu->pgcfg.pgsize_bitmap = c.pgsize_bitmap;
	iommu->pgcfg.ias = c.ias;
	iommu->pgcfg.oas = c.oas;
	iommu->pgcfg.tlb = &iommu_flush_ops;
	pthread_mutex_init(&iommu->lock, NULL);
	pthread_cond_init(&iommu->fq_cv, NULL);
	INIT_LIST_HEAD(&iommu->domains);
	INIT_LIST_HEAD(&iommu->devices);
	*out = iommu;
	return 0;
}

int iom_iommu_destroy(struct iom_iommu *iommu)
{
	if (!iommu)
		return 0;
	pthread_mutex_lock(&iommu->lock);
	if (iommu->nr_domains || iommu->nr_devices) {
		iom_warn(iommu->m, "iommu %s: destroy with %u domains and %u devices left",
			 iommu->name, iommu->nr_domains, iommu->nr_devices);
		pthread_mutex_unlock(&iommu->lock);
		return -EBUSY;
	}
	iommu->fq_stop = true;
	pthread_cond_broadcast(&iommu->fq_cv);
	pthread_mutex_unlock(&iommu->lock);
	if (iommu->fq_thread_started)
		pthread_join(iommu->fq_thread, NULL);
	iom_iotlb_destroy(&iommu->tlb);
	pthread_mutex_destroy(&iommu->lock);
	pthread_cond_destroy(&iommu->fq_cv);
	free(iommu->domid_map);
	free(iommu);
	return 0;
}

static void add_slot_stats(struct iom_iommu_stats *st, struct iom_device *dev)
{
	unsigned int n = atomic_load(&dev->nr_slots);

	for (unsigned int i = 0; i < n; i++) {
		struct dev_slot *s = atomic_load(&dev->slots[i]);

		if (!s)
			continue;
		st->iotlb_hits += atomic_load_explicit(&s->hits, memory_order_relaxed);
		st->iotlb_misses += atomic_load_explicit(&s->misses, memory_order_relaxed);
		st->walks += atomic_load_explicit(&s->walks, memory_order_relaxed);
		st->stale_hits += atomic_load_explicit(&s->stale_hits, memory_order_relaxed);
		st->stale_freed_hits += atomic_load_explicit(&s->stale_freed_hits,
							     memory_order_relaxed);
	}
}

int iom_iommu_get_stats(struct iom_iommu *iommu, struct iom_iommu_stats *st)
{
	struct iom_iotlb *t;

	if (!iommu || !st)
		return -EINVAL;
	t = &iommu->tlb;
	pthread_mutex_lock(&iommu->lock);
	*st = iommu->dead;
	for (struct list_head *p = iommu->devices.next; p != &iommu->devices; p = p->next)
		add_slot_stats(st, list_entry(p, struct iom_device, iommu_node));
	pthread_mutex_unlock(&iommu->lock);
	st->iotlb_evictions = atomic_load(&t->evictions);
	st->iotlb_invalidated = atomic_load(&t->invalidated);
	st->inv_page = atomic_load(&t->inv_page);
	st->inv_range = atomic_load(&t->inv_range);
	st->inv_domain = atomic_load(&t->inv_domain);
	st->inv_all = atomic_load(&t->inv_all);
	st->inv_syncs = atomic_load(&iommu->inv_syncs);
	st->inv_sync_waits = atomic_load(&iommu->inv_sync_waits);
	st->fq_queued = atomic_load(&iommu->fq_queued);
	st->fq_flushes = atomic_load(&iommu->fq_flushes);
	st->fq_timeouts = atomic_load(&iommu->fq_timeouts);
	return 0;
}

void iom_iommu_invalidate_all(struct iom_iommu *iommu)
{
	if (!iommu)
		return;
	iom_iotlb_inv_all(&iommu->tlb);
	pthread_mutex_lock(&iommu->lock);
	for (struct list_head *p = iommu->domains.next; p != &iommu->domains; p = p->next)
		domain_wait_inflight(list_entry(p, struct iom_iommu_domain, node));
	pthread_mutex_unlock(&iommu->lock);
}

void iom_iommu_set_skip_invalidation(struct iom_iommu *iommu, bool skip)
{
	atomic_store(&iommu->tlb.skip_invalidation, skip);
}

/* ---- devices ------------------------------------------------------------ */

int iom_device_create(struct iom_iommu *iommu, const char *name,
		      struct iom_device **out)
{
	struct iom_device *dev;

	if (!iommu || !name || !out)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->iommu = iommu;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	INIT_LIST_HEAD(&dev->domain_node);
	pthread_mutex_lock(&iommu->lock);
	list_add_tail(&dev->iommu_node, &iommu->devices);
	iommu->nr_devices++;
	pthread_mutex_unlock(&iommu->lock);
	*out = dev;
	return 0;
}

int iom_device_destroy(struct iom_device *dev)
{
	struct iom_iommu *iommu;

	if (!dev)
		return 0;
	iommu = dev->iommu;
	if (atomic_load(&dev->domain)) {
		iom_warn(iommu->m, "iommu: device %s destroyed while attached", dev->name);
		return -EBUSY;
	}
	if (dma_state_release(&dev->dma_state))
		return -EBUSY;	/* the DMA layer said why */
	pthread_mutex_lock(&iommu->lock);
	add_slot_stats(&iommu->dead, dev);
	list_del(&dev->iommu_node);
	iommu->nr_devices--;
	pthread_mutex_unlock(&iommu->lock);
	for (unsigned int i = 0; i < IOM_DEVICE_MAX_THREADS; i++)
		free(atomic_load(&dev->slots[i]));
	free(dev);
	return 0;
}

const char *iom_dev_name(const struct iom_device *dev)
{
	return dev ? dev->name : "(null)";
}

struct iom_machine *iom_device_machine(const struct iom_device *dev)
{
	return dev ? dev->iommu->m : NULL;
}

void *iom_device_dma_state(struct iom_device *dev, void *(*make)(struct iom_device *dev),
			   int (*release)(void *state))
{
	void *state = atomic_load_explicit(&dev->dma_state.state, memory_order_acquire);

	if (state || !make)
		return state;
	return dma_state_install(&dev->dma_state, make(dev), release);
}

struct iom_iommu_domain *iom_iommu_get_domain_for_dev(struct iom_device *dev)
{
	return dev ? atomic_load(&dev->domain) : NULL;
}

int iom_device_get_stats(struct iom_device *dev, struct iom_device_stats *st)
{
	unsigned int n;

	if (!dev || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	n = atomic_load(&dev->nr_slots);
	for (unsigned int i = 0; i < n; i++) {
		struct dev_slot *s = atomic_load(&dev->slots[i]);

		if (!s)
			continue;
		st->transactions += atomic_load_explicit(&s->transactions, memory_order_relaxed);
		st->bytes_read += atomic_load_explicit(&s->bytes_read, memory_order_relaxed);
		st->bytes_written += atomic_load_explicit(&s->bytes_written, memory_order_relaxed);
	}
	st->failed = atomic_load(&dev->failed);
	st->faults = atomic_load(&dev->faults);
	st->migrate_faults = atomic_load(&dev->migrate_faults);
	st->stalls = atomic_load(&dev->stalls);
	st->stall_ns_total = atomic_load(&dev->stall_ns_total);
	st->stall_ns_max = atomic_load(&dev->stall_ns_max);
	return 0;
}

/* ---- domains ------------------------------------------------------------ */

struct iom_iommu_domain *iom_iommu_domain_alloc(struct iom_iommu *iommu,
						enum iom_iommu_domain_type type)
{
	struct iom_iommu_domain *d;
	struct iom_io_pgtable_cfg pgcfg;
	unsigned int id = 0;

	if (!iommu || (type != IOM_IOMMU_DOMAIN_UNMANAGED &&
		       type != IOM_IOMMU_DOMAIN_DMA && type != IOM_IOMMU_DOMAIN_DMA_FQ)) {
		errno = EINVAL;
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	pgcfg = iommu->pgcfg;
	pgcfg.quirks = IOM_IO_PGTABLE_QUIRK_NO_WARN;
	d->pgtbl = iom_alloc_io_pgtable_ops(iommu->m, IOM_ARM_64_LPAE_S1, &pgcfg, d);
	if (!d->pgtbl) {
		int e = errno;

		free(d);
		errno = e;
		return NULL;
	}
	pthread_mutex_lock(&iommu->lock);
	for (unsigned int w = 0; w < IOMMU_MAX_DOMAINS / 64 && !id; w++)
		if (~iommu->domid_map[w]) {
			int b = __builtin_ctzl(~iommu->domid_map[w]);

			iommu->domid_map[w] |= 1UL << b;
			id = w * 64 + (unsigned int)b;
		}
	if (id) {
		list_add_tail(&d->node, &iommu->domains);
		iommu->nr_domains++;
	}
	pthread_mutex_unlock(&iommu->lock);
	if (!id) {
		iom_free_io_pgtable_ops(d->pgtbl);
		free(d);
		errno = ENOSPC;
		return NULL;
	}
	d->iommu = iommu;
	d->type = type;
	d->id = id;
	pthread_mutex_init(&d->dev_lock, NULL);
	pthread_mutex_init(&d->mig_lock, NULL);
	pthread_cond_init(&d->mig_cv, NULL);
	INIT_LIST_HEAD(&d->devices);
	INIT_LIST_HEAD(&d->migs);
	return d;
}

int iom_iommu_domain_free(struct iom_iommu_domain *d)
{
	struct iom_iommu *iommu;

	if (!d)
		return 0;
	iommu = d->iommu;
	pthread_mutex_lock(&d->dev_lock);
	if (d->nr_devices) {
		pthread_mutex_unlock(&d->dev_lock);
		iom_warn(iommu->m, "iommu: domain %u freed with %u devices attached",
			 d->id, d->nr_devices);
		return -EBUSY;
	}
	pthread_mutex_unlock(&d->dev_lock);
	if (dma_state_release(&d->dma_state))
		return -EBUSY;	/* the DMA layer said why */
	/* transactions of devices detached while they waited: let them go */
	atomic_store(&d->dying, true);
	pthread_mutex_lock(&d->mig_lock);
	mig_kick(d);
	pthread_mutex_unlock(&d->mig_lock);
	while (atomic_load(&d->waiters))
		sched_yield();
	pthread_mutex_lock(&iommu->lock);
	list_del(&d->node);
	iommu->nr_domains--;
	iommu->domid_map[d->id / 64] &= ~(1UL << (d->id % 64));
	pthread_mutex_unlock(&iommu->lock);
	/* the id may be reused: nothing of this domain stays in the IOTLB */
	if (d->iovad) {
		fq_flush_iotlb(d);
		fq_ring_free_all(d);
	}
	iom_free_io_pgtable_ops(d->pgtbl);	/* calls tlb_flush_all */
	for (unsigned int i = 0; i < IOM_DEVICE_MAX_THREADS; i++)
		free(atomic_load(&d->fq[i]));
	iom_put_iova_domain(d->iovad);
	pthread_mutex_destroy(&d->dev_lock);
	pthread_mutex_destroy(&d->mig_lock);
	pthread_cond_destroy(&d->mig_cv);
	free(d);
	return 0;
}

void *iom_iommu_domain_dma_state(struct iom_iommu_domain *d,
				 void *(*make)(struct iom_iommu_domain *d),
				 int (*release)(void *state))
{
	void *state = atomic_load_explicit(&d->dma_state.state, memory_order_acquire);

	if (state || !make)
		return state;
	return dma_state_install(&d->dma_state, make(d), release);
}

struct iom_machine *iom_iommu_domain_machine(const struct iom_iommu_domain *d)
{
	return d ? d->iommu->m : NULL;
}

unsigned int iom_iommu_domain_id(const struct iom_iommu_domain *d)
{
	return d ? d->id : 0;
}

enum iom_iommu_domain_type iom_iommu_domain_type(const struct iom_iommu_domain *d)
{
	return d ? d->type : IOM_IOMMU_DOMAIN_UNMANAGED;
}

struct iom_io_pgtable_ops *iom_iommu_domain_pgtable(struct iom_iommu_domain *d)
{
	return d ? d->pgtbl : NULL;
}

int iom_iommu_attach_device(struct iom_iommu_domain *d, struct iom_device *dev)
{
	struct iom_iommu_domain *cur = NULL;

	if (!d || !dev)
		return -EINVAL;
	if (dev->iommu != d->iommu) {
		iom_warn(d->iommu->m, "iommu: device %s is behind %s, domain %u of %s",
			 dev->name, dev->iommu->name, d->id, d->iommu->name);
		return -EINVAL;
	}
	pthread_mutex_lock(&d->dev_lock);
	if (!atomic_compare_exchange_strong(&dev->domain, &cur, d)) {
		pthread_mutex_unlock(&d->dev_lock);
		if (cur == d)
			return 0;
		iom_warn(d->iommu->m, "iommu: device %s is attached to domain %u already",
			 dev->name, cur->id);
		return -EBUSY;
	}
	list_add_tail(&dev->domain_node, &d->devices);
	d->nr_devices++;
	pthread_mutex_unlock(&d->dev_lock);
	return 0;
}

int iom_iommu_detach_device(struct iom_iommu_domain *d, struct iom_device *dev)
{
	uint64_t waits = 0;
	bool last;

	if (!d || !dev)
		return -EINVAL;
	pthread_mutex_lock(&d->dev_lock);
	if (atomic_load(&dev->domain) != d) {
		pthread_mutex_unlock(&d->dev_lock);
		iom_warn(d->iommu->m, "iommu: detach of device %s that is not attached to domain %u",
			 dev->name, d->id);
		return -EINVAL;
	}
	atomic_store(&dev->domain, NULL);
	list_del(&dev->domain_node);
	INIT_LIST_HEAD(&dev->domain_node);
	last = --d->nr_devices == 0;
	smp_mb();
	dev_wait_inflight(dev, &waits);
	pthread_mutex_unlock(&d->dev_lock);
	if (last)
		iom_iotlb_inv_domain(&d->iommu->tlb, d->id);
	return 0;
}

void iom_iommu_set_fault_handler(struct iom_iommu_domain *d,
				 iom_iommu_fault_handler_t handler, void *token)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->dev_lock);
	d->handler = handler;
	d->token = token;
	pthread_mutex_unlock(&d->dev_lock);
}

/* ---- map / unmap -------------------------------------------------------- */

int iom_iommu_map(struct iom_iommu_domain *d, unsigned long iova,
		  uint64_t paddr, size_t size, int prot)
{
	if (!d)
		return -EINVAL;
	if (!(prot & (IOM_IOMMU_READ | IOM_IOMMU_WRITE))) {
		iom_warn(d->iommu->m, "iommu_map: prot %#x grants neither read nor write", prot);
		return -EINVAL;
	}
	iom_trace(d->iommu->m, IOM_TRACE_IOMMU_MAP, 'i', d->id, iova, paddr, size);
	return iom_io_pgtable_map(d->pgtbl, iova, paddr, size, prot, IOM_GFP_KERNEL, NULL);
}

size_t iom_iommu_unmap_fast(struct iom_iommu_domain *d, unsigned long iova,
			    size_t size, struct iom_iommu_iotlb_gather *gather)
{
	size_t n;

	if (!d || !gather)
		return 0;
	n = iom_io_pgtable_unmap(d->pgtbl, iova, size, gather);
	/* the kernel's trace_unmap() sits in __iommu_unmap(), under both */
	iom_trace(d->iommu->m, IOM_TRACE_IOMMU_UNMAP, 'i', d->id, iova, size, n);
	return n;
}

void iom_iommu_iotlb_sync(struct iom_iommu_domain *d,
			  struct iom_iommu_iotlb_gather *gather)
{
	if (!d || !gather)
		return;
	if (gather->start <= gather->end)
		domain_inv_range(d, gather->start, gather->end);
	domain_wait_inflight(d);
	iom_iommu_iotlb_gather_init(gather);
}

size_t iom_iommu_unmap(struct iom_iommu_domain *d, unsigned long iova, size_t size)
{
	struct iom_iommu_iotlb_gather gather;
	size_t n;

	if (!d)
		return 0;
	iom_iommu_iotlb_gather_init(&gather);
	n = iom_io_pgtable_unmap(d->pgtbl, iova, size, &gather);
	if (n)
		iom_iommu_iotlb_sync(d, &gather);
	iom_trace(d->iommu->m, IOM_TRACE_IOMMU_UNMAP, 'i', d->id, iova, size, n);
	return n;
}

void iom_iommu_flush_iotlb_all(struct iom_iommu_domain *d)
{
	if (!d)
		return;
	iom_iotlb_inv_domain(&d->iommu->tlb, d->id);
	domain_wait_inflight(d);
}

uint64_t iom_iommu_iova_to_phys(struct iom_iommu_domain *d, unsigned long iova)
{
	if (!d)
		return 0;
	return d->pgtbl->iova_to_phys(d->pgtbl, iova);
}

/* ---- device transactions ------------------------------------------------ */

/* A log-linear histogram of stalls: 16 steps per power of two. */
#define HIST_BUCKETS	(16 + 60 * 16)

struct stall_hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t total, max;
};

static IOM_TLS struct stall_hist *cur_hist;
static IOM_TLS uint64_t last_stall_ns;

static unsigned int hist_bucket(uint64_t v)
{
	unsigned int e;

	if (v < 16)
		return (unsigned int)v;
	e = 63U - (unsigned int)__builtin_clzll(v);
	return 16 + (e - 4) * 16 + (unsigned int)((v >> (e - 4)) & 15);
}

static uint64_t hist_value(unsigned int b)
{
	unsigned int e;

	if (b < 16)
		return b;
	e = (b - 16) / 16 + 4;
	return (uint64_t)(16 + (b - 16) % 16) << (e - 4);
}

static void hist_add(struct stall_hist *h, uint64_t v)
{
	h->count[hist_bucket(v)]++;
	h->total++;
	if (v > h->max)
		h->max = v;
}

uint64_t iom_device_last_stall_ns(void)
{
	return last_stall_ns;
}

static bool ranges_hold(const struct mig_rec *rec, unsigned long iova)
{
	for (unsigned int i = 0; i < rec->nr; i++)
		if (iova >= rec->r[i].iova && iova - rec->r[i].iova < rec->r[i].size)
			return true;
	return false;
}

/* Must a transaction at @iova wait now? Called in flight. */
static bool must_wait(struct iom_iommu_domain *d, unsigned long iova)
{
	bool wait = false;

	if (atomic_load(&d->dying))
		return false;
	if (atomic_load(&d->blocked))
		return true;
	if (!atomic_load(&d->nr_blocked_ranges))
		return false;
	pthread_mutex_lock(&d->mig_lock);
	for (struct list_head *p = d->migs.next; p != &d->migs && !wait; p = p->next) {
		struct mig_rec *rec = list_entry(p, struct mig_rec, node);

		wait = atomic_load(&rec->state) == MIG_BLOCKED && ranges_hold(rec, iova);
	}
	pthread_mutex_unlock(&d->mig_lock);
	return wait;
}

/*
 * Wait, out of flight, until @iova of @d is no longer blocked. Spins
 * first (a migration's stop is short), then sleeps on the domain's
 * condition. Returns the nanoseconds waited.
 */
static void wait_unblocked(struct iom_iommu_domain *d, unsigned long iova)
{
	int spins = 0;

	while (must_wait(d, iova)) {
		if (++spins < SPIN_BEFORE_SLEEP) {
			if (spins % 16 == 0)
				sched_yield();
			else
				cpu_relax();
			continue;
		}
		pthread_mutex_lock(&d->mig_lock);
		uint64_t epoch = atomic_load(&d->mig_epoch);

		pthread_mutex_unlock(&d->mig_lock);
		if (!must_wait(d, iova))
			break;
		pthread_mutex_lock(&d->mig_lock);
		while (atomic_load(&d->mig_epoch) == epoch)
			pthread_cond_wait(&d->mig_cv, &d->mig_lock);
		pthread_mutex_unlock(&d->mig_lock);
	}
}

void mig_kick(struct iom_iommu_domain *d)
{
	atomic_fetch_add(&d->mig_epoch, 1);
	pthread_cond_broadcast(&d->mig_cv);
}

static struct mig_leaf *rec_find_leaf(struct mig_rec *rec, unsigned long iova)
{
	size_t lo = 0, hi = rec->nr_leaves;

	/* leaves are sorted by iova within a record (ranges sorted at build) */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct mig_leaf *l = &rec->leaves[mid];

		if (iova < l->iova)
			hi = mid;
		else if (iova - l->iova >= l->size)
			lo = mid + 1;
		else
			return l;
	}
	return NULL;
}

/*
 * A device write hit a fault-on-write entry of a non-blocking migration
 * (seed 000's IOMMU fault pseudocode): restore the entry, mark the leaf
 * dirty, retry. While the leaf is being copied, or the migration is in
 * its final stop, the write waits. Return: true if handled.
 */
static bool migrate_write_fault(struct iom_device *dev, struct iom_iommu_domain *d,
				unsigned long iova)
{
	int spins = 0;

	for (;;) {
		struct mig_rec *found = NULL;
		struct mig_leaf *l = NULL;
		bool busy;

		pthread_mutex_lock(&d->mig_lock);
		for (struct list_head *p = d->migs.next; p != &d->migs; p = p->next) {
			struct mig_rec *rec = list_entry(p, struct mig_rec, node);

			if (rec->mode != IOM_IOMMU_MIGRATE_NONBLOCK)
				continue;
			l = rec_find_leaf(rec, iova);
			if (l) {
				found = rec;
				break;
			}
		}
		if (!found) {
			/*
			 * Finished meanwhile: a retry finds the new entry. A
			 * migration that protects the entry again adds its
			 * record first, under this lock: so an entry still
			 * marked now has no migration, and is a real fault.
			 */
			struct iom_io_pgtable_walk_data w;
			bool marked = !iom_io_pgtable_walk(d->pgtbl, iova, &w) &&
				      (w.pte & IOM_IOPTE_SW_MIGRATE);

			pthread_mutex_unlock(&d->mig_lock);
			return !marked;
		}
		busy = atomic_load(&found->state) != MIG_COPY || atomic_load(&l->copying);
		if (atomic_load(&d->dying))
			busy = false;
		if (!busy) {
			if (atomic_load(&l->protected_)) {
				pte_restore(d, l);
				atomic_store(&l->protected_, false);
			}
			atomic_store(&l->dirty, true);
			atomic_fetch_add(&found->write_faults, 1);
			atomic_fetch_add(&dev->migrate_faults, 1);
			pthread_mutex_unlock(&d->mig_lock);
			return true;
		}
		if (++spins < SPIN_BEFORE_SLEEP) {
			pthread_mutex_unlock(&d->mig_lock);
			if (spins % 16 == 0)
				sched_yield();
			else
				cpu_relax();
			continue;
		}
		uint64_t epoch = atomic_load(&d->mig_epoch);

		while (atomic_load(&d->mig_epoch) == epoch)
			pthread_cond_wait(&d->mig_cv, &d->mig_lock);
		pthread_mutex_unlock(&d->mig_lock);
	}
}

static int report_iommu_fault(struct iom_iommu_domain *d, struct iom_device *dev,
			      unsigned long iova, int flags)
{
	iom_iommu_fault_handler_t h;
	void *token;

	atomic_fetch_add(&dev->faults, 1);
	iom_trace(d->iommu->m, IOM_TRACE_IO_PAGE_FAULT, 'i', d->id, iova, flags, 0);
	pthread_mutex_lock(&d->dev_lock);
	h = d->handler;
	token = d->token;
	pthread_mutex_unlock(&d->dev_lock);
	if (!h) {
		iom_warn(d->iommu->m, "%s: unhandled %s fault at iova %#lx (%s), domain %u",
			 dev->name, flags & IOM_IOMMU_FAULT_WRITE ? "write" : "read", iova,
			 flags & IOM_IOMMU_FAULT_NOT_PRESENT ? "no translation" : "permission",
			 d->id);
		return -ENOSYS;
	}
	return h(d, dev, iova, flags, token);
}

static inline bool paddr_in_machine(const struct iom_machine *m, uint64_t pa, size_t len)
{
	uint64_t base = (uint64_t)m->start_pfn << IOM_PAGE_SHIFT;

	return pa >= base && pa - base <= m->arena_size &&
	       len <= m->arena_size - (pa - base);
}

static inline char *paddr_to_host(const struct iom_machine *m, uint64_t pa)
{
	return m->arena + (pa - ((uint64_t)m->start_pfn << IOM_PAGE_SHIFT));
}

/* Lazy mode's window: was this hit on a translation already unmapped? */
static void check_stale_hit(struct iom_iommu_domain *d, struct dev_slot *s,
			    unsigned long iova, uint64_t pte, int level)
{
	struct iom_io_pgtable_walk_data w;
	const struct iom_machine *m = d->iommu->m;
	uint64_t pa;

	if (!iom_io_pgtable_walk(d->pgtbl, iova, &w) && w.level == level &&
	    iom_iopte_to_paddr(w.pte) == iom_iopte_to_paddr(pte))
		return;
	slot_add(&s->stale_hits, 1);
	pa = iom_iopte_to_paddr(pte) + (iova & ((1UL << IOM_IOTLB_LEVEL_SHIFT(level)) - 1));
	if (paddr_in_machine(m, pa, 1)) {
		const struct iom_page *page = m->mem_map +
			((pa >> IOM_PAGE_SHIFT) - m->start_pfn);

		if (!iom_page_ref_count(page))
			slot_add(&s->stale_freed_hits, 1);
	}
}

enum xlate_result { XLATE_OK, XLATE_FAULT, XLATE_MIGRATE_FAULT, XLATE_RETRY };

/*
 * Translate @iova for an access, in flight: IOTLB, then walk (and fill).
 * A write through a writable-clean (DBM) entry sets its dirty state as the
 * hardware does. On XLATE_FAULT *@flags says why.
 */
static enum xlate_result translate(struct iom_iommu_domain *d, struct dev_slot *s,
				   unsigned long iova, bool write,
				   uint64_t *pa, size_t *leaf_left, int *flags)
{
	struct iom_iotlb *tlb = &d->iommu->tlb;
	struct iom_iotlb_hit hit;
	struct iom_io_pgtable_walk_data w;
	uint64_t pte, gen;
	int level;

	if (iom_iotlb_lookup(tlb, d->id, iova, &hit)) {
		slot_add(&s->hits, 1);
		pte = hit.pte;
		level = hit.level;
		if (unlikely(d->type == IOM_IOMMU_DOMAIN_DMA_FQ &&
			     atomic_load_explicit(&d->fq_pending, memory_order_relaxed)))
			check_stale_hit(d, s, iova, pte, level);
		if (!write ? (pte & IOM_IOPTE_READ) : (pte & IOM_IOPTE_WRITE))
			goto ok;
		/* not allowed by the cached copy: look at the table */
	} else {
		slot_add(&s->misses, 1);
	}
	gen = iom_iotlb_gen(tlb);
	slot_add(&s->walks, 1);
	/* only a walk needs RCU: w.ptep lives in a table page */
	iom_rcu_read_lock_auto();
	if (iom_io_pgtable_walk(d->pgtbl, iova, &w)) {
		iom_rcu_read_unlock_auto();
		*flags = (write ? IOM_IOMMU_FAULT_WRITE : IOM_IOMMU_FAULT_READ) |
			 IOM_IOMMU_FAULT_NOT_PRESENT;
		return XLATE_FAULT;
	}
	pte = w.pte;
	level = w.level;
	if (write && !(pte & IOM_IOPTE_WRITE)) {
		if (pte & IOM_IOPTE_DBM) {
			uint64_t want = pte | IOM_IOPTE_WRITE;

			/* hardware dirty-state update */
			if (!atomic_compare_exchange_strong(w.ptep, &pte, want)) {
				iom_rcu_read_unlock_auto();
				return XLATE_RETRY;
			}
			pte = want;
		} else {
			iom_rcu_read_unlock_auto();
			if (pte & IOM_IOPTE_SW_MIGRATE)
				return XLATE_MIGRATE_FAULT;
			*flags = IOM_IOMMU_FAULT_WRITE | IOM_IOMMU_FAULT_PERMISSION;
			return XLATE_FAULT;
		}
	}
	iom_rcu_read_unlock_auto();
	if (!write && !(pte & IOM_IOPTE_READ)) {
		*flags = IOM_IOMMU_FAULT_READ | IOM_IOMMU_FAULT_PERMISSION;
		return XLATE_FAULT;
	}
	iom_iotlb_fill(tlb, d->id, iova, level, pte, gen);
ok:
	{
		size_t lsize = 1UL << IOM_IOTLB_LEVEL_SHIFT(level);
		size_t off = iova & (lsize - 1);

		*pa = iom_iopte_to_paddr(pte) + off;
		*leaf_left = lsize - off;
	}
	return XLATE_OK;
}

static int dma_xfer(struct iom_device *dev, unsigned long iova, void *buf,
		    size_t len, bool write)
{
	struct iom_iommu_domain *d = NULL;
	struct iom_machine *m;
	struct dev_slot *s;
	uint64_t stall = 0, t0;
	size_t done = 0;
	int retries = 0, ret = 0, tid;

	if (!dev)
		return -EINVAL;
	m = dev->iommu->m;
	if (!len) {
		last_stall_ns = 0;
		return atomic_load(&dev->domain) ? 0 : -ENODEV;
	}
	if (!buf || iova + len - 1 < iova) {
		iom_warn(m, "%s: DMA %s of %zu bytes at iova %#lx: %s", dev->name,
			 write ? "write" : "read", len, iova,
			 buf ? "the range wraps" : "NULL buffer");
		return -EINVAL;
	}
	tid = dma_tid_get();
	if (tid < 0) {
		iom_warn(m, "%s: more than %d threads do DMA", dev->name,
			 IOM_DEVICE_MAX_THREADS);
		return -EAGAIN;
	}
	s = dev_slot(dev, tid);
	if (!s)
		return -ENOMEM;

	slot_enter(s);
	while (done < len) {
		unsigned long a = iova + done;
		uint64_t pa = 0;
		size_t left = 0, chunk;
		int flags = 0;
		enum xlate_result xr;

		d = atomic_load_explicit(&dev->domain, memory_order_relaxed);
		if (!d) {
			ret = -ENODEV;
			break;
		}
		if (unlikely(atomic_load_explicit(&d->blocked, memory_order_relaxed) ||
			     atomic_load_explicit(&d->nr_blocked_ranges, memory_order_relaxed)) &&
		    must_wait(d, a)) {
			atomic_fetch_add(&d->waiters, 1);
			slot_leave(s);
			t0 = now_ns();
			wait_unblocked(d, a);
			stall += now_ns() - t0;
			slot_enter(s);
			atomic_fetch_sub(&d->waiters, 1);
			continue;
		}
		xr = translate(d, s, a, write, &pa, &left, &flags);
		if (unlikely(xr != XLATE_OK)) {
			bool fixed;

			if (xr == XLATE_RETRY)
				continue;
			atomic_fetch_add(&d->waiters, 1);
			slot_leave(s);
			t0 = now_ns();
			if (xr == XLATE_MIGRATE_FAULT)
				fixed = migrate_write_fault(dev, d, a);
			else
				fixed = false;
			if (!fixed) {
				if (xr == XLATE_MIGRATE_FAULT)
					flags = IOM_IOMMU_FAULT_WRITE | IOM_IOMMU_FAULT_PERMISSION;
				fixed = report_iommu_fault(d, dev, a, flags) == 0;
				if (fixed && ++retries > FAULT_MAX_RETRIES) {
					iom_warn(m, "%s: fault handler of domain %u says fixed, "
						 "but iova %#lx still faults after %d retries",
						 dev->name, d->id, a, FAULT_MAX_RETRIES);
					fixed = false;
				}
			}
			stall += now_ns() - t0;
			slot_enter(s);
			atomic_fetch_sub(&d->waiters, 1);
			if (!fixed) {
				ret = -EFAULT;
				break;
			}
			continue;
		}
		chunk = len - done < left ? len - done : left;
		if (unlikely(!paddr_in_machine(m, pa, chunk))) {
			iom_warn(m, "%s: iova %#lx translates to %#llx, outside memory",
				 dev->name, a, (unsigned long long)pa);
			ret = -EFAULT;
			break;
		}
		if (write)
			memcpy(paddr_to_host(m, pa), (const char *)buf + done, chunk);
		else
			memcpy((char *)buf + done, paddr_to_host(m, pa), chunk);
		done += chunk;
		retries = 0;
	}
	slot_leave(s);

	if (done)
		slot_add(write ? &s->bytes_written : &s->bytes_read, done);
	if (ret) {
		atomic_fetch_add(&dev->failed, 1);
	} else {
		slot_add(&s->transactions, 1);
	}
	if (unlikely(stall)) {
		uint64_t mx = atomic_load(&dev->stall_ns_max);

		atomic_fetch_add(&dev->stalls, 1);
		atomic_fetch_add(&dev->stall_ns_total, stall);
		while (stall > mx && !atomic_compare_exchange_weak(&dev->stall_ns_max, &mx, stall))
			;
	}
	last_stall_ns = stall;
	if (cur_hist)
		hist_add(cur_hist, stall);
	return ret;
}

int iom_device_dma_read(struct iom_device *dev, unsigned long iova, void *buf,
			size_t len)
{
	return dma_xfer(dev, iova, buf, len, false);
}

int iom_device_dma_write(struct iom_device *dev, unsigned long iova,
			 const void *buf, size_t len)
{
	return dma_xfer(dev, iova, (void *)buf, len, true);
}

/* ---- device threads ----------------------------------------------------- */

struct device_thread {
	struct iom_device_threads *set;
	unsigned int idx;
	pthread_t th;
	bool started;
	uint64_t steps;
	int error;
	struct stall_hist hist;
};

struct iom_device_threads {
	struct iom_device *dev;
	iom_device_thread_fn fn;
	void *priv;
	unsigned int nr;
	atomic_bool stop;
	struct device_thread t[];
};

static void *device_thread_main(void *arg)
{
	struct device_thread *t = arg;
	struct iom_device_threads *set = t->set;

	iom_rcu_register_thread();
	cur_hist = &t->hist;
	while (!atomic_load_explicit(&set->stop, memory_order_relaxed)) {
		int r = set->fn(set->dev, t->idx, t->steps, set->priv);

		t->steps++;
		if (r < 0) {
			t->error = r;
			break;
		}
		if (r > 0)
			break;
	}
	cur_hist = NULL;
	iom_rcu_unregister_thread();
	return NULL;
}

int iom_device_threads_stop(struct iom_device_threads *set,
			    struct iom_device_thread_stats *st)
{
	struct stall_hist *h;
	int err = 0;

	if (!set)
		return -EINVAL;
	atomic_store(&set->stop, true);
	for (unsigned int i = 0; i < set->nr; i++)
		if (set->t[i].started)
			pthread_join(set->t[i].th, NULL);
	h = calloc(1, sizeof(*h));
	if (st)
		memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < set->nr; i++) {
		struct device_thread *t = &set->t[i];

		if (!err && t->error)
			err = t->error;
		if (st)
			st->steps += t->steps;
		if (!h)
			continue;
		for (unsigned int b = 0; b < HIST_BUCKETS; b++)
			h->count[b] += t->hist.count[b];
		h->total += t->hist.total;
		if (t->hist.max > h->max)
			h->max = t->hist.max;
	}
	if (st && h) {
		struct stall_hist all = *h;

		uint64_t stalled = all.total - all.count[0];
		uint64_t c = 0, c2 = 0;
		bool p50 = false, p99 = false, s50 = false, s99 = false;

		st->error = err;
		st->transactions = all.total;
		st->stalled = stalled;
		st->stall_max_ns = all.max;
		for (unsigned int b = 0; b < HIST_BUCKETS; b++) {
			c += all.count[b];
			if (b)
				c2 += all.count[b];
			if (!p50 && all.total && c * 2 >= all.total) {
				st->stall_p50_ns = hist_value(b);
				p50 = true;
			}
			if (!p99 && all.total && c * 100 >= all.total * 99) {
				st->stall_p99_ns = hist_value(b);
				p99 = true;
			}
			if (b && !s50 && stalled && c2 * 2 >= stalled) {
				st->stalled_p50_ns = hist_value(b);
				s50 = true;
			}
			if (b && !s99 && stalled && c2 * 100 >= stalled * 99) {
				st->stalled_p99_ns = hist_value(b);
				s99 = true;
			}
		}
	}
	free(h);
	free(set);
	return err;
}

int iom_device_threads_start(struct iom_device *dev, unsigned int nr,
			     iom_device_thread_fn fn, void *priv,
			     struct iom_device_threads **out)
{
	struct iom_device_threads *set;

	if (!dev || !fn || !out || !nr || nr > IOM_DEVICE_MAX_THREADS)
		return -EINVAL;
	set = calloc(1, sizeof(*set) + nr * sizeof(set->t[0]));
	if (!set)
		return -ENOMEM;
	set->dev = dev;
	set->fn = fn;
	set->priv = priv;
	set->nr = nr;
	for (unsigned int i = 0; i < nr; i++) {
		set->t[i].set = set;
		set->t[i].idx = i;
		if (pthread_create(&set->t[i].th, NULL, device_thread_main, &set->t[i])) {
			iom_device_threads_stop(set, NULL);
			return -EAGAIN;
		}
		set->t[i].started = true;
	}
	*out = set;
	return 0;
}

/* ---- block / unblock ---------------------------------------------------- */

int iom_iommu_block(struct iom_iommu_domain *d)
{
	if (!d)
		return -EINVAL;
	atomic_fetch_add(&d->blocked, 1);
	domain_wait_inflight(d);
	return 0;
}

int iom_iommu_unblock(struct iom_iommu_domain *d)
{
	int b;

	if (!d)
		return -EINVAL;
	b = atomic_load(&d->blocked);
	do {
		if (b <= 0) {
			iom_warn(d->iommu->m, "iommu: unblock of domain %u that is not blocked", d->id);
			return -EINVAL;
		}
	} while (!atomic_compare_exchange_weak(&d->blocked, &b, b - 1));
	if (b == 1) {
		pthread_mutex_lock(&d->mig_lock);
		mig_kick(d);
		pthread_mutex_unlock(&d->mig_lock);
	}
	return 0;
}
