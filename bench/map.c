/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench map - the kernel's dma_map_benchmark (kernel/dma/
 * map_benchmark.c and tools/testing/selftests/dma/dma_map_benchmark.c)
 * over the simulated dma-iommu layer: threads that map and unmap a buffer
 * of --granule pages again and again through iom_iommu_dma_map() /
 * iom_iommu_dma_unmap() (__iommu_dma_map / __iommu_dma_unmap: IOVA
 * allocation, io-pgtable map, unmap, IOTLB invalidation), on a DMA
 * (strict: every unmap invalidates and waits for the completion) and a
 * DMA_FQ (lazy: the IOVA waits in the flush queue) domain, with a device
 * attached to each, as the benchmark's device is.
 *
 * As the kernel's thread: the buffer is alloc_pages_exact() of granule
 * pages (here the buddy allocator's order-ceil(log2 granule) block, so a
 * 512-page buffer is 2 MiB-aligned), stained with memset(0x66) before
 * each map unless the direction is FROM_DEVICE (not timed), and the map
 * and the unmap are timed apart, each between two clock reads; mean and
 * standard deviation over every loop of every thread, printed in the
 * tool's own text format (in microseconds) besides the report (in ns).
 * The kernel accumulates in units of 100 ns; this counts nanoseconds.
 * --dir maps the direction to prot as dma_info_to_prot() does:
 * BIDIRECTIONAL -> READ|WRITE, TO_DEVICE -> READ, FROM_DEVICE -> WRITE
 * (plus IOMMU_CACHE: a coherent device). dma mask: 32 bits (the tool's
 * default), so IOVAs come from below 4 GiB, top-down.
 *
 * Besides the latencies, each case times map+unmap pairs in a tight loop
 * (no clock reads per operation, no memset) against libc memcpy() of the
 * same bytes between two host buffers that stay cache-resident, in the
 * same run; and one case compares one 2 MiB unmap (a block entry) with
 * 512 separate 4 KiB unmaps of the same memory.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAP_DEFAULT_MEM		(256ULL << 20)
#define MAP_DEFAULT_SECONDS	1	/* per case, all runs together */
#define MAP_MAX_THREADS		64
#define MAP_MAX_GRANULE		1024	/* the kernel's limit */
#define MAP_TIGHT_NS		60000000ULL	/* a tight-loop run: 60 ms */
#define MAP_DMA_MASK		0xffffffffULL	/* DMA_BIT_MASK(32) */
#define MAP_BLOCK_REPS		64	/* 2 MiB vs 512 x 4 KiB: reps a run */
#define PG			IOM_PAGE_SIZE
#define SZ_2M			(2UL << 20)

static const char *const map_dir_names[] = {
	"BIDIRECTIONAL", "TO_DEVICE", "FROM_DEVICE",
};

enum map_kind { KIND_TIMED, KIND_TIGHT, KIND_MEMCPY };

struct map_mode {
	const char *name;		/* "strict", "lazy" */
	struct iom_iommu_domain *d;
	struct iom_device *dev;
};

struct map_worker {
	pthread_t tid;
	enum map_kind kind;
	struct iom_iommu_domain *d;
	unsigned int idx;
	bool pin;
	pthread_barrier_t *start;
	uint64_t paddr;		/* the buffer: granule pages of the machine */
	void *vaddr;
	size_t size;
	int prot, dir;
	unsigned char *src, *dst;	/* memcpy baseline */
	uint64_t duration;
	/* results */
	uint64_t loops, warm, t0, t1, cpu;
	double sum_map, sq_map, sum_unmap, sq_unmap;
	char err[160];
};

static int map_prot(int dir)
{
	switch (dir) {
	case 1:
		return IOM_IOMMU_READ | IOM_IOMMU_CACHE;
	case 2:
		return IOM_IOMMU_WRITE | IOM_IOMMU_CACHE;
	default:
		return IOM_IOMMU_READ | IOM_IOMMU_WRITE | IOM_IOMMU_CACHE;
	}
}

static unsigned int order_for(unsigned int pages)
{
	unsigned int order = 0;

	while ((1U << order) < pages)
		order++;
	return order;
}

static void timed_loop(struct map_worker *w)
{
	uint64_t end = bench_now_ns() + w->duration;

	for (;;) {
		uint64_t t0, t1, t2, t3;
		unsigned long iova;
		double dm, du;
		int err;

		if (w->dir != 2)
			memset(w->vaddr, 0x66, w->size);
		t0 = bench_now_ns();
		err = iom_iommu_dma_map(w->d, w->paddr, w->size, w->prot,
					MAP_DMA_MASK, &iova);
		t1 = bench_now_ns();
		if (err) {
			snprintf(w->err, sizeof(w->err), "iom_iommu_dma_map: %s",
				 strerror(-err));
			return;
		}
		t2 = bench_now_ns();
		err = iom_iommu_dma_unmap(w->d, iova, w->size);
		t3 = bench_now_ns();
		if (err) {
			snprintf(w->err, sizeof(w->err), "iom_iommu_dma_unmap: %s",
				 strerror(-err));
			return;
		}
		dm = (double)(t1 - t0);
		du = (double)(t3 - t2);
		w->sum_map += dm;
		w->sq_map += dm * dm;
		w->sum_unmap += du;
		w->sq_unmap += du * du;
		w->loops++;
		if (t3 >= end)
			break;
	}
}

static void tight_loop(struct map_worker *w, uint64_t end)
{
	do {
		for (int k = 0; k < 32; k++) {
			unsigned long iova;

			if (iom_iommu_dma_map(w->d, w->paddr, w->size, w->prot,
					      MAP_DMA_MASK, &iova) ||
			    iom_iommu_dma_unmap(w->d, iova, w->size)) {
				snprintf(w->err, sizeof(w->err),
					 "iom_iommu_dma_map/unmap failed");
				return;
			}
		}
		w->loops += 32;
	} while (bench_now_ns() < end);
}

static void memcpy_loop(struct map_worker *w, uint64_t end)
{
	/* a size the compiler cannot see: libc's memcpy, as the library's */
	size_t size = *(volatile size_t *)&w->size;

	do {
		for (int k = 0; k < 32; k++) {
			memcpy(w->dst, w->src, size);
			bench_sink(w->dst);
		}
		w->loops += 32;
	} while (bench_now_ns() < end);
}

static void *map_worker_fn(void *arg)
{
	struct map_worker *w = arg;
	uint64_t c0;

	if (w->pin)
		bench_pin_self(w->idx);
	/* warm-up, not timed: the thread's IOVA caches and slots, the copy */
	if (w->kind == KIND_MEMCPY) {
		memcpy_loop(w, 0);
	} else {
		tight_loop(w, 0);
	}
	w->warm = w->loops;
	w->loops = 0;
	pthread_barrier_wait(w->start);
	if (w->err[0])
		return NULL;
	c0 = bench_thread_cpu_ns();
	w->t0 = bench_now_ns();
	if (w->kind == KIND_TIMED)
		timed_loop(w);
	else if (w->kind == KIND_TIGHT)
		tight_loop(w, w->t0 + w->duration);
	else
		memcpy_loop(w, w->t0 + w->duration);
	w->t1 = bench_now_ns();
	w->cpu = bench_thread_cpu_ns() - c0;
	return NULL;
}

/* The buffers of the threads: granule pages of the machine each. */
struct map_bufs {
	struct iom_page *pages[MAP_MAX_THREADS];
	unsigned char *src[MAP_MAX_THREADS], *dst[MAP_MAX_THREADS];
	unsigned int order, nthreads;
};

struct map_sums {
	uint64_t loops;
	uint64_t pairs;		/* warm-up included: what the counters saw */
	double sum_map, sq_map, sum_unmap, sq_unmap;
};

/*
 * One run of @kind by @nthreads threads. Return: ns per loop (pair or
 * copy; wall time of all threads / all loops), or < 0 after an error.
 * KIND_TIMED adds its sums to @sums and its per-run means to *@run.
 */
static double map_run(const struct bench_opts *o, struct iom_machine *m,
		      struct iom_iommu_domain *d, const struct map_bufs *b,
		      size_t size, enum map_kind kind, uint64_t duration,
		      unsigned int nthreads, struct map_sums *sums, double *share)
{
	struct map_worker w[MAP_MAX_THREADS];
	struct bench_span span = BENCH_SPAN_INIT;
	pthread_barrier_t start;
	unsigned int i;
	double ret = 0;

	if (pthread_barrier_init(&start, NULL, nthreads)) {
		bench_error("pthread_barrier_init failed");
		return -1;
	}
	memset(w, 0, sizeof(w[0]) * nthreads);
	for (i = 0; i < nthreads; i++) {
		w[i] = (struct map_worker){
			.kind = kind, .d = d, .idx = i, .pin = o->pin,
			.start = &start,
			.paddr = iom_page_to_phys(m, b->pages[i]),
			.vaddr = iom_page_address(m, b->pages[i]),
			.size = size, .prot = map_prot(o->dir), .dir = o->dir,
			.src = b->src[i], .dst = b->dst[i],
			.duration = duration,
		};
		bench_thread_create(&w[i].tid, map_worker_fn, &w[i]);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(w[i].tid, NULL);
	for (i = 0; i < nthreads; i++) {
		if (w[i].err[0]) {
			bench_error("map, thread %u: %s", i, w[i].err);
			ret = -1;
		}
		bench_span_add(&span, w[i].t0, w[i].t1, w[i].loops, w[i].cpu);
		if (sums) {
			sums->loops += w[i].loops;
			sums->pairs += w[i].loops + w[i].warm;
			sums->sum_map += w[i].sum_map;
			sums->sq_map += w[i].sq_map;
			sums->sum_unmap += w[i].sum_unmap;
			sums->sq_unmap += w[i].sq_unmap;
		}
	}
	pthread_barrier_destroy(&start);
	if (ret < 0 || !span.ops)
		return -1;
	return bench_span_ns_per_op(&span, nthreads, share);
}

static double mean_of(double sum, uint64_t n)
{
	return n ? sum / (double)n : 0;
}

static double stddev_of(double sum, double sq, uint64_t n)
{
	double mean, var;

	if (!n)
		return 0;
	mean = sum / (double)n;
	var = sq / (double)n - mean * mean;
	return var > 0 ? sqrt(var) : 0;
}

/* Median of back-to-back clock reads: what each timed latency includes. */
static double clock_overhead_ns(void)
{
	double s[101];
	struct bench_stat st;

	for (int i = 0; i < 101; i++) {
		uint64_t a = bench_now_ns(), c = bench_now_ns();

		s[i] = (double)(c - a);
	}
	bench_stat_compute(s, 101, &st);
	return st.median;
}

/* Is @size at @iova mapped by blocks of 2 MiB? Maps and unmaps once. */
static int check_blocks(struct iom_iommu_domain *d, uint64_t paddr,
			size_t size, int prot)
{
	struct iom_io_pgtable_walk_data wd;
	unsigned long iova;
	int err, level = -1;

	err = iom_iommu_dma_map(d, paddr, size, prot, MAP_DMA_MASK, &iova);
	if (err)
		return err;
	if (!iom_io_pgtable_walk(iom_iommu_domain_pgtable(d), iova, &wd))
		level = wd.level;
	err = iom_iommu_dma_unmap(d, iova, size);
	if (err)
		return err;
	if (level != 2 || (iova & (SZ_2M - 1)) || (paddr & (SZ_2M - 1))) {
		bench_error("a %zu-byte map at iova %#lx, paddr %#llx is not "
			    "made of 2 MiB blocks (leaf level %d)", size, iova,
			    (unsigned long long)paddr, level);
		return -EINVAL;
	}
	return 0;
}

/* @acc += what changed from @a to @b. */
static void stats_add(struct iom_iommu_stats *acc, const struct iom_iommu_stats *a,
		      const struct iom_iommu_stats *b)
{
	acc->fq_queued += b->fq_queued - a->fq_queued;
	acc->fq_flushes += b->fq_flushes - a->fq_flushes;
	acc->fq_timeouts += b->fq_timeouts - a->fq_timeouts;
	acc->stale_hits += b->stale_hits - a->stale_hits;
	acc->stale_freed_hits += b->stale_freed_hits - a->stale_freed_hits;
	acc->inv_syncs += b->inv_syncs - a->inv_syncs;
	acc->inv_page += b->inv_page - a->inv_page;
	acc->inv_range += b->inv_range - a->inv_range;
	acc->inv_domain += b->inv_domain - a->inv_domain;
}

struct map_env {
	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct map_mode modes[2];
	double clock_ns;
};

static int measure_case(const struct bench_opts *o, struct map_env *env,
			struct map_mode *mode, unsigned int granule,
			unsigned int nthreads)
{
	size_t size = (size_t)granule * PG;
	uint64_t timed_ns = (uint64_t)o->seconds * 1000000000ULL / (uint64_t)o->runs;
	double *v = calloc((size_t)o->runs * 6, sizeof(double));
	double *mapm = v, *maps = v + o->runs, *unm = v + 2 * o->runs;
	double *uns = v + 3 * o->runs, *pair = v + 4 * o->runs;
	double *base = v + 5 * o->runs;
	struct map_sums all = { 0 };
	struct iom_iommu_stats st0;
	struct map_bufs b = { .nthreads = nthreads };
	struct bench_stat s_mapm, s_maps, s_unm, s_uns, s_pair, s_base;
	bool strict = !strcmp(mode->name, "strict");
	char name[64], metric[96], note[400], bname[160];
	double share, tshare = 1, pshare = 1;
	unsigned int i;
	int r, ret = -1;

	if (!v) {
		bench_error("out of memory");
		return -1;
	}
	b.order = order_for(granule);
	for (i = 0; i < nthreads; i++) {
		b.pages[i] = iom_alloc_pages(env->m, IOM_GFP_KERNEL, b.order);
		b.src[i] = aligned_alloc(64, size);
		b.dst[i] = aligned_alloc(64, size);
		if (!b.pages[i] || !b.src[i] || !b.dst[i]) {
			bench_error("cannot allocate the %zu-byte buffers", size);
			goto out;
		}
		memset(iom_page_address(env->m, b.pages[i]), 0x66, size);
		memset(b.src[i], 1, size);
		memset(b.dst[i], 2, size);
	}
	if (granule % 512 == 0 &&
	    check_blocks(mode->d, iom_page_to_phys(env->m, b.pages[0]), size,
			 map_prot(o->dir)))
		goto out;
	snprintf(name, sizeof(name), "%s_g%u_%ut", mode->name, granule, nthreads);
	memset(&st0, 0, sizeof(st0));
	for (r = 0; r < o->runs; r++) {
		struct map_sums one = { 0 };
		struct iom_iommu_stats a, z;

		bench_progress(o, "map %s: run %d/%d", name, r + 1, o->runs);
		if (!strict)	/* the queue starts empty: runs alike */
			iom_iommu_dma_flush_queue(mode->d);
		iom_iommu_get_stats(env->iommu, &a);
		if (map_run(o, env->m, mode->d, &b, size, KIND_TIMED, timed_ns,
			    nthreads, &one, &share) < 0)
			goto out;
		iom_iommu_get_stats(env->iommu, &z);
		stats_add(&st0, &a, &z);
		if (share < tshare)
			tshare = share;
		mapm[r] = mean_of(one.sum_map, one.loops);
		maps[r] = stddev_of(one.sum_map, one.sq_map, one.loops);
		unm[r] = mean_of(one.sum_unmap, one.loops);
		uns[r] = stddev_of(one.sum_unmap, one.sq_unmap, one.loops);
		all.loops += one.loops;
		all.pairs += one.pairs;
		all.sum_map += one.sum_map;
		all.sq_map += one.sq_map;
		all.sum_unmap += one.sum_unmap;
		all.sq_unmap += one.sq_unmap;
		pair[r] = map_run(o, env->m, mode->d, &b, size, KIND_TIGHT,
				  MAP_TIGHT_NS, nthreads, NULL, &share);
		if (pair[r] < 0)
			goto out;
		if (share < pshare)
			pshare = share;
		if (o->baseline) {
			base[r] = map_run(o, env->m, mode->d, &b, size, KIND_MEMCPY,
					  MAP_TIGHT_NS, nthreads, NULL, &share);
			if (base[r] < 0)
				goto out;
		}
	}
	if (!strict)
		iom_iommu_dma_flush_queue(mode->d);

	if (!o->json) {
		/* the tool's own output, over every loop of every run */
		printf("dma mapping benchmark: threads:%u seconds:%u node:%d dir:%s granule: %u\n",
		       nthreads, o->seconds, -1, map_dir_names[o->dir], granule);
		printf("average map latency(us):%.1f standard deviation:%.1f\n",
		       mean_of(all.sum_map, all.loops) / 1000.0,
		       stddev_of(all.sum_map, all.sq_map, all.loops) / 1000.0);
		printf("average unmap latency(us):%.1f standard deviation:%.1f\n",
		       mean_of(all.sum_unmap, all.loops) / 1000.0,
		       stddev_of(all.sum_unmap, all.sq_unmap, all.loops) / 1000.0);
	}
	bench_stat_compute(mapm, o->runs, &s_mapm);
	bench_stat_compute(maps, o->runs, &s_maps);
	bench_stat_compute(unm, o->runs, &s_unm);
	bench_stat_compute(uns, o->runs, &s_uns);
	bench_stat_compute(pair, o->runs, &s_pair);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &s_base);

	snprintf(note, sizeof(note),
		 "iom_iommu_dma_map, %s domain, dir %s, %zu bytes; mean over "
		 "%llu loops of %u thread(s), each timed between two clock "
		 "reads (~%.0f ns of it is the clock)",
		 strict ? "DMA (strict)" : "DMA_FQ (lazy)", map_dir_names[o->dir],
		 size, (unsigned long long)all.loops, nthreads, env->clock_ns);
	snprintf(metric, sizeof(metric), "%s_map_ns", name);
	bench_report(o, &(struct bench_result){
		.bench = "map", .metric = metric, .unit = "ns", .value = s_mapm,
		.note = note, .cpu_share = tshare,
	});
	snprintf(metric, sizeof(metric), "%s_map_stddev_ns", name);
	bench_report(o, &(struct bench_result){
		.bench = "map", .metric = metric, .unit = "ns", .value = s_maps,
		.cpu_share = tshare,
	});
	if (strict)
		snprintf(note, sizeof(note),
			 "iom_iommu_dma_unmap, strict: clear, invalidate the "
			 "range, wait for in-flight DMA, free the IOVA; %.3g "
			 "completion waits and %.3g range/page invalidations an unmap",
			 (double)st0.inv_syncs / (double)all.pairs,
			 (double)(st0.inv_page + st0.inv_range) / (double)all.pairs);
	else
		snprintf(note, sizeof(note),
			 "iom_iommu_dma_unmap, lazy: clear, queue the IOVA (a "
			 "full queue flushes first); over the timed runs: %llu "
			 "IOVAs queued, %llu flush-queue flushes (%llu by the "
			 "10 ms timeout), 1 flush per %.0f unmaps; stale IOTLB "
			 "hits %llu (freed %llu): no device DMA runs in this "
			 "benchmark",
			 (unsigned long long)st0.fq_queued,
			 (unsigned long long)st0.fq_flushes,
			 (unsigned long long)st0.fq_timeouts,
			 st0.fq_flushes ? (double)st0.fq_queued / (double)st0.fq_flushes : 0,
			 (unsigned long long)st0.stale_hits,
			 (unsigned long long)st0.stale_freed_hits);
	snprintf(metric, sizeof(metric), "%s_unmap_ns", name);
	bench_report(o, &(struct bench_result){
		.bench = "map", .metric = metric, .unit = "ns", .value = s_unm,
		.note = note, .cpu_share = tshare,
	});
	snprintf(metric, sizeof(metric), "%s_unmap_stddev_ns", name);
	bench_report(o, &(struct bench_result){
		.bench = "map", .metric = metric, .unit = "ns", .value = s_uns,
		.cpu_share = tshare,
	});
	if (!strict) {
		snprintf(metric, sizeof(metric), "%s_fq_flushes_per_1k_unmaps", name);
		bench_report_value(o, "map", metric,
				   st0.fq_queued ? 1000.0 * (double)st0.fq_flushes /
						   (double)st0.fq_queued : 0,
				   "flushes", "domain-wide invalidations of the flush queue");
		snprintf(metric, sizeof(metric), "%s_stale_hits", name);
		bench_report_value(o, "map", metric, (double)st0.stale_hits, "hits",
				   "device hits on unmapped IOTLB entries; no "
				   "device DMA in this benchmark");
	}
	snprintf(bname, sizeof(bname),
		 "libc memcpy of %zu bytes between two cache-resident host "
		 "buffers, same loop", size);
	snprintf(note, sizeof(note),
		 "map+unmap pairs in a tight loop (no clock read or memset "
		 "per pair)%s%s", strict ? ", strict: with invalidation and "
		 "completion wait" : ", lazy: unmap queues the IOVA",
		 nthreads > 1 ? "; aggregate: wall time / all pairs" : "");
	snprintf(metric, sizeof(metric), "%s_pair_ns", name);
	bench_report(o, &(struct bench_result){
		.bench = "map", .metric = metric, .unit = "ns/pair",
		.value = s_pair, .baseline = o->baseline ? &s_base : NULL,
		.baseline_name = bname,
		.goal = o->baseline && strict && granule == 1 && nthreads == 1 ?
			"ratio<=1.0" : NULL,
		.goal_met = s_base.median > 0 && s_pair.median <= s_base.median,
		.note = note, .cpu_share = pshare,
	});
	ret = 0;
out:
	for (i = 0; i < nthreads; i++) {
		if (b.pages[i])
			iom___free_pages(env->m, b.pages[i], b.order);
		free(b.src[i]);
		free(b.dst[i]);
	}
	free(v);
	return ret;
}

/*
 * Goal (b): one 2 MiB unmap (a block entry) against 512 unmaps of 4 KiB
 * mappings of the same memory, each mapped with its own
 * iom_iommu_dma_map() (how a driver maps 512 pages one by one).
 */
static int measure_block(const struct bench_opts *o, struct map_env *env,
			 struct map_mode *mode)
{
	double *v = calloc((size_t)o->runs * 4, sizeof(double));
	double *blk = v, *small = v + o->runs, *blk_map = v + 2 * o->runs;
	double *small_map = v + 3 * o->runs;
	unsigned long *iovas = calloc(512, sizeof(*iovas));
	struct iom_page *page = iom_alloc_pages(env->m, IOM_GFP_KERNEL, 9);
	struct bench_stat s_blk, s_small, s_bmap, s_smap;
	bool strict = !strcmp(mode->name, "strict");
	int prot = map_prot(o->dir), r, ret = -1;
	char metric[64], note[400];
	uint64_t paddr;

	if (!v || !iovas || !page) {
		bench_error("out of memory");
		goto out;
	}
	paddr = iom_page_to_phys(env->m, page);
	if (check_blocks(mode->d, paddr, SZ_2M, prot))
		goto out;
	for (r = -1; r < o->runs; r++) {	/* run -1: warm-up */
		uint64_t tb = 0, ts = 0, tbm = 0, tsm = 0;

		if (r >= 0)
			bench_progress(o, "map %s_unmap_2m_block: run %d/%d",
				       mode->name, r + 1, o->runs);
		for (int k = 0; k < MAP_BLOCK_REPS; k++) {
			unsigned long iova;
			uint64_t t0, t1, t2;

			t0 = bench_now_ns();
			if (iom_iommu_dma_map(mode->d, paddr, SZ_2M, prot,
					      MAP_DMA_MASK, &iova))
				goto fail;
			t1 = bench_now_ns();
			if (iom_iommu_dma_unmap(mode->d, iova, SZ_2M))
				goto fail;
			t2 = bench_now_ns();
			tbm += t1 - t0;
			tb += t2 - t1;

			t0 = bench_now_ns();
			for (int i = 0; i < 512; i++)
				if (iom_iommu_dma_map(mode->d, paddr + (uint64_t)i * PG,
						      PG, prot, MAP_DMA_MASK,
						      &iovas[i]))
					goto fail;
			t1 = bench_now_ns();
			for (int i = 0; i < 512; i++)
				if (iom_iommu_dma_unmap(mode->d, iovas[i], PG))
					goto fail;
			t2 = bench_now_ns();
			tsm += t1 - t0;
			ts += t2 - t1;
		}
		if (r < 0)
			continue;
		blk[r] = (double)tb / MAP_BLOCK_REPS;
		small[r] = (double)ts / MAP_BLOCK_REPS;
		blk_map[r] = (double)tbm / MAP_BLOCK_REPS;
		small_map[r] = (double)tsm / MAP_BLOCK_REPS;
	}
	if (!strict)
		iom_iommu_dma_flush_queue(mode->d);
	bench_stat_compute(blk, o->runs, &s_blk);
	bench_stat_compute(small, o->runs, &s_small);
	bench_stat_compute(blk_map, o->runs, &s_bmap);
	bench_stat_compute(small_map, o->runs, &s_smap);
	snprintf(metric, sizeof(metric), "%s_unmap_2m_block", mode->name);
	snprintf(note, sizeof(note),
		 "one iom_iommu_dma_unmap of a 2 MiB block (paddr and IOVA "
		 "2 MiB-aligned, leaf checked at level 2), %s; baseline: 512 "
		 "dma_unmap calls of 4 KiB mappings of the same memory, "
		 "timed together; maps: 2 MiB %.0f ns, 512 x 4 KiB %.0f ns",
		 strict ? "strict" : "lazy (queued)", s_bmap.median, s_smap.median);
	bench_report(o, &(struct bench_result){
		.bench = "map", .metric = metric, .unit = "ns",
		.value = s_blk, .baseline = &s_small,
		.baseline_name = "512 separate 4 KiB iom_iommu_dma_unmap, same run",
		.goal = strict ? "ratio<1.0" : NULL,
		.goal_met = s_blk.median < s_small.median,
		.note = note, .cpu_share = 0,
	});
	ret = 0;
	goto out;
fail:
	bench_error("map: 2 MiB / 4 KiB map or unmap failed");
out:
	if (page)
		iom___free_pages(env->m, page, 9);
	free(iovas);
	free(v);
	return ret;
}

static bool case_selected(const struct bench_opts *o, const char *name)
{
	return !o->only || strstr(name, o->only);
}

int bench_map(const struct bench_opts *o_in)
{
	struct bench_opts opts = *o_in, *o = &opts;
	static const unsigned int default_granules[] = { 1, 512 };
	const unsigned int *granules = default_granules;
	unsigned int nr_granules = 2, nthreads, t, gi, mi;
	struct iom_machine_config cfg;
	struct bench_arena *arena = NULL;
	struct map_env env = { 0 };
	int err, ret = 1;

	if (!o->mem)
		o->mem = MAP_DEFAULT_MEM;
	if (!o->seconds)
		o->seconds = MAP_DEFAULT_SECONDS;
	if (o->granule) {
		granules = &o->granule;
		nr_granules = 1;
	}
	nthreads = o->threads ? o->threads : 1;
	if (nthreads > MAP_MAX_THREADS || o->granule > MAP_MAX_GRANULE ||
	    o->dir < 0 || o->dir > 2) {
		bench_error("at most %d threads, a granule of 1..%d pages",
			    MAP_MAX_THREADS, MAP_MAX_GRANULE);
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
	env.modes[0].name = "strict";
	env.modes[1].name = "lazy";
	for (mi = 0; mi < 2; mi++) {
		struct map_mode *md = &env.modes[mi];

		md->d = iom_iommu_domain_alloc(env.iommu, mi ? IOM_IOMMU_DOMAIN_DMA_FQ :
					       IOM_IOMMU_DOMAIN_DMA);
		if (!md->d) {
			bench_error("iom_iommu_domain_alloc: %s", strerror(errno));
			goto out;
		}
		err = iom_iommu_dma_init_domain(md->d, 0, 1ULL << 48);
		if (!err)
			err = iom_device_create(env.iommu, mi ? "dma_map_benchmark.1" :
						"dma_map_benchmark.0", &md->dev);
		if (!err)
			err = iom_iommu_attach_device(md->d, md->dev);
		if (err) {
			bench_error("domain/device setup: %s", strerror(-err));
			goto out;
		}
	}
	env.clock_ns = clock_overhead_ns();
	bench_report_host(o);
	for (mi = 0; mi < 2; mi++) {
		for (gi = 0; gi < nr_granules; gi++) {
			for (t = 1; t <= nthreads;
			     t = t == 1 && nthreads > 1 ? nthreads : nthreads + 1) {
				char name[64];

				snprintf(name, sizeof(name), "%s_g%u_%ut",
					 env.modes[mi].name, granules[gi], t);
				if (!case_selected(o, name))
					continue;
				if (measure_case(o, &env, &env.modes[mi], granules[gi], t))
					goto out;
			}
		}
	}
	for (mi = 0; mi < 2; mi++) {
		char name[64];

		snprintf(name, sizeof(name), "%s_unmap_2m_block", env.modes[mi].name);
		if (case_selected(o, name) && measure_block(o, &env, &env.modes[mi]))
			goto out;
	}
	if (iom_machine_bug_count(env.m)) {
		bench_error("the machine reported %lu bugs",
			    iom_machine_bug_count(env.m));
		goto out;
	}
	ret = 0;
out:
	for (mi = 0; mi < 2; mi++) {
		struct map_mode *md = &env.modes[mi];

		if (md->dev && md->d)
			iom_iommu_detach_device(md->d, md->dev);
		iom_device_destroy(md->dev);
		iom_iommu_domain_free(md->d);
	}
	if (env.iommu && iom_iommu_destroy(env.iommu))
		bench_error("iom_iommu_destroy: busy");
	iom_rcu_barrier();
	iom_machine_destroy(env.m);
	bench_arena_destroy(arena);
	return ret;
}
