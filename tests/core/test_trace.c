/* SPDX-License-Identifier: MIT */
/*
 * Trace events (src/core/trace.c): a machine records nothing until tracing
 * is enabled; page allocations and frees are recorded with their pfn and
 * order; one DMA page's migration records its steps in the order of the
 * path (move_mapping, iomap_migratepagecopy, dma_migratepagecopy begin,
 * iommu_migrate begin/end, dma end, mm_migrate_pages; in a batch the
 * IOMMU's batch encloses the steps); the export is
 * Chrome trace JSON with the required keys; a full ring overwrites its
 * oldest events and counts them as dropped; bad arguments are -EINVAL;
 * two threads recording at once lose no event and tear none.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iommig/compaction.h>
#include <iommig/dma-mapping.h>
#include <iommig/iomap.h>
#include <iommig/migrate.h>
#include <iommig/trace.h>

#include "mm_util.h"

#define PG IOM_PAGE_SIZE

static struct test_log tlog;

/*
 * strstr() without the sanitizers' interceptor, which measures the whole
 * haystack on every call (quadratic on an 8000-event export).
 */
static const char *sfind(const char *h, const char *n)
{
	size_t l = strlen(n);

	for (; *h; h++)
		if (*h == *n && strncmp(h, n, l) == 0)
			return h;
	return NULL;
}

/* The export of @m in a malloc'ed string. */
static char *export_json(struct iom_machine *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(iom_trace_export_json(m, f), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static size_t count_str(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = sfind(s, needle); p; p = sfind(p + 1, needle))
		n++;
	return n;
}

/*
 * Structure check: braces and brackets balance outside strings, the
 * document is one object with "traceEvents", and every event object has
 * name, ph, ts, pid, tid. Returns the number of events (not metadata).
 */
static size_t check_json(const char *s)
{
	int depth = 0, in_str = 0;
	size_t events = 0;

	assert_true(strncmp(s, "{\"traceEvents\":[", 16) == 0);
	for (const char *p = s; *p; p++) {
		if (in_str) {
			if (*p == '\\')
				p++;
			else if (*p == '"')
				in_str = 0;
			continue;
		}
		if (*p == '"')
			in_str = 1;
		else if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			assert_true(--depth >= 0);
	}
	assert_int_equal(depth, 0);
	assert_false(in_str);
	for (const char *p = sfind(s, "{\"name\":"); p; p = sfind(p + 1, "{\"name\":")) {
		const char *end = sfind(p, "}}");

		assert_non_null(end);
		if (strncmp(p, "{\"name\":\"process_name\"", 22) == 0) {
			p = end;
			continue;
		}
		events++;
		for (const char *k = p; k < end; k++)
			if (*k == '\n')
				fail_msg("newline inside an event");
		assert_true(sfind(p, "\"ph\":\"") < end);
		assert_true(sfind(p, "\"ts\":") < end);
		assert_true(sfind(p, "\"pid\":") < end);
		assert_true(sfind(p, "\"tid\":") < end);
		assert_true(sfind(p, "\"cat\":\"") < end);
		assert_true(sfind(p, "\"args\":{") < end);
	}
	return events;
}

static void test_disabled_machine_records_nothing(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_trace_stats st;
	struct iom_page *p;
	char *js;

	(void)state;
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	assert_non_null(p);
	iom___free_pages(m, p, 0);
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_false(st.enabled);
	assert_int_equal(st.recorded, 0);
	js = export_json(m);
	assert_int_equal(check_json(js), 0);
	free(js);

	/* enabled, then disabled: nothing more */
	assert_int_equal(iom_trace_enable(m, 64), 0);
	assert_int_equal(iom_trace_disable(m), 0);
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	iom___free_pages(m, p, 0);
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_false(st.enabled);
	assert_int_equal(st.size, 64);
	assert_int_equal(st.recorded, 0);
	iom_machine_destroy(m);
}

static void test_bad_arguments_are_einval(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_trace_stats st;

	(void)state;
	assert_int_equal(iom_trace_enable(NULL, 64), -EINVAL);
	assert_int_equal(iom_trace_enable(m, 0), -EINVAL);
	assert_int_equal(iom_trace_enable(m, (1UL << 24) + 1), -EINVAL);
	assert_int_equal(iom_trace_disable(NULL), -EINVAL);
	assert_int_equal(iom_trace_clear(NULL), -EINVAL);
	assert_int_equal(iom_trace_stats(NULL, &st), -EINVAL);
	assert_int_equal(iom_trace_stats(m, NULL), -EINVAL);
	assert_int_equal(iom_trace_export_json(NULL, stdout), -EINVAL);
	assert_int_equal(iom_trace_export_json(m, NULL), -EINVAL);
	assert_int_equal(iom_trace_export_json_path(m, NULL), -EINVAL);
	assert_int_equal(iom_trace_export_json_path(m, "/nonexistent-dir/x.json"), -ENOENT);
	/* a size is rounded up to a power of two */
	assert_int_equal(iom_trace_enable(m, 100), 0);
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_true(st.enabled);
	assert_int_equal(st.size, 128);
	iom_machine_destroy(m);
}

static void test_alloc_and_free_are_recorded(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_trace_stats st;
	struct iom_page *p[4];
	char want[96], *js;

	(void)state;
	assert_int_equal(iom_trace_enable(m, 1024), 0);
	for (int i = 0; i < 4; i++) {
		p[i] = iom_alloc_pages(m, IOM_GFP_KERNEL, (unsigned int)i);
		assert_non_null(p[i]);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(iom___free_pages(m, p[i], (unsigned int)i), 0);
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_int_equal(st.recorded, 8);
	assert_int_equal(st.dropped, 0);
	js = export_json(m);
	assert_int_equal(check_json(js), 8);
	assert_int_equal(count_str(js, "\"name\":\"mm_page_alloc\",\"cat\":\"mm\",\"ph\":\"i\""), 4);
	assert_int_equal(count_str(js, "\"name\":\"mm_page_free\""), 4);
	snprintf(want, sizeof(want), "\"pfn\":%lu,\"order\":3", iom_page_to_pfn(m, p[3]));
	assert_int_equal(count_str(js, want), 2);	/* its alloc and its free */
	free(js);

	/* clear forgets them; the path export writes a file */
	assert_int_equal(iom_trace_clear(m), 0);
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_int_equal(st.recorded, 0);
	{
		char path[] = "/tmp/iommig-trace-XXXXXX";
		int fd = mkstemp(path);

		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(iom_trace_export_json_path(m, path), 0);
		unlink(path);
	}
	iom_machine_destroy(m);
}

static void test_full_ring_overwrites_and_counts_drops(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_trace_stats st;
	char *js;

	(void)state;
	assert_int_equal(iom_trace_enable(m, 16), 0);
	for (int i = 0; i < 50; i++) {
		struct iom_page *p = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);

		assert_non_null(p);
		assert_int_equal(iom___free_pages(m, p, 0), 0);
	}
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_int_equal(st.size, 16);
	assert_int_equal(st.recorded, 100);
	assert_int_equal(st.dropped, 84);
	js = export_json(m);
	assert_int_equal(check_json(js), 16);	/* only the newest 16 */
	free(js);
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_int_equal(st.torn, 0);
	/* a new size: a new, empty ring */
	assert_int_equal(iom_trace_enable(m, 256), 0);
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_int_equal(st.size, 256);
	assert_int_equal(st.recorded, 0);
	iom_machine_destroy(m);
}

/* iommu_unmap and iommu_unmap_fast both record iommu_unmap, as __iommu_unmap() does. */
static void test_map_unmap_and_unmap_fast_are_recorded(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	struct iom_iommu_iotlb_gather gather;
	struct iom_iommu_domain *d;
	struct iom_iommu *iommu;
	struct iom_page *p;
	uint64_t phys;
	char *js;

	(void)state;
	p = iom_alloc_pages(m, IOM_GFP_KERNEL, 1);
	assert_non_null(p);
	phys = iom_page_to_phys(m, p);
	assert_int_equal(iom_iommu_create(m, NULL, &iommu), 0);
	d = iom_iommu_domain_alloc(iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(d);
	assert_int_equal(iom_trace_enable(m, 1024), 0);
	assert_int_equal(iom_iommu_map(d, 0x100000, phys, PG, IOM_IOMMU_READ), 0);
	assert_int_equal(iom_iommu_map(d, 0x200000, phys + PG, PG, IOM_IOMMU_READ), 0);
	assert_int_equal(iom_iommu_unmap(d, 0x100000, PG), PG);
	iom_iommu_iotlb_gather_init(&gather);
	assert_int_equal(iom_iommu_unmap_fast(d, 0x200000, PG, &gather), PG);
	iom_iommu_iotlb_sync(d, &gather);
	assert_int_equal(iom_trace_disable(m), 0);
	js = export_json(m);
	check_json(js);
	assert_int_equal(count_str(js, "\"name\":\"iommu_map\""), 2);
	assert_int_equal(count_str(js, "\"name\":\"iommu_unmap\""), 2);
	free(js);
	assert_int_equal(iom_iommu_domain_free(d), 0);
	assert_int_equal(iom_iommu_destroy(iommu), 0);
	iom_rcu_barrier();
	assert_int_equal(iom___free_pages(m, p, 1), 0);
	iom_machine_destroy(m);
}

static void test_compaction_is_a_begin_end_pair(void **state)
{
	struct iom_machine *m = test_machine(16, &tlog, NULL);
	const char *b, *e;
	char *js;

	(void)state;
	assert_int_equal(iom_trace_enable(m, 1 << 12), 0);
	assert_true(iom_compact_node(m, 0) >= 0);
	js = export_json(m);
	check_json(js);
	b = sfind(js, "\"name\":\"mm_compaction_begin\",\"cat\":\"mm\",\"ph\":\"B\"");
	assert_non_null(b);
	e = sfind(b, "\"name\":\"mm_compaction_end\",\"cat\":\"mm\",\"ph\":\"E\"");
	assert_non_null(e);
	assert_int_equal(count_str(js, "\"name\":\"mm_compaction_begin\""),
			 count_str(js, "\"name\":\"mm_compaction_end\""));
	free(js);
	iom_machine_destroy(m);
}

/* ---- one DMA page's migration ---------------------------------------- */

static struct iom_machine *alloc_m;

static struct iom_page *new_page(struct iom_page *page, unsigned long private)
{
	(void)page;
	(void)private;
	return iom_alloc_pages(alloc_m, IOM_GFP_HIGHUSER_MOVABLE, 0);
}

/* Offset in @js of the first event named @name with phase @ph after @from. */
static const char *find_ev(const char *js, const char *from, const char *name, char ph)
{
	char needle[96];
	const char *p;

	snprintf(needle, sizeof(needle), "\"name\":\"%s\",", name);
	for (p = sfind(from, needle); p; p = sfind(p + 1, needle)) {
		const char *q = sfind(p, "\"ph\":\"");

		if (q && q[6] == ph)
			return p;
	}
	(void)js;
	return NULL;
}

static void migrate_dma_page(enum iom_dma_migrate_mode mode)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	struct iom_device *dev;
	struct iom_list_head list = { &list, &list };
	struct iom_page *page;
	iom_dma_addr_t h;
	unsigned int nr = 0;
	const char *mm, *mv, *io, *db, *ib, *ie, *de;
	char *js;
	void *cpu;

	assert_int_equal(iom_iommu_create(m, NULL, &iommu), 0);
	d = iom_iommu_domain_alloc(iommu, IOM_IOMMU_DOMAIN_DMA);
	assert_non_null(d);
	assert_int_equal(iom_iommu_dma_init_domain(d, 1ULL << 20, 1ULL << 32), 0);
	assert_int_equal(iom_device_create(iommu, "dev0", &dev), 0);
	assert_int_equal(iom_iommu_attach_device(d, dev), 0);
	assert_int_equal(iom_dma_set_migrate_mode(dev, mode), 0);

	assert_int_equal(iom_trace_enable(m, 4096), 0);
	cpu = iom_dma_alloc_coherent(dev, 4 * PG, &h, IOM_GFP_KERNEL, 0);
	assert_non_null(cpu);
	js = export_json(m);
	assert_true(count_str(js, "\"name\":\"iommu_map\",\"cat\":\"iommu\"") >= 1);
	free(js);

	assert_int_equal(iom_trace_clear(m), 0);
	page = iom_dma_buffer_page(dev, cpu, PG);
	assert_non_null(page);
	alloc_m = m;
	assert_int_equal(iom_isolate_lru_page(m, page), 0);
	iom_put_page(m, page);	/* iom_dma_buffer_page()'s; isolate's stays */
	list_add_tail(&page->lru, &list);
	assert_int_equal(iom_migrate_pages(m, &list, new_page, NULL, 0, IOM_MIGRATE_SYNC,
					   IOM_MR_SYSCALL, &nr), 0);
	assert_int_equal(nr, 1);
	assert_int_equal(iom_trace_disable(m), 0);

	js = export_json(m);
	check_json(js);
	if (getenv("TRACE_DUMP"))
		fputs(js, stderr);
	if (mode == IOM_DMA_MIGRATE_PER_PAGE) {
		/*
		 * Inside one MM batch the DMA layer opens the IOMMU's batch
		 * before move_mapping and closes it after the copy: the
		 * iommu_migrate slice encloses the others.
		 */
		ib = find_ev(js, js, "iommu_migrate", 'B');
		assert_non_null(ib);
		mv = find_ev(js, ib, "mm_migrate_page_move_mapping", 'i');
		assert_non_null(mv);
		io = find_ev(js, mv, "iomap_migratepagecopy", 'i');
		assert_non_null(io);
		db = find_ev(js, io, "dma_migratepagecopy", 'B');
		assert_non_null(db);
		de = find_ev(js, db, "dma_migratepagecopy", 'E');
		assert_non_null(de);
		ie = find_ev(js, de, "iommu_migrate", 'E');
		assert_non_null(ie);
		de = ie;
	} else {
		mv = find_ev(js, js, "mm_migrate_page_move_mapping", 'i');
		assert_non_null(mv);
		io = find_ev(js, mv, "iomap_migratepagecopy", 'i');
		assert_non_null(io);
		db = find_ev(js, io, "dma_migratepagecopy", 'B');
		assert_non_null(db);
		ib = find_ev(js, db, "iommu_migrate", 'B');
		assert_non_null(ib);
		ie = find_ev(js, ib, "iommu_migrate", 'E');
		assert_non_null(ie);
		de = find_ev(js, ie, "dma_migratepagecopy", 'E');
		assert_non_null(de);
	}
	mm = find_ev(js, de, "mm_migrate_pages", 'i');
	assert_non_null(mm);
	assert_non_null(sfind(mm, "\"succeeded\":1,\"failed\":0"));
	assert_true(count_str(js, "\"cat\":\"dma\"") == 2);
	assert_true(count_str(js, "\"cat\":\"iomap\"") == 1);
	/* the new page was allocated before the old one was freed */
	assert_non_null(find_ev(js, js, "mm_page_alloc", 'i'));
	assert_true(find_ev(js, js, "mm_page_alloc", 'i') < mv);
	free(js);

	/* the device's access after the free faults */
	assert_int_equal(iom_trace_enable(m, 4096), 0);
	assert_int_equal(iom_dma_free_coherent(dev, 4 * PG, cpu, h, 0), 0);
	{
		unsigned char byte;

		assert_true(iom_device_dma_read(dev, h, &byte, 1) < 0);
	}
	js = export_json(m);
	assert_int_equal(count_str(js, "\"name\":\"io_page_fault\",\"cat\":\"iommu\""), 1);
	free(js);
	assert_int_equal(iom_iommu_detach_device(d, dev), 0);
	assert_int_equal(iom_device_destroy(dev), 0);
	assert_int_equal(iom_iommu_domain_free(d), 0);
	assert_int_equal(iom_iommu_destroy(iommu), 0);
	iom_rcu_barrier();
	assert_int_equal(iom_machine_bug_count(m), 0);
	iom_machine_destroy(m);
}

static void test_dma_page_migration_steps_in_order(void **state)
{
	(void)state;
	migrate_dma_page(IOM_DMA_MIGRATE_SEED);
	migrate_dma_page(IOM_DMA_MIGRATE_LAYERED);
	migrate_dma_page(IOM_DMA_MIGRATE_PER_PAGE);	/* through the IOMMU's batch API */
}

/* ---- two threads ------------------------------------------------------ */

enum { THREADS = 2, ROUNDS = 2000 };

struct worker {
	struct iom_machine *m;
	pthread_t t;
};

static void *alloc_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ROUNDS; i++) {
		struct iom_page *p = iom_alloc_pages(w->m, IOM_GFP_KERNEL, (unsigned int)(i & 1));

		if (!p)
			return (void *)1;
		if (iom___free_pages(w->m, p, (unsigned int)(i & 1)))
			return (void *)1;
	}
	return NULL;
}

/*
 * What this proves: with two threads allocating and freeing while tracing
 * is on, no event is lost or torn (recorded is exactly 2 per round per
 * thread, the export holds them all, half allocs, half frees, and from
 * two thread ids), and under TSan the recording path has no data race
 * with itself or with an export running at the same time.
 */
static void test_two_threads_record_every_event(void **state)
{
	struct iom_machine *m = test_machine(64, &tlog, NULL);
	struct worker w[THREADS];
	struct iom_trace_stats st;
	char *js;

	(void)state;
	assert_int_equal(iom_trace_enable(m, 1 << 14), 0);
	for (int i = 0; i < THREADS; i++) {
		w[i].m = m;
		assert_int_equal(pthread_create(&w[i].t, NULL, alloc_worker, &w[i]), 0);
	}
	js = export_json(m);	/* concurrent with the recorders */
	check_json(js);
	free(js);
	for (int i = 0; i < THREADS; i++) {
		void *ret;

		assert_int_equal(pthread_join(w[i].t, &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_int_equal(st.recorded, 2 * THREADS * ROUNDS);
	assert_int_equal(st.dropped, 0);
	js = export_json(m);
	assert_int_equal(check_json(js), 2 * THREADS * ROUNDS);
	assert_int_equal(count_str(js, "\"name\":\"mm_page_alloc\""), THREADS * ROUNDS);
	assert_int_equal(count_str(js, "\"name\":\"mm_page_free\""), THREADS * ROUNDS);
	assert_int_equal(iom_trace_stats(m, &st), 0);
	assert_int_equal(st.torn, 0);
	{
		/* two distinct thread ids */
		const char *p = sfind(js, "\"name\":\"mm_page_alloc\"");
		const char *t = sfind(p, "\"tid\":");
		unsigned long tid0 = strtoul(t + 6, NULL, 10);
		int other = 0;

		for (p = sfind(js, "\"tid\":"); p; p = sfind(p + 1, "\"tid\":")) {
			unsigned long tid = strtoul(p + 6, NULL, 10);

			if (tid && tid != tid0)
				other = 1;
		}
		assert_true(other);
	}
	free(js);
	iom_machine_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disabled_machine_records_nothing),
		cmocka_unit_test(test_bad_arguments_are_einval),
		cmocka_unit_test(test_alloc_and_free_are_recorded),
		cmocka_unit_test(test_full_ring_overwrites_and_counts_drops),
		cmocka_unit_test(test_map_unmap_and_unmap_fast_are_recorded),
		cmocka_unit_test(test_compaction_is_a_begin_end_pair),
		cmocka_unit_test(test_dma_page_migration_steps_in_order),
		cmocka_unit_test(test_two_threads_record_every_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
