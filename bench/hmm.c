/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench hmm - migrate_vma throughput between system memory and
 * device-private memory (src/mm/migrate_device.c, src/mm/memremap.c),
 * driven by a minimal driver in the style of lib/test_hmm.c: one
 * device-private pagemap as large as the process's range, a free list of
 * its pages as the device allocator, ->page_free() that takes a page back
 * and ->migrate_to_ram() that migrates the faulting page back with
 * migrate_vma and SELECT_DEVICE_PRIVATE.
 *
 * A process maps --iters anonymous private pages, populated, each stamped
 * at its first and last 8 bytes. Cases (each run moves every page to the
 * device and back; only the case's direction is timed):
 *   to_device       - iom_migrate_vma_setup(SELECT_SYSTEM), allocate and
 *                     copy into device pages, iom_migrate_vma_pages(),
 *                     iom_migrate_vma_finalize(), 512 pages a call, as a
 *                     driver's MIGRATE_TO_DEV;
 *   to_system       - the same with SELECT_DEVICE_PRIVATE from the driver
 *                     (MIGRATE_TO_SYS), 512 pages a call;
 *   fault_to_system - a CPU read of each page (iom_read of 8 bytes): every
 *                     access faults into ->migrate_to_ram(), which moves
 *                     that one page back.
 * Baseline, in the same run: memcpy() of the same pages, 4 KiB at a time,
 * from the process's system pages into the device pages (the bytes every
 * case copies, at the same simulated addresses). After every trip the
 * benchmark checks where each page is (device: not present in the CPU
 * page table, held by the driver's page table in a page of our pagemap;
 * system: present and not a device page) and its stamps (in device memory
 * after to_device, by iom_read after the return), and fails otherwise.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define HMM_DEFAULT_MEM		(256ULL << 20)
#define HMM_DEFAULT_PAGES	4096ULL		/* 16 MiB */
#define HMM_CHUNK		512UL		/* pages a migrate_vma call */
#define PG			IOM_PAGE_SIZE

/*
 * The page copies (the driver's and the baseline's) call libc's memcpy, as
 * the library's own migration copy does: GCC would inline a fixed 4 KiB
 * memcpy as `rep movsq` (see README, migrate).
 */
static void *(*volatile copy_page_fn)(void *, const void *, size_t) = memcpy;

struct hmm_bench {
	struct iom_machine *m;
	struct bench_arena *arena;
	struct iom_mm *mm;
	uint64_t addr;
	unsigned long nr;

	/* the device */
	struct iom_dev_pagemap pgmap;
	bool pgmap_mapped;
	pthread_mutex_t devmem_lock;	/* free list and counters */
	struct iom_page **free_pages;
	unsigned long nfree;
	unsigned long nalloc, nfreed;	/* pages handed out, given back */
	struct iom_page **dpt;		/* device page table: page i's device page */
	unsigned long faults;		/* pages moved back by migrate_to_ram */
	int cb_err;			/* first error met in a callback */

	unsigned long src[HMM_CHUNK], dst[HMM_CHUNK];
	void **sys;			/* host address of page i in system memory */
	uint64_t gen;			/* stamp generation, new every trip */
};

/* Page @i's stamp at its start (@end 0) or end (1) in generation @gen. */
static uint64_t stamp_of(const struct hmm_bench *b, unsigned long i, int end)
{
	return 0x5eedULL << 48 | b->gen << 32 | (uint64_t)i << 1 | (uint64_t)end;
}

/* ---- the driver ------------------------------------------------------------ */

static void hmm_page_free(struct iom_page *page)
{
	struct hmm_bench *b = (struct hmm_bench *)page->private;

	pthread_mutex_lock(&b->devmem_lock);
	b->free_pages[b->nfree++] = page;
	b->nfreed++;
	pthread_mutex_unlock(&b->devmem_lock);
}

/* A device page, locked, one reference (dmirror_devmem_alloc_page()). */
static struct iom_page *hmm_devmem_alloc(struct hmm_bench *b)
{
	struct iom_page *page = NULL;

	pthread_mutex_lock(&b->devmem_lock);
	if (b->nfree) {
		page = b->free_pages[--b->nfree];
		b->nalloc++;
	}
	pthread_mutex_unlock(&b->devmem_lock);
	if (page && iom_zone_device_page_init(b->m, page)) {
		if (!b->cb_err)
			b->cb_err = -EINVAL;
		return NULL;
	}
	if (page)
		page->private = (unsigned long)b;	/* zone_device_data */
	return page;
}

/*
 * Device -> system for [start, start + npages pages): allocate system
 * pages, copy, commit. @fault_page: the ->migrate_to_ram() page or NULL.
 * Context: mmap_lock held for read. Return: pages moved or -errno.
 */
static long hmm_migrate_back(struct hmm_bench *b, struct iom_mm *mm,
			     uint64_t start, unsigned long npages,
			     struct iom_page *fault_page)
{
	struct iom_migrate_vma args = {
		.mm = mm, .start = start, .end = start + npages * PG,
		.src = b->src, .dst = b->dst, .pgmap_owner = b,
		.flags = IOM_MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = fault_page,
	};
	unsigned long i, n = 0, base = (unsigned long)((start - b->addr) / PG);
	int err = iom_migrate_vma_setup(&args);

	if (err)
		return err;
	for (i = 0; i < args.npages; i++) {
		struct iom_page *spage = iom_migrate_pfn_to_page(b->m, b->src[i]);
		struct iom_page *dpage;

		if (!spage || !(b->src[i] & IOM_MIGRATE_PFN_MIGRATE))
			continue;
		dpage = iom_alloc_pages(b->m, IOM_GFP_HIGHUSER_MOVABLE, 0);
		if (!dpage)
			continue;
		iom_lock_page(dpage);
		copy_page_fn(iom_page_address(b->m, dpage),
			     iom_page_address(b->m, spage), PG);
		b->dpt[base + i] = NULL;
		b->dst[i] = iom_migrate_pfn(iom_page_to_pfn(b->m, dpage)) |
			    (b->src[i] & IOM_MIGRATE_PFN_WRITE);
	}
	iom_migrate_vma_pages(&args);
	for (i = 0; i < args.npages; i++)
		if ((b->src[i] & IOM_MIGRATE_PFN_MIGRATE) && b->dst[i])
			n++;
	iom_migrate_vma_finalize(&args);
	return (long)n;
}

/* dmirror_devmem_fault(): the CPU touched one of our pages. */
static int hmm_migrate_to_ram(struct iom_vm_fault *vmf)
{
	struct hmm_bench *b = (struct hmm_bench *)vmf->page->private;
	long n = hmm_migrate_back(b, vmf->mm, vmf->address, 1, vmf->page);

	if (n < 0) {
		if (!b->cb_err)
			b->cb_err = (int)n;
		return (int)n;
	}
	b->faults += (unsigned long)n;
	return 0;
}

static const struct iom_dev_pagemap_ops hmm_devmem_ops = {
	.page_free = hmm_page_free,
	.migrate_to_ram = hmm_migrate_to_ram,
};

/* System -> device for one chunk (MIGRATE_TO_DEV). Return: moved or -errno. */
static long hmm_migrate_to_device(struct hmm_bench *b, uint64_t start,
				  unsigned long npages)
{
	struct iom_migrate_vma args = {
		.mm = b->mm, .start = start, .end = start + npages * PG,
		.src = b->src, .dst = b->dst, .pgmap_owner = b,
		.flags = IOM_MIGRATE_VMA_SELECT_SYSTEM,
	};
	unsigned long i, n = 0, base = (unsigned long)((start - b->addr) / PG);
	int err = iom_migrate_vma_setup(&args);

	if (err)
		return err;
	for (i = 0; i < args.npages; i++) {
		struct iom_page *spage = iom_migrate_pfn_to_page(b->m, b->src[i]);
		struct iom_page *dpage;

		if (!(b->src[i] & IOM_MIGRATE_PFN_MIGRATE))
			continue;
		dpage = hmm_devmem_alloc(b);
		if (!dpage)
			continue;
		if (spage)
			copy_page_fn(iom_page_address(b->m, dpage),
				     iom_page_address(b->m, spage), PG);
		else
			memset(iom_page_address(b->m, dpage), 0, PG);
		b->dst[i] = iom_migrate_pfn(iom_page_to_pfn(b->m, dpage)) |
			    (b->src[i] & IOM_MIGRATE_PFN_WRITE);
	}
	iom_migrate_vma_pages(&args);
	/* dmirror_migrate_finalize_and_map(): the device page table */
	for (i = 0; i < args.npages; i++) {
		struct iom_page *dpage = iom_migrate_pfn_to_page(b->m, b->dst[i]);

		if (!dpage || !(b->src[i] & IOM_MIGRATE_PFN_MIGRATE))
			continue;
		b->dpt[base + i] = dpage;
		n++;
	}
	iom_migrate_vma_finalize(&args);
	return (long)n;
}

/* ---- the three ways ---------------------------------------------------------- */

/* Every page to the device, HMM_CHUNK pages a call. */
static int all_to_device(struct hmm_bench *b)
{
	unsigned long i, n;
	long ret;

	for (i = 0; i < b->nr; i += n) {
		n = b->nr - i < HMM_CHUNK ? b->nr - i : HMM_CHUNK;
		iom_mmap_read_lock(b->mm);
		ret = hmm_migrate_to_device(b, b->addr + i * PG, n);
		iom_mmap_read_unlock(b->mm);
		if (ret != (long)n) {
			bench_error("to_device: %ld of %lu pages moved at page %lu%s%s",
				    ret < 0 ? 0 : ret, n, i, ret < 0 ? ": " : "",
				    ret < 0 ? strerror((int)-ret) : "");
			return -EIO;
		}
	}
	return 0;
}

/* Every page back by the driver (MIGRATE_TO_SYS), HMM_CHUNK a call. */
static int all_to_system(struct hmm_bench *b)
{
	unsigned long i, n;
	long ret;

	for (i = 0; i < b->nr; i += n) {
		n = b->nr - i < HMM_CHUNK ? b->nr - i : HMM_CHUNK;
		iom_mmap_read_lock(b->mm);
		ret = hmm_migrate_back(b, b->mm, b->addr + i * PG, n, NULL);
		iom_mmap_read_unlock(b->mm);
		if (ret != (long)n) {
			bench_error("to_system: %ld of %lu pages moved at page %lu%s%s",
				    ret < 0 ? 0 : ret, n, i, ret < 0 ? ": " : "",
				    ret < 0 ? strerror((int)-ret) : "");
			return -EIO;
		}
	}
	return 0;
}

/* Every page back by a CPU read of it: one ->migrate_to_ram() a page. */
static int all_fault_to_system(struct hmm_bench *b)
{
	unsigned long i, bad = 0, f0 = b->faults;

	for (i = 0; i < b->nr; i++) {
		uint64_t v = 0;
		int err = iom_read(b->mm, b->addr + i * PG, &v, sizeof(v));

		if (err) {
			bench_error("fault_to_system: iom_read of page %lu: %s",
				    i, strerror(-err));
			return -EIO;
		}
		bad += v != stamp_of(b, i, 0);
	}
	if (bad || b->faults - f0 != b->nr) {
		bench_error("fault_to_system: %lu faults for %lu pages, %lu reads "
			    "saw a wrong stamp", b->faults - f0, b->nr, bad);
		return -EIO;
	}
	return 0;
}

/* ---- checks ------------------------------------------------------------------ */

/* Every page on the device, in our pagemap, with its stamps; none in RAM. */
static int check_on_device(struct hmm_bench *b)
{
	unsigned long i, bad = 0, misplaced = 0, held;

	for (i = 0; i < b->nr; i++) {
		struct iom_page *p = NULL, *d = b->dpt[i];
		const unsigned char *a;
		uint64_t v0, v1;
		int r = iom_follow_page(b->mm, b->addr + i * PG, &p);

		if (p)
			iom_put_page(b->m, p);
		if (r != -ENOENT || !d || iom_page_pgmap(b->m, d) != &b->pgmap) {
			misplaced++;
			continue;
		}
		a = iom_page_address(b->m, d);
		memcpy(&v0, a, sizeof(v0));
		memcpy(&v1, a + PG - sizeof(v1), sizeof(v1));
		bad += v0 != stamp_of(b, i, 0) || v1 != stamp_of(b, i, 1);
	}
	pthread_mutex_lock(&b->devmem_lock);
	held = b->nalloc - b->nfreed;
	pthread_mutex_unlock(&b->devmem_lock);
	if (bad || misplaced || held != b->nr || b->cb_err) {
		bench_error("after to_device: %lu pages not on the device, %lu lost "
			    "their stamps, the device holds %lu pages of %lu%s%s",
			    misplaced, bad, held, b->nr, b->cb_err ? "; driver: " : "",
			    b->cb_err ? strerror(-b->cb_err) : "");
		return -EIO;
	}
	return 0;
}

/*
 * Every page in system memory (present, not a device page) with its
 * stamps read by the process; every device page back with the driver.
 * Records each page's host address for the baseline.
 */
static int check_in_ram(struct hmm_bench *b)
{
	unsigned long i, bad = 0, misplaced = 0, held;

	for (i = 0; i < b->nr; i++) {
		uint64_t va = b->addr + i * PG, v0 = 0, v1 = 0;
		struct iom_page *p = NULL;
		int r = iom_follow_page(b->mm, va, &p);

		if (r || !p || iom_page_pgmap(b->m, p) || b->dpt[i]) {
			misplaced++;
		} else {
			b->sys[i] = iom_page_address(b->m, p);
		}
		if (p)
			iom_put_page(b->m, p);
		if (r)
			continue;	/* iom_read would fault it back */
		if (iom_read(b->mm, va, &v0, sizeof(v0)) ||
		    iom_read(b->mm, va + PG - sizeof(v1), &v1, sizeof(v1)) ||
		    v0 != stamp_of(b, i, 0) || v1 != stamp_of(b, i, 1))
			bad++;
	}
	pthread_mutex_lock(&b->devmem_lock);
	held = b->nalloc - b->nfreed;
	pthread_mutex_unlock(&b->devmem_lock);
	if (bad || misplaced || held || b->nfree != b->nr || b->cb_err) {
		bench_error("back in system memory: %lu pages not there, %lu lost "
			    "their stamps, the device still holds %lu pages%s%s",
			    misplaced, bad, held, b->cb_err ? "; driver: " : "",
			    b->cb_err ? strerror(-b->cb_err) : "");
		return -EIO;
	}
	return 0;
}

/*
 * A new generation of stamps in every page (the process writes them; all
 * pages are in system memory), and the idle device pages scribbled over:
 * stale copies from an earlier trip or the baseline cannot pass a check.
 */
static int restamp(struct hmm_bench *b)
{
	unsigned long i;
	int err;

	b->gen = (b->gen + 1) & 0xffff;
	for (i = 0; i < b->nr; i++) {
		unsigned char *a = iom_page_address(b->m, &b->pgmap.pages[i]);
		uint64_t va = b->addr + i * PG, v0 = stamp_of(b, i, 0),
			 v1 = stamp_of(b, i, 1), junk = ~0ULL;

		err = iom_write(b->mm, va, &v0, sizeof(v0));
		if (!err)
			err = iom_write(b->mm, va + PG - sizeof(v1), &v1, sizeof(v1));
		if (err) {
			bench_error("iom_write of page %lu: %s", i, strerror(-err));
			return err;
		}
		memcpy(a, &junk, sizeof(junk));
		memcpy(a + PG - sizeof(junk), &junk, sizeof(junk));
	}
	return 0;
}

/* ---- setup ------------------------------------------------------------------- */

static int setup(const struct bench_opts *o, struct hmm_bench *b)
{
	struct iom_machine_config cfg;
	unsigned long i;
	int err;

	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->devmem_lock, NULL);
	iom_machine_config_init(&cfg);
	cfg.mem_size = o->mem ? o->mem : HMM_DEFAULT_MEM;
	cfg.page_poison = -1;
	b->nr = o->iters ? (unsigned long)o->iters : HMM_DEFAULT_PAGES;
	if (b->nr > IOM_PGMAP_MAX_PAGES ||
	    (uint64_t)b->nr * PG * 4 > cfg.mem_size) {
		bench_error("--iters %lu pages do not fit four times in --mem "
			    "(or exceed a pagemap)", b->nr);
		return -EINVAL;
	}
	err = bench_machine_create(&cfg, &b->arena, &b->m);
	if (err)
		return err;
	err = bench_prefault_machine(b->m);
	if (!err)
		err = iom_mm_create(b->m, &b->mm);
	if (err)
		return err;
	err = iom_mmap(b->mm, 0, b->nr * PG, IOM_PROT_READ | IOM_PROT_WRITE,
		       IOM_MAP_PRIVATE | IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE,
		       NULL, 0, &b->addr);
	if (err) {
		bench_error("iom_mmap: %s", strerror(-err));
		return err;
	}
	b->free_pages = calloc(b->nr, sizeof(*b->free_pages));
	b->dpt = calloc(b->nr, sizeof(*b->dpt));
	b->sys = calloc(b->nr, sizeof(*b->sys));
	if (!b->free_pages || !b->dpt || !b->sys)
		return -ENOMEM;

	b->pgmap.type = IOM_MEMORY_DEVICE_PRIVATE;
	b->pgmap.nr_pages = b->nr;
	b->pgmap.ops = &hmm_devmem_ops;
	b->pgmap.owner = b;
	err = iom_memremap_pages(b->m, &b->pgmap);
	if (err) {
		bench_error("iom_memremap_pages: %s", strerror(-err));
		return err;
	}
	b->pgmap_mapped = true;
	/* the device memory's host pages, touched before the runs */
	for (i = 0; i < b->nr; i++) {
		struct iom_page *p = &b->pgmap.pages[b->nr - 1 - i];

		memset(iom_page_address(b->m, p), 0, PG);
		b->free_pages[b->nfree++] = p;
	}
	err = restamp(b);
	return err ? err : check_in_ram(b);
}

static void teardown(struct hmm_bench *b)
{
	int err;

	if (b->mm)		/* device pages still mapped go to page_free */
		iom_mm_destroy(b->mm);
	if (b->pgmap_mapped) {
		err = iom_memunmap_pages(&b->pgmap);
		if (err)
			bench_error("iom_memunmap_pages: %s", strerror(-err));
	}
	if (b->m)
		iom_machine_destroy(b->m);
	if (b->arena)
		bench_arena_destroy(b->arena);
	pthread_mutex_destroy(&b->devmem_lock);
	free(b->free_pages);
	free(b->dpt);
	free(b->sys);
}

/* ---- runs -------------------------------------------------------------------- */

enum hmm_case { HMM_TO_DEVICE, HMM_TO_SYSTEM, HMM_FAULT_TO_SYSTEM };

static const char *const case_names[] = {
	"to_device", "to_system", "fault_to_system",
};

/*
 * One trip there and back, each leg checked; the leg of @c is timed
 * (*@ns, *@cpu_ns). Return: 0 or -EIO.
 */
static int trip(struct hmm_bench *b, enum hmm_case c, double *ns,
		double *cpu_ns)
{
	uint64_t t0, t1, c0, c1;
	int err;

	if (restamp(b))
		return -EIO;
	t0 = bench_now_ns();
	c0 = bench_thread_cpu_ns();
	err = all_to_device(b);
	c1 = bench_thread_cpu_ns();
	t1 = bench_now_ns();
	if (err || check_on_device(b))
		return -EIO;
	if (c == HMM_TO_DEVICE) {
		*ns = (double)(t1 - t0);
		*cpu_ns = (double)(c1 - c0);
	}
	t0 = bench_now_ns();
	c0 = bench_thread_cpu_ns();
	err = c == HMM_FAULT_TO_SYSTEM ? all_fault_to_system(b) : all_to_system(b);
	c1 = bench_thread_cpu_ns();
	t1 = bench_now_ns();
	if (err || check_in_ram(b))
		return -EIO;
	if (c != HMM_TO_DEVICE) {
		*ns = (double)(t1 - t0);
		*cpu_ns = (double)(c1 - c0);
	}
	return 0;
}

/*
 * The baseline: memcpy() of the same pages, 4 KiB at a time, from the
 * process's system pages into the device pages (all idle now).
 */
static double memcpy_run(struct hmm_bench *b)
{
	unsigned long i;
	uint64_t t0, t1;

	t0 = bench_now_ns();
	for (i = 0; i < b->nr; i++)
		copy_page_fn(iom_page_address(b->m, &b->pgmap.pages[i]), b->sys[i], PG);
	bench_sink(b->pgmap.pages);
	t1 = bench_now_ns();
	return (double)(t1 - t0);
}

static int measure(const struct bench_opts *o, struct hmm_bench *b,
		   enum hmm_case c)
{
	double *v = calloc((size_t)o->runs * 3, sizeof(double));
	double *base = v + o->runs, *ovh = base + o->runs;
	double bytes = (double)b->nr * PG, share = 1, ns = 0, cns = 0;
	unsigned long f0 = b->faults;
	struct bench_stat vs, bs, os;
	char note[512], tail[96] = "";
	int r;

	if (!v)
		return -ENOMEM;
	/* Warm-up: the first trip touches pages and caches. */
	if (trip(b, c, &ns, &cns))
		goto fail;
	if (o->baseline)
		memcpy_run(b);
	f0 = b->faults;
	for (r = 0; r < o->runs; r++) {
		if (trip(b, c, &ns, &cns))
			goto fail;
		v[r] = bytes / ns;			/* GB/s */
		if (cns / ns < share)
			share = cns / ns;
		if (o->baseline) {
			double bns = memcpy_run(b);

			base[r] = bytes / bns;
			ovh[r] = (ns - bns) / (double)b->nr;
		}
	}
	bench_stat_compute(v, o->runs, &vs);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &bs);
	bench_stat_compute(ovh, o->baseline ? o->runs : 0, &os);
	if (o->baseline)
		snprintf(tail, sizeof(tail), "; %s minus memcpy: %.0f ns a page",
			 case_names[c], os.median);
	snprintf(note, sizeof(note),
		 "%lu order-0 anonymous pages %s; ->migrate_to_ram faults %lu over "
		 "%d runs%s",
		 b->nr,
		 c == HMM_TO_DEVICE ?
			"system -> device-private: migrate_vma SELECT_SYSTEM, 512 "
			"pages a call (setup, copy into device pages, pages, finalize)" :
		 c == HMM_TO_SYSTEM ?
			"device-private -> system: migrate_vma SELECT_DEVICE_PRIVATE "
			"from the driver, 512 pages a call" :
			"device-private -> system by a CPU read of each page: "
			"->migrate_to_ram, migrate_vma of 1 page with fault_page",
		 b->faults - f0, o->runs, tail);
	bench_report(o, &(struct bench_result){
		.bench = "hmm", .metric = case_names[c], .unit = "GB/s",
		.value = vs, .baseline = o->baseline ? &bs : NULL,
		.baseline_name = "memcpy of the same pages, 4 KiB at a time, "
				 "system page -> device page",
		.note = note, .cpu_share = share,
	});
	free(v);
	return 0;
fail:
	free(v);
	return -EIO;
}

int bench_hmm(const struct bench_opts *o)
{
	struct hmm_bench b;
	int err, c;

	bench_report_host(o);
	err = setup(o, &b);
	for (c = HMM_TO_DEVICE; !err && c <= HMM_FAULT_TO_SYSTEM; c++) {
		if (o->only && !strstr(case_names[c], o->only))
			continue;
		bench_progress(o, "hmm: %s, %lu pages", case_names[c], b.nr);
		err = measure(o, &b, (enum hmm_case)c);
	}
	teardown(&b);
	if (err) {
		bench_error("hmm: %s", strerror(-err));
		return 1;
	}
	return 0;
}
