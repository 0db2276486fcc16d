/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the MM tests that look at free memory, processes and
 * page tables. Header-only: they include the library's internal headers,
 * which util.c (linked into every test) does not.
 */
#ifndef IOMMIG_TEST_MM_UTIL_H
#define IOMMIG_TEST_MM_UTIL_H

#include "util.h"
#include "mm/mm_types.h"

/* Pages on the free lists after every per-thread cache is drained. */
static inline unsigned long test_nr_free(struct iom_machine *m)
{
	unsigned long n;

	iom_drain_all_pages(m);
	assert_int_equal(iom_check_free_lists(m, &n), 0);
	return n;
}

/* Every page of @m is free again and nothing was reported. */
static inline void test_assert_machine_clean(struct iom_machine *m)
{
	assert_int_equal(test_nr_free(m), iom_end_pfn(m) - iom_first_pfn(m));
	assert_int_equal(iom_machine_bug_count(m), 0);
}

/* A migration target for @page: movable, of @page's order (a compound
 * page moves whole). */
static inline struct iom_page *test_alloc_like(struct iom_machine *m,
					       const struct iom_page *page)
{
	unsigned int order = iom_compound_order(page);

	return iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE | (order ? IOM___GFP_COMP : 0),
			       order);
}

/* The PTE at @addr of @mm, 0 where no page table exists. */
static inline pte_t test_get_pte(struct iom_mm *mm, uint64_t addr)
{
	pte_t *ptep = pte_offset_map_lock(mm, addr);
	pte_t pte = 0;

	if (ptep) {
		pte = ptep_get(ptep);
		pte_unmap_unlock(mm);
	}
	return pte;
}

/* iom_mmap() that must succeed; the address it chose. */
static inline uint64_t test_mmap(struct iom_mm *mm, uint64_t addr, size_t len,
				 int prot, int flags, struct iom_inode *file,
				 uint64_t off)
{
	uint64_t at = 0;

	assert_int_equal(iom_mmap(mm, addr, len, prot, flags, file, off, &at), 0);
	return at;
}

/* The page mapped at @addr, with a reference the caller drops. */
static inline struct iom_page *test_get_page_at(struct iom_mm *mm, uint64_t addr)
{
	struct iom_page *page;

	assert_int_equal(iom_follow_page(mm, addr, &page), 0);
	return page;
}

#endif
