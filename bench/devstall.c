/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench - the device-stall harness shared by iommu-migrate and
 * dma-migrate: worker state, the start line, the main thread's pinning,
 * one timed run with or without migration, and the stall results. The
 * benchmarks supply a device step and a migration pass. See devstall.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devstall.h"

#define PG	IOM_PAGE_SIZE

static inline uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

int devstall_init(struct devstall *ds, const struct bench_opts *o,
		  struct iom_device *dev, devstall_step_t step, void *priv,
		  unsigned int max, bool rbuf)
{
	ds->o = o;
	ds->dev = dev;
	ds->step = step;
	ds->priv = priv;
	ds->nthreads = max;
	ds->allowed_valid = !sched_getaffinity(0, sizeof(ds->allowed),
					       &ds->allowed);
	ds->w = aligned_alloc(64, sizeof(*ds->w) * max);
	if (!ds->w)
		return -ENOMEM;
	ds->max = max;
	for (unsigned int t = 0; t < max; t++)
		memset(&ds->w[t], 0, sizeof(ds->w[t]));
	for (unsigned int t = 0; t < max; t++) {
		ds->w[t].rng = 0x9e3779b97f4a7c15ULL * (t + 1);
		ds->w[t].wbuf = aligned_alloc(64, PG);
		if (rbuf)
			ds->w[t].rbuf = aligned_alloc(64, PG);
		if (!ds->w[t].wbuf || (rbuf && !ds->w[t].rbuf))
			return -ENOMEM;
		memset(ds->w[t].wbuf, 0x5a, PG);
	}
	return 0;
}

void devstall_fini(struct devstall *ds)
{
	for (unsigned int t = 0; ds->w && t < ds->max; t++) {
		free(ds->w[t].wbuf);
		free(ds->w[t].rbuf);
	}
	free(ds->w);
	ds->w = NULL;
}

void devstall_pin_main(const struct devstall *ds, bool on)
{
	if (!ds->o->pin || !ds->allowed_valid)
		return;
	if (on)
		bench_pin_self(0);
	else
		pthread_setaffinity_np(pthread_self(), sizeof(ds->allowed),
				       &ds->allowed);
}

/* iom_device_step_t: the start line and the counters around @ds->step. */
static int devstall_step(struct iom_device *dev, unsigned int idx,
			 unsigned long iter, void *priv)
{
	struct devstall *ds = priv;
	struct devstall_worker *w = &ds->w[idx];
	uint64_t x = xorshift64(&w->rng);
	int err;

	(void)dev;
	if (iter == 0) {
		if (ds->o->pin)
			bench_pin_self(idx + 1);
		atomic_store(&w->ready, true);
		while (!atomic_load_explicit(&ds->go, memory_order_acquire))
			sched_yield();
		w->cpu0 = bench_thread_cpu_ns();
		w->wall0 = bench_now_ns();
	}
	if (atomic_load_explicit(&ds->quit, memory_order_relaxed))
		return 1;
	err = ds->step(ds->priv, w, idx, x);
	if (err)
		return err;
	atomic_store_explicit(&w->ops, iter + 1, memory_order_relaxed);
	if ((iter & 63) == 63) {
		w->cpu1 = bench_thread_cpu_ns();
		w->wall1 = bench_now_ns();
	}
	return 0;
}

static uint64_t ops_sum(const struct devstall *ds)
{
	uint64_t s = 0;

	for (unsigned int i = 0; i < ds->nthreads; i++)
		s += atomic_load_explicit(&ds->w[i].ops, memory_order_relaxed);
	return s;
}

int devstall_run(struct devstall *ds, const struct devstall_case *c,
		 bool migrate, struct devstall_sample *s)
{
	struct iom_device_threads *set = NULL;
	uint64_t t0, t1, o0, o1, c0;
	double msh;
	int err, serr;

	memset(s, 0, sizeof(*s));
	for (unsigned int i = 0; i < ds->nthreads; i++) {
		ds->w[i].ops = 0;
		ds->w[i].ready = false;
		ds->w[i].cpu1 = ds->w[i].wall1 = 0;
	}
	atomic_store(&ds->go, false);
	atomic_store(&ds->quit, false);
	err = iom_device_threads_start(ds->dev, ds->nthreads, devstall_step, ds,
				       &set);
	if (err) {
		bench_error("iom_device_threads_start: %s", strerror(-err));
		return err;
	}
	devstall_pin_main(ds, true);
	/* every thread waits at the start line; no transaction before it */
	for (unsigned int i = 0; i < ds->nthreads; i++)
		while (!atomic_load(&ds->w[i].ready))
			sched_yield();
	c0 = bench_thread_cpu_ns();
	o0 = ops_sum(ds);
	t0 = bench_now_ns();
	atomic_store_explicit(&ds->go, true, memory_order_release);
	do {
		if (!migrate) {
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
			continue;
		}
		if ((err = c->pass(c->priv, s->passes)))
			break;
		s->passes++;
	} while (bench_now_ns() - t0 < c->min_ns ||
		 (migrate && c->even_passes && s->passes % 2));
	atomic_store(&ds->quit, true);
	t1 = bench_now_ns();
	o1 = ops_sum(ds);
	msh = (double)(bench_thread_cpu_ns() - c0) / (double)(t1 - t0);
	serr = iom_device_threads_stop(set, &s->st);
	devstall_pin_main(ds, false);
	if (!err && serr) {
		bench_error("a device thread failed: %s%s", strerror(-serr),
			    serr == -EIO && c->thread_eio ? c->thread_eio : "");
		err = serr;
	}
	if (err) {
		if (migrate && c->say_failure)
			bench_error("%s under traffic: %s", c->name, strerror(-err));
		return err;
	}
	s->rate = (double)(o1 - o0) / ((double)(t1 - t0) / 1e9);
	s->mig_gbs = (double)s->passes * (double)c->pass_pages * PG /
		     (double)(t1 - t0);
	/*
	 * cpu share: the migrating main thread's; the device threads' only
	 * without migration (with it they legitimately sleep while blocked).
	 */
	s->share = 1;
	s->main_share = msh;
	for (unsigned int i = 0; !migrate && i < ds->nthreads; i++) {
		const struct devstall_worker *w = &ds->w[i];
		double sh = w->wall1 > w->wall0 ?
			(double)(w->cpu1 - w->cpu0) / (double)(w->wall1 - w->wall0) : 1;

		if (sh < s->share)
			s->share = sh;
	}
	return c->check(c->priv, migrate);
}

int devstall_measure(struct devstall *ds, const struct devstall_case *c)
{
	const struct bench_opts *o = ds->o;
	double *v = calloc((size_t)o->runs * DS_NR, sizeof(double));
	struct bench_stat st[DS_NR];
	struct devstall_sample s, none;
	double share = o->baseline ? 1 : 0;
	char metric[96], note[800], rnote[800], bname[120];
	unsigned int t = ds->nthreads;
	int r, err = 0;

	if (!v)
		return -ENOMEM;
	for (r = 0; r < o->runs; r++) {
		bench_progress(o, "%s stall_%s_%ut: run %d/%d", c->bench, c->name,
			       t, r + 1, o->runs);
		/* one 4 KiB memcpy, the same pages, no traffic */
		devstall_pin_main(ds, true);
		v[DS_MEMCPY * o->runs + r] = c->memcpy_ns(c->priv) /
					     (double)c->memcpy_pages;
		devstall_pin_main(ds, false);
		if ((err = devstall_run(ds, c, true, &s)))
			goto out;
		v[DS_MAINSH * o->runs + r] = s.main_share;
		v[DS_P50 * o->runs + r] = (double)s.st.stall_p50_ns;
		v[DS_P99 * o->runs + r] = (double)s.st.stall_p99_ns;
		v[DS_STALLED_P50 * o->runs + r] = (double)s.st.stalled_p50_ns;
		v[DS_STALLED_P99 * o->runs + r] = (double)s.st.stalled_p99_ns;
		v[DS_RATE * o->runs + r] = s.rate / 1e6;
		v[DS_FRAC * o->runs + r] = s.st.transactions ?
			100.0 * (double)s.st.stalled / (double)s.st.transactions : 0;
		v[DS_MIG * o->runs + r] = s.mig_gbs;
		v[DS_PASSES * o->runs + r] = (double)s.passes;
		if (o->baseline) {
			if ((err = devstall_run(ds, c, false, &none)))
				goto out;
			if (none.share < share)
				share = none.share;
			v[DS_NORATE * o->runs + r] = none.rate / 1e6;
		}
	}
	for (int k = 0; k < DS_NR; k++)
		bench_stat_compute(v + k * o->runs,
				   k == DS_NORATE && !o->baseline ? 0 : o->runs, &st[k]);
	c->notes(c->priv, st, &s, note, sizeof(note), rnote, sizeof(rnote));
	snprintf(bname, sizeof(bname), "one 4 KiB memcpy between the same pages "
		 "(mean of %lu, no traffic)", c->memcpy_pages);

	snprintf(metric, sizeof(metric), "stall_%s_%ut_p99", c->name, t);
	bench_report(o, &(struct bench_result){
		.bench = c->bench, .metric = metric, .unit = "ns",
		.value = st[DS_P99], .baseline = &st[DS_MEMCPY],
		.baseline_name = bname, .goal = c->p99_goal,
		.goal_met = st[DS_MEMCPY].median > 0 &&
			    st[DS_P99].median <= 2 * st[DS_MEMCPY].median,
		.note = note, .cpu_share = share,
	});
	snprintf(metric, sizeof(metric), "stall_%s_%ut_p50", c->name, t);
	bench_report(o, &(struct bench_result){
		.bench = c->bench, .metric = metric, .unit = "ns",
		.value = st[DS_P50], .baseline = &st[DS_MEMCPY],
		.baseline_name = bname, .note = "every transaction",
		.cpu_share = share,
	});
	for (int k = 0; k < 2; k++) {
		snprintf(metric, sizeof(metric), "stalled_%s_%ut_%s", c->name, t,
			 k ? "p50" : "p99");
		bench_report(o, &(struct bench_result){
			.bench = c->bench, .metric = metric, .unit = "ns",
			.value = st[k ? DS_STALLED_P50 : DS_STALLED_P99],
			.baseline = &st[DS_MEMCPY], .baseline_name = bname,
			.note = "over the transactions that waited",
			.cpu_share = share,
		});
	}
	snprintf(metric, sizeof(metric), "dma_rate_%s_%ut", c->name, t);
	bench_report(o, &(struct bench_result){
		.bench = c->bench, .metric = metric, .unit = "M/s",
		.value = st[DS_RATE], .baseline = o->baseline ? &st[DS_NORATE] : NULL,
		.baseline_name = "the same device threads without migration",
		.note = rnote, .cpu_share = share,
	});
out:
	free(v);
	return err;
}
