/* SPDX-License-Identifier: MIT */
/*
 * libiommig - the page cache, the page lock, reference freezing and the LRU
 * (include/linux/fs.h, pagemap.h, page_ref.h, swap.h; mm/filemap.c,
 * mm/swap.c, mm/vmscan.c).
 *
 * Conventions in this header:
 *   @mapping: an address_space (a file's page cache, or IOMAP's dummy one).
 *   @inode:   a simulated file that owns a mapping.
 *   @index:   a page offset in a mapping.
 *
 * Locks: mapping->tree_lock serialises changes to a mapping's tree and
 * nrpages (the kernel's i_pages xa_lock). Lookups run under RCU only.
 * The page lock (PG_locked) is a sleeping lock with real waits.
 */
#ifndef IOMMIG_FILEMAP_H
#define IOMMIG_FILEMAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <iommig/mm.h>
#include <iommig/radix-tree.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iom_address_space;
struct iom_inode;
struct iom_migrate_batch;

/*
 * Storage for a pthread_rwlock_t, so this header needs no POSIX feature
 * macro from its includers (the library checks the size).
 */
struct iom_rw_semaphore {
	union {
		uint64_t __opaque[8];
		long double __align;
	};
};

/**
 * struct iom_address_space_operations - what the MM calls on a mapping
 * (struct address_space_operations).
 * @migratepage:     move @page's mapping state to @newpage and copy it
 *                   (migrate_page() is the generic one); 0 or -EAGAIN/-EBUSY.
 *                   Called with both pages locked.
 * @migratepagecopy: seed 000's hook: copy @page's content to @newpage.
 *                   When set, migrate_page_copy() calls it instead of
 *                   copying itself, so the owner (IOMAP, and through it the
 *                   DMA layer) can copy while it keeps a device off the page.
 * @set_page_dirty:  mark @page dirty; return true if it was clean.
 * @releasepage:     drop the owner's private state so @page can be freed;
 *                   return true if released.
 * @migrate_batch_add: libiommig's extension for batches (the device-side
 *                   analogue of the batch's one TLB flush): once every
 *                   page of a migrate_pages() batch is unmapped and has
 *                   its target, the MM offers each page of this mapping,
 *                   with its target, before the first is moved; the owner
 *                   may join the batch (iom_migrate_batch_client()) to
 *                   prepare them all at once. Both pages locked.
 * @isolate_page:    take a non-LRU movable page off its owner's lists for
 *                   migration; true on success.
 * @putback_page:    undo @isolate_page.
 */
struct iom_address_space_operations {
	int (*migratepage)(struct iom_address_space *mapping,
			   struct iom_page *newpage, struct iom_page *page,
			   enum iom_migrate_mode mode);
	void (*migratepagecopy)(struct iom_address_space *mapping,
				struct iom_page *newpage, struct iom_page *page);
	bool (*set_page_dirty)(struct iom_page *page);
	bool (*releasepage)(struct iom_page *page, iom_gfp_t gfp);
	void (*migrate_batch_add)(struct iom_address_space *mapping,
				  struct iom_page *newpage, struct iom_page *page,
				  struct iom_migrate_batch *batch);
	bool (*isolate_page)(struct iom_page *page, int mode);
	void (*putback_page)(struct iom_page *page);
};

/**
 * struct iom_address_space - a page cache (struct address_space). Fields
 * are the library's; embed it (as IOMAP does) and initialise it with
 * iom_address_space_init().
 * @m:           the machine.
 * @host:        the owning inode, or NULL (IOMAP's mapping has none).
 * @i_pages:     the radix tree of pages, by index.
 * @tree_lock:   serialises changes to @i_pages and @nrpages.
 * @nrpages:     pages in the cache.
 * @a_ops:       operations; NULL members fall back to the generic code.
 * @i_mmap:      VMAs that map this file (rmap of file pages); opaque.
 * @i_mmap_rwsem: protects @i_mmap.
 * @gfp_mask:    how page-cache pages are allocated (default
 *               IOM_GFP_HIGHUSER_MOVABLE).
 * @private_data: the owner's.
 */
struct iom_address_space {
	struct iom_machine *m;
	struct iom_inode *host;
	struct iom_radix_tree_root i_pages;
	pthread_mutex_t tree_lock;
	unsigned long nrpages;
	const struct iom_address_space_operations *a_ops;
	void *i_mmap;
	struct iom_rw_semaphore i_mmap_rwsem;
	iom_gfp_t gfp_mask;
	void *private_data;
};

/**
 * iom_address_space_init() - address_space_init_once() + a_ops.
 * Return: 0, -EINVAL.
 */
IOM_API int iom_address_space_init(struct iom_address_space *mapping,
				   struct iom_machine *m,
				   const struct iom_address_space_operations *a_ops);
/**
 * iom_address_space_destroy() - release what init took.
 * Return: 0; -EBUSY if pages are still cached (truncate them first).
 */
IOM_API int iom_address_space_destroy(struct iom_address_space *mapping);

/* ---- simulated files ---------------------------------------------------- */

/**
 * iom_inode_create() - a simulated file of @size bytes whose "disk" is a
 * zero-filled buffer; its page cache starts empty and fills on access.
 * Return: 0, -EINVAL, -ENOMEM.
 */
IOM_API int iom_inode_create(struct iom_machine *m, uint64_t size,
			     struct iom_inode **inodep);
/**
 * iom_inode_destroy() - truncate the page cache (writing nothing back) and
 * free the file. Return: 0; -EBUSY while a process still maps it.
 */
IOM_API int iom_inode_destroy(struct iom_inode *inode);
/**
 * iom_inode_create_for_mapping() - a file with no disk whose page cache
 * is @mapping, owned by someone else (inode->i_mapping pointing away from
 * the inode's own, as a block device's). A shared mapping of it maps the
 * pages @mapping holds; a fault on an index it does not hold is SIGBUS
 * (-EFAULT): nothing is created. iom_inode_destroy() leaves @mapping's
 * pages alone. IOMAP uses it for iom_iomap_mmap().
 * Return: 0; -EINVAL; -ENOMEM.
 */
IOM_API int iom_inode_create_for_mapping(struct iom_address_space *mapping,
					 uint64_t size, struct iom_inode **inodep);
/** iom_inode_mapping() - the file's page cache. */
IOM_API struct iom_address_space *iom_inode_mapping(struct iom_inode *inode);
/** iom_inode_size() - bytes. */
IOM_API uint64_t iom_inode_size(const struct iom_inode *inode);
/**
 * iom_file_read(), iom_file_write() - read(2)/write(2) through the page
 * cache at @pos (write dirties pages). Return: bytes done, or -errno
 * (-EINVAL beyond the end of the file, -ENOMEM).
 */
IOM_API ssize_t iom_file_read(struct iom_inode *inode, uint64_t pos, void *buf,
			      size_t len);
IOM_API ssize_t iom_file_write(struct iom_inode *inode, uint64_t pos,
			       const void *buf, size_t len);
/**
 * iom_file_sync() - write every dirty page back to the file's disk and
 * clear its dirty state (filemap_write_and_wait()). Return: pages written.
 */
IOM_API long iom_file_sync(struct iom_inode *inode);
/**
 * iom_file_read_disk() - read the file's disk directly (what survives
 * reclaim), for tests. Return: 0, -EINVAL.
 */
IOM_API int iom_file_read_disk(struct iom_inode *inode, uint64_t pos,
			       void *buf, size_t len);

/* ---- the page cache ----------------------------------------------------- */

/**
 * iom_add_to_page_cache_lru() - insert a new @page at @index of @mapping and
 * put it on the LRU, returning it locked (as the kernel's: seed 000's
 * iomap_insert_page() unlocks it afterwards). The cache takes a reference
 * of its own. On failure the page is as it was given.
 * Return: 0, -EEXIST, -ENOMEM, -EINVAL.
 */
IOM_API int iom_add_to_page_cache_lru(struct iom_page *page,
				      struct iom_address_space *mapping,
				      unsigned long index, iom_gfp_t gfp);
/**
 * iom_delete_from_page_cache() - remove a locked @page from its mapping and
 * drop the cache's reference. Context: @page locked.
 * Return: 0, -EINVAL if it is not in a page cache.
 */
IOM_API int iom_delete_from_page_cache(struct iom_page *page);
/**
 * iom_find_get_page() - the page at @index with a reference taken, or NULL.
 * Speculative, as the kernel's: under RCU, a reference is taken only if the
 * count is not frozen (page_cache_get_speculative()), and the lookup is
 * retried if the slot no longer holds that page once the reference is held
 * (the page was migrated or removed meanwhile).
 * Context: any thread registered as an RCU reader.
 */
IOM_API struct iom_page *iom_find_get_page(struct iom_address_space *mapping,
					   unsigned long index);
/**
 * iom_find_lock_page() - iom_find_get_page() and lock the page, retrying if
 * it left the mapping while we waited for the lock. Context: may sleep.
 */
IOM_API struct iom_page *iom_find_lock_page(struct iom_address_space *mapping,
					    unsigned long index);
/**
 * iom_find_or_create_page() - find_lock_page(), or allocate a page with
 * @gfp, read it from the file's disk if it has one, and add it locked.
 * Return: the locked page with a reference, or NULL (errno ENOMEM).
 */
IOM_API struct iom_page *iom_find_or_create_page(struct iom_address_space *mapping,
						 unsigned long index, iom_gfp_t gfp);
/**
 * iom_set_page_dirty() - a_ops->set_page_dirty, or the generic one: set
 * PG_dirty and tag the index DIRTY. Return: true if the page was clean.
 */
IOM_API bool iom_set_page_dirty(struct iom_page *page);
/** iom_clear_page_dirty_for_io() - clear PG_dirty and the tag. */
IOM_API bool iom_clear_page_dirty_for_io(struct iom_page *page);
/**
 * iom_mapping_mapped() - mapping_mapped() for page indices [@first, @last]:
 * does a process map any of them? Context: takes i_mmap_rwsem for read.
 */
IOM_API bool iom_mapping_mapped(struct iom_address_space *mapping,
				unsigned long first, unsigned long last);
/** iom_page_mapping() - the mapping of a page-cache page, else NULL. */
IOM_API struct iom_address_space *iom_page_mapping(const struct iom_page *page);

/* ---- the page lock (mm/filemap.c) --------------------------------------- */

/** iom_lock_page() - sleep until PG_locked is ours. */
IOM_API void iom_lock_page(struct iom_page *page);
/** iom_trylock_page() - true if we got it without sleeping. */
IOM_API bool iom_trylock_page(struct iom_page *page);
/** iom_unlock_page() - release and wake the waiters. */
IOM_API void iom_unlock_page(struct iom_page *page);
/**
 * iom_wait_on_page_locked() - sleep until the page is unlocked (without
 * taking the lock), as migration_entry_wait() does. The caller holds a
 * reference so the page cannot be freed while it waits.
 */
IOM_API void iom_wait_on_page_locked(struct iom_page *page);

/* ---- reference freezing (include/linux/page_ref.h) ---------------------- */

/**
 * iom_page_ref_freeze() - if the count is exactly @count, set it to 0
 * atomically so no speculative lookup can take a reference. Return: true
 * if frozen.
 */
IOM_API bool iom_page_ref_freeze(struct iom_page *page, int count);
/** iom_page_ref_unfreeze() - set a frozen count back to @count. */
IOM_API void iom_page_ref_unfreeze(struct iom_page *page, int count);
/**
 * iom_get_page_unless_zero() - take a reference unless the count is 0
 * (free or frozen). Return: true if taken.
 */
IOM_API bool iom_get_page_unless_zero(struct iom_page *page);

/* ---- the LRU (mm/swap.c, mm/vmscan.c) ----------------------------------- */

enum iom_lru_list {
	IOM_LRU_INACTIVE_ANON,
	IOM_LRU_ACTIVE_ANON,
	IOM_LRU_INACTIVE_FILE,
	IOM_LRU_ACTIVE_FILE,
	IOM_NR_LRU_LISTS,
};

/**
 * iom_lru_cache_add() - put @page (not on an LRU) on its node's inactive
 * list: anon if PG_swapbacked, else file. The LRU holds no reference; a
 * page is taken off the LRU when it is freed.
 */
IOM_API void iom_lru_cache_add(struct iom_machine *m, struct iom_page *page);
/**
 * iom_isolate_lru_page() - take @page off its LRU list for migration or
 * reclaim, with a reference for the caller. Return: 0, -EBUSY if it is not
 * on an LRU (or another isolator won).
 */
IOM_API int iom_isolate_lru_page(struct iom_machine *m, struct iom_page *page);
/** iom_putback_lru_page() - undo isolation and drop that reference. */
IOM_API void iom_putback_lru_page(struct iom_machine *m, struct iom_page *page);
/** iom_mark_page_accessed() - referenced, then active (as the kernel). */
IOM_API void iom_mark_page_accessed(struct iom_machine *m, struct iom_page *page);
/** iom_lru_size() - pages on one LRU list of node @nid. */
IOM_API unsigned long iom_lru_size(struct iom_machine *m, int nid,
				   enum iom_lru_list lru);
/**
 * iom_shrink_page_cache() - reclaim up to @nr_to_reclaim clean, unmapped
 * page-cache pages of node @nid (-1: every node), oldest first, as
 * shrink_inactive_list() does for clean file pages; also run by the
 * allocator's slow path when free memory falls below the low watermark.
 * Return: pages reclaimed.
 */
IOM_API unsigned long iom_shrink_page_cache(struct iom_machine *m, int nid,
					    unsigned long nr_to_reclaim);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_FILEMAP_H */
