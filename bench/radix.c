/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench radix - lookups of present keys in the RCU radix tree
 * (src/mm/radix-tree.c) against a uthash table of the same keys, in the
 * same run: a dense key range (the page cache's shape), looked up in a
 * precomputed random order, by 1 and N reader threads, then again while a
 * writer thread replaces items without pause. Each radix lookup is its own
 * RCU read section (iom_rcu_read_lock + lookup + unlock), as a page-cache
 * lookup is. uthash readers take no lock while nothing writes; with the
 * writer they take a pthread rwlock for reading around each lookup and the
 * writer takes it for writing, the usual way to share a uthash table.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "bench.h"

#define RADIX_DEFAULT_KEYS	1000000ULL
#define RADIX_DEFAULT_ITERS	4000000ULL	/* lookups a reader thread, a run */
#define RADIX_DEFAULT_THREADS	2
#define RADIX_MAX_THREADS	64
#define RADIX_MAX_KEYS		(1ULL << 28)
#define RADIX_WARMUP		(1u << 16)
#define RADIX_MACHINE_MEM	(64ULL << 20)
#define RADIX_RUN_CAP_NS	1000000000ULL	/* longest reader run with a writer */
#define RADIX_CHECK_EVERY	4096

enum radix_impl { IMPL_RADIX, IMPL_UTHASH };

struct hent {
	unsigned long key;
	void *item;
	UT_hash_handle hh;
};

/*
 * What both sides look up. Key k maps to &items[2k] or, after the writer
 * replaced it, &items[2k + 1]: a reader checks what it got without
 * touching the item.
 */
struct radix_bench {
	unsigned long nkeys;
	unsigned long *order;		/* a permutation of the keys */
	unsigned long *items;

	struct iom_radix_tree_root root;
	pthread_mutex_t tree_lock;	/* the tree's writers */

	struct hent *hents;
	struct hent *head;
	pthread_rwlock_t hash_lock;	/* only in the writer cases */

	atomic_bool stop;		/* tells the writer the readers are done */
};

struct radix_worker {
	pthread_t tid;
	struct radix_bench *b;
	enum radix_impl impl;
	bool writer;
	bool locked;		/* a writer runs: uthash readers lock, all stop at the cap */
	unsigned long pos;	/* where in b->order to start */
	uint64_t n;		/* lookups to time; then, lookups done */
	unsigned int idx;
	bool pin;
	pthread_barrier_t *start;
	uint64_t t0, t1, cpu;
	unsigned long bad;	/* lookups that returned the wrong item */
	uint64_t writes;
};

static inline bool item_ok(const struct radix_bench *b, unsigned long key,
			   const void *p)
{
	return (uintptr_t)p - (uintptr_t)&b->items[2 * key] <=
		sizeof(unsigned long);
}

/* Past @deadline (ns, 0: none)? Checked every RADIX_CHECK_EVERY lookups. */
static inline bool past(uint64_t i, uint64_t deadline)
{
	return deadline && !(i % RADIX_CHECK_EVERY) && bench_now_ns() > deadline;
}

/* @n lookups, or fewer if @deadline passes. Return: lookups done. */
static uint64_t radix_lookups(struct radix_bench *b, unsigned long pos,
			      uint64_t n, uint64_t deadline, unsigned long *bad)
{
	const unsigned long *order = b->order;
	unsigned long nkeys = b->nkeys;
	uint64_t i;

	for (i = 0; i < n && !past(i, deadline); i++) {
		unsigned long key = order[pos];
		void *p;

		if (++pos == nkeys)
			pos = 0;
		iom_rcu_read_lock();
		p = iom_radix_tree_lookup(&b->root, key);
		iom_rcu_read_unlock();
		*bad += !item_ok(b, key, p);
	}
	return i;
}

static uint64_t uthash_lookups(struct radix_bench *b, unsigned long pos,
			       uint64_t n, bool locked, uint64_t deadline,
			       unsigned long *bad)
{
	const unsigned long *order = b->order;
	unsigned long nkeys = b->nkeys;
	uint64_t i;

	for (i = 0; i < n && !past(i, deadline); i++) {
		unsigned long key = order[pos];
		struct hent *e;
		void *p;

		if (++pos == nkeys)
			pos = 0;
		if (locked)
			pthread_rwlock_rdlock(&b->hash_lock);
		HASH_FIND(hh, b->head, &key, sizeof(key), e);
		p = e ? e->item : NULL;
		if (locked)
			pthread_rwlock_unlock(&b->hash_lock);
		*bad += !item_ok(b, key, p);
	}
	return i;
}

/* Swap key's item for its other one, over and over, until told to stop. */
static void writer_loop(struct radix_worker *w)
{
	struct radix_bench *b = w->b;
	unsigned long pos = w->pos, nkeys = b->nkeys;

	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		unsigned long key = b->order[pos];
		unsigned long *a = &b->items[2 * key];

		if (++pos == nkeys)
			pos = 0;
		if (w->impl == IMPL_RADIX) {
			void **slot;

			pthread_mutex_lock(&b->tree_lock);
			slot = iom_radix_tree_lookup_slot(&b->root, key);
			if (!slot || iom_radix_tree_replace_slot(&b->root, slot,
					iom_radix_tree_deref_slot(slot) == a ?
					a + 1 : a))
				w->bad++;
			pthread_mutex_unlock(&b->tree_lock);
		} else {
			struct hent *e;

			/*
			 * No entry is added or removed during a run, so the
			 * find may run outside the lock: the write lock is
			 * held for the store alone, the baseline's best case.
			 */
			HASH_FIND(hh, b->head, &key, sizeof(key), e);
			if (!e) {
				w->bad++;
				continue;
			}
			pthread_rwlock_wrlock(&b->hash_lock);
			e->item = e->item == a ? a + 1 : a;
			pthread_rwlock_unlock(&b->hash_lock);
		}
		w->writes++;
	}
}

static void *radix_worker_fn(void *arg)
{
	struct radix_worker *w = arg;
	uint64_t c0, deadline;

	if (w->pin)
		bench_pin_self(w->idx);
	/* Every thread that reads under RCU registers (iommig/rcu.h). */
	iom_rcu_register_thread();
	if (!w->writer) {
		/* Caches, TLB and the first RCU read section: not timed. */
		if (w->impl == IMPL_RADIX)
			radix_lookups(w->b, w->pos, RADIX_WARMUP, 0, &w->bad);
		else
			uthash_lookups(w->b, w->pos, RADIX_WARMUP, w->locked,
				       0, &w->bad);
	}
	pthread_barrier_wait(w->start);
	c0 = bench_thread_cpu_ns();
	w->t0 = bench_now_ns();
	/*
	 * With a writer, a reader starved by the rwlock gives up at the cap;
	 * its rate is still measured. Without one, every lookup is done.
	 */
	deadline = w->locked ? w->t0 + RADIX_RUN_CAP_NS : 0;
	if (w->writer)
		writer_loop(w);
	else if (w->impl == IMPL_RADIX)
		w->n = radix_lookups(w->b, w->pos, w->n, deadline, &w->bad);
	else
		w->n = uthash_lookups(w->b, w->pos, w->n, w->locked, deadline,
				      &w->bad);
	w->t1 = bench_now_ns();
	w->cpu = bench_thread_cpu_ns() - c0;
	iom_rcu_unregister_thread();
	return NULL;
}

/*
 * One timed run: @nreaders readers of @impl doing @iters lookups each,
 * starting at @pos0 spread over the key order, with a writer if @writer.
 * Return: wall-clock ns per lookup, all readers together (first start to
 * last end / all lookups), or -1 after an error. *@share: the readers' CPU
 * time / (readers x wall time); *@wrate: writer's replacements per second;
 * *@capped set if a reader stopped at RADIX_RUN_CAP_NS.
 */
static double radix_run(const struct bench_opts *o, struct radix_bench *b,
			enum radix_impl impl, unsigned int nreaders,
			bool writer, uint64_t iters, unsigned long pos0,
			double *share, double *wrate, bool *capped)
{
	struct radix_worker w[RADIX_MAX_THREADS + 1];
	unsigned int nthreads = nreaders + writer, i;
	struct bench_span span = BENCH_SPAN_INIT;
	pthread_barrier_t start;
	unsigned long bad = 0;

	if (pthread_barrier_init(&start, NULL, nthreads)) {
		bench_error("pthread_barrier_init failed");
		return -1;
	}
	atomic_store(&b->stop, false);
	memset(w, 0, sizeof(w[0]) * nthreads);
	for (i = 0; i < nthreads; i++) {
		w[i] = (struct radix_worker){
			.b = b, .impl = impl, .writer = i == nreaders,
			.locked = writer, .n = iters, .idx = i, .pin = o->pin,
			.start = &start,
			.pos = (pos0 + b->nkeys / nthreads * i) % b->nkeys,
		};
		bench_thread_create(&w[i].tid, radix_worker_fn, &w[i]);
	}
	for (i = 0; i < nreaders; i++)
		pthread_join(w[i].tid, NULL);
	atomic_store(&b->stop, true);
	if (writer)
		pthread_join(w[nreaders].tid, NULL);
	pthread_barrier_destroy(&start);

	for (i = 0; i < nthreads; i++)
		bad += w[i].bad;
	if (bad) {
		bench_error("%lu lookups or replacements went wrong", bad);
		return -1;
	}
	for (i = 0; i < nreaders; i++) {
		bench_span_add(&span, w[i].t0, w[i].t1, w[i].n, w[i].cpu);
		if (w[i].n < iters)
			*capped = true;
	}
	*wrate = 0;
	if (writer && w[nreaders].t1 > w[nreaders].t0)
		*wrate = (double)w[nreaders].writes * 1e9 /
			 (double)(w[nreaders].t1 - w[nreaders].t0);
	return bench_span_ns_per_op(&span, nreaders, share);
}

struct radix_case {
	const char *name;	/* metric prefix */
	bool multi;		/* --threads readers, else one */
	bool writer;
};

static const struct radix_case radix_cases[] = {
	{ "lookup", false, false },
	{ "lookup", true, false },
	{ "lookup_writer", false, true },
	{ "lookup_writer", true, true },
};

#define NR_RADIX_CASES (sizeof(radix_cases) / sizeof(radix_cases[0]))
#define METRIC_LEN 64

/* The case's metric name into @buf; false if --threads 1 makes it a repeat. */
static bool case_metric(const struct radix_case *c, unsigned int nthreads,
			char buf[METRIC_LEN])
{
	if (c->multi && nthreads == 1)
		return false;
	snprintf(buf, METRIC_LEN, "%s_%ut", c->name, c->multi ? nthreads : 1);
	return true;
}

static int measure_case(const struct bench_opts *o, struct radix_bench *b,
			const struct radix_case *c, unsigned int nreaders,
			const char *metric)
{
	double *v = calloc((size_t)o->runs * 4, sizeof(double));
	double *base = v + o->runs, *wr = base + o->runs, *bwr = wr + o->runs;
	double share = 1, s, rate;
	struct bench_stat vs, bs, ws, bws;
	char bname[128], note[400];
	bool capped = false, bcapped = false;
	uint64_t iters = o->iters;
	int r, ret = -1;

	if (!v) {
		bench_error("out of memory");
		return -1;
	}
	/* Radix and uthash interleave, so a change in the host hits both. */
	for (r = 0; r < o->runs; r++) {
		unsigned long pos0 = (unsigned long)r * 7919u % b->nkeys;

		bench_progress(o, "radix %s: run %d/%d", metric, r + 1, o->runs);
		v[r] = radix_run(o, b, IMPL_RADIX, nreaders, c->writer, iters,
				 pos0, &s, &rate, &capped);
		if (v[r] < 0)
			goto out;
		wr[r] = rate;
		if (s < share)
			share = s;
		if (!o->baseline)
			continue;
		base[r] = radix_run(o, b, IMPL_UTHASH, nreaders, c->writer,
				    iters, pos0, &s, &rate, &bcapped);
		if (base[r] < 0)
			goto out;
		bwr[r] = rate;
		/* uthash readers that sleep on the rwlock are not preempted. */
		if (!c->writer && s < share)
			share = s;
	}
	bench_stat_compute(v, o->runs, &vs);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &bs);
	bench_stat_compute(wr, c->writer ? o->runs : 0, &ws);
	bench_stat_compute(bwr, c->writer && o->baseline ? o->runs : 0, &bws);
	snprintf(bname, sizeof(bname), "uthash HASH_FIND (Jenkins hash)%s",
		 c->writer ? " under pthread_rwlock_rdlock; writer under "
			     "wrlock" : ", no lock");
	if (c->writer)
		snprintf(note, sizeof(note),
			 "%u reader%s, ns = wall / all lookups; one RCU read "
			 "section a lookup; writer: %.3g M replace_slot/s "
			 "under a mutex (uthash writer: %.3g M/s)%s",
			 nreaders, nreaders > 1 ? "s" : "", ws.median / 1e6,
			 bws.median / 1e6, nreaders + 1 > bench_nproc() ?
			 "; more threads than cpus" : "");
	else
		snprintf(note, sizeof(note),
			 "%u reader%s, ns = wall / all lookups; one RCU read "
			 "section a lookup; %llu keys%s", nreaders,
			 nreaders > 1 ? "s" : "", (unsigned long long)b->nkeys,
			 nreaders > bench_nproc() ? "; more threads than cpus" : "");
	if (capped || bcapped)
		snprintf(note + strlen(note), sizeof(note) - strlen(note),
			 "; %s%s%s readers stopped at the %.0f s cap",
			 capped ? "radix" : "", capped && bcapped ? " and " : "",
			 bcapped ? "uthash" : "", RADIX_RUN_CAP_NS / 1e9);
	bench_report(o, &(struct bench_result){
		.bench = "radix", .metric = metric, .unit = "ns/lookup",
		.value = vs, .baseline = o->baseline ? &bs : NULL,
		.baseline_name = bname, .goal = o->baseline ? "ratio<=1.0" : NULL,
		.goal_met = bs.median > 0 && vs.median <= bs.median,
		.note = note, .cpu_share = share,
	});
	ret = 0;
out:
	free(v);
	return ret;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Fill the tree and the table with the same keys; report their size. */
static int radix_setup(const struct bench_opts *o, struct radix_bench *b,
		       struct iom_machine *m)
{
	struct iom_machine_memcost mc0, mc1;
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	unsigned long k;
	int err;

	b->order = malloc(b->nkeys * sizeof(*b->order));
	b->items = malloc(2 * b->nkeys * sizeof(*b->items));
	b->hents = calloc(b->nkeys, sizeof(*b->hents));
	if (!b->order || !b->items || !b->hents) {
		bench_error("out of memory for %lu keys", b->nkeys);
		return -1;
	}
	for (k = 0; k < b->nkeys; k++)
		b->order[k] = k;
	for (k = b->nkeys - 1; k > 0; k--) {
		unsigned long j = (unsigned long)(xorshift(&seed) % (k + 1));
		unsigned long t = b->order[k];

		b->order[k] = b->order[j];
		b->order[j] = t;
	}

	iom_machine_memcost(m, &mc0);
	iom_radix_tree_init(&b->root, m);
	pthread_mutex_lock(&b->tree_lock);
	for (k = 0; k < b->nkeys; k++) {
		err = iom_radix_tree_insert(&b->root, k, &b->items[2 * k]);
		if (err) {
			pthread_mutex_unlock(&b->tree_lock);
			bench_error("iom_radix_tree_insert(%lu): %s", k,
				    strerror(-err));
			return -1;
		}
	}
	pthread_mutex_unlock(&b->tree_lock);
	iom_machine_memcost(m, &mc1);

	for (k = 0; k < b->nkeys; k++) {
		struct hent *e = &b->hents[k];

		e->key = k;
		e->item = &b->items[2 * k];
		HASH_ADD(hh, b->head, key, sizeof(e->key), e);
	}

	bench_report_value(o, "radix", "radix_bytes_per_key",
			   (double)(mc1.metadata_bytes - mc0.metadata_bytes) /
			   (double)b->nkeys, "B/key",
			   "tree nodes (576 B, 64 slots) from the machine's "
			   "metadata hook");
	bench_report_value(o, "radix", "uthash_bytes_per_key",
			   (double)(offsetof(struct hent, hh) +
				    HASH_OVERHEAD(hh, b->head) / b->nkeys),
			   "B/key", "key and item, plus HASH_OVERHEAD: the "
			   "UT_hash_handle of each entry, buckets, table");
	return 0;
}

/* Empty the tree; every node must go back to the machine. */
static int radix_teardown(struct radix_bench *b, struct iom_machine *m,
			  uint64_t meta_before)
{
	struct iom_machine_memcost mc;
	unsigned long k;
	int ret = 0;

	if (b->head)
		HASH_CLEAR(hh, b->head);
	if (b->order && b->items) {
		pthread_mutex_lock(&b->tree_lock);
		for (k = 0; k < b->nkeys; k++)
			iom_radix_tree_delete(&b->root, k);
		pthread_mutex_unlock(&b->tree_lock);
		if (!iom_radix_tree_empty(&b->root)) {
			bench_error("the tree is not empty after deleting every key");
			ret = -1;
		}
		iom_rcu_barrier();
		iom_machine_memcost(m, &mc);
		if (mc.metadata_bytes != meta_before) {
			bench_error("the tree kept %lld bytes of nodes",
				    (long long)(mc.metadata_bytes - meta_before));
			ret = -1;
		}
	}
	free(b->order);
	free(b->items);
	free(b->hents);
	return ret;
}

int bench_radix(const struct bench_opts *o_in)
{
	struct bench_opts opts = *o_in, *o = &opts;
	struct radix_bench b = { 0 };
	struct iom_machine_config cfg;
	struct iom_machine *m = NULL;
	struct bench_arena *arena = NULL;
	struct iom_machine_memcost mc;
	unsigned int nthreads;
	char metric[METRIC_LEN];
	size_t ci;
	int err, ret = 1;

	b.nkeys = o->keys ? (unsigned long)o->keys : RADIX_DEFAULT_KEYS;
	if (!o->iters)
		o->iters = RADIX_DEFAULT_ITERS;
	nthreads = o->threads ? o->threads : RADIX_DEFAULT_THREADS;
	if (nthreads > RADIX_MAX_THREADS || b.nkeys > RADIX_MAX_KEYS) {
		bench_error("at most %d threads and %llu keys",
			    RADIX_MAX_THREADS, (unsigned long long)RADIX_MAX_KEYS);
		return 1;
	}
	for (ci = 0; ci < NR_RADIX_CASES; ci++)
		if (case_metric(&radix_cases[ci], nthreads, metric) &&
		    (!o->only || strstr(metric, o->only)))
			break;
	if (ci == NR_RADIX_CASES) {
		bench_error("--only '%s' matches no case", o->only);
		return 1;
	}

	pthread_mutex_init(&b.tree_lock, NULL);
	pthread_rwlock_init(&b.hash_lock, NULL);
	err = bench_arena_create(&arena);
	if (err) {
		bench_error("cannot create the metadata arena: %s",
			    strerror(-err));
		goto out;
	}
	iom_machine_config_init(&cfg);
	cfg.mem_size = RADIX_MACHINE_MEM;
	bench_arena_mem_ops(arena, &cfg.mem_ops);
	err = iom_machine_create(&cfg, &m);
	if (err) {
		bench_error("iom_machine_create: %s", strerror(-err));
		goto out;
	}
	iom_machine_memcost(m, &mc);

	bench_report_host(o);
	bench_progress(o, "radix: %lu keys", b.nkeys);
	if (radix_setup(o, &b, m))
		goto teardown;
	for (ci = 0; ci < NR_RADIX_CASES; ci++) {
		const struct radix_case *c = &radix_cases[ci];

		if (!case_metric(c, nthreads, metric) ||
		    (o->only && !strstr(metric, o->only)))
			continue;
		if (measure_case(o, &b, c, c->multi ? nthreads : 1, metric))
			goto teardown;
	}
	ret = 0;
teardown:
	if (radix_teardown(&b, m, mc.metadata_bytes))
		ret = 1;
out:
	iom_machine_destroy(m);
	bench_arena_destroy(arena);
	pthread_rwlock_destroy(&b.hash_lock);
	pthread_mutex_destroy(&b.tree_lock);
	return ret;
}
