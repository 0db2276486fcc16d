/* SPDX-License-Identifier: MIT */
/*
 * The IOVA allocator (src/iommu/iova.c): allocations are size-aligned,
 * top-down below the limit, never overlap; exhaustion returns 0 without
 * harm; a full tree whose space sits in caches is flushed and the
 * allocation retried once (only when asked); a freed range comes back from
 * the thread's magazine, a full magazine goes to the depot and another
 * thread takes it from there; a thread's caches go back to the tree when
 * it exits; bad frees (never allocated, double, wrong size, reserved) are
 * reported and change nothing; reserved ranges are never handed out; and
 * threads allocating and freeing at once, each stamping the pfns it got in
 * a shared array, never see another thread's stamp.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include <iommig/iova.h>

static struct test_log tlog;

static struct iom_machine *machine(void)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);

	assert_non_null(m);
	return m;
}

static unsigned long roundup_pow2(unsigned long n)
{
	unsigned long r = 1;

	while (r < n)
		r <<= 1;
	return r;
}

static void test_init_and_bad_args(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iova_domain *iovad;

	(void)state;
	errno = 0;
	assert_null(iom_init_iova_domain(m, 0, 1));
	assert_int_equal(errno, EINVAL);
	assert_null(iom_init_iova_domain(m, 3000, 1));
	assert_null(iom_init_iova_domain(m, 8192, 1));
	assert_null(iom_init_iova_domain(m, 4096, 0));
	assert_true(test_log_contains(&tlog, "bad granule"));
	iovad = iom_init_iova_domain(m, 512, 1);
	assert_non_null(iovad);
	assert_int_equal(iom_iova_shift(iovad), 9);
	iom_put_iova_domain(iovad);

	iovad = iom_init_iova_domain(m, 4096, 1);
	assert_int_equal(iom_alloc_iova_fast(iovad, 0, 1000, true), 0);
	assert_int_equal(iom_alloc_iova_fast(iovad, 2000, 1000, true), 0);
	assert_null(iom_alloc_iova(iovad, 0, 1000, true));
	assert_true(test_log_contains(&tlog, "bad size"));
	assert_int_equal(iom_alloc_iova_fast(NULL, 1, 1000, true), 0);
	assert_int_equal(iom_free_iova_fast(NULL, 1, 1), -EINVAL);
	iom_put_iova_domain(iovad);
	iom_put_iova_domain(NULL);
	iom_machine_destroy(m);
}

static void test_aligned_top_down_below_limit(void **state)
{
	static const unsigned long sizes[] = { 1, 8, 3, 32, 33, 5, 64, 2, 100, 1 };
	struct iom_machine *m = machine();
	struct iom_iova_domain *iovad = iom_init_iova_domain(m, 4096, 1);
	unsigned long limit = 0xfffff, prev = limit + 1, pfns[10];
	size_t i;

	(void)state;
	for (i = 0; i < 10; i++) {
		unsigned long sz = sizes[i], al = roundup_pow2(sz);
		unsigned long pfn = iom_alloc_iova_fast(iovad, sz, limit, false);

		assert_int_not_equal(pfn, 0);
		assert_int_equal(pfn % al, 0);
		/* top-down: each lies below the one before, in the highest fit */
		assert_true(pfn + (sz < 32 ? al : sz) <= prev);
		assert_true(prev - (pfn + (sz < 32 ? al : sz)) < al);
		prev = pfn;
		pfns[i] = pfn;
	}
	assert_int_equal(pfns[0], limit);		/* size 1 at the very top */
	assert_non_null(iom_find_iova(iovad, pfns[4] + 32));	/* size 33 */
	assert_int_equal(iom_find_iova(iovad, pfns[4] + 32)->pfn_lo, pfns[4]);
	assert_null(iom_find_iova(iovad, 5));
	/* a lower limit */
	{
		unsigned long pfn = iom_alloc_iova_fast(iovad, 16, 0xfff, false);

		assert_true(pfn && pfn + 15 <= 0xfff && pfn % 16 == 0);
		assert_int_equal(pfn, 0xff0);
		assert_int_equal(iom_free_iova_fast(iovad, pfn, 16), 0);
	}
	for (i = 0; i < 10; i++)
		assert_int_equal(iom_free_iova_fast(iovad, pfns[i], sizes[i]), 0);
	/* the non-fast API */
	{
		struct iom_iova *a = iom_alloc_iova(iovad, 6, 0x7fff, false);
		struct iom_iova *b = iom_alloc_iova(iovad, 6, 0x7fff, true);

		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(a->pfn_hi, 0x7fff);
		assert_int_equal(a->pfn_hi - a->pfn_lo + 1, 6);
		assert_int_equal(b->pfn_lo % 8, 0);
		assert_true(b->pfn_hi < a->pfn_lo);
		assert_int_equal(iom___free_iova(iovad, a), 0);
		assert_int_equal(iom_free_iova(iovad, b->pfn_lo + 2), 0);
	}
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_put_iova_domain(iovad);
	iom_machine_destroy(m);
}

static void test_exhaustion_returns_zero(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iova_domain *iovad = iom_init_iova_domain(m, 4096, 1);
	struct iom_iova_stats st;
	unsigned long n = 0, pfn;

	(void)state;
	/* pfns 1..64 */
	while ((pfn = iom_alloc_iova_fast(iovad, 1, 64, true)))
		n++;
	assert_int_equal(n, 64);
	assert_int_equal(iom_alloc_iova_fast(iovad, 1, 64, true), 0);
	assert_null(iom_alloc_iova(iovad, 1, 64, false));
	assert_int_equal(iom_alloc_iova_fast(iovad, 2, 64, false), 0);
	/* ... but higher up there is space */
	assert_int_not_equal(iom_alloc_iova_fast(iovad, 1, 1UL << 21, false), 0);
	/*
	 * Below 4 GiB, a failed size blocks that size and larger until a
	 * range there is freed (the kernel's max32_alloc_size).
	 */
	assert_int_equal(iom_alloc_iova_fast(iovad, 1, 1000, false), 0);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_ranges, 65);
	assert_int_equal(st.flushes, 2);	/* the two that asked for it */
	iom_put_iova_domain(iovad);
	iom_machine_destroy(m);
}

static void test_cache_hit_and_flush_retry(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iova_domain *iovad = iom_init_iova_domain(m, 4096, 1);
	struct iom_iova_stats st;
	unsigned long p8, again, pfns[63], i;

	(void)state;
	/* a freed size-8 range comes back from the magazine */
	p8 = iom_alloc_iova_fast(iovad, 8, 0xffff, false);
	assert_int_not_equal(p8, 0);
	assert_int_equal(iom_free_iova_fast(iovad, p8, 8), 0);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_cached, 1);
	assert_int_equal(st.nr_ranges, 1);	/* still in the tree */
	assert_non_null(iom_find_iova(iovad, p8));
	again = iom_alloc_iova_fast(iovad, 5, 0xffff, false);	/* rounds to 8 */
	assert_int_equal(again, p8);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.rcache_hits, 1);
	assert_int_equal(st.nr_cached, 0);
	/* a cached range above the limit is not handed out */
	assert_int_equal(iom_free_iova_fast(iovad, again, 5), 0);
	again = iom_alloc_iova_fast(iovad, 8, 0xfff, false);
	assert_true(again != p8 && again + 7 <= 0xfff);
	assert_int_equal(iom_free_iova_fast(iovad, again, 8), 0);

	/* fill 1..63 with one-page ranges, free them all into the cache */
	iom_free_cpu_cached_iovas(iovad);
	for (i = 0; i < 63; i++) {
		pfns[i] = iom_alloc_iova_fast(iovad, 1, 63, false);
		assert_int_not_equal(pfns[i], 0);
	}
	assert_int_equal(iom_alloc_iova_fast(iovad, 1, 63, false), 0);
	for (i = 0; i < 63; i++)
		assert_int_equal(iom_free_iova_fast(iovad, pfns[i], 1), 0);
	/* the tree is full of cached ranges: size 2 fails without a flush */
	assert_int_equal(iom_alloc_iova_fast(iovad, 2, 63, false), 0);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_cached, 63);
	assert_int_equal(st.flushes, 0);
	again = iom_alloc_iova_fast(iovad, 2, 63, true);
	assert_int_not_equal(again, 0);
	assert_int_equal(again, 62);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.nr_cached, 0);
	assert_int_equal(st.nr_ranges, 1);
	assert_int_equal(iom_free_iova_fast(iovad, again, 2), 0);
	iom_put_iova_domain(iovad);
	iom_machine_destroy(m);
}

/* ---- depot and other threads ------------------------------------------------ */

struct other {
	struct iom_iova_domain *iovad;
	pthread_barrier_t *bar;
	unsigned long n, got, size, limit;
	unsigned long pfns[64];
};

/* Takes one range (from the depot), then caches n ranges, waits, exits. */
static void *other_thread(void *p)
{
	struct other *o = p;
	unsigned long i;

	o->got = iom_alloc_iova_fast(o->iovad, 1, o->limit, false);
	for (i = 0; i < o->n; i++)
		o->pfns[i] = iom_alloc_iova_fast(o->iovad, o->size, o->limit, false);
	for (i = 0; i < o->n; i++)
		if (o->pfns[i])
			iom_free_iova_fast(o->iovad, o->pfns[i], o->size);
	pthread_barrier_wait(o->bar);	/* main looks at the caches */
	pthread_barrier_wait(o->bar);	/* main flushed (or not) */
	return NULL;
}

static void test_depot_and_thread_caches(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iova_domain *iovad = iom_init_iova_domain(m, 4096, 1);
	unsigned long n = 2 * IOM_IOVA_MAG_SIZE + 1, *pfns = calloc(n, sizeof(long));
	struct iom_iova_stats st, st2;
	pthread_barrier_t bar;
	struct other o = { .iovad = iovad, .bar = &bar, .n = 20, .size = 4,
			   .limit = 0xfffff };
	pthread_t tid;
	unsigned long i;

	(void)state;
	assert_non_null(pfns);
	for (i = 0; i < n; i++)
		assert_int_not_equal(pfns[i] = iom_alloc_iova_fast(iovad, 1, 0xfffff,
								   false), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(iom_free_iova_fast(iovad, pfns[i], 1), 0);
	iom_iova_domain_stats(iovad, &st);
	/* loaded + prev full, one full magazine pushed to the depot */
	assert_int_equal(st.depot_mags, 1);
	assert_int_equal(st.nr_cached, n);

	/* another thread's first allocation comes from the depot */
	assert_int_equal(pthread_barrier_init(&bar, NULL, 2), 0);
	assert_int_equal(pthread_create(&tid, NULL, other_thread, &o), 0);
	pthread_barrier_wait(&bar);
	assert_int_not_equal(o.got, 0);
	iom_iova_domain_stats(iovad, &st2);
	assert_int_equal(st2.depot_mags, 0);
	assert_int_equal(st2.rcache_hits, st.rcache_hits + 1);
	/* its 20 size-4 ranges sit in its own cache */
	assert_int_equal(st2.nr_cached, n - 1 + 20);
	pthread_barrier_wait(&bar);
	pthread_join(tid, NULL);
	/* it exited: its caches went back to the tree */
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_cached, n - IOM_IOVA_MAG_SIZE);
	assert_int_equal(st.nr_ranges, n - IOM_IOVA_MAG_SIZE + 1);	/* + o.got */
	assert_int_equal(iom_free_iova_fast(iovad, o.got, 1), 0);
	iom_free_cpu_cached_iovas(iovad);
	iom_free_global_cached_iovas(iovad);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_cached, 0);
	assert_int_equal(st.nr_ranges, 0);

	/*
	 * A live thread's cache is flushed by a retry from this thread: it
	 * takes 1..63 and caches 62 of them; here size 2 fails without a
	 * flush and succeeds with one.
	 */
	o.n = 62;
	o.size = 1;
	o.limit = 63;
	assert_int_equal(pthread_create(&tid, NULL, other_thread, &o), 0);
	pthread_barrier_wait(&bar);
	assert_int_equal(o.got, 63);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_cached, 62);
	assert_int_equal(iom_alloc_iova_fast(iovad, 2, 63, false), 0);
	i = iom_alloc_iova_fast(iovad, 2, 63, true);
	assert_int_equal(i, 60);	/* 63 is still held */
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_cached, 0);
	assert_int_equal(st.flushes, 1);
	pthread_barrier_wait(&bar);
	pthread_join(tid, NULL);
	assert_int_equal(iom_free_iova_fast(iovad, i, 2), 0);
	assert_int_equal(iom_free_iova_fast(iovad, o.got, 1), 0);
	pthread_barrier_destroy(&bar);
	free(pfns);
	iom_put_iova_domain(iovad);
	iom_machine_destroy(m);
}

static void test_bad_frees_change_nothing(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iova_domain *iovad = iom_init_iova_domain(m, 4096, 1);
	struct iom_iova_stats st;
	struct iom_iova *res, *big;
	unsigned long p, q;

	(void)state;
	p = iom_alloc_iova_fast(iovad, 8, 0xffff, false);
	q = iom_alloc_iova_fast(iovad, 100, 0xffff, false);
	assert_true(p && q);
	test_log_reset(&tlog);
	/* never allocated */
	assert_int_equal(iom_free_iova_fast(iovad, 0x1234, 1), -EINVAL);
	assert_int_equal(iom_free_iova_fast(iovad, 1UL << 40, 1), -EINVAL);
	assert_int_equal(iom_free_iova(iovad, 0x1234), -EINVAL);
	/* wrong size, not the first pfn */
	assert_int_equal(iom_free_iova_fast(iovad, p, 16), -EINVAL);
	assert_int_equal(iom_free_iova_fast(iovad, p + 1, 8), -EINVAL);
	assert_int_equal(iom_free_iova_fast(iovad, q, 99), -EINVAL);
	assert_int_equal(iom_free_iova_fast(iovad, 0, 0), -EINVAL);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.bad_frees, 7);
	assert_int_equal(st.nr_ranges, 2);
	assert_true(test_log_contains(&tlog, "iova: free of pfn"));
	/* the real frees still work, once */
	assert_int_equal(iom_free_iova_fast(iovad, p, 8), 0);
	assert_int_equal(iom_free_iova_fast(iovad, p, 8), -EINVAL);	/* double */
	assert_int_equal(iom_free_iova(iovad, p), -EINVAL);	/* it is cached */
	assert_int_equal(iom_free_iova_fast(iovad, q, 100), 0);
	assert_int_equal(iom_free_iova_fast(iovad, q, 100), -EINVAL);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.bad_frees, 10);
	assert_int_equal(st.nr_ranges, 1);	/* p, cached */
	assert_int_equal(st.nr_cached, 1);
	/* the cached range is handed out once only */
	assert_int_equal(iom_alloc_iova_fast(iovad, 8, 0xffff, false), p);
	assert_int_not_equal(iom_alloc_iova_fast(iovad, 8, 0xffff, false), p);

	/* above the state map (pfn 2^36): the tree checks the frees */
	{
		unsigned long hi = iom_alloc_iova_fast(iovad, 4, (1UL << 40) - 1,
						       false);

		assert_true(hi >= 1UL << 36);
		assert_int_equal(hi % 4, 0);
		assert_int_equal(iom_free_iova_fast(iovad, hi, 2), -EINVAL);
		assert_int_equal(iom_free_iova_fast(iovad, hi, 4), 0);
		assert_int_equal(iom_free_iova_fast(iovad, hi, 4), -EINVAL);
		assert_null(iom_find_iova(iovad, hi));
	}

	/* reserved ranges: never handed out, not freeable as allocations */
	res = iom_reserve_iova(iovad, 0x100, 0x1ff);
	assert_non_null(res);
	assert_null(iom_reserve_iova(iovad, 0x200, 0x100));
	assert_int_equal(iom_free_iova_fast(iovad, 0x100, 256), -EINVAL);
	/* overlapping reservations merge */
	res = iom_reserve_iova(iovad, 0x180, 0x27f);
	assert_non_null(res);
	assert_int_equal(res->pfn_lo, 0x100);
	assert_int_equal(res->pfn_hi, 0x27f);
	/* a reservation over an allocated range is refused */
	big = iom_alloc_iova(iovad, 4, 0x3ff, true);
	assert_non_null(big);
	assert_null(iom_reserve_iova(iovad, big->pfn_lo, big->pfn_hi + 10));
	assert_true(test_log_contains(&tlog, "overlaps allocated"));
	for (;;) {
		unsigned long pfn = iom_alloc_iova_fast(iovad, 1, 0x2ff, false);

		if (!pfn)
			break;
		assert_true(pfn < 0x100 || pfn > 0x27f);
	}
	assert_int_equal(iom___free_iova(iovad, res), 0);
	assert_int_equal(iom___free_iova(iovad, big), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_put_iova_domain(iovad);
	iom_machine_destroy(m);
}

/* ---- concurrency --------------------------------------------------------------- */

#define CONC_THREADS	3
#define CONC_ROUNDS	3000
#define CONC_WINDOW	12
#define CONC_LIMIT	2047	/* small: exhaustion and flushes happen */

struct conc {
	struct iom_iova_domain *iovad;
	_Atomic uint8_t *stamps;	/* owner id + 1 of every pfn */
	unsigned int id;
	unsigned long overlaps, bad_align, free_errors, fails, allocs;
};

static void *conc_thread(void *p)
{
	struct conc *c = p;
	unsigned long pfn[CONC_WINDOW] = { 0 }, size[CONC_WINDOW] = { 0 };
	uint64_t seed = 0x1234567ULL * (c->id + 1);
	unsigned int r, slot, i;

	for (r = 0; r < CONC_ROUNDS; r++) {
		slot = r % CONC_WINDOW;
		if (pfn[slot]) {
			for (i = 0; i < size[slot]; i++)
				atomic_store(&c->stamps[pfn[slot] + i], 0);
			if (iom_free_iova_fast(c->iovad, pfn[slot], size[slot]))
				c->free_errors++;
			pfn[slot] = 0;
		}
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		size[slot] = 1 + seed % 32;
		if (seed % 97 == 0)
			size[slot] = 40;	/* not cacheable */
		pfn[slot] = iom_alloc_iova_fast(c->iovad, size[slot], CONC_LIMIT,
						true);
		if (!pfn[slot]) {
			c->fails++;
			continue;
		}
		c->allocs++;
		if (pfn[slot] % roundup_pow2(size[slot]) ||
		    pfn[slot] + size[slot] - 1 > CONC_LIMIT)
			c->bad_align++;
		for (i = 0; i < size[slot]; i++) {
			uint8_t zero = 0;

			if (!atomic_compare_exchange_strong(&c->stamps[pfn[slot] + i],
							    &zero, (uint8_t)(c->id + 1)))
				c->overlaps++;
		}
	}
	for (slot = 0; slot < CONC_WINDOW; slot++) {
		if (!pfn[slot])
			continue;
		for (i = 0; i < size[slot]; i++)
			atomic_store(&c->stamps[pfn[slot] + i], 0);
		if (iom_free_iova_fast(c->iovad, pfn[slot], size[slot]))
			c->free_errors++;
	}
	return NULL;
}

static void test_concurrent_alloc_free_never_overlaps(void **state)
{
	struct iom_machine *m = machine();
	struct iom_iova_domain *iovad = iom_init_iova_domain(m, 4096, 1);
	_Atomic uint8_t *stamps = calloc(CONC_LIMIT + 1, 1);
	struct conc c[CONC_THREADS];
	pthread_t tids[CONC_THREADS];
	struct iom_iova_stats st;
	unsigned long allocs = 0, i;

	(void)state;
	assert_non_null(stamps);
	for (i = 0; i < CONC_THREADS; i++) {
		c[i] = (struct conc){ .iovad = iovad, .stamps = stamps,
				      .id = (unsigned int)i };
		assert_int_equal(pthread_create(&tids[i], NULL, conc_thread, &c[i]), 0);
	}
	for (i = 0; i < CONC_THREADS; i++)
		pthread_join(tids[i], NULL);
	for (i = 0; i < CONC_THREADS; i++) {
		assert_int_equal(c[i].overlaps, 0);
		assert_int_equal(c[i].bad_align, 0);
		assert_int_equal(c[i].free_errors, 0);
		allocs += c[i].allocs;
	}
	assert_true(allocs > CONC_THREADS * CONC_ROUNDS / 2);
	for (i = 0; i <= CONC_LIMIT; i++)
		assert_int_equal(atomic_load(&stamps[i]), 0);
	/* every thread exited: what is left in the tree is the depot's */
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_ranges, st.nr_cached);
	assert_int_equal(st.bad_frees, 0);
	print_message("allocs %lu, failed %lu, flushes %lu, cache hits %lu\n",
		      allocs, c[0].fails + c[1].fails + c[2].fails, st.flushes,
		      st.rcache_hits);
	iom_free_global_cached_iovas(iovad);
	iom_iova_domain_stats(iovad, &st);
	assert_int_equal(st.nr_ranges, 0);
	free((void *)stamps);
	iom_put_iova_domain(iovad);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_and_bad_args),
		cmocka_unit_test(test_aligned_top_down_below_limit),
		cmocka_unit_test(test_exhaustion_returns_zero),
		cmocka_unit_test(test_cache_hit_and_flush_retry),
		cmocka_unit_test(test_depot_and_thread_caches),
		cmocka_unit_test(test_bad_frees_change_nothing),
		cmocka_unit_test(test_concurrent_alloc_free_never_overlaps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
