/* SPDX-License-Identifier: MIT */
/*
 * VFIO type1 (src/vfio/vfio_iommu_type1.c): a physically contiguous 2 MiB
 * buffer maps as one 2 MiB IOMMU entry with one iommu_map(), a scattered
 * one as 512 4 KiB entries (and so does the contiguous one with
 * disable_hugepages); unmap returns the size unmapped, and every page's
 * refcount is back where it started; a device reads and writes the
 * process's memory through the mapping, and a read-only mapping refuses
 * its writes; the v2 and v1 unmap semantics, VFIO_DMA_UNMAP_FLAG_ALL,
 * overlaps, the entry limit and the memlock limit with the kernel's
 * message; pages in ZONE_MOVABLE and CMA are migrated out before they are
 * pinned (seed 002); a failure half way through a map leaves nothing
 * pinned or mapped; a device never reads a page the unmap freed, neither
 * after the unmap nor while it runs (the IOTLB is synced before pages are
 * unpinned), with a negative control that skips the invalidation; each bad argument is refused with nothing changed; a
 * container's teardown unmaps and unpins everything, and nothing leaks.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iommig/cma.h>
#include <iommig/vfio.h>

#include "iommu/iommu-priv.h"
#include "mm_util.h"

#define PG IOM_PAGE_SIZE
#define MiB (1ULL << 20)
#define RW (IOM_PROT_READ | IOM_PROT_WRITE)
#define ANON (IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS)
#define BIAS IOM_GUP_PIN_COUNTING_BIAS
#define DMA_RW (IOM_VFIO_DMA_MAP_FLAG_READ | IOM_VFIO_DMA_MAP_FLAG_WRITE)
#define IOVA 0x40000000UL	/* 1 GiB: aligned for every block size */

static struct test_log tlog;

struct rig {
	struct iom_machine *m;
	struct iom_mm *mm;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *domain;
	struct iom_device *dev;
	struct iom_vfio_container *c;
};

/* A machine (64 MiB, or @cfg), a process, an IOMMU, a domain with a device, a container. */
static void rig_up(struct rig *r, struct iom_machine_config *cfg,
		   const struct iom_vfio_config *vcfg)
{
	memset(r, 0, sizeof(*r));
	r->m = test_machine(64, &tlog, cfg);
	assert_non_null(r->m);
	assert_int_equal(iom_mm_create(r->m, &r->mm), 0);
	assert_int_equal(iom_iommu_create(r->m, NULL, &r->iommu), 0);
	r->domain = iom_iommu_domain_alloc(r->iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_non_null(r->domain);
	assert_int_equal(iom_device_create(r->iommu, "vfio-pci", &r->dev), 0);
	assert_int_equal(iom_iommu_attach_device(r->domain, r->dev), 0);
	assert_int_equal(iom_vfio_container_create(r->mm, NULL, r->domain, vcfg, &r->c), 0);
}

/* Everything goes; every page of the machine is free again, nothing reported. */
static void rig_down(struct rig *r)
{
	assert_int_equal(iom_vfio_container_destroy(r->c), 0);
	iom_mm_destroy(r->mm);
	assert_int_equal(iom_iommu_detach_device(r->domain, r->dev), 0);
	assert_int_equal(iom_device_destroy(r->dev), 0);
	assert_int_equal(iom_iommu_domain_free(r->domain), 0);
	assert_int_equal(iom_iommu_destroy(r->iommu), 0);
	iom_rcu_barrier();
	test_assert_machine_clean(r->m);
	iom_machine_destroy(r->m);
}

static struct iom_vfio_info info_of(struct rig *r)
{
	struct iom_vfio_info info;

	assert_int_equal(iom_vfio_get_info(r->c, &info), 0);
	return info;
}

/* The page mapped at @addr, without keeping a reference. */
static struct iom_page *page_at(struct iom_mm *mm, uint64_t addr)
{
	struct iom_page *page = test_get_page_at(mm, addr);

	iom_put_page(iom_mm_machine(mm), page);
	return page;
}

/* The refcounts of the @n pages from @a, and the pages, into @ref/@pages. */
static void refs_of(struct iom_mm *mm, uint64_t a, unsigned long n,
		    struct iom_page **pages, int *ref)
{
	for (unsigned long i = 0; i < n; i++) {
		pages[i] = page_at(mm, a + i * PG);
		ref[i] = iom_page_ref_count(pages[i]);
	}
}

/* Physically contiguous runs among the @n pages from @a. */
static unsigned long phys_runs(struct rig *r, uint64_t a, unsigned long n)
{
	unsigned long runs = 0, prev = 0;

	for (unsigned long i = 0; i < n; i++) {
		unsigned long pfn = iom_page_to_pfn(r->m, page_at(r->mm, a + i * PG));

		if (!i || pfn != prev + 1)
			runs++;
		prev = pfn;
	}
	return runs;
}

/*
 * A 2 MiB-aligned, populated 2 MiB anonymous buffer. On a fresh machine
 * the buddy allocator hands a movable fault's order-0 pages out in
 * ascending order from a split 4 MiB block (the first movable allocation
 * steals a whole high-order block), so a populated 4 MiB mapping holds a
 * physically contiguous, 2 MiB-aligned half. The test asserts that, as a
 * precondition, rather than trust it.
 */
static uint64_t contiguous_2m_buffer(struct rig *r)
{
	uint64_t a = test_mmap(r->mm, 0, 4 * MiB, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	uint64_t b = (a + 2 * MiB - 1) & ~(2 * MiB - 1);

	assert_int_equal(phys_runs(r, b, 512), 1);
	assert_int_equal(iom_page_to_phys(r->m, page_at(r->mm, b)) & (2 * MiB - 1), 0);
	return b;
}

/* A 2 MiB buffer whose pages are every other pfn: faulted in turn with another. */
static uint64_t scattered_2m_buffer(struct rig *r)
{
	uint64_t a = test_mmap(r->mm, 0, 2 * MiB, RW, ANON, NULL, 0);
	uint64_t b = test_mmap(r->mm, 0, 2 * MiB, RW, ANON, NULL, 0);
	char x = 1;

	for (unsigned long i = 0; i < 512; i++) {
		assert_int_equal(iom_write(r->mm, a + i * PG, &x, 1), 0);
		assert_int_equal(iom_write(r->mm, b + i * PG, &x, 1), 0);
	}
	assert_int_equal(phys_runs(r, a, 512), 512);
	return a;
}

/* ---- contiguity batching ------------------------------------------------- */

/*
 * What this proves: a physically contiguous 2 MiB buffer is pinned and
 * mapped with one iommu_map(), which the IOMMU makes one 2 MiB block
 * entry (seed 004); the pages are pinned (refcount + bias) and accounted;
 * unmap returns 2 MiB, leaves no entry, and puts every refcount back.
 */
static void contiguous_2m_buffer_maps_as_one_2m_entry(void **state)
{
	static struct iom_page *pages[512];
	static int ref[512];
	struct iom_vfio_info info;
	struct rig r;
	uint64_t b, unmapped;

	(void)state;
	rig_up(&r, NULL, NULL);
	b = contiguous_2m_buffer(&r);
	refs_of(r.mm, b, 512, pages, ref);

	assert_int_equal(iom_vfio_map_dma(r.c, b, IOVA, 2 * MiB, DMA_RW), 0);
	info = info_of(&r);
	assert_int_equal(info.nr_dma, 1);
	assert_int_equal(info.nr_entries, 1);
	assert_int_equal(info.nr_leaves[2], 1);
	assert_int_equal(info.map_calls, 1);
	assert_int_equal(info.locked, 2 * MiB);
	for (int i = 0; i < 512; i++) {
		assert_int_equal(iom_page_ref_count(pages[i]), ref[i] + BIAS);
		assert_int_equal(iom_iommu_iova_to_phys(r.domain, IOVA + i * PG),
				 iom_page_to_phys(r.m, pages[i]));
	}

	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 2 * MiB, 0, &unmapped), 0);
	assert_int_equal(unmapped, 2 * MiB);
	info = info_of(&r);
	assert_int_equal(info.nr_dma, 0);
	assert_int_equal(info.nr_entries, 0);
	assert_int_equal(info.locked, 0);
	assert_int_equal(info.unmap_calls, 1);
	for (int i = 0; i < 512; i++)
		assert_int_equal(iom_page_ref_count(pages[i]), ref[i]);
	assert_int_equal(iom_iommu_iova_to_phys(r.domain, IOVA), 0);
	rig_down(&r);
}

/*
 * What this proves: a buffer whose pages are not physically contiguous
 * takes one iommu_map() and one 4 KiB entry per page (512), unmaps as
 * 2 MiB, and its refcounts return to their start.
 */
static void scattered_2m_buffer_maps_as_512_entries(void **state)
{
	static struct iom_page *pages[512];
	static int ref[512];
	struct iom_vfio_info info;
	struct rig r;
	uint64_t a, unmapped;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = scattered_2m_buffer(&r);
	refs_of(r.mm, a, 512, pages, ref);

	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 2 * MiB, DMA_RW), 0);
	info = info_of(&r);
	assert_int_equal(info.nr_entries, 512);
	assert_int_equal(info.nr_leaves[3], 512);
	assert_int_equal(info.map_calls, 512);
	for (int i = 0; i < 512; i++)
		assert_int_equal(iom_page_ref_count(pages[i]), ref[i] + BIAS);

	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 2 * MiB, 0, &unmapped), 0);
	assert_int_equal(unmapped, 2 * MiB);
	assert_int_equal(info_of(&r).nr_entries, 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(iom_page_ref_count(pages[i]), ref[i]);
	rig_down(&r);
}

/*
 * What this proves: with disable_hugepages the same contiguous buffer is
 * mapped page by page (512 calls, 512 entries), as before seed 004; the
 * unmap still finds the contiguous stretch and unmaps it in one call.
 * This is the switch that shows the first test's count is batching's.
 */
static void disable_hugepages_maps_page_by_page(void **state)
{
	struct iom_vfio_config vcfg = { .disable_hugepages = true };
	struct iom_vfio_info info;
	struct rig r;
	uint64_t b, unmapped;

	(void)state;
	rig_up(&r, NULL, &vcfg);
	b = contiguous_2m_buffer(&r);
	assert_int_equal(iom_vfio_map_dma(r.c, b, IOVA, 2 * MiB, DMA_RW), 0);
	info = info_of(&r);
	assert_int_equal(info.nr_entries, 512);
	assert_int_equal(info.nr_leaves[3], 512);
	assert_int_equal(info.map_calls, 512);
	assert_int_equal(info.locked, 2 * MiB);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 2 * MiB, 0, &unmapped), 0);
	assert_int_equal(unmapped, 2 * MiB);
	assert_int_equal(info_of(&r).unmap_calls, 1);
	assert_int_equal(info_of(&r).locked, 0);
	rig_down(&r);
}

/*
 * What this proves: one mapping whose first 2 MiB are physically
 * contiguous (and aligned) and whose next 2 MiB are scattered gets an
 * entry per contiguous run: one 2 MiB block and 512 pages, from 513
 * iommu_map() calls.
 */
static void mixed_buffer_maps_one_entry_per_run(void **state)
{
	struct iom_vfio_info info;
	struct rig r;
	uint64_t a, b, o, unmapped;
	char x = 1;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = test_mmap(r.mm, 0, 6 * MiB, RW, ANON, NULL, 0);
	o = test_mmap(r.mm, 0, 2 * MiB, RW, ANON, NULL, 0);
	b = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
	/* the first movable faults of a fresh machine: ascending from a block start */
	for (unsigned long i = 0; i < 512; i++)
		assert_int_equal(iom_write(r.mm, b + i * PG, &x, 1), 0);
	/* then every other page, the first not next to the 2 MiB */
	for (unsigned long i = 0; i < 512; i++) {
		assert_int_equal(iom_write(r.mm, o + i * PG, &x, 1), 0);
		assert_int_equal(iom_write(r.mm, b + 2 * MiB + i * PG, &x, 1), 0);
	}
	assert_int_equal(phys_runs(&r, b, 512), 1);
	assert_int_equal(iom_page_to_phys(r.m, page_at(r.mm, b)) & (2 * MiB - 1), 0);
	assert_int_equal(phys_runs(&r, b, 1024), 513);

	assert_int_equal(iom_vfio_map_dma(r.c, b, IOVA, 4 * MiB, DMA_RW), 0);
	info = info_of(&r);
	assert_int_equal(info.nr_dma, 1);
	assert_int_equal(info.nr_leaves[2], 1);
	assert_int_equal(info.nr_leaves[3], 512);
	assert_int_equal(info.map_calls, 513);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 4 * MiB, 0, &unmapped), 0);
	assert_int_equal(unmapped, 4 * MiB);
	rig_down(&r);
}

/*
 * What this proves: a contiguous run longer than one pin batch (512
 * pages) is still one iommu_map(): 4 MiB contiguous at a 2 MiB-aligned
 * address become two 2 MiB blocks from one call; and a block needs the
 * IOVA and the physical address aligned alike.
 */
static void contiguous_run_spans_pin_batches(void **state)
{
	struct iom_vfio_info info;
	struct rig r;
	uint64_t a, b, unmapped;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = test_mmap(r.mm, 0, 6 * MiB, RW, ANON, NULL, 0);
	b = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
	for (unsigned long i = 0; i < 1024; i++)
		assert_int_equal(iom_write(r.mm, b + i * PG, "y", 1), 0);
	assert_int_equal(phys_runs(&r, b, 1024), 1);
	assert_int_equal(iom_page_to_phys(r.m, page_at(r.mm, b)) & (2 * MiB - 1), 0);

	assert_int_equal(iom_vfio_map_dma(r.c, b, IOVA, 4 * MiB, DMA_RW), 0);
	info = info_of(&r);
	assert_int_equal(info.nr_leaves[2], 2);
	assert_int_equal(info.nr_entries, 2);
	assert_int_equal(info.map_calls, 1);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 4 * MiB, 0, &unmapped), 0);
	assert_int_equal(unmapped, 4 * MiB);

	/*
	 * Blocks need the IOVA and the physical address equally aligned: the
	 * same run from its second page at an aligned IOVA gets none (1023
	 * pages); at the IOVA one page in, a 2 MiB block where both align.
	 */
	assert_int_equal(iom_vfio_map_dma(r.c, b + PG, IOVA, 4 * MiB - PG, DMA_RW), 0);
	info = info_of(&r);
	assert_int_equal(info.nr_leaves[2], 0);
	assert_int_equal(info.nr_leaves[3], 1023);
	assert_int_equal(info.map_calls, 2);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 4 * MiB - PG, 0, &unmapped), 0);
	assert_int_equal(unmapped, 4 * MiB - PG);
	assert_int_equal(iom_vfio_map_dma(r.c, b + PG, IOVA + PG, 4 * MiB - PG, DMA_RW), 0);
	info = info_of(&r);
	assert_int_equal(info.nr_leaves[2], 1);
	assert_int_equal(info.nr_leaves[3], 511);
	assert_int_equal(info.map_calls, 3);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + PG, 4 * MiB - PG, 0, &unmapped), 0);
	assert_int_equal(unmapped, 4 * MiB - PG);
	rig_down(&r);
}

/* ---- the device sees the process's memory --------------------------------- */

/*
 * What this proves: through the mapping, a device reads what the process
 * wrote and the process reads what the device wrote (the same pages); a
 * read-only mapping lets the device read and refuses its writes (-EFAULT,
 * the process's bytes unchanged); after the unmap the device faults.
 */
static void device_dma_reads_and_writes_process_memory(void **state)
{
	char in[300], out[300];
	struct rig r;
	uint64_t a;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = test_mmap(r.mm, 0, 16 * PG, RW, ANON, NULL, 0);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (char)(i * 7 + 1);
	/* across a page boundary */
	assert_int_equal(iom_write(r.mm, a + 3 * PG - 100, in, sizeof(in)), 0);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 16 * PG, DMA_RW), 0);
	assert_int_equal(iom_device_dma_read(r.dev, IOVA + 3 * PG - 100, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));

	memset(in, 0x5c, sizeof(in));
	assert_int_equal(iom_device_dma_write(r.dev, IOVA + 9 * PG - 50, in, sizeof(in)), 0);
	assert_int_equal(iom_read(r.mm, a + 9 * PG - 50, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));

	/* a read-only mapping (device's view) of another range */
	uint64_t b = test_mmap(r.mm, 0, 4 * PG, RW, ANON, NULL, 0);

	assert_int_equal(iom_write(r.mm, b, "ro", 3), 0);
	assert_int_equal(iom_vfio_map_dma(r.c, b, IOVA + 1 * MiB, 4 * PG,
					  IOM_VFIO_DMA_MAP_FLAG_READ), 0);
	assert_int_equal(iom_device_dma_read(r.dev, IOVA + 1 * MiB, out, 3), 0);
	assert_string_equal(out, "ro");
	assert_int_equal(iom_device_dma_write(r.dev, IOVA + 1 * MiB, "xx", 3), -EFAULT);
	assert_int_equal(iom_read(r.mm, b, out, 3), 0);
	assert_string_equal(out, "ro");

	assert_int_equal(iom_vfio_unmap_dma(r.c, 0, 0, IOM_VFIO_DMA_UNMAP_FLAG_ALL, NULL), 0);
	assert_int_equal(iom_device_dma_read(r.dev, IOVA, out, 1), -EFAULT);
	rig_down(&r);
}

/* ---- unmap semantics -------------------------------------------------------- */

/*
 * Four mappings of 4 pages at IOVA, IOVA+4, IOVA+8 and (after a 4-page
 * hole) IOVA+16 pages, from one 20-page buffer.
 */
static uint64_t four_mappings(struct rig *r)
{
	uint64_t a = test_mmap(r->mm, 0, 20 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);

	for (int i = 0; i < 3; i++)
		assert_int_equal(iom_vfio_map_dma(r->c, a + i * 4 * PG, IOVA + i * 4 * PG,
						  4 * PG, DMA_RW), 0);
	assert_int_equal(iom_vfio_map_dma(r->c, a + 16 * PG, IOVA + 16 * PG, 4 * PG, DMA_RW), 0);
	assert_int_equal(info_of(r).nr_dma, 4);
	return a;
}

static bool mapped(struct rig *r, unsigned long pg)
{
	return iom_iommu_iova_to_phys(r->domain, IOVA + pg * PG) != 0;
}

/*
 * What this proves (type1v2): a range that splits a mapping at its start
 * or at its end is -EINVAL with nothing unmapped; a range over two whole
 * mappings unmaps both; a range over a hole and a whole mapping unmaps
 * the mapping; a range over nothing returns 0 bytes; locked memory
 * follows.
 */
static void v2_unmap_whole_mappings_or_einval(void **state)
{
	struct rig r;
	uint64_t un;

	(void)state;
	rig_up(&r, NULL, NULL);
	four_mappings(&r);
	assert_int_equal(info_of(&r).locked, 16 * PG);

	/* starts inside the first */
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + PG, 3 * PG, 0, &un), -EINVAL);
	assert_int_equal(un, 0);
	/* ends inside the second */
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 6 * PG, 0, &un), -EINVAL);
	assert_int_equal(un, 0);
	assert_int_equal(info_of(&r).nr_dma, 4);
	assert_true(mapped(&r, 1) && mapped(&r, 5));

	/* two whole mappings */
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 8 * PG, 0, &un), 0);
	assert_int_equal(un, 8 * PG);
	assert_false(mapped(&r, 0) || mapped(&r, 7));
	assert_true(mapped(&r, 8));
	/* nothing there */
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 8 * PG, 0, &un), 0);
	assert_int_equal(un, 0);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + 12 * PG, 4 * PG, 0, &un), 0);
	assert_int_equal(un, 0);
	/* a hole and a whole mapping, and a range past the end of the last */
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + 12 * PG, 8 * PG, 0, &un), 0);
	assert_int_equal(un, 4 * PG);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + 8 * PG, 1 * MiB, 0, &un), 0);
	assert_int_equal(un, 4 * PG);
	assert_int_equal(info_of(&r).nr_dma, 0);
	assert_int_equal(info_of(&r).locked, 0);
	rig_down(&r);
}

/*
 * What this proves (type1, v1): a range starting inside a mapping
 * succeeds with 0 bytes and nothing unmapped; a range that starts at a
 * mapping and ends inside the next unmaps both whole (the size returned
 * says so); a range over several mappings unmaps them all.
 */
static void v1_unmap_semantics(void **state)
{
	struct iom_vfio_config vcfg = { .type = IOM_VFIO_TYPE1_IOMMU };
	struct rig r;
	uint64_t un;

	(void)state;
	rig_up(&r, NULL, &vcfg);
	four_mappings(&r);

	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + PG, 3 * PG, 0, &un), 0);
	assert_int_equal(un, 0);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + PG, 16 * PG, 0, &un), 0);
	assert_int_equal(un, 0);
	assert_int_equal(info_of(&r).nr_dma, 4);
	assert_true(mapped(&r, 0) && mapped(&r, 3));

	/* starts at the first, ends inside the second: both go, whole */
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 5 * PG, 0, &un), 0);
	assert_int_equal(un, 8 * PG);
	assert_false(mapped(&r, 5) || mapped(&r, 7));
	assert_int_equal(info_of(&r).nr_dma, 2);

	/* the rest, over the hole */
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + 8 * PG, 12 * PG, 0, &un), 0);
	assert_int_equal(un, 8 * PG);
	assert_int_equal(info_of(&r).nr_dma, 0);
	assert_int_equal(info_of(&r).locked, 0);
	rig_down(&r);
}

/*
 * What this proves: VFIO_DMA_UNMAP_FLAG_ALL refuses a range, and with
 * none removes every mapping (including one at the very top of the IOVA
 * space), returning their total; again, 0.
 */
static void unmap_flag_all(void **state)
{
	struct rig r;
	uint64_t un, a;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = four_mappings(&r);
	assert_int_equal(iom_vfio_map_dma(r.c, a + 12 * PG, (1UL << 48) - 4 * PG,
					  4 * PG, DMA_RW), 0);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 0, IOM_VFIO_DMA_UNMAP_FLAG_ALL, &un), -EINVAL);
	assert_int_equal(iom_vfio_unmap_dma(r.c, 0, PG, IOM_VFIO_DMA_UNMAP_FLAG_ALL, &un), -EINVAL);
	assert_int_equal(info_of(&r).nr_dma, 5);
	assert_int_equal(iom_vfio_unmap_dma(r.c, 0, 0, IOM_VFIO_DMA_UNMAP_FLAG_ALL, &un), 0);
	assert_int_equal(un, 20 * PG);
	assert_int_equal(info_of(&r).nr_dma, 0);
	assert_int_equal(info_of(&r).nr_entries, 0);
	assert_int_equal(info_of(&r).locked, 0);
	assert_int_equal(iom_vfio_unmap_dma(r.c, 0, 0, IOM_VFIO_DMA_UNMAP_FLAG_ALL, &un), 0);
	assert_int_equal(un, 0);
	rig_down(&r);
}

/* ---- limits ------------------------------------------------------------------ */

/*
 * What this proves: a map that overlaps a mapping in any way (same range,
 * its head, its tail, around it, inside it) is -EEXIST and pins nothing;
 * adjacent ranges are fine.
 */
static void overlap_is_eexist(void **state)
{
	static const long off[][2] = {	/* first page, pages; mapping at 4..7 */
		{ 4, 4 }, { 2, 4 }, { 6, 4 }, { 2, 8 }, { 5, 1 },
	};
	struct iom_page *pages[16];
	int ref[16];
	struct rig r;
	uint64_t a;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = test_mmap(r.mm, 0, 16 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA + 4 * PG, 4 * PG, DMA_RW), 0);
	refs_of(r.mm, a, 16, pages, ref);
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++)
		assert_int_equal(iom_vfio_map_dma(r.c, a + 8 * PG, IOVA + off[i][0] * PG,
						  off[i][1] * PG, DMA_RW), -EEXIST);
	for (int i = 0; i < 16; i++)
		assert_int_equal(iom_page_ref_count(pages[i]), ref[i]);
	assert_int_equal(info_of(&r).nr_dma, 1);
	assert_int_equal(info_of(&r).locked, 4 * PG);
	/* both neighbours */
	assert_int_equal(iom_vfio_map_dma(r.c, a + 8 * PG, IOVA, 4 * PG, DMA_RW), 0);
	assert_int_equal(iom_vfio_map_dma(r.c, a + 12 * PG, IOVA + 8 * PG, 4 * PG, DMA_RW), 0);
	assert_int_equal(info_of(&r).nr_dma, 3);
	rig_down(&r);
}

/*
 * What this proves: with dma_entry_limit 3, the fourth map is -ENOSPC
 * and pins nothing; after an unmap a map fits again.
 */
static void entry_limit_is_enospc(void **state)
{
	struct iom_vfio_config vcfg = { .dma_entry_limit = 3 };
	struct rig r;
	uint64_t a;

	(void)state;
	rig_up(&r, NULL, &vcfg);
	a = test_mmap(r.mm, 0, 8 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(iom_vfio_map_dma(r.c, a + i * PG, IOVA + i * PG, PG, DMA_RW), 0);
	assert_int_equal(info_of(&r).dma_avail, 0);
	assert_int_equal(iom_page_ref_count(page_at(r.mm, a + 3 * PG)), 1);
	assert_int_equal(iom_vfio_map_dma(r.c, a + 3 * PG, IOVA + 3 * PG, PG, DMA_RW), -ENOSPC);
	assert_int_equal(iom_page_ref_count(page_at(r.mm, a + 3 * PG)), 1);
	assert_int_equal(info_of(&r).locked, 3 * PG);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + PG, PG, 0, NULL), 0);
	assert_int_equal(iom_vfio_map_dma(r.c, a + 3 * PG, IOVA + 3 * PG, PG, DMA_RW), 0);
	assert_int_equal(info_of(&r).nr_dma, 3);
	rig_down(&r);
}

/*
 * What this proves: pinning beyond the memlock limit is -ENOMEM with the
 * kernel's message, and leaves nothing pinned, mapped or accounted, even
 * when the map had already mapped part of its range; up to the limit
 * works, and the accounting is given back by the unmap.
 */
static void memlock_limit_is_enomem_with_message(void **state)
{
	struct iom_vfio_config vcfg = { .memlock_limit = 64 * 1024 };
	struct iom_page *pages[32];
	int ref[32];
	struct rig r;
	uint64_t a;

	(void)state;
	rig_up(&r, NULL, &vcfg);
	a = test_mmap(r.mm, 0, 32 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	refs_of(r.mm, a, 32, pages, ref);
	test_log_reset(&tlog);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 32 * PG, DMA_RW), -ENOMEM);
	assert_true(test_log_contains(&tlog, "vfio_pin_pages_remote: RLIMIT_MEMLOCK (65536) exceeded"));
	for (int i = 0; i < 32; i++)
		assert_int_equal(iom_page_ref_count(pages[i]), ref[i]);
	assert_int_equal(info_of(&r).nr_dma, 0);
	assert_int_equal(info_of(&r).locked, 0);
	assert_int_equal(info_of(&r).nr_entries, 0);

	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 16 * PG, DMA_RW), 0);
	assert_int_equal(info_of(&r).locked, 64 * 1024);
	test_log_reset(&tlog);
	assert_int_equal(iom_vfio_map_dma(r.c, a + 16 * PG, IOVA + 16 * PG, PG, DMA_RW), -ENOMEM);
	assert_true(test_log_contains(&tlog, "RLIMIT_MEMLOCK (65536) exceeded"));
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 16 * PG, 0, NULL), 0);
	assert_int_equal(info_of(&r).locked, 0);
	assert_int_equal(iom_vfio_map_dma(r.c, a + 16 * PG, IOVA + 16 * PG, 16 * PG, DMA_RW), 0);
	rig_down(&r);
}

/*
 * What this proves: with the limit hit by a later run of a scattered
 * range, the runs already mapped are unmapped and unpinned again (the
 * error path of vfio_pin_map_dma()).
 */
static void memlock_limit_midway_unwinds_mapped_runs(void **state)
{
	struct iom_vfio_config vcfg = { .memlock_limit = 100 * PG };
	static struct iom_page *pages[512];
	static int ref[512];
	struct rig r;
	uint64_t a;

	(void)state;
	rig_up(&r, NULL, &vcfg);
	a = scattered_2m_buffer(&r);
	refs_of(r.mm, a, 512, pages, ref);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 2 * MiB, DMA_RW), -ENOMEM);
	assert_true(info_of(&r).map_calls >= 100);	/* it got half way */
	assert_int_equal(info_of(&r).nr_entries, 0);
	assert_int_equal(info_of(&r).locked, 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(iom_page_ref_count(pages[i]), ref[i]);
	rig_down(&r);
}

/*
 * What this proves: when the second pin batch fails (a hole 516 pages
 * in), every page of the first batch is unpinned again (whether its run
 * was mapped already or was still growing into the second batch):
 * -EFAULT with nothing left.
 */
static void fault_in_second_batch_unwinds_the_first(void **state)
{
	static struct iom_page *pages[512];
	static int ref[512];
	struct rig r;
	uint64_t a;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = test_mmap(r.mm, 0, 520 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	assert_int_equal(iom_munmap(r.mm, a + 516 * PG, 4 * PG), 0);
	refs_of(r.mm, a, 512, pages, ref);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 520 * PG, DMA_RW), -EFAULT);
	assert_int_equal(info_of(&r).nr_entries, 0);
	assert_int_equal(info_of(&r).nr_dma, 0);
	assert_int_equal(info_of(&r).locked, 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(iom_page_ref_count(pages[i]), ref[i]);
	/* the part before the hole maps */
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 516 * PG, DMA_RW), 0);
	rig_down(&r);
}

/* ---- seed 002: out of CMA and ZONE_MOVABLE first ------------------------------ */

static void pins_leave(struct iom_machine_config *cfg, bool cma)
{
	struct iom_page *pages[64];
	unsigned long moved0;
	char buf[16];
	struct rig r;
	uint64_t a;

	rig_up(&r, cfg, NULL);
	a = test_mmap(r.mm, 0, 64 * PG, RW, ANON, NULL, 0);
	for (int i = 0; i < 64; i++) {
		snprintf(buf, sizeof(buf), "page %d", i);
		assert_int_equal(iom_write(r.mm, a + i * PG, buf, sizeof(buf)), 0);
	}
	/* precondition: the guest RAM sits where a long-term pin must not */
	for (int i = 0; i < 64; i++) {
		pages[i] = page_at(r.mm, a + i * PG);
		if (cma)
			assert_int_equal(get_pageblock_migratetype(r.m, pages[i]), IOM_MIGRATE_CMA);
		else
			assert_int_equal(page_zone(r.m, pages[i])->zone_type, IOM_ZONE_MOVABLE);
	}
	moved0 = iom_vm_event_count(r.m, IOM_PGMIGRATE_SUCCESS);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 64 * PG, DMA_RW), 0);
	assert_int_equal(iom_vm_event_count(r.m, IOM_PGMIGRATE_SUCCESS) - moved0, 64);
	for (int i = 0; i < 64; i++) {
		struct iom_page *p = page_at(r.mm, a + i * PG);
		char want[16], got[16];

		assert_ptr_not_equal(p, pages[i]);
		assert_int_not_equal(get_pageblock_migratetype(r.m, p), IOM_MIGRATE_CMA);
		assert_int_not_equal(page_zone(r.m, p)->zone_type, IOM_ZONE_MOVABLE);
		assert_true(iom_page_maybe_dma_pinned(p));
		assert_int_equal(iom_iommu_iova_to_phys(r.domain, IOVA + i * PG),
				 iom_page_to_phys(r.m, p));
		snprintf(want, sizeof(want), "page %d", i);
		assert_int_equal(iom_device_dma_read(r.dev, IOVA + i * PG, got, sizeof(got)), 0);
		assert_string_equal(got, want);
	}
	if (cma) {
		/* seed 002's point: the whole area can still be allocated */
		struct iom_cma *area = iom_cma_get(r.m, 0);
		unsigned long n = (unsigned long)(iom_cma_get_size(area) / PG);
		struct iom_page *p = iom_cma_alloc(area, n, 0, false);

		assert_non_null(p);
		assert_int_equal(iom_cma_release(area, p, n), 0);
	}
	rig_down(&r);
}

/*
 * What this proves: guest RAM in a CMA area is migrated out before it is
 * pinned, so the whole area can still be allocated while it is mapped.
 */
static void map_migrates_pages_out_of_cma_first(void **state)
{
	struct iom_machine_config cfg = { 0 };

	(void)state;
	cfg.mem_size = 32 * MiB;
	cfg.nr_cma_areas = 1;
	cfg.cma[0].size = 24 * MiB;	/* most free memory: movable pages go there */
	pins_leave(&cfg, true);
}

/* What this proves: guest RAM in ZONE_MOVABLE is migrated out before it is pinned. */
static void map_migrates_pages_out_of_zone_movable_first(void **state)
{
	struct iom_machine_config cfg = { 0 };

	(void)state;
	cfg.mem_size = 32 * MiB;
	cfg.movable_size = 16 * MiB;
	pins_leave(&cfg, false);
}

/* ---- errors ------------------------------------------------------------------ */

/* What the container and the machine hold, to show an error changed nothing. */
struct snapshot {
	struct iom_vfio_info info;
	unsigned long nr_free;
	int ref[8];
};

static void snap(struct rig *r, uint64_t a, struct snapshot *s)
{
	struct iom_page *pages[8];

	s->info = info_of(r);
	s->nr_free = test_nr_free(r->m);
	refs_of(r->mm, a, 8, pages, s->ref);
}

static void assert_unchanged(struct rig *r, uint64_t a, const struct snapshot *s)
{
	struct snapshot now;

	snap(r, a, &now);
	assert_int_equal(now.info.nr_dma, s->info.nr_dma);
	assert_int_equal(now.info.locked, s->info.locked);
	assert_int_equal(now.info.nr_entries, s->info.nr_entries);
	assert_int_equal(now.nr_free, s->nr_free);
	assert_memory_equal(now.ref, s->ref, sizeof(s->ref));
}

/*
 * What this proves: every bad argument of map and unmap is refused with
 * its errno and changes nothing: no mapping, entry, pin, accounting or
 * page allocated.
 */
static void bad_arguments_change_nothing(void **state)
{
	struct snapshot s;
	struct rig r;
	uint64_t a, ro, un = 1;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = test_mmap(r.mm, 0, 8 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	ro = test_mmap(r.mm, 0, 4 * PG, IOM_PROT_READ, ANON | IOM_MAP_POPULATE, NULL, 0);
	assert_int_equal(iom_vfio_map_dma(r.c, a + 4 * PG, IOVA + MiB, 4 * PG, DMA_RW), 0);
	snap(&r, a, &s);

	assert_int_equal(iom_vfio_map_dma(NULL, a, IOVA, PG, DMA_RW), -EINVAL);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 0, DMA_RW), -EINVAL);
	assert_int_equal(iom_vfio_map_dma(r.c, a + 1, IOVA, PG, DMA_RW), -EINVAL);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA + 8, PG, DMA_RW), -EINVAL);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, PG + 1, DMA_RW), -EINVAL);
	assert_int_equal(iom_vfio_map_dma(r.c, a, ~0UL - PG + 1, 2 * PG, DMA_RW), -EINVAL);
	assert_int_equal(iom_vfio_map_dma(r.c, ~0ULL - PG + 1, IOVA, 2 * PG, DMA_RW), -EINVAL);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, PG, 0), -EINVAL);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, PG, DMA_RW | 4), -EINVAL);
	/* beyond the domain's 48 input bits */
	assert_int_equal(iom_vfio_map_dma(r.c, a, (1UL << 48) - PG, 2 * PG, DMA_RW), -EINVAL);
	/* a hole after the buffer: the pin fails, nothing of it stays */
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 16 * PG, DMA_RW), -EFAULT);
	/* no VMA at all */
	assert_int_equal(iom_vfio_map_dma(r.c, 0x1000, IOVA, PG, DMA_RW), -EFAULT);
	/* a device-writable mapping of memory the process cannot write */
	assert_int_equal(iom_vfio_map_dma(r.c, ro, IOVA, 4 * PG, DMA_RW), -EFAULT);
	assert_unchanged(&r, a, &s);

	assert_int_equal(iom_vfio_unmap_dma(NULL, IOVA, PG, 0, &un), -EINVAL);
	assert_int_equal(un, 0);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + MiB, 4 * PG, 0x1, NULL), -EINVAL);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + MiB, 4 * PG, 0x4, NULL), -EINVAL);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + MiB, 0, 0, NULL), -EINVAL);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + MiB + 1, 4 * PG, 0, NULL), -EINVAL);
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA + MiB, 4 * PG - 1, 0, NULL), -EINVAL);
	assert_int_equal(iom_vfio_unmap_dma(r.c, ~0UL - PG + 1, 2 * PG, 0, NULL), -EINVAL);
	assert_int_equal(iom_vfio_get_info(NULL, &s.info), -EINVAL);
	assert_int_equal(iom_vfio_get_info(r.c, NULL), -EINVAL);
	assert_unchanged(&r, a, &s);

	/* after all that, the read-only buffer maps device-read-only */
	assert_int_equal(iom_vfio_map_dma(r.c, ro, IOVA, 4 * PG, IOM_VFIO_DMA_MAP_FLAG_READ), 0);
	rig_down(&r);
}

/*
 * What this proves: container creation refuses a NULL process or output,
 * neither IOMMU nor domain, a DMA-API domain and an unknown type; a
 * container with its own domain gives a domain devices can attach to,
 * and its destroy is -EBUSY while one is (the mappings already gone),
 * then succeeds; destroying a container unmaps and unpins everything.
 */
static void container_create_destroy(void **state)
{
	struct iom_vfio_config bad = { .type = 2 };
	struct iom_vfio_container *c = (void *)1;
	struct iom_iommu_domain *dma;
	struct iom_device *dev;
	struct rig r;
	uint64_t a;
	int ref;

	(void)state;
	rig_up(&r, NULL, NULL);
	assert_int_equal(iom_vfio_container_create(NULL, NULL, r.domain, NULL, &c), -EINVAL);
	assert_int_equal(iom_vfio_container_create(r.mm, NULL, r.domain, NULL, NULL), -EINVAL);
	assert_int_equal(iom_vfio_container_create(r.mm, NULL, NULL, NULL, &c), -EINVAL);
	assert_int_equal(iom_vfio_container_create(r.mm, NULL, r.domain, &bad, &c), -EINVAL);
	dma = iom_iommu_domain_alloc(r.iommu, IOM_IOMMU_DOMAIN_DMA);
	assert_non_null(dma);
	assert_int_equal(iom_vfio_container_create(r.mm, NULL, dma, NULL, &c), -EINVAL);
	assert_ptr_equal(c, (void *)1);
	assert_int_equal(iom_iommu_domain_free(dma), 0);
	assert_null(iom_vfio_container_domain(NULL));
	assert_int_equal(iom_vfio_container_destroy(NULL), 0);

	/* a container with its own domain */
	a = test_mmap(r.mm, 0, 8 * PG, RW, ANON | IOM_MAP_POPULATE, NULL, 0);
	ref = iom_page_ref_count(page_at(r.mm, a));
	assert_int_equal(iom_vfio_container_create(r.mm, r.iommu, NULL, NULL, &c), 0);
	assert_int_equal(iom_iommu_domain_type(iom_vfio_container_domain(c)),
			 IOM_IOMMU_DOMAIN_UNMANAGED);
	assert_int_equal(iom_device_create(r.iommu, "dev1", &dev), 0);
	assert_int_equal(iom_iommu_attach_device(iom_vfio_container_domain(c), dev), 0);
	assert_int_equal(iom_vfio_map_dma(c, a, IOVA, 8 * PG, DMA_RW), 0);
	assert_int_equal(iom_device_dma_write(dev, IOVA + 5, "dev1", 5), 0);
	assert_int_equal(iom_page_ref_count(page_at(r.mm, a)), ref + BIAS);
	assert_int_equal(iom_vfio_container_destroy(c), -EBUSY);
	assert_int_equal(iom_page_ref_count(page_at(r.mm, a)), ref);
	assert_int_equal(iom_iommu_detach_device(iom_vfio_container_domain(c), dev), 0);
	assert_int_equal(iom_vfio_container_destroy(c), 0);
	assert_int_equal(iom_device_destroy(dev), 0);

	/* the rig's container, destroyed with mappings in place (rig_down checks the pages) */
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 8 * PG, DMA_RW), 0);
	assert_int_equal(iom_page_ref_count(page_at(r.mm, a)), ref + BIAS);
	assert_int_equal(iom_vfio_container_destroy(r.c), 0);
	assert_int_equal(iom_page_ref_count(page_at(r.mm, a)), ref);
	assert_int_equal(iom_iommu_iova_to_phys(r.domain, IOVA), 0);
	assert_true(iom_vfio_container_create(r.mm, NULL, r.domain, NULL, &r.c) == 0);
	rig_down(&r);
}

/*
 * What this proves: a process's memory mapped and the process gone, the
 * pages stay (pinned) for the device until the unmap, which frees them.
 */
static void mapping_outlives_the_process(void **state)
{
	struct rig r;
	char out[8];
	uint64_t a, un;

	(void)state;
	rig_up(&r, NULL, NULL);
	a = test_mmap(r.mm, 0, 8 * PG, RW, ANON, NULL, 0);
	assert_int_equal(iom_write(r.mm, a + 7 * PG, "guest", 6), 0);
	assert_int_equal(iom_vfio_map_dma(r.c, a, IOVA, 8 * PG, DMA_RW), 0);
	iom_mm_destroy(r.mm);
	assert_int_equal(iom_device_dma_read(r.dev, IOVA + 7 * PG, out, 6), 0);
	assert_string_equal(out, "guest");
	assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 8 * PG, 0, &un), 0);
	assert_int_equal(un, 8 * PG);
	assert_int_equal(iom_mm_create(r.m, &r.mm), 0);
	rig_down(&r);
}

/* ---- unmap against device traffic ------------------------------------------ */

#define RACE_PAGES 64

static void page_stamp(unsigned long k, char *buf16)
{
	memset(buf16, 0, 16);
	snprintf(buf16, 16, "vfio page %lu", k);
}

/* A fresh process whose @n pages hold their stamps, mapped at IOVA, then gone. */
static void map_orphan_pages(struct rig *r, unsigned long n)
{
	struct iom_mm *mm;
	char st[16];
	uint64_t a;

	assert_int_equal(iom_mm_create(r->m, &mm), 0);
	a = test_mmap(mm, 0, n * PG, RW, ANON, NULL, 0);
	for (unsigned long k = 0; k < n; k++) {
		page_stamp(k, st);
		assert_int_equal(iom_write(mm, a + k * PG, st, 16), 0);
	}
	/* the container pins through this process: switch the rig's container to it */
	assert_int_equal(iom_vfio_container_destroy(r->c), 0);
	assert_int_equal(iom_vfio_container_create(mm, NULL, r->domain, NULL, &r->c), 0);
	assert_int_equal(iom_vfio_map_dma(r->c, a, IOVA, n * PG, DMA_RW), 0);
	/* the pins are now the pages' only references: the unmap frees them */
	iom_mm_destroy(mm);
}

/*
 * What this proves: after the unmap returns, a device that had the pages'
 * translations in its IOTLB faults instead of reading the freed (poisoned)
 * pages. Negative control: with the IOMMU's invalidations skipped, the
 * same read succeeds and returns the poison, so the check can fail.
 */
static void device_never_reads_a_freed_page_after_unmap(void **state)
{
	struct iom_machine_config cfg = { .mem_size = 64 * MiB, .page_poison = 1 };
	char got[16], want[16];
	struct rig r;
	uint64_t un;

	(void)state;
	rig_up(&r, &cfg, NULL);
	for (int skip = 0; skip < 2; skip++) {
		map_orphan_pages(&r, 4);
		for (unsigned long k = 0; k < 4; k++) {	/* into the IOTLB */
			page_stamp(k, want);
			assert_int_equal(iom_device_dma_read(r.dev, IOVA + k * PG, got, 16), 0);
			assert_memory_equal(got, want, 16);
		}
		iom_iommu_set_skip_invalidation(r.iommu, skip);
		assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, 4 * PG, 0, &un), 0);
		assert_int_equal(un, 4 * PG);
		if (!skip) {
			assert_int_equal(iom_device_dma_read(r.dev, IOVA + 2 * PG, got, 16), -EFAULT);
		} else {
			/* the broken IOMMU lets the device read the freed page */
			assert_int_equal(iom_device_dma_read(r.dev, IOVA + 2 * PG, got, 16), 0);
			assert_int_equal((unsigned char)got[0], IOM_PAGE_POISON);
			iom_iommu_set_skip_invalidation(r.iommu, false);
			iom_iommu_flush_iotlb_all(r.domain);
		}
	}
	rig_down(&r);
}

struct race {
	_Atomic unsigned long reads, ok, faults, bad;
	atomic_bool stop;
};

/* Device thread step: read a page's stamp; right data or a fault, nothing else. */
static int race_step(struct iom_device *dev, unsigned int idx, unsigned long iter,
		     void *priv)
{
	struct race *s = priv;
	unsigned long k = (iter * 13 + idx * 7) % RACE_PAGES;
	char got[16], want[16];
	int ret;

	if (atomic_load(&s->stop))
		return 1;
	ret = iom_device_dma_read(dev, IOVA + k * PG, got, sizeof(got));
	page_stamp(k, want);
	if (!ret && !memcmp(got, want, 16))
		atomic_fetch_add(&s->ok, 1);
	else if (ret == -EFAULT)
		atomic_fetch_add(&s->faults, 1);
	else
		atomic_fetch_add(&s->bad, 1);
	atomic_fetch_add(&s->reads, 1);
	return 0;
}

/* The device aborts a faulting transaction, quietly (no log from device threads). */
static int abort_on_fault(struct iom_iommu_domain *domain, struct iom_device *dev,
			  unsigned long iova, int flags, void *token)
{
	(void)domain;
	(void)dev;
	(void)iova;
	(void)flags;
	(void)token;
	return -EFAULT;
}

/* Wait (at most 10 s) until the devices made @n more reads. */
static void wait_reads(struct race *s, unsigned long n)
{
	unsigned long start = atomic_load(&s->reads);
	time_t t0 = time(NULL);

	while (atomic_load(&s->reads) - start < n && time(NULL) - t0 < 10)
		sched_yield();
}

/*
 * What this proves: two device threads read the mapped pages without a
 * pause while the main thread, twenty times, maps a process's pages
 * (whose only references then are the pins) and unmaps them, which frees
 * and poisons them: every read returns the page's stamp or faults, never
 * poison or another page's bytes, because the unmap syncs the IOTLB (and
 * waits for transactions in flight) before it unpins.
 */
static void unmap_races_device_reads(void **state)
{
	struct iom_machine_config cfg = { .mem_size = 64 * MiB, .page_poison = 1 };
	struct iom_device_threads *t;
	struct iom_device_thread_stats st;
	static struct race s;
	struct rig r;
	uint64_t un;

	(void)state;
	rig_up(&r, &cfg, NULL);
	iom_iommu_set_fault_handler(r.domain, abort_on_fault, NULL);
	memset(&s, 0, sizeof(s));
	assert_int_equal(iom_device_threads_start(r.dev, 2, race_step, &s, &t), 0);
	for (int cycle = 0; cycle < 20; cycle++) {
		map_orphan_pages(&r, RACE_PAGES);
		wait_reads(&s, 200);
		assert_int_equal(iom_vfio_unmap_dma(r.c, IOVA, RACE_PAGES * PG, 0, &un), 0);
		assert_int_equal(un, RACE_PAGES * PG);
		wait_reads(&s, 50);
	}
	atomic_store(&s.stop, true);
	assert_int_equal(iom_device_threads_stop(t, &st), 0);
	assert_int_equal(atomic_load(&s.bad), 0);
	assert_true(atomic_load(&s.ok) > 0);
	assert_true(atomic_load(&s.faults) > 0);
	rig_down(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(contiguous_2m_buffer_maps_as_one_2m_entry),
		cmocka_unit_test(scattered_2m_buffer_maps_as_512_entries),
		cmocka_unit_test(disable_hugepages_maps_page_by_page),
		cmocka_unit_test(mixed_buffer_maps_one_entry_per_run),
		cmocka_unit_test(contiguous_run_spans_pin_batches),
		cmocka_unit_test(device_dma_reads_and_writes_process_memory),
		cmocka_unit_test(v2_unmap_whole_mappings_or_einval),
		cmocka_unit_test(v1_unmap_semantics),
		cmocka_unit_test(unmap_flag_all),
		cmocka_unit_test(overlap_is_eexist),
		cmocka_unit_test(entry_limit_is_enospc),
		cmocka_unit_test(memlock_limit_is_enomem_with_message),
		cmocka_unit_test(memlock_limit_midway_unwinds_mapped_runs),
		cmocka_unit_test(fault_in_second_batch_unwinds_the_first),
		cmocka_unit_test(map_migrates_pages_out_of_cma_first),
		cmocka_unit_test(map_migrates_pages_out_of_zone_movable_first),
		cmocka_unit_test(bad_arguments_change_nothing),
		cmocka_unit_test(container_create_destroy),
		cmocka_unit_test(mapping_outlives_the_process),
		cmocka_unit_test(device_never_reads_a_freed_page_after_unmap),
		cmocka_unit_test(unmap_races_device_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
