/* SPDX-License-Identifier: MIT */
/*
 * Reverse mapping: a page mapped by several processes, and twice by one, is
 * found at every PTE; try_to_unmap clears them all and accesses refault;
 * try_to_migrate turns them into migration entries of the right kind,
 * fork copies those, and remove_migration_ptes puts them back (on the same
 * page or a new one). A CPU thread that meets a migration entry sleeps
 * until the page is unlocked and then reads the new page.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mm_util.h"

#define PG IOM_PAGE_SIZE

static struct test_log tlog;

/* ---- rmap walk ------------------------------------------------------------ */

#define MAX_SEEN 16

struct seen {
	unsigned int n;
	struct iom_mm *mm[MAX_SEEN];
	uint64_t addr[MAX_SEEN];
};

static bool record(struct iom_mm *mm, uint64_t addr, void *arg)
{
	struct seen *s = arg;

	if (s->n < MAX_SEEN) {
		s->mm[s->n] = mm;
		s->addr[s->n] = addr;
	}
	s->n++;
	return true;
}

static bool stop_after_one(struct iom_mm *mm, uint64_t addr, void *arg)
{
	(*(int *)arg)++;
	return false;
}

static bool seen_has(const struct seen *s, struct iom_mm *mm, uint64_t addr)
{
	for (unsigned int i = 0; i < s->n && i < MAX_SEEN; i++)
		if (s->mm[i] == mm && s->addr[i] == addr)
			return true;
	return false;
}

struct three {
	struct iom_machine *m;
	struct iom_inode *inode;
	struct iom_mm *mm[3];
	uint64_t a[3];
	uint64_t second;	/* mm[0]'s second mapping of the file */
	struct iom_page *page;	/* file page 1, with our reference */
};

/* File page 1 mapped in three processes, twice in the first. */
static void setup_three(struct three *t)
{
	char c;

	t->m = test_machine(16, &tlog, NULL);
	assert_int_equal(iom_inode_create(t->m, 4 * PG, &t->inode), 0);
	assert_int_equal(iom_file_write(t->inode, PG, "file page one", 13), 13);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(iom_mm_create(t->m, &t->mm[i]), 0);
		t->a[i] = test_mmap(t->mm[i], 0, 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			      IOM_MAP_SHARED, t->inode, 0);
		assert_int_equal(iom_read(t->mm[i], t->a[i] + PG, &c, 1), 0);
	}
	/* the second mapping starts at file offset PG: page 1 is its first */
	t->second = test_mmap(t->mm[0], 0, 2 * PG, IOM_PROT_READ, IOM_MAP_SHARED, t->inode, PG);
	assert_int_equal(iom_read(t->mm[0], t->second, &c, 1), 0);
	assert_int_equal(iom_write(t->mm[1], t->a[1] + PG + 20, "w", 1), 0);
	t->page = test_get_page_at(t->mm[0], t->second);
	assert_ptr_equal(t->page, iom_find_get_page(iom_inode_mapping(t->inode), 1));
	iom_put_page(t->m, t->page);	/* find_get_page's; follow_page's stays */
}

static void teardown_three(struct three *t)
{
	iom_put_page(t->m, t->page);
	for (int i = 0; i < 3; i++)
		iom_mm_destroy(t->mm[i]);
	assert_int_equal(iom_inode_destroy(t->inode), 0);
	test_assert_machine_clean(t->m);
	iom_machine_destroy(t->m);
}

static void rmap_walk_finds_every_pte_of_a_file_page(void **state)
{
	struct three t;
	struct seen s = { 0 };
	int calls = 0;

	setup_three(&t);
	assert_int_equal(iom_page_mapcount(t.page), 4);
	assert_int_equal(iom_page_ref_count(t.page), 1 + 4 + 1);	/* cache, PTEs, ours */
	iom_lock_page(t.page);
	assert_int_equal(iom_rmap_walk(t.m, t.page, record, &s), 4);
	assert_int_equal(s.n, 4);
	assert_true(seen_has(&s, t.mm[0], t.a[0] + PG));
	assert_true(seen_has(&s, t.mm[0], t.second));
	assert_true(seen_has(&s, t.mm[1], t.a[1] + PG));
	assert_true(seen_has(&s, t.mm[2], t.a[2] + PG));
	assert_int_equal(iom_rmap_walk(t.m, t.page, stop_after_one, &calls), 1);
	assert_int_equal(calls, 1);
	assert_int_equal(iom_rmap_walk(NULL, t.page, record, &s), 0);
	assert_int_equal(iom_rmap_walk(t.m, t.page, NULL, &s), 0);
	iom_unlock_page(t.page);
	teardown_three(&t);
}

static void rmap_walk_follows_anon_pages_through_fork(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *parent, *c1, *c2;
	struct iom_page *page;
	struct seen s = { 0 };
	uint64_t a, v = 1;

	assert_int_equal(iom_mm_create(m, &parent), 0);
	a = test_mmap(parent, 0, 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(iom_write(parent, a + 2 * PG, &v, 8), 0);
	assert_int_equal(iom_fork(parent, &c1), 0);
	assert_int_equal(iom_fork(c1, &c2), 0);
	/* split the parent's VMA: the page's VMA no longer starts at a */
	assert_int_equal(iom_mprotect(parent, a, PG, IOM_PROT_READ), 0);
	page = test_get_page_at(parent, a + 2 * PG);
	iom_lock_page(page);
	assert_int_equal(iom_rmap_walk(m, page, record, &s), 3);
	assert_true(seen_has(&s, parent, a + 2 * PG));
	assert_true(seen_has(&s, c1, a + 2 * PG));
	assert_true(seen_has(&s, c2, a + 2 * PG));
	iom_unlock_page(page);

	/* c1 writes: its PTE now maps a copy, which the walk of page skips */
	assert_int_equal(iom_write(c1, a + 2 * PG, &v, 8), 0);
	memset(&s, 0, sizeof(s));
	iom_lock_page(page);
	assert_int_equal(iom_rmap_walk(m, page, record, &s), 2);
	assert_false(seen_has(&s, c1, a + 2 * PG));
	/* no swap: an anonymous page cannot be unmapped */
	assert_false(iom_try_to_unmap(m, page));
	assert_int_equal(iom_page_mapcount(page), 2);
	iom_unlock_page(page);
	iom_put_page(m, page);

	iom_mm_destroy(c1);
	iom_mm_destroy(parent);
	iom_mm_destroy(c2);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static void try_to_unmap_clears_every_pte_and_accesses_refault(void **state)
{
	struct three t;
	char buf[16];

	setup_three(&t);
	iom_lock_page(t.page);
	assert_true(iom_try_to_unmap(t.m, t.page));
	iom_unlock_page(t.page);
	assert_int_equal(iom_page_mapcount(t.page), 0);
	assert_int_equal(iom_page_ref_count(t.page), 2);	/* cache + ours */
	assert_true(iom_PageDirty(t.page));	/* mm[1] wrote through its PTE */
	for (int i = 0; i < 3; i++)
		assert_true(pte_none(test_get_pte(t.mm[i], t.a[i] + PG)));
	assert_true(pte_none(test_get_pte(t.mm[0], t.second)));
	assert_int_equal(atomic_load(&t.mm[2]->rss_file), 0);

	/* every access faults the same page back in, with its content */
	assert_int_equal(iom_read(t.mm[2], t.a[2] + PG, buf, 13), 0);
	assert_memory_equal(buf, "file page one", 13);
	assert_int_equal(iom_read(t.mm[0], t.second + 20, buf, 1), 0);
	assert_int_equal(buf[0], 'w');
	assert_int_equal(iom_page_mapcount(t.page), 2);
	iom_lock_page(t.page);
	assert_true(iom_try_to_unmap(t.m, t.page));
	assert_true(iom_try_to_unmap(t.m, t.page));	/* nothing mapped: true */
	iom_unlock_page(t.page);
	teardown_three(&t);
}

/* ---- migration entries ---------------------------------------------------- */

static void try_to_migrate_and_restore_keeps_write_permission(void **state)
{
	struct three t;
	struct iom_mm *child;
	swp_entry_t e;
	char c;

	setup_three(&t);
	/* mm[1]'s PTE is writable (it wrote), the others read-only */
	assert_true(pte_write(test_get_pte(t.mm[1], t.a[1] + PG)));
	assert_false(pte_write(test_get_pte(t.mm[2], t.a[2] + PG)));
	iom_lock_page(t.page);
	assert_true(iom_try_to_migrate(t.m, t.page));
	assert_int_equal(iom_page_mapcount(t.page), 0);
	assert_int_equal(iom_page_ref_count(t.page), 2);	/* entries hold none */

	e = pte_to_swp_entry(test_get_pte(t.mm[1], t.a[1] + PG));
	assert_true(pte_is_migration(test_get_pte(t.mm[1], t.a[1] + PG)));
	assert_true(is_writable_migration_entry(e));
	assert_ptr_equal(migration_entry_to_page(t.m, e), t.page);
	e = pte_to_swp_entry(test_get_pte(t.mm[2], t.a[2] + PG));
	assert_true(is_migration_entry(e) && !is_writable_migration_entry(e));
	assert_true(pte_is_migration(test_get_pte(t.mm[0], t.second)));
	assert_int_equal(iom_follow_page(t.mm[0], t.second, &(struct iom_page *){ NULL }), -EAGAIN);
	assert_int_equal(iom_rmap_walk(t.m, t.page, record, &(struct seen){ 0 }), 0);

	/* fork copies the entries; mprotect makes a writable one readable */
	assert_int_equal(iom_fork(t.mm[1], &child), 0);
	assert_true(pte_is_migration(test_get_pte(child, t.a[1] + PG)));
	assert_true(is_writable_migration_entry(pte_to_swp_entry(test_get_pte(child, t.a[1] + PG))));
	assert_int_equal(iom_mprotect(child, t.a[1], 4 * PG, IOM_PROT_READ), 0);
	assert_false(is_writable_migration_entry(pte_to_swp_entry(test_get_pte(child, t.a[1] + PG))));
	assert_int_equal(iom_mprotect(child, t.a[1], 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE), 0);

	/* failed migration: back onto the same page */
	iom_remove_migration_ptes(t.m, t.page, t.page);
	assert_int_equal(iom_page_mapcount(t.page), 5);
	assert_int_equal(iom_page_ref_count(t.page), 1 + 5 + 1);
	assert_true(pte_present(test_get_pte(t.mm[1], t.a[1] + PG)));
	assert_true(pte_write(test_get_pte(t.mm[1], t.a[1] + PG)));
	assert_false(pte_write(test_get_pte(t.mm[2], t.a[2] + PG)));
	assert_false(pte_write(test_get_pte(child, t.a[1] + PG)));
	iom_unlock_page(t.page);
	assert_int_equal(iom_read(child, t.a[1] + PG + 20, &c, 1), 0);
	assert_int_equal(c, 'w');
	assert_int_equal(iom_write(child, t.a[1] + PG, "C", 1), 0);	/* shared: no COW */
	assert_int_equal(iom_read(t.mm[2], t.a[2] + PG, &c, 1), 0);
	assert_int_equal(c, 'C');
	iom_mm_destroy(child);
	teardown_three(&t);
}

/* A zap while a page is under migration just drops the entries. */
static void munmap_of_migration_entries_drops_them(void **state)
{
	struct three t;

	setup_three(&t);
	iom_lock_page(t.page);
	assert_true(iom_try_to_migrate(t.m, t.page));
	assert_int_equal(iom_munmap(t.mm[2], t.a[2], 4 * PG), 0);
	iom_remove_migration_ptes(t.m, t.page, t.page);
	iom_unlock_page(t.page);
	assert_int_equal(iom_page_mapcount(t.page), 3);
	assert_int_equal(iom_page_ref_count(t.page), 1 + 3 + 1);
	teardown_three(&t);
}

struct reader {
	struct iom_mm *mm;
	uint64_t addr;
	char got[16];
	int ret;
	atomic_bool done;
};

static void *reader_thread(void *arg)
{
	struct reader *r = arg;

	r->ret = iom_read(r->mm, r->addr, r->got, sizeof(r->got));
	atomic_store(&r->done, true);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * What this proves: a CPU access that meets a migration entry blocks (the
 * reader's done flag is still clear after 100 ms, and the wait path ran,
 * once: it sleeps rather than spins) until the migration ends, and then it
 * reads the NEW page, whose content differs from the old one.
 */
static void access_sleeps_on_migration_entry_and_reads_new_page(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_page *old, *new;
	struct reader r = { 0 };
	struct iom_mm *mm;
	pthread_t thread;
	uint64_t a;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, 2 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(iom_write(mm, a + PG + 64, "old page content", 16), 0);
	old = test_get_page_at(mm, a + PG);		/* the isolation reference */

	iom_lock_page(old);
	assert_true(iom_try_to_migrate(m, old));
	assert_true(pte_is_migration(test_get_pte(mm, a + PG)));
	assert_int_equal(atomic_load(&mm->migration_waits), 0);

	r.mm = mm;
	r.addr = a + PG + 64;
	assert_int_equal(pthread_create(&thread, NULL, reader_thread, &r), 0);
	for (int i = 0; i < 200 && !atomic_load(&mm->migration_waits); i++)
		sleep_ms(5);
	sleep_ms(100);
	assert_false(atomic_load(&r.done));
	assert_int_equal(atomic_load(&mm->migration_waits), 1);
	/* the other page of the VMA is not affected */
	assert_int_equal(iom_write(mm, a, "x", 1), 0);

	/* migrate: copy, then make the new page distinct */
	new = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_non_null(new);
	memcpy(iom_page_address(m, new), iom_page_address(m, old), PG);
	memcpy((char *)iom_page_address(m, new) + 64, "NEW page marker!", 16);
	assert_true(iom_trylock_page(new));
	new->mapping = old->mapping;
	new->index = old->index;
	iom_SetPageSwapBacked(new);
	iom_remove_migration_ptes(m, old, new);
	assert_true(pte_present(test_get_pte(mm, a + PG)));
	assert_int_equal(pte_pfn(test_get_pte(mm, a + PG)), iom_page_to_pfn(m, new));
	assert_true(pte_write(test_get_pte(mm, a + PG)));
	iom_unlock_page(new);
	assert_false(atomic_load(&r.done));	/* still asleep on the old page's lock */
	iom_unlock_page(old);

	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(atomic_load(&r.done));
	assert_int_equal(r.ret, 0);
	assert_memory_equal(r.got, "NEW page marker!", 16);
	assert_int_equal(atomic_load(&mm->migration_waits), 1);

	assert_int_equal(iom_page_mapcount(new), 1);
	assert_int_equal(iom_page_ref_count(new), 2);	/* PTE + allocation */
	iom_put_page(m, new);
	assert_int_equal(iom_page_mapcount(old), 0);
	assert_int_equal(iom_page_ref_count(old), 1);	/* ours only */
	iom_put_page(m, old);				/* frees it */
	iom_lru_cache_add(m, new);
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}


/* ---- migration under concurrent access ------------------------------------ */

#define MIG_PAGES 4
#define MIG_WRITERS 3
#define MIG_ROUNDS 150

struct mig_writer {
	struct iom_mm *mm;
	uint64_t base;
	int id;
	atomic_bool *stop;
	uint64_t last[MIG_PAGES];
	atomic_ulong writes;
	int errors;
};

static void *mig_writer_thread(void *arg)
{
	struct mig_writer *w = arg;
	uint64_t seq = 0;

	while (!atomic_load(w->stop)) {
		for (int p = 0; p < MIG_PAGES; p++) {
			uint64_t at = w->base + (uint64_t)p * PG + (uint64_t)w->id * 64;
			uint64_t v = (1ULL << 62) | ((uint64_t)w->id << 48) | (seq << 8) | (uint64_t)p, got = 0;

			if (iom_write(w->mm, at, &v, 8) || iom_read(w->mm, at, &got, 8) ||
			    got != v)
				w->errors++;
			w->last[p] = v;
			atomic_fetch_add(&w->writes, 1);
		}
		seq++;
	}
	return NULL;
}

/*
 * One migration of the anonymous page at @addr the way migrate.c will do
 * it: isolate, lock, pin the anon_vma, unmap to migration entries, copy,
 * and remap to the new page -- or, if someone holds an extra reference
 * (the kernel's expected-count check), back to the old one.
 */
static bool migrate_one(struct iom_machine *m, struct iom_mm *mm, uint64_t addr,
			bool skip_copy)
{
	struct iom_page *old, *new;
	struct anon_vma *av;
	bool moved;

	old = test_get_page_at(mm, addr);
	if (iom_isolate_lru_page(m, old)) {
		iom_put_page(m, old);
		return false;
	}
	iom_put_page(m, old);		/* the isolation reference remains */
	new = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_non_null(new);
	iom_lock_page(old);
	av = page_get_anon_vma(old);
	assert_non_null(av);
	assert_true(iom_try_to_migrate(m, old));
	if (!skip_copy)
		memcpy(iom_page_address(m, new), iom_page_address(m, old), PG);
	else
		memset(iom_page_address(m, new), 0, PG);
	assert_true(iom_trylock_page(new));
	set_page_mapping(new, old->mapping);
	new->index = old->index;
	iom_SetPageSwapBacked(new);
	moved = iom_page_ref_count(old) == 1;	/* a waiter holds one more */
	iom_remove_migration_ptes(m, old, moved ? new : old);
	put_anon_vma(av);
	iom_unlock_page(new);
	iom_unlock_page(old);
	if (moved) {
		iom_lru_cache_add(m, new);
		iom_put_page(m, new);		/* the PTE keeps it */
		iom_put_page(m, old);		/* freed, unless a waiter still holds it */
	} else {
		set_page_mapping(new, NULL);
		iom_put_page(m, new);
		iom_putback_lru_page(m, old);
	}
	return moved;
}

/*
 * Writers stamp their slots while every page is migrated MIG_ROUNDS times,
 * then once more with the writers stopped. Returns the writes lost: slots
 * not holding their writer's last stamp, plus failed read-backs.
 */
static unsigned long migration_stress(bool skip_copy)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct mig_writer w[MIG_WRITERS];
	pthread_t t[MIG_WRITERS];
	atomic_bool stop = false;
	unsigned long moved = 0, undone = 0, lost = 0;
	struct iom_mm *mm;
	uint64_t a;

	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, MIG_PAGES * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE, NULL, 0);
	for (int i = 0; i < MIG_WRITERS; i++) {
		w[i] = (struct mig_writer){ .mm = mm, .base = a, .id = i, .stop = &stop };
		assert_int_equal(pthread_create(&t[i], NULL, mig_writer_thread, &w[i]), 0);
	}
	/* Migrate only under fire: wait until every writer is writing. */
	for (int i = 0; i < MIG_WRITERS; i++)
		while (atomic_load(&w[i].writes) < MIG_PAGES)
			sched_yield();
	for (int r = 0; r < MIG_ROUNDS; r++)
		for (int p = 0; p < MIG_PAGES; p++) {
			if (migrate_one(m, mm, a + (uint64_t)p * PG, false))
				moved++;
			else
				undone++;
		}
	atomic_store(&stop, true);
	for (int i = 0; i < MIG_WRITERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_true(atomic_load(&w[i].writes) > 0);
		lost += (unsigned long)w[i].errors;
	}
	if (getenv("MIG_STATS"))
		print_message("moved %lu undone %lu waits %lu writes %lu\n", moved, undone,
			      atomic_load(&mm->migration_waits), atomic_load(&w[0].writes));
	assert_true(moved > 0);
	assert_int_equal(moved + undone, MIG_ROUNDS * MIG_PAGES);
	/* a last migration of every page, nobody else holding it: it moves */
	for (int p = 0; p < MIG_PAGES; p++)
		assert_true(migrate_one(m, mm, a + (uint64_t)p * PG, skip_copy));
	for (int i = 0; i < MIG_WRITERS; i++)
		for (int p = 0; p < MIG_PAGES; p++) {
			uint64_t got;

			assert_int_equal(iom_read(mm, a + (uint64_t)p * PG + (uint64_t)i * 64,
						  &got, 8), 0);
			if (got != w[i].last[p])
				lost++;
		}
	for (int p = 0; p < MIG_PAGES; p++) {
		struct iom_page *page = test_get_page_at(mm, a + (uint64_t)p * PG);

		assert_int_equal(iom_page_mapcount(page), 1);
		assert_int_equal(iom_page_ref_count(page), 2);
		iom_put_page(m, page);
	}
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
	return lost;
}

/*
 * What this proves: anonymous pages migrated back and forth under writers
 * that stamp and read back their own slots lose no write, whether a
 * migration moved the page or was undone (an access waiting on the entry
 * held a reference).
 */
static void migration_under_concurrent_writes_loses_nothing(void **state)
{
	assert_int_equal(migration_stress(false), 0);
}

/* ... and the check can fail: a migration that skips the copy is caught. */
static void migration_without_copy_is_caught(void **state)
{
	assert_int_equal(migration_stress(true), MIG_WRITERS * MIG_PAGES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rmap_walk_finds_every_pte_of_a_file_page),
		cmocka_unit_test(rmap_walk_follows_anon_pages_through_fork),
		cmocka_unit_test(try_to_unmap_clears_every_pte_and_accesses_refault),
		cmocka_unit_test(try_to_migrate_and_restore_keeps_write_permission),
		cmocka_unit_test(munmap_of_migration_entries_drops_them),
		cmocka_unit_test(access_sleeps_on_migration_entry_and_reads_new_page),
		cmocka_unit_test(migration_under_concurrent_writes_loses_nothing),
		cmocka_unit_test(migration_without_copy_is_caught),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
