/* SPDX-License-Identifier: MIT */
/*
 * libiommig - the IOVA allocator (include/linux/iova.h, drivers/iommu/iova.c).
 *
 * An IOVA domain hands out ranges of I/O virtual page frames (units of the
 * domain's granule), size-aligned, top-down below a limit, from a balanced
 * tree of allocated ranges with the kernel's cached-node trick. In front of
 * the tree, per-thread magazine caches (the kernel's per-cpu iova_rcache)
 * keep recently freed ranges of 1..32 granules for reuse, with a shared
 * depot of full magazines behind them.
 *
 * Conventions in this header:
 *   @iovad:     a domain from iom_init_iova_domain().
 *   @pfn:       an IOVA page frame number (iova >> iova_shift()).
 *   @size:      a number of granules.
 *   @limit_pfn: the highest pfn an allocation may use (inclusive).
 *
 * Ranges that start at pfn 2^36 or above (beyond a 48-bit space of 4 KiB
 * granules) work but are never cached.
 *
 * Failures are the kernel's: an allocation that finds no space returns 0
 * (alloc_iova_fast) or NULL (alloc_iova). Freeing a range that is not
 * allocated (never was, already freed, or with the wrong size) is
 * reported with a warning on the domain's machine and changes nothing.
 */
#ifndef IOMMIG_IOVA_H
#define IOMMIG_IOVA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iommig/export.h>
#include <iommig/machine.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes up to 2^(IOM_IOVA_RANGE_CACHE_MAX_SIZE - 1) granules are cached. */
#define IOM_IOVA_RANGE_CACHE_MAX_SIZE	6
/* pfns in one magazine (IOVA_MAG_SIZE: a magazine is 1 KiB) */
#define IOM_IOVA_MAG_SIZE		127
/* full magazines the shared depot keeps per size */
#define IOM_IOVA_MAX_GLOBAL_MAGS	32

/**
 * struct iom_iova - one allocated or reserved range (struct iova).
 * @pfn_hi: last pfn.  @pfn_lo: first pfn.
 */
struct iom_iova {
	unsigned long pfn_hi;
	unsigned long pfn_lo;
	/* private: tree linkage */
	struct iom_iova *_left, *_right, *_parent;
	unsigned int _prio;
	unsigned int _flags;
};

struct iom_iova_domain;

/**
 * iom_init_iova_domain() - init_iova_domain() + iova_domain_init_rcaches().
 * @m:         where warnings go (its log hook); may be NULL (stderr).
 * @granule:   bytes of one IOVA page: a power of two, at most 4096.
 * @start_pfn: lowest pfn handed out (the kernel's IOVA_START_PFN is 1:
 *             pfn 0 is never returned, since 0 means failure).
 *
 * Context: any thread.
 * Return: the domain, or NULL with errno EINVAL (bad @granule or
 * @start_pfn 0: a warning says why) or ENOMEM.
 */
IOM_API struct iom_iova_domain *iom_init_iova_domain(struct iom_machine *m,
						     unsigned long granule,
						     unsigned long start_pfn);

/**
 * iom_put_iova_domain() - put_iova_domain(): free every range, cache and
 * the domain. NULL is a no-op.
 * Context: no other thread may use @iovad during or after the call.
 * Threads that used it may still be alive; their caches are detached.
 */
IOM_API void iom_put_iova_domain(struct iom_iova_domain *iovad);

/** iom_iova_shift() - log2 of the domain's granule. */
IOM_API unsigned int iom_iova_shift(const struct iom_iova_domain *iovad);

/**
 * iom_alloc_iova_fast() - alloc_iova_fast(): @size granules below
 * @limit_pfn, from the calling thread's cache when it holds a range of
 * that size, else from the tree (size-aligned, top-down). Sizes below 32
 * are rounded up to a power of two, as the kernel does.
 * @flush_rcache: when the tree has no space, give every cached range back
 *                (all threads' magazines and the depot) and try once more.
 *
 * Context: any thread; takes the domain's tree lock on a cache miss. A
 * flush waits (yielding) for each thread that is inside a cache operation
 * of @iovad to leave it.
 * Return: the first pfn, or 0 when there is no space (or bad input: a
 * warning says what).
 */
IOM_API unsigned long iom_alloc_iova_fast(struct iom_iova_domain *iovad,
					  unsigned long size,
					  unsigned long limit_pfn,
					  bool flush_rcache);

/**
 * iom_free_iova_fast() - free_iova_fast(): give back a range from
 * iom_alloc_iova_fast() (or iom_alloc_iova()) with the @size it was asked
 * with; it goes into the calling thread's cache when its size is
 * cacheable, else back to the tree.
 * Context: any thread.
 * Return: 0; -EINVAL if [@pfn, @pfn + @size) is not an allocated range of
 * that size (never allocated, already freed, reserved): reported, nothing
 * changed.
 */
IOM_API int iom_free_iova_fast(struct iom_iova_domain *iovad, unsigned long pfn,
			       unsigned long size);

/**
 * iom_alloc_iova() - alloc_iova(): @size granules below @limit_pfn from
 * the tree (no cache), aligned to the power of two at or above @size when
 * @size_aligned.
 * Return: the range, or NULL when there is no space or the input is bad.
 */
IOM_API struct iom_iova *iom_alloc_iova(struct iom_iova_domain *iovad,
					unsigned long size,
					unsigned long limit_pfn,
					bool size_aligned);

/**
 * iom_find_iova() - find_iova(): the range holding @pfn (allocated,
 * reserved, or sitting in a cache), or NULL.
 * Context: the range may be freed by another thread at once: use it only
 * while you know it stays allocated.
 */
IOM_API struct iom_iova *iom_find_iova(struct iom_iova_domain *iovad,
				       unsigned long pfn);

/**
 * iom___free_iova() - __free_iova(): free a range returned by
 * iom_alloc_iova(), iom_find_iova() or iom_reserve_iova().
 * Return: 0; -EINVAL if it is not an allocated or reserved range of
 * @iovad (reported, nothing changed).
 */
IOM_API int iom___free_iova(struct iom_iova_domain *iovad, struct iom_iova *iova);

/**
 * iom_free_iova() - free_iova(): free the allocated range holding @pfn.
 * Return: 0, or -EINVAL as iom___free_iova().
 */
IOM_API int iom_free_iova(struct iom_iova_domain *iovad, unsigned long pfn);

/**
 * iom_reserve_iova() - reserve_iova(): keep [@pfn_lo, @pfn_hi] out of
 * every allocation; overlapping reserved ranges merge.
 * Return: the reserved range, or NULL (bad range: reported; no memory;
 * overlap with an allocated range).
 */
IOM_API struct iom_iova *iom_reserve_iova(struct iom_iova_domain *iovad,
					  unsigned long pfn_lo,
					  unsigned long pfn_hi);

/**
 * iom_free_cpu_cached_iovas() - free_cpu_cached_iovas() for the calling
 * thread: its magazines go back to the tree.
 */
IOM_API void iom_free_cpu_cached_iovas(struct iom_iova_domain *iovad);

/**
 * iom_free_all_cpu_cached_iovas() - free_cpu_cached_iovas() of every
 * thread that used @iovad ("for_each_online_cpu").
 */
IOM_API void iom_free_all_cpu_cached_iovas(struct iom_iova_domain *iovad);

/** iom_free_global_cached_iovas() - free_global_cached_iovas(): the depot. */
IOM_API void iom_free_global_cached_iovas(struct iom_iova_domain *iovad);

/**
 * struct iom_iova_stats - what a domain holds and did.
 * @nr_ranges:     ranges in the tree (allocated, reserved or cached).
 * @nr_cached:     of those, ranges sitting in magazines or the depot.
 * @depot_mags:    full magazines in the depot, all sizes.
 * @rcache_hits:   allocations served by a cache.
 * @rcache_misses: cacheable allocations that went to the tree.
 * @flushes:       flush-and-retry rounds after the tree ran out.
 * @bad_frees:     frees of ranges that were not allocated.
 */
struct iom_iova_stats {
	unsigned long nr_ranges;
	unsigned long nr_cached;
	unsigned long depot_mags;
	unsigned long rcache_hits;
	unsigned long rcache_misses;
	unsigned long flushes;
	unsigned long bad_frees;
};

/** iom_iova_domain_stats() - fill @out. Context: takes the domain's locks. */
IOM_API void iom_iova_domain_stats(struct iom_iova_domain *iovad,
				   struct iom_iova_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_IOVA_H */
