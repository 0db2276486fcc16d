/* SPDX-License-Identifier: MIT */
/*
 * VFIO's type1 IOMMU backend: drivers/vfio/vfio_iommu_type1.c's map and
 * unmap paths (vfio_dma_do_map, vfio_pin_map_dma, vfio_pin_pages_remote,
 * vfio_iommu_map, vfio_dma_do_unmap, vfio_remove_dma, vfio_unmap_unpin,
 * unmap_unpin_fast, vfio_lock_acct), with the contiguous batching of seed
 * 004 and the long-term pins of seed 002.
 *
 * Simplified: one domain per container (no groups, no domain list, no
 * reserved regions or IOVA ranges beyond the table's input bits); the
 * vfio_dma tree is a sorted array searched by bisection (an rbtree in the
 * kernel); locked memory is accounted per container, not in the mm's
 * locked_vm; no external pins (vfio_pin_pages()), no dirty bitmaps, no
 * VFIO_DMA_MAP_FLAG_VADDR, no VM_PFNMAP (MMIO) mappings. The unmap walk
 * steps leaf by leaf (the kernel's steps page by page, asking iova_to_phys
 * each time), and tells "not mapped" from "mapped at physical 0" with
 * the io-pgtable walk, which iommu_iova_to_phys() cannot.
 *
 * Conventions in this file: @iommu is the container (the kernel's struct
 * vfio_iommu), @dma one mapping, @batch the pages pinned and not yet
 * consumed (struct vfio_batch).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/gup.h>
#include <iommig/memory.h>
#include <iommig/mm.h>
#include <iommig/vfio.h>

#include "../core/debug.h"

#define PAGE_SHIFT	IOM_PAGE_SHIFT
#define PAGE_SIZE	IOM_PAGE_SIZE

/* PAGE_SIZE / sizeof(struct page *): one page of page pointers */
#define VFIO_BATCH_MAX_CAPACITY		512
/* unmapped regions gathered before one IOTLB sync */
#define VFIO_IOMMU_TLB_SYNC_MAX		512

struct vfio_dma {
	unsigned long iova;	/* device address */
	uint64_t vaddr;		/* process virtual address */
	uint64_t size;		/* bytes mapped (grows while pinning) */
	int prot;		/* IOMMU_READ/WRITE */
};

struct iom_vfio_container {
	struct iom_machine *m;
	struct iom_mm *mm;
	struct iom_iommu_domain *domain;
	bool own_domain;
	bool v2;
	bool disable_hugepages;
	unsigned int dma_avail;
	unsigned long limit;		/* memlock limit in pages */
	unsigned long locked_vm;	/* pages accounted */
	unsigned long max_iova;		/* last IOVA the table translates */
	pthread_mutex_t lock;

	/* the dma "tree": sorted by iova, never overlapping */
	struct vfio_dma **dma;
	size_t nr_dma, dma_cap;

	uint64_t map_calls, unmap_calls, iotlb_syncs;
};

struct vfio_batch {
	struct iom_page *pages[VFIO_BATCH_MAX_CAPACITY];
	long capacity;
	long size;	/* pinned pages not yet consumed */
	long offset;	/* the first of them */
};

/* an unmapped region whose pages wait for the IOTLB sync */
struct vfio_regions {
	unsigned long iova;
	uint64_t phys;
	size_t len;
};

/* ---- the dma "tree" ----------------------------------------------------- */

/* Index of the first mapping whose last byte is at or after @start. */
static size_t vfio_dma_lower_bound(struct iom_vfio_container *iommu,
				   unsigned long start)
{
	size_t lo = 0, hi = iommu->nr_dma;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct vfio_dma *dma = iommu->dma[mid];

		if (dma->iova + dma->size - 1 < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * vfio_find_dma(): a mapping that overlaps [@first, @last], or NULL.
 * (The kernel's takes start and size; "last" avoids the wrap at the top.)
 */
static struct vfio_dma *vfio_find_dma(struct iom_vfio_container *iommu,
				      unsigned long first, unsigned long last)
{
	size_t i = vfio_dma_lower_bound(iommu, first);

	if (i < iommu->nr_dma && iommu->dma[i]->iova <= last)
		return iommu->dma[i];
	return NULL;
}

/* vfio_link_dma(): insert @dma (which overlaps nothing) in order. */
static int vfio_link_dma(struct iom_vfio_container *iommu, struct vfio_dma *dma)
{
	size_t i;

	if (iommu->nr_dma == iommu->dma_cap) {
		size_t cap = iommu->dma_cap ? 2 * iommu->dma_cap : 16;
		struct vfio_dma **n = realloc(iommu->dma, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		iommu->dma = n;
		iommu->dma_cap = cap;
	}
	i = vfio_dma_lower_bound(iommu, dma->iova);
	memmove(&iommu->dma[i + 1], &iommu->dma[i],
		(iommu->nr_dma - i) * sizeof(*iommu->dma));
	iommu->dma[i] = dma;
	iommu->nr_dma++;
	return 0;
}

/* vfio_unlink_dma(): take @dma (maybe still empty) out of the array. */
static void vfio_unlink_dma(struct iom_vfio_container *iommu, struct vfio_dma *dma)
{
	size_t lo = 0, hi = iommu->nr_dma, i;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (iommu->dma[mid]->iova < dma->iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	i = lo;

	IOM_BUG_ON(i >= iommu->nr_dma || iommu->dma[i] != dma);
	memmove(&iommu->dma[i], &iommu->dma[i + 1],
		(iommu->nr_dma - i - 1) * sizeof(*iommu->dma));
	iommu->nr_dma--;
}

/* ---- pinning and accounting --------------------------------------------- */

/* vfio_lock_acct(): locked_vm += @npage (or -=); the limit is checked by the pinning loop. */
static void vfio_lock_acct(struct iom_vfio_container *iommu, long npage)
{
	IOM_BUG_ON(npage < 0 && (unsigned long)-npage > iommu->locked_vm);
	iommu->locked_vm += (unsigned long)npage;
}

/*
 * put_pfn() for @npage pages from @pfn: unpin, dirtying them first when
 * the device could write (unpin_user_pages_dirty_lock()).
 * Return: the pages unpinned (all of them: no reserved pfns here).
 */
static long vfio_put_pfns(struct iom_vfio_container *iommu, unsigned long pfn,
			  long npage, int prot)
{
	struct iom_page *pages[64];
	long done = 0;

	while (done < npage) {
		long n = npage - done < 64 ? npage - done : 64;

		for (long i = 0; i < n; i++)
			pages[i] = iom_pfn_to_page(iommu->m, pfn + (unsigned long)(done + i));
		iom_unpin_user_pages_dirty_lock(iommu->m, pages, (unsigned long)n,
						prot & IOM_IOMMU_WRITE);
		done += n;
	}
	return done;
}

/* vfio_unpin_pages_remote(): unpin a run the map could not use. */
static long vfio_unpin_pages_remote(struct iom_vfio_container *iommu,
				    struct vfio_dma *dma, unsigned long pfn,
				    long npage, bool do_accounting)
{
	long unlocked = vfio_put_pfns(iommu, pfn, npage, dma->prot);

	if (do_accounting)
		vfio_lock_acct(iommu, -unlocked);
	return unlocked;
}

/* vfio_batch_unpin(): give back the pinned pages nobody consumed. */
static void vfio_batch_unpin(struct iom_vfio_container *iommu,
			     struct vfio_batch *batch, struct vfio_dma *dma)
{
	if (batch->size)
		iom_unpin_user_pages_dirty_lock(iommu->m, &batch->pages[batch->offset],
						(unsigned long)batch->size, false);
	batch->size = 0;
	batch->offset = 0;
	(void)dma;
}

/*
 * vaddr_get_pfns(): pin @npages from @vaddr, long-term (out of CMA and
 * ZONE_MOVABLE first), for writing when the device may write.
 */
static long vaddr_get_pfns(struct iom_mm *mm, uint64_t vaddr, long npages,
			   int prot, struct iom_page **pages)
{
	unsigned int flags = IOM_FOLL_LONGTERM;

	if (prot & IOM_IOMMU_WRITE)
		flags |= IOM_FOLL_WRITE;
	return iom_pin_user_pages(mm, vaddr, (unsigned long)npages, flags, pages);
}

/*
 * vfio_pin_pages_remote(): pin pages from @vaddr until one is not
 * physically contiguous with the first, or @npage are pinned; account each
 * against the memlock limit. The batch keeps what was pinned beyond the
 * run for the next call.
 * Return: pages in the run from *@pfn_base; -errno, with nothing of this
 * call left pinned or accounted, and the batch emptied.
 */
static long vfio_pin_pages_remote(struct iom_vfio_container *iommu,
				  struct vfio_dma *dma, uint64_t vaddr,
				  long npage, unsigned long *pfn_base,
				  struct vfio_batch *batch)
{
	unsigned long pfn = 0;
	long ret = 0, pinned = 0, lock_acct = 0;

	if (batch->size) {
		/* leftover pages in the batch from an earlier call */
		*pfn_base = iom_page_to_pfn(iommu->m, batch->pages[batch->offset]);
		pfn = *pfn_base;
	}

	while (npage) {
		if (!batch->size) {
			long req_pages = npage < batch->capacity ? npage : batch->capacity;

			ret = vaddr_get_pfns(iommu->mm, vaddr, req_pages, dma->prot,
					     batch->pages);
			if (ret < 0)
				goto unpin_out;
			batch->size = ret;
			batch->offset = 0;
			pfn = iom_page_to_pfn(iommu->m, batch->pages[0]);
			if (!pinned)
				*pfn_base = pfn;
			ret = 0;
		}

		for (;;) {
			if (pfn != *pfn_base + (unsigned long)pinned)
				goto out;
			if (iommu->locked_vm + (unsigned long)lock_acct + 1 > iommu->limit) {
				iom_warn(iommu->m, "%s: RLIMIT_MEMLOCK (%ld) exceeded",
					 "vfio_pin_pages_remote",
					 (long)(iommu->limit << PAGE_SHIFT));
				ret = -ENOMEM;
				goto unpin_out;
			}
			lock_acct++;
			pinned++;
			npage--;
			vaddr += PAGE_SIZE;
			batch->offset++;
			batch->size--;
			if (!batch->size)
				break;
			pfn = iom_page_to_pfn(iommu->m, batch->pages[batch->offset]);
		}
		/* disable_hugepages: one page a call, mapped alone */
		if (iommu->disable_hugepages)
			break;
	}
out:
	vfio_lock_acct(iommu, lock_acct);
	return pinned;

unpin_out:
	if (pinned)
		vfio_put_pfns(iommu, *pfn_base, pinned, dma->prot);
	vfio_batch_unpin(iommu, batch, dma);
	return ret;
}

/* ---- mapping ------------------------------------------------------------ */

/* vfio_iommu_map(): one iommu_map() of a physically contiguous run. */
static int vfio_iommu_map(struct iom_vfio_container *iommu, unsigned long iova,
			  unsigned long pfn, long npage, int prot)
{
	iommu->map_calls++;
	return iom_iommu_map(iommu->domain, iova, (uint64_t)pfn << PAGE_SHIFT,
			     (size_t)npage << PAGE_SHIFT, prot | IOM_IOMMU_CACHE);
}

/* Unpin the pages of the synced regions; clears the list. */
static long vfio_sync_unpin(struct iom_vfio_container *iommu, struct vfio_dma *dma,
			    struct vfio_regions *regions, size_t *nr,
			    struct iom_iommu_iotlb_gather *gather)
{
	long unlocked = 0;

	iom_iommu_iotlb_sync(iommu->domain, gather);
	iommu->iotlb_syncs++;
	iom_iommu_iotlb_gather_init(gather);
	for (size_t i = 0; i < *nr; i++)
		unlocked += vfio_put_pfns(iommu, (unsigned long)(regions[i].phys >> PAGE_SHIFT),
					  (long)(regions[i].len >> PAGE_SHIFT), dma->prot);
	*nr = 0;
	return unlocked;
}

/*
 * The physical address @iova translates to in *@phys, and how many bytes
 * from @iova on the same leaf stay contiguous. Return: false if unmapped.
 */
static bool vfio_iova_to_phys(struct iom_vfio_container *iommu, unsigned long iova,
			      uint64_t *phys, size_t *rest)
{
	struct iom_io_pgtable_walk_data w;

	if (iom_io_pgtable_walk(iom_iommu_domain_pgtable(iommu->domain), iova, &w))
		return false;
	*phys = iom_iopte_to_paddr(w.pte) + (iova & (w.size - 1));
	*rest = w.size - (iova & (w.size - 1));
	return true;
}

/*
 * vfio_unmap_unpin(): unmap @dma's range stretch by stretch (the largest
 * physically contiguous one at a time, so one unmap call per stretch),
 * sync the IOTLB every VFIO_IOMMU_TLB_SYNC_MAX stretches, and unpin the
 * pages of a stretch only after the sync: a device may use the old
 * translation until then.
 * Return: the pages unpinned.
 */
static long vfio_unmap_unpin(struct iom_vfio_container *iommu, struct vfio_dma *dma,
			     bool do_accounting)
{
	struct vfio_regions regions[VFIO_IOMMU_TLB_SYNC_MAX];
	struct iom_iommu_iotlb_gather gather;
	unsigned long iova = dma->iova, end = dma->iova + dma->size;
	size_t nr = 0;
	long unlocked = 0;

	if (!dma->size)
		return 0;
	iom_iommu_iotlb_gather_init(&gather);
	while (iova < end) {
		uint64_t phys, next;
		size_t len, rest, unmapped;

		if (!vfio_iova_to_phys(iommu, iova, &phys, &rest)) {
			/* the kernel's WARN_ON(!phys): something unmapped behind our back */
			iom_report_bug(iommu->m, "vfio_unmap_unpin: iova 0x%lx not mapped", iova);
			iova += PAGE_SIZE;
			continue;
		}
		len = rest;
		while (iova + len < end && vfio_iova_to_phys(iommu, iova + len, &next, &rest) &&
		       next == phys + len)
			len += rest;
		if (len > end - iova)
			len = end - iova;

		unmapped = iom_iommu_unmap_fast(iommu->domain, iova, len, &gather);
		iommu->unmap_calls++;
		if (!unmapped) {
			iom_report_bug(iommu->m, "vfio_unmap_unpin: unmap of iova 0x%lx failed", iova);
			break;
		}
		IOM_BUG_ON(unmapped != len);
		regions[nr++] = (struct vfio_regions){ iova, phys, unmapped };
		iova += unmapped;
		if (nr == VFIO_IOMMU_TLB_SYNC_MAX)
			unlocked += vfio_sync_unpin(iommu, dma, regions, &nr, &gather);
	}
	unlocked += vfio_sync_unpin(iommu, dma, regions, &nr, &gather);
	if (do_accounting)
		vfio_lock_acct(iommu, -unlocked);
	return unlocked;
}

/* vfio_remove_dma(): unmap, unpin, unaccount and forget @dma. */
static void vfio_remove_dma(struct iom_vfio_container *iommu, struct vfio_dma *dma)
{
	vfio_unmap_unpin(iommu, dma, true);
	vfio_unlink_dma(iommu, dma);
	free(dma);
	iommu->dma_avail++;
}

/*
 * vfio_pin_map_dma(): pin and map @size bytes of @dma, one contiguous run
 * at a time. On error, the caller removes @dma (what it mapped so far).
 */
static int vfio_pin_map_dma(struct iom_vfio_container *iommu, struct vfio_dma *dma,
			    uint64_t size)
{
	struct vfio_batch *batch = malloc(sizeof(*batch));
	int ret = 0;

	if (!batch)
		return -ENOMEM;
	batch->capacity = iommu->disable_hugepages ? 1 : VFIO_BATCH_MAX_CAPACITY;
	batch->size = 0;
	batch->offset = 0;

	while (size) {
		unsigned long pfn = 0;
		long npage;

		npage = vfio_pin_pages_remote(iommu, dma, dma->vaddr + dma->size,
					      (long)(size >> PAGE_SHIFT), &pfn, batch);
		if (npage <= 0) {
			IOM_BUG_ON(!npage);
			ret = (int)npage;
			break;
		}
		ret = vfio_iommu_map(iommu, dma->iova + dma->size, pfn, npage, dma->prot);
		if (ret) {
			vfio_unpin_pages_remote(iommu, dma, pfn, npage, true);
			vfio_batch_unpin(iommu, batch, dma);
			break;
		}
		size -= (uint64_t)npage << PAGE_SHIFT;
		dma->size += (uint64_t)npage << PAGE_SHIFT;
	}
	IOM_BUG_ON(!ret && batch->size);
	free(batch);
	return ret;
}

/* ---- the API ------------------------------------------------------------ */

int iom_vfio_container_create(struct iom_mm *mm, struct iom_iommu *iommu_unit,
			      struct iom_iommu_domain *domain,
			      const struct iom_vfio_config *cfg,
			      struct iom_vfio_container **out)
{
	struct iom_vfio_config def = { 0 };
	struct iom_vfio_container *iommu;
	const struct iom_io_pgtable_cfg *pcfg;
	struct iom_machine *m;

	if (!mm || !out || (!iommu_unit && !domain))
		return -EINVAL;
	m = iom_mm_machine(mm);
	if (!cfg)
		cfg = &def;
	if (cfg->type && cfg->type != IOM_VFIO_TYPE1_IOMMU &&
	    cfg->type != IOM_VFIO_TYPE1v2_IOMMU) {
		iom_warn(m, "iom_vfio_container_create: unknown type %u", cfg->type);
		return -EINVAL;
	}
	if (domain && (iom_iommu_domain_type(domain) != IOM_IOMMU_DOMAIN_UNMANAGED ||
		       iom_iommu_domain_machine(domain) != m)) {
		iom_warn(m, "iom_vfio_container_create: the domain must be UNMANAGED and of the process's machine");
		return -EINVAL;
	}

	iommu = calloc(1, sizeof(*iommu));
	if (!iommu)
		return -ENOMEM;
	if (!domain) {
		domain = iom_iommu_domain_alloc(iommu_unit, IOM_IOMMU_DOMAIN_UNMANAGED);
		if (!domain) {
			int err = errno ? -errno : -ENOMEM;

			free(iommu);
			return err;
		}
		if (iom_iommu_domain_machine(domain) != m) {
			iom_warn(m, "iom_vfio_container_create: the IOMMU is of another machine");
			iom_iommu_domain_free(domain);
			free(iommu);
			return -EINVAL;
		}
		iommu->own_domain = true;
	}
	iommu->m = m;
	iommu->mm = mm;
	iommu->domain = domain;
	iommu->v2 = cfg->type != IOM_VFIO_TYPE1_IOMMU;
	iommu->disable_hugepages = cfg->disable_hugepages;
	iommu->dma_avail = cfg->dma_entry_limit ? cfg->dma_entry_limit
						: IOM_VFIO_DMA_ENTRY_LIMIT_DEFAULT;
	if (!cfg->memlock_limit)
		iommu->limit = IOM_VFIO_MEMLOCK_DEFAULT >> PAGE_SHIFT;
	else if (cfg->memlock_limit == IOM_VFIO_MEMLOCK_UNLIMITED)
		iommu->limit = (unsigned long)-1 >> PAGE_SHIFT;
	else
		iommu->limit = cfg->memlock_limit >> PAGE_SHIFT;
	pcfg = iom_io_pgtable_get_cfg(iom_iommu_domain_pgtable(domain));
	iommu->max_iova = pcfg->ias >= 64 ? ~0UL : (1UL << pcfg->ias) - 1;
	IOM_CHECK_PTHREAD(pthread_mutex_init(&iommu->lock, NULL));
	*out = iommu;
	return 0;
}

int iom_vfio_container_destroy(struct iom_vfio_container *iommu)
{
	int ret = 0;

	if (!iommu)
		return 0;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iommu->lock));
	/* vfio_iommu_unmap_unpin_all() */
	while (iommu->nr_dma)
		vfio_remove_dma(iommu, iommu->dma[iommu->nr_dma - 1]);
	if (iommu->own_domain) {
		ret = iom_iommu_domain_free(iommu->domain);
		if (!ret)
			iommu->domain = NULL;
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iommu->lock));
	if (ret)
		return ret;
	IOM_BUG_ON(iommu->locked_vm);
	IOM_CHECK_PTHREAD(pthread_mutex_destroy(&iommu->lock));
	free(iommu->dma);
	free(iommu);
	return 0;
}

struct iom_iommu_domain *iom_vfio_container_domain(struct iom_vfio_container *iommu)
{
	return iommu ? iommu->domain : NULL;
}

int iom_vfio_map_dma(struct iom_vfio_container *iommu, uint64_t vaddr,
		     unsigned long iova, uint64_t size, unsigned int prot)
{
	struct vfio_dma *dma;
	int ret;

	if (!iommu)
		return -EINVAL;
	/* the kernel's vfio_dma_do_map() checks, in its order */
	if (!size || ((size | iova | vaddr) & (PAGE_SIZE - 1)))
		return -EINVAL;
	if (iova + size - 1 < iova || vaddr + size - 1 < vaddr)
		return -EINVAL;
	if (!(prot & (IOM_VFIO_DMA_MAP_FLAG_READ | IOM_VFIO_DMA_MAP_FLAG_WRITE)) ||
	    (prot & ~(IOM_VFIO_DMA_MAP_FLAG_READ | IOM_VFIO_DMA_MAP_FLAG_WRITE)))
		return -EINVAL;

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iommu->lock));
	if (vfio_find_dma(iommu, iova, iova + size - 1)) {
		ret = -EEXIST;
		goto out_unlock;
	}
	if (!iommu->dma_avail) {
		ret = -ENOSPC;
		goto out_unlock;
	}
	/* vfio_iommu_iova_dma_valid(): inside what the table translates */
	if (iova + size - 1 > iommu->max_iova) {
		ret = -EINVAL;
		goto out_unlock;
	}
	dma = calloc(1, sizeof(*dma));
	if (!dma) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	dma->iova = iova;
	dma->vaddr = vaddr;
	dma->prot = (int)prot;	/* the flags have IOMMU_READ/WRITE's values */
	/* linked while empty, as the kernel: it grows run by run under the lock */
	ret = vfio_link_dma(iommu, dma);
	if (ret) {
		free(dma);
		goto out_unlock;
	}
	iommu->dma_avail--;
	ret = vfio_pin_map_dma(iommu, dma, size);
	if (ret)
		vfio_remove_dma(iommu, dma);
out_unlock:
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iommu->lock));
	return ret;
}

int iom_vfio_unmap_dma(struct iom_vfio_container *iommu, unsigned long iova,
		       uint64_t size, unsigned int flags, uint64_t *unmapped_out)
{
	bool unmap_all = flags & IOM_VFIO_DMA_UNMAP_FLAG_ALL;
	unsigned long last;
	uint64_t unmapped = 0;
	struct vfio_dma *dma;
	size_t i;
	int ret = -EINVAL;

	if (unmapped_out)
		*unmapped_out = 0;
	if (!iommu || (flags & ~IOM_VFIO_DMA_UNMAP_FLAG_ALL))
		return -EINVAL;
	if (unmap_all) {
		if (iova || size)
			return -EINVAL;
		last = ~0UL;
	} else {
		if (!size || (size & (PAGE_SIZE - 1)) || iova + size - 1 < iova)
			return -EINVAL;
		last = iova + size - 1;
	}
	if (iova & (PAGE_SIZE - 1))
		return -EINVAL;

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iommu->lock));
	/*
	 * Type1v2 must not bisect a mapping: neither the first nor the last
	 * byte of the range may fall inside one that reaches beyond it.
	 */
	if (iommu->v2 && !unmap_all) {
		dma = vfio_find_dma(iommu, iova, iova);
		if (dma && dma->iova != iova)
			goto unlock;
		dma = vfio_find_dma(iommu, last, last);
		if (dma && dma->iova + dma->size - 1 != last)
			goto unlock;
	}

	ret = 0;
	i = vfio_dma_lower_bound(iommu, iova);
	while (i < iommu->nr_dma) {
		dma = iommu->dma[i];
		if (dma->iova > last)
			break;
		/* v1: a range that starts inside a mapping unmaps nothing more */
		if (!iommu->v2 && iova > dma->iova)
			break;
		unmapped += dma->size;
		vfio_remove_dma(iommu, dma);	/* the next one moves to @i */
	}
unlock:
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iommu->lock));
	if (unmapped_out)
		*unmapped_out = unmapped;
	return ret;
}

int iom_vfio_get_info(struct iom_vfio_container *iommu, struct iom_vfio_info *info)
{
	struct iom_io_pgtable_ops *ops;

	if (!iommu || !info)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&iommu->lock));
	ops = iom_iommu_domain_pgtable(iommu->domain);
	info->nr_dma = iommu->nr_dma;
	info->dma_avail = iommu->dma_avail;
	info->locked = (uint64_t)iommu->locked_vm << PAGE_SHIFT;
	info->nr_entries = iom_io_pgtable_nr_leaves(ops, info->nr_leaves);
	info->nr_pgtable_pages = iom_io_pgtable_nr_pages(ops);
	info->map_calls = iommu->map_calls;
	info->unmap_calls = iommu->unmap_calls;
	info->iotlb_syncs = iommu->iotlb_syncs;
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&iommu->lock));
	return 0;
}
