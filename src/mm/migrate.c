/* SPDX-License-Identifier: MIT */
/*
 * Page migration (mm/migrate.c, Linux ~6.1, with the 6.3 names where they
 * are the same): migrate_pages() over a list of isolated pages,
 * unmap_and_move() (lock, unmap to migration entries, move, remap),
 * move_to_new_page() -> a_ops->migratepage or migrate_page() ->
 * migrate_page_move_mapping() + migrate_page_copy(), the latter with seed
 * 000's a_ops->migratepagecopy hook.
 *
 * Simplified:
 *   - order-0 pages only: no THP or hugetlb split/retry, no
 *     thp_migration_* counters;
 *   - unbatched: the 6.3 batch (unmap a batch, one flush, copy, remap) is
 *     not modelled; each page is unmapped, moved and remapped in turn;
 *   - no writeback in libiommig: PG_writeback is honoured (-EBUSY in the
 *     ASYNC and SYNC_LIGHT modes, a wait in SYNC) but never set by the
 *     library; a file mapping without ->migratepage uses migrate_page()
 *     (as shmem does) instead of fallback_migrate_folio()'s writeout;
 *   - no swap cache, no KSM, no memcg, no NUMA balancing state;
 *   - non-LRU movable pages (isolate_movable_page) are put back through
 *     ->putback_page but cannot be isolated here yet.
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
		memcpy(page_address(m, newpage), page_address(m, page), IOM_PAGE_SIZE);
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
	int nid = mtc->nid;

	if (nid < 0)
		nid = page_pgdat(m, page)->node_id;
	return iom_alloc_pages_node(m, nid, mtc->gfp_mask, 0);
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

static int __unmap_and_move(struct iom_machine *m, struct iom_page *page,
			    struct iom_page *newpage, bool force,
			    enum iom_migrate_mode mode)
{
	struct anon_vma *anon_vma = NULL;
	bool page_was_mapped = false;
	int rc = -EAGAIN;

	if (!iom_trylock_page(page)) {
		if (!force || mode == IOM_MIGRATE_ASYNC)
			return rc;
		iom_lock_page(page);
	}

	if (iom_PageWriteback(page)) {
		/* Only in the case of a full synchronous migration is it
		 * necessary to wait for PageWriteback. */
		if (mode != IOM_MIGRATE_SYNC) {
			rc = -EBUSY;
			goto out_unlock;
		}
		if (!force)
			goto out_unlock;
		while (iom_PageWriteback(page))
			sched_yield();
	}

	/*
	 * Keep the anon_vma of a mapped anonymous page alive from
	 * try_to_migrate() to remove_migration_ptes(): munmap may meanwhile
	 * drop the last VMA that linked it.
	 */
	if (iom_PageAnon(page))
		anon_vma = page_get_anon_vma(page);

	/* A fresh page nobody else knows: the trylock cannot fail. */
	if (!iom_trylock_page(newpage)) {
		rc = -EAGAIN;
		goto out_unlock;
	}

	if (!page_mapping_raw(page)) {
		/*
		 * Truncated from its page cache while isolated: nothing to
		 * migrate. The next pass finds only the isolation reference
		 * and frees it ("freed from under us").
		 */
		goto out_unlock_both;
	}
	if (iom_page_mapped(page)) {
		if (iom_PageAnon(page) && !anon_vma) {
			/* mapped but its anon_vma is going away: retry */
			goto out_unlock_both;
		}
		iom_try_to_migrate(m, page);
		page_was_mapped = true;
	}

	if (!iom_page_mapped(page))
		rc = move_to_new_page(m, newpage, page, mode);

	if (page_was_mapped)
		iom_remove_migration_ptes(m, page, rc == 0 ? newpage : page);

out_unlock_both:
	iom_unlock_page(newpage);
out_unlock:
	if (anon_vma)
		put_anon_vma(anon_vma);
	iom_unlock_page(page);

	if (rc == 0) {
		/*
		 * putback_lru_page(): the new page joins the LRU its flags
		 * (swapbacked, active) name, and the allocation's reference
		 * goes: the page cache and the PTEs hold the others.
		 */
		iom_putback_lru_page(m, newpage);
	}
	return rc;
}

/*
 * unmap_and_move(): migrate one isolated page. On success the old page is
 * off @from and freed; on -EAGAIN it stays on @from for another pass; on
 * another failure it moves to @ret.
 */
static int unmap_and_move(struct iom_machine *m, iom_new_page_t get_new_page,
			  iom_free_page_t put_new_page, unsigned long private,
			  struct iom_page *page, bool force,
			  enum iom_migrate_mode mode, int reason,
			  struct iom_list_head *ret)
{
	struct iom_page *newpage = NULL;
	int rc = 0;

	if (iom_page_ref_count(page) == 1) {
		/* Page was freed from under us (unmapped, truncated). */
		iom_ClearPageActive(page);
		goto out;
	}

	newpage = get_new_page(page, private);
	if (!newpage)
		return -ENOMEM;
	if (!page_in_mem_map(m, newpage) || iom_PageLocked(newpage) ||
	    page_mapping_raw(newpage)) {
		iom_warn(m, "migrate_pages: get_new_page gave an unusable page");
		if (put_new_page)
			put_new_page(newpage, private);
		else
			iom_put_page(m, newpage);
		return -EINVAL;
	}

	rc = __unmap_and_move(m, page, newpage, force, mode);

out:
	if (rc != -EAGAIN)
		list_del(&page->lru);

	if (rc == 0) {
		/*
		 * The old page: only the isolation reference is left (plus a
		 * sleeper's on a migration entry, which frees it later).
		 * MR_MEMORY_FAILURE keeps it, as the kernel does.
		 */
		if (reason != IOM_MR_MEMORY_FAILURE)
			iom_put_page(m, page);
	} else {
		if (rc != -EAGAIN)
			list_add_tail(&page->lru, ret);
		if (put_new_page)
			put_new_page(newpage, private);
		else
			iom_put_page(m, newpage);
	}
	return rc;
}

int iom_migrate_pages(struct iom_machine *m, struct iom_list_head *from,
		      iom_new_page_t get_new_page, iom_free_page_t put_new_page,
		      unsigned long private, enum iom_migrate_mode mode,
		      int reason, unsigned int *nr_succeededp)
{
	struct iom_list_head ret_pages;
	unsigned int nr_succeeded = 0;
	int nr_failed = 0, retry = 1, pass, rc;

	if (nr_succeededp)
		*nr_succeededp = 0;
	if (!m || !from || !from->next || !get_new_page ||
	    (int)mode < IOM_MIGRATE_ASYNC || mode > IOM_MIGRATE_SYNC ||
	    reason < 0 || reason >= IOM_MR_TYPES)
		return -EINVAL;
	INIT_LIST_HEAD(&ret_pages);

	for (pass = 0; pass < 10 && retry; pass++) {
		struct iom_list_head *pos, *n;

		retry = 0;
		for (pos = from->next, n = pos->next; pos != from;
		     pos = n, n = pos->next) {
			struct iom_page *page = list_entry(pos, struct iom_page, lru);

			rc = unmap_and_move(m, get_new_page, put_new_page, private,
					    page, pass > 2, mode, reason, &ret_pages);
			switch (rc) {
			case -ENOMEM:
				/* the remaining pages stay on @from */
				nr_failed++;
				goto out;
			case -EAGAIN:
				retry++;
				break;
			case 0:
				nr_succeeded++;
				break;
			default:
				/* -EBUSY, -EINVAL...: the page is on ret_pages */
				nr_failed++;
				break;
			}
		}
	}
	nr_failed += retry;
	rc = nr_failed;
out:
	if (nr_succeeded)
		count_vm_events(m, IOM_PGMIGRATE_SUCCESS, nr_succeeded);
	if (nr_failed)
		count_vm_events(m, IOM_PGMIGRATE_FAIL, (unsigned long)nr_failed);
	list_splice_init(&ret_pages, from);
	if (nr_succeededp)
		*nr_succeededp = nr_succeeded;
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
		if (iom_PageIsolated(page)) {
			/* a non-LRU movable page: its owner takes it back */
			mapping = page_file_mapping(page);
			iom_lock_page(page);
			if (mapping && mapping->a_ops && mapping->a_ops->putback_page)
				mapping->a_ops->putback_page(page);
			iom_ClearPageIsolated(page);
			iom_unlock_page(page);
			iom_put_page(m, page);
		} else {
			iom_putback_lru_page(m, page);
		}
	}
}
