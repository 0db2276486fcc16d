/* SPDX-License-Identifier: MIT */
/*
 * The DMA API's IOMMU backend: drivers/iommu/dma-iommu.c (iommu_dma_alloc,
 * iommu_dma_free, iommu_dma_map_page/unmap_page, iommu_dma_map_sg/
 * unmap_sg) with seed 000's changes to arch/arm/mm/dma-mapping.c: a
 * coherent buffer is a struct __iommu_buffer whose movable pages (order 0,
 * or compound pages of the order the device asked for) sit in an IOMAP,
 * and __iommu_migratepagecopy() moves the device's view of a page with
 * iommu_migrate() and a copy callback (__iommu_cb).
 *
 * Simplified: the machine is cache-coherent, so the cache maintenance of
 * __iommu_cb and of the sync calls has nothing to do; the CPU view (the
 * seed's VMALLOC mapping) is reached through iom_dma_vmap_read/write(),
 * which wait while a page migrates (struct dma_vmap_page: the migration
 * entry of a kernel PTE, without page references), instead of through
 * kernel page tables; map_sg gives every entry its own DMA segment (no
 * merging).
 *
 * The migration path (docs/migration-path.md): MM migrate_pages ->
 * a_ops->migratepage (iomap) -> migrate_page -> move_mapping ->
 * migrate_page_copy -> a_ops->migratepagecopy (iomap) ->
 * cops->migratepagecopy = __iommu_migratepagecopy (here) ->
 * iom_iommu_migrate[_ranges] (IOMMU) -> copy callback (here) -> back.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/dma-mapping.h>
#include <iommig/iomap.h>
#include <iommig/migrate.h>
#include <iommig/iova.h>

#include "../core/debug.h"
#include "../core/trace.h"
#include "dma-internal.h"

/* The 2013 ARM allocator's largest order for IOMMU buffers. */
#define LEGACY_MAX_ORDER	4
/* How often a failed iommu_migrate() is retried before it is reported again. */
#define MIGRATE_RETRY_REPORT	1024

static inline struct __iommu_buffer *page_iobuf(const struct iom_page *page)
{
	return (struct __iommu_buffer *)(uintptr_t)page->private;
}

static struct iom_machine *ib_machine(const struct __iommu_buffer *ib)
{
	return iom_device_machine(ib->dev);
}

/* ---- seed 000: migration of a buffer page ------------------------------- */

/*
 * One page's migration across every domain that maps it: the owner's and
 * those of the devices it is shared with. Level k migrates domain k and
 * calls level k + 1 from its copy callback, so the copy runs while every
 * domain keeps its devices off the page.
 */
/*
 * Batched migration (PER_PAGE mode inside one MM batch): the pages of a
 * batch that belong to one domain are blocked together when the MM says
 * the batch is prepared (one wait), each is copied and switched when the
 * MM moves it, and one invalidation opens them all when the batch ends.
 */
#define DMA_BATCH_GROUPS	8

struct dma_batch_group {
	struct iom_iommu_domain *domain;
	struct iom_iommu_migrate_batch *iob;	/* NULL: each page alone */
	unsigned int nr, cap;
	struct iom_iommu_migrate_range *r;
	struct dma_vmap_page **vp;
};

struct dma_batch {
	unsigned int nr;
	struct dma_batch_group g[DMA_BATCH_GROUPS];
};

struct page_migration {
	struct iom_machine *m;
	struct dma_batch_group *bgroup;	/* the owner's domain is blocked by it */
	unsigned int bidx;
	struct iom_page *to, *from;
	size_t size;			/* the page's bytes (compound: all) */
	unsigned int nr;		/* domains */
	unsigned int level;
	enum iom_iommu_migrate_mode mode;
	bool seed;			/* iommu_migrate(), the seed's call */
	struct {
		struct iom_iommu_domain *domain;
		unsigned long iova;
	} t[1 + IOM_DMA_MAX_SHARES];
};

/*
 * __iommu_cb(): sync the source for the CPU, copy, flush the destination
 * for the device. The simulated machine is cache-coherent: only the copy.
 */
static void page_copy(struct page_migration *pm, size_t off, size_t len)
{
	memcpy((char *)iom_page_address(pm->m, pm->to) + off,
	       (const char *)iom_page_address(pm->m, pm->from) + off, len);
}

static void migrate_level(struct page_migration *pm);
static void migrate_level_alone(struct page_migration *pm, unsigned int k);

static void __iommu_cb(void *cookie)
{
	struct page_migration *pm = cookie;

	if (pm->level < pm->nr)
		migrate_level(pm);
	else
		page_copy(pm, 0, pm->size);
}

/* The same for iommu_migrate_ranges(): range 0 is the page. */
static void __iommu_copy_range(void *priv, unsigned int idx, size_t off, size_t len)
{
	struct page_migration *pm = priv;

	(void)idx;
	if (pm->level < pm->nr)
		migrate_level(pm);	/* nested: blocking modes only */
	else
		page_copy(pm, off, len);
}

/*
 * Migrate domain pm->level: the owner's through the MM batch's blocked
 * ranges when the page is in one, else on its own.
 */
static void migrate_level(struct page_migration *pm)
{
	unsigned int k = pm->level++;

	if (k == 0 && pm->bgroup) {
		/* blocked since the batch was prepared: copy (or go on), switch */
		__iommu_cb(pm);
		iom_iommu_migrate_batch_switch(pm->bgroup->iob, pm->bidx);
		pm->level = k;
		return;
	}
	migrate_level_alone(pm, k);
}

/*
 * Migrate domain @k on its own. The IOMMU step can fail for lack of memory
 * for a page table (the table the unmap emptied is normally kept as a
 * spare); the old translation is then back in place, and the MM cannot
 * undo the move of the mapping any more: retry until it succeeds,
 * reporting it. Any other error means nothing is mapped there (the IOVA
 * was unmapped behind the DMA API's back): no device can reach the page
 * through it, go on as if it had worked.
 */
static void migrate_level_alone(struct page_migration *pm, unsigned int k)
{
	struct iom_iommu_migrate_range r = {
		.iova = pm->t[k].iova,
		.paddr = iom_page_to_phys(pm->m, pm->to),
		.size = pm->size,
	};
	unsigned long tries = 0;
	int ret;

	for (;;) {
		if (pm->seed)
			ret = iom_iommu_migrate(pm->t[k].domain, r.iova, r.paddr, r.size,
						__iommu_cb, pm);
		else
			ret = iom_iommu_migrate_ranges(pm->t[k].domain, &r, 1, pm->mode,
						       __iommu_copy_range, pm, NULL);
		if (!ret)
			break;
		if (ret != -ENOMEM) {
			iom_warn(pm->m, "dma-iommu: iova %#lx of a live buffer is not mapped (%d)",
				 r.iova, ret);
			pm->level = k + 1;
			__iommu_cb(pm);
			break;
		}
		if (tries++ % MIGRATE_RETRY_REPORT == 0)
			iom_warn(pm->m, "dma-iommu: iommu_migrate of iova %#lx failed (%d), retrying",
				 r.iova, ret);
		pm->level = k + 1;
		sched_yield();
	}
	pm->level = k;
}

/*
 * __iommu_migratepagecopy(): move every device's translation of the page
 * at @to->index (all of it: a compound page moves whole, to a compound
 * page of its order) from @from to @to, copying under the IOMMU's protection in
 * the buffer's mode, then swap the buffer's reference. Both pages are
 * locked by the MM; @to already holds @from's place in the IOMAP, and has
 * its ->private (the buffer).
 */
static void __iommu_migratepagecopy(struct iom_iomap *iomap, struct iom_page *to,
				    struct iom_page *from)
{
	struct __iommu_buffer *ib = page_iobuf(to);
	struct iom_machine *m = ib_machine(ib);
	unsigned long index = to->index - ib->index_base;
	unsigned long n = 1UL << iom_compound_order(to);
	struct dma_vmap_page *vp = &ib->vmap[index];
	struct page_migration pm = {
		.m = m, .to = to, .from = from, .size = n << IOM_PAGE_SHIFT,
	};

	(void)iomap;
	iom_trace(m, IOM_TRACE_DMA_MIGRATEPAGECOPY, 'B', iom_page_to_pfn(m, from), iom_page_to_pfn(m, to), n << IOM_PAGE_SHIFT, 0);
	/* the CPU view's migration entries: new accesses wait, old ones finish */
	for (unsigned long j = 0; j < n; j++)
		atomic_store(&vp[j].migrating, 1);
	for (unsigned long j = 0; j < n; j++)
		while (atomic_load(&vp[j].inflight))
			sched_yield();

	/* a page of a prepared MM batch: the batch blocks its range */
	if (vp->bgroup && vp->bgroup->iob) {
		pm.bgroup = vp->bgroup;
		pm.bidx = vp->bidx;
	}
	vp->bgroup = NULL;
	pthread_rwlock_rdlock(&ib->share_lock);
	pm.t[0].domain = ib->domain;
	pm.t[0].iova = ib->dma_addr + (index << IOM_PAGE_SHIFT);
	for (unsigned int i = 0; i < ib->nr_shares; i++) {
		pm.t[1 + i].domain = ib->shares[i].domain;
		pm.t[1 + i].iova = ib->shares[i].dma_addr + (index << IOM_PAGE_SHIFT);
	}
	pm.nr = 1 + ib->nr_shares;
	switch (ib->migrate_mode) {
	case IOM_DMA_MIGRATE_PER_PAGE:
		pm.mode = IOM_IOMMU_MIGRATE_PER_PAGE;
		break;
	case IOM_DMA_MIGRATE_NONBLOCK:
		/* the dirty re-copy loop is per domain: nested, a page blocks */
		pm.mode = pm.nr > 1 ? IOM_IOMMU_MIGRATE_PER_PAGE : IOM_IOMMU_MIGRATE_NONBLOCK;
		break;
	default:	/* SEED, LAYERED (the owner's domain is blocked already) */
		pm.seed = true;
		break;
	}
	migrate_level(&pm);
	iom_get_page(m, to);
	for (unsigned long j = 0; j < n; j++)
		ib->pages[index + j] = to + j;
	pthread_rwlock_unlock(&ib->share_lock);
	for (unsigned long j = 0; j < n; j++)
		atomic_store(&vp[j].migrating, 0);	/* remove_migration_ptes() */
	iom_put_page(m, from);
	iom_trace(m, IOM_TRACE_DMA_MIGRATEPAGECOPY, 'E', iom_page_to_pfn(m, from), iom_page_to_pfn(m, to), n << IOM_PAGE_SHIFT, pm.nr);
}

/*
 * seed 000's TODO "fix layering": in the layered mode the owner's domain
 * is blocked around migrate_page(); other modes block nothing here.
 */
static int __iommu_migrate_begin(struct iom_iomap *iomap, struct iom_page *page)
{
	struct __iommu_buffer *ib = page_iobuf(page);

	(void)iomap;
	if (ib->migrate_mode != IOM_DMA_MIGRATE_LAYERED)
		return 0;
	return iom_iommu_block(ib->domain);
}

static void __iommu_migrate_end(struct iom_iomap *iomap, struct iom_page *newpage,
				struct iom_page *page, int rc)
{
	/* migrate_page() moved ->private (the buffer) to @newpage if it worked */
	struct __iommu_buffer *ib = page_iobuf(rc ? page : newpage);

	(void)iomap;
	if (ib->migrate_mode == IOM_DMA_MIGRATE_LAYERED)
		iom_iommu_unblock(ib->domain);
}

/* ---- batched migration ------------------------------------------------- */

static void *dma_batch_make(void *arg)
{
	(void)arg;
	return calloc(1, sizeof(struct dma_batch));
}

/* The MM's batch is prepared: block each domain's pages at once. */
static void dma_batch_prepared(void *priv)
{
	struct dma_batch *b = priv;

	for (unsigned int i = 0; i < b->nr; i++) {
		struct dma_batch_group *g = &b->g[i];

		if (iom_iommu_migrate_batch_begin(g->domain, g->r, g->nr, &g->iob)) {
			g->iob = NULL;	/* each page migrates alone */
			for (unsigned int j = 0; j < g->nr; j++)
				g->vp[j]->bgroup = NULL;
		}
	}
}

/* Every page moved or given up (those still locked): one invalidation. */
static void dma_batch_end(void *priv)
{
	struct dma_batch *b = priv;

	for (unsigned int i = 0; i < b->nr; i++) {
		struct dma_batch_group *g = &b->g[i];

		for (unsigned int j = 0; j < g->nr; j++)
			g->vp[j]->bgroup = NULL;	/* pages not moved */
		iom_iommu_migrate_batch_end(g->iob);
		free(g->r);
		free(g->vp);
	}
	free(b);
}

static const struct iom_migrate_batch_ops dma_batch_ops = {
	.prepared = dma_batch_prepared,
	.end = dma_batch_end,
};

/*
 * a_ops->migrate_batch_add through IOMAP: a page in PER_PAGE mode joins
 * its domain's group; the other modes keep their own protocol per page.
 */
static void __iommu_migrate_batch_add(struct iom_iomap *iomap, struct iom_page *newpage,
				      struct iom_page *page, struct iom_migrate_batch *batch)
{
	struct __iommu_buffer *ib = page_iobuf(page);
	unsigned long index;
	struct dma_batch *b;
	struct dma_batch_group *g = NULL;

	(void)iomap;
	if (!ib || ib->migrate_mode != IOM_DMA_MIGRATE_PER_PAGE)
		return;
	b = iom_migrate_batch_client(batch, &dma_batch_ops, dma_batch_make, NULL);
	if (!b)
		return;
	for (unsigned int i = 0; i < b->nr && !g; i++)
		if (b->g[i].domain == ib->domain)
			g = &b->g[i];
	if (!g) {
		if (b->nr == DMA_BATCH_GROUPS)
			return;
		g = &b->g[b->nr++];
		g->domain = ib->domain;
	}
	if (g->nr == g->cap) {
		unsigned int cap = g->cap ? 2 * g->cap : 64;
		struct iom_iommu_migrate_range *r = realloc(g->r, cap * sizeof(*r));
		struct dma_vmap_page **vp;

		if (!r)
			return;
		g->r = r;
		vp = realloc(g->vp, cap * sizeof(*vp));
		if (!vp)
			return;
		g->vp = vp;
		g->cap = cap;
	}
	index = page->index - ib->index_base;
	g->r[g->nr] = (struct iom_iommu_migrate_range){
		.iova = ib->dma_addr + (index << IOM_PAGE_SHIFT),
		.paddr = iom_page_to_phys(ib_machine(ib), newpage),
		.size = IOM_PAGE_SIZE << iom_compound_order(page),
	};
	g->vp[g->nr] = &ib->vmap[index];
	ib->vmap[index].bgroup = g;
	ib->vmap[index].bidx = g->nr++;
}

static const struct iom_iomap_client_ops iommu_iomap_cops = {
	.migratepagecopy = __iommu_migratepagecopy,
	.migrate_begin = __iommu_migrate_begin,
	.migrate_end = __iommu_migrate_end,
	.migrate_batch_add = __iommu_migrate_batch_add,
};

/* ---- the per-domain IOMAP ----------------------------------------------- */

static void *dma_domain_state_make(struct iom_iommu_domain *domain)
{
	struct dma_domain_state *ds = calloc(1, sizeof(*ds));

	if (!ds)
		return NULL;
	ds->domain = domain;
	if (iom_iomap_create(iom_iommu_domain_machine(domain), &ds->iomap, &iommu_iomap_cops)) {
		free(ds);
		return NULL;
	}
	return ds;
}

/* At iom_iommu_domain_free(): refuse while buffers' pages are in it. */
static int dma_domain_state_release(void *p)
{
	struct dma_domain_state *ds = p;
	long nr = atomic_load(&ds->nr_buffers);
	int ret;

	if (nr) {
		iom_warn(iom_iommu_domain_machine(ds->domain),
			 "dma: domain %u freed with %ld coherent buffers mapped",
			 iom_iommu_domain_id(ds->domain), nr);
		return -EBUSY;
	}
	ret = iom_iomap_release(&ds->iomap);
	if (ret)
		return ret;
	free(ds);
	return 0;
}

/* ---- coherent buffers --------------------------------------------------- */

/* The device's DMA domain: attached, and not one the owner maps by hand. */
static struct iom_iommu_domain *dma_domain(struct iom_device *dev)
{
	struct iom_iommu_domain *d = iom_iommu_get_domain_for_dev(dev);

	if (!d || iom_iommu_domain_type(d) == IOM_IOMMU_DOMAIN_UNMANAGED)
		return NULL;
	return d;
}


static bool dev_uses_legacy(struct dma_dev_state *st)
{
	int mode = atomic_load(&st->alloc_mode);

	if (mode == IOM_DMA_ALLOC_DEFAULT) {
		struct iom_machine_config cfg;

		iom_machine_get_config(st->m, &cfg);
		return cfg.dma_legacy;
	}
	return mode == IOM_DMA_ALLOC_LEGACY;
}

/* Free whatever pages[] holds (legacy blocks by their head). */
static void free_buffer_pages(struct __iommu_buffer *ib)
{
	struct iom_machine *m = ib_machine(ib);

	for (unsigned long i = 0; i < ib->nr_pages; i++) {
		struct iom_page *page = ib->pages[i];

		/* a block once, by its head (freeing it unmakes its tails) */
		if (!page || ib->sub[i])
			continue;
		iom___free_pages(m, page, iom_compound_order(page));
	}
}

/*
 * Blocks of @max_order down to 0, the big ones without retrying hard
 * (__GFP_NORETRY): the 2013 __iommu_alloc_buffer() (unmovable, order 4)
 * and seed 000's higher-order movable pages alike. pages[] gets every
 * 4 KiB page, sub[] each one's place in its block.
 */
static int alloc_blocks(struct __iommu_buffer *ib, iom_gfp_t gfp, unsigned int max_order)
{
	struct iom_machine *m = ib_machine(ib);
	unsigned long i = 0;

	while (i < ib->nr_pages) {
		unsigned long left = ib->nr_pages - i;
		unsigned int order = 63U - (unsigned int)__builtin_clzl(left);
		struct iom_page *page = NULL;

		if (order > max_order)
			order = max_order;
		for (;; order--) {
			iom_gfp_t g = gfp | IOM___GFP_ZERO;

			if (order)
				g |= IOM___GFP_NORETRY | IOM___GFP_NOWARN | IOM___GFP_COMP;
			page = iom_alloc_pages(m, g, order);
			if (page || !order)
				break;
		}
		if (!page)
			return -ENOMEM;
		if (order)
			ib->compound = true;
		for (unsigned long j = 0; j < (1UL << order); j++) {
			ib->pages[i + j] = page + j;
			ib->sub[i + j] = (uint16_t)j;
		}
		i += 1UL << order;
	}
	return 0;
}

static int alloc_legacy_pages(struct __iommu_buffer *ib, iom_gfp_t gfp)
{
	gfp &= ~(iom_gfp_t)(IOM___GFP_MOVABLE | IOM___GFP_HIGHMEM | IOM___GFP_RECLAIMABLE);
	return alloc_blocks(ib, gfp, LEGACY_MAX_ORDER);
}

/* seed 000: movable pages, order 0 unless the device asked for more. */
static int alloc_movable_pages(struct __iommu_buffer *ib, iom_gfp_t gfp, unsigned int order)
{
	gfp &= ~(iom_gfp_t)(IOM___GFP_RECLAIMABLE | IOM___GFP_DMA | IOM___GFP_DMA32);
	gfp |= IOM___GFP_MOVABLE | IOM___GFP_HIGHMEM;
	return alloc_blocks(ib, gfp, order);
}

/*
 * Map the pages at the buffer's IOVA, each block with one call: a block
 * entry never spans two pages that migrate separately.
 */
static int map_buffer(struct __iommu_buffer *ib)
{
	struct iom_machine *m = ib_machine(ib);
	unsigned long i = 0;
	int ret;

	while (i < ib->nr_pages) {
		unsigned long n = 1UL << iom_compound_order(ib->pages[i]);

		ret = iom_iommu_map(ib->domain, ib->dma_addr + ((uint64_t)i << IOM_PAGE_SHIFT),
				    iom_page_to_phys(m, ib->pages[i]), n << IOM_PAGE_SHIFT,
				    IOM_IOMMU_READ | IOM_IOMMU_WRITE);
		if (ret) {
			if (i)
				iom_iommu_unmap(ib->domain, ib->dma_addr,
						(size_t)i << IOM_PAGE_SHIFT);
			return ret;
		}
		i += n;
	}
	return 0;
}

static struct dma_domain_state *domain_state(struct iom_iommu_domain *domain)
{
	return iom_iommu_domain_dma_state(domain, dma_domain_state_make,
					  dma_domain_state_release);
}

/*
 * Take the pages out of their IOMAP, each under its lock (a migration in
 * progress finishes first, and the page then found is the current one):
 * none can move after this. pages[] then holds the pages, each with the
 * DMA layer's reference.
 */
static void buffer_remove_pages(struct __iommu_buffer *ib, unsigned long nr)
{
	for (unsigned long i = 0; i < nr; i++) {
		struct iom_page *page = NULL;

		if (ib->sub[i])
			continue;	/* a compound page is in at its first index */
		if (!iom_iomap_remove_page(ib->iomapp, ib->index_base + i, &page)) {
			for (unsigned long j = 0; j < (1UL << iom_compound_order(page)); j++)
				ib->pages[i + j] = page + j;
			page->private = 0;
		}
	}
	if (ib->iomapp == &ib->iomap)
		iom_iomap_release(&ib->iomap);
}

/*
 * Insert the mapped pages into the buffer's IOMAP (its own, or the
 * domain's at the IOVA's index): from then on the MM may migrate them.
 */
static int buffer_insert_pages(struct __iommu_buffer *ib, struct dma_dev_state *st)
{
	struct iom_machine *m = st->m;
	int ret;

	if (atomic_load(&st->iomap_scope) == IOM_DMA_IOMAP_PER_DOMAIN) {
		struct dma_domain_state *ds = domain_state(ib->domain);

		if (!ds)
			return -ENOMEM;
		ib->iomapp = &ds->iomap;
		ib->index_base = (unsigned long)(ib->dma_addr >> IOM_PAGE_SHIFT);
	} else {
		ret = iom_iomap_create(m, &ib->iomap, &iommu_iomap_cops);
		if (ret)
			return ret;
		ib->iomapp = &ib->iomap;
		ib->index_base = 0;
	}
	for (unsigned long i = 0; i < ib->nr_pages; i++) {
		if (ib->sub[i])
			continue;
		ib->pages[i]->private = (unsigned long)(uintptr_t)ib;
		ret = iom_iomap_insert_page(ib->iomapp, ib->pages[i], ib->index_base + i);
		if (ret) {
			ib->pages[i]->private = 0;
			buffer_remove_pages(ib, i);
			return ret;
		}
	}
	return 0;
}

struct __iommu_buffer *iommu_dma_alloc(struct iom_device *dev, size_t size,
				       iom_dma_addr_t *handle, iom_gfp_t gfp,
				       unsigned long attrs, int *err)
{
	struct dma_dev_state *st = dma_dev_state(dev);
	struct iom_iommu_domain *domain;
	struct dma_domain_state *ds;
	struct __iommu_buffer *ib;
	unsigned long iova, nr;
	int ret;

	if (!st) {
		*err = -ENOMEM;
		return NULL;
	}
	domain = dma_domain(dev);
	if (!domain) {
		*err = -ENODEV;
		return NULL;
	}
	ds = domain_state(domain);
	nr = (unsigned long)((size + IOM_PAGE_SIZE - 1) >> IOM_PAGE_SHIFT);
	ib = ds ? calloc(1, sizeof(*ib) + nr * sizeof(ib->pages[0])) : NULL;
	if (!ib) {
		*err = -ENOMEM;
		return NULL;
	}
	atomic_fetch_add(&ds->nr_buffers, 1);	/* the domain stays */
	ib->dev = dev;
	ib->domain = domain;
	ib->nr_pages = nr;
	ib->size = (size_t)nr << IOM_PAGE_SHIFT;
	ib->attrs = attrs;
	ib->legacy = dev_uses_legacy(st);
	ib->migrate_mode = (enum iom_dma_migrate_mode)atomic_load(&st->migrate_mode);
	pthread_rwlock_init(&ib->share_lock, NULL);
	ib->sub = calloc(nr, sizeof(*ib->sub));
	if (!ib->legacy)
		ib->vmap = calloc(nr, sizeof(*ib->vmap));
	if (!ib->sub || (!ib->legacy && !ib->vmap)) {
		ret = -ENOMEM;
		goto fail_pages;
	}

	ret = ib->legacy ? alloc_legacy_pages(ib, gfp) :
	      alloc_movable_pages(ib, gfp, atomic_load(&st->page_order));
	if (ret)
		goto fail_pages;
	ret = iom_iommu_dma_alloc_iova(domain, ib->size, atomic_load(&st->coherent_dma_mask),
				       &iova);
	if (ret)
		goto fail_pages;
	ib->dma_addr = iova;
	ret = map_buffer(ib);
	if (ret)
		goto fail_iova;
	if (!ib->legacy) {
		ret = buffer_insert_pages(ib, st);
		if (ret)
			goto fail_map;
	}
	*handle = ib->dma_addr;
	return ib;

fail_map:
	iom_iommu_dma_unmap(domain, ib->dma_addr, ib->size);
	goto fail_pages;
fail_iova:
	iom_iommu_dma_free_iova(domain, ib->dma_addr, ib->size);
fail_pages:
	free_buffer_pages(ib);
	pthread_rwlock_destroy(&ib->share_lock);
	free(ib->vmap);
	free(ib->sub);
	free(ib);
	atomic_fetch_sub(&ds->nr_buffers, 1);
	*err = ret;
	return NULL;
}

void iommu_dma_free(struct __iommu_buffer *ib)
{
	struct iom_machine *m = ib_machine(ib);

	if (!ib->legacy)
		buffer_remove_pages(ib, ib->nr_pages);
	/* devices lose the buffer: strict invalidation, or the flush queue */
	iom_iommu_dma_unmap(ib->domain, ib->dma_addr, ib->size);
	if (ib->legacy) {
		free_buffer_pages(ib);
	} else {
		for (unsigned long i = 0; i < ib->nr_pages; i++)
			if (!ib->sub[i])
				iom_put_page(m, ib->pages[i]);	/* the DMA layer's reference */
	}
	atomic_fetch_sub(&domain_state(ib->domain)->nr_buffers, 1);
	pthread_rwlock_destroy(&ib->share_lock);
	free(ib->vmap);
	free(ib->sub);
	free(ib);
}

bool iommu_dma_buffer_mapped(struct __iommu_buffer *ib)
{
	if (ib->legacy)
		return false;
	return iom_mapping_mapped(&ib->iomapp->mapping, ib->index_base,
				  ib->index_base + ib->nr_pages - 1);
}

/*
 * Map the buffer into @other's domain: under the share lock's write side,
 * which no migration's IOMMU step runs alongside, so pages[] is stable and
 * every later migration sees the share.
 */
int iommu_dma_attach(struct __iommu_buffer *ib, struct iom_device *other,
		     iom_dma_addr_t *handle)
{
	struct dma_dev_state *ost = dma_dev_state(other);
	struct iom_iommu_domain *d = dma_domain(other);
	struct iom_machine *m = ib_machine(ib);
	struct dma_domain_state *ds;
	unsigned long iova, i;
	int ret = 0;

	if (!ost)
		return -ENOMEM;
	if (!d)
		return -ENODEV;
	ds = domain_state(d);
	if (!ds)
		return -ENOMEM;
	pthread_rwlock_wrlock(&ib->share_lock);
	for (i = 0; i < ib->nr_shares; i++)
		if (ib->shares[i].dev == other)
			ret = -EINVAL;
	if (other == ib->dev)
		ret = -EINVAL;
	if (!ret && ib->nr_shares == IOM_DMA_MAX_SHARES)
		ret = -ENOSPC;
	if (!ret)
		ret = iom_iommu_dma_alloc_iova(d, ib->size, atomic_load(&ost->coherent_dma_mask),
					       &iova);
	for (i = 0; !ret && i < ib->nr_pages; i++) {
		ret = iom_iommu_map(d, iova + (i << IOM_PAGE_SHIFT),
				    iom_page_to_phys(m, ib->pages[i]), IOM_PAGE_SIZE,
				    IOM_IOMMU_READ | IOM_IOMMU_WRITE);
		if (ret) {
			if (i)
				iom_iommu_unmap(d, iova, i << IOM_PAGE_SHIFT);
			iom_iommu_dma_free_iova(d, iova, ib->size);
		}
	}
	if (!ret) {
		ib->shares[ib->nr_shares++] = (struct dma_share){
			.dev = other, .domain = d, .dma_addr = iova,
		};
		atomic_fetch_add(&ds->nr_buffers, 1);
		*handle = iova;
	}
	pthread_rwlock_unlock(&ib->share_lock);
	return ret;
}

int iommu_dma_detach(struct __iommu_buffer *ib, struct iom_device *other,
		     iom_dma_addr_t handle)
{
	int ret = -EINVAL;

	pthread_rwlock_wrlock(&ib->share_lock);
	for (unsigned int i = 0; i < ib->nr_shares; i++) {
		struct dma_share *sh = &ib->shares[i];

		if (sh->dev != other || sh->dma_addr != handle)
			continue;
		ret = iom_iommu_dma_unmap(sh->domain, (unsigned long)sh->dma_addr, ib->size);
		if (!ret) {
			atomic_fetch_sub(&domain_state(sh->domain)->nr_buffers, 1);
			ib->shares[i] = ib->shares[--ib->nr_shares];
		}
		break;
	}
	pthread_rwlock_unlock(&ib->share_lock);
	return ret;
}

/*
 * The CPU view: an access is in flight on its page while it copies, and
 * waits while the page migrates (see struct dma_vmap_page).
 */
int iommu_dma_vmap_rw(struct __iommu_buffer *ib, size_t offset, void *buf,
		      size_t len, bool write)
{
	struct iom_machine *m = ib_machine(ib);
	char *p = buf;

	while (len) {
		unsigned long idx = (unsigned long)(offset >> IOM_PAGE_SHIFT);
		size_t off = offset & (IOM_PAGE_SIZE - 1);
		size_t n = IOM_PAGE_SIZE - off < len ? IOM_PAGE_SIZE - off : len;
		struct dma_vmap_page *vp = ib->legacy ? NULL : &ib->vmap[idx];
		char *va;

		if (vp) {
			for (;;) {
				atomic_fetch_add(&vp->inflight, 1);
				if (!atomic_load(&vp->migrating))
					break;
				atomic_fetch_sub(&vp->inflight, 1);
				while (atomic_load(&vp->migrating))
					sched_yield();	/* migration_entry_wait() */
			}
		}
		va = (char *)iom_page_address(m, ib->pages[idx]) + off;
		if (write)
			memcpy(va, p, n);
		else
			memcpy(p, va, n);
		if (vp)
			atomic_fetch_sub_explicit(&vp->inflight, 1, memory_order_release);
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

/* ---- streaming mappings ------------------------------------------------- */

/* dma_info_to_prot() */
static int dma_info_to_prot(enum iom_dma_data_direction dir)
{
	switch (dir) {
	case IOM_DMA_BIDIRECTIONAL:
		return IOM_IOMMU_READ | IOM_IOMMU_WRITE;
	case IOM_DMA_TO_DEVICE:
		return IOM_IOMMU_READ;
	case IOM_DMA_FROM_DEVICE:
		return IOM_IOMMU_WRITE;
	default:
		return 0;
	}
}

iom_dma_addr_t iommu_dma_map_page(struct iom_device *dev, struct iom_page *page,
				  size_t offset, size_t size,
				  enum iom_dma_data_direction dir, unsigned long attrs)
{
	struct dma_dev_state *st = dma_dev_state(dev);
	struct iom_iommu_domain *d = dma_domain(dev);
	unsigned long iova;

	(void)attrs;
	if (!st || !d)
		return IOM_DMA_MAPPING_ERROR;
	if (iom_iommu_dma_map(d, iom_page_to_phys(st->m, page) + offset, size,
			      dma_info_to_prot(dir), atomic_load(&st->dma_mask), &iova))
		return IOM_DMA_MAPPING_ERROR;
	return iova;
}

/*
 * The IOVA allocator rounds ranges below 2^(IOM_IOVA_RANGE_CACHE_MAX_SIZE
 * - 1) pages up to a power of two, so iom_iommu_dma_unmap() takes 4 pages
 * for a 3-page mapping, and 3 for a 4-page one, which would leave a page
 * mapped in a freed IOVA range. The page table tells them apart: the
 * range's last page is mapped, and the next one, inside the rounded
 * range, is not.
 */
static bool unmap_size_matches(struct iom_device *dev, struct iom_iommu_domain *d,
			       iom_dma_addr_t addr, size_t size)
{
	struct iom_io_pgtable_ops *ops = iom_iommu_domain_pgtable(d);
	struct iom_io_pgtable_walk_data w;
	uint64_t start = addr & ~(uint64_t)(IOM_PAGE_SIZE - 1);
	uint64_t pages;

	if (size <= (SIZE_MAX >> 1)) {
		pages = (addr - start + size + IOM_PAGE_SIZE - 1) >> IOM_PAGE_SHIFT;
		if (!iom_io_pgtable_walk(ops, (unsigned long)(start + ((pages - 1) << IOM_PAGE_SHIFT)),
					 &w) &&
		    (pages >= (1UL << (IOM_IOVA_RANGE_CACHE_MAX_SIZE - 1)) || !(pages & (pages - 1)) ||
		     iom_io_pgtable_walk(ops, (unsigned long)(start + (pages << IOM_PAGE_SHIFT)), &w)))
			return true;
	}
	iom_warn(iom_device_machine(dev), "dma: %s: unmap of iova %#llx size %#zx: "
		 "no mapping of that size there", iom_dev_name(dev),
		 (unsigned long long)addr, size);
	return false;
}

int iommu_dma_unmap_page(struct iom_device *dev, iom_dma_addr_t addr, size_t size)
{
	struct iom_iommu_domain *d = dma_domain(dev);

	if (!d)
		return -ENODEV;
	if (!unmap_size_matches(dev, d, addr, size))
		return -EINVAL;
	return iom_iommu_dma_unmap(d, (unsigned long)addr, size);
}

/* Bytes of IOVA an sg entry takes: whole pages around offset + length. */
static size_t sg_iova_len(const struct iom_scatterlist *s)
{
	size_t off = s->offset & (IOM_PAGE_SIZE - 1);

	return (off + s->length + IOM_PAGE_SIZE - 1) & ~(IOM_PAGE_SIZE - 1);
}

int iommu_dma_map_sg(struct iom_device *dev, struct iom_scatterlist *sg, int nents,
		     enum iom_dma_data_direction dir, unsigned long attrs)
{
	struct dma_dev_state *st = dma_dev_state(dev);
	struct iom_iommu_domain *d = dma_domain(dev);
	unsigned long iova;
	size_t total = 0, pos = 0;
	int prot = dma_info_to_prot(dir);

	(void)attrs;
	if (!st || !d)
		return 0;
	for (int i = 0; i < nents; i++)
		total += sg_iova_len(&sg[i]);
	if (iom_iommu_dma_alloc_iova(d, total, atomic_load(&st->dma_mask), &iova))
		return 0;
	for (int i = 0; i < nents; i++) {
		struct iom_scatterlist *s = &sg[i];
		size_t len = sg_iova_len(s);
		uint64_t pa = iom_page_to_phys(st->m, s->page) +
			      (s->offset & ~(IOM_PAGE_SIZE - 1));

		if (iom_iommu_map(d, iova + pos, pa, len, prot)) {
			if (pos)
				iom_iommu_unmap(d, iova, pos);
			iom_iommu_dma_free_iova(d, iova, total);
			return 0;
		}
		s->dma_address = iova + pos + (s->offset & (IOM_PAGE_SIZE - 1));
		s->dma_length = s->length;
		pos += len;
	}
	return nents;
}

int iommu_dma_unmap_sg(struct iom_device *dev, struct iom_scatterlist *sg, int nents)
{
	struct iom_iommu_domain *d = dma_domain(dev);
	size_t total = 0;

	if (!d)
		return -ENODEV;
	for (int i = 0; i < nents; i++)
		total += sg_iova_len(&sg[i]);
	if (!unmap_size_matches(dev, d, sg[0].dma_address & ~(IOM_PAGE_SIZE - 1), total))
		return -EINVAL;
	return iom_iommu_dma_unmap(d, (unsigned long)(sg[0].dma_address & ~(IOM_PAGE_SIZE - 1)),
				   total);
}
