/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench iova - the IOVA allocator (src/iommu/iova.c) against malloc.
 * alloc+free pairs on one domain (granule 4 KiB, a 32-bit limit, as
 * dma-iommu's usual DMA mask): a seeded mix of sizes 1..32 granules and
 * single sizes; with the per-thread magazine caches (alloc_iova_fast /
 * free_iova_fast) and without (alloc_iova / __free_iova, the tree under
 * its lock); one thread and --threads threads on one domain; a LIFO window
 * of --window ranges for the mix. Baseline, measured in the same run with
 * the same loop and the same size sequence: malloc()+free() of the same
 * bytes (jemalloc when linked).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define IOVA_DEFAULT_ITERS	10000000ULL
#define IOVA_DEFAULT_THREADS	2
#define IOVA_DEFAULT_WINDOW	32
#define IOVA_MAX_THREADS	64
#define IOVA_MAX_WINDOW		4096
#define IOVA_LIMIT_PFN		((1UL << (32 - 12)) - 1)
#define IOVA_NR_SIZES		1024	/* the size sequence, repeated */
#define IOVA_WARMUP		4096

enum iova_impl { IMPL_FAST, IMPL_TREE, IMPL_MALLOC };

/*
 * @size 0: the seeded 1..32 mix. @window: LIFO window instead of pairs.
 * @tree: also measured without caches. @goal: for the cached ratio.
 */
struct iova_case {
	const char *name;
	unsigned int size;
	bool window;
	bool tree;
	unsigned int iters_div;
};

static const struct iova_case iova_cases[] = {
	{ "mix_pair", 0, false, true, 1 },
	{ "size1_pair", 1, false, true, 1 },
	{ "size8_pair", 8, false, false, 1 },
	{ "size32_pair", 32, false, false, 1 },
	{ "mix_lifo", 0, true, true, 1 },
};

struct iova_worker {
	pthread_t tid;
	struct iom_iova_domain *iovad;
	const struct iova_case *c;
	enum iova_impl impl;
	const unsigned int *sizes;
	unsigned int window;
	uint64_t iters;
	unsigned int idx;
	bool pin;
	pthread_barrier_t *start;
	unsigned long *pfns;
	void **ptrs;
	struct iom_iova **nodes;
	uint64_t t0, t1, cpu;
	char err[160];
};

static int fast_loop(struct iova_worker *w, uint64_t n)
{
	struct iom_iova_domain *iovad = w->iovad;
	const unsigned int *sizes = w->sizes;
	unsigned int win = w->window, j;
	uint64_t i;

	if (!win) {
		for (i = 0; i < n; i++) {
			unsigned int sz = sizes[i % IOVA_NR_SIZES];
			unsigned long pfn = iom_alloc_iova_fast(iovad, sz,
								IOVA_LIMIT_PFN, true);

			if (!pfn || iom_free_iova_fast(iovad, pfn, sz))
				goto failed;
		}
		return 0;
	}
	for (i = 0; i < n; i += win) {
		for (j = 0; j < win; j++) {
			w->pfns[j] = iom_alloc_iova_fast(iovad, sizes[(i + j) % IOVA_NR_SIZES],
							 IOVA_LIMIT_PFN, true);
			if (!w->pfns[j])
				goto failed;
		}
		for (j = win; j-- > 0;)
			if (iom_free_iova_fast(iovad, w->pfns[j],
					       sizes[(i + j) % IOVA_NR_SIZES]))
				goto failed;
	}
	return 0;
failed:
	snprintf(w->err, sizeof(w->err), "alloc_iova_fast/free_iova_fast failed");
	return -1;
}

static int tree_loop(struct iova_worker *w, uint64_t n)
{
	struct iom_iova_domain *iovad = w->iovad;
	const unsigned int *sizes = w->sizes;
	unsigned int win = w->window, j;
	uint64_t i;

	if (!win) {
		for (i = 0; i < n; i++) {
			struct iom_iova *iova = iom_alloc_iova(iovad,
							       sizes[i % IOVA_NR_SIZES],
							       IOVA_LIMIT_PFN, true);

			if (!iova || iom___free_iova(iovad, iova))
				goto failed;
		}
		return 0;
	}
	for (i = 0; i < n; i += win) {
		for (j = 0; j < win; j++) {
			w->nodes[j] = iom_alloc_iova(iovad, sizes[(i + j) % IOVA_NR_SIZES],
						     IOVA_LIMIT_PFN, true);
			if (!w->nodes[j])
				goto failed;
		}
		for (j = win; j-- > 0;)
			if (iom___free_iova(iovad, w->nodes[j]))
				goto failed;
	}
	return 0;
failed:
	snprintf(w->err, sizeof(w->err), "alloc_iova/__free_iova failed");
	return -1;
}

static int malloc_loop(struct iova_worker *w, uint64_t n)
{
	const unsigned int *sizes = w->sizes;
	unsigned int win = w->window, j;
	uint64_t i;

	if (!win) {
		for (i = 0; i < n; i++) {
			void *p = malloc((size_t)sizes[i % IOVA_NR_SIZES] << 12);

			if (!p)
				goto failed;
			bench_sink(p);
			free(p);
		}
		return 0;
	}
	for (i = 0; i < n; i += win) {
		for (j = 0; j < win; j++) {
			w->ptrs[j] = malloc((size_t)sizes[(i + j) % IOVA_NR_SIZES] << 12);
			if (!w->ptrs[j])
				goto failed;
			bench_sink(w->ptrs[j]);
		}
		for (j = win; j-- > 0;)
			free(w->ptrs[j]);
	}
	return 0;
failed:
	snprintf(w->err, sizeof(w->err), "malloc failed");
	return -1;
}

static void *iova_worker_fn(void *arg)
{
	struct iova_worker *w = arg;
	int (*loop)(struct iova_worker *, uint64_t) =
		w->impl == IMPL_FAST ? fast_loop :
		w->impl == IMPL_TREE ? tree_loop : malloc_loop;
	uint64_t warm = w->window ? w->window * 16 : IOVA_WARMUP, c0;
	int failed;

	if (w->pin)
		bench_pin_self(w->idx);
	/* the thread's caches come to life: not timed */
	failed = loop(w, warm);
	pthread_barrier_wait(w->start);
	if (failed)
		return NULL;
	c0 = bench_thread_cpu_ns();
	w->t0 = bench_now_ns();
	loop(w, w->iters);
	w->t1 = bench_now_ns();
	w->cpu = bench_thread_cpu_ns() - c0;
	return NULL;
}

/* One timed run; ns per pair over all threads, or < 0 after an error. */
static double iova_run(const struct bench_opts *o, struct iom_iova_domain *iovad,
		       const struct iova_case *c, const unsigned int *sizes,
		       enum iova_impl impl, unsigned int nthreads, double *share)
{
	struct iova_worker w[IOVA_MAX_THREADS];
	unsigned int win = c->window ? o->window : 0, i;
	uint64_t per = o->iters / c->iters_div / nthreads;
	struct bench_span span = BENCH_SPAN_INIT;
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
		w[i] = (struct iova_worker){
			.iovad = iovad, .c = c, .impl = impl, .sizes = sizes,
			.window = win, .iters = per, .idx = i, .pin = o->pin,
			.start = &start,
		};
		if (win && (!(w[i].pfns = calloc(win, sizeof(long))) ||
			    !(w[i].ptrs = calloc(win, sizeof(void *))) ||
			    !(w[i].nodes = calloc(win, sizeof(void *))))) {
			bench_error("out of memory");
			goto out;
		}
	}
	for (i = 0; i < nthreads; i++)
		bench_thread_create(&w[i].tid, iova_worker_fn, &w[i]);
	for (i = 0; i < nthreads; i++)
		pthread_join(w[i].tid, NULL);
	ret = 0;
	for (i = 0; i < nthreads; i++) {
		if (w[i].err[0]) {
			bench_error("iova %s, thread %u: %s", c->name, i, w[i].err);
			ret = -1;
		}
		bench_span_add(&span, w[i].t0, w[i].t1, w[i].iters, w[i].cpu);
	}
	if (!ret)
		ret = bench_span_ns_per_op(&span, nthreads, share);
out:
	for (i = 0; i < nthreads; i++) {
		free(w[i].pfns);
		free(w[i].ptrs);
		free(w[i].nodes);
	}
	pthread_barrier_destroy(&start);
	return ret;
}

struct iova_samples {
	double *fast, *tree, *base;
	double share;
};

static void report(const struct bench_opts *o, const struct iova_case *c,
		   unsigned int nthreads, bool tree, double *vals, double *base,
		   double share)
{
	char metric[64], bname[96], note[160];
	struct bench_stat v, b;
	bool cached = !tree;

	bench_stat_compute(vals, o->runs, &v);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &b);
	snprintf(metric, sizeof(metric), "%s_%s_%ut", c->name,
		 tree ? "nocache" : "cached", nthreads);
	snprintf(bname, sizeof(bname), "%s malloc(%s)+free, same loop",
		 bench_allocator_name(), c->size ? (c->size == 1 ? "4K" :
		 c->size == 8 ? "32K" : "128K") : "4K..128K mix");
	snprintf(note, sizeof(note), "%s%s%s", tree ? "alloc_iova+__free_iova "
		 "(tree under its lock)" : "alloc_iova_fast+free_iova_fast",
		 c->window ? "; LIFO window" : "",
		 nthreads > 1 ? "; aggregate: wall time / all pairs, one domain" : "");
	bench_report(o, &(struct bench_result){
		.bench = "iova", .metric = metric, .unit = "ns/pair",
		.value = v, .baseline = o->baseline ? &b : NULL,
		.baseline_name = bname,
		.goal = o->baseline && cached ? "ratio<=1.0" : NULL,
		.goal_met = b.median > 0 && v.median / b.median <= 1.0,
		.note = note, .cpu_share = share,
	});
}

static int measure(const struct bench_opts *o, struct iom_iova_domain *iovad,
		   const struct iova_case *c, const unsigned int *sizes,
		   unsigned int nthreads, struct iova_samples *s)
{
	double share, fshare = 1, tshare = 1;
	int r;

	for (r = 0; r < o->runs; r++) {
		bench_progress(o, "iova %s %ut: run %d/%d", c->name, nthreads,
			       r + 1, o->runs);
		s->fast[r] = iova_run(o, iovad, c, sizes, IMPL_FAST, nthreads, &share);
		if (s->fast[r] < 0)
			return -1;
		if (share < fshare)
			fshare = share;
		if (o->baseline) {
			s->base[r] = iova_run(o, iovad, c, sizes, IMPL_MALLOC,
					      nthreads, &share);
			if (s->base[r] < 0)
				return -1;
		}
		if (c->tree) {
			s->tree[r] = iova_run(o, iovad, c, sizes, IMPL_TREE,
					      nthreads, &share);
			if (s->tree[r] < 0)
				return -1;
			if (share < tshare)
				tshare = share;
		}
	}
	report(o, c, nthreads, false, s->fast, s->base, fshare);
	if (c->tree)
		report(o, c, nthreads, true, s->tree, s->base, tshare);
	return 0;
}

int bench_iova(const struct bench_opts *o_in)
{
	struct bench_opts opts = *o_in, *o = &opts;
	struct iom_iova_domain *iovad = NULL;
	unsigned int sizes_mix[IOVA_NR_SIZES], sizes_one[IOVA_NR_SIZES];
	struct iova_samples s = { 0 };
	struct iom_iova_stats st;
	unsigned int nthreads, t, i;
	uint64_t seed = 0x10fa5eedULL;
	size_t ci;
	int ret = 1;

	if (!o->iters)
		o->iters = IOVA_DEFAULT_ITERS;
	if (!o->window)
		o->window = IOVA_DEFAULT_WINDOW;
	nthreads = o->threads ? o->threads : IOVA_DEFAULT_THREADS;
	if (nthreads > IOVA_MAX_THREADS || o->window > IOVA_MAX_WINDOW) {
		bench_error("at most %d threads and a window of %d",
			    IOVA_MAX_THREADS, IOVA_MAX_WINDOW);
		return 1;
	}
	for (ci = 0; ci < sizeof(iova_cases) / sizeof(iova_cases[0]); ci++)
		if (!o->only || strstr(iova_cases[ci].name, o->only))
			break;
	if (ci == sizeof(iova_cases) / sizeof(iova_cases[0])) {
		bench_error("--only '%s' matches no case", o->only);
		return 1;
	}
	for (i = 0; i < IOVA_NR_SIZES; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		sizes_mix[i] = 1 + (unsigned int)((seed >> 33) % 32);
	}
	s.fast = calloc((size_t)o->runs * 3, sizeof(double));
	if (!s.fast) {
		bench_error("out of memory");
		return 1;
	}
	s.tree = s.fast + o->runs;
	s.base = s.tree + o->runs;
	iovad = iom_init_iova_domain(NULL, 4096, 1);
	if (!iovad) {
		bench_error("iom_init_iova_domain: %s", strerror(errno));
		goto out;
	}
	bench_report_host(o);
	for (ci = 0; ci < sizeof(iova_cases) / sizeof(iova_cases[0]); ci++) {
		const struct iova_case *c = &iova_cases[ci];
		const unsigned int *sizes = sizes_mix;

		if (o->only && !strstr(c->name, o->only))
			continue;
		if (c->size) {
			for (i = 0; i < IOVA_NR_SIZES; i++)
				sizes_one[i] = c->size;
			sizes = sizes_one;
		}
		for (t = 1; t <= nthreads; t = t == 1 && nthreads > 1 ? nthreads : nthreads + 1)
			if (measure(o, iovad, c, sizes, t, &s))
				goto out;
	}
	/* Nothing lost, nothing freed twice. */
	iom_free_all_cpu_cached_iovas(iovad);
	iom_free_global_cached_iovas(iovad);
	iom_iova_domain_stats(iovad, &st);
	if (st.nr_ranges || st.bad_frees) {
		bench_error("domain left with %lu ranges, %lu bad frees",
			    st.nr_ranges, st.bad_frees);
		goto out;
	}
	ret = 0;
out:
	iom_put_iova_domain(iovad);
	free(s.fast);
	return ret;
}
