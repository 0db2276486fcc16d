/* SPDX-License-Identifier: MIT */
/*
 * libiommig - trace events with the kernel's tracepoint names
 * (mm_page_alloc, mm_migrate_pages, iommu_map, io_page_fault, the steps of
 * a DMA page's migration...), recorded per machine into a ring buffer and
 * exported as Chrome trace event JSON: open the file in chrome://tracing
 * or https://ui.perfetto.dev to see one migration across MM, IOMAP, DMA
 * and IOMMU on a timeline.
 */
#ifndef IOMMIG_TRACE_H
#define IOMMIG_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <iommig/export.h>
#include <iommig/machine.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What iom_trace_stats() reports. */
struct iom_trace_stats {
	bool enabled;
	uint64_t size;		/* ring slots (a power of two), 0 before enable */
	uint64_t recorded;	/* events recorded since enable or clear */
	uint64_t dropped;	/* of those, overwritten by newer ones */
	uint64_t torn;		/* skipped by the last export: being written */
};

/**
 * iom_trace_enable() - start recording @m's trace events
 * @m: the machine
 * @size_in_events: ring slots, rounded up to a power of two (16 .. 2^24);
 *	when the oldest event is overwritten the dropped count grows.
 *	A size other than the current ring's starts a new, empty ring.
 *
 * Context: any thread; recording threads need no lock.
 * Return: 0, -EINVAL for a NULL @m or a size out of range, -ENOMEM.
 */
IOM_API int iom_trace_enable(struct iom_machine *m, size_t size_in_events);

/**
 * iom_trace_disable() - stop recording; the ring keeps its events
 * @m: the machine
 *
 * Context: any thread. An event being recorded may still land.
 * Return: 0, -EINVAL for a NULL @m.
 */
IOM_API int iom_trace_disable(struct iom_machine *m);

/**
 * iom_trace_clear() - forget the recorded events and the drop count
 * @m: the machine
 *
 * Context: any thread; best not while others record (their events may be
 * counted in either epoch).
 * Return: 0, -EINVAL for a NULL @m.
 */
IOM_API int iom_trace_clear(struct iom_machine *m);

/**
 * iom_trace_export_json() - write the recorded events as Chrome trace JSON
 * @m: the machine
 * @f: an open stream
 *
 * {"traceEvents":[...]}: "name" the kernel's tracepoint, "cat" the layer
 * (mm, iomap, dma, iommu), "ph" "i" or "B"/"E", "ts" in microseconds of
 * CLOCK_MONOTONIC, "pid" the machine, "tid" the thread, "args" named.
 * Events are sorted by time.
 *
 * Context: any thread, also while others record.
 * Return: 0, -EINVAL for NULL arguments, -ENOMEM, -EIO on a write error.
 */
IOM_API int iom_trace_export_json(struct iom_machine *m, FILE *f);

/**
 * iom_trace_export_json_path() - iom_trace_export_json() to a new file
 * @m: the machine
 * @path: the file, created or truncated
 *
 * Context: any thread.
 * Return: 0 or -errno (of fopen(), or as iom_trace_export_json()).
 */
IOM_API int iom_trace_export_json_path(struct iom_machine *m, const char *path);

/**
 * iom_trace_stats() - the ring's counters
 * @m: the machine
 * @st: filled in
 *
 * Context: any thread.
 * Return: 0, -EINVAL for NULL arguments.
 */
IOM_API int iom_trace_stats(struct iom_machine *m, struct iom_trace_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* IOMMIG_TRACE_H */
