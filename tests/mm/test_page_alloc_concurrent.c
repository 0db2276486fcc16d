/* SPDX-License-Identifier: MIT */
/*
 * Concurrent allocation and freeing. What it proves:
 *  - no page is ever handed to two owners at once: every allocation claims
 *    each of its pfns in an ownership map with a compare-and-swap from 0,
 *    and releases them before freeing;
 *  - no page changes while its owner holds it: each owner stamps every
 *    page it gets with (thread, sequence) at both ends and checks the
 *    stamps before freeing;
 *  - after the threads (and a concurrent drain_all_pages() caller) stop,
 *    every page is back on the free lists and all counters agree.
 * Workers never assert; they count failures and the main thread asserts
 * after join.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "mm/internal.h"

#define NR_WORKERS	4
#define ITERATIONS	20000
#define MAX_HELD	64

struct ownership {
	atomic_uint *owner;	/* per pfn: 0 free, else worker id + 1 */
	unsigned long first_pfn;
	unsigned long nr;
};

/* Claim every pfn of a block; false (and nothing claimed) if any is taken. */
static bool own_claim(struct ownership *o, unsigned long pfn, unsigned int order,
		      unsigned int id)
{
	unsigned long i, n = 1UL << order;

	for (i = 0; i < n; i++) {
		unsigned int expect = 0;

		if (!atomic_compare_exchange_strong(&o->owner[pfn - o->first_pfn + i],
						    &expect, id)) {
			while (i--)
				atomic_store(&o->owner[pfn - o->first_pfn + i], 0);
			return false;
		}
	}
	return true;
}

static bool own_release(struct ownership *o, unsigned long pfn, unsigned int order,
			unsigned int id)
{
	unsigned long i, n = 1UL << order;
	bool ok = true;

	for (i = 0; i < n; i++) {
		unsigned int expect = id;

		if (!atomic_compare_exchange_strong(&o->owner[pfn - o->first_pfn + i],
						    &expect, 0))
			ok = false;
	}
	return ok;
}

struct held {
	struct iom_page *page;
	unsigned int order;
	uint64_t stamp;
};

struct worker {
	struct iom_machine *m;
	struct ownership *own;
	unsigned int id;
	unsigned int seed;
	atomic_bool *stop;
	unsigned long allocs, alloc_failures;
	unsigned long double_handouts, stamp_mismatches, free_errors;
};

static void stamp(struct iom_machine *m, struct held *h)
{
	unsigned long i, n = 1UL << h->order;

	for (i = 0; i < n; i++) {
		uint64_t *c = iom_page_address(m, h->page + i);

		c[0] = h->stamp + i;
		c[IOM_PAGE_SIZE / 8 - 1] = ~(h->stamp + i);
	}
}

static bool stamp_intact(struct iom_machine *m, const struct held *h)
{
	unsigned long i, n = 1UL << h->order;

	for (i = 0; i < n; i++) {
		const uint64_t *c = iom_page_address(m, h->page + i);

		if (c[0] != h->stamp + i || c[IOM_PAGE_SIZE / 8 - 1] != ~(h->stamp + i))
			return false;
	}
	return true;
}

static void release(struct worker *w, struct held *h)
{
	unsigned long pfn = iom_page_to_pfn(w->m, h->page);

	if (!stamp_intact(w->m, h))
		w->stamp_mismatches++;
	if (!own_release(w->own, pfn, h->order, w->id))
		w->double_handouts++;
	if (iom___free_pages(w->m, h->page, h->order))
		w->free_errors++;
}

static void *worker_fn(void *arg)
{
	static const iom_gfp_t gfps[] = {
		IOM_GFP_KERNEL, IOM_GFP_HIGHUSER_MOVABLE, IOM_GFP_KERNEL_RECLAIMABLE,
		IOM_GFP_USER,
	};
	struct worker *w = arg;
	struct held held[MAX_HELD];
	int nheld = 0, i;
	uint64_t seq = 0;

	for (i = 0; i < ITERATIONS; i++) {
		unsigned int r = (unsigned int)rand_r(&w->seed);

		if (nheld == MAX_HELD || (nheld && (r & 3) == 0)) {
			int victim = (int)((r >> 4) % (unsigned int)nheld);

			release(w, &held[victim]);
			held[victim] = held[--nheld];
			continue;
		}
		unsigned int order = (r >> 8) % 8 == 0 ? (r >> 12) % 4 : 0;
		iom_gfp_t gfp = gfps[(r >> 16) % 4] | IOM___GFP_NOWARN;
		struct iom_page *p = iom_alloc_pages(w->m, gfp, order);

		if (!p) {
			w->alloc_failures++;
			continue;
		}
		w->allocs++;
		if (!own_claim(w->own, iom_page_to_pfn(w->m, p), order, w->id)) {
			w->double_handouts++;
			continue;	/* leave it: the test has failed anyway */
		}
		held[nheld].page = p;
		held[nheld].order = order;
		held[nheld].stamp = ((uint64_t)w->id << 48) | (seq++ << 8);
		stamp(w->m, &held[nheld]);
		nheld++;
	}
	while (nheld)
		release(w, &held[--nheld]);
	return NULL;
}

static void *drainer_fn(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->stop)) {
		iom_drain_all_pages(w->m);
		w->allocs++;
		sched_yield();
	}
	return NULL;
}

static void ownership_map_detects_a_double_handout(void **state)
{
	/* The detector itself must be able to fail. */
	struct ownership o;
	atomic_uint map[16] = { 0 };

	o.owner = map;
	o.first_pfn = 100;
	o.nr = 16;
	assert_true(own_claim(&o, 104, 2, 1));
	assert_false(own_claim(&o, 106, 1, 2));		/* overlaps worker 1 */
	assert_int_equal(atomic_load(&map[8]), 0);	/* nothing half-claimed */
	assert_false(own_release(&o, 104, 2, 2));	/* not worker 2's */
	assert_true(own_claim(&o, 108, 1, 2));
}

static void run_workers(uint64_t mem, unsigned int nr_cma, bool with_drainer,
			bool expect_pressure)
{
	struct iom_machine_config cfg = { 0 };
	struct test_log log;
	struct worker w[NR_WORKERS + 1];
	pthread_t th[NR_WORKERS + 1];
	struct ownership own;
	atomic_bool stop = false;
	unsigned long nr_free, total_allocs = 0, total_failures = 0;
	struct iom_machine *m;
	int i;

	cfg.mem_size = mem;
	if (mem < (4ULL << 20))
		cfg.max_order = 8;	/* 1 MiB MAX_ORDER blocks */
	cfg.movable_size = mem >= (16ULL << 20) ? mem / 4 : 0;
	cfg.nr_cma_areas = nr_cma;
	cfg.cma[0].size = mem / 8;
	cfg.pcp_batch = 7;
	cfg.pcp_high = 28;
	m = test_machine(0, &log, &cfg);
	assert_non_null(m);
	own.first_pfn = iom_first_pfn(m);
	own.nr = iom_end_pfn(m) - own.first_pfn;
	own.owner = calloc(own.nr, sizeof(*own.owner));
	assert_non_null(own.owner);

	for (i = 0; i <= NR_WORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].m = m;
		w[i].own = &own;
		w[i].id = (unsigned int)i + 1;
		w[i].seed = 1234u + (unsigned int)i;
		w[i].stop = &stop;
	}
	for (i = 0; i < NR_WORKERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker_fn, &w[i]), 0);
	if (with_drainer)
		assert_int_equal(pthread_create(&th[NR_WORKERS], NULL, drainer_fn,
						&w[NR_WORKERS]), 0);
	for (i = 0; i < NR_WORKERS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop, true);
	if (with_drainer)
		pthread_join(th[NR_WORKERS], NULL);

	for (i = 0; i < NR_WORKERS; i++) {
		assert_int_equal(w[i].double_handouts, 0);
		assert_int_equal(w[i].stamp_mismatches, 0);
		assert_int_equal(w[i].free_errors, 0);
		total_allocs += w[i].allocs;
		total_failures += w[i].alloc_failures;
	}
	assert_true(total_allocs > NR_WORKERS * ITERATIONS / (expect_pressure ? 8 : 2));
	if (expect_pressure)	/* the scenario really ran out of memory */
		assert_true(total_failures > 0);
	else
		assert_int_equal(total_failures, 0);
	for (i = 0; i < (int)own.nr; i++)
		assert_int_equal(atomic_load(&own.owner[i]), 0);
	/* Worker threads exited: their caches went back. */
	assert_int_equal(iom_check_free_lists(m, &nr_free), 0);
	assert_int_equal(nr_free, own.nr);
	assert_int_equal(iom_machine_bug_count(m), 0);
	assert_int_equal(iom_vm_event_count(m, IOM_PGFREE),
			 iom_vm_event_count(m, IOM_PGALLOC_NORMAL) +
			 iom_vm_event_count(m, IOM_PGALLOC_MOVABLE));
	free(own.owner);
	iom_machine_destroy(m);
}

static void threads_never_share_a_page(void **state)
{
	run_workers(16ULL << 20, 0, false, false);
}

static void threads_never_share_a_page_under_memory_pressure(void **state)
{
	/* 1 MiB (256 pages): 4 workers holding up to 64 blocks each run it dry. */
	run_workers(1ULL << 20, 0, true, true);
}

static void threads_never_share_a_page_with_cma_and_drains(void **state)
{
	run_workers(16ULL << 20, 1, true, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ownership_map_detects_a_double_handout),
		cmocka_unit_test(threads_never_share_a_page),
		cmocka_unit_test(threads_never_share_a_page_under_memory_pressure),
		cmocka_unit_test(threads_never_share_a_page_with_cma_and_drains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
