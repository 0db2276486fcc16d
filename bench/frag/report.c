/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench frag - reports: the summary table with the modes side by
 * side, the same numbers as JSON lines (one object per mode and metric,
 * with the fields of bench.c's bench_report()), and the time series of one
 * run as CSV and JSON. Also the names of modes and moments and the
 * device-write latency quantiles.
 *
 * Series files: series.csv has a header line and one line per sample;
 * series.json is one object {"scenario":NAME,"mode":NAME,"columns":[...],
 * "rows":[[...],...]} with the same columns in the same order, so a row
 * of one is a row of the other. Columns: step, phase (0 fill, 1 load,
 * 2 rest), t_wall (s), free_pages, used_anon, used_file, used_unmovable,
 * used_dma, used_pinned (pages), unusable_o0..o10 and extfrag_o0..o10 (per
 * mille; extfrag -1000 where there is no free block), unmovable_blocks,
 * mixed_blocks (pageblocks), high_try_oO and high_ok_oO for each order O
 * of the scenario (cumulative), then the cumulative compaction and
 * migration vm events.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "frag.h"

#define MiB		(1024.0 * 1024.0)
#define RATIO_GOAL	0.95	/* order 9 at rest vs the ideal, IOMAP modes */

/* ---- names -------------------------------------------------------------- */

/* @names[@i] of a table of @n, "?" out of range. */
static const char *name_of(const char *const *names, unsigned int n, unsigned int i)
{
	return i < n && names[i] ? names[i] : "?";
}

const char *frag_dma_mode_name(enum frag_dma_mode dma)
{
	static const char *const names[FRAG_NR_DMA_MODES] = {
		[FRAG_NODMA]		= "nodma",
		[FRAG_LEGACY]		= "legacy",
		[FRAG_IOMAP]		= "iomap",
		[FRAG_IOMAP_NONBLOCK]	= "iomap-nonblock",
	};

	return name_of(names, FRAG_NR_DMA_MODES, (unsigned int)dma);
}

void frag_mode_name(const struct frag_mode *mode, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", frag_dma_mode_name(mode->dma),
		 mode->compaction ? "" : "+nocompact");
}

const char *frag_moment_name(enum frag_moment m)
{
	static const char *const names[FRAG_NR_MOMENTS] = {
		[FRAG_AT_FILLED]		= "filled",
		[FRAG_AT_LOAD_END]		= "load_end",
		[FRAG_AT_REST]			= "rest",
		[FRAG_AT_REST_COMPACTED]	= "rest_compacted",
	};

	return name_of(names, FRAG_NR_MOMENTS, (unsigned int)m);
}

/*
 * The upper bound 2^i ns of the first bucket at which ceil(p * n) writes
 * are counted, capped at the largest write seen (a bucket's bound can be
 * above every sample in it).
 */
uint64_t frag_latency_quantile(const struct frag_latency *l, double p)
{
	unsigned long long want, cum = 0;

	if (!l->n)
		return 0;
	if (!(p > 0.0))
		p = 0.0;
	if (p > 1.0)
		p = 1.0;
	want = (unsigned long long)ceil(p * (double)l->n);
	if (!want)
		want = 1;
	for (unsigned int i = 0; i < FRAG_LAT_BUCKETS; i++) {
		cum += l->bucket[i];
		if (cum >= want) {
			uint64_t ub = 1ULL << i;

			return l->max_ns && l->max_ns < ub ? l->max_ns : ub;
		}
	}
	return l->max_ns;	/* buckets short of n: the largest seen */
}

/* ---- helpers ------------------------------------------------------------ */

static const char *mode_label(const struct frag_result *r, char *buf,
			      size_t len)
{
	if (r->mode_name[0])
		return r->mode_name;
	frag_mode_name(&r->mode, buf, len);
	return buf;
}

static double rate(const struct frag_count *c)
{
	return c->attempts ? (double)c->successes / (double)c->attempts : NAN;
}

static bool is_iomap(const struct frag_result *r)
{
	return r->mode.dma == FRAG_IOMAP || r->mode.dma == FRAG_IOMAP_NONBLOCK;
}

/* The ideal run: no DMA, compaction on. NULL when not among @r. */
static const struct frag_result *ideal_run(const struct frag_result *r,
					   unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (r[i].mode.dma == FRAG_NODMA && r[i].mode.compaction)
			return &r[i];
	return NULL;
}

/* Scenarios whose order-9 goal is stated: the slides' and the fleet's. */
static bool has_o9_goal(const struct frag_scenario *s)
{
	return !strcmp(s->name, "seed000") || !strcmp(s->name, "datacenter");
}

static bool has_cma_allocs(const struct frag_scenario *s)
{
	return s->cma_allocs_per_step || s->cma_allocs_at_rest;
}

static bool cma_all_ok(const struct frag_result *r)
{
	unsigned long att = r->cma_load.attempts + r->cma_rest.attempts;
	unsigned long ok = r->cma_load.successes + r->cma_rest.successes;

	return att && ok == att;
}

/* "850 ns", "12.3 us", "4.56 ms", "1.20 s" */
static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, len, "%" PRIu64 " ns", ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.3g us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.3g ms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.3g s", (double)ns / 1e9);
}

/* "1 GiB", "64 MiB", "1.5 GiB" */
static void fmt_bytes(char *buf, size_t len, uint64_t v)
{
	if (v >= (1ULL << 30))
		snprintf(buf, len, "%.4g GiB", (double)v / (1ULL << 30));
	else
		snprintf(buf, len, "%.4g MiB", (double)v / MiB);
}

/* ---- the text table ----------------------------------------------------- */

#define CELL	40

/*
 * The table is built first, then printed with each column as wide as its
 * widest cell: a row is a label and one cell per run. A row with no cells
 * is a section heading.
 */
struct table {
	unsigned int n, nr_rows, max_rows;
	char (*label)[48];
	char (*cell)[CELL];	/* [row * n + run] */
	bool *heading;
};

static int table_init(struct table *t, unsigned int n, unsigned int max_rows)
{
	t->n = n;
	t->nr_rows = 0;
	t->max_rows = max_rows;
	t->label = calloc(max_rows, sizeof(*t->label));
	t->cell = calloc((size_t)max_rows * n, sizeof(*t->cell));
	t->heading = calloc(max_rows, sizeof(*t->heading));
	if (!t->label || !t->cell || !t->heading) {
		free(t->label);
		free(t->cell);
		free(t->heading);
		return -ENOMEM;
	}
	return 0;
}

static void table_free(struct table *t)
{
	free(t->label);
	free(t->cell);
	free(t->heading);
}

/* A new row labelled @label; its cells are filled by the caller. */
static char (*table_row(struct table *t, const char *label))[CELL]
{
	unsigned int row = t->nr_rows;

	if (row == t->max_rows)
		return NULL;	/* max_rows is counted generously; never here */
	t->nr_rows++;
	snprintf(t->label[row], sizeof(t->label[row]), "%s", label);
	return &t->cell[(size_t)row * t->n];
}

static void table_heading(struct table *t, const char *label)
{
	if (table_row(t, label))
		t->heading[t->nr_rows - 1] = true;
}

/* Formats the field at @f of run @r into @buf. */
typedef void (*cell_fmt)(char *buf, size_t len, const struct frag_result *r,
			 const void *f);

/* A row of one cell per run, from the field at @off in struct frag_result. */
static void row_field(struct table *t, const struct frag_result *r,
		      const char *label, size_t off, cell_fmt fmt)
{
	char (*c)[CELL] = table_row(t, label);

	for (unsigned int i = 0; c && i < t->n; i++)
		fmt(c[i], CELL, &r[i], (const char *)&r[i] + off);
}

static void fmt_ulong(char *buf, size_t len, const struct frag_result *r, const void *f)
{
	unsigned long v;

	(void)r;
	memcpy(&v, f, sizeof(v));
	snprintf(buf, len, "%lu", v);
}

static void row_ulong(struct table *t, const struct frag_result *r,
		      const char *label, size_t off)
{
	row_field(t, r, label, off, fmt_ulong);
}

/* Pageblocks of class @c in the map of @r taken at @mo; -1 without one. */
static long map_count(const struct frag_result *r, int mo, int c)
{
	const struct frag_memmap *map = &r->maps[mo];
	long n = 0;

	if (!r->have_map[mo] || !map->cls)
		return -1;
	for (unsigned long b = 0; b < map->nr_blocks; b++)
		n += map->cls[b] == c;
	return n;
}

/*
 * One row per moment and class that some run's map has: how the memory
 * maps' pageblocks divide, in numbers (where a mode's blocks went).
 */
static void rows_map_classes(struct table *t, const struct frag_result *r)
{
	for (int mo = 0; mo < FRAG_NR_MOMENTS; mo++) {
		for (int c = 0; c < FRAG_NR_BLOCK_CLASSES; c++) {
			char label[48], (*cell)[CELL];
			bool any = false;

			for (unsigned int i = 0; i < t->n; i++)
				any |= map_count(&r[i], mo, c) > 0;
			if (!any)
				continue;
			snprintf(label, sizeof(label), "%s: %s",
				 frag_moment_name((enum frag_moment)mo),
				 frag_block_class_name((enum frag_block_class)c));
			cell = table_row(t, label);
			for (unsigned int i = 0; cell && i < t->n; i++) {
				long v = map_count(&r[i], mo, c);

				if (v < 0)
					snprintf(cell[i], CELL, "-");
				else
					snprintf(cell[i], CELL, "%ld", v);
			}
		}
	}
}

/* "97.3% 146/150", or "-" when nothing was tried. */
static void fmt_count(char *buf, size_t len, const struct frag_result *r, const void *f)
{
	struct frag_count c;

	(void)r;
	memcpy(&c, f, sizeof(c));
	if (!c.attempts)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f%% %lu/%lu", 100.0 * rate(&c),
			 c.successes, c.attempts);
}

static void row_count(struct table *t, const struct frag_result *r,
		      const char *label, size_t off)
{
	row_field(t, r, label, off, fmt_count);
}

/* Pageblocks: "123 (12.0%)" of nr_blocks. */
static void fmt_blocks(char *buf, size_t len, const struct frag_result *r, const void *f)
{
	unsigned long v;

	memcpy(&v, f, sizeof(v));
	if (r->nr_blocks)
		snprintf(buf, len, "%lu (%.1f%%)", v,
			 100.0 * (double)v / (double)r->nr_blocks);
	else
		snprintf(buf, len, "%lu", v);
}

static void row_blocks(struct table *t, const struct frag_result *r,
		       const char *label, size_t off)
{
	row_field(t, r, label, off, fmt_blocks);
}

static void row_latency(struct table *t, const struct frag_result *r,
			const char *label, double p)
{
	char (*c)[CELL] = table_row(t, label);

	if (!c)
		return;
	for (unsigned int i = 0; i < t->n; i++) {
		if (!r[i].lat.n)
			snprintf(c[i], CELL, "-");
		else if (p >= 1.0)
			fmt_ns(c[i], CELL, r[i].lat.max_ns);
		else
			fmt_ns(c[i], CELL, frag_latency_quantile(&r[i].lat, p));
	}
}

#define R(f)	offsetof(struct frag_result, f)

/* Compaction effort over the run: the text rows and the JSON metrics. */
static const struct {
	const char *label, *metric, *unit;
	size_t off;
} effort[] = {
	{ "migrate scanned", "compact_migrate_scanned", "pages", R(compact_migrate_scanned) },
	{ "free scanned", "compact_free_scanned", "pages", R(compact_free_scanned) },
	{ "isolated", "compact_isolated", "pages", R(compact_isolated) },
	{ "stalls", "compact_stall", "count", R(compact_stall) },
	{ "failures", "compact_fail", "count", R(compact_fail) },
	{ "successes", "compact_success", "count", R(compact_success) },
	{ "kcompactd wakes", "kcompactd_wake", "count", R(kcompactd_wake) },
	{ "pages migrated", "pgmigrate_success", "pages", R(pgmigrate_success) },
	{ "migration failures", "pgmigrate_fail", "pages", R(pgmigrate_fail) },
};

static void table_print(FILE *f, const struct table *t,
			const struct frag_result *r)
{
	size_t lw = 0, *cw = calloc(t->n, sizeof(*cw));
	char buf[48];

	if (!cw)
		return;
	for (unsigned int row = 0; row < t->nr_rows; row++)
		if (!t->heading[row] && strlen(t->label[row]) > lw)
			lw = strlen(t->label[row]);
	for (unsigned int i = 0; i < t->n; i++) {
		cw[i] = strlen(mode_label(&r[i], buf, sizeof(buf)));
		for (unsigned int row = 0; row < t->nr_rows; row++) {
			size_t w = strlen(t->cell[(size_t)row * t->n + i]);

			if (!t->heading[row] && w > cw[i])
				cw[i] = w;
		}
	}

	fprintf(f, "  %-*s", (int)lw, "");
	for (unsigned int i = 0; i < t->n; i++)
		fprintf(f, "  %*s", (int)cw[i],
			mode_label(&r[i], buf, sizeof(buf)));
	fputc('\n', f);
	for (unsigned int row = 0; row < t->nr_rows; row++) {
		if (t->heading[row]) {
			fprintf(f, "%s\n", t->label[row]);
			continue;
		}
		fprintf(f, "  %-*s", (int)lw, t->label[row]);
		for (unsigned int i = 0; i < t->n; i++)
			fprintf(f, "  %*s", (int)cw[i],
				t->cell[(size_t)row * t->n + i]);
		fputc('\n', f);
	}
	free(cw);
}

/* "iomap  order-9 at rest vs ideal:  97.3 %", a line per order. */
static void text_vs_ideal(FILE *f, const struct frag_scenario *s,
			  const struct frag_result *ideal,
			  const struct frag_result *x)
{
	char buf[48], what[16];

	for (unsigned int o = 0; o < s->nr_orders && o < FRAG_MAX_ORDERS; o++) {
		double base = rate(&ideal->rest[o]);
		double v = rate(&x->rest[o]);
		const char *goal = "";

		snprintf(what, sizeof(what), "order-%u", s->orders[o]);
		fprintf(f, "  %-16s %-8s at rest vs ideal: ",
			mode_label(x, buf, sizeof(buf)), what);
		if (isnan(base) || isnan(v) || !(base > 0)) {
			fprintf(f, "n/a (%s)\n",
				isnan(base) ? "ideal made no attempt" :
				!(base > 0) ? "ideal had no success" :
				"no attempt");
			continue;
		}
		if (s->orders[o] == 9 && has_o9_goal(s) && is_iomap(x))
			goal = v / base >= RATIO_GOAL ? "  (goal >= 95 %: met)" :
			       "  (goal >= 95 %: NOT met)";
		fprintf(f, "%5.1f %%%s\n", 100.0 * v / base, goal);
	}
}

void frag_report_text(FILE *f, const struct frag_scenario *s, uint64_t seed,
		      const struct frag_result *r, unsigned int n)
{
	const struct frag_result *ideal = ideal_run(r, n);
	char label[48], mem[32], buf[48];
	struct table t;

	fmt_bytes(mem, sizeof(mem), s->mem);
	fprintf(f, "frag: scenario %s (%s), mem %s, seed %" PRIu64 ", "
		"%u steps\n", s->name, s->description, mem, seed, s->steps);
	if (!n)
		return;
	if (table_init(&t, n, 64 + 2 * FRAG_MAX_ORDERS +
		       FRAG_NR_MOMENTS * FRAG_NR_BLOCK_CLASSES + 1)) {
		fprintf(f, "(out of memory for the table)\n");
		return;
	}

	table_heading(&t, "high-order allocations (success, ok/attempts)");
	for (unsigned int o = 0; o < s->nr_orders && o < FRAG_MAX_ORDERS; o++) {
		snprintf(label, sizeof(label), "order-%u under load",
			 s->orders[o]);
		row_count(&t, r, label, R(load[o]));
		snprintf(label, sizeof(label), "order-%u at rest", s->orders[o]);
		row_count(&t, r, label, R(rest[o]));
	}
	table_heading(&t, "CMA allocations");
	row_count(&t, r, "CMA under load", R(cma_load));
	row_count(&t, r, "CMA at rest", R(cma_rest));
	row_ulong(&t, r, "PFNs busy", R(cma_busy));

	table_heading(&t, "compaction (whole run)");
	for (size_t k = 0; k < sizeof(effort) / sizeof(effort[0]); k++)
		row_ulong(&t, r, effort[k].label, effort[k].off);

	table_heading(&t, "pageblocks holding unmovable pages");
	row_blocks(&t, r, "end of load", R(unmovable_blocks_load));
	row_blocks(&t, r, "at rest", R(unmovable_blocks_rest));

	table_heading(&t, "pageblocks by class in the memory maps");
	rows_map_classes(&t, r);

	table_heading(&t, "pages at the end of the load");
	row_ulong(&t, r, "unmovable", R(pages_unmovable));
	row_ulong(&t, r, "DMA", R(pages_dma));
	row_ulong(&t, r, "pinned", R(pages_pinned));
	row_ulong(&t, r, "DMA buffers allocated", R(dma_buffers));
	row_ulong(&t, r, "DMA allocation failures", R(dma_alloc_fail));

	table_heading(&t, "device writes");
	{
		char (*c)[CELL] = table_row(&t, "writes");

		for (unsigned int i = 0; c && i < n; i++)
			snprintf(c[i], CELL, "%llu", r[i].lat.n);
	}
	row_latency(&t, r, "p50", 0.50);
	row_latency(&t, r, "p99", 0.99);
	row_latency(&t, r, "max", 1.0);
	{
		char (*c)[CELL] = table_row(&t, "lost writes (must be 0)");

		for (unsigned int i = 0; c && i < n; i++)
			snprintf(c[i], CELL, "%llu", r[i].lat.lost_writes);
	}

	table_heading(&t, "the simulator");
	{
		char (*w)[CELL] = table_row(&t, "wall s");
		char (*cpu)[CELL] = table_row(&t, "cpu s");
		char (*meta)[CELL] = table_row(&t, "metadata MiB");
		char (*rss)[CELL] = table_row(&t, "peak RSS MiB");

		for (unsigned int i = 0; w && cpu && meta && rss && i < n; i++) {
			snprintf(w[i], CELL, "%.2f", r[i].wall_s);
			snprintf(cpu[i], CELL, "%.2f", r[i].cpu_s);
			snprintf(meta[i], CELL, "%.1f",
				 (double)r[i].metadata_bytes / MiB);
			snprintf(rss[i], CELL, "%.1f",
				 (double)r[i].peak_rss_bytes / MiB);
		}
	}
	table_print(f, &t, r);
	table_free(&t);

	if (ideal) {
		fprintf(f, "vs ideal (%s, same seed), at rest:\n",
			mode_label(ideal, buf, sizeof(buf)));
		for (unsigned int i = 0; i < n; i++)
			if (&r[i] != ideal && r[i].mode.compaction)
				text_vs_ideal(f, s, ideal, &r[i]);
	}
	if (has_cma_allocs(s)) {
		for (unsigned int i = 0; i < n; i++)
			fprintf(f, "  %-16s every CMA allocation succeeded: %s\n",
				mode_label(&r[i], buf, sizeof(buf)),
				cma_all_ok(&r[i]) ? "yes" : "no");
	}
}

/* ---- JSON lines --------------------------------------------------------- */

static void json_key_u64(FILE *f, const char *key, uint64_t v)
{
	fprintf(f, ",\"%s\":%" PRIu64, key, v);
}

static void json_key_bool(FILE *f, const char *key, bool v)
{
	fprintf(f, ",\"%s\":%s", key, v ? "true" : "false");
}

/* What every line of one run starts with, up to the unit; no closing '}'. */
struct jline {
	FILE *f;
	const struct frag_scenario *s;
	uint64_t seed;
	const char *mode;
};

static void jl_begin(const struct jline *j, const char *metric, double value,
		     const char *unit)
{
	fputs("{\"bench\":\"frag\"", j->f);
	bench_json_key_str(j->f, "scenario", j->s->name);
	bench_json_key_str(j->f, "mode", j->mode);
	json_key_u64(j->f, "seed", j->seed);
	json_key_u64(j->f, "mem", j->s->mem);
	bench_json_key_str(j->f, "metric", metric);
	bench_json_key_num(j->f, "value", value);
	bench_json_key_str(j->f, "unit", unit);
}

static void jl_end(const struct jline *j)
{
	fputs("}\n", j->f);
}

static void jl_num(const struct jline *j, const char *metric, double value,
		   const char *unit)
{
	jl_begin(j, metric, value, unit);
	jl_end(j);
}

static void jl_count(const struct jline *j, const char *metric,
		     const struct frag_count *c)
{
	jl_begin(j, metric, rate(c), "ratio");
	bench_json_key_num(j->f, "ok", (double)c->successes);
	bench_json_key_num(j->f, "attempts", (double)c->attempts);
	jl_end(j);
}

static void jl_blocks(const struct jline *j, const char *metric,
		      unsigned long v, unsigned long nr_blocks)
{
	jl_begin(j, metric, (double)v, "pageblocks");
	bench_json_key_num(j->f, "nr_blocks", (double)nr_blocks);
	bench_json_key_num(j->f, "share", nr_blocks ? (double)v / nr_blocks : NAN);
	jl_end(j);
}

void frag_report_json(FILE *f, const struct frag_scenario *s, uint64_t seed,
		      const struct frag_result *r, unsigned int n)
{
	const struct frag_result *ideal = ideal_run(r, n);
	char metric[48], buf[48];

	for (unsigned int i = 0; i < n; i++) {
		const struct frag_result *x = &r[i];
		struct jline j = {
			.f = f, .s = s, .seed = seed,
			.mode = mode_label(x, buf, sizeof(buf)),
		};

		for (unsigned int o = 0; o < s->nr_orders &&
		     o < FRAG_MAX_ORDERS; o++) {
			snprintf(metric, sizeof(metric), "load_success_o%u",
				 s->orders[o]);
			jl_count(&j, metric, &x->load[o]);
			snprintf(metric, sizeof(metric), "rest_success_o%u",
				 s->orders[o]);
			jl_count(&j, metric, &x->rest[o]);
		}
		jl_count(&j, "cma_load_success", &x->cma_load);
		jl_count(&j, "cma_rest_success", &x->cma_rest);
		jl_num(&j, "cma_pfns_busy", (double)x->cma_busy, "count");
		if (has_cma_allocs(s)) {
			jl_begin(&j, "cma_all_succeeded", cma_all_ok(x),
				 "bool");
			bench_json_key_num(f, "ok", (double)(x->cma_load.successes +
						       x->cma_rest.successes));
			bench_json_key_num(f, "attempts",
				     (double)(x->cma_load.attempts +
					      x->cma_rest.attempts));
			if (is_iomap(x)) {
				bench_json_key_str(f, "goal", "all");
				json_key_bool(f, "goal_met", cma_all_ok(x));
			}
			jl_end(&j);
		}

		for (size_t k = 0; k < sizeof(effort) / sizeof(effort[0]); k++) {
			unsigned long v;

			memcpy(&v, (const char *)x + effort[k].off, sizeof(v));
			jl_num(&j, effort[k].metric, (double)v, effort[k].unit);
		}

		jl_blocks(&j, "unmovable_blocks_load", x->unmovable_blocks_load,
			  x->nr_blocks);
		jl_blocks(&j, "unmovable_blocks_rest", x->unmovable_blocks_rest,
			  x->nr_blocks);
		for (int mo = 0; mo < FRAG_NR_MOMENTS; mo++) {
			for (int c = 0; c < FRAG_NR_BLOCK_CLASSES; c++) {
				long v = map_count(x, mo, c);

				if (v < 0)
					continue;
				snprintf(metric, sizeof(metric), "blocks_%s_%s",
					 frag_moment_name((enum frag_moment)mo),
					 frag_block_class_name((enum frag_block_class)c));
				jl_num(&j, metric, (double)v, "pageblocks");
			}
		}
		jl_num(&j, "pages_unmovable", (double)x->pages_unmovable,
		       "pages");
		jl_num(&j, "pages_dma", (double)x->pages_dma, "pages");
		jl_num(&j, "pages_pinned", (double)x->pages_pinned, "pages");
		jl_num(&j, "dma_buffers", (double)x->dma_buffers, "count");
		jl_num(&j, "dma_alloc_fail", (double)x->dma_alloc_fail, "count");

		jl_num(&j, "dev_writes", (double)x->lat.n, "count");
		/* null, not 0, when no device wrote (nodma) */
		jl_num(&j, "dev_write_p50", x->lat.n ?
		       (double)frag_latency_quantile(&x->lat, 0.50) : NAN, "ns");
		jl_num(&j, "dev_write_p99", x->lat.n ?
		       (double)frag_latency_quantile(&x->lat, 0.99) : NAN, "ns");
		jl_num(&j, "dev_write_max", x->lat.n ?
		       (double)x->lat.max_ns : NAN, "ns");
		jl_num(&j, "lost_writes", (double)x->lat.lost_writes, "count");

		jl_num(&j, "wall", x->wall_s, "s");
		jl_num(&j, "cpu", x->cpu_s, "s");
		jl_num(&j, "metadata", (double)x->metadata_bytes / MiB, "MiB");
		jl_num(&j, "peak_rss", (double)x->peak_rss_bytes / MiB, "MiB");

		if (!ideal || x == ideal || !x->mode.compaction)
			continue;
		for (unsigned int o = 0; o < s->nr_orders &&
		     o < FRAG_MAX_ORDERS; o++) {
			double base = rate(&ideal->rest[o]);
			double v = rate(&x->rest[o]);
			double ratio = base > 0 ? v / base : NAN;

			snprintf(metric, sizeof(metric), "rest_vs_ideal_o%u",
				 s->orders[o]);
			jl_begin(&j, metric, ratio, "ratio");
			bench_json_key_num(f, "baseline", base);
			bench_json_key_str(f, "baseline_name", "nodma mode, same seed");
			bench_json_key_num(f, "ratio", ratio);
			if (s->orders[o] == 9 && has_o9_goal(s) && is_iomap(x)) {
				bench_json_key_str(f, "goal", "ratio>=0.95");
				json_key_bool(f, "goal_met",
					      !isnan(ratio) &&
					      ratio >= RATIO_GOAL);
			}
			jl_end(&j);
		}
	}
	fflush(f);
}

/* ---- the time series ---------------------------------------------------- */

/* The column names, comma-separated; in double quotes for JSON. */
static void series_header(FILE *f, const struct frag_scenario *s, bool json)
{
	static const char *const head[] = {
		"step", "phase", "t_wall", "free_pages", "used_anon",
		"used_file", "used_unmovable", "used_dma", "used_pinned",
	};
	static const char *const tail[] = {
		"compact_migrate_scanned", "compact_free_scanned",
		"compact_stall", "compact_fail", "compact_success",
		"pgmigrate_success", "pgmigrate_fail",
	};
	const char *q = json ? "\"" : "";
	bool first = true;

#define COL(fmt, ...)	do {						\
		fprintf(f, "%s%s" fmt "%s", first ? "" : ",", q,	\
			__VA_ARGS__, q);				\
		first = false;						\
	} while (0)

	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		COL("%s", head[i]);
	for (int o = 0; o < FRAG_SERIES_ORDERS; o++)
		COL("unusable_o%d", o);
	for (int o = 0; o < FRAG_SERIES_ORDERS; o++)
		COL("extfrag_o%d", o);
	COL("%s", "unmovable_blocks");
	COL("%s", "mixed_blocks");
	for (unsigned int o = 0; o < s->nr_orders && o < FRAG_MAX_ORDERS; o++) {
		COL("high_try_o%u", s->orders[o]);
		COL("high_ok_o%u", s->orders[o]);
	}
	for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++)
		COL("%s", tail[i]);
#undef COL
}

/* One sample's values, comma-separated: a CSV line or a JSON array's body. */
static void series_row(FILE *f, const struct frag_scenario *s,
		       const struct frag_sample *x, bool json)
{
	fprintf(f, "%u,%d,", x->step, x->phase);
	if (isfinite(x->t_wall))
		fprintf(f, "%.6f", x->t_wall);
	else
		fputs(json ? "null" : "", f);
	fprintf(f, ",%lu,%lu,%lu,%lu,%lu,%lu", x->free_pages, x->used_anon,
		x->used_file, x->used_unmovable, x->used_dma, x->used_pinned);
	for (int o = 0; o < FRAG_SERIES_ORDERS; o++)
		fprintf(f, ",%d", x->unusable[o]);
	for (int o = 0; o < FRAG_SERIES_ORDERS; o++)
		fprintf(f, ",%d", x->extfrag[o]);
	fprintf(f, ",%lu,%lu", x->unmovable_blocks, x->mixed_blocks);
	for (unsigned int o = 0; o < s->nr_orders && o < FRAG_MAX_ORDERS; o++)
		fprintf(f, ",%lu,%lu", x->high[o].attempts,
			x->high[o].successes);
	fprintf(f, ",%lu,%lu,%lu,%lu,%lu,%lu,%lu", x->compact_migrate_scanned,
		x->compact_free_scanned, x->compact_stall, x->compact_fail,
		x->compact_success, x->pgmigrate_success, x->pgmigrate_fail);
}

/* fclose() @f, written to @path; the first error of the two wins. */
static int series_close(FILE *f)
{
	int ret = ferror(f) ? -EIO : 0;

	if (fclose(f) && !ret)
		ret = errno ? -errno : -EIO;
	return ret;
}

int frag_write_series_csv(const char *path, const struct frag_scenario *s,
			  const struct frag_result *r)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	series_header(f, s, false);
	fputc('\n', f);
	for (unsigned int i = 0; i < r->nr_samples; i++) {
		series_row(f, s, &r->samples[i], false);
		fputc('\n', f);
	}
	return series_close(f);
}

int frag_write_series_json(const char *path, const struct frag_scenario *s,
			   const struct frag_result *r)
{
	char buf[48];
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs("{\"scenario\":", f);
	bench_json_string(f, s->name);
	bench_json_key_str(f, "mode", mode_label(r, buf, sizeof(buf)));
	fputs(",\"columns\":[", f);
	series_header(f, s, true);
	fputs("],\n\"rows\":[", f);
	for (unsigned int i = 0; i < r->nr_samples; i++) {
		fputs(i ? ",\n[" : "\n[", f);
		series_row(f, s, &r->samples[i], true);
		fputc(']', f);
	}
	fputs("]}\n", f);
	return series_close(f);
}
