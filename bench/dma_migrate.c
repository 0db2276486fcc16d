/* SPDX-License-Identifier: MIT */
/*
 * iommig-bench dma-migrate - migration of the pages of movable coherent
 * DMA buffers through the whole path, MM -> IOMAP -> DMA -> IOMMU:
 * iom_isolate_lru_page() of each page, iom_migrate_pages(MIGRATE_SYNC)
 * with new pages from the allocator, the IOMAP's migratepage, the DMA
 * layer's __iommu_migratepagecopy() and the IOMMU's migration of the
 * page's translation, in each of the DMA layer's migration modes (seed,
 * layered, per-page, non-blocking), on one strict DMA domain.
 *
 * --iters pages (default 4096 = 16 MiB) in coherent buffers of 1 MiB,
 * allocated anew for each mode (the mode is a buffer's, fixed at
 * allocation). Cases, each mode <m>:
 *   tput_<m>_batched - one iom_migrate_pages() call for every page (the
 *                      MM's batches of 512), against memcpy() of the same
 *                      pages page by page into spare pages, same run;
 *   tput_<m>_single  - one iom_migrate_pages() call a page;
 *   stall_<m>        - device threads (devstall.c's harness) write 4 KiB
 *                      at random pages of the buffers while the main thread
 *                      migrates every page back to back for at least
 *                      DMIG_STALL_MIN_MS; stall percentiles from struct
 *                      iom_device_thread_stats, against one 4 KiB memcpy().
 * For context, tput_pagecache_batched/_single move as many clean
 * page-cache pages (no DMA) through the same MM calls, and `legacy` tries
 * the batched migration on legacy (2013, unmovable) buffers of the same
 * size: none of their pages can be isolated, none moves.
 *
 * Every page carries a stamp and the sequence number of the last device
 * write made to it; after every pass the benchmark checks that every page
 * moved, and reads each one through the CPU view and through the device:
 * a fast but broken path fails the benchmark instead of being reported.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/dma-mapping.h>
#include <iommig/filemap.h>
#include <iommig/migrate.h>

#include "bench.h"
#include "devstall.h"

#define DMIG_DEFAULT_MEM	(256ULL << 20)
#define DMIG_DEFAULT_PAGES	4096UL		/* 16 MiB */
#define DMIG_BUF_PAGES		256UL		/* 1 MiB a coherent buffer */
#define DMIG_MAX_THREADS	64
#define DMIG_STALL_MIN_MS	200
#define DMIG_STAMP		0xd3a0000000000000ULL
#define DMIG_LOG_SHOWN		5	/* library messages printed; the rest counted */
#define PG			IOM_PAGE_SIZE

struct dmig_mode {
	const char *name;
	enum iom_dma_migrate_mode mode;
	const char *what;
};

static const struct dmig_mode dmig_modes[] = {
	{ "seed", IOM_DMA_MIGRATE_SEED,
	  "seed mode (iommu_migrate() of the page from ->migratepagecopy: the "
	  "domain blocked for the copy)" },
	{ "layered", IOM_DMA_MIGRATE_LAYERED,
	  "layered mode (the domain blocked around migrate_page(), the copy "
	  "under that block)" },
	{ "per_page", IOM_DMA_MIGRATE_PER_PAGE,
	  "per-page mode (only the migrating page blocks)" },
	{ "nonblock", IOM_DMA_MIGRATE_NONBLOCK,
	  "non-blocking mode (fault-on-write entry, dirty re-copy, final stop "
	  "for writes only)" },
};

#define NR_MODES (sizeof(dmig_modes) / sizeof(dmig_modes[0]))

/* Which pages a pass moves: a DMA buffer's, or a file's page cache. */
enum dmig_kind { K_DMA, K_PAGECACHE };

/* What the passes of a run did. */
struct dmig_acc {
	uint64_t passes, pages, moved;
	uint64_t lookup_ns, migrate_ns;
};

struct dmig_bench {
	const struct bench_opts *o;
	struct bench_arena *arena;
	struct iom_machine *m;
	struct iom_iommu *iommu;
	struct iom_iommu_domain *d;
	struct iom_device *dev;
	bool attached;
	unsigned long nr;		/* pages */
	unsigned int nbuf;
	void **cpu;			/* the buffers' handles, NULL: none */
	iom_dma_addr_t *handle;
	struct iom_inode *inode;	/* the page-cache case's file */
	enum dmig_kind kind;
	uint64_t *cur_phys;		/* where each page is now */
	char **cur_host;
	struct iom_page **spare;	/* the memcpy baseline's targets */
	char **spare_host;
	uint64_t *last_seq;		/* per page: the last sequence written */
	uint64_t stamp_gen;		/* page-cache stamps: a generation */
	struct devstall ds;		/* the device threads */
	atomic_ulong warnings;		/* the machine's warnings and errors */
};

static inline unsigned int page_buf(unsigned long p)
{
	return (unsigned int)(p / DMIG_BUF_PAGES);
}

static inline size_t page_off(unsigned long p)
{
	return (size_t)(p % DMIG_BUF_PAGES) * PG;
}

static inline size_t buf_size(const struct dmig_bench *b, unsigned int i)
{
	unsigned long left = b->nr - (unsigned long)i * DMIG_BUF_PAGES;

	return (left < DMIG_BUF_PAGES ? left : DMIG_BUF_PAGES) * PG;
}

static inline void list_init(struct iom_list_head *h)
{
	h->next = h->prev = h;
}

static inline void list_add_tail(struct iom_list_head *n, struct iom_list_head *h)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

/* Page @p of the set being measured, with a reference, or NULL. */
static struct iom_page *get_page(struct dmig_bench *b, unsigned long p)
{
	if (b->kind == K_PAGECACHE)
		return iom_find_get_page(iom_inode_mapping(b->inode), p);
	return iom_dma_buffer_page(b->dev, b->cpu[page_buf(p)], page_off(p));
}

/* Where every page is now (not timed). */
static int gather(struct dmig_bench *b)
{
	for (unsigned long p = 0; p < b->nr; p++) {
		struct iom_page *page = get_page(b, p);

		if (!page) {
			bench_error("page %lu of the set has gone", p);
			return -EIO;
		}
		b->cur_phys[p] = iom_page_to_phys(b->m, page);
		b->cur_host[p] = iom_page_address(b->m, page);
		iom_put_page(b->m, page);
	}
	return 0;
}

/*
 * The machine's log: warnings are counted (a note reports those of its
 * case) and only the first few printed, so a library that warns once a
 * page cannot flood the output.
 */
static void dmig_log(void *priv, enum iom_log_level level, const char *msg)
{
	struct dmig_bench *b = priv;

	if (level > IOM_LOG_WARNING)
		return;
	if (atomic_fetch_add(&b->warnings, 1) < DMIG_LOG_SHOWN)
		fprintf(stderr, "libiommig <%d>: %s\n", (int)level, msg);
}

/* ---- migration ----------------------------------------------------------- */

static struct iom_page *new_page(struct iom_page *page, unsigned long private)
{
	(void)page;
	return iom_alloc_pages((struct iom_machine *)(uintptr_t)private,
			       IOM_GFP_HIGHUSER_MOVABLE, 0);
}

/* Isolate pages [@from, @to) onto @list. Return: how many. */
static unsigned long isolate_range(struct dmig_bench *b, unsigned long from,
				   unsigned long to, struct iom_list_head *list)
{
	unsigned long n = 0;

	for (unsigned long p = from; p < to; p++) {
		struct iom_page *page = get_page(b, p);

		if (!page)
			continue;
		if (!iom_isolate_lru_page(b->m, page)) {
			list_add_tail(&page->lru, list);
			n++;
		}
		iom_put_page(b->m, page);
	}
	return n;
}

static unsigned int migrate_list(struct dmig_bench *b, struct iom_list_head *list)
{
	unsigned int done = 0;

	iom_migrate_pages(b->m, list, new_page, NULL, (unsigned long)(uintptr_t)b->m,
			  IOM_MIGRATE_SYNC, IOM_MR_SYSCALL, &done);
	iom_putback_movable_pages(b->m, list);
	return done;
}

/*
 * Move every page once: one iom_migrate_pages() call for all (@single
 * false) or one a page. Return: 0, or -EIO if a page did not move.
 */
static int migrate_pass(struct dmig_bench *b, bool single, struct dmig_acc *acc)
{
	struct iom_list_head list;
	unsigned long moved = 0;
	uint64_t t0, t1, t2;

	list_init(&list);
	if (!single) {
		t0 = bench_now_ns();
		isolate_range(b, 0, b->nr, &list);
		t1 = bench_now_ns();
		moved = migrate_list(b, &list);
		t2 = bench_now_ns();
		acc->lookup_ns += t1 - t0;
		acc->migrate_ns += t2 - t1;
	} else {
		for (unsigned long p = 0; p < b->nr; p++) {
			t0 = bench_now_ns();
			isolate_range(b, p, p + 1, &list);
			t1 = bench_now_ns();
			moved += migrate_list(b, &list);
			t2 = bench_now_ns();
			acc->lookup_ns += t1 - t0;
			acc->migrate_ns += t2 - t1;
		}
	}
	acc->passes++;
	acc->pages += b->nr;
	acc->moved += moved;
	if (moved != b->nr) {
		bench_error("a pass moved %lu of %lu pages", moved, b->nr);
		return -EIO;
	}
	return 0;
}

/* ---- content ------------------------------------------------------------- */

static uint64_t stamp_of(const struct dmig_bench *b, unsigned long p)
{
	return b->kind == K_PAGECACHE ? DMIG_STAMP | b->stamp_gen << 32 | p
				      : DMIG_STAMP | p;
}

/* Write each page's stamp and a zero sequence (not timed). */
static int stamp_pages(struct dmig_bench *b)
{
	for (unsigned long p = 0; p < b->nr; p++) {
		uint64_t v[2] = { stamp_of(b, p), 0 };
		int err;

		if (b->kind == K_PAGECACHE)
			err = iom_file_write(b->inode, (uint64_t)p * PG, v, sizeof(v)) ==
			      (ssize_t)sizeof(v) ? 0 : -EIO;
		else
			err = iom_dma_vmap_write(b->dev, b->cpu[page_buf(p)], page_off(p),
						 v, sizeof(v));
		if (err)
			return err;
		b->last_seq[p] = 0;
	}
	return 0;
}

/*
 * After a pass: every page moved away from @old_phys (NULL: not checked),
 * and holds its stamp and the last write made to it, through the CPU view
 * and through the device; no bug report. Refreshes cur_phys/cur_host.
 */
static int check_pages(struct dmig_bench *b, const uint64_t *old_phys, const char *when)
{
	unsigned long stayed = 0, bad = 0, lost = 0, devbad = 0;

	if (gather(b))
		return -EIO;
	for (unsigned long p = 0; p < b->nr; p++) {
		uint64_t v[2] = { 0, 0 }, dv[2] = { 0, 0 };

		if (old_phys && old_phys[p] == b->cur_phys[p])
			stayed++;
		if (b->kind == K_PAGECACHE) {
			if (iom_file_read(b->inode, (uint64_t)p * PG, v, sizeof(v)) !=
			    (ssize_t)sizeof(v))
				bad++;
			dv[0] = v[0];
			dv[1] = v[1];
		} else {
			unsigned int i = page_buf(p);

			if (iom_dma_vmap_read(b->dev, b->cpu[i], page_off(p), v, sizeof(v)) ||
			    iom_device_dma_read(b->dev, b->handle[i] + page_off(p), dv,
						sizeof(dv)))
				bad++;
		}
		if (v[0] != stamp_of(b, p))
			bad++;
		else if (v[1] != b->last_seq[p])
			lost++;
		if (dv[0] != v[0] || dv[1] != v[1])
			devbad++;
	}
	if (stayed || bad || lost || devbad || iom_machine_bug_count(b->m)) {
		bench_error("after %s: %lu pages did not move, %lu lost their stamp, "
			    "%lu lost a device write, %lu read differently by the device; "
			    "%lu bug reports", when, stayed, bad, lost, devbad,
			    iom_machine_bug_count(b->m));
		return -EIO;
	}
	return 0;
}

/* The baseline: the same pages copied page by page into the spares. ns. */
static double memcpy_run(struct dmig_bench *b)
{
	uint64_t t0, t1;

	t0 = bench_now_ns();
	for (unsigned long p = 0; p < b->nr; p++)
		memcpy(b->spare_host[p], b->cur_host[p], PG);
	bench_sink(b->spare_host);
	t1 = bench_now_ns();
	return (double)(t1 - t0);
}

/* ---- setup --------------------------------------------------------------- */

static int setup(const struct bench_opts *o, struct dmig_bench *b)
{
	struct iom_machine_config cfg;
	int err;

	b->o = o;
	b->nr = o->iters ? (unsigned long)o->iters : DMIG_DEFAULT_PAGES;
	b->nbuf = (unsigned int)((b->nr + DMIG_BUF_PAGES - 1) / DMIG_BUF_PAGES);
	iom_machine_config_init(&cfg);
	cfg.mem_size = o->mem ? o->mem : DMIG_DEFAULT_MEM;
	cfg.page_poison = -1;
	if ((uint64_t)b->nr * PG * 4 > cfg.mem_size || b->nr > (1UL << 19)) {
		bench_error("--iters %lu pages do not fit three times in --mem "
			    "(or above 512K pages)", b->nr);
		return -EINVAL;
	}
	cfg.log = dmig_log;
	cfg.log_priv = b;
	err = bench_machine_create(&cfg, &b->arena, &b->m);
	if (err)
		return err;
	err = bench_prefault_machine(b->m);
	if (err)
		return err;
	b->cpu = calloc(b->nbuf, sizeof(*b->cpu));
	b->handle = calloc(b->nbuf, sizeof(*b->handle));
	b->cur_phys = calloc(b->nr, sizeof(uint64_t));
	b->cur_host = calloc(b->nr, sizeof(char *));
	b->spare = calloc(b->nr, sizeof(*b->spare));
	b->spare_host = calloc(b->nr, sizeof(char *));
	b->last_seq = calloc(b->nr, sizeof(uint64_t));
	if (!b->cpu || !b->handle || !b->cur_phys || !b->cur_host || !b->spare ||
	    !b->spare_host || !b->last_seq)
		return -ENOMEM;
	for (unsigned long p = 0; p < b->nr; p++) {
		b->spare[p] = iom_alloc_pages(b->m, IOM_GFP_KERNEL, 0);
		if (!b->spare[p]) {
			bench_error("out of simulated memory");
			return -ENOMEM;
		}
		b->spare_host[p] = iom_page_address(b->m, b->spare[p]);
	}
	err = iom_iommu_create(b->m, NULL, &b->iommu);
	if (err) {
		bench_error("iom_iommu_create: %s", strerror(-err));
		return err;
	}
	b->d = iom_iommu_domain_alloc(b->iommu, IOM_IOMMU_DOMAIN_DMA);
	if (!b->d) {
		bench_error("iom_iommu_domain_alloc: %s", strerror(errno));
		return -ENOMEM;
	}
	err = iom_iommu_dma_init_domain(b->d, 1ULL << 20, 1ULL << 32);
	if (!err)
		err = iom_device_create(b->iommu, "bench-dma-dev", &b->dev);
	if (!err)
		err = iom_iommu_attach_device(b->d, b->dev);
	if (err) {
		bench_error("DMA domain and device: %s", strerror(-err));
		return err;
	}
	b->attached = true;
	return 0;
}

static void free_buffers(struct dmig_bench *b)
{
	for (unsigned int i = 0; b->cpu && i < b->nbuf; i++) {
		if (!b->cpu[i])
			continue;
		if (iom_dma_free_coherent(b->dev, buf_size(b, i), b->cpu[i], b->handle[i], 0))
			bench_error("iom_dma_free_coherent of buffer %u failed", i);
		b->cpu[i] = NULL;
	}
}

/* Buffers of @alloc pages with @mode, stamped. */
static int alloc_buffers(struct dmig_bench *b, enum iom_dma_alloc_mode alloc,
			 enum iom_dma_migrate_mode mode)
{
	int err = iom_dma_set_alloc_mode(b->dev, alloc);

	if (!err)
		err = iom_dma_set_migrate_mode(b->dev, mode);
	if (err)
		return err;
	b->kind = K_DMA;
	for (unsigned int i = 0; i < b->nbuf; i++) {
		b->cpu[i] = iom_dma_alloc_coherent(b->dev, buf_size(b, i), &b->handle[i],
						   IOM_GFP_KERNEL, 0);
		if (!b->cpu[i]) {
			err = -errno;
			bench_error("iom_dma_alloc_coherent: %s", strerror(errno));
			free_buffers(b);
			return err ? err : -ENOMEM;
		}
	}
	err = stamp_pages(b);
	if (!err)
		err = gather(b);
	return err;
}

static void teardown(struct dmig_bench *b)
{
	free_buffers(b);
	if (b->inode)
		iom_inode_destroy(b->inode);
	if (b->attached)
		iom_iommu_detach_device(b->d, b->dev);
	if (b->dev)
		iom_device_destroy(b->dev);
	if (b->d)
		iom_iommu_domain_free(b->d);
	if (b->iommu)
		iom_iommu_destroy(b->iommu);
	for (unsigned long p = 0; b->m && b->spare && p < b->nr; p++)
		if (b->spare[p])
			iom___free_pages(b->m, b->spare[p], 0);
	if (b->m)
		iom_machine_destroy(b->m);
	if (b->arena)
		bench_arena_destroy(b->arena);
	free(b->cpu);
	free(b->handle);
	free(b->cur_phys);
	free(b->cur_host);
	free(b->spare);
	free(b->spare_host);
	free(b->last_seq);
}

/* ---- throughput ---------------------------------------------------------- */

static uint64_t inv_count(const struct iom_iommu_stats *s)
{
	return s->inv_page + s->inv_range + s->inv_domain + s->inv_all;
}

/*
 * One case: warm-up pass, then --runs passes each followed by the memcpy
 * baseline of the same pages. @name: the metric; @what: how pages move.
 */
static int measure_tput(struct dmig_bench *b, const char *name, const char *what,
			bool single, const char *goal)
{
	const struct bench_opts *o = b->o;
	double *v = calloc((size_t)o->runs * 5, sizeof(double));
	double *base = v + o->runs, *ovh = base + o->runs;
	double *lk = ovh + o->runs, *mg = lk + o->runs;
	double bytes = (double)b->nr * PG, share = 1;
	struct bench_stat vs, bs, os, ls, ms;
	struct iom_iommu_stats i0, i1;
	uint64_t *old = malloc(b->nr * sizeof(uint64_t));
	uint64_t inv = 0, syncs = 0, ev0, ev1;
	unsigned long w0 = atomic_load(&b->warnings);
	char note[800];
	int r, err = 0;

	if (!v || !old) {
		free(v);
		free(old);
		return -ENOMEM;
	}
	devstall_pin_main(&b->ds, true);
	{
		struct dmig_acc acc = { 0 };

		memcpy(old, b->cur_phys, b->nr * sizeof(uint64_t));
		if ((err = migrate_pass(b, single, &acc)) ||
		    (err = check_pages(b, old, name)))
			goto out;
	}
	if (o->baseline)
		memcpy_run(b);
	ev0 = iom_vm_event_count(b->m, IOM_PGMIGRATE_SUCCESS);
	for (r = 0; r < o->runs; r++) {
		struct dmig_acc acc = { 0 };
		uint64_t t0, t1, c0, c1;
		double ns, sh;

		bench_progress(o, "dma-migrate %s: run %d/%d", name, r + 1, o->runs);
		memcpy(old, b->cur_phys, b->nr * sizeof(uint64_t));
		iom_iommu_get_stats(b->iommu, &i0);
		c0 = bench_thread_cpu_ns();
		t0 = bench_now_ns();
		err = migrate_pass(b, single, &acc);
		t1 = bench_now_ns();
		c1 = bench_thread_cpu_ns();
		iom_iommu_get_stats(b->iommu, &i1);
		if (err || (err = check_pages(b, old, name)))
			goto out;
		inv += inv_count(&i1) - inv_count(&i0);
		syncs += i1.inv_syncs - i0.inv_syncs;
		ns = (double)(t1 - t0);
		sh = (double)(c1 - c0) / ns;
		if (sh < share)
			share = sh;
		v[r] = bytes / ns;
		lk[r] = (double)acc.lookup_ns / (double)b->nr;
		mg[r] = (double)acc.migrate_ns / (double)b->nr;
		if (o->baseline) {
			double bns = memcpy_run(b);

			base[r] = bytes / bns;
			ovh[r] = (ns - bns) / (double)b->nr;
		}
	}
	ev1 = iom_vm_event_count(b->m, IOM_PGMIGRATE_SUCCESS);
	bench_stat_compute(v, o->runs, &vs);
	bench_stat_compute(base, o->baseline ? o->runs : 0, &bs);
	bench_stat_compute(ovh, o->baseline ? o->runs : 0, &os);
	bench_stat_compute(lk, o->runs, &ls);
	bench_stat_compute(mg, o->runs, &ms);
	snprintf(note, sizeof(note),
		 "%lu pages moved once a run by iom_isolate_lru_page + "
		 "iom_migrate_pages(MIGRATE_SYNC)%s, %s; a page: lookup+isolate %.0f ns, "
		 "migrate_pages %.0f ns, migration minus memcpy %.0f ns; "
		 "%.3g IOMMU invalidations and %.3g completion waits a page; "
		 "pgmigrate_success %llu over %d runs; library warnings %lu",
		 b->nr, single ? ", one call a page" : ", one call (batches of 512)",
		 what, ls.median, ms.median, os.median,
		 (double)inv / ((double)b->nr * o->runs),
		 (double)syncs / ((double)b->nr * o->runs),
		 (unsigned long long)(ev1 - ev0), o->runs,
		 atomic_load(&b->warnings) - w0);
	bench_report(o, &(struct bench_result){
		.bench = "dma-migrate", .metric = name, .unit = "GB/s",
		.value = vs, .baseline = o->baseline ? &bs : NULL,
		.baseline_name = "memcpy of the same pages, 4 KiB at a time",
		.goal = goal && o->baseline ? goal : NULL,
		.goal_met = o->baseline && vs.median >= 0.4 * bs.median,
		.note = note, .cpu_share = share,
	});
out:
	if (err)
		bench_error("%s failed: %s", name, strerror(-err));
	free(v);
	free(old);
	devstall_pin_main(&b->ds, false);
	return err;
}

/* ---- stalls -------------------------------------------------------------- */

/* A device thread's step: one 4 KiB write at a random page of its own. */
static int dev_step(void *priv, struct devstall_worker *w, unsigned int idx,
		    uint64_t x)
{
	struct dmig_bench *b = priv;
	unsigned long p = devstall_pick(&b->ds, idx, b->nr, x);
	int err;

	w->wbuf[0] = DMIG_STAMP | p;
	w->wbuf[1] = ++w->seq;
	err = iom_device_dma_write(b->dev, b->handle[page_buf(p)] + page_off(p),
				   w->wbuf, PG);
	if (err)
		return err;
	b->last_seq[p] = w->seq;
	return 0;
}

/* One stall case: batched passes of every page in mode @md. */
struct dmig_stall {
	struct dmig_bench *b;
	const struct dmig_mode *md;
	unsigned long w0;	/* the machine's warnings before the case */
	struct dmig_acc acc;
};

static int stall_pass(void *priv, uint64_t n)
{
	struct dmig_stall *s = priv;

	(void)n;
	return migrate_pass(s->b, false, &s->acc);
}

/* Each pass moved every page (migrate_pass checks the count); a page may
 * be back in a frame it had, so where it is is not compared. */
static int stall_check(void *priv, bool migrated)
{
	struct dmig_stall *s = priv;

	return check_pages(s->b, NULL, migrated ? "migrations under device traffic" :
			   "device traffic");
}

static double stall_memcpy(void *priv)
{
	struct dmig_stall *s = priv;

	return memcpy_run(s->b);
}

static void stall_notes(void *priv, const struct bench_stat *st,
			const struct devstall_sample *last, char *p99,
			size_t p99_size, char *rate, size_t rate_size)
{
	struct dmig_stall *s = priv;
	unsigned int t = s->b->ds.nthreads;

	snprintf(p99, p99_size, "stall of every device transaction (4 KiB "
		 "writes at random pages, %u thread%s) while every DMA page migrates "
		 "back to back through iom_migrate_pages (batches of 512), %s, for "
		 ">= %d ms: %.0f passes a run; %.3g %% of transactions stalled; max "
		 "%llu ns (last run)", t, t > 1 ? "s" : "", s->md->what,
		 DMIG_STALL_MIN_MS, st[DS_PASSES].median, st[DS_FRAC].median,
		 (unsigned long long)last->st.stall_max_ns);
	snprintf(rate, rate_size, "device 4 KiB writes a second during the "
		 "migrations; migration under traffic %.3g GB/s, its thread on a "
		 "cpu %.0f %% of the time; library warnings %lu", st[DS_MIG].median,
		 100 * st[DS_MAINSH].median, atomic_load(&s->b->warnings) - s->w0);
}

static int measure_stall(struct dmig_bench *b, const struct dmig_mode *md)
{
	struct dmig_stall s = { .b = b, .md = md,
				.w0 = atomic_load(&b->warnings) };

	return devstall_measure(&b->ds, &(struct devstall_case){
		.bench = "dma-migrate", .name = md->name,
		.min_ns = (uint64_t)DMIG_STALL_MIN_MS * 1000000u,
		.pass_pages = b->nr, .memcpy_pages = b->nr,
		.pass = stall_pass, .check = stall_check,
		.memcpy_ns = stall_memcpy, .notes = stall_notes, .priv = &s,
	});
}

/* ---- legacy buffers ------------------------------------------------------ */

/*
 * The batched pass on legacy buffers: count what could be isolated (LRU
 * or non-LRU movable, as compaction tries both) and what moved; every
 * page must still be where it was allocated, with its content.
 */
static int measure_legacy(struct dmig_bench *b)
{
	struct iom_list_head list;
	unsigned long isolated = 0, lru = 0, movable = 0;
	unsigned int moved;
	uint64_t *old;
	char note[400];
	int err;

	err = alloc_buffers(b, IOM_DMA_ALLOC_LEGACY, IOM_DMA_MIGRATE_SEED);
	if (err)
		return err;
	old = malloc(b->nr * sizeof(uint64_t));
	if (!old) {
		free_buffers(b);
		return -ENOMEM;
	}
	memcpy(old, b->cur_phys, b->nr * sizeof(uint64_t));
	list_init(&list);
	for (unsigned long p = 0; p < b->nr; p++) {
		struct iom_page *page = get_page(b, p);

		if (!page)
			continue;
		if (!iom_isolate_lru_page(b->m, page)) {
			list_add_tail(&page->lru, &list);
			lru++;
		} else if (!iom_isolate_movable_page(b->m, page, 0)) {
			list_add_tail(&page->lru, &list);
			movable++;
		}
		iom_put_page(b->m, page);
	}
	isolated = lru + movable;
	moved = migrate_list(b, &list);
	err = gather(b);
	if (!err) {
		unsigned long stayed = 0, w0;

		for (unsigned long p = 0; p < b->nr; p++)
			stayed += old[p] == b->cur_phys[p];
		err = check_pages(b, NULL, "legacy");
		w0 = atomic_load(&b->warnings);
		free_buffers(b);
		snprintf(note, sizeof(note), "legacy coherent buffers (orders 4..0, "
			 "unmovable, no IOMAP) of the same %lu pages, the batched pass: "
			 "%lu isolated (%lu LRU, %lu non-LRU movable), iom_migrate_pages "
			 "moved %u; %lu pages still where allocated (content checked): "
			 "they stay pinned; library warnings while freeing them: %lu",
			 b->nr, isolated, lru, movable, moved, stayed,
			 atomic_load(&b->warnings) - w0);
		if (!err)
			bench_report_value(b->o, "dma-migrate", "legacy_pages_moved",
					   (double)moved, "pages", note);
	}
	free(old);
	free_buffers(b);
	return err;
}

/* ---- page cache ------------------------------------------------------------ */

static int pagecache_setup(struct dmig_bench *b)
{
	int err = iom_inode_create(b->m, (uint64_t)b->nr * PG, &b->inode);

	if (err) {
		bench_error("iom_inode_create: %s", strerror(-err));
		return err;
	}
	b->kind = K_PAGECACHE;
	b->stamp_gen = 1;
	for (unsigned long p = 0; p < b->nr; p++) {
		char page[PG];

		memset(page, 0x3c, sizeof(page));
		if (iom_file_write(b->inode, (uint64_t)p * PG, page, PG) != (ssize_t)PG)
			return -EIO;
	}
	err = stamp_pages(b);
	if (!err && iom_file_sync(b->inode) < 0)
		err = -EIO;
	if (!err)
		err = gather(b);
	return err;
}

/* ---- entry --------------------------------------------------------------- */

static bool selected(const struct bench_opts *o, const char *name)
{
	return !o->only || strstr(name, o->only);
}

static bool mode_selected(const struct bench_opts *o, const struct dmig_mode *md)
{
	char n[64];

	snprintf(n, sizeof(n), "tput_%s_batched", md->name);
	if (selected(o, n))
		return true;
	snprintf(n, sizeof(n), "tput_%s_single", md->name);
	if (selected(o, n))
		return true;
	snprintf(n, sizeof(n), "stall_%s", md->name);
	return selected(o, n);
}

static int run_mode(struct dmig_bench *b, const struct dmig_mode *md)
{
	const struct bench_opts *o = b->o;
	char name[64], what[200];
	int err;

	err = alloc_buffers(b, IOM_DMA_ALLOC_MOVABLE, md->mode);
	if (err) {
		bench_error("%s: buffers: %s", md->name, strerror(-err));
		return err;
	}
	snprintf(what, sizeof(what), "movable coherent buffers in %s", md->what);
	snprintf(name, sizeof(name), "tput_%s_batched", md->name);
	if (selected(o, name))
		err = measure_tput(b, name, what, false, "ratio>=0.4");
	snprintf(name, sizeof(name), "tput_%s_single", md->name);
	if (!err && selected(o, name))
		err = measure_tput(b, name, what, true, NULL);
	snprintf(name, sizeof(name), "stall_%s", md->name);
	if (!err && selected(o, name))
		err = measure_stall(b, md);
	free_buffers(b);
	return err;
}

int bench_dma_migrate(const struct bench_opts *o)
{
	struct dmig_bench b;
	unsigned int nt = o->threads ? o->threads : 1;
	bool any = false, pc_b, pc_s, legacy;
	size_t mi;
	int err = 0;

	memset(&b, 0, sizeof(b));
	if (nt > DMIG_MAX_THREADS) {
		bench_error("at most %d device threads", DMIG_MAX_THREADS);
		return 1;
	}
	for (mi = 0; mi < NR_MODES; mi++)
		any |= mode_selected(o, &dmig_modes[mi]);
	pc_b = selected(o, "tput_pagecache_batched");
	pc_s = selected(o, "tput_pagecache_single");
	legacy = selected(o, "legacy_pages_moved");
	if (!any && !pc_b && !pc_s && !legacy) {
		bench_error("--only '%s' matches no case", o->only);
		return 1;
	}
	err = setup(o, &b);
	if (!err)
		err = devstall_init(&b.ds, o, b.dev, dev_step, &b, nt, false);
	if (err)
		goto out;
	bench_report_host(o);
	for (mi = 0; mi < NR_MODES && !err; mi++)
		if (mode_selected(o, &dmig_modes[mi]))
			err = run_mode(&b, &dmig_modes[mi]);
	if (!err && legacy)
		err = measure_legacy(&b);
	if (!err && (pc_b || pc_s)) {
		const char *what = "clean page-cache pages of one file (no DMA)";

		err = pagecache_setup(&b);
		if (!err && pc_b)
			err = measure_tput(&b, "tput_pagecache_batched", what, false, NULL);
		if (!err && pc_s)
			err = measure_tput(&b, "tput_pagecache_single", what, true, NULL);
	}
out:
	devstall_fini(&b.ds);
	teardown(&b);
	if (atomic_load(&b.warnings) > DMIG_LOG_SHOWN)
		bench_error("the library logged %lu warnings or errors (the first %d shown)",
			    atomic_load(&b.warnings), DMIG_LOG_SHOWN);
	if (err) {
		bench_error("dma-migrate: %s", strerror(-err));
		return 1;
	}
	return 0;
}
