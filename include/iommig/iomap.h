/* SPDX-License-Identifier: MIT */
/*
 * libiommig - IOMAP, seed 000's layer between the DMA API and the MM: a
 * dummy address_space whose radix tree tracks where each page of a DMA
 * buffer is, so the MM's migration (compaction, CMA, migrate_pages) can
 * move DMA pages, and tells its client (the DMA layer) when it does.
 *
 * Conventions in this header:
 *   @iomap: an IOMAP, embedded by its client (the DMA layer embeds one in
 *           each buffer, or one per IOMMU domain).
 *   @page:  an order-0 page of the client's, or the head of a compound one.
 *   @index: the page's offset in the IOMAP, in 4 KiB pages.
 *
 * A page in an IOMAP is PG_private: that bit stands for the client's own
 * reference, so migrate_page_move_mapping() expects it (seed 000). The
 * page is on the LRU, so compaction and alloc_contig_range() find it;
 * reclaim never frees it (->releasepage refuses, the seed's dummy).
 *
 * Migration runs MM -> IOMAP -> client: the MM calls ->migratepage
 * (iomap_migratepage(): the client's ->migrate_begin, migrate_page(), the
 * client's ->migrate_end), and migrate_page_copy() calls
 * ->migratepagecopy (iomap_migratepagecopy() -> cops->migratepagecopy),
 * which must copy @page to @newpage while it keeps devices off the page.
 */
#ifndef IOMMIG_IOMAP_H
#define IOMMIG_IOMAP_H

#include <stdbool.h>
#include <stdint.h>

#include <iommig/export.h>
#include <iommig/filemap.h>
#include <iommig/memory.h>
#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iom_iomap;

/**
 * struct iom_iomap_client_ops - what IOMAP calls back in its client.
 * @migratepagecopy: copy @page (leaving) to @newpage (arriving at the same
 *                   index) and repoint every translation of the client
 *                   to @newpage (seed 000: iommu_migrate() with a copy
 *                   callback). Both pages are locked; @newpage already
 *                   holds @page's place in the IOMAP, so it cannot fail:
 *                   the MM can no longer undo the migration.
 * @migrate_begin:   optional (seed 000's TODO "fix layering"): called by
 *                   iomap_migratepage() before migrate_page(), e.g. to
 *                   block the IOMMU domain. Return: 0 or -errno (the
 *                   migration of this page fails with it).
 * @migrate_batch_add: optional: a_ops->migrate_batch_add for the IOMAP's
 *                   pages (join the MM's batch, <iommig/migrate.h>).
 * @migrate_end:     optional: called after migrate_page() with its result
 *                   when @migrate_begin returned 0 (unblock). On success
 *                   the client's page->private has moved to @newpage.
 */
struct iom_iomap_client_ops {
	void (*migratepagecopy)(struct iom_iomap *iomap, struct iom_page *newpage,
				struct iom_page *page);
	int (*migrate_begin)(struct iom_iomap *iomap, struct iom_page *page);
	void (*migrate_end)(struct iom_iomap *iomap, struct iom_page *newpage,
			    struct iom_page *page, int rc);
	void (*migrate_batch_add)(struct iom_iomap *iomap, struct iom_page *newpage,
				  struct iom_page *page, struct iom_migrate_batch *batch);
};

/**
 * struct iom_iomap - seed 000's struct iomap.
 * @mapping: the dummy address_space (its tree holds the pages by index).
 * @cops:    the client's operations.
 * @file:    the file a process maps to see the pages (made by the first
 *           iom_iomap_mmap()); the library's.
 */
struct iom_iomap {
	struct iom_address_space mapping;
	const struct iom_iomap_client_ops *cops;
	struct iom_inode *file;
};

/**
 * iom_iomap_create() - iomap_create(): an empty IOMAP of machine @m.
 * Return: 0; -EINVAL (NULL argument, or @cops without ->migratepagecopy).
 */
IOM_API int iom_iomap_create(struct iom_machine *m, struct iom_iomap *iomap,
			     const struct iom_iomap_client_ops *cops);

/**
 * iom_iomap_release() - iomap_release().
 * Return: 0; -EBUSY while pages are still inserted or a process still maps
 * the IOMAP (nothing changed).
 */
IOM_API int iom_iomap_release(struct iom_iomap *iomap);

/**
 * iom_iomap_insert_page() - iomap_insert_page(): set PG_private and add
 * @page at @index (add_to_page_cache_lru(), then unlock it). The IOMAP
 * takes a reference of its own; the caller's reference is the one
 * PG_private stands for.
 * Context: @page is the caller's, not in any mapping, not on an LRU.
 * Return: 0; -EEXIST (@index taken), -EINVAL, -ENOMEM. On error @page is
 * as it was given.
 */
IOM_API int iom_iomap_insert_page(struct iom_iomap *iomap, struct iom_page *page,
				  unsigned long index);

/**
 * iom_iomap_remove_page() - iomap_remove_page(): take the page at @index
 * out of the IOMAP and clear PG_private. The page may have been migrated
 * before we got its lock: the page removed is the one the IOMAP holds
 * once locked, which is returned in *@pagep (may be NULL), with the
 * caller's reference (the one PG_private stood for) still on it.
 * Context: may sleep (page lock).
 * Return: 0; -ENOENT (nothing at @index), -EINVAL.
 */
IOM_API int iom_iomap_remove_page(struct iom_iomap *iomap, unsigned long index,
				  struct iom_page **pagep);

/**
 * iom_iomap_find_lock_page() - the page at @index, locked, with a
 * reference (the caller drops both). While the caller holds the lock no
 * migration can move the page (migration holds the old page's lock from
 * before it unmaps it until after the copy).
 * Return: the page, or NULL.
 */
IOM_API struct iom_page *iom_iomap_find_lock_page(struct iom_iomap *iomap,
						  unsigned long index);

/**
 * iom_iomap_mmap() - iomap_mmap(): map pages [@pgoff, @pgoff + @len/4K)
 * of the IOMAP shared into process @mm at @addr (vm_insert_page() for
 * each, under RCU lookups). The VMA is in the IOMAP's rmap, so migration
 * replaces its PTEs with migration entries and CPU accesses through it
 * sleep until the page has moved. A page the IOMAP does not hold reads
 * as a fault (-EFAULT from iom_access()).
 * @prot: IOM_PROT_READ | IOM_PROT_WRITE.
 * Return: 0 and the address in *@addrp; -EINVAL (bad range, flags,
 * alignment), -ENOMEM, -ENOENT (a page of the range is not in the IOMAP:
 * nothing is mapped).
 */
IOM_API int iom_iomap_mmap(struct iom_iomap *iomap, struct iom_mm *mm,
			   uint64_t addr, size_t len, unsigned long pgoff,
			   int prot, uint64_t *addrp);

/** iom_PageIomap() - PageIomap(): is @page in an IOMAP? */
IOM_API bool iom_PageIomap(const struct iom_page *page);

/** iom_page_iomap() - the IOMAP @page is in, or NULL. */
IOM_API struct iom_iomap *iom_page_iomap(const struct iom_page *page);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_IOMAP_H */
