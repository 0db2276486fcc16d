// SPDX-License-Identifier: MIT
/*
 * Trace events (kernel/trace: the tracepoints of include/trace/events
 * and the ring buffer behind them), much simplified: one ring of fixed-size
 * records per machine, a slot claimed with an atomic fetch_add and
 * published with a per-slot sequence number (a seqcount: the exporter skips
 * a record being written), the oldest overwritten; no per-cpu buffers.
 * Export is Chrome trace event JSON, for chrome://tracing or Perfetto.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "debug.h"
#include "trace.h"

#define TRACE_MIN_SIZE	16UL
#define TRACE_MAX_SIZE	(1UL << 24)

/*
 * One event, 64 bytes. Every field is atomic (stored relaxed) so a reader
 * racing a writer is no data race; @seq says whether the fields are whole:
 * 2 * index + 1 while written, 2 * index + 2 once done.
 */
struct trace_rec {
	_Atomic uint64_t seq;
	_Atomic uint64_t ts;		/* CLOCK_MONOTONIC ns */
	_Atomic uint64_t meta;		/* tid << 32 | ev << 8 | ph */
	_Atomic uint64_t args[4];
	uint64_t pad;
};

struct trace_ring {
	uint64_t size, mask;
	_Atomic uint64_t head;		/* next index to claim */
	_Atomic uint64_t base;		/* head at the last clear */
	struct trace_ring *retired;	/* older rings, freed with the state */
	struct trace_rec recs[];
};

struct iom_trace_state {
	atomic_bool on;
	struct trace_ring *_Atomic ring;
	_Atomic uint64_t torn;		/* skipped by the last export */
	unsigned int id;		/* "pid" in the JSON */
	pthread_mutex_t lock;		/* enable/disable/clear/export */
	struct iom_machine *m;
};

/* Each event's name, layer and argument names (NULL: unused). */
static const struct trace_event_desc {
	const char *name, *cat;
	const char *arg[4];
	unsigned int hex;		/* bit i: print arg i as a hex string */
} trace_events[IOM_TRACE_NR_EVENTS] = {
	[IOM_TRACE_MM_PAGE_ALLOC] = { "mm_page_alloc", "mm",
		{ "pfn", "order", "gfp_flags", "migratetype" }, 1U << 2 },
	[IOM_TRACE_MM_PAGE_FREE] = { "mm_page_free", "mm", { "pfn", "order" }, 0 },
	[IOM_TRACE_MM_MIGRATE_PAGES] = { "mm_migrate_pages", "mm",
		{ "succeeded", "failed", "mode", "reason" }, 0 },
	[IOM_TRACE_MM_COMPACTION_BEGIN] = { "mm_compaction_begin", "mm",
		{ "zone_start", "migrate_pfn", "free_pfn", "zone_end" }, 0 },
	[IOM_TRACE_MM_COMPACTION_END] = { "mm_compaction_end", "mm",
		{ "zone_start", "migrate_pfn", "free_pfn", "status" }, 0 },
	[IOM_TRACE_MM_MIGRATE_PAGE_MOVE_MAPPING] = { "mm_migrate_page_move_mapping", "mm",
		{ "pfn", "newpfn", "index" }, 0 },
	[IOM_TRACE_IOMAP_MIGRATEPAGECOPY] = { "iomap_migratepagecopy", "iomap",
		{ "pfn", "newpfn", "index" }, 0 },
	[IOM_TRACE_DMA_MIGRATEPAGECOPY] = { "dma_migratepagecopy", "dma",
		{ "pfn", "newpfn", "size", "domains" }, 0 },
	[IOM_TRACE_IOMMU_MIGRATE] = { "iommu_migrate", "iommu",
		{ "domain", "iova", "nr_ranges", "mode_or_ret" }, 1U << 1 },
	[IOM_TRACE_IOMMU_MAP] = { "iommu_map", "iommu",
		{ "domain", "iova", "paddr", "size" }, (1U << 1) | (1U << 2) },
	[IOM_TRACE_IOMMU_UNMAP] = { "iommu_unmap", "iommu",
		{ "domain", "iova", "size", "unmapped_size" }, 1U << 1 },
	[IOM_TRACE_IO_PAGE_FAULT] = { "io_page_fault", "iommu",
		{ "domain", "iova", "flags" }, (1U << 1) | (1U << 2) },
};

static atomic_uint trace_next_id = 1;

static uint32_t trace_tid(void)
{
	static _Thread_local uint32_t tid;

	if (unlikely(!tid))
		tid = (uint32_t)syscall(SYS_gettid);
	return tid;
}

void _iom_trace_record(struct iom_trace_state *ts, unsigned int ev, char ph,
		       uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
	struct trace_ring *r;
	struct trace_rec *rec;
	struct timespec now;
	uint64_t idx;

	if (!atomic_load_explicit(&ts->on, memory_order_relaxed))
		return;
	r = atomic_load_explicit(&ts->ring, memory_order_acquire);
	clock_gettime(CLOCK_MONOTONIC, &now);
	idx = atomic_fetch_add_explicit(&r->head, 1, memory_order_relaxed);
	rec = &r->recs[idx & r->mask];
	/*
	 * The odd sequence must be visible before any field changes: each
	 * field store is a release (no fence, which ThreadSanitizer does
	 * not model), so the seq store before it cannot move after it.
	 */
	atomic_store_explicit(&rec->seq, 2 * idx + 1, memory_order_relaxed);
	atomic_store_explicit(&rec->ts, (uint64_t)now.tv_sec * 1000000000ULL +
			      (uint64_t)now.tv_nsec, memory_order_release);
	atomic_store_explicit(&rec->meta, (uint64_t)trace_tid() << 32 |
			      (uint64_t)(ev & 0xffffff) << 8 | (unsigned char)ph,
			      memory_order_release);
	atomic_store_explicit(&rec->args[0], a0, memory_order_release);
	atomic_store_explicit(&rec->args[1], a1, memory_order_release);
	atomic_store_explicit(&rec->args[2], a2, memory_order_release);
	atomic_store_explicit(&rec->args[3], a3, memory_order_release);
	atomic_store_explicit(&rec->seq, 2 * idx + 2, memory_order_release);
}

static size_t ring_bytes(uint64_t size)
{
	return sizeof(struct trace_ring) + size * sizeof(struct trace_rec);
}

static void trace_release(void *priv)
{
	struct iom_trace_state *ts = priv;
	struct trace_ring *r = atomic_load(&ts->ring);

	while (r) {
		struct trace_ring *next = r->retired;

		iom_meta_free(ts->m, r, ring_bytes(r->size));
		r = next;
	}
	pthread_mutex_destroy(&ts->lock);
	iom_meta_free(ts->m, ts, sizeof(*ts));
}

static void *trace_make(struct iom_machine *m)
{
	struct iom_trace_state *ts = iom_meta_alloc(m, sizeof(*ts), 64, true);

	if (!ts)
		return NULL;
	atomic_init(&ts->on, false);
	atomic_init(&ts->ring, NULL);
	atomic_init(&ts->torn, 0);
	ts->id = atomic_fetch_add(&trace_next_id, 1);
	ts->m = m;
	IOM_CHECK_PTHREAD(pthread_mutex_init(&ts->lock, NULL));
	return ts;
}

int iom_trace_enable(struct iom_machine *m, size_t size_in_events)
{
	struct iom_trace_state *ts;
	struct trace_ring *r;
	uint64_t size = TRACE_MIN_SIZE;

	if (!m || !size_in_events || size_in_events > TRACE_MAX_SIZE)
		return -EINVAL;
	while (size < size_in_events)
		size <<= 1;
	/*
	 * The ring is made before the state is published: a recorder that
	 * sees the state sees a ring (iom_trace_state_of() is an acquire).
	 */
	ts = atomic_load_explicit(&m->ext[IOM_MACHINE_EXT_TRACE].priv,
				  memory_order_acquire);
	if (!ts) {
		IOM_CHECK_PTHREAD(pthread_mutex_lock(&m->ext_lock));
		ts = atomic_load(&m->ext[IOM_MACHINE_EXT_TRACE].priv);
		if (!ts) {
			ts = trace_make(m);
			if (!ts) {
				IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->ext_lock));
				return -ENOMEM;
			}
			r = iom_meta_alloc(m, ring_bytes(size), 64, true);
			if (!r) {
				IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->ext_lock));
				trace_release(ts);
				return -ENOMEM;
			}
			r->size = size;
			r->mask = size - 1;
			atomic_store(&ts->ring, r);
			atomic_store(&ts->on, true);
			m->ext[IOM_MACHINE_EXT_TRACE].release = trace_release;
			atomic_store_explicit(&m->ext[IOM_MACHINE_EXT_TRACE].priv, ts,
					      memory_order_release);
			IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->ext_lock));
			return 0;
		}
		IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->ext_lock));
	}
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&ts->lock));
	r = atomic_load(&ts->ring);
	if (r->size != size) {
		/* recorders may still hold the old ring: retire, do not free */
		struct trace_ring *nr = iom_meta_alloc(m, ring_bytes(size), 64, true);

		if (!nr) {
			IOM_CHECK_PTHREAD(pthread_mutex_unlock(&ts->lock));
			return -ENOMEM;
		}
		nr->size = size;
		nr->mask = size - 1;
		nr->retired = r;
		atomic_store_explicit(&ts->ring, nr, memory_order_release);
	}
	atomic_store(&ts->on, true);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&ts->lock));
	return 0;
}

int iom_trace_disable(struct iom_machine *m)
{
	struct iom_trace_state *ts;

	if (!m)
		return -EINVAL;
	ts = iom_trace_state_of(m);
	if (ts)
		atomic_store(&ts->on, false);
	return 0;
}

int iom_trace_clear(struct iom_machine *m)
{
	struct iom_trace_state *ts;
	struct trace_ring *r;

	if (!m)
		return -EINVAL;
	ts = iom_trace_state_of(m);
	if (!ts)
		return 0;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&ts->lock));
	r = atomic_load(&ts->ring);
	atomic_store(&r->base, atomic_load(&r->head));
	atomic_store(&ts->torn, 0);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&ts->lock));
	return 0;
}

static void ring_counts(struct trace_ring *r, uint64_t *head, uint64_t *recorded,
			uint64_t *dropped)
{
	uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
	uint64_t b = atomic_load(&r->base);
	uint64_t n = h > b ? h - b : 0;

	*head = h;
	*recorded = n;
	*dropped = n > r->size ? n - r->size : 0;
}

int iom_trace_stats(struct iom_machine *m, struct iom_trace_stats *st)
{
	struct iom_trace_state *ts;
	struct trace_ring *r;
	uint64_t head;

	if (!m || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	ts = iom_trace_state_of(m);
	if (!ts)
		return 0;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&ts->lock));
	r = atomic_load(&ts->ring);
	st->enabled = atomic_load(&ts->on);
	st->size = r->size;
	ring_counts(r, &head, &st->recorded, &st->dropped);
	st->torn = atomic_load(&ts->torn);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&ts->lock));
	return 0;
}

/* A record copied out of the ring. */
struct trace_ev {
	uint64_t idx, ts, meta, args[4];
};

static int trace_ev_cmp(const void *pa, const void *pb)
{
	const struct trace_ev *a = pa, *b = pb;

	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Copy the whole records of [@from, @to) out; count the torn ones. */
static size_t ring_snapshot(struct trace_ring *r, uint64_t from, uint64_t to,
			    struct trace_ev *out, uint64_t *torn)
{
	size_t n = 0;

	for (uint64_t i = from; i < to; i++) {
		struct trace_rec *rec = &r->recs[i & r->mask];
		uint64_t s = atomic_load_explicit(&rec->seq, memory_order_acquire);
		struct trace_ev *e = &out[n];

		if (s != 2 * i + 2) {
			(*torn)++;	/* being written, or lapped */
			continue;
		}
		/*
		 * Acquire loads of the fields (no fence): the second read of
		 * seq cannot move before them, and a field that saw a newer
		 * writer's store makes that writer's odd seq visible to it.
		 */
		e->idx = i;
		e->ts = atomic_load_explicit(&rec->ts, memory_order_acquire);
		e->meta = atomic_load_explicit(&rec->meta, memory_order_acquire);
		for (int j = 0; j < 4; j++)
			e->args[j] = atomic_load_explicit(&rec->args[j], memory_order_acquire);
		if (atomic_load_explicit(&rec->seq, memory_order_relaxed) != s) {
			(*torn)++;
			continue;
		}
		n++;
	}
	return n;
}

static void write_event(FILE *f, unsigned int pid, const struct trace_ev *e)
{
	unsigned int ev = (unsigned int)(e->meta >> 8) & 0xffffff;
	char ph = (char)(e->meta & 0xff);
	const struct trace_event_desc *d = &trace_events[ev];

	fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"%c\",", d->name,
		d->cat, ph);
	if (ph == 'i')
		fputs("\"s\":\"t\",", f);
	fprintf(f, "\"ts\":%" PRIu64 ".%03u,\"pid\":%u,\"tid\":%u,\"args\":{",
		e->ts / 1000, (unsigned int)(e->ts % 1000), pid,
		(unsigned int)(e->meta >> 32));
	for (int j = 0, first = 1; j < 4; j++) {
		if (!d->arg[j])
			continue;
		if (d->hex & (1U << j))
			fprintf(f, "%s\"%s\":\"%#" PRIx64 "\"", first ? "" : ",",
				d->arg[j], e->args[j]);
		else
			fprintf(f, "%s\"%s\":%" PRId64, first ? "" : ",", d->arg[j],
				(int64_t)e->args[j]);
		first = 0;
	}
	fputs("}}", f);
}

int iom_trace_export_json(struct iom_machine *m, FILE *f)
{
	struct iom_trace_state *ts;
	struct trace_ev *evs = NULL;
	uint64_t head, recorded, dropped, torn = 0;
	size_t n = 0;
	unsigned int pid;

	if (!m || !f)
		return -EINVAL;
	ts = iom_trace_state_of(m);
	pid = ts ? ts->id : 0;
	if (ts) {
		struct trace_ring *r;

		IOM_CHECK_PTHREAD(pthread_mutex_lock(&ts->lock));
		r = atomic_load(&ts->ring);
		ring_counts(r, &head, &recorded, &dropped);
		if (recorded - dropped) {
			evs = malloc((recorded - dropped) * sizeof(*evs));
			if (!evs) {
				IOM_CHECK_PTHREAD(pthread_mutex_unlock(&ts->lock));
				return -ENOMEM;
			}
			n = ring_snapshot(r, head - (recorded - dropped), head, evs, &torn);
		}
		atomic_store(&ts->torn, torn);
		IOM_CHECK_PTHREAD(pthread_mutex_unlock(&ts->lock));
		if (n)
	qsort(evs, n, sizeof(*evs), trace_ev_cmp);
	}
	fprintf(f, "{\"traceEvents\":[\n{\"name\":\"process_name\",\"ph\":\"M\","
		"\"pid\":%u,\"tid\":0,\"args\":{\"name\":\"iommig machine %u\"}}",
		pid, pid);
	for (size_t i = 0; i < n; i++)
		write_event(f, pid, &evs[i]);
	fputs("\n],\"displayTimeUnit\":\"ns\"}\n", f);
	free(evs);
	if (fflush(f) || ferror(f))
		return -EIO;
	return 0;
}

int iom_trace_export_json_path(struct iom_machine *m, const char *path)
{
	FILE *f;
	int ret;

	if (!m || !path)
		return -EINVAL;
	f = fopen(path, "w");
	if (!f)
		return -errno;
	ret = iom_trace_export_json(m, f);
	if (fclose(f) && !ret)
		ret = -EIO;
	return ret;
}
