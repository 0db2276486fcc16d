/* SPDX-License-Identifier: MIT */
/*
 * kcompactd and proactive compaction (src/mm/compaction.c). A 16 MiB zone
 * in which every other page is a stamped anonymous page (all movable, no
 * free block above order 0) gets free order-9 blocks from kcompactd: from
 * the synchronous step iom_kcompactd_run() and from the thread, woken by
 * iom_wakeup_kcompactd() or by a write to compaction_proactiveness; the
 * fragmentation score falls to the low watermark; proactiveness 0 does
 * nothing; a run that cannot lower the score backs off 64 steps; bad
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

#include "mm_util.h"
#include "mm/internal.h"

#define PG IOM_PAGE_SIZE
#define WAIT_STEPS 30000	/* 1 ms each: 30 s before the test fails */

static struct test_log tlog;

/* ---- a fragmented machine ------------------------------------------------ */

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
		buf[i] = (addr ^ (seq << 44)) * 0x9e3779b97f4a7c15ull + i;
}

static unsigned long pfn_at(struct frag *f, unsigned long i)
{
	struct iom_page *page = test_get_page_at(f->mm, f->base + i * PG);
	unsigned long pfn = iom_page_to_pfn(f->m, page);

	assert_int_equal(iom_put_page(f->m, page), 0);
	return pfn;
}

static void check_stamps(struct frag *f)
{
	static uint64_t want[PG / sizeof(uint64_t)], got[PG / sizeof(uint64_t)];
	unsigned long i;

	for (i = 0; i < f->nr; i++) {
		if (!f->live[i])
			continue;
		stamp(f->base + i * PG, f->seq[i], want);
		assert_int_equal(iom_read(f->mm, f->base + i * PG, got, PG), 0);
		assert_memory_equal(got, want, PG);
	}
}

/* Pages in free blocks of order 9 or more in the zone. */
static unsigned long order9_free_pages(struct iom_machine *m, int zt)
{
	struct iom_zone_info zi;
	unsigned long n = 0;
	unsigned int o;

	iom_drain_all_pages(m);
	assert_int_equal(iom_zone_info(m, 0, zt, &zi), 0);
	for (o = 9; o <= iom_max_order(m); o++)
		n += zi.nr_free[o] << o;
	return n;
}

/*
 * A 16 MiB machine (@kcompactd: with the threads; @proactiveness in the
 * config's encoding), its zone filled with stamped anonymous pages of
 * which those at odd pfns are then unmapped.
 */
static void fragment(struct frag *f, bool kcompactd, int proactiveness)
{
	static uint64_t buf[PG / sizeof(uint64_t)];
	struct iom_machine_config cfg;
	struct iom_zone_info zi;
	unsigned long i;
	int zt;

	memset(f, 0, sizeof(*f));
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 16 << 20;
	cfg.kcompactd = kcompactd;
	cfg.compaction_proactiveness = proactiveness;
	f->m = test_machine(16, &tlog, &cfg);
	assert_non_null(f->m);
	f->zt = -1;
	for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
		assert_int_equal(iom_zone_info(f->m, 0, zt, &zi), 0);
		if (zi.populated)
			f->zt = zt;
	}
	assert_true(f->zt >= 0);
	assert_int_equal(iom_mm_create(f->m, &f->mm), 0);
	f->nr = test_nr_free(f->m);
	f->base = test_mmap(f->mm, 0, f->nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			    IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	f->live = calloc(f->nr, sizeof(*f->live));
	f->pfn = calloc(f->nr, sizeof(*f->pfn));
	f->seq = calloc(f->nr, sizeof(*f->seq));
	assert_non_null(f->live);
	assert_non_null(f->pfn);
	assert_non_null(f->seq);
	for (i = 0; i < f->nr; i++) {
		stamp(f->base + i * PG, 0, buf);
		if (iom_write(f->mm, f->base + i * PG, buf, PG))
			break;
		f->live[i] = true;
	}
	assert_true(test_nr_free(f->m) <= 16);
	for (i = 0; i < f->nr; i++) {
		if (!f->live[i])
			continue;
		f->pfn[i] = pfn_at(f, i);
		if (f->pfn[i] & 1) {
			assert_int_equal(iom_munmap(f->mm, f->base + i * PG, PG), 0);
			f->live[i] = false;
		} else {
			f->nr_live++;
		}
	}
	assert_true(f->nr_live > 1000);
	assert_int_equal(order9_free_pages(f->m, f->zt), 0);
	assert_int_equal(iom_fragmentation_score_node(f->m, 0), 99);
	assert_int_equal(iom_fragmentation_score_zone(f->m, 0, f->zt), 100);
}

/* Live pages that are no longer where fragment() left them. */
static unsigned long nr_moved(struct frag *f)
{
	unsigned long i, moved = 0;

	for (i = 0; i < f->nr; i++)
		if (f->live[i] && pfn_at(f, i) != f->pfn[i])
			moved++;
	return moved;
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
	iom_mm_destroy(f->mm);
	test_assert_machine_clean(f->m);
	iom_machine_destroy(f->m);
	free(f->live);
	free(f->pfn);
	free(f->seq);
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
	unsigned long wake, mscan, fscan, cmscan;

	(void)state;
	fragment(&f, false, -1);
	wake = ev(f.m, IOM_KCOMPACTD_WAKE);
	mscan = ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED);
	fscan = ev(f.m, IOM_KCOMPACTD_FREE_SCANNED);
	cmscan = ev(f.m, IOM_COMPACTMIGRATE_SCANNED);

	/* proactiveness 0 and nothing requested: nothing done */
	assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_IDLE);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake);
	assert_int_equal(order9_free_pages(f.m, f.zt), 0);

	assert_int_equal(iom_kcompactd_run(f.m, 0, 9), IOM_KCOMPACTD_WORK);
	assert_true(order9_free_pages(f.m, f.zt) >= 512);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake + 1);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > mscan);
	assert_true(ev(f.m, IOM_KCOMPACTD_FREE_SCANNED) > fscan);
	/* kcompactd's scanning is also compaction's */
	assert_true(ev(f.m, IOM_COMPACTMIGRATE_SCANNED) - cmscan >=
		    ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) - mscan);
	/* not direct compaction */
	assert_int_equal(ev(f.m, IOM_COMPACTSTALL), 0);
	assert_true(nr_moved(&f) > 0);
	check_stamps(&f);

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
	assert_true(order9_free_pages(f.m, f.zt) >= 512);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > mscan);
	/* proactive work is no wake-up */
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake);
	check_stamps(&f);

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
	assert_true(order9_free_pages(f.m, f.zt) >= f.nr_live / 2);
	check_stamps(&f);
	unfragment(&f);
}

static void test_proactiveness_zero_does_nothing(void **state)
{
	struct frag f;
	unsigned long mscan, fscan, migrated;
	int i;

	(void)state;
	fragment(&f, false, 0);
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 0), 0);
	mscan = ev(f.m, IOM_COMPACTMIGRATE_SCANNED);
	fscan = ev(f.m, IOM_COMPACTFREE_SCANNED);
	migrated = ev(f.m, IOM_PGMIGRATE_SUCCESS);
	for (i = 0; i < 3; i++)
		assert_int_equal(iom_kcompactd_run(f.m, 0, 0), IOM_KCOMPACTD_IDLE);
	assert_int_equal(ev(f.m, IOM_COMPACTMIGRATE_SCANNED), mscan);
	assert_int_equal(ev(f.m, IOM_COMPACTFREE_SCANNED), fscan);
	assert_int_equal(ev(f.m, IOM_PGMIGRATE_SUCCESS), migrated);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), 0);
	assert_int_equal(iom_fragmentation_score_zone(f.m, 0, f.zt), 100);
	assert_int_equal(order9_free_pages(f.m, f.zt), 0);
	assert_int_equal(nr_moved(&f), 0);
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
	assert_int_equal(order9_free_pages(f.m, f.zt), 0);
	/* and direct compaction says the same */
	assert_int_equal(iom_compact_zone(f.m, 0, f.zt, 9, IOM_MIGRATE_SYNC),
			 IOM_COMPACT_COMPLETE);
	assert_int_equal(order9_free_pages(f.m, f.zt), 0);

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
			assert_int_equal(pfn_at(&f, held_idx[i]), held_pfn[i]);
		} else {
			unsigned char *p = iom_page_address(f.m, held[i]);
			unsigned long k;

			for (k = 0; k < PG; k++)
				if (p[k] != (unsigned char)(0x40 + i))
					break;
			assert_int_equal(k, PG);
		}
	}
	check_stamps(&f);

	/*
	 * Let go. Unpinned, kcompactd makes the block; the kernel pages'
	 * blocks were claimed for MIGRATE_UNMOVABLE and are no targets now.
	 */
	for (i = 0; i < nr_blocks; i++)
		assert_int_equal(iom_put_page(f.m, held[i]), 0);
	if (pinned) {
		assert_int_equal(iom_kcompactd_run(f.m, 0, 9), IOM_KCOMPACTD_WORK);
		assert_true(order9_free_pages(f.m, f.zt) >= 512);
	}
	check_stamps(&f);
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
	assert_int_equal(order9_free_pages(f.m, f.zt), 0);

	assert_int_equal(iom_wakeup_kcompactd(f.m, 0, 9), 0);
	for (i = 0; i < WAIT_STEPS && ev(f.m, IOM_KCOMPACTD_WAKE) == wake; i++)
		tick();
	wait_kcompactd_idle(f.m);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), wake + 1);
	assert_true(order9_free_pages(f.m, f.zt) >= 512);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > 0);
	assert_true(nr_moved(&f) > 0);
	check_stamps(&f);
	unfragment(&f);
}

static void test_thread_proactive_on_sysctl_write(void **state)
{
	struct frag f;
	int i;

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
	assert_true(order9_free_pages(f.m, f.zt) >= 512);
	assert_int_equal(ev(f.m, IOM_KCOMPACTD_WAKE), 0);
	assert_true(ev(f.m, IOM_KCOMPACTD_MIGRATE_SCANNED) > 0);
	check_stamps(&f);
	/* and off again before the next interval can do more */
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 0), 0);
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
 * lost. Workers never assert: they count what went wrong.
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

static void test_thread_compacts_under_writers(void **state)
{
	enum { NR_WRITERS = 2 };
	struct writer w[NR_WRITERS];
	atomic_bool stop = false;
	unsigned long migrated;
	struct frag f;
	unsigned int t;
	int i;

	(void)state;
	fragment(&f, true, -1);
	wait_kcompactd_idle(f.m);
	migrated = ev(f.m, IOM_PGMIGRATE_SUCCESS);
	for (t = 0; t < NR_WRITERS; t++) {
		w[t] = (struct writer){ .f = &f, .id = t, .nr_threads = NR_WRITERS,
					.stop = &stop };
		assert_int_equal(pthread_create(&w[t].thread, NULL, writer_fn, &w[t]), 0);
	}
	/* compact the whole zone as far as it goes, and an order-9 request */
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 100), 0);
	assert_int_equal(iom_wakeup_kcompactd(f.m, 0, 9), 0);
	for (i = 0; i < WAIT_STEPS && ev(f.m, IOM_PGMIGRATE_SUCCESS) - migrated < 256; i++)
		tick();
	assert_int_equal(iom_sysctl_compaction_proactiveness(f.m, 0), 0);
	wait_kcompactd_idle(f.m);
	atomic_store(&stop, true);
	for (t = 0; t < NR_WRITERS; t++) {
		assert_int_equal(pthread_join(w[t].thread, NULL), 0);
		assert_int_equal(w[t].errors, 0);
		assert_true(w[t].rounds >= 2);
	}
	assert_true(ev(f.m, IOM_PGMIGRATE_SUCCESS) - migrated >= 256);
	assert_true(nr_moved(&f) > 0);
	check_stamps(&f);
	unfragment(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_and_bad_values),
		cmocka_unit_test(test_sync_step_makes_order9_block),
		cmocka_unit_test(test_sync_proactive_reaches_low_wmark),
		cmocka_unit_test(test_proactiveness_zero_does_nothing),
		cmocka_unit_test(test_pinned_pages_stay),
		cmocka_unit_test(test_unmovable_pages_stay),
		cmocka_unit_test(test_thread_wakeup_makes_order9_block),
		cmocka_unit_test(test_thread_proactive_on_sysctl_write),
		cmocka_unit_test(test_thread_machines_come_and_go),
		cmocka_unit_test(test_thread_compacts_under_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
