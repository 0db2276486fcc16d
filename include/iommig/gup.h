/* SPDX-License-Identifier: MIT */
/*
 * libiommig - pinning user pages (include/linux/mm.h's FOLL_* flags and
 * pin_user_pages() family; mm/gup.c).
 *
 * Conventions in this header:
 *   @m:     the machine of the pages.
 *   @mm:    the process whose pages are pinned.
 *   @pages: an array of page pointers, one per pinned page.
 *
 * A pin (FOLL_PIN) is counted in the page's reference count: each pin adds
 * IOM_GUP_PIN_COUNTING_BIAS, as the kernel does for order-0 pages, so a
 * page with at least that many references "may be DMA-pinned". Pinned
 * pages stay where they are: migration fails on their reference count and
 * compaction skips them. A long-term pin (IOM_FOLL_LONGTERM) first moves
 * every page out of CMA areas and ZONE_MOVABLE, which must stay movable.
 */
#ifndef IOMMIG_GUP_H
#define IOMMIG_GUP_H

#include <stdbool.h>
#include <stdint.h>

#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iom_mm;

/*
 * gup_flags, with the values of the kernel's enum (Linux 6.3+). FOLL_PIN
 * is implied by iom_pin_user_pages() and is not a caller's flag; FOLL_GET
 * is refused by it, as the kernel's is_valid_gup_args() does.
 */
#define IOM_FOLL_WRITE		(1U << 0)	/* pin for writing: break COW first */
#define IOM_FOLL_GET		(1U << 1)	/* not valid with pin_user_pages */
#define IOM_FOLL_NOFAULT	(1U << 5)	/* do not fault in: -EFAULT instead */
#define IOM_FOLL_LONGTERM	(1U << 8)	/* migrate out of CMA/ZONE_MOVABLE first */

/* GUP_PIN_COUNTING_BIAS: what one pin adds to an order-0 page's count. */
#define IOM_GUP_PIN_COUNTING_BIAS	1024

/**
 * iom_pin_user_pages() - pin_user_pages_remote(): pin @nr_pages pages of
 * @mm from @start.
 * @mm:        the process.
 * @start:     first user address, page aligned.
 * @nr_pages:  pages to pin (at least 1).
 * @gup_flags: IOM_FOLL_WRITE, IOM_FOLL_LONGTERM, IOM_FOLL_NOFAULT.
 * @pages:     receives the @nr_pages pinned pages.
 *
 * Walks the page table, faulting pages in (for write with IOM_FOLL_WRITE,
 * which breaks copy-on-write, so the pinned page is the process's own; a
 * read pin of an anonymous page shared after fork unshares it first). Each
 * pinned page gets IOM_GUP_PIN_COUNTING_BIAS more references and counts
 * nr_foll_pin_acquired.
 *
 * With IOM_FOLL_LONGTERM, pages faulted in are allocated outside CMA and
 * ZONE_MOVABLE (memalloc_pin_save()), and pages already there are moved
 * out: everything is unpinned, those pages are migrated (reason
 * longterm_pin) and the whole range is pinned again, until no page is in
 * CMA or ZONE_MOVABLE.
 *
 * Unlike the kernel, which may return a short count, an error releases
 * every pin the call took: the result is all @nr_pages or nothing.
 *
 * Context: any thread; takes @mm's mmap_lock for read; may sleep (faults,
 * migration entries, page locks, migration).
 * Return: @nr_pages; -EFAULT for an address outside every VMA, a VMA
 * without the access asked for (write to a read-only VMA), or a page not
 * present with IOM_FOLL_NOFAULT; -ENOMEM (no memory, or a long-term pin
 * whose pages could not all be migrated); -EINVAL for bad arguments (NULL
 * @mm or @pages, unaligned @start, @nr_pages 0 or beyond the address
 * space, unknown flags or IOM_FOLL_GET).
 */
IOM_API long iom_pin_user_pages(struct iom_mm *mm, uint64_t start,
				unsigned long nr_pages, unsigned int gup_flags,
				struct iom_page **pages);

/**
 * iom_unpin_user_page() - unpin_user_page(): drop one pin of @page (the
 * last reference frees it) and count nr_foll_pin_released.
 * Context: any thread. A page that is not pinned is reported and left alone.
 */
IOM_API void iom_unpin_user_page(struct iom_machine *m, struct iom_page *page);

/**
 * iom_unpin_user_pages() - unpin_user_pages(): iom_unpin_user_page() for
 * each of the @npages pages of @pages (NULL entries are skipped).
 */
IOM_API void iom_unpin_user_pages(struct iom_machine *m, struct iom_page **pages,
				  unsigned long npages);

/**
 * iom_unpin_user_pages_dirty_lock() - unpin_user_pages_dirty_lock(): as
 * iom_unpin_user_pages(), and with @make_dirty each page not already dirty
 * is first dirtied under its page lock (set_page_dirty_lock()), as a
 * device that wrote into it requires.
 * Context: may sleep on page locks.
 */
IOM_API void iom_unpin_user_pages_dirty_lock(struct iom_machine *m,
					     struct iom_page **pages,
					     unsigned long npages,
					     bool make_dirty);

/**
 * iom_page_maybe_dma_pinned() - page_maybe_dma_pinned(): does @page have
 * at least IOM_GUP_PIN_COUNTING_BIAS references? False positives are
 * possible (that many ordinary references), false negatives are not.
 */
static inline bool iom_page_maybe_dma_pinned(const struct iom_page *page)
{
	return iom_page_ref_count(iom_compound_head(page)) >=
	       IOM_GUP_PIN_COUNTING_BIAS;
}

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_GUP_H */
