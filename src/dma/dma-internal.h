/* SPDX-License-Identifier: MIT */
/*
 * What the DMA layer's files share: a device's DMA state (the kernel's
 * struct device dma_* fields plus the live coherent buffers), seed 000's
 * struct __iommu_buffer, and dma-iommu.c's entry points behind mapping.c.
 */
#ifndef IOM_DMA_INTERNAL_H
#define IOM_DMA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <uthash.h>

#include <iommig/dma-mapping.h>
#include <iommig/iomap.h>

/*
 * struct dma_dev_state - one device's DMA settings and buffers.
 * @lock:    @buffers and @nr_buffers.
 * @buffers: live coherent buffers, by handle (the cpu_addr given out).
 */
struct dma_dev_state {
	struct iom_device *dev;
	struct iom_machine *m;
	pthread_mutex_t lock;
	_Atomic uint64_t dma_mask;
	_Atomic uint64_t coherent_dma_mask;
	_Atomic int alloc_mode;		/* enum iom_dma_alloc_mode */
	_Atomic int migrate_mode;	/* enum iom_dma_migrate_mode */
	_Atomic int iomap_scope;	/* enum iom_dma_iomap_scope */
	_Atomic int page_order;		/* movable buffers' page order */
	struct __iommu_buffer *buffers;
	long nr_buffers;
};

/*
 * The CPU view of one page of a movable buffer (seed 000's TODO "kernel
 * mappings"): the kernel would replace the VMALLOC PTE with a migration
 * entry; here an access marks itself in flight on the page and a
 * migration marks the page migrating, and each checks the other's mark
 * after its own (sequentially consistent, Dekker's pattern): an access
 * that finds the page migrating leaves and waits; the migration waits for
 * the accesses in flight before it copies. No page reference or lock is
 * taken, so the view never makes a page busy for the MM.
 */
struct dma_vmap_page {
	_Atomic unsigned int migrating;
	_Atomic unsigned int inflight;
	/* the MM batch this page is in (dma-iommu.c), the migrating thread's */
	struct dma_batch_group *bgroup;
	unsigned int bidx;
};

/*
 * struct dma_domain_state - a DMA domain's own IOMAP (seed 000's TODO
 * "IOMAP per IOMMU domain"): indexed by IOVA page, it holds the pages of
 * every per-domain-scope buffer of the domain; and the count of buffers
 * mapped in the domain, so the domain cannot be freed under them.
 */
struct dma_domain_state {
	struct iom_iomap iomap;
	struct iom_iommu_domain *domain;
	_Atomic long nr_buffers;	/* coherent buffers (and shares) mapped here */
};

/* Another device's view of a shared buffer (iom_dma_buffer_attach()). */
struct dma_share {
	struct iom_device *dev;
	struct iom_iommu_domain *domain;
	iom_dma_addr_t dma_addr;
};

/*
 * struct __iommu_buffer - seed 000's: an IOMAP (its own, or the domain's),
 * the device, the IOVA and the pages by index. Each page's ->private
 * points back to the buffer (PG_private pages keep ->private across
 * migration), which is how the IOMAP's client callback finds it.
 * @pages:   movable: pages[i] is the page at IOMAP index index_base + i
 *           (for a compound page: its subpage sub[i]), changed only
 *           under that page's lock (by the migration that replaces it);
 *           legacy: every 4 KiB page of the order-4..0 blocks.
 * @users:   vmap accessors and lookups in progress; the free waits.
 */
struct __iommu_buffer {
	struct iom_iomap iomap;		/* per-buffer scope */
	struct iom_iomap *iomapp;	/* the IOMAP the pages are in */
	unsigned long index_base;	/* IOMAP index of page 0 */
	struct iom_device *dev;
	struct iom_iommu_domain *domain;
	iom_dma_addr_t dma_addr;
	size_t size;			/* page-rounded */
	unsigned long nr_pages;
	unsigned long attrs;
	bool legacy;
	bool compound;			/* some pages are of order > 0 */
	enum iom_dma_migrate_mode migrate_mode;
	/* index i is page sub[i] of its compound page (0: a head or order 0);
	 * fixed: a compound page migrates to one of its order */
	uint16_t *sub;
	_Atomic int users;
	struct dma_vmap_page *vmap;	/* movable: one per page */
	/* other devices' mappings; changed under the write lock, which
	 * excludes every migration's IOMMU step (they take it for read) */
	pthread_rwlock_t share_lock;
	unsigned int nr_shares;
	struct dma_share shares[IOM_DMA_MAX_SHARES];
	void *cpu_addr;			/* the handle given out: the key */
	UT_hash_handle hh;
	struct iom_page *pages[];
};

/* The device's state, made on first use. NULL: no memory. */
struct dma_dev_state *dma_dev_state(struct iom_device *dev);

/* The buffer @cpu_addr of @dev with a user reference, or NULL. */
struct __iommu_buffer *dma_buffer_get(struct iom_device *dev, void *cpu_addr);
void dma_buffer_put(struct __iommu_buffer *ib);

/* dma-iommu.c */
struct __iommu_buffer *iommu_dma_alloc(struct iom_device *dev, size_t size,
				       iom_dma_addr_t *handle, iom_gfp_t gfp,
				       unsigned long attrs, int *err);
/* Free @ib once it is out of the device's table and unused. */
void iommu_dma_free(struct __iommu_buffer *ib);
int iommu_dma_attach(struct __iommu_buffer *ib, struct iom_device *other,
		     iom_dma_addr_t *handle);
int iommu_dma_detach(struct __iommu_buffer *ib, struct iom_device *other,
		     iom_dma_addr_t handle);
/* Does a process map a page of @ib? */
bool iommu_dma_buffer_mapped(struct __iommu_buffer *ib);
int iommu_dma_vmap_rw(struct __iommu_buffer *ib, size_t offset, void *buf,
		      size_t len, bool write);
iom_dma_addr_t iommu_dma_map_page(struct iom_device *dev, struct iom_page *page,
				  size_t offset, size_t size,
				  enum iom_dma_data_direction dir, unsigned long attrs);
int iommu_dma_unmap_page(struct iom_device *dev, iom_dma_addr_t addr, size_t size);
int iommu_dma_map_sg(struct iom_device *dev, struct iom_scatterlist *sg, int nents,
		     enum iom_dma_data_direction dir, unsigned long attrs);
int iommu_dma_unmap_sg(struct iom_device *dev, struct iom_scatterlist *sg, int nents);

#endif /* IOM_DMA_INTERNAL_H */
