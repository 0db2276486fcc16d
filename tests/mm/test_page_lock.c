/* SPDX-License-Identifier: MIT */
/*
 * The page lock (mm/filemap.c: lock_page, trylock_page, unlock_page,
 * wait_on_page_locked). What it proves:
 *  - a locker or waiter really sleeps until the holder unlocks, and then
 *    sees what the holder wrote just before unlocking;
 *  - under contention the lock excludes: a plain counter incremented only
 *    under the page lock loses no update (and ThreadSanitizer sees no race);
 *  - pages that share a wait bucket do not steal each other's wakeups.
 * Workers never assert; the main thread checks after join.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct iom_machine *machine(void)
{
	struct iom_machine *m = test_machine(16, NULL, NULL);

	assert_non_null(m);
	return m;
}

struct waiter {
	struct iom_page *page;
	bool lock;		/* lock_page, else wait_on_page_locked */
	int *value;		/* written by the holder before it unlocks */
	int seen;
	atomic_bool done;
};

static void *waiter_fn(void *arg)
{
	struct waiter *w = arg;

	if (w->lock)
		iom_lock_page(w->page);
	else
		iom_wait_on_page_locked(w->page);
	w->seen = *w->value;
	atomic_store(&w->done, true);
	if (w->lock)
		iom_unlock_page(w->page);
	return NULL;
}

static void trylock_fails_while_locked(void **state)
{
	struct iom_machine *m = machine();
	struct iom_page *page = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);

	assert_non_null(page);
	assert_true(iom_trylock_page(page));
	assert_true(iom_PageLocked(page));
	assert_false(iom_trylock_page(page));
	iom_unlock_page(page);
	assert_false(iom_PageLocked(page));
	assert_false(iom_PageWaiters(page));
	iom_lock_page(page);			/* uncontended: no sleep */
	assert_true(iom_PageLocked(page));
	iom_unlock_page(page);
	iom_wait_on_page_locked(page);		/* unlocked: returns at once */
	assert_int_equal(iom_put_page(m, page), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static void sleeper_wakes_only_at_unlock(bool lock)
{
	struct iom_machine *m = machine();
	struct iom_page *page = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	int value = 0;
	struct waiter w = { .page = page, .lock = lock, .value = &value };
	pthread_t thr;

	assert_non_null(page);
	iom_lock_page(page);
	assert_int_equal(pthread_create(&thr, NULL, waiter_fn, &w), 0);
	/* it announces itself with PG_waiters once it is about to sleep */
	while (!iom_PageWaiters(page))
		sched_yield();
	sleep_ms(20);
	assert_false(atomic_load(&w.done));
	value = 42;
	iom_unlock_page(page);
	assert_int_equal(pthread_join(thr, NULL), 0);
	assert_int_equal(w.seen, 42);
	assert_false(iom_PageLocked(page));
	assert_int_equal(iom_put_page(m, page), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static void lock_page_sleeps_until_unlock(void **state)
{
	sleeper_wakes_only_at_unlock(true);
}

static void wait_on_page_locked_sleeps_until_unlock(void **state)
{
	sleeper_wakes_only_at_unlock(false);
}

#define NR_CONTENDERS	4
#define NR_ROUNDS	5000

struct contender {
	struct iom_page *page;
	unsigned long *counter;
	unsigned int id;
};

static void *contender_fn(void *arg)
{
	struct contender *c = arg;
	unsigned int i;

	for (i = 0; i < NR_ROUNDS; i++) {
		/* mix the fast and slow paths */
		if ((i + c->id) % 3 == 0) {
			while (!iom_trylock_page(c->page))
				sched_yield();
		} else {
			iom_lock_page(c->page);
		}
		(*c->counter)++;
		if (i % 64 == 0)
			sched_yield();	/* hold it a while: others sleep */
		iom_unlock_page(c->page);
	}
	return NULL;
}

static void contended_lock_loses_no_update(void **state)
{
	struct iom_machine *m = machine();
	struct iom_page *page = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	struct contender c[NR_CONTENDERS];
	pthread_t thr[NR_CONTENDERS];
	unsigned long counter = 0;
	unsigned int i;

	assert_non_null(page);
	for (i = 0; i < NR_CONTENDERS; i++) {
		c[i] = (struct contender){ page, &counter, i };
		assert_int_equal(pthread_create(&thr[i], NULL, contender_fn, &c[i]), 0);
	}
	for (i = 0; i < NR_CONTENDERS; i++)
		assert_int_equal(pthread_join(thr[i], NULL), 0);
	assert_int_equal(counter, (unsigned long)NR_CONTENDERS * NR_ROUNDS);
	assert_false(iom_PageLocked(page));
	assert_int_equal(iom_put_page(m, page), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

/*
 * Mirrors page_waitqueue() in src/mm/filemap.c to find two pages that share
 * a bucket. If that hash changes the test still passes, but may then test
 * two pages in different buckets.
 */
static unsigned int wait_bucket(const struct iom_page *page)
{
	uint64_t key = (uint64_t)(uintptr_t)page / sizeof(struct iom_page);

	return (unsigned int)((key * 0x61C8864680B583EBULL) >> (64 - 8));
}

static void pages_sharing_a_bucket_wake_separately(void **state)
{
	struct iom_machine *m = machine();
	struct iom_page *pages[300], *a = NULL, *b = NULL;
	unsigned int i, j, n;
	int va = 0, vb = 0;
	struct waiter wa = { .lock = true, .value = &va };
	struct waiter wb = { .lock = false, .value = &vb };
	pthread_t ta, tb;

	/* 300 pages in 256 buckets: two must share one */
	for (n = 0; n < 300 && !a; n++) {
		pages[n] = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
		assert_non_null(pages[n]);
		for (j = 0; j < n; j++) {
			if (wait_bucket(pages[j]) == wait_bucket(pages[n])) {
				a = pages[j];
				b = pages[n];
				break;
			}
		}
	}
	assert_non_null(a);
	wa.page = a;
	wb.page = b;
	iom_lock_page(a);
	iom_lock_page(b);
	assert_int_equal(pthread_create(&ta, NULL, waiter_fn, &wa), 0);
	assert_int_equal(pthread_create(&tb, NULL, waiter_fn, &wb), 0);
	while (!iom_PageWaiters(a) || !iom_PageWaiters(b))
		sched_yield();

	/* b's unlock wakes the bucket; a's waiter must go back to sleep */
	vb = 2;
	iom_unlock_page(b);
	assert_int_equal(pthread_join(tb, NULL), 0);
	assert_int_equal(wb.seen, 2);
	sleep_ms(20);
	assert_false(atomic_load(&wa.done));
	assert_true(iom_PageWaiters(a));
	va = 1;
	iom_unlock_page(a);
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(wa.seen, 1);
	assert_false(iom_PageLocked(a));
	assert_false(iom_PageLocked(b));
	for (i = 0; i < n; i++)
		assert_int_equal(iom_put_page(m, pages[i]), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(trylock_fails_while_locked),
		cmocka_unit_test(lock_page_sleeps_until_unlock),
		cmocka_unit_test(wait_on_page_locked_sleeps_until_unlock),
		cmocka_unit_test(contended_lock_loses_no_update),
		cmocka_unit_test(pages_sharing_a_bucket_wake_separately),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
