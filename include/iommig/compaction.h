/* SPDX-License-Identifier: MIT */
/*
 * libiommig - memory compaction (include/linux/compaction.h;
 * mm/compaction.c).
 *
 * Conventions in this header:
 *   @m:         the machine.
 *   @nid:       a node of @m.
 *   @zone_type: an enum iom_zone_type.
 *   @order:     the order compaction should make a free block of.
 *
 * The counters are the vm events IOM_COMPACTMIGRATE_SCANNED,
 * IOM_COMPACTFREE_SCANNED, IOM_COMPACTISOLATED, IOM_COMPACTSTALL,
 * IOM_COMPACTFAIL and IOM_COMPACTSUCCESS (<iommig/vmstat.h>).
 */
#ifndef IOMMIG_COMPACTION_H
#define IOMMIG_COMPACTION_H

#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The kernel's enum compact_result (Linux 6.1), same order. */
enum iom_compact_result {
	IOM_COMPACT_NOT_SUITABLE_ZONE,	/* failure would be for lack of memory */
	IOM_COMPACT_SKIPPED,		/* too little free memory to compact */
	IOM_COMPACT_DEFERRED,		/* not modelled: never returned */
	IOM_COMPACT_NO_SUITABLE_PAGE,	/* internal to compact_finished() */
	IOM_COMPACT_CONTINUE,		/* compaction_suitable(): go ahead */
	IOM_COMPACT_COMPLETE,		/* the scanners met: whole zone done */
	IOM_COMPACT_PARTIAL_SKIPPED,	/* not modelled: never returned */
	IOM_COMPACT_CONTENDED,		/* stopped early (no target page) */
	IOM_COMPACT_SUCCESS,		/* a free block of the order exists */
};

/* sysctl vm.extfrag_threshold's default. */
#define IOM_EXTFRAG_THRESHOLD	500

/**
 * iom_compaction_suitable() - compaction_suitable() for @order in a zone:
 * IOM_COMPACT_SUCCESS if a block of @order can already be allocated
 * above the min watermark, IOM_COMPACT_SKIPPED if free memory is below
 * the low watermark (min for orders <= 3) plus compact_gap() = 2 << @order
 * pages, IOM_COMPACT_NOT_SUITABLE_ZONE for an order above 3 whose
 * fragmentation index is in [0, 500] (a failure would be for lack of
 * memory), else IOM_COMPACT_CONTINUE.
 * Return: an enum iom_compact_result; -EINVAL for a bad zone or order.
 */
IOM_API int iom_compaction_suitable(struct iom_machine *m, int nid,
				    int zone_type, unsigned int order);

/**
 * iom_compact_zone() - compact one zone for @order, as direct compaction
 * does (without the allocation itself): drain the page caches, check
 * iom_compaction_suitable(), then run the migration scanner up from the
 * zone's start and the free scanner down from its end, migrating
 * movable pages (reason IOM_MR_COMPACTION) until a free block of @order
 * exists or the scanners meet. Pinned pages (more references than
 * mappings, page cache and the scanner's own) are left in place.
 * Counts compact_stall and then compact_success or compact_fail when
 * compaction ran (not for SKIPPED, NOT_SUITABLE_ZONE, or SUCCESS found
 * before scanning).
 * Context: may sleep (not in IOM_MIGRATE_ASYNC mode).
 * Return: IOM_COMPACT_SUCCESS, IOM_COMPACT_COMPLETE (scanners met, no
 * block of @order), IOM_COMPACT_CONTENDED, IOM_COMPACT_SKIPPED,
 * IOM_COMPACT_NOT_SUITABLE_ZONE; -EINVAL for bad arguments.
 */
IOM_API int iom_compact_zone(struct iom_machine *m, int nid, int zone_type,
			     unsigned int order, enum iom_migrate_mode mode);

/**
 * iom_compact_node() - compact_node(), what writing to
 * /proc/sys/vm/compact_memory does for one node: compact every populated
 * zone of @nid fully (order -1, IOM_MIGRATE_SYNC) until the scanners meet.
 * Return: 0, or -EINVAL for a bad node.
 */
IOM_API int iom_compact_node(struct iom_machine *m, int nid);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_COMPACTION_H */
