/* SPDX-License-Identifier: MIT */
/*
 * The machine: configuration, the physical arena, mem_map and metadata
 * accounting. This is libiommig's "boot": it plays the part of
 * init/main.c's mm_core_init() and memblock in the kernel. Memory is one
 * mmap(MAP_NORESERVE) arena, so a 64 GiB machine costs only the pages
 * that are touched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <iommig/rcu.h>

#include "debug.h"
#include "machine.h"
#include "../mm/internal.h"

#ifndef IOMMIG_VERSION_STRING
#define IOMMIG_VERSION_STRING "0.0.0"
#endif

const char *iom_version_string(void)
{
	return IOMMIG_VERSION_STRING;
}

/* ---- metadata allocations ----------------------------------------------- */

/*
 * Large zeroed allocations (mem_map) come straight from mmap, so their
 * pages are backed only when touched, whatever the C library or a
 * sanitizer does with calloc.
 */
#define DEFAULT_MMAP_THRESHOLD	(1UL << 20)

static void *default_alloc(void *priv, size_t size, size_t align, bool zero)
{
	void *p;

	if (zero && size >= DEFAULT_MMAP_THRESHOLD && align <= 4096) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}

	if (align <= 16)
		return zero ? calloc(1, size) : malloc(size);
	if (posix_memalign(&p, align, size))
		return NULL;
	if (zero)
		memset(p, 0, size);
	return p;
}

static void default_free(void *priv, void *ptr, size_t size)
{
	if (size >= DEFAULT_MMAP_THRESHOLD && ((uintptr_t)ptr & 4095) == 0) {
		/* only mmap hands out page-aligned blocks of this size here */
		munmap(ptr, size);
		return;
	}
	free(ptr);
}

void *iom_meta_alloc(struct iom_machine *m, size_t size, size_t align,
		     bool zero)
{
	void *p = m->cfg.mem_ops.alloc(m->cfg.mem_ops.priv, size, align, zero);
	unsigned long now, peak;

	if (!p)
		return NULL;
	now = atomic_fetch_add(&m->metadata_bytes, size) + size;
	peak = atomic_load(&m->metadata_peak);
	while (now > peak &&
	       !atomic_compare_exchange_weak(&m->metadata_peak, &peak, now))
		;
	return p;
}

void iom_meta_free(struct iom_machine *m, void *ptr, size_t size)
{
	if (!ptr)
		return;
	atomic_fetch_sub(&m->metadata_bytes, size);
	m->cfg.mem_ops.free(m->cfg.mem_ops.priv, ptr, size);
}

/* ---- configuration ------------------------------------------------------ */

void iom_machine_config_init(struct iom_machine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = 1ULL << 30;
	cfg->nr_nodes = 1;
	cfg->pageblock_order = 9;
	cfg->max_order = 10;
	cfg->compaction_proactiveness = 20;
}

/*
 * Resolve defaults into @cfg and check it. The machine is not built yet, so
 * messages go straight to the config's log hook.
 */
static int resolve_config(struct iom_machine *m, struct iom_machine_config *c)
{
	uint64_t block, node_size;
	unsigned int i;

#define BAD(...) do { iom_warn(m, "iom_machine_create: " __VA_ARGS__); \
		      return -EINVAL; } while (0)
	if (!c->mem_size)
		c->mem_size = 1ULL << 30;
	if (!c->nr_nodes)
		c->nr_nodes = 1;
	if (!c->max_order)
		c->max_order = 10;
	if (c->max_order > IOM_MAX_ORDER_LIMIT)
		BAD("max_order %u > %u", c->max_order, IOM_MAX_ORDER_LIMIT);
	if (!c->pageblock_order)
		c->pageblock_order = c->max_order < 9 ? c->max_order : 9;
	if (c->pageblock_order > c->max_order)
		BAD("pageblock_order %u > max_order %u", c->pageblock_order,
		    c->max_order);
	if (c->nr_nodes > IOM_MAX_NUMNODES)
		BAD("nr_nodes %u > %d", c->nr_nodes, IOM_MAX_NUMNODES);
	block = (uint64_t)IOM_PAGE_SIZE << c->max_order;
	if (c->mem_size % ((uint64_t)c->nr_nodes * block))
		BAD("mem_size %llu is not a multiple of nr_nodes (%u) x the MAX_ORDER block (%llu bytes)",
		    (unsigned long long)c->mem_size, c->nr_nodes,
		    (unsigned long long)block);
	if (c->mem_size >> IOM_PAGE_SHIFT > (1ULL << 40))
		BAD("mem_size too large");
	node_size = c->mem_size / c->nr_nodes;
	if (c->movable_size % ((uint64_t)c->nr_nodes * block))
		BAD("movable_size %llu is not a multiple of nr_nodes x the MAX_ORDER block",
		    (unsigned long long)c->movable_size);
	if (c->movable_size / c->nr_nodes >= node_size)
		BAD("movable_size leaves no ZONE_NORMAL");
	if (c->phys_base % block)
		BAD("phys_base %#llx is not aligned to the MAX_ORDER block",
		    (unsigned long long)c->phys_base);
	if (c->phys_base + c->mem_size < c->phys_base)
		BAD("phys_base + mem_size overflows");
	if (c->nr_cma_areas > IOM_MAX_CMA_AREAS)
		BAD("nr_cma_areas %u > %d", c->nr_cma_areas, IOM_MAX_CMA_AREAS);
	for (i = 0; i < c->nr_cma_areas; i++) {
		uint64_t pb = (uint64_t)IOM_PAGE_SIZE << c->pageblock_order;

		if (!c->cma[i].size || c->cma[i].size % pb || c->cma[i].base % pb)
			BAD("cma[%u]: base and size must be non-zero multiples of the pageblock (%llu bytes)",
			    i, (unsigned long long)pb);
		if (c->cma[i].nid < 0 || (unsigned int)c->cma[i].nid >= c->nr_nodes)
			BAD("cma[%u]: no node %d", i, c->cma[i].nid);
	}
	if (c->pcp_batch > 1u << 16 || c->pcp_high > 1u << 20)
		BAD("pcp_batch/pcp_high out of range");
	if (c->pcp_high && c->pcp_batch && c->pcp_high < c->pcp_batch)
		BAD("pcp_high %u < pcp_batch %u", c->pcp_high, c->pcp_batch);
	if (!c->compaction_proactiveness)
		c->compaction_proactiveness = 20;
	if (c->compaction_proactiveness < -1 || c->compaction_proactiveness > 100)
		BAD("compaction_proactiveness %d is not in 0..100 (-1 for 0, 0 for the default 20)",
		    c->compaction_proactiveness);
	if (!c->mem_ops.alloc != !c->mem_ops.free)
		BAD("mem_ops needs both alloc and free");
	if (!c->mem_ops.alloc) {
		c->mem_ops.alloc = default_alloc;
		c->mem_ops.free = default_free;
		c->mem_ops.priv = NULL;
	}
#undef BAD
	return 0;
}

int iom_machine_create(const struct iom_machine_config *cfg,
		       struct iom_machine **mp)
{
	struct iom_machine_config c;
	struct iom_machine boot, *m;
	int ret;

	if (!mp)
		return -EINVAL;
	*mp = NULL;
	if (cfg)
		c = *cfg;
	else
		memset(&c, 0, sizeof(c));

	/* A stand-in so config errors reach the caller's log hook. */
	memset(&boot, 0, sizeof(boot));
	boot.cfg = c;
	ret = resolve_config(&boot, &c);
	if (ret)
		return ret;

	m = c.mem_ops.alloc(c.mem_ops.priv, sizeof(*m), 64, true);
	if (!m)
		return -ENOMEM;
	m->cfg = c;
	atomic_store(&m->metadata_bytes, sizeof(*m));
	atomic_store(&m->metadata_peak, sizeof(*m));
	m->pageblock_order = c.pageblock_order;
	m->pageblock_nr_pages = 1u << c.pageblock_order;
	m->max_order = c.max_order;
	m->nr_nodes = c.nr_nodes;
#ifdef IOMMIG_DEBUG
	m->page_poison = c.page_poison >= 0;
#else
	m->page_poison = c.page_poison > 0;
#endif
	m->start_pfn = c.phys_base >> IOM_PAGE_SHIFT;
	m->nr_pages = c.mem_size >> IOM_PAGE_SHIFT;
	m->end_pfn = m->start_pfn + m->nr_pages;
	INIT_LIST_HEAD(&m->pcp_sets);
	IOM_CHECK_PTHREAD(pthread_mutex_init(&m->pcp_sets_lock, NULL));
	IOM_CHECK_PTHREAD(pthread_mutex_init(&m->ext_lock, NULL));

	m->arena_size = c.mem_size;
	m->arena = mmap(NULL, m->arena_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->arena == MAP_FAILED) {
		iom_warn(m, "iom_machine_create: cannot reserve %zu bytes of simulated memory",
			 m->arena_size);
		m->arena = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	m->mem_map_size = m->nr_pages * sizeof(struct iom_page);
	m->mem_map = iom_meta_alloc(m, m->mem_map_size, 64, true);
	m->nr_pageblocks = m->nr_pages >> m->pageblock_order;
	m->pageblocks = iom_meta_alloc(m, m->nr_pageblocks * sizeof(struct pageblock),
				       64, true);
	if (!m->mem_map || !m->pageblocks) {
		ret = -ENOMEM;
		goto fail;
	}
	atomic_store(&m->compaction_proactiveness,
		     c.compaction_proactiveness < 0 ? 0 : c.compaction_proactiveness);
	ret = iom_mm_init(m);
	if (ret)
		goto fail;
	ret = kcompactd_init(m);
	if (ret)
		goto fail;
	*mp = m;
	return 0;
fail:
	iom_machine_destroy(m);
	return ret;
}

void iom_machine_destroy(struct iom_machine *m)
{
	struct iom_mem_ops ops;

	if (!m)
		return;
	/* kcompactd_stop(): no background compaction once teardown starts */
	kcompactd_exit(m);
	for (unsigned int i = 0; i < IOM_MACHINE_EXT_NR; i++) {
		void *priv = atomic_load(&m->ext[i].priv);

		if (priv)
			m->ext[i].release(priv);
	}
	/* Nodes of radix trees freed with call_rcu use the metadata hook. */
	iom_rcu_barrier();
	iom_pcp_detach_all(m);
	iom_mm_exit(m);
	iom_meta_free(m, m->pageblocks, m->nr_pageblocks * sizeof(struct pageblock));
	iom_meta_free(m, m->mem_map, m->mem_map_size);
	if (m->arena)
		munmap(m->arena, m->arena_size);
	pthread_mutex_destroy(&m->pcp_sets_lock);
	pthread_mutex_destroy(&m->ext_lock);
	ops = m->cfg.mem_ops;
	ops.free(ops.priv, m, sizeof(*m));
}

void *iom_machine_ext_get(struct iom_machine *m, unsigned int idx,
			  void *(*make)(struct iom_machine *m),
			  void (*release)(void *priv))
{
	void *priv = atomic_load_explicit(&m->ext[idx].priv, memory_order_acquire);
	void *expected = NULL;

	if (priv)
		return priv;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&m->ext_lock));
	priv = atomic_load(&m->ext[idx].priv);
	if (!priv) {
		priv = make(m);
		if (priv) {
			m->ext[idx].release = release;
			atomic_compare_exchange_strong(&m->ext[idx].priv, &expected, priv);
		}
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&m->ext_lock));
	return priv;
}

void iom_machine_get_config(const struct iom_machine *m,
			    struct iom_machine_config *cfg)
{
	int proactiveness = atomic_load(&((struct iom_machine *)m)->compaction_proactiveness);

	*cfg = m->cfg;
	/* the sysctl may have changed it; same encoding as the input */
	cfg->compaction_proactiveness = proactiveness ? proactiveness : -1;
}

void iom_machine_memcost(const struct iom_machine *m,
			 struct iom_machine_memcost *out)
{
	out->metadata_bytes = atomic_load(&((struct iom_machine *)m)->metadata_bytes);
	out->metadata_peak = atomic_load(&((struct iom_machine *)m)->metadata_peak);
	out->arena_bytes = m->arena_size;
	out->nr_pages = m->nr_pages;
}

unsigned long iom_machine_bug_count(const struct iom_machine *m)
{
	return atomic_load(&((struct iom_machine *)m)->bug_count);
}
