/* SPDX-License-Identifier: MIT */
/*
 * libiommig - device-private memory (ZONE_DEVICE, include/linux/memremap.h)
 * and migration of a process's pages to and from it (include/linux/
 * migrate.h: migrate_vma_setup/pages/finalize, mm/migrate_device.c).
 *
 * Conventions in this header:
 *   @m:      the machine.
 *   @pgmap:  a struct iom_dev_pagemap the driver embeds.
 *   @args:   a struct iom_migrate_vma the driver fills for one migration.
 *
 * A device-private page has a struct iom_page and 4 KiB of real content
 * (the device's memory) but no place in mem_map or the buddy allocator; its
 * pfn lies above the machine's memory. The CPU cannot map it: a process
 * page it holds is a device-private swap entry in the CPU page table, and
 * a CPU access to it calls the owner's ->migrate_to_ram(), which brings the
 * page back to system memory; the access is then retried.
 */
#ifndef IOMMIG_MIGRATE_DEVICE_H
#define IOMMIG_MIGRATE_DEVICE_H

#include <stdint.h>

#include <iommig/memory.h>
#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- struct dev_pagemap (include/linux/memremap.h) --------------------- */

/** enum iom_memory_type - only MEMORY_DEVICE_PRIVATE is modelled. */
enum iom_memory_type {
	IOM_MEMORY_DEVICE_PRIVATE = 1,
};

/**
 * struct iom_vm_fault - the CPU fault handed to ->migrate_to_ram()
 * (struct vm_fault, reduced).
 * @mm:      the faulting process; its mmap_lock is held for read.
 * @address: the faulting address, page-aligned.
 * @flags:   IOM_FAULT_FLAG_WRITE for a write.
 * @page:    the device-private page the CPU page table points at; locked
 *           and referenced by the fault path for the callback's duration.
 */
struct iom_vm_fault {
	struct iom_mm *mm;
	uint64_t address;
	unsigned int flags;
	struct iom_page *page;
};
#define IOM_FAULT_FLAG_WRITE	0x01

struct iom_dev_pagemap;

/**
 * struct iom_dev_pagemap_ops - the device driver's callbacks.
 * @page_free:      a device page's last reference went away (the kernel's
 *                  free_zone_device_page()); the driver takes it back into
 *                  its allocator. Called from any thread, possibly with a
 *                  process's page-table lock held: take only leaf locks.
 * @migrate_to_ram: a CPU access met the device-private entry of
 *                  @vmf->page: migrate at least that page back to system
 *                  memory (iom_migrate_vma_setup() with
 *                  IOM_MIGRATE_VMA_SELECT_DEVICE_PRIVATE, @fault_page set).
 *                  Return 0 (the access is retried) or -errno (the access
 *                  fails with -EFAULT, as VM_FAULT_SIGBUS).
 */
struct iom_dev_pagemap_ops {
	void (*page_free)(struct iom_page *page);
	int (*migrate_to_ram)(struct iom_vm_fault *vmf);
};

/**
 * struct iom_dev_pagemap - a range of device memory (struct dev_pagemap).
 * @type:      IOM_MEMORY_DEVICE_PRIVATE.
 * @nr_pages:  pages of the range (at most IOM_PGMAP_MAX_PAGES).
 * @ops:       page_free and migrate_to_ram, both required.
 * @owner:     the driver's cookie; migrate_vma selects only device pages of
 *             the caller's owner, and MMU notifiers see it as range->owner.
 *
 * Set by iom_memremap_pages(), read-only for the driver:
 * @pfn_first: the first pfn of the range (above the machine's memory).
 * @pages:     the @nr_pages struct iom_page of the range.
 * @m:         the machine.
 * Private:    @_contents, @_slot.
 */
struct iom_dev_pagemap {
	enum iom_memory_type type;
	unsigned long nr_pages;
	const struct iom_dev_pagemap_ops *ops;
	void *owner;

	unsigned long pfn_first;
	struct iom_page *pages;
	struct iom_machine *m;
	char *_contents;
	int _slot;
};

#define IOM_PGMAP_MAX_PAGES	(1UL << 24)	/* 64 GiB a range */
#define IOM_PGMAP_MAX_RANGES	64		/* ranges a machine */

/**
 * iom_memremap_pages() - memremap_pages(): create the struct iom_page
 * array and the content of @pgmap's device memory, at pfns above @m's
 * memory. Every page starts idle (refcount 0, owned by the driver), not in
 * the buddy allocator, and its pfn, page and address are known to
 * iom_pfn_to_page(), iom_page_to_pfn() and iom_page_address().
 * @m:     the machine.
 * @pgmap: filled by the driver (@type, @nr_pages, @ops, @owner).
 *
 * Context: any thread. Return: 0; -EINVAL (NULL, bad type or size,
 * missing ops, already mapped); -ENOMEM; -ENOSPC (no free range left).
 */
IOM_API int iom_memremap_pages(struct iom_machine *m,
			       struct iom_dev_pagemap *pgmap);
/**
 * iom_memunmap_pages() - memunmap_pages(): remove @pgmap's range. Every
 * page must be idle (migrated back, all references dropped).
 * Context: any thread. Return: 0; -EINVAL (NULL, not mapped); -EBUSY if a
 * page is still in use (nothing is changed).
 */
IOM_API int iom_memunmap_pages(struct iom_dev_pagemap *pgmap);
/**
 * iom_page_pgmap() - the dev_pagemap of @page, or NULL if @page is not a
 * device page of @m (is_device_private_page(), page->pgmap).
 */
IOM_API struct iom_dev_pagemap *iom_page_pgmap(const struct iom_machine *m,
					       const struct iom_page *page);
/**
 * iom_zone_device_page_init() - zone_device_page_init(): the driver hands
 * out the idle device @page: refcount 1, locked (as migrate_vma wants its
 * destination pages). Context: @page idle and owned by the caller.
 * Return: 0; -EINVAL if @page is not an idle device page.
 */
IOM_API int iom_zone_device_page_init(struct iom_machine *m,
				      struct iom_page *page);

/* ---- migrate_vma (include/linux/migrate.h) ----------------------------- */

/* src[]/dst[] entries: a pfn and flags, as the kernel's MIGRATE_PFN_*. */
#define IOM_MIGRATE_PFN_VALID	(1UL << 0)
#define IOM_MIGRATE_PFN_MIGRATE	(1UL << 1)
#define IOM_MIGRATE_PFN_WRITE	(1UL << 3)
#define IOM_MIGRATE_PFN_SHIFT	6

/** iom_migrate_pfn() - the dst[] entry of @pfn. */
static inline unsigned long iom_migrate_pfn(unsigned long pfn)
{
	return (pfn << IOM_MIGRATE_PFN_SHIFT) | IOM_MIGRATE_PFN_VALID;
}
/** iom_migrate_pfn_to_page() - the page of a src[]/dst[] entry, or NULL. */
IOM_API struct iom_page *iom_migrate_pfn_to_page(const struct iom_machine *m,
						 unsigned long mpfn);

/* flags of struct iom_migrate_vma */
#define IOM_MIGRATE_VMA_SELECT_SYSTEM		(1UL << 0)
#define IOM_MIGRATE_VMA_SELECT_DEVICE_PRIVATE	(1UL << 1)

/**
 * struct iom_migrate_vma - one migration (struct migrate_vma).
 * @mm:          the process; the caller holds its mmap_lock for read
 *               (iom_mmap_read_lock()) from setup to finalize, or is a
 *               ->migrate_to_ram() callback (the fault holds it).
 * @start, @end: the page-aligned range, inside ONE VMA (the kernel's
 *               @vma, which is internal here).
 * @src, @dst:   (@end - @start) / 4 KiB entries each, provided by the
 *               caller. setup fills @src and zeroes @dst; the caller fills
 *               @dst with iom_migrate_pfn() of locked destination pages.
 * @cpages:      set by setup: entries collected (MIGRATE set).
 * @npages:      set by setup: entries of the range.
 * @pgmap_owner: with SELECT_DEVICE_PRIVATE, only device pages whose
 *               pgmap->owner is this are selected; passed to MMU notifiers.
 * @flags:       IOM_MIGRATE_VMA_SELECT_SYSTEM and/or _DEVICE_PRIVATE.
 * @fault_page:  in ->migrate_to_ram(), the vmf->page (locked by the fault
 *               path and referenced once more); NULL otherwise.
 */
struct iom_migrate_vma {
	struct iom_mm *mm;
	uint64_t start;
	uint64_t end;
	unsigned long *src;
	unsigned long *dst;
	unsigned long cpages;
	unsigned long npages;
	void *pgmap_owner;
	unsigned long flags;
	struct iom_page *fault_page;
};

/**
 * iom_migrate_vma_setup() - step 2 of seed 003: invalidate secondary MMUs
 * (event MIGRATE with @args->pgmap_owner), collect the pages of the range
 * into @args->src, lock them, isolate them and replace their PTEs by
 * migration entries. A none PTE gives an entry with MIGRATE and no page
 * (the driver fills a zeroed page). A page also mapped in another process
 * (shared after fork) gets migration entries there too (try_to_migrate()).
 * Pages that cannot be taken (locked elsewhere, pinned or otherwise
 * referenced, not anonymous, not selected by @flags and @pgmap_owner) get
 * no MIGRATE bit.
 *
 * Simplified: anonymous private VMAs only (as the kernel largely), order-0
 * pages only.
 *
 * Context: @args->mm's mmap_lock held for read. May sleep (notifiers).
 * Return: 0 (even if nothing was collected: @cpages says); -EINVAL for a
 * NULL or unaligned argument, an empty range, a range not inside one VMA,
 * a VMA that is not anonymous private and readable, no or unknown select
 * flags, a @fault_page that is not a device page.
 */
IOM_API int iom_migrate_vma_setup(struct iom_migrate_vma *args);
/**
 * iom_migrate_vma_pages() - step 4: commit the migration of every entry
 * with both a MIGRATE src and a dst page: the dst page takes the src page's
 * mapping state (anon_vma, index); an empty src gets its dst page inserted
 * into the page table now (MIGRATE cleared if the CPU faulted a page in
 * meanwhile). Entries without dst lose MIGRATE.
 * Context: as setup, after it. Return: nothing.
 */
IOM_API void iom_migrate_vma_pages(struct iom_migrate_vma *args);
/**
 * iom_migrate_vma_finalize() - step 6: replace every migration entry by
 * the dst page (a present PTE for a system page, a device-private entry
 * for a device page), or restore the src page where migration did not
 * happen; unlock and release old pages (a device page whose last reference
 * goes calls ->page_free) and the dst pages' extra reference.
 * Context: as setup, after iom_migrate_vma_pages(). Return: nothing.
 */
IOM_API void iom_migrate_vma_finalize(struct iom_migrate_vma *args);

/**
 * iom_mmap_read_lock() - mmap_read_lock(@mm), steps 1 and 7 of seed 003.
 * Return: 0, -EINVAL for NULL.
 */
IOM_API int iom_mmap_read_lock(struct iom_mm *mm);
/** iom_mmap_read_unlock() - mmap_read_unlock(@mm). Return: 0, -EINVAL. */
IOM_API int iom_mmap_read_unlock(struct iom_mm *mm);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_MIGRATE_DEVICE_H */
