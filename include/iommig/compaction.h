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
 * IOM_COMPACTFAIL and IOM_COMPACTSUCCESS (<iommig/vmstat.h>); kcompactd
 * adds IOM_KCOMPACTD_WAKE (compact_daemon_wake),
 * IOM_KCOMPACTD_MIGRATE_SCANNED and IOM_KCOMPACTD_FREE_SCANNED.
 *
 * kcompactd: with struct iom_machine_config.kcompactd each node has a
 * background thread that compacts when woken for a high-order request
 * (by the allocator's inline kswapd once it has balanced the node, or by
 * iom_wakeup_kcompactd()) and, every 500 ms while
 * vm.compaction_proactiveness is not 0, proactively when the node's
 * fragmentation score is above the high watermark. Without the thread,
 * iom_kcompactd_run() does one round of the thread's work in the caller.
 */
#ifndef IOMMIG_COMPACTION_H
#define IOMMIG_COMPACTION_H

#include <stdbool.h>

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
	IOM_COMPACT_PARTIAL_SKIPPED,	/* proactive run stopped: kswapd runs */
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

/* ---- kcompactd and proactive compaction --------------------------------- */

/* What one iom_kcompactd_run() did. */
enum iom_kcompactd_action {
	IOM_KCOMPACTD_IDLE,	/* nothing requested, score not above the high wmark */
	IOM_KCOMPACTD_WORK,	/* kcompactd_do_work() for a requested order */
	IOM_KCOMPACTD_PROACTIVE, /* proactive_compact_node() */
	IOM_KCOMPACTD_DEFERRED,	/* proactive check skipped: backing off */
};

/**
 * iom_sysctl_compaction_proactiveness() - write vm.compaction_proactiveness
 * (the machine's; the kernel's is global). A value other than 0 also
 * triggers a proactive step on every node, as the kernel's sysctl handler
 * does: a kcompactd thread does it at once, without a thread the next
 * iom_kcompactd_run() does it whatever the backoff.
 * @value: 0..100; 0 turns proactive compaction off.
 * Context: any thread.
 * Return: 0; -EINVAL (with a message, nothing changed) for a value out of
 * range.
 */
IOM_API int iom_sysctl_compaction_proactiveness(struct iom_machine *m,
						int value);

/**
 * iom_compaction_proactiveness() - the current vm.compaction_proactiveness.
 * Return: 0..100, or -EINVAL for a NULL @m.
 */
IOM_API int iom_compaction_proactiveness(const struct iom_machine *m);

/**
 * iom_fragmentation_score_node() - fragmentation_score_node(): for each
 * populated zone, the percentage of its free memory not in free blocks of
 * order 9 (HPAGE_PMD_ORDER; max_order if smaller), weighted by the zone's
 * share of the node. Pages in per-thread caches do not count as free.
 * Return: 0..100 (0 when nothing is free), or -EINVAL for a bad node.
 */
IOM_API int iom_fragmentation_score_node(struct iom_machine *m, int nid);

/**
 * iom_fragmentation_score_zone() - fragmentation_score_zone(), unweighted:
 * what proactive compaction of one zone compares with the low watermark.
 * Return: 0..100, or -EINVAL for a bad or empty zone.
 */
IOM_API int iom_fragmentation_score_zone(struct iom_machine *m, int nid,
					 int zone_type);

/**
 * iom_fragmentation_score_wmark() - fragmentation_score_wmark(): @low:
 * max(100 - proactiveness, 5), where a proactive run stops; else the high
 * one, min(low + 10, 100), above which a node is compacted.
 * Return: the watermark, or -EINVAL for a NULL @m.
 */
IOM_API int iom_fragmentation_score_wmark(const struct iom_machine *m,
					  bool low);

/**
 * iom_wakeup_kcompactd() - wakeup_kcompactd(): record a request for
 * @order (the largest pending one is kept) on every zone of @nid, and
 * wake the node's kcompactd thread if it sleeps and some zone is
 * compaction_suitable() for it. Order 0 does nothing. Without a thread the
 * request waits for iom_kcompactd_run().
 * Context: any thread.
 * Return: 0; -EINVAL for a bad node or order.
 */
IOM_API int iom_wakeup_kcompactd(struct iom_machine *m, int nid,
				 unsigned int order);

/**
 * iom_kcompactd_run() - one iteration of node @nid's kcompactd loop, in
 * the calling thread, for deterministic tests and benchmarks: records a
 * request for @order (0: none) as iom_wakeup_kcompactd() would; then, if
 * a request is pending and no sysctl write is, kcompactd_do_work(): each
 * zone compaction_suitable() allows is compacted for the order in
 * IOM_MIGRATE_SYNC_LIGHT, counting compact_daemon_wake and the
 * compact_daemon_*_scanned events, and the request is cleared.
 * Otherwise the call stands for one 500 ms interval: if the node's score
 * is above the high watermark (and proactiveness is not 0) it compacts
 * every zone until its score is at or below the low watermark; a run
 * that does not lower the node's score makes the next 63 calls skip the
 * check (the thread's 64-interval backoff). May run alongside a kcompactd
 * thread.
 * Context: may sleep (page locks).
 * Return: an enum iom_kcompactd_action; -EINVAL for a bad node or order.
 */
IOM_API int iom_kcompactd_run(struct iom_machine *m, int nid,
			      unsigned int order);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_COMPACTION_H */
