/* SPDX-License-Identifier: MIT */
/*
 * IOMAP (src/iomap/iomap.c) on its own, with a test client instead of the
 * DMA layer: insert sets PG_private and puts the page in the tree and on
 * the LRU (PageIomap, the IOMAP's reference); reclaim never frees it; the
 * MM's migration goes through ->migratepage (the client's begin/end around
 * migrate_page) and ->migratepagecopy (the client copies, the MM does not);
 * remove finds the page that is there now even after a migration; mmap
 * maps the pages shared and a write through it reaches the page; and each
 * misuse (NULL arguments, a page already inserted or on the LRU, an index
 * taken, an empty index, release with pages or while mapped, mmap of a
 * hole) returns its error and changes nothing.
 */
#include <errno.h>
#include <string.h>

#include <iommig/filemap.h>
#include <iommig/iomap.h>
#include <iommig/migrate.h>

#include "mm_util.h"
#include "core/machine.h"

#define PG IOM_PAGE_SIZE

static struct test_log tlog;
static struct iom_machine *alloc_m;

struct client {
	struct iom_iomap iomap;
	int copies, begins, ends, last_rc;
};

static void client_copy(struct iom_iomap *iomap, struct iom_page *newpage,
			struct iom_page *page)
{
	struct client *c = (struct client *)iomap;

	c->copies++;
	memcpy(iom_page_address(alloc_m, newpage), iom_page_address(alloc_m, page), PG);
	/* the client's own reference (what PG_private stands for) moves */
	iom_get_page(alloc_m, newpage);
	iom_put_page(alloc_m, page);
}

static int client_begin(struct iom_iomap *iomap, struct iom_page *page)
{
	(void)page;
	((struct client *)iomap)->begins++;
	return 0;
}

static void client_end(struct iom_iomap *iomap, struct iom_page *newpage,
		       struct iom_page *page, int rc)
{
	struct client *c = (struct client *)iomap;

	(void)newpage;
	(void)page;
	c->ends++;
	c->last_rc = rc;
}

static const struct iom_iomap_client_ops cops = {
	.migratepagecopy = client_copy,
	.migrate_begin = client_begin,
	.migrate_end = client_end,
};

static struct iom_page *new_page(struct iom_page *page, unsigned long private)
{
	(void)page;
	(void)private;
	return iom_alloc_pages(alloc_m, IOM_GFP_HIGHUSER_MOVABLE, 0);
}

static void test_create_insert_remove_and_misuse(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	unsigned long free0 = test_nr_free(m);
	static const struct iom_iomap_client_ops no_copy = { .migrate_begin = client_begin };
	static const struct iom_iomap_client_ops half = {
		.migratepagecopy = client_copy, .migrate_begin = client_begin,
	};
	struct client c;
	struct iom_page *p, *q, *got = NULL;

	(void)state;
	alloc_m = m;
	assert_int_equal(iom_iomap_create(NULL, &c.iomap, &cops), -EINVAL);
	assert_int_equal(iom_iomap_create(m, NULL, &cops), -EINVAL);
	assert_int_equal(iom_iomap_create(m, &c.iomap, NULL), -EINVAL);
	assert_int_equal(iom_iomap_create(m, &c.iomap, &no_copy), -EINVAL);
	assert_int_equal(iom_iomap_create(m, &c.iomap, &half), -EINVAL);
	memset(&c, 0, sizeof(c));
	assert_int_equal(iom_iomap_create(m, &c.iomap, &cops), 0);

	p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	q = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_false(iom_PageIomap(p));
	assert_int_equal(iom_iomap_insert_page(&c.iomap, p, 7), 0);
	assert_true(iom_PageIomap(p));
	assert_true(iom_PagePrivate(p));
	assert_true(iom_PageLRU(p));
	assert_false(iom_PageLocked(p));
	assert_ptr_equal(iom_page_iomap(p), &c.iomap);
	assert_int_equal(iom_page_ref_count(p), 2);	/* ours and the IOMAP's */
	/* misuse: nothing changes */
	assert_int_equal(iom_iomap_insert_page(&c.iomap, p, 8), -EINVAL);	/* in already */
	assert_int_equal(iom_iomap_insert_page(&c.iomap, q, 7), -EEXIST);
	assert_false(iom_PagePrivate(q));
	assert_int_equal(iom_page_ref_count(q), 1);
	assert_int_equal(iom_iomap_insert_page(NULL, q, 1), -EINVAL);
	assert_int_equal(iom_iomap_insert_page(&c.iomap, NULL, 1), -EINVAL);
	assert_int_equal(iom_iomap_remove_page(&c.iomap, 6, &got), -ENOENT);
	assert_int_equal(iom_iomap_remove_page(NULL, 7, &got), -EINVAL);
	assert_int_equal(iom_iomap_release(&c.iomap), -EBUSY);
	assert_null(iom_iomap_find_lock_page(&c.iomap, 6));
	/* reclaim never frees it: ->releasepage refuses */
	assert_int_equal(iom_shrink_page_cache(m, -1, 1000), 0);
	assert_true(iom_PageIomap(p));

	assert_int_equal(iom_iomap_remove_page(&c.iomap, 7, &got), 0);
	assert_ptr_equal(got, p);
	assert_false(iom_PagePrivate(p));
	assert_false(iom_PageIomap(p));
	assert_int_equal(iom_page_ref_count(p), 1);
	assert_int_equal(iom_iomap_release(&c.iomap), 0);
	assert_int_equal(iom_iomap_release(&c.iomap), -EINVAL);	/* released */
	iom_put_page(m, p);
	iom_put_page(m, q);
	assert_int_equal(test_nr_free(m), free0);
	iom_machine_destroy(m);
}

/*
 * The MM migrates an IOMAP page through the client: begin and end around
 * migrate_page(), the client's copy instead of the MM's, the tree slot and
 * PG_private moved; remove afterwards finds the new page.
 */
static void test_migration_goes_through_the_client(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	unsigned long free0 = test_nr_free(m);
	struct iom_list_head list = { &list, &list };
	struct client c;
	struct iom_page *p, *now, *got = NULL;
	unsigned int nr = 0;

	(void)state;
	alloc_m = m;
	memset(&c, 0, sizeof(c));
	assert_int_equal(iom_iomap_create(m, &c.iomap, &cops), 0);
	p = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	memset(iom_page_address(m, p), 0x5a, PG);
	assert_int_equal(iom_iomap_insert_page(&c.iomap, p, 3), 0);
	assert_int_equal(iom_isolate_lru_page(m, p), 0);
	list_add_tail(&p->lru, &list);
	/* the skip-copy switch stops only the MM's own copy: the client copies */
	atomic_store(&m->test_skip_migrate_copy, true);
	assert_int_equal(iom_migrate_pages(m, &list, new_page, NULL, 0, IOM_MIGRATE_SYNC,
					   IOM_MR_SYSCALL, &nr), 0);
	atomic_store(&m->test_skip_migrate_copy, false);
	assert_int_equal(nr, 1);
	assert_int_equal(c.begins, 1);
	assert_int_equal(c.ends, 1);
	assert_int_equal(c.last_rc, 0);
	assert_int_equal(c.copies, 1);
	now = iom_iomap_find_lock_page(&c.iomap, 3);
	assert_non_null(now);
	assert_ptr_not_equal(now, p);
	assert_true(iom_PagePrivate(now));
	assert_int_equal(((unsigned char *)iom_page_address(m, now))[100], 0x5a);
	/* ours, moved by the client, the IOMAP's and the lookup's */
	assert_int_equal(iom_page_ref_count(now), 3);
	iom_unlock_page(now);
	iom_put_page(m, now);
	assert_int_equal(iom_iomap_remove_page(&c.iomap, 3, &got), 0);
	assert_ptr_equal(got, now);
	iom_put_page(m, got);	/* ours: the page goes back */
	assert_int_equal(iom_iomap_release(&c.iomap), 0);
	assert_int_equal(test_nr_free(m), free0);
	iom_machine_destroy(m);
}

/* A process maps the IOMAP's pages shared; a hole refuses the mmap. */
static void test_mmap_maps_the_pages_shared(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct client c;
	struct iom_page *p[2], *got;
	struct iom_mm *mm, *other;
	uint64_t at = 0;
	char buf[8];

	(void)state;
	alloc_m = m;
	memset(&c, 0, sizeof(c));
	assert_int_equal(iom_iomap_create(m, &c.iomap, &cops), 0);
	for (int i = 0; i < 2; i++) {
		p[i] = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE | IOM___GFP_ZERO, 0);
		assert_int_equal(iom_iomap_insert_page(&c.iomap, p[i], 10 + i), 0);
	}
	assert_int_equal(iom_mm_create(m, &mm), 0);
	assert_int_equal(iom_iomap_mmap(&c.iomap, mm, 0, 3 * PG, 10,
					IOM_PROT_READ | IOM_PROT_WRITE, &at), -ENOENT);
	assert_int_equal(iom_iomap_mmap(&c.iomap, mm, 0, PG + 1, 10, IOM_PROT_READ, &at),
			 -EINVAL);
	assert_int_equal(iom_iomap_mmap(&c.iomap, NULL, 0, PG, 10, IOM_PROT_READ, &at),
			 -EINVAL);
	assert_int_equal(iom_iomap_mmap(&c.iomap, mm, 0, 2 * PG, 10,
					IOM_PROT_READ | IOM_PROT_WRITE, &at), 0);
	assert_int_equal(iom_write(mm, at + PG + 5, "iomap", 6), 0);
	assert_string_equal((char *)iom_page_address(m, p[1]) + 5, "iomap");
	assert_int_equal(iom_read(mm, at + PG + 5, buf, 6), 0);
	assert_string_equal(buf, "iomap");
	assert_true(iom_mapping_mapped(&c.iomap.mapping, 11, 11));
	assert_false(iom_mapping_mapped(&c.iomap.mapping, 12, 20));
	/* a machine's IOMAP is not another machine's process's */
	{
		struct iom_machine *m2 = test_machine(16, NULL, NULL);

		assert_int_equal(iom_mm_create(m2, &other), 0);
		assert_int_equal(iom_iomap_mmap(&c.iomap, other, 0, PG, 10, IOM_PROT_READ, &at),
				 -EINVAL);
		iom_mm_destroy(other);
		iom_machine_destroy(m2);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(iom_iomap_remove_page(&c.iomap, 10 + i, &got), 0);
		iom_put_page(m, got);
	}
	assert_int_equal(iom_iomap_release(&c.iomap), -EBUSY);	/* still mapped */
	assert_int_equal(iom_munmap(mm, at, 2 * PG), 0);
	assert_int_equal(iom_iomap_release(&c.iomap), 0);
	iom_mm_destroy(mm);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_insert_remove_and_misuse),
		cmocka_unit_test(test_migration_goes_through_the_client),
		cmocka_unit_test(test_mmap_maps_the_pages_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
