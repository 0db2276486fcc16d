/* SPDX-License-Identifier: MIT */
/*
 * struct iom_machine: the root every simulated object hangs off. Layers
 * above mm keep their state behind opaque pointers set by their own init
 * code, so src/mm never sees their types.
 */
#ifndef IOM_CORE_MACHINE_H
#define IOM_CORE_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>

#include <iommig/machine.h>

#include "../mm/mmzone.h"

/*
 * struct iom_cma: one CMA area (the kernel's struct cma, mm/cma.h). The
 * bitmap has a bit per 2^order_per_bit pages, set while they are
 * allocated (or being allocated) by iom_cma_alloc(). @lock guards the
 * bitmap (the kernel's spinlock, held briefly); @mutex serialises this
 * area's alloc_contig_range() calls (the kernel's global cma_mutex: areas
 * never share a pageblock, so one per area is equivalent).
 */
struct iom_cma {
	unsigned long base_pfn;
	unsigned long count;
	unsigned long *bitmap;
	unsigned int order_per_bit;
	pthread_mutex_t lock;
	pthread_mutex_t mutex;
	struct iom_machine *machine;
	char name[32];
};

/* Slots of struct iom_machine's ext[], one per upper layer. */
enum {
	IOM_MACHINE_EXT_DMA_DEBUG,
	IOM_MACHINE_EXT_PGMAP,		/* mm/memremap.c: device-private ranges */
	IOM_MACHINE_EXT_TRACE,		/* core/trace.c: the trace ring */
	IOM_MACHINE_EXT_NR,
};

struct iom_machine {
	struct iom_machine_config cfg;	/* defaults resolved */
	unsigned int pageblock_order;
	unsigned int pageblock_nr_pages;
	unsigned int max_order;
	unsigned int nr_nodes;
	bool page_poison;

	unsigned long start_pfn;
	unsigned long end_pfn;
	unsigned long nr_pages;
	char *arena;			/* content of start_pfn */
	size_t arena_size;
	struct iom_page *mem_map;	/* page of start_pfn */
	size_t mem_map_size;
	struct pageblock *pageblocks;
	size_t nr_pageblocks;

	struct pglist_data *node_data[IOM_MAX_NUMNODES];
	struct zone *zone_table[IOM_MAX_NUMNODES * IOM_MAX_NR_ZONES];
	int nr_zone_ids;

	struct iom_cma cma_areas[IOM_MAX_CMA_AREAS];
	unsigned int cma_area_count;

	/* per-thread caches, see struct iom_pcp_set */
	pthread_mutex_t pcp_sets_lock;
	struct list_head pcp_sets;
	atomic_ulong events_of_dead[IOM_NR_VM_EVENT_ITEMS];

	/*
	 * Test-only switch, per machine: migrate_page_copy() copies the flags
	 * but not the content, so tests can prove their data checks fail.
	 */
	atomic_bool test_skip_migrate_copy;

	/* vm.compaction_proactiveness (0..100), per machine (compaction.c) */
	atomic_int compaction_proactiveness;
	/* io-pgtable pages not yet back in the buddy allocator (src/iommu) */
	atomic_long iommu_pgtable_pages;

	/*
	 * State of the layers above the MM that lives as long as the machine
	 * (dma-debug's table): set once, released at machine destruction
	 * through the owner's callback.
	 */
	struct iom_machine_ext {
		void *_Atomic priv;
		void (*release)(void *priv);
	} ext[IOM_MACHINE_EXT_NR];
	pthread_mutex_t ext_lock;	/* makers of ext[] */

	atomic_ulong metadata_bytes;
	atomic_ulong metadata_peak;
	atomic_ulong bug_count;
};

/*
 * iom_machine_ext_get() - slot @idx's state, made by @make(@m) on first
 * use (once, even when threads race) and released by @release at machine
 * destruction. Return: the state, or NULL if @make failed.
 */
void *iom_machine_ext_get(struct iom_machine *m, unsigned int idx,
			  void *(*make)(struct iom_machine *m),
			  void (*release)(void *priv));

/* Metadata allocations through cfg.mem_ops (core/machine.c). */
void *iom_meta_alloc(struct iom_machine *m, size_t size, size_t align,
		     bool zero);
void iom_meta_free(struct iom_machine *m, void *ptr, size_t size);

#endif /* IOM_CORE_MACHINE_H */
