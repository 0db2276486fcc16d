/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench migrate - migration throughput of order-0 anonymous pages
 * between the two nodes of a machine, through iom_move_pages() (the
 * move_pages(2) path: follow_page, isolate_lru_page, migrate_pages with
 * MIGRATE_SYNC, which runs the 6.3 batch - unmap up to 512 pages, one TLB
 * flush, move and copy them, remap them - and retries failures one by
 * one), against memcpy() of the same bytes, 4 KiB at a time between two
 * host buffers of the same size, in the same run.
 *
 * Cases:
 *   batched - one iom_move_pages() call for all pages to the other node,
 *             then one back: batches of 512;
 *   single  - one iom_move_pages() call per page: a batch of one, one TLB
 *             flush per page, what migration cost before 6.3.
 * The whole simulated memory is touched before the runs, so host page
 * faults are not timed; each run moves the pages there and back and checks
 * every page's stamp after it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MIGRATE_DEFAULT_MEM	(1ULL << 30)
#define MIGRATE_DEFAULT_PAGES	16384ULL	/* 64 MiB */
#define PG			IOM_PAGE_SIZE

struct migrate_bench {
	struct iom_machine *m;
	struct iom_mm *mm;
	uint64_t addr;
	unsigned long nr;
	uint64_t *pages;	/* the address of each page */
	int *to1, *to0;		/* target nodes */
	int *status;
	unsigned char *src, *dst;	/* memcpy baseline buffers */
	unsigned long stamp;
};

/* Write a new stamp into every page of the mapping. */
static int stamp_pages(struct migrate_bench *b)
{
	unsigned long i;

	b->stamp++;
	for (i = 0; i < b->nr; i++) {
		unsigned long v = b->stamp << 32 | i;
		int err = iom_write(b->mm, b->pages[i], &v, sizeof(v));

		if (err)
			return err;
	}
	return 0;
}

/* Every page still holds its stamp and sits on @node. */
static int check_pages(struct migrate_bench *b, int node)
{
	unsigned long i, bad = 0, misplaced = 0;

	for (i = 0; i < b->nr; i++) {
		unsigned long v = 0;

		if (iom_read(b->mm, b->pages[i], &v, sizeof(v)) ||
		    v != (b->stamp << 32 | i))
			bad++;
	}
	if (iom_move_pages(b->mm, b->nr, b->pages, NULL, b->status, 0))
		return -EIO;
	for (i = 0; i < b->nr; i++)
		if (b->status[i] != node)
			misplaced++;
	if (bad || misplaced) {
		bench_error("after migration: %lu pages lost their content, %lu are not on node %d",
			    bad, misplaced, node);
		return -EIO;
	}
	return 0;
}

static int setup(const struct bench_opts *o, struct migrate_bench *b)
{
	struct iom_machine_config cfg;
	unsigned long i;
	int err;

	memset(b, 0, sizeof(*b));
	iom_machine_config_init(&cfg);
	cfg.mem_size = o->mem ? o->mem : MIGRATE_DEFAULT_MEM;
	cfg.nr_nodes = 2;
	cfg.page_poison = -1;
	b->nr = o->iters ? (unsigned long)o->iters : MIGRATE_DEFAULT_PAGES;
	if ((uint64_t)b->nr * PG * 4 > cfg.mem_size) {
		bench_error("--iters %lu pages do not fit twice in a node of --mem", b->nr);
		return -EINVAL;
	}
	err = iom_machine_create(&cfg, &b->m);
	if (err) {
		bench_error("iom_machine_create: %s", strerror(-err));
		return err;
	}
	err = bench_prefault_machine(b->m);
	if (!err)
		err = iom_mm_create(b->m, &b->mm);
	if (err)
		return err;
	iom_set_numa_node(b->m, 0);
	err = iom_mmap(b->mm, 0, b->nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE,
		       NULL, 0, &b->addr);
	if (err) {
		bench_error("iom_mmap: %s", strerror(-err));
		return err;
	}
	b->pages = calloc(b->nr, sizeof(*b->pages));
	b->to0 = calloc(b->nr, sizeof(int));
	b->to1 = calloc(b->nr, sizeof(int));
	b->status = calloc(b->nr, sizeof(int));
	b->src = malloc(b->nr * PG);
	b->dst = malloc(b->nr * PG);
	if (!b->pages || !b->to0 || !b->to1 || !b->status || !b->src || !b->dst)
		return -ENOMEM;
	memset(b->src, 1, b->nr * PG);
	memset(b->dst, 2, b->nr * PG);
	for (i = 0; i < b->nr; i++) {
		b->pages[i] = b->addr + i * PG;
		b->to1[i] = 1;
	}
	return stamp_pages(b);
}

static void teardown(struct migrate_bench *b)
{
	if (b->mm)
		iom_mm_destroy(b->mm);
	if (b->m)
		iom_machine_destroy(b->m);
	free(b->pages);
	free(b->to0);
	free(b->to1);
	free(b->status);
	free(b->src);
	free(b->dst);
}

/* Move every page to @node, in one call or one call a page. */
static int move_all(struct migrate_bench *b, const int *nodes, bool single)
{
	unsigned long i;
	long ret;

	if (!single) {
		ret = iom_move_pages(b->mm, b->nr, b->pages, nodes, b->status, 0);
		return ret ? -EIO : 0;
	}
	for (i = 0; i < b->nr; i++) {
		ret = iom_move_pages(b->mm, 1, &b->pages[i], &nodes[i],
				     &b->status[i], 0);
		if (ret)
			return -EIO;
	}
	return 0;
}

/* One run: there and back. Return: ns, or -1. */
static double migrate_run(struct migrate_bench *b, bool single,
			  double *flushes_per_page)
{
	unsigned long f0, f1;
	uint64_t t0, t1;

	f0 = iom_vm_event_count(b->m, IOM_NR_TLB_REMOTE_FLUSH) +
	     iom_vm_event_count(b->m, IOM_NR_TLB_LOCAL_FLUSH_ONE);
	t0 = bench_now_ns();
	if (move_all(b, b->to1, single) || move_all(b, b->to0, single)) {
		bench_error("iom_move_pages failed to move every page");
		return -1;
	}
	t1 = bench_now_ns();
	f1 = iom_vm_event_count(b->m, IOM_NR_TLB_REMOTE_FLUSH) +
	     iom_vm_event_count(b->m, IOM_NR_TLB_LOCAL_FLUSH_ONE);
	*flushes_per_page = (double)(f1 - f0) / (2.0 * (double)b->nr);
	if (check_pages(b, 0))
		return -1;
	return (double)(t1 - t0);
}

/* The baseline: the same bytes, a page at a time, there and back. */
static double memcpy_run(struct migrate_bench *b)
{
	unsigned long i;
	uint64_t t0, t1;

	t0 = bench_now_ns();
	for (i = 0; i < b->nr; i++)
		memcpy(b->dst + i * PG, b->src + i * PG, PG);
	bench_sink(b->dst);
	for (i = 0; i < b->nr; i++)
		memcpy(b->src + i * PG, b->dst + i * PG, PG);
	bench_sink(b->src);
	t1 = bench_now_ns();
	return (double)(t1 - t0);
}

static int measure(const struct bench_opts *o, struct migrate_bench *b,
		   bool single)
{
	double *v = calloc((size_t)o->runs * 3, sizeof(double));
	double *base = v + o->runs, *ovh = base + o->runs;
	double bytes = 2.0 * (double)b->nr * PG, flushes = 0;
	struct bench_stat vs, bs, os;
	char note[400];
	int r;

	if (!v)
		return -ENOMEM;
	/* Warm-up: the first trip touches targets and caches. */
	if (migrate_run(b, single, &flushes) < 0)
		goto fail;
	if (o->baseline)
		memcpy_run(b);
	for (r = 0; r < o->runs; r++) {
		double ns = migrate_run(b, single, &flushes);

		if (ns < 0)
			goto fail;
		v[r] = bytes / ns;			/* GB/s */
		if (o->baseline) {
			double bns = memcpy_run(b);

			base[r] = bytes / bns;
			ovh[r] = (ns - bns) / (2.0 * (double)b->nr);
		}
	}
	bench_stat_compute(v, o->runs, &vs);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &bs);
	bench_stat_compute(ovh, o->baseline ? o->runs : 0, &os);
	snprintf(note, sizeof(note),
		 "%lu order-0 anonymous pages node 0 -> 1 -> 0 by iom_move_pages%s; "
		 "%.3g TLB flushes a page; migration minus memcpy: %.0f ns a page",
		 b->nr, single ? ", one call a page (batch of 1)" :
		 ", one call (batches of 512)", flushes, os.median);
	bench_report(o, &(struct bench_result){
		.bench = "migrate",
		.metric = single ? "migrate_single" : "migrate_batched",
		.unit = "GB/s",
		.value = vs,
		.baseline = o->baseline ? &bs : NULL,
		.baseline_name = "memcpy of the same bytes, 4 KiB at a time",
		.goal = single ? NULL : "ratio>=0.5",
		.goal_met = o->baseline && vs.median >= 0.5 * bs.median,
		.note = note,
		.cpu_share = 0,
	});
	free(v);
	return 0;
fail:
	free(v);
	return -EIO;
}

int bench_migrate(const struct bench_opts *o)
{
	struct migrate_bench b;
	int err;

	bench_report_host(o);
	err = setup(o, &b);
	if (!err && (!o->only || strstr("migrate_batched", o->only)))
		err = measure(o, &b, false);
	if (!err && (!o->only || strstr("migrate_single", o->only)))
		err = measure(o, &b, true);
	teardown(&b);
	if (err) {
		bench_error("migrate: %s", strerror(-err));
		return 1;
	}
	return 0;
}
