/* SPDX-License-Identifier: MIT */
/*
 * libiommig - the Contiguous Memory Allocator and contiguous page ranges
 * (include/linux/cma.h, mm/cma.c; alloc_contig_range() and
 * free_contig_range() of include/linux/gfp.h, mm/page_alloc.c).
 *
 * Conventions in this header:
 *   @m:     the machine.
 *   @cma:   a CMA area of @m, from iom_cma_get() or iom_cma_get_by_name().
 *   @count: a number of pages.
 *   @start, @end: a pfn range [start, end).
 *
 * The areas themselves are declared in struct iom_machine_config and
 * described by iom_cma_area_count() / iom_cma_area_info() (<iommig/mm.h>).
 * The counters are the vm events IOM_CMA_ALLOC_SUCCESS and
 * IOM_CMA_ALLOC_FAIL (<iommig/vmstat.h>); migrations count
 * pgmigrate_success / pgmigrate_fail with reason IOM_MR_CONTIG_RANGE.
 */
#ifndef IOMMIG_CMA_H
#define IOMMIG_CMA_H

#include <stdbool.h>

#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A CMA area (the kernel's struct cma). Opaque. */
struct iom_cma;

/**
 * iom_cma_get() - the handle of CMA area @idx of @m.
 * Context: any.
 * Return: the area; NULL with errno EINVAL if @m has no area @idx.
 */
IOM_API struct iom_cma *iom_cma_get(struct iom_machine *m, unsigned int idx);

/**
 * iom_cma_get_by_name() - the CMA area of @m called @name.
 * Context: any.
 * Return: the area; NULL with errno EINVAL (bad argument) or ENOENT.
 */
IOM_API struct iom_cma *iom_cma_get_by_name(struct iom_machine *m,
					    const char *name);

/** iom_cma_get_base() - cma_get_base(): physical address of @cma, 0 for NULL. */
IOM_API uint64_t iom_cma_get_base(const struct iom_cma *cma);
/** iom_cma_get_size() - cma_get_size(): bytes of @cma, 0 for NULL. */
IOM_API uint64_t iom_cma_get_size(const struct iom_cma *cma);
/** iom_cma_get_name() - cma_get_name(): the name of @cma, NULL for NULL. */
IOM_API const char *iom_cma_get_name(const struct iom_cma *cma);

/**
 * iom_cma_used_pages() - pages of @cma allocated (or being allocated) by
 * iom_cma_alloc(): debugfs cma/<name>/used.
 * Context: takes the area's bitmap lock.
 * Return: the count, 0 for NULL.
 */
IOM_API unsigned long iom_cma_used_pages(struct iom_cma *cma);
/**
 * iom_cma_maxchunk_pages() - the largest run of free bits of @cma, in
 * pages: debugfs cma/<name>/maxchunk.
 * Context: takes the area's bitmap lock.
 * Return: the count, 0 for NULL.
 */
IOM_API unsigned long iom_cma_maxchunk_pages(struct iom_cma *cma);

/**
 * iom_cma_alloc() - cma_alloc(): allocate @count contiguous pages of @cma.
 * @cma:     the area.
 * @count:   pages wanted, 1 to the size of the area.
 * @align:   the first pfn is a multiple of 2^@align pages.
 * @no_warn: do not print the failure message.
 *
 * Finds a free run of the area's bitmap (bitmap_find_next_zero_area_off()),
 * marks it, and calls iom_alloc_contig_range() on it with
 * IOM_MIGRATE_CMA, which migrates the movable pages living there
 * elsewhere. When that range is busy (-EBUSY: a page could not be
 * migrated), the run is unmarked and the search goes on past it (from
 * the run's start + 2^@align), as the kernel does. On failure and unless
 * @no_warn, prints "cma_alloc: <name>: alloc failed, req-size: <count>
 * pages, ret: <err>" and the area's free runs. Counts cma_alloc_success
 * or cma_alloc_fail.
 *
 * Context: may sleep (migration waits for page locks); takes the area's
 * mutex. Must not be called with a page locked or with page_table_lock,
 * tree_lock, lru_lock or an allocator lock held.
 * Return: the first of @count pages, each with one reference (not a
 * compound page); NULL with errno EINVAL (NULL @cma, @count 0 or larger
 * than the area, @align of 63 or more; nothing is counted), ENOMEM (no
 * free run of the bitmap fits, or migration ran out of memory) or EBUSY
 * (every run tried held a page that could not be migrated).
 */
IOM_API struct iom_page *iom_cma_alloc(struct iom_cma *cma, unsigned long count,
				       unsigned int align, bool no_warn);

/**
 * iom_cma_release() - cma_release(): give back @count pages from @pages,
 * all allocated from @cma (a part of an allocation may be released).
 * Each page loses one reference (free_contig_range()); a page still
 * referenced by someone else is reported ("free_contig_range: N pages
 * are still in use!") and is freed when that reference goes.
 * Context: may be called from any thread; takes the area's bitmap lock.
 * Return: 0; -EINVAL (with a warning, nothing changed) for a NULL
 * argument, @count 0, pages outside @cma, or pages not allocated from it
 * (a double release).
 */
IOM_API int iom_cma_release(struct iom_cma *cma, struct iom_page *pages,
			    unsigned long count);

/* ---- contiguous ranges (mm/page_alloc.c) ------------------------------- */

/**
 * iom_alloc_contig_range() - alloc_contig_range(): take every page of
 * [@start, @end) out of the buddy allocator.
 * @m:           the machine.
 * @start:       first pfn.
 * @end:         one past the last pfn; [@start, @end) lies in one zone.
 * @migratetype: IOM_MIGRATE_CMA for a range of a CMA area,
 *               IOM_MIGRATE_MOVABLE otherwise.
 * @gfp:         the caller's context (IOM_GFP_KERNEL); migration targets
 *               are allocated with GFP_USER | __GFP_MOVABLE |
 *               __GFP_RETRY_MAYFAIL on the range's node, as the kernel.
 *
 * Isolates the pageblocks covering the range (iom_start_isolate_page_range()),
 * drains every per-thread cache, migrates the movable pages of the range
 * out (up to 5 rounds without progress, reason IOM_MR_CONTIG_RANGE,
 * IOM_MIGRATE_SYNC), checks that every page of the range is free and
 * isolated, takes the free pages (giving back the parts of free blocks
 * outside the range), and restores the pageblocks' type. When a page is
 * still busy it prints "alloc_contig_range: [<start>, <end>) PFNs busy"
 * (hex pfns) at info level and returns -EBUSY with every page where it was
 * (pages migrated meanwhile stay migrated).
 *
 * Context: may sleep; see iom_cma_alloc() for the locks the caller must
 * not hold.
 * Return: 0 with every page of the range holding one reference (order-0
 * pages, not compound); -EINVAL for a bad range, type or gfp; -EBUSY if a
 * pageblock of the range cannot be isolated (unmovable pages, or isolated
 * by someone else) or a page could not be freed; -ENOMEM if migration
 * found no target page.
 */
IOM_API int iom_alloc_contig_range(struct iom_machine *m, unsigned long start,
				   unsigned long end, int migratetype,
				   iom_gfp_t gfp);

/**
 * iom_free_contig_range() - free_contig_range(): drop one reference on
 * each of the @nr_pages pages from @pfn. Pages still referenced
 * afterwards are counted and reported ("free_contig_range: N pages are
 * still in use!").
 * Context: any thread.
 * Return: 0; -EINVAL (with a warning, nothing changed) for a range outside
 * memory, @nr_pages 0, or a page that is free or part of a compound page.
 */
IOM_API int iom_free_contig_range(struct iom_machine *m, unsigned long pfn,
				  unsigned long nr_pages);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_CMA_H */
