/* SPDX-License-Identifier: MIT */
/*
 * Trace events with the kernel's tracepoint names (include/trace/events/
 * kmem.h, migrate.h, compaction.h, iommu.h), recorded into a per-machine
 * ring buffer. core is below every layer: mm, iommu, iomap and dma include
 * this header and record with one iom_trace() line each.
 *
 * Conventions: @m machine; @ev an enum iom_trace_event; @ph the Chrome
 * phase ('i' instant, 'B' begin, 'E' end); @a0..@a3 the event's u64
 * arguments, named by the table in trace.c.
 */
#ifndef IOM_CORE_TRACE_H
#define IOM_CORE_TRACE_H

#include <stdatomic.h>
#include <stdint.h>

#include <iommig/trace.h>

#include "machine.h"

enum iom_trace_event {
	IOM_TRACE_MM_PAGE_ALLOC,		/* pfn, order, gfp_flags, migratetype */
	IOM_TRACE_MM_PAGE_FREE,			/* pfn, order */
	IOM_TRACE_MM_MIGRATE_PAGES,		/* succeeded, failed, mode, reason */
	IOM_TRACE_MM_COMPACTION_BEGIN,		/* zone_start, migrate_pfn, free_pfn, zone_end */
	IOM_TRACE_MM_COMPACTION_END,		/* zone_start, migrate_pfn, free_pfn, status */
	IOM_TRACE_MM_MIGRATE_PAGE_MOVE_MAPPING,	/* pfn, newpfn, index */
	IOM_TRACE_IOMAP_MIGRATEPAGECOPY,	/* pfn, newpfn, index */
	IOM_TRACE_DMA_MIGRATEPAGECOPY,		/* pfn, newpfn, size, domains (at the end) */
	IOM_TRACE_IOMMU_MIGRATE,		/* domain, iova, size/nr, mode | ret */
	IOM_TRACE_IOMMU_MAP,			/* domain, iova, paddr, size */
	IOM_TRACE_IOMMU_UNMAP,			/* domain, iova, size, unmapped_size */
	IOM_TRACE_IO_PAGE_FAULT,		/* domain, iova, flags */
	IOM_TRACE_NR_EVENTS,
};

struct iom_trace_state;

/* Record one event (trace.c); only called with tracing set up. */
void _iom_trace_record(struct iom_trace_state *ts, unsigned int ev, char ph,
		       uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3);

/* The machine's trace state, NULL until iom_trace_enable() first ran. */
static inline struct iom_trace_state *iom_trace_state_of(struct iom_machine *m)
{
	return (struct iom_trace_state *)atomic_load_explicit(
		&m->ext[IOM_MACHINE_EXT_TRACE].priv, memory_order_acquire);
}

/*
 * iom_trace() - record @ev on @m if tracing was ever enabled there. The
 * arguments are evaluated only then: never enabled, this is one load and
 * a branch; enabled, no lock (trace.c).
 */
#define iom_trace(m, ev, ph, a0, a1, a2, a3)					\
	do {									\
		struct iom_trace_state *__ts = iom_trace_state_of(m);		\
		if (__builtin_expect(__ts != NULL, 0))				\
			_iom_trace_record(__ts, (ev), (ph), (uint64_t)(a0),	\
					  (uint64_t)(a1), (uint64_t)(a2),	\
					  (uint64_t)(a3));			\
	} while (0)

#endif /* IOM_CORE_TRACE_H */
