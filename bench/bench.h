/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench - what the benchmarks share: options, timing, statistics of
 * repeated runs, the report (a table, or one JSON object per line), host
 * description and the metadata allocator a benchmark machine runs on.
 * Every result is the median of several runs, with min and max, and where
 * a baseline is measured in the same run, its value and value/baseline.
 */
#ifndef IOMMIG_BENCH_H
#define IOMMIG_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <iommig/iommig.h>

/* ---- options ----------------------------------------------------------- */

/* Which options a subcommand accepts (struct bench_cmd.opts). */
#define BENCH_OPT_MEM		0x01u
#define BENCH_OPT_ITERS		0x02u
#define BENCH_OPT_THREADS	0x04u
#define BENCH_OPT_WINDOW	0x08u
#define BENCH_OPT_NOPIN		0x10u
#define BENCH_OPT_NOBASELINE	0x20u
#define BENCH_OPT_ONLY		0x40u
#define BENCH_OPT_KEYS		0x80u
#define BENCH_OPT_SECONDS	0x100u	/* map */
#define BENCH_OPT_GRANULE	0x200u	/* map */
#define BENCH_OPT_DIR		0x400u	/* map */

struct bench_opts {
	bool json;
	bool quiet;
	int runs;		/* repetitions; the median is reported */
	uint64_t mem;		/* --mem, 0: the benchmark's default */
	uint64_t iters;		/* --iters, 0: the benchmark's default */
	unsigned int threads;	/* --threads, 0: default (2) */
	unsigned int window;	/* --window, 0: default (32) */
	bool pin;		/* pin worker threads to cpus (default) */
	bool baseline;		/* measure baselines (default) */
	const char *only;	/* --only: run the cases whose name has this */
	uint64_t keys;		/* --keys, 0: the benchmark's default */
	unsigned int seconds;	/* --seconds (map), 0: the benchmark's default */
	unsigned int granule;	/* --granule pages a map (map), 0: default cases */
	int dir;		/* --dir (map): 0 bidirectional, 1 to-device, 2 from-device */
};

struct bench_cmd {
	const char *name;
	const char *summary;
	unsigned int opts;	/* BENCH_OPT_* accepted */
	const char *help;	/* extra lines for `iommig-bench help <name>` */
	int (*run)(const struct bench_opts *o);
	/* a benchmark with its own command line (frag): argv[0] is its name */
	int (*main)(int argc, char **argv);
};

/* The benchmarks (one file each). Return: 0, or 1 after printing why. */
int bench_alloc(const struct bench_opts *o);
int bench_compact(const struct bench_opts *o);
int bench_machine(const struct bench_opts *o);
int bench_radix(const struct bench_opts *o);
int bench_migrate(const struct bench_opts *o);
int bench_iova(const struct bench_opts *o);
int bench_iommu_migrate(const struct bench_opts *o);
int bench_map(const struct bench_opts *o);
int bench_dma(const struct bench_opts *o);
int bench_dma_migrate(const struct bench_opts *o);
int bench_vfio(const struct bench_opts *o);
int bench_hmm(const struct bench_opts *o);
int frag_main(int argc, char **argv);	/* bench/frag/frag.c */

/* ---- timing ------------------------------------------------------------ */

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the calling thread: with bench_now_ns(), tells a run that
 * was preempted (the host is shared) from one that was slow. */
static inline uint64_t bench_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Make the compiler believe @p escapes and memory was read and written, so
 * a malloc()/free() pair around it cannot be elided.
 */
static inline void bench_sink(void *p)
{
	__asm__ __volatile__("" : : "r"(p) : "memory");
}

/*
 * Touch every page of the simulated memory of @m once: allocate it all,
 * write it, free it. Host page faults are then out of the timed runs.
 * Return: 0 or -ENOMEM.
 */
int bench_prefault_machine(struct iom_machine *m);

/* Pin the calling thread to cpu (@idx mod nproc). Return: 0 or -errno. */
int bench_pin_self(unsigned int idx);
/*
 * pthread_create() of a worker that will wait on a start barrier: a thread
 * that cannot be created would leave the barrier waiting forever, so this
 * reports it and exits.
 */
void bench_thread_create(pthread_t *tid, void *(*fn)(void *), void *arg);

/*
 * struct bench_span - the threads of one timed run together: first start,
 * last end, operations and CPU time of them all.
 */
struct bench_span {
	uint64_t t0, t1, ops, cpu;
};

#define BENCH_SPAN_INIT { UINT64_MAX, 0, 0, 0 }

/* Add one thread's start, end, operations and CPU time. */
static inline void bench_span_add(struct bench_span *s, uint64_t t0,
				  uint64_t t1, uint64_t ops, uint64_t cpu)
{
	if (t0 < s->t0)
		s->t0 = t0;
	if (t1 > s->t1)
		s->t1 = t1;
	s->ops += ops;
	s->cpu += cpu;
}

/* Wall-clock ns per operation, all threads together; *@share: their CPU
 * time / (@nthreads x wall time). */
static inline double bench_span_ns_per_op(const struct bench_span *s,
					  unsigned int nthreads, double *share)
{
	double wall = (double)(s->t1 - s->t0);

	*share = (double)s->cpu / ((double)nthreads * wall);
	return wall / (double)s->ops;
}

/* ---- statistics and report --------------------------------------------- */

/* Median, min and max of one metric over the runs. */
struct bench_stat {
	double median, min, max;
	int runs;
};

/* Sorts @samples in place. */
void bench_stat_compute(double *samples, int n, struct bench_stat *out);

/**
 * struct bench_result - one line of the report.
 * @bench, @metric, @unit: what was measured.
 * @value:          the library's number.
 * @baseline:       the same thing by the baseline, or NULL.
 * @baseline_name:  what the baseline is ("jemalloc malloc(4096)+free").
 * @goal:           a target stated by the design, e.g. "ratio<=1.5", or NULL.
 * @goal_met:       whether @goal is met (printed only with @goal).
 * @note:           free text, or NULL.
 * @cpu_share:      lowest, over the runs, of thread CPU time / (threads x
 *                  wall time); well below 1 means the host took the cpus
 *                  away during a run. 0: not measured.
 */
struct bench_result {
	const char *bench;
	const char *metric;
	const char *unit;
	struct bench_stat value;
	const struct bench_stat *baseline;
	const char *baseline_name;
	const char *goal;
	bool goal_met;
	const char *note;
	double cpu_share;
};

/* Host line (JSON) or header (table); call once before any result. */
/*
 * JSON output shared by the reports: a string with its escapes, ",\"key\":"
 * and a string or number (integers exactly, others with 6 significant
 * digits, NaN and infinities as null).
 */
void bench_json_string(FILE *out, const char *s);
void bench_json_key_str(FILE *out, const char *key, const char *val);
void bench_json_number(FILE *out, double v);
void bench_json_key_num(FILE *out, const char *key, double v);

void bench_report_host(const struct bench_opts *o);
void bench_report(const struct bench_opts *o, const struct bench_result *r);
/* A measured value without repetition or baseline (e.g. a size). */
void bench_report_value(const struct bench_opts *o, const char *bench,
			const char *metric, double value, const char *unit,
			const char *note);

/* Progress message on stderr, unless --quiet. */
void bench_progress(const struct bench_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An error on stderr: "iommig-bench: <msg>". */
void bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- host ---------------------------------------------------------------- */

/* The 1-minute load average (/proc/loadavg), or -1. */
double bench_loadavg(void);
/* Bytes resident in this process (/proc/self/statm), or -1. */
long long bench_rss_bytes(void);
unsigned int bench_nproc(void);
/* "jemalloc" or "libc": what malloc() is and what machines' metadata use. */
const char *bench_allocator_name(void);

/* Parse "64G", "512M", "4096", "1.5G" (K/M/G/T, powers of 1024). */
int bench_parse_size(const char *s, uint64_t *out);
/* Parse a positive integer with an optional K/M/G (powers of 1000) suffix. */
int bench_parse_count(const char *s, uint64_t *out);

/* ---- the metadata allocator of a benchmark machine (jemalloc_arena.c) --- */

/**
 * struct bench_arena_stats - what the allocator says one machine costs.
 * @allocated: bytes handed out (jemalloc: small + large allocated).
 * @resident:  bytes of the arena resident in host memory, or -1 unknown.
 * @mapped:    bytes of the arena mapped, or -1 unknown.
 */
struct bench_arena_stats {
	long long allocated;
	long long resident;
	long long mapped;
};

struct bench_arena;

/* A fresh arena (jemalloc) or counter (libc). Return: 0 or -errno. */
int bench_arena_create(struct bench_arena **ap);
/* Fill @ops so a machine allocates its metadata in @a. */
void bench_arena_mem_ops(struct bench_arena *a, struct iom_mem_ops *ops);
/* Read @a's statistics (after refreshing jemalloc's epoch). */
int bench_arena_stats(struct bench_arena *a, struct bench_arena_stats *out);
/* Destroy @a; everything in it must have been freed. */
void bench_arena_destroy(struct bench_arena *a);
/* Allocator version, e.g. "5.3.0-0-g54eaed1", or "glibc". */
const char *bench_arena_version(void);

/*
 * A machine of @cfg whose metadata lives in a new arena (*@arena, to
 * destroy after the machine, also when this fails). Says why on failure
 * (bench.c). Return: 0 or -errno.
 */
int bench_machine_create(struct iom_machine_config *cfg,
			 struct bench_arena **arena, struct iom_machine **m);

#endif /* IOMMIG_BENCH_H */
