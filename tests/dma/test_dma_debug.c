/* SPDX-License-Identifier: MIT */
/*
 * dma-debug (src/dma/dma-debug.c) driven through its hooks, as the DMA API
 * calls them: clean map/unmap, sg and coherent pairs report nothing; each
 * misuse class is reported once, with the kernel's text prefixed by the
 * device name, and counted once; an unmap the DMA API refused (@done
 * false) keeps its entry; overlapping writable mappings of one cacheline
 * are caught and DMA_TO_DEVICE or SKIP_CPU_SYNC ones are not; a released
 * device's pending mappings are counted and stay tracked; a machine
 * without dma_debug tracks and reports nothing; hostile arguments (NULL
 * lists, bad directions, address overflow) are reported without harm;
 * and threads mapping and unmapping at once leave a consistent table.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "util.h"

#include <iommig/dma-mapping.h>
#include <iommig/iommu.h>

#include "dma/dma-debug.h"

static struct test_log tlog;

struct env {
	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_device *dev;
};

static void env_up(struct env *e, bool dma_debug)
{
	struct iom_machine_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 16ULL << 20;
	cfg.dma_debug = dma_debug;
	e->m = test_machine(16, &tlog, &cfg);
	assert_non_null(e->m);
	assert_int_equal(iom_iommu_create(e->m, NULL, &e->iommu), 0);
	assert_int_equal(iom_device_create(e->iommu, "dd0", &e->dev), 0);
	test_log_reset(&tlog);
}

static void env_down(struct env *e)
{
	assert_int_equal(iom_device_destroy(e->dev), 0);
	assert_int_equal(iom_iommu_destroy(e->iommu), 0);
	iom_machine_destroy(e->m);
}

static struct iom_dma_debug_stats stats(struct env *e)
{
	struct iom_dma_debug_stats st;

	assert_int_equal(iom_dma_debug_get_stats(e->m, &st), 0);
	return st;
}

/* Exactly @n reports of @class and none of any other class. */
static void assert_only(struct env *e, enum iom_dma_debug_error class,
			uint64_t n)
{
	struct iom_dma_debug_stats st = stats(e);

	for (int i = 0; i < IOM_DMA_DEBUG_NR_ERRORS; i++)
		assert_int_equal(st.errors[i], i == (int)class ? n : 0);
	assert_int_equal(iom_machine_bug_count(e->m), 0);
}

/* How many messages since the last reset contain @needle. */
static unsigned int log_count(const char *needle)
{
	unsigned int n = 0;

	for (const char *p = strstr(tlog.text, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void assert_none(struct env *e)
{
	struct iom_dma_debug_stats st = stats(e);

	for (int i = 0; i < IOM_DMA_DEBUG_NR_ERRORS; i++)
		assert_int_equal(st.errors[i], 0);
	assert_int_equal(tlog.nr_warn + tlog.nr_err, 0);
}

static struct iom_page *page(struct env *e, unsigned long n)
{
	struct iom_page *p = iom_pfn_to_page(e->m, 0x100 + n);

	assert_non_null(p);
	return p;
}

/* A checked single mapping of page @n at @addr. */
static void map(struct env *e, unsigned long n, size_t off, size_t size,
		int dir, iom_dma_addr_t addr)
{
	debug_dma_map_page(e->dev, page(e, n), off, size, dir, addr, 0);
	debug_dma_mapping_error(e->dev, addr);
}

static void test_clean_pairs_report_nothing(void **state)
{
	struct iom_scatterlist sg[3] = {
		{ .page = NULL, .offset = 0, .length = 4096 },
		{ .page = NULL, .offset = 0, .length = 4096 },
		{ .page = NULL, .offset = 0, .length = 4096 },
	};
	int buf;
	struct env e;

	(void)state;
	env_up(&e, true);
	sg[0].page = page(&e, 10);
	sg[1].page = page(&e, 11);
	sg[2].page = page(&e, 12);

	map(&e, 1, 0, 4096, IOM_DMA_FROM_DEVICE, 0x100000);
	debug_dma_sync_single_for_cpu(e.dev, 0x100000, 4096, IOM_DMA_FROM_DEVICE);
	debug_dma_sync_single_for_device(e.dev, 0x100800, 2048, IOM_DMA_FROM_DEVICE);
	map(&e, 2, 0, 8192, IOM_DMA_TO_DEVICE, 0x200000);
	map(&e, 4, 0, 4096, IOM_DMA_BIDIRECTIONAL, 0x300000);
	debug_dma_sync_single_for_cpu(e.dev, 0x300000, 16, IOM_DMA_TO_DEVICE);
	assert_int_equal(stats(&e).nr_entries, 3);

	/* iommu_dma_map_sg() packs three pages into one DMA segment */
	sg[0].dma_address = 0x400000;
	sg[0].dma_length = 3 * 4096;
	debug_dma_map_sg(e.dev, sg, 3, 1, IOM_DMA_FROM_DEVICE, 0);
	debug_dma_alloc_coherent(e.dev, 4096, 0x500000, &buf, 0);
	assert_int_equal(stats(&e).nr_entries, 5);

	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_FROM_DEVICE, true);
	debug_dma_unmap_page(e.dev, 0x200000, 8192, IOM_DMA_TO_DEVICE, true);
	debug_dma_unmap_page(e.dev, 0x300000, 4096, IOM_DMA_BIDIRECTIONAL, true);
	debug_dma_unmap_sg(e.dev, sg, 3, IOM_DMA_FROM_DEVICE, true);
	debug_dma_free_coherent(e.dev, 4096, &buf, 0x500000, true);
	assert_int_equal(debug_dma_device_release(e.dev), 0);

	assert_none(&e);
	assert_int_equal(stats(&e).nr_entries, 0);
	assert_int_equal(stats(&e).max_entries, 5);
	env_down(&e);
}

static void test_free_of_unmapped_address_is_reported(void **state)
{
	struct env e;

	(void)state;
	env_up(&e, true);
	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_TO_DEVICE, true);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver tries to free DMA memory it has not allocated "
		"[device address=0x0000000000100000] [size=4096 bytes]"));
	assert_only(&e, IOM_DMA_DEBUG_FREE_INVALID, 1);
	assert_int_equal(tlog.nr_warn, 1);

	/* the error value itself: the kernel's other text, same class */
	test_log_reset(&tlog);
	debug_dma_unmap_page(e.dev, IOM_DMA_MAPPING_ERROR, 4096, IOM_DMA_TO_DEVICE, true);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver tries to free an invalid DMA memory address"));
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_FREE_INVALID], 2);

	/* a mapping of another device is not ours to free */
	{
		struct iom_device *other;

		assert_int_equal(iom_device_create(e.iommu, "dd1", &other), 0);
		map(&e, 1, 0, 4096, IOM_DMA_TO_DEVICE, 0x200000);
		test_log_reset(&tlog);
		debug_dma_unmap_page(other, 0x200000, 4096, IOM_DMA_TO_DEVICE, true);
		assert_int_equal(1, log_count("dd1: DMA-API: device driver tries to free "
					      "DMA memory it has not allocated"));
		assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_FREE_INVALID], 3);
		assert_int_equal(stats(&e).nr_entries, 1);
		debug_dma_unmap_page(e.dev, 0x200000, 4096, IOM_DMA_TO_DEVICE, true);
		assert_int_equal(iom_device_destroy(other), 0);
	}
	assert_int_equal(stats(&e).nr_entries, 0);
	env_down(&e);
}

static void test_unmap_with_other_size_is_reported_and_kept_until_done(void **state)
{
	struct env e;

	(void)state;
	env_up(&e, true);
	map(&e, 1, 0, 4096, IOM_DMA_TO_DEVICE, 0x100000);
	/* the DMA API refuses a wrong size: the entry must stay */
	debug_dma_unmap_page(e.dev, 0x100000, 8192, IOM_DMA_TO_DEVICE, false);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver frees DMA memory with different size "
		"[device address=0x0000000000100000] [map size=4096 bytes] "
		"[unmap size=8192 bytes]"));
	assert_only(&e, IOM_DMA_DEBUG_UNMAP_SIZE, 1);
	assert_int_equal(tlog.nr_warn, 1);
	assert_int_equal(stats(&e).nr_entries, 1);

	/* the driver then gets it right: nothing more, the entry goes */
	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_TO_DEVICE, true);
	assert_only(&e, IOM_DMA_DEBUG_UNMAP_SIZE, 1);
	assert_int_equal(stats(&e).nr_entries, 0);
	env_down(&e);
}

static void test_unmap_with_wrong_function_is_reported(void **state)
{
	int buf;
	struct env e;

	(void)state;
	env_up(&e, true);
	map(&e, 1, 0, 4096, IOM_DMA_BIDIRECTIONAL, 0x100000);
	debug_dma_free_coherent(e.dev, 4096, &buf, 0x100000, true);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver frees DMA memory with wrong function "
		"[device address=0x0000000000100000] [size=4096 bytes] "
		"[mapped as single] [unmapped as coherent]"));
	assert_only(&e, IOM_DMA_DEBUG_UNMAP_TYPE, 1);
	assert_int_equal(tlog.nr_warn, 1);
	assert_int_equal(stats(&e).nr_entries, 0);
	env_down(&e);
}

static void test_unmap_with_other_direction_is_reported(void **state)
{
	struct env e;

	(void)state;
	env_up(&e, true);
	map(&e, 1, 0, 4096, IOM_DMA_TO_DEVICE, 0x100000);
	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_FROM_DEVICE, true);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver frees DMA memory with different direction "
		"[device address=0x0000000000100000] [size=4096 bytes] "
		"[mapped with DMA_TO_DEVICE] [unmapped with DMA_FROM_DEVICE]"));
	assert_only(&e, IOM_DMA_DEBUG_UNMAP_DIR, 1);
	assert_int_equal(tlog.nr_warn, 1);
	env_down(&e);
}

static void test_coherent_free_with_other_cpu_address_is_reported(void **state)
{
	int buf[2];
	char want[256];
	struct env e;

	(void)state;
	env_up(&e, true);
	debug_dma_alloc_coherent(e.dev, 8192, 0x100000, &buf[0], 0);
	debug_dma_free_coherent(e.dev, 8192, &buf[1], 0x100000, true);
	snprintf(want, sizeof(want),
		 "dd0: DMA-API: device driver frees DMA memory with different CPU address "
		 "[device address=0x0000000000100000] [size=8192 bytes] "
		 "[cpu alloc address=0x%016llx] [cpu free address=0x%016llx]",
		 (unsigned long long)(uintptr_t)&buf[0],
		 (unsigned long long)(uintptr_t)&buf[1]);
	assert_int_equal(1, log_count(want));
	assert_only(&e, IOM_DMA_DEBUG_UNMAP_CPU_ADDR, 1);
	assert_int_equal(tlog.nr_warn, 1);

	/* a NULL handle is compared too, not skipped */
	debug_dma_alloc_coherent(e.dev, 4096, 0x200000, &buf[0], 0);
	debug_dma_free_coherent(e.dev, 4096, NULL, 0x200000, true);
	assert_only(&e, IOM_DMA_DEBUG_UNMAP_CPU_ADDR, 2);
	assert_int_equal(stats(&e).nr_entries, 0);
	env_down(&e);
}

static void test_unmap_sg_with_other_count_is_reported(void **state)
{
	struct iom_scatterlist sg[3];
	struct env e;

	(void)state;
	env_up(&e, true);
	memset(sg, 0, sizeof(sg));
	for (int i = 0; i < 3; i++) {
		sg[i].page = page(&e, 20 + (unsigned long)i);
		sg[i].length = 4096;
	}
	sg[0].dma_address = 0x100000;
	sg[0].dma_length = 3 * 4096;
	debug_dma_map_sg(e.dev, sg, 3, 1, IOM_DMA_FROM_DEVICE, 0);
	debug_dma_unmap_sg(e.dev, sg, 2, IOM_DMA_FROM_DEVICE, true);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver frees DMA sg list with different entry count "
		"[map count=3] [unmap count=2]"));
	assert_only(&e, IOM_DMA_DEBUG_SG_COUNT, 1);
	assert_int_equal(tlog.nr_warn, 1);
	assert_int_equal(stats(&e).nr_entries, 0);
	env_down(&e);
}

static void test_unmap_without_mapping_error_check_is_reported(void **state)
{
	struct env e;

	(void)state;
	env_up(&e, true);
	debug_dma_map_page(e.dev, page(&e, 1), 0, 4096, IOM_DMA_TO_DEVICE, 0x100000, 0);
	/* refused once, done next time: reported only the first time */
	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_TO_DEVICE, false);
	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_TO_DEVICE, true);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver failed to check map error"
		"[device address=0x0000000000100000] [size=4096 bytes] [mapped as single]"));
	assert_only(&e, IOM_DMA_DEBUG_MAPPING_ERROR_UNCHECKED, 1);
	assert_int_equal(tlog.nr_warn, 1);

	/* a mapping that failed is not tracked at all */
	debug_dma_map_page(e.dev, page(&e, 1), 0, 4096, IOM_DMA_TO_DEVICE,
			   IOM_DMA_MAPPING_ERROR, 0);
	assert_int_equal(stats(&e).nr_entries, 0);
	/* sg and coherent entries need no check */
	{
		struct iom_scatterlist sg = { .page = page(&e, 2), .length = 4096,
					      .dma_address = 0x200000, .dma_length = 4096 };
		int buf;

		debug_dma_map_sg(e.dev, &sg, 1, 1, IOM_DMA_TO_DEVICE, 0);
		debug_dma_unmap_sg(e.dev, &sg, 1, IOM_DMA_TO_DEVICE, true);
		debug_dma_alloc_coherent(e.dev, 4096, 0x300000, &buf, 0);
		debug_dma_free_coherent(e.dev, 4096, &buf, 0x300000, true);
	}
	assert_only(&e, IOM_DMA_DEBUG_MAPPING_ERROR_UNCHECKED, 1);
	env_down(&e);
}

static void test_sync_outside_mapping_is_reported(void **state)
{
	struct env e;

	(void)state;
	env_up(&e, true);
	map(&e, 1, 0, 4096, IOM_DMA_FROM_DEVICE, 0x100000);
	debug_dma_sync_single_for_cpu(e.dev, 0x100800, 4096, IOM_DMA_FROM_DEVICE);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver syncs DMA memory outside allocated range "
		"[device address=0x0000000000100000] [allocation size=4096 bytes] "
		"[sync offset+size=6144]"));
	assert_only(&e, IOM_DMA_DEBUG_SYNC_RANGE, 1);
	assert_int_equal(tlog.nr_warn, 1);

	/* nothing mapped there at all: the kernel's "not allocated" text */
	test_log_reset(&tlog);
	debug_dma_sync_single_for_device(e.dev, 0x101000, 16, IOM_DMA_FROM_DEVICE);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver tries to sync DMA memory it has not allocated "
		"[device address=0x0000000000101000] [size=16 bytes]"));
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_SYNC_RANGE], 2);

	/* a large mapping is found from a sync far into it (chunks walked back) */
	test_log_reset(&tlog);
	map(&e, 8, 0, 1 << 20, IOM_DMA_FROM_DEVICE, 0x800000);
	debug_dma_sync_single_for_cpu(e.dev, 0x800000 + (1 << 20) - 64, 64,
				      IOM_DMA_FROM_DEVICE);
	assert_int_equal(tlog.nr_warn, 0);
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_SYNC_RANGE], 2);
	env_down(&e);
}

static void test_sync_in_wrong_direction_is_reported(void **state)
{
	struct env e;

	(void)state;
	env_up(&e, true);
	/* only the direction differs */
	map(&e, 1, 0, 4096, IOM_DMA_FROM_DEVICE, 0x100000);
	debug_dma_sync_single_for_cpu(e.dev, 0x100000, 4096, IOM_DMA_BIDIRECTIONAL);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver syncs DMA memory with different direction "
		"[device address=0x0000000000100000] [size=4096 bytes] "
		"[mapped with DMA_FROM_DEVICE] [synced with DMA_BIDIRECTIONAL]"));
	assert_only(&e, IOM_DMA_DEBUG_SYNC_DIR, 1);
	assert_int_equal(tlog.nr_warn, 1);

	/* a read-only mapping synced for the CPU as if the device wrote it */
	test_log_reset(&tlog);
	map(&e, 2, 0, 4096, IOM_DMA_TO_DEVICE, 0x200000);
	debug_dma_sync_single_for_cpu(e.dev, 0x200000, 4096, IOM_DMA_FROM_DEVICE);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver syncs device read-only DMA memory for cpu "
		"[device address=0x0000000000200000] [size=4096 bytes] "
		"[mapped with DMA_TO_DEVICE] [synced with DMA_FROM_DEVICE]"));
	assert_int_equal(1, log_count("syncs DMA memory with different direction"));
	assert_only(&e, IOM_DMA_DEBUG_SYNC_DIR, 3);

	/* a write-only mapping synced to the device as if the device read it */
	test_log_reset(&tlog);
	debug_dma_sync_single_for_device(e.dev, 0x100000, 4096, IOM_DMA_TO_DEVICE);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver syncs device write-only DMA memory to device "
		"[device address=0x0000000000100000] [size=4096 bytes] "
		"[mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]"));
	assert_only(&e, IOM_DMA_DEBUG_SYNC_DIR, 5);

	/* a bidirectional mapping may be synced any way */
	test_log_reset(&tlog);
	map(&e, 3, 0, 4096, IOM_DMA_BIDIRECTIONAL, 0x300000);
	debug_dma_sync_single_for_cpu(e.dev, 0x300000, 4096, IOM_DMA_FROM_DEVICE);
	debug_dma_sync_single_for_device(e.dev, 0x300000, 4096, IOM_DMA_TO_DEVICE);
	assert_int_equal(tlog.nr_warn, 0);
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_SYNC_DIR], 5);
	env_down(&e);
}

static void test_overlapping_writable_mappings_of_a_cacheline_are_reported(void **state)
{
	struct env e;

	(void)state;
	env_up(&e, true);
	/* another cacheline of the same page is fine */
	map(&e, 1, 0, 64, IOM_DMA_FROM_DEVICE, 0x100000);
	map(&e, 1, 64, 64, IOM_DMA_FROM_DEVICE, 0x200000);
	assert_none(&e);

	/* the same cacheline, both device-writable */
	map(&e, 1, 32, 32, IOM_DMA_BIDIRECTIONAL, 0x300000);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: cacheline tracking EEXIST, overlapping mappings aren't supported"));
	assert_only(&e, IOM_DMA_DEBUG_OVERLAP, 1);
	assert_int_equal(tlog.nr_warn, 1);

	/* the device only reads: no stale data for the CPU, no report */
	test_log_reset(&tlog);
	map(&e, 1, 0, 64, IOM_DMA_TO_DEVICE, 0x400000);
	/* the driver says it syncs by itself */
	debug_dma_map_page(e.dev, page(&e, 1), 0, 64, IOM_DMA_FROM_DEVICE, 0x500000,
			   IOM_DMA_ATTR_SKIP_CPU_SYNC);
	debug_dma_mapping_error(e.dev, 0x500000);
	assert_int_equal(tlog.nr_warn, 0);
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_OVERLAP], 1);

	/* the line is free only once every mapping of it is gone */
	debug_dma_unmap_page(e.dev, 0x100000, 64, IOM_DMA_FROM_DEVICE, true);
	debug_dma_unmap_page(e.dev, 0x300000, 32, IOM_DMA_BIDIRECTIONAL, true);
	map(&e, 1, 0, 64, IOM_DMA_FROM_DEVICE, 0x600000);
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_OVERLAP], 2);
	debug_dma_unmap_page(e.dev, 0x500000, 64, IOM_DMA_FROM_DEVICE, true);
	debug_dma_unmap_page(e.dev, 0x600000, 64, IOM_DMA_FROM_DEVICE, true);
	map(&e, 1, 0, 64, IOM_DMA_FROM_DEVICE, 0x700000);
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_OVERLAP], 2);

	/* sg segments are tracked too (the first line of each entry's page) */
	{
		struct iom_scatterlist sg = { .page = page(&e, 1), .offset = 8, .length = 8,
					      .dma_address = 0x800000, .dma_length = 8 };

		debug_dma_map_sg(e.dev, &sg, 1, 1, IOM_DMA_FROM_DEVICE, 0);
		assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_OVERLAP], 3);
	}
	env_down(&e);
}

static void test_device_release_reports_pending_mappings(void **state)
{
	int buf;
	struct env e;

	(void)state;
	env_up(&e, true);
	map(&e, 1, 0, 4096, IOM_DMA_TO_DEVICE, 0x100000);
	debug_dma_alloc_coherent(e.dev, 8192, 0x200000, &buf, 0);
	assert_int_equal(debug_dma_device_release(e.dev), 2);
	assert_int_equal(1, log_count(
		"dd0: DMA-API: device driver has pending DMA allocations while released "
		"from device [count=2]\nOne of leaked entries details: [device address=0x"));
	assert_true(test_log_contains(&tlog,
		"[device address=0x0000000000100000] [size=4096 bytes] "
		"[mapped with DMA_TO_DEVICE] [mapped as single]") ||
		    test_log_contains(&tlog,
		"[device address=0x0000000000200000] [size=8192 bytes] "
		"[mapped with DMA_BIDIRECTIONAL] [mapped as coherent]"));
	assert_only(&e, IOM_DMA_DEBUG_PENDING, 1);
	assert_int_equal(tlog.nr_warn, 1);
	/* they stay valid and tracked */
	assert_int_equal(stats(&e).nr_entries, 2);
	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_TO_DEVICE, true);
	debug_dma_free_coherent(e.dev, 8192, &buf, 0x200000, true);
	assert_int_equal(debug_dma_device_release(e.dev), 0);
	assert_only(&e, IOM_DMA_DEBUG_PENDING, 1);
	env_down(&e);
}

static void test_same_address_mapped_twice_unmaps_by_best_fit(void **state)
{
	struct env e;

	(void)state;
	env_up(&e, true);
	/* as without an IOMMU: two mappings share a device address */
	map(&e, 1, 0, 4096, IOM_DMA_TO_DEVICE, 0x100000);
	map(&e, 2, 0, 8192, IOM_DMA_FROM_DEVICE, 0x100000);
	assert_int_equal(stats(&e).nr_entries, 2);
	debug_dma_unmap_page(e.dev, 0x100000, 8192, IOM_DMA_FROM_DEVICE, true);
	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_TO_DEVICE, true);
	assert_none(&e);
	assert_int_equal(stats(&e).nr_entries, 0);

	/* two equally good partial fits: neither is taken */
	map(&e, 1, 0, 4096, IOM_DMA_TO_DEVICE, 0x100000);
	map(&e, 2, 0, 8192, IOM_DMA_FROM_DEVICE, 0x100000);
	debug_dma_unmap_page(e.dev, 0x100000, 4096, IOM_DMA_FROM_DEVICE, true);
	assert_int_equal(1, log_count("device driver tries to free DMA memory it has not allocated"));
	assert_only(&e, IOM_DMA_DEBUG_FREE_INVALID, 1);
	assert_int_equal(tlog.nr_warn, 1);
	assert_int_equal(stats(&e).nr_entries, 2);
	env_down(&e);
}

static void test_machine_without_dma_debug_tracks_nothing(void **state)
{
	struct iom_dma_debug_stats st;
	struct env e;
	int buf;

	(void)state;
	env_up(&e, false);
	assert_false(dma_debug_enabled(e.dev));
	debug_dma_map_page(e.dev, page(&e, 1), 0, 4096, IOM_DMA_FROM_DEVICE, 0x100000, 0);
	debug_dma_map_page(e.dev, page(&e, 1), 0, 4096, IOM_DMA_FROM_DEVICE, 0x200000, 0);
	debug_dma_unmap_page(e.dev, 0x300000, 1, IOM_DMA_TO_DEVICE, true);
	debug_dma_sync_single_for_cpu(e.dev, 0x400000, 1, IOM_DMA_TO_DEVICE);
	debug_dma_free_coherent(e.dev, 4096, &buf, 0x500000, true);
	assert_int_equal(debug_dma_device_release(e.dev), 0);
	assert_int_equal(tlog.nr_warn + tlog.nr_err, 0);
	assert_int_equal(iom_dma_debug_get_stats(e.m, &st), -ENODEV);
	env_down(&e);
}

static void test_get_stats_arguments(void **state)
{
	struct iom_dma_debug_stats st;
	struct env e;

	(void)state;
	env_up(&e, true);
	assert_true(dma_debug_enabled(e.dev));
	assert_false(dma_debug_enabled(NULL));
	assert_int_equal(iom_dma_debug_get_stats(NULL, &st), -EINVAL);
	assert_int_equal(iom_dma_debug_get_stats(e.m, NULL), -EINVAL);
	memset(&st, 0xff, sizeof(st));
	assert_int_equal(iom_dma_debug_get_stats(e.m, &st), 0);
	for (int i = 0; i < IOM_DMA_DEBUG_NR_ERRORS; i++)
		assert_int_equal(st.errors[i], 0);
	assert_int_equal(st.nr_entries, 0);
	assert_int_equal(st.max_entries, 0);
	env_down(&e);
}

static void test_hostile_arguments_are_reported_without_harm(void **state)
{
	struct iom_scatterlist sg = { 0 };
	struct env e;

	(void)state;
	env_up(&e, true);
	/* nothing to track */
	debug_dma_map_sg(e.dev, NULL, 4, 4, IOM_DMA_TO_DEVICE, 0);
	debug_dma_map_sg(e.dev, &sg, -1, 1, IOM_DMA_TO_DEVICE, 0);
	debug_dma_map_sg(e.dev, &sg, 1, -5, IOM_DMA_TO_DEVICE, 0);
	debug_dma_unmap_sg(e.dev, &sg, 0, IOM_DMA_TO_DEVICE, true);
	debug_dma_alloc_coherent(e.dev, 4096, 0x100000, NULL, 0);
	debug_dma_map_page(NULL, page(&e, 1), 0, 4096, IOM_DMA_TO_DEVICE, 0x100000, 0);
	debug_dma_unmap_page(NULL, 0x100000, 4096, IOM_DMA_TO_DEVICE, true);
	assert_int_equal(debug_dma_device_release(NULL), 0);
	assert_none(&e);
	assert_int_equal(stats(&e).nr_entries, 0);

	/* an sg unmap of no list at all */
	debug_dma_unmap_sg(e.dev, NULL, 3, IOM_DMA_TO_DEVICE, true);
	assert_only(&e, IOM_DMA_DEBUG_FREE_INVALID, 1);

	/* more DMA segments claimed than sg entries: only @nents are read */
	sg.page = page(&e, 1);
	sg.dma_address = 0x100000;
	sg.dma_length = 4096;
	debug_dma_map_sg(e.dev, &sg, 1, 7, IOM_DMA_TO_DEVICE, 0);
	assert_int_equal(stats(&e).nr_entries, 1);
	debug_dma_unmap_sg(e.dev, &sg, 1, IOM_DMA_TO_DEVICE, true);
	assert_int_equal(stats(&e).nr_entries, 0);

	/* a page not of this machine and a direction out of range */
	test_log_reset(&tlog);
	debug_dma_map_page(e.dev, (struct iom_page *)&sg, 0, 4096, 7, 0x200000, 0);
	debug_dma_mapping_error(e.dev, 0x200000);
	debug_dma_unmap_page(e.dev, 0x200000, 4096, -3, true);
	assert_int_equal(log_count("[mapped with invalid direction] "
				   "[unmapped with invalid direction]"), 1);
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_UNMAP_DIR], 1);
	assert_int_equal(tlog.nr_warn, 1);

	/* addresses and sizes at the top of the space do not wrap */
	test_log_reset(&tlog);
	map(&e, 2, 0, 4096, IOM_DMA_FROM_DEVICE, UINT64_MAX - 4095);
	debug_dma_sync_single_for_cpu(e.dev, UINT64_MAX - 4095, SIZE_MAX,
				      IOM_DMA_FROM_DEVICE);
	debug_dma_sync_single_for_cpu(e.dev, 0, SIZE_MAX, IOM_DMA_FROM_DEVICE);
	debug_dma_sync_single_for_cpu(e.dev, UINT64_MAX, 1, IOM_DMA_FROM_DEVICE);
	assert_int_equal(stats(&e).errors[IOM_DMA_DEBUG_SYNC_RANGE], 2);
	assert_int_equal(tlog.nr_warn, 2);
	debug_dma_unmap_page(e.dev, UINT64_MAX - 4095, 4096, IOM_DMA_FROM_DEVICE, true);
	assert_int_equal(stats(&e).nr_entries, 0);
	env_down(&e);
}

/*
 * Threads mapping, checking, syncing and unmapping disjoint addresses and
 * pages at once: proves the table stays consistent under concurrency (no
 * false report, every entry found and removed, the counters add up), and,
 * under TSan, that every access to it is under its lock.
 */
#define NR_THREADS	4
#define NR_ROUNDS	2000
#define NR_LIVE		8

struct worker {
	struct env *e;
	int idx;
	struct iom_page *pages[NR_LIVE];
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	iom_dma_addr_t base = (iom_dma_addr_t)(w->idx + 1) << 32;

	for (int r = 0; r < NR_ROUNDS; r++) {
		for (int k = 0; k < NR_LIVE; k++) {
			iom_dma_addr_t a = base + ((iom_dma_addr_t)(r * NR_LIVE + k) << 12);

			debug_dma_map_page(w->e->dev, w->pages[k], 0, 4096, IOM_DMA_FROM_DEVICE, a, 0);
			debug_dma_mapping_error(w->e->dev, a);
			debug_dma_sync_single_for_cpu(w->e->dev, a + 128, 128,
						      IOM_DMA_FROM_DEVICE);
		}
		for (int k = 0; k < NR_LIVE; k++) {
			iom_dma_addr_t a = base + ((iom_dma_addr_t)(r * NR_LIVE + k) << 12);

			debug_dma_unmap_page(w->e->dev, a, 4096, IOM_DMA_FROM_DEVICE, true);
		}
	}
	return NULL;
}

static void test_concurrent_map_unmap_keeps_table_consistent(void **state)
{
	pthread_t th[NR_THREADS];
	struct worker w[NR_THREADS];
	struct iom_dma_debug_stats st;
	struct env e;

	(void)state;
	env_up(&e, true);
	for (int i = 0; i < NR_THREADS; i++) {
		w[i].e = &e;
		w[i].idx = i;
		for (int k = 0; k < NR_LIVE; k++)
			w[i].pages[k] = page(&e, (unsigned long)(i * NR_LIVE + k));
		assert_int_equal(pthread_create(&th[i], NULL, worker_fn, &w[i]), 0);
	}
	for (int i = 0; i < NR_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	st = stats(&e);
	assert_none(&e);
	assert_int_equal(st.nr_entries, 0);
	assert_true(st.max_entries >= NR_LIVE);
	assert_true(st.max_entries <= NR_THREADS * NR_LIVE);
	env_down(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_pairs_report_nothing),
		cmocka_unit_test(test_free_of_unmapped_address_is_reported),
		cmocka_unit_test(test_unmap_with_other_size_is_reported_and_kept_until_done),
		cmocka_unit_test(test_unmap_with_wrong_function_is_reported),
		cmocka_unit_test(test_unmap_with_other_direction_is_reported),
		cmocka_unit_test(test_coherent_free_with_other_cpu_address_is_reported),
		cmocka_unit_test(test_unmap_sg_with_other_count_is_reported),
		cmocka_unit_test(test_unmap_without_mapping_error_check_is_reported),
		cmocka_unit_test(test_sync_outside_mapping_is_reported),
		cmocka_unit_test(test_sync_in_wrong_direction_is_reported),
		cmocka_unit_test(test_overlapping_writable_mappings_of_a_cacheline_are_reported),
		cmocka_unit_test(test_device_release_reports_pending_mappings),
		cmocka_unit_test(test_same_address_mapped_twice_unmaps_by_best_fit),
		cmocka_unit_test(test_machine_without_dma_debug_tracks_nothing),
		cmocka_unit_test(test_get_stats_arguments),
		cmocka_unit_test(test_hostile_arguments_are_reported_without_harm),
		cmocka_unit_test(test_concurrent_map_unmap_keeps_table_consistent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
