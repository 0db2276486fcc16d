/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench vfio - VFIO type1 map and unmap of a guest's RAM (seed 004):
 * a process (QEMU) with a populated anonymous mapping of half the
 * simulated memory maps it for a passthrough device with one
 * iom_vfio_map_dma() and takes it down with one iom_vfio_unmap_dma(),
 * against memcpy() of the same number of bytes in the same run.
 *
 * Cases:
 *   batched - the kernel since 2013: pin 512 pages at a time, one
 *             iommu_map() per physically contiguous run, so the IOMMU uses
 *             2 MiB and 1 GiB entries where memory and IOVA allow;
 *   single  - disable_hugepages: one iommu_map() of 4 KiB per page.
 * Each case also reports the IOMMU entries (by size), the page-table pages
 * and the iommu_map() calls of its mapping, and the physically contiguous
 * runs of the guest RAM (the same for both cases: the pages are pinned in
 * place, nothing migrates on this machine without CMA or ZONE_MOVABLE).
 * The simulated memory is touched before the runs, so host page faults
 * are not timed; the baseline copies a 64 MiB host buffer into another
 * until it has copied as many bytes as the guest RAM holds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define VFIO_DEFAULT_MEM	(2ULL << 30)
#define VFIO_IOVA		(1UL << 30)	/* aligned for every block size */
#define MEMCPY_CHUNK		(64ULL << 20)
#define PG			IOM_PAGE_SIZE

struct vfio_bench {
	struct iom_machine *m;
	struct iom_mm *mm;
	struct iom_iommu *iommu;
	uint64_t addr, size;
	unsigned long runs;		/* physically contiguous runs of the guest RAM */
	unsigned char *src, *dst;	/* memcpy baseline */
};

/* Physically contiguous runs of the guest RAM's pages. */
static unsigned long count_runs(struct vfio_bench *b)
{
	unsigned long runs = 0, prev = 0;

	for (uint64_t off = 0; off < b->size; off += PG) {
		struct iom_page *page;
		unsigned long pfn;

		if (iom_follow_page(b->mm, b->addr + off, &page))
			return 0;
		pfn = iom_page_to_pfn(b->m, page);
		iom_put_page(b->m, page);
		if (!off || pfn != prev + 1)
			runs++;
		prev = pfn;
	}
	return runs;
}

static int setup(const struct bench_opts *o, struct vfio_bench *b)
{
	struct iom_machine_config cfg;
	int err;

	memset(b, 0, sizeof(*b));
	iom_machine_config_init(&cfg);
	cfg.mem_size = o->mem ? o->mem : VFIO_DEFAULT_MEM;
	cfg.page_poison = -1;
	b->size = (cfg.mem_size / 2) & ~((2ULL << 20) - 1);
	if (b->size < (2ULL << 20)) {
		bench_error("--mem must be at least 4M");
		return -EINVAL;
	}
	err = iom_machine_create(&cfg, &b->m);
	if (err) {
		bench_error("iom_machine_create: %s", strerror(-err));
		return err;
	}
	err = bench_prefault_machine(b->m);
	if (!err)
		err = iom_mm_create(b->m, &b->mm);
	if (!err)
		err = iom_iommu_create(b->m, NULL, &b->iommu);
	if (err)
		return err;
	err = iom_mmap(b->mm, 0, b->size, IOM_PROT_READ | IOM_PROT_WRITE,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE,
		       NULL, 0, &b->addr);
	if (err) {
		bench_error("iom_mmap of the guest RAM: %s", strerror(-err));
		return err;
	}
	b->runs = count_runs(b);
	b->src = malloc(MEMCPY_CHUNK);
	b->dst = malloc(MEMCPY_CHUNK);
	if (!b->src || !b->dst)
		return -ENOMEM;
	memset(b->src, 1, MEMCPY_CHUNK);
	memset(b->dst, 2, MEMCPY_CHUNK);
	return 0;
}

static void teardown(struct vfio_bench *b)
{
	if (b->mm)
		iom_mm_destroy(b->mm);
	if (b->iommu)
		iom_iommu_destroy(b->iommu);
	if (b->m)
		iom_machine_destroy(b->m);
	free(b->src);
	free(b->dst);
}

/* One run: map and unmap the guest RAM; ns of each and what the map built. */
static int vfio_run(struct vfio_bench *b, struct iom_vfio_container *c,
		    double *map_ns, double *unmap_ns, struct iom_vfio_info *info)
{
	uint64_t t0, t1, t2, unmapped = 0;
	int err;

	t0 = bench_now_ns();
	err = iom_vfio_map_dma(c, b->addr, VFIO_IOVA, b->size,
			       IOM_VFIO_DMA_MAP_FLAG_READ | IOM_VFIO_DMA_MAP_FLAG_WRITE);
	t1 = bench_now_ns();
	if (err) {
		bench_error("iom_vfio_map_dma: %s", strerror(-err));
		return err;
	}
	*map_ns = (double)(t1 - t0);
	/* counting the entries walks the whole table: not timed */
	if (info && (err = iom_vfio_get_info(c, info)))
		return err;
	t1 = bench_now_ns();
	err = iom_vfio_unmap_dma(c, VFIO_IOVA, b->size, 0, &unmapped);
	t2 = bench_now_ns();
	if (err || unmapped != b->size) {
		bench_error("iom_vfio_unmap_dma: %s, %llu of %llu bytes", strerror(-err),
			    (unsigned long long)unmapped, (unsigned long long)b->size);
		return err ? err : -EIO;
	}
	*unmap_ns = (double)(t2 - t1);
	return 0;
}

/* The baseline: memcpy of as many bytes as the guest RAM holds. */
static double memcpy_run(struct vfio_bench *b)
{
	uint64_t t0, t1, done;

	t0 = bench_now_ns();
	for (done = 0; done < b->size; done += MEMCPY_CHUNK) {
		uint64_t n = b->size - done < MEMCPY_CHUNK ? b->size - done : MEMCPY_CHUNK;

		memcpy(b->dst, b->src, n);
		bench_sink(b->dst);
	}
	t1 = bench_now_ns();
	return (double)(t1 - t0);
}

static int measure(const struct bench_opts *o, struct vfio_bench *b, bool single)
{
	struct iom_vfio_config vcfg = {
		.memlock_limit = IOM_VFIO_MEMLOCK_UNLIMITED,
		.disable_hugepages = single,
	};
	double *v = calloc((size_t)o->runs * 4, sizeof(double));
	double *mv = v, *uv = v + o->runs, *tv = uv + o->runs, *base = tv + o->runs;
	double gib = (double)b->size / (double)(1ULL << 30), mns, uns;
	const char *name = single ? "single" : "batched";
	struct iom_vfio_container *c = NULL;
	struct bench_stat ms, us, ts, bs;
	struct iom_vfio_info info;
	char metric[64], note[512];
	int err, r;

	if (!v)
		return -ENOMEM;
	err = iom_vfio_container_create(b->mm, b->iommu, NULL, &vcfg, &c);
	if (err)
		goto out;
	/* warm-up, and the picture of the mapping */
	err = vfio_run(b, c, &mns, &uns, &info);
	if (err)
		goto out;
	if (o->baseline)
		memcpy_run(b);
	for (r = 0; r < o->runs; r++) {
		err = vfio_run(b, c, &mns, &uns, NULL);
		if (err)
			goto out;
		mv[r] = mns / 1e6 / gib;
		uv[r] = uns / 1e6 / gib;
		tv[r] = (mns + uns) / 1e6 / gib;
		if (o->baseline)
			base[r] = memcpy_run(b) / 1e6 / gib;
	}
	bench_stat_compute(mv, o->runs, &ms);
	bench_stat_compute(uv, o->runs, &us);
	bench_stat_compute(tv, o->runs, &ts);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &bs);

	snprintf(note, sizeof(note),
		 "%.3g GiB of guest RAM in %lu physically contiguous runs, %s; "
		 "IOMMU entries %lu (1G %lu, 2M %lu, 4K %lu), page-table pages %lu, "
		 "iommu_map calls %llu",
		 gib, b->runs, single ? "disable_hugepages: one iommu_map a page"
				       : "one iommu_map a contiguous run",
		 info.nr_entries, info.nr_leaves[1], info.nr_leaves[2],
		 info.nr_leaves[3], info.nr_pgtable_pages,
		 (unsigned long long)info.map_calls);
	snprintf(metric, sizeof(metric), "map_unmap_%s", name);
	bench_report(o, &(struct bench_result){
		.bench = "vfio", .metric = metric, .unit = "ms/GiB", .value = ts,
		.baseline = o->baseline ? &bs : NULL,
		.baseline_name = "memcpy of the same bytes (64 MiB buffers)",
		.note = note,
	});
	snprintf(metric, sizeof(metric), "map_%s", name);
	bench_report(o, &(struct bench_result){
		.bench = "vfio", .metric = metric, .unit = "ms/GiB", .value = ms,
		.baseline = o->baseline ? &bs : NULL,
		.baseline_name = "memcpy of the same bytes (64 MiB buffers)",
		.note = "iom_vfio_map_dma: pin (FOLL_LONGTERM) and iommu_map",
	});
	snprintf(metric, sizeof(metric), "unmap_%s", name);
	bench_report(o, &(struct bench_result){
		.bench = "vfio", .metric = metric, .unit = "ms/GiB", .value = us,
		.baseline = o->baseline ? &bs : NULL,
		.baseline_name = "memcpy of the same bytes (64 MiB buffers)",
		.note = "iom_vfio_unmap_dma: walk, iommu_unmap_fast, iotlb_sync, unpin",
	});
	snprintf(metric, sizeof(metric), "iommu_entries_%s", name);
	bench_report_value(o, "vfio", metric, (double)info.nr_entries, "entries", NULL);
	snprintf(metric, sizeof(metric), "pgtable_pages_%s", name);
	bench_report_value(o, "vfio", metric, (double)info.nr_pgtable_pages, "pages", NULL);
out:
	if (c)
		iom_vfio_container_destroy(c);
	free(v);
	return err;
}

int bench_vfio(const struct bench_opts *o)
{
	struct vfio_bench b;
	int err;

	bench_report_host(o);
	err = setup(o, &b);
	if (!err && (!o->only || strstr("map_unmap_batched", o->only)))
		err = measure(o, &b, false);
	if (!err && (!o->only || strstr("map_unmap_single", o->only)))
		err = measure(o, &b, true);
	teardown(&b);
	if (err) {
		bench_error("vfio: %s", strerror(-err));
		return 1;
	}
	return 0;
}
