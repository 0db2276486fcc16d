/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench iommu-migrate - migration of IOMMU-mapped pages (seed 000's
 * iommu_migrate and its TODO: per-range blocking, non-blocking migration
 * with fault-on-write entries and a dirty re-copy loop, batches of ranges
 * with one invalidation) on one UNMANAGED domain of one IOMMU.
 *
 * --iters 4 KiB pages are mapped one by one at consecutive IOVAs, each to
 * its own machine page; a second set of pages receives them. A run moves
 * every page to the other set and back.
 *
 * Throughput cases (no device traffic), against memcpy() of the same pages
 * page by page (the same bytes, the same footprint), in the same run:
 *   single           - iom_iommu_migrate() one page a call (the seed's
 *                      five steps: block, unmap, copy, map, unblock);
 *   block_batched    - iom_iommu_migrate_ranges(BLOCK), 512 ranges a call;
 *   per_page_batched - the same in PER_PAGE mode;
 *   nonblock_batched - the same in NONBLOCK mode.
 *
 * Stall cases (the harness of devstall.c): 1..--threads device threads
 * (iom_device_threads_start()) read or write 4 KiB at random pages of the
 * range while the main thread migrates in each of those modes, for at
 * least IMIG_STALL_MIN_MS a run. The stall percentiles come from struct
 * iom_device_thread_stats; the baseline is one 4 KiB memcpy between the
 * same pages (mean of a page-by-page copy, measured in the run); the device
 * transaction rate is compared with a run of the same threads, as long,
 * without migration. Every write carries a per-thread sequence number;
 * after each run every page must hold the last one written to it, its
 * stamp, and be mapped where the benchmark thinks, or the benchmark fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "devstall.h"

#define IMIG_DEFAULT_MEM	(256ULL << 20)
#define IMIG_DEFAULT_PAGES	4096UL		/* 16 MiB */
#define IMIG_DEFAULT_THREADS	1
#define IMIG_MAX_THREADS	64
#define IMIG_BATCH		512U
#define IMIG_IOVA_BASE		0x40000000UL	/* 1 GiB */
#define IMIG_STALL_MIN_MS	200
#define IMIG_STAMP		0x5eed000000000000ULL
#define PG			IOM_PAGE_SIZE

enum imig_kind { K_SINGLE, K_BATCHED };

struct imig_case {
	const char *name;
	enum imig_kind kind;
	enum iom_iommu_migrate_mode mode;
	const char *what;
};

static const struct imig_case imig_cases[] = {
	{ "single", K_SINGLE, IOM_IOMMU_MIGRATE_BLOCK,
	  "iom_iommu_migrate() one page a call (block, unmap, copy, map, unblock)" },
	{ "block_batched", K_BATCHED, IOM_IOMMU_MIGRATE_BLOCK,
	  "iom_iommu_migrate_ranges(BLOCK), 512 ranges of 4 KiB a call" },
	{ "per_page_batched", K_BATCHED, IOM_IOMMU_MIGRATE_PER_PAGE,
	  "iom_iommu_migrate_ranges(PER_PAGE), 512 ranges of 4 KiB a call" },
	{ "nonblock_batched", K_BATCHED, IOM_IOMMU_MIGRATE_NONBLOCK,
	  "iom_iommu_migrate_ranges(NONBLOCK), 512 ranges of 4 KiB a call" },
};

#define NR_CASES (sizeof(imig_cases) / sizeof(imig_cases[0]))

/* What the migrations of a run did. */
struct imig_acc {
	uint64_t calls, rounds, max_rounds, recopied, write_faults;
	uint64_t stop_ns, max_stop_ns, final_dirty;
};

struct imig_bench {
	const struct bench_opts *o;
	struct bench_arena *arena;
	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	struct iom_device *dev;
	bool attached, mapped;
	unsigned long nr;
	unsigned int batch;
	uint64_t *cur_phys, *spare_phys;
	char **cur_host, **spare_host;
	struct iom_iommu_migrate_range *ranges;
	unsigned long base;		/* first page of the current batch */
	uint64_t *last_seq;		/* per page: the last sequence written */
	struct devstall ds;		/* the device threads */
};

static inline unsigned long page_iova(unsigned long i)
{
	return IMIG_IOVA_BASE + i * PG;
}

/* ---- migration ----------------------------------------------------------- */

struct one_copy {
	void *dst;
	const void *src;
};

static void copy_one(void *priv)
{
	struct one_copy *c = priv;

	memcpy(c->dst, c->src, PG);
}

/* iom_iommu_copy_range_t: range @idx of the current batch. */
static void copy_range(void *priv, unsigned int idx, size_t off, size_t len)
{
	struct imig_bench *b = priv;
	unsigned long p = b->base + idx;

	memcpy(b->spare_host[p] + off, b->cur_host[p] + off, len);
}

static void acc_add(struct imig_acc *a, const struct iom_iommu_migrate_stats *st)
{
	a->calls++;
	a->rounds += st->rounds;
	if (st->rounds > a->max_rounds)
		a->max_rounds = st->rounds;
	a->recopied += st->recopied;
	a->write_faults += st->write_faults;
	a->stop_ns += st->stop_ns;
	if (st->stop_ns > a->max_stop_ns)
		a->max_stop_ns = st->stop_ns;
	a->final_dirty += st->final_dirty;
}

/* Move every page to the other set. Return: 0 or the failed call's error. */
static int migrate_pass(struct imig_bench *b, const struct imig_case *c,
			struct imig_acc *acc)
{
	unsigned long i;
	int err;

	if (c->kind == K_SINGLE) {
		for (i = 0; i < b->nr; i++) {
			struct one_copy oc = { b->spare_host[i], b->cur_host[i] };

			err = iom_iommu_migrate(b->d, page_iova(i), b->spare_phys[i],
						PG, copy_one, &oc);
			if (err)
				return err;
			acc->calls++;
			acc->rounds++;
		}
	} else {
		for (i = 0; i < b->nr; i += b->batch) {
			unsigned int n = b->nr - i < b->batch ? (unsigned int)(b->nr - i)
							       : b->batch;
			struct iom_iommu_migrate_stats st;

			for (unsigned int k = 0; k < n; k++)
				b->ranges[k] = (struct iom_iommu_migrate_range){
					page_iova(i + k), b->spare_phys[i + k], PG };
			b->base = i;
			err = iom_iommu_migrate_ranges(b->d, b->ranges, n, c->mode,
						       copy_range, b, &st);
			if (err)
				return err;
			acc_add(acc, &st);
		}
	}
	/* the pages moved: swap the sets */
	{
		uint64_t *tp = b->cur_phys;
		char **th = b->cur_host;

		b->cur_phys = b->spare_phys;
		b->spare_phys = tp;
		b->cur_host = b->spare_host;
		b->spare_host = th;
	}
	return 0;
}

/* Every page mapped where we think, with its stamp and its last write. */
static int check_pages(struct imig_bench *b, const char *when)
{
	unsigned long i, misplaced = 0, bad = 0, lost = 0;

	for (i = 0; i < b->nr; i++) {
		const uint64_t *w = (const uint64_t *)b->cur_host[i];

		if (iom_iommu_iova_to_phys(b->d, page_iova(i)) != b->cur_phys[i])
			misplaced++;
		if (w[0] != (IMIG_STAMP | i))
			bad++;
		else if (w[1] != b->last_seq[i])
			lost++;
	}
	if (misplaced || bad || lost || iom_machine_bug_count(b->m)) {
		bench_error("after %s: %lu pages mapped elsewhere, %lu lost their "
			    "stamp, %lu lost a device write; %lu bug reports", when,
			    misplaced, bad, lost, iom_machine_bug_count(b->m));
		return -EIO;
	}
	return 0;
}

/* The baseline: the same pages copied page by page there and back. ns. */
static double memcpy_run(struct imig_bench *b)
{
	unsigned long i;
	uint64_t t0, t1;

	t0 = bench_now_ns();
	for (i = 0; i < b->nr; i++)
		memcpy(b->spare_host[i], b->cur_host[i], PG);
	bench_sink(b->spare_host);
	for (i = 0; i < b->nr; i++)
		memcpy(b->cur_host[i], b->spare_host[i], PG);
	bench_sink(b->cur_host);
	t1 = bench_now_ns();
	return (double)(t1 - t0);
}

/* ---- setup --------------------------------------------------------------- */

static int setup(const struct bench_opts *o, struct imig_bench *b)
{
	struct iom_machine_config cfg;
	unsigned long i;
	int err;

	b->o = o;
	b->nr = o->iters ? (unsigned long)o->iters : IMIG_DEFAULT_PAGES;
	b->batch = b->nr < IMIG_BATCH ? (unsigned int)b->nr : IMIG_BATCH;
	iom_machine_config_init(&cfg);
	cfg.mem_size = o->mem ? o->mem : IMIG_DEFAULT_MEM;
	cfg.page_poison = -1;
	if ((uint64_t)b->nr * PG * 4 > cfg.mem_size) {
		bench_error("--iters %lu pages do not fit twice in --mem", b->nr);
		return -EINVAL;
	}
	err = bench_machine_create(&cfg, &b->arena, &b->m);
	if (err)
		return err;
	b->cur_phys = calloc(b->nr, sizeof(uint64_t));
	b->spare_phys = calloc(b->nr, sizeof(uint64_t));
	b->cur_host = calloc(b->nr, sizeof(char *));
	b->spare_host = calloc(b->nr, sizeof(char *));
	b->last_seq = calloc(b->nr, sizeof(uint64_t));
	b->ranges = calloc(b->batch, sizeof(*b->ranges));
	if (!b->cur_phys || !b->spare_phys || !b->cur_host || !b->spare_host ||
	    !b->last_seq || !b->ranges)
		return -ENOMEM;
	for (i = 0; i < 2 * b->nr; i++) {
		struct iom_page *p = iom_alloc_pages(b->m, IOM_GFP_KERNEL, 0);
		char *h;

		if (!p) {
			bench_error("out of simulated memory");
			return -ENOMEM;
		}
		h = iom_page_address(b->m, p);
		memset(h, 0, PG);		/* host page faults: not timed */
		if (i < b->nr) {
			b->cur_phys[i] = iom_page_to_phys(b->m, p);
			b->cur_host[i] = h;
			((uint64_t *)h)[0] = IMIG_STAMP | i;
		} else {
			b->spare_phys[i - b->nr] = iom_page_to_phys(b->m, p);
			b->spare_host[i - b->nr] = h;
		}
	}
	err = iom_iommu_create(b->m, NULL, &b->iommu);
	if (err) {
		bench_error("iom_iommu_create: %s", strerror(-err));
		return err;
	}
	b->d = iom_iommu_domain_alloc(b->iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	if (!b->d) {
		bench_error("iom_iommu_domain_alloc: %s", strerror(errno));
		return -ENOMEM;
	}
	err = iom_device_create(b->iommu, "bench-dev", &b->dev);
	if (!err)
		err = iom_iommu_attach_device(b->d, b->dev);
	if (err) {
		bench_error("device create/attach: %s", strerror(-err));
		return err;
	}
	b->attached = true;
	for (i = 0; i < b->nr; i++) {
		err = iom_iommu_map(b->d, page_iova(i), b->cur_phys[i], PG,
				    IOM_IOMMU_READ | IOM_IOMMU_WRITE);
		if (err) {
			bench_error("iom_iommu_map: %s", strerror(-err));
			return err;
		}
	}
	b->mapped = true;
	return check_pages(b, "setup");
}

static void teardown(struct imig_bench *b)
{
	unsigned long i;

	if (b->mapped)
		iom_iommu_unmap(b->d, IMIG_IOVA_BASE, b->nr * PG);
	if (b->attached)
		iom_iommu_detach_device(b->d, b->dev);
	iom_device_destroy(b->dev);
	iom_iommu_domain_free(b->d);
	iom_iommu_destroy(b->iommu);
	for (i = 0; b->m && i < b->nr; i++) {
		if (b->cur_phys && b->cur_phys[i])
			iom___free_pages(b->m, iom_phys_to_page(b->m, b->cur_phys[i]), 0);
		if (b->spare_phys && b->spare_phys[i])
			iom___free_pages(b->m, iom_phys_to_page(b->m, b->spare_phys[i]), 0);
	}
	iom_machine_destroy(b->m);
	if (b->arena)
		bench_arena_destroy(b->arena);
	free(b->cur_phys);
	free(b->spare_phys);
	free(b->cur_host);
	free(b->spare_host);
	free(b->last_seq);
	free(b->ranges);
}

/* ---- throughput ---------------------------------------------------------- */

static void acc_note(char *buf, size_t size, const struct imig_acc *a,
		     const struct imig_case *c)
{
	snprintf(buf, size, "%llu calls; rounds %.2f avg, %llu max; recopied %llu KiB; "
		 "write faults %llu; final dirty %llu KiB; devices stopped %.1f us "
		 "a call (max %.1f)", (unsigned long long)a->calls,
		 a->calls ? (double)a->rounds / (double)a->calls : 0,
		 (unsigned long long)(c->kind == K_SINGLE ? 1 : a->max_rounds),
		 (unsigned long long)(a->recopied >> 10),
		 (unsigned long long)a->write_faults,
		 (unsigned long long)(a->final_dirty >> 10),
		 a->calls ? (double)a->stop_ns / (double)a->calls / 1e3 : 0,
		 (double)a->max_stop_ns / 1e3);
}

static int measure_tput(struct imig_bench *b, const struct imig_case *c)
{
	const struct bench_opts *o = b->o;
	double *v = calloc((size_t)o->runs * 3, sizeof(double));
	double *base = v + o->runs, *ovh = base + o->runs;
	double bytes = 2.0 * (double)b->nr * PG, share = 1;
	struct bench_stat vs, bs, os;
	struct imig_acc acc;
	char metric[64], note[600], an[300];
	bool goal = c->kind == K_BATCHED && c->mode == IOM_IOMMU_MIGRATE_BLOCK;
	int r, err = -ENOMEM;

	if (!v)
		return -ENOMEM;
	devstall_pin_main(&b->ds, true);
	/* warm-up: one trip there and back */
	memset(&acc, 0, sizeof(acc));
	if ((err = migrate_pass(b, c, &acc)) || (err = migrate_pass(b, c, &acc)))
		goto fail;
	if ((err = check_pages(b, c->name)))
		goto out;
	if (o->baseline)
		memcpy_run(b);
	for (r = 0; r < o->runs; r++) {
		uint64_t t0, t1, c0, c1;
		double ns, sh;

		bench_progress(o, "iommu-migrate tput_%s: run %d/%d", c->name,
			       r + 1, o->runs);
		memset(&acc, 0, sizeof(acc));
		c0 = bench_thread_cpu_ns();
		t0 = bench_now_ns();
		if ((err = migrate_pass(b, c, &acc)) || (err = migrate_pass(b, c, &acc)))
			goto fail;
		t1 = bench_now_ns();
		c1 = bench_thread_cpu_ns();
		if ((err = check_pages(b, c->name)))
			goto out;
		ns = (double)(t1 - t0);
		sh = (double)(c1 - c0) / ns;
		if (sh < share)
			share = sh;
		v[r] = bytes / ns;
		if (o->baseline) {
			double bns = memcpy_run(b);

			base[r] = bytes / bns;
			ovh[r] = (ns - bns) / (2.0 * (double)b->nr);
		}
	}
	bench_stat_compute(v, o->runs, &vs);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &bs);
	bench_stat_compute(ovh, o->baseline ? o->runs : 0, &os);
	acc_note(an, sizeof(an), &acc, c);
	snprintf(metric, sizeof(metric), "tput_%s", c->name);
	snprintf(note, sizeof(note), "%lu pages there and back by %s, no device "
		 "traffic; migration minus memcpy: %.0f ns a page; last run: %s",
		 b->nr, c->what, os.median, an);
	bench_report(o, &(struct bench_result){
		.bench = "iommu-migrate", .metric = metric, .unit = "GB/s",
		.value = vs, .baseline = o->baseline ? &bs : NULL,
		.baseline_name = "memcpy of the same pages, 4 KiB at a time",
		.goal = goal && o->baseline ? "ratio>=0.4" : NULL,
		.goal_met = o->baseline && vs.median >= 0.4 * bs.median,
		.note = note, .cpu_share = share,
	});
	free(v);
	devstall_pin_main(&b->ds, false);
	return 0;
fail:
	bench_error("%s: migration failed: %s", c->name, strerror(-err));
out:
	free(v);
	devstall_pin_main(&b->ds, false);
	return err ? err : -EIO;
}

/* ---- stalls -------------------------------------------------------------- */

/* A device thread's step: one 4 KiB read or write at a random page of its own. */
static int dev_step(void *priv, struct devstall_worker *w, unsigned int idx,
		    uint64_t x)
{
	struct imig_bench *b = priv;
	unsigned long p = devstall_pick(&b->ds, idx, b->nr, x >> 1);
	int err;

	if (x & 1) {
		w->wbuf[0] = IMIG_STAMP | p;
		w->wbuf[1] = ++w->seq;
		err = iom_device_dma_write(b->dev, page_iova(p), w->wbuf, PG);
		if (err)
			return err;
		b->last_seq[p] = w->seq;
	} else {
		err = iom_device_dma_read(b->dev, page_iova(p), w->rbuf, PG);
		if (err)
			return err;
		if (w->rbuf[0] != (IMIG_STAMP | p))
			return -EIO;
	}
	return 0;
}

/* One stall case: its migrations there and back, and what they did. */
struct imig_stall {
	struct imig_bench *b;
	const struct imig_case *c;
	struct imig_acc acc;	/* of the last run with migration */
};

static int stall_pass(void *priv, uint64_t n)
{
	struct imig_stall *s = priv;

	if (!n)
		memset(&s->acc, 0, sizeof(s->acc));
	return migrate_pass(s->b, s->c, &s->acc);
}

static int stall_check(void *priv, bool migrated)
{
	struct imig_stall *s = priv;

	return check_pages(s->b, migrated ? s->c->name : "device traffic");
}

static double stall_memcpy(void *priv)
{
	struct imig_stall *s = priv;

	return memcpy_run(s->b);
}

static void stall_notes(void *priv, const struct bench_stat *st,
			const struct devstall_sample *last, char *p99,
			size_t p99_size, char *rate, size_t rate_size)
{
	struct imig_stall *s = priv;
	unsigned int t = s->b->ds.nthreads;
	char an[300];

	acc_note(an, sizeof(an), &s->acc, s->c);
	snprintf(p99, p99_size, "stall of every device transaction (4 KiB, "
		 "half reads, half writes, random pages, %u thread%s) while %s moves "
		 "%lu pages there and back for >= %d ms; %.3g %% of transactions "
		 "stalled; max %llu ns (last run)", t, t > 1 ? "s" : "", s->c->what,
		 s->b->nr, IMIG_STALL_MIN_MS, st[DS_FRAC].median,
		 (unsigned long long)last->st.stall_max_ns);
	snprintf(rate, rate_size, "device transactions a second during the "
		 "migrations; migration under traffic %.3g GB/s, its thread on a "
		 "cpu %.0f %% of the time (it sleeps on mig_lock and in waits); "
		 "last run: %s", st[DS_MIG].median, 100 * st[DS_MAINSH].median, an);
}

static int measure_stall(struct imig_bench *b, const struct imig_case *c)
{
	struct imig_stall s = { .b = b, .c = c };

	return devstall_measure(&b->ds, &(struct devstall_case){
		.bench = "iommu-migrate", .name = c->name,
		.min_ns = (uint64_t)IMIG_STALL_MIN_MS * 1000000u,
		.pass_pages = b->nr, .even_passes = true,
		.memcpy_pages = 2 * b->nr,
		.p99_goal = c->mode == IOM_IOMMU_MIGRATE_NONBLOCK ? "ratio<=2" : NULL,
		.thread_eio = " (a read saw another page's content)",
		.say_failure = true,
		.pass = stall_pass, .check = stall_check,
		.memcpy_ns = stall_memcpy, .notes = stall_notes, .priv = &s,
	});
}

/* ---- entry --------------------------------------------------------------- */

static bool selected(const struct bench_opts *o, const char *prefix,
		     const char *name)
{
	char full[64];

	if (!o->only)
		return true;
	snprintf(full, sizeof(full), "%s_%s", prefix, name);
	return strstr(full, o->only) != NULL;
}

int bench_iommu_migrate(const struct bench_opts *o)
{
	struct imig_bench b;
	unsigned int maxt = o->threads ? o->threads : IMIG_DEFAULT_THREADS, t;
	size_t ci;
	int err = 0;

	memset(&b, 0, sizeof(b));
	if (maxt > IMIG_MAX_THREADS) {
		bench_error("at most %d device threads", IMIG_MAX_THREADS);
		return 1;
	}
	for (ci = 0; ci < NR_CASES; ci++)
		if (selected(o, "tput", imig_cases[ci].name) ||
		    selected(o, "stall", imig_cases[ci].name))
			break;
	if (ci == NR_CASES) {
		bench_error("--only '%s' matches no case", o->only);
		return 1;
	}
	err = setup(o, &b);
	if (!err)
		err = devstall_init(&b.ds, o, b.dev, dev_step, &b, maxt, true);
	if (err)
		goto out;
	bench_report_host(o);
	for (ci = 0; ci < NR_CASES && !err; ci++)
		if (selected(o, "tput", imig_cases[ci].name))
			err = measure_tput(&b, &imig_cases[ci]);
	for (t = 1; t <= maxt && !err; t = t == 1 && maxt > 1 ? maxt : maxt + 1) {
		b.ds.nthreads = t;
		for (ci = 0; ci < NR_CASES && !err; ci++)
			if (selected(o, "stall", imig_cases[ci].name))
				err = measure_stall(&b, &imig_cases[ci]);
	}
out:
	devstall_fini(&b.ds);
	teardown(&b);
	if (err) {
		bench_error("iommu-migrate: %s", strerror(-err));
		return 1;
	}
	return 0;
}
