/* SPDX-License-Identifier: MIT */
/*
 * The buddy allocator: splitting and merging at every order, fallback and
 * pageblock stealing, CMA kept for movable allocations, isolation, the
 * per-thread caches, watermarks, zones and nodes, page poisoning, and every
 * bad input. After each scenario the free lists are checked against their
 * counters (iom_check_free_lists()).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "mm_util.h"

#define MiB (1ULL << 20)

static struct test_log tlog;

/* A machine of @mem bytes with the given orders and no watermarks. */
static struct iom_machine *small_machine(uint64_t mem, unsigned int pb_order,
					 unsigned int max_order)
{
	struct iom_machine_config cfg = { 0 };

	cfg.mem_size = mem;
	cfg.pageblock_order = pb_order;
	cfg.max_order = max_order;
	return test_machine(0, &tlog, &cfg);
}

static unsigned long zone_free(struct iom_machine *m, int nid, int zt)
{
	struct iom_zone_info zi;

	assert_int_equal(iom_zone_info(m, nid, zt, &zi), 0);
	return zi.nr_free_pages;
}

/* ---- split and merge ---------------------------------------------------- */

static void split_and_merge_at_every_order(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	unsigned int order;

	assert_non_null(m);
	for (order = 0; order <= 10; order++) {
		struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL, order);
		unsigned long pfn;

		assert_non_null(p);
		pfn = iom_page_to_pfn(m, p);
		assert_int_equal(pfn & ((1UL << order) - 1), 0);
		assert_int_equal(iom_page_ref_count(p), 1);
		assert_int_equal(iom_compound_order(p), order);
		assert_int_equal(iom_check_free_lists(m, NULL), 0);
		assert_int_equal(iom___free_pages(m, p, order), 0);
		test_assert_machine_clean(m);
	}
	/* Everything merged back: two free MAX_ORDER blocks. */
	struct iom_zone_info zi;
	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
	assert_int_equal(zi.nr_free[10], 2);
	for (order = 0; order < 10; order++)
		assert_int_equal(zi.nr_free[order], 0);
	iom_machine_destroy(m);
}

static void split_leaves_one_free_buddy_per_order(void **state)
{
	struct iom_machine *m = small_machine(4 * MiB, 9, 10);
	struct iom_zone_info zi;
	struct iom_page *p;
	unsigned int o;

	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 2);
	assert_non_null(p);
	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
	for (o = 0; o <= 10; o++)
		assert_int_equal(zi.nr_free[o], o >= 2 && o < 10 ? 1 : 0);
	assert_int_equal(iom___free_pages(m, p, 2), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void compound_page_has_head_and_tails(void **state)
{
	struct iom_machine *m = small_machine(4 * MiB, 9, 10);
	struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL, 3);
	int i;

	assert_non_null(p);
	assert_true(iom_PageHead(p));
	for (i = 1; i < 8; i++) {
		assert_true(iom_PageTail(&p[i]));
		assert_ptr_equal(iom_compound_head(&p[i]), p);
	}
	/* put_page on a tail drops the head's reference and frees all. */
	assert_int_equal(iom_get_page(m, &p[5]), 0);
	assert_int_equal(iom_page_ref_count(p), 2);
	assert_int_equal(iom_put_page(m, &p[5]), 0);
	assert_int_equal(iom_put_page(m, p), 0);
	assert_false(iom_PageHead(p));
	assert_false(iom_PageTail(&p[1]));
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void gfp_zero_clears_content(void **state)
{
	struct iom_machine *m = small_machine(4 * MiB, 9, 10);
	struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL, 1);
	unsigned char *c;
	size_t i;

	assert_non_null(p);
	memset(iom_page_address(m, p), 0x5a, 2 * IOM_PAGE_SIZE);
	assert_int_equal(iom___free_pages(m, p, 1), 0);
	p = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_ZERO, 1);
	assert_non_null(p);
	c = iom_page_address(m, p);
	for (i = 0; i < 2 * IOM_PAGE_SIZE; i++)
		assert_int_equal(c[i], 0);
	assert_int_equal(iom___free_pages(m, p, 1), 0);
	iom_machine_destroy(m);
}

/* ---- fallback and stealing ---------------------------------------------- */

/* pageblock_order 4, max_order 5: 16-page pageblocks, 32-page blocks. */
#define PB 16

static void unmovable_fallback_claims_whole_free_block(void **state)
{
	struct iom_machine *m = small_machine(128 << 10, 4, 5);
	unsigned long before = iom_vm_event_count(m, IOM_EXTFRAG_EVENTS);
	struct iom_page *p;
	unsigned long pfn;

	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_non_null(p);
	pfn = iom_page_to_pfn(m, p);
	/* A MAX_ORDER block was found: both its pageblocks change owner. */
	assert_int_equal(iom_get_pageblock_migratetype(m, pfn), IOM_MIGRATE_UNMOVABLE);
	assert_int_equal(iom_get_pageblock_migratetype(m, pfn ^ PB), IOM_MIGRATE_UNMOVABLE);
	assert_true(iom_vm_event_count(m, IOM_EXTFRAG_EVENTS) > before);
	assert_true(iom_vm_event_count(m, IOM_EXTFRAG_CHANGE_OWNERSHIP) > 0);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/*
 * An unmovable request into a movable pageblock whose allocated pages are
 * on the LRU moves the free pages but leaves the block movable when fewer
 * than half of its pages are free or unmovable.
 */
static void fallback_keeps_owner_of_mostly_movable_block(void **state)
{
	struct iom_machine *m = small_machine(128 << 10, 4, 5);
	struct iom_page *a, *b3, *b1, *u;
	unsigned long bpfn;
	int i;

	a = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 4);	/* pageblock A */
	b3 = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 3);	/* 8 of B */
	b1 = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 1);	/* 2 of B */
	assert_non_null(a);
	assert_non_null(b3);
	assert_non_null(b1);
	bpfn = iom_page_to_pfn(m, b3) & ~(unsigned long)(PB - 1);
	assert_int_equal(bpfn, iom_page_to_pfn(m, b1) & ~(unsigned long)(PB - 1));
	/* 10 LRU pages, 6 free: 6 < 16/2, so no claim. */
	for (i = 0; i < 8; i++)
		iom_SetPageLRU(&b3[i]);
	iom_SetPageLRU(&b1[0]);
	iom_SetPageLRU(&b1[1]);

	u = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_non_null(u);
	assert_int_equal(iom_page_to_pfn(m, u) & ~(unsigned long)(PB - 1), bpfn);
	assert_int_equal(iom_get_pageblock_migratetype(m, bpfn), IOM_MIGRATE_MOVABLE);
	assert_int_equal(iom_vm_event_count(m, IOM_EXTFRAG_CHANGE_OWNERSHIP), 0);
	assert_int_equal(iom_check_free_lists(m, NULL), 0);

	/* Without the LRU pages the same request claims the block. */
	for (i = 0; i < 8; i++)
		iom_ClearPageLRU(&b3[i]);
	iom_ClearPageLRU(&b1[0]);
	iom_ClearPageLRU(&b1[1]);
	assert_int_equal(iom___free_pages(m, u, 0), 0);
	iom_drain_all_pages(m);
	/* Put the block's free pages back to movable and ask again. */
	assert_true(iom_set_pageblock_migratetype(m, bpfn, IOM_MIGRATE_MOVABLE) >= 0);
	u = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_non_null(u);
	assert_int_equal(iom_get_pageblock_migratetype(m, bpfn), IOM_MIGRATE_UNMOVABLE);
	assert_true(iom_vm_event_count(m, IOM_EXTFRAG_CHANGE_OWNERSHIP) > 0);

	assert_int_equal(iom___free_pages(m, u, 0), 0);
	assert_int_equal(iom___free_pages(m, b1, 1), 0);
	assert_int_equal(iom___free_pages(m, b3, 3), 0);
	assert_int_equal(iom___free_pages(m, a, 4), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/*
 * A small movable request that falls back into an unmovable pageblock
 * takes the smallest free block and leaves the block unmovable: the
 * "fragmenting" fallback.
 */
static void movable_fallback_takes_smallest_block(void **state)
{
	struct iom_machine *m = small_machine(128 << 10, 4, 5);
	struct iom_page *a, *b3, *b2, *mv;
	unsigned long first = iom_first_pfn(m), bpfn;

	assert_int_equal(iom_set_pageblock_migratetype(m, first, IOM_MIGRATE_UNMOVABLE), 32);
	assert_int_equal(iom_set_pageblock_migratetype(m, first + PB, IOM_MIGRATE_UNMOVABLE), 0);
	a = iom_alloc_pages(m, IOM_GFP_KERNEL, 4);
	b3 = iom_alloc_pages(m, IOM_GFP_KERNEL, 3);
	b2 = iom_alloc_pages(m, IOM_GFP_KERNEL, 2);
	assert_non_null(a);
	assert_non_null(b3);
	assert_non_null(b2);
	bpfn = iom_page_to_pfn(m, b3) & ~(unsigned long)(PB - 1);
	/* pageblock B has 4 free pages: one order-2 block. Use 2 of them. */
	struct iom_page *b1 = iom_alloc_pages(m, IOM_GFP_KERNEL, 1);
	assert_non_null(b1);

	unsigned long ev = iom_vm_event_count(m, IOM_EXTFRAG_EVENTS);
	unsigned long frag = iom_vm_event_count(m, IOM_EXTFRAG_FRAGMENTING);
	mv = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_non_null(mv);
	assert_int_equal(iom_page_to_pfn(m, mv) & ~(unsigned long)(PB - 1), bpfn);
	assert_int_equal(iom_get_pageblock_migratetype(m, bpfn), IOM_MIGRATE_UNMOVABLE);
	assert_int_equal(iom_vm_event_count(m, IOM_EXTFRAG_EVENTS), ev + 1);
	assert_int_equal(iom_vm_event_count(m, IOM_EXTFRAG_FRAGMENTING), frag + 1);
	assert_int_equal(iom_vm_event_count(m, IOM_EXTFRAG_CHANGE_OWNERSHIP), 0);

	assert_int_equal(iom___free_pages(m, mv, 0), 0);
	assert_int_equal(iom___free_pages(m, b1, 1), 0);
	assert_int_equal(iom___free_pages(m, b2, 2), 0);
	assert_int_equal(iom___free_pages(m, b3, 3), 0);
	assert_int_equal(iom___free_pages(m, a, 4), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- CMA ---------------------------------------------------------------- */

static struct iom_machine *cma_machine(void)
{
	struct iom_machine_config cfg = { 0 };

	cfg.mem_size = 16 * MiB;
	cfg.nr_cma_areas = 1;
	cfg.cma[0].size = 4 * MiB;
	cfg.cma[0].name = "test";
	return test_machine(0, &tlog, &cfg);
}

static int page_in_cma(struct iom_machine *m, struct iom_page *p)
{
	struct iom_cma_info ci;
	unsigned long pfn = iom_page_to_pfn(m, p);

	assert_int_equal(iom_cma_area_info(m, 0, &ci), 0);
	return pfn >= ci.base_pfn && pfn < ci.base_pfn + ci.count;
}

static void cma_pages_go_only_to_movable_allocations(void **state)
{
	struct iom_machine *m = cma_machine();
	static struct iom_page *held[4096];
	struct iom_cma_info ci;
	int n = 0, i, in_cma = 0;

	assert_non_null(m);
	assert_int_equal(iom_cma_area_count(m), 1);
	assert_int_equal(iom_cma_area_info(m, 0, &ci), 0);
	assert_string_equal(ci.name, "test");
	assert_int_equal(ci.count, 1024);
	assert_int_equal(iom_get_pageblock_migratetype(m, ci.base_pfn), IOM_MIGRATE_CMA);
	/* top of ZONE_NORMAL */
	assert_int_equal(ci.base_pfn + ci.count, iom_end_pfn(m));

	/* Unmovable allocations exhaust normal memory and never touch CMA. */
	while (n < 4096) {
		struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_NOWARN, 0);

		if (!p)
			break;
		assert_false(page_in_cma(m, p));
		held[n++] = p;
	}
	assert_int_equal(n, 3072);
	/* Movable allocations still succeed, from CMA. */
	for (i = 0; i < 1024; i++) {
		struct iom_page *p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);

		assert_non_null(p);
		in_cma += page_in_cma(m, p);
		held[n++] = p;
	}
	assert_int_equal(in_cma, 1024);
	assert_null(iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE | IOM___GFP_NOWARN, 0));
	assert_true(iom_vm_event_count(m, IOM_PGALLOC_FAIL) >= 1);
	for (i = 0; i < n; i++)
		assert_int_equal(iom___free_pages(m, held[i], 0), 0);
	test_assert_machine_clean(m);
	/* CMA pageblocks never merged with normal ones nor changed type. */
	assert_int_equal(iom_get_pageblock_migratetype(m, ci.base_pfn), IOM_MIGRATE_CMA);
	iom_machine_destroy(m);
}

static void movable_allocations_use_cma_when_it_is_most_of_free_memory(void **state)
{
	struct iom_machine *m = cma_machine();
	struct iom_page *big[3], *p;
	int i;

	/* Take 3 of the 3 normal MAX_ORDER blocks: all free memory is CMA. */
	for (i = 0; i < 3; i++) {
		big[i] = iom_alloc_pages(m, IOM_GFP_KERNEL, 10);
		assert_non_null(big[i]);
		assert_false(page_in_cma(m, big[i]));
	}
	assert_int_equal(iom___free_pages(m, big[2], 10), 0);
	/*
	 * big[2]'s pageblocks became unmovable when it was allocated, so no
	 * movable list has pages: CMA serves before any fallback steals.
	 */
	unsigned long ev = iom_vm_event_count(m, IOM_EXTFRAG_EVENTS);
	unsigned long b2 = iom_page_to_pfn(m, big[2]);
	p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 3);
	assert_non_null(p);
	assert_true(page_in_cma(m, p));
	assert_int_equal(iom_vm_event_count(m, IOM_EXTFRAG_EVENTS), ev);
	assert_int_equal(iom___free_pages(m, p, 3), 0);
	/* 1024 movable normal + 1024 CMA free: CMA is not over half. */
	assert_int_equal(iom_set_pageblock_migratetype(m, b2, IOM_MIGRATE_MOVABLE), 1024);
	assert_int_equal(iom_set_pageblock_migratetype(m, b2 + 512, IOM_MIGRATE_MOVABLE), 0);
	p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 3);
	assert_non_null(p);
	assert_false(page_in_cma(m, p));
	assert_int_equal(iom___free_pages(m, p, 3), 0);
	big[2] = iom_alloc_pages(m, IOM_GFP_KERNEL, 9);
	assert_non_null(big[2]);
	/* Now 512 normal vs 1024 CMA: CMA first even with movable pages free. */
	assert_int_equal(iom_set_pageblock_migratetype(m, b2 + 512, IOM_MIGRATE_MOVABLE), 512);
	p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 3);
	assert_non_null(p);
	assert_true(page_in_cma(m, p));
	assert_int_equal(iom___free_pages(m, p, 3), 0);
	assert_int_equal(iom___free_pages(m, big[2], 9), 0);
	assert_int_equal(iom___free_pages(m, big[0], 10), 0);
	assert_int_equal(iom___free_pages(m, big[1], 10), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void cma_config_errors_are_reported(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m = NULL;

	cfg.mem_size = 16 * MiB;
	cfg.min_free_kbytes = -1;
	cfg.log = test_log_hook;
	cfg.log_priv = &tlog;
	cfg.nr_cma_areas = 1;
	cfg.cma[0].size = 3 * IOM_PAGE_SIZE;	/* not pageblock-sized */
	test_log_reset(&tlog);
	assert_int_equal(iom_machine_create(&cfg, &m), -EINVAL);
	assert_null(m);
	assert_true(test_log_contains(&tlog, "cma[0]"));
	cfg.cma[0].size = 32 * MiB;		/* does not fit */
	assert_int_equal(iom_machine_create(&cfg, &m), -EINVAL);
	cfg.cma[0].size = 2 * MiB;
	cfg.cma[0].base = 64 * MiB;		/* outside memory */
	assert_int_equal(iom_machine_create(&cfg, &m), -EINVAL);
	cfg.nr_cma_areas = 2;
	cfg.cma[0].base = 4 * MiB;
	cfg.cma[1].base = 4 * MiB;		/* overlap */
	cfg.cma[1].size = 2 * MiB;
	assert_int_equal(iom_machine_create(&cfg, &m), -EINVAL);
	assert_true(test_log_contains(&tlog, "overlaps"));
	cfg.cma[1].base = 0;			/* automatic, below area 0? no: top */
	assert_int_equal(iom_machine_create(&cfg, &m), 0);
	assert_int_equal(iom_cma_area_count(m), 2);
	iom_machine_destroy(m);
}

/* ---- isolation ---------------------------------------------------------- */

static void isolated_range_is_never_allocated(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	unsigned long start = iom_first_pfn(m) + 512, end = start + 1024;
	unsigned long free_before = zone_free(m, 0, IOM_ZONE_NORMAL);
	static struct iom_page *held[2048];
	int n = 0, i;

	/* Isolating the middle of a MAX_ORDER block splits it. */
	assert_int_equal(iom_start_isolate_page_range(m, start, end, IOM_MIGRATE_MOVABLE, 0), 0);
	assert_int_equal(iom_test_pages_isolated(m, start, end, 0), 0);
	assert_int_equal(zone_free(m, 0, IOM_ZONE_NORMAL), free_before - 1024);
	assert_int_equal(iom_check_free_lists(m, NULL), 0);
	for (;;) {
		struct iom_page *p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE | IOM___GFP_NOWARN, 0);
		unsigned long pfn;

		if (!p)
			break;
		pfn = iom_page_to_pfn(m, p);
		assert_true(pfn < start || pfn >= end);
		held[n++] = p;
	}
	assert_int_equal(n, 2048 - 1024);
	/* Already isolated: -EBUSY, and nothing changes. */
	assert_int_equal(iom_start_isolate_page_range(m, start, end, IOM_MIGRATE_MOVABLE, 0), -EBUSY);
	assert_int_equal(iom_undo_isolate_page_range(m, start, end, IOM_MIGRATE_MOVABLE), 0);
	assert_int_equal(iom_get_pageblock_migratetype(m, start), IOM_MIGRATE_MOVABLE);
	for (i = 0; i < n; i++)
		assert_int_equal(iom___free_pages(m, held[i], 0), 0);
	test_assert_machine_clean(m);
	/* Unisolation merged the range back into whole MAX_ORDER blocks. */
	struct iom_zone_info zi;
	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
	assert_int_equal(zi.nr_free[10], 2);
	iom_machine_destroy(m);
}

static void unmovable_page_blocks_isolation(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	unsigned long pfn = iom_page_to_pfn(m, p), pb = pfn & ~511UL;
	unsigned long first = iom_first_pfn(m);

	test_log_reset(&tlog);
	/* The range includes the unmovable page's block: all or nothing. */
	assert_int_equal(iom_start_isolate_page_range(m, first, first + 2048, IOM_MIGRATE_MOVABLE,
						      IOM_REPORT_FAILURE), -EBUSY);
	assert_true(test_log_contains(&tlog, "unmovable"));
	for (unsigned long b = first; b < first + 2048; b += 512)
		assert_int_not_equal(iom_get_pageblock_migratetype(m, b), IOM_MIGRATE_ISOLATE);
	assert_int_equal(iom_test_pages_isolated(m, pb, pb + 512, 0), -EBUSY);
	/* Bad ranges. */
	assert_int_equal(iom_start_isolate_page_range(m, first + 1, first + 512, IOM_MIGRATE_MOVABLE, 0), -EINVAL);
	assert_int_equal(iom_start_isolate_page_range(m, first, first, IOM_MIGRATE_MOVABLE, 0), -EINVAL);
	assert_int_equal(iom_start_isolate_page_range(m, first, iom_end_pfn(m) + 512, IOM_MIGRATE_MOVABLE, 0), -EINVAL);
	assert_int_equal(iom_start_isolate_page_range(m, first, first + 512, IOM_MIGRATE_UNMOVABLE, 0), -EINVAL);
	assert_int_equal(iom_start_isolate_page_range(NULL, first, first + 512, IOM_MIGRATE_MOVABLE, 0), -EINVAL);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void page_freed_into_isolated_block_stays_isolated(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct iom_page *p;
	unsigned long pb;

	cfg.mem_size = 8 * MiB;
	cfg.movable_size = 4 * MiB;
	m = test_machine(0, &tlog, &cfg);
	assert_non_null(m);
	p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_non_null(p);
	pb = iom_page_to_pfn(m, p) & ~511UL;
	/* In ZONE_MOVABLE an allocated page does not prevent isolation. */
	iom_drain_local_pages(m);
	assert_int_equal(iom_start_isolate_page_range(m, pb, pb + 512, IOM_MIGRATE_MOVABLE, 0), 0);
	assert_int_equal(iom_test_pages_isolated(m, pb, pb + 512, 0), -EBUSY);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	assert_int_equal(iom_test_pages_isolated(m, pb, pb + 512, 0), 0);
	assert_int_equal(iom_undo_isolate_page_range(m, pb, pb + 512, IOM_MIGRATE_MOVABLE), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- per-thread caches -------------------------------------------------- */

static void freed_page_waits_in_thread_cache_until_drained(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	unsigned long total = 2048, nr_free;
	struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);

	assert_non_null(p);
	/* The refill took a batch from the buddy lists into the cache. */
	assert_int_equal(iom_check_free_lists(m, &nr_free), 0);
	assert_true(nr_free <= total - 1);
	assert_true(iom_vm_event_count(m, IOM_PCP_REFILL) >= 1);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	/* Freed, but still in this thread's cache, not on the free lists. */
	assert_int_equal(iom_check_free_lists(m, &nr_free), 0);
	assert_true(nr_free < total);
	/* LIFO: the same page comes back first. */
	assert_ptr_equal(iom_alloc_pages(m, IOM_GFP_KERNEL, 0), p);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	iom_drain_local_pages(m);
	assert_int_equal(iom_check_free_lists(m, &nr_free), 0);
	assert_int_equal(nr_free, total);
	iom_machine_destroy(m);
}

struct cache_thread {
	struct iom_machine *m;
	pthread_barrier_t *bar;
	int failures;
};

static void *fill_cache_and_wait(void *arg)
{
	struct cache_thread *t = arg;
	struct iom_page *p = iom_alloc_pages(t->m, IOM_GFP_KERNEL, 0);

	if (!p || iom___free_pages(t->m, p, 0))
		t->failures++;
	pthread_barrier_wait(t->bar);	/* cache filled */
	pthread_barrier_wait(t->bar);	/* main drained it */
	return NULL;
}

static void drain_all_pages_empties_other_threads_caches(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	pthread_barrier_t bar;
	struct cache_thread t = { .m = m, .bar = &bar };
	unsigned long nr_free;
	pthread_t th;

	pthread_barrier_init(&bar, NULL, 2);
	pthread_create(&th, NULL, fill_cache_and_wait, &t);
	pthread_barrier_wait(&bar);
	assert_int_equal(iom_check_free_lists(m, &nr_free), 0);
	assert_true(nr_free < 2048);
	iom_drain_all_pages(m);
	assert_int_equal(iom_check_free_lists(m, &nr_free), 0);
	assert_int_equal(nr_free, 2048);
	pthread_barrier_wait(&bar);
	pthread_join(th, NULL);
	assert_int_equal(t.failures, 0);
	pthread_barrier_destroy(&bar);
	iom_machine_destroy(m);
}

static void *alloc_free_and_exit(void *arg)
{
	struct cache_thread *t = arg;
	struct iom_page *p[10];
	int i;

	for (i = 0; i < 10; i++)
		if (!(p[i] = iom_alloc_pages(t->m, IOM_GFP_KERNEL, 0)))
			t->failures++;
	for (i = 0; i < 10; i++)
		if (p[i] && iom___free_pages(t->m, p[i], 0))
			t->failures++;
	return NULL;
}

static void thread_exit_returns_its_cache(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	struct cache_thread t = { .m = m };
	unsigned long nr_free;
	pthread_t th;

	pthread_create(&th, NULL, alloc_free_and_exit, &t);
	pthread_join(th, NULL);
	assert_int_equal(t.failures, 0);
	assert_int_equal(iom_check_free_lists(m, &nr_free), 0);
	assert_int_equal(nr_free, 2048);
	/* Its counters still count. */
	assert_int_equal(iom_vm_event_count(m, IOM_PGALLOC_NORMAL), 10);
	assert_int_equal(iom_vm_event_count(m, IOM_PGFREE), 10);
	iom_machine_destroy(m);
}

static void *use_then_outlive_machine(void *arg)
{
	struct cache_thread *t = arg;
	struct iom_page *p = iom_alloc_pages(t->m, IOM_GFP_KERNEL, 0);

	if (!p || iom___free_pages(t->m, p, 0))
		t->failures++;
	pthread_barrier_wait(t->bar);	/* used */
	pthread_barrier_wait(t->bar);	/* machine destroyed */
	return NULL;
}

static void thread_may_outlive_machine(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	pthread_barrier_t bar;
	struct cache_thread t = { .m = m, .bar = &bar };
	pthread_t th;

	pthread_barrier_init(&bar, NULL, 2);
	pthread_create(&th, NULL, use_then_outlive_machine, &t);
	pthread_barrier_wait(&bar);
	iom_machine_destroy(m);		/* the thread's cache is detached */
	pthread_barrier_wait(&bar);
	pthread_join(th, NULL);		/* its exit must not touch m */
	assert_int_equal(t.failures, 0);
	pthread_barrier_destroy(&bar);
}

/* ---- watermarks, zones, nodes ------------------------------------------- */

static void watermarks_follow_the_kernel_formula(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct iom_zone_info zi;

	cfg.mem_size = 64 * MiB;
	cfg.log = test_log_hook;
	cfg.log_priv = &tlog;
	assert_int_equal(iom_machine_create(&cfg, &m), 0);
	assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
	/* lowmem 65536 kB: min_free_kbytes = sqrt(65536 * 16) = 1024 kB */
	assert_int_equal(zi.watermark_min, 256);
	assert_int_equal(zi.watermark_low, 256 + 64);
	assert_int_equal(zi.watermark_high, 256 + 128);
	iom_machine_get_config(m, &cfg);
	assert_int_equal(cfg.min_free_kbytes, 1024);
	iom_machine_destroy(m);
}

static void kernel_allocations_stop_at_min_watermark(void **state)
{
	struct iom_machine_config cfg = { 0 };
	static struct iom_page *held[16384];
	struct iom_machine *m;
	struct iom_page *p;
	int n = 0, i;

	cfg.mem_size = 64 * MiB;
	cfg.log = test_log_hook;
	cfg.log_priv = &tlog;
	assert_int_equal(iom_machine_create(&cfg, &m), 0);
	while ((p = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_NOWARN, 0)))
		held[n++] = p;
	assert_int_equal(errno, ENOMEM);
	/* The slow path drained every cache: free memory sits at min. */
	assert_int_equal(zone_free(m, 0, IOM_ZONE_NORMAL), 256);
	/* GFP_ATOMIC dips below min (ALLOC_HIGH | ALLOC_HARDER)... */
	p = iom_alloc_pages(m, IOM_GFP_ATOMIC, 0);
	assert_non_null(p);
	held[n++] = p;
	/* ...__GFP_MEMALLOC ignores watermarks. */
	p = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_MEMALLOC, 0);
	assert_non_null(p);
	held[n++] = p;
	/* A failure without __GFP_NOWARN says so. */
	test_log_reset(&tlog);
	assert_null(iom_alloc_pages(m, IOM_GFP_KERNEL, 5));
	assert_true(test_log_contains(&tlog, "page allocation failure: order:5"));
	for (i = 0; i < n; i++)
		assert_int_equal(iom___free_pages(m, held[i], 0), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void gfp_picks_zone(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct iom_page *p;
	int i;

	cfg.mem_size = 16 * MiB;
	cfg.movable_size = 8 * MiB;
	m = test_machine(0, &tlog, &cfg);
	assert_non_null(m);
	/* GFP_HIGHUSER_MOVABLE prefers ZONE_MOVABLE (the top half). */
	p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_true(iom_page_to_pfn(m, p) >= iom_first_pfn(m) + 2048);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	/* __GFP_MOVABLE alone does not reach ZONE_MOVABLE. */
	for (i = 0; i < 3; i++) {
		p = iom_alloc_pages(m, IOM_GFP_KERNEL | (i == 2 ? IOM___GFP_MOVABLE : 0), i);
		assert_non_null(p);
		assert_true(iom_page_to_pfn(m, p) < iom_first_pfn(m) + 2048);
		assert_int_equal(iom___free_pages(m, p, i), 0);
	}
	assert_true(iom_vm_event_count(m, IOM_PGALLOC_MOVABLE) >= 1);
	assert_true(iom_vm_event_count(m, IOM_PGALLOC_NORMAL) >= 3);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void numa_node_preference_and_thisnode(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct iom_page *p, *big[2];
	unsigned long half;

	cfg.mem_size = 16 * MiB;
	cfg.nr_nodes = 2;
	m = test_machine(0, &tlog, &cfg);
	assert_non_null(m);
	assert_int_equal(iom_nr_nodes(m), 2);
	half = iom_first_pfn(m) + 2048;
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 1);
	assert_true(iom_page_to_pfn(m, p) < half);
	assert_int_equal(iom___free_pages(m, p, 1), 0);
	assert_int_equal(iom_set_numa_node(m, 1), 0);
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 1);
	assert_true(iom_page_to_pfn(m, p) >= half);
	assert_int_equal(iom___free_pages(m, p, 1), 0);
	assert_int_equal(iom_set_numa_node(m, 2), -EINVAL);
	/* Fill node 0; THISNODE fails, plain falls back to node 1. */
	big[0] = iom_alloc_pages_node(m, 0, IOM_GFP_KERNEL, 10);
	big[1] = iom_alloc_pages_node(m, 0, IOM_GFP_KERNEL, 10);
	assert_non_null(big[0]);
	assert_non_null(big[1]);
	assert_null(iom_alloc_pages_node(m, 0, IOM_GFP_KERNEL | IOM___GFP_THISNODE |
					 IOM___GFP_NOWARN, 0));
	p = iom_alloc_pages_node(m, 0, IOM_GFP_KERNEL, 0);
	assert_non_null(p);
	assert_true(iom_page_to_pfn(m, p) >= half);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	assert_int_equal(iom___free_pages(m, big[0], 10), 0);
	assert_int_equal(iom___free_pages(m, big[1], 10), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- bad input ---------------------------------------------------------- */

static void bad_frees_are_refused_and_lose_nothing(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	struct iom_machine *other = small_machine(4 * MiB, 9, 10);
	struct iom_page *p0, *p2, *foreign;
	char *addr;

	p0 = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	p2 = iom_alloc_pages(m, IOM_GFP_KERNEL, 2);
	foreign = iom_alloc_pages(other, IOM_GFP_KERNEL, 0);
	assert_non_null(p0);
	assert_non_null(p2);
	assert_non_null(foreign);

	test_log_reset(&tlog);
	assert_int_equal(iom___free_pages(m, p2, 11), -EINVAL);		/* order > max */
	assert_int_equal(iom___free_pages(m, p2, 1), -EINVAL);		/* wrong order */
	assert_true(test_log_contains(&tlog, "allocated with order 2"));
	assert_int_equal(iom___free_pages(m, p2, 3), -EINVAL);
	assert_int_equal(iom___free_pages(m, &p2[1], 0), -EINVAL);	/* tail */
	assert_int_equal(iom___free_pages(m, foreign, 0), -EFAULT);	/* other machine */
	assert_int_equal(iom___free_pages(m, NULL, 0), -EINVAL);
	assert_int_equal(iom___free_pages(NULL, p0, 0), -EINVAL);
	addr = iom_page_address(m, p0);
	assert_int_equal(iom_free_pages(m, addr + 1, 0), -EFAULT);	/* not a page start */
	assert_int_equal(iom_free_pages(m, (char *)&tlog, 0), -EFAULT);	/* outside memory */
	assert_int_equal(iom_check_free_lists(m, NULL), 0);
	/* Nothing above freed anything: the pages are intact and ours. */
	assert_int_equal(iom_page_ref_count(p0), 1);
	assert_int_equal(iom_page_ref_count(p2), 1);

	assert_int_equal(iom_free_pages(m, addr, 0), 0);
	test_log_reset(&tlog);
	assert_int_equal(iom___free_pages(m, p0, 0), -EINVAL);		/* double free */
	assert_true(test_log_contains(&tlog, "already free"));
	assert_int_equal(iom_put_page(m, p0), -EINVAL);
	assert_int_equal(iom_get_page(m, p0), -EINVAL);			/* get on a free page */
	assert_int_equal(iom___free_pages(m, p2, 2), 0);
	iom_drain_local_pages(m);
	assert_int_equal(iom___free_pages(m, p0, 0), -EINVAL);		/* free in buddy */
	assert_int_equal(iom___free_pages(m, p2, 2), -EINVAL);
	test_assert_machine_clean(m);
	assert_int_equal(iom___free_pages(other, foreign, 0), 0);
	test_assert_machine_clean(other);
	iom_machine_destroy(other);
	iom_machine_destroy(m);
}

static void bad_allocation_requests_fail_cleanly(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);

	test_log_reset(&tlog);
	errno = 0;
	assert_null(iom_alloc_pages(m, IOM_GFP_KERNEL, 11));
	assert_int_equal(errno, EINVAL);
	assert_true(test_log_contains(&tlog, "order 11"));
	errno = 0;
	assert_null(iom_alloc_pages(m, 0x80000000u, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(iom_alloc_pages(m, IOM___GFP_MOVABLE | IOM___GFP_RECLAIMABLE, 0));
	assert_null(iom_alloc_pages_node(m, 5, IOM_GFP_KERNEL, 0));
	assert_null(iom_alloc_pages(NULL, IOM_GFP_KERNEL, 0));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(iom_set_pageblock_migratetype(m, iom_end_pfn(m), IOM_MIGRATE_MOVABLE), -EINVAL);
	assert_int_equal(iom_set_pageblock_migratetype(m, iom_first_pfn(m), IOM_MIGRATE_ISOLATE), -EINVAL);
	assert_int_equal(iom_set_pageblock_migratetype(m, iom_first_pfn(m), IOM_MIGRATE_CMA), -EINVAL);
	assert_int_equal(iom_get_pageblock_migratetype(m, iom_end_pfn(m)), -EINVAL);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* A page freed while still mapped or locked is a bug: reported, leaked. */
static void dirty_page_state_at_free_is_reported(void **state)
{
	struct iom_machine *m = small_machine(8 * MiB, 9, 10);
	struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	unsigned long nr_free;

	iom_SetPageLocked(p);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	assert_int_equal(iom_machine_bug_count(m), 1);
	assert_true(test_log_contains(&tlog, "Bad page state"));
	iom_drain_all_pages(m);
	assert_int_equal(iom_check_free_lists(m, &nr_free), 0);
	assert_int_equal(nr_free, 2047);	/* leaked, not corrupting */
	iom_machine_destroy(m);
}

/* ---- poisoning ---------------------------------------------------------- */

static void write_to_free_page_is_caught_at_allocation(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct iom_page *p, *q;
	unsigned char *c;

	cfg.mem_size = 8 * MiB;
	cfg.page_poison = 1;
	m = test_machine(0, &tlog, &cfg);
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	c = iom_page_address(m, p);
	assert_int_equal(iom___free_pages(m, p, 0), 0);
	assert_int_equal(c[100], IOM_PAGE_POISON);
	/* A clean reuse: no report. */
	q = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_ptr_equal(q, p);
	assert_int_equal(iom_machine_bug_count(m), 0);
	assert_int_equal(iom___free_pages(m, q, 0), 0);
	/* A use after free: reported when the page is handed out again. */
	c[100] = 0x42;
	q = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_ptr_equal(q, p);
	assert_int_equal(iom_machine_bug_count(m), 1);
	assert_true(test_log_contains(&tlog, "memory corruption"));
	assert_int_equal(iom___free_pages(m, q, 0), 0);
	/* Higher orders: every subpage is checked. */
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 3);
	assert_int_equal(iom___free_pages(m, p, 3), 0);
	((unsigned char *)iom_page_address(m, &p[7]))[4095] = 0;
	q = iom_alloc_pages(m, IOM_GFP_KERNEL, 3);
	assert_ptr_equal(q, p);
	assert_int_equal(iom_machine_bug_count(m), 2);
	assert_int_equal(iom___free_pages(m, q, 3), 0);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_and_merge_at_every_order),
		cmocka_unit_test(split_leaves_one_free_buddy_per_order),
		cmocka_unit_test(compound_page_has_head_and_tails),
		cmocka_unit_test(gfp_zero_clears_content),
		cmocka_unit_test(unmovable_fallback_claims_whole_free_block),
		cmocka_unit_test(fallback_keeps_owner_of_mostly_movable_block),
		cmocka_unit_test(movable_fallback_takes_smallest_block),
		cmocka_unit_test(cma_pages_go_only_to_movable_allocations),
		cmocka_unit_test(movable_allocations_use_cma_when_it_is_most_of_free_memory),
		cmocka_unit_test(cma_config_errors_are_reported),
		cmocka_unit_test(isolated_range_is_never_allocated),
		cmocka_unit_test(unmovable_page_blocks_isolation),
		cmocka_unit_test(page_freed_into_isolated_block_stays_isolated),
		cmocka_unit_test(freed_page_waits_in_thread_cache_until_drained),
		cmocka_unit_test(drain_all_pages_empties_other_threads_caches),
		cmocka_unit_test(thread_exit_returns_its_cache),
		cmocka_unit_test(thread_may_outlive_machine),
		cmocka_unit_test(watermarks_follow_the_kernel_formula),
		cmocka_unit_test(kernel_allocations_stop_at_min_watermark),
		cmocka_unit_test(gfp_picks_zone),
		cmocka_unit_test(numa_node_preference_and_thisnode),
		cmocka_unit_test(bad_frees_are_refused_and_lose_nothing),
		cmocka_unit_test(bad_allocation_requests_fail_cleanly),
		cmocka_unit_test(dirty_page_state_at_free_is_reported),
		cmocka_unit_test(write_to_free_page_is_caught_at_allocation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
