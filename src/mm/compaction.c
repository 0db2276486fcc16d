/* SPDX-License-Identifier: MIT */
/*
 * Memory compaction (mm/compaction.c, Linux ~6.1): compact_zone() runs a
 * migration scanner up from the start of a zone, isolating movable LRU
 * pages (isolate_migratepages_range()), and a free scanner down from its
 * end, isolating free buddy blocks as order-0 target pages
 * (isolate_freepages()); iom_migrate_pages() moves the pages with
 * compaction_alloc()/compaction_free() as its get_new_page/put_new_page
 * (reason MR_COMPACTION). The run ends when a free block of the wanted
 * order exists (COMPACT_SUCCESS) or the scanners meet (COMPACT_COMPLETE).
 * compaction_suitable() uses the fragmentation index and
 * extfrag_threshold (500).
 *
 * kcompactd: a thread per node when the machine config asks for it
 * (kcompactd_run() at creation, kcompactd_stop() at destruction), woken
 * by wakeup_kcompactd() when the inline kswapd (vmscan.c) has balanced a
 * node for a high-order request; kcompactd_do_work() compacts each zone
 * compaction_suitable() allows, in MIGRATE_SYNC_LIGHT, counting the
 * compact_daemon_* events. Every HPAGE_FRAG_CHECK_INTERVAL_MSEC (500 ms)
 * with vm.compaction_proactiveness > 0 it checks the node's fragmentation
 * score (extfrag_for_order() at COMPACTION_HPAGE_ORDER, weighted by zone
 * size) and compacts proactively from above the high watermark to the
 * low one; a run that does not lower the score backs off 64 times the
 * interval (Linux 6.1's timeout << COMPACT_MAX_DEFER_SHIFT, which
 * replaced the proactive_defer counter). iom_kcompactd_run() is one
 * iteration of the thread's loop in the caller's thread, where one call
 * stands for one interval (so the backoff there is proactive_defer: 63
 * calls skipped).
 *
 * Simplified:
 *   - direct compaction is async only (page_alloc.c);
 *   - vm.compaction_proactiveness is per machine, not per process;
 *   - kcompactd is not bound to its node's cpus, not freezable, and
 *     psi is not modelled; kswapd_is_running() means an inline kswapd
 *     run is in progress on the node;
 *   - no deferral (defer_compaction, compact_considered), no pageblock
 *     skip hints (PB_migrate_skip is neither set nor read); the cached
 *     scanner positions are kept only at the end of a run (the kernel
 *     updates them pageblock by pageblock) and used by direct compaction
 *     and kcompactd; iom_compact_zone(), compact_node and proactive
 *     compaction scan the whole zone;
 *   - no fast_isolate_freepages()/fast_find_migrateblock(), no
 *     capture_control (the freed block is not captured for the caller);
 *   - no lock contention handling (COMPACT_CONTENDED only means the free
 *     scanner found no target page before the scanners met);
 *   - compact_finished(): any free block of the order on a non-isolated
 *     list counts as success (the kernel asks for the requested
 *     migratetype's list, or one it could steal from);
 *   - what the migration scanner takes: LRU pages, non-LRU movable pages
 *     through iom_isolate_movable_page(), and compound LRU pages (IOMAP's
 *     higher-order DMA pages), which move whole to a target of their
 *     order (compaction_alloc_compound()); a page with more references than
 *     mappings + page cache + the scanner's own is taken as pinned and
 *     skipped (the kernel skips only page_maybe_dma_pinned() pages early
 *     and lets migration fail on the others);
 *   - in ASYNC mode the migration source must be a MOVABLE or CMA
 *     pageblock (suitable_migration_source()); in other modes any block;
 *     the free target must be a MOVABLE or CMA pageblock, or a free block
 *     of pageblock order or more (suitable_migration_target()).
 *
 * Conventions: @m machine; @cc the compact_control of a run.
 * Lock order: zone->lock is taken only around the free-list work of
 * the free scanner; LRU isolation takes the lru_lock inside
 * iom_isolate_lru_page(); migration takes page locks with neither held.
 */
#include <errno.h>
#include <time.h>

#include <iommig/compaction.h>
#include <iommig/migrate.h>

#include "../core/list.h"
#include "../core/trace.h"
#include "internal.h"
#include "mm_types.h"

#define PAGE_ALLOC_COSTLY_ORDER	3
/* Fragmentation score check interval for proactive compaction. */
#define HPAGE_FRAG_CHECK_INTERVAL_MSEC	500
/* Do not skip compaction more than 64 times */
#define COMPACT_MAX_DEFER_SHIFT	6
/* HPAGE_PMD_ORDER on x86-64: the order the fragmentation score is about */
#define HPAGE_PMD_ORDER		9

typedef enum {
	ISOLATE_ABORT,
	ISOLATE_NONE,
	ISOLATE_SUCCESS,
} isolate_migrate_t;

static void cc_zone_lock(struct zone *zone)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&zone->lock));
}

static void cc_zone_unlock(struct zone *zone)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&zone->lock));
}

static struct zone *machine_zone(struct iom_machine *m, int nid, int zt)
{
	if (!m || nid < 0 || (unsigned int)nid >= m->nr_nodes ||
	    nid >= IOM_MAX_NUMNODES || !m->node_data[nid])
		return NULL;
	if (zt < 0 || zt >= IOM_MAX_NR_ZONES)
		return NULL;
	return &m->node_data[nid]->node_zones[zt];
}

static inline bool compact_scanners_met(const struct compact_control *cc)
{
	return pageblock_start_pfn(cc->m, cc->free_pfn) <=
	       pageblock_start_pfn(cc->m, cc->migrate_pfn);
}

static inline unsigned long pageblock_end_pfn(const struct iom_machine *m,
					      unsigned long pfn)
{
	return pageblock_start_pfn(m, pfn) + m->pageblock_nr_pages;
}

/* A racy read of a buddy page's order, for skipping only. */
static inline unsigned int buddy_order_unsafe(const struct iom_page *page)
{
	return (unsigned int)__atomic_load_n(&page->private, __ATOMIC_RELAXED);
}

/* ---- the free scanner ---------------------------------------------------- */

/* suitable_migration_target(). */
static bool suitable_migration_target(struct compact_control *cc,
				      unsigned long pfn)
{
	struct iom_machine *m = cc->m;
	struct iom_page *page = pfn_to_page(m, pfn);

	if (iom_PageBuddy(page) &&
	    buddy_order_unsafe(page) >= m->pageblock_order &&
	    buddy_order_unsafe(page) <= m->max_order)
		return true;
	return is_migrate_movable(get_pfnblock_migratetype(m, pfn));
}

/*
 * isolate_freepages_block(): isolate every free buddy block of
 * [@start_pfn, @end_pfn) as order-0 pages on cc->freepages, stopping once
 * there are as many as pages to migrate. Return: pages isolated.
 */
static unsigned long isolate_freepages_block(struct compact_control *cc,
					     unsigned long start_pfn,
					     unsigned long end_pfn)
{
	struct iom_machine *m = cc->m;
	struct zone *zone = cc->zone;
	unsigned long pfn, nr_scanned = 0, total_isolated = 0;

	for (pfn = start_pfn; pfn < end_pfn; pfn++) {
		struct iom_page *page = pfn_to_page(m, pfn);
		unsigned int order;
		unsigned long i;
		int isolated;

		nr_scanned++;
		if (!iom_PageBuddy(page))
			continue;
		cc_zone_lock(zone);
		/* Recheck this is a buddy page under lock */
		if (!iom_PageBuddy(page)) {
			cc_zone_unlock(zone);
			continue;
		}
		order = buddy_order(page);
		isolated = __isolate_free_page(zone, page, order);
		cc_zone_unlock(zone);
		if (!isolated)
			break;	/* below the min watermark: stop */
		for (i = 0; i < (unsigned long)isolated; i++)
			list_add_tail(&page[i].lru, &cc->freepages);
		cc->nr_freepages += (unsigned int)isolated;
		total_isolated += (unsigned long)isolated;
		pfn += (unsigned long)isolated - 1;
		if (cc->nr_freepages >= cc->nr_migratepages)
			break;
	}
	cc->total_free_scanned += nr_scanned;
	count_vm_events(m, IOM_COMPACTFREE_SCANNED, nr_scanned);
	if (total_isolated)
		count_vm_events(m, IOM_COMPACTISOLATED, total_isolated);
	return total_isolated;
}

/*
 * isolate_freepages(): walk pageblocks down from cc->free_pfn to the
 * block after the migration scanner's, isolating free pages until there
 * are enough for cc->migratepages. cc->free_pfn then names the block to
 * resume at: the one being isolated from if it was left early, else the
 * last one scanned.
 */
static void isolate_freepages(struct compact_control *cc)
{
	struct iom_machine *m = cc->m;
	unsigned long nr_pb = m->pageblock_nr_pages;
	unsigned long zone_start = cc->zone->zone_start_pfn;
	unsigned long zone_end = zone_end_pfn(cc->zone);
	unsigned long block_start_pfn = pageblock_start_pfn(m, cc->free_pfn);
	unsigned long low_pfn = pageblock_end_pfn(m, cc->migrate_pfn);

	for (; block_start_pfn >= low_pfn && block_start_pfn >= zone_start;
	     block_start_pfn -= nr_pb) {
		unsigned long start = block_start_pfn;
		unsigned long end = block_start_pfn + nr_pb;

		if (start < zone_start)
			start = zone_start;
		if (end > zone_end)
			end = zone_end;
		if (suitable_migration_target(cc, start))
			isolate_freepages_block(cc, start, end);
		if (cc->nr_freepages >= cc->nr_migratepages) {
			/* resume in this block: it may hold more */
			break;
		}
		if (block_start_pfn < nr_pb)
			break;
	}
	/*
	 * The block the scan stopped in; if it went past the migration
	 * scanner, the scanners met.
	 */
	cc->free_pfn = block_start_pfn;
	if (block_start_pfn < low_pfn && cc->nr_freepages < cc->nr_migratepages)
		cc->free_pfn = pageblock_start_pfn(m, cc->migrate_pfn);
}

/*
 * 2^@order isolated free pages in a row on cc->freepages, aligned, made
 * one compound page; NULL if there is no such run. The free scanner puts
 * each buddy block's pages on the list in pfn order.
 */
static struct iom_page *take_free_run(struct compact_control *cc, unsigned int order)
{
	struct iom_machine *m = cc->m;
	unsigned long n = 1UL << order;
	struct list_head *pos;

	for (pos = cc->freepages.next; pos != &cc->freepages; pos = pos->next) {
		struct iom_page *head = list_entry(pos, struct iom_page, lru);
		struct list_head *q = pos;
		unsigned long i;

		if (page_to_pfn(m, head) & (n - 1))
			continue;
		for (i = 1; i < n; i++) {
			q = q->next;
			if (q == &cc->freepages || list_entry(q, struct iom_page, lru) != head + i)
				break;
		}
		if (i < n)
			continue;
		for (i = 0; i < n; i++)
			list_del(&head[i].lru);
		cc->nr_freepages -= (unsigned int)n;
		isolated_pages_make_compound(head, order);
		return head;
	}
	return NULL;
}

/*
 * A target for a compound page (an IOMAP higher-order DMA page): an
 * aligned run of the free scanner's pages, else a block straight from the
 * buddy allocator on the zone's node (the kernel before 6.10 skipped
 * large folios in compaction; since, it keeps free pages by order).
 */
static struct iom_page *compaction_alloc_compound(struct compact_control *cc,
						  unsigned int order)
{
	struct iom_page *page = take_free_run(cc, order);

	if (page)
		return page;
	isolate_freepages(cc);
	page = take_free_run(cc, order);
	if (page)
		return page;
	return iom_alloc_pages_node(cc->m, cc->zone->zone_pgdat->node_id,
				    IOM_GFP_HIGHUSER_MOVABLE | IOM___GFP_COMP |
				    IOM___GFP_THISNODE | IOM___GFP_NORETRY | IOM___GFP_NOWARN,
				    order);
}

/* compaction_alloc(): get_new_page for iom_migrate_pages(). */
static struct iom_page *compaction_alloc(struct iom_page *page,
					 unsigned long data)
{
	struct compact_control *cc = (struct compact_control *)data;
	struct iom_page *freepage;

	if (iom_PageHead(page))
		return compaction_alloc_compound(cc, iom_compound_order(page));
	if (list_empty(&cc->freepages)) {
		isolate_freepages(cc);
		if (list_empty(&cc->freepages))
			return NULL;
	}
	freepage = list_first_entry(&cc->freepages, struct iom_page, lru);
	list_del(&freepage->lru);
	cc->nr_freepages--;
	return freepage;
}

/* compaction_free(): put_new_page: an unused target goes back on the list. */
static void compaction_free(struct iom_page *page, unsigned long data)
{
	struct compact_control *cc = (struct compact_control *)data;

	if (iom_PageHead(page)) {
		unsigned long n = 1UL << iom_compound_order(page);

		isolated_compound_split(page);
		for (unsigned long i = n; i-- > 0;)
			list_add(&page[i].lru, &cc->freepages);
		cc->nr_freepages += (unsigned int)n;
		return;
	}
	list_add(&page->lru, &cc->freepages);
	cc->nr_freepages++;
}

/* release_freepages(): give unused targets back to the allocator. */
static void release_freepages(struct compact_control *cc)
{
	while (!list_empty(&cc->freepages)) {
		struct iom_page *page = list_first_entry(&cc->freepages,
							 struct iom_page, lru);

		list_del(&page->lru);
		iom_put_page(cc->m, page);
	}
	cc->nr_freepages = 0;
}

/* ---- the migration scanner ---------------------------------------------- */

/*
 * Is @page, on which the scanner holds one reference, referenced by
 * someone beyond its mappings, its page cache and the scanner?
 */
static bool page_pinned_ish(const struct iom_page *page)
{
	uintptr_t mapping = (uintptr_t)page_mapping_raw(page);
	int expected = iom_page_mapcount(page) + 1;

	if (mapping && !(mapping & PAGE_MAPPING_FLAGS))
		expected++;		/* the page cache's reference */
	if (iom_PagePrivate(page))
		expected++;
	return iom_page_ref_count(page) > expected;
}

/* isolate_migratepages_range(): see mm/internal.h. */
unsigned long isolate_migratepages_range(struct compact_control *cc,
						unsigned long low_pfn,
						unsigned long end_pfn)
{
	struct iom_machine *m = cc->m;
	unsigned long nr_scanned = 0, nr_isolated = 0;

	for (; low_pfn < end_pfn; low_pfn++) {
		struct iom_page *page = pfn_to_page(m, low_pfn);

		nr_scanned++;
		if (iom_PageBuddy(page)) {
			unsigned int order = buddy_order_unsafe(page);

			/* skip the whole free block (racy: a hint only) */
			if (order > 0 && order <= m->max_order &&
			    low_pfn + (1UL << order) - 1 < end_pfn)
				low_pfn += (1UL << order) - 1;
			continue;
		}
		if (!iom_PageLRU(page)) {
			/*
			 * A non-LRU movable page (a driver's): its driver
			 * lets it go through ->isolate_page.
			 */
			if (iom_PageMovable(page) && !iom_PageIsolated(page) &&
			    iom_isolate_movable_page(m, page, (int)cc->mode) == 0)
				goto isolate_success;
			continue;
		}
		if (iom_PageTail(page))
			continue;
		if (iom_PageHead(page)) {
			/*
			 * A compound page on the LRU (IOMAP's higher-order
			 * DMA pages) moves whole, unless it is as large as the
			 * block compaction is after; its tails are skipped.
			 */
			unsigned int order = iom_compound_order(page);

			if (order > m->max_order ||
			    (cc->order > 0 && order >= (unsigned int)cc->order)) {
				if (order <= m->max_order && low_pfn + (1UL << order) - 1 < end_pfn)
					low_pfn += (1UL << order) - 1;
				continue;
			}
		}
		if (!iom_get_page_unless_zero(page))
			continue;
		/* Recheck under the reference: still an LRU page? */
		if (!iom_PageLRU(page) || page_pinned_ish(page)) {
			iom_put_page(m, page);
			continue;
		}
		if (iom_isolate_lru_page(m, page)) {
			iom_put_page(m, page);
			continue;
		}
		/* the isolation holds its own reference */
		iom_put_page(m, page);
isolate_success:
		list_add_tail(&page->lru, &cc->migratepages);
		cc->nr_migratepages++;
		nr_isolated++;
		if (cc->nr_migratepages >= COMPACT_CLUSTER_MAX) {
			low_pfn++;
			break;
		}
	}
	cc->total_migrate_scanned += nr_scanned;
	count_vm_events(m, IOM_COMPACTMIGRATE_SCANNED, nr_scanned);
	if (nr_isolated)
		count_vm_events(m, IOM_COMPACTISOLATED, nr_isolated);
	return low_pfn;
}

/* suitable_migration_source(). */
static bool suitable_migration_source(struct compact_control *cc,
				      unsigned long pfn)
{
	if (cc->mode != IOM_MIGRATE_ASYNC)
		return true;
	return is_migrate_movable(get_pfnblock_migratetype(cc->m, pfn));
}

/*
 * isolate_migratepages(): scan pageblocks up from cc->migrate_pfn until
 * some pages are isolated or the free scanner is reached.
 */
static isolate_migrate_t isolate_migratepages(struct compact_control *cc)
{
	struct iom_machine *m = cc->m;
	unsigned long zone_end = zone_end_pfn(cc->zone);
	unsigned long low_pfn = cc->migrate_pfn;

	while (low_pfn < zone_end &&
	       pageblock_start_pfn(m, low_pfn) < pageblock_start_pfn(m, cc->free_pfn)) {
		unsigned long block_end = pageblock_end_pfn(m, low_pfn);

		if (block_end > zone_end)
			block_end = zone_end;
		if (!suitable_migration_source(cc, low_pfn)) {
			low_pfn = block_end;
			continue;
		}
		low_pfn = isolate_migratepages_range(cc, low_pfn, block_end);
		if (cc->nr_migratepages)
			break;
	}
	/* the scanners meet when the free scanner's block is reached */
	if (low_pfn >= zone_end ||
	    pageblock_start_pfn(m, low_pfn) >= pageblock_start_pfn(m, cc->free_pfn))
		low_pfn = cc->free_pfn;
	cc->migrate_pfn = low_pfn;
	return cc->nr_migratepages ? ISOLATE_SUCCESS : ISOLATE_NONE;
}

/* ---- compact_zone ------------------------------------------------------- */

/* A free block of @order or more on a list the allocator can use? */
static bool zone_has_free_block(struct zone *zone, unsigned int order)
{
	unsigned int o;

	for (o = order; o <= zone->machine->max_order; o++) {
		struct free_area *area = &zone->free_area[o];
		unsigned long n = atomic_load_explicit(&area->nr_free,
						       memory_order_relaxed);
		unsigned long iso = atomic_load_explicit(
			&area->nr_free_mt[IOM_MIGRATE_ISOLATE],
			memory_order_relaxed);

		if (n > iso)
			return true;
	}
	return false;
}

/* fill_contig_page_info() from the zone's free counts (racy reads). */
static void zone_contig_page_info(struct zone *zone, unsigned int order,
				  struct iom_contig_page_info *info)
{
	unsigned long nr_free[NR_ORDERS_LIMIT];
	unsigned int o, max_order = zone->machine->max_order;

	for (o = 0; o <= max_order; o++)
		nr_free[o] = atomic_load_explicit(&zone->free_area[o].nr_free,
						  memory_order_relaxed);
	iom_fill_contig_page_info(nr_free, max_order, order, info);
}

/* ---- proactive compaction's fragmentation score ------------------------ */

/* COMPACTION_HPAGE_ORDER: HPAGE_PMD_ORDER, or max_order if that is less. */
static unsigned int compaction_hpage_order(const struct iom_machine *m)
{
	return m->max_order < HPAGE_PMD_ORDER ? m->max_order : HPAGE_PMD_ORDER;
}

/*
 * extfrag_for_order() (mm/vmstat.c): the percentage of free memory that
 * is not in blocks of @order or more; 0 when nothing is free.
 */
static unsigned int extfrag_for_order(struct zone *zone, unsigned int order)
{
	struct iom_contig_page_info info;

	zone_contig_page_info(zone, order, &info);
	if (!info.free_pages)
		return 0;
	return (unsigned int)((info.free_pages -
			       (info.free_blocks_suitable << order)) * 100 /
			      info.free_pages);
}

static unsigned int fragmentation_score_zone(struct zone *zone)
{
	return extfrag_for_order(zone, compaction_hpage_order(zone->machine));
}

/* Scaled by the zone's share of the node, so small zones weigh little. */
static unsigned int fragmentation_score_zone_weighted(struct zone *zone)
{
	unsigned long score;

	score = zone->spanned_pages * fragmentation_score_zone(zone);
	return (unsigned int)(score / (zone->zone_pgdat->node_spanned_pages + 1));
}

static unsigned int fragmentation_score_node(struct pglist_data *pgdat)
{
	unsigned int score = 0;
	int zoneid;

	for (zoneid = 0; zoneid < IOM_MAX_NR_ZONES; zoneid++) {
		struct zone *zone = &pgdat->node_zones[zoneid];

		if (populated_zone(zone))
			score += fragmentation_score_zone_weighted(zone);
	}
	return score;
}

static int proactiveness(const struct iom_machine *m)
{
	return atomic_load_explicit(&((struct iom_machine *)m)->compaction_proactiveness,
				    memory_order_relaxed);
}

/* The low watermark is capped at 5 so proactiveness 100 still stops. */
static unsigned int fragmentation_score_wmark(const struct iom_machine *m,
					      bool low)
{
	unsigned int wmark_low = 100U - (unsigned int)proactiveness(m);

	if (wmark_low < 5U)
		wmark_low = 5U;
	return low ? wmark_low : (wmark_low + 10 < 100U ? wmark_low + 10 : 100U);
}

static bool kswapd_is_running(struct pglist_data *pgdat)
{
	return atomic_load_explicit(&pgdat->kswapd_active,
				    memory_order_relaxed) > 0;
}

static bool should_proactive_compact_node(struct iom_machine *m,
					  struct pglist_data *pgdat)
{
	if (!proactiveness(m) || kswapd_is_running(pgdat))
		return false;
	return fragmentation_score_node(pgdat) > fragmentation_score_wmark(m, false);
}

/* __compact_finished() */
/* reset_cached_positions(): the next partial run starts from the ends. */
static void reset_cached_positions(struct zone *zone)
{
	atomic_store_explicit(&zone->compact_cached_valid, false, memory_order_relaxed);
}

/*
 * Where compact_zone() starts: the zone's ends for a whole-zone run or when
 * nothing is cached (then the run is a whole-zone one), else the cached
 * positions of the last partial run (migrate scanner per async/sync mode),
 * each brought back to the zone's ends if out of it.
 */
static void compact_zone_start(struct compact_control *cc)
{
	struct zone *zone = cc->zone;
	unsigned long start = zone->zone_start_pfn, end = zone_end_pfn(zone);
	int sync = cc->mode != IOM_MIGRATE_ASYNC;

	cc->migrate_pfn = start;
	cc->free_pfn = pageblock_start_pfn(cc->m, end - 1);
	if (cc->whole_zone ||
	    !atomic_load_explicit(&zone->compact_cached_valid, memory_order_relaxed)) {
		cc->whole_zone = true;
		return;
	}
	{
		unsigned long mpfn = atomic_load_explicit(&zone->compact_cached_migrate_pfn[sync],
							  memory_order_relaxed);
		unsigned long fpfn = atomic_load_explicit(&zone->compact_cached_free_pfn,
							  memory_order_relaxed);

		if (mpfn > start && mpfn < end)
			cc->migrate_pfn = mpfn;
		if (fpfn >= start && fpfn < end)
			cc->free_pfn = fpfn;
	}
	/* from the zone's start, a partial run is a whole one */
	if (cc->migrate_pfn <= start)
		cc->whole_zone = true;
}

/* A partial run that stopped early leaves its scanners for the next. */
static void compact_zone_end(struct compact_control *cc)
{
	struct zone *zone = cc->zone;
	int sync = cc->mode != IOM_MIGRATE_ASYNC;

	if (compact_scanners_met(cc)) {
		reset_cached_positions(zone);
		return;
	}
	if (!atomic_load_explicit(&zone->compact_cached_valid, memory_order_relaxed)) {
		/* the other mode's migrate scanner starts from the start */
		atomic_store_explicit(&zone->compact_cached_migrate_pfn[!sync],
				      zone->zone_start_pfn, memory_order_relaxed);
	}
	atomic_store_explicit(&zone->compact_cached_migrate_pfn[sync], cc->migrate_pfn,
			      memory_order_relaxed);
	atomic_store_explicit(&zone->compact_cached_free_pfn, cc->free_pfn,
			      memory_order_relaxed);
	atomic_store_explicit(&zone->compact_cached_valid, true, memory_order_relaxed);
}

static int compact_finished(struct compact_control *cc)
{
	/* a run that began part way only covered part of the zone */
	if (compact_scanners_met(cc))
		return cc->whole_zone ? IOM_COMPACT_COMPLETE : IOM_COMPACT_PARTIAL_SKIPPED;
	if (cc->proactive_compaction) {
		if (kswapd_is_running(cc->zone->zone_pgdat))
			return IOM_COMPACT_PARTIAL_SKIPPED;
		if (fragmentation_score_zone(cc->zone) >
		    fragmentation_score_wmark(cc->m, true))
			return IOM_COMPACT_CONTINUE;
		return IOM_COMPACT_SUCCESS;
	}
	if (cc->order < 0)	/* is_via_compact_memory() */
		return IOM_COMPACT_CONTINUE;
	if (zone_has_free_block(cc->zone, (unsigned int)cc->order))
		return IOM_COMPACT_SUCCESS;
	/* COMPACT_NO_SUITABLE_PAGE: carry on */
	return IOM_COMPACT_CONTINUE;
}

static int fragmentation_index(struct zone *zone, unsigned int order)
{
	struct iom_contig_page_info info;

	zone_contig_page_info(zone, order, &info);
	return iom_fragmentation_index(order, &info);
}

/* compaction_suitable() with __compaction_suitable(). */
static int compaction_suitable(struct zone *zone, int order)
{
	unsigned long free_pages = zone_page_state(zone, NR_FREE_PAGES);
	unsigned long watermark;
	int fragindex;

	if (order < 0)
		return IOM_COMPACT_CONTINUE;
	/* zone_watermark_ok(zone, order, min): simplified, no lowmem_reserve */
	watermark = zone->_watermark[WMARK_MIN];
	if (free_pages >= watermark + (1UL << order) &&
	    zone_has_free_block(zone, (unsigned int)order))
		return IOM_COMPACT_SUCCESS;
	/* room for the isolated targets: compact_gap() = 2 << order */
	watermark = order > PAGE_ALLOC_COSTLY_ORDER ? zone->_watermark[WMARK_LOW]
						    : zone->_watermark[WMARK_MIN];
	watermark += 2UL << order;
	if (free_pages < watermark)
		return IOM_COMPACT_SKIPPED;
	if (order > PAGE_ALLOC_COSTLY_ORDER) {
		fragindex = fragmentation_index(zone, (unsigned int)order);
		if (fragindex >= 0 && fragindex <= IOM_EXTFRAG_THRESHOLD)
			return IOM_COMPACT_NOT_SUITABLE_ZONE;
	}
	return IOM_COMPACT_CONTINUE;
}

static int compact_zone(struct compact_control *cc)
{
	struct iom_machine *m = cc->m;
	struct zone *zone = cc->zone;
	unsigned long zone_end = zone_end_pfn(zone);
	int ret;

	ret = compaction_suitable(zone, cc->order);
	if (ret != IOM_COMPACT_CONTINUE)
		return ret;

	compact_zone_start(cc);
	iom_trace(m, IOM_TRACE_MM_COMPACTION_BEGIN, 'B', zone->zone_start_pfn, cc->migrate_pfn, cc->free_pfn, zone_end);

	while ((ret = compact_finished(cc)) == IOM_COMPACT_CONTINUE) {
		unsigned int nr_succeeded = 0;
		int err;

		if (isolate_migratepages(cc) == ISOLATE_NONE)
			continue;	/* compact_finished() sees the scanners met */

		err = iom_migrate_pages(m, &cc->migratepages, compaction_alloc,
					compaction_free, (unsigned long)cc,
					cc->mode, IOM_MR_COMPACTION,
					&nr_succeeded);
		cc->nr_migratepages = 0;
		if (err) {
			iom_putback_movable_pages(m, &cc->migratepages);
			/* The free scanner found nothing before meeting us */
			if (err == -ENOMEM && !compact_scanners_met(cc)) {
				ret = IOM_COMPACT_CONTENDED;
				break;
			}
		}
		/* Let the freed pages merge before compact_finished() looks. */
		iom_drain_local_pages(m);
	}

	iom_putback_movable_pages(m, &cc->migratepages);
	cc->nr_migratepages = 0;
	release_freepages(cc);
	iom_drain_local_pages(m);
	compact_zone_end(cc);
	if ((ret == IOM_COMPACT_COMPLETE || ret == IOM_COMPACT_PARTIAL_SKIPPED) &&
	    cc->order >= 0 && zone_has_free_block(zone, (unsigned int)cc->order))
		ret = IOM_COMPACT_SUCCESS;
	iom_trace(m, IOM_TRACE_MM_COMPACTION_END, 'E', zone->zone_start_pfn, cc->migrate_pfn, cc->free_pfn, ret);
	return ret;
}

static void cc_init(struct compact_control *cc, struct iom_machine *m,
		    struct zone *zone, int order, enum iom_migrate_mode mode)
{
	*cc = (struct compact_control){
		.m = m, .zone = zone, .order = order, .mode = mode,
	};
	INIT_LIST_HEAD(&cc->freepages);
	INIT_LIST_HEAD(&cc->migratepages);
}

/* ---- the API ------------------------------------------------------------ */

int iom_compaction_suitable(struct iom_machine *m, int nid, int zone_type,
			    unsigned int order)
{
	struct zone *zone = machine_zone(m, nid, zone_type);

	if (!zone || !populated_zone(zone) || order > m->max_order)
		return -EINVAL;
	return compaction_suitable(zone, (int)order);
}

/*
 * One compaction request for @order: drain the caches so free pages merge
 * (lru_add_drain_all() + drain_all_pages()), compaction_suitable(), then
 * compact_stall, the run, and compact_success or compact_fail.
 */
static int compact_zone_counted(struct iom_machine *m, struct zone *zone,
				unsigned int order, enum iom_migrate_mode mode,
				bool whole_zone)
{
	struct compact_control cc;
	int ret;

	iom_drain_all_pages(m);
	ret = compaction_suitable(zone, (int)order);
	if (ret != IOM_COMPACT_CONTINUE)
		return ret;
	count_vm_event(m, IOM_COMPACTSTALL);
	cc_init(&cc, m, zone, (int)order, mode);
	cc.whole_zone = whole_zone;
	ret = compact_zone(&cc);
	if (ret == IOM_COMPACT_SUCCESS)
		count_vm_event(m, IOM_COMPACTSUCCESS);
	else
		count_vm_event(m, IOM_COMPACTFAIL);
	return ret;
}

int iom_compact_zone(struct iom_machine *m, int nid, int zone_type,
		     unsigned int order, enum iom_migrate_mode mode)
{
	struct zone *zone = machine_zone(m, nid, zone_type);

	if (!zone || !populated_zone(zone) || order > m->max_order ||
	    (int)mode < IOM_MIGRATE_ASYNC || mode > IOM_MIGRATE_SYNC)
		return -EINVAL;
	return compact_zone_counted(m, zone, order, mode, true);
}

int compact_zone_order(struct iom_machine *m, struct zone *zone,
		       unsigned int order, enum iom_migrate_mode mode)
{
	return compact_zone_counted(m, zone, order, mode, false);
}

int iom_compact_node(struct iom_machine *m, int nid)
{
	int zt;

	if (!m || nid < 0 || (unsigned int)nid >= m->nr_nodes ||
	    nid >= IOM_MAX_NUMNODES || !m->node_data[nid])
		return -EINVAL;
	iom_drain_all_pages(m);
	for (zt = 0; zt < IOM_MAX_NR_ZONES; zt++) {
		struct zone *zone = &m->node_data[nid]->node_zones[zt];
		struct compact_control cc;

		if (!populated_zone(zone))
			continue;
		cc_init(&cc, m, zone, -1, IOM_MIGRATE_SYNC);
		cc.whole_zone = true;
		compact_zone(&cc);
	}
	iom_drain_all_pages(m);
	return 0;
}

/* ---- kcompactd ---------------------------------------------------------- */

static void kcompactd_lock(struct pglist_data *pgdat)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&pgdat->kcompactd_lock));
}

static void kcompactd_unlock(struct pglist_data *pgdat)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&pgdat->kcompactd_lock));
}

static struct iom_machine *pgdat_machine(const struct pglist_data *pgdat)
{
	return pgdat->node_zones[0].machine;
}

/* pgdat->nr_zones - 1: the highest populated zone. */
static int pgdat_highest_zoneidx(const struct pglist_data *pgdat)
{
	int zoneid;

	for (zoneid = IOM_MAX_NR_ZONES - 1; zoneid > 0; zoneid--)
		if (populated_zone(&pgdat->node_zones[zoneid]))
			break;
	return zoneid;
}

/* Under kcompactd_lock. */
static bool kcompactd_work_requested(const struct pglist_data *pgdat)
{
	return pgdat->kcompactd_max_order > 0 || pgdat->kcompactd_should_stop ||
	       pgdat->proactive_compact_trigger;
}

/* Would compaction for the recorded order do anything on some zone? */
static bool kcompactd_node_suitable(struct pglist_data *pgdat, int order,
				    int highest_zoneidx)
{
	int zoneid;

	for (zoneid = 0; zoneid <= highest_zoneidx; zoneid++) {
		struct zone *zone = &pgdat->node_zones[zoneid];

		if (!populated_zone(zone))
			continue;
		if (compaction_suitable(zone, order) == IOM_COMPACT_CONTINUE)
			return true;
	}
	return false;
}

static void count_kcompactd_scanned(struct iom_machine *m,
				    const struct compact_control *cc)
{
	if (cc->total_migrate_scanned)
		count_vm_events(m, IOM_KCOMPACTD_MIGRATE_SCANNED,
				cc->total_migrate_scanned);
	if (cc->total_free_scanned)
		count_vm_events(m, IOM_KCOMPACTD_FREE_SCANNED,
				cc->total_free_scanned);
}

static bool kcompactd_should_stop(struct pglist_data *pgdat)
{
	bool stop;

	kcompactd_lock(pgdat);
	stop = pgdat->kcompactd_should_stop;
	kcompactd_unlock(pgdat);
	return stop;
}

/*
 * kcompactd_do_work(): compact every zone up to the recorded highest
 * zone for the recorded order, then forget the request unless a larger
 * one came meanwhile.
 */
static void kcompactd_do_work(struct iom_machine *m, struct pglist_data *pgdat)
{
	int order, highest_zoneidx, zoneid;

	kcompactd_lock(pgdat);
	order = pgdat->kcompactd_max_order;
	highest_zoneidx = pgdat->kcompactd_highest_zoneidx;
	kcompactd_unlock(pgdat);
	count_vm_event(m, IOM_KCOMPACTD_WAKE);

	for (zoneid = 0; zoneid <= highest_zoneidx; zoneid++) {
		struct zone *zone = &pgdat->node_zones[zoneid];
		struct compact_control cc;
		int status;

		if (!populated_zone(zone))
			continue;
		if (compaction_suitable(zone, order) != IOM_COMPACT_CONTINUE)
			continue;
		if (kcompactd_should_stop(pgdat))
			return;
		cc_init(&cc, m, zone, order, IOM_MIGRATE_SYNC_LIGHT);
		status = compact_zone(&cc);
		/*
		 * Free pages stranded in the caches could merge to the order:
		 * drain them (the kernel then defers, not modelled).
		 */
		if (status == IOM_COMPACT_COMPLETE ||
		    status == IOM_COMPACT_PARTIAL_SKIPPED)
			iom_drain_all_pages(m);
		count_kcompactd_scanned(m, &cc);
	}

	kcompactd_lock(pgdat);
	if (pgdat->kcompactd_max_order <= order)
		pgdat->kcompactd_max_order = 0;
	if (pgdat->kcompactd_highest_zoneidx >= highest_zoneidx)
		pgdat->kcompactd_highest_zoneidx = pgdat_highest_zoneidx(pgdat);
	kcompactd_unlock(pgdat);
}

/*
 * proactive_compact_node(): compact each zone (whole zone, order -1,
 * MIGRATE_SYNC_LIGHT) until its score is at or below the low watermark.
 */
static void proactive_compact_node(struct iom_machine *m,
				   struct pglist_data *pgdat)
{
	int zoneid;

	for (zoneid = 0; zoneid < IOM_MAX_NR_ZONES; zoneid++) {
		struct zone *zone = &pgdat->node_zones[zoneid];
		struct compact_control cc;

		if (!populated_zone(zone))
			continue;
		cc_init(&cc, m, zone, -1, IOM_MIGRATE_SYNC_LIGHT);
		cc.proactive_compaction = true;
		cc.whole_zone = true;
		compact_zone(&cc);
		count_kcompactd_scanned(m, &cc);
	}
}

enum proactive_step { PROACTIVE_NONE, PROACTIVE_PROGRESS, PROACTIVE_NO_PROGRESS };

/*
 * The proactive step after a timeout (or a sysctl write): compact if the
 * node's score is above the high watermark. PROACTIVE_NO_PROGRESS: the
 * score did not fall; the caller backs off.
 */
static enum proactive_step kcompactd_proactive_step(struct iom_machine *m,
						    struct pglist_data *pgdat)
{
	unsigned int prev_score, score;

	if (!should_proactive_compact_node(m, pgdat))
		return PROACTIVE_NONE;
	prev_score = fragmentation_score_node(pgdat);
	proactive_compact_node(m, pgdat);
	score = fragmentation_score_node(pgdat);
	return score >= prev_score ? PROACTIVE_NO_PROGRESS : PROACTIVE_PROGRESS;
}

void wakeup_kcompactd(struct pglist_data *pgdat, int order, int highest_zoneidx)
{
	bool sleeper;

	if (!order || !pgdat->kcompactd_inited)
		return;
	kcompactd_lock(pgdat);
	if (pgdat->kcompactd_max_order < order)
		pgdat->kcompactd_max_order = order;
	if (pgdat->kcompactd_highest_zoneidx > highest_zoneidx)
		pgdat->kcompactd_highest_zoneidx = highest_zoneidx;
	order = pgdat->kcompactd_max_order;
	highest_zoneidx = pgdat->kcompactd_highest_zoneidx;
	sleeper = pgdat->kcompactd_sleeping;
	kcompactd_unlock(pgdat);

	if (!sleeper || !kcompactd_node_suitable(pgdat, order, highest_zoneidx))
		return;
	kcompactd_lock(pgdat);
	IOM_CHECK_PTHREAD(pthread_cond_signal(&pgdat->kcompactd_wait));
	kcompactd_unlock(pgdat);
}

/* @ts += @ms milliseconds. */
static void timespec_add_ms(struct timespec *ts, long ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/*
 * kcompactd(): sleep until work is requested or, with proactiveness on,
 * the check interval passes; then do the requested work, or the proactive
 * step.
 */
static void *kcompactd(void *arg)
{
	struct pglist_data *pgdat = arg;
	struct iom_machine *m = pgdat_machine(pgdat);
	const long default_timeout = HPAGE_FRAG_CHECK_INTERVAL_MSEC;
	long timeout = default_timeout;

	kcompactd_lock(pgdat);
	while (!pgdat->kcompactd_should_stop) {
		struct timespec deadline = { 0, 0 };
		bool requested;

		/* no proactive compaction: sleep until woken */
		if (!proactiveness(m))
			timeout = -1;
		if (timeout >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &deadline);
			timespec_add_ms(&deadline, timeout);
		}
		pgdat->kcompactd_sleeping = true;
		while (!kcompactd_work_requested(pgdat)) {
			int err;

			if (timeout < 0) {
				IOM_CHECK_PTHREAD(pthread_cond_wait(&pgdat->kcompactd_wait,
								    &pgdat->kcompactd_lock));
				continue;
			}
			err = pthread_cond_timedwait(&pgdat->kcompactd_wait,
						     &pgdat->kcompactd_lock,
						     &deadline);
			if (err == ETIMEDOUT)
				break;
			IOM_CHECK_PTHREAD(err);
		}
		pgdat->kcompactd_sleeping = false;
		if (pgdat->kcompactd_should_stop)
			break;
		requested = kcompactd_work_requested(pgdat);
		if (requested && !pgdat->proactive_compact_trigger) {
			kcompactd_unlock(pgdat);
			kcompactd_do_work(m, pgdat);
			kcompactd_lock(pgdat);
			/* the proactive backoff is lost: that is fine */
			timeout = default_timeout;
			continue;
		}
		kcompactd_unlock(pgdat);

		timeout = default_timeout;
		if (kcompactd_proactive_step(m, pgdat) == PROACTIVE_NO_PROGRESS)
			timeout = default_timeout << COMPACT_MAX_DEFER_SHIFT;

		kcompactd_lock(pgdat);
		pgdat->proactive_compact_trigger = false;
	}
	kcompactd_unlock(pgdat);
	return NULL;
}

/* kcompactd_run(): start node @nid's thread. Return: 0 or -errno. */
static int kcompactd_run(struct iom_machine *m, int nid)
{
	struct pglist_data *pgdat = m->node_data[nid];
	int err;

	if (pgdat->kcompactd_running)
		return 0;
	err = pthread_create(&pgdat->kcompactd, NULL, kcompactd, pgdat);
	if (err) {
		iom_warn(m, "Failed to start kcompactd on node %d", nid);
		return -err;
	}
	pgdat->kcompactd_running = true;
	return 0;
}

/* kcompactd_stop(): kthread_stop(): tell the thread, wake it, join it. */
static void kcompactd_stop(struct iom_machine *m, int nid)
{
	struct pglist_data *pgdat = m->node_data[nid];

	if (!pgdat->kcompactd_running)
		return;
	kcompactd_lock(pgdat);
	pgdat->kcompactd_should_stop = true;
	IOM_CHECK_PTHREAD(pthread_cond_signal(&pgdat->kcompactd_wait));
	kcompactd_unlock(pgdat);
	IOM_CHECK_PTHREAD(pthread_join(pgdat->kcompactd, NULL));
	pgdat->kcompactd_running = false;
	pgdat->kcompactd_should_stop = false;
}

int kcompactd_init(struct iom_machine *m)
{
	unsigned int nid;
	int ret;

	for (nid = 0; nid < m->nr_nodes; nid++) {
		struct pglist_data *pgdat = m->node_data[nid];
		pthread_condattr_t attr;

		IOM_CHECK_PTHREAD(pthread_condattr_init(&attr));
		IOM_CHECK_PTHREAD(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC));
		IOM_CHECK_PTHREAD(pthread_cond_init(&pgdat->kcompactd_wait, &attr));
		IOM_CHECK_PTHREAD(pthread_condattr_destroy(&attr));
		IOM_CHECK_PTHREAD(pthread_mutex_init(&pgdat->kcompactd_lock, NULL));
		pgdat->kcompactd_max_order = 0;
		pgdat->kcompactd_highest_zoneidx = pgdat_highest_zoneidx(pgdat);
		pgdat->kcompactd_inited = true;
	}
	if (!m->cfg.kcompactd)
		return 0;
	for (nid = 0; nid < m->nr_nodes; nid++) {
		ret = kcompactd_run(m, (int)nid);
		if (ret)
			return ret;	/* the caller's destroy stops the others */
	}
	return 0;
}

void kcompactd_exit(struct iom_machine *m)
{
	unsigned int nid;

	for (nid = 0; nid < m->nr_nodes; nid++) {
		struct pglist_data *pgdat = m->node_data[nid];

		if (!pgdat || !pgdat->kcompactd_inited)
			continue;
		kcompactd_stop(m, (int)nid);
		pthread_cond_destroy(&pgdat->kcompactd_wait);
		pthread_mutex_destroy(&pgdat->kcompactd_lock);
		pgdat->kcompactd_inited = false;
	}
}

/* ---- the kcompactd API -------------------------------------------------- */

static struct pglist_data *machine_pgdat(struct iom_machine *m, int nid)
{
	if (!m || nid < 0 || (unsigned int)nid >= m->nr_nodes ||
	    nid >= IOM_MAX_NUMNODES || !m->node_data[nid])
		return NULL;
	return m->node_data[nid];
}

int iom_sysctl_compaction_proactiveness(struct iom_machine *m, int value)
{
	unsigned int nid;

	if (!m)
		return -EINVAL;
	if (value < 0 || value > 100) {
		iom_warn(m, "compaction_proactiveness: %d is not in 0..100", value);
		return -EINVAL;
	}
	atomic_store(&m->compaction_proactiveness, value);
	if (!value)
		return 0;
	/* compaction_proactiveness_sysctl_handler(): a write triggers a run */
	for (nid = 0; nid < m->nr_nodes; nid++) {
		struct pglist_data *pgdat = m->node_data[nid];

		kcompactd_lock(pgdat);
		if (!pgdat->proactive_compact_trigger) {
			pgdat->proactive_compact_trigger = true;
			IOM_CHECK_PTHREAD(pthread_cond_signal(&pgdat->kcompactd_wait));
		}
		kcompactd_unlock(pgdat);
	}
	return 0;
}

int iom_compaction_proactiveness(const struct iom_machine *m)
{
	if (!m)
		return -EINVAL;
	return proactiveness(m);
}

int iom_fragmentation_score_node(struct iom_machine *m, int nid)
{
	struct pglist_data *pgdat = machine_pgdat(m, nid);

	if (!pgdat)
		return -EINVAL;
	return (int)fragmentation_score_node(pgdat);
}

int iom_fragmentation_score_zone(struct iom_machine *m, int nid, int zone_type)
{
	struct zone *zone = machine_zone(m, nid, zone_type);

	if (!zone || !populated_zone(zone))
		return -EINVAL;
	return (int)fragmentation_score_zone(zone);
}

int iom_fragmentation_score_wmark(const struct iom_machine *m, bool low)
{
	if (!m)
		return -EINVAL;
	return (int)fragmentation_score_wmark(m, low);
}

int iom_wakeup_kcompactd(struct iom_machine *m, int nid, unsigned int order)
{
	struct pglist_data *pgdat = machine_pgdat(m, nid);

	if (!pgdat || order > m->max_order) {
		if (m)
			iom_warn(m, "iom_wakeup_kcompactd: bad node %d or order %u",
				 nid, order);
		return -EINVAL;
	}
	wakeup_kcompactd(pgdat, (int)order, pgdat_highest_zoneidx(pgdat));
	return 0;
}

int iom_kcompactd_run(struct iom_machine *m, int nid, unsigned int order)
{
	struct pglist_data *pgdat = machine_pgdat(m, nid);
	bool requested, trigger, deferred = false;
	enum proactive_step step;

	if (!pgdat || order > m->max_order) {
		if (m)
			iom_warn(m, "iom_kcompactd_run: bad node %d or order %u",
				 nid, order);
		return -EINVAL;
	}
	kcompactd_lock(pgdat);
	if (pgdat->kcompactd_max_order < (int)order)
		pgdat->kcompactd_max_order = (int)order;
	requested = pgdat->kcompactd_max_order > 0;
	trigger = pgdat->proactive_compact_trigger;
	kcompactd_unlock(pgdat);

	if (requested && !trigger) {
		kcompactd_do_work(m, pgdat);
		kcompactd_lock(pgdat);
		pgdat->proactive_defer = 0;	/* the thread's timeout reset */
		kcompactd_unlock(pgdat);
		return IOM_KCOMPACTD_WORK;
	}

	/* one interval passed (or a sysctl write triggered the step) */
	kcompactd_lock(pgdat);
	if (!trigger && pgdat->proactive_defer) {
		pgdat->proactive_defer--;
		deferred = true;
	}
	kcompactd_unlock(pgdat);
	if (deferred)
		return IOM_KCOMPACTD_DEFERRED;
	step = kcompactd_proactive_step(m, pgdat);
	kcompactd_lock(pgdat);
	/* the thread would sleep 64 intervals: skip the next 63 calls */
	pgdat->proactive_defer = step == PROACTIVE_NO_PROGRESS ?
				 (1U << COMPACT_MAX_DEFER_SHIFT) - 1 : 0;
	pgdat->proactive_compact_trigger = false;
	kcompactd_unlock(pgdat);
	return step == PROACTIVE_NONE ? IOM_KCOMPACTD_IDLE : IOM_KCOMPACTD_PROACTIVE;
}
