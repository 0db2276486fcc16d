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

#include "mm_util.h"

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

/* Free blocks of order 9 or more in the zone (caches drained). */
static unsigned long high_order_free(struct iom_machine *m, int zt)
{
	struct iom_zone_info zi;
	unsigned long n = 0;
	unsigned int o;

	iom_drain_all_pages(m);
	assert_int_equal(iom_zone_info(m, 0, zt, &zi), 0);
	for (o = 9; o <= iom_max_order(m) && o < 32; o++)
		n += zi.nr_free[o];
	return n;
}

/* Pages in free blocks of order 9 or more. */
static unsigned long high_order_free_pages(struct iom_machine *m, int zt)
{
	struct iom_zone_info zi;
	unsigned long n = 0;
	unsigned int o;

	iom_drain_all_pages(m);
	assert_int_equal(iom_zone_info(m, 0, zt, &zi), 0);
	for (o = 9; o <= iom_max_order(m) && o < 32; o++)
		n += zi.nr_free[o] << o;
	return n;
}

static unsigned long pfn_at(struct iom_machine *m, struct iom_mm *mm,
			    uint64_t addr)
{
	struct iom_page *page;
	unsigned long pfn;

	assert_int_equal(iom_follow_page(mm, addr, &page), 0);
	pfn = iom_page_to_pfn(m, page);
	assert_int_equal(iom_put_page(m, page), 0);
	return pfn;
}

struct frag {
	struct iom_machine *m;
	struct iom_mm *mm;
	int zt;
	uint64_t base;
	unsigned long nr;		/* pages mapped */
	bool *live;			/* page i still mapped */
	unsigned long *pfn;		/* its pfn after fragmentation */
	uint64_t *seq;			/* the last stamp's sequence number */
	unsigned long nr_live;
};

static void stamp(uint64_t addr, uint64_t seq, uint64_t *buf)
{
	size_t i;

	buf[0] = seq;
	for (i = 1; i < PG / sizeof(uint64_t); i++)
		buf[i] = (addr + (seq << 40)) * 2654435761u + i;
}

static void check_stamps(struct frag *f)
{
	static uint64_t want[PG / sizeof(uint64_t)], got[PG / sizeof(uint64_t)];
	unsigned long i;

	for (i = 0; i < f->nr; i++) {
		uint64_t a = f->base + i * PG;

		if (!f->live[i])
			continue;
		stamp(a, f->seq[i], want);
		assert_int_equal(iom_read(f->mm, a, got, PG), 0);
		assert_memory_equal(got, want, PG);
	}
}

/*
 * Fill the zone with stamped anonymous pages, then unmap those at odd
 * pfns: every other page in use, no free block above order 0.
 */
static void fragment(struct frag *f)
{
	static uint64_t buf[PG / sizeof(uint64_t)];
	unsigned long i, avail, faulted = 0;
	uint64_t at = 0;

	memset(f, 0, sizeof(*f));
	f->m = test_machine(16, &tlog, NULL);
	assert_non_null(f->m);
	assert_int_equal(iom_nr_nodes(f->m), 1);
	f->zt = the_zone(f->m);
	assert_int_equal(iom_mm_create(f->m, &f->mm), 0);

	avail = test_nr_free(f->m);
	f->nr = avail;
	assert_int_equal(iom_mmap(f->mm, 0, f->nr * PG,
				  IOM_PROT_READ | IOM_PROT_WRITE,
				  IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0,
				  &at), 0);
	f->base = at;
	f->live = calloc(f->nr, sizeof(*f->live));
	f->pfn = calloc(f->nr, sizeof(*f->pfn));
	f->seq = calloc(f->nr, sizeof(*f->seq));
	assert_non_null(f->seq);
	assert_non_null(f->live);
	assert_non_null(f->pfn);
	for (i = 0; i < f->nr; i++) {
		uint64_t a = f->base + i * PG;

		stamp(a, 0, buf);
		if (iom_write(f->mm, a, buf, PG) != 0)
			break;
		f->live[i] = true;
		faulted++;
	}
	/* the zone is full */
	assert_true(faulted + 16 >= avail);
	assert_true(test_nr_free(f->m) <= 16);
	/* too little free memory to compact for order 9 */
	assert_int_equal(iom_compaction_suitable(f->m, 0, f->zt, 9),
			 IOM_COMPACT_SKIPPED);

	for (i = 0; i < f->nr; i++) {
		uint64_t a = f->base + i * PG;

		if (!f->live[i])
			continue;
		f->pfn[i] = pfn_at(f->m, f->mm, a);
		if (f->pfn[i] & 1) {
			assert_int_equal(iom_munmap(f->mm, a, PG), 0);
			f->live[i] = false;
		} else {
			f->nr_live++;
		}
	}
	assert_true(f->nr_live > 0);
	assert_int_equal(high_order_free(f->m, f->zt), 0);
	check_stamps(f);
}

static void unfragment(struct frag *f)
{
	unsigned long n;

	iom_mm_destroy(f->mm);
	n = test_nr_free(f->m);
	assert_int_equal(n, iom_end_pfn(f->m) - iom_first_pfn(f->m));
	assert_int_equal(iom_machine_bug_count(f->m), 0);
	iom_machine_destroy(f->m);
	free(f->live);
	free(f->pfn);
	free(f->seq);
}

static void test_compact_node_makes_order9_blocks(void **state)
{
	struct frag f;
	unsigned long i, moved = 0, ev[6];
	int item;

	(void)state;
	fragment(&f);
	assert_int_equal(iom_compaction_suitable(f.m, 0, f.zt, 9),
			 IOM_COMPACT_CONTINUE);
	for (item = 0; item < 6; item++)
		ev[item] = iom_vm_event_count(f.m, IOM_COMPACTMIGRATE_SCANNED + item);

	assert_int_equal(iom_compact_node(f.m, 0), 0);

	assert_true(high_order_free(f.m, f.zt) > 0);
	/* about the bottom half is free: at least 2 pageblocks in big blocks */
	assert_true(high_order_free_pages(f.m, f.zt) >= 2UL << iom_pageblock_order(f.m));
	check_stamps(&f);
	for (i = 0; i < f.nr; i++)
		if (f.live[i] && pfn_at(f.m, f.mm, f.base + i * PG) != f.pfn[i])
			moved++;
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
	unfragment(&f);
}

static void test_compact_zone_order9(void **state)
{
	struct frag f;
	unsigned long stall, success;

	(void)state;
	fragment(&f);
	stall = iom_vm_event_count(f.m, IOM_COMPACTSTALL);
	success = iom_vm_event_count(f.m, IOM_COMPACTSUCCESS);
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_SUCCESS);
	assert_true(high_order_free(f.m, f.zt) > 0);
	assert_int_equal(iom_vm_event_count(f.m, IOM_COMPACTSTALL), stall + 1);
	assert_int_equal(iom_vm_event_count(f.m, IOM_COMPACTSUCCESS), success + 1);
	check_stamps(&f);
	/* and the block can be allocated */
	{
		struct iom_page *p = iom_alloc_pages(f.m, IOM_GFP_HIGHUSER_MOVABLE, 9);

		assert_non_null(p);
		assert_int_equal(iom___free_pages(f.m, p, 9), 0);
	}
	unfragment(&f);
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
	fragment(&f);
	assert_int_equal(high_order_free(f.m, f.zt), 0);
	stall = iom_vm_event_count(f.m, IOM_COMPACTSTALL);
	p = iom_alloc_pages(f.m, IOM_GFP_HIGHUSER_MOVABLE, 9);
	assert_non_null(p);
	assert_true(iom_vm_event_count(f.m, IOM_COMPACTSTALL) > stall);
	check_stamps(&f);
	assert_int_equal(iom___free_pages(f.m, p, 9), 0);
	unfragment(&f);
}

static void test_pinned_pages_stay(void **state)
{
	struct frag f;
	unsigned int pb;
	unsigned long nr_blocks, i, fail;
	struct iom_page **pinned;
	unsigned long *pin_idx, nr_pins = 0;

	(void)state;
	fragment(&f);
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
	assert_int_equal(high_order_free(f.m, f.zt), 0);
	for (i = 0; i < nr_pins; i++)
		assert_int_equal(pfn_at(f.m, f.mm, f.base + pin_idx[i] * PG),
				 iom_page_to_pfn(f.m, pinned[i]));
	check_stamps(&f);

	fail = iom_vm_event_count(f.m, IOM_COMPACTFAIL);
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_COMPLETE);
	assert_int_equal(iom_vm_event_count(f.m, IOM_COMPACTFAIL), fail + 1);
	assert_int_equal(high_order_free(f.m, f.zt), 0);
	for (i = 0; i < nr_pins; i++)
		assert_int_equal(pfn_at(f.m, f.mm, f.base + pin_idx[i] * PG),
				 iom_page_to_pfn(f.m, pinned[i]));
	check_stamps(&f);

	/* unpinned, the same compaction succeeds */
	for (i = 0; i < nr_pins; i++)
		assert_int_equal(iom_put_page(f.m, pinned[i]), 0);
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_SUCCESS);
	assert_true(high_order_free(f.m, f.zt) > 0);
	check_stamps(&f);
	free(pinned);
	free(pin_idx);
	unfragment(&f);
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
	fragment(&f);
	atomic_store(&f.m->test_skip_migrate_copy, true);
	assert_int_equal(iom_compact_node(f.m, 0), 0);
	atomic_store(&f.m->test_skip_migrate_copy, false);
	assert_true(high_order_free(f.m, f.zt) > 0);
	for (i = 0; i < f.nr; i++) {
		uint64_t a = f.base + i * PG;

		if (!f.live[i])
			continue;
		stamp(a, f.seq[i], want);
		assert_int_equal(iom_read(f.mm, a, got, PG), 0);
		if (memcmp(got, want, PG))
			bad++;
	}
	assert_true(bad > 0);
	unfragment(&f);
}

/*
 * Writers stamp their pages with rising sequence numbers (whole pages,
 * read back at once) while compaction moves them: no write is lost.
 * Workers never assert: they count what went wrong.
 */
struct writer {
	pthread_t thread;
	struct frag *f;
	unsigned int id, nr_threads;
	atomic_bool *stop;
	unsigned long errors, rounds;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;
	struct frag *f = w->f;
	uint64_t *buf = malloc(PG), *got = malloc(PG);
	unsigned long i;

	if (!buf || !got) {
		w->errors++;
		goto out;
	}
	iom_set_numa_node(f->m, 0);
	while (!atomic_load(w->stop) || w->rounds < 2) {
		for (i = w->id; i < f->nr; i += w->nr_threads) {
			uint64_t a = f->base + i * PG;

			if (!f->live[i])
				continue;
			stamp(a, f->seq[i] + 1, buf);
			if (iom_write(f->mm, a, buf, PG) != 0) {
				w->errors++;
				continue;
			}
			f->seq[i]++;
			if (iom_read(f->mm, a, got, PG) != 0 ||
			    memcmp(got, buf, PG) != 0)
				w->errors++;
		}
		w->rounds++;
	}
out:
	free(buf);
	free(got);
	return NULL;
}

static void test_compaction_under_writers(void **state)
{
	enum { NR_WRITERS = 2 };
	struct writer w[NR_WRITERS];
	atomic_bool stop = false;
	struct frag f;
	unsigned long i, moved = 0;
	unsigned int t;

	(void)state;
	fragment(&f);
	for (t = 0; t < NR_WRITERS; t++) {
		w[t] = (struct writer){ .f = &f, .id = t, .nr_threads = NR_WRITERS,
					.stop = &stop };
		assert_int_equal(pthread_create(&w[t].thread, NULL, writer_fn, &w[t]), 0);
	}
	assert_int_equal(iom_compact_node(f.m, 0), 0);
	atomic_store(&stop, true);
	for (t = 0; t < NR_WRITERS; t++) {
		assert_int_equal(pthread_join(w[t].thread, NULL), 0);
		assert_int_equal(w[t].errors, 0);
		assert_true(w[t].rounds >= 2);
	}
	check_stamps(&f);
	for (i = 0; i < f.nr; i++)
		if (f.live[i] && pfn_at(f.m, f.mm, f.base + i * PG) != f.pfn[i])
			moved++;
	assert_true(moved > 0);
	unfragment(&f);
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
		cmocka_unit_test(test_pinned_pages_stay),
		cmocka_unit_test(test_skipped_copy_is_detected),
		cmocka_unit_test(test_compaction_under_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
