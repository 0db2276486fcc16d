/* SPDX-License-Identifier: MIT */
/*
 * Pageblock isolation (mm/page_isolation.c): an isolated pageblock's free
 * pages leave the allocator's reach and pages freed into it stay there, so
 * alloc_contig_range() and memory offlining can collect a whole range.
 * Simplified: ranges are whole pageblocks; a free block larger than a
 * pageblock is split at isolation (as isolate_single_pageblock() does) and
 * a wholly free pageblock is re-freed at unisolation so it merges again.
 */
#include "internal.h"

static void zone_lock(struct zone *zone)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&zone->lock));
}

static void zone_unlock(struct zone *zone)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&zone->lock));
}

/*
 * has_unmovable_pages(): the first page of the pageblock at @pfn that
 * migration could not move, or NULL. Free pages, LRU pages and movable
 * (isolatable non-LRU) pages can move; so can everything in ZONE_MOVABLE,
 * and CMA blocks when the caller is CMA itself. Caller holds zone->lock.
 */
static struct iom_page *has_unmovable_pages(struct zone *zone, unsigned long pfn,
					    int migratetype, int flags)
{
	struct iom_machine *m = zone->machine;
	unsigned long end = pfn + m->pageblock_nr_pages;

	if (is_migrate_cma(get_pfnblock_migratetype(m, pfn)))
		return migratetype == IOM_MIGRATE_CMA ? NULL : pfn_to_page(m, pfn);
	for (; pfn < end; pfn++) {
		struct iom_page *page = pfn_to_page(m, pfn);

		if (iom_PageReserved(page))
			return page;
		if (zone->zone_type == IOM_ZONE_MOVABLE)
			continue;
		if (iom_PageHead(page)) {
			if (!iom_PageLRU(page))
				return page;
			pfn += (1UL << iom_compound_order(page)) - 1;
			continue;
		}
		if (!iom_page_ref_count(page)) {
			if (iom_PageBuddy(page))
				pfn += (1UL << buddy_order(page)) - 1;
			continue;
		}
		if (iom_PageLRU(page))
			continue;
		return page;
	}
	return NULL;
}

static int set_migratetype_isolate(struct iom_machine *m, unsigned long pfn,
				   int migratetype, int flags)
{
	struct zone *zone = pfn_zone(m, pfn);
	struct iom_page *unmovable;
	int moved, old;

	zone_lock(zone);
	old = get_pfnblock_migratetype(m, pfn);
	if (is_migrate_isolate(old)) {
		zone_unlock(zone);
		return -EBUSY;
	}
	unmovable = has_unmovable_pages(zone, pfn, migratetype, flags);
	if (unmovable) {
		zone_unlock(zone);
		if (flags & IOM_REPORT_FAILURE)
			iom_printk(m, IOM_LOG_INFO,
				   "isolation: pfn %#lx in pageblock %#lx is unmovable",
				   page_to_pfn(m, unmovable), pfn);
		return -EBUSY;
	}
	split_free_block_at(zone, pfn);
	set_pageblock_migratetype(m, pfn, IOM_MIGRATE_ISOLATE);
	zone->nr_isolate_pageblock++;
	moved = move_freepages_block(zone, pfn, IOM_MIGRATE_ISOLATE, NULL);
	IOM_BUG_ON(moved < 0);
	zone_unlock(zone);
	return 0;
}

static void unset_migratetype_isolate(struct iom_machine *m, unsigned long pfn,
				      int migratetype)
{
	struct zone *zone = pfn_zone(m, pfn);

	zone_lock(zone);
	if (!is_migrate_isolate(get_pfnblock_migratetype(m, pfn))) {
		zone_unlock(zone);
		return;
	}
	set_pageblock_migratetype(m, pfn, migratetype);
	if (!putback_free_pageblock(zone, pfn, migratetype))
		move_freepages_block(zone, pfn, migratetype, NULL);
	zone->nr_isolate_pageblock--;
	zone_unlock(zone);
}

static int check_range(struct iom_machine *m, unsigned long start_pfn,
		       unsigned long end_pfn)
{
	if (!m || start_pfn >= end_pfn || !iom_pfn_valid(m, start_pfn) ||
	    !iom_pfn_valid(m, end_pfn - 1))
		return -EINVAL;
	if ((start_pfn | end_pfn) & (m->pageblock_nr_pages - 1))
		return -EINVAL;
	if (pfn_zone(m, start_pfn) != pfn_zone(m, end_pfn - 1))
		return -EINVAL;
	return 0;
}

int iom_start_isolate_page_range(struct iom_machine *m, unsigned long start_pfn,
				 unsigned long end_pfn, int migratetype,
				 int flags)
{
	unsigned long pfn;
	int ret;

	ret = check_range(m, start_pfn, end_pfn);
	if (ret || (migratetype != IOM_MIGRATE_MOVABLE &&
		    migratetype != IOM_MIGRATE_CMA) ||
	    (flags & ~(IOM_MEMORY_OFFLINE | IOM_REPORT_FAILURE))) {
		if (m)
			iom_warn(m, "start_isolate_page_range: bad range [%#lx, %#lx) or arguments",
				 start_pfn, end_pfn);
		return -EINVAL;
	}
	for (pfn = start_pfn; pfn < end_pfn; pfn += m->pageblock_nr_pages) {
		ret = set_migratetype_isolate(m, pfn, migratetype, flags);
		if (ret) {
			/* undo what this call isolated */
			while (pfn > start_pfn) {
				pfn -= m->pageblock_nr_pages;
				unset_migratetype_isolate(m, pfn, migratetype);
			}
			return ret;
		}
	}
	return 0;
}

int iom_undo_isolate_page_range(struct iom_machine *m, unsigned long start_pfn,
				unsigned long end_pfn, int migratetype)
{
	unsigned long pfn;

	if (check_range(m, start_pfn, end_pfn) ||
	    (migratetype != IOM_MIGRATE_MOVABLE && migratetype != IOM_MIGRATE_CMA))
		return -EINVAL;
	for (pfn = start_pfn; pfn < end_pfn; pfn += m->pageblock_nr_pages)
		unset_migratetype_isolate(m, pfn, migratetype);
	return 0;
}

int iom_test_pages_isolated(struct iom_machine *m, unsigned long start_pfn,
			    unsigned long end_pfn, int flags)
{
	struct zone *zone;
	unsigned long pfn;

	if (check_range(m, start_pfn, end_pfn))
		return -EINVAL;
	for (pfn = start_pfn; pfn < end_pfn; pfn += m->pageblock_nr_pages)
		if (!is_migrate_isolate(get_pfnblock_migratetype(m, pfn)))
			return -EBUSY;
	zone = pfn_zone(m, start_pfn);
	zone_lock(zone);
	for (pfn = start_pfn; pfn < end_pfn;) {
		struct iom_page *page = pfn_to_page(m, pfn);

		if (!iom_PageBuddy(page) || page->index != IOM_MIGRATE_ISOLATE)
			break;
		pfn += 1UL << buddy_order(page);
	}
	zone_unlock(zone);
	return pfn < end_pfn ? -EBUSY : 0;
}
