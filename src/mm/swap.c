/* SPDX-License-Identifier: MIT */
/*
 * The LRU lists (mm/swap.c): pages enter a node's inactive list, are
 * promoted to the active list on a second access, and are taken off for
 * migration or reclaim. Simplified: no per-cpu pagevecs (pages go straight
 * to the list under the node's lru_lock), no unevictable list, no swap:
 * anonymous pages age but are never reclaimed.
 */
#include "internal.h"

static void lru_lock(struct lruvec *lruvec)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&lruvec->lru_lock));
}

static void lru_unlock(struct lruvec *lruvec)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&lruvec->lru_lock));
}

/* page_lru(): which list a page belongs on. */
static enum iom_lru_list page_lru(const struct iom_page *page)
{
	enum iom_lru_list lru = iom_PageSwapBacked(page) ? IOM_LRU_INACTIVE_ANON
							 : IOM_LRU_INACTIVE_FILE;

	if (iom_PageActive(page))
		lru = (enum iom_lru_list)(lru + 1);
	return lru;
}

static void add_page_to_lru_list(struct lruvec *lruvec, struct iom_page *page,
				 enum iom_lru_list lru)
{
	list_add(&page->lru, &lruvec->lists[lru]);
	atomic_fetch_add_explicit(&lruvec->nr_pages[lru], 1, memory_order_relaxed);
}

static void del_page_from_lru_list(struct lruvec *lruvec, struct iom_page *page,
				   enum iom_lru_list lru)
{
	list_del(&page->lru);
	atomic_fetch_sub_explicit(&lruvec->nr_pages[lru], 1, memory_order_relaxed);
}

static struct lruvec *page_lruvec(struct iom_machine *m, struct iom_page *page)
{
	return &page_pgdat(m, page)->lruvec;
}

static bool lru_page_ok(struct iom_machine *m, struct iom_page *page)
{
	return m && page && page_in_mem_map(m, page) && !iom_PageTail(page);
}

void iom_lru_cache_add(struct iom_machine *m, struct iom_page *page)
{
	struct lruvec *lruvec;

	if (!lru_page_ok(m, page))
		return;
	lruvec = page_lruvec(m, page);
	lru_lock(lruvec);
	if (iom_PageLRU(page)) {
		lru_unlock(lruvec);
		iom_warn(m, "lru_cache_add: pfn %#lx is already on an LRU list",
			 page_to_pfn(m, page));
		return;
	}
	iom_SetPageLRU(page);
	add_page_to_lru_list(lruvec, page, page_lru(page));
	lru_unlock(lruvec);
}

/*
 * isolate_lru_page(): the caller holds a reference, so the page cannot be
 * freed meanwhile; the isolated page holds one more, dropped by putback.
 */
int iom_isolate_lru_page(struct iom_machine *m, struct iom_page *page)
{
	struct lruvec *lruvec;

	if (!lru_page_ok(m, page))
		return -EINVAL;
	lruvec = page_lruvec(m, page);
	lru_lock(lruvec);
	if (!iom_PageLRU(page)) {
		lru_unlock(lruvec);
		return -EBUSY;
	}
	iom_ClearPageLRU(page);
	del_page_from_lru_list(lruvec, page, page_lru(page));
	atomic_fetch_add_explicit(&page->_refcount, 1, memory_order_relaxed);
	lru_unlock(lruvec);
	return 0;
}

void iom_putback_lru_page(struct iom_machine *m, struct iom_page *page)
{
	if (!lru_page_ok(m, page))
		return;
	iom_lru_cache_add(m, page);
	iom_put_page(m, page);
}

/*
 * mark_page_accessed(): inactive,unreferenced -> inactive,referenced ->
 * active,unreferenced.
 */
void iom_mark_page_accessed(struct iom_machine *m, struct iom_page *page)
{
	struct lruvec *lruvec;

	if (!lru_page_ok(m, page))
		return;
	if (!iom_PageReferenced(page)) {
		iom_SetPageReferenced(page);
		return;
	}
	if (iom_PageActive(page))
		return;
	lruvec = page_lruvec(m, page);
	lru_lock(lruvec);
	if (iom_PageLRU(page) && !iom_PageActive(page)) {
		del_page_from_lru_list(lruvec, page, page_lru(page));
		iom_SetPageActive(page);
		add_page_to_lru_list(lruvec, page, page_lru(page));
		iom_ClearPageReferenced(page);
		count_vm_event(m, IOM_PGACTIVATE);
	}
	lru_unlock(lruvec);
}

unsigned long iom_lru_size(struct iom_machine *m, int nid, enum iom_lru_list lru)
{
	if (!m || nid < 0 || (unsigned int)nid >= m->nr_nodes ||
	    lru < 0 || lru >= IOM_NR_LRU_LISTS)
		return 0;
	return atomic_load_explicit(&m->node_data[nid]->lruvec.nr_pages[lru],
				    memory_order_relaxed);
}

void __page_cache_release(struct iom_machine *m, struct iom_page *page)
{
	struct lruvec *lruvec = page_lruvec(m, page);

	lru_lock(lruvec);
	if (iom_PageLRU(page)) {
		del_page_from_lru_list(lruvec, page, page_lru(page));
		iom_ClearPageLRU(page);
		iom_ClearPageActive(page);
	}
	lru_unlock(lruvec);
}

/* ---- for vmscan.c ------------------------------------------------------- */

/*
 * isolate_lru_pages(): take up to @nr pages from the tail (oldest end) of
 * @lru into @dst, each with a reference. Pages whose count is already zero
 * are being freed and are skipped. Returns pages scanned.
 */
unsigned long isolate_lru_pages(struct iom_machine *m, struct lruvec *lruvec,
				enum iom_lru_list lru, unsigned long nr,
				struct list_head *dst, unsigned long *nr_taken)
{
	struct list_head *src = &lruvec->lists[lru];
	unsigned long scanned = 0;

	*nr_taken = 0;
	lru_lock(lruvec);
	while (scanned < nr && !list_empty(src)) {
		struct iom_page *page = list_last_entry(src, struct iom_page, lru);

		scanned++;
		if (!iom_get_page_unless_zero(page)) {
			list_move(&page->lru, src);	/* rotate: being freed */
			continue;
		}
		iom_ClearPageLRU(page);
		del_page_from_lru_list(lruvec, page, lru);
		list_add(&page->lru, dst);
		(*nr_taken)++;
	}
	lru_unlock(lruvec);
	return scanned;
}

/* Move up to @nr pages from the active tail to the inactive head. */
void shrink_active_list(struct iom_machine *m, struct lruvec *lruvec,
			enum iom_lru_list active, unsigned long nr)
{
	unsigned long moved = 0;

	lru_lock(lruvec);
	while (moved < nr && !list_empty(&lruvec->lists[active])) {
		struct iom_page *page = list_last_entry(&lruvec->lists[active],
							struct iom_page, lru);

		del_page_from_lru_list(lruvec, page, active);
		iom_ClearPageActive(page);
		iom_ClearPageReferenced(page);
		add_page_to_lru_list(lruvec, page, page_lru(page));
		moved++;
	}
	lru_unlock(lruvec);
	if (moved)
		count_vm_events(m, IOM_PGDEACTIVATE, moved);
}
