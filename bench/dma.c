/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench dma - device DMA bandwidth through the IOTLB.
 * A device behind an IOMMU with the default IOTLB (2048 entries, 8 ways,
 * LRU) reads (iom_device_dma_read: memory -> device buffer) or writes
 * (iom_device_dma_write: device buffer -> memory) bursts of 4 KiB or
 * 64 KiB, sequentially through a working set of 4 KiB mappings (one
 * iom_iommu_map() a page, order-0 pages of the machine: no block entries)
 * on an unmanaged domain:
 *   hit  - 256 pages (1 MiB): fits the IOTLB, every translation hits
 *          after the warm-up pass;
 *   miss - 32768 pages (128 MiB): 16 times the IOTLB, every page misses
 *          and is walked (4 levels) once a pass.
 * One thread and --threads threads (each going round its own part of
 * the working set, with its own buffer; the IOTLB sees the whole set). Baseline in the same run: libc
 * memcpy() of the same bursts in the same order between a host buffer of
 * the working set's size and a burst buffer, i.e. the same bytes and the
 * same footprint. Reported: GB/s, the ratio library/memcpy (goal >= 0.8
 * on hits) and the IOTLB hit rate of each case (iom_iommu_get_stats()).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define DMA_DEFAULT_MEM		(512ULL << 20)
#define DMA_DEFAULT_BYTES	(1ULL << 30)	/* a run, all threads */
#define DMA_DEFAULT_THREADS	2
#define DMA_MAX_THREADS		64
#define DMA_HIT_PAGES		256UL		/* 1 MiB */
#define DMA_MISS_PAGES		32768UL		/* 128 MiB */
#define DMA_HIT_IOVA		0x100000000UL
#define DMA_MISS_IOVA		0x200000000UL
#define DMA_MAX_BURST		(64UL << 10)
#define PG			IOM_PAGE_SIZE

struct dma_ws {
	const char *name;
	unsigned long pages;
	unsigned long iova;
	struct iom_page **page;
	unsigned char *host;	/* the baseline's buffer of the same size */
	void **addr;		/* the content of each page */
};

enum dma_kind {
	KIND_LIB,	/* iom_device_dma_read/write */
	KIND_MEMCPY,	/* memcpy of each burst, host buffer of the same size */
	KIND_PAGES,	/* memcpy 4 KiB at a time, the same simulated pages */
};

struct dma_worker {
	pthread_t tid;
	struct iom_device *dev;
	const struct dma_ws *ws;
	enum dma_kind kind;
	bool write, pin;
	size_t burst;
	uint64_t bursts;	/* a run */
	unsigned int idx, nthreads;
	pthread_barrier_t *start;
	unsigned char *buf;
	uint64_t t0, t1, cpu;
	char err[160];
};

static int dma_pass(struct dma_worker *w, uint64_t n)
{
	size_t burst = *(volatile size_t *)&w->burst;
	size_t part = w->ws->pages * PG / w->nthreads / burst * burst;
	size_t lo, ws, off;
	size_t pg = *(volatile size_t *)&(size_t){ PG }, k;
	unsigned char *host = w->ws->host, *buf = w->buf;
	unsigned long iova = w->ws->iova;
	void **addr = w->ws->addr;
	uint64_t i;

	/*
	 * Each thread goes round its own part of the set (no two threads
	 * write the same lines); the IOTLB sees the whole set.
	 */
	if (!part) {
		part = burst;
		lo = w->idx * burst % (w->ws->pages * PG);
	} else {
		lo = part * w->idx;
	}
	ws = lo + part;
	off = lo;
	if (w->kind == KIND_PAGES && w->write) {
		for (i = 0; i < n; i++) {
			for (k = 0; k < burst; k += pg)
				memcpy(addr[(off + k) / PG], buf + k, pg);
			bench_sink(addr);
			off += burst;
			if (off >= ws)
				off = lo;
		}
	} else if (w->kind == KIND_PAGES) {
		for (i = 0; i < n; i++) {
			for (k = 0; k < burst; k += pg)
				memcpy(buf + k, addr[(off + k) / PG], pg);
			bench_sink(buf);
			off += burst;
			if (off >= ws)
				off = lo;
		}
	} else if (w->kind == KIND_LIB && w->write) {
		for (i = 0; i < n; i++) {
			if (iom_device_dma_write(w->dev, iova + off, buf, burst))
				goto failed;
			off += burst;
			if (off >= ws)
				off = lo;
		}
	} else if (w->kind == KIND_LIB) {
		for (i = 0; i < n; i++) {
			if (iom_device_dma_read(w->dev, iova + off, buf, burst))
				goto failed;
			off += burst;
			if (off >= ws)
				off = lo;
		}
	} else if (w->write) {
		for (i = 0; i < n; i++) {
			memcpy(host + off, buf, burst);
			bench_sink(host);
			off += burst;
			if (off >= ws)
				off = lo;
		}
	} else {
		for (i = 0; i < n; i++) {
			memcpy(buf, host + off, burst);
			bench_sink(buf);
			off += burst;
			if (off >= ws)
				off = lo;
		}
	}
	return 0;
failed:
	snprintf(w->err, sizeof(w->err), "iom_device_dma_%s at iova %#lx failed",
		 w->write ? "write" : "read", iova + off);
	return -1;
}

static void *dma_worker_fn(void *arg)
{
	struct dma_worker *w = arg;
	uint64_t c0;
	int failed;

	if (w->pin)
		bench_pin_self(w->idx);
	/* warm-up, not timed: one pass of the thread's part of the set */
	failed = dma_pass(w, w->ws->pages * PG / w->burst / w->nthreads + 1);
	pthread_barrier_wait(w->start);
	if (failed)
		return NULL;
	c0 = bench_thread_cpu_ns();
	w->t0 = bench_now_ns();
	dma_pass(w, w->bursts);
	w->t1 = bench_now_ns();
	w->cpu = bench_thread_cpu_ns() - c0;
	return NULL;
}

/* One run: GB/s of all threads together, or < 0 after an error. */
static double dma_run(const struct bench_opts *o, struct iom_device *dev,
		      const struct dma_ws *ws, bool write, enum dma_kind kind,
		      size_t burst, unsigned int nthreads,
		      unsigned char **bufs, double *share)
{
	struct dma_worker w[DMA_MAX_THREADS];
	struct bench_span span = BENCH_SPAN_INIT;
	uint64_t per = o->iters / burst / nthreads;
	pthread_barrier_t start;
	unsigned int i;
	int err = 0;

	if (!per)
		per = 1;
	if (pthread_barrier_init(&start, NULL, nthreads)) {
		bench_error("pthread_barrier_init failed");
		return -1;
	}
	for (i = 0; i < nthreads; i++) {
		w[i] = (struct dma_worker){
			.dev = dev, .ws = ws, .write = write, .kind = kind,
			.pin = o->pin, .burst = burst, .bursts = per,
			.idx = i, .nthreads = nthreads, .start = &start,
			.buf = bufs[i],
		};
		bench_thread_create(&w[i].tid, dma_worker_fn, &w[i]);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(w[i].tid, NULL);
	for (i = 0; i < nthreads; i++) {
		if (w[i].err[0]) {
			bench_error("dma, thread %u: %s", i, w[i].err);
			err = -1;
		}
		bench_span_add(&span, w[i].t0, w[i].t1, w[i].bursts * burst, w[i].cpu);
	}
	pthread_barrier_destroy(&start);
	if (err)
		return -1;
	/* bytes / ns = GB/s */
	return 1.0 / bench_span_ns_per_op(&span, nthreads, share);
}

struct dma_env {
	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	struct iom_device *dev;
	struct dma_ws ws[2];
	unsigned char *bufs[DMA_MAX_THREADS];
};

static int measure(const struct bench_opts *o, struct dma_env *env,
		   const struct dma_ws *ws, bool write, size_t burst,
		   unsigned int nthreads)
{
	double *v = calloc((size_t)o->runs * 3, sizeof(double));
	double *base = v + o->runs, *pages = v + 2 * o->runs;
	double share, lshare = 1, hit_rate;
	struct iom_iommu_stats s0, s1;
	struct bench_stat sv, sb, sp;
	bool hit = ws->pages == DMA_HIT_PAGES;
	char metric[64], note[320], bname[160];
	uint64_t lookups;
	int r;

	if (!v) {
		bench_error("out of memory");
		return -1;
	}
	snprintf(metric, sizeof(metric), "%s_%zuk_%s_%ut", write ? "write" : "read",
		 burst >> 10, ws->name, nthreads);
	memset(&s0, 0, sizeof(s0));
	memset(&s1, 0, sizeof(s1));
	for (r = 0; r < o->runs; r++) {
		struct iom_iommu_stats a, b;

		bench_progress(o, "dma %s: run %d/%d", metric, r + 1, o->runs);
		iom_iommu_get_stats(env->iommu, &a);
		v[r] = dma_run(o, env->dev, ws, write, KIND_LIB, burst, nthreads,
			       env->bufs, &share);
		iom_iommu_get_stats(env->iommu, &b);
		if (v[r] < 0)
			goto fail;
		if (share < lshare)
			lshare = share;
		/* the runs' counters, warm-up passes included */
		s1.iotlb_hits += b.iotlb_hits - a.iotlb_hits;
		s1.iotlb_misses += b.iotlb_misses - a.iotlb_misses;
		s1.walks += b.walks - a.walks;
		s1.iotlb_evictions += b.iotlb_evictions - a.iotlb_evictions;
		if (o->baseline) {
			base[r] = dma_run(o, env->dev, ws, write, KIND_MEMCPY,
					  burst, nthreads, env->bufs, &share);
			pages[r] = dma_run(o, env->dev, ws, write, KIND_PAGES,
					   burst, nthreads, env->bufs, &share);
			if (base[r] < 0 || pages[r] < 0)
				goto fail;
		}
	}
	bench_stat_compute(v, o->runs, &sv);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &sb);
	bench_stat_compute(pages, o->baseline ? o->runs : 0, &sp);
	lookups = s1.iotlb_hits + s1.iotlb_misses;
	hit_rate = lookups ? (double)s1.iotlb_hits / (double)lookups : 0;
	snprintf(note, sizeof(note),
		 "iom_device_dma_%s of %zu KiB bursts through %lu 4 KiB "
		 "mappings (%lu MiB); IOTLB hit rate %.4f (%llu lookups, %.3g "
		 "walks and %.3g evictions a burst, warm-up passes included)%s",
		 write ? "write" : "read", burst >> 10, ws->pages,
		 ws->pages * PG >> 20, hit_rate, (unsigned long long)lookups,
		 (double)s1.walks / ((double)lookups / (double)(burst / PG)),
		 (double)s1.iotlb_evictions / ((double)lookups / (double)(burst / PG)),
		 nthreads > 1 ? "; aggregate of all threads, one device" : "");
	snprintf(bname, sizeof(bname),
		 "libc memcpy of the same bursts, %s a %lu MiB host buffer",
		 write ? "into" : "out of", ws->pages * PG >> 20);
	bench_report(o, &(struct bench_result){
		.bench = "dma", .metric = metric, .unit = "GB/s", .value = sv,
		.baseline = o->baseline ? &sb : NULL, .baseline_name = bname,
		.goal = o->baseline && hit ? "ratio>=0.8" : NULL,
		.goal_met = sb.median > 0 && sv.median >= 0.8 * sb.median,
		.note = note, .cpu_share = lshare,
	});
	if (o->baseline) {
		char m2[96];

		snprintf(m2, sizeof(m2), "%s_vs_page_memcpy", metric);
		snprintf(bname, sizeof(bname),
			 "libc memcpy 4 KiB at a time %s the same simulated "
			 "pages, same bursts", write ? "into" : "out of");
		bench_report(o, &(struct bench_result){
			.bench = "dma", .metric = m2, .unit = "GB/s", .value = sv,
			.baseline = &sp, .baseline_name = bname,
			.note = "what translation costs beyond the copy the "
				"library must make: one memcpy per 4 KiB leaf",
			.cpu_share = lshare,
		});
	}
	strncat(metric, "_iotlb_hit_rate", sizeof(metric) - strlen(metric) - 1);
	bench_report_value(o, "dma", metric, hit_rate, "fraction",
			   "iotlb_hits / (hits + misses) over the library's runs");
	free(v);
	return 0;
fail:
	free(v);
	return -1;
}

static int setup_ws(struct dma_env *env, struct dma_ws *ws, const char *name,
		    unsigned long pages, unsigned long iova)
{
	unsigned long i;
	int err;

	ws->name = name;
	ws->pages = pages;
	ws->iova = iova;
	ws->page = calloc(pages, sizeof(*ws->page));
	ws->addr = calloc(pages, sizeof(*ws->addr));
	ws->host = aligned_alloc(4096, pages * PG);
	if (!ws->page || !ws->addr || !ws->host)
		return -ENOMEM;
	memset(ws->host, 0x5a, pages * PG);
	for (i = 0; i < pages; i++) {
		ws->page[i] = iom_alloc_pages(env->m, IOM_GFP_KERNEL, 0);
		if (!ws->page[i])
			return -ENOMEM;
		ws->addr[i] = iom_page_address(env->m, ws->page[i]);
		memset(ws->addr[i], 0x5a, PG);
		err = iom_iommu_map(env->d, iova + i * PG,
				    iom_page_to_phys(env->m, ws->page[i]), PG,
				    IOM_IOMMU_READ | IOM_IOMMU_WRITE);
		if (err)
			return err;
	}
	return 0;
}

/* Bytes written by the device land in the right pages, and read back. */
static int check_ws(struct dma_env *env, const struct dma_ws *ws)
{
	unsigned char *buf = env->bufs[0];
	unsigned long i, idx[3] = { 0, ws->pages / 2, ws->pages - 1 };

	for (i = 0; i < 3; i++) {
		unsigned char *pa = iom_page_address(env->m, ws->page[idx[i]]);

		memset(buf, (int)(0x10 + i), PG);
		if (iom_device_dma_write(env->dev, ws->iova + idx[i] * PG, buf, PG) ||
		    pa[0] != 0x10 + i || pa[PG - 1] != 0x10 + i)
			return -EIO;
		memset(buf, 0, PG);
		if (iom_device_dma_read(env->dev, ws->iova + idx[i] * PG, buf, PG) ||
		    buf[0] != 0x10 + i || buf[PG - 1] != 0x10 + i)
			return -EIO;
	}
	return 0;
}

int bench_dma(const struct bench_opts *o_in)
{
	static const size_t bursts[] = { 4096, 65536 };
	struct bench_opts opts = *o_in, *o = &opts;
	struct iom_machine_config cfg;
	struct bench_arena *arena = NULL;
	struct dma_env env = { 0 };
	struct iom_device_stats ds;
	unsigned int nthreads, t, i, wi, di, bi;
	int err, ret = 1;

	if (!o->mem)
		o->mem = DMA_DEFAULT_MEM;
	if (!o->iters)
		o->iters = DMA_DEFAULT_BYTES;
	nthreads = o->threads ? o->threads : DMA_DEFAULT_THREADS;
	if (nthreads > DMA_MAX_THREADS) {
		bench_error("at most %d threads", DMA_MAX_THREADS);
		return 1;
	}
	if (o->mem < (DMA_HIT_PAGES + DMA_MISS_PAGES) * PG + (64ULL << 20)) {
		bench_error("--mem must hold the %lu MiB of the working sets "
			    "and 64 MiB more", (DMA_HIT_PAGES + DMA_MISS_PAGES) * PG >> 20);
		return 1;
	}
	err = bench_arena_create(&arena);
	if (err) {
		bench_error("cannot create the metadata arena: %s", strerror(-err));
		return 1;
	}
	iom_machine_config_init(&cfg);
	cfg.mem_size = o->mem;
	bench_arena_mem_ops(arena, &cfg.mem_ops);
	err = iom_machine_create(&cfg, &env.m);
	if (!err)
		err = iom_iommu_create(env.m, NULL, &env.iommu);
	if (err) {
		bench_error("machine/iommu: %s", strerror(-err));
		goto out;
	}
	env.d = iom_iommu_domain_alloc(env.iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	if (!env.d) {
		bench_error("iom_iommu_domain_alloc: %s", strerror(errno));
		goto out;
	}
	err = iom_device_create(env.iommu, "dma-bench", &env.dev);
	if (!err)
		err = iom_iommu_attach_device(env.d, env.dev);
	for (i = 0; !err && i < nthreads; i++) {
		env.bufs[i] = aligned_alloc(4096, DMA_MAX_BURST);
		if (!env.bufs[i])
			err = -ENOMEM;
		else
			memset(env.bufs[i], 0xa5, DMA_MAX_BURST);
	}
	if (!err)
		err = setup_ws(&env, &env.ws[0], "hit", DMA_HIT_PAGES, DMA_HIT_IOVA);
	if (!err)
		err = setup_ws(&env, &env.ws[1], "miss", DMA_MISS_PAGES, DMA_MISS_IOVA);
	if (!err && (check_ws(&env, &env.ws[0]) || check_ws(&env, &env.ws[1]))) {
		bench_error("a device write or read did not reach the right page");
		err = -EIO;
	}
	if (err) {
		bench_error("setup: %s", strerror(-err));
		goto out;
	}
	bench_report_host(o);
	for (wi = 0; wi < 2; wi++)
		for (bi = 0; bi < 2; bi++)
			for (di = 0; di < 2; di++)
				for (t = 1; t <= nthreads;
				     t = t == 1 && nthreads > 1 ? nthreads : nthreads + 1) {
					char name[64];

					snprintf(name, sizeof(name), "%s_%zuk_%s_%ut",
						 di ? "write" : "read", bursts[bi] >> 10,
						 env.ws[wi].name, t);
					if (o->only && !strstr(name, o->only))
						continue;
					if (measure(o, &env, &env.ws[wi], di, bursts[bi], t))
						goto out;
				}
	iom_device_get_stats(env.dev, &ds);
	if (ds.failed || ds.faults || iom_machine_bug_count(env.m)) {
		bench_error("%llu DMA transactions failed, %llu faults, %lu machine bugs",
			    (unsigned long long)ds.failed,
			    (unsigned long long)ds.faults, iom_machine_bug_count(env.m));
		goto out;
	}
	ret = 0;
out:
	if (env.d && env.dev)
		iom_iommu_detach_device(env.d, env.dev);
	iom_device_destroy(env.dev);
	iom_iommu_domain_free(env.d);	/* its tables and IOTLB entries */
	if (env.iommu && iom_iommu_destroy(env.iommu))
		bench_error("iom_iommu_destroy: busy");
	for (wi = 0; wi < 2; wi++) {
		struct dma_ws *ws = &env.ws[wi];

		for (unsigned long p = 0; ws->page && p < ws->pages && ws->page[p]; p++)
			iom___free_pages(env.m, ws->page[p], 0);
		free(ws->page);
		free(ws->addr);
		free(ws->host);
	}
	for (i = 0; i < DMA_MAX_THREADS; i++)
		free(env.bufs[i]);
	iom_rcu_barrier();
	iom_machine_destroy(env.m);
	bench_arena_destroy(arena);
	return ret;
}
