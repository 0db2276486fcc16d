/* SPDX-License-Identifier: MIT */
/*
 * libiommig - the simulated machine.
 *
 * A struct iom_machine owns everything a simulation has: physical memory
 * (one MAP_NORESERVE arena of real 4 KiB pages), mem_map, NUMA nodes and
 * their zones, the buddy allocator, CMA areas and counters. There is no
 * global state: any number of machines may live in one process.
 *
 * Conventions in this header:
 *   @m:   the machine an operation acts on.
 *   @cfg: a machine configuration; every field left zero takes its default.
 *
 * Every public function returns 0 or a negative errno unless documented
 * otherwise; none aborts on a caller's mistake.
 */
#ifndef IOMMIG_MACHINE_H
#define IOMMIG_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <iommig/export.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOM_PAGE_SHIFT		12
#define IOM_PAGE_SIZE		(1UL << IOM_PAGE_SHIFT)
#define IOM_MAX_NUMNODES	16
#define IOM_MAX_CMA_AREAS	8

struct iom_machine;

/**
 * struct iom_mem_ops - allocator hook for the machine's own metadata.
 * @alloc: return @size bytes aligned to @align (a power of two, at least
 *         sizeof(void *)), zero-filled when @zero; NULL when out of memory.
 * @free:  release what @alloc returned; @size is the size asked for.
 * @priv:  passed back to both.
 *
 * Every allocation the machine makes for itself (mem_map, zone tables,
 * ...) goes through this hook, so an experiment can put a machine in its
 * own jemalloc arena and read the machine's memory cost from jemalloc's
 * statistics. Left zero, the machine uses malloc/calloc/aligned_alloc.
 * Simulated physical memory is never allocated through the hook: it is an
 * mmap(MAP_NORESERVE) arena.
 */
struct iom_mem_ops {
	void *(*alloc)(void *priv, size_t size, size_t align, bool zero);
	void (*free)(void *priv, void *ptr, size_t size);
	void *priv;
};

/* Severity of a message from the machine, as the kernel's printk levels. */
enum iom_log_level {
	IOM_LOG_ERR = 3,	/* a bug report: bad page state, double free */
	IOM_LOG_WARNING = 4,	/* page allocation failure, bad argument */
	IOM_LOG_INFO = 6,
	IOM_LOG_DEBUG = 7,
};

/**
 * struct iom_cma_config - one CMA area reserved at machine creation.
 * @base: physical base address; 0 places the area at the top of the
 *        ZONE_NORMAL of node @nid, below any earlier automatic area.
 * @size: bytes; a multiple of the pageblock size.
 * @nid:  node of an automatically placed area.
 * @name: shown in reports; NULL gives "cma<N>".
 */
struct iom_cma_config {
	uint64_t base;
	uint64_t size;
	int nid;
	const char *name;
};

/**
 * struct iom_machine_config - what to build. Zero means "default".
 * @mem_size:        bytes of simulated physical memory (default 1 GiB),
 *                   split evenly between nodes; each node's share must be
 *                   a multiple of the MAX_ORDER block (4 MiB by default).
 * @nr_nodes:        NUMA nodes (default 1, at most IOM_MAX_NUMNODES).
 * @movable_size:    bytes of ZONE_MOVABLE in all, as the kernel's
 *                   movablecore=: split evenly between nodes and taken from
 *                   the top of each node.
 * @nr_cma_areas:    entries used in @cma.
 * @cma:             CMA areas.
 * @pageblock_order: default 9 (2 MiB pageblocks).
 * @max_order:       largest order the buddy allocator hands out
 *                   (the kernel's MAX_PAGE_ORDER), default 10.
 * @phys_base:       physical address of the first page (default 0);
 *                   aligned to the MAX_ORDER block.
 * @pcp_batch:       per-thread cache refill/drain batch (default: the
 *                   kernel's zone_batchsize(), 63 for a zone of 1 GiB+).
 * @pcp_high:        per-thread cache high mark (default: zone_highsize(),
 *                   low watermark / online cpus, at least 4 * batch).
 * @min_free_kbytes: 0: the kernel's formula (4 * sqrt(lowmem_kbytes),
 *                   clamped to [128, 262144]); negative: no watermarks.
 * @page_poison:     0: the build's default (on in IOMMIG_DEBUG builds);
 *                   1: on; -1: off. Freed pages are filled with 0xaa and
 *                   checked when next allocated.
 * @kcompactd:       start a kcompactd thread per node (mm/compaction.c's
 *                   background compaction daemon); default off, so that a
 *                   machine has no thread of its own unless asked. Without
 *                   it, iom_kcompactd_run() does kcompactd's work in the
 *                   calling thread (<iommig/compaction.h>).
 * @compaction_proactiveness: vm.compaction_proactiveness, 0..100: 0 takes
 *                   the kernel's default, 20; -1 means 0 (no proactive
 *                   compaction); 1..100 is the value. Changed later with
 *                   iom_sysctl_compaction_proactiveness(); the config
 *                   iom_machine_get_config() returns holds the current
 *                   value in the same encoding.
 * @dma_legacy:      coherent DMA buffers of every device are legacy ones
 *                   (the 2013 kernel's: orders 4..0, unmovable) unless a
 *                   device asks otherwise (<iommig/dma-mapping.h>);
 *                   default off: movable, in IOMAP (seed 000).
 * @dma_debug:       dma-debug (kernel/dma/debug.c): track every DMA
 *                   mapping and report misuse; default off.
 * @mem_ops:         metadata allocator hook, see struct iom_mem_ops.
 * @log:             message sink; NULL prints to stderr.
 * @log_priv:        passed to @log.
 */
struct iom_machine_config {
	uint64_t mem_size;
	unsigned int nr_nodes;
	uint64_t movable_size;
	unsigned int nr_cma_areas;
	struct iom_cma_config cma[IOM_MAX_CMA_AREAS];
	unsigned int pageblock_order;
	unsigned int max_order;
	uint64_t phys_base;
	unsigned int pcp_batch;
	unsigned int pcp_high;
	long min_free_kbytes;
	int page_poison;
	bool kcompactd;
	int compaction_proactiveness;
	bool dma_legacy;
	bool dma_debug;
	struct iom_mem_ops mem_ops;
	void (*log)(void *priv, enum iom_log_level level, const char *msg);
	void *log_priv;
};

/**
 * iom_machine_config_init() - fill @cfg with every default spelled out.
 * @cfg: the configuration to fill.
 *
 * Optional: a zeroed config means the same machine. Useful to read the
 * defaults or to change one of them.
 */
IOM_API void iom_machine_config_init(struct iom_machine_config *cfg);

/**
 * iom_machine_create() - build a machine.
 * @cfg: configuration; NULL for every default.
 * @mp:  where the new machine is stored.
 *
 * Reserves the physical arena (64 GiB of simulated memory cost only what is
 * touched), builds mem_map, nodes, zones and the buddy allocator, reserves
 * the CMA areas and computes watermarks; starts the kcompactd threads if
 * @cfg asks for them.
 *
 * Context: any thread. The machine may then be used from any thread.
 * Return: 0; -EINVAL for a bad configuration (a message says which field);
 * -ENOMEM when the host cannot provide the arena or the metadata; the
 * pthread_create() error (-EAGAIN) when a kcompactd thread cannot start.
 */
IOM_API int iom_machine_create(const struct iom_machine_config *cfg,
			       struct iom_machine **mp);

/**
 * iom_machine_destroy() - return every resource of @m.
 * @m: the machine, or NULL.
 *
 * Context: no other thread may use @m during or after the call. Threads
 * that used @m may still be alive; their per-thread page caches are
 * drained and detached here. The machine's kcompactd threads are stopped
 * and joined first (one in the middle of a compaction finishes its
 * current zone).
 */
IOM_API void iom_machine_destroy(struct iom_machine *m);

/**
 * iom_machine_get_config() - the configuration @m runs with, defaults
 * resolved.
 * @m:   the machine.
 * @cfg: filled in.
 */
IOM_API void iom_machine_get_config(const struct iom_machine *m,
				    struct iom_machine_config *cfg);

/**
 * struct iom_machine_memcost - what the simulator itself costs.
 * @metadata_bytes: bytes currently allocated through the mem_ops hook.
 * @metadata_peak:  highest value of @metadata_bytes.
 * @arena_bytes:    size of the reserved physical arena (virtual).
 * @nr_pages:       simulated pages.
 */
struct iom_machine_memcost {
	uint64_t metadata_bytes;
	uint64_t metadata_peak;
	uint64_t arena_bytes;
	uint64_t nr_pages;
};

/** iom_machine_memcost() - read @m's own memory cost into @out. */
IOM_API void iom_machine_memcost(const struct iom_machine *m,
				 struct iom_machine_memcost *out);

/**
 * iom_machine_bug_count() - bug reports @m has made (bad page states,
 * double frees, writes to free pages, ...). Tests assert it stays zero.
 */
IOM_API unsigned long iom_machine_bug_count(const struct iom_machine *m);

/** iom_version_string() - "MAJOR.MINOR.PATCH" of the library. */
IOM_API const char *iom_version_string(void);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_MACHINE_H */
