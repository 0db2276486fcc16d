/* SPDX-License-Identifier: MIT */
/*
 * Page reclaim (mm/vmscan.c), the part a page-cache workload needs: clean,
 * unmapped file pages are taken from the tail of the inactive file list and
 * dropped from their mapping (__remove_mapping() freezes the refcount so no
 * speculative lookup can race in), with aging of the active list when it
 * outgrows the inactive one.
 * Simplified: kswapd has no thread of its own: wakeup_kswapd() balances
 * the node inline, in the allocating thread, when a zone falls below its
 * low watermark (towards high, a few clusters a call); when that brings
 * the zone back to its low watermark for a high-order request, kswapd
 * "goes to sleep" and hands over to kcompactd (wakeup_kcompactd(), as
 * kswapd_try_to_sleep() does); no writeback from
 * reclaim, no anonymous reclaim (there is no swap), and mapped file pages
 * are kept rather than unmapped.
 */
#include <iommig/memory.h>

#include "internal.h"

#define SWAP_CLUSTER_MAX 32UL

static void putback_list(struct iom_machine *m, struct list_head *list)
{
	while (!list_empty(list)) {
		struct iom_page *page = list_first_entry(list, struct iom_page, lru);

		list_del(&page->lru);
		iom_putback_lru_page(m, page);
	}
}

/*
 * shrink_page_list(): try to free every page of @list (isolated, each with
 * our reference). What cannot be freed goes back on @ret.
 */
static unsigned long shrink_page_list(struct iom_machine *m,
				      struct list_head *list,
				      struct list_head *ret)
{
	unsigned long reclaimed = 0;

	while (!list_empty(list)) {
		struct iom_page *page = list_first_entry(list, struct iom_page, lru);
		struct iom_address_space *mapping;

		list_del(&page->lru);
		if (!iom_trylock_page(page))
			goto keep;
		mapping = iom_page_mapping(page);
		if (!mapping || iom_PageSwapBacked(page))
			goto keep_locked;	/* anonymous or shmem: no swap */
		if (iom_PageDirty(page) || iom_PageWriteback(page) ||
		    iom_page_mapped(page))
			goto keep_locked;
		/*
		 * page_check_references(): PG_referenced alone does not save an
		 * unmapped clean file page (only referenced PTEs would, and
		 * promotion to the active list is the protection).
		 */
		iom_ClearPageReferenced(page);
		if (iom_PagePrivate(page) &&
		    (!mapping->a_ops || !mapping->a_ops->releasepage ||
		     !mapping->a_ops->releasepage(page, IOM_GFP_KERNEL)))
			goto keep_locked;	/* the owner keeps it (IOMAP does) */
		if (!__remove_mapping(mapping, page))
			goto keep_locked;
		iom_unlock_page(page);
		iom_put_page(m, page);		/* our reference: the last one */
		reclaimed++;
		continue;
keep_locked:
		iom_unlock_page(page);
keep:
		list_add(&page->lru, ret);
	}
	return reclaimed;
}

static unsigned long shrink_node(struct iom_machine *m, struct pglist_data *pgdat,
				 unsigned long nr_to_reclaim, bool kswapd)
{
	struct lruvec *lruvec = &pgdat->lruvec;
	unsigned long reclaimed = 0, scanned_total = 0;
	int passes = 0;

	/* Each pass looks at one cluster; give up after scanning the list twice. */
	while (reclaimed < nr_to_reclaim && passes++ < 64) {
		unsigned long inactive = atomic_load(&lruvec->nr_pages[IOM_LRU_INACTIVE_FILE]);
		unsigned long active = atomic_load(&lruvec->nr_pages[IOM_LRU_ACTIVE_FILE]);
		struct list_head isolated, keep;
		unsigned long taken, scanned;

		if (active > inactive)		/* inactive_is_low() */
			shrink_active_list(m, lruvec, IOM_LRU_ACTIVE_FILE, SWAP_CLUSTER_MAX);
		if (scanned_total > 2 * (inactive + active) + SWAP_CLUSTER_MAX)
			break;
		INIT_LIST_HEAD(&isolated);
		INIT_LIST_HEAD(&keep);
		scanned = isolate_lru_pages(m, lruvec, IOM_LRU_INACTIVE_FILE,
					    SWAP_CLUSTER_MAX, &isolated, &taken);
		if (!scanned)
			break;
		scanned_total += scanned;
		count_vm_events(m, kswapd ? IOM_PGSCAN_KSWAPD : IOM_PGSCAN_DIRECT, scanned);
		reclaimed += shrink_page_list(m, &isolated, &keep);
		putback_list(m, &keep);
	}
	if (reclaimed)
		count_vm_events(m, kswapd ? IOM_PGSTEAL_KSWAPD : IOM_PGSTEAL_DIRECT,
				reclaimed);
	return reclaimed;
}

unsigned long iom_shrink_page_cache(struct iom_machine *m, int nid,
				    unsigned long nr_to_reclaim)
{
	unsigned long reclaimed = 0;
	unsigned int i;

	if (!m || nid < -1 || nid >= (int)m->nr_nodes)
		return 0;
	if (nid >= 0)
		return shrink_node(m, m->node_data[nid], nr_to_reclaim, false);
	for (i = 0; i < m->nr_nodes && reclaimed < nr_to_reclaim; i++)
		reclaimed += shrink_node(m, m->node_data[i], nr_to_reclaim - reclaimed, false);
	return reclaimed;
}

/*
 * try_to_free_pages(): direct reclaim for an allocation that failed the
 * minimum watermark: a cluster (or the request's size) from the preferred
 * node first, then the others.
 */
unsigned long try_to_free_pages(struct iom_machine *m, int nid,
				unsigned int order, iom_gfp_t gfp)
{
	unsigned long want = SWAP_CLUSTER_MAX > (1UL << order) ? SWAP_CLUSTER_MAX
							      : 1UL << order;
	unsigned long reclaimed;
	unsigned int i;

	if (!(gfp & IOM___GFP_DIRECT_RECLAIM))
		return 0;
	count_vm_event(m, iom_gfp_zone(gfp) == IOM_ZONE_MOVABLE ? IOM_ALLOCSTALL_MOVABLE
								 : IOM_ALLOCSTALL_NORMAL);
	reclaimed = shrink_node(m, m->node_data[nid], want, false);
	for (i = 1; i < m->nr_nodes && reclaimed < want && !(gfp & IOM___GFP_THISNODE); i++)
		reclaimed += shrink_node(m, m->node_data[((unsigned int)nid + i) % m->nr_nodes],
					 want - reclaimed, false);
	return reclaimed;
}

/*
 * wakeup_kswapd(): @zone failed its low watermark. kswapd's balance_pgdat()
 * reclaims until the zone is back above its high watermark; here that
 * work is done inline, at most KSWAPD_BATCH pages a call so that no single
 * allocation pays for all of it.
 */
#define KSWAPD_BATCH (4 * SWAP_CLUSTER_MAX)

void wakeup_kswapd(struct iom_machine *m, struct zone *zone, unsigned int order)
{
	struct pglist_data *pgdat = zone->zone_pgdat;
	unsigned long free = zone_page_state(zone, NR_FREE_PAGES);
	unsigned long low = zone->_watermark[WMARK_LOW];
	unsigned long high = zone->_watermark[WMARK_HIGH] + (1UL << order);
	unsigned long want;

	/*
	 * A balanced node: the kernel wakes kcompactd here only for callers
	 * that cannot compact directly, and this runs only for those that can.
	 */
	if (!populated_zone(zone) || free >= low || !high)
		return;
	want = high - free;
	if (want > KSWAPD_BATCH)
		want = KSWAPD_BATCH;
	/* kswapd_is_running(): proactive compaction backs off meanwhile */
	atomic_fetch_add_explicit(&pgdat->kswapd_active, 1, memory_order_relaxed);
	count_vm_event(m, IOM_PAGEOUTRUN);
	shrink_node(m, pgdat, want, true);
	atomic_fetch_sub_explicit(&pgdat->kswapd_active, 1, memory_order_relaxed);
	/*
	 * While a zone is under reclaim (ZONE_RECLAIM_ACTIVE) the kernel caps
	 * the pcp lists at 4 * batch, so what kswapd frees reaches the free
	 * lists; here the reclaimed pages sit in this thread's cache: drain
	 * it before looking at the watermark.
	 */
	iom_drain_local_pages(m);
	/*
	 * kswapd_try_to_sleep(): reclaim is done for now; compact for the
	 * order that woke kswapd (the zone's type stands for the request's
	 * highest_zoneidx).
	 */
	if (order && zone_page_state(zone, NR_FREE_PAGES) >= low)
		wakeup_kcompactd(pgdat, (int)order, zone->zone_type);
}
