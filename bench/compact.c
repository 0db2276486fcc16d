/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench compact - memory compaction (src/mm/compaction.c) on a
 * deterministically fragmented machine. Each run builds a machine (1 GiB
 * by default, one node) and fills its free memory, short of the
 * watermarks, page by page in a seeded random order: half the pages go to
 * an anonymous mapping that is then unmapped whole, a quarter stay as
 * anonymous pages and a quarter as clean page-cache pages, so about every
 * other page is free and no free block above order 0 is left. Then it
 * either compacts the node fully (iom_compact_node(), MIGRATE_SYNC,
 * /proc/sys/vm/compact_memory) or lets kcompactd's proactive path
 * (iom_kcompactd_run() in this thread, MIGRATE_SYNC_LIGHT) work until the
 * node's fragmentation score is at or below the low watermark. Reported:
 * pages scanned per second by each scanner, pages migrated per second,
 * and migration bytes per second against memcpy() of the same bytes page
 * by page between two host buffers, measured in the same run; order-9
 * free blocks and fragmentation score before and after; wall time. Every
 * kept page's content is checked afterwards (outside the timing).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/compaction.h>

#include "bench.h"

#define COMPACT_DEFAULT_MEM	(1ULL << 30)
#define COMPACT_SEED		0x9e3779b97f4a7c15ULL
#define COMPACT_MAX_STEPS	64	/* proactive steps a run at most */
#define COMPACT_SLACK_PAGES	512	/* kept free above the high watermark */
#define PG			IOM_PAGE_SIZE
#define COMPACT_MAX_RUNS	1000	/* main.c's BENCH_MAX_RUNS */

enum compact_case { CASE_NODE, CASE_PROACTIVE, NR_CASES };

static const char *const case_names[NR_CASES] = {
	[CASE_NODE] = "compact_node",
	[CASE_PROACTIVE] = "proactive",
};

/* What one run measured. */
struct compact_sample {
	double wall_s;
	double migrate_scanned, free_scanned, migrated;
	double memcpy_s;		/* the baseline's time for the same bytes */
	double o9_before, o9_after;	/* free blocks of order 9 (in order-9 units) */
	double score_before, score_after;
	double steps;			/* iom_kcompactd_run() calls */
};

/* The fragmented machine. */
struct frag_machine {
	struct iom_machine *m;
	struct iom_mm *mm;
	struct iom_inode *file;
	uint64_t anon, gone;		/* the kept and the unmapped mapping */
	unsigned long nr_anon, nr_file, nr_gone;
};

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* The content of kept page @i of a kind: its first word says who it is. */
static void fill_page(uint64_t *buf, uint64_t tag)
{
	buf[0] = tag;
	buf[PG / sizeof(uint64_t) - 1] = ~tag;
}

/*
 * Over every populated zone (caches drained): free pages, the sum of the
 * high watermarks, and free blocks of order 9 or more in order-9 units.
 */
static void zone_totals(struct iom_machine *m, unsigned long *free_pages,
			unsigned long *high_wmarks, double *order9_blocks)
{
	unsigned long o9 = 0;
	unsigned int nid, o;
	int zt;

	*free_pages = *high_wmarks = 0;
	iom_drain_all_pages(m);
	for (nid = 0; nid < iom_nr_nodes(m); nid++)
		for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
			struct iom_zone_info zi;

			if (iom_zone_info(m, (int)nid, zt, &zi) || !zi.populated)
				continue;
			*free_pages += zi.nr_free_pages;
			*high_wmarks += zi.watermark_high;
			for (o = 9; o <= iom_max_order(m) && o < 32; o++)
				o9 += zi.nr_free[o] << (o - 9);
		}
	*order9_blocks = (double)o9;
}

static double order9_blocks(struct iom_machine *m)
{
	unsigned long free_pages, high;
	double o9;

	zone_totals(m, &free_pages, &high, &o9);
	return o9;
}

static void frag_destroy(struct frag_machine *fm)
{
	if (fm->mm)
		iom_mm_destroy(fm->mm);
	if (fm->file)
		iom_inode_destroy(fm->file);
	iom_machine_destroy(fm->m);
	memset(fm, 0, sizeof(*fm));
}

static int frag_create(const struct bench_opts *o, uint64_t mem,
		       struct frag_machine *fm)
{
	static uint64_t buf[PG / sizeof(uint64_t)];
	struct iom_machine_config cfg;
	unsigned long avail, high, nr, i;
	uint64_t seed = COMPACT_SEED, addr;
	double o9;
	int ret;

	memset(fm, 0, sizeof(*fm));
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = mem;
	ret = iom_machine_create(&cfg, &fm->m);
	if (ret) {
		bench_error("iom_machine_create(%llu bytes): %s",
			    (unsigned long long)mem, strerror(-ret));
		return ret;
	}
	zone_totals(fm->m, &avail, &high, &o9);
	if (avail < high + 2 * COMPACT_SLACK_PAGES) {
		bench_error("--mem too small");
		iom_machine_destroy(fm->m);
		return -EINVAL;
	}
	nr = avail - high - COMPACT_SLACK_PAGES;
	if ((ret = iom_mm_create(fm->m, &fm->mm)) ||
	    (ret = iom_inode_create(fm->m, (uint64_t)nr * PG, &fm->file)))
		goto fail;
	ret = iom_mmap(fm->mm, 0, nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0, &fm->anon);
	if (!ret)
		ret = iom_mmap(fm->mm, 0, nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0,
			       &fm->gone);
	if (ret)
		goto fail;
	bench_progress(o, "compact: filling %lu pages", nr);
	for (i = 0; i < nr; i++) {
		uint64_t r = xorshift64(&seed);

		if (r & 1) {
			fill_page(buf, 0);
			ret = iom_write(fm->mm, fm->gone + fm->nr_gone++ * PG, buf, PG);
		} else if (r & 2) {
			fill_page(buf, fm->nr_anon + 1);
			addr = fm->anon + fm->nr_anon++ * PG;
			ret = iom_write(fm->mm, addr, buf, PG);
		} else {
			fill_page(buf, (fm->nr_file + 1) << 32);
			ret = (int)iom_file_write(fm->file, fm->nr_file++ * PG, buf, PG);
			ret = ret == (int)PG ? 0 : ret < 0 ? ret : -EIO;
		}
		if (ret)
			goto fail;
	}
	/* clean page-cache pages migrate without writeback */
	if (iom_file_sync(fm->file) < 0) {
		ret = -EIO;
		goto fail;
	}
	ret = iom_munmap(fm->mm, fm->gone, nr * PG);
	if (ret)
		goto fail;
	iom_drain_all_pages(fm->m);
	return 0;
fail:
	bench_error("compact: fragmenting the machine failed: %s", strerror(-ret));
	frag_destroy(fm);
	return ret ? ret : -EIO;
}

/* Every kept page still holds what was written. Return: 0 or -EIO. */
static int frag_check(struct frag_machine *fm)
{
	static uint64_t buf[PG / sizeof(uint64_t)];
	unsigned long i;

	for (i = 0; i < fm->nr_anon; i++) {
		if (iom_read(fm->mm, fm->anon + i * PG, buf, PG) ||
		    buf[0] != i + 1 || buf[PG / sizeof(uint64_t) - 1] != ~(i + 1))
			return -EIO;
	}
	for (i = 0; i < fm->nr_file; i++) {
		uint64_t tag = (i + 1) << 32;

		if (iom_file_read(fm->file, i * PG, buf, PG) != (ssize_t)PG ||
		    buf[0] != tag || buf[PG / sizeof(uint64_t) - 1] != ~tag)
			return -EIO;
	}
	if (iom_machine_bug_count(fm->m))
		return -EIO;
	return 0;
}

/* memcpy() of @pages pages, page by page, between two host buffers. */
static double memcpy_seconds(unsigned long pages)
{
	size_t bytes = (size_t)pages * PG;
	char *src, *dst;
	uint64_t t0, t1;
	unsigned long i;

	if (!pages)
		return 0;
	src = malloc(bytes);
	dst = malloc(bytes);
	if (!src || !dst) {
		free(src);
		free(dst);
		return -1;
	}
	memset(src, 0x5a, bytes);	/* fault both in outside the timing */
	memset(dst, 0xa5, bytes);
	t0 = bench_now_ns();
	for (i = 0; i < pages; i++) {
		memcpy(dst + i * PG, src + i * PG, PG);
		bench_sink(dst + i * PG);
	}
	t1 = bench_now_ns();
	free(src);
	free(dst);
	return (double)(t1 - t0) / 1e9;
}

static int run_once(const struct bench_opts *o, uint64_t mem,
		    enum compact_case c, struct compact_sample *s)
{
	unsigned long ms0, fs0, mig0;
	struct frag_machine fm;
	unsigned int nid;
	uint64_t t0, t1;
	int ret, low;

	ret = frag_create(o, mem, &fm);
	if (ret)
		return ret;
	memset(s, 0, sizeof(*s));
	s->o9_before = order9_blocks(fm.m);
	s->score_before = iom_fragmentation_score_node(fm.m, 0);
	low = iom_fragmentation_score_wmark(fm.m, true);
	ms0 = iom_vm_event_count(fm.m, IOM_COMPACTMIGRATE_SCANNED);
	fs0 = iom_vm_event_count(fm.m, IOM_COMPACTFREE_SCANNED);
	mig0 = iom_vm_event_count(fm.m, IOM_PGMIGRATE_SUCCESS);

	t0 = bench_now_ns();
	if (c == CASE_NODE) {
		for (nid = 0; nid < iom_nr_nodes(fm.m) && !ret; nid++)
			ret = iom_compact_node(fm.m, (int)nid);
	} else {
		while (s->steps < COMPACT_MAX_STEPS &&
		       iom_fragmentation_score_node(fm.m, 0) > low) {
			ret = iom_kcompactd_run(fm.m, 0, 0);
			s->steps++;
			if (ret != IOM_KCOMPACTD_PROACTIVE)
				break;
			ret = 0;
		}
	}
	t1 = bench_now_ns();
	if (ret < 0) {
		bench_error("%s: %s", case_names[c], strerror(-ret));
		goto out;
	}
	ret = 0;
	s->wall_s = (double)(t1 - t0) / 1e9;
	s->migrate_scanned = (double)(iom_vm_event_count(fm.m, IOM_COMPACTMIGRATE_SCANNED) - ms0);
	s->free_scanned = (double)(iom_vm_event_count(fm.m, IOM_COMPACTFREE_SCANNED) - fs0);
	s->migrated = (double)(iom_vm_event_count(fm.m, IOM_PGMIGRATE_SUCCESS) - mig0);
	s->o9_after = order9_blocks(fm.m);
	s->score_after = iom_fragmentation_score_node(fm.m, 0);
	if (c == CASE_PROACTIVE && s->score_after > low) {
		bench_error("proactive: score %.0f still above the low watermark %d after %.0f steps",
			    s->score_after, low, s->steps);
		ret = -EIO;
		goto out;
	}
	if (frag_check(&fm)) {
		bench_error("%s: page content or machine state is wrong after compaction",
			    case_names[c]);
		ret = -EIO;
		goto out;
	}
	if (o->baseline) {
		s->memcpy_s = memcpy_seconds((unsigned long)s->migrated);
		if (s->memcpy_s < 0) {
			bench_error("no host memory for the memcpy baseline");
			ret = -ENOMEM;
		}
	}
out:
	frag_destroy(&fm);
	return ret;
}

#define FIELD(name) offsetof(struct compact_sample, name)

/* Statistics of one field over the runs; @per_second: divided by wall_s. */
static void stat_of(const struct compact_sample *s, int n, size_t field,
		    bool per_second, struct bench_stat *out)
{
	static double v[COMPACT_MAX_RUNS];
	int i;

	for (i = 0; i < n; i++) {
		double x = *(const double *)((const char *)&s[i] + field);
		double d = per_second ? s[i].wall_s : 1;

		v[i] = d > 0 ? x / d : 0;
	}
	bench_stat_compute(v, n, out);
}

static void report_case(const struct bench_opts *o, enum compact_case c,
			const struct compact_sample *s)
{
	static const struct {
		const char *metric, *unit;
		size_t field;
		bool per_second;
		double scale;
	} rows[] = {
		{ "migrate_scanned_per_s", "pages/s", FIELD(migrate_scanned), true, 1 },
		{ "free_scanned_per_s", "pages/s", FIELD(free_scanned), true, 1 },
		{ "migrated_per_s", "pages/s", FIELD(migrated), true, 1 },
		{ "wall_ms", "ms", FIELD(wall_s), false, 1000 },
		{ "pages_migrated", "pages", FIELD(migrated), false, 1 },
		{ "order9_blocks_before", "blocks", FIELD(o9_before), false, 1 },
		{ "order9_blocks_after", "blocks", FIELD(o9_after), false, 1 },
		{ "score_before", "percent", FIELD(score_before), false, 1 },
		{ "score_after", "percent", FIELD(score_after), false, 1 },
		{ "steps", "calls", FIELD(steps), false, 1 },
	};
	struct bench_stat v, b;
	char metric[96], note[160];
	size_t i;
	int n = o->runs;
	static double bytes[COMPACT_MAX_RUNS], mbytes[COMPACT_MAX_RUNS];

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i].field == FIELD(steps) && c != CASE_PROACTIVE)
			continue;
		stat_of(s, n, rows[i].field, rows[i].per_second, &v);
		v.median *= rows[i].scale;
		v.min *= rows[i].scale;
		v.max *= rows[i].scale;
		snprintf(metric, sizeof(metric), "%s_%s", case_names[c], rows[i].metric);
		bench_report(o, &(struct bench_result){
			.bench = "compact", .metric = metric, .unit = rows[i].unit,
			.value = v,
		});
	}

	/* migration bytes/s against memcpy bytes/s of the same bytes */
	for (i = 0; i < (size_t)n; i++) {
		bytes[i] = s[i].wall_s > 0 ? s[i].migrated * PG / s[i].wall_s : 0;
		mbytes[i] = s[i].memcpy_s > 0 ? s[i].migrated * PG / s[i].memcpy_s : 0;
	}
	bench_stat_compute(bytes, n, &v);
	bench_stat_compute(mbytes, o->baseline ? n : 0, &b);
	snprintf(metric, sizeof(metric), "%s_migrate_bytes_per_s", case_names[c]);
	snprintf(note, sizeof(note), "%s; wall time of the whole run, scanning included",
		 c == CASE_NODE ? "iom_compact_node(), MIGRATE_SYNC"
				: "iom_kcompactd_run() proactive steps, MIGRATE_SYNC_LIGHT");
	bench_report(o, &(struct bench_result){
		.bench = "compact", .metric = metric, .unit = "B/s", .value = v,
		.baseline = o->baseline ? &b : NULL,
		.baseline_name = "memcpy() of the migrated bytes, page by page",
		.note = note,
	});
}

int bench_compact(const struct bench_opts *o)
{
	uint64_t mem = o->mem ? o->mem : COMPACT_DEFAULT_MEM;
	struct compact_sample *s;
	int c, r, ret = 0;

	s = calloc((size_t)o->runs, sizeof(*s));
	if (!s) {
		bench_error("out of memory");
		return 1;
	}
	bench_report_host(o);
	for (c = 0; c < NR_CASES && !ret; c++) {
		if (o->only && !strstr(case_names[c], o->only))
			continue;
		for (r = 0; r < o->runs && !ret; r++) {
			bench_progress(o, "compact: %s run %d/%d", case_names[c],
				       r + 1, o->runs);
			ret = run_once(o, mem, (enum compact_case)c, &s[r]);
		}
		if (!ret)
			report_case(o, (enum compact_case)c, s);
	}
	free(s);
	return ret ? 1 : 0;
}
