/* SPDX-License-Identifier: MIT */
/*
 * Internals of the IOMMU layer shared by iommu.c and iotlb.c (and the
 * tests). Not installed.
 */
#ifndef IOM_IOMMU_PRIV_H
#define IOM_IOMMU_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <iommig/iommu.h>
#include <iommig/iova.h>

/* ---- the IOTLB (iotlb.c) ------------------------------------------------ */

/*
 * One entry: a tag (0: invalid) and the leaf PTE it caches. Readers take
 * no lock: they load the tag, the PTE, and the tag again, and use the PTE
 * only when both tags match. Fills and invalidations hold the set's lock.
 * Tag: bit 63 valid, bits 60-61 level, bits 44-59 domain id, bits 0-43
 * the IOVA divided by the leaf size.
 */
struct iom_iotlb_entry {
	_Atomic uint64_t tag;
	_Atomic uint64_t pte;
	_Atomic uint32_t stamp;		/* LRU: the set's clock at the last use */
};

struct iom_iotlb_set {
	atomic_int lock;
	_Atomic uint32_t clock;
} __attribute__((aligned(64)));

struct iom_iotlb {
	unsigned int nr_sets;		/* a power of two */
	unsigned int ways;
	enum iom_iotlb_replacement repl;
	struct iom_iotlb_set *sets;
	struct iom_iotlb_entry *entries;	/* nr_sets * ways */
	_Atomic unsigned int levels;	/* bit l: a leaf of level l was cached */
	/*
	 * Bumped by every invalidation before it drops entries. A fill takes
	 * a snapshot before its walk and gives up if it changed: a walk that
	 * raced with an invalidation never leaves a stale entry behind.
	 */
	_Atomic uint64_t gen;
	atomic_bool skip_invalidation;	/* test-only switch */
	_Atomic uint64_t evictions, invalidated;
	_Atomic uint64_t inv_page, inv_range, inv_domain, inv_all;
};

/** A translation found in the IOTLB. */
struct iom_iotlb_hit {
	uint64_t pte;
	int level;		/* 1: 1 GiB, 2: 2 MiB, 3: 4 KiB */
	struct iom_iotlb_entry *e;
};

#define IOM_IOTLB_LEVEL_SHIFT(lvl)	(12 + 9 * (3 - (lvl)))

int iom_iotlb_init(struct iom_iotlb *tlb, unsigned int entries,
		   unsigned int ways, enum iom_iotlb_replacement repl);
void iom_iotlb_destroy(struct iom_iotlb *tlb);
bool iom_iotlb_lookup(struct iom_iotlb *tlb, unsigned int domid,
		      unsigned long iova, struct iom_iotlb_hit *hit);
static inline uint64_t iom_iotlb_gen(struct iom_iotlb *tlb)
{
	return atomic_load_explicit(&tlb->gen, memory_order_seq_cst);
}
void iom_iotlb_fill(struct iom_iotlb *tlb, unsigned int domid,
		    unsigned long iova, int level, uint64_t pte, uint64_t gen);
/* Drop entries of @domid in [@start, @last] (inclusive). */
void iom_iotlb_inv_range(struct iom_iotlb *tlb, unsigned int domid,
			 unsigned long start, unsigned long last);
void iom_iotlb_inv_domain(struct iom_iotlb *tlb, unsigned int domid);
void iom_iotlb_inv_all(struct iom_iotlb *tlb);

/**
 * iom_iommu_set_skip_invalidation() - TEST ONLY: make every IOTLB
 * invalidation of @iommu do nothing (the completion wait still runs), so
 * tests can prove their checks catch stale translations.
 */
void iom_iommu_set_skip_invalidation(struct iom_iommu *iommu, bool skip);

/* ---- iova.c, for iommu.c ------------------------------------------------ */

/*
 * iom_iova_check_range() - is [@pfn, @pfn + @size) a range the allocator
 * handed out with that size, so that iom_free_iova_fast() will take it?
 * Return: 0; -EINVAL (nothing reported).
 */
int iom_iova_check_range(struct iom_iova_domain *iovad, unsigned long pfn,
			 unsigned long size);

#endif /* IOM_IOMMU_PRIV_H */
