/* SPDX-License-Identifier: MIT */
/*
 * libiommig - VFIO's type1 IOMMU backend (include/uapi/linux/vfio.h's
 * VFIO_IOMMU_MAP_DMA / VFIO_IOMMU_UNMAP_DMA; drivers/vfio/vfio_iommu_type1.c).
 *
 * A container (struct iom_vfio_container, the kernel's struct vfio_iommu)
 * lets a process (struct iom_mm, QEMU in the seeds) map its own memory at
 * chosen IOVAs of an UNMANAGED IOMMU domain, as a passthrough device's
 * guest RAM. Mapping pins the pages long-term (FOLL_LONGTERM: they first
 * leave CMA and ZONE_MOVABLE, seed 002) and maps each physically
 * contiguous run with one iommu_map(), so the IOMMU gets 2 MiB and 1 GiB
 * entries where memory and IOVA alignment allow (seed 004).
 *
 * Conventions in this header:
 *   @c:     a container made by iom_vfio_container_create().
 *   @vaddr: a user address of the container's process, page aligned.
 *   @iova:  an I/O virtual address of the container's domain, page aligned.
 *   @size:  bytes, a multiple of the page size.
 *
 * Locks: each container has one mutex (the kernel's iommu->lock); every
 * call on a container takes it, so calls on one container serialise and
 * calls on different containers run in parallel. Devices may do DMA
 * through the domain at any time: an unmap completes the IOTLB
 * invalidation before the pages are unpinned.
 */
#ifndef IOMMIG_VFIO_H
#define IOMMIG_VFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iommig/export.h>
#include <iommig/io-pgtable.h>
#include <iommig/iommu.h>
#include <iommig/machine.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iom_mm;
struct iom_vfio_container;

/* container types (VFIO_SET_IOMMU), the uapi values */
#define IOM_VFIO_TYPE1_IOMMU		1
#define IOM_VFIO_TYPE1v2_IOMMU		3

/* map flags (struct vfio_iommu_type1_dma_map.flags): the device's view */
#define IOM_VFIO_DMA_MAP_FLAG_READ	(1U << 0)	/* = IOM_IOMMU_READ */
#define IOM_VFIO_DMA_MAP_FLAG_WRITE	(1U << 1)	/* = IOM_IOMMU_WRITE */

/* unmap flags (struct vfio_iommu_type1_dma_unmap.flags) */
#define IOM_VFIO_DMA_UNMAP_FLAG_ALL	(1U << 1)	/* iova and size 0: everything */

/* the kernel's module parameter dma_entry_limit default (U16_MAX) */
#define IOM_VFIO_DMA_ENTRY_LIMIT_DEFAULT	65535U
/* the kernel's default RLIMIT_MEMLOCK (MLOCK_LIMIT, 8 MiB) */
#define IOM_VFIO_MEMLOCK_DEFAULT	(8ULL << 20)
/* no limit: RLIM_INFINITY, or a task with CAP_IPC_LOCK (dma->lock_cap) */
#define IOM_VFIO_MEMLOCK_UNLIMITED	UINT64_MAX

/**
 * struct iom_vfio_config - a container. Zero means "default".
 * @type:            IOM_VFIO_TYPE1v2_IOMMU (default) or IOM_VFIO_TYPE1_IOMMU
 *                   (the v1 unmap semantics, see iom_vfio_unmap_dma()).
 * @dma_entry_limit: most mappings at once (default 65535, the module
 *                   parameter dma_entry_limit).
 * @memlock_limit:   bytes the container may keep pinned (RLIMIT_MEMLOCK;
 *                   default 8 MiB; IOM_VFIO_MEMLOCK_UNLIMITED for none).
 * @disable_hugepages: the module parameter: pin and map one page at a
 *                   time, one iommu_map() of 4 KiB each, as the kernel did
 *                   before "vfio: hugepage support for vfio_iommu_type1"
 *                   (seed 004): for comparison.
 */
struct iom_vfio_config {
	unsigned int type;
	unsigned int dma_entry_limit;
	uint64_t memlock_limit;
	bool disable_hugepages;
};

/**
 * iom_vfio_container_create() - a container for process @mm
 * (VFIO_SET_IOMMU with a group attached: vfio_iommu_type1_open() and the
 * domain part of vfio_iommu_type1_attach_group()).
 * @mm:     the process whose memory is mapped; must outlive every
 *          iom_vfio_map_dma() call (unmaps and the destroy do not use it).
 * @iommu:  with a NULL @domain: the IOMMU unit to make the container's own
 *          UNMANAGED domain on (freed by iom_vfio_container_destroy()).
 * @domain: an UNMANAGED domain of the caller's, or NULL (then @iommu). The
 *          container assumes it owns the IOVA space of the domain.
 * @cfg:    NULL for every default.
 * @out:    receives the container.
 * Context: any thread.
 * Return: 0 and *@out; -EINVAL (NULL @mm or @out, neither @iommu nor
 * @domain, a domain that is not UNMANAGED or of another machine, a bad
 * @cfg->type); -ENOMEM; -ENOSPC (no domain id left).
 */
IOM_API int iom_vfio_container_create(struct iom_mm *mm, struct iom_iommu *iommu,
				      struct iom_iommu_domain *domain,
				      const struct iom_vfio_config *cfg,
				      struct iom_vfio_container **out);

/**
 * iom_vfio_container_destroy() - vfio_iommu_type1_release(): unmap and
 * unpin every mapping, then free the container (and its own domain).
 * NULL is a no-op.
 * Context: no other call on @c may run or follow.
 * Return: 0; -EBUSY if a device is still attached to the container's own
 * domain: the mappings are gone, the container stays (empty); detach the
 * device and call again.
 */
IOM_API int iom_vfio_container_destroy(struct iom_vfio_container *c);

/**
 * iom_vfio_container_domain() - the IOMMU domain of @c (to attach devices).
 * Context: any thread. Return: the domain; NULL for a NULL @c.
 */
IOM_API struct iom_iommu_domain *
iom_vfio_container_domain(struct iom_vfio_container *c);

/**
 * iom_vfio_map_dma() - VFIO_IOMMU_MAP_DMA (vfio_dma_do_map() ->
 * vfio_pin_map_dma()): pin @size bytes of the process from @vaddr with
 * FOLL_LONGTERM (and FOLL_WRITE when @prot has WRITE) and map them at
 * @iova. vfio_pin_pages_remote() pins up to 512 pages at a time and hands
 * back each physically contiguous run, which vfio_iommu_map() maps with
 * one iommu_map() (page by page with @cfg->disable_hugepages). Each
 * pinned page is accounted against the memlock limit before the next.
 * @prot: IOM_VFIO_DMA_MAP_FLAG_READ and/or _WRITE (the device's access).
 * Context: takes the container's lock; may sleep (faults, migration out
 * of CMA and ZONE_MOVABLE).
 * Return: 0; -EINVAL (NULL @c, @size 0, unaligned @vaddr/@iova/@size,
 * wrap of either range, @prot without READ and WRITE or with other bits,
 * @iova beyond the domain's input address bits); -EEXIST (overlaps a
 * mapping); -ENOSPC (dma_entry_limit mappings exist); -ENOMEM (the memlock
 * limit, with the kernel's "vfio_pin_pages_remote: RLIMIT_MEMLOCK (%ld)
 * exceeded" warning, or no memory); -EFAULT (a hole in the process's
 * mappings, or a VMA without the access). On error nothing stays pinned
 * or mapped.
 */
IOM_API int iom_vfio_map_dma(struct iom_vfio_container *c, uint64_t vaddr,
			     unsigned long iova, uint64_t size, unsigned int prot);

/**
 * iom_vfio_unmap_dma() - VFIO_IOMMU_UNMAP_DMA (vfio_dma_do_unmap() ->
 * vfio_remove_dma() -> vfio_unmap_unpin()): remove whole mappings in
 * @iova..+@size. Each is unmapped by walking it with iova_to_phys(),
 * unmapping each physically contiguous stretch with one
 * iommu_unmap_fast(), syncing the IOTLB every 512 stretches and at the
 * end, and only then unpinning the pages of the synced stretches.
 *
 * Type1v2: a mapping the range splits is -EINVAL (nothing unmapped); every
 * mapping inside the range is unmapped; none there: 0 bytes.
 * Type1 (v1): mappings are removed from the first that starts at or after
 * @iova while they start inside the range, whole even when the range ends
 * inside one; a range starting inside a mapping unmaps nothing (0 bytes).
 * @flags:    0 or IOM_VFIO_DMA_UNMAP_FLAG_ALL (then @iova and @size must
 *            be 0: every mapping goes).
 * @unmapped: if not NULL, receives the bytes unmapped (also on error: 0).
 * Context: takes the container's lock; waits for the IOTLB invalidations.
 * Return: 0; -EINVAL (NULL @c, unknown @flags, FLAG_ALL with a range,
 * @size 0, unaligned @iova/@size, a wrapping range, v2's split mapping).
 */
IOM_API int iom_vfio_unmap_dma(struct iom_vfio_container *c, unsigned long iova,
			       uint64_t size, unsigned int flags,
			       uint64_t *unmapped);

/**
 * struct iom_vfio_info - what a container holds now.
 * @nr_dma:          mappings (struct vfio_dma entries).
 * @dma_avail:       more mappings allowed before -ENOSPC.
 * @locked:          bytes pinned and accounted (locked_vm).
 * @nr_leaves:       IOMMU leaf entries of the domain by level: [1] 1 GiB
 *                   blocks, [2] 2 MiB blocks, [3] 4 KiB pages.
 * @nr_entries:      their sum.
 * @nr_pgtable_pages: table pages of the domain's io-pgtable, the top
 *                   level included.
 * @map_calls:       iommu_map() calls made by this container so far.
 * @unmap_calls:     iommu_unmap_fast() calls so far.
 * @iotlb_syncs:     iommu_iotlb_sync() calls so far.
 */
struct iom_vfio_info {
	unsigned long nr_dma;
	unsigned long dma_avail;
	uint64_t locked;
	unsigned long nr_leaves[IOM_IO_PGTABLE_MAX_LEVELS];
	unsigned long nr_entries;
	unsigned long nr_pgtable_pages;
	uint64_t map_calls;
	uint64_t unmap_calls;
	uint64_t iotlb_syncs;
};

/**
 * iom_vfio_get_info() - fill @info for @c. Counting the leaves walks the
 * domain's whole table.
 * Context: takes the container's lock; nothing else may map or unmap in
 * the domain meanwhile.
 * Return: 0; -EINVAL (NULL argument).
 */
IOM_API int iom_vfio_get_info(struct iom_vfio_container *c,
			      struct iom_vfio_info *info);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_VFIO_H */
