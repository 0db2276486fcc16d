/* SPDX-License-Identifier: MIT */
/*
 * libiommig - simulated processes: address spaces with VMAs and page tables,
 * CPU accesses that fault, MMU notifiers, and reverse mapping
 * (include/linux/mm_types.h, mm.h, mmu_notifier.h, rmap.h; mm/memory.c,
 * mm/mmap.c, mm/mprotect.c, mm/rmap.c, mm/mmu_notifier.c).
 *
 * Conventions in this header:
 *   @mm:   a simulated process (struct iom_mm).
 *   @addr: a virtual address of @mm; page-aligned where the kernel requires.
 *   @len:  bytes.
 *
 * Locks: mm->mmap_lock (read for faults and accesses, write for mmap,
 * munmap, mprotect, fork); the page-table lock for PTE changes; the page
 * lock for rmap operations that change PTEs of one page. A CPU access that
 * meets a migration entry drops its locks and sleeps on the page lock until
 * migration ends, then retries (migration_entry_wait()).
 */
#ifndef IOMMIG_MEMORY_H
#define IOMMIG_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iommig/filemap.h>
#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iom_mm;

/* mmap(2) prot and flags, Linux values. */
#define IOM_PROT_NONE		0x0
#define IOM_PROT_READ		0x1
#define IOM_PROT_WRITE		0x2
#define IOM_PROT_EXEC		0x4
#define IOM_MAP_SHARED		0x01
#define IOM_MAP_PRIVATE		0x02
#define IOM_MAP_FIXED		0x10
#define IOM_MAP_ANONYMOUS	0x20
#define IOM_MAP_POPULATE	0x8000

/* The simulated user address space: [IOM_MMAP_MIN, IOM_TASK_SIZE). */
#define IOM_MMAP_MIN		0x10000ULL
#define IOM_TASK_SIZE		(1ULL << 47)

/** iom_mm_create() - an empty process on @m. Return: 0, -EINVAL, -ENOMEM. */
IOM_API int iom_mm_create(struct iom_machine *m, struct iom_mm **mmp);
/**
 * iom_mm_destroy() - exit_mmap(): notify, unmap everything, free the page
 * tables and drop every page's reference. Context: no access to @mm may be
 * running.
 */
IOM_API void iom_mm_destroy(struct iom_mm *mm);
/**
 * iom_fork() - dup_mmap(): a child with the same VMAs. Shared mappings map
 * the same pages; private ones share them read-only and copy on write,
 * except anonymous pages the parent may have DMA-pinned
 * (iom_pin_user_pages()), which the child gets a copy of at once.
 * Return: 0, -ENOMEM (nothing is left half-built).
 */
IOM_API int iom_fork(struct iom_mm *parent, struct iom_mm **childp);
/** iom_mm_machine() - the machine of @mm. */
IOM_API struct iom_machine *iom_mm_machine(const struct iom_mm *mm);

/**
 * iom_mmap() - map @len bytes at @addr (a hint, or exact with
 * IOM_MAP_FIXED, which first unmaps what is there), anonymous or of @file
 * from byte @offset, shared or private. With IOM_MAP_POPULATE every page is
 * faulted in before returning.
 * Return: 0 with the address in *@addrp; -EINVAL (bad flags, alignment,
 * length, offset beyond the file), -ENOMEM (no room, or no memory).
 */
IOM_API int iom_mmap(struct iom_mm *mm, uint64_t addr, size_t len, int prot,
		     int flags, struct iom_inode *file, uint64_t offset,
		     uint64_t *addrp);
/** iom_munmap() - unmap [@addr, @addr + @len). Return: 0, -EINVAL. */
IOM_API int iom_munmap(struct iom_mm *mm, uint64_t addr, size_t len);
/**
 * iom_mprotect() - change protection of a mapped range (splitting VMAs).
 * Return: 0; -ENOMEM if part of the range is unmapped; -EINVAL; -EACCES
 * for write access to a shared file mapping that may not be written.
 */
IOM_API int iom_mprotect(struct iom_mm *mm, uint64_t addr, size_t len, int prot);

/**
 * iom_access() - the CPU reads (@write false) or writes @len bytes at
 * @addr, through the page table, faulting pages in: zero-filled anonymous
 * pages, page-cache pages of a file, copy-on-write of private pages.
 * Context: any thread; may sleep on a migration entry.
 * Return: 0; -EFAULT outside a VMA or against its protection (nothing
 * after the faulting byte is accessed); -ENOMEM.
 */
IOM_API int iom_access(struct iom_mm *mm, uint64_t addr, void *buf, size_t len,
		       bool write);
/** iom_read() / iom_write() - iom_access() in one direction. */
IOM_API int iom_read(struct iom_mm *mm, uint64_t addr, void *buf, size_t len);
IOM_API int iom_write(struct iom_mm *mm, uint64_t addr, const void *buf,
		      size_t len);
/**
 * iom_follow_page() - the page mapped at @addr, with a reference, without
 * faulting (follow_page()). Return: 0; -ENOENT if nothing is mapped;
 * -EAGAIN if a migration entry is there; -EFAULT outside a VMA.
 */
IOM_API int iom_follow_page(struct iom_mm *mm, uint64_t addr,
			    struct iom_page **pagep);

/* ---- MMU notifiers (include/linux/mmu_notifier.h) ----------------------- */

enum iom_mmu_notifier_event {
	IOM_MMU_NOTIFY_UNMAP,
	IOM_MMU_NOTIFY_CLEAR,
	IOM_MMU_NOTIFY_PROTECTION_VMA,
	IOM_MMU_NOTIFY_PROTECTION_PAGE,
	IOM_MMU_NOTIFY_RELEASE,
	IOM_MMU_NOTIFY_MIGRATE,
};

/**
 * struct iom_mmu_notifier_range - what is being invalidated.
 * @mm:    the process.
 * @start: first address.  @end: one past the last.
 * @event: why.
 * @owner: for MIGRATE, the migrate_vma caller's pgmap owner (or NULL).
 */
struct iom_mmu_notifier_range {
	struct iom_mm *mm;
	uint64_t start;
	uint64_t end;
	enum iom_mmu_notifier_event event;
	void *owner;
};

struct iom_mmu_notifier;

/**
 * struct iom_mmu_notifier_ops - a secondary MMU (device mirror) follows the
 * CPU page table through these.
 * @release:                the process is going away.
 * @invalidate_range_start: PTEs of the range are about to change; the
 *                          mirror must stop using them.
 * @invalidate_range_end:   the change is done.
 */
struct iom_mmu_notifier_ops {
	void (*release)(struct iom_mmu_notifier *mn, struct iom_mm *mm);
	int (*invalidate_range_start)(struct iom_mmu_notifier *mn,
				      const struct iom_mmu_notifier_range *range);
	void (*invalidate_range_end)(struct iom_mmu_notifier *mn,
				     const struct iom_mmu_notifier_range *range);
};

/** struct iom_mmu_notifier - embed and register. Fields are private. */
struct iom_mmu_notifier {
	const struct iom_mmu_notifier_ops *ops;
	struct iom_mm *mm;
	struct iom_list_head list;
};

/** iom_mmu_notifier_register() - Return: 0, -EINVAL, -EBUSY if registered. */
IOM_API int iom_mmu_notifier_register(struct iom_mmu_notifier *mn,
				      struct iom_mm *mm);
/**
 * iom_mmu_notifier_unregister() - after it returns no callback runs.
 * Context: before iom_mm_destroy() of its process (which calls ->release
 * and forgets every notifier), never concurrently with it.
 */
IOM_API void iom_mmu_notifier_unregister(struct iom_mmu_notifier *mn);

/* ---- reverse mapping (mm/rmap.c) ---------------------------------------- */

/**
 * iom_rmap_walk() - call @fn(@mm, @addr, @arg) for every PTE that maps
 * @page, in every process, anonymous or file; @fn returns false to stop.
 * Context: @page locked. Return: PTEs visited.
 */
IOM_API unsigned long iom_rmap_walk(struct iom_machine *m, struct iom_page *page,
				    bool (*fn)(struct iom_mm *mm, uint64_t addr,
					       void *arg),
				    void *arg);
/**
 * iom_try_to_unmap() - clear every PTE mapping a page-cache @page (MMU
 * notifier event CLEAR for each). Anonymous pages are refused: with no
 * swap their content would be lost. Context: @page locked.
 * Return: true if it is now unmapped.
 */
IOM_API bool iom_try_to_unmap(struct iom_machine *m, struct iom_page *page);
/**
 * iom_try_to_migrate() - replace every PTE mapping @page by a migration
 * entry (read or write, as the PTE was), notifying MIGRATE. Accesses then
 * sleep until iom_remove_migration_ptes() and the page's unlock.
 * Context: @page locked. Return: true if no present PTE maps it now.
 */
IOM_API bool iom_try_to_migrate(struct iom_machine *m, struct iom_page *page);
/**
 * iom_remove_migration_ptes() - turn every migration entry for @src back
 * into a present PTE mapping @dst (which takes @src's place in the rmap:
 * mapping, index and mapcount). @src == @dst restores after a failed
 * migration.
 *
 * As the kernel's unmap_and_move(): call it only if @src was mapped when
 * iom_try_to_migrate() ran, and for an anonymous page keep its anon_vma
 * pinned (page_get_anon_vma() before try_to_migrate, put_anon_vma() after
 * this) -- a page unmapped meanwhile by munmap may have lost it. Migration
 * entries hold no page reference: the migrator's own reference keeps @src
 * alive, and sleepers on an entry hold none either.
 * Context: both pages locked.
 */
IOM_API void iom_remove_migration_ptes(struct iom_machine *m,
				       struct iom_page *src,
				       struct iom_page *dst);
/** iom_page_mapped() - is @page mapped by any PTE? */
static inline bool iom_page_mapped(const struct iom_page *page)
{
	return iom_page_mapcount(page) > 0;
}
/** iom_PageAnon() - an anonymous page (mapping is an anon_vma). */
static inline bool iom_PageAnon(const struct iom_page *page)
{
	return ((uintptr_t)page->mapping & 1UL) != 0;
}

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_MEMORY_H */
