/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench machine - what a simulated machine costs to build and to
 * keep: iom_machine_create() + iom_machine_destroy() time, metadata bytes
 * per simulated page as the library counts them (iom_machine_memcost()) and
 * as the machine's own jemalloc arena sees them (allocated, resident,
 * mapped), and the host RSS the creation added (/proc/self/statm).
 * Baseline for the time: allocating, touching (memset) and freeing the same
 * number of metadata bytes with the same allocator - what building mem_map
 * eagerly would cost. Sizes and RSS have no baseline.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MACHINE_DEFAULT_MEM	(64ULL << 30)

/* Which allocator statistics the run could read. */
#define HAVE_ALLOCATED	0x1u
#define HAVE_RESIDENT	0x2u

enum machine_sample {
	S_CREATE,	/* ms */
	S_DESTROY,	/* ms */
	S_TOTAL,	/* ms */
	S_BASELINE,	/* ms */
	S_META,		/* B/page, iom_machine_memcost() */
	S_META_PEAK,	/* B/page */
	S_ARENA_ALLOC,	/* B/page */
	S_ARENA_RES,	/* B/page */
	S_ARENA_MAP,	/* B/page */
	S_RSS,		/* B/page */
	S_RSS_MIB,	/* MiB */
	S_META_MIB,	/* MiB */
	NR_SAMPLES,
};

static const struct {
	const char *metric, *unit, *note;
} machine_metrics[NR_SAMPLES] = {
	[S_CREATE]	= { "create", "ms", "iom_machine_create()" },
	[S_DESTROY]	= { "destroy", "ms", "iom_machine_destroy()" },
	[S_TOTAL]	= { "create_destroy", "ms", NULL },
	[S_META]	= { "metadata_per_page", "B/page",
			    "iom_machine_memcost().metadata_bytes / nr_pages" },
	[S_META_PEAK]	= { "metadata_peak_per_page", "B/page",
			    "iom_machine_memcost().metadata_peak / nr_pages" },
	[S_ARENA_ALLOC]	= { "arena_allocated_per_page", "B/page",
			    "jemalloc stats.arenas.<i>.{small,large}.allocated" },
	[S_ARENA_RES]	= { "arena_resident_per_page", "B/page",
			    "jemalloc stats.arenas.<i>.resident: an upper "
			    "bound, counts untouched demand-zero pages" },
	[S_ARENA_MAP]	= { "arena_mapped_per_page", "B/page",
			    "jemalloc stats.arenas.<i>.mapped" },
	[S_RSS]		= { "rss_delta_per_page", "B/page",
			    "host RSS after create - before, /proc/self/statm" },
	[S_RSS_MIB]	= { "rss_delta", "MiB",
			    "host RSS after create - before, /proc/self/statm" },
	[S_META_MIB]	= { "metadata", "MiB", "iom_machine_memcost()" },
};

/* Allocate, touch and free @bytes in a fresh arena. Return: ms, or -1. */
static double baseline_touch(uint64_t bytes)
{
	struct iom_mem_ops ops;
	struct bench_arena *a;
	uint64_t t0, t1;
	void *p;
	int err;

	err = bench_arena_create(&a);
	if (err) {
		bench_error("cannot create an arena: %s", strerror(-err));
		return -1;
	}
	bench_arena_mem_ops(a, &ops);
	t0 = bench_now_ns();
	p = ops.alloc(ops.priv, bytes, 64, false);
	if (!p) {
		bench_error("baseline: cannot allocate %llu bytes",
			    (unsigned long long)bytes);
		bench_arena_destroy(a);
		return -1;
	}
	memset(p, 0, bytes);
	bench_sink(p);
	ops.free(ops.priv, p, bytes);
	t1 = bench_now_ns();
	bench_arena_destroy(a);
	return (double)(t1 - t0) / 1e6;
}

/* One create/measure/destroy cycle; fills column @r of @s. */
static int machine_run(const struct bench_opts *o, int r,
		       double *s[NR_SAMPLES], unsigned int *have,
		       uint64_t *nr_pages)
{
	struct iom_machine_config cfg;
	struct iom_machine_memcost mc;
	struct bench_arena_stats st;
	struct iom_machine *m = NULL;
	struct bench_arena *arena;
	long long rss0, rss1;
	uint64_t t0, t1, t2, t3;
	double pages;
	int err;

	err = bench_arena_create(&arena);
	if (err) {
		bench_error("cannot create the metadata arena: %s",
			    strerror(-err));
		return -1;
	}
	iom_machine_config_init(&cfg);
	cfg.mem_size = o->mem;
	bench_arena_mem_ops(arena, &cfg.mem_ops);

	rss0 = bench_rss_bytes();
	t0 = bench_now_ns();
	err = iom_machine_create(&cfg, &m);
	t1 = bench_now_ns();
	if (err) {
		bench_error("iom_machine_create(mem %llu): %s",
			    (unsigned long long)o->mem, strerror(-err));
		bench_arena_destroy(arena);
		return -1;
	}
	rss1 = bench_rss_bytes();
	iom_machine_memcost(m, &mc);
	err = bench_arena_stats(arena, &st);
	if (err) {
		/* jemalloc without --enable-stats: say so once, go on. */
		if (r == 0)
			bench_error("allocator statistics unavailable: %s",
				    strerror(-err));
		st.allocated = st.resident = st.mapped = -1;
	}
	if (!mc.nr_pages) {
		bench_error("iom_machine_memcost() reports no pages");
		goto fail;
	}

	t2 = bench_now_ns();
	iom_machine_destroy(m);
	t3 = bench_now_ns();
	m = NULL;

	pages = (double)mc.nr_pages;
	s[S_CREATE][r] = (double)(t1 - t0) / 1e6;
	s[S_DESTROY][r] = (double)(t3 - t2) / 1e6;
	s[S_TOTAL][r] = s[S_CREATE][r] + s[S_DESTROY][r];
	s[S_META][r] = (double)mc.metadata_bytes / pages;
	s[S_META_PEAK][r] = (double)mc.metadata_peak / pages;
	s[S_META_MIB][r] = (double)mc.metadata_bytes / (1 << 20);
	s[S_ARENA_ALLOC][r] = (double)st.allocated / pages;
	s[S_ARENA_RES][r] = (double)st.resident / pages;
	s[S_ARENA_MAP][r] = (double)st.mapped / pages;
	s[S_RSS][r] = (double)(rss1 - rss0) / pages;
	s[S_RSS_MIB][r] = (double)(rss1 - rss0) / (1 << 20);
	*have = (st.allocated >= 0 ? HAVE_ALLOCATED : 0) |
		(st.resident >= 0 ? HAVE_RESIDENT : 0);
	*nr_pages = mc.nr_pages;

	/* Whatever the machine allocated in its arena, it gave back. */
	if (!err && !bench_arena_stats(arena, &st) && st.allocated != 0) {
		bench_error("machine metadata leaked: %lld bytes still "
			    "allocated in its arena after destroy",
			    st.allocated);
		goto fail;
	}
	bench_arena_destroy(arena);

	if (o->baseline) {
		s[S_BASELINE][r] = baseline_touch(mc.metadata_peak);
		if (s[S_BASELINE][r] < 0)
			return -1;
	}
	return 0;

fail:
	iom_machine_destroy(m);		/* NULL-safe */
	bench_arena_destroy(arena);
	return -1;
}

int bench_machine(const struct bench_opts *o_in)
{
	struct bench_opts opts = *o_in, *o = &opts;
	struct bench_stat st[NR_SAMPLES];
	double *s[NR_SAMPLES], *buf;
	unsigned int have = 0;
	uint64_t nr_pages = 0;
	char bname[96];
	int i, r, ret = 1;

	if (!o->mem)
		o->mem = MACHINE_DEFAULT_MEM;
	buf = calloc((size_t)o->runs * NR_SAMPLES, sizeof(double));
	if (!buf) {
		bench_error("out of memory");
		return 1;
	}
	for (i = 0; i < NR_SAMPLES; i++)
		s[i] = buf + (size_t)i * o->runs;

	bench_report_host(o);
	for (r = 0; r < o->runs; r++) {
		bench_progress(o, "machine --mem %llu: run %d/%d",
			       (unsigned long long)o->mem, r + 1, o->runs);
		if (machine_run(o, r, s, &have, &nr_pages))
			goto out;
	}
	for (i = 0; i < NR_SAMPLES; i++)
		bench_stat_compute(s[i], o->runs, &st[i]);

	snprintf(bname, sizeof(bname),
		 "%s alloc+memset+free of metadata_peak bytes",
		 bench_allocator_name());
	for (i = 0; i < NR_SAMPLES; i++) {
		struct bench_result res = {
			.bench = "machine",
			.metric = machine_metrics[i].metric,
			.unit = machine_metrics[i].unit,
			.note = machine_metrics[i].note,
			.value = st[i],
		};

		if (i == S_BASELINE)
			continue;
		if (!(have & HAVE_ALLOCATED) && i == S_ARENA_ALLOC)
			continue;
		if (!(have & HAVE_RESIDENT) &&
		    (i == S_ARENA_RES || i == S_ARENA_MAP))
			continue;
		if (i == S_ARENA_ALLOC && !(have & HAVE_RESIDENT))
			res.note = "bytes allocated through the counting "
				   "malloc-based mem_ops";
		if (i == S_TOTAL && o->baseline) {
			res.baseline = &st[S_BASELINE];
			res.baseline_name = bname;
		}
		bench_report(o, &res);
	}
	{
		/* The goal is the kernel's: struct page fits in 64 bytes. */
		struct bench_result sz = {
			.bench = "machine", .metric = "struct_page_size", .unit = "B",
			.note = "sizeof(struct iom_page); metadata_per_page adds the "
				"pageblock table, nodes and zones",
			.value = { .median = (double)sizeof(struct iom_page),
				   .min = (double)sizeof(struct iom_page),
				   .max = (double)sizeof(struct iom_page), .runs = 1 },
			.goal = "value<=64",
			.goal_met = sizeof(struct iom_page) <= 64,
		};
		bench_report(o, &sz);
	}
	bench_report_value(o, "machine", "nr_pages",
			   (double)nr_pages, "pages",
			   "iom_machine_memcost().nr_pages");
	ret = 0;
out:
	free(buf);
	return ret;
}
