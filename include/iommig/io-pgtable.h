/* SPDX-License-Identifier: MIT */
/*
 * libiommig - I/O page tables (include/linux/io-pgtable.h).
 *
 * A page-table format is a library behind a small ops table, configured by
 * one cfg struct; TLB maintenance is pushed back to the table's owner (the
 * IOMMU driver) through callbacks, as drivers/iommu/io-pgtable-arm.c does.
 * The one format is an ARM LPAE-like stage-1 table with a 4 KiB granule,
 * 9 bits a level, up to 4 levels, and 2 MiB and 1 GiB block entries. Its
 * table pages are simulated pages of the machine (unmovable, from the buddy
 * allocator), so they count in the memory picture.
 *
 * Conventions in this header:
 *   @ops:   a page table made by iom_alloc_io_pgtable_ops().
 *   @iova:  an I/O virtual address (input address), below 2^cfg->ias.
 *   @paddr: a physical (output) address, below 2^cfg->oas.
 *   @prot:  IOM_IOMMU_READ | IOM_IOMMU_WRITE | ... (iommu.h's IOMMU_*).
 *
 * Concurrency: map and unmap of disjoint ranges may run in parallel from
 * any threads without a lock (a new table is installed with a
 * compare-and-swap, as the kernel does). Walkers (devices, iova_to_phys)
 * take no lock at all: they read under RCU, with acquire loads, and a
 * table page removed from the tree goes back to the buddy allocator only
 * after a grace period.
 */
#ifndef IOMMIG_IO_PGTABLE_H
#define IOMMIG_IO_PGTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iommig/export.h>
#include <iommig/machine.h>
#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- protection flags (include/linux/iommu.h) ------------------------- */

#define IOM_IOMMU_READ		(1 << 0)
#define IOM_IOMMU_WRITE		(1 << 1)
#define IOM_IOMMU_CACHE		(1 << 2)	/* accepted; no effect */
#define IOM_IOMMU_NOEXEC	(1 << 3)
#define IOM_IOMMU_MMIO		(1 << 4)	/* accepted; no effect */
#define IOM_IOMMU_PRIV		(1 << 5)

/* ---- the page-table entry ----------------------------------------------- */

/*
 * Bits of a 64-bit entry. The positions follow the ARM long-descriptor
 * format where it has the bit: VALID and TABLE/PAGE (bits 0-1), AF (10),
 * nG (11), DBM (51), XN (54), software bits from 55. Permissions are two
 * explicit bits, READ and WRITE, at the stage-2 HAP positions (6-7), where
 * a stage-1 entry would have AP[2:1]: a simplification, so that a device
 * can be refused reads as well as writes.
 *
 * TABLE at levels 0-2 means "points to a next-level table"; clear, the
 * entry is a block (1 GiB at level 1, 2 MiB at level 2). At level 3 a
 * valid entry must have it set (a page). Level 0 has no blocks.
 *
 * Dirty tracking is DBM-style, as ARM's hardware dirty state: an entry
 * with DBM is writable; WRITE clear means writable-clean, and the first
 * device write sets WRITE (the hardware update). So an entry is dirty when
 * both DBM and WRITE are set (iom_iopte_dirty()), and clearing the dirty
 * state clears WRITE but keeps DBM. A writable mapping made with
 * IOM_IO_PGTABLE_QUIRK_ARM_HD starts dirty, as in the kernel.
 *
 * IOM_IOPTE_SW_MIGRATE is free for the IOMMU's migration protocol (an
 * entry being migrated: faults on write). The table never sets it.
 */
#define IOM_IOPTE_VALID		(1ULL << 0)
#define IOM_IOPTE_TABLE		(1ULL << 1)	/* table (lvl 0-2) or page (lvl 3) */
#define IOM_IOPTE_READ		(1ULL << 6)
#define IOM_IOPTE_WRITE		(1ULL << 7)
#define IOM_IOPTE_AF		(1ULL << 10)	/* access flag */
#define IOM_IOPTE_NG		(1ULL << 11)
#define IOM_IOPTE_DBM		(1ULL << 51)	/* dirty bit modifier */
#define IOM_IOPTE_XN		(1ULL << 54)
#define IOM_IOPTE_SW_MIGRATE	(1ULL << 55)	/* software: migration */
#define IOM_IOPTE_ADDR_MASK	(((1ULL << 48) - 1) & ~0xfffULL)

#define IOM_IO_PGTABLE_MAX_LEVELS 4

/** iom_iopte_leaf() - does @pte at @lvl map memory (block or page)? */
static inline bool iom_iopte_leaf(uint64_t pte, int lvl)
{
	if (!(pte & IOM_IOPTE_VALID))
		return false;
	return lvl == IOM_IO_PGTABLE_MAX_LEVELS - 1 || !(pte & IOM_IOPTE_TABLE);
}

/** iom_iopte_writeable() - may a device write through @pte (maybe after a DBM update)? */
static inline bool iom_iopte_writeable(uint64_t pte)
{
	return (pte & (IOM_IOPTE_WRITE | IOM_IOPTE_DBM)) != 0;
}

/** iom_iopte_dirty() - DBM-style dirty: writable and written since cleaned. */
static inline bool iom_iopte_dirty(uint64_t pte)
{
	return (pte & (IOM_IOPTE_WRITE | IOM_IOPTE_DBM)) ==
	       (IOM_IOPTE_WRITE | IOM_IOPTE_DBM);
}

/** iom_iopte_to_paddr() - output address of a leaf @pte. */
static inline uint64_t iom_iopte_to_paddr(uint64_t pte)
{
	return pte & IOM_IOPTE_ADDR_MASK;
}

/* ---- TLB maintenance (struct iommu_iotlb_gather, iommu_flush_ops) ------ */

/**
 * struct iom_iommu_iotlb_gather - a range of IOVA waiting for invalidation.
 * @start:  first byte.  @end: last byte (inclusive); start > end: empty.
 * @pgsize: leaf size of the entries gathered (0: none yet).
 * @queued: the owner flushes the whole domain later (lazy mode): the
 *          table then does not add pages.
 */
struct iom_iommu_iotlb_gather {
	unsigned long start;
	unsigned long end;
	size_t pgsize;
	bool queued;
};

/** iom_iommu_iotlb_gather_init() - an empty gather (iommu_iotlb_gather_init()). */
static inline void iom_iommu_iotlb_gather_init(struct iom_iommu_iotlb_gather *g)
{
	g->start = ~0UL;
	g->end = 0;
	g->pgsize = 0;
	g->queued = false;
}

/**
 * iom_iommu_iotlb_gather_add_range() - grow @g to cover @iova..+@size
 * (iommu_iotlb_gather_add_range()); a helper for tlb_add_page callbacks.
 */
static inline void iom_iommu_iotlb_gather_add_range(struct iom_iommu_iotlb_gather *g,
						    unsigned long iova, size_t size)
{
	unsigned long end = iova + size - 1;

	if (g->start > iova)
		g->start = iova;
	if (g->end < end)
		g->end = end;
}

/**
 * struct iom_iommu_flush_ops - what the table asks of its owner.
 * @tlb_flush_all:  invalidate every entry of the context (at free).
 * @tlb_flush_walk: invalidate @iova..+@size, leaves and walk caches, in
 *                  @granule steps: a table page was removed.
 * @tlb_add_page:   a leaf of @granule bytes at @iova was cleared: add it to
 *                  @gather (or invalidate it now). Called only when the
 *                  caller of unmap gave a gather that is not @queued.
 * @iotlb_sync:     complete the invalidation of @gather (the kernel's
 *                  iommu_domain_ops->iotlb_sync); called by
 *                  iom_io_pgtable_unmap() when the caller gave no gather.
 *                  May be NULL.
 * Any member may be NULL. Callbacks run in the thread that maps or unmaps,
 * inside an RCU read section: they must not sleep on RCU.
 */
struct iom_iommu_flush_ops {
	void (*tlb_flush_all)(void *cookie);
	void (*tlb_flush_walk)(unsigned long iova, size_t size, size_t granule,
			       void *cookie);
	void (*tlb_add_page)(struct iom_iommu_iotlb_gather *gather,
			     unsigned long iova, size_t granule, void *cookie);
	void (*iotlb_sync)(struct iom_iommu_iotlb_gather *gather, void *cookie);
};

/* ---- configuration and ops ---------------------------------------------- */

enum iom_io_pgtable_fmt {
	IOM_ARM_64_LPAE_S1,
	IOM_IO_PGTABLE_NUM_FMTS,
};

/* cfg->quirks */
#define IOM_IO_PGTABLE_QUIRK_NO_WARN	(1UL << 0)	/* no warning on -EEXIST etc. */
#define IOM_IO_PGTABLE_QUIRK_ARM_HD	(1UL << 1)	/* DBM on writable entries */

/**
 * struct iom_io_pgtable_cfg - what the owner asks for (struct io_pgtable_cfg).
 * @quirks:        IOM_IO_PGTABLE_QUIRK_*.
 * @pgsize_bitmap: page sizes the owner wants; restricted by the allocation
 *                 to the format's (4 KiB | 2 MiB | 1 GiB). Must include 4 KiB.
 * @ias:           input address bits, 32..48 (levels: 3 up to 39, else 4).
 * @oas:           output address bits, 32..48.
 * @tlb:           TLB maintenance callbacks, or NULL.
 */
struct iom_io_pgtable_cfg {
	unsigned long quirks;
	unsigned long pgsize_bitmap;
	unsigned int ias;
	unsigned int oas;
	const struct iom_iommu_flush_ops *tlb;
};

/**
 * struct iom_io_pgtable_ops - the format's operations (struct io_pgtable_ops).
 * @map_pages:    map @pgcount pages of @pgsize (one of the table's sizes)
 *                at @iova -> @paddr, stopping at the end of the table that
 *                holds the first entry; *@mapped grows by the bytes mapped.
 *                Return: 0; -EEXIST if an entry is already there (nothing
 *                of that table is changed); -EINVAL (bad size, alignment,
 *                prot); -ERANGE (@iova or @paddr beyond ias/oas); -ENOMEM.
 *                A @prot with neither READ nor WRITE maps nothing, returns 0.
 * @unmap_pages:  unmap @pgcount pages of @pgsize at @iova, within one
 *                table. Return: bytes unmapped; 0 when nothing is mapped at
 *                @iova. A block larger than @pgsize that holds @iova is
 *                removed whole and its size returned (see io-pgtable.c).
 * @iova_to_phys: the physical address @iova translates to, or 0.
 */
struct iom_io_pgtable_ops {
	int (*map_pages)(struct iom_io_pgtable_ops *ops, unsigned long iova,
			 uint64_t paddr, size_t pgsize, size_t pgcount, int prot,
			 iom_gfp_t gfp, size_t *mapped);
	size_t (*unmap_pages)(struct iom_io_pgtable_ops *ops, unsigned long iova,
			      size_t pgsize, size_t pgcount,
			      struct iom_iommu_iotlb_gather *gather);
	uint64_t (*iova_to_phys)(struct iom_io_pgtable_ops *ops,
				 unsigned long iova);
};

/**
 * iom_alloc_io_pgtable_ops() - make an empty page table (alloc_io_pgtable_ops()).
 * @m:      the machine whose pages hold the tables.
 * @fmt:    IOM_ARM_64_LPAE_S1.
 * @cfg:    the configuration; @cfg->pgsize_bitmap is restricted in place to
 *          what the format supports, as the kernel does.
 * @cookie: passed to every @cfg->tlb callback.
 *
 * Context: any thread; allocates the top-level table (GFP_KERNEL).
 * Return: the ops, or NULL with errno EINVAL (bad @fmt or @cfg: a warning
 * says which) or ENOMEM.
 */
IOM_API struct iom_io_pgtable_ops *
iom_alloc_io_pgtable_ops(struct iom_machine *m, enum iom_io_pgtable_fmt fmt,
			 struct iom_io_pgtable_cfg *cfg, void *cookie);

/**
 * iom_free_io_pgtable_ops() - free_io_pgtable_ops(): call tlb_flush_all,
 * then free every table page (after an RCU grace period). NULL is a no-op.
 * Context: no map or unmap of @ops may run; walkers may still be inside
 * RCU read sections (the pages outlive them).
 */
IOM_API void iom_free_io_pgtable_ops(struct iom_io_pgtable_ops *ops);

/**
 * iom_io_pgtable_get_cfg() - the configuration @ops was made with (restricted).
 */
IOM_API const struct iom_io_pgtable_cfg *
iom_io_pgtable_get_cfg(const struct iom_io_pgtable_ops *ops);

/**
 * iom_iommu_pgsize() - iommu_pgsize(): the largest page size of
 * @pgsize_bitmap that the alignment of @iova and @paddr and @size allow,
 * and in *@count how many of them to map before a larger size fits.
 * Return: the page size, or 0 if none fits (misaligned input).
 */
IOM_API size_t iom_iommu_pgsize(unsigned long pgsize_bitmap, unsigned long iova,
				uint64_t paddr, size_t size, size_t *count);

/**
 * iom_io_pgtable_map() - map @iova..+@size -> @paddr with the largest page
 * sizes alignment allows (the loop of the kernel's __iommu_map()).
 * @mapped: if not NULL, bytes mapped (0 after a failure, which unmaps
 *          what the call mapped).
 * Context: any thread; may allocate table pages with @gfp.
 * Return: 0; -EINVAL (@iova, @paddr, @size not aligned to the smallest
 * page size, or @size 0), -EEXIST, -ERANGE, -ENOMEM as map_pages.
 */
IOM_API int iom_io_pgtable_map(struct iom_io_pgtable_ops *ops, unsigned long iova,
			       uint64_t paddr, size_t size, int prot,
			       iom_gfp_t gfp, size_t *mapped);

/**
 * iom_io_pgtable_unmap() - unmap @iova..+@size with the largest page sizes
 * (the loop of __iommu_unmap()). A block that only partly overlaps the
 * range is removed whole; the loop then goes on after that block, so it
 * never removes a block the range does not touch. Stops at the first hole.
 * @gather: NULL: a local gather, synced (cfg->tlb->iotlb_sync) before the
 *          return, as iommu_unmap(); else the caller syncs it, as
 *          iommu_unmap_fast().
 * Context: any thread.
 * Return: bytes unmapped (may exceed @size by the parts of partly covered
 * blocks); 0 if nothing is mapped at @iova or the input is misaligned
 * (a warning says so).
 */
IOM_API size_t iom_io_pgtable_unmap(struct iom_io_pgtable_ops *ops,
				    unsigned long iova, size_t size,
				    struct iom_iommu_iotlb_gather *gather);

/**
 * struct iom_io_pgtable_walk_data - what a walk found.
 * @pte:   the leaf entry (0 if none).
 * @ptep:  where it lives (valid while the caller stays in the RCU read
 *         section it walked in; a device updates AF and DBM-dirty
 *         through it with compare-and-swap), or NULL.
 * @level: level of the leaf (1: 1 GiB block, 2: 2 MiB, 3: 4 KiB), or of
 *         the empty entry that ended the walk.
 * @size:  bytes the leaf maps, or the size an entry of @level would map.
 */
struct iom_io_pgtable_walk_data {
	uint64_t pte;
	_Atomic uint64_t *ptep;
	int level;
	size_t size;
};

/**
 * iom_io_pgtable_walk() - look up the leaf entry translating @iova.
 * Context: any thread, no lock. To use @out->ptep after the call, be
 * inside iom_rcu_read_lock() around both (the walk nests its own).
 * Return: 0 with a leaf; -ENOENT when nothing maps @iova (@out->pte 0);
 * -ERANGE if @iova is beyond ias.
 */
IOM_API int iom_io_pgtable_walk(struct iom_io_pgtable_ops *ops,
				unsigned long iova,
				struct iom_io_pgtable_walk_data *out);

/**
 * iom_io_pgtable_nr_leaves() - count the leaf entries of @ops by level
 * into @nr[0..IOM_IO_PGTABLE_MAX_LEVELS-1]. Return: their sum.
 * Context: no map or unmap running (a walk of the whole tree).
 */
IOM_API unsigned long iom_io_pgtable_nr_leaves(struct iom_io_pgtable_ops *ops,
					       unsigned long *nr);

/**
 * iom_io_pgtable_reap() - free the spare: the last table an unmap left
 * empty. An emptied table stays linked (a map there reuses it, so a
 * map/unmap loop allocates nothing) until another table empties, which
 * frees it, or until this call. Every other empty table is freed at once.
 * Context: any thread.
 */
IOM_API void iom_io_pgtable_reap(struct iom_io_pgtable_ops *ops);

/**
 * iom_io_pgtable_nr_pages() - table pages in @ops's tree now, the
 * top-level table included.
 */
IOM_API unsigned long iom_io_pgtable_nr_pages(const struct iom_io_pgtable_ops *ops);

/**
 * iom_io_pgtable_machine_pages() - table pages of every io-pgtable of @m
 * not yet given back to the buddy allocator (including those waiting for
 * a grace period; iom_rcu_barrier() lets them go).
 */
IOM_API unsigned long iom_io_pgtable_machine_pages(const struct iom_machine *m);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_IO_PGTABLE_H */
