/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench alloc - page allocator fast and slow paths against malloc.
 * Order-0 alloc+free pairs (the per-thread cache path, as the kernel's pcp
 * lists) in two loop shapes, one thread and several threads on one machine;
 * order 3 and order 9 (the buddy allocator under the zone lock). Baseline,
 * measured in the same run with the same loop shape: malloc()+free() of the
 * same bytes (jemalloc when linked). Page content is never touched.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define ALLOC_DEFAULT_MEM	(1ULL << 30)
#define ALLOC_DEFAULT_ITERS	40000000ULL	/* shorter runs are at the mercy of vCPU steal */
#define ALLOC_DEFAULT_THREADS	2
#define ALLOC_DEFAULT_WINDOW	32
#define ALLOC_WARMUP_PAIRS	4096
#define ALLOC_MAX_THREADS	256
#define ALLOC_MAX_WINDOW	65536

/* IMPL_SPIN: arithmetic only, how well the host runs threads in parallel. */
enum alloc_impl { IMPL_IOMMIG, IMPL_MALLOC, IMPL_SPIN };

/*
 * One loop shape. @window 0: alloc then free at once ("pair"); otherwise
 * --window allocations then their frees in reverse order (LIFO), so that
 * many pages are outstanding. @iters_div scales --iters down for orders
 * whose pairs are slower.
 */
struct alloc_case {
	const char *name;
	unsigned int order;
	unsigned int window;
	unsigned int iters_div;
	bool multi;		/* also measured with --threads threads */
	const char *goal;	/* for the single-thread ratio */
	double goal_ratio;
};

struct alloc_worker {
	pthread_t tid;
	struct iom_machine *m;
	const struct alloc_case *c;
	enum alloc_impl impl;
	unsigned int window;
	uint64_t iters;		/* pairs to do; a multiple of the window */
	unsigned int idx;
	bool pin;
	pthread_barrier_t *start;
	void **slots;		/* window of outstanding allocations */
	uint64_t t0, t1;	/* wall clock */
	uint64_t cpu;		/* thread CPU time between t0 and t1 */
	char err[160];
};

static size_t case_bytes(const struct alloc_case *c)
{
	return IOM_PAGE_SIZE << c->order;
}

static int iom_loop(struct alloc_worker *w, uint64_t n)
{
	struct iom_machine *m = w->m;
	unsigned int order = w->c->order, win = w->window, j;
	void **slots = w->slots;
	uint64_t i;
	int ret;

	if (!win) {
		for (i = 0; i < n; i++) {
			struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL,
							     order);
			if (!p)
				goto alloc_failed;
			ret = iom___free_pages(m, p, order);
			if (ret)
				goto free_failed;
		}
		return 0;
	}
	for (i = 0; i < n; i += win) {
		for (j = 0; j < win; j++) {
			slots[j] = iom_alloc_pages(m, IOM_GFP_KERNEL, order);
			if (!slots[j])
				goto alloc_failed;
		}
		for (j = win; j-- > 0;) {
			ret = iom___free_pages(m, slots[j], order);
			if (ret)
				goto free_failed;
		}
	}
	return 0;

alloc_failed:
	snprintf(w->err, sizeof(w->err),
		 "iom_alloc_pages(GFP_KERNEL, order %u) failed: %s", order,
		 strerror(errno));
	return -1;
free_failed:
	snprintf(w->err, sizeof(w->err),
		 "iom___free_pages(order %u) failed: %s", order,
		 strerror(-ret));
	return -1;
}

static int malloc_loop(struct alloc_worker *w, uint64_t n)
{
	size_t size = case_bytes(w->c);
	unsigned int win = w->window, j;
	void **slots = w->slots;
	uint64_t i;

	if (!win) {
		for (i = 0; i < n; i++) {
			void *p = malloc(size);
			if (!p)
				goto failed;
			bench_sink(p);
			free(p);
		}
		return 0;
	}
	for (i = 0; i < n; i += win) {
		for (j = 0; j < win; j++) {
			slots[j] = malloc(size);
			if (!slots[j])
				goto failed;
			bench_sink(slots[j]);
		}
		for (j = win; j-- > 0;)
			free(slots[j]);
	}
	return 0;

failed:
	snprintf(w->err, sizeof(w->err), "malloc(%zu) failed", size);
	return -1;
}

static int spin_loop(struct alloc_worker *w, uint64_t n)
{
	uint64_t x = w->idx, i;

	for (i = 0; i < n * 8; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		__asm__ __volatile__("" : "+r"(x));
	}
	return 0;
}

static void *alloc_worker_fn(void *arg)
{
	struct alloc_worker *w = arg;
	int (*loop)(struct alloc_worker *, uint64_t) =
		w->impl == IMPL_IOMMIG ? iom_loop :
		w->impl == IMPL_MALLOC ? malloc_loop : spin_loop;
	uint64_t c0;
	uint64_t warm = w->window ? w->window : ALLOC_WARMUP_PAIRS;
	int failed;

	if (w->pin)
		bench_pin_self(w->idx);
	/* First use sets up this thread's page cache: not timed. */
	failed = loop(w, warm);
	pthread_barrier_wait(w->start);
	if (failed)
		return NULL;
	c0 = bench_thread_cpu_ns();
	w->t0 = bench_now_ns();
	failed = loop(w, w->iters);
	w->t1 = bench_now_ns();
	w->cpu = bench_thread_cpu_ns() - c0;
	if (!failed && w->impl == IMPL_IOMMIG)
		iom_drain_local_pages(w->m);
	return NULL;
}

/*
 * One timed run of @c by @impl in @nthreads threads sharing @m; @iters
 * pairs in all. *@share: the threads' CPU time / (@nthreads x wall time).
 * Return: wall-clock ns per pair (all threads together, the first start to
 * the last end), or a negative number after an error.
 */
static double alloc_run(const struct bench_opts *o, struct iom_machine *m,
			const struct alloc_case *c, enum alloc_impl impl,
			unsigned int nthreads, uint64_t iters, double *share)
{
	struct alloc_worker w[ALLOC_MAX_THREADS];
	unsigned int win = c->window ? o->window : 0, i;
	struct bench_span span = BENCH_SPAN_INIT;
	uint64_t per = iters / nthreads;
	pthread_barrier_t start;
	double ret = -1;

	if (win)
		per -= per % win;
	if (!per)
		per = win ? win : 1;
	if (pthread_barrier_init(&start, NULL, nthreads)) {
		bench_error("pthread_barrier_init failed");
		return -1;
	}
	memset(w, 0, sizeof(w[0]) * nthreads);
	for (i = 0; i < nthreads; i++) {
		w[i] = (struct alloc_worker){
			.m = m, .c = c, .impl = impl, .window = win,
			.iters = per, .idx = i, .pin = o->pin, .start = &start,
		};
		if (win && !(w[i].slots = calloc(win, sizeof(void *)))) {
			bench_error("out of memory");
			goto out;
		}
	}
	for (i = 0; i < nthreads; i++)
		bench_thread_create(&w[i].tid, alloc_worker_fn, &w[i]);
	for (i = 0; i < nthreads; i++)
		pthread_join(w[i].tid, NULL);
	ret = 0;
	for (i = 0; i < nthreads; i++) {
		if (w[i].err[0]) {
			bench_error("%s, thread %u: %s", c->name, i, w[i].err);
			ret = -1;
		}
		bench_span_add(&span, w[i].t0, w[i].t1, w[i].iters, w[i].cpu);
	}
	if (!ret)
		ret = bench_span_ns_per_op(&span, nthreads, share);
out:
	for (i = 0; i < nthreads; i++)
		free(w[i].slots);
	pthread_barrier_destroy(&start);
	return ret;
}

/* Pages in the buddy free lists of every zone (pcp caches not included). */
static long long free_pages_total(struct iom_machine *m)
{
	struct iom_zone_info zi;
	long long sum = 0;
	unsigned int nid;
	int zt;

	for (nid = 0; nid < iom_nr_nodes(m); nid++) {
		for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
			int err = iom_zone_info(m, (int)nid, zt, &zi);

			if (err) {
				bench_error("iom_zone_info(%u, %d): %s", nid,
					    zt, strerror(-err));
				return -1;
			}
			sum += (long long)zi.nr_free_pages;
		}
	}
	return sum;
}

static const struct alloc_case alloc_cases[] = {
	{ "order0_pair", 0, 0, 1, true, "ratio<=1.5", 1.5 },
	{ "order0_lifo", 0, 1, 1, true, "ratio<=1.5", 1.5 },
	{ "order3_pair", 3, 0, 10, false, NULL, 0 },
	{ "order9_pair", 9, 0, 50, false, NULL, 0 },
};

/* The reference for the scaling goals: what the host gives two threads. */
static const struct alloc_case spin_case = { "host_spin", 0, 0, 1, true, NULL, 0 };

/* ns/pair of each run; scaling = 1-thread ns / N-thread ns of a run. */
struct case_samples {
	double *iom1, *base1, *iomn, *basen, *scale, *base_scale;
	double share1, sharen;	/* lowest cpu share, 1 and N threads */
};
#define NR_SAMPLE_ARRAYS 6

static int run_pair(const struct bench_opts *o, struct iom_machine *m,
		    const struct alloc_case *c, enum alloc_impl impl,
		    unsigned int nthreads, uint64_t iters, double *ns,
		    double *min_share)
{
	double share = 1;

	*ns = alloc_run(o, m, c, impl, nthreads, iters, &share);
	if (*ns < 0)
		return -1;
	if (share < *min_share)
		*min_share = share;
	return 0;
}

/*
 * Runs interleave the library and the baseline, one thread then N, so a
 * change in the host's load hits both sides of a ratio alike.
 */
static int measure_case(const struct bench_opts *o, struct iom_machine *m,
			const struct alloc_case *c, unsigned int nthreads,
			struct case_samples *s)
{
	uint64_t iters = o->iters / c->iters_div;
	bool multi = c->multi && nthreads > 1;
	bool spin = c == &spin_case, base = o->baseline && !spin;
	enum alloc_impl impl = spin ? IMPL_SPIN : IMPL_IOMMIG;
	int r;

	if (!iters)
		iters = 1;
	s->share1 = s->sharen = 1;
	for (r = 0; r < o->runs; r++) {
		bench_progress(o, "alloc %s: run %d/%d", c->name, r + 1,
			       o->runs);
		if (run_pair(o, m, c, impl, 1, iters, &s->iom1[r], &s->share1))
			return -1;
		if (base && run_pair(o, m, c, IMPL_MALLOC, 1, iters,
				     &s->base1[r], &s->share1))
			return -1;
		if (!multi)
			continue;
		if (run_pair(o, m, c, impl, nthreads, iters, &s->iomn[r],
			     &s->sharen))
			return -1;
		if (base && run_pair(o, m, c, IMPL_MALLOC, nthreads, iters,
				     &s->basen[r], &s->sharen))
			return -1;
		s->scale[r] = s->iom1[r] / s->iomn[r];
		if (base)
			s->base_scale[r] = s->base1[r] / s->basen[r];
	}
	return 0;
}

static void report_scaling(const struct bench_opts *o,
			   const struct alloc_case *c, unsigned int nthreads,
			   struct case_samples *s)
{
	bool spin = c == &spin_case, base = o->baseline && !spin;
	char metric[64], bname[96], goal[32], note[160];
	struct bench_stat vs, bs;

	bench_stat_compute(s->scale, o->runs, &vs);
	bench_stat_compute(s->base_scale, base ? o->runs : 0, &bs);
	snprintf(metric, sizeof(metric), "%s_scaling_%ut", c->name, nthreads);
	snprintf(bname, sizeof(bname), "%s malloc(%zu)+free scaling",
		 bench_allocator_name(), case_bytes(c));
	snprintf(goal, sizeof(goal), "value>=%.2g", 0.85 * nthreads);
	snprintf(note, sizeof(note), "%u-thread rate / 1-thread rate%s%s",
		 nthreads, spin ? " of an arithmetic loop: what the host "
		 "allows" : "", bench_nproc() < nthreads ?
		 "; fewer cpus than threads" : "");
	bench_report(o, &(struct bench_result){
		.bench = "alloc", .metric = metric, .unit = "x",
		.value = vs, .baseline = base ? &bs : NULL,
		.baseline_name = bname, .goal = spin ? NULL : goal,
		.goal_met = vs.median >= 0.85 * nthreads, .note = note,
		.cpu_share = s->sharen,
	});
}

static void report_case(const struct bench_opts *o, const struct alloc_case *c,
			unsigned int nthreads, struct case_samples *s)
{
	char metric[64], bname[96], note[128];
	struct bench_stat v, b;
	bool multi = c->multi && nthreads > 1;

	if (c == &spin_case) {
		if (multi)
			report_scaling(o, c, nthreads, s);
		return;
	}
	snprintf(bname, sizeof(bname), "%s malloc(%zu)+free, same loop",
		 bench_allocator_name(), case_bytes(c));
	bench_stat_compute(s->iom1, o->runs, &v);
	bench_stat_compute(s->base1, o->baseline ? o->runs : 0, &b);
	snprintf(metric, sizeof(metric), "%s_1t", c->name);
	snprintf(note, sizeof(note), "LIFO window of %u", o->window);
	bench_report(o, &(struct bench_result){
		.bench = "alloc", .metric = metric, .unit = "ns/pair",
		.value = v, .baseline = o->baseline ? &b : NULL,
		.baseline_name = bname,
		.goal = o->baseline ? c->goal : NULL,
		.goal_met = b.median > 0 && v.median / b.median <= c->goal_ratio,
		.note = c->window ? note : NULL, .cpu_share = s->share1,
	});
	if (!multi)
		return;

	bench_stat_compute(s->iomn, o->runs, &v);
	bench_stat_compute(s->basen, o->baseline ? o->runs : 0, &b);
	snprintf(metric, sizeof(metric), "%s_%ut", c->name, nthreads);
	snprintf(note, sizeof(note), "%saggregate: wall time / all pairs, "
		 "one machine", c->window ? "LIFO window; " : "");
	bench_report(o, &(struct bench_result){
		.bench = "alloc", .metric = metric, .unit = "ns/pair",
		.value = v, .baseline = o->baseline ? &b : NULL,
		.baseline_name = bname, .note = note, .cpu_share = s->sharen,
	});
	report_scaling(o, c, nthreads, s);
}

static bool case_selected(const struct bench_opts *o,
			  const struct alloc_case *c)
{
	return !o->only || strstr(c->name, o->only);
}

/* Every page came back and the library saw nothing wrong. */
static int check_machine(struct iom_machine *m, long long free_before)
{
	long long free_after;
	unsigned long bugs;

	iom_drain_all_pages(m);
	free_after = free_pages_total(m);
	if (free_after < 0)
		return -1;
	if (free_after != free_before) {
		bench_error("free pages: %lld before, %lld after the benchmark",
			    free_before, free_after);
		return -1;
	}
	bugs = iom_machine_bug_count(m);
	if (bugs) {
		bench_error("the machine reported %lu bugs", bugs);
		return -1;
	}
	return 0;
}

int bench_alloc(const struct bench_opts *o_in)
{
	struct bench_opts opts = *o_in, *o = &opts;
	struct iom_machine_config cfg;
	struct iom_machine *m = NULL;
	struct bench_arena *arena = NULL;
	struct case_samples s;
	long long free_before;
	unsigned int nthreads;
	size_t ci;
	int err, ret = 1;

	if (!o->mem)
		o->mem = ALLOC_DEFAULT_MEM;
	if (!o->iters)
		o->iters = ALLOC_DEFAULT_ITERS;
	if (!o->window)
		o->window = ALLOC_DEFAULT_WINDOW;
	nthreads = o->threads ? o->threads : ALLOC_DEFAULT_THREADS;
	if (nthreads > ALLOC_MAX_THREADS || o->window > ALLOC_MAX_WINDOW) {
		bench_error("at most %d threads and a window of %d",
			    ALLOC_MAX_THREADS, ALLOC_MAX_WINDOW);
		return 1;
	}

	for (ci = 0; ci < sizeof(alloc_cases) / sizeof(alloc_cases[0]); ci++)
		if (case_selected(o, &alloc_cases[ci]))
			break;
	if (ci == sizeof(alloc_cases) / sizeof(alloc_cases[0]) &&
	    !case_selected(o, &spin_case)) {
		bench_error("--only '%s' matches no case", o->only);
		return 1;
	}

	s.iom1 = calloc((size_t)o->runs * NR_SAMPLE_ARRAYS, sizeof(double));
	if (!s.iom1) {
		bench_error("out of memory");
		return 1;
	}
	s.base1 = s.iom1 + o->runs;
	s.iomn = s.base1 + o->runs;
	s.basen = s.iomn + o->runs;
	s.scale = s.basen + o->runs;
	s.base_scale = s.scale + o->runs;

	err = bench_arena_create(&arena);
	if (err) {
		bench_error("cannot create the metadata arena: %s",
			    strerror(-err));
		goto out;
	}
	iom_machine_config_init(&cfg);
	cfg.mem_size = o->mem;
	bench_arena_mem_ops(arena, &cfg.mem_ops);
	err = iom_machine_create(&cfg, &m);
	if (err) {
		bench_error("iom_machine_create(mem %llu): %s",
			    (unsigned long long)o->mem, strerror(-err));
		goto out;
	}
	free_before = free_pages_total(m);
	if (free_before < 0)
		goto out;

	bench_report_host(o);
	if (nthreads > 1 && case_selected(o, &spin_case)) {
		if (measure_case(o, m, &spin_case, nthreads, &s))
			goto out;
		report_case(o, &spin_case, nthreads, &s);
	}
	for (ci = 0; ci < sizeof(alloc_cases) / sizeof(alloc_cases[0]); ci++) {
		const struct alloc_case *c = &alloc_cases[ci];

		if (!case_selected(o, c))
			continue;
		if (measure_case(o, m, c, nthreads, &s))
			goto out;
		report_case(o, c, nthreads, &s);
	}
	if (check_machine(m, free_before))
		goto out;
	ret = 0;
out:
	iom_machine_destroy(m);
	bench_arena_destroy(arena);
	free(s.iom1);
	return ret;
}
