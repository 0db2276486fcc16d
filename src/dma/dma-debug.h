/* SPDX-License-Identifier: MIT */
/*
 * dma-debug's hooks (include/linux/dma-debug.h), called by the DMA API in
 * mapping.c around each operation when the machine's config has
 * dma_debug set. Entries live in a uthash table per machine (the
 * kernel's dma_entry hash), keyed by device and DMA address.
 *
 * Unlike the kernel, whose unmap always happens, libiommig refuses an
 * unmap that would corrupt its state (a wrong size): the unmap hooks are
 * told whether the operation was done (@done) and drop the entry only
 * then; the report is the same either way.
 */
#ifndef IOM_DMA_DEBUG_H
#define IOM_DMA_DEBUG_H

#include <stdbool.h>
#include <stddef.h>

#include <iommig/dma-mapping.h>

/* Is dma-debug on for @dev's machine? */
bool dma_debug_enabled(struct iom_device *dev);

void debug_dma_map_page(struct iom_device *dev, struct iom_page *page,
			size_t offset, size_t size, int dir,
			iom_dma_addr_t dma_addr, unsigned long attrs);
void debug_dma_mapping_error(struct iom_device *dev, iom_dma_addr_t dma_addr);
void debug_dma_unmap_page(struct iom_device *dev, iom_dma_addr_t addr,
			  size_t size, int dir, bool done);
void debug_dma_map_sg(struct iom_device *dev, struct iom_scatterlist *sg,
		      int nents, int mapped_ents, int dir, unsigned long attrs);
void debug_dma_unmap_sg(struct iom_device *dev, struct iom_scatterlist *sg,
			int nelems, int dir, bool done);
void debug_dma_alloc_coherent(struct iom_device *dev, size_t size,
			      iom_dma_addr_t dma_addr, void *virt,
			      unsigned long attrs);
void debug_dma_free_coherent(struct iom_device *dev, size_t size, void *virt,
			     iom_dma_addr_t addr, bool done);
void debug_dma_sync_single_for_cpu(struct iom_device *dev,
				   iom_dma_addr_t dma_handle, size_t size, int dir);
void debug_dma_sync_single_for_device(struct iom_device *dev,
				      iom_dma_addr_t dma_handle, size_t size,
				      int dir);
/* Report and return the entries @dev still has (driver unbind). */
long debug_dma_device_release(struct iom_device *dev);

#endif /* IOM_DMA_DEBUG_H */
