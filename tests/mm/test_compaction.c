/* SPDX-License-Identifier: MIT */
/*
 * Compaction (src/mm/compaction.c): a 16 MiB zone filled with anonymous
 * pages and then fragmented so that every other page is in use (all
 * movable, no free block above order 0) is turned by iom_compact_node()
 * into free order-9 blocks, with every page's stamp still readable and
 * the compact_* counters moved; with one pinned page in every pageblock
 * the pinned pages stay where they are, no order-9 block appears and
 * iom_compact_zone() reports failure; iom_compaction_suitable() says
 * SKIPPED when free memory is too low, CONTINUE on the fragmented zone,
 * SUCCESS once a block exists.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include <iommig/trace.h>

#include "frag_util.h"

#define PG IOM_PAGE_SIZE

static struct test_log tlog;

/* The populated zone of node 0 (a 16 MiB machine has one). */
static int the_zone(struct iom_machine *m)
{
	struct iom_zone_info zi;
	int zt, found = -1;

	for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
		assert_int_equal(iom_zone_info(m, 0, zt, &zi), 0);
		if (zi.populated) {
			assert_int_equal(found, -1);
			found = zt;
		}
	}
	assert_true(found >= 0);
	return found;
}

static void test_compact_node_makes_order9_blocks(void **state)
{
	struct frag f;
	unsigned long moved, ev[6];
	int item;

	(void)state;
	frag_create(&f, NULL, &tlog);
	assert_int_equal(iom_compaction_suitable(f.m, 0, f.zt, 9),
			 IOM_COMPACT_CONTINUE);
	for (item = 0; item < 6; item++)
		ev[item] = iom_vm_event_count(f.m, IOM_COMPACTMIGRATE_SCANNED + item);

	assert_int_equal(iom_compact_node(f.m, 0), 0);

	assert_true(frag_order9_free_blocks(f.m, f.zt) > 0);
	/* about the bottom half is free: at least 2 pageblocks in big blocks */
	assert_true(frag_order9_free_pages(f.m, f.zt) >= 2UL << iom_pageblock_order(f.m));
	frag_check_stamps(&f);
	moved = frag_nr_moved(&f);
	assert_true(moved > 0);
	/* the pages of the bottom half moved up */
	assert_true(moved >= f.nr_live / 4);
	assert_true(iom_vm_event_count(f.m, IOM_COMPACTMIGRATE_SCANNED) > ev[0]);
	assert_true(iom_vm_event_count(f.m, IOM_COMPACTFREE_SCANNED) > ev[1]);
	assert_true(iom_vm_event_count(f.m, IOM_COMPACTISOLATED) >= ev[2] + 2 * moved);
	assert_true(iom_vm_event_count(f.m, IOM_PGMIGRATE_SUCCESS) >= moved);
	/* compact_memory is not direct compaction: no stall */
	assert_int_equal(iom_vm_event_count(f.m, IOM_COMPACTSTALL), ev[3]);
	assert_string_equal(iom_vm_event_name(IOM_COMPACTMIGRATE_SCANNED),
			    "compact_migrate_scanned");
	assert_string_equal(iom_vm_event_name(IOM_COMPACTSUCCESS),
			    "compact_success");

	/* a block exists: nothing to do for order 9 */
	assert_int_equal(iom_compaction_suitable(f.m, 0, f.zt, 9),
			 IOM_COMPACT_SUCCESS);
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_SUCCESS);
	frag_destroy(&f);
}

static void test_compact_zone_order9(void **state)
{
	struct frag f;
	unsigned long stall, success;

	(void)state;
	frag_create(&f, NULL, &tlog);
	stall = iom_vm_event_count(f.m, IOM_COMPACTSTALL);
	success = iom_vm_event_count(f.m, IOM_COMPACTSUCCESS);
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_SUCCESS);
	assert_true(frag_order9_free_blocks(f.m, f.zt) > 0);
	assert_int_equal(iom_vm_event_count(f.m, IOM_COMPACTSTALL), stall + 1);
	assert_int_equal(iom_vm_event_count(f.m, IOM_COMPACTSUCCESS), success + 1);
	frag_check_stamps(&f);
	/* and the block can be allocated */
	{
		struct iom_page *p = iom_alloc_pages(f.m, IOM_GFP_HIGHUSER_MOVABLE, 9);

		assert_non_null(p);
		assert_int_equal(iom___free_pages(f.m, p, 9), 0);
	}
	frag_destroy(&f);
}

/*
 * The allocator compacts by itself: an order-9 request on the fragmented
 * zone fails the free lists, direct compaction (async) makes the block,
 * and the request gets it. The stamps survive.
 */
static void test_direct_compaction_serves_order9(void **state)
{
	struct frag f;
	struct iom_page *p;
	unsigned long stall;

	(void)state;
	frag_create(&f, NULL, &tlog);
	assert_int_equal(frag_order9_free_blocks(f.m, f.zt), 0);
	stall = iom_vm_event_count(f.m, IOM_COMPACTSTALL);
	p = iom_alloc_pages(f.m, IOM_GFP_HIGHUSER_MOVABLE, 9);
	assert_non_null(p);
	assert_true(iom_vm_event_count(f.m, IOM_COMPACTSTALL) > stall);
	frag_check_stamps(&f);
	assert_int_equal(iom___free_pages(f.m, p, 9), 0);
	frag_destroy(&f);
}

/*
 * The migrate_pfn of every mm_compaction_begin in @m's trace, in order,
 * into @pfn (at most @max). Return: how many.
 */
static unsigned int compaction_begin_pfns(struct iom_machine *m, unsigned long *pfn,
					  unsigned int max)
{
	static const char ev[] = "\"name\":\"mm_compaction_begin\"";
	char *js = NULL;
	size_t len = 0;
	unsigned int n = 0;
	FILE *f = open_memstream(&js, &len);

	assert_non_null(f);
	assert_int_equal(iom_trace_export_json(m, f), 0);
	assert_int_equal(fclose(f), 0);
	for (const char *p = strstr(js, ev); p && n < max; p = strstr(p + 1, ev)) {
		const char *a = strstr(p, "\"migrate_pfn\":");

		assert_non_null(a);
		pfn[n++] = strtoul(a + strlen("\"migrate_pfn\":"), NULL, 10);
	}
	free(js);
	return n;
}

/*
 * Direct compaction goes on where the last partial run left its scanners
 * (compact_cached_migrate_pfn): the first order-4 request starts at the
 * zone's start, the next one above it. A whole-zone run (iom_compact_zone)
 * starts at the start whatever is cached.
 */
static void test_direct_compaction_resumes_at_cached_pfn(void **state)
{
	struct iom_page *held[64];
	unsigned long pfn[8], zone_start;
	unsigned int nr_held = 0, n = 0;
	struct iom_zone_info zi;
	struct frag f;

	(void)state;
	frag_create(&f, NULL, &tlog);
	assert_int_equal(iom_zone_info(f.m, 0, f.zt, &zi), 0);
	zone_start = zi.zone_start_pfn;
	assert_int_equal(iom_trace_enable(f.m, 1 << 16), 0);
	/* order-4 requests until two of them have had to compact */
	while (nr_held < 64 && (n = compaction_begin_pfns(f.m, pfn, 8)) < 2) {
		held[nr_held] = iom_alloc_pages(f.m, IOM_GFP_HIGHUSER_MOVABLE, 4);
		assert_non_null(held[nr_held]);
		nr_held++;
	}
	assert_true(n >= 2);
	assert_int_equal(pfn[0], zone_start);
	assert_true(pfn[1] > zone_start);

	/* a whole-zone run starts from the start */
	assert_int_equal(iom_trace_clear(f.m), 0);
	iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC);
	assert_int_equal(compaction_begin_pfns(f.m, pfn, 8), 1);
	assert_int_equal(pfn[0], zone_start);
	assert_int_equal(iom_trace_disable(f.m), 0);

	frag_check_stamps(&f);
	while (nr_held)
		assert_int_equal(iom___free_pages(f.m, held[--nr_held], 4), 0);
	frag_destroy(&f);
}

static void test_pinned_pages_stay(void **state)
{
	struct frag f;
	unsigned int pb;
	unsigned long nr_blocks, i, fail;
	struct iom_page **pinned;
	unsigned long *pin_idx, nr_pins = 0;

	(void)state;
	frag_create(&f, NULL, &tlog);
	pb = iom_pageblock_order(f.m);
	nr_blocks = (iom_end_pfn(f.m) - iom_first_pfn(f.m)) >> pb;
	pinned = calloc(nr_blocks + 1, sizeof(*pinned));
	pin_idx = calloc(nr_blocks + 1, sizeof(*pin_idx));
	assert_non_null(pinned);
	assert_non_null(pin_idx);

	/* pin one page in every pageblock that has one in use */
	for (i = 0; i < f.nr; i++) {
		unsigned long blk = (f.pfn[i] - iom_first_pfn(f.m)) >> pb;
		struct iom_page *page;
		unsigned long k;
		bool have = false;

		if (!f.live[i])
			continue;
		for (k = 0; k < nr_pins; k++)
			if (((iom_page_to_pfn(f.m, pinned[k]) - iom_first_pfn(f.m)) >> pb) == blk)
				have = true;
		if (have)
			continue;
		assert_int_equal(iom_follow_page(f.mm, f.base + i * PG, &page), 0);
		assert_int_equal(iom_get_page(f.m, page), 0);
		assert_int_equal(iom_put_page(f.m, page), 0);
		pinned[nr_pins] = page;
		pin_idx[nr_pins++] = i;
	}
	assert_int_equal(nr_pins, nr_blocks);

	assert_int_equal(iom_compact_node(f.m, 0), 0);
	assert_int_equal(frag_order9_free_blocks(f.m, f.zt), 0);
	for (i = 0; i < nr_pins; i++)
		assert_int_equal(frag_pfn_at(&f, pin_idx[i]),
				 iom_page_to_pfn(f.m, pinned[i]));
	frag_check_stamps(&f);

	fail = iom_vm_event_count(f.m, IOM_COMPACTFAIL);
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_COMPLETE);
	assert_int_equal(iom_vm_event_count(f.m, IOM_COMPACTFAIL), fail + 1);
	assert_int_equal(frag_order9_free_blocks(f.m, f.zt), 0);
	for (i = 0; i < nr_pins; i++)
		assert_int_equal(frag_pfn_at(&f, pin_idx[i]),
				 iom_page_to_pfn(f.m, pinned[i]));
	frag_check_stamps(&f);

	/* unpinned, the same compaction succeeds */
	for (i = 0; i < nr_pins; i++)
		assert_int_equal(iom_put_page(f.m, pinned[i]), 0);
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_SUCCESS);
	assert_true(frag_order9_free_blocks(f.m, f.zt) > 0);
	frag_check_stamps(&f);
	free(pinned);
	free(pin_idx);
	frag_destroy(&f);
}

/*
 * Proof the checks can fail: with migrate.c's test-only switch that skips
 * the content copy, the stamps of the moved pages are gone.
 */
static void test_skipped_copy_is_detected(void **state)
{
	static uint64_t want[PG / sizeof(uint64_t)], got[PG / sizeof(uint64_t)];
	struct frag f;
	unsigned long i, bad = 0;

	(void)state;
	frag_create(&f, NULL, &tlog);
	atomic_store(&f.m->test_skip_migrate_copy, true);
	assert_int_equal(iom_compact_node(f.m, 0), 0);
	atomic_store(&f.m->test_skip_migrate_copy, false);
	assert_true(frag_order9_free_blocks(f.m, f.zt) > 0);
	for (i = 0; i < f.nr; i++) {
		uint64_t a = f.base + i * PG;

		if (!f.live[i])
			continue;
		frag_stamp(a, f.seq[i], want);
		assert_int_equal(iom_read(f.mm, a, got, PG), 0);
		if (memcmp(got, want, PG))
			bad++;
	}
	assert_true(bad > 0);
	frag_destroy(&f);
}

/*
 * Writers stamp their pages with rising sequence numbers (whole pages,
 * read back at once) while compaction moves them: no write is lost.
 */
static void test_compaction_under_writers(void **state)
{
	enum { NR_WRITERS = 2 };
	struct frag_writer w[NR_WRITERS];
	atomic_bool stop = false;
	struct frag f;

	(void)state;
	frag_create(&f, NULL, &tlog);
	frag_writers_start(w, NR_WRITERS, &f, &stop);
	assert_int_equal(iom_compact_node(f.m, 0), 0);
	frag_writers_stop(w, NR_WRITERS, &stop);
	frag_check_stamps(&f);
	assert_true(frag_nr_moved(&f) > 0);
	frag_destroy(&f);
}

static void test_suitable_and_bad_args(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	int zt;

	(void)state;
	assert_non_null(m);
	zt = the_zone(m);
	/* a fresh machine: order-9 blocks are free */
	assert_int_equal(iom_compaction_suitable(m, 0, zt, 9), IOM_COMPACT_SUCCESS);
	assert_int_equal(iom_compaction_suitable(m, 1, zt, 9), -EINVAL);
	assert_int_equal(iom_compaction_suitable(m, 0, -1, 9), -EINVAL);
	assert_int_equal(iom_compaction_suitable(m, 0, zt, iom_max_order(m) + 1),
			 -EINVAL);
	assert_int_equal(iom_compaction_suitable(NULL, 0, zt, 9), -EINVAL);
	assert_int_equal(iom_compact_zone(m, 0, zt, 9, (enum iom_migrate_mode)7),
			 -EINVAL);
	assert_int_equal(iom_compact_zone(NULL, 0, zt, 9, IOM_MIGRATE_SYNC), -EINVAL);
	assert_int_equal(iom_compact_node(m, 5), -EINVAL);
	assert_int_equal(iom_compact_node(NULL, 0), -EINVAL);
	/* compacting an empty machine moves nothing and breaks nothing */
	assert_int_equal(iom_compact_node(m, 0), 0);
	assert_int_equal(test_nr_free(m), iom_end_pfn(m) - iom_first_pfn(m));
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suitable_and_bad_args),
		cmocka_unit_test(test_compact_node_makes_order9_blocks),
		cmocka_unit_test(test_compact_zone_order9),
		cmocka_unit_test(test_direct_compaction_serves_order9),
		cmocka_unit_test(test_direct_compaction_resumes_at_cached_pfn),
		cmocka_unit_test(test_pinned_pages_stay),
		cmocka_unit_test(test_skipped_copy_is_detected),
		cmocka_unit_test(test_compaction_under_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
