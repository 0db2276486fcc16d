/* SPDX-License-Identifier: MIT */
/*
 * Seed 001's hmm_domain (the RFC's additions to mm/hmm.c, 2014): devices
 * that mirror one process from one IOMMU domain share one set of IOMMU
 * mappings of its pages, at IOVA == virtual address. Here above the MM, as
 * the layering rule wants: the hmm_domain is one hmm_mirror of the process
 * (iom_hmm_mirror_get(), keyed by the IOMMU domain), so each invalidation
 * reaches it once, whatever the number of devices. Simplified: the seed's
 * gpt directory of DMA addresses becomes a hash of mapped pages; pages are
 * mapped one 4 KiB leaf at a time; a PROTECTION event remaps read-only by
 * unmap + map, so a device read of that page in between faults.
 *
 * Lock order: mmap_lock → notifier SRCU → hmm_domain->lock → the IOMMU's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include <iommig/hmm.h>
#include <iommig/hmm_domain.h>
#include <iommig/iommu.h>
#include <iommig/mm.h>

#include "../core/debug.h"
#include "../core/list.h"

/* one mapped page: the seed's dpte */
struct hmm_dpte {
	uint64_t va;
	uint64_t phys;
	bool write;
	UT_hash_handle hh;
};

/*
 * struct iom_hmm_domain - per (IOMMU domain, process) state.
 * @mirror:  the one mirror of the process (device identity: @iommu_domain).
 * @lock:    the driver's update lock: @ptes, @mirrors, @stats, @released.
 * @ptes:    what is mapped in the IOMMU.
 */
struct iom_hmm_domain {
	struct iom_hmm_mirror mirror;
	struct iom_iommu_domain *iommu_domain;
	pthread_mutex_t lock;
	struct list_head mirrors;
	struct hmm_dpte *ptes;
	struct iom_hmm_domain_stats stats;
	bool released;
	void (*test_hook)(void *arg);
	void *test_arg;
	bool test_skip_invalidate;
};

#define HMM_FAULT_CHUNK	512UL	/* pages per hmm_range_fault() */

static void hmm_domain_unmap_dpte(struct iom_hmm_domain *hd, struct hmm_dpte *e)
{
	iom_iommu_unmap(hd->iommu_domain, (unsigned long)e->va, IOM_PAGE_SIZE);
	HASH_DEL(hd->ptes, e);
	free(e);
	hd->stats.unmaps++;
	hd->stats.nr_mapped--;
}

static void hmm_domain_protect_dpte(struct iom_hmm_domain *hd, struct hmm_dpte *e)
{
	if (!e->write)
		return;
	iom_iommu_unmap(hd->iommu_domain, (unsigned long)e->va, IOM_PAGE_SIZE);
	if (iom_iommu_map(hd->iommu_domain, (unsigned long)e->va, e->phys,
			  IOM_PAGE_SIZE, IOM_IOMMU_READ)) {
		/* no memory for a table: leave it unmapped, the device refaults */
		HASH_DEL(hd->ptes, e);
		free(e);
		hd->stats.unmaps++;
		hd->stats.nr_mapped--;
		return;
	}
	e->write = false;
	hd->stats.protects++;
}

/* Apply @unmap (or a read-only downgrade) to [@start, @end). Lock held. */
static void hmm_domain_update_locked(struct iom_hmm_domain *hd, uint64_t start,
				     uint64_t end, bool unmap)
{
	struct hmm_dpte *e, *tmp;
	uint64_t pages = (end - start) >> IOM_PAGE_SHIFT;

	if (pages < HASH_COUNT(hd->ptes)) {
		uint64_t va;

		for (va = start; va < end; va += IOM_PAGE_SIZE) {
			HASH_FIND(hh, hd->ptes, &va, sizeof(va), e);
			if (!e)
				continue;
			if (unmap)
				hmm_domain_unmap_dpte(hd, e);
			else
				hmm_domain_protect_dpte(hd, e);
		}
		return;
	}
	HASH_ITER(hh, hd->ptes, e, tmp) {
		if (e->va < start || e->va >= end)
			continue;
		if (unmap)
			hmm_domain_unmap_dpte(hd, e);
		else
			hmm_domain_protect_dpte(hd, e);
	}
}

/* The seed's hmm_update() for domains: unmap or write-protect, once. */
static int hmm_domain_sync(struct iom_hmm_mirror *mirror,
			   const struct iom_hmm_update *update)
{
	struct iom_hmm_domain *hd = container_of(mirror, struct iom_hmm_domain, mirror);
	bool unmap;

	switch (update->event) {
	case IOM_MMU_NOTIFY_PROTECTION_VMA:
	case IOM_MMU_NOTIFY_PROTECTION_PAGE:
		unmap = false;
		break;
	default:	/* UNMAP, CLEAR, MIGRATE, RELEASE */
		unmap = true;
		break;
	}
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&hd->lock));
	iom_mmu_interval_set_seq(&mirror->notifier, 0);
	hd->stats.invalidations++;
	if (!hd->test_skip_invalidate)
		hmm_domain_update_locked(hd, update->start, update->end, unmap);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
	return 0;
}

/* exit_mmap(): every page is about to be freed. */
static void hmm_domain_release(struct iom_hmm_mirror *mirror)
{
	struct iom_hmm_domain *hd = container_of(mirror, struct iom_hmm_domain, mirror);

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&hd->lock));
	hd->released = true;
	hmm_domain_update_locked(hd, 0, UINT64_MAX & ~(IOM_PAGE_SIZE - 1), true);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
}

static struct iom_hmm_mirror *hmm_domain_alloc(struct iom_mm *mm, const void *device)
{
	struct iom_hmm_domain *hd = calloc(1, sizeof(*hd));

	(void)mm;
	if (!hd)
		return NULL;
	hd->iommu_domain = (struct iom_iommu_domain *)device;
	IOM_CHECK_PTHREAD(pthread_mutex_init(&hd->lock, NULL));
	INIT_LIST_HEAD(&hd->mirrors);
	return &hd->mirror;
}

/* hmm_free_domain_locked(): the last mirror went; unmap what is left. */
static void hmm_domain_free(struct iom_hmm_mirror *mirror)
{
	struct iom_hmm_domain *hd = container_of(mirror, struct iom_hmm_domain, mirror);

	IOM_BUG_ON(!list_empty(&hd->mirrors));
	hmm_domain_update_locked(hd, 0, UINT64_MAX & ~(IOM_PAGE_SIZE - 1), true);
	IOM_CHECK_PTHREAD(pthread_mutex_destroy(&hd->lock));
	free(hd);
}

static const struct iom_hmm_mirror_ops hmm_domain_mirror_ops = {
	.sync_cpu_device_pagetables = hmm_domain_sync,
	.release = hmm_domain_release,
	.alloc_mirror = hmm_domain_alloc,
	.free_mirror = hmm_domain_free,
};

/**
 * iom_hmm_domain_mirror_register() - hmm_add_mirror() of seed 001: find
 * or make the hmm_domain of (@dev's IOMMU domain, @mm) and add @dev to it.
 * @dm: zeroed.  @dev: attached to a domain.  @mm: the process.
 * Context: not from a notifier callback; takes @mm's mmap_lock for write.
 * Return: 0; -EINVAL (bad arguments, @dev not attached, @dev already
 * mirrors @mm); -ENOMEM.
 */
int iom_hmm_domain_mirror_register(struct iom_hmm_device_mirror *dm,
				   struct iom_device *dev, struct iom_mm *mm)
{
	struct iom_iommu_domain *domain;
	struct iom_hmm_mirror *mirror;
	struct iom_hmm_domain *hd;
	struct list_head *pos;
	int ret;

	if (!dm || !dev || !mm || dm->domain)
		return -EINVAL;
	domain = iom_iommu_get_domain_for_dev(dev);
	if (!domain)
		return -EINVAL;
	ret = iom_hmm_mirror_get(&hmm_domain_mirror_ops, domain, mm, &mirror);
	if (ret)
		return ret;
	hd = container_of(mirror, struct iom_hmm_domain, mirror);
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&hd->lock));
	list_for_each(pos, &hd->mirrors) {
		if (list_entry(pos, struct iom_hmm_device_mirror, list)->dev == dev) {
			/* same device can mirror only once */
			IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
			iom_hmm_mirror_put(mirror);
			return -EINVAL;
		}
	}
	dm->dev = dev;
	dm->domain = hd;
	list_add_tail(&dm->list, &hd->mirrors);
	hd->stats.nr_mirrors++;
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
	return 0;
}

/**
 * iom_hmm_domain_mirror_unregister() - hmm_del_mirror_locked() of seed
 * 001: take @dm's device out of its hmm_domain; the last one frees it,
 * unmapping every page it mapped.
 * Context: not from a notifier callback; takes the process's mmap_lock
 * for write (unless it has exited).
 */
void iom_hmm_domain_mirror_unregister(struct iom_hmm_device_mirror *dm)
{
	struct iom_hmm_domain *hd;

	if (!dm || !dm->domain)
		return;
	hd = dm->domain;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&hd->lock));
	list_del(&dm->list);
	hd->stats.nr_mirrors--;
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
	dm->domain = NULL;
	dm->dev = NULL;
	iom_hmm_mirror_put(&hd->mirror);
}

/* hmm_domain_update_or_map() for one page. Lock held. */
static int hmm_domain_map_one(struct iom_hmm_domain *hd, uint64_t va,
			      uint64_t hmm_pfn)
{
	uint64_t phys = (uint64_t)iom_hmm_pfn_to_pfn(hmm_pfn) << IOM_PAGE_SHIFT;
	bool write = hmm_pfn & IOM_HMM_PFN_WRITE;
	struct hmm_dpte *e;
	int ret;

	HASH_FIND(hh, hd->ptes, &va, sizeof(va), e);
	if (e && e->phys == phys && e->write == write)
		return 0;
	if (e) {
		iom_iommu_unmap(hd->iommu_domain, (unsigned long)va, IOM_PAGE_SIZE);
		hd->stats.remaps++;
	} else {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->va = va;
		HASH_ADD(hh, hd->ptes, va, sizeof(e->va), e);
		if (!e->hh.tbl) {
			free(e);
			return -ENOMEM;
		}
		hd->stats.maps++;
		hd->stats.nr_mapped++;
	}
	e->phys = phys;
	e->write = write;
	ret = iom_iommu_map(hd->iommu_domain, (unsigned long)va, phys, IOM_PAGE_SIZE,
			    IOM_IOMMU_READ | (write ? IOM_IOMMU_WRITE : 0));
	if (ret) {
		HASH_DEL(hd->ptes, e);
		free(e);
		hd->stats.nr_mapped--;
	}
	return ret;
}

/* One chunk: the kernel's dmirror_fault() loop. */
static int hmm_domain_fault_chunk(struct iom_hmm_domain *hd, uint64_t start,
				  uint64_t end, bool write, uint64_t *pfns)
{
	struct iom_hmm_range range = {
		.notifier = &hd->mirror.notifier,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.default_flags = IOM_HMM_PFN_REQ_FAULT |
				 (write ? IOM_HMM_PFN_REQ_WRITE : 0),
		.pfn_flags_mask = 0,
	};
	unsigned long i, n = (unsigned long)((end - start) >> IOM_PAGE_SHIFT);
	int ret;

	for (;;) {
		range.notifier_seq = iom_mmu_interval_read_begin(range.notifier);
		ret = iom_hmm_range_fault(&range);
		if (ret == -EBUSY) {
			IOM_CHECK_PTHREAD(pthread_mutex_lock(&hd->lock));
			hd->stats.retries++;
			IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
			continue;
		}
		if (ret)
			return ret;
		if (hd->test_hook)
			hd->test_hook(hd->test_arg);
		IOM_CHECK_PTHREAD(pthread_mutex_lock(&hd->lock));
		if (hd->released) {
			IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
			return -EINVAL;
		}
		if (iom_mmu_interval_read_retry(range.notifier, range.notifier_seq)) {
			hd->stats.retries++;
			IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
			continue;
		}
		break;
	}
	for (i = 0; i < n && !ret; i++)
		if (pfns[i] & IOM_HMM_PFN_VALID)
			ret = hmm_domain_map_one(hd, start + ((uint64_t)i << IOM_PAGE_SHIFT),
						 pfns[i]);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
	return ret;
}

/**
 * iom_hmm_domain_mirror_fault() - the device's fault path through the
 * shared mappings: hmm_range_fault() chunk by chunk, then map under the
 * hmm_domain's lock if no invalidation raced (else again).
 * @dm: a registered device mirror.  @addr, @len: the bytes to reach.
 * @write: fault for write.
 * Context: may sleep; not from a notifier callback.
 * Return: 0; -EFAULT; -EPERM; -EINVAL; -ENOMEM.
 */
int iom_hmm_domain_mirror_fault(struct iom_hmm_device_mirror *dm,
				uint64_t addr, size_t len, bool write)
{
	uint64_t start, end, *pfns;
	struct iom_hmm_domain *hd;
	int ret = 0;

	if (!dm || !dm->domain || !len || addr + len < addr ||
	    addr + len > IOM_TASK_SIZE)
		return -EINVAL;
	hd = dm->domain;
	if (atomic_load(&hd->mirror.released))
		return -EINVAL;
	start = addr & ~(uint64_t)(IOM_PAGE_SIZE - 1);
	end = (addr + len + IOM_PAGE_SIZE - 1) & ~(uint64_t)(IOM_PAGE_SIZE - 1);
	pfns = calloc(HMM_FAULT_CHUNK, sizeof(*pfns));
	if (!pfns)
		return -ENOMEM;
	while (start < end && !ret) {
		uint64_t next = start + (HMM_FAULT_CHUNK << IOM_PAGE_SHIFT);

		if (next > end)
			next = end;
		ret = hmm_domain_fault_chunk(hd, start, next, write, pfns);
		start = next;
	}
	free(pfns);
	return ret;
}

/**
 * iom_hmm_domain_get_stats() - a snapshot of @dm's hmm_domain counters.
 * Context: any thread. Return: 0; -EINVAL.
 */
int iom_hmm_domain_get_stats(struct iom_hmm_device_mirror *dm,
			     struct iom_hmm_domain_stats *st)
{
	struct iom_hmm_domain *hd;

	if (!dm || !dm->domain || !st)
		return -EINVAL;
	hd = dm->domain;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&hd->lock));
	*st = hd->stats;
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&hd->lock));
	return 0;
}

/**
 * iom_hmm_domain_set_test_hook() - TEST ONLY: a callback between
 * hmm_range_fault() and the mapping lock of every fault of the hmm_domain.
 * Context: no fault of the hmm_domain running. Return: 0; -EINVAL.
 */
int iom_hmm_domain_set_test_hook(struct iom_hmm_device_mirror *dm,
				 void (*hook)(void *arg), void *arg)
{
	if (!dm || !dm->domain)
		return -EINVAL;
	dm->domain->test_hook = hook;
	dm->domain->test_arg = arg;
	return 0;
}

/**
 * iom_hmm_domain_set_test_skip_invalidate() - TEST ONLY: while @skip,
 * invalidations of @dm's hmm_domain are counted but leave the IOMMU
 * mappings alone (the bug the teardown-race checks must catch).
 * Context: any thread. Return: 0; -EINVAL.
 */
int iom_hmm_domain_set_test_skip_invalidate(struct iom_hmm_device_mirror *dm,
					    bool skip)
{
	if (!dm || !dm->domain)
		return -EINVAL;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&dm->domain->lock));
	dm->domain->test_skip_invalidate = skip;
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&dm->domain->lock));
	return 0;
}
