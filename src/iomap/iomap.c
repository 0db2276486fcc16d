/* SPDX-License-Identifier: MIT */
/*
 * IOMAP: seed 000's dummy address_space for DMA pages (the proposal's
 * mm/iomap.c, which mainline never merged). A page cache with no file
 * behind it: its radix tree says where each page of a DMA buffer is, its
 * a_ops let the MM migrate those pages and call the client (the DMA layer)
 * to copy them while devices are kept off, and dummy ->set_page_dirty and
 * ->releasepage keep the MM from treating page->private as buffer heads.
 *
 * Simplified: the seed's iomap_mmap() vm_insert_page()s into the caller's
 * VMA; here the VMA is a shared mapping of a file whose page cache is the
 * IOMAP's own (iom_inode_create_for_mapping()), populated at once, so rmap
 * finds it and migration entries work as for any shared file page.
 * Only the public MM API is used (include/iommig/{filemap,memory,migrate}.h).
 */
#include <errno.h>
#include <string.h>

#include <iommig/iomap.h>
#include <iommig/migrate.h>
#include <iommig/rcu.h>

#include "../core/trace.h"

/* the file a process maps to see an IOMAP's pages: every index an IOVA can have */
#define IOMAP_FILE_SIZE		(1ULL << 56)

static inline struct iom_iomap *to_iomap(struct iom_address_space *mapping)
{
	return (struct iom_iomap *)((char *)mapping - offsetof(struct iom_iomap, mapping));
}

/*
 * iomap_migratepage(): seed 000's TODO "fix layering": the client's
 * migrate_begin (block the device side), migrate_page(), migrate_end.
 * Without the hooks this is migrate_page() itself, as the seed's
 * iomap_aops had.
 */
static int iomap_migratepage(struct iom_address_space *mapping,
			     struct iom_page *newpage, struct iom_page *page,
			     enum iom_migrate_mode mode)
{
	struct iom_iomap *iomap = to_iomap(mapping);
	const struct iom_iomap_client_ops *cops = iomap->cops;
	int rc;

	if (cops->migrate_begin) {
		rc = cops->migrate_begin(iomap, page);
		if (rc)
			return rc;
	}
	rc = iom_migrate_page(mapping, newpage, page, mode);
	if (cops->migrate_end)
		cops->migrate_end(iomap, newpage, page, rc);
	return rc;
}

/*
 * iomap_migratepagecopy(): migrate_page_copy() calls this instead of
 * copying; the client copies while devices cannot write the page.
 */
static void iomap_migratepagecopy(struct iom_address_space *mapping,
				  struct iom_page *newpage, struct iom_page *page)
{
	struct iom_iomap *iomap = to_iomap(mapping);

	iom_trace(mapping->m, IOM_TRACE_IOMAP_MIGRATEPAGECOPY, 'i', iom_page_to_pfn(mapping->m, page), iom_page_to_pfn(mapping->m, newpage), newpage->index, 0);
	iomap->cops->migratepagecopy(iomap, newpage, page);
}

/* Offer a page of a migrate_pages() batch to the client. */
static void iomap_migrate_batch_add(struct iom_address_space *mapping,
				    struct iom_page *newpage, struct iom_page *page,
				    struct iom_migrate_batch *batch)
{
	struct iom_iomap *iomap = to_iomap(mapping);

	if (iomap->cops->migrate_batch_add)
		iomap->cops->migrate_batch_add(iomap, newpage, page, batch);
}

/* The seed's dummies: DMA pages are never written back... */
static bool iomap_set_page_dirty(struct iom_page *page)
{
	(void)page;
	return false;
}

/* ...and page->private is no buffer head: reclaim may not release them. */
static bool iomap_releasepage(struct iom_page *page, iom_gfp_t gfp)
{
	(void)page;
	(void)gfp;
	return false;
}

static const struct iom_address_space_operations iomap_aops = {
	.migratepage = iomap_migratepage,
	.migratepagecopy = iomap_migratepagecopy,
	.set_page_dirty = iomap_set_page_dirty,
	.releasepage = iomap_releasepage,
	.migrate_batch_add = iomap_migrate_batch_add,
};

int iom_iomap_create(struct iom_machine *m, struct iom_iomap *iomap,
		     const struct iom_iomap_client_ops *cops)
{
	int ret;

	if (!m || !iomap || !cops || !cops->migratepagecopy ||
	    (!cops->migrate_begin != !cops->migrate_end))
		return -EINVAL;
	ret = iom_address_space_init(&iomap->mapping, m, &iomap_aops);
	if (ret)
		return ret;
	/* no host: faults through iom_iomap_mmap() never create pages */
	iomap->mapping.host = NULL;
	iomap->mapping.private_data = NULL;
	iomap->cops = cops;
	iomap->file = NULL;
	return 0;
}

int iom_iomap_release(struct iom_iomap *iomap)
{
	int ret;

	if (!iomap || iomap->mapping.a_ops != &iomap_aops)
		return -EINVAL;
	if (iomap->mapping.nrpages)
		return -EBUSY;
	if (iomap->file) {
		ret = iom_inode_destroy(iomap->file);	/* -EBUSY while mapped */
		if (ret)
			return ret;
		iomap->file = NULL;
	}
	ret = iom_address_space_destroy(&iomap->mapping);
	if (!ret)
		iomap->mapping.a_ops = NULL;
	return ret;
}

int iom_iomap_insert_page(struct iom_iomap *iomap, struct iom_page *page,
			  unsigned long index)
{
	int ret;

	if (!iomap || !page || iomap->mapping.a_ops != &iomap_aops)
		return -EINVAL;
	if (iom_PagePrivate(page) || iom_PageLRU(page))
		return -EINVAL;
	iom_SetPagePrivate(page);
	ret = iom_add_to_page_cache_lru(page, &iomap->mapping, index, IOM_GFP_KERNEL);
	if (ret) {
		iom_ClearPagePrivate(page);
		return ret;
	}
	iom_unlock_page(page);
	return 0;
}

struct iom_page *iom_iomap_find_lock_page(struct iom_iomap *iomap,
					  unsigned long index)
{
	if (!iomap || iomap->mapping.a_ops != &iomap_aops)
		return NULL;
	return iom_find_lock_page(&iomap->mapping, index);
}

int iom_iomap_remove_page(struct iom_iomap *iomap, unsigned long index,
			  struct iom_page **pagep)
{
	struct iom_page *page;

	if (!iomap || iomap->mapping.a_ops != &iomap_aops)
		return -EINVAL;
	/*
	 * The page might have been migrated before we got its lock: the
	 * lookup retries until the page it locked is still the one at
	 * @index, and no migration can move a locked page.
	 */
	page = iom_find_lock_page(&iomap->mapping, index);
	if (!page)
		return -ENOENT;
	iom_delete_from_page_cache(page);
	iom_ClearPagePrivate(page);
	iom_unlock_page(page);
	iom_put_page(iomap->mapping.m, page);	/* the lookup's reference */
	if (pagep)
		*pagep = page;
	return 0;
}

int iom_iomap_mmap(struct iom_iomap *iomap, struct iom_mm *mm, uint64_t addr,
		   size_t len, unsigned long pgoff, int prot, uint64_t *addrp)
{
	unsigned long nr, i;
	int flags = IOM_MAP_SHARED;
	int ret;

	if (!iomap || !mm || !addrp || !len || iomap->mapping.a_ops != &iomap_aops ||
	    iom_mm_machine(mm) != iomap->mapping.m)
		return -EINVAL;
	if (len & (IOM_PAGE_SIZE - 1) ||
	    pgoff >= (IOMAP_FILE_SIZE >> IOM_PAGE_SHIFT) ||
	    len > IOMAP_FILE_SIZE - ((uint64_t)pgoff << IOM_PAGE_SHIFT))
		return -EINVAL;
	nr = (unsigned long)(len >> IOM_PAGE_SHIFT);
	/* every page of the range must be there: nothing is created */
	iom_rcu_read_lock();
	for (i = 0; i < nr; i++)
		if (!iom_radix_tree_lookup(&iomap->mapping.i_pages, pgoff + i))
			break;
	iom_rcu_read_unlock();
	if (i < nr)
		return -ENOENT;
	if (!__atomic_load_n(&iomap->file, __ATOMIC_ACQUIRE)) {
		struct iom_inode *file, *none = NULL;

		ret = iom_inode_create_for_mapping(&iomap->mapping, IOMAP_FILE_SIZE, &file);
		if (ret)
			return ret;
		/* two mappers of one IOMAP (devices of a domain): one file */
		if (!__atomic_compare_exchange_n(&iomap->file, &none, file, false,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			iom_inode_destroy(file);
	}
	if (addr)
		flags |= IOM_MAP_FIXED;
	/* vm_insert_page() for each page: populate now */
	return iom_mmap(mm, addr, len, prot, flags | IOM_MAP_POPULATE,
			__atomic_load_n(&iomap->file, __ATOMIC_ACQUIRE),
			(uint64_t)pgoff << IOM_PAGE_SHIFT, addrp);
}

struct iom_iomap *iom_page_iomap(const struct iom_page *page)
{
	struct iom_address_space *mapping;

	if (!page)
		return NULL;
	mapping = iom_page_mapping(page);
	if (!mapping || mapping->a_ops != &iomap_aops)
		return NULL;
	return to_iomap(mapping);
}

bool iom_PageIomap(const struct iom_page *page)
{
	return iom_page_iomap(page) != NULL;
}
