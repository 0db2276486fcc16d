/* SPDX-License-Identifier: MIT */
/*
 * libiommig - counters and the kernel's memory reports (mm/vmstat.c).
 *
 * The /proc and debugfs files are produced in the kernel's exact formats
 * so existing scripts that parse them work on a simulated machine.
 */
#ifndef IOMMIG_VMSTAT_H
#define IOMMIG_VMSTAT_H

#include <stdio.h>
#include <sys/types.h>

#include <iommig/machine.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Event counters (enum vm_event_item). Kept per thread and summed when
 * read, as the kernel's per-cpu vm_event_states. The mm_page_alloc_extfrag*
 * counters count the kernel's tracepoint of that name: every fallback to
 * another migratetype's free list, those that left the pageblock's owner
 * unchanged ("fragmenting"), and those that changed it. pgalloc_fail is
 * libiommig's: allocations that returned NULL.
 */
enum iom_vm_event_item {
	IOM_PGALLOC_NORMAL,
	IOM_PGALLOC_MOVABLE,
	IOM_PGFREE,
	IOM_PGALLOC_FAIL,
	IOM_EXTFRAG_EVENTS,
	IOM_EXTFRAG_FRAGMENTING,
	IOM_EXTFRAG_CHANGE_OWNERSHIP,
	IOM_PCP_REFILL,
	IOM_PCP_DRAIN,
	IOM_DRAIN_ALL_PAGES,
	IOM_PGACTIVATE,
	IOM_PGDEACTIVATE,
	IOM_PGSCAN_DIRECT,
	IOM_PGSTEAL_DIRECT,
	IOM_ALLOCSTALL_NORMAL,
	IOM_ALLOCSTALL_MOVABLE,
	IOM_PGSCAN_KSWAPD,
	IOM_PGSTEAL_KSWAPD,
	IOM_PAGEOUTRUN,
	IOM_PGMIGRATE_SUCCESS,
	IOM_PGMIGRATE_FAIL,
	IOM_COMPACTMIGRATE_SCANNED,
	IOM_COMPACTFREE_SCANNED,
	IOM_COMPACTISOLATED,
	IOM_COMPACTSTALL,
	IOM_COMPACTFAIL,
	IOM_COMPACTSUCCESS,
	IOM_KCOMPACTD_WAKE,
	IOM_KCOMPACTD_MIGRATE_SCANNED,
	IOM_KCOMPACTD_FREE_SCANNED,
	IOM_CMA_ALLOC_SUCCESS,
	IOM_CMA_ALLOC_FAIL,
	IOM_NR_FOLL_PIN_ACQUIRED,	/* the kernel's node stat; monotonic */
	IOM_NR_FOLL_PIN_RELEASED,	/* the kernel's node stat; monotonic */
	IOM_NR_TLB_REMOTE_FLUSH,	/* a batched flush (try_to_unmap_flush) */
	IOM_NR_TLB_LOCAL_FLUSH_ONE,	/* a flush of one PTE (ptep_clear_flush) */
	IOM_NR_VM_EVENT_ITEMS,
};

/** iom_vm_event_name() - "pgalloc_normal", ..., NULL when out of range. */
IOM_API const char *iom_vm_event_name(int item);
/** iom_vm_event_count() - sum of @item over every thread, or 0. */
IOM_API unsigned long iom_vm_event_count(struct iom_machine *m, int item);

/* What iom_proc_show() can print. */
enum iom_proc_file {
	IOM_PROC_BUDDYINFO,		/* /proc/buddyinfo */
	IOM_PROC_PAGETYPEINFO,		/* /proc/pagetypeinfo */
	IOM_PROC_VMSTAT,		/* /proc/vmstat (the items modelled) */
	IOM_PROC_ZONEINFO,		/* /proc/zoneinfo (the items modelled) */
	IOM_DEBUGFS_UNUSABLE_INDEX,	/* debugfs extfrag/unusable_index */
	IOM_DEBUGFS_EXTFRAG_INDEX,	/* debugfs extfrag/extfrag_index */
	IOM_NR_PROC_FILES,
};

/**
 * iom_proc_show() - print one report of @m to @out.
 * Context: any thread; takes each zone's lock in turn.
 * Return: bytes written, or -EINVAL (bad @file, NULL @out), -EIO.
 */
IOM_API int iom_proc_show(struct iom_machine *m, enum iom_proc_file file,
			  FILE *out);

/**
 * iom_proc_read() - print one report of @m into @buf, as snprintf().
 * Return: the report's full length (may exceed @size: then @buf holds a
 * truncated, NUL-terminated prefix), or -EINVAL.
 */
IOM_API ssize_t iom_proc_read(struct iom_machine *m, enum iom_proc_file file,
			      char *buf, size_t size);

/**
 * struct iom_contig_page_info - free memory of a zone as
 * fill_contig_page_info() sees it for one order.
 */
struct iom_contig_page_info {
	unsigned long free_pages;
	unsigned long free_blocks_total;
	unsigned long free_blocks_suitable;
};

/**
 * iom_fill_contig_page_info() - fill_contig_page_info() from a per-order
 * count of free blocks @nr_free[0..@max_order].
 */
IOM_API void iom_fill_contig_page_info(const unsigned long *nr_free,
				       unsigned int max_order,
				       unsigned int suitable_order,
				       struct iom_contig_page_info *info);
/**
 * iom_unusable_free_index() - unusable_free_index(): thousandths of free
 * memory unusable for @order. 1000 when nothing is free.
 */
IOM_API int iom_unusable_free_index(unsigned int order,
				    const struct iom_contig_page_info *info);
/**
 * iom_fragmentation_index() - __fragmentation_index(): towards 0 a failure
 * of @order would be for lack of memory, towards 1000 for fragmentation;
 * -1000 when a suitable block is free.
 */
IOM_API int iom_fragmentation_index(unsigned int order,
				    const struct iom_contig_page_info *info);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_VMSTAT_H */
