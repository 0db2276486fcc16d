/* SPDX-License-Identifier: MIT */
/*
 * Pinning user pages (src/mm/gup.c): pins counted by the refcount bias and
 * the nr_foll_pin_* events; a write pin faults in and breaks COW, a read
 * pin unshares; every error releases every pin taken; bad arguments;
 * FOLL_LONGTERM moves pages out of ZONE_MOVABLE and CMA first, with their
 * content, and leaves other pages alone, fails with -ENOMEM and no pin when
 * a page will not move, and waits for a page someone else has isolated;
 * pinned pages resist migration and
 * compaction; fork copies a pinned page for the child; and a long-term
 * pinner racing with writers loses no write.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mm_util.h"

#define PG IOM_PAGE_SIZE
#define MiB (1ULL << 20)
#define RW (IOM_PROT_READ | IOM_PROT_WRITE)
#define ANON (IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS)
#define BIAS IOM_GUP_PIN_COUNTING_BIAS

static struct test_log tlog;

static bool page_in_cma(struct iom_machine *m, const struct iom_page *page)
{
	return get_pageblock_migratetype(m, page) == IOM_MIGRATE_CMA;
}

static bool page_in_movable_zone(struct iom_machine *m, const struct iom_page *page)
{
	return page_zone(m, page)->zone_type == IOM_ZONE_MOVABLE;
}

/* The page at @addr, without keeping a reference. */
static struct iom_page *page_at(struct iom_mm *mm, uint64_t addr)
{
	struct iom_page *page = test_get_page_at(mm, addr);

	iom_put_page(iom_mm_machine(mm), page);
	return page;
}

/* Write a stamp of @seed into every page of [@a, @a + @n pages). */
static void stamp(struct iom_mm *mm, uint64_t a, unsigned long n, unsigned int seed)
{
	for (unsigned long i = 0; i < n; i++) {
		unsigned int v[4] = { seed, (unsigned int)i, seed ^ 0x5a5a5a5au, ~seed };

		assert_int_equal(iom_write(mm, a + i * PG + 64, v, sizeof(v)), 0);
	}
}

static bool stamp_ok(const void *p, unsigned long i, unsigned int seed)
{
	unsigned int v[4] = { seed, (unsigned int)i, seed ^ 0x5a5a5a5au, ~seed };

	return memcmp((const char *)p + 64, v, sizeof(v)) == 0;
}

/* Both through the page's content and through the process. */
static void check_stamp(struct iom_mm *mm, uint64_t a, struct iom_page **pages,
			unsigned long n, unsigned int seed)
{
	struct iom_machine *m = iom_mm_machine(mm);
	char buf[64 + 16];

	for (unsigned long i = 0; i < n; i++) {
		if (pages)
			assert_true(stamp_ok(iom_page_address(m, pages[i]), i, seed));
		assert_int_equal(iom_read(mm, a + i * PG, buf, sizeof(buf)), 0);
		assert_true(stamp_ok(buf, i, seed));
	}
}

/* A process with @n populated anonymous pages, @text written at the start. */
static uint64_t anon_process(struct iom_machine *m, unsigned long n,
			     const char *text, struct iom_mm **mmp)
{
	uint64_t a;

	assert_int_equal(iom_mm_create(m, mmp), 0);
	a = test_mmap(*mmp, 0, n * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	assert_int_equal(iom_write(*mmp, a, text, strlen(text) + 1), 0);
	return a;
}

/* The end of every test: the process gone, every page free, no report. */
static void teardown(struct iom_machine *m, struct iom_mm *mm)
{
	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static unsigned long ev(struct iom_machine *m, int item)
{
	return iom_vm_event_count(m, item);
}

/* ---- counting ------------------------------------------------------------- */

/*
 * What this proves: a pin adds the bias to the refcount (twice for two
 * pins), pages[] holds the mapped pages, the events count each pin and
 * unpin, and unpinning restores the count; unpinning a page that is not
 * pinned is reported and changes nothing.
 */
static void pin_unpin_counts(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_page *pages[4], *again[4];
	unsigned long acq, rel;
	struct iom_mm *mm;
	uint64_t a;
	int i;

	(void)state;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, 4 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	acq = ev(m, IOM_NR_FOLL_PIN_ACQUIRED);
	rel = ev(m, IOM_NR_FOLL_PIN_RELEASED);

	assert_int_equal(iom_pin_user_pages(mm, a, 4, 0, pages), 4);
	for (i = 0; i < 4; i++) {
		assert_ptr_equal(pages[i], page_at(mm, a + i * PG));
		assert_int_equal(iom_page_ref_count(pages[i]), 1 + BIAS);
		assert_true(iom_page_maybe_dma_pinned(pages[i]));
	}
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_ACQUIRED), acq + 4);
	assert_int_equal(iom_pin_user_pages(mm, a + PG, 2, IOM_FOLL_WRITE, again), 2);
	assert_ptr_equal(again[0], pages[1]);
	assert_int_equal(iom_page_ref_count(pages[1]), 1 + 2 * BIAS);
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_ACQUIRED), acq + 6);

	iom_unpin_user_pages(m, again, 2);
	assert_int_equal(iom_page_ref_count(pages[1]), 1 + BIAS);
	iom_unpin_user_pages(m, pages, 4);
	for (i = 0; i < 4; i++) {
		assert_int_equal(iom_page_ref_count(pages[i]), 1);
		assert_false(iom_page_maybe_dma_pinned(pages[i]));
	}
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_RELEASED), rel + 6);

	/* not pinned: reported, nothing changes */
	tlog.nr_warn = 0;
	iom_unpin_user_page(m, pages[0]);
	assert_int_equal(tlog.nr_warn, 1);
	assert_true(test_log_contains(&tlog, "is not pinned"));
	assert_int_equal(iom_page_ref_count(pages[0]), 1);
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_RELEASED), rel + 6);

	teardown(m, mm);
}

/*
 * What this proves: pinning a range never touched faults it in (zeroed
 * pages, for write too); FOLL_NOFAULT refuses what is not present and pins
 * what is; unpin_user_pages_dirty_lock() dirties the pages.
 */
static void pin_faults_in(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_page *pages[8];
	struct iom_mm *mm;
	uint64_t a;
	int i;

	(void)state;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, 8 * PG, RW, ANON, NULL, 0);
	assert_int_equal(iom_pin_user_pages(mm, a, 2, IOM_FOLL_NOFAULT, pages), -EFAULT);
	assert_int_equal(test_get_pte(mm, a), 0);

	assert_int_equal(iom_pin_user_pages(mm, a, 4, 0, pages), 4);
	assert_int_equal(iom_pin_user_pages(mm, a + 4 * PG, 4, IOM_FOLL_WRITE,
					    pages + 4), 4);
	for (i = 0; i < 8; i++) {
		pte_t pte = test_get_pte(mm, a + i * PG);

		/* no shared zero page: a read fault maps a writable zeroed page */
		assert_true(pte_present(pte) && pte_write(pte));
		assert_int_equal(iom_page_ref_count(pages[i]), 1 + BIAS);
		assert_int_equal(((char *)iom_page_address(m, pages[i]))[100], 0);
		assert_false(iom_PageDirty(pages[i]));
	}
	iom_unpin_user_pages_dirty_lock(m, pages, 8, true);
	for (i = 0; i < 8; i++) {
		assert_true(iom_PageDirty(pages[i]));
		assert_int_equal(iom_page_ref_count(pages[i]), 1);
	}
	/* present now: FOLL_NOFAULT pins */
	assert_int_equal(iom_pin_user_pages(mm, a, 8, IOM_FOLL_NOFAULT, pages), 8);
	iom_unpin_user_pages(m, pages, 8);

	teardown(m, mm);
}

/* ---- COW ------------------------------------------------------------------ */

/*
 * What this proves: after fork a FOLL_WRITE pin in the parent breaks COW:
 * the pinned page is a new page of the parent's alone, with the content;
 * the child keeps the old one; later writes of the parent reach the pinned
 * page, the child's do not.
 */
static void write_pin_breaks_cow_after_fork(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_page *old, *pin;
	struct iom_mm *parent, *child;
	char buf[8];
	uint64_t a;

	(void)state;
	a = anon_process(m, 1, "before!", &parent);
	assert_int_equal(iom_fork(parent, &child), 0);
	old = page_at(parent, a);
	assert_ptr_equal(old, page_at(child, a));
	assert_int_equal(iom_page_mapcount(old), 2);

	assert_int_equal(iom_pin_user_pages(parent, a, 1, IOM_FOLL_WRITE, &pin), 1);
	assert_ptr_not_equal(pin, old);
	assert_ptr_equal(pin, page_at(parent, a));
	assert_ptr_equal(old, page_at(child, a));
	assert_int_equal(iom_page_mapcount(pin), 1);
	assert_int_equal(iom_page_mapcount(old), 1);
	assert_true(pte_write(test_get_pte(parent, a)));
	assert_memory_equal(iom_page_address(m, pin), "before!", 8);

	assert_int_equal(iom_write(parent, a, "parent", 7), 0);
	assert_int_equal(iom_write(child, a, "child", 6), 0);
	assert_memory_equal(iom_page_address(m, pin), "parent", 7);
	assert_int_equal(iom_read(child, a, buf, 6), 0);
	assert_memory_equal(buf, "child", 6);
	assert_ptr_equal(pin, page_at(parent, a));

	iom_unpin_user_page(m, pin);
	iom_mm_destroy(child);
	teardown(m, parent);
}

/*
 * What this proves: a read pin of an anonymous page shared after fork
 * unshares it first (FAULT_FLAG_UNSHARE): the parent pins a copy of its
 * own, mapped read-only; the parent's next write reuses the pinned page
 * (it is exclusive) instead of copying it away, and the child's write goes
 * to the child's page, never to the pinned one.
 */
static void read_pin_unshares_after_fork(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *parent, *child;
	struct iom_page *old, *pin;
	uint64_t a;

	(void)state;
	a = anon_process(m, 1, "shared", &parent);
	assert_int_equal(iom_fork(parent, &child), 0);
	old = page_at(parent, a);

	assert_int_equal(iom_pin_user_pages(parent, a, 1, 0, &pin), 1);
	assert_ptr_not_equal(pin, old);
	assert_ptr_equal(pin, page_at(parent, a));
	assert_false(pte_write(test_get_pte(parent, a)));
	assert_int_equal(iom_page_mapcount(pin), 1);
	assert_memory_equal(iom_page_address(m, pin), "shared", 7);

	assert_int_equal(iom_write(child, a, "child", 6), 0);
	assert_memory_equal(iom_page_address(m, pin), "shared", 7);
	assert_int_equal(iom_write(parent, a, "parent", 7), 0);
	assert_ptr_equal(pin, page_at(parent, a));
	assert_memory_equal(iom_page_address(m, pin), "parent", 7);

	iom_unpin_user_page(m, pin);
	iom_mm_destroy(child);
	teardown(m, parent);
}

/*
 * What this proves: fork gives the child its own copy of a pinned
 * anonymous page at once (page_needs_cow_for_dma()), leaving the parent's
 * PTE writable, so the parent's writes keep reaching the pinned page; an
 * unpinned page of the same VMA is still shared copy-on-write. After
 * mprotect(READ) and back, a write still reuses the pinned page.
 */
static void fork_copies_pinned_page(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_mm *parent, *child;
	struct iom_page *pin, *cpage;
	char buf[8];
	uint64_t a;

	(void)state;
	a = anon_process(m, 2, "pinned", &parent);
	assert_int_equal(iom_pin_user_pages(parent, a, 1, IOM_FOLL_WRITE, &pin), 1);

	assert_int_equal(iom_fork(parent, &child), 0);
	cpage = page_at(child, a);
	assert_ptr_not_equal(cpage, pin);
	assert_int_equal(iom_page_mapcount(pin), 1);
	assert_int_equal(iom_page_mapcount(cpage), 1);
	assert_int_equal(iom_page_ref_count(pin), 1 + BIAS);
	assert_memory_equal(iom_page_address(m, cpage), "pinned", 7);
	assert_true(pte_write(test_get_pte(parent, a)));
	/* the unpinned page is shared copy-on-write */
	assert_ptr_equal(page_at(child, a + PG), page_at(parent, a + PG));
	assert_false(pte_write(test_get_pte(parent, a + PG)));

	assert_int_equal(iom_write(parent, a, "parent", 7), 0);
	assert_ptr_equal(page_at(parent, a), pin);
	assert_memory_equal(iom_page_address(m, pin), "parent", 7);
	assert_int_equal(iom_read(child, a, buf, 7), 0);
	assert_memory_equal(buf, "pinned", 7);
	assert_int_equal(iom_write(child, a, "child", 6), 0);
	assert_memory_equal(iom_page_address(m, pin), "parent", 7);

	/* write-protected and writable again: the write reuses the pinned page */
	assert_int_equal(iom_mprotect(parent, a, 2 * PG, IOM_PROT_READ), 0);
	assert_int_equal(iom_mprotect(parent, a, 2 * PG, RW), 0);
	assert_false(pte_write(test_get_pte(parent, a)));
	assert_int_equal(iom_write(parent, a, "again", 6), 0);
	assert_ptr_equal(page_at(parent, a), pin);
	assert_memory_equal(iom_page_address(m, pin), "again", 6);

	iom_mm_destroy(child);
	iom_unpin_user_page(m, pin);
	teardown(m, parent);
}

/* ---- errors --------------------------------------------------------------- */

static void assert_refcounts(struct iom_page **pages, const int *want, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(iom_page_ref_count(pages[i]), want[i]);
}

/*
 * What this proves: a range running into a hole, or a write pin reaching a
 * read-only VMA, fails with -EFAULT after pinning the pages before it, and
 * every one of those pins is released (refcounts and events as before).
 */
static void efault_releases_every_pin(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_page *pages[8], *mapped[6];
	int before[6];
	unsigned long acq, rel;
	struct iom_mm *mm;
	uint64_t a;
	int i;

	(void)state;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	/* [a, a+4) RW, [a+4, a+6) read-only, [a+6, a+8) nothing */
	a = test_mmap(mm, 0, 8 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	assert_int_equal(iom_munmap(mm, a + 6 * PG, 2 * PG), 0);
	assert_int_equal(iom_mprotect(mm, a + 4 * PG, 2 * PG, IOM_PROT_READ), 0);
	/* one page pinned already: its pin must survive the failures */
	assert_int_equal(iom_pin_user_pages(mm, a + PG, 1, 0, pages), 1);
	for (i = 0; i < 6; i++) {
		mapped[i] = page_at(mm, a + i * PG);
		before[i] = iom_page_ref_count(mapped[i]);
	}
	assert_int_equal(before[1], 1 + BIAS);
	acq = ev(m, IOM_NR_FOLL_PIN_ACQUIRED);
	rel = ev(m, IOM_NR_FOLL_PIN_RELEASED);

	assert_int_equal(iom_pin_user_pages(mm, a, 8, 0, pages), -EFAULT);
	assert_refcounts(mapped, before, 6);
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_ACQUIRED) - acq, 6);
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_RELEASED) - rel, 6);

	assert_int_equal(iom_pin_user_pages(mm, a, 6, IOM_FOLL_WRITE, pages), -EFAULT);
	assert_refcounts(mapped, before, 6);
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_ACQUIRED) - acq, 10);
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_RELEASED) - rel, 10);
	/* the same with FOLL_LONGTERM */
	assert_int_equal(iom_pin_user_pages(mm, a, 6, IOM_FOLL_WRITE | IOM_FOLL_LONGTERM,
					    pages), -EFAULT);
	assert_refcounts(mapped, before, 6);

	/* reading the read-only part is allowed */
	assert_int_equal(iom_pin_user_pages(mm, a + 2 * PG, 4, 0, pages), 4);
	iom_unpin_user_pages(m, pages, 4);
	assert_refcounts(mapped, before, 6);

	iom_unpin_user_page(m, mapped[1]);
	teardown(m, mm);
}

/*
 * What this proves: bad arguments get -EINVAL and a warning, and pin
 * nothing; a long-term writable pin of a shared file mapping is refused
 * with -EFAULT (mainline's writable_file_mapping_allowed()), while a
 * shared anonymous (shmem) mapping may be pinned that way.
 */
static void bad_arguments(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_page *pages[2] = { NULL, NULL };
	struct iom_inode *inode;
	unsigned long acq;
	struct iom_mm *mm;
	uint64_t a, f, s;

	(void)state;
	iom_rcu_register_thread();
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, 2 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	acq = ev(m, IOM_NR_FOLL_PIN_ACQUIRED);
	tlog.nr_warn = 0;

	assert_int_equal(iom_pin_user_pages(NULL, a, 1, 0, pages), -EINVAL);
	assert_int_equal(iom_pin_user_pages(mm, a, 1, 0, NULL), -EINVAL);
	assert_int_equal(iom_pin_user_pages(mm, a, 0, 0, pages), -EINVAL);
	assert_int_equal(iom_pin_user_pages(mm, a + 8, 1, 0, pages), -EINVAL);
	assert_int_equal(iom_pin_user_pages(mm, a, 1, 1U << 30, pages), -EINVAL);
	assert_int_equal(iom_pin_user_pages(mm, a, 1, IOM_FOLL_GET, pages), -EINVAL);
	assert_true(test_log_contains(&tlog, "FOLL_GET"));
	assert_int_equal(iom_pin_user_pages(mm, a, ~0UL, 0, pages), -EINVAL);
	assert_int_equal(tlog.nr_warn, 6);
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_ACQUIRED), acq);
	assert_null(pages[0]);
	assert_int_equal(iom_page_ref_count(page_at(mm, a)), 1);
	/* beyond the address space, or below the first VMA: no VMA */
	assert_int_equal(iom_pin_user_pages(mm, IOM_TASK_SIZE - PG, 2, 0, pages), -EFAULT);
	assert_int_equal(iom_pin_user_pages(mm, 0, 1, 0, pages), -EFAULT);

	assert_int_equal(iom_inode_create(m, 2 * PG, &inode), 0);
	f = test_mmap(mm, 0, 2 * PG, RW, IOM_MAP_SHARED, inode, 0);
	assert_int_equal(iom_pin_user_pages(mm, f, 2, IOM_FOLL_WRITE | IOM_FOLL_LONGTERM,
					    pages), -EFAULT);
	assert_int_equal(iom_pin_user_pages(mm, f, 2, IOM_FOLL_WRITE, pages), 2);
	iom_unpin_user_pages_dirty_lock(m, pages, 2, true);
	assert_int_equal(iom_pin_user_pages(mm, f, 2, IOM_FOLL_LONGTERM, pages), 2);
	iom_unpin_user_pages(m, pages, 2);
	s = test_mmap(mm, 0, 2 * PG, RW, IOM_MAP_SHARED | IOM_MAP_ANONYMOUS, NULL, 0);
	assert_int_equal(iom_pin_user_pages(mm, s, 2, IOM_FOLL_WRITE | IOM_FOLL_LONGTERM,
					    pages), 2);
	iom_unpin_user_pages(m, pages, 2);

	iom_mm_destroy(mm);
	assert_int_equal(iom_inode_destroy(inode), 0);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
	iom_rcu_unregister_thread();
}

/* ---- FOLL_LONGTERM -------------------------------------------------------- */

#define LT_PAGES 16

/*
 * A long-term pin of LT_PAGES stamped pages that all start where
 * @unpinnable says: after it, none is, the content and the process's view
 * are intact, and pgmigrate_success counted each move.
 */
static void longterm_moves_out(struct iom_machine *m,
			       bool (*unpinnable)(struct iom_machine *,
						  const struct iom_page *))
{
	struct iom_page *pages[LT_PAGES];
	unsigned long ok0;
	struct iom_mm *mm;
	uint64_t a;
	int i;

	assert_non_null(m);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, LT_PAGES * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	stamp(mm, a, LT_PAGES, 0xc0ffee);
	for (i = 0; i < LT_PAGES; i++)
		assert_true(unpinnable(m, page_at(mm, a + i * PG)));
	ok0 = ev(m, IOM_PGMIGRATE_SUCCESS);

	assert_int_equal(iom_pin_user_pages(mm, a, LT_PAGES,
					    IOM_FOLL_WRITE | IOM_FOLL_LONGTERM, pages),
			 LT_PAGES);
	for (i = 0; i < LT_PAGES; i++) {
		assert_false(page_in_cma(m, pages[i]));
		assert_false(page_in_movable_zone(m, pages[i]));
		assert_ptr_equal(pages[i], page_at(mm, a + i * PG));
		assert_int_equal(iom_page_ref_count(pages[i]), 1 + BIAS);
	}
	check_stamp(mm, a, pages, LT_PAGES, 0xc0ffee);
	assert_int_equal(ev(m, IOM_PGMIGRATE_SUCCESS), ok0 + LT_PAGES);
	/* the process writes to the pinned pages */
	stamp(mm, a, LT_PAGES, 0xbeef);
	check_stamp(mm, a, pages, LT_PAGES, 0xbeef);

	iom_unpin_user_pages(m, pages, LT_PAGES);
	teardown(m, mm);
}

/* What this proves: FOLL_LONGTERM moves pages out of ZONE_MOVABLE. */
static void longterm_pin_leaves_movable_zone(void **state)
{
	struct iom_machine_config cfg = { 0 };

	(void)state;
	cfg.mem_size = 32 * MiB;
	cfg.movable_size = 16 * MiB;
	longterm_moves_out(test_machine(0, &tlog, &cfg), page_in_movable_zone);
}

/* What this proves: FOLL_LONGTERM moves pages out of a CMA area. */
static void longterm_pin_leaves_cma(void **state)
{
	struct iom_machine_config cfg = { 0 };

	(void)state;
	cfg.mem_size = 32 * MiB;
	cfg.nr_cma_areas = 1;
	cfg.cma[0].size = 24 * MiB;	/* most free memory: movable pages go there */
	longterm_moves_out(test_machine(0, &tlog, &cfg), page_in_cma);
}

/*
 * What this proves: pages outside CMA and ZONE_MOVABLE stay where they are
 * under FOLL_LONGTERM; and pages a long-term pin faults in are allocated
 * outside ZONE_MOVABLE directly (memalloc_pin_save()), so nothing migrates.
 */
static void longterm_pin_migrates_only_what_it_must(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct iom_page *pages[LT_PAGES];
	unsigned long pfn[LT_PAGES], ok0;
	struct iom_mm *mm;
	uint64_t a, b;
	int i;

	(void)state;
	m = test_machine(16, &tlog, NULL);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, LT_PAGES * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	for (i = 0; i < LT_PAGES; i++)
		pfn[i] = iom_page_to_pfn(m, page_at(mm, a + i * PG));
	ok0 = ev(m, IOM_PGMIGRATE_SUCCESS);
	assert_int_equal(iom_pin_user_pages(mm, a, LT_PAGES, IOM_FOLL_LONGTERM, pages),
			 LT_PAGES);
	for (i = 0; i < LT_PAGES; i++)
		assert_int_equal(iom_page_to_pfn(m, pages[i]), pfn[i]);
	assert_int_equal(ev(m, IOM_PGMIGRATE_SUCCESS), ok0);
	iom_unpin_user_pages(m, pages, LT_PAGES);
	teardown(m, mm);

	cfg.mem_size = 32 * MiB;
	cfg.movable_size = 16 * MiB;
	m = test_machine(0, &tlog, &cfg);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, LT_PAGES * PG, RW, ANON, NULL, 0);
	b = test_mmap(mm, 0, PG, RW, ANON, NULL, 0);
	ok0 = ev(m, IOM_PGMIGRATE_SUCCESS);
	assert_int_equal(iom_pin_user_pages(mm, a, LT_PAGES,
					    IOM_FOLL_WRITE | IOM_FOLL_LONGTERM, pages),
			 LT_PAGES);
	for (i = 0; i < LT_PAGES; i++)
		assert_false(page_in_movable_zone(m, pages[i]));
	assert_int_equal(ev(m, IOM_PGMIGRATE_SUCCESS), ok0);
	/* the scope ends with the call: an ordinary fault is movable again */
	assert_int_equal(iom_write(mm, b, "x", 1), 0);
	assert_true(page_in_movable_zone(m, page_at(mm, b)));
	iom_unpin_user_pages(m, pages, LT_PAGES);
	teardown(m, mm);
}

/*
 * What this proves: when a page cannot be migrated out (someone holds a
 * reference), the long-term pin fails with -ENOMEM, as mainline, and
 * leaves no pin on any page of the range; the process's data is intact.
 */
static void longterm_pin_fails_when_migration_fails(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct iom_page *pages[4], *held;
	unsigned long acq, rel;
	struct iom_mm *mm;
	uint64_t a;
	int i;

	(void)state;
	cfg.mem_size = 32 * MiB;
	cfg.movable_size = 16 * MiB;
	m = test_machine(0, &tlog, &cfg);
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, 4 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	stamp(mm, a, 4, 77);
	held = test_get_page_at(mm, a + 2 * PG);	/* an extra reference */
	acq = ev(m, IOM_NR_FOLL_PIN_ACQUIRED);
	rel = ev(m, IOM_NR_FOLL_PIN_RELEASED);

	assert_int_equal(iom_pin_user_pages(mm, a, 4, IOM_FOLL_LONGTERM, pages), -ENOMEM);
	assert_int_equal(ev(m, IOM_NR_FOLL_PIN_ACQUIRED) - acq,
			 ev(m, IOM_NR_FOLL_PIN_RELEASED) - rel);
	assert_ptr_equal(page_at(mm, a + 2 * PG), held);
	for (i = 0; i < 4; i++)
		assert_false(iom_page_maybe_dma_pinned(page_at(mm, a + i * PG)));
	assert_int_equal(iom_page_ref_count(held), 2);
	check_stamp(mm, a, NULL, 4, 77);

	iom_put_page(m, held);
	teardown(m, mm);
}

struct lt_pin {
	struct iom_mm *mm;
	uint64_t a;
	struct iom_page *pages[4];
	long ret;
	atomic_bool done;
};

static void *lt_pin_thread(void *arg)
{
	struct lt_pin *p = arg;

	p->ret = iom_pin_user_pages(p->mm, p->a, 4, IOM_FOLL_LONGTERM, p->pages);
	atomic_store(&p->done, true);
	return NULL;
}

/*
 * What this proves: a page in ZONE_MOVABLE that cannot be isolated (held
 * isolated by someone else) does not make the long-term pin fail, nor get
 * pinned where it is: as mainline, the pin retries until it can move it.
 * The other pages move in the first round; once the page is put back, the
 * pin completes with every page out of ZONE_MOVABLE.
 */
static void longterm_pin_waits_for_isolated_page(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct lt_pin p;
	struct iom_page *held;
	unsigned long ok0;
	pthread_t t;
	int i;

	(void)state;
	memset(&p, 0, sizeof(p));
	cfg.mem_size = 32 * MiB;
	cfg.movable_size = 16 * MiB;
	m = test_machine(0, &tlog, &cfg);
	p.a = anon_process(m, 4, "isolated", &p.mm);
	stamp(p.mm, p.a, 4, 31);
	held = page_at(p.mm, p.a + PG);
	assert_int_equal(iom_isolate_lru_page(m, held), 0);
	ok0 = ev(m, IOM_PGMIGRATE_SUCCESS);

	assert_int_equal(pthread_create(&t, NULL, lt_pin_thread, &p), 0);
	/* the other three move; the pin goes on trying for the fourth */
	while (!atomic_load(&p.done) && ev(m, IOM_PGMIGRATE_SUCCESS) < ok0 + 3)
		sched_yield();
	assert_false(atomic_load(&p.done));
	iom_putback_lru_page(m, held);
	assert_int_equal(pthread_join(t, NULL), 0);

	assert_int_equal(p.ret, 4);
	assert_int_equal(ev(m, IOM_PGMIGRATE_SUCCESS), ok0 + 4);
	for (i = 0; i < 4; i++)
		assert_false(page_in_movable_zone(m, p.pages[i]));
	check_stamp(p.mm, p.a, p.pages, 4, 31);
	iom_unpin_user_pages(m, p.pages, 4);
	teardown(m, p.mm);
}

/* ---- pinned pages stay ----------------------------------------------------- */

static struct iom_machine *new_page_m;

static struct iom_page *new_page_any(struct iom_page *page, unsigned long private)
{
	(void)page;
	(void)private;
	return iom_alloc_pages(new_page_m, IOM_GFP_HIGHUSER_MOVABLE, 0);
}

/*
 * What this proves: migrating a pinned page fails (its count is above the
 * expected one: migrate_page_move_mapping() says -EAGAIN, and
 * migrate_pages() gives up after its passes, counting pgmigrate_fail) and
 * leaves its content and mapping; once unpinned, the same migration
 * succeeds.
 */
static void pinned_page_does_not_migrate(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_list_head list = { &list, &list };
	struct iom_page *pin, *newpage;
	unsigned int nr_ok = 99;
	unsigned long fail0;
	struct iom_mm *mm;
	uint64_t a;

	(void)state;
	new_page_m = m;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	stamp(mm, a, 1, 5);
	assert_int_equal(iom_pin_user_pages(mm, a, 1, IOM_FOLL_WRITE, &pin), 1);
	assert_int_equal(iom_isolate_lru_page(m, pin), 0);
	list_add_tail(&pin->lru, &list);
	fail0 = ev(m, IOM_PGMIGRATE_FAIL);

	/* the refcount check itself: PTE + isolation expected, the pin is more */
	newpage = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_non_null(newpage);
	iom_lock_page(pin);
	iom_lock_page(newpage);
	assert_int_equal(iom_migrate_page_move_mapping(NULL, newpage, pin, 1), -EAGAIN);
	iom_unlock_page(newpage);
	iom_unlock_page(pin);
	iom_put_page(m, newpage);
	assert_int_equal(iom_page_ref_count(pin), 2 + BIAS);

	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, &nr_ok), 1);
	assert_int_equal(nr_ok, 0);
	assert_int_equal(ev(m, IOM_PGMIGRATE_FAIL), fail0 + 1);
	assert_ptr_equal(list.next, &pin->lru);
	assert_ptr_equal(page_at(mm, a), pin);
	assert_true(pte_present(test_get_pte(mm, a)));
	check_stamp(mm, a, &pin, 1, 5);
	/* the device view and the CPU view are still the same page */
	stamp(mm, a, 1, 6);
	check_stamp(mm, a, &pin, 1, 6);

	iom_unpin_user_page(m, pin);
	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, &nr_ok), 0);
	assert_int_equal(nr_ok, 1);
	assert_ptr_not_equal(page_at(mm, a), pin);
	check_stamp(mm, a, NULL, 1, 6);

	teardown(m, mm);
}

/*
 * What this proves: full compaction of the zone moves unpinned pages of
 * the process but leaves the pinned ones where they are, content intact.
 */
static void compaction_leaves_pinned_pages(void **state)
{
	enum { N = 64 };
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_page *pins[N / 8], *before[N];
	int moved = 0, i;
	struct iom_mm *mm;
	uint64_t a;

	(void)state;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, N * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	stamp(mm, a, N, 9);
	for (i = 0; i < N; i++)
		before[i] = page_at(mm, a + i * PG);
	for (i = 0; i < N / 8; i++)
		assert_int_equal(iom_pin_user_pages(mm, a + i * 8 * PG, 1, 0, &pins[i]), 1);

	assert_int_equal(iom_compact_node(m, 0), 0);
	for (i = 0; i < N; i++) {
		struct iom_page *now = page_at(mm, a + i * PG);

		if (i % 8 == 0)
			assert_ptr_equal(now, pins[i / 8]);
		else if (now != before[i])
			moved++;
	}
	assert_true(moved > 0);		/* compaction did run over these pages */
	check_stamp(mm, a, NULL, N, 9);

	iom_unpin_user_pages(m, pins, N / 8);
	teardown(m, mm);
}

/* ---- concurrency ---------------------------------------------------------- */

#define CC_PAGES	32
#define CC_WRITERS	2
#define CC_ROUNDS	50
#define CC_PIN_ROUNDS	25

struct cc {
	struct iom_machine *m;
	struct iom_mm *mm;
	uint64_t a;
	atomic_int pinned_rounds;
	atomic_bool pinner_done;	/* the writers write until it is set */
	/* results, asserted by the main thread */
	unsigned long bad_readback[CC_WRITERS];
	int write_err[CC_WRITERS];
	long pin_err;
	unsigned long pinned_in_cma;	/* pages found in CMA when pinned */
	unsigned long moved_back;	/* pages the pinner moved back into CMA */
};

struct cc_writer {
	struct cc *cc;
	int id;
	uint64_t last;		/* the last sequence number written */
};

/* Slot of writer @id in page @p: each writer owns its own 8 bytes. */
static uint64_t cc_slot(const struct cc *cc, int p, int id)
{
	return cc->a + (uint64_t)p * PG + 256 + (uint64_t)id * 8;
}

static void *cc_writer_thread(void *arg)
{
	struct cc_writer *w = arg;
	struct cc *cc = w->cc;

	uint64_t seq;

	/* at least CC_ROUNDS passes, and on until the pinner is done */
	for (seq = 1; seq <= CC_ROUNDS || !atomic_load(&cc->pinner_done); seq++) {
		for (int p = 0; p < CC_PAGES; p++) {
			uint64_t v = seq << 8 | (uint64_t)w->id, r = 0;
			int err = iom_write(cc->mm, cc_slot(cc, p, w->id), &v, sizeof(v));

			if (!err)
				err = iom_read(cc->mm, cc_slot(cc, p, w->id), &r, sizeof(r));
			if (err && !w->cc->write_err[w->id])
				w->cc->write_err[w->id] = err;
			if (r != v)
				cc->bad_readback[w->id]++;
		}
	}
	w->last = seq - 1;
	return NULL;
}

/* Move every page of the range back into CMA (movable targets prefer it). */
static void cc_move_back(struct cc *cc)
{
	struct migration_target_control mtc = {
		.m = cc->m, .nid = -1, .gfp_mask = IOM_GFP_HIGHUSER_MOVABLE,
	};
	struct iom_list_head list = { &list, &list };
	unsigned int nr_ok = 0;

	for (int p = 0; p < CC_PAGES; p++) {
		struct iom_page *page;

		if (iom_follow_page(cc->mm, cc->a + (uint64_t)p * PG, &page))
			continue;	/* under migration by someone: skip */
		if (!iom_isolate_lru_page(cc->m, page))
			list_add_tail(&page->lru, &list);
		iom_put_page(cc->m, page);
	}
	iom_migrate_pages(cc->m, &list, alloc_migration_target, NULL,
			  (unsigned long)&mtc, IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, &nr_ok);
	iom_putback_movable_pages(cc->m, &list);
	cc->moved_back += nr_ok;
}

static void *cc_pinner_thread(void *arg)
{
	struct cc *cc = arg;
	struct iom_page *pages[CC_PAGES];

	while (atomic_load(&cc->pinned_rounds) < CC_PIN_ROUNDS) {
		long n;

		for (int p = 0; p < CC_PAGES; p++) {
			struct iom_page *page;

			if (!iom_follow_page(cc->mm, cc->a + (uint64_t)p * PG, &page)) {
				cc->pinned_in_cma += page_in_cma(cc->m, page);
				iom_put_page(cc->m, page);
			}
		}
		n = iom_pin_user_pages(cc->mm, cc->a, CC_PAGES,
				       IOM_FOLL_WRITE | IOM_FOLL_LONGTERM, pages);
		if (n != CC_PAGES) {
			cc->pin_err = n;
			break;
		}
		for (int p = 0; p < CC_PAGES; p++)
			if (page_in_cma(cc->m, pages[p]) && !cc->pin_err)
				cc->pin_err = -1000 - p;
		iom_unpin_user_pages_dirty_lock(cc->m, pages, CC_PAGES, true);
		cc_move_back(cc);
		atomic_fetch_add(&cc->pinned_rounds, 1);
	}
	atomic_store(&cc->pinner_done, true);
	return NULL;
}

/*
 * What this proves: a thread that long-term pins a range of CMA pages again
 * and again (each pin migrates them out of CMA; between pins it moves them
 * back in) while two threads write sequence-stamped values into the same
 * pages through iom_access() loses no write: every read-back right after a
 * write sees it, and at the end every slot holds its writer's last value.
 * Every pin found no page left in CMA.
 */
static void longterm_pinner_races_writers(void **state)
{
	struct iom_machine_config cfg = { 0 };
	struct cc cc;
	struct cc_writer w[CC_WRITERS];
	pthread_t wt[CC_WRITERS], pt;

	(void)state;
	memset(&cc, 0, sizeof(cc));
	cfg.mem_size = 32 * MiB;
	cfg.nr_cma_areas = 1;
	cfg.cma[0].size = 24 * MiB;
	cc.m = test_machine(0, &tlog, &cfg);
	assert_non_null(cc.m);
	assert_int_equal(iom_mm_create(cc.m, &cc.mm), 0);
	cc.a = test_mmap(cc.mm, 0, CC_PAGES * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	assert_true(page_in_cma(cc.m, page_at(cc.mm, cc.a)));

	for (int i = 0; i < CC_WRITERS; i++) {
		w[i].cc = &cc;
		w[i].id = i;
		assert_int_equal(pthread_create(&wt[i], NULL, cc_writer_thread, &w[i]), 0);
	}
	assert_int_equal(pthread_create(&pt, NULL, cc_pinner_thread, &cc), 0);
	for (int i = 0; i < CC_WRITERS; i++)
		assert_int_equal(pthread_join(wt[i], NULL), 0);
	assert_int_equal(pthread_join(pt, NULL), 0);

	assert_int_equal(cc.pin_err, 0);
	for (int i = 0; i < CC_WRITERS; i++) {
		assert_int_equal(cc.write_err[i], 0);
		assert_int_equal(cc.bad_readback[i], 0);
	}
	assert_int_equal(atomic_load(&cc.pinned_rounds), CC_PIN_ROUNDS);
	/* the pins really had CMA pages to move, round after round */
	assert_true(cc.pinned_in_cma >= CC_PAGES * 2);
	assert_true(cc.moved_back >= CC_PAGES);
	for (int p = 0; p < CC_PAGES; p++) {
		for (int i = 0; i < CC_WRITERS; i++) {
			uint64_t v = 0;

			assert_int_equal(iom_read(cc.mm, cc_slot(&cc, p, i), &v, sizeof(v)), 0);
			assert_int_equal(v, w[i].last << 8 | (uint64_t)i);
		}
	}
	assert_int_equal(ev(cc.m, IOM_NR_FOLL_PIN_ACQUIRED),
			 ev(cc.m, IOM_NR_FOLL_PIN_RELEASED));

	teardown(cc.m, cc.mm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pin_unpin_counts),
		cmocka_unit_test(pin_faults_in),
		cmocka_unit_test(write_pin_breaks_cow_after_fork),
		cmocka_unit_test(read_pin_unshares_after_fork),
		cmocka_unit_test(fork_copies_pinned_page),
		cmocka_unit_test(efault_releases_every_pin),
		cmocka_unit_test(bad_arguments),
		cmocka_unit_test(longterm_pin_leaves_movable_zone),
		cmocka_unit_test(longterm_pin_leaves_cma),
		cmocka_unit_test(longterm_pin_migrates_only_what_it_must),
		cmocka_unit_test(longterm_pin_fails_when_migration_fails),
		cmocka_unit_test(longterm_pin_waits_for_isolated_page),
		cmocka_unit_test(pinned_page_does_not_migrate),
		cmocka_unit_test(compaction_leaves_pinned_pages),
		cmocka_unit_test(longterm_pinner_races_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
