/* SPDX-License-Identifier: MIT */
/*
 * libiommig - the DMA API (include/linux/dma-mapping.h) for devices behind
 * an IOMMU (drivers/iommu/dma-iommu.c), with seed 000's movable coherent
 * buffers and the kernel's dma-debug (kernel/dma/debug.c).
 *
 * Conventions in this header:
 *   @dev:        a device (include/iommig/iommu.h) attached to a DMA or
 *                DMA_FQ domain whose IOVA space is set up
 *                (iom_iommu_dma_init_domain()).
 *   @cpu_addr:   what iom_dma_alloc_coherent() returned: the buffer's
 *                kernel-side handle. The simulated CPU reaches the buffer
 *                through iom_dma_vmap_read()/_write() (its VMALLOC view),
 *                never by dereferencing it.
 *   @dma_handle: the buffer's address for the device (an IOVA).
 *   @dir:        an enum iom_dma_data_direction.
 *
 * Coherent buffers come in two kinds, chosen per device (or for the whole
 * machine by its config):
 *   - movable (seed 000): movable pages (order 0 unless the device asks
 *     for higher-order ones) inserted into an IOMAP, so
 *     compaction, CMA and migrate_pages move them; migration runs
 *     MM -> IOMAP -> DMA -> IOMMU (iommu_migrate) and back;
 *   - legacy (the 2013 kernel): pages of order 4 down to 0 from the buddy
 *     allocator, unmovable, never in an IOMAP.
 * How a movable page's migration keeps the device off it is chosen per
 * device: enum iom_dma_migrate_mode.
 */
#ifndef IOMMIG_DMA_MAPPING_H
#define IOMMIG_DMA_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iommig/export.h>
#include <iommig/iommu.h>
#include <iommig/machine.h>
#include <iommig/memory.h>
#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t iom_dma_addr_t;

/* enum dma_data_direction, with the kernel's values */
enum iom_dma_data_direction {
	IOM_DMA_BIDIRECTIONAL = 0,
	IOM_DMA_TO_DEVICE = 1,
	IOM_DMA_FROM_DEVICE = 2,
	IOM_DMA_NONE = 3,
};

/* DMA attributes, the kernel's values */
#define IOM_DMA_ATTR_WEAK_ORDERING	(1UL << 1)
#define IOM_DMA_ATTR_WRITE_COMBINE	(1UL << 2)
#define IOM_DMA_ATTR_NO_KERNEL_MAPPING	(1UL << 4)
#define IOM_DMA_ATTR_SKIP_CPU_SYNC	(1UL << 5)
#define IOM_DMA_ATTR_FORCE_CONTIGUOUS	(1UL << 6)
#define IOM_DMA_ATTR_ALLOC_SINGLE_PAGES	(1UL << 7)
#define IOM_DMA_ATTR_NO_WARN		(1UL << 8)

/* DMA_MAPPING_ERROR */
#define IOM_DMA_MAPPING_ERROR		(~(iom_dma_addr_t)0)

/** DMA_BIT_MASK(n) */
#define IOM_DMA_BIT_MASK(n)	(((n) >= 64) ? ~0ULL : ((1ULL << (n)) - 1))

/* ---- per-device settings ---------------------------------------------- */

/** Which pages back a device's coherent buffers. */
enum iom_dma_alloc_mode {
	IOM_DMA_ALLOC_DEFAULT,	/* the machine's (movable unless its config says legacy) */
	IOM_DMA_ALLOC_MOVABLE,	/* seed 000: movable pages in an IOMAP */
	IOM_DMA_ALLOC_LEGACY,	/* 2013: orders 4..0, unmovable */
};

/**
 * How migration of a movable DMA page keeps the device off it (seed 000
 * and its TODO list).
 */
enum iom_dma_migrate_mode {
	/* the seed: iommu_migrate() (block the domain, unmap, copy, map,
	 * unblock) from ->migratepagecopy */
	IOM_DMA_MIGRATE_SEED,
	/* TODO "fix layering": iomap_migratepage() blocks the domain around
	 * migrate_page(), and the copy runs under that block */
	IOM_DMA_MIGRATE_LAYERED,
	/* TODO "without blocking the whole domain": only the migrating page
	 * blocks */
	IOM_DMA_MIGRATE_PER_PAGE,
	/* TODO "non-blocking": fault-on-write entries and a dirty re-copy
	 * loop; devices only wait for the final switch, and only to write */
	IOM_DMA_MIGRATE_NONBLOCK,
};

/**
 * Where a device's movable buffers keep their pages (seed 000's TODO
 * "associate IOMAP object with IOMMU domain rather than DMA buffer").
 */
enum iom_dma_iomap_scope {
	IOM_DMA_IOMAP_PER_BUFFER,	/* the seed: an IOMAP in each buffer */
	IOM_DMA_IOMAP_PER_DOMAIN,	/* one IOMAP per DMA domain, indexed by IOVA */
};

/**
 * iom_dma_set_iomap_scope() - per-buffer or per-domain IOMAP for @dev's
 * later movable buffers. Return: 0; -EINVAL.
 */
IOM_API int iom_dma_set_iomap_scope(struct iom_device *dev, enum iom_dma_iomap_scope scope);

/**
 * iom_dma_set_alloc_mode() - movable or legacy coherent buffers for @dev
 * (applies to later allocations).
 * Return: 0; -EINVAL.
 */
IOM_API int iom_dma_set_alloc_mode(struct iom_device *dev, enum iom_dma_alloc_mode mode);
/**
 * iom_dma_set_page_order() - seed 000's TODO "higher-order DMA pages":
 * @dev's later movable buffers are made of compound pages of @order
 * (smaller ones where a block of @order cannot be had, down to 0), each
 * mapped with one iom_iommu_map() (a 2 MiB block where order and
 * alignment allow) and migrated whole: compaction, CMA and
 * migrate_pages move it to a compound page of the same order. Such
 * buffers cannot be mapped into a process (iom_dma_mmap() gives -ENXIO).
 * Return: 0; -EINVAL (@order above the pageblock order).
 */
IOM_API int iom_dma_set_page_order(struct iom_device *dev, unsigned int order);

/**
 * iom_dma_set_migrate_mode() - how the movable pages of @dev's later
 * buffers migrate (a buffer keeps the mode it was allocated with).
 * Return: 0; -EINVAL.
 */
IOM_API int iom_dma_set_migrate_mode(struct iom_device *dev, enum iom_dma_migrate_mode mode);

/**
 * iom_dma_set_mask() / iom_dma_set_coherent_mask() /
 * iom_dma_set_mask_and_coherent() - the addresses @dev can put on the bus
 * (default 32 bits, as the kernel's). IOVAs are allocated below the mask.
 * Return: 0; -EIO for a mask below IOM_DMA_BIT_MASK(13): no page fits
 * above IOVA 0, which is never handed out (dma_supported() fails);
 * -EINVAL.
 */
IOM_API int iom_dma_set_mask(struct iom_device *dev, uint64_t mask);
IOM_API int iom_dma_set_coherent_mask(struct iom_device *dev, uint64_t mask);
IOM_API int iom_dma_set_mask_and_coherent(struct iom_device *dev, uint64_t mask);
/** iom_dma_get_mask() - dma_get_mask(). */
IOM_API uint64_t iom_dma_get_mask(struct iom_device *dev);

/* ---- coherent buffers --------------------------------------------------- */

/**
 * iom_dma_alloc_coherent() - dma_alloc_attrs() for an IOMMU device: pages
 * (movable in an IOMAP, or legacy), a contiguous IOVA range below the
 * coherent mask, mapped read/write, and unless
 * IOM_DMA_ATTR_NO_KERNEL_MAPPING a CPU view. The content is zeroed.
 * @size:       bytes (rounded up to pages).
 * @dma_handle: gets the IOVA.
 * @gfp:        IOM_GFP_KERNEL and friends; the zone and movability are the
 *              DMA layer's choice (as in the kernel, __GFP_HIGHMEM and
 *              __GFP_MOVABLE from the caller are ignored).
 * @attrs:      IOM_DMA_ATTR_*.
 * Context: may sleep.
 * Return: the buffer's handle, or NULL with errno ENODEV (no DMA domain),
 * EINVAL, ENOMEM (nothing stays allocated).
 */
IOM_API void *iom_dma_alloc_coherent(struct iom_device *dev, size_t size,
				     iom_dma_addr_t *dma_handle, iom_gfp_t gfp,
				     unsigned long attrs);

/**
 * iom_dma_free_coherent() - dma_free_attrs(): take the pages out of the
 * IOMAP (waiting for a migration in progress), unmap and free the IOVA
 * (strict or through the flush queue), free the pages.
 * Return: 0; -EINVAL (@cpu_addr is not a live buffer of @dev, or
 * @dma_handle/@size do not match it: reported, nothing changed); -EBUSY
 * while a process maps the buffer (iom_dma_mmap()) or another device
 * shares it (iom_dma_buffer_attach()).
 */
IOM_API int iom_dma_free_coherent(struct iom_device *dev, size_t size,
				  void *cpu_addr, iom_dma_addr_t dma_handle,
				  unsigned long attrs);

/**
 * iom_dma_vmap_read() / iom_dma_vmap_write() - the CPU reads or writes
 * @len bytes at @offset of a coherent buffer through its kernel mapping
 * (the seed's VMALLOC area). A page being migrated is waited for (as a
 * kernel PTE's migration entry would make the CPU wait; no page
 * reference or lock is taken), so no access is lost or lands in a page
 * that is leaving.
 * Return: 0; -EINVAL (not a buffer of @dev, out of range, or allocated
 * with IOM_DMA_ATTR_NO_KERNEL_MAPPING).
 */
IOM_API int iom_dma_vmap_read(struct iom_device *dev, void *cpu_addr,
			      size_t offset, void *buf, size_t len);
IOM_API int iom_dma_vmap_write(struct iom_device *dev, void *cpu_addr,
			       size_t offset, const void *buf, size_t len);

/**
 * iom_dma_mmap() - dma_mmap_attrs(): map a coherent buffer shared into
 * process @mm (iom_iomap_mmap() for a movable buffer: CPU accesses sleep
 * on migration entries while a page moves). Legacy buffers cannot be
 * mapped here (-ENXIO).
 * Return: 0 and the address in *@addrp; -EINVAL, -ENOMEM, -ENXIO.
 */
IOM_API int iom_dma_mmap(struct iom_device *dev, struct iom_mm *mm,
			 void *cpu_addr, iom_dma_addr_t dma_handle, size_t size,
			 int prot, uint64_t *addrp);

/** iom_dma_munmap() - undo iom_dma_mmap(). Return: 0, -EINVAL. */
IOM_API int iom_dma_munmap(struct iom_mm *mm, uint64_t addr, size_t size);

/** Most devices a coherent buffer can be shared with besides its owner. */
#define IOM_DMA_MAX_SHARES	8

/**
 * iom_dma_buffer_attach() - share the coherent buffer @cpu_addr of @dev
 * with device @other (seed 000's TODO "shared buffers"): its pages are
 * mapped into @other's DMA domain (another one, or the same) at an IOVA
 * below @other's coherent mask, returned in *@handle. From then on a
 * migration of a page of the buffer moves every domain's translation of
 * it: each domain is blocked for that page (nested: the copy runs while
 * all of them are), whatever the owner's migration mode; in the
 * non-blocking mode a shared page migrates per page instead.
 * Return: 0; -EINVAL (not a buffer of @dev, @other is @dev or already
 * attached), -ENODEV (@other has no DMA domain), -ENOSPC (too many
 * shares), -ENOMEM.
 */
IOM_API int iom_dma_buffer_attach(struct iom_device *dev, void *cpu_addr,
				  struct iom_device *other, iom_dma_addr_t *handle);

/**
 * iom_dma_buffer_detach() - undo iom_dma_buffer_attach(): unmap the
 * buffer from @other's domain. A buffer cannot be freed while shared.
 * Return: 0; -EINVAL (no such share).
 */
IOM_API int iom_dma_buffer_detach(struct iom_device *dev, void *cpu_addr,
				  struct iom_device *other, iom_dma_addr_t handle);

/**
 * iom_dma_buffer_page() - the page now backing byte @offset of a coherent
 * buffer, with a reference (for tests and experiments: it changes when
 * the page migrates). Return: the page, or NULL.
 */
IOM_API struct iom_page *iom_dma_buffer_page(struct iom_device *dev,
					     void *cpu_addr, size_t offset);

/* ---- streaming mappings ------------------------------------------------- */

/**
 * iom_dma_map_page() - dma_map_page_attrs(): map @size bytes at @offset of
 * @page for @dir (TO_DEVICE: read-only for the device, FROM_DEVICE:
 * write-only, as the IOMMU's prot). The caller checks the result with
 * iom_dma_mapping_error().
 * Return: the IOVA, or IOM_DMA_MAPPING_ERROR.
 */
IOM_API iom_dma_addr_t iom_dma_map_page(struct iom_device *dev, struct iom_page *page,
					size_t offset, size_t size,
					enum iom_dma_data_direction dir,
					unsigned long attrs);

/**
 * iom_dma_unmap_page() - dma_unmap_page_attrs().
 * Return: 0; -EINVAL (a bad @dir, or no mapping of @dev covers exactly
 * the IOVA pages of @addr..+@size: reported, nothing changed). A @size
 * that differs from the mapped one but spans the same pages unmaps it,
 * as in the kernel; only dma-debug reports that.
 */
IOM_API int iom_dma_unmap_page(struct iom_device *dev, iom_dma_addr_t addr,
			       size_t size, enum iom_dma_data_direction dir,
			       unsigned long attrs);

/** iom_dma_mapping_error() - dma_mapping_error(): non-zero if @addr is the error value. */
IOM_API int iom_dma_mapping_error(struct iom_device *dev, iom_dma_addr_t addr);

/**
 * struct iom_scatterlist - one entry of a scatterlist (struct scatterlist).
 * @page, @offset, @length: what the CPU gives.
 * @dma_address, @dma_length: what iom_dma_map_sg() fills.
 */
struct iom_scatterlist {
	struct iom_page *page;
	unsigned int offset;
	unsigned int length;
	iom_dma_addr_t dma_address;
	unsigned int dma_length;
};

/**
 * iom_dma_map_sg() - dma_map_sg_attrs(): map @nents entries into one
 * contiguous IOVA range (iommu_dma_map_sg(): the segments are packed, so
 * the device sees a single range when offsets allow).
 * Return: the number of DMA segments (> 0), or 0 on failure (nothing
 * stays mapped).
 */
IOM_API int iom_dma_map_sg(struct iom_device *dev, struct iom_scatterlist *sg,
			   int nents, enum iom_dma_data_direction dir,
			   unsigned long attrs);

/**
 * iom_dma_unmap_sg() - dma_unmap_sg_attrs(); @nents is what was passed to
 * iom_dma_map_sg(), not what it returned.
 * Return: 0; -EINVAL (reported, nothing changed).
 */
IOM_API int iom_dma_unmap_sg(struct iom_device *dev, struct iom_scatterlist *sg,
			     int nents, enum iom_dma_data_direction dir,
			     unsigned long attrs);

/**
 * iom_dma_sync_single_for_cpu() / _for_device() - ownership of a
 * streaming mapping moves to the CPU / back to the device. The simulated
 * machine is cache-coherent, so only dma-debug sees them.
 * Return: 0; -EINVAL.
 */
IOM_API int iom_dma_sync_single_for_cpu(struct iom_device *dev, iom_dma_addr_t addr,
					size_t size, enum iom_dma_data_direction dir);
IOM_API int iom_dma_sync_single_for_device(struct iom_device *dev, iom_dma_addr_t addr,
					   size_t size, enum iom_dma_data_direction dir);

/* ---- device removal and dma-debug (kernel/dma/debug.c) ------------------ */

/**
 * iom_dma_device_release() - the driver lets go of @dev (the kernel's
 * BUS_NOTIFY_UNBOUND_DRIVER): with dma-debug on, mappings and buffers
 * still pending are reported ("device driver has pending DMA allocations
 * while released from device [count=N]").
 * Return: the number of pending mappings and buffers (they stay valid);
 * without dma-debug only coherent buffers are known, so only they are
 * counted; -EINVAL for a NULL @dev.
 */
IOM_API long iom_dma_device_release(struct iom_device *dev);

/** The error classes dma-debug detects, each counted. */
enum iom_dma_debug_error {
	IOM_DMA_DEBUG_FREE_INVALID,	/* free of an address never mapped */
	IOM_DMA_DEBUG_UNMAP_SIZE,	/* unmap/free with a different size */
	IOM_DMA_DEBUG_UNMAP_TYPE,	/* unmap with the wrong function */
	IOM_DMA_DEBUG_UNMAP_DIR,	/* unmap with a different direction */
	IOM_DMA_DEBUG_UNMAP_CPU_ADDR,	/* coherent free with another CPU address */
	IOM_DMA_DEBUG_SG_COUNT,		/* unmap_sg with another entry count */
	IOM_DMA_DEBUG_MAPPING_ERROR_UNCHECKED, /* unmapped without dma_mapping_error() */
	IOM_DMA_DEBUG_SYNC_RANGE,	/* sync outside the mapping */
	IOM_DMA_DEBUG_SYNC_DIR,		/* sync in the wrong direction */
	IOM_DMA_DEBUG_OVERLAP,		/* two mappings of one cacheline */
	IOM_DMA_DEBUG_PENDING,		/* pending mappings at device release */
	IOM_DMA_DEBUG_NR_ERRORS,
};

/**
 * struct iom_dma_debug_stats - what dma-debug saw on a machine.
 * @errors:        reports per class.
 * @nr_entries:    mappings and buffers tracked now.
 * @max_entries:   the most tracked at once.
 */
struct iom_dma_debug_stats {
	uint64_t errors[IOM_DMA_DEBUG_NR_ERRORS];
	uint64_t nr_entries;
	uint64_t max_entries;
};

/**
 * iom_dma_debug_get_stats() - dma-debug's counters for machine @m.
 * Return: 0; -EINVAL; -ENODEV if dma-debug is off on @m.
 */
IOM_API int iom_dma_debug_get_stats(struct iom_machine *m, struct iom_dma_debug_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_DMA_MAPPING_H */
