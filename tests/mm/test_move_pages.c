/* SPDX-License-Identifier: MIT */
/*
 * move_pages(2) (iom_move_pages) and the migration batch of Linux 6.3/6.4
 * (migrate_pages_batch, migrate_pages_sync): statuses and errors as the
 * kernel's do_pages_move(), one TLB flush per batch of up to 512 pages,
 * the synchronous one-by-one retry of what the batch could not move, and
 * a failure in the middle of a batch that leaves its page as it was.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/migrate.h>

#include "mm_util.h"

#define PG IOM_PAGE_SIZE

static struct test_log tlog;

struct fixture {
	struct iom_machine *m;
	struct iom_mm *mm;
	uint64_t base;
	unsigned long nr;
	uint64_t *addr;
	int *nodes, *status;
};

/* A 2-node machine and a process with @nr populated anonymous pages on
 * node 0, page i stamped with i. */
static void setup(struct fixture *f, unsigned long nr)
{
	struct iom_machine_config cfg = { 0 };

	memset(f, 0, sizeof(*f));
	cfg.mem_size = 64ULL << 20;
	cfg.nr_nodes = 2;
	f->m = test_machine(0, &tlog, &cfg);
	assert_non_null(f->m);
	iom_rcu_register_thread();
	assert_int_equal(iom_set_numa_node(f->m, 0), 0);
	assert_int_equal(iom_mm_create(f->m, &f->mm), 0);
	f->nr = nr;
	f->base = test_mmap(f->mm, 0, nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			    IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE,
			    NULL, 0);
	f->addr = calloc(nr, sizeof(*f->addr));
	f->nodes = calloc(nr, sizeof(int));
	f->status = calloc(nr, sizeof(int));
	assert_non_null(f->addr);
	assert_non_null(f->nodes);
	assert_non_null(f->status);
	for (unsigned long i = 0; i < nr; i++) {
		uint64_t v = 0x5eed0000ULL + i;

		f->addr[i] = f->base + i * PG + (i % 7) * 8;	/* any byte of the page */
		assert_int_equal(iom_write(f->mm, f->base + i * PG, &v, 8), 0);
	}
}

static void teardown(struct fixture *f)
{
	iom_mm_destroy(f->mm);
	iom_rcu_unregister_thread();
	test_assert_machine_clean(f->m);
	iom_machine_destroy(f->m);
	free(f->addr);
	free(f->nodes);
	free(f->status);
}

static void assert_stamps(struct fixture *f)
{
	for (unsigned long i = 0; i < f->nr; i++) {
		uint64_t v = 0;

		assert_int_equal(iom_read(f->mm, f->base + i * PG, &v, 8), 0);
		assert_int_equal(v, 0x5eed0000ULL + i);
	}
}

static int nid_at(struct fixture *f, unsigned long i)
{
	int st = -1;

	assert_int_equal(iom_move_pages(f->mm, 1, &f->addr[i], NULL, &st, 0), 0);
	return st;
}

static unsigned long ev(struct fixture *f, int item)
{
	return iom_vm_event_count(f->m, item);
}

/*
 * What this proves: 600 pages move to node 1 in one call, in two batches
 * (512 + 88) with one TLB flush each and no per-PTE flush; every status
 * says node 1, content and mapping are intact; moving them again to the
 * node they are on migrates nothing.
 */
static void move_pages_batches_and_flushes_once_per_batch(void **state)
{
	struct fixture f;
	unsigned long ok0, remote0, local0;

	(void)state;
	setup(&f, 600);
	assert_int_equal(iom_move_pages(f.mm, f.nr, f.addr, NULL, f.status, 0), 0);
	for (unsigned long i = 0; i < f.nr; i++) {
		assert_int_equal(f.status[i], 0);
		f.nodes[i] = 1;
	}
	ok0 = ev(&f, IOM_PGMIGRATE_SUCCESS);
	remote0 = ev(&f, IOM_NR_TLB_REMOTE_FLUSH);
	local0 = ev(&f, IOM_NR_TLB_LOCAL_FLUSH_ONE);

	assert_int_equal(iom_move_pages(f.mm, f.nr, f.addr, f.nodes, f.status,
					IOM_MPOL_MF_MOVE), 0);
	assert_int_equal(ev(&f, IOM_PGMIGRATE_SUCCESS) - ok0, 600);
	assert_int_equal(ev(&f, IOM_NR_TLB_REMOTE_FLUSH) - remote0, 2);
	assert_int_equal(ev(&f, IOM_NR_TLB_LOCAL_FLUSH_ONE) - local0, 0);
	for (unsigned long i = 0; i < f.nr; i++) {
		assert_int_equal(f.status[i], 1);
		assert_int_equal(nid_at(&f, i), 1);
	}
	assert_stamps(&f);

	/* already there: statuses say so, nothing migrates */
	memset(f.status, 0x7f, f.nr * sizeof(int));
	assert_int_equal(iom_move_pages(f.mm, f.nr, f.addr, f.nodes, f.status, 0), 0);
	assert_int_equal(ev(&f, IOM_PGMIGRATE_SUCCESS) - ok0, 600);
	for (unsigned long i = 0; i < f.nr; i++)
		assert_int_equal(f.status[i], 1);
	teardown(&f);
}

/*
 * What this proves: one page a call is a batch of one: one flush per page
 * (what migration cost before the 6.3 batching).
 */
static void single_page_calls_flush_per_page(void **state)
{
	struct fixture f;
	unsigned long remote0;

	(void)state;
	setup(&f, 16);
	remote0 = ev(&f, IOM_NR_TLB_REMOTE_FLUSH);
	for (unsigned long i = 0; i < f.nr; i++) {
		int node = 1;

		assert_int_equal(iom_move_pages(f.mm, 1, &f.addr[i], &node,
						&f.status[i], 0), 0);
		assert_int_equal(f.status[i], 1);
	}
	assert_int_equal(ev(&f, IOM_NR_TLB_REMOTE_FLUSH) - remote0, 16);
	assert_stamps(&f);
	teardown(&f);
}

/*
 * What this proves: an extra reference held on page 5 of 32 makes only
 * that page fail, after every pass of the batch and of its synchronous
 * retry. The other 31 move; page 5 keeps its PTE, content, node, LRU and
 * references; move_pages() returns 1 (pages not migrated).
 */
static void extra_reference_in_the_middle_of_a_batch(void **state)
{
	struct fixture f;
	struct iom_page *held, *p;
	unsigned long fail0;
	int ref;

	(void)state;
	setup(&f, 32);
	held = test_get_page_at(f.mm, f.base + 5 * PG);	/* our extra reference */
	ref = iom_page_ref_count(held);
	for (unsigned long i = 0; i < f.nr; i++)
		f.nodes[i] = 1;
	fail0 = ev(&f, IOM_PGMIGRATE_FAIL);

	assert_int_equal(iom_move_pages(f.mm, f.nr, f.addr, f.nodes, f.status, 0), 1);
	assert_int_equal(ev(&f, IOM_PGMIGRATE_FAIL) - fail0, 1);
	for (unsigned long i = 0; i < f.nr; i++)
		assert_int_equal(nid_at(&f, i), i == 5 ? 0 : 1);
	p = test_get_page_at(f.mm, f.base + 5 * PG);
	assert_ptr_equal(p, held);
	iom_put_page(f.m, p);
	assert_int_equal(iom_page_ref_count(held), ref);
	assert_int_equal(iom_page_mapcount(held), 1);
	assert_true(iom_PageLRU(held));
	assert_false(iom_PageLocked(held));
	assert_stamps(&f);

	/* reference dropped: it moves */
	iom_put_page(f.m, held);
	assert_int_equal(iom_move_pages(f.mm, f.nr, f.addr, f.nodes, f.status, 0), 0);
	for (unsigned long i = 0; i < f.nr; i++)
		assert_int_equal(f.status[i], 1);
	assert_stamps(&f);
	teardown(&f);
}

struct locker {
	struct fixture *f;
	struct iom_page *page;
	bool bad;
};

/* Hold @page's lock until the batch has moved the last page. */
static void *locker_fn(void *arg)
{
	struct locker *l = arg;
	struct fixture *f = l->f;
	int st = -1;

	iom_rcu_register_thread();
	while (st != 1) {
		if (iom_move_pages(f->mm, 1, &f->addr[f->nr - 1], NULL, &st, 0))
			l->bad = true;
		sched_yield();
	}
	iom_unlock_page(l->page);
	iom_rcu_unregister_thread();
	return NULL;
}

/*
 * What this proves: the ASYNC batch only trylocks; a page locked by
 * another thread is left for the synchronous retry, which takes that page
 * alone, sleeps on its lock, and migrates it with a flush of its own PTE.
 */
static void locked_page_is_retried_alone_in_sync_mode(void **state)
{
	struct fixture f;
	struct locker l;
	pthread_t t;
	unsigned long remote0, local0;

	(void)state;
	setup(&f, 32);
	l = (struct locker){ .f = &f, .page = test_get_page_at(f.mm, f.base + 3 * PG) };
	iom_lock_page(l.page);		/* the locker thread unlocks it */
	iom_put_page(f.m, l.page);
	for (unsigned long i = 0; i < f.nr; i++)
		f.nodes[i] = 1;
	remote0 = ev(&f, IOM_NR_TLB_REMOTE_FLUSH);
	local0 = ev(&f, IOM_NR_TLB_LOCAL_FLUSH_ONE);
	assert_int_equal(pthread_create(&t, NULL, locker_fn, &l), 0);
	assert_int_equal(iom_move_pages(f.mm, f.nr, f.addr, f.nodes, f.status, 0), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_false(l.bad);
	assert_int_equal(ev(&f, IOM_NR_TLB_REMOTE_FLUSH) - remote0, 1);
	assert_int_equal(ev(&f, IOM_NR_TLB_LOCAL_FLUSH_ONE) - local0, 1);
	for (unsigned long i = 0; i < f.nr; i++)
		assert_int_equal(nid_at(&f, i), 1);
	assert_stamps(&f);
	teardown(&f);
}

/*
 * What this proves: per-page errors go to status and do not stop the
 * call: no VMA (-EFAULT), nothing mapped (-ENOENT), a page shared with a
 * child after fork (-EACCES without MPOL_MF_MOVE_ALL, moved with it).
 */
static void per_page_errors_go_to_status(void **state)
{
	struct fixture f;
	struct iom_mm *child;
	uint64_t hole, addr[4];
	int nodes[4] = { 1, 1, 1, 1 }, status[4];

	(void)state;
	setup(&f, 4);
	hole = test_mmap(f.mm, 0, PG, IOM_PROT_READ | IOM_PROT_WRITE,
			 IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(iom_fork(f.mm, &child), 0);	/* pages now mapped twice */
	addr[0] = f.addr[0];		/* shared with the child */
	addr[1] = hole;			/* never faulted */
	addr[2] = 0x1000;		/* below every VMA */
	addr[3] = f.addr[3];
	assert_int_equal(iom_move_pages(f.mm, 4, addr, nodes, status, 0), 0);
	assert_int_equal(status[0], -EACCES);
	assert_int_equal(status[1], -ENOENT);
	assert_int_equal(status[2], -EFAULT);
	assert_int_equal(status[3], -EACCES);
	/* with MOVE_ALL the shared pages move, for both processes */
	assert_int_equal(iom_move_pages(f.mm, 4, addr, nodes, status,
					IOM_MPOL_MF_MOVE_ALL), 0);
	assert_int_equal(status[0], 1);
	assert_int_equal(status[3], 1);
	assert_int_equal(iom_move_pages(child, 1, &addr[0], NULL, &status[0], 0), 0);
	assert_int_equal(status[0], 1);
	assert_stamps(&f);
	iom_mm_destroy(child);
	teardown(&f);
}

/*
 * What this proves: bad arguments change nothing (-EINVAL); a node
 * without memory stops the call with -ENODEV after the pages before it
 * moved; stat mode reports -ENOENT and -EFAULT like the kernel.
 */
static void bad_input(void **state)
{
	struct fixture f;
	int nodes[4] = { 1, 1, 7, 1 }, status[4] = { 9, 9, 9, 9 };
	uint64_t stat_addr[2];

	(void)state;
	setup(&f, 4);
	assert_int_equal(iom_move_pages(NULL, 1, f.addr, f.nodes, f.status, 0), -EINVAL);
	assert_int_equal(iom_move_pages(f.mm, 1, NULL, f.nodes, f.status, 0), -EINVAL);
	assert_int_equal(iom_move_pages(f.mm, 1, f.addr, f.nodes, NULL, 0), -EINVAL);
	assert_int_equal(iom_move_pages(f.mm, 1, f.addr, f.nodes, f.status, 0x1), -EINVAL);
	assert_int_equal(iom_move_pages(f.mm, 0, NULL, NULL, NULL, 0), 0);
	for (unsigned long i = 0; i < f.nr; i++)
		assert_int_equal(nid_at(&f, i), 0);

	assert_int_equal(iom_move_pages(f.mm, 4, f.addr, nodes, status, 0), -ENODEV);
	assert_int_equal(status[0], 1);
	assert_int_equal(status[1], 1);
	assert_int_equal(status[2], 9);		/* not reached */
	assert_int_equal(nid_at(&f, 2), 0);
	assert_int_equal(nid_at(&f, 3), 0);
	nodes[2] = -1;
	assert_int_equal(iom_move_pages(f.mm, 4, f.addr, nodes, status, 0), -ENODEV);

	stat_addr[0] = 0x1000;
	stat_addr[1] = f.addr[1];
	assert_int_equal(iom_move_pages(f.mm, 2, stat_addr, NULL, status, 0), 0);
	assert_int_equal(status[0], -EFAULT);
	assert_int_equal(status[1], 1);
	assert_stamps(&f);
	teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(move_pages_batches_and_flushes_once_per_batch),
		cmocka_unit_test(single_page_calls_flush_per_page),
		cmocka_unit_test(extra_reference_in_the_middle_of_a_batch),
		cmocka_unit_test(locked_page_is_retried_alone_in_sync_mode),
		cmocka_unit_test(per_page_errors_go_to_status),
		cmocka_unit_test(bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
