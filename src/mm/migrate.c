/* SPDX-License-Identifier: MIT */
/*
 * Page migration (mm/migrate.c, Linux 6.1 with the batch of 6.3/6.4):
 * migrate_pages() cuts the list of isolated pages into batches of 512;
 * migrate_pages_batch() unmaps every page of a batch (lock, migration
 * entries, the TLB flush deferred), issues one flush, then moves each
 * page (move_to_new_page() -> a_ops->migratepage or migrate_page() ->
 * migrate_page_move_mapping() + migrate_page_copy(), the latter with seed
 * 000's a_ops->migratepagecopy hook) and remaps it; migrate_pages_sync()
 * retries what an ASYNC batch could not move one page at a time in the
 * caller's mode. Also non-LRU movable pages (isolate_movable_page(), the
 * driver's ->migratepage/->putback_page), alloc_migration_target() and
 * move_pages(2).
 *
 * Simplified:
 *   - no THP or hugetlb: no split/retry, no thp_migration_* counters;
 *     a compound page (IOMAP's higher-order DMA pages) moves whole to a
 *     target of its order and counts as one page in pgmigrate_*;
 *   - CPU TLBs are not modelled: the batch's one flush, and the per-PTE
 *     flush without TTU_BATCH_FLUSH, are counted (nr_tlb_remote_flush,
 *     nr_tlb_local_flush_one), not performed;
 *   - cond_resched() yields only on retry passes (a userspace thread
 *     cannot see need_resched());
 *   - no writeback in libiommig: PG_writeback is honoured (-EBUSY in the
 *     ASYNC and SYNC_LIGHT modes, a wait in SYNC) but never set by the
 *     library; a file mapping without ->migratepage uses migrate_page()
 *     (as shmem does) instead of fallback_migrate_folio()'s writeout;
 *   - no swap cache, no KSM, no memcg, no NUMA balancing state, no
 *     cpusets (move_pages may use every node with memory);
 *   - non-LRU movable pages use the pre-6.0 address_space_operations
 *     (isolate_page, migratepage, putback_page), not movable_operations.
 *
 * Conventions: @m machine; @page the old page, @newpage the target;
 * @mapping @page's address_space (NULL for anonymous pages).
 * Lock order: the old page's lock -> the new page's lock -> rmap locks
 * (inside try_to_migrate/remove_migration_ptes) ; mapping->tree_lock is
 * taken inside both page locks and nests nothing.
 */
#include <sched.h>
#include <string.h>

#include <iommig/migrate.h>

#include "../core/list.h"
#include "../core/trace.h"
#include "internal.h"
#include "mm_types.h"

static const char *const migrate_reason_names[IOM_MR_TYPES] = {
	"compaction",
	"memory_failure",
	"memory_hotplug",
	"syscall_or_cpuset",
	"mempolicy_mbind",
	"numa_misplaced",
	"contig_range",
	"longterm_pin",
	"demotion",
};

const char *iom_migrate_reason_name(int reason)
{
	if (reason < 0 || reason >= IOM_MR_TYPES)
		return NULL;
	return migrate_reason_names[reason];
}

static void tree_lock(struct iom_address_space *mapping)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&mapping->tree_lock));
}

static void tree_unlock(struct iom_address_space *mapping)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&mapping->tree_lock));
}

/* The page-cache mapping of @page, NULL for anonymous or unowned pages. */
static struct iom_address_space *page_file_mapping(const struct iom_page *page)
{
	uintptr_t mapping = (uintptr_t)page_mapping_raw(page);

	if (mapping & PAGE_MAPPING_FLAGS)
		return NULL;
	return (struct iom_address_space *)mapping;
}

/* ---- non-LRU movable pages (__SetPageMovable, isolate_movable_page) ---- */

/* __PageMovable(): marked movable, even if its driver released it since. */
static bool __page_movable(const struct iom_page *page)
{
	return ((uintptr_t)page_mapping_raw(page) & PAGE_MAPPING_FLAGS) ==
	       PAGE_MAPPING_MOVABLE;
}

/* The owner of a non-LRU movable page, or NULL (released or not one). */
static struct iom_address_space *page_movable_mapping(const struct iom_page *page)
{
	uintptr_t mapping = (uintptr_t)page_mapping_raw(page);

	if ((mapping & PAGE_MAPPING_FLAGS) != PAGE_MAPPING_MOVABLE)
		return NULL;
	return (struct iom_address_space *)(mapping & ~PAGE_MAPPING_FLAGS);
}

bool iom_PageMovable(const struct iom_page *page)
{
	return page && page_movable_mapping(page) != NULL;
}

int iom___SetPageMovable(struct iom_page *page, struct iom_address_space *mapping)
{
	if (!page || !mapping || ((uintptr_t)mapping & PAGE_MAPPING_FLAGS) ||
	    !mapping->a_ops || !mapping->a_ops->isolate_page ||
	    !mapping->a_ops->migratepage || !mapping->a_ops->putback_page)
		return -EINVAL;
	if (page_mapping_raw(page) || iom_PageLRU(page) || iom_PageAnon(page))
		return -EINVAL;
	set_page_mapping(page, (void *)((uintptr_t)mapping | PAGE_MAPPING_MOVABLE));
	return 0;
}

void iom___ClearPageMovable(struct iom_page *page)
{
	if (!page || !__page_movable(page))
		return;
	/* Keep the flag: an isolator that raced sees a released page. */
	set_page_mapping(page, (void *)PAGE_MAPPING_MOVABLE);
}

int iom_isolate_movable_page(struct iom_machine *m, struct iom_page *page,
			     int mode)
{
	struct iom_address_space *mapping;

	if (!m || !page || !page_in_mem_map(m, page))
		return -EINVAL;
	/*
	 * The page may be freed under us at any time: take a reference only
	 * if it is alive, and check it is movable under that reference.
	 */
	if (!iom_get_page_unless_zero(page))
		return -EBUSY;
	if (!__page_movable(page))
		goto out_putpage;
	/* The driver's page lock keeps the page from being released. */
	if (!iom_trylock_page(page))
		goto out_putpage;
	mapping = page_movable_mapping(page);
	if (!mapping || iom_PageIsolated(page))
		goto out_no_isolated;
	if (!mapping->a_ops->isolate_page(page, mode))
		goto out_no_isolated;
	/* Driver shouldn't use PG_isolated bit of page->flags */
	iom_SetPageIsolated(page);
	iom_unlock_page(page);
	return 0;		/* the reference is the isolation's */

out_no_isolated:
	iom_unlock_page(page);
out_putpage:
	iom_put_page(m, page);
	return -EBUSY;
}

/* expected_page_refs() (folio_expected_refs() in 6.3). */
static int expected_page_refs(struct iom_address_space *mapping,
			      struct iom_page *page)
{
	int expected = 1;

	if (mapping)
		expected += 1;
	if (iom_PagePrivate(page))
		expected += 1;
	return expected;
}

/* ---- migrate_page_move_mapping ------------------------------------------ */

int iom_migrate_page_move_mapping(struct iom_address_space *mapping,
				  struct iom_page *newpage,
				  struct iom_page *page, int extra_count)
{
	int expected;
	void **slot;

	if (!newpage || !page || newpage == page || extra_count < 0)
		return -EINVAL;
	expected = expected_page_refs(mapping, page) + extra_count;

	if (!mapping) {
		/* Anonymous page without a mapping: only the count matters. */
		if (iom_page_ref_count(page) != expected)
			return -EAGAIN;
		newpage->index = page->index;
		set_page_mapping(newpage, page_mapping_raw(page));
		if (iom_PageSwapBacked(page))
			iom_SetPageSwapBacked(newpage);
		return 0;
	}

	tree_lock(mapping);
	slot = iom_radix_tree_lookup_slot(&mapping->i_pages, page->index);
	if (!slot || iom_radix_tree_deref_slot(slot) != page ||
	    page_mapping_raw(page) != mapping) {
		tree_unlock(mapping);
		return -EAGAIN;
	}
	if (!iom_page_ref_freeze(page, expected)) {
		tree_unlock(mapping);
		return -EAGAIN;
	}

	/*
	 * Now we know that no one else is looking at the page: no one can
	 * take a reference (a speculative lookup sees the count frozen and
	 * retries, then finds @newpage in the slot).
	 */
	newpage->index = page->index;
	set_page_mapping(newpage, mapping);
	atomic_fetch_add_explicit(&newpage->_refcount, 1, memory_order_relaxed);
	if (iom_PageSwapBacked(page))
		iom_SetPageSwapBacked(newpage);
	/* Move dirty while the page cache is locked: the tag stays put. */
	if (iom_PageDirty(page)) {
		iom_ClearPageDirty(page);
		iom_SetPageDirty(newpage);
	}
	/* The owner's private state (IOMAP's, seed 000) follows the page. */
	if (iom_PagePrivate(page)) {
		newpage->private = page->private;
		iom_SetPagePrivate(newpage);
	}
	iom_radix_tree_replace_slot(&mapping->i_pages, slot, newpage);
	iom_trace(mapping->m, IOM_TRACE_MM_MIGRATE_PAGE_MOVE_MAPPING, 'i', page_to_pfn(mapping->m, page), page_to_pfn(mapping->m, newpage), newpage->index, 0);
	/*
	 * Drop the cache reference from the old page by unfreezing to the
	 * expected count minus the one moved. The old page's mapping is
	 * cleared before the unfreeze: a lookup that got the old page before
	 * the freeze fails its re-check either way.
	 */
	set_page_mapping(page, NULL);
	iom_page_ref_unfreeze(page, expected - 1);
	tree_unlock(mapping);
	return 0;
}

/* ---- migrate_page_copy -------------------------------------------------- */

/* migrate_page_states() (folio_migrate_flags()). */
static void migrate_page_states(struct iom_page *newpage, struct iom_page *page)
{
	if (iom_PageReferenced(page))
		iom_SetPageReferenced(newpage);
	if (iom_PageUptodate(page))
		iom_SetPageUptodate(newpage);
	if (iom_PageActive(page)) {
		iom_ClearPageActive(page);
		iom_SetPageActive(newpage);
	}
	/* Move dirty on pages not done by migrate_page_move_mapping() */
	if (iom_PageDirty(page))
		iom_SetPageDirty(newpage);
	if (iom_PagePrivate(page) && !iom_PagePrivate(newpage)) {
		newpage->private = page->private;
		iom_SetPagePrivate(newpage);
	}
	iom_ClearPagePrivate(page);
	page->private = 0;
}

/*
 * copy_highpage(): the C library's memcpy, called, not inlined - GCC
 * inlines a 4 KiB memcpy as `rep movsq`, which on the hosts measured runs
 * at two thirds of glibc's vector copy (bench/README.md, migrate).
 */
static void *(*volatile copy_page_fn)(void *, const void *, size_t) = memcpy;

static void copy_highpage(struct iom_machine *m, struct iom_page *to,
			  struct iom_page *from)
{
	/* folio_copy(): every page of a compound one */
	copy_page_fn(page_address(m, to), page_address(m, from),
		     IOM_PAGE_SIZE << iom_compound_order(from));
}

void iom_migrate_page_copy(struct iom_machine *m, struct iom_page *newpage,
			   struct iom_page *page)
{
	struct iom_address_space *mapping;

	if (!m || !newpage || !page || !page_in_mem_map(m, page) ||
	    !page_in_mem_map(m, newpage))
		return;
	/*
	 * After migrate_page_move_mapping() the old page of a page cache has
	 * no mapping any more: the new one has it.
	 */
	mapping = page_file_mapping(page);
	if (!mapping)
		mapping = page_file_mapping(newpage);

	if (mapping && mapping->a_ops && mapping->a_ops->migratepagecopy)
		mapping->a_ops->migratepagecopy(mapping, newpage, page);
	else if (!atomic_load_explicit(&m->test_skip_migrate_copy,
				       memory_order_relaxed))
		copy_highpage(m, newpage, page);
	migrate_page_states(newpage, page);
}

int iom_migrate_page(struct iom_address_space *mapping, struct iom_page *newpage,
		     struct iom_page *page, enum iom_migrate_mode mode)
{
	struct iom_machine *m;
	int rc;

	(void)mode;
	if (!newpage || !page)
		return -EINVAL;
	m = mapping ? mapping->m : NULL;
	if (!m) {
		struct anon_vma *av = page_anon_vma(page);

		m = av ? av->m : NULL;
	}
	if (!m)
		return -EINVAL;
	rc = iom_migrate_page_move_mapping(mapping, newpage, page, 0);
	if (rc)
		return rc;
	iom_migrate_page_copy(m, newpage, page);
	return 0;
}

/* ---- alloc_migration_target ------------------------------------------- */

struct iom_page *alloc_migration_target(struct iom_page *page,
					unsigned long private)
{
	struct migration_target_control *mtc = (void *)private;
	struct iom_machine *m = mtc->m;
	iom_gfp_t gfp_mask = mtc->gfp_mask;
	int nid = mtc->nid;

	if (nid < 0)
		nid = page_pgdat(m, page)->node_id;
	/* A page of ZONE_MOVABLE may move within ZONE_MOVABLE. */
	if (page_zone(m, page)->zone_type == IOM_ZONE_MOVABLE)
		gfp_mask |= IOM___GFP_HIGHMEM;
	/* a compound page moves whole, to one of its order */
	if (iom_PageHead(page))
		gfp_mask |= IOM___GFP_COMP | IOM___GFP_NOWARN;
	return iom_alloc_pages_node(m, nid, gfp_mask, iom_compound_order(page));
}

/* ---- unmap_and_move ----------------------------------------------------- */

/*
 * move_to_new_page(): both pages locked, @page unmapped. Anonymous pages
 * use migrate_page(); a page cache its ->migratepage, else migrate_page().
 */
static int move_to_new_page(struct iom_machine *m, struct iom_page *newpage,
			    struct iom_page *page, enum iom_migrate_mode mode)
{
	struct iom_address_space *mapping = page_file_mapping(page);
	int rc;

	IOM_BUG_ON(!iom_PageLocked(page));
	IOM_BUG_ON(!iom_PageLocked(newpage));

	if (__page_movable(page)) {
		/*
		 * A non-LRU movable page: its driver migrates it (and marks
		 * @newpage movable). Released by the driver since isolation:
		 * nothing to migrate, and that is a success.
		 */
		IOM_BUG_ON(!iom_PageIsolated(page));
		mapping = page_movable_mapping(page);
		if (!mapping)
			rc = 0;
		else
			rc = mapping->a_ops->migratepage(mapping, newpage, page, mode);
		if (rc == 0)
			iom_ClearPageIsolated(page);
		return rc;
	}
	if (!mapping) {
		rc = iom_migrate_page_move_mapping(NULL, newpage, page, 0);
		if (rc == 0)
			iom_migrate_page_copy(m, newpage, page);
	} else if (mapping->a_ops && mapping->a_ops->migratepage) {
		rc = mapping->a_ops->migratepage(mapping, newpage, page, mode);
	} else {
		rc = iom_migrate_page(mapping, newpage, page, mode);
	}
	if (rc == 0) {
		/*
		 * An anonymous page keeps its anon_vma pointer: the free path
		 * clears it. A page-cache page lost its mapping in
		 * move_mapping; a ->migratepage that did not clear it is
		 * corrected here, as the kernel's move_to_new_folio().
		 */
		if (!((uintptr_t)page_mapping_raw(page) & PAGE_MAPPING_FLAGS))
			set_page_mapping(page, NULL);
	}
	return rc;
}

/*
 * What migrate_folio_unmap() leaves for migrate_folio_move(), kept in the
 * new page's ->private as the kernel does (__migrate_folio_record()): the
 * anon_vma held for an anonymous page, and whether PTEs were replaced.
 */
#define PAGE_WAS_MAPPED		0x1UL

static void __migrate_page_record(struct iom_page *dst, bool page_was_mapped,
				  struct anon_vma *anon_vma)
{
	dst->private = (unsigned long)(uintptr_t)anon_vma |
		       (page_was_mapped ? PAGE_WAS_MAPPED : 0);
}

static void __migrate_page_extract(struct iom_page *dst, bool *page_was_mapped,
				   struct anon_vma **anon_vma)
{
	unsigned long private = dst->private;

	*page_was_mapped = private & PAGE_WAS_MAPPED;
	*anon_vma = (struct anon_vma *)(uintptr_t)(private & ~PAGE_WAS_MAPPED);
	dst->private = 0;
}

/* Give back a target page that was not used. */
static void migrate_page_undo_dst(struct iom_machine *m, struct iom_page *dst,
				  bool locked, iom_free_page_t put_new_page,
				  unsigned long private)
{
	if (locked)
		iom_unlock_page(dst);
	if (put_new_page)
		put_new_page(dst, private);
	else
		iom_put_page(m, dst);
}

/* Restore the old page after the unmap: PTEs back, locks and pin gone. */
static void migrate_page_undo_src(struct iom_machine *m, struct iom_page *src,
				  bool page_was_mapped,
				  struct anon_vma *anon_vma, bool locked,
				  struct iom_list_head *ret)
{
	if (page_was_mapped)
		iom_remove_migration_ptes(m, src, src);
	if (anon_vma)
		put_anon_vma(anon_vma);
	if (locked)
		iom_unlock_page(src);
	if (ret)
		list_move_tail(&src->lru, ret);
}

/* migrate_folio_done(): the old page leaves migration. */
static void migrate_page_done(struct iom_machine *m, struct iom_page *src,
			      int reason)
{
	/* MR_MEMORY_FAILURE keeps the isolation reference, as the kernel. */
	if (reason != IOM_MR_MEMORY_FAILURE)
		iom_put_page(m, src);
}

/* The statuses of migrate_folio_unmap(), besides 0 and -errno. */
#define MIGRATEPAGE_SUCCESS	0
#define MIGRATEPAGE_UNMAP	1

/*
 * migrate_folio_unmap(): allocate the target, lock both pages and replace
 * the old page's PTEs by migration entries (with @mode ASYNC, deferring the
 * TLB flush to the batch's try_to_unmap_flush()). Return:
 * MIGRATEPAGE_UNMAP (both locked, *@dstp set, @src stays on its list for
 * the caller to move), MIGRATEPAGE_SUCCESS (the page was freed from under
 * us: done), -EAGAIN (@src stays on its list), -ENOMEM (no target), or
 * another -errno (@src moved to @ret).
 */
static int migrate_page_unmap(struct iom_machine *m, iom_new_page_t get_new_page,
			      iom_free_page_t put_new_page,
			      unsigned long private, struct iom_page *src,
			      struct iom_page **dstp, enum iom_migrate_mode mode,
			      int reason, struct iom_list_head *ret)
{
	struct anon_vma *anon_vma = NULL;
	bool page_was_mapped = false, dst_locked = false;
	struct iom_page *dst;
	int rc = -EAGAIN;

	*dstp = NULL;
	if (iom_page_ref_count(src) == 1) {
		/* Page was freed from under us (unmapped, truncated). */
		iom_ClearPageActive(src);
		iom_ClearPageIsolated(src);
		list_del(&src->lru);
		migrate_page_done(m, src, reason);
		return MIGRATEPAGE_SUCCESS;
	}

	dst = get_new_page(src, private);
	if (!dst)
		return -ENOMEM;
	if (!page_in_mem_map(m, dst) || iom_PageLocked(dst) || iom_PageTail(dst) ||
	    page_mapping_raw(dst) || iom_page_ref_count(dst) != 1 ||
	    iom_compound_order(dst) != iom_compound_order(src)) {
		iom_warn(m, "migrate_pages: get_new_page gave an unusable page"
			 " (order %u for a page of order %u)", iom_compound_order(dst),
			 iom_compound_order(src));
		migrate_page_undo_dst(m, dst, false, put_new_page, private);
		list_move_tail(&src->lru, ret);
		return -EINVAL;
	}
	dst->private = 0;

	if (!iom_trylock_page(src)) {
		/*
		 * A batch holds other pages' locks: only a batch of one (the
		 * synchronous retry) may sleep on this one.
		 */
		if (mode == IOM_MIGRATE_ASYNC)
			goto out;
		iom_lock_page(src);
	}

	if (iom_PageWriteback(src)) {
		/* Only a full synchronous migration waits for writeback. */
		if (mode != IOM_MIGRATE_SYNC) {
			rc = -EBUSY;
			goto out_unlock;
		}
		while (iom_PageWriteback(src))
			sched_yield();
	}

	/*
	 * Keep the anon_vma of a mapped anonymous page alive from
	 * try_to_migrate() to remove_migration_ptes(): munmap may meanwhile
	 * drop the last VMA that linked it.
	 */
	if (iom_PageAnon(src))
		anon_vma = page_get_anon_vma(src);

	/* A fresh page nobody else knows: the trylock cannot fail. */
	if (!iom_trylock_page(dst))
		goto out_unlock;
	dst_locked = true;

	if (__page_movable(src)) {
		/* non-LRU movable: never mapped, nothing to unmap */
		__migrate_page_record(dst, false, anon_vma);
		*dstp = dst;
		return MIGRATEPAGE_UNMAP;
	}
	if (!page_mapping_raw(src)) {
		/*
		 * Truncated from its page cache while isolated: nothing to
		 * migrate. The next pass finds only the isolation reference
		 * and frees it ("freed from under us").
		 */
		goto out_unlock_both;
	}
	if (iom_page_mapped(src)) {
		if (iom_PageAnon(src) && !anon_vma) {
			/* mapped but its anon_vma is going away: retry */
			goto out_unlock_both;
		}
		try_to_migrate(m, src, mode == IOM_MIGRATE_ASYNC ? TTU_BATCH_FLUSH : 0);
		page_was_mapped = true;
	}

	if (!iom_page_mapped(src)) {
		__migrate_page_record(dst, page_was_mapped, anon_vma);
		*dstp = dst;
		return MIGRATEPAGE_UNMAP;
	}

	if (page_was_mapped)
		iom_remove_migration_ptes(m, src, src);

out_unlock_both:
	iom_unlock_page(dst);
	dst_locked = false;
out_unlock:
	if (anon_vma)
		put_anon_vma(anon_vma);
	iom_unlock_page(src);
out:
	if (rc != -EAGAIN)
		list_move_tail(&src->lru, ret);
	migrate_page_undo_dst(m, dst, dst_locked, put_new_page, private);
	return rc;
}

/*
 * migrate_folio_move(): both pages locked, @src unmapped: move the mapping
 * and the content, remap to @dst. Return: MIGRATEPAGE_SUCCESS (@src freed,
 * @dst on the LRU), -EAGAIN (nothing changed: both still locked, @src
 * still unmapped, for another pass or the undo), or another -errno (@src
 * restored and moved to @ret, @dst given back).
 */
static int migrate_page_move(struct iom_machine *m, iom_free_page_t put_new_page,
			     unsigned long private, struct iom_page *src,
			     struct iom_page *dst, enum iom_migrate_mode mode,
			     int reason, struct iom_list_head *ret)
{
	bool is_lru = !__page_movable(src), page_was_mapped;
	struct anon_vma *anon_vma;
	int rc;

	__migrate_page_extract(dst, &page_was_mapped, &anon_vma);
	rc = move_to_new_page(m, dst, src, mode);
	if (rc) {
		__migrate_page_record(dst, page_was_mapped, anon_vma);
		if (rc == -EAGAIN)
			return rc;
		list_del(&dst->lru);
		migrate_page_undo_src(m, src, page_was_mapped, anon_vma, true, ret);
		migrate_page_undo_dst(m, dst, true, put_new_page, private);
		return rc;
	}

	if (page_was_mapped)
		iom_remove_migration_ptes(m, src, dst);
	list_del(&dst->lru);
	iom_unlock_page(dst);
	if (!is_lru) {
		/* non-LRU: the driver holds its own reference on @dst */
		iom_put_page(m, dst);
	} else {
		/*
		 * putback_lru_page(): the new page joins the LRU its flags
		 * (swapbacked, active) name, and the allocation's reference
		 * goes: the page cache and the PTEs hold the others.
		 */
		iom_putback_lru_page(m, dst);
	}
	if (anon_vma)
		put_anon_vma(anon_vma);
	iom_unlock_page(src);
	/*
	 * The old page: only the isolation reference is left (plus a
	 * sleeper's on a migration entry, which frees it later).
	 */
	list_del(&src->lru);
	migrate_page_done(m, src, reason);
	return MIGRATEPAGE_SUCCESS;
}

/* The kernel's limits (mm/migrate.c since 6.4). */
#define NR_MAX_BATCHED_MIGRATION	512
#define NR_MAX_MIGRATE_PAGES_RETRY	10
#define NR_MAX_MIGRATE_ASYNC_RETRY	3
#define NR_MAX_MIGRATE_SYNC_RETRY \
	(NR_MAX_MIGRATE_PAGES_RETRY - NR_MAX_MIGRATE_ASYNC_RETRY)

/*
 * cond_resched() of the batch loops. A userspace thread cannot know
 * need_resched(); the first pass never yields (that would cost a system
 * call a page), a retry pass does: the page is then held by another
 * thread, which may be waiting for a cpu on this 2-core host.
 */
static inline void cond_resched_retry(int pass)
{
	if (pass)
		sched_yield();
}

struct migrate_pages_stats {
	unsigned int nr_succeeded;
	unsigned int nr_failed;
};

/* The owners that joined one batch (a_ops->migrate_batch_add). */
struct iom_migrate_batch {
	struct {
		const struct iom_migrate_batch_ops *ops;
		void *priv;
	} c[IOM_MIGRATE_BATCH_CLIENTS];
	unsigned int nr;
};

void *iom_migrate_batch_client(struct iom_migrate_batch *batch,
			       const struct iom_migrate_batch_ops *ops,
			       void *(*make)(void *arg), void *arg)
{
	unsigned int i;

	if (!batch || !ops || !make)
		return NULL;
	for (i = 0; i < batch->nr; i++)
		if (batch->c[i].ops == ops)
			return batch->c[i].priv;
	if (batch->nr == IOM_MIGRATE_BATCH_CLIENTS)
		return NULL;
	batch->c[i].priv = make(arg);
	if (!batch->c[i].priv)
		return NULL;
	batch->c[i].ops = ops;
	batch->nr++;
	return batch->c[i].priv;
}

/* Offer every unmapped page to its owner, then tell the owners. */
static void migrate_batch_prepare(struct iom_migrate_batch *batch,
				  struct iom_list_head *unmap_pages,
				  struct iom_list_head *dst_pages)
{
	struct iom_list_head *pos, *dpos = dst_pages->next;

	for (pos = unmap_pages->next; pos != unmap_pages; pos = pos->next, dpos = dpos->next) {
		struct iom_page *page = list_entry(pos, struct iom_page, lru);
		struct iom_address_space *mapping = page_file_mapping(page);

		if (mapping && mapping->a_ops && mapping->a_ops->migrate_batch_add)
			mapping->a_ops->migrate_batch_add(mapping,
							  list_entry(dpos, struct iom_page, lru),
							  page, batch);
	}
	for (unsigned int i = 0; i < batch->nr; i++)
		batch->c[i].ops->prepared(batch->c[i].priv);
}

static void migrate_batch_end(struct iom_migrate_batch *batch)
{
	for (unsigned int i = 0; i < batch->nr; i++)
		batch->c[i].ops->end(batch->c[i].priv);
	batch->nr = 0;
}

/*
 * migrate_pages_batch(): the 6.3 batch. Unmap every page of @from (up to
 * @nr_pass passes for -EAGAIN), issue the one deferred TLB flush, then move
 * and remap every unmapped page (again up to @nr_pass passes), and undo
 * what could not be moved. Pages that failed for good go to @ret; pages
 * still -EAGAIN stay on @from. Return: the pages not migrated, or -ENOMEM
 * (targets ran out: the pages not tried stay on @from).
 */
static int migrate_pages_batch(struct iom_machine *m, struct iom_list_head *from,
			       iom_new_page_t get_new_page,
			       iom_free_page_t put_new_page,
			       unsigned long private, enum iom_migrate_mode mode,
			       int reason, struct iom_list_head *ret,
			       struct migrate_pages_stats *stats, int nr_pass)
{
	struct iom_list_head unmap_pages, dst_pages;
	struct iom_list_head *pos, *n, *dpos, *dn;
	struct iom_migrate_batch batch = { .nr = 0 };
	int retry = 1, nr_failed = 0, pass, rc, rc_saved = 0;

	INIT_LIST_HEAD(&unmap_pages);
	INIT_LIST_HEAD(&dst_pages);

	for (pass = 0; pass < nr_pass && retry; pass++) {
		retry = 0;
		for (pos = from->next, n = pos->next; pos != from;
		     pos = n, n = pos->next) {
			struct iom_page *page = list_entry(pos, struct iom_page, lru);
			struct iom_page *dst;

			cond_resched_retry(pass);
			rc = migrate_page_unmap(m, get_new_page, put_new_page,
						private, page, &dst, mode,
						reason, ret);
			switch (rc) {
			case -ENOMEM:
				/*
				 * Out of targets: move what is unmapped, leave
				 * the rest on @from.
				 */
				nr_failed++;
				rc_saved = rc;
				if (list_empty(&unmap_pages))
					goto out;
				goto move;
			case -EAGAIN:
				retry++;
				break;
			case MIGRATEPAGE_SUCCESS:
				stats->nr_succeeded++;
				break;
			case MIGRATEPAGE_UNMAP:
				list_move_tail(&page->lru, &unmap_pages);
				list_add_tail(&dst->lru, &dst_pages);
				break;
			default:
				nr_failed++;
				break;
			}
		}
	}
	nr_failed += retry;
move:
	/* One flush for every PTE the batch cleared. */
	try_to_unmap_flush();
	/* and the owners' device-side preparation, once for the batch */
	migrate_batch_prepare(&batch, &unmap_pages, &dst_pages);

	retry = 1;
	for (pass = 0; pass < nr_pass && retry; pass++) {
		retry = 0;
		dpos = dst_pages.next;
		for (pos = unmap_pages.next, n = pos->next; pos != &unmap_pages;
		     pos = n, n = pos->next, dpos = dn) {
			struct iom_page *page = list_entry(pos, struct iom_page, lru);
			struct iom_page *dst = list_entry(dpos, struct iom_page, lru);

			dn = dpos->next;
			cond_resched_retry(pass);
			rc = migrate_page_move(m, put_new_page, private, page,
					       dst, mode, reason, ret);
			switch (rc) {
			case -EAGAIN:
				retry++;
				break;
			case MIGRATEPAGE_SUCCESS:
				stats->nr_succeeded++;
				break;
			default:
				nr_failed++;
				break;
			}
		}
	}
	nr_failed += retry;
	/* before the pages given up are restored and unlocked */
	migrate_batch_end(&batch);

	/* Cleanup: what is still unmapped failed; restore it. */
	dpos = dst_pages.next;
	for (pos = unmap_pages.next, n = pos->next; pos != &unmap_pages;
	     pos = n, n = pos->next, dpos = dn) {
		struct iom_page *page = list_entry(pos, struct iom_page, lru);
		struct iom_page *dst = list_entry(dpos, struct iom_page, lru);
		struct anon_vma *anon_vma;
		bool page_was_mapped;

		dn = dpos->next;
		__migrate_page_extract(dst, &page_was_mapped, &anon_vma);
		migrate_page_undo_src(m, page, page_was_mapped, anon_vma, true, ret);
		list_del(&dst->lru);
		migrate_page_undo_dst(m, dst, true, put_new_page, private);
	}
out:
	stats->nr_failed += (unsigned int)nr_failed;
	return rc_saved ? rc_saved : nr_failed;
}

/*
 * migrate_pages_sync(): a batch in ASYNC mode first (trylocks, one TLB
 * flush), then each page that failed, alone, in @mode: a batch of one
 * may sleep on its page lock without holding others' locks.
 */
static int migrate_pages_sync(struct iom_machine *m, struct iom_list_head *from,
			      iom_new_page_t get_new_page,
			      iom_free_page_t put_new_page,
			      unsigned long private, enum iom_migrate_mode mode,
			      int reason, struct iom_list_head *ret,
			      struct migrate_pages_stats *stats)
{
	struct migrate_pages_stats astats = { 0 };
	struct iom_list_head pages;
	int rc, nr_failed = 0;

	INIT_LIST_HEAD(&pages);
	rc = migrate_pages_batch(m, from, get_new_page, put_new_page, private,
				 IOM_MIGRATE_ASYNC, reason, &pages, &astats,
				 NR_MAX_MIGRATE_ASYNC_RETRY);
	stats->nr_succeeded += astats.nr_succeeded;
	if (rc == -ENOMEM) {
		list_splice_tail_init(&pages, ret);
		stats->nr_failed += astats.nr_failed;
		return rc;
	}
	/* Retry every failure one at a time in @mode. */
	list_splice_tail_init(&pages, from);
	while (!list_empty(from)) {
		list_move(from->next, &pages);
		rc = migrate_pages_batch(m, &pages, get_new_page, put_new_page,
					 private, mode, reason, ret, stats,
					 NR_MAX_MIGRATE_SYNC_RETRY);
		list_splice_tail_init(&pages, ret);
		if (rc < 0)
			return rc;
		nr_failed += rc;
	}
	return nr_failed;
}

int iom_migrate_pages(struct iom_machine *m, struct iom_list_head *from,
		      iom_new_page_t get_new_page, iom_free_page_t put_new_page,
		      unsigned long private, enum iom_migrate_mode mode,
		      int reason, unsigned int *nr_succeededp)
{
	struct migrate_pages_stats stats = { 0 };
	struct iom_list_head ret_pages, batch;
	int nr_failed = 0, rc = 0;

	if (nr_succeededp)
		*nr_succeededp = 0;
	if (!m || !from || !from->next || !get_new_page ||
	    (int)mode < IOM_MIGRATE_ASYNC || mode > IOM_MIGRATE_SYNC ||
	    reason < 0 || reason >= IOM_MR_TYPES)
		return -EINVAL;
	INIT_LIST_HEAD(&ret_pages);
	INIT_LIST_HEAD(&batch);

	while (!list_empty(from)) {
		struct iom_list_head *pos = from->next;
		unsigned int nr = 0;

		/* Up to NR_MAX_BATCHED_MIGRATION pages a batch. */
		while (pos != from && nr < NR_MAX_BATCHED_MIGRATION) {
			pos = pos->next;
			nr++;
		}
		list_cut_before(&batch, from, pos);
		if (mode == IOM_MIGRATE_ASYNC)
			rc = migrate_pages_batch(m, &batch, get_new_page,
						 put_new_page, private, mode,
						 reason, &ret_pages, &stats,
						 NR_MAX_MIGRATE_PAGES_RETRY);
		else
			rc = migrate_pages_sync(m, &batch, get_new_page,
						put_new_page, private, mode,
						reason, &ret_pages, &stats);
		/* Pages still -EAGAIN after every pass failed too. */
		list_splice_tail_init(&batch, &ret_pages);
		if (rc < 0) {
			/* -ENOMEM: the batch's untried pages and the rest */
			nr_failed = -ENOMEM;
			break;
		}
		nr_failed += rc;
	}
	rc = nr_failed;
	if (stats.nr_succeeded)
		count_vm_events(m, IOM_PGMIGRATE_SUCCESS, stats.nr_succeeded);
	if (stats.nr_failed)
		count_vm_events(m, IOM_PGMIGRATE_FAIL, stats.nr_failed);
	list_splice_init(&ret_pages, from);
	/* Nothing left on @from: every page migrated (or was freed). */
	if (list_empty(from))
		rc = 0;
	iom_trace(m, IOM_TRACE_MM_MIGRATE_PAGES, 'i', stats.nr_succeeded, stats.nr_failed, mode, reason);
	if (nr_succeededp)
		*nr_succeededp = stats.nr_succeeded;
	return rc;
}

void iom_putback_movable_pages(struct iom_machine *m, struct iom_list_head *l)
{
	struct iom_list_head *pos, *n;

	if (!m || !l || !l->next)
		return;
	for (pos = l->next, n = pos->next; pos != l; pos = n, n = pos->next) {
		struct iom_page *page = list_entry(pos, struct iom_page, lru);
		struct iom_address_space *mapping;

		list_del(&page->lru);
		if (__page_movable(page)) {
			/* a non-LRU movable page: its owner takes it back */
			iom_lock_page(page);
			mapping = page_movable_mapping(page);
			if (mapping)
				mapping->a_ops->putback_page(page);
			iom_ClearPageIsolated(page);
			iom_unlock_page(page);
			iom_put_page(m, page);
		} else {
			iom_putback_lru_page(m, page);
		}
	}
}

/* ---- move_pages(2) ------------------------------------------------------ */

static bool node_has_memory(struct iom_machine *m, int nid)
{
	int zt;

	if (nid < 0 || (unsigned int)nid >= m->nr_nodes ||
	    nid >= IOM_MAX_NUMNODES || !m->node_data[nid])
		return false;
	for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++)
		if (m->node_data[nid]->node_zones[zt].managed_pages)
			return true;
	return false;
}

/*
 * add_page_for_migration(): isolate the page at @addr for a move to @node.
 * Return: 1 queued on @pagelist; 0 already on @node; -EFAULT no VMA;
 * -ENOENT nothing mapped (or a migration entry); -EACCES mapped by more
 * than one process without MPOL_MF_MOVE_ALL; -EBUSY not on an LRU.
 */
static int add_page_for_migration(struct iom_mm *mm, uint64_t addr, int node,
				  struct iom_list_head *pagelist,
				  bool migrate_all)
{
	struct iom_machine *m = mm->m;
	struct iom_page *page;
	int err;

	err = iom_follow_page(mm, addr, &page);
	if (err == -EAGAIN)
		err = -ENOENT;		/* follow_page() without FOLL_MIGRATION */
	if (err)
		return err;
	err = 0;
	if (page_pgdat(m, page)->node_id == node)
		goto out_putpage;
	err = -EACCES;
	if (iom_page_mapcount(page) > 1 && !migrate_all)
		goto out_putpage;
	err = iom_isolate_lru_page(m, page);
	if (err)
		goto out_putpage;
	err = 1;
	list_add_tail(&page->lru, pagelist);
out_putpage:
	iom_put_page(m, page);
	return err;
}

/* do_move_pages_to_node(): migrate_pages() onto @node, putting back failures. */
static int do_move_pages_to_node(struct iom_mm *mm, struct iom_list_head *pagelist,
				 int node)
{
	struct migration_target_control mtc = {
		.m = mm->m,
		.nid = node,
		.gfp_mask = IOM_GFP_HIGHUSER_MOVABLE | IOM___GFP_THISNODE,
	};
	int err;

	err = iom_migrate_pages(mm->m, pagelist, alloc_migration_target, NULL,
				(unsigned long)&mtc, IOM_MIGRATE_SYNC,
				IOM_MR_SYSCALL, NULL);
	if (err)
		iom_putback_movable_pages(mm->m, pagelist);
	return err;
}

static void store_status(int *status, unsigned long start, int value,
			 unsigned long nr)
{
	while (nr--)
		status[start++] = value;
}

/*
 * move_pages_and_store_status(): migrate what is queued for @node; on
 * success the pages [@start, @i) are on @node. Return: 0, the pages not
 * migrated plus those not yet tried, or -errno.
 */
static int move_pages_and_store_status(struct iom_mm *mm, int node,
				       struct iom_list_head *pagelist,
				       int *status, unsigned long start,
				       unsigned long i, unsigned long nr_pages)
{
	int err;

	if (list_empty(pagelist))
		return 0;
	err = do_move_pages_to_node(mm, pagelist, node);
	if (err) {
		/* abort: the pages not yet tried count as not migrated */
		if (err > 0)
			err += (int)(nr_pages - i);
		return err;
	}
	store_status(status, start, node, i - start);
	return 0;
}

/* do_pages_stat(): where each page is. */
static void do_pages_stat(struct iom_mm *mm, unsigned long nr_pages,
			  const uint64_t *pages, int *status)
{
	unsigned long i;

	for (i = 0; i < nr_pages; i++) {
		struct iom_page *page;
		int err = iom_follow_page(mm, pages[i], &page);

		if (err == -EAGAIN)
			err = -ENOENT;
		if (!err) {
			err = page_pgdat(mm->m, page)->node_id;
			iom_put_page(mm->m, page);
		}
		status[i] = err;
	}
}

long iom_move_pages(struct iom_mm *mm, unsigned long nr_pages,
		    const uint64_t *pages, const int *nodes, int *status,
		    int flags)
{
	struct iom_list_head pagelist;
	int current_node = -1, err = 0, err1;
	unsigned long i, start = 0;

	if (!mm || (nr_pages && (!pages || !status)) ||
	    (flags & ~(IOM_MPOL_MF_MOVE | IOM_MPOL_MF_MOVE_ALL)))
		return -EINVAL;
	if (nr_pages > INT32_MAX)
		return -E2BIG;
	if (!nodes) {
		do_pages_stat(mm, nr_pages, pages, status);
		return 0;
	}
	INIT_LIST_HEAD(&pagelist);

	for (i = 0; i < nr_pages; i++) {
		int node = nodes[i];

		err = -ENODEV;
		if (!node_has_memory(mm->m, node))
			goto out_flush;
		if (current_node < 0) {
			current_node = node;
			start = i;
		} else if (node != current_node) {
			err = move_pages_and_store_status(mm, current_node, &pagelist,
							  status, start, i, nr_pages);
			if (err)
				goto out;
			start = i;
			current_node = node;
		}
		err = add_page_for_migration(mm, pages[i], current_node, &pagelist,
					     flags & IOM_MPOL_MF_MOVE_ALL);
		if (err > 0)
			continue;	/* queued */
		/* Already on the node (0) or an error: record it, and move
		 * the queued pages now so that status ranges stay simple. */
		status[i] = err ? err : current_node;
		err = move_pages_and_store_status(mm, current_node, &pagelist,
						  status, start, i, nr_pages);
		if (err) {
			if (err > 0)
				err--;	/* page i is accounted for */
			goto out;
		}
		current_node = -1;
	}
	err = 0;
out_flush:
	err1 = move_pages_and_store_status(mm, current_node, &pagelist, status,
					   start, i, nr_pages);
	if (err >= 0)
		err = err1;
out:
	return err;
}
