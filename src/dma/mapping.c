/* SPDX-License-Identifier: MIT */
/*
 * The DMA API's front: kernel/dma/mapping.c (dma_alloc_attrs,
 * dma_free_attrs, dma_map_page_attrs, dma_map_sg_attrs, dma_sync_*,
 * dma_set_mask, dma_mapping_error, dma_mmap_attrs) over the IOMMU
 * backend in dma-iommu.c, with dma-debug's hooks around each call, and
 * the device's DMA state (masks, the movable/legacy choice, the migration
 * mode, the live coherent buffers).
 *
 * Simplified: every device is behind an IOMMU (no dma-direct, no swiotlb);
 * the state the kernel keeps in struct device is made on first use and
 * hangs off the simulated device (iom_device_dma_state()). Unlike the
 * kernel, a free or unmap that does not match what was allocated is
 * refused with -EINVAL (nothing changes) whether dma-debug is on or not.
 */
#include <errno.h>
#include <stddef.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/dma-mapping.h>

#include "../core/debug.h"
#include "dma-debug.h"
#include "dma-internal.h"

/* ---- the device's DMA state --------------------------------------------- */

static void *dma_dev_state_make(struct iom_device *dev)
{
	struct dma_dev_state *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->dev = dev;
	st->m = iom_device_machine(dev);
	pthread_mutex_init(&st->lock, NULL);
	/* the kernel's default: 32-bit streaming and coherent masks */
	atomic_init(&st->dma_mask, IOM_DMA_BIT_MASK(32));
	atomic_init(&st->coherent_dma_mask, IOM_DMA_BIT_MASK(32));
	atomic_init(&st->alloc_mode, IOM_DMA_ALLOC_DEFAULT);
	atomic_init(&st->migrate_mode, IOM_DMA_MIGRATE_SEED);
	atomic_init(&st->iomap_scope, IOM_DMA_IOMAP_PER_BUFFER);
	return st;
}

/* At iom_device_destroy(): refuse while coherent buffers are live. */
static int dma_dev_state_release(void *p)
{
	struct dma_dev_state *st = p;
	long nr;

	pthread_mutex_lock(&st->lock);
	nr = st->nr_buffers;
	pthread_mutex_unlock(&st->lock);
	if (nr) {
		iom_warn(st->m, "dma: %s: destroyed with %ld coherent buffers still allocated",
			 iom_dev_name(st->dev), nr);
		return -EBUSY;
	}
	pthread_mutex_destroy(&st->lock);
	free(st);
	return 0;
}

struct dma_dev_state *dma_dev_state(struct iom_device *dev)
{
	if (!dev)
		return NULL;
	return iom_device_dma_state(dev, dma_dev_state_make, dma_dev_state_release);
}

struct __iommu_buffer *dma_buffer_get(struct iom_device *dev, void *cpu_addr)
{
	struct dma_dev_state *st = dma_dev_state(dev);
	struct __iommu_buffer *ib = NULL;

	if (!st || !cpu_addr)
		return NULL;
	pthread_mutex_lock(&st->lock);
	HASH_FIND_PTR(st->buffers, &cpu_addr, ib);
	if (ib)
		atomic_fetch_add(&ib->users, 1);
	pthread_mutex_unlock(&st->lock);
	return ib;
}

/* Is @ib still a live buffer of its device (not being freed)? st->lock held. */
static bool buffer_live(struct dma_dev_state *st, struct __iommu_buffer *ib)
{
	struct __iommu_buffer *found = NULL;

	HASH_FIND_PTR(st->buffers, &ib->cpu_addr, found);
	return found == ib;
}

void dma_buffer_put(struct __iommu_buffer *ib)
{
	atomic_fetch_sub_explicit(&ib->users, 1, memory_order_release);
}

/* Store one of @dev's settings (an int of its state at @off) in [0, @hi]. */
static int set_setting(struct iom_device *dev, size_t off, long value, long hi)
{
	struct dma_dev_state *st;

	if (!dev || value < 0 || value > hi)
		return -EINVAL;
	st = dma_dev_state(dev);
	if (!st)
		return -ENOMEM;
	atomic_store((_Atomic int *)((char *)st + off), (int)value);
	return 0;
}

int iom_dma_set_alloc_mode(struct iom_device *dev, enum iom_dma_alloc_mode mode)
{
	return set_setting(dev, offsetof(struct dma_dev_state, alloc_mode), mode,
			   IOM_DMA_ALLOC_LEGACY);
}

int iom_dma_set_migrate_mode(struct iom_device *dev, enum iom_dma_migrate_mode mode)
{
	return set_setting(dev, offsetof(struct dma_dev_state, migrate_mode), mode,
			   IOM_DMA_MIGRATE_NONBLOCK);
}

int iom_dma_set_page_order(struct iom_device *dev, unsigned int order)
{
	if (!dev)
		return -EINVAL;
	return set_setting(dev, offsetof(struct dma_dev_state, page_order), (long)order,
			   (long)iom_pageblock_order(iom_device_machine(dev)));
}

int iom_dma_set_iomap_scope(struct iom_device *dev, enum iom_dma_iomap_scope scope)
{
	return set_setting(dev, offsetof(struct dma_dev_state, iomap_scope), scope,
			   IOM_DMA_IOMAP_PER_DOMAIN);
}

/* dma_supported(): the IOMMU can serve any mask that covers a page. */
static int set_mask(struct iom_device *dev, uint64_t mask, bool streaming, bool coherent)
{
	struct dma_dev_state *st;

	if (!dev)
		return -EINVAL;
	if (mask < IOM_DMA_BIT_MASK(IOM_PAGE_SHIFT + 1))
		return -EIO;
	st = dma_dev_state(dev);
	if (!st)
		return -ENOMEM;
	if (streaming)
		atomic_store(&st->dma_mask, mask);
	if (coherent)
		atomic_store(&st->coherent_dma_mask, mask);
	return 0;
}

int iom_dma_set_mask(struct iom_device *dev, uint64_t mask)
{
	return set_mask(dev, mask, true, false);
}

int iom_dma_set_coherent_mask(struct iom_device *dev, uint64_t mask)
{
	return set_mask(dev, mask, false, true);
}

int iom_dma_set_mask_and_coherent(struct iom_device *dev, uint64_t mask)
{
	return set_mask(dev, mask, true, true);
}

uint64_t iom_dma_get_mask(struct iom_device *dev)
{
	struct dma_dev_state *st = dev ? dma_dev_state(dev) : NULL;

	return st ? atomic_load(&st->dma_mask) : IOM_DMA_BIT_MASK(32);
}

/* ---- coherent buffers --------------------------------------------------- */

void *iom_dma_alloc_coherent(struct iom_device *dev, size_t size,
			     iom_dma_addr_t *dma_handle, iom_gfp_t gfp,
			     unsigned long attrs)
{
	struct dma_dev_state *st;
	struct __iommu_buffer *ib;
	int err = 0;

	if (!dev || !dma_handle || !size || size > (SIZE_MAX >> 1) ||
	    (gfp & ~IOM_GFP_VALID_MASK)) {
		errno = EINVAL;
		return NULL;
	}
	st = dma_dev_state(dev);
	if (!st) {
		errno = ENOMEM;
		return NULL;
	}
	ib = iommu_dma_alloc(dev, size, dma_handle, gfp, attrs, &err);
	if (!ib) {
		errno = -err;
		return NULL;
	}
	ib->cpu_addr = ib;
	pthread_mutex_lock(&st->lock);
	HASH_ADD_PTR(st->buffers, cpu_addr, ib);
	st->nr_buffers++;
	pthread_mutex_unlock(&st->lock);
	debug_dma_alloc_coherent(dev, size, *dma_handle, ib, attrs);
	return ib;
}

int iom_dma_free_coherent(struct iom_device *dev, size_t size, void *cpu_addr,
			  iom_dma_addr_t dma_handle, unsigned long attrs)
{
	struct dma_dev_state *st;
	struct __iommu_buffer *ib = NULL;
	size_t rsize = (size + IOM_PAGE_SIZE - 1) & ~(IOM_PAGE_SIZE - 1);
	int ret = 0;

	(void)attrs;
	if (!dev)
		return -EINVAL;
	st = dma_dev_state(dev);
	if (!st)
		return -ENOMEM;
	pthread_mutex_lock(&st->lock);
	if (cpu_addr)
		HASH_FIND_PTR(st->buffers, &cpu_addr, ib);
	if (!ib || ib->dma_addr != dma_handle || ib->size != rsize) {
		ret = -EINVAL;
	} else if (iommu_dma_buffer_mapped(ib) || ib->nr_shares) {
		ret = -EBUSY;		/* a process maps it, or a device shares it */
	} else {
		HASH_DEL(st->buffers, ib);
		st->nr_buffers--;
	}
	pthread_mutex_unlock(&st->lock);
	debug_dma_free_coherent(dev, size, cpu_addr, dma_handle, ret == 0);
	if (ret) {
		if (ret == -EINVAL && !dma_debug_enabled(dev))
			iom_warn(st->m, "dma: %s: dma_free_coherent of %p (iova %#llx, %zu bytes): "
				 "no such buffer", iom_dev_name(dev), cpu_addr,
				 (unsigned long long)dma_handle, size);
		return ret;
	}
	/* no new user can find it; wait for the vmap accesses in progress */
	while (atomic_load_explicit(&ib->users, memory_order_acquire))
		sched_yield();
	iommu_dma_free(ib);
	return 0;
}

static int vmap_rw(struct iom_device *dev, void *cpu_addr, size_t offset,
		   void *buf, size_t len, bool write)
{
	struct __iommu_buffer *ib;
	int ret;

	if (!dev || (!buf && len))
		return -EINVAL;
	ib = dma_buffer_get(dev, cpu_addr);
	if (!ib)
		return -EINVAL;
	if ((ib->attrs & IOM_DMA_ATTR_NO_KERNEL_MAPPING) || offset > ib->size ||
	    len > ib->size - offset)
		ret = -EINVAL;
	else
		ret = iommu_dma_vmap_rw(ib, offset, buf, len, write);
	dma_buffer_put(ib);
	return ret;
}

int iom_dma_vmap_read(struct iom_device *dev, void *cpu_addr, size_t offset,
		      void *buf, size_t len)
{
	return vmap_rw(dev, cpu_addr, offset, buf, len, false);
}

int iom_dma_vmap_write(struct iom_device *dev, void *cpu_addr, size_t offset,
		       const void *buf, size_t len)
{
	return vmap_rw(dev, cpu_addr, offset, (void *)buf, len, true);
}

int iom_dma_mmap(struct iom_device *dev, struct iom_mm *mm, void *cpu_addr,
		 iom_dma_addr_t dma_handle, size_t size, int prot, uint64_t *addrp)
{
	struct __iommu_buffer *ib;
	struct dma_dev_state *st;
	int ret;

	if (!dev || !mm || !addrp)
		return -EINVAL;
	st = dma_dev_state(dev);
	if (!st)
		return -ENOMEM;
	ib = dma_buffer_get(dev, cpu_addr);
	if (!ib)
		return -EINVAL;
	if (ib->dma_addr != dma_handle || !size || size > ib->size)
		ret = -EINVAL;
	else if (ib->legacy || ib->compound)
		ret = -ENXIO;
	else {
		/*
		 * Under the state lock, where the free checks that nothing
		 * maps the buffer and takes it out of the table: a buffer
		 * already on its way out is not mapped.
		 */
		pthread_mutex_lock(&st->lock);
		if (!buffer_live(st, ib))
			ret = -EINVAL;
		else
			ret = iom_iomap_mmap(ib->iomapp, mm, 0,
					     (size + IOM_PAGE_SIZE - 1) & ~(IOM_PAGE_SIZE - 1),
					     ib->index_base, prot, addrp);
		pthread_mutex_unlock(&st->lock);
	}
	dma_buffer_put(ib);
	return ret;
}

int iom_dma_buffer_attach(struct iom_device *dev, void *cpu_addr,
			  struct iom_device *other, iom_dma_addr_t *handle)
{
	struct __iommu_buffer *ib;
	struct dma_dev_state *st;
	int ret;

	if (!dev || !other || !handle ||
	    iom_device_machine(dev) != iom_device_machine(other))
		return -EINVAL;
	ib = dma_buffer_get(dev, cpu_addr);
	if (!ib)
		return -EINVAL;
	/* as for mmap: the free checks the shares under the state lock */
	st = dma_dev_state(dev);
	pthread_mutex_lock(&st->lock);
	ret = buffer_live(st, ib) ? iommu_dma_attach(ib, other, handle) : -EINVAL;
	pthread_mutex_unlock(&st->lock);
	dma_buffer_put(ib);
	return ret;
}

int iom_dma_buffer_detach(struct iom_device *dev, void *cpu_addr,
			  struct iom_device *other, iom_dma_addr_t handle)
{
	struct __iommu_buffer *ib;
	int ret;

	if (!dev || !other)
		return -EINVAL;
	ib = dma_buffer_get(dev, cpu_addr);
	if (!ib)
		return -EINVAL;
	ret = iommu_dma_detach(ib, other, handle);
	dma_buffer_put(ib);
	return ret;
}

int iom_dma_munmap(struct iom_mm *mm, uint64_t addr, size_t size)
{
	return iom_munmap(mm, addr, size);
}

struct iom_page *iom_dma_buffer_page(struct iom_device *dev, void *cpu_addr,
				     size_t offset)
{
	struct __iommu_buffer *ib = dma_buffer_get(dev, cpu_addr);
	struct iom_page *page = NULL;

	if (!ib)
		return NULL;
	if (offset < ib->size) {
		unsigned long idx = (unsigned long)(offset >> IOM_PAGE_SHIFT);

		if (ib->legacy) {
			page = ib->pages[idx];
			iom_get_page(iom_device_machine(dev), page);	/* its block's */
		} else {
			/*
			 * The IOMAP holds a compound page at its first index.
			 * The speculative lookup takes a reference on the page
			 * the slot holds now, retrying across a migration.
			 */
			page = iom_find_get_page(&ib->iomapp->mapping,
						 ib->index_base + idx - ib->sub[idx]);
			if (page)
				page += ib->sub[idx];	/* the reference is the head's */
		}
	}
	dma_buffer_put(ib);
	return page;
}

/* ---- streaming mappings ------------------------------------------------- */

static bool valid_dir(enum iom_dma_data_direction dir)
{
	return dir == IOM_DMA_BIDIRECTIONAL || dir == IOM_DMA_TO_DEVICE ||
	       dir == IOM_DMA_FROM_DEVICE;
}

iom_dma_addr_t iom_dma_map_page(struct iom_device *dev, struct iom_page *page,
				size_t offset, size_t size,
				enum iom_dma_data_direction dir, unsigned long attrs)
{
	struct iom_machine *m = iom_device_machine(dev);
	iom_dma_addr_t addr;

	if (!dev || !page || !size || !valid_dir(dir) || !m ||
	    iom_page_to_pfn(m, page) == (unsigned long)-1 ||
	    size > (SIZE_MAX >> 1) || offset > (SIZE_MAX >> 1))
		return IOM_DMA_MAPPING_ERROR;
	if (iom_page_to_pfn(m, page) + ((offset + size - 1) >> IOM_PAGE_SHIFT) >= iom_end_pfn(m))
		return IOM_DMA_MAPPING_ERROR;
	addr = iommu_dma_map_page(dev, page, offset, size, dir, attrs);
	if (addr != IOM_DMA_MAPPING_ERROR)
		debug_dma_map_page(dev, page, offset, size, dir, addr, attrs);
	return addr;
}

int iom_dma_unmap_page(struct iom_device *dev, iom_dma_addr_t addr, size_t size,
		       enum iom_dma_data_direction dir, unsigned long attrs)
{
	int ret;

	(void)attrs;
	if (!dev || !size || !valid_dir(dir))
		return -EINVAL;
	ret = iommu_dma_unmap_page(dev, addr, size);
	debug_dma_unmap_page(dev, addr, size, dir, ret == 0);
	return ret == -ENODEV ? -EINVAL : ret;
}

int iom_dma_mapping_error(struct iom_device *dev, iom_dma_addr_t addr)
{
	if (dev)
		debug_dma_mapping_error(dev, addr);
	return addr == IOM_DMA_MAPPING_ERROR;
}

int iom_dma_map_sg(struct iom_device *dev, struct iom_scatterlist *sg, int nents,
		   enum iom_dma_data_direction dir, unsigned long attrs)
{
	struct iom_machine *m = iom_device_machine(dev);
	int mapped;

	if (!dev || !sg || nents <= 0 || !valid_dir(dir) || !m)
		return 0;
	for (int i = 0; i < nents; i++) {
		unsigned long pfn = sg[i].page ? iom_page_to_pfn(m, sg[i].page) : (unsigned long)-1;

		/* as map_page: the entry's last byte must be memory of @m */
		if (!sg[i].length || pfn == (unsigned long)-1 ||
		    pfn + (((size_t)sg[i].offset + sg[i].length - 1) >> IOM_PAGE_SHIFT) >=
		    iom_end_pfn(m))
			return 0;
	}
	mapped = iommu_dma_map_sg(dev, sg, nents, dir, attrs);
	if (mapped > 0)
		debug_dma_map_sg(dev, sg, nents, mapped, dir, attrs);
	return mapped;
}

int iom_dma_unmap_sg(struct iom_device *dev, struct iom_scatterlist *sg, int nents,
		     enum iom_dma_data_direction dir, unsigned long attrs)
{
	int ret;

	(void)attrs;
	if (!dev || !sg || nents <= 0 || !valid_dir(dir))
		return -EINVAL;
	ret = iommu_dma_unmap_sg(dev, sg, nents);
	debug_dma_unmap_sg(dev, sg, nents, dir, ret == 0);
	return ret == -ENODEV ? -EINVAL : ret;
}

int iom_dma_sync_single_for_cpu(struct iom_device *dev, iom_dma_addr_t addr,
				size_t size, enum iom_dma_data_direction dir)
{
	if (!dev || !valid_dir(dir))
		return -EINVAL;
	/* a cache-coherent machine: nothing to invalidate */
	debug_dma_sync_single_for_cpu(dev, addr, size, dir);
	return 0;
}

int iom_dma_sync_single_for_device(struct iom_device *dev, iom_dma_addr_t addr,
				   size_t size, enum iom_dma_data_direction dir)
{
	if (!dev || !valid_dir(dir))
		return -EINVAL;
	debug_dma_sync_single_for_device(dev, addr, size, dir);
	return 0;
}

long iom_dma_device_release(struct iom_device *dev)
{
	struct dma_dev_state *st;
	long nr;

	if (!dev)
		return -EINVAL;
	if (dma_debug_enabled(dev))
		return debug_dma_device_release(dev);
	st = dma_dev_state(dev);
	if (!st)
		return -ENOMEM;
	pthread_mutex_lock(&st->lock);
	nr = st->nr_buffers;
	pthread_mutex_unlock(&st->lock);
	return nr;
}
