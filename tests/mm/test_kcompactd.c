/* SPDX-License-Identifier: MIT */
/*
 * kcompactd and proactive compaction (src/mm/compaction.c). A 16 MiB zone
 * in which every other page is a stamped anonymous page (all movable, no
 * free block above order 0) gets free order-9 blocks from kcompactd: from
 * the synchronous step iom_kcompactd_run() and from the thread, woken by
 * iom_wakeup_kcompactd(), by a write to compaction_proactiveness or by
 * its own 500 ms check; the
 * fragmentation score falls to the low watermark; proactiveness 0 does
 * nothing; the inline kswapd hands a high-order request over to
 * kcompactd; a run that cannot lower the score backs off 64 steps; bad
 * values are refused and change nothing; unmovable pages stay where they
 * are; machines with kcompactd threads come and go; and writers lose no
 * write while the thread moves their pages.
 *
 * The thread tests wait for a condition in a bounded loop (the bound is
 * a failure, not a timing claim), and for the thread to be idle (asleep
 * with nothing requested, read under its lock) before they count pages.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frag_util.h"
#include "mm/internal.h"

#define PG IOM_PAGE_SIZE
#define WAIT_STEPS 30000	/* 1 ms each: 30 s before the test fails */

static struct test_log tlog;

/*
 * fragment(): frag_create() with kcompactd threads or not and
 * @proactiveness in the config's encoding.
 */
static void fragment(struct frag *f, bool kcompactd, int proactiveness)
{
	struct iom_machine_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.kcompactd = kcompactd;
	cfg.compaction_proactiveness = proactiveness;
	frag_create(f, &cfg, &tlog);
	assert_int_equal(iom_fragmentation_score_node(f->m, 0), 99);
	assert_int_equal(iom_fragmentation_score_zone(f->m, 0, f->zt), 100);
}

/* Asleep with nothing requested: read under the thread's lock. */
static bool kcompactd_idle(struct iom_machine *m, int nid)
{
	struct pglist_data *pgdat = m->node_data[nid];
	bool idle;

	pthread_mutex_lock(&pgdat->kcompactd_lock);
	idle = pgdat->kcompactd_sleeping && !pgdat->kcompactd_max_order &&
	       !pgdat->proactive_compact_trigger;
	pthread_mutex_unlock(&pgdat->kcompactd_lock);
	return idle;
}

static void tick(void)
{
	struct timespec ts = { 0, 1000000 };

	nanosleep(&ts, NULL);
}

static void wait_kcompactd_idle(struct iom_machine *m)
{
	int i;

	for (i = 0; i < WAIT_STEPS && !kcompactd_idle(m, 0); i++)
		tick();
	assert_true(kcompactd_idle(m, 0));
}

static void unfragment(struct frag *f)
{
	if (f->m->cfg.kcompactd)
		wait_kcompactd_idle(f->m);
	frag_destroy(f);
}

static unsigned long ev(struct iom_machine *m, int item)
{
	return iom_vm_event_count(m, item);
}

/* ---- configuration and bad values --------------------------------------- */

static void test_config_and_bad_values(void **state)
{
	struct iom_machine_config cfg;
	struct iom_machine *m;
	int bad[] = { -2, 101, -100 };
	size_t i;

	(void)state;
	iom_machine_config_init(&cfg);
	assert_int_equal(cfg.compaction_proactiveness, 20);
	assert_false(cfg.kcompactd);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&cfg, 0, sizeof(cfg));
		cfg.mem_size = 16 << 20;
		cfg.compaction_proactiveness = bad[i];
		assert_null(test_machine(16, &tlog, &cfg));
		assert_true(test_log_contains(&tlog, "compaction_proactiveness"));
	}

	/* zero: the default, 20 */
	m = test_machine(16, &tlog, NULL);
	assert_non_null(m);
	assert_int_equal(iom_compaction_proactiveness(m), 20);
	iom_machine_get_config(m, &cfg);
	assert_int_equal(cfg.compaction_proactiveness, 20);
	assert_int_equal(iom_fragmentation_score_wmark(m, true), 80);
	assert_int_equal(iom_fragmentation_score_wmark(m, false), 90);
	/* a fresh machine is not fragmented */
	assert_int_equal(iom_fragmentation_score_node(m, 0), 0);

	/* bad sysctl values: refused, said, nothing changed */
	test_log_reset(&tlog);
	assert_int_equal(iom_sysctl_compaction_proactiveness(m, -1), -EINVAL);
	assert_int_equal(iom_sysctl_compaction_proactiveness(m, 101), -EINVAL);
	assert_int_equal(tlog.nr_warn, 2);
	assert_true(test_log_contains(&tlog, "compaction_proactiveness: 101"));
	assert_int_equal(iom_compaction_proactiveness(m), 20);
	assert_int_equal(iom_sysctl_compaction_proactiveness(NULL, 20), -EINVAL);

	/* the watermarks follow; the low one is capped at 5 */
	assert_int_equal(iom_sysctl_compaction_proactiveness(m, 100), 0);
	assert_int_equal(iom_fragmentation_score_wmark(m, true), 5);
	assert_int_equal(iom_fragmentation_score_wmark(m, false), 15);
	assert_int_equal(iom_sysctl_compaction_proactiveness(m, 0), 0);
	assert_int_equal(iom_compaction_proactiveness(m), 0);
	assert_int_equal(iom_fragmentation_score_wmark(m, true), 100);
	assert_int_equal(iom_fragmentation_score_wmark(m, false), 100);
	iom_machine_get_config(m, &cfg);
	assert_int_equal(cfg.compaction_proactiveness, -1);

	/* bad nodes and orders */
	test_log_reset(&tlog);
	assert_int_equal(iom_fragmentation_score_node(m, 1), -EINVAL);
	assert_int_equal(iom_fragmentation_score_node(m, -1), -EINVAL);
	assert_int_equal(iom_fragmentation_score_node(NULL, 0), -EINVAL);
	assert_int_equal(iom_fragmentation_score_zone(m, 0, IOM_MAX_NR_ZONES), -EINVAL);
	assert_int_equal(iom_fragmentation_score_wmark(NULL, true), -EINVAL);
	assert_int_equal(iom_compaction_proactiveness(NULL), -EINVAL);
	assert_int_equal(iom_kcompactd_run(m, 1, 9), -EINVAL);
	assert_int_equal(iom_kcompactd_run(m, 0, iom_max_order(m) + 1), -EINVAL);
	assert_int_equal(iom_kcompactd_run(NULL, 0, 9), -EINVAL);
	assert_int_equal(iom_wakeup_kcompactd(m, 3, 9), -EINVAL);
	assert_int_equal(iom_wakeup_kcompactd(m, 0, iom_max_order(m) + 1), -EINVAL);
	assert_int_equal(iom_wakeup_kcompactd(NULL, 0, 9), -EINVAL);
	assert_int_equal(tlog.nr_warn, 4);
	assert_int_equal(ev(m, IOM_KCOMPACTD_WAKE), 0);

	/* the config's -1 is proactiveness 0 */
	iom_machine_destroy(m);
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 16 << 20;
	cfg.compaction_proactiveness = -1;
	m = test_machine(16, &tlog, &cfg);
	assert_non_null(m);
	assert_int_equal(iom_compaction_proactiveness(m), 0);
	/* nothing to do on an empty machine */
	assert_int_equal(iom_kcompactd_run(m, 0, 0), IOM_KCOMPACTD_IDLE);
	assert_int_equal(ev(m, IOM_KCOMPACTD_WAKE), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
	assert_string_equal(iom_vm_event_name(IOM_KCOMPACTD_WAKE),
			    "compact_daemon_wake");
}

/* ---- the synchronous step ----------------------------------------------- */

static void test_sync_step_makes_order9_block(void **state)
{
	struct frag f;
	unsigned long wake, mscan, fscan, cmscan, cfscan, migrated;
	int i;

	(void)state;
	fragment(&f, false, 0);		/* proactiveness 20 */
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 0), 0);
	wake = ev(f.m, IOM_KCOMPACTD_WAKE);
	mscan = ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED);
	fscan = ev(f.m, IOM_KCOMPACTD_FREE_SCANNED);
	cmscan = ev(f.m, IOM_COMPACTMIGRATE_SCANNED);
	cfscan = ev(f.m, IOM_COMPACTFREE_SCANNED);
	migrated = ev(f.m, IOM_PGMIGRATE_SUCCESS);

	/* proactiveness 0 and nothing requested: nothing done at all */
	for (i = 0; i < 3; i++)
		assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_IDLE);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake);
	assert_int_equal(ev(f.m, IOM_COMPACTMIGRATE_SCANNED), cmscan);
	assert_int_equal(ev(f.m, IOM_COMPACTFREE_SCANNED), cfscan);
	assert_int_equal(ev(f.m, IOM_PGMIGRATE_SUCCESS), migrated);
	assert_int_equal(iom_fragmentation_score_zone(f.m, 0, f.zt), 100);
	assert_int_equal(frag_order9_free_pages(f.m, f.zt), 0);
	assert_int_equal(frag_nr_moved(&f), 0);

	assert_int_equal(iom_kcompactd_run(f.m, 0, 9), IOM_KCOMPACTD_WORK);
	assert_true(frag_order9_free_pages(f.m, f.zt) >= 512);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake + 1);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > mscan);
	assert_true(ev(f.m, IOM_KCOMPACTD_FREE_SCANNED) > fscan);
	/* kcompactd's scanning is also compaction's */
	assert_true(ev(f.m, IOM_COMPACTMIGRATE_SCANNED) - cmscan >=
		    ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) - mscan);
	/* not direct compaction */
	assert_int_equal(ev(f.m, IOM_COMPACTSTALL), 0);
	assert_true(frag_nr_moved(&f) > 0);
	frag_check_stamps(&f);

	/* the request was served and forgotten */
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_IDLE);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake + 1);
	/* a request with a block already free: woken, nothing to compact */
	mscan = ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED);
	assert_int_equal(iom_wakeup_kcompactd(f.m, 0, 9), 0);
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_WORK);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake + 2);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED), mscan);
	unfragment(&f);
}

static void test_sync_proactive_reaches_low_wmark(void **state)
{
	struct frag f;
	unsigned long wake, mscan;
	int low, score;

	(void)state;
	fragment(&f, false, 0);		/* the default, 20 */
	low = iom_fragmentation_score_wmark(f.m, true);
	assert_int_equal(low, 80);
	wake = ev(f.m, IOM_KCOMPACTD_WAKE);
	mscan = ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED);

	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_PROACTIVE);
	assert_true(iom_fragmentation_score_zone(f.m, 0, f.zt) <= low);
	assert_true(iom_fragmentation_score_node(f.m, 0) <= low);
	/* it stopped there: not the whole zone */
	assert_true(iom_fragmentation_score_zone(f.m, 0, f.zt) > 50);
	assert_true(frag_order9_free_pages(f.m, f.zt) >= 512);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > mscan);
	/* proactive work is no wake-up */
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake);
	frag_check_stamps(&f);

	/* below the high watermark now: nothing more */
	mscan = ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED);
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_IDLE);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED), mscan);

	/*
	 * More proactive: the sysctl write makes the next step compact on,
	 * here until the scanners meet (the low watermark, 5, is out of reach
	 * in 8 pageblocks: the block where they meet stays mixed).
	 */
	score = iom_fragmentation_score_zone(f.m, 0, f.zt);
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 100), 0);
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_PROACTIVE);
	assert_true(iom_fragmentation_score_zone(f.m, 0, f.zt) < score);
	assert_true(frag_order9_free_pages(f.m, f.zt) >= f.nr_live / 2);
	frag_check_stamps(&f);
	unfragment(&f);
}

/*
 * A page that cannot move in every pageblock: @pinned an extra reference
 * on a mapped page, else an unmovable kernel page written with a pattern.
 * Compaction then makes no order-9 block and reports it; the pages stay
 * where they are, with their content; proactive compaction makes no
 * progress and backs off 64 steps, which a sysctl write cuts short.
 */
static void immovable_in_every_block(bool pinned)
{
	unsigned long nr_blocks, i, fscan;
	struct iom_page **held;
	unsigned long *held_pfn, *held_idx, nr_held = 0;
	unsigned int pb;
	struct frag f;
	int step;

	fragment(&f, false, 0);
	pb = iom_pageblock_order(f.m);
	nr_blocks = (iom_end_pfn(f.m) - iom_first_pfn(f.m)) >> pb;
	held = calloc(nr_blocks, sizeof(*held));
	held_pfn = calloc(nr_blocks, sizeof(*held_pfn));
	held_idx = calloc(nr_blocks, sizeof(*held_idx));
	assert_non_null(held);
	assert_non_null(held_pfn);
	assert_non_null(held_idx);

	if (pinned) {
		for (i = 0; i < f.nr && nr_held < nr_blocks; i++) {
			unsigned long blk = (f.pfn[i] - iom_first_pfn(f.m)) >> pb;

			if (!f.live[i] || held[blk])
				continue;
			held[blk] = test_get_page_at(f.mm, f.base + i * PG);
			held_pfn[blk] = f.pfn[i];
			held_idx[blk] = i;
			nr_held++;
		}
	} else {
		struct iom_page *extra[4096];
		unsigned long nr_extra = 0;

		/* kernel pages until every block has one; keep one a block */
		while (nr_held < nr_blocks && nr_extra < 4096) {
			struct iom_page *p = iom_alloc_pages(f.m, IOM_GFP_KERNEL |
							     IOM___GFP_NOWARN, 0);
			unsigned long pfn, blk;

			assert_non_null(p);
			pfn = iom_page_to_pfn(f.m, p);
			blk = (pfn - iom_first_pfn(f.m)) >> pb;
			if (held[blk]) {
				extra[nr_extra++] = p;
				continue;
			}
			held[blk] = p;
			held_pfn[blk] = pfn;
			memset(iom_page_address(f.m, p), (int)(0x40 + blk), PG);
			nr_held++;
		}
		for (i = 0; i < nr_extra; i++)
			assert_int_equal(iom_put_page(f.m, extra[i]), 0);
	}
	assert_int_equal(nr_held, nr_blocks);

	/* kcompactd for order 9: done, no block */
	assert_int_equal(iom_kcompactd_run(f.m, 0, 9), IOM_KCOMPACTD_WORK);
	assert_int_equal(frag_order9_free_pages(f.m, f.zt), 0);
	/* and direct compaction says the same */
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_COMPLETE);
	assert_int_equal(frag_order9_free_pages(f.m, f.zt), 0);

	/* proactive: no progress, then 63 steps of backoff */
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_PROACTIVE);
	assert_true(iom_fragmentation_score_zone(f.m, 0, f.zt) >= 99);
	fscan = ev(f.m, IOM_KCOMPACTD_FREE_SCANNED);
	for (step = 0; step < 63; step++)
		assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_DEFERRED);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_FREE_SCANNED), fscan);
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_PROACTIVE);
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_DEFERRED);
	/* a sysctl write triggers a step whatever the backoff */
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 30), 0);
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_PROACTIVE);

	for (i = 0; i < nr_blocks; i++) {
		assert_int_equal(iom_page_to_pfn(f.m, held[i]), held_pfn[i]);
		if (pinned) {
			assert_int_equal(frag_pfn_at(&f, held_idx[i]), held_pfn[i]);
		} else {
			unsigned char *p = iom_page_address(f.m, held[i]);
			unsigned long k;

			for (k = 0; k < PG; k++)
				if (p[k] != (unsigned char)(0x40 + i))
					break;
			assert_int_equal(k, PG);
		}
	}
	frag_check_stamps(&f);

	/*
	 * Let go. Unpinned, kcompactd makes the block; the kernel pages'
	 * blocks were claimed for MIGRATE_UNMOVABLE and are no targets now.
	 */
	for (i = 0; i < nr_blocks; i++)
		assert_int_equal(iom_put_page(f.m, held[i]), 0);
	if (pinned) {
		assert_int_equal(iom_kcompactd_run(f.m, 0, 9), IOM_KCOMPACTD_WORK);
		assert_true(frag_order9_free_pages(f.m, f.zt) >= 512);
	}
	frag_check_stamps(&f);
	free(held);
	free(held_pfn);
	free(held_idx);
	unfragment(&f);
}

static void test_pinned_pages_stay(void **state)
{
	(void)state;
	immovable_in_every_block(true);
}

static void test_unmovable_pages_stay(void **state)
{
	(void)state;
	immovable_in_every_block(false);
}

/*
 * kswapd hands over to kcompactd: with watermarks on and the zone full of
 * clean page-cache pages below its low watermark, an order-9 allocation
 * runs the inline kswapd, whose reclaim brings the zone back to the low
 * watermark; it then records the order-9 request for kcompactd, which the
 * next iom_kcompactd_run() serves.
 */
static void test_kswapd_wakes_kcompactd(void **state)
{
	static uint64_t buf[PG / sizeof(uint64_t)];
	struct iom_machine_config cfg;
	struct iom_machine *m;
	struct iom_inode *file;
	struct pglist_data *pgdat;
	struct iom_zone_info zi;
	struct iom_page *page;
	unsigned long i, runs;
	int max_order;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 16 << 20;
	cfg.min_free_kbytes = 1024;
	m = test_machine(16, &tlog, &cfg);
	assert_non_null(m);
	assert_int_equal(iom_inode_create(m, 16 << 20, &file), 0);
	for (i = 0;; i++) {
		assert_true(i < 4096);
		memset(buf, (int)i, sizeof(buf));
		assert_int_equal(iom_file_write(file, i * PG, buf, PG), (ssize_t)PG);
		iom_drain_all_pages(m);
		assert_int_equal(iom_zone_info(m, 0, IOM_ZONE_NORMAL, &zi), 0);
		if (zi.nr_free_pages < zi.watermark_low)
			break;
	}
	assert_true(iom_file_sync(file) >= 0);
	pgdat = m->node_data[0];
	runs = ev(m, IOM_PAGEOUTRUN);

	page = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_NOWARN, 9);
	assert_true(ev(m, IOM_PAGEOUTRUN) > runs);
	pthread_mutex_lock(&pgdat->kcompactd_lock);
	max_order = pgdat->kcompactd_max_order;
	pthread_mutex_unlock(&pgdat->kcompactd_lock);
	assert_int_equal(max_order, 9);
	if (page)
		assert_int_equal(iom___free_pages(m, page, 9), 0);

	assert_int_equal(iom_kcompactd_run(m, 0, 0), IOM_KCOMPACTD_WORK);
	assert_int_equal(ev(m, IOM_KCOMPACTD_WAKE), 1);
	pthread_mutex_lock(&pgdat->kcompactd_lock);
	max_order = pgdat->kcompactd_max_order;
	pthread_mutex_unlock(&pgdat->kcompactd_lock);
	assert_int_equal(max_order, 0);

	assert_int_equal(iom_inode_destroy(file), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- the thread --------------------------------------------------------- */

static void test_thread_wakeup_makes_order9_block(void **state)
{
	struct frag f;
	unsigned long wake;
	int i;

	(void)state;
	fragment(&f, true, -1);
	wait_kcompactd_idle(f.m);
	wake = ev(f.m, IOM_KCOMPACTD_WAKE);
	assert_int_equal(frag_order9_free_pages(f.m, f.zt), 0);

	assert_int_equal(iom_wakeup_kcompactd(f.m, 0, 9), 0);
	for (i = 0; i < WAIT_STEPS && ev(f.m, IOM_KCOMPACTD_WAKE) == wake; i++)
		tick();
	wait_kcompactd_idle(f.m);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake + 1);
	assert_true(frag_order9_free_pages(f.m, f.zt) >= 512);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > 0);
	assert_true(frag_nr_moved(&f) > 0);
	frag_check_stamps(&f);
	unfragment(&f);
}

static void test_thread_proactive_on_sysctl_write_and_timer(void **state)
{
	struct iom_page *held[16];
	unsigned long mscan;
	struct frag f;
	int i, nr_held;

	(void)state;
	fragment(&f, true, -1);
	wait_kcompactd_idle(f.m);
	/* off: the thread sleeps until woken */
	assert_int_equal(iom_fragmentation_score_zone(f.m, 0, f.zt), 100);

	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 20), 0);
	for (i = 0; i < WAIT_STEPS &&
	     iom_fragmentation_score_zone(f.m, 0, f.zt) > 80; i++)
		tick();
	wait_kcompactd_idle(f.m);
	assert_true(iom_fragmentation_score_zone(f.m, 0, f.zt) <= 80);
	assert_true(frag_order9_free_pages(f.m, f.zt) >= 512);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), 0);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > 0);
	frag_check_stamps(&f);

	/*
	 * Take the big free blocks away: the score is back at 100, and with
	 * no wake-up and no sysctl write, the thread's 500 ms check finds it.
	 */
	for (nr_held = 0; nr_held < 16 && frag_order9_free_blocks(f.m, f.zt); nr_held++) {
		held[nr_held] = iom_alloc_pages(f.m, IOM_GFP_HIGHUSER_MOVABLE |
						IOM___GFP_NOWARN, 9);
		assert_non_null(held[nr_held]);
	}
	assert_int_equal(frag_order9_free_blocks(f.m, f.zt), 0);
	assert_int_equal(iom_fragmentation_score_zone(f.m, 0, f.zt), 100);
	mscan = ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED);
	for (i = 0; i < WAIT_STEPS &&
	     iom_fragmentation_score_zone(f.m, 0, f.zt) > 80; i++)
		tick();
	wait_kcompactd_idle(f.m);
	assert_true(iom_fragmentation_score_zone(f.m, 0, f.zt) <= 80);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > mscan);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), 0);
	frag_check_stamps(&f);
	/* off again, then give the blocks back */
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 0), 0);
	wait_kcompactd_idle(f.m);
	for (i = 0; i < nr_held; i++)
		assert_int_equal(iom___free_pages(f.m, held[i], 9), 0);
	unfragment(&f);
}

static void test_thread_machines_come_and_go(void **state)
{
	struct iom_machine_config cfg;
	int i;

	(void)state;
	for (i = 0; i < 12; i++) {
		struct iom_machine *m;

		memset(&cfg, 0, sizeof(cfg));
		cfg.mem_size = 16 << 20;
		cfg.nr_nodes = 1 + (unsigned int)(i % 2);
		cfg.kcompactd = true;
		cfg.compaction_proactiveness = i % 3 == 0 ? -1 : 100;
		m = test_machine(16, &tlog, &cfg);
		assert_non_null(m);
		if (i % 4 == 1)
			assert_int_equal(iom_wakeup_kcompactd(m, 0, 9), 0);
		if (i % 4 == 2)
			assert_int_equal(iom_sysctl_compaction_proactiveness(m, 50), 0);
		if (i % 4 == 3)
			assert_int_equal(iom_kcompactd_run(m, 0, 3), IOM_KCOMPACTD_WORK);
		test_assert_machine_clean(m);
		iom_machine_destroy(m);
	}
}

/*
 * Writers stamp their pages with rising sequence numbers (whole pages,
 * read back at once) while the kcompactd thread moves them: no write is
 * lost.
 */
static void test_thread_compacts_under_writers(void **state)
{
	enum { NR_WRITERS = 2 };
	struct frag_writer w[NR_WRITERS];
	atomic_bool stop = false;
	unsigned long migrated;
	struct frag f;
	int i;

	(void)state;
	fragment(&f, true, -1);
	wait_kcompactd_idle(f.m);
	migrated = ev(f.m, IOM_PGMIGRATE_SUCCESS);
	frag_writers_start(w, NR_WRITERS, &f, &stop);
	/* compact the whole zone as far as it goes, and an order-9 request */
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 100), 0);
	assert_int_equal(iom_wakeup_kcompactd(f.m, 0, 9), 0);
	for (i = 0; i < WAIT_STEPS && ev(f.m, IOM_PGMIGRATE_SUCCESS) - migrated < 256; i++)
		tick();
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 0), 0);
	wait_kcompactd_idle(f.m);
	frag_writers_stop(w, NR_WRITERS, &stop);
	assert_true(ev(f.m, IOM_PGMIGRATE_SUCCESS) - migrated >= 256);
	assert_true(frag_nr_moved(&f) > 0);
	frag_check_stamps(&f);
	unfragment(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_and_bad_values),
		cmocka_unit_test(test_sync_step_makes_order9_block),
		cmocka_unit_test(test_sync_proactive_reaches_low_wmark),
		cmocka_unit_test(test_pinned_pages_stay),
		cmocka_unit_test(test_unmovable_pages_stay),
		cmocka_unit_test(test_kswapd_wakes_kcompactd),
		cmocka_unit_test(test_thread_wakeup_makes_order9_block),
		cmocka_unit_test(test_thread_proactive_on_sysctl_write_and_timer),
		cmocka_unit_test(test_thread_machines_come_and_go),
		cmocka_unit_test(test_thread_compacts_under_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
