/* SPDX-License-Identifier: MIT */
/*
 * Non-LRU movable pages: a balloon-like test driver whose pages are on no
 * LRU list, made movable with iom___SetPageMovable(), isolated with
 * iom_isolate_movable_page() and migrated by iom_migrate_pages() through
 * the driver's ->migratepage, or given back through ->putback_page
 * (iom_putback_movable_pages) - the kernel's balloon_compaction.c path.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <iommig/compaction.h>
#include <iommig/migrate.h>

#include "mm_util.h"

#define PG	IOM_PAGE_SIZE
#define NPAGES	16

static struct test_log tlog;

struct balloon {
	struct iom_address_space mapping;
	struct iom_machine *m;
	struct iom_page *pages[NPAGES];	/* by page->index; NULL while isolated */
	bool refuse;			/* ->migratepage says -EAGAIN */
	int isolated, migrated, putback;
};

static struct balloon *to_balloon(struct iom_address_space *mapping)
{
	return (struct balloon *)mapping;	/* mapping is the first member */
}

static struct balloon *page_balloon;	/* the one driver of a test */

static bool balloon_isolate(struct iom_page *page, int mode)
{
	(void)mode;
	page_balloon->pages[page->index] = NULL;
	page_balloon->isolated++;
	return true;
}

static int balloon_migrate(struct iom_address_space *mapping,
			   struct iom_page *newpage, struct iom_page *page,
			   enum iom_migrate_mode mode)
{
	struct balloon *b = to_balloon(mapping);

	(void)mode;
	if (b->refuse)
		return -EAGAIN;
	memcpy(iom_page_address(b->m, newpage), iom_page_address(b->m, page), PG);
	newpage->index = page->index;
	if (iom___SetPageMovable(newpage, mapping))
		return -EAGAIN;
	iom_get_page(b->m, newpage);		/* the driver's reference moves */
	b->pages[newpage->index] = newpage;
	iom___ClearPageMovable(page);
	iom_put_page(b->m, page);
	b->migrated++;
	return 0;
}

static void balloon_putback(struct iom_page *page)
{
	page_balloon->pages[page->index] = page;
	page_balloon->putback++;
}

static const struct iom_address_space_operations balloon_aops = {
	.isolate_page = balloon_isolate,
	.migratepage = balloon_migrate,
	.putback_page = balloon_putback,
};

static void balloon_init(struct balloon *b, struct iom_machine *m)
{
	memset(b, 0, sizeof(*b));
	b->m = m;
	page_balloon = b;
	assert_int_equal(iom_address_space_init(&b->mapping, m, &balloon_aops), 0);
	for (unsigned long i = 0; i < NPAGES; i++) {
		struct iom_page *p = iom_alloc_pages_node(m, 0, IOM_GFP_HIGHUSER_MOVABLE, 0);

		assert_non_null(p);
		memset(iom_page_address(m, p), (int)(0x40 + i), PG);
		p->index = i;
		iom_lock_page(p);
		assert_int_equal(iom___SetPageMovable(p, &b->mapping), 0);
		iom_unlock_page(p);
		b->pages[i] = p;
	}
}

static void balloon_destroy(struct balloon *b)
{
	for (int i = 0; i < NPAGES; i++) {
		struct iom_page *p = b->pages[i];

		assert_non_null(p);
		iom_lock_page(p);
		iom___ClearPageMovable(p);
		iom_unlock_page(p);
		iom_put_page(b->m, p);
	}
	iom_address_space_destroy(&b->mapping);
}

/* The driver frees its pages; the machine must then be clean. */
static void balloon_teardown(struct balloon *b)
{
	struct iom_machine *m = b->m;

	balloon_destroy(b);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static int nid_of(struct iom_machine *m, struct iom_page *p)
{
	return page_pgdat(m, p)->node_id;
}

static struct iom_page *to_node1(struct iom_page *page, unsigned long private)
{
	(void)page;
	return iom_alloc_pages_node((struct iom_machine *)private, 1,
				    IOM_GFP_HIGHUSER_MOVABLE | IOM___GFP_THISNODE, 0);
}

static int migrate_to_node1(struct iom_machine *m, struct iom_list_head *list,
			    unsigned int *nr_ok)
{
	return iom_migrate_pages(m, list, to_node1, NULL, (unsigned long)m,
				 IOM_MIGRATE_SYNC, IOM_MR_COMPACTION, nr_ok);
}

static struct iom_machine *machine(void)
{
	struct iom_machine_config cfg = { 0 };

	cfg.mem_size = 32ULL << 20;
	cfg.nr_nodes = 2;
	return test_machine(0, &tlog, &cfg);
}

static void check_content(struct balloon *b)
{
	for (int i = 0; i < NPAGES; i++) {
		const unsigned char *c = iom_page_address(b->m, b->pages[i]);

		for (size_t k = 0; k < PG; k++)
			if (c[k] != (unsigned char)(0x40 + i))
				fail_msg("page %d byte %zu: %#x", i, k, c[k]);
	}
}

/*
 * What this proves: isolated driver pages migrate to node 1 through the
 * driver's ->migratepage: the driver holds the new pages, content intact,
 * the new pages are movable and unisolated, the old ones are freed.
 */
static void movable_pages_migrate_through_their_driver(void **state)
{
	struct iom_list_head list = { &list, &list };
	struct iom_machine *m = machine();
	unsigned long free0, ok0;
	unsigned int nr_ok = 0;
	struct balloon b;

	(void)state;
	balloon_init(&b, m);
	free0 = test_nr_free(m);
	ok0 = iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS);
	for (int i = 0; i < NPAGES; i++) {
		struct iom_page *p = b.pages[i];

		assert_true(iom_PageMovable(p));
		assert_int_equal(iom_isolate_movable_page(m, p, 0), 0);
		assert_true(iom_PageIsolated(p));
		list_add_tail(&p->lru, &list);
	}
	assert_int_equal(b.isolated, NPAGES);
	assert_int_equal(migrate_to_node1(m, &list, &nr_ok), 0);
	assert_int_equal(nr_ok, NPAGES);
	assert_ptr_equal(list.next, &list);
	assert_int_equal(b.migrated, NPAGES);
	assert_int_equal(iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS) - ok0, NPAGES);
	for (int i = 0; i < NPAGES; i++) {
		assert_non_null(b.pages[i]);
		assert_int_equal(nid_of(m, b.pages[i]), 1);
		assert_true(iom_PageMovable(b.pages[i]));
		assert_false(iom_PageIsolated(b.pages[i]));
		assert_false(iom_PageLRU(b.pages[i]));
		assert_int_equal(iom_page_ref_count(b.pages[i]), 1);
	}
	check_content(&b);
	assert_int_equal(test_nr_free(m), free0);	/* NPAGES in, NPAGES out */
	balloon_teardown(&b);
}

/*
 * What this proves: when the driver refuses, every pass fails, the pages
 * stay on the list and iom_putback_movable_pages() gives them back through
 * ->putback_page: unisolated, movable, content and references as before.
 */
static void refused_migration_puts_back_to_the_driver(void **state)
{
	struct iom_list_head list = { &list, &list };
	struct iom_machine *m = machine();
	struct iom_page *p;
	unsigned long free0;
	struct balloon b;

	(void)state;
	balloon_init(&b, m);
	b.refuse = true;
	p = b.pages[3];
	free0 = test_nr_free(m);
	assert_int_equal(iom_isolate_movable_page(m, p, 0), 0);
	list_add_tail(&p->lru, &list);
	assert_int_equal(migrate_to_node1(m, &list, NULL), 1);
	assert_ptr_equal(list.next, &p->lru);
	assert_null(b.pages[3]);
	iom_putback_movable_pages(m, &list);
	assert_int_equal(b.putback, 1);
	assert_ptr_equal(b.pages[3], p);
	assert_false(iom_PageIsolated(p));
	assert_true(iom_PageMovable(p));
	assert_int_equal(iom_page_ref_count(p), 1);
	assert_int_equal(nid_of(m, p), 0);
	assert_int_equal(test_nr_free(m), free0);
	check_content(&b);
	balloon_teardown(&b);
}

/*
 * What this proves: a page the driver released (ClearPageMovable + its
 * reference dropped) after isolation is "freed from under us": migration
 * counts it done and frees it, without a target.
 */
static void released_page_is_freed_by_migration(void **state)
{
	struct iom_list_head list = { &list, &list };
	struct iom_machine *m = machine();
	struct iom_page *p;
	unsigned long free0;
	struct balloon b;

	(void)state;
	balloon_init(&b, m);
	p = b.pages[7];
	assert_int_equal(iom_isolate_movable_page(m, p, 0), 0);
	list_add_tail(&p->lru, &list);
	/* the driver deflates: releases the page it no longer holds */
	iom_lock_page(p);
	iom___ClearPageMovable(p);
	iom_unlock_page(p);
	assert_false(iom_PageMovable(p));
	iom_put_page(m, p);
	free0 = test_nr_free(m);
	assert_int_equal(migrate_to_node1(m, &list, NULL), 0);
	assert_int_equal(test_nr_free(m), free0 + 1);
	assert_int_equal(b.migrated, 0);
	/* give the driver a page back for balloon_destroy() */
	b.pages[7] = iom_alloc_pages_node(m, 0, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_non_null(b.pages[7]);
	b.pages[7]->index = 7;
	assert_int_equal(iom___SetPageMovable(b.pages[7], &b.mapping), 0);
	balloon_teardown(&b);
}

/*
 * What this proves: compaction and CMA find driver pages too
 * (isolate_migratepages_range() -> isolate_movable_page()): a full
 * compaction of node 0 moves them up the zone through the driver, which
 * keeps every page and its content.
 */
static void compaction_moves_driver_pages(void **state)
{
	struct iom_machine *m = machine();
	unsigned long before[NPAGES];
	struct balloon b;
	int moved = 0;

	(void)state;
	balloon_init(&b, m);
	for (int i = 0; i < NPAGES; i++)
		before[i] = iom_page_to_pfn(m, b.pages[i]);
	assert_int_equal(iom_compact_node(m, 0), 0);
	for (int i = 0; i < NPAGES; i++) {
		assert_non_null(b.pages[i]);
		assert_true(iom_PageMovable(b.pages[i]));
		assert_false(iom_PageIsolated(b.pages[i]));
		assert_int_equal(nid_of(m, b.pages[i]), 0);
		moved += iom_page_to_pfn(m, b.pages[i]) != before[i];
	}
	assert_int_equal(b.isolated, NPAGES);
	assert_int_equal(b.migrated, moved);
	assert_true(moved > 0);
	check_content(&b);
	balloon_teardown(&b);
}

static const struct iom_address_space_operations no_isolate_aops = {
	.migratepage = balloon_migrate,
	.putback_page = balloon_putback,
};

/*
 * What this proves: bad input and pages that are not isolatable get
 * -EINVAL or -EBUSY and change nothing.
 */
static void isolation_errors(void **state)
{
	struct iom_machine *m = machine();
	struct iom_address_space bad;
	struct iom_page *p, *anon;
	struct balloon b;
	int ref;

	(void)state;
	balloon_init(&b, m);
	p = b.pages[0];
	ref = iom_page_ref_count(p);
	assert_int_equal(iom_isolate_movable_page(NULL, p, 0), -EINVAL);
	assert_int_equal(iom_isolate_movable_page(m, NULL, 0), -EINVAL);
	assert_int_equal(iom___SetPageMovable(NULL, &b.mapping), -EINVAL);
	assert_int_equal(iom___SetPageMovable(p, &b.mapping), -EINVAL);	/* has one */
	assert_int_equal(iom_address_space_init(&bad, m, &no_isolate_aops), 0);
	anon = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_non_null(anon);
	assert_int_equal(iom___SetPageMovable(anon, &bad), -EINVAL);	/* no ->isolate_page */
	assert_false(iom_PageMovable(anon));
	/* not a movable page */
	assert_int_equal(iom_isolate_movable_page(m, anon, 0), -EBUSY);
	assert_int_equal(iom_page_ref_count(anon), 1);
	iom_put_page(m, anon);
	/* a free page */
	assert_int_equal(iom_isolate_movable_page(m, anon, 0), -EBUSY);
	/* locked by its driver */
	iom_lock_page(p);
	assert_int_equal(iom_isolate_movable_page(m, p, 0), -EBUSY);
	iom_unlock_page(p);
	assert_int_equal(iom_page_ref_count(p), ref);
	/* isolated twice */
	assert_int_equal(iom_isolate_movable_page(m, p, 0), 0);
	assert_int_equal(iom_isolate_movable_page(m, p, 0), -EBUSY);
	assert_int_equal(iom_page_ref_count(p), ref + 1);
	{
		struct iom_list_head list = { &list, &list };

		list_add_tail(&p->lru, &list);
		iom_putback_movable_pages(m, &list);
	}
	assert_int_equal(iom_page_ref_count(p), ref);
	assert_ptr_equal(b.pages[0], p);
	iom_address_space_destroy(&bad);
	balloon_teardown(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(movable_pages_migrate_through_their_driver),
		cmocka_unit_test(refused_migration_puts_back_to_the_driver),
		cmocka_unit_test(released_page_is_freed_by_migration),
		cmocka_unit_test(isolation_errors),
		cmocka_unit_test(compaction_moves_driver_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
