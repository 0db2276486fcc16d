/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench - the device-stall harness of the migration benchmarks
 * (iommu-migrate, dma-migrate): device threads (iom_device_threads_start())
 * that step behind a common start line while the main thread, pinned to
 * cpu 0, runs migration passes for a minimum time; the transaction rate,
 * the cpu shares and the stall percentiles of struct iom_device_thread_stats,
 * reported against one 4 KiB memcpy() and a run of the same threads without
 * migration. What a device step and a migration pass do is the caller's.
 */
#ifndef IOMMIG_BENCH_DEVSTALL_H
#define IOMMIG_BENCH_DEVSTALL_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench.h"

/* One device thread's state; written by that thread only (ops: read by main). */
struct devstall_worker {
	uint64_t rng;
	uint64_t seq;		/* the caller's: sequence of its writes */
	uint64_t *wbuf, *rbuf;	/* 4 KiB each; rbuf only if asked for */
	_Atomic uint64_t ops;
	atomic_bool ready;
	uint64_t cpu0, wall0, cpu1, wall1;
} __attribute__((aligned(64)));

/*
 * devstall_step_t - one device transaction of thread @idx (@w its state),
 * @x a fresh random number of its own. Called between the start line and
 * the quit flag only. Return: 0, or -errno to stop the thread.
 */
typedef int (*devstall_step_t)(void *priv, struct devstall_worker *w,
			       unsigned int idx, uint64_t x);

/**
 * struct devstall - the device threads of one benchmark.
 * @o:        the options (--pin).
 * @dev:      the device the threads run on.
 * @step:     a transaction, with @priv.
 * @nthreads: threads of the next run, at most what devstall_init() made.
 * @w:        the threads' state.
 * @go, @quit: device threads move bytes only between them (not timed: none).
 */
struct devstall {
	const struct bench_opts *o;
	struct iom_device *dev;
	devstall_step_t step;
	void *priv;
	unsigned int nthreads;
	unsigned int max;
	struct devstall_worker *w;
	atomic_bool go, quit;
	cpu_set_t allowed;	/* the main thread's cpus before pinning */
	bool allowed_valid;
};

/* The samples of devstall_measure() (struct bench_stat st[DS_NR]). */
enum devstall_stat {
	DS_P50, DS_P99, DS_STALLED_P50, DS_STALLED_P99, DS_RATE, DS_NORATE,
	DS_MEMCPY, DS_FRAC, DS_MIG, DS_MAINSH, DS_PASSES, DS_NR
};

/* What one run measured. */
struct devstall_sample {
	struct iom_device_thread_stats st;
	double rate;		/* transactions / s while the main thread worked */
	double mig_gbs;		/* migration bytes / s under traffic */
	double share;		/* lowest cpu share of the device threads (no migration) */
	double main_share;	/* the migrating thread's cpu time / wall time */
	uint64_t passes;	/* migration passes run */
};

/**
 * struct devstall_case - one stall case of a benchmark.
 * @bench, @name:  the results are @bench's stall_<name>_<t>t_p99 and _p50,
 *                 stalled_<name>_<t>t_p99 and _p50, dma_rate_<name>_<t>t.
 * @min_ns:        how long migrations run, at least.
 * @pass_pages:    4 KiB pages a pass moves.
 * @even_passes:   stop after an even number of passes only (there and back).
 * @memcpy_pages:  4 KiB copies one @memcpy_ns call makes.
 * @p99_goal:      the stall p99's goal against the memcpy ("ratio<=2"), or NULL.
 * @thread_eio:    appended to "a device thread failed" when it is -EIO, or NULL.
 * @say_failure:   a failed migrating run also says "<name> under traffic".
 * @pass:          one migration pass; @n passes of this run came before it.
 * @check:         after a run (@migrated: with migration): 0 or -EIO.
 * @memcpy_ns:     the baseline's copies, ns.
 * @notes:         the notes of the p99 and of the rate, from the statistics
 *                 and the last run with migration.
 */
struct devstall_case {
	const char *bench;
	const char *name;
	uint64_t min_ns;
	unsigned long pass_pages;
	bool even_passes;
	unsigned long memcpy_pages;
	const char *p99_goal;
	const char *thread_eio;
	bool say_failure;
	int (*pass)(void *priv, uint64_t n);
	int (*check)(void *priv, bool migrated);
	double (*memcpy_ns)(void *priv);
	void (*notes)(void *priv, const struct bench_stat *st,
		      const struct devstall_sample *last, char *p99, size_t p99_size,
		      char *rate, size_t rate_size);
	void *priv;
};

/*
 * Remember the calling (main) thread's cpus and make @max workers for
 * transactions @step(@priv, ...) on @dev, each with a 4 KiB write buffer
 * (and a read buffer if @rbuf); the runs use @max of them until
 * @ds->nthreads is changed. Return: 0 or -ENOMEM.
 */
int devstall_init(struct devstall *ds, const struct bench_opts *o,
		  struct iom_device *dev, devstall_step_t step, void *priv,
		  unsigned int max, bool rbuf);
/* Free what devstall_init() made (also after it failed). */
void devstall_fini(struct devstall *ds);

/*
 * The main thread runs on cpu 0 while it measures, device threads on 1..;
 * threads the library creates inherit their creator's affinity, so the
 * main thread is pinned only after they started and unpinned before the
 * next start (@on false: back to every cpu it had).
 */
void devstall_pin_main(const struct devstall *ds, bool on);

/* A page of thread @idx's own among @nr (every nthreads-th from @idx), by @r. */
static inline unsigned long devstall_pick(const struct devstall *ds,
					  unsigned int idx, unsigned long nr,
					  uint64_t r)
{
	unsigned long mine = (nr - idx + ds->nthreads - 1) / ds->nthreads;

	return idx + (unsigned long)(r % mine) * ds->nthreads;
}

/*
 * One stall run: device threads on, then @c's passes back to back until
 * @c->min_ns passed (@migrate false: the main thread only waits as long),
 * threads off, @c->check. Return: 0 or -errno (said on stderr).
 */
int devstall_run(struct devstall *ds, const struct devstall_case *c,
		 bool migrate, struct devstall_sample *s);

/*
 * --runs of: the memcpy baseline, a run with migration and (with the
 * baselines) one without; then the five results of @c. Return: 0 or -errno.
 */
int devstall_measure(struct devstall *ds, const struct devstall_case *c);

#endif /* IOMMIG_BENCH_DEVSTALL_H */
