/* SPDX-License-Identifier: MIT */
/*
 * Page migration (src/mm/migrate.c): an anonymous page, a file page shared
 * by two processes and an unmapped page-cache page move with their
 * content, mapping, index, mapcount, references, tree slot and DIRTY tag,
 * and the old page is freed; an extra reference makes migration fail with
 * everything as it was; seed 000's migratepagecopy hook replaces the copy;
 * ASYNC mode does not wait for a locked page; and pages written by two
 * threads lose no write while they move back and forth between two nodes.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iommig/compaction.h>
#include <iommig/migrate.h>

#include "mm_util.h"

#define PG IOM_PAGE_SIZE

static struct test_log tlog;

static int page_nid(struct iom_machine *m, struct iom_page *page)
{
	return page_pgdat(m, page)->node_id;
}

static struct iom_machine *alloc_m;

/* get_new_page: any node. */
static struct iom_page *new_page_any(struct iom_page *page, unsigned long private)
{
	(void)page;
	(void)private;
	return iom_alloc_pages(alloc_m, IOM_GFP_HIGHUSER_MOVABLE, 0);
}

/* get_new_page: node @private only. */
static struct iom_page *new_page_node(struct iom_page *page, unsigned long private)
{
	(void)page;
	return iom_alloc_pages_node(alloc_m, (int)private,
				    IOM_GFP_HIGHUSER_MOVABLE | IOM___GFP_THISNODE, 0);
}

static atomic_int nr_put_new;

static void put_new_page(struct iom_page *page, unsigned long private)
{
	(void)private;
	atomic_fetch_add(&nr_put_new, 1);
	iom_put_page(alloc_m, page);
}

/* Isolate @page (the caller holds a reference, kept) onto @list. */
static void isolate_onto(struct iom_machine *m, struct iom_page *page,
			 struct iom_list_head *list)
{
	assert_int_equal(iom_isolate_lru_page(m, page), 0);
	list_add_tail(&page->lru, list);
}

static void fill(struct iom_machine *m, struct iom_page *page, unsigned char seed)
{
	unsigned char *p = iom_page_address(m, page);

	for (size_t i = 0; i < PG; i++)
		p[i] = (unsigned char)(seed + i * 7);
}

static bool check_fill(struct iom_machine *m, struct iom_page *page, unsigned char seed)
{
	unsigned char *p = iom_page_address(m, page);

	for (size_t i = 0; i < PG; i++)
		if (p[i] != (unsigned char)(seed + i * 7))
			return false;
	return true;
}

/* ---- one page of each kind ------------------------------------------------ */

/*
 * What this proves: an anonymous page moves with its content, its PTE
 * (mapcount 1, the PTE's reference only), its anon_vma and index, and the
 * old page goes back to the free lists.
 */
static void anon_page_migrates(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_list_head list = { &list, &list };
	struct iom_page *old, *new;
	struct iom_address_space *av;
	unsigned long free_before, idx, ok0;
	unsigned int nr_ok = 99;
	struct iom_mm *mm;
	uint64_t a;
	char buf[16];

	(void)state;
	alloc_m = m;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE, NULL, 0);
	old = test_get_page_at(mm, a);
	fill(m, old, 3);
	iom_SetPageActive(old);
	av = old->mapping;
	idx = old->index;
	isolate_onto(m, old, &list);
	iom_put_page(m, old);			/* the isolation reference remains */
	assert_int_equal(iom_page_ref_count(old), 2);	/* PTE + isolation */
	free_before = test_nr_free(m);
	ok0 = iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS);

	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, &nr_ok), 0);
	assert_int_equal(nr_ok, 1);
	assert_true(list.next == &list);
	assert_int_equal(iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS), ok0 + 1);

	new = test_get_page_at(mm, a);
	assert_ptr_not_equal(new, old);
	assert_true(check_fill(m, new, 3));
	assert_ptr_equal(new->mapping, av);
	assert_int_equal(new->index, idx);
	assert_int_equal(iom_page_mapcount(new), 1);
	assert_int_equal(iom_page_ref_count(new), 2);	/* PTE + ours */
	assert_true(iom_PageLRU(new) && iom_PageSwapBacked(new) && iom_PageActive(new));
	assert_false(iom_PageLocked(new));
	iom_put_page(m, new);
	/* the old page is free: one page in, one page out */
	assert_int_equal(iom_page_ref_count(old), 0);
	assert_int_equal(test_nr_free(m), free_before);
	/* and the process still reads and writes it */
	assert_int_equal(iom_write(mm, a + 8, "migrated", 8), 0);
	assert_int_equal(iom_read(mm, a + 8, buf, 8), 0);
	assert_memory_equal(buf, "migrated", 8);

	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/*
 * What this proves: a dirty file page mapped by two processes moves with
 * both PTEs (mapcount 2), the tree slot, the DIRTY tag, the cache's
 * reference and the content; a lookup finds the new page and the old one
 * is freed.
 */
static void shared_file_page_migrates(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_list_head list = { &list, &list };
	struct iom_address_space *mapping;
	struct iom_page *old, *new, *found;
	struct iom_inode *inode;
	struct iom_mm *mm[2];
	uint64_t a[2];
	unsigned long free_before, nrpages;
	char buf[8];

	(void)state;
	alloc_m = m;
	iom_rcu_register_thread();
	assert_int_equal(iom_inode_create(m, 4 * PG, &inode), 0);
	mapping = iom_inode_mapping(inode);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(iom_mm_create(m, &mm[i]), 0);
		a[i] = test_mmap(mm[i], 0, 4 * PG, IOM_PROT_READ | IOM_PROT_WRITE,
			   IOM_MAP_SHARED | IOM_MAP_POPULATE, inode, 0);
	}
	assert_int_equal(iom_write(mm[0], a[0] + PG + 100, "shared!", 8), 0);
	old = test_get_page_at(mm[0], a[0] + PG);
	assert_ptr_equal(old, test_get_page_at(mm[1], a[1] + PG));
	iom_put_page(m, old);
	iom_put_page(m, old);
	iom_set_page_dirty(old);
	assert_true(iom_radix_tree_tag_get(&mapping->i_pages, 1, IOM_PAGECACHE_TAG_DIRTY));
	assert_int_equal(iom_page_mapcount(old), 2);
	isolate_onto(m, old, &list);
	assert_int_equal(iom_page_ref_count(old), 4);	/* 2 PTEs, cache, isolation */
	free_before = test_nr_free(m);
	nrpages = mapping->nrpages;

	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_COMPACTION, NULL), 0);
	new = test_get_page_at(mm[1], a[1] + PG);
	assert_ptr_not_equal(new, old);
	assert_ptr_equal(new, test_get_page_at(mm[0], a[0] + PG));
	iom_put_page(m, new);
	iom_put_page(m, new);
	assert_ptr_equal(new->mapping, mapping);
	assert_int_equal(new->index, 1);
	assert_int_equal(iom_page_mapcount(new), 2);
	assert_int_equal(iom_page_ref_count(new), 3);	/* 2 PTEs + cache */
	assert_true(iom_PageDirty(new) && iom_PageLRU(new) && iom_PageUptodate(new));
	assert_false(iom_PageSwapBacked(new));
	iom_rcu_read_lock();
	assert_ptr_equal(iom_radix_tree_lookup(&mapping->i_pages, 1), new);
	assert_true(iom_radix_tree_tag_get(&mapping->i_pages, 1, IOM_PAGECACHE_TAG_DIRTY));
	iom_rcu_read_unlock();
	assert_int_equal(mapping->nrpages, nrpages);
	found = iom_find_get_page(mapping, 1);
	assert_ptr_equal(found, new);
	iom_put_page(m, found);
	assert_int_equal(iom_page_ref_count(old), 0);
	assert_int_equal(test_nr_free(m), free_before);
	assert_int_equal(iom_read(mm[1], a[1] + PG + 100, buf, 8), 0);
	assert_memory_equal(buf, "shared!", 8);
	/* the dirty data reaches the disk through the new page */
	assert_true(iom_file_sync(inode) >= 1);
	assert_int_equal(iom_file_read_disk(inode, PG + 100, buf, 8), 0);
	assert_memory_equal(buf, "shared!", 8);

	for (int i = 0; i < 2; i++)
		iom_mm_destroy(mm[i]);
	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_rcu_unregister_thread();
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* What this proves: an unmapped page-cache page moves; reads see its data. */
static void unmapped_cache_page_migrates(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_list_head list = { &list, &list };
	struct iom_address_space *mapping;
	struct iom_page *old, *new;
	struct iom_inode *inode;
	unsigned long free_before;
	char buf[8];

	(void)state;
	alloc_m = m;
	iom_rcu_register_thread();
	assert_int_equal(iom_inode_create(m, 4 * PG, &inode), 0);
	mapping = iom_inode_mapping(inode);
	assert_int_equal(iom_file_write(inode, 2 * PG + 8, "cached!", 8), 8);
	old = iom_find_get_page(mapping, 2);
	assert_non_null(old);
	assert_true(iom_PageDirty(old));
	isolate_onto(m, old, &list);
	iom_put_page(m, old);
	assert_int_equal(iom_page_ref_count(old), 2);	/* cache + isolation */
	free_before = test_nr_free(m);

	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_ASYNC, IOM_MR_CONTIG_RANGE, NULL), 0);
	new = iom_find_get_page(mapping, 2);
	assert_ptr_not_equal(new, old);
	assert_int_equal(iom_page_ref_count(new), 2);	/* cache + ours */
	iom_put_page(m, new);
	assert_int_equal(iom_page_mapcount(new), 0);
	assert_ptr_equal(new->mapping, mapping);
	assert_int_equal(new->index, 2);
	assert_true(iom_PageDirty(new));
	assert_true(iom_radix_tree_tag_get(&mapping->i_pages, 2, IOM_PAGECACHE_TAG_DIRTY));
	assert_int_equal(iom_page_ref_count(old), 0);
	assert_int_equal(test_nr_free(m), free_before);
	assert_int_equal(iom_file_read(inode, 2 * PG + 8, buf, 8), 8);
	assert_memory_equal(buf, "cached!", 8);

	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_rcu_unregister_thread();
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- failure leaves everything as it was --------------------------------- */

/*
 * What this proves: with an extra reference on the page (anonymous or
 * page cache) migration fails with -EAGAIN on every pass, the page stays
 * on the list, mapped, with its references and content, the target pages
 * go back through put_new_page, and pgmigrate_fail counts it; after the
 * reference is dropped the same migration succeeds.
 */
static void extra_reference_fails_then_succeeds(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_list_head list = { &list, &list };
	struct iom_address_space *mapping;
	struct iom_page *anon, *file, *p;
	struct iom_inode *inode;
	unsigned long free_before, fail0;
	unsigned int nr_ok = 99;
	struct iom_mm *mm;
	uint64_t a, f;

	(void)state;
	alloc_m = m;
	iom_rcu_register_thread();
	assert_int_equal(iom_mm_create(m, &mm), 0);
	assert_int_equal(iom_inode_create(m, PG, &inode), 0);
	mapping = iom_inode_mapping(inode);
	a = test_mmap(mm, 0, PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE, NULL, 0);
	f = test_mmap(mm, 0, PG, IOM_PROT_READ | IOM_PROT_WRITE, IOM_MAP_SHARED | IOM_MAP_POPULATE,
		inode, 0);
	anon = test_get_page_at(mm, a);		/* our extra reference */
	file = test_get_page_at(mm, f);		/* and here */
	fill(m, anon, 11);
	fill(m, file, 22);
	iom_set_page_dirty(file);
	isolate_onto(m, anon, &list);
	isolate_onto(m, file, &list);
	free_before = test_nr_free(m);
	fail0 = iom_vm_event_count(m, IOM_PGMIGRATE_FAIL);
	atomic_store(&nr_put_new, 0);

	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, put_new_page, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, &nr_ok), 2);
	assert_int_equal(nr_ok, 0);
	assert_int_equal(iom_vm_event_count(m, IOM_PGMIGRATE_FAIL), fail0 + 2);
	/*
	 * One target a page in the ASYNC batch (3 move passes), one in the
	 * SYNC retry of each page alone (7 passes): the move phase keeps its
	 * target across passes, as the kernel's migrate_pages_batch().
	 */
	assert_int_equal(atomic_load(&nr_put_new), 4);
	assert_ptr_equal(list.next, &anon->lru);
	assert_ptr_equal(list.prev, &file->lru);
	assert_int_equal(test_nr_free(m), free_before);
	/* everything as it was */
	assert_int_equal(iom_page_ref_count(anon), 3);	/* PTE, isolation, ours */
	assert_int_equal(iom_page_ref_count(file), 4);	/* PTE, cache, isolation, ours */
	assert_int_equal(iom_page_mapcount(anon), 1);
	assert_int_equal(iom_page_mapcount(file), 1);
	assert_true(iom_PageAnon(anon));
	assert_ptr_equal(file->mapping, mapping);
	assert_true(iom_PageDirty(file));
	assert_false(iom_PageLocked(anon) || iom_PageLocked(file));
	iom_rcu_read_lock();
	assert_ptr_equal(iom_radix_tree_lookup(&mapping->i_pages, 0), file);
	assert_true(iom_radix_tree_tag_get(&mapping->i_pages, 0, IOM_PAGECACHE_TAG_DIRTY));
	iom_rcu_read_unlock();
	p = test_get_page_at(mm, a);
	assert_ptr_equal(p, anon);
	iom_put_page(m, p);
	p = test_get_page_at(mm, f);
	assert_ptr_equal(p, file);
	iom_put_page(m, p);
	assert_true(check_fill(m, anon, 11) && check_fill(m, file, 22));

	/* drop the extra references: now they move */
	iom_put_page(m, anon);
	iom_put_page(m, file);
	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, put_new_page, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, &nr_ok), 0);
	assert_int_equal(nr_ok, 2);
	assert_true(list.next == &list);
	p = test_get_page_at(mm, a);
	assert_ptr_not_equal(p, anon);
	assert_true(check_fill(m, p, 11));
	iom_put_page(m, p);
	p = test_get_page_at(mm, f);
	assert_ptr_not_equal(p, file);
	assert_true(check_fill(m, p, 22));
	assert_true(iom_PageDirty(p));
	iom_put_page(m, p);

	iom_mm_destroy(mm);
	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_rcu_unregister_thread();
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- seed 000: the migratepagecopy hook ---------------------------------- */

struct hook_log {
	int calls;
	struct iom_address_space *mapping;
	struct iom_page *newpage, *page;
};
static struct hook_log hook_log;

/*
 * The seed's __iommu_migratepagecopy() in miniature: copy (marking byte 0
 * so the test can tell the hook copied, not the generic code) and move the
 * DMA layer's reference: get_page(to), put_page(from).
 */
static void dma_migratepagecopy(struct iom_address_space *mapping,
				struct iom_page *newpage, struct iom_page *page)
{
	struct iom_machine *m = mapping->m;
	unsigned char *to = iom_page_address(m, newpage);

	hook_log.calls++;
	hook_log.mapping = mapping;
	hook_log.newpage = newpage;
	hook_log.page = page;
	memcpy(to, iom_page_address(m, page), PG);
	to[0] = 0x5a;
	iom_get_page(m, newpage);
	iom_put_page(m, page);
}

static const struct iom_address_space_operations iomap_aops = {
	.migratepage = iom_migrate_page,
	.migratepagecopy = dma_migratepagecopy,
};

/*
 * What this proves: for a PG_private page of a mapping whose a_ops has
 * migratepagecopy (seed 000's IOMAP), the expected count includes the
 * private reference, migrate_page_copy() calls the hook instead of
 * copying, the hook's reference move balances, and private state follows.
 */
static void migratepagecopy_hook_replaces_copy(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_list_head list = { &list, &list };
	struct iom_address_space mapping;
	struct iom_page *page, *new, *p;
	unsigned long free_before;
	unsigned char *c;

	(void)state;
	alloc_m = m;
	iom_rcu_register_thread();
	memset(&hook_log, 0, sizeof(hook_log));
	assert_int_equal(iom_address_space_init(&mapping, m, &iomap_aops), 0);
	/* iomap_insert_page(): the DMA layer's reference is the private one */
	page = iom_alloc_pages(m, IOM_GFP_HIGHUSER_MOVABLE, 0);
	assert_non_null(page);
	fill(m, page, 44);
	iom_SetPagePrivate(page);
	page->private = 0xd3a;
	assert_int_equal(iom_add_to_page_cache_lru(page, &mapping, 10, IOM_GFP_KERNEL), 0);
	iom_unlock_page(page);

	p = iom_find_get_page(&mapping, 10);
	assert_ptr_equal(p, page);
	isolate_onto(m, page, &list);
	iom_put_page(m, p);
	assert_int_equal(iom_page_ref_count(page), 3);	/* DMA, cache, isolation */
	free_before = test_nr_free(m);

	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_CONTIG_RANGE, NULL), 0);
	assert_int_equal(hook_log.calls, 1);
	assert_ptr_equal(hook_log.mapping, &mapping);
	assert_ptr_equal(hook_log.page, page);
	new = hook_log.newpage;
	assert_ptr_not_equal(new, page);
	c = iom_page_address(m, new);
	assert_int_equal(c[0], 0x5a);			/* the hook copied ... */
	c[0] = (unsigned char)44;
	assert_true(check_fill(m, new, 44));		/* ... everything */
	assert_true(iom_PagePrivate(new));
	assert_int_equal(new->private, 0xd3a);
	assert_int_equal(new->index, 10);
	assert_ptr_equal(new->mapping, &mapping);
	assert_int_equal(iom_page_ref_count(new), 2);	/* DMA + cache */
	assert_int_equal(iom_page_ref_count(page), 0);
	assert_int_equal(test_nr_free(m), free_before);
	p = iom_find_get_page(&mapping, 10);
	assert_ptr_equal(p, new);
	iom_put_page(m, p);

	/* iomap_remove_page() */
	iom_lock_page(new);
	assert_int_equal(iom_delete_from_page_cache(new), 0);
	iom_ClearPagePrivate(new);
	new->private = 0;
	iom_unlock_page(new);
	iom_put_page(m, new);
	assert_int_equal(iom_address_space_destroy(&mapping), 0);
	iom_rcu_unregister_thread();
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- ASYNC and a locked page --------------------------------------------- */

struct locker {
	struct iom_page *page;
	atomic_bool locked, release;
};

static void *locker_thread(void *arg)
{
	struct locker *l = arg;

	iom_lock_page(l->page);
	atomic_store(&l->locked, true);
	while (!atomic_load(&l->release))
		sched_yield();
	iom_unlock_page(l->page);
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * What this proves: in MIGRATE_ASYNC a page locked by another thread is
 * not migrated and migrate_pages() returns at once (it would block forever
 * if it slept: the locker waits for us); the page is intact and moves once
 * unlocked.
 */
static void async_mode_skips_locked_page(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_list_head list = { &list, &list };
	struct locker l = { 0 };
	struct iom_page *page, *p;
	pthread_t t;
	struct iom_mm *mm;
	uint64_t a;
	double t0;

	(void)state;
	alloc_m = m;
	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE, NULL, 0);
	page = test_get_page_at(mm, a);
	fill(m, page, 55);
	isolate_onto(m, page, &list);
	iom_put_page(m, page);
	l.page = page;
	assert_int_equal(pthread_create(&t, NULL, locker_thread, &l), 0);
	while (!atomic_load(&l.locked))
		sched_yield();

	t0 = now();
	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_ASYNC, IOM_MR_COMPACTION, NULL), 1);
	assert_true(now() - t0 < 2.0);
	assert_ptr_equal(list.next, &page->lru);
	assert_int_equal(iom_page_mapcount(page), 1);
	assert_int_equal(iom_page_ref_count(page), 2);
	atomic_store(&l.release, true);
	assert_int_equal(pthread_join(t, NULL), 0);

	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_ASYNC, IOM_MR_COMPACTION, NULL), 0);
	p = test_get_page_at(mm, a);
	assert_ptr_not_equal(p, page);
	assert_true(check_fill(m, p, 55));
	iom_put_page(m, p);

	/* putback of a page that is not migrated: back on its LRU */
	p = test_get_page_at(mm, a);
	isolate_onto(m, p, &list);
	iom_putback_movable_pages(m, &list);
	assert_true(list.next == &list);
	assert_true(iom_PageLRU(p));
	assert_int_equal(iom_page_ref_count(p), 2);
	iom_put_page(m, p);

	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

static struct iom_page *no_page(struct iom_page *page, unsigned long private)
{
	(void)page;
	(void)private;
	return NULL;
}

/*
 * What this proves: bad arguments give -EINVAL and touch nothing; a page
 * under writeback is not migrated in ASYNC mode (-EBUSY: it fails at once,
 * without retries); a target allocation failure gives -ENOMEM with the
 * page left on the list; the reasons carry the kernel's names.
 */
static void bad_input_writeback_and_enomem(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_list_head list = { &list, &list };
	struct iom_page *page;
	unsigned long fail0;
	struct iom_mm *mm;
	uint64_t a;

	(void)state;
	alloc_m = m;
	assert_string_equal(iom_migrate_reason_name(IOM_MR_COMPACTION), "compaction");
	assert_string_equal(iom_migrate_reason_name(IOM_MR_SYSCALL), "syscall_or_cpuset");
	assert_string_equal(iom_migrate_reason_name(IOM_MR_DEMOTION), "demotion");
	assert_null(iom_migrate_reason_name(IOM_MR_TYPES));
	assert_string_equal(iom_vm_event_name(IOM_PGMIGRATE_SUCCESS), "pgmigrate_success");
	assert_string_equal(iom_vm_event_name(IOM_PGMIGRATE_FAIL), "pgmigrate_fail");

	assert_int_equal(iom_mm_create(m, &mm), 0);
	a = test_mmap(mm, 0, PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE, NULL, 0);
	page = test_get_page_at(mm, a);
	isolate_onto(m, page, &list);
	iom_put_page(m, page);

	assert_int_equal(iom_migrate_pages(NULL, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, NULL), -EINVAL);
	assert_int_equal(iom_migrate_pages(m, NULL, new_page_any, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, NULL), -EINVAL);
	assert_int_equal(iom_migrate_pages(m, &list, NULL, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, NULL), -EINVAL);
	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_TYPES, NULL), -EINVAL);
	assert_ptr_equal(list.next, &page->lru);

	/* under writeback: -EBUSY in ASYNC mode, one failure, no retry */
	fail0 = iom_vm_event_count(m, IOM_PGMIGRATE_FAIL);
	atomic_store(&nr_put_new, 0);
	iom_SetPageWriteback(page);
	assert_int_equal(iom_migrate_pages(m, &list, new_page_any, put_new_page, 0,
					   IOM_MIGRATE_ASYNC, IOM_MR_COMPACTION, NULL), 1);
	iom_ClearPageWriteback(page);
	assert_int_equal(atomic_load(&nr_put_new), 1);
	assert_int_equal(iom_vm_event_count(m, IOM_PGMIGRATE_FAIL), fail0 + 1);
	assert_ptr_equal(list.next, &page->lru);	/* back on @from */
	assert_int_equal(iom_page_mapcount(page), 1);

	/* no target page: -ENOMEM, the page stays on the list */
	assert_int_equal(iom_migrate_pages(m, &list, no_page, NULL, 0,
					   IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, NULL), -ENOMEM);
	assert_ptr_equal(list.next, &page->lru);
	assert_int_equal(iom_page_ref_count(page), 2);
	iom_putback_movable_pages(m, &list);
	assert_true(list.next == &list);
	assert_true(iom_PageLRU(page));

	iom_mm_destroy(mm);
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
}

/* ---- concurrency: writers while pages move between two nodes ------------- */

#define CC_ANON 4
#define CC_FILE 4
#define CC_PAGES (CC_ANON + CC_FILE)
#define CC_WRITERS 2
#define CC_ROUNDS 200

struct cc_writer {
	struct iom_mm *mm;
	uint64_t addr[CC_PAGES];
	int id;
	atomic_bool *stop;
	uint64_t last[CC_PAGES];
	atomic_ulong writes;
	int errors;
};

/* Workers never assert: they count what went wrong. */
static void *cc_writer_thread(void *arg)
{
	struct cc_writer *w = arg;
	uint64_t seq = 0;

	iom_rcu_register_thread();
	while (!atomic_load(w->stop)) {
		for (int p = 0; p < CC_PAGES; p++) {
			uint64_t at = w->addr[p] + (uint64_t)w->id * 64;
			uint64_t v = (1ULL << 62) | ((uint64_t)w->id << 48) | (seq << 8) |
				     (uint64_t)p, got = 0;

			if (iom_write(w->mm, at, &v, 8) || iom_read(w->mm, at, &got, 8) ||
			    got != v)
				w->errors++;
			w->last[p] = v;
			atomic_fetch_add(&w->writes, 1);
		}
		seq++;
	}
	iom_rcu_unregister_thread();
	return NULL;
}

/*
 * A third thread reads the file through read(2) (the page cache, with
 * speculative references that make migrate_page_move_mapping()'s freeze
 * fail and the page be retried) and checks every writer slot holds 0 or a
 * well-formed stamp of that writer and page.
 */
struct cc_reader {
	struct iom_inode *inode;
	atomic_bool *stop;
	atomic_ulong reads;
	int errors;
};

static void *cc_reader_thread(void *arg)
{
	struct cc_reader *r = arg;

	iom_rcu_register_thread();
	while (!atomic_load(r->stop)) {
		for (int p = 0; p < CC_FILE; p++)
			for (int id = 0; id < CC_WRITERS; id++) {
				uint64_t v = 0;

				if (iom_file_read(r->inode, (uint64_t)p * PG + (uint64_t)id * 64,
						  &v, 8) != 8 ||
				    (v && (v >> 48 != ((1ULL << 14) | (uint64_t)id) ||
					   (v & 0xff) != (uint64_t)(CC_ANON + p))))
					r->errors++;
				atomic_fetch_add(&r->reads, 1);
			}
	}
	iom_rcu_unregister_thread();
	return NULL;
}

struct cc_stats {
	unsigned long moved, failed, lost;
	unsigned long numa_rounds, compacted;
	unsigned long retried;	/* targets given back: -EAGAIN passes */
};

/*
 * Migrate every page to the node it is not on. Returns the pages not
 * migrated (put back).
 */
static int cc_migrate_all(struct iom_machine *m, struct iom_mm *mm,
			  const uint64_t *addr, int target, unsigned int *moved)
{
	struct iom_list_head list = { &list, &list };
	int rc;

	for (int p = 0; p < CC_PAGES; p++) {
		struct iom_page *page;

		if (iom_follow_page(mm, addr[p], &page))
			continue;		/* under migration by nobody: cannot be */
		if (page_nid(m, page) != target && iom_isolate_lru_page(m, page) == 0)
			list_add_tail(&page->lru, &list);
		iom_put_page(m, page);
	}
	rc = iom_migrate_pages(m, &list, new_page_node, put_new_page, (unsigned long)target,
			       IOM_MIGRATE_SYNC, IOM_MR_NUMA_MISPLACED, moved);
	iom_putback_movable_pages(m, &list);
	return rc;
}

/*
 * The same through move_pages(2): every page to @target in one call.
 * Returns the pages that should have moved and did not (a failure makes
 * move_pages() stop and count the pages after it as not migrated).
 */
static int cc_move_pages(struct iom_mm *mm, const uint64_t *addr, int target,
			 unsigned int *moved)
{
	int nodes[CC_PAGES], status[CC_PAGES], before[CC_PAGES], failed = 0;
	long rc;

	for (int p = 0; p < CC_PAGES; p++)
		nodes[p] = target;
	if (iom_move_pages(mm, CC_PAGES, addr, NULL, before, 0))
		return -1;
	rc = iom_move_pages(mm, CC_PAGES, addr, nodes, status, 0);
	if (rc < 0 || iom_move_pages(mm, CC_PAGES, addr, NULL, status, 0))
		return -1;
	*moved = 0;
	for (int p = 0; p < CC_PAGES; p++) {
		if (before[p] == target)
			continue;
		if (status[p] == target)
			(*moved)++;
		else
			failed++;
	}
	return rc > 0 && failed == 0 ? -1 : failed;
}

static struct cc_stats migration_stress(bool skip_copy)
{
	struct iom_machine_config cfg = { 0 };
	struct iom_machine *m;
	struct cc_writer w[CC_WRITERS];
	struct cc_reader rd;
	pthread_t t[CC_WRITERS], rt;
	atomic_bool stop = false;
	struct cc_stats st = { 0 };
	struct iom_inode *inode;
	uint64_t addr[CC_PAGES], a, f;
	unsigned int moved;
	struct iom_mm *mm;
	int rc;

	cfg.mem_size = 32ULL << 20;
	cfg.nr_nodes = 2;
	cfg.page_poison = 1;	/* a skipped copy leaves 0xaa, never a stamp */
	m = test_machine(0, &tlog, &cfg);
	assert_non_null(m);
	assert_int_equal(iom_nr_nodes(m), 2);
	alloc_m = m;
	iom_rcu_register_thread();
	assert_int_equal(iom_mm_create(m, &mm), 0);
	assert_int_equal(iom_inode_create(m, CC_FILE * PG, &inode), 0);
	a = test_mmap(mm, 0, CC_ANON * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE, NULL, 0);
	f = test_mmap(mm, 0, CC_FILE * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		IOM_MAP_SHARED | IOM_MAP_POPULATE, inode, 0);
	for (int p = 0; p < CC_ANON; p++)
		addr[p] = a + (uint64_t)p * PG;
	for (int p = 0; p < CC_FILE; p++)
		addr[CC_ANON + p] = f + (uint64_t)p * PG;

	for (int i = 0; i < CC_WRITERS; i++) {
		w[i] = (struct cc_writer){ .mm = mm, .id = i, .stop = &stop };
		memcpy(w[i].addr, addr, sizeof(addr));
		assert_int_equal(pthread_create(&t[i], NULL, cc_writer_thread, &w[i]), 0);
	}
	rd = (struct cc_reader){ .inode = inode, .stop = &stop };
	assert_int_equal(pthread_create(&rt, NULL, cc_reader_thread, &rd), 0);
	for (int i = 0; i < CC_WRITERS; i++)
		while (atomic_load(&w[i].writes) < CC_PAGES)
			sched_yield();
	while (atomic_load(&rd.reads) < CC_FILE)
		sched_yield();
	atomic_store(&nr_put_new, 0);
	/*
	 * Rounds: to the other node by iom_migrate_pages() (MR_NUMA_MISPLACED),
	 * back by iom_move_pages() (MR_SYSCALL), then compaction of both
	 * nodes (MR_COMPACTION), which moves the pages within their node.
	 */
	for (int r = 0, target = 1; r < CC_ROUNDS; r++) {
		if (r % 3 == 2) {
			unsigned long ok0 = iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS);

			assert_int_equal(iom_compact_node(m, 0), 0);
			assert_int_equal(iom_compact_node(m, 1), 0);
			st.compacted += iom_vm_event_count(m, IOM_PGMIGRATE_SUCCESS) - ok0;
			continue;
		}
		if (r % 3 == 0)
			rc = cc_migrate_all(m, mm, addr, target, &moved);
		else
			rc = cc_move_pages(mm, addr, target, &moved);
		assert_true(rc >= 0);
		st.numa_rounds++;
		st.moved += moved;
		st.failed += (unsigned long)rc;
		target ^= 1;
	}
	st.retried = (unsigned long)atomic_load(&nr_put_new);
	atomic_store(&stop, true);
	for (int i = 0; i < CC_WRITERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_true(atomic_load(&w[i].writes) > 0);
		st.lost += (unsigned long)w[i].errors;
	}
	assert_int_equal(pthread_join(rt, NULL), 0);
	st.lost += (unsigned long)rd.errors;
	/* a last migration with nobody else around: every page moves */
	atomic_store(&m->test_skip_migrate_copy, skip_copy);
	for (int target = 0; target < 2; target++) {
		rc = cc_migrate_all(m, mm, addr, target, &moved);
		assert_int_equal(rc, 0);
	}
	atomic_store(&m->test_skip_migrate_copy, false);
	for (int i = 0; i < CC_WRITERS; i++)
		for (int p = 0; p < CC_PAGES; p++) {
			uint64_t got = 0;

			assert_int_equal(iom_read(mm, addr[p] + (uint64_t)w[i].id * 64, &got, 8), 0);
			if (got != w[i].last[p])
				st.lost++;
		}
	for (int p = 0; p < CC_PAGES; p++) {
		struct iom_page *page = test_get_page_at(mm, addr[p]);

		assert_int_equal(page_nid(m, page), 1);
		assert_int_equal(iom_page_mapcount(page), 1);
		assert_int_equal(iom_page_ref_count(page), p < CC_ANON ? 2 : 3);
		iom_put_page(m, page);
	}
	if (getenv("MIG_STATS"))
		print_message("moved %lu failed %lu (pgmigrate_fail %lu) compacted %lu retried %lu lost %lu waits %lu\n",
			      st.moved, st.failed, iom_vm_event_count(m, IOM_PGMIGRATE_FAIL),
			      st.compacted, st.retried, st.lost,
			      atomic_load(&mm->migration_waits));
	iom_mm_destroy(mm);
	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_rcu_unregister_thread();
	test_assert_machine_clean(m);
	iom_machine_destroy(m);
	return st;
}

/*
 * What this proves: anonymous and shared file pages migrated back and
 * forth between two nodes under two writers that stamp and read back
 * their own slots lose no write; retried failures stay bounded (most
 * migrations succeed).
 */
static void migration_under_concurrent_writes_loses_nothing(void **state)
{
	struct cc_stats st = migration_stress(false);

	(void)state;
	assert_int_equal(st.lost, 0);
	assert_true(st.moved > 0);
	/*
	 * A page that failed a round stays where it was and is skipped by the
	 * next round, which targets that node.
	 */
	assert_true(st.moved + st.failed <= st.numa_rounds * CC_PAGES);
	assert_true(st.moved >= st.numa_rounds * CC_PAGES / 2);
	/* compaction moved pages under the writers too */
	assert_true(st.compacted > 0);
	/*
	 * Retries happen while another thread holds the page (a read(2)'s
	 * speculative reference, the page lock): at most 10 passes per page,
	 * so 9 retries per migration that succeeded on the last pass and 10
	 * per final failure; final failures stay a small fraction.
	 */
	assert_true(st.retried <= 10 * (st.moved + st.failed));
	/*
	 * Most final failures are the file pages, which the reader thread
	 * holds by read(2)'s speculative reference most of the time (on two
	 * cpus it is often preempted while holding one); 10-30 % of tries
	 * were measured, under ASan and TSan alike.
	 */
	assert_true(st.failed <= st.numa_rounds * CC_PAGES * 2 / 5);
}

/* ... and the check can fail: a migration that skips the copy is caught. */
static void migration_without_copy_is_caught(void **state)
{
	struct cc_stats st = migration_stress(true);

	(void)state;
	assert_int_equal(st.lost, CC_WRITERS * CC_PAGES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(anon_page_migrates),
		cmocka_unit_test(shared_file_page_migrates),
		cmocka_unit_test(unmapped_cache_page_migrates),
		cmocka_unit_test(extra_reference_fails_then_succeeds),
		cmocka_unit_test(migratepagecopy_hook_replaces_copy),
		cmocka_unit_test(async_mode_skips_locked_page),
		cmocka_unit_test(bad_input_writeback_and_enomem),
		cmocka_unit_test(migration_under_concurrent_writes_loses_nothing),
		cmocka_unit_test(migration_without_copy_is_caught),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
