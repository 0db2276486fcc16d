/* SPDX-License-Identifier: MIT */
/*
 * MMU notifiers: every change of a process's page table is bracketed by
 * invalidate_range_start/end with the right event and range (munmap,
 * mprotect, COW, fork, try_to_unmap, try_to_migrate), ->release runs at
 * exit, and unregister waits for a callback that is running.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "mm/mm_types.h"

#define PG IOM_PAGE_SIZE
#define MAX_EV 64

static struct test_log tlog;

struct ev {
	bool end;
	enum iom_mmu_notifier_event event;
	uint64_t start, len;
};

struct recorder {
	struct iom_mmu_notifier mn;
	pthread_mutex_t lock;
	unsigned int n;
	struct ev ev[MAX_EV];
	int depth;		/* start minus end: stays balanced */
	int bad;		/* an end without its start */
	int releases;
};

static void rec(struct recorder *r, const struct iom_mmu_notifier_range *range,
		bool end)
{
	pthread_mutex_lock(&r->lock);
	if (r->n < MAX_EV)
		r->ev[r->n] = (struct ev){ end, range->event, range->start,
					  range->end - range->start };
	r->n++;
	if (end && --r->depth < 0)
		r->bad++;
	if (!end)
		r->depth++;
	pthread_mutex_unlock(&r->lock);
}

static int rec_start(struct iom_mmu_notifier *mn,
		     const struct iom_mmu_notifier_range *range)
{
	rec((struct recorder *)mn, range, false);
	return 0;
}

static void rec_end(struct iom_mmu_notifier *mn,
		    const struct iom_mmu_notifier_range *range)
{
	rec((struct recorder *)mn, range, true);
}

static void rec_release(struct iom_mmu_notifier *mn, struct iom_mm *mm)
{
	((struct recorder *)mn)->releases++;
}

static const struct iom_mmu_notifier_ops rec_ops = {
	.release = rec_release,
	.invalidate_range_start = rec_start,
	.invalidate_range_end = rec_end,
};

static void rec_init(struct recorder *r)
{
	memset(r, 0, sizeof(*r));
	r->mn.ops = &rec_ops;
	pthread_mutex_init(&r->lock, NULL);
}

static void rec_reset(struct recorder *r)
{
	r->n = 0;
}

/* Exactly one start/end pair, with this event and range. */
static void assert_one_pair(struct recorder *r, enum iom_mmu_notifier_event ev,
			    uint64_t start, uint64_t len)
{
	assert_int_equal(r->n, 2);
	assert_false(r->ev[0].end);
	assert_true(r->ev[1].end);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r->ev[i].event, ev);
		assert_int_equal(r->ev[i].start, start);
		assert_int_equal(r->ev[i].len, len);
	}
	assert_int_equal(r->depth, 0);
	assert_int_equal(r->bad, 0);
	rec_reset(r);
}

static void notifiers_see_every_change_with_event_and_range(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_inode *inode;
	struct recorder r, rc;
	struct iom_mm *mm, *child;
	struct iom_page *page;
	uint64_t a, f, v = 1;

	rec_init(&r);
	rec_init(&rc);
	assert_int_equal(iom_inode_create(m, 2 * PG, &inode), 0);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	assert_int_equal(iom_mmu_notifier_register(NULL, mm), -EINVAL);
	assert_int_equal(iom_mmu_notifier_register(&r.mn, NULL), -EINVAL);
	assert_int_equal(iom_mmu_notifier_register(&r.mn, mm), 0);
	assert_int_equal(iom_mmu_notifier_register(&r.mn, mm), -EBUSY);
	assert_ptr_equal(r.mn.mm, mm);

	a = 0;
	assert_int_equal(iom_mmap(mm, 0, 8 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
				  IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0, &a), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(iom_write(mm, a + i * PG, &v, 8), 0);
	assert_int_equal(r.n, 0);	/* faults into empty PTEs notify nothing */

	assert_int_equal(iom_munmap(mm, a + 6 * PG, 2 * PG), 0);
	assert_one_pair(&r, IOM_MMU_NOTIFY_UNMAP, a + 6 * PG, 2 * PG);
	assert_int_equal(iom_munmap(mm, a + 6 * PG, 2 * PG), 0);
	assert_int_equal(r.n, 0);	/* nothing there */

	assert_int_equal(iom_mprotect(mm, a + PG, 2 * PG, IOM_PROT_READ), 0);
	assert_one_pair(&r, IOM_MMU_NOTIFY_PROTECTION_VMA, a + PG, 2 * PG);

	/* fork write-protects the parent's private VMAs: one pair per VMA */
	assert_int_equal(iom_fork(mm, &child), 0);
	assert_int_equal(r.n, 6);
	for (int i = 0; i < 6; i++)
		assert_int_equal(r.ev[i].event, IOM_MMU_NOTIFY_PROTECTION_PAGE);
	assert_int_equal(r.ev[0].start, a);
	assert_int_equal(r.ev[0].len, PG);
	rec_reset(&r);
	assert_int_equal(iom_mmu_notifier_register(&rc.mn, child), 0);

	/* COW in the parent: CLEAR of that one page, nothing for the child */
	assert_int_equal(iom_write(mm, a + 4 * PG + 8, &v, 8), 0);
	assert_one_pair(&r, IOM_MMU_NOTIFY_CLEAR, a + 4 * PG, PG);
	assert_int_equal(rc.n, 0);
	/* the child's write: its page is now exclusive, reused, no notify */
	assert_int_equal(iom_write(child, a + 4 * PG + 8, &v, 8), 0);
	assert_int_equal(rc.n, 0);

	/* try_to_migrate and try_to_unmap of a shared file page in two processes */
	assert_int_equal(iom_mmap(mm, 0, 2 * PG, IOM_PROT_READ, IOM_MAP_SHARED,
				  inode, 0, &f), 0);
	assert_int_equal(iom_read(mm, f + PG, &v, 8), 0);
	page = iom_find_get_page(iom_inode_mapping(inode), 1);
	assert_non_null(page);
	iom_lock_page(page);
	assert_true(iom_try_to_migrate(m, page));
	assert_one_pair(&r, IOM_MMU_NOTIFY_MIGRATE, f + PG, PG);
	iom_remove_migration_ptes(m, page, page);
	assert_int_equal(r.n, 0);
	assert_true(iom_try_to_unmap(m, page));
	assert_one_pair(&r, IOM_MMU_NOTIFY_CLEAR, f + PG, PG);
	iom_unlock_page(page);
	iom_put_page(m, page);
	assert_int_equal(rc.n, 0);

	/* exit: ->release once, no more callbacks, unregister is a no-op */
	iom_mm_destroy(mm);
	assert_int_equal(r.releases, 1);
	assert_int_equal(r.n, 0);
	assert_null(r.mn.mm);
	iom_mmu_notifier_unregister(&r.mn);

	/* unregister: no more callbacks */
	iom_mmu_notifier_unregister(&rc.mn);
	assert_null(rc.mn.mm);
	assert_int_equal(iom_munmap(child, a, 8 * PG), 0);
	assert_int_equal(rc.n, 0);
	iom_mm_destroy(child);
	assert_int_equal(rc.releases, 0);
	assert_int_equal(iom_inode_destroy(inode), 0);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
	pthread_mutex_destroy(&r.lock);
	pthread_mutex_destroy(&rc.lock);
}

/* ---- unregister waits for a running callback ------------------------------ */

struct slow {
	struct iom_mmu_notifier mn;
	atomic_int in_callback;		/* 1 while start runs */
	atomic_bool let_go;
	atomic_bool callback_done;
	atomic_bool done_before_unregister_returned;
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int slow_start(struct iom_mmu_notifier *mn,
		      const struct iom_mmu_notifier_range *range)
{
	struct slow *s = (struct slow *)mn;

	atomic_store(&s->in_callback, 1);
	while (!atomic_load(&s->let_go))
		sleep_ms(1);
	atomic_store(&s->callback_done, true);
	atomic_store(&s->in_callback, 0);
	return 0;
}

static const struct iom_mmu_notifier_ops slow_ops = {
	.invalidate_range_start = slow_start,
};

struct unmapper {
	struct iom_mm *mm;
	uint64_t addr;
	int ret;
};

static void *unmap_thread(void *arg)
{
	struct unmapper *u = arg;

	u->ret = iom_munmap(u->mm, u->addr, PG);
	return NULL;
}

static void *unregister_thread(void *arg)
{
	struct slow *s = arg;

	iom_mmu_notifier_unregister(&s->mn);
	/* whatever the callback did, it did before we got here */
	atomic_store(&s->done_before_unregister_returned,
		     atomic_load(&s->callback_done));
	return NULL;
}

/*
 * What this proves: iom_mmu_notifier_unregister() does not return while a
 * callback of that notifier is running (it is still blocked after 50 ms,
 * and when it returns the callback has finished).
 */
static void unregister_waits_for_running_callbacks(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct slow s;
	struct unmapper u;
	pthread_t tu, tr;
	struct iom_mm *mm;
	uint64_t a, v = 1;

	memset(&s, 0, sizeof(s));
	s.mn.ops = &slow_ops;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	assert_int_equal(iom_mmap(mm, 0, PG, IOM_PROT_READ | IOM_PROT_WRITE,
				  IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0, &a), 0);
	assert_int_equal(iom_write(mm, a, &v, 8), 0);
	assert_int_equal(iom_mmu_notifier_register(&s.mn, mm), 0);

	u = (struct unmapper){ mm, a, -1 };
	assert_int_equal(pthread_create(&tu, NULL, unmap_thread, &u), 0);
	while (!atomic_load(&s.in_callback))
		sleep_ms(1);
	assert_int_equal(pthread_create(&tr, NULL, unregister_thread, &s), 0);
	sleep_ms(50);
	assert_false(atomic_load(&s.callback_done));
	atomic_store(&s.let_go, true);
	assert_int_equal(pthread_join(tr, NULL), 0);
	assert_true(atomic_load(&s.done_before_unregister_returned));
	assert_int_equal(pthread_join(tu, NULL), 0);
	assert_int_equal(u.ret, 0);
	assert_null(s.mn.mm);
	iom_mm_destroy(mm);
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(notifiers_see_every_change_with_event_and_range),
		cmocka_unit_test(unregister_waits_for_running_callbacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
