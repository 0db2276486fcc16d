/* SPDX-License-Identifier: MIT */
/*
 * The page cache (mm/filemap.c, include/linux/pagemap.h, page_ref.h):
 * address_space, add/delete, the speculative RCU lookup that takes a
 * reference only if the count is not frozen, the sleeping page lock, dirty
 * tagging, __remove_mapping() for reclaim, and simulated files whose "disk"
 * is an anonymous buffer. Simplified: order-0 pages only, no readahead, no
 * writeback state (sync copies synchronously), files never change size.
 *
 * Conventions in this file:
 *   @mapping: an address_space.  @page: a page of @mapping->m's mem_map.
 *   @index:   a page offset in @mapping.  @inode: a simulated file.
 * Lock order: the page lock -> mapping->tree_lock, and the page lock ->
 * lru_lock (lru_cache_add, and put_page's release from the LRU); the tree
 * lock nests nothing but the tree's node allocation. A page-lock wait
 * bucket is innermost and never held across anything else.
 */
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include <iommig/filemap.h>

#include "../core/rcu.h"
#include "internal.h"
#include "mm_types.h"

#define PG_LOCKED	(1UL << IOM_PG_locked)
#define PG_WAITERS	(1UL << IOM_PG_waiters)

/*
 * page->mapping is read without the page lock by set_page_dirty() and
 * page_mapping() (the kernel's READ_ONCE): access it atomically here.
 */
#define READ_MAPPING(page) \
	__atomic_load_n(&(page)->mapping, __ATOMIC_ACQUIRE)
#define WRITE_MAPPING(page, val) \
	__atomic_store_n(&(page)->mapping, (val), __ATOMIC_RELEASE)

#define PAGE_MAPPING_ANON	0x1UL
#define PAGE_MAPPING_FLAGS	0x3UL

static void tree_lock(struct iom_address_space *mapping)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&mapping->tree_lock));
}

static void tree_unlock(struct iom_address_space *mapping)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&mapping->tree_lock));
}

/* ---- reference freezing (include/linux/page_ref.h) ---------------------- */

/*
 * page_ref_freeze(): full ordering, as the kernel's atomic_cmpxchg(), so
 * whatever a reference holder did before its put_page() is visible to the
 * freezer, and nothing the freezer does leaks out before the freeze.
 */
bool iom_page_ref_freeze(struct iom_page *page, int count)
{
	int expected = count;

	if (!page || count <= 0)
		return false;
	return atomic_compare_exchange_strong_explicit(&page->_refcount, &expected,
						       0, memory_order_acq_rel,
						       memory_order_relaxed);
}

/*
 * page_ref_unfreeze(): release, so a lookup that gets a reference sees the
 * page as the freezer left it. A count that is not frozen is left alone
 * (the kernel's VM_BUG_ON: the caller's bug, not ours to abort on).
 */
void iom_page_ref_unfreeze(struct iom_page *page, int count)
{
	int frozen = 0;

	if (!page || count < 0)
		return;
	atomic_compare_exchange_strong_explicit(&page->_refcount, &frozen, count,
						memory_order_release,
						memory_order_relaxed);
}

/* get_page_unless_zero() / page_ref_add_unless(page, 1, 0). */
bool iom_get_page_unless_zero(struct iom_page *page)
{
	int old;

	if (!page)
		return false;
	old = atomic_load_explicit(&page->_refcount, memory_order_relaxed);
	do {
		if (old <= 0)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&page->_refcount, &old,
							old + 1,
							memory_order_acquire,
							memory_order_relaxed));
	return true;
}

/*
 * put_page() for a reference a speculative lookup took on a page it turned
 * out not to want. Such a page is a head or order-0 page (a tail's count is
 * always 0, so the get failed), so unless ours is the last reference a
 * decrement is all it takes; the full put_page() (which reads
 * compound_head, the storage of lru.next that the page's owner may be
 * changing right now) is left for the last one.
 */
static void put_speculative_page(struct iom_machine *m, struct iom_page *page)
{
	int old = atomic_load_explicit(&page->_refcount, memory_order_relaxed);

	do {
		if (old <= 1) {
			iom_put_page(m, page);
			return;
		}
	} while (!atomic_compare_exchange_weak_explicit(&page->_refcount, &old,
							old - 1,
							memory_order_release,
							memory_order_relaxed));
}

/* ---- the page lock ------------------------------------------------------ */

/*
 * page_waitqueue(): sleepers on a page lock wait in one of a fixed set of
 * hashed buckets, keyed by the page's address, as the kernel's
 * page_wait_table[]. Like the kernel's, the table is process-wide: it holds
 * no machine state (a bucket only ever protects a sleep), so pages of
 * different machines may share a bucket harmlessly.
 *
 * PG_waiters tells iom_unlock_page() whether it must wake anyone, so an
 * uncontended unlock is one atomic. The lost-wakeup race is closed by the
 * page flags word itself: a sleeper sets PG_waiters with a read-modify-write
 * that also returns PG_locked, under the bucket lock; the unlocker clears
 * PG_locked with a read-modify-write that also returns PG_waiters. Both
 * are RMWs of one word, so either the sleeper sees the page unlocked and
 * does not sleep, or the unlocker sees PG_waiters and takes the bucket lock
 * -- which the sleeper holds until pthread_cond_wait() releases it.
 * The waker clears PG_waiters; every woken sleeper still waiting sets it
 * again before it sleeps again.
 */
#define PAGE_WAIT_TABLE_BITS	8
#define PAGE_WAIT_TABLE_SIZE	(1U << PAGE_WAIT_TABLE_BITS)

struct page_wait_bucket {
	pthread_mutex_t lock;
	pthread_cond_t wait;
} __attribute__((aligned(64)));

static struct page_wait_bucket page_wait_table[PAGE_WAIT_TABLE_SIZE] = {
	[0 ... PAGE_WAIT_TABLE_SIZE - 1] = {
		PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER
	},
};

static struct page_wait_bucket *page_waitqueue(const struct iom_page *page)
{
	uint64_t key = (uint64_t)(uintptr_t)page / sizeof(struct iom_page);

	/* hash_64() with the golden ratio, as the kernel's hash_ptr() */
	key *= 0x61C8864680B583EBULL;
	return &page_wait_table[key >> (64 - PAGE_WAIT_TABLE_BITS)];
}

/*
 * wait_on_page_bit_common(): sleep until PG_locked is clear; with @lock,
 * also take it (lock_page's exclusive wait).
 */
static void wait_on_page_bit_common(struct iom_page *page, bool lock)
{
	struct page_wait_bucket *q = page_waitqueue(page);

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&q->lock));
	for (;;) {
		unsigned long old;

		old = atomic_fetch_or_explicit(&page->flags, PG_WAITERS,
					       memory_order_acq_rel);
		if (!(old & PG_LOCKED)) {
			if (!lock)
				break;
			old = atomic_fetch_or_explicit(&page->flags, PG_LOCKED,
						       memory_order_acquire);
			if (!(old & PG_LOCKED))
				break;
			continue;	/* someone else won: PG_waiters is set */
		}
		IOM_CHECK_PTHREAD(pthread_cond_wait(&q->wait, &q->lock));
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&q->lock));
}

/* wake_up_page_bit(): PG_waiters was set when the page was unlocked. */
static void wake_up_page_bit(struct iom_page *page)
{
	struct page_wait_bucket *q = page_waitqueue(page);

	IOM_CHECK_PTHREAD(pthread_mutex_lock(&q->lock));
	iom_ClearPageWaiters(page);
	IOM_CHECK_PTHREAD(pthread_cond_broadcast(&q->wait));
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&q->lock));
}

/**
 * iom_trylock_page() - trylock_page().
 * @page: the page (a tail page locks its head).
 *
 * Context: any thread. Return: true if the caller now holds the page lock.
 */
bool iom_trylock_page(struct iom_page *page)
{
	if (!page)
		return false;
	page = iom_compound_head(page);
	return !(atomic_fetch_or_explicit(&page->flags, PG_LOCKED,
					  memory_order_acquire) & PG_LOCKED);
}

/**
 * iom_lock_page() - lock_page(): take PG_locked, sleeping while another
 * thread holds it.
 * @page: the page; the caller holds a reference.
 *
 * Context: may sleep; not with a mapping's tree_lock or an LRU lock held.
 */
void iom_lock_page(struct iom_page *page)
{
	if (!page)
		return;
	page = iom_compound_head(page);
	if (iom_trylock_page(page))
		return;
	wait_on_page_bit_common(page, true);	/* __lock_page() */
}

/**
 * iom_unlock_page() - unlock_page(): release PG_locked and wake sleepers.
 * @page: a page the caller locked.
 *
 * Unlocking a page that is not locked is the caller's bug; with no machine
 * at hand to report it to, it is ignored (the page is left as it was).
 *
 * Context: any thread.
 */
void iom_unlock_page(struct iom_page *page)
{
	unsigned long old;

	if (!page)
		return;
	page = iom_compound_head(page);
	old = atomic_fetch_and_explicit(&page->flags, ~PG_LOCKED,
					memory_order_release);
	if (unlikely(!(old & PG_LOCKED)))
		return;
	if (old & PG_WAITERS)
		wake_up_page_bit(page);
}

/**
 * iom_wait_on_page_locked() - wait_on_page_locked(): sleep until the page
 * is unlocked, without taking the lock.
 * @page: the page; the caller holds a reference.
 *
 * Context: may sleep. On return, whatever the last holder wrote before it
 * unlocked is visible to the caller.
 */
void iom_wait_on_page_locked(struct iom_page *page)
{
	if (!page)
		return;
	page = iom_compound_head(page);
	if (!iom_PageLocked(page))
		return;
	wait_on_page_bit_common(page, false);
}

/*
 * migration_entry_wait_on_locked(): sleep once on @page's lock, holding no
 * reference to it (Linux 5.19's migration_entry_wait_on_locked()). The
 * caller holds the page-table lock that keeps the migration entry, and so
 * the page, in place: the sleeper registers in the bucket (PG_waiters)
 * under that protection, then @unlock drops the caller's locks, then it
 * sleeps until the bucket is woken. It never touches the page after
 * @unlock: the migrator may free it. Returning early (the page was already
 * unlocked, or a wake-up for another page of the bucket) only means the
 * caller's fault is retried. Holding no reference matters: a reference
 * would make the migrator's refcount freeze fail for as long as it waits.
 */
void migration_entry_wait_on_locked(struct iom_page *page,
				    void (*unlock)(void *arg), void *arg)
{
	struct page_wait_bucket *q;
	unsigned long old;

	page = iom_compound_head(page);
	q = page_waitqueue(page);
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&q->lock));
	old = atomic_fetch_or_explicit(&page->flags, PG_WAITERS, memory_order_acq_rel);
	unlock(arg);
	if (old & PG_LOCKED)
		IOM_CHECK_PTHREAD(pthread_cond_wait(&q->wait, &q->lock));
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&q->lock));
}

/* ---- address_space ------------------------------------------------------ */

/**
 * iom_address_space_init() - address_space_init_once(): an empty cache.
 * @mapping: the address_space to initialise (every field is reset; set
 *           @host and @private_data afterwards).
 * @m:       the machine whose pages it will cache.
 * @a_ops:   its operations, or NULL for the generic ones.
 *
 * Context: any thread. Return: 0, -EINVAL.
 */
int iom_address_space_init(struct iom_address_space *mapping,
			   struct iom_machine *m,
			   const struct iom_address_space_operations *a_ops)
{
	if (!mapping || !m)
		return -EINVAL;
	memset(mapping, 0, sizeof(*mapping));
	mapping->m = m;
	iom_radix_tree_init(&mapping->i_pages, m);
	IOM_CHECK_PTHREAD(pthread_mutex_init(&mapping->tree_lock, NULL));
	IOM_CHECK_PTHREAD(pthread_rwlock_init(rwsem(&mapping->i_mmap_rwsem), NULL));
	mapping->i_mmap = NULL;
	mapping->a_ops = a_ops;
	mapping->gfp_mask = IOM_GFP_HIGHUSER_MOVABLE;
	return 0;
}

/**
 * iom_address_space_destroy() - release what iom_address_space_init() took.
 * @mapping: an empty address_space.
 *
 * Context: no other thread uses @mapping.
 * Return: 0; -EINVAL; -EBUSY if pages are still cached.
 */
int iom_address_space_destroy(struct iom_address_space *mapping)
{
	unsigned long nrpages;

	if (!mapping || !mapping->m)
		return -EINVAL;
	tree_lock(mapping);
	nrpages = mapping->nrpages;
	tree_unlock(mapping);
	if (nrpages || !iom_radix_tree_empty(&mapping->i_pages))
		return -EBUSY;
	IOM_CHECK_PTHREAD(pthread_mutex_destroy(&mapping->tree_lock));
	IOM_CHECK_PTHREAD(pthread_rwlock_destroy(rwsem(&mapping->i_mmap_rwsem)));
	mapping->m = NULL;
	return 0;
}

/* ---- the page cache ----------------------------------------------------- */

/**
 * iom_page_mapping() - page_mapping(): the address_space of a page-cache
 * page, NULL for an anonymous page (mapping's low bit set) or a page in no
 * mapping.
 * @page: any page.
 *
 * Context: any thread; stable only while the page is locked.
 */
struct iom_address_space *iom_page_mapping(const struct iom_page *page)
{
	uintptr_t mapping;

	if (!page)
		return NULL;
	page = iom_compound_head(page);
	mapping = (uintptr_t)READ_MAPPING(page);
	if (mapping & PAGE_MAPPING_ANON)
		return NULL;
	return (struct iom_address_space *)(mapping & ~PAGE_MAPPING_FLAGS);
}

/**
 * iom_add_to_page_cache_lru() - add_to_page_cache_lru().
 * @page:    a new order-0 page in no mapping, with the caller's reference;
 *           locked by the caller, or unlocked and then locked here (the
 *           kernel's add_to_page_cache_lru() does __SetPageLocked() itself,
 *           and seed 000's iomap_insert_page() relies on that).
 * @mapping: the cache.
 * @index:   where.
 * @gfp:     how tree nodes may be allocated (checked only: tree nodes come
 *           from the machine's metadata hook).
 *
 * The cache takes a reference of its own (page_ref_add()); PG_swapbacked
 * is left as the caller set it, so the page goes on the file LRU unless the
 * caller made it swap-backed (shmem).
 *
 * Context: not with @mapping->tree_lock held.
 * Return: 0 with @page locked; -EEXIST if @index is occupied; -ENOMEM;
 * -EINVAL for a page already in a mapping, a tail page, free, or not of
 * @mapping's machine. On error the page is as it was (unlocked if it came
 * unlocked).
 */
int iom_add_to_page_cache_lru(struct iom_page *page,
			      struct iom_address_space *mapping,
			      unsigned long index, iom_gfp_t gfp)
{
	struct iom_machine *m;
	unsigned long old_index;
	bool locked_here;
	int err;

	if (!page || !mapping || !mapping->m)
		return -EINVAL;
	m = mapping->m;
	if (!page_in_mem_map(m, page) || (gfp & ~IOM_GFP_VALID_MASK))
		return -EINVAL;
	/*
	 * A compound page takes one slot, at its first index: the kernel's
	 * large folios take every index they cover, but libiommig's only
	 * compound page-cache pages are IOMAP's higher-order DMA pages, which
	 * their owner looks up by their first index.
	 */
	if (iom_PageTail(page) || READ_MAPPING(page) || iom_page_ref_count(page) <= 0) {
		iom_warn(m, "add_to_page_cache: pfn %#lx is not an unused page or compound head",
			 page_to_pfn(m, page));
		return -EINVAL;
	}
	/* a new page nobody else knows: if it is unlocked, this cannot fail */
	locked_here = iom_trylock_page(page);

	atomic_fetch_add_explicit(&page->_refcount, 1, memory_order_relaxed);
	tree_lock(mapping);
	old_index = page->index;
	page->index = index;
	WRITE_MAPPING(page, mapping);
	err = iom_radix_tree_insert(&mapping->i_pages, index, page);
	if (unlikely(err)) {
		WRITE_MAPPING(page, NULL);
		page->index = old_index;
		tree_unlock(mapping);
		/* the caller's reference remains: this never frees */
		atomic_fetch_sub_explicit(&page->_refcount, 1, memory_order_relaxed);
		if (locked_here)
			iom_unlock_page(page);
		return err;
	}
	mapping->nrpages++;
	tree_unlock(mapping);
	iom_lru_cache_add(m, page);
	return 0;
}

/*
 * __delete_from_page_cache() under tree_lock: the slot must hold @page.
 * Returns false if it does not.
 */
static bool page_cache_delete(struct iom_address_space *mapping,
			      struct iom_page *page)
{
	if (iom_radix_tree_lookup(&mapping->i_pages, page->index) != page)
		return false;
	iom_radix_tree_delete(&mapping->i_pages, page->index);
	WRITE_MAPPING(page, NULL);
	IOM_BUG_ON(mapping->nrpages == 0);
	mapping->nrpages--;
	return true;
}

/**
 * iom_delete_from_page_cache() - delete_from_page_cache(): remove @page from
 * its mapping (its tags go with it) and drop the cache's reference.
 * @page: a locked page-cache page; the caller holds a reference of its own.
 *
 * A dirty page's data is dropped; write it back first if it matters.
 *
 * Context: @page locked. Return: 0; -EINVAL if it is in no page cache.
 */
int iom_delete_from_page_cache(struct iom_page *page)
{
	struct iom_address_space *mapping;
	bool deleted;

	if (!page)
		return -EINVAL;
	mapping = iom_page_mapping(page);
	if (!mapping || !iom_PageLocked(page))
		return -EINVAL;
	tree_lock(mapping);
	deleted = READ_MAPPING(page) == mapping && page_cache_delete(mapping, page);
	tree_unlock(mapping);
	if (!deleted)
		return -EINVAL;
	iom_put_page(mapping->m, page);
	return 0;
}

/**
 * iom_find_get_page() - find_get_page() / pagecache_get_page(0).
 * @mapping: the cache.
 * @index:   the offset.
 *
 * page_cache_get_speculative(): the page found under RCU may be freed,
 * frozen for migration or reclaim, or moved at any moment; a reference is
 * taken only if the count is not zero, and the slot is read again once it
 * is held. A frozen page makes the lookup yield and retry: the freezer is
 * about to replace or remove it.
 *
 * Context: any thread (the library registers it as an RCU reader on first
 * use, see src/core/rcu.h).
 * Return: the page with a reference, or NULL.
 */
struct iom_page *iom_find_get_page(struct iom_address_space *mapping,
				   unsigned long index)
{
	struct iom_page *page;

	if (!mapping || !mapping->m)
		return NULL;
	iom_rcu_read_lock_auto();
repeat:
	page = iom_radix_tree_lookup(&mapping->i_pages, index);
	if (!page)
		goto out;
	if (!iom_get_page_unless_zero(page)) {
		/* frozen or freed: let its owner finish (outside RCU) */
		iom_rcu_read_unlock_auto();
		sched_yield();
		iom_rcu_read_lock_auto();
		goto repeat;
	}
	/* Has the page moved or been removed while we took the reference? */
	if (unlikely(page != iom_radix_tree_lookup(&mapping->i_pages, index))) {
		put_speculative_page(mapping->m, page);
		goto repeat;
	}
out:
	iom_rcu_read_unlock_auto();
	return page;
}

/**
 * iom_find_lock_page() - find_lock_page(): iom_find_get_page() and lock the
 * page; if it left @index while we slept on its lock, try again.
 * @mapping: the cache.
 * @index:   the offset.
 *
 * Context: any thread; may sleep.
 * Return: the locked page with a reference, or NULL.
 */
struct iom_page *iom_find_lock_page(struct iom_address_space *mapping,
				    unsigned long index)
{
	struct iom_page *page;

	for (;;) {
		page = iom_find_get_page(mapping, index);
		if (!page)
			return NULL;
		iom_lock_page(page);
		if (likely(READ_MAPPING(page) == mapping && page->index == index))
			return page;
		/* truncated or migrated meanwhile */
		iom_unlock_page(page);
		iom_put_page(mapping->m, page);
	}
}

static void read_page_from_disk(struct iom_inode *inode, struct iom_page *page,
				unsigned long index);

/**
 * iom_find_or_create_page() - find_or_create_page(): the locked page at
 * @index, allocated and read in if it is not cached.
 * @mapping: the cache.
 * @index:   the offset.
 * @gfp:     allocation flags for a new page; 0: @mapping->gfp_mask.
 *
 * A new page is read from the file's disk when @mapping belongs to a
 * simulated file (zeros beyond its end), zero-filled otherwise, and is
 * PG_uptodate. If another thread adds a page at @index first, ours is freed
 * and theirs returned.
 *
 * Context: any thread; may sleep; may reclaim (per @gfp).
 * Return: the locked page with a reference, or NULL with errno ENOMEM (or
 * EINVAL for a bad @mapping or @gfp).
 */
struct iom_page *iom_find_or_create_page(struct iom_address_space *mapping,
					 unsigned long index, iom_gfp_t gfp)
{
	struct iom_machine *m;
	struct iom_page *page;
	bool locked;
	int err;

	if (!mapping || !mapping->m || (gfp & ~IOM_GFP_VALID_MASK)) {
		errno = EINVAL;
		return NULL;
	}
	m = mapping->m;
	if (!gfp)
		gfp = mapping->gfp_mask;
	for (;;) {
		page = iom_find_lock_page(mapping, index);
		if (page)
			return page;
		page = iom_alloc_pages(m, gfp, 0);
		if (!page) {
			errno = ENOMEM;
			return NULL;
		}
		/* nobody else can know this page yet */
		locked = iom_trylock_page(page);
		IOM_BUG_ON(!locked);
		if (mapping->host)
			read_page_from_disk(mapping->host, page, index);
		else
			memset(page_address(m, page), 0, IOM_PAGE_SIZE);
		iom_SetPageUptodate(page);
		err = iom_add_to_page_cache_lru(page, mapping, index, gfp);
		if (likely(!err))
			return page;
		iom_unlock_page(page);
		iom_put_page(m, page);
		if (err != -EEXIST) {
			errno = -err;
			return NULL;
		}
		/* lost a race with another creator: take theirs */
	}
}

/* ---- dirty state -------------------------------------------------------- */

/*
 * __set_page_dirty_nobuffers(): PG_dirty, then the DIRTY tag under the tree
 * lock if the page is still in the mapping. Clearing (below) takes the flag
 * and the tag together under the tree lock, so a dirty page never ends up
 * untagged; at worst a clean page stays tagged and sync skips it.
 */
static bool __set_page_dirty_nobuffers(struct iom_page *page)
{
	struct iom_address_space *mapping;

	if (atomic_fetch_or_explicit(&page->flags, 1UL << IOM_PG_dirty,
				     memory_order_acq_rel) & (1UL << IOM_PG_dirty))
		return false;
	mapping = iom_page_mapping(page);
	if (mapping) {
		tree_lock(mapping);
		if (READ_MAPPING(page) == mapping)
			iom_radix_tree_tag_set(&mapping->i_pages, page->index,
					       IOM_PAGECACHE_TAG_DIRTY);
		tree_unlock(mapping);
	}
	return true;
}

/**
 * iom_set_page_dirty() - set_page_dirty(): through a_ops->set_page_dirty
 * when the page's mapping has one (IOMAP's refuses: seed 000), else the
 * generic way: PG_dirty and the DIRTY tag.
 * @page: a page; normally locked, or mapped by the caller's PTE.
 *
 * Context: not with the mapping's tree_lock held.
 * Return: true if the page was clean and is now dirty.
 */
bool iom_set_page_dirty(struct iom_page *page)
{
	struct iom_address_space *mapping;

	if (!page)
		return false;
	page = iom_compound_head(page);
	mapping = iom_page_mapping(page);
	if (mapping && mapping->a_ops && mapping->a_ops->set_page_dirty)
		return mapping->a_ops->set_page_dirty(page);
	return __set_page_dirty_nobuffers(page);
}

/**
 * iom_clear_page_dirty_for_io() - clear_page_dirty_for_io(): clear PG_dirty
 * and the DIRTY tag before writing the page back.
 * @page: a locked page.
 *
 * Context: @page locked. Return: true if the page was dirty.
 */
bool iom_clear_page_dirty_for_io(struct iom_page *page)
{
	struct iom_address_space *mapping;
	bool was_dirty;

	if (!page)
		return false;
	page = iom_compound_head(page);
	mapping = iom_page_mapping(page);
	if (!mapping)
		return atomic_fetch_and_explicit(&page->flags, ~(1UL << IOM_PG_dirty),
						 memory_order_acq_rel) &
		       (1UL << IOM_PG_dirty);
	/*
	 * Write-protect the mappings first (outside tree_lock: rmap locks
	 * nest outside it), so a write through a PTE after this point faults
	 * and dirties the page again; a dirty PTE found here dirties it now.
	 * Context: the caller holds the page lock, as rmap_walk() needs.
	 */
	if (iom_page_mapped(page) && page_mkclean(mapping->m, page))
		iom_SetPageDirty(page);
	tree_lock(mapping);
	was_dirty = atomic_fetch_and_explicit(&page->flags, ~(1UL << IOM_PG_dirty),
					      memory_order_acq_rel) &
		    (1UL << IOM_PG_dirty);
	if (READ_MAPPING(page) == mapping)
		iom_radix_tree_tag_clear(&mapping->i_pages, page->index,
					 IOM_PAGECACHE_TAG_DIRTY);
	tree_unlock(mapping);
	return was_dirty;
}

/* ---- reclaim (mm/vmscan.c's half of the page cache) --------------------- */

/*
 * __remove_mapping(): detach a clean page from its mapping for reclaim.
 * The caller has isolated @page (one reference) and holds its lock; the
 * cache holds the other. Freezing the count at 2 under the tree lock makes
 * sure nobody else has or can get a reference while the page leaves the
 * tree: a speculative lookup that found it waits for the unfreeze and then
 * fails its slot re-check. Returns 1 with the count back at 1 (the
 * caller's) and @page out of @mapping, or 0 with nothing changed if the
 * page is referenced elsewhere, dirty, or not at its slot.
 */
int __remove_mapping(struct iom_address_space *mapping, struct iom_page *page)
{
	IOM_BUG_ON(!iom_PageLocked(page));
	tree_lock(mapping);
	if (!iom_page_ref_freeze(page, 2))
		goto cannot_free;
	/* re-dirtied through a PTE or a write after the caller looked */
	if (iom_PageDirty(page) || READ_MAPPING(page) != mapping ||
	    !page_cache_delete(mapping, page)) {
		iom_page_ref_unfreeze(page, 2);
		goto cannot_free;
	}
	tree_unlock(mapping);
	iom_page_ref_unfreeze(page, 1);
	return 1;
cannot_free:
	tree_unlock(mapping);
	return 0;
}

/* ---- simulated files ---------------------------------------------------- */

/*
 * struct iom_inode - a file of fixed @size whose backing store is @disk,
 * an mmap(MAP_NORESERVE) buffer of @size rounded up to pages (storage, like
 * the physical arena, so not through the metadata hook).
 */
struct iom_inode {
	struct iom_address_space i_data;
	/* the page cache: &i_data, or another's (iom_inode_create_for_mapping) */
	struct iom_address_space *i_mapping;
	struct iom_machine *m;
	uint64_t size;
	char *disk;
	size_t disk_size;
};

static void read_page_from_disk(struct iom_inode *inode, struct iom_page *page,
				unsigned long index)
{
	char *dst = page_address(inode->m, page);
	uint64_t pos = (uint64_t)index << IOM_PAGE_SHIFT;

	if (pos < inode->disk_size) {
		memcpy(dst, inode->disk + pos, IOM_PAGE_SIZE);
		return;
	}
	memset(dst, 0, IOM_PAGE_SIZE);
}

/**
 * iom_inode_create() - a simulated file of @size bytes, zero-filled.
 * @m:      the machine whose pages will cache it.
 * @size:   bytes; 0 is allowed (a file with nothing to read).
 * @inodep: where to store it.
 *
 * Return: 0, -EINVAL, -ENOMEM.
 */
int iom_inode_create(struct iom_machine *m, uint64_t size,
		     struct iom_inode **inodep)
{
	struct iom_inode *inode;
	uint64_t disk_size;

	if (!m || !inodep || size > (UINT64_MAX >> 1) ||
	    size > SIZE_MAX - IOM_PAGE_SIZE)
		return -EINVAL;
	disk_size = (size + IOM_PAGE_SIZE - 1) & ~(uint64_t)(IOM_PAGE_SIZE - 1);
	inode = iom_meta_alloc(m, sizeof(*inode), 64, true);
	if (!inode)
		return -ENOMEM;
	if (disk_size) {
		void *disk = mmap(NULL, (size_t)disk_size, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (disk == MAP_FAILED) {
			iom_meta_free(m, inode, sizeof(*inode));
			return -ENOMEM;
		}
		inode->disk = disk;
	}
	inode->m = m;
	inode->size = size;
	inode->disk_size = (size_t)disk_size;
	iom_address_space_init(&inode->i_data, m, NULL);
	inode->i_data.host = inode;
	inode->i_mapping = &inode->i_data;
	*inodep = inode;
	return 0;
}

/**
 * iom_inode_create_for_mapping() - a file without a disk whose page cache
 * is @mapping, owned by someone else (the kernel's inode->i_mapping
 * pointing away from inode->i_data, as a block device's does). IOMAP
 * uses it so a process can map a DMA buffer's pages shared.
 * @mapping: the page cache; its owner keeps it alive while the file lives.
 * @size:    bytes the file spans (faults beyond are SIGBUS).
 *
 * Context: any thread. Return: 0; -EINVAL; -ENOMEM.
 */
int iom_inode_create_for_mapping(struct iom_address_space *mapping,
				 uint64_t size, struct iom_inode **inodep)
{
	struct iom_inode *inode;

	if (!mapping || !mapping->m || !inodep || size > (UINT64_MAX >> 1))
		return -EINVAL;
	inode = iom_meta_alloc(mapping->m, sizeof(*inode), 64, true);
	if (!inode)
		return -ENOMEM;
	inode->m = mapping->m;
	inode->size = size;
	iom_address_space_init(&inode->i_data, mapping->m, NULL);
	inode->i_data.host = inode;
	inode->i_mapping = mapping;
	*inodep = inode;
	return 0;
}

/*
 * truncate_inode_pages(): drop every cached page, writing nothing back.
 * Pages somebody still holds a reference to are freed when they drop it.
 */
static void truncate_inode_pages(struct iom_address_space *mapping)
{
	unsigned long indices[16], start = 0;
	void *pages[16];
	unsigned int i, n;

	for (;;) {
		iom_rcu_read_lock_auto();
		n = iom_radix_tree_gang_lookup(&mapping->i_pages, pages, indices,
					       start, 16);
		iom_rcu_read_unlock_auto();
		if (!n)
			break;
		for (i = 0; i < n; i++) {
			struct iom_page *page = iom_find_lock_page(mapping, indices[i]);

			if (!page)
				continue;
			/* cancel_dirty_page(): the data is being thrown away */
			iom_clear_page_dirty_for_io(page);
			iom_delete_from_page_cache(page);
			iom_unlock_page(page);
			iom_put_page(mapping->m, page);
		}
		start = indices[n - 1] + 1;
		if (!start)
			break;		/* wrapped past ULONG_MAX */
	}
}

/**
 * iom_inode_destroy() - drop the page cache (writing nothing back) and free
 * the file.
 * @inode: the file; no read, write or sync of it may be running.
 *
 * Context: any thread.
 * Return: 0; -EINVAL; -EBUSY while a VMA maps it (nothing is changed).
 */
int iom_inode_destroy(struct iom_inode *inode)
{
	struct iom_address_space *mapping;
	bool mapped;
	int ret;

	if (!inode)
		return -EINVAL;
	mapping = inode->i_mapping;
	IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(rwsem(&mapping->i_mmap_rwsem)));
	mapped = mapping->i_mmap != NULL;
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(rwsem(&mapping->i_mmap_rwsem)));
	if (mapped)
		return -EBUSY;
	/* a file of another's page cache leaves those pages to their owner */
	mapping = &inode->i_data;
	truncate_inode_pages(mapping);
	ret = iom_address_space_destroy(mapping);
	if (ret)
		return ret;	/* a page came back in: the caller's race */
	if (inode->disk)
		munmap(inode->disk, inode->disk_size);
	iom_meta_free(inode->m, inode, sizeof(*inode));
	return 0;
}

/** iom_inode_mapping() - the file's page cache, or NULL for a NULL @inode. */
struct iom_address_space *iom_inode_mapping(struct iom_inode *inode)
{
	return inode ? inode->i_mapping : NULL;
}

/** iom_inode_size() - the file's size in bytes (0 for a NULL @inode). */
uint64_t iom_inode_size(const struct iom_inode *inode)
{
	return inode ? inode->size : 0;
}

/*
 * generic_file_read_iter() / generic_perform_write(), one page at a time
 * through the page cache, each page locked while it is copied (so a write
 * and a sync of the same page never interleave).
 */
static ssize_t file_rw(struct iom_inode *inode, uint64_t pos, void *buf,
		       size_t len, bool write)
{
	struct iom_address_space *mapping;
	size_t done = 0;

	if (!inode || (!buf && len) || pos > inode->size)
		return -EINVAL;
	if (write && pos == inode->size && len)
		return -EINVAL;		/* files do not grow */
	if (len > inode->size - pos)
		len = (size_t)(inode->size - pos);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	mapping = &inode->i_data;
	while (done < len) {
		unsigned long index = (unsigned long)(pos >> IOM_PAGE_SHIFT);
		size_t off = (size_t)(pos & (IOM_PAGE_SIZE - 1));
		size_t n = IOM_PAGE_SIZE - off;
		struct iom_page *page;
		char *addr;

		if (n > len - done)
			n = len - done;
		page = iom_find_or_create_page(mapping, index, mapping->gfp_mask);
		if (!page)
			return done ? (ssize_t)done : -ENOMEM;
		addr = (char *)page_address(inode->m, page) + off;
		if (write) {
			memcpy(addr, (const char *)buf + done, n);
			iom_set_page_dirty(page);
		} else {
			memcpy((char *)buf + done, addr, n);
		}
		iom_mark_page_accessed(inode->m, page);
		iom_unlock_page(page);
		iom_put_page(inode->m, page);
		done += n;
		pos += n;
	}
	return (ssize_t)done;
}

/**
 * iom_file_read() - read(2) at @pos through the page cache.
 * @inode: the file.  @pos: byte offset.  @buf: destination.  @len: bytes.
 *
 * Context: any thread; may sleep and allocate.
 * Return: bytes read (short at the end of the file, 0 at it); -EINVAL past
 * the end; -ENOMEM if no page could be had for the first byte.
 */
ssize_t iom_file_read(struct iom_inode *inode, uint64_t pos, void *buf,
		      size_t len)
{
	return file_rw(inode, pos, buf, len, false);
}

/**
 * iom_file_write() - write(2) at @pos through the page cache; the pages
 * written are dirtied. The file does not grow: a write is cut at its end.
 * @inode: the file.  @pos: byte offset.  @buf: source.  @len: bytes.
 *
 * Context: any thread; may sleep and allocate.
 * Return: bytes written; -EINVAL at or past the end; -ENOMEM.
 */
ssize_t iom_file_write(struct iom_inode *inode, uint64_t pos, const void *buf,
		       size_t len)
{
	return file_rw(inode, pos, (void *)buf, len, true);
}

/**
 * iom_file_sync() - filemap_write_and_wait(): for every page tagged DIRTY,
 * lock it, clear its dirty state and copy it to the disk.
 * @inode: the file.
 *
 * Context: any thread; may sleep.
 * Return: pages written, or -EINVAL.
 */
long iom_file_sync(struct iom_inode *inode)
{
	struct iom_address_space *mapping;
	unsigned long indices[16], start = 0;
	void *pages[16];
	unsigned int i, n;
	long written = 0;

	if (!inode)
		return -EINVAL;
	mapping = &inode->i_data;
	for (;;) {
		iom_rcu_read_lock_auto();
		n = iom_radix_tree_gang_lookup_tag(&mapping->i_pages, pages, indices,
						   start, 16, IOM_PAGECACHE_TAG_DIRTY);
		iom_rcu_read_unlock_auto();
		if (!n)
			break;
		for (i = 0; i < n; i++) {
			struct iom_page *page = iom_find_lock_page(mapping, indices[i]);
			uint64_t pos = (uint64_t)indices[i] << IOM_PAGE_SHIFT;

			if (!page)
				continue;
			if (iom_clear_page_dirty_for_io(page) && pos < inode->disk_size) {
				memcpy(inode->disk + pos, page_address(inode->m, page),
				       IOM_PAGE_SIZE);
				written++;
			}
			iom_unlock_page(page);
			iom_put_page(inode->m, page);
		}
		start = indices[n - 1] + 1;
		if (!start)
			break;
	}
	return written;
}

/**
 * iom_file_read_disk() - read the file's disk directly, bypassing the cache.
 * @inode: the file.  @pos: byte offset.  @buf: destination.  @len: bytes.
 *
 * Context: no sync of @inode running. Return: 0; -EINVAL if the range is
 * not within the file.
 */
int iom_file_read_disk(struct iom_inode *inode, uint64_t pos, void *buf,
		       size_t len)
{
	if (!inode || (!buf && len) || pos > inode->size ||
	    len > inode->size - pos)
		return -EINVAL;
	if (len)
		memcpy(buf, inode->disk + pos, len);
	return 0;
}
