/* SPDX-License-Identifier: MIT */
/*
 * Streaming DMA mappings through the public DMA API (dma-mapping.h) only:
 * iom_dma_map_page() gives the device exactly the permission its
 * direction allows, at the page's bytes, offsets and page crossings kept;
 * the streaming mask bounds the IOVA and a full space fails with
 * IOM_DMA_MAPPING_ERROR; an unmap whose size spans other IOVA pages than
 * the mapping's (the IOVA allocator's power-of-two rounding included), of
 * an address never mapped, or twice, is refused and the real mapping
 * keeps working, while a size within the same pages unmaps as in the
 * kernel; a strict domain
 * reuses an unmapped IOVA at once, a lazy (DMA_FQ) one only after its
 * flush queue is flushed; iom_dma_map_sg() lets the device reach exactly
 * each entry's bytes and a failed map_sg leaves nothing mapped; with
 * dma-debug on, each misuse class is reported once (counter and text)
 * through the public calls and clean pairs report nothing after it; a
 * machine without dma-debug reports nothing; every bad argument of every
 * public function gets its documented error and changes nothing; and no
 * page (data or I/O page table) leaks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/dma-mapping.h>

#include "dma_util.h"

#define PG IOM_PAGE_SIZE

static struct test_log tlog;

/*
 * A 64 MiB machine, an IOMMU whose flush-queue timer never fires during a
 * test (the lazy tests flush by hand), a domain of @type with the IOVA
 * space [4 KiB, 1 TiB), and one attached device.
 */
static void rig_up(struct test_dma_rig *r, enum iom_iommu_domain_type type, bool dma_debug)
{
	struct iom_machine_config cfg;
	struct iom_iommu_config icfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 64ULL << 20;
	cfg.dma_debug = dma_debug;
	iom_iommu_config_init(&icfg);
	icfg.fq_timeout_us = 600u * 1000 * 1000;
	test_dma_rig_up(r, test_machine(64, &tlog, &cfg), &icfg, type, 0, 1ULL << 40);
	r->dma_debug = dma_debug;
	test_log_reset(&tlog);
}

static struct iom_page *alloc_block(struct test_dma_rig *r, unsigned int order)
{
	struct iom_page *p = iom_alloc_pages(r->m, IOM_GFP_KERNEL, order);

	assert_non_null(p);
	return p;
}

static void free_block(struct test_dma_rig *r, struct iom_page *p, unsigned int order)
{
	assert_int_equal(iom___free_pages(r->m, p, order), 0);
}

/* The content at byte @off of the block starting at @page (@off may pass
 * page boundaries: the content of consecutive pfns is contiguous, but each
 * page is looked up on its own to check the bytes are in the right one). */
static unsigned char *byte_at(struct test_dma_rig *r, struct iom_page *page, size_t off)
{
	struct iom_page *p = iom_pfn_to_page(r->m, iom_page_to_pfn(r->m, page) +
					     (off >> IOM_PAGE_SHIFT));

	assert_non_null(p);
	return (unsigned char *)iom_page_address(r->m, p) + (off & (PG - 1));
}

static void fill_pattern(unsigned char *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(seed * 31 + i * 7 + (i >> 12) + 1);
}

/* A mapping that must succeed, checked with iom_dma_mapping_error(). */
static iom_dma_addr_t map(struct test_dma_rig *r, struct iom_page *page, size_t off,
			  size_t size, enum iom_dma_data_direction dir)
{
	iom_dma_addr_t a = iom_dma_map_page(r->dev, page, off, size, dir, 0);

	assert_false(iom_dma_mapping_error(r->dev, a));
	return a;
}

/* ---- streaming mappings ------------------------------------------------- */

static void test_direction_decides_what_the_device_may_do(void **state)
{
	static const struct {
		enum iom_dma_data_direction dir;
		bool read, write;
	} cases[] = {
		{ IOM_DMA_TO_DEVICE, true, false },
		{ IOM_DMA_FROM_DEVICE, false, true },
		{ IOM_DMA_BIDIRECTIONAL, true, true },
	};
	enum iom_iommu_domain_type types[] = { IOM_IOMMU_DOMAIN_DMA, IOM_IOMMU_DOMAIN_DMA_FQ };

	(void)state;
	for (size_t t = 0; t < 2; t++) {
		struct test_dma_rig r;

		rig_up(&r, types[t], false);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct iom_page *page = alloc_block(&r, 0);
			unsigned char cpu[64], dev[64], out[64];
			iom_dma_addr_t a;

			fill_pattern(cpu, sizeof(cpu), (unsigned int)i);
			fill_pattern(dev, sizeof(dev), (unsigned int)i + 10);
			memcpy(byte_at(&r, page, 200), cpu, sizeof(cpu));
			a = map(&r, page, 0, PG, cases[i].dir);
			assert_true(a < 1ULL << 32 && !(a & (PG - 1)));
			memset(out, 0, sizeof(out));
			assert_int_equal(iom_device_dma_read(r.dev, a + 200, out, sizeof(out)),
					 cases[i].read ? 0 : -EFAULT);
			if (cases[i].read)
				assert_memory_equal(out, cpu, sizeof(cpu));
			assert_int_equal(iom_device_dma_write(r.dev, a + 200, dev, sizeof(dev)),
					 cases[i].write ? 0 : -EFAULT);
			/* a refused write moved no byte */
			assert_memory_equal(byte_at(&r, page, 200),
					    cases[i].write ? dev : cpu, sizeof(dev));
			assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, cases[i].dir, 0), 0);
			if (types[t] == IOM_IOMMU_DOMAIN_DMA_FQ)
				iom_iommu_dma_flush_queue(r.domain);
			/* gone for the device */
			assert_int_equal(iom_device_dma_read(r.dev, a, out, 1), -EFAULT);
			assert_int_equal(iom_device_dma_write(r.dev, a, dev, 1), -EFAULT);
			free_block(&r, page, 0);
		}
		test_dma_rig_down(&r);
	}
}

static void test_offsets_and_page_crossing_reach_the_right_pages(void **state)
{
	enum { ORDER = 3, LEN = 3 * PG - 200 };
	static const size_t offsets[] = { 0, 1, 100, PG - 1, PG + 77, 2 * PG + 4000 };
	unsigned char *in = malloc(LEN), *out = malloc(LEN);
	struct test_dma_rig r;
	struct iom_page *page;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, false);
	page = alloc_block(&r, ORDER);
	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		size_t off = offsets[i];
		iom_dma_addr_t a;

		memset(iom_page_address(r.m, page), 0, PG << ORDER);
		a = map(&r, page, off, LEN, IOM_DMA_BIDIRECTIONAL);
		/* the offset inside the page is kept, and the IOMMU agrees */
		assert_int_equal(a & (PG - 1), off & (PG - 1));
		for (size_t b = 0; b < LEN; b += PG / 2)
			assert_int_equal(iom_iommu_iova_to_phys(r.domain, a + b),
					 iom_page_to_phys(r.m, page) + off + b);
		fill_pattern(in, LEN, (unsigned int)i);
		assert_int_equal(iom_device_dma_write(r.dev, a, in, LEN), 0);
		for (size_t b = 0; b < LEN; b++)
			if (*byte_at(&r, page, off + b) != in[b])
				fail_msg("offset %zu: byte %zu landed elsewhere", off, b);
		/* nothing outside the buffer was written */
		if (off)
			assert_int_equal(*byte_at(&r, page, off - 1), 0);
		if (off + LEN < PG << ORDER)
			assert_int_equal(*byte_at(&r, page, off + LEN), 0);
		/* and the CPU's bytes reach the device */
		fill_pattern(byte_at(&r, page, 0), PG << ORDER, (unsigned int)i + 50);
		assert_int_equal(iom_device_dma_read(r.dev, a, out, LEN), 0);
		assert_memory_equal(out, byte_at(&r, page, off), LEN);
		assert_int_equal(iom_dma_unmap_page(r.dev, a, LEN, IOM_DMA_BIDIRECTIONAL, 0), 0);
		assert_int_equal(iom_device_dma_read(r.dev, a, out, 1), -EFAULT);
	}
	/* the last page of the block, to its very last byte */
	{
		iom_dma_addr_t a = map(&r, page, (PG << ORDER) - 10, 10, IOM_DMA_TO_DEVICE);

		assert_int_equal(iom_device_dma_read(r.dev, a, out, 10), 0);
		assert_memory_equal(out, byte_at(&r, page, (PG << ORDER) - 10), 10);
		assert_int_equal(iom_dma_unmap_page(r.dev, a, 10, IOM_DMA_TO_DEVICE, 0), 0);
	}
	free_block(&r, page, ORDER);
	free(in);
	free(out);
	test_dma_rig_down(&r);
}

static void test_mask_bounds_the_iova_and_a_full_space_fails(void **state)
{
	struct iom_page *pages[4];
	iom_dma_addr_t a[4], hi;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, false);
	for (int i = 0; i < 4; i++)
		pages[i] = alloc_block(&r, 0);
	/* the default is 32 bits */
	assert_int_equal(iom_dma_get_mask(r.dev), IOM_DMA_BIT_MASK(32));
	a[0] = map(&r, pages[0], 0, PG, IOM_DMA_BIDIRECTIONAL);
	assert_true(a[0] < 1ULL << 32);
	/* a 64-bit device gets IOVAs above 4 GiB (top-down allocation) */
	assert_int_equal(iom_dma_set_mask(r.dev, IOM_DMA_BIT_MASK(64)), 0);
	assert_int_equal(iom_dma_get_mask(r.dev), IOM_DMA_BIT_MASK(64));
	hi = map(&r, pages[1], 0, 3 * PG, IOM_DMA_BIDIRECTIONAL);
	assert_true(hi >= 1ULL << 32 && hi < 1ULL << 40);
	assert_int_equal(iom_dma_unmap_page(r.dev, hi, 3 * PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, a[0], PG, IOM_DMA_BIDIRECTIONAL, 0), 0);

	/* 14 bits: IOVA pages 1..3 (page 0 is never handed out) */
	assert_int_equal(iom_dma_set_mask(r.dev, IOM_DMA_BIT_MASK(14)), 0);
	for (int i = 0; i < 3; i++) {
		a[i] = map(&r, pages[i], 0, PG, IOM_DMA_FROM_DEVICE);
		assert_true(a[i] >= PG && a[i] < 4 * PG);
	}
	assert_true(a[0] != a[1] && a[1] != a[2] && a[0] != a[2]);
	a[3] = iom_dma_map_page(r.dev, pages[3], 0, PG, IOM_DMA_FROM_DEVICE, 0);
	assert_int_equal(a[3], IOM_DMA_MAPPING_ERROR);
	assert_true(iom_dma_mapping_error(r.dev, a[3]));
	/* more than the whole space fails at once */
	assert_int_equal(iom_dma_map_page(r.dev, pages[3], 0, 4 * PG, IOM_DMA_FROM_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	/* the three still work, each to its own page */
	for (int i = 0; i < 3; i++) {
		unsigned char c = (unsigned char)(0xa0 + i);

		assert_int_equal(iom_device_dma_write(r.dev, a[i], &c, 1), 0);
		assert_int_equal(*byte_at(&r, pages[i], 0), c);
	}
	/* one freed: there is room again, below the mask */
	assert_int_equal(iom_dma_unmap_page(r.dev, a[1], PG, IOM_DMA_FROM_DEVICE, 0), 0);
	a[3] = map(&r, pages[3], 0, PG, IOM_DMA_FROM_DEVICE);
	assert_true(a[3] < 4 * PG);
	/* the smallest mask the IOMMU takes covers one page */
	assert_int_equal(iom_dma_set_mask(r.dev, IOM_DMA_BIT_MASK(12)), -EIO);
	assert_int_equal(iom_dma_get_mask(r.dev), IOM_DMA_BIT_MASK(14));
	for (int i = 0; i < 4; i++) {
		if (i != 1)
			assert_int_equal(iom_dma_unmap_page(r.dev, a[i], PG,
							    IOM_DMA_FROM_DEVICE, 0), 0);
		free_block(&r, pages[i], 0);
	}
	test_dma_rig_down(&r);
}

/*
 * A refused unmap changes nothing: the mapping still reaches its page
 * with its permissions, and the right unmap then works.
 */
static void check_still_mapped(struct test_dma_rig *r, iom_dma_addr_t a, size_t size,
			       struct iom_page *page, size_t off)
{
	unsigned char in[8] = "mapped!", out[8];

	assert_int_equal(iom_device_dma_write(r->dev, a + size - sizeof(in), in, sizeof(in)), 0);
	assert_memory_equal(byte_at(r, page, off + size - sizeof(in)), in, sizeof(in));
	assert_int_equal(iom_device_dma_read(r->dev, a, out, sizeof(out)), 0);
}

static void test_unmap_of_wrong_size_or_unknown_address_changes_nothing(void **state)
{
	static const struct {
		size_t off, size;	/* what is mapped */
		size_t bad;		/* a wrong size to unmap it with */
	} cases[] = {
		{ 0, PG, 2 * PG },
		{ 0, 2 * PG, PG },
		{ 0, 4 * PG, 3 * PG },	/* the IOVA range is 4 pages either way */
		{ 0, 3 * PG, 4 * PG },
		{ 100, 3 * PG, 4 * PG },
		{ 0, 40 * PG, 33 * PG },	/* beyond the IOVA caches' sizes */
		{ 0, 33 * PG, 40 * PG },
		{ 0, 40 * PG, 64 * PG },
	};
	enum iom_iommu_domain_type types[] = { IOM_IOMMU_DOMAIN_DMA, IOM_IOMMU_DOMAIN_DMA_FQ };

	(void)state;
	for (size_t t = 0; t < 2; t++) {
		struct test_dma_rig r;
		struct iom_page *page;

		rig_up(&r, types[t], false);
		page = alloc_block(&r, 6);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			size_t off = cases[i].off, size = cases[i].size;
			iom_dma_addr_t a = map(&r, page, off, size, IOM_DMA_BIDIRECTIONAL);

			if (iom_dma_unmap_page(r.dev, a, cases[i].bad, IOM_DMA_BIDIRECTIONAL, 0) !=
			    -EINVAL)
				fail_msg("case %zu (%s): unmap of %zu bytes of a %zu-byte mapping "
					 "was not refused", i, t ? "lazy" : "strict",
					 cases[i].bad, size);
			check_still_mapped(&r, a, size, page, off);
			/* an address inside it, one next to it, one never mapped */
			assert_int_equal(iom_dma_unmap_page(r.dev, a + PG, size - PG > 0 ? size - PG : 1,
							    IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
			assert_int_equal(iom_dma_unmap_page(r.dev, (a & ~(iom_dma_addr_t)(PG - 1)) +
							    64 * PG, PG, IOM_DMA_BIDIRECTIONAL, 0),
					 -EINVAL);
			assert_int_equal(iom_dma_unmap_page(r.dev, 0x7654321000ULL, PG,
							    IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
			assert_int_equal(iom_dma_unmap_page(r.dev, IOM_DMA_MAPPING_ERROR, PG,
							    IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
			check_still_mapped(&r, a, size, page, off);
			assert_int_equal(iom_dma_unmap_page(r.dev, a, size, IOM_DMA_BIDIRECTIONAL, 0), 0);
			/* twice is once too many */
			assert_int_equal(iom_dma_unmap_page(r.dev, a, size, IOM_DMA_BIDIRECTIONAL, 0),
					 -EINVAL);
			if (t)
				iom_iommu_dma_flush_queue(r.domain);
			for (size_t b = 0; b < size; b += PG)
				assert_int_equal(iom_iommu_iova_to_phys(r.domain, a + b), 0);
		}
		/* a size that differs but spans the same pages unmaps, as in the kernel */
		{
			iom_dma_addr_t a = map(&r, page, 100, 200, IOM_DMA_FROM_DEVICE);

			assert_int_equal(iom_dma_unmap_page(r.dev, a, 3000, IOM_DMA_FROM_DEVICE, 0), 0);
			if (t)
				iom_iommu_dma_flush_queue(r.domain);
			assert_int_equal(iom_iommu_iova_to_phys(r.domain, a), 0);
		}
		/* nothing left mapped anywhere: a map of the same sizes works again */
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			iom_dma_addr_t a = map(&r, page, 0, cases[i].size, IOM_DMA_TO_DEVICE);

			assert_int_equal(iom_dma_unmap_page(r.dev, a, cases[i].size,
							    IOM_DMA_TO_DEVICE, 0), 0);
		}
		free_block(&r, page, 6);
		test_dma_rig_down(&r);
	}
}

static void test_strict_domain_reuses_an_unmapped_iova_at_once(void **state)
{
	struct iom_page *p = NULL;
	struct iom_iommu_stats st0, st1;
	iom_dma_addr_t a, b;
	unsigned char c;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, false);
	p = alloc_block(&r, 0);
	a = map(&r, p, 0, PG, IOM_DMA_BIDIRECTIONAL);
	assert_int_equal(iom_device_dma_read(r.dev, a, &c, 1), 0);	/* in the IOTLB */
	assert_int_equal(iom_iommu_get_stats(r.iommu, &st0), 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	/* invalidated before the unmap returned */
	assert_int_equal(iom_device_dma_read(r.dev, a, &c, 1), -EFAULT);
	b = map(&r, p, 0, PG, IOM_DMA_BIDIRECTIONAL);
	assert_int_equal(b, a);
	assert_int_equal(iom_iommu_get_stats(r.iommu, &st1), 0);
	assert_int_equal(st1.stale_hits, st0.stale_hits);
	assert_int_equal(st1.fq_queued, 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, b, PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	free_block(&r, p, 0);
	test_dma_rig_down(&r);
}

static void test_lazy_domain_reuses_an_iova_only_after_the_flush(void **state)
{
	enum { N = 8 };
	struct iom_page *p;
	struct iom_iommu_stats st0, st1;
	iom_dma_addr_t a, b[N];
	unsigned char c;
	bool seen = false;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA_FQ, false);
	p = alloc_block(&r, 0);
	a = map(&r, p, 0, PG, IOM_DMA_BIDIRECTIONAL);
	assert_int_equal(iom_device_dma_read(r.dev, a, &c, 1), 0);	/* in the IOTLB */
	assert_int_equal(iom_iommu_get_stats(r.iommu, &st0), 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	/* the IOTLB still has it: lazy mode's window, counted */
	assert_int_equal(iom_device_dma_read(r.dev, a, &c, 1), 0);
	assert_int_equal(iom_iommu_get_stats(r.iommu, &st1), 0);
	assert_int_equal(st1.stale_hits, st0.stale_hits + 1);
	assert_int_equal(st1.fq_queued, st0.fq_queued + 1);
	/* the IOVA waits in the queue */
	for (int i = 0; i < N; i++) {
		b[i] = map(&r, p, 0, PG, IOM_DMA_BIDIRECTIONAL);
		assert_true(b[i] != a);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(iom_dma_unmap_page(r.dev, b[i], PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	iom_iommu_dma_flush_queue(r.domain);
	assert_int_equal(iom_device_dma_read(r.dev, a, &c, 1), -EFAULT);
	/* now it is handed out again */
	for (int i = 0; i < N + 1; i++) {
		b[i % N] = map(&r, p, 0, PG, IOM_DMA_BIDIRECTIONAL);
		seen |= b[i % N] == a;
		assert_int_equal(iom_dma_unmap_page(r.dev, b[i % N], PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
		if (seen)
			break;
	}
	assert_true(seen);
	iom_iommu_dma_flush_queue(r.domain);
	free_block(&r, p, 0);
	test_dma_rig_down(&r);
}

/* ---- scatterlists ------------------------------------------------------- */

enum { NSG = 5 };

/* Entries with odd offsets and lengths, some crossing pages (orders 0..2). */
static void sg_setup(struct test_dma_rig *r, struct iom_scatterlist *sg, struct iom_page **blocks)
{
	static const unsigned int order[NSG] = { 0, 1, 2, 0, 1 };
	static const unsigned int offset[NSG] = { 10, PG - 3, PG + 77, 0, 123 };
	static const unsigned int length[NSG] = { 100, 300, 2 * PG + 999, PG, 2 * PG - 123 };

	memset(sg, 0, NSG * sizeof(*sg));
	for (int i = 0; i < NSG; i++) {
		blocks[i] = alloc_block(r, order[i]);
		memset(iom_page_address(r->m, blocks[i]), 0, PG << order[i]);
		sg[i].page = blocks[i];
		sg[i].offset = offset[i];
		sg[i].length = length[i];
	}
}

static void sg_free(struct test_dma_rig *r, struct iom_page **blocks)
{
	static const unsigned int order[NSG] = { 0, 1, 2, 0, 1 };

	for (int i = 0; i < NSG; i++)
		free_block(r, blocks[i], order[i]);
}

static void test_map_sg_lets_the_device_reach_each_entry_exactly(void **state)
{
	struct iom_scatterlist sg[NSG];
	struct iom_page *blocks[NSG];
	unsigned char *in = malloc(4 * PG), *out = malloc(4 * PG);
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, false);
	sg_setup(&r, sg, blocks);
	assert_int_equal(iom_dma_map_sg(r.dev, sg, NSG, IOM_DMA_BIDIRECTIONAL, 0), NSG);
	for (int i = 0; i < NSG; i++) {
		assert_int_equal(sg[i].dma_length, sg[i].length);
		assert_int_equal(sg[i].dma_address & (PG - 1), sg[i].offset & (PG - 1));
		assert_true(sg[i].dma_address < 1ULL << 32);
		/* segments do not overlap */
		for (int j = 0; j < i; j++)
			assert_true(sg[i].dma_address >= sg[j].dma_address + sg[j].dma_length ||
				    sg[j].dma_address >= sg[i].dma_address + sg[i].dma_length);
	}
	for (int i = 0; i < NSG; i++) {
		size_t len = sg[i].dma_length;

		fill_pattern(in, len, (unsigned int)i);
		assert_int_equal(iom_device_dma_write(r.dev, sg[i].dma_address, in, len), 0);
		for (size_t b = 0; b < len; b++)
			if (*byte_at(&r, blocks[i], sg[i].offset + b) != in[b])
				fail_msg("entry %d: byte %zu landed elsewhere", i, b);
		if (sg[i].offset)
			assert_int_equal(*byte_at(&r, blocks[i], sg[i].offset - 1), 0);
		assert_int_equal(iom_device_dma_read(r.dev, sg[i].dma_address, out, len), 0);
		assert_memory_equal(in, out, len);
	}
	/* each entry's bytes, after all the writes, are still its own */
	for (int i = 0; i < NSG; i++) {
		fill_pattern(in, sg[i].length, (unsigned int)i);
		assert_memory_equal(byte_at(&r, blocks[i], sg[i].offset), in, sg[i].length);
	}
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, NSG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	for (int i = 0; i < NSG; i++)
		assert_int_equal(iom_device_dma_read(r.dev, sg[i].dma_address, out, 1), -EFAULT);
	/* twice is once too many */
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, NSG, IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);

	/* TO_DEVICE: readable, not writable */
	assert_int_equal(iom_dma_map_sg(r.dev, sg, NSG, IOM_DMA_TO_DEVICE, 0), NSG);
	for (int i = 0; i < NSG; i++) {
		assert_int_equal(iom_device_dma_read(r.dev, sg[i].dma_address, out,
						     sg[i].dma_length), 0);
		assert_memory_equal(out, byte_at(&r, blocks[i], sg[i].offset), sg[i].dma_length);
		assert_int_equal(iom_device_dma_write(r.dev, sg[i].dma_address, in, 1), -EFAULT);
	}
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, NSG, IOM_DMA_TO_DEVICE, 0), 0);
	/* FROM_DEVICE: the reverse */
	assert_int_equal(iom_dma_map_sg(r.dev, sg, NSG, IOM_DMA_FROM_DEVICE, 0), NSG);
	for (int i = 0; i < NSG; i++) {
		assert_int_equal(iom_device_dma_read(r.dev, sg[i].dma_address, out, 1), -EFAULT);
		assert_int_equal(iom_device_dma_write(r.dev, sg[i].dma_address, in, 1), 0);
	}
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, NSG, IOM_DMA_FROM_DEVICE, 0), 0);
	sg_free(&r, blocks);
	free(in);
	free(out);
	test_dma_rig_down(&r);
}

static void test_map_sg_failure_leaves_nothing_mapped(void **state)
{
	struct iom_scatterlist sg[NSG];
	struct iom_page *blocks[NSG];
	iom_dma_addr_t a[3];
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA_FQ, true);
	sg_setup(&r, sg, blocks);
	/* IOVA pages 1..3: the list needs more */
	assert_int_equal(iom_dma_set_mask(r.dev, IOM_DMA_BIT_MASK(14)), 0);
	assert_int_equal(iom_dma_map_sg(r.dev, sg, NSG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	/* an entry that is no page of the machine fails the whole list */
	{
		struct iom_page bogus;
		struct iom_scatterlist s2[2] = { sg[0], sg[0] };

		memset(&bogus, 0, sizeof(bogus));
		s2[1].page = &bogus;
		assert_int_equal(iom_dma_map_sg(r.dev, s2, 2, IOM_DMA_BIDIRECTIONAL, 0), 0);
	}
	/* the whole space is still free: three one-page mappings fit */
	for (int i = 0; i < 3; i++)
		a[i] = map(&r, blocks[i], 0, PG, IOM_DMA_TO_DEVICE);
	for (int i = 0; i < 3; i++)
		assert_int_equal(iom_dma_unmap_page(r.dev, a[i], PG, IOM_DMA_TO_DEVICE, 0), 0);
	iom_iommu_dma_flush_queue(r.domain);
	{
		struct iom_dma_debug_stats st;

		assert_int_equal(iom_dma_debug_get_stats(r.m, &st), 0);
		assert_int_equal(st.nr_entries, 0);
		for (int i = 0; i < IOM_DMA_DEBUG_NR_ERRORS; i++)
			assert_int_equal(st.errors[i], 0);
	}
	/* with room, the same list maps */
	assert_int_equal(iom_dma_set_mask(r.dev, IOM_DMA_BIT_MASK(32)), 0);
	assert_int_equal(iom_dma_map_sg(r.dev, sg, NSG, IOM_DMA_BIDIRECTIONAL, 0), NSG);
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, NSG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	iom_iommu_dma_flush_queue(r.domain);
	sg_free(&r, blocks);
	test_dma_rig_down(&r);
}

/* Many lists mapped and unmapped: no IOVA and no table page is lost. */
static void test_map_sg_and_unmap_sg_leak_nothing(void **state)
{
	enum iom_iommu_domain_type types[] = { IOM_IOMMU_DOMAIN_DMA, IOM_IOMMU_DOMAIN_DMA_FQ };

	(void)state;
	for (size_t t = 0; t < 2; t++) {
		struct iom_scatterlist sg[NSG];
		struct iom_page *blocks[NSG];
		struct test_dma_rig r;

		rig_up(&r, types[t], false);
		sg_setup(&r, sg, blocks);
		/*
		 * 20 bits: IOVA pages 1..255, room for 15 lists of 9 pages
		 * (rounded up to 16), so a leak would show within 15 rounds
		 */
		assert_int_equal(iom_dma_set_mask(r.dev, IOM_DMA_BIT_MASK(20)), 0);
		for (int round = 0; round < 200; round++) {
			assert_int_equal(iom_dma_map_sg(r.dev, sg, NSG, IOM_DMA_BIDIRECTIONAL, 0),
					 NSG);
			assert_int_equal(iom_dma_unmap_sg(r.dev, sg, NSG, IOM_DMA_BIDIRECTIONAL, 0),
					 0);
			if (t && round % 3 == 2)
				iom_iommu_dma_flush_queue(r.domain);
		}
		iom_iommu_dma_flush_queue(r.domain);
		sg_free(&r, blocks);
		test_dma_rig_down(&r);
	}
}

/* ---- dma-debug through the public API ------------------------------------ */

static unsigned int log_count(const char *needle)
{
	unsigned int n = 0;

	for (const char *p = strstr(tlog.text, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* Exactly one report, of @class, with @text once in the log. */
static void assert_reported_once(struct test_dma_rig *r, enum iom_dma_debug_error class,
				 const char *text)
{
	struct iom_dma_debug_stats st;

	assert_int_equal(iom_dma_debug_get_stats(r->m, &st), 0);
	for (int i = 0; i < IOM_DMA_DEBUG_NR_ERRORS; i++)
		if (st.errors[i] != (i == (int)class ? 1u : 0u))
			fail_msg("class %d: %llu reports (expected class %d once)", i,
				 (unsigned long long)st.errors[i], (int)class);
	assert_int_equal(log_count(text), 1);
	assert_int_equal(log_count("dev0: DMA-API: "), 1);
	assert_int_equal(iom_machine_bug_count(r->m), 0);
}

/* Clean use of every kind, which must add no report. */
static void clean_pairs(struct test_dma_rig *r, enum iom_dma_debug_error class, const char *text)
{
	struct iom_scatterlist sg[2];
	struct iom_page *p = alloc_block(r, 1);
	iom_dma_addr_t a, h;
	unsigned char c = 0x5a;
	void *cpu;

	a = map(r, p, 8, PG, IOM_DMA_FROM_DEVICE);
	assert_int_equal(iom_device_dma_write(r->dev, a, &c, 1), 0);
	assert_int_equal(iom_dma_sync_single_for_cpu(r->dev, a, PG, IOM_DMA_FROM_DEVICE), 0);
	assert_int_equal(*byte_at(r, p, 8), c);
	assert_int_equal(iom_dma_sync_single_for_device(r->dev, a + 16, 64, IOM_DMA_FROM_DEVICE), 0);
	assert_int_equal(iom_dma_unmap_page(r->dev, a, PG, IOM_DMA_FROM_DEVICE, 0), 0);
	memset(sg, 0, sizeof(sg));
	sg[0].page = p;
	sg[0].offset = 64;
	sg[0].length = 100;
	sg[1].page = p;
	sg[1].offset = PG + 128;
	sg[1].length = 1000;
	assert_int_equal(iom_dma_map_sg(r->dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 2);
	assert_int_equal(iom_dma_unmap_sg(r->dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 0);
	cpu = iom_dma_alloc_coherent(r->dev, 2 * PG, &h, IOM_GFP_KERNEL, 0);
	assert_non_null(cpu);
	assert_int_equal(iom_device_dma_write(r->dev, h + PG, &c, 1), 0);
	assert_int_equal(iom_dma_free_coherent(r->dev, 2 * PG, cpu, h, 0), 0);
	free_block(r, p, 1);
	if (iom_iommu_domain_type(r->domain) == IOM_IOMMU_DOMAIN_DMA_FQ)
		iom_iommu_dma_flush_queue(r->domain);
	assert_reported_once(r, class, text);
}

static void test_debug_free_invalid(void **state)
{
	const char *text = "device driver tries to free DMA memory it has not allocated";
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	assert_int_equal(iom_dma_unmap_page(r.dev, 0x12345000, PG, IOM_DMA_TO_DEVICE, 0), -EINVAL);
	assert_reported_once(&r, IOM_DMA_DEBUG_FREE_INVALID, text);
	clean_pairs(&r, IOM_DMA_DEBUG_FREE_INVALID, text);
	test_dma_rig_down(&r);
}

static void test_debug_unmap_size(void **state)
{
	const char *text = "device driver frees DMA memory with different size";
	struct iom_page *p;
	iom_dma_addr_t a;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 1);
	a = map(&r, p, 0, PG, IOM_DMA_BIDIRECTIONAL);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, 2 * PG, IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
	assert_reported_once(&r, IOM_DMA_DEBUG_UNMAP_SIZE, text);
	check_still_mapped(&r, a, PG, p, 0);
	/* the entry stayed: the right unmap is clean */
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_UNMAP_SIZE, text);
	free_block(&r, p, 1);
	clean_pairs(&r, IOM_DMA_DEBUG_UNMAP_SIZE, text);
	test_dma_rig_down(&r);
}

static void test_debug_unmap_type(void **state)
{
	const char *text = "device driver frees DMA memory with wrong function";
	struct iom_page *p;
	iom_dma_addr_t a;
	struct test_dma_rig r;
	int x;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 0);
	a = map(&r, p, 0, PG, IOM_DMA_BIDIRECTIONAL);
	/* a streaming mapping given back as a coherent buffer: refused */
	assert_int_equal(iom_dma_free_coherent(r.dev, PG, &x, a, 0), -EINVAL);
	assert_reported_once(&r, IOM_DMA_DEBUG_UNMAP_TYPE, text);
	check_still_mapped(&r, a, PG, p, 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_UNMAP_TYPE, text);
	free_block(&r, p, 0);
	clean_pairs(&r, IOM_DMA_DEBUG_UNMAP_TYPE, text);
	test_dma_rig_down(&r);
}

static void test_debug_unmap_dir(void **state)
{
	const char *text = "device driver frees DMA memory with different direction";
	struct iom_page *p;
	iom_dma_addr_t a;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 0);
	a = map(&r, p, 0, PG, IOM_DMA_TO_DEVICE);
	/* the kernel unmaps anyway; so does libiommig */
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_FROM_DEVICE, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_UNMAP_DIR, text);
	assert_int_equal(iom_device_dma_read(r.dev, a, &(char){ 0 }, 1), -EFAULT);
	free_block(&r, p, 0);
	clean_pairs(&r, IOM_DMA_DEBUG_UNMAP_DIR, text);
	test_dma_rig_down(&r);
}

static void test_debug_unmap_cpu_addr(void **state)
{
	const char *text = "device driver frees DMA memory with different CPU address";
	iom_dma_addr_t ha, hb;
	char buf[4];
	void *a, *b;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	a = iom_dma_alloc_coherent(r.dev, 2 * PG, &ha, IOM_GFP_KERNEL, 0);
	b = iom_dma_alloc_coherent(r.dev, 2 * PG, &hb, IOM_GFP_KERNEL, 0);
	assert_non_null(a);
	assert_non_null(b);
	/* b's CPU address with a's handle and size: refused, both stay */
	assert_int_equal(iom_dma_free_coherent(r.dev, 2 * PG, b, ha, 0), -EINVAL);
	assert_reported_once(&r, IOM_DMA_DEBUG_UNMAP_CPU_ADDR, text);
	assert_int_equal(iom_device_dma_write(r.dev, ha + PG, "aa", 3), 0);
	assert_int_equal(iom_device_dma_write(r.dev, hb + PG, "bb", 3), 0);
	assert_int_equal(iom_dma_vmap_read(r.dev, a, PG, buf, 3), 0);
	assert_string_equal(buf, "aa");
	assert_int_equal(iom_dma_vmap_read(r.dev, b, PG, buf, 3), 0);
	assert_string_equal(buf, "bb");
	assert_int_equal(iom_dma_free_coherent(r.dev, 2 * PG, a, ha, 0), 0);
	assert_int_equal(iom_dma_free_coherent(r.dev, 2 * PG, b, hb, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_UNMAP_CPU_ADDR, text);
	clean_pairs(&r, IOM_DMA_DEBUG_UNMAP_CPU_ADDR, text);
	test_dma_rig_down(&r);
}

static void test_debug_sg_count(void **state)
{
	const char *text = "device driver frees DMA sg list with different entry count";
	struct iom_scatterlist sg[2];
	struct iom_page *p;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 1);
	memset(sg, 0, sizeof(sg));
	sg[0].page = p;
	sg[0].length = PG;
	sg[1].page = p;
	sg[1].offset = PG;
	sg[1].length = PG;
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, IOM_DMA_BIDIRECTIONAL, 0), 2);
	/* one entry of two: refused (the IOVA range is bigger), reported once */
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, 1, IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
	assert_reported_once(&r, IOM_DMA_DEBUG_SG_COUNT, text);
	for (int i = 0; i < 2; i++)
		assert_int_equal(iom_device_dma_write(r.dev, sg[i].dma_address, "x", 1), 0);
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, 2, IOM_DMA_BIDIRECTIONAL, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_SG_COUNT, text);
	free_block(&r, p, 1);
	clean_pairs(&r, IOM_DMA_DEBUG_SG_COUNT, text);
	test_dma_rig_down(&r);
}

static void test_debug_mapping_error_unchecked(void **state)
{
	const char *text = "device driver failed to check map error";
	struct iom_page *p;
	iom_dma_addr_t a;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 0);
	a = iom_dma_map_page(r.dev, p, 0, PG, IOM_DMA_TO_DEVICE, 0);
	assert_true(a != IOM_DMA_MAPPING_ERROR);	/* not the DMA API's check */
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_TO_DEVICE, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_MAPPING_ERROR_UNCHECKED, text);
	free_block(&r, p, 0);
	clean_pairs(&r, IOM_DMA_DEBUG_MAPPING_ERROR_UNCHECKED, text);
	test_dma_rig_down(&r);
}

static void test_debug_sync_range(void **state)
{
	const char *text = "device driver syncs DMA memory outside allocated range";
	struct iom_page *p;
	iom_dma_addr_t a;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 1);
	a = map(&r, p, 0, PG, IOM_DMA_FROM_DEVICE);
	assert_int_equal(iom_dma_sync_single_for_cpu(r.dev, a + 16, PG, IOM_DMA_FROM_DEVICE), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_SYNC_RANGE, text);
	assert_int_equal(iom_dma_sync_single_for_cpu(r.dev, a, PG, IOM_DMA_FROM_DEVICE), 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_FROM_DEVICE, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_SYNC_RANGE, text);
	free_block(&r, p, 1);
	clean_pairs(&r, IOM_DMA_DEBUG_SYNC_RANGE, text);
	test_dma_rig_down(&r);
}

static void test_debug_sync_dir(void **state)
{
	const char *text = "device driver syncs DMA memory with different direction";
	struct iom_page *p;
	iom_dma_addr_t a;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 0);
	a = map(&r, p, 0, PG, IOM_DMA_FROM_DEVICE);
	assert_int_equal(iom_dma_sync_single_for_cpu(r.dev, a, 64, IOM_DMA_TO_DEVICE), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_SYNC_DIR, text);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_FROM_DEVICE, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_SYNC_DIR, text);
	free_block(&r, p, 0);
	clean_pairs(&r, IOM_DMA_DEBUG_SYNC_DIR, text);
	test_dma_rig_down(&r);
}

static void test_debug_overlap(void **state)
{
	const char *text = "cacheline tracking EEXIST, overlapping mappings aren't supported";
	struct iom_page *p;
	iom_dma_addr_t a, b;
	struct test_dma_rig r;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 0);
	a = map(&r, p, 0, PG, IOM_DMA_FROM_DEVICE);
	/* a read-only second mapping is fine; a writable one is not */
	b = map(&r, p, 0, PG, IOM_DMA_TO_DEVICE);
	assert_int_equal(iom_dma_unmap_page(r.dev, b, PG, IOM_DMA_TO_DEVICE, 0), 0);
	b = map(&r, p, 32, 64, IOM_DMA_BIDIRECTIONAL);
	assert_reported_once(&r, IOM_DMA_DEBUG_OVERLAP, text);
	assert_true(a != b);
	/* both reach the page */
	assert_int_equal(iom_device_dma_write(r.dev, a + 200, "a", 1), 0);
	assert_int_equal(iom_device_dma_write(r.dev, b, "b", 1), 0);
	assert_int_equal(*byte_at(&r, p, 200), 'a');
	assert_int_equal(*byte_at(&r, p, 32), 'b');
	assert_int_equal(iom_dma_unmap_page(r.dev, b, 64, IOM_DMA_BIDIRECTIONAL, 0), 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_FROM_DEVICE, 0), 0);
	/* the cacheline is free again */
	a = map(&r, p, 0, PG, IOM_DMA_FROM_DEVICE);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_FROM_DEVICE, 0), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_OVERLAP, text);
	free_block(&r, p, 0);
	clean_pairs(&r, IOM_DMA_DEBUG_OVERLAP, text);
	test_dma_rig_down(&r);
}

static void test_debug_pending_at_release(void **state)
{
	const char *text = "device driver has pending DMA allocations while released from device [count=3]";
	struct iom_scatterlist sg[1];
	struct iom_page *p;
	iom_dma_addr_t a, h;
	struct test_dma_rig r;
	void *cpu;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	p = alloc_block(&r, 1);
	a = map(&r, p, 0, PG, IOM_DMA_TO_DEVICE);
	memset(sg, 0, sizeof(sg));
	sg[0].page = p;
	sg[0].offset = PG;
	sg[0].length = 512;
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 1, IOM_DMA_FROM_DEVICE, 0), 1);
	cpu = iom_dma_alloc_coherent(r.dev, PG, &h, IOM_GFP_KERNEL, 0);
	assert_non_null(cpu);
	assert_int_equal(iom_dma_device_release(r.dev), 3);
	assert_reported_once(&r, IOM_DMA_DEBUG_PENDING, text);
	/* they stay valid, and go cleanly */
	assert_int_equal(iom_device_dma_read(r.dev, a, &(char){ 0 }, 1), 0);
	assert_int_equal(iom_device_dma_write(r.dev, sg[0].dma_address, "s", 1), 0);
	assert_int_equal(iom_device_dma_write(r.dev, h, "c", 1), 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_TO_DEVICE, 0), 0);
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, 1, IOM_DMA_FROM_DEVICE, 0), 0);
	assert_int_equal(iom_dma_free_coherent(r.dev, PG, cpu, h, 0), 0);
	assert_int_equal(iom_dma_device_release(r.dev), 0);
	assert_reported_once(&r, IOM_DMA_DEBUG_PENDING, text);
	free_block(&r, p, 1);
	clean_pairs(&r, IOM_DMA_DEBUG_PENDING, text);
	test_dma_rig_down(&r);
}

/* Every misuse above, on a machine without dma-debug: refused where the
 * DMA API refuses, but no dma-debug report and no counters. */
static void test_without_dma_debug_nothing_is_reported(void **state)
{
	struct iom_dma_debug_stats st;
	struct iom_scatterlist sg[2];
	struct iom_page *p;
	iom_dma_addr_t a, b, ha, hb;
	void *ca, *cb;
	struct test_dma_rig r;
	int x;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, false);
	assert_int_equal(iom_dma_debug_get_stats(r.m, &st), -ENODEV);
	p = alloc_block(&r, 1);
	assert_int_equal(iom_dma_unmap_page(r.dev, 0x12345000, PG, IOM_DMA_TO_DEVICE, 0), -EINVAL);
	a = iom_dma_map_page(r.dev, p, 0, PG, IOM_DMA_TO_DEVICE, 0);	/* unchecked */
	/* refusals are still reported, as plain warnings */
	for (int i = 0; i < 2; i++) {
		unsigned int warns = tlog.nr_warn;

		assert_int_equal(iom_dma_unmap_page(r.dev, a + (i ? 8 * PG : 0), 2 * PG,
						    IOM_DMA_TO_DEVICE, 0), -EINVAL);
		assert_true(tlog.nr_warn > warns);
	}
	assert_int_equal(iom_dma_free_coherent(r.dev, PG, &x, a, 0), -EINVAL);
	assert_int_equal(iom_dma_sync_single_for_cpu(r.dev, a, 2 * PG, IOM_DMA_FROM_DEVICE), 0);
	b = iom_dma_map_page(r.dev, p, 0, PG, IOM_DMA_BIDIRECTIONAL, 0);	/* overlap */
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_FROM_DEVICE, 0), 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, b, PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	memset(sg, 0, sizeof(sg));
	sg[0].page = p;
	sg[0].length = PG;
	sg[1].page = p;
	sg[1].offset = PG;
	sg[1].length = PG;
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, IOM_DMA_BIDIRECTIONAL, 0), 2);
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, 1, IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
	ca = iom_dma_alloc_coherent(r.dev, PG, &ha, IOM_GFP_KERNEL, 0);
	cb = iom_dma_alloc_coherent(r.dev, PG, &hb, IOM_GFP_KERNEL, 0);
	assert_int_equal(iom_dma_free_coherent(r.dev, PG, cb, ha, 0), -EINVAL);
	/* without dma-debug only the coherent buffers are known */
	assert_int_equal(iom_dma_device_release(r.dev), 2);
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, 2, IOM_DMA_BIDIRECTIONAL, 0), 0);
	assert_int_equal(iom_dma_free_coherent(r.dev, PG, ca, ha, 0), 0);
	assert_int_equal(iom_dma_free_coherent(r.dev, PG, cb, hb, 0), 0);
	assert_int_equal(log_count("DMA-API"), 0);
	assert_int_equal(iom_dma_debug_get_stats(r.m, &st), -ENODEV);
	free_block(&r, p, 1);
	test_dma_rig_down(&r);
}

/* ---- bad arguments ------------------------------------------------------ */

/* Nothing tracked, reported or mapped has changed since @st0. */
static void assert_unchanged(struct test_dma_rig *r, const struct iom_dma_debug_stats *st0,
			     iom_dma_addr_t a, struct iom_page *p)
{
	struct iom_dma_debug_stats st;

	assert_int_equal(iom_dma_debug_get_stats(r->m, &st), 0);
	assert_memory_equal(st.errors, st0->errors, sizeof(st.errors));
	assert_int_equal(st.nr_entries, st0->nr_entries);
	assert_int_equal(log_count("DMA-API"), 0);
	check_still_mapped(r, a, PG, p, 0);
}

static void test_bad_arguments_get_their_error_and_change_nothing(void **state)
{
	const enum iom_dma_data_direction bad_dirs[] = {
		IOM_DMA_NONE, (enum iom_dma_data_direction)4, (enum iom_dma_data_direction)-1,
	};
	struct iom_dma_debug_stats st0, st;
	struct iom_scatterlist sg[2], s;
	struct iom_page bogus, *p, *last;
	struct iom_device *lone;
	iom_dma_addr_t a, h = 0;
	uint64_t at;
	struct iom_mm *mm;
	struct test_dma_rig r;
	char c;
	void *cpu;

	(void)state;
	rig_up(&r, IOM_IOMMU_DOMAIN_DMA, true);
	memset(&bogus, 0, sizeof(bogus));
	p = alloc_block(&r, 1);
	a = map(&r, p, 0, PG, IOM_DMA_BIDIRECTIONAL);
	cpu = iom_dma_alloc_coherent(r.dev, PG, &h, IOM_GFP_KERNEL, 0);
	assert_non_null(cpu);
	assert_int_equal(iom_mm_create(r.m, &mm), 0);
	assert_int_equal(iom_dma_debug_get_stats(r.m, &st0), 0);
	assert_int_equal(st0.nr_entries, 2);

	/* settings */
	assert_int_equal(iom_dma_set_alloc_mode(NULL, IOM_DMA_ALLOC_MOVABLE), -EINVAL);
	assert_int_equal(iom_dma_set_alloc_mode(r.dev, (enum iom_dma_alloc_mode)3), -EINVAL);
	assert_int_equal(iom_dma_set_alloc_mode(r.dev, (enum iom_dma_alloc_mode)-1), -EINVAL);
	assert_int_equal(iom_dma_set_migrate_mode(NULL, IOM_DMA_MIGRATE_SEED), -EINVAL);
	assert_int_equal(iom_dma_set_migrate_mode(r.dev, (enum iom_dma_migrate_mode)4), -EINVAL);
	assert_int_equal(iom_dma_set_migrate_mode(r.dev, (enum iom_dma_migrate_mode)-1), -EINVAL);
	assert_int_equal(iom_dma_set_mask(NULL, IOM_DMA_BIT_MASK(32)), -EINVAL);
	assert_int_equal(iom_dma_set_coherent_mask(NULL, IOM_DMA_BIT_MASK(32)), -EINVAL);
	assert_int_equal(iom_dma_set_mask_and_coherent(NULL, IOM_DMA_BIT_MASK(32)), -EINVAL);
	assert_int_equal(iom_dma_set_mask(r.dev, 0), -EIO);
	assert_int_equal(iom_dma_set_mask(r.dev, 0xfff), -EIO);
	assert_int_equal(iom_dma_set_coherent_mask(r.dev, 0xfff), -EIO);
	assert_int_equal(iom_dma_set_mask_and_coherent(r.dev, 0x1000), -EIO);
	assert_int_equal(iom_dma_get_mask(r.dev), IOM_DMA_BIT_MASK(32));
	assert_int_equal(iom_dma_get_mask(NULL), IOM_DMA_BIT_MASK(32));

	/* coherent buffers */
	errno = 0;
	assert_null(iom_dma_alloc_coherent(NULL, PG, &h, IOM_GFP_KERNEL, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(iom_dma_alloc_coherent(r.dev, 0, &h, IOM_GFP_KERNEL, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(iom_dma_alloc_coherent(r.dev, PG, NULL, IOM_GFP_KERNEL, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(iom_dma_alloc_coherent(r.dev, SIZE_MAX, &h, IOM_GFP_KERNEL, 0));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(iom_dma_free_coherent(NULL, PG, cpu, h, 0), -EINVAL);
	assert_int_equal(iom_dma_vmap_read(NULL, cpu, 0, &c, 1), -EINVAL);
	assert_int_equal(iom_dma_vmap_write(NULL, cpu, 0, &c, 1), -EINVAL);
	assert_int_equal(iom_dma_vmap_read(r.dev, NULL, 0, &c, 1), -EINVAL);
	assert_int_equal(iom_dma_vmap_read(r.dev, cpu, 0, NULL, 1), -EINVAL);
	assert_int_equal(iom_dma_vmap_write(r.dev, cpu, PG, &c, 1), -EINVAL);
	assert_int_equal(iom_dma_vmap_write(r.dev, cpu, SIZE_MAX, &c, 2), -EINVAL);
	assert_int_equal(iom_dma_mmap(NULL, mm, cpu, h, PG, IOM_PROT_READ, &at), -EINVAL);
	assert_int_equal(iom_dma_mmap(r.dev, NULL, cpu, h, PG, IOM_PROT_READ, &at), -EINVAL);
	assert_int_equal(iom_dma_mmap(r.dev, mm, NULL, h, PG, IOM_PROT_READ, &at), -EINVAL);
	assert_int_equal(iom_dma_mmap(r.dev, mm, cpu, h, PG, IOM_PROT_READ, NULL), -EINVAL);
	assert_int_equal(iom_dma_mmap(r.dev, mm, cpu, h, 0, IOM_PROT_READ, &at), -EINVAL);
	assert_int_equal(iom_dma_munmap(NULL, 0x10000, PG), -EINVAL);
	assert_int_equal(iom_dma_munmap(mm, 0x10001, PG), -EINVAL);
	assert_int_equal(iom_dma_munmap(mm, 0x10000, 0), -EINVAL);
	assert_null(iom_dma_buffer_page(NULL, cpu, 0));
	assert_null(iom_dma_buffer_page(r.dev, NULL, 0));
	assert_null(iom_dma_buffer_page(r.dev, cpu, PG));
	assert_unchanged(&r, &st0, a, p);

	/* map_page */
	last = iom_pfn_to_page(r.m, iom_end_pfn(r.m) - 1);
	assert_non_null(last);
	assert_int_equal(iom_dma_map_page(NULL, p, 0, PG, IOM_DMA_TO_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	assert_int_equal(iom_dma_map_page(r.dev, NULL, 0, PG, IOM_DMA_TO_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	assert_int_equal(iom_dma_map_page(r.dev, &bogus, 0, PG, IOM_DMA_TO_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	assert_int_equal(iom_dma_map_page(r.dev, p, 0, 0, IOM_DMA_TO_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	for (size_t i = 0; i < sizeof(bad_dirs) / sizeof(bad_dirs[0]); i++)
		assert_int_equal(iom_dma_map_page(r.dev, p, 0, PG, bad_dirs[i], 0),
				 IOM_DMA_MAPPING_ERROR);
	/* past the end of the machine's memory, or sizes that wrap */
	assert_int_equal(iom_dma_map_page(r.dev, last, PG - 10, 11, IOM_DMA_TO_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	assert_int_equal(iom_dma_map_page(r.dev, last, PG, 1, IOM_DMA_TO_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	assert_int_equal(iom_dma_map_page(r.dev, p, 0, SIZE_MAX, IOM_DMA_TO_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	assert_int_equal(iom_dma_map_page(r.dev, p, SIZE_MAX - 10, 100, IOM_DMA_TO_DEVICE, 0),
			 IOM_DMA_MAPPING_ERROR);
	assert_true(iom_dma_mapping_error(NULL, IOM_DMA_MAPPING_ERROR));
	assert_false(iom_dma_mapping_error(NULL, a));
	assert_false(iom_dma_mapping_error(r.dev, 0));
	/* the last byte of memory is fine */
	{
		iom_dma_addr_t e = map(&r, last, PG - 10, 10, IOM_DMA_TO_DEVICE);

		assert_int_equal(iom_dma_unmap_page(r.dev, e, 10, IOM_DMA_TO_DEVICE, 0), 0);
	}
	assert_unchanged(&r, &st0, a, p);

	/* unmap_page */
	assert_int_equal(iom_dma_unmap_page(NULL, a, PG, IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, 0, IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_dirs) / sizeof(bad_dirs[0]); i++)
		assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, bad_dirs[i], 0), -EINVAL);
	assert_unchanged(&r, &st0, a, p);

	/* map_sg */
	memset(sg, 0, sizeof(sg));
	sg[0].page = p;
	sg[0].length = 100;
	sg[1].page = p;
	sg[1].offset = PG;
	sg[1].length = 100;
	assert_int_equal(iom_dma_map_sg(NULL, sg, 2, IOM_DMA_TO_DEVICE, 0), 0);
	assert_int_equal(iom_dma_map_sg(r.dev, NULL, 2, IOM_DMA_TO_DEVICE, 0), 0);
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 0, IOM_DMA_TO_DEVICE, 0), 0);
	assert_int_equal(iom_dma_map_sg(r.dev, sg, -1, IOM_DMA_TO_DEVICE, 0), 0);
	for (size_t i = 0; i < sizeof(bad_dirs) / sizeof(bad_dirs[0]); i++)
		assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, bad_dirs[i], 0), 0);
	s = sg[1];
	sg[1].page = NULL;
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 0);
	sg[1].page = &bogus;
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 0);
	sg[1] = s;
	sg[1].length = 0;
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 0);
	/* an entry past the end of memory */
	sg[1] = s;
	sg[1].page = last;
	sg[1].offset = PG - 10;
	sg[1].length = 11;
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 0);
	sg[1].offset = 0xfffff000u;
	sg[1].length = 1;
	sg[1].page = p;
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 0);
	sg[1] = s;
	assert_unchanged(&r, &st0, a, p);

	/* unmap_sg: arguments first, then a list never mapped (reported) */
	assert_int_equal(iom_dma_map_sg(r.dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 2);
	assert_int_equal(iom_dma_unmap_sg(NULL, sg, 2, IOM_DMA_TO_DEVICE, 0), -EINVAL);
	assert_int_equal(iom_dma_unmap_sg(r.dev, NULL, 2, IOM_DMA_TO_DEVICE, 0), -EINVAL);
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, 0, IOM_DMA_TO_DEVICE, 0), -EINVAL);
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, -2, IOM_DMA_TO_DEVICE, 0), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_dirs) / sizeof(bad_dirs[0]); i++)
		assert_int_equal(iom_dma_unmap_sg(r.dev, sg, 2, bad_dirs[i], 0), -EINVAL);
	assert_int_equal(iom_device_dma_read(r.dev, sg[1].dma_address, &c, 1), 0);
	assert_int_equal(iom_dma_unmap_sg(r.dev, sg, 2, IOM_DMA_TO_DEVICE, 0), 0);
	assert_unchanged(&r, &st0, a, p);

	/* sync */
	assert_int_equal(iom_dma_sync_single_for_cpu(NULL, a, PG, IOM_DMA_BIDIRECTIONAL), -EINVAL);
	assert_int_equal(iom_dma_sync_single_for_device(NULL, a, PG, IOM_DMA_BIDIRECTIONAL),
			 -EINVAL);
	for (size_t i = 0; i < sizeof(bad_dirs) / sizeof(bad_dirs[0]); i++) {
		assert_int_equal(iom_dma_sync_single_for_cpu(r.dev, a, PG, bad_dirs[i]), -EINVAL);
		assert_int_equal(iom_dma_sync_single_for_device(r.dev, a, PG, bad_dirs[i]), -EINVAL);
	}
	assert_unchanged(&r, &st0, a, p);

	/* release, stats */
	assert_int_equal(iom_dma_device_release(NULL), -EINVAL);
	assert_int_equal(iom_dma_debug_get_stats(NULL, &st), -EINVAL);
	assert_int_equal(iom_dma_debug_get_stats(r.m, NULL), -EINVAL);
	assert_unchanged(&r, &st0, a, p);

	/* a device with no DMA domain: detached, then on an unmanaged one */
	assert_int_equal(iom_device_create(r.iommu, "lone", &lone), 0);
	memset(sg, 0, sizeof(sg));
	sg[0].page = p;
	sg[0].length = 100;
	for (int pass = 0; pass < 2; pass++) {
		struct iom_iommu_domain *um = NULL;

		if (pass) {
			um = iom_iommu_domain_alloc(r.iommu, IOM_IOMMU_DOMAIN_UNMANAGED);
			assert_non_null(um);
			assert_int_equal(iom_iommu_attach_device(um, lone), 0);
		}
		assert_int_equal(iom_dma_map_page(lone, p, 0, PG, IOM_DMA_TO_DEVICE, 0),
				 IOM_DMA_MAPPING_ERROR);
		assert_int_equal(iom_dma_map_sg(lone, sg, 1, IOM_DMA_TO_DEVICE, 0), 0);
		assert_int_equal(iom_dma_unmap_page(lone, a, PG, IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
		sg[0].dma_address = a;
		sg[0].dma_length = 100;
		assert_int_equal(iom_dma_unmap_sg(lone, sg, 1, IOM_DMA_BIDIRECTIONAL, 0), -EINVAL);
		if (pass) {
			assert_int_equal(iom_iommu_detach_device(um, lone), 0);
			assert_int_equal(iom_iommu_domain_free(um), 0);
		}
	}
	assert_int_equal(iom_device_destroy(lone), 0);
	/* the lone device's unmaps (two per pass) were of nothing it mapped */
	assert_int_equal(iom_dma_debug_get_stats(r.m, &st), 0);
	assert_int_equal(st.errors[IOM_DMA_DEBUG_FREE_INVALID], 4);
	assert_int_equal(st.nr_entries, 2);
	check_still_mapped(&r, a, PG, p, 0);

	iom_mm_destroy(mm);
	assert_int_equal(iom_dma_free_coherent(r.dev, PG, cpu, h, 0), 0);
	assert_int_equal(iom_dma_unmap_page(r.dev, a, PG, IOM_DMA_BIDIRECTIONAL, 0), 0);
	free_block(&r, p, 1);
	test_dma_rig_down(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direction_decides_what_the_device_may_do),
		cmocka_unit_test(test_offsets_and_page_crossing_reach_the_right_pages),
		cmocka_unit_test(test_mask_bounds_the_iova_and_a_full_space_fails),
		cmocka_unit_test(test_unmap_of_wrong_size_or_unknown_address_changes_nothing),
		cmocka_unit_test(test_strict_domain_reuses_an_unmapped_iova_at_once),
		cmocka_unit_test(test_lazy_domain_reuses_an_iova_only_after_the_flush),
		cmocka_unit_test(test_map_sg_lets_the_device_reach_each_entry_exactly),
		cmocka_unit_test(test_map_sg_failure_leaves_nothing_mapped),
		cmocka_unit_test(test_map_sg_and_unmap_sg_leak_nothing),
		cmocka_unit_test(test_debug_free_invalid),
		cmocka_unit_test(test_debug_unmap_size),
		cmocka_unit_test(test_debug_unmap_type),
		cmocka_unit_test(test_debug_unmap_dir),
		cmocka_unit_test(test_debug_unmap_cpu_addr),
		cmocka_unit_test(test_debug_sg_count),
		cmocka_unit_test(test_debug_mapping_error_unchecked),
		cmocka_unit_test(test_debug_sync_range),
		cmocka_unit_test(test_debug_sync_dir),
		cmocka_unit_test(test_debug_overlap),
		cmocka_unit_test(test_debug_pending_at_release),
		cmocka_unit_test(test_without_dma_debug_nothing_is_reported),
		cmocka_unit_test(test_bad_arguments_get_their_error_and_change_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
