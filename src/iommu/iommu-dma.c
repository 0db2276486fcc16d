/* SPDX-License-Identifier: MIT */
/*
 * The IOVA + flush-queue part of drivers/iommu/dma-iommu.c
 * (iommu_dma_init_domain, __iommu_dma_map, __iommu_dma_unmap, queue_iova,
 * fq_flush_iotlb, fq_ring_free, fq_flush_timeout); the buffers and
 * streaming maps of dma-iommu.c are src/dma/dma-iommu.c.
 *
 * Simplified: the flush queue is per thread (the kernel's is per CPU), and
 * one timer thread per IOMMU plays the kernel's per-domain timer.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <iommig/iommu.h>
#include <iommig/iova.h>
#include <iommig/rcu.h>

#include "iommu-internal.h"

#include "../core/debug.h"
#include "../core/list.h"
#include "../core/percpu.h"
#include "../core/trace.h"

struct fq_entry {
	unsigned long pfn;
	unsigned long pages;
	uint64_t counter;
};

/* dma-iommu.c's struct iova_fq: a ring of IOVAs waiting for a flush */
struct iova_fq {
	atomic_int lock;
	unsigned int head, tail, mod;
	struct fq_entry entries[];
};

static void *fq_timer_main(void *arg);

int iom_iommu_dma_init_domain(struct iom_iommu_domain *d, uint64_t base,
			      uint64_t limit)
{
	struct iom_iova_domain *iovad;
	struct iom_iommu *iommu;
	int ret = 0;

	if (!d)
		return -EINVAL;
	iommu = d->iommu;
	if (d->type == IOM_IOMMU_DOMAIN_UNMANAGED || d->iovad) {
		iom_warn(iommu->m, "iommu_dma_init_domain: domain %u is %s", d->id,
			 d->iovad ? "initialised already" : "unmanaged");
		return -EINVAL;
	}
	if (base < IOM_PAGE_SIZE)
		base = IOM_PAGE_SIZE;	/* IOVA 0 means failure */
	if ((base | limit) & (IOM_PAGE_SIZE - 1) || limit <= base ||
	    (iommu->cfg.ias < 64 && limit > 1ULL << iommu->cfg.ias)) {
		iom_warn(iommu->m, "iommu_dma_init_domain: bad IOVA space [%#llx, %#llx)",
			 (unsigned long long)base, (unsigned long long)limit);
		return -EINVAL;
	}
	iovad = iom_init_iova_domain(iommu->m, IOM_PAGE_SIZE, base >> IOM_PAGE_SHIFT);
	if (!iovad)
		return -ENOMEM;
	pthread_mutex_lock(&iommu->lock);	/* the timer thread reads iovad */
	if (d->type == IOM_IOMMU_DOMAIN_DMA_FQ && !iommu->fq_thread_started) {
		if (pthread_create(&iommu->fq_thread, NULL, fq_timer_main, iommu))
			ret = -ENOMEM;
		else
			iommu->fq_thread_started = true;
	}
	if (!ret) {
		d->iovad = iovad;
		d->dma_limit_pfn = limit >> IOM_PAGE_SHIFT;
	}
	pthread_mutex_unlock(&iommu->lock);
	if (ret)
		iom_put_iova_domain(iovad);
	return ret;
}

/*
 * iommu_dma_alloc_iova(): @pages of IOVA below both the domain's limit and
 * @dma_limit (the device's mask; 0: none). Return: the first pfn, 0 if none.
 */
static unsigned long dma_alloc_pfns(struct iom_iommu_domain *d, unsigned long pages,
				    uint64_t dma_limit)
{
	/* the allocator's limit is the last pfn allowed (dma_limit >> shift) */
	unsigned long limit_pfn = d->dma_limit_pfn - 1;

	if (dma_limit && (dma_limit >> IOM_PAGE_SHIFT) < limit_pfn)
		limit_pfn = dma_limit >> IOM_PAGE_SHIFT;
	return iom_alloc_iova_fast(d->iovad, pages, limit_pfn, true);
}

int iom_iommu_dma_map(struct iom_iommu_domain *d, uint64_t paddr, size_t size,
		      int prot, uint64_t dma_limit, unsigned long *iova)
{
	size_t off, pages;
	unsigned long pfn;
	int ret;

	if (!d || !iova || !size || !d->iovad) {
		if (d)
			iom_warn(d->iommu->m, "iommu_dma_map: %s", !d->iovad ?
				 "domain has no IOVA space (iom_iommu_dma_init_domain)" :
				 "size 0 or NULL iova");
		return -EINVAL;
	}
	off = paddr & (IOM_PAGE_SIZE - 1);
	if (size + off < size)
		return -EINVAL;
	pages = (size + off + IOM_PAGE_SIZE - 1) >> IOM_PAGE_SHIFT;
	pfn = dma_alloc_pfns(d, pages, dma_limit);
	if (!pfn)
		return -ENOMEM;
	ret = iom_iommu_map(d, pfn << IOM_PAGE_SHIFT, paddr - off,
			    pages << IOM_PAGE_SHIFT, prot);
	if (ret) {
		iom_free_iova_fast(d->iovad, pfn, pages);
		return ret;
	}
	*iova = (pfn << IOM_PAGE_SHIFT) + off;
	return 0;
}

int iom_iommu_dma_alloc_iova(struct iom_iommu_domain *d, size_t size,
			     uint64_t dma_limit, unsigned long *iova)
{
	unsigned long pfn, pages;

	if (!d || !iova || !size || !d->iovad || size > (SIZE_MAX >> 1))
		return -EINVAL;
	pages = (size + IOM_PAGE_SIZE - 1) >> IOM_PAGE_SHIFT;
	pfn = dma_alloc_pfns(d, pages, dma_limit);
	if (!pfn)
		return -ENOMEM;
	*iova = pfn << IOM_PAGE_SHIFT;
	return 0;
}

int iom_iommu_dma_free_iova(struct iom_iommu_domain *d, unsigned long iova,
			    size_t size)
{
	if (!d || !d->iovad || !size || (iova & (IOM_PAGE_SIZE - 1)))
		return -EINVAL;
	return iom_free_iova_fast(d->iovad, iova >> IOM_PAGE_SHIFT,
				  (size + IOM_PAGE_SIZE - 1) >> IOM_PAGE_SHIFT);
}

static struct iova_fq *domain_fq(struct iom_iommu_domain *d, int tid)
{
	struct iova_fq *fq = atomic_load_explicit(&d->fq[tid], memory_order_acquire);
	struct iova_fq *expected = NULL;
	unsigned int n = d->iommu->cfg.fq_size;

	if (likely(fq))
		return fq;
	fq = calloc(1, sizeof(*fq) + n * sizeof(fq->entries[0]));
	if (!fq)
		return NULL;
	fq->mod = n;
	if (!atomic_compare_exchange_strong(&d->fq[tid], &expected, fq)) {
		free(fq);
		return expected;
	}
	return fq;
}

/* fq_flush_iotlb(): one domain-wide invalidation for everything queued. */
void fq_flush_iotlb(struct iom_iommu_domain *d)
{
	atomic_fetch_add(&d->fq_flush_start_cnt, 1);
	iom_iommu_flush_iotlb_all(d);
	atomic_fetch_add(&d->fq_flush_finish_cnt, 1);
	atomic_fetch_add_explicit(&d->iommu->fq_flushes, 1, memory_order_relaxed);
}

/* fq_ring_free(): free the IOVAs whose flush has completed. fq->lock held. */
static void fq_ring_free(struct iom_iommu_domain *d, struct iova_fq *fq)
{
	uint64_t done = atomic_load(&d->fq_flush_finish_cnt);

	while (fq->head != fq->tail) {
		struct fq_entry *e = &fq->entries[fq->head];

		if (e->counter >= done)
			break;
		iom_free_iova_fast(d->iovad, e->pfn, e->pages);
		atomic_fetch_sub(&d->fq_pending, 1);
		fq->head = (fq->head + 1) % fq->mod;
	}
}

void fq_ring_free_all(struct iom_iommu_domain *d)
{
	for (unsigned int i = 0; i < IOM_DEVICE_MAX_THREADS; i++) {
		struct iova_fq *fq = atomic_load(&d->fq[i]);

		if (!fq)
			continue;
		iom_spin_lock(&fq->lock);
		fq_ring_free(d, fq);
		iom_spin_unlock(&fq->lock);
	}
}

static void fq_timer_arm(struct iom_iommu *iommu)
{
	if (atomic_load_explicit(&iommu->fq_timer_on, memory_order_relaxed) ||
	    atomic_exchange(&iommu->fq_timer_on, true))
		return;
	pthread_mutex_lock(&iommu->lock);
	pthread_cond_broadcast(&iommu->fq_cv);
	pthread_mutex_unlock(&iommu->lock);
}

/* queue_iova() */
static int queue_iova(struct iom_iommu_domain *d, unsigned long pfn,
		      unsigned long pages)
{
	int tid = dma_tid_get();
	struct iova_fq *fq;

	if (tid < 0 || !(fq = domain_fq(d, tid))) {
		/* no queue for this thread: behave as strict */
		iom_iommu_flush_iotlb_all(d);
		return iom_free_iova_fast(d->iovad, pfn, pages);
	}
	iom_spin_lock(&fq->lock);
	fq_ring_free(d, fq);
	if ((fq->tail + 1) % fq->mod == fq->head) {
		fq_flush_iotlb(d);
		fq_ring_free(d, fq);
	}
	fq->entries[fq->tail] = (struct fq_entry){
		.pfn = pfn, .pages = pages,
		.counter = atomic_load(&d->fq_flush_start_cnt),
	};
	fq->tail = (fq->tail + 1) % fq->mod;
	atomic_fetch_add(&d->fq_pending, 1);
	iom_spin_unlock(&fq->lock);
	atomic_fetch_add_explicit(&d->iommu->fq_queued, 1, memory_order_relaxed);
	fq_timer_arm(d->iommu);
	return 0;
}

int iom_iommu_dma_unmap(struct iom_iommu_domain *d, unsigned long iova, size_t size)
{
	struct iom_iommu_iotlb_gather g;
	size_t off, pages, n;

	if (!d || !d->iovad || !size) {
		if (d)
			iom_warn(d->iommu->m, "iommu_dma_unmap: %s", !d->iovad ?
				 "domain has no IOVA space" : "size 0");
		return -EINVAL;
	}
	off = iova & (IOM_PAGE_SIZE - 1);
	iova -= off;
	pages = (size + off + IOM_PAGE_SIZE - 1) >> IOM_PAGE_SHIFT;
	/* unmap nothing unless the IOVA can be freed: an error changes nothing */
	if (iom_iova_check_range(d->iovad, iova >> IOM_PAGE_SHIFT, pages)) {
		iom_warn(d->iommu->m, "iommu_dma_unmap: iova %#lx size %#zx of domain %u "
			 "is not a range iommu_dma_map handed out", iova + off, size, d->id);
		return -EINVAL;
	}
	iom_iommu_iotlb_gather_init(&g);
	g.queued = d->type == IOM_IOMMU_DOMAIN_DMA_FQ;
	n = iom_io_pgtable_unmap(d->pgtbl, iova, pages << IOM_PAGE_SHIFT, &g);
	if (!n) {
		iom_warn(d->iommu->m, "iommu_dma_unmap: nothing is mapped at iova %#lx "
			 "of domain %u", iova, d->id);
		return -EINVAL;
	}
	/* __iommu_dma_unmap() -> iommu_unmap_fast() -> __iommu_unmap()'s trace */
	iom_trace(d->iommu->m, IOM_TRACE_IOMMU_UNMAP, 'i', d->id, iova,
		  pages << IOM_PAGE_SHIFT, n);
	if (!g.queued) {
		iom_iommu_iotlb_sync(d, &g);
		return iom_free_iova_fast(d->iovad, iova >> IOM_PAGE_SHIFT, pages);
	}
	return queue_iova(d, iova >> IOM_PAGE_SHIFT, pages);
}

void iom_iommu_dma_flush_queue(struct iom_iommu_domain *d)
{
	if (!d || !d->iovad)
		return;
	fq_flush_iotlb(d);
	fq_ring_free_all(d);
}

/* fq_flush_timeout(), for every DMA_FQ domain of the unit. */
static void *fq_timer_main(void *arg)
{
	struct iom_iommu *iommu = arg;

	iom_rcu_register_thread();
	pthread_mutex_lock(&iommu->lock);
	while (!iommu->fq_stop) {
		struct timespec ts;

		if (!atomic_load(&iommu->fq_timer_on)) {
			pthread_cond_wait(&iommu->fq_cv, &iommu->lock);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(iommu->cfg.fq_timeout_us % 1000000) * 1000;
		ts.tv_sec += iommu->cfg.fq_timeout_us / 1000000 + ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		while (!iommu->fq_stop &&
		       pthread_cond_timedwait(&iommu->fq_cv, &iommu->lock, &ts) != ETIMEDOUT)
			;
		if (iommu->fq_stop)
			break;
		atomic_store(&iommu->fq_timer_on, false);
		for (struct list_head *p = iommu->domains.next; p != &iommu->domains; p = p->next) {
			struct iom_iommu_domain *d = list_entry(p, struct iom_iommu_domain, node);

			if (d->type != IOM_IOMMU_DOMAIN_DMA_FQ || !d->iovad ||
			    !atomic_load(&d->fq_pending))
				continue;
			fq_flush_iotlb(d);
			fq_ring_free_all(d);
			atomic_fetch_add_explicit(&iommu->fq_timeouts, 1, memory_order_relaxed);
		}
	}
	pthread_mutex_unlock(&iommu->lock);
	iom_rcu_unregister_thread();
	return NULL;
}
