/* SPDX-License-Identifier: MIT */
/*
 * mm/filemap.c: the page cache (add, find, delete, dirty tags, reclaim's
 * __remove_mapping), reference freezing and the speculative lookup,
 * simulated files through the page cache, and -- in the concurrency test
 * -- RCU readers racing a writer that replaces pages the way migration
 * does (lock, freeze, replace slot, unfreeze).
 * The page lock has its own program, test_page_lock.c.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "mm/internal.h"

#define GFP_CACHE	IOM_GFP_HIGHUSER_MOVABLE

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Pages on the free lists once every thread's cache is drained. */
static unsigned long free_pages_now(struct iom_machine *m)
{
	unsigned long nr = 0;

	iom_drain_all_pages(m);
	assert_int_equal(iom_check_free_lists(m, &nr), 0);
	return nr;
}

static struct iom_machine *machine(void)
{
	struct iom_machine *m = test_machine(64, NULL, NULL);

	assert_non_null(m);
	return m;
}

static void machine_done(struct iom_machine *m)
{
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static struct iom_page *new_locked_page(struct iom_machine *m)
{
	struct iom_page *page = iom_alloc_pages(m, GFP_CACHE, 0);

	assert_non_null(page);
	assert_true(iom_trylock_page(page));
	return page;
}

/* Delete, unlock and drop our reference: the page goes back to the buddy. */
static void drop_cached_page(struct iom_machine *m, struct iom_page *page)
{
	if (!iom_PageLocked(page))
		iom_lock_page(page);
	assert_int_equal(iom_delete_from_page_cache(page), 0);
	iom_unlock_page(page);
	assert_int_equal(iom_put_page(m, page), 0);
}

/* ---- add, find, delete -------------------------------------------------- */

static void add_find_delete_keeps_counts(void **state)
{
	struct iom_machine *m = machine();
	struct iom_address_space mapping;
	struct iom_page *page, *other;
	unsigned long nr_free = free_pages_now(m);

	assert_int_equal(iom_address_space_init(&mapping, m, NULL), 0);
	assert_int_equal(mapping.gfp_mask, IOM_GFP_HIGHUSER_MOVABLE);
	assert_null(mapping.i_mmap);

	page = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(page, &mapping, 5, GFP_CACHE), 0);
	assert_int_equal(mapping.nrpages, 1);
	assert_ptr_equal(page->mapping, &mapping);
	assert_int_equal(page->index, 5);
	assert_int_equal(iom_page_ref_count(page), 2);	/* ours + the cache's */
	assert_true(iom_PageLRU(page));
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_FILE), 1);
	assert_ptr_equal(iom_page_mapping(page), &mapping);

	assert_ptr_equal(iom_find_get_page(&mapping, 5), page);
	assert_int_equal(iom_page_ref_count(page), 3);
	assert_int_equal(iom_put_page(m, page), 0);
	assert_null(iom_find_get_page(&mapping, 4));
	assert_null(iom_find_get_page(&mapping, 6));

	/* the slot is taken: the second page is left exactly as it was */
	other = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(other, &mapping, 5, GFP_CACHE),
			 -EEXIST);
	assert_null(other->mapping);
	assert_int_equal(iom_page_ref_count(other), 1);
	assert_false(iom_PageLRU(other));
	assert_int_equal(mapping.nrpages, 1);

	/* a page already in a mapping is refused */
	assert_int_equal(iom_add_to_page_cache_lru(page, &mapping, 6, GFP_CACHE),
			 -EINVAL);
	/*
	 * an unlocked new page is locked by the call, as the kernel's
	 * add_to_page_cache_lru() does (iomap_insert_page() in seed 000
	 * unlocks it afterwards), and left unlocked if the call fails
	 */
	iom_unlock_page(other);
	assert_int_equal(iom_add_to_page_cache_lru(other, &mapping, 5, GFP_CACHE),
			 -EEXIST);
	assert_false(iom_PageLocked(other));
	assert_int_equal(iom_add_to_page_cache_lru(other, &mapping, 6, GFP_CACHE), 0);
	assert_true(iom_PageLocked(other));
	drop_cached_page(m, other);
	assert_int_equal(mapping.nrpages, 1);

	/* the cache is not empty */
	assert_int_equal(iom_address_space_destroy(&mapping), -EBUSY);

	assert_int_equal(iom_delete_from_page_cache(page), 0);
	assert_null(page->mapping);
	assert_null(iom_page_mapping(page));
	assert_int_equal(mapping.nrpages, 0);
	assert_int_equal(iom_page_ref_count(page), 1);
	assert_null(iom_find_get_page(&mapping, 5));
	assert_int_equal(iom_delete_from_page_cache(page), -EINVAL);
	iom_unlock_page(page);
	assert_int_equal(iom_put_page(m, page), 0);

	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_FILE), 0);
	assert_int_equal(iom_address_space_destroy(&mapping), 0);
	assert_int_equal(free_pages_now(m), nr_free);
	machine_done(m);
}

static void bad_arguments_get_errors(void **state)
{
	struct iom_machine *m = machine();
	struct iom_address_space mapping;
	struct iom_page *page;

	assert_int_equal(iom_address_space_init(NULL, m, NULL), -EINVAL);
	assert_int_equal(iom_address_space_init(&mapping, NULL, NULL), -EINVAL);
	assert_int_equal(iom_address_space_init(&mapping, m, NULL), 0);
	page = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(NULL, &mapping, 0, GFP_CACHE), -EINVAL);
	assert_int_equal(iom_add_to_page_cache_lru(page, NULL, 0, GFP_CACHE), -EINVAL);
	assert_int_equal(iom_add_to_page_cache_lru(page, &mapping, 0, 0xffffffffu), -EINVAL);
	assert_int_equal(iom_delete_from_page_cache(NULL), -EINVAL);
	assert_int_equal(iom_delete_from_page_cache(page), -EINVAL);
	assert_null(iom_find_get_page(NULL, 0));
	assert_false(iom_set_page_dirty(NULL));
	assert_null(iom_page_mapping(NULL));
	assert_false(iom_page_ref_freeze(page, 0));
	iom_unlock_page(page);
	/* unlocking an unlocked page is ignored */
	iom_unlock_page(page);
	assert_false(iom_PageLocked(page));
	assert_int_equal(iom_put_page(m, page), 0);
	assert_int_equal(iom_address_space_destroy(&mapping), 0);

	assert_int_equal(iom_inode_create(NULL, 4096, NULL), -EINVAL);
	assert_int_equal(iom_inode_destroy(NULL), -EINVAL);
	assert_int_equal(iom_file_read(NULL, 0, NULL, 0), -EINVAL);
	assert_int_equal(iom_file_sync(NULL), -EINVAL);
	machine_done(m);
}

static void page_mapping_is_null_for_anon_pages(void **state)
{
	struct iom_machine *m = machine();
	struct iom_page *page = iom_alloc_pages(m, GFP_CACHE, 0);
	char anon_vma[8] __attribute__((aligned(8)));

	assert_non_null(page);
	page->mapping = (struct iom_address_space *)((uintptr_t)anon_vma | 1);
	assert_null(iom_page_mapping(page));
	page->mapping = NULL;
	assert_int_equal(iom_put_page(m, page), 0);
	machine_done(m);
}

/* ---- freezing and the speculative lookup -------------------------------- */

struct lookup_thread {
	struct iom_address_space *mapping;
	unsigned long index;
	bool lock;
	struct iom_page *result;
	atomic_bool done;
};

static void *lookup_fn(void *arg)
{
	struct lookup_thread *t = arg;

	iom_rcu_register_thread();
	if (t->lock)
		t->result = iom_find_lock_page(t->mapping, t->index);
	else
		t->result = iom_find_get_page(t->mapping, t->index);
	atomic_store(&t->done, true);
	iom_rcu_unregister_thread();
	return NULL;
}

static void freeze_refuses_other_counts(void **state)
{
	struct iom_machine *m = machine();
	struct iom_page *page = iom_alloc_pages(m, GFP_CACHE, 0);

	assert_non_null(page);
	assert_true(iom_get_page_unless_zero(page));
	assert_false(iom_page_ref_freeze(page, 1));
	assert_int_equal(iom_page_ref_count(page), 2);
	assert_true(iom_page_ref_freeze(page, 2));
	assert_int_equal(iom_page_ref_count(page), 0);
	assert_false(iom_get_page_unless_zero(page));
	assert_int_equal(iom_page_ref_count(page), 0);
	iom_page_ref_unfreeze(page, 2);
	iom_page_ref_unfreeze(page, 5);		/* not frozen: ignored */
	assert_int_equal(iom_page_ref_count(page), 2);
	assert_true(iom_get_page_unless_zero(page));
	assert_int_equal(iom_page_ref_count(page), 3);
	assert_int_equal(iom_put_page(m, page), 0);
	assert_int_equal(iom_put_page(m, page), 0);
	assert_int_equal(iom_put_page(m, page), 0);
	/* a free page cannot be got */
	assert_false(iom_get_page_unless_zero(page));
	machine_done(m);
}

/*
 * A lookup meeting a frozen page does not return until it is unfrozen, and
 * then returns whatever the slot holds: the same page, or the page that
 * replaced it while it was frozen (migration).
 */
static void find_get_page_waits_out_a_frozen_page(void **state)
{
	struct iom_machine *m = machine();
	struct iom_address_space mapping;
	struct lookup_thread t = { .mapping = &mapping, .index = 3 };
	struct iom_page *page, *newpage;
	pthread_t thr;
	void **slot;
	int pass;

	iom_rcu_register_thread();
	assert_int_equal(iom_address_space_init(&mapping, m, NULL), 0);
	page = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(page, &mapping, 3, GFP_CACHE), 0);

	for (pass = 0; pass < 2; pass++) {
		atomic_store(&t.done, false);
		t.result = NULL;
		assert_true(iom_page_ref_freeze(page, 2));
		assert_int_equal(pthread_create(&thr, NULL, lookup_fn, &t), 0);
		sleep_ms(50);
		assert_false(atomic_load(&t.done));
		if (pass == 0) {
			iom_page_ref_unfreeze(page, 2);
			assert_int_equal(pthread_join(thr, NULL), 0);
			assert_ptr_equal(t.result, page);
			assert_int_equal(iom_page_ref_count(page), 3);
			assert_int_equal(iom_put_page(m, page), 0);
			continue;
		}
		/* migrate_page_move_mapping(): replace while frozen */
		newpage = new_locked_page(m);
		newpage->index = 3;
		newpage->mapping = &mapping;
		atomic_fetch_add(&newpage->_refcount, 1);	/* the cache's */
		pthread_mutex_lock(&mapping.tree_lock);
		slot = iom_radix_tree_lookup_slot(&mapping.i_pages, 3);
		assert_non_null(slot);
		assert_int_equal(iom_radix_tree_replace_slot(&mapping.i_pages, slot,
							     newpage), 0);
		pthread_mutex_unlock(&mapping.tree_lock);
		page->mapping = NULL;
		iom_page_ref_unfreeze(page, 1);
		assert_int_equal(pthread_join(thr, NULL), 0);
		assert_ptr_equal(t.result, newpage);
		assert_int_equal(iom_page_ref_count(newpage), 3);
		assert_int_equal(iom_put_page(m, newpage), 0);
		iom_unlock_page(page);
		assert_int_equal(iom_put_page(m, page), 0);	/* freed */
		iom_lru_cache_add(m, newpage);
		page = newpage;
	}
	drop_cached_page(m, page);
	assert_int_equal(iom_address_space_destroy(&mapping), 0);
	iom_rcu_unregister_thread();
	machine_done(m);
}

/* find_lock_page() sleeping on a page that is truncated and replaced meanwhile. */
static void find_lock_page_retries_after_truncation(void **state)
{
	struct iom_machine *m = machine();
	struct iom_address_space mapping;
	struct lookup_thread t = { .mapping = &mapping, .index = 9, .lock = true };
	struct iom_page *page, *newpage;
	pthread_t thr;

	iom_rcu_register_thread();
	assert_int_equal(iom_address_space_init(&mapping, m, NULL), 0);
	page = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(page, &mapping, 9, GFP_CACHE), 0);
	assert_int_equal(pthread_create(&thr, NULL, lookup_fn, &t), 0);
	/* the thread has its reference and sleeps on the lock */
	while (!iom_PageWaiters(page))
		sched_yield();
	assert_false(atomic_load(&t.done));
	assert_int_equal(iom_delete_from_page_cache(page), 0);
	newpage = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(newpage, &mapping, 9, GFP_CACHE), 0);
	iom_unlock_page(newpage);
	assert_int_equal(iom_put_page(m, newpage), 0);
	iom_unlock_page(page);
	assert_int_equal(pthread_join(thr, NULL), 0);
	assert_ptr_equal(t.result, newpage);
	assert_true(iom_PageLocked(newpage));
	assert_int_equal(iom_put_page(m, page), 0);	/* freed now */
	drop_cached_page(m, newpage);	/* with the thread's reference */
	assert_int_equal(iom_address_space_destroy(&mapping), 0);
	iom_rcu_unregister_thread();
	machine_done(m);
}

static void find_or_create_page_creates_once(void **state)
{
	struct iom_machine *m = machine();
	struct iom_address_space mapping;
	struct iom_page *page, *again;
	unsigned long nr_free = free_pages_now(m);
	const unsigned char *p;
	size_t i;

	assert_int_equal(iom_address_space_init(&mapping, m, NULL), 0);
	page = iom_find_or_create_page(&mapping, 7, 0);
	assert_non_null(page);
	assert_true(iom_PageLocked(page));
	assert_true(iom_PageUptodate(page));
	assert_int_equal(iom_page_ref_count(page), 2);
	assert_int_equal(mapping.nrpages, 1);
	p = iom_page_address(m, page);
	for (i = 0; i < IOM_PAGE_SIZE; i++)
		if (p[i])
			fail_msg("new page not zero-filled at %zu", i);
	iom_unlock_page(page);
	again = iom_find_or_create_page(&mapping, 7, 0);
	assert_ptr_equal(again, page);
	assert_int_equal(iom_page_ref_count(page), 3);
	assert_int_equal(mapping.nrpages, 1);
	assert_int_equal(iom_put_page(m, page), 0);
	drop_cached_page(m, page);
	assert_int_equal(iom_address_space_destroy(&mapping), 0);
	assert_int_equal(free_pages_now(m), nr_free);
	machine_done(m);
}

/* ---- dirty state -------------------------------------------------------- */

static atomic_int custom_dirty_calls;

static bool refuse_dirty(struct iom_page *page)
{
	atomic_fetch_add(&custom_dirty_calls, 1);
	return false;		/* IOMAP's dummy (seed 000) */
}

static const struct iom_address_space_operations refusing_aops = {
	.set_page_dirty = refuse_dirty,
};

static void dirty_flag_and_tag_move_together(void **state)
{
	struct iom_machine *m = machine();
	struct iom_address_space mapping, iomap;
	struct iom_page *page, *dma;

	iom_rcu_register_thread();
	assert_int_equal(iom_address_space_init(&mapping, m, NULL), 0);
	page = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(page, &mapping, 2, GFP_CACHE), 0);
	assert_false(iom_radix_tree_tagged(&mapping.i_pages, IOM_PAGECACHE_TAG_DIRTY));

	assert_true(iom_set_page_dirty(page));
	assert_true(iom_PageDirty(page));
	assert_true(iom_radix_tree_tag_get(&mapping.i_pages, 2, IOM_PAGECACHE_TAG_DIRTY));
	assert_false(iom_set_page_dirty(page));

	assert_true(iom_clear_page_dirty_for_io(page));
	assert_false(iom_PageDirty(page));
	assert_false(iom_radix_tree_tag_get(&mapping.i_pages, 2, IOM_PAGECACHE_TAG_DIRTY));
	assert_false(iom_clear_page_dirty_for_io(page));

	/* deletion takes the tag with it */
	assert_true(iom_set_page_dirty(page));
	drop_cached_page(m, page);
	assert_false(iom_radix_tree_tagged(&mapping.i_pages, IOM_PAGECACHE_TAG_DIRTY));
	assert_int_equal(iom_address_space_destroy(&mapping), 0);

	/* a mapping's own set_page_dirty is used instead of the generic one */
	assert_int_equal(iom_address_space_init(&iomap, m, &refusing_aops), 0);
	dma = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(dma, &iomap, 0, GFP_CACHE), 0);
	assert_false(iom_set_page_dirty(dma));
	assert_int_equal(atomic_load(&custom_dirty_calls), 1);
	assert_false(iom_PageDirty(dma));
	assert_false(iom_radix_tree_tagged(&iomap.i_pages, IOM_PAGECACHE_TAG_DIRTY));
	drop_cached_page(m, dma);
	assert_int_equal(iom_address_space_destroy(&iomap), 0);
	iom_rcu_unregister_thread();
	machine_done(m);
}

/* ---- __remove_mapping (reclaim) ----------------------------------------- */

static void remove_mapping_needs_exact_count_and_clean_page(void **state)
{
	struct iom_machine *m = machine();
	struct iom_address_space mapping;
	struct iom_page *page;

	iom_rcu_register_thread();
	assert_int_equal(iom_address_space_init(&mapping, m, NULL), 0);
	page = new_locked_page(m);
	assert_int_equal(iom_add_to_page_cache_lru(page, &mapping, 1, GFP_CACHE), 0);

	/* someone else holds a reference */
	assert_true(iom_get_page_unless_zero(page));
	assert_int_equal(__remove_mapping(&mapping, page), 0);
	assert_int_equal(iom_page_ref_count(page), 3);
	assert_int_equal(iom_put_page(m, page), 0);

	/* dirty */
	iom_set_page_dirty(page);
	assert_int_equal(__remove_mapping(&mapping, page), 0);
	assert_int_equal(iom_page_ref_count(page), 2);
	assert_ptr_equal(page->mapping, &mapping);
	assert_true(iom_clear_page_dirty_for_io(page));

	assert_int_equal(__remove_mapping(&mapping, page), 1);
	assert_int_equal(iom_page_ref_count(page), 1);
	assert_null(page->mapping);
	assert_int_equal(mapping.nrpages, 0);
	assert_null(iom_find_get_page(&mapping, 1));
	iom_unlock_page(page);
	assert_int_equal(iom_put_page(m, page), 0);
	assert_int_equal(iom_address_space_destroy(&mapping), 0);
	iom_rcu_unregister_thread();
	machine_done(m);
}

/* ---- simulated files ---------------------------------------------------- */

static void fill_pattern(unsigned char *buf, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 131 + seed * 7 + (i >> 12));
}

static void file_write_read_round_trip_across_pages(void **state)
{
	struct iom_machine *m = machine();
	const uint64_t size = 5 * IOM_PAGE_SIZE + 123;
	unsigned char *in = malloc(size), *out = malloc(size), *zero = calloc(1, size);
	struct iom_address_space *mapping;
	struct iom_inode *inode;

	assert_non_null(in);
	assert_non_null(out);
	assert_non_null(zero);
	iom_rcu_register_thread();
	assert_int_equal(iom_inode_create(m, size, &inode), 0);
	mapping = iom_inode_mapping(inode);
	assert_int_equal(iom_inode_size(inode), size);

	/* a new file reads as zeros and fills the cache as it is read */
	assert_int_equal(iom_file_read(inode, 0, out, size), (ssize_t)size);
	assert_memory_equal(out, zero, size);
	assert_int_equal(mapping->nrpages, 6);

	/* unaligned pieces crossing page boundaries */
	fill_pattern(in, size, 1);
	assert_int_equal(iom_file_write(inode, 0, in, 100), 100);
	assert_int_equal(iom_file_write(inode, 100, in + 100, 3 * IOM_PAGE_SIZE),
			 (ssize_t)(3 * IOM_PAGE_SIZE));
	assert_int_equal(iom_file_write(inode, 100 + 3 * IOM_PAGE_SIZE,
					in + 100 + 3 * IOM_PAGE_SIZE,
					size - 100 - 3 * IOM_PAGE_SIZE),
			 (ssize_t)(size - 100 - 3 * IOM_PAGE_SIZE));
	memset(out, 0, size);
	assert_int_equal(iom_file_read(inode, 4000, out + 4000, 9000), 9000);
	assert_memory_equal(out + 4000, in + 4000, 9000);
	assert_int_equal(iom_file_read(inode, 0, out, size), (ssize_t)size);
	assert_memory_equal(out, in, size);

	/* the end of the file: short, zero, -EINVAL; it does not grow */
	assert_int_equal(iom_file_read(inode, size - 10, out, 100), 10);
	assert_int_equal(iom_file_read(inode, size, out, 100), 0);
	assert_int_equal(iom_file_read(inode, size + 1, out, 1), -EINVAL);
	assert_int_equal(iom_file_write(inode, size - 3, in, 100), 3);
	assert_int_equal(iom_file_write(inode, size, in, 1), -EINVAL);
	assert_int_equal(iom_file_read_disk(inode, size - 1, out, 2), -EINVAL);

	/* nothing reached the disk yet */
	assert_int_equal(iom_file_read_disk(inode, 0, out, size), 0);
	assert_memory_equal(out, zero, size);

	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_rcu_unregister_thread();
	free(in);
	free(out);
	free(zero);
	machine_done(m);
}

static void file_sync_writes_dirty_pages_back(void **state)
{
	struct iom_machine *m = machine();
	const uint64_t size = 16 * IOM_PAGE_SIZE;
	unsigned char *in = malloc(size), *out = malloc(size);
	struct iom_address_space *mapping;
	struct iom_inode *inode;
	unsigned long idx[16];
	void *pages[16];

	assert_non_null(in);
	assert_non_null(out);
	iom_rcu_register_thread();
	assert_int_equal(iom_inode_create(m, size, &inode), 0);
	mapping = iom_inode_mapping(inode);
	fill_pattern(in, size, 2);

	/* dirty pages 1, 2 (one write across them) and 9; read page 5 */
	assert_int_equal(iom_file_write(inode, IOM_PAGE_SIZE + 50, in + IOM_PAGE_SIZE + 50,
					IOM_PAGE_SIZE), (ssize_t)IOM_PAGE_SIZE);
	assert_int_equal(iom_file_write(inode, 9 * IOM_PAGE_SIZE, in + 9 * IOM_PAGE_SIZE,
					IOM_PAGE_SIZE), (ssize_t)IOM_PAGE_SIZE);
	assert_int_equal(iom_file_read(inode, 5 * IOM_PAGE_SIZE, out, 10), 10);
	assert_int_equal(mapping->nrpages, 4);
	assert_int_equal(iom_radix_tree_gang_lookup_tag(&mapping->i_pages, pages, idx, 0,
							16, IOM_PAGECACHE_TAG_DIRTY), 3);
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 2);
	assert_int_equal(idx[2], 9);

	assert_int_equal(iom_file_sync(inode), 3);
	assert_false(iom_radix_tree_tagged(&mapping->i_pages, IOM_PAGECACHE_TAG_DIRTY));
	assert_int_equal(iom_file_sync(inode), 0);

	assert_int_equal(iom_file_read_disk(inode, IOM_PAGE_SIZE + 50, out, IOM_PAGE_SIZE), 0);
	assert_memory_equal(out, in + IOM_PAGE_SIZE + 50, IOM_PAGE_SIZE);
	assert_int_equal(iom_file_read_disk(inode, 9 * IOM_PAGE_SIZE, out, IOM_PAGE_SIZE), 0);
	assert_memory_equal(out, in + 9 * IOM_PAGE_SIZE, IOM_PAGE_SIZE);
	assert_int_equal(iom_file_read_disk(inode, IOM_PAGE_SIZE, out, 50), 0);
	memset(out + 100, 0, 50);
	assert_memory_equal(out, out + 100, 50);	/* unwritten part: zeros */

	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_rcu_unregister_thread();
	free(in);
	free(out);
	machine_done(m);
}

/*
 * Reclaim drops clean file pages only; what it drops is read back from the
 * disk, so nothing written and synced is lost.
 */
static void reclaimed_pages_are_read_back_from_disk(void **state)
{
	struct iom_machine *m = machine();
	const uint64_t size = 64 * IOM_PAGE_SIZE;
	unsigned char *in = malloc(size), *out = malloc(size);
	struct iom_address_space *mapping;
	struct iom_inode *inode;
	unsigned long reclaimed;

	assert_non_null(in);
	assert_non_null(out);
	iom_rcu_register_thread();
	assert_int_equal(iom_inode_create(m, size, &inode), 0);
	mapping = iom_inode_mapping(inode);
	fill_pattern(in, size, 3);
	assert_int_equal(iom_file_write(inode, 0, in, size), (ssize_t)size);
	assert_int_equal(mapping->nrpages, 64);

	/* all dirty: nothing can go */
	assert_int_equal(iom_shrink_page_cache(m, -1, 64), 0);
	assert_int_equal(mapping->nrpages, 64);

	assert_int_equal(iom_file_sync(inode), 64);
	reclaimed = iom_shrink_page_cache(m, -1, 64);
	assert_int_equal(reclaimed, 64);
	assert_int_equal(mapping->nrpages, 0);

	assert_int_equal(iom_file_read(inode, 0, out, size), (ssize_t)size);
	assert_memory_equal(out, in, size);
	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_rcu_unregister_thread();
	free(in);
	free(out);
	machine_done(m);
}

static void inode_destroy_returns_every_page(void **state)
{
	struct iom_machine *m = machine();
	const uint64_t size = 300 * IOM_PAGE_SIZE + 1;
	unsigned char *buf = malloc(size);
	struct iom_address_space *mapping;
	struct iom_inode *inode;
	unsigned long nr_free;

	assert_non_null(buf);
	iom_rcu_register_thread();
	nr_free = free_pages_now(m);
	assert_int_equal(iom_inode_create(m, size, &inode), 0);
	mapping = iom_inode_mapping(inode);
	fill_pattern(buf, size, 4);
	assert_int_equal(iom_file_write(inode, 0, buf, size), (ssize_t)size);
	assert_int_equal(iom_file_sync(inode), 301);
	assert_int_equal(iom_file_write(inode, 17, buf, 5000), 5000);	/* dirty again */
	assert_int_equal(mapping->nrpages, 301);
	assert_true(free_pages_now(m) < nr_free);

	/* a VMA maps it: refused, nothing changed */
	pthread_rwlock_wrlock(rwsem(&mapping->i_mmap_rwsem));
	mapping->i_mmap = mapping;
	pthread_rwlock_unlock(rwsem(&mapping->i_mmap_rwsem));
	assert_int_equal(iom_inode_destroy(inode), -EBUSY);
	assert_int_equal(mapping->nrpages, 301);
	mapping->i_mmap = NULL;

	assert_int_equal(iom_inode_destroy(inode), 0);
	assert_int_equal(free_pages_now(m), nr_free);
	assert_int_equal(iom_lru_size(m, 0, IOM_LRU_INACTIVE_FILE) +
			 iom_lru_size(m, 0, IOM_LRU_ACTIVE_FILE), 0);

	/* a zero-length file */
	assert_int_equal(iom_inode_create(m, 0, &inode), 0);
	assert_int_equal(iom_file_read(inode, 0, buf, 10), 0);
	assert_int_equal(iom_file_write(inode, 0, buf, 10), -EINVAL);
	assert_int_equal(iom_file_sync(inode), 0);
	assert_int_equal(iom_inode_destroy(inode), 0);
	iom_rcu_unregister_thread();
	free(buf);
	machine_done(m);
}

/* ---- speculative lookup against page replacement ------------------------ */

/*
 * What it proves: readers calling iom_find_get_page() while a writer keeps
 * replacing the pages of a mapping (lock the old page, freeze its count,
 * copy, replace the slot, unfreeze, free the old page: migration's dance)
 * always get a page that
 *  (a) is in the mapping at that index (page->mapping, page->index, and a
 *      stamp in the content naming the index),
 *  (b) is the page published at that index when the lookup began or a
 *      later one (generation stamps, checked against the writer's record),
 *  (c) is never a freed page: the machine poisons freed pages, and the
 *      check runs while the reader holds its reference.
 * The lookup never returns NULL: an index is never empty.
 * checker_detects_a_freed_page shows that the check sees a freed page.
 */
#define SPEC_NR_INDEX	8
#define SPEC_NR_READERS	3
#define SPEC_REPLACES	3000
#define STAMP_MAGIC	0x5eedf00dcafe0000ULL

struct stamp {
	uint64_t magic_index;	/* STAMP_MAGIC | index */
	uint64_t gen;
};

struct spec_test {
	struct iom_machine *m;
	struct iom_address_space mapping;
	atomic_ullong gen[SPEC_NR_INDEX];	/* last generation published */
	atomic_bool stop;
	atomic_ulong lookups;
	atomic_ulong bad_null, bad_mapping, bad_stamp, bad_gen, bad_poison;
};

static void write_stamp(struct iom_machine *m, struct iom_page *page,
			unsigned long index, uint64_t gen)
{
	uint64_t *p = iom_page_address(m, page);
	struct stamp s = { STAMP_MAGIC | index, gen };
	size_t i;

	memcpy(p, &s, sizeof(s));
	for (i = 2; i < IOM_PAGE_SIZE / sizeof(*p); i++)
		p[i] = gen * 0x9e3779b97f4a7c15ULL + i;
}

/* Returns the failure found (0: none); *gen receives the page's stamp. */
static int check_page(struct spec_test *t, struct iom_page *page,
		      unsigned long index, uint64_t *gen)
{
	const uint64_t *p = iom_page_address(t->m, page);
	struct stamp s;
	size_t i;

	if (iom_PagePoisoned(page) || p[0] == 0xaaaaaaaaaaaaaaaaULL)
		return 1;
	if (page->mapping != &t->mapping || page->index != index)
		return 2;
	memcpy(&s, p, sizeof(s));
	if (s.magic_index != (STAMP_MAGIC | index))
		return 3;
	for (i = 2; i < IOM_PAGE_SIZE / sizeof(*p); i += 61)
		if (p[i] != s.gen * 0x9e3779b97f4a7c15ULL + i)
			return 3;
	*gen = s.gen;
	return 0;
}

static void *spec_reader(void *arg)
{
	struct spec_test *t = arg;
	unsigned long i = 0;

	iom_rcu_register_thread();
	while (!atomic_load(&t->stop)) {
		unsigned long index = i++ % SPEC_NR_INDEX;
		uint64_t before = atomic_load(&t->gen[index]), gen = 0;
		struct iom_page *page = iom_find_get_page(&t->mapping, index);

		if (!page) {
			atomic_fetch_add(&t->bad_null, 1);
			continue;
		}
		switch (check_page(t, page, index, &gen)) {
		case 1: atomic_fetch_add(&t->bad_poison, 1); break;
		case 2: atomic_fetch_add(&t->bad_mapping, 1); break;
		case 3: atomic_fetch_add(&t->bad_stamp, 1); break;
		default:
			/* published before the lookup began, at most one ahead */
			if (gen < before || gen > atomic_load(&t->gen[index]) + 1)
				atomic_fetch_add(&t->bad_gen, 1);
		}
		iom_put_page(t->m, page);
		atomic_fetch_add(&t->lookups, 1);
	}
	iom_rcu_unregister_thread();
	return NULL;
}

/* migrate_page_move_mapping() + migrate_page_copy(), by hand. */
static void replace_page(struct spec_test *t, unsigned long index)
{
	struct iom_machine *m = t->m;
	struct iom_page *old, *new;
	uint64_t gen = atomic_load(&t->gen[index]) + 1;
	void **slot;

	old = iom_find_get_page(&t->mapping, index);
	assert_non_null(old);
	iom_lock_page(old);
	new = iom_alloc_pages(m, GFP_CACHE, 0);
	assert_non_null(new);
	assert_true(iom_trylock_page(new));

	/* the cache's reference and ours; readers hold theirs briefly */
	while (!iom_page_ref_freeze(old, 2))
		sched_yield();
	write_stamp(m, new, index, gen);
	new->index = index;
	new->mapping = &t->mapping;
	/* the cache's reference, published with the content */
	atomic_fetch_add_explicit(&new->_refcount, 1, memory_order_release);
	pthread_mutex_lock(&t->mapping.tree_lock);
	slot = iom_radix_tree_lookup_slot(&t->mapping.i_pages, index);
	assert_non_null(slot);
	assert_int_equal(iom_radix_tree_replace_slot(&t->mapping.i_pages, slot, new), 0);
	pthread_mutex_unlock(&t->mapping.tree_lock);
	atomic_store_explicit(&t->gen[index], gen, memory_order_release);
	old->mapping = NULL;
	iom_page_ref_unfreeze(old, 1);

	iom_lru_cache_add(m, new);
	iom_unlock_page(new);
	assert_int_equal(iom_put_page(m, new), 0);
	iom_unlock_page(old);
	assert_int_equal(iom_put_page(m, old), 0);	/* freed and poisoned */
}

static void speculative_lookup_survives_page_replacement(void **state)
{
	struct iom_machine_config cfg;
	struct spec_test *t = calloc(1, sizeof(*t));
	pthread_t readers[SPEC_NR_READERS];
	unsigned long i, nr_free;
	int r;

	assert_non_null(t);
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 64ULL << 20;
	cfg.page_poison = 1;
	t->m = test_machine(0, NULL, &cfg);
	assert_non_null(t->m);
	iom_rcu_register_thread();
	nr_free = free_pages_now(t->m);
	assert_int_equal(iom_address_space_init(&t->mapping, t->m, NULL), 0);
	for (i = 0; i < SPEC_NR_INDEX; i++) {
		struct iom_page *page = new_locked_page(t->m);

		write_stamp(t->m, page, i, 0);
		assert_int_equal(iom_add_to_page_cache_lru(page, &t->mapping, i,
							   GFP_CACHE), 0);
		iom_unlock_page(page);
		assert_int_equal(iom_put_page(t->m, page), 0);
	}

	for (r = 0; r < SPEC_NR_READERS; r++)
		assert_int_equal(pthread_create(&readers[r], NULL, spec_reader, t), 0);
	for (i = 0; i < SPEC_REPLACES; i++)
		replace_page(t, i % SPEC_NR_INDEX);
	/* let the readers see the final state too */
	while (atomic_load(&t->lookups) < 1000)
		sched_yield();
	atomic_store(&t->stop, true);
	for (r = 0; r < SPEC_NR_READERS; r++)
		assert_int_equal(pthread_join(readers[r], NULL), 0);

	assert_int_equal(atomic_load(&t->bad_null), 0);
	assert_int_equal(atomic_load(&t->bad_poison), 0);
	assert_int_equal(atomic_load(&t->bad_mapping), 0);
	assert_int_equal(atomic_load(&t->bad_stamp), 0);
	assert_int_equal(atomic_load(&t->bad_gen), 0);
	for (i = 0; i < SPEC_NR_INDEX; i++)
		assert_int_equal(atomic_load(&t->gen[i]), SPEC_REPLACES / SPEC_NR_INDEX);

	for (i = 0; i < SPEC_NR_INDEX; i++) {
		struct iom_page *page = iom_find_lock_page(&t->mapping, i);

		assert_non_null(page);
		drop_cached_page(t->m, page);
	}
	assert_int_equal(iom_address_space_destroy(&t->mapping), 0);
	assert_int_equal(free_pages_now(t->m), nr_free);
	iom_rcu_unregister_thread();
	machine_done(t->m);
	free(t);
}

/* The check above is not vacuous: it flags a page that has been freed. */
static void checker_detects_a_freed_page(void **state)
{
	struct iom_machine_config cfg;
	struct spec_test *t = calloc(1, sizeof(*t));
	struct iom_page *page;
	uint64_t gen;

	assert_non_null(t);
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 64ULL << 20;
	cfg.page_poison = 1;
	t->m = test_machine(0, NULL, &cfg);
	assert_non_null(t->m);
	assert_int_equal(iom_address_space_init(&t->mapping, t->m, NULL), 0);
	page = new_locked_page(t->m);
	write_stamp(t->m, page, 4, 7);
	assert_int_equal(iom_add_to_page_cache_lru(page, &t->mapping, 4, GFP_CACHE), 0);
	assert_int_equal(check_page(t, page, 4, &gen), 0);
	assert_int_equal(gen, 7);
	assert_int_equal(check_page(t, page, 5, &gen), 2);	/* wrong index */
	drop_cached_page(t->m, page);
	/* the use-after-free a broken lookup would commit */
	assert_int_equal(check_page(t, page, 4, &gen), 1);
	assert_int_equal(iom_address_space_destroy(&t->mapping), 0);
	machine_done(t->m);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_find_delete_keeps_counts),
		cmocka_unit_test(bad_arguments_get_errors),
		cmocka_unit_test(page_mapping_is_null_for_anon_pages),
		cmocka_unit_test(freeze_refuses_other_counts),
		cmocka_unit_test(find_get_page_waits_out_a_frozen_page),
		cmocka_unit_test(find_lock_page_retries_after_truncation),
		cmocka_unit_test(find_or_create_page_creates_once),
		cmocka_unit_test(dirty_flag_and_tag_move_together),
		cmocka_unit_test(remove_mapping_needs_exact_count_and_clean_page),
		cmocka_unit_test(file_write_read_round_trip_across_pages),
		cmocka_unit_test(file_sync_writes_dirty_pages_back),
		cmocka_unit_test(reclaimed_pages_are_read_back_from_disk),
		cmocka_unit_test(inode_destroy_returns_every_page),
		cmocka_unit_test(checker_detects_a_freed_page),
		cmocka_unit_test(speculative_lookup_survives_page_replacement),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
