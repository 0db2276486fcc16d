/* SPDX-License-Identifier: MIT */
/*
 * Pinning user pages (mm/gup.c, Linux 6.1 with mainline's long-term pin
 * loop): pin_user_pages_remote() -> __gup_longterm_locked() ->
 * __get_user_pages() (follow_page_pte() + faultin_page() through
 * handle_mm_fault()), try_grab_page() with FOLL_PIN's refcount bias,
 * unpin_user_page(s)[_dirty_lock](), and FOLL_LONGTERM's
 * check_and_migrate_movable_pages().
 *
 * Simplified: the slow path only (no gup_fast); order-0 pages only (no THP,
 * hugetlb or large-folio pincount); no vmas[], no "locked" protocol, no
 * FOLL_FORCE, device-coherent or fsdax pages; an error releases every pin
 * the call took instead of returning a short count; PageAnonExclusive is
 * approximated by "mapped once" (see gup_must_unshare()).
 *
 * Conventions: @m machine; @mm the pinning process; @flags gup_flags with
 * the internal FOLL_PIN.
 * Locks: mmap_lock (read) around the walk; page_table_lock only inside
 * follow_page_pte(); nothing is held across the long-term migration.
 */
#include <errno.h>
#include <sched.h>

#include <iommig/gup.h>
#include <iommig/migrate.h>

#include "../core/list.h"
#include "internal.h"
#include "mm_types.h"

/* Internal gup_flags (mm/internal.h): the pin_user_pages() family's. */
#define FOLL_PIN	(1U << 16)
#define GUP_CALLER_FLAGS (IOM_FOLL_WRITE | IOM_FOLL_NOFAULT | IOM_FOLL_LONGTERM)

/* PF_MEMALLOC_PIN of the calling thread (memalloc_pin_save(), internal.h). */
IOM_TLS unsigned int iom_memalloc_pin_depth;

_Static_assert(IOM_GUP_PIN_COUNTING_BIAS == GUP_PIN_COUNTING_BIAS,
	       "public and internal pin biases differ");

/* ---- taking and dropping pins ------------------------------------------- */

/*
 * try_grab_page() with FOLL_PIN of an order-0 page: the bias instead of one
 * reference. The caller holds page_table_lock over a present PTE mapping
 * @page, so the page cannot be freed meanwhile.
 */
static void try_grab_page(struct iom_page *page)
{
	atomic_fetch_add_explicit(&page->_refcount, GUP_PIN_COUNTING_BIAS,
				  memory_order_relaxed);
}

/* gup_put_folio() with FOLL_PIN: the bias back; the last reference frees. */
static void gup_put_page(struct iom_machine *m, struct iom_page *page)
{
	count_vm_event(m, IOM_NR_FOLL_PIN_RELEASED);
	atomic_fetch_sub_explicit(&page->_refcount, GUP_PIN_COUNTING_BIAS - 1,
				  memory_order_release);
	iom_put_page(m, page);
}

/* Undo the pins of pages[0..@nr) taken by this file (no checks needed). */
static void unpin_pages_taken(struct iom_machine *m, struct iom_page **pages,
			      unsigned long nr)
{
	unsigned long i;

	for (i = 0; i < nr; i++) {
		gup_put_page(m, pages[i]);
		pages[i] = NULL;
	}
}

void iom_unpin_user_page(struct iom_machine *m, struct iom_page *page)
{
	if (!m || !page)
		return;
	if (!page_in_mem_map(m, page)) {
		iom_warn(m, "unpin_user_page: %p is not a page of this machine",
			 (void *)page);
		return;
	}
	page = iom_compound_head(page);
	if (iom_page_ref_count(page) < GUP_PIN_COUNTING_BIAS) {
		iom_warn(m, "unpin_user_page: pfn %#lx is not pinned (refcount %d)",
			 page_to_pfn(m, page), iom_page_ref_count(page));
		return;
	}
	gup_put_page(m, page);
}

void iom_unpin_user_pages(struct iom_machine *m, struct iom_page **pages,
			  unsigned long npages)
{
	iom_unpin_user_pages_dirty_lock(m, pages, npages, false);
}

void iom_unpin_user_pages_dirty_lock(struct iom_machine *m,
				     struct iom_page **pages,
				     unsigned long npages, bool make_dirty)
{
	unsigned long i;

	if (!m || (!pages && npages)) {
		if (m)
			iom_warn(m, "unpin_user_pages: NULL pages array");
		return;
	}
	for (i = 0; i < npages; i++) {
		struct iom_page *page = pages[i];

		if (!page)
			continue;
		if (make_dirty && page_in_mem_map(m, page) &&
		    !iom_PageDirty(iom_compound_head(page))) {
			/* set_page_dirty_lock() */
			page = iom_compound_head(page);
			iom_lock_page(page);
			iom_set_page_dirty(page);
			iom_unlock_page(page);
		}
		iom_unpin_user_page(m, page);
	}
}

/* ---- the walk ------------------------------------------------------------ */

/*
 * check_vma_flags(): may @vma be pinned for this access? Without FOLL_FORCE
 * a write needs VM_WRITE and a read VM_READ. As mainline (6.5+), a
 * long-term writable pin of a shared file mapping whose pages are written
 * back is refused (writable_file_mapping_allowed()): the file system could
 * not track the device's writes. shmem is not written back, so allowed.
 */
static int check_vma_flags(const struct vm_area_struct *vma, unsigned int flags)
{
	bool write = flags & IOM_FOLL_WRITE;

	if (write) {
		if (!(vma->vm_flags & VM_WRITE))
			return -EFAULT;
		if ((flags & IOM_FOLL_LONGTERM) && (vma->vm_flags & VM_SHARED) &&
		    vma->vm_file && !vma->vm_shmem)
			return -EFAULT;
	} else if (!(vma->vm_flags & VM_READ)) {
		return -EFAULT;
	}
	return 0;
}

/*
 * gup_must_unshare(): a read pin of an anonymous page in a COW mapping
 * needs the page to be exclusive to this mapping, or a later write by
 * either process would copy one of them away from what the device sees.
 * The kernel asks PageAnonExclusive; libiommig, which does not keep that
 * bit, asks whether the page is mapped once (fork shares a page by mapping
 * it twice, and copies pinned pages, so a pinned page stays mapped once).
 */
static bool gup_must_unshare(const struct vm_area_struct *vma,
			     unsigned int flags, const struct iom_page *page)
{
	if (flags & IOM_FOLL_WRITE)
		return false;
	if (!is_cow_mapping(vma->vm_flags) || !iom_PageAnon(page))
		return false;
	return iom_page_mapcount(page) > 1;
}

/*
 * follow_page_pte(): pin the page mapped at @addr if its PTE already allows
 * the access. Context: mmap_lock held for read.
 * Return: 0 with *@pagep pinned; -ENOENT when a fault is needed first,
 * with its flags in *@fault_flags.
 */
static int follow_page_pte(struct vm_area_struct *vma, uint64_t addr,
			   unsigned int flags, struct iom_page **pagep,
			   unsigned int *fault_flags)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_machine *m = mm->m;
	bool write = flags & IOM_FOLL_WRITE;
	struct iom_page *page;
	pte_t *ptep, pte;

	*fault_flags = write ? FAULT_FLAG_WRITE : 0;
	ptep = pte_offset_map_lock(mm, addr);
	if (!ptep)
		return -ENOENT;
	pte = ptep_get(ptep);
	/* none, or a migration entry: handle_mm_fault() faults or waits */
	if (!pte_present(pte) || (write && !pte_write(pte))) {
		pte_unmap_unlock(mm);
		return -ENOENT;
	}
	page = pfn_to_page(m, pte_pfn(pte));
	if (gup_must_unshare(vma, flags, page)) {
		pte_unmap_unlock(mm);
		*fault_flags = FAULT_FLAG_UNSHARE;
		return -ENOENT;
	}
	try_grab_page(page);
	if (!pte_young(pte))
		set_pte(ptep, pte_mkyoung(pte));
	pte_unmap_unlock(mm);

	count_vm_event(m, IOM_NR_FOLL_PIN_ACQUIRED);
	/* FOLL_TOUCH: the pin holds the page, our mmap_lock its mapping */
	if (write && !pte_dirty(pte) && !iom_PageAnon(page) && !iom_PageDirty(page)) {
		iom_lock_page(page);
		if (iom_page_mapping(page))
			iom_set_page_dirty(page);
		iom_unlock_page(page);
	}
	iom_mark_page_accessed(m, page);
	*pagep = page;
	return 0;
}

/*
 * __get_user_pages(): pin @nr_pages pages from @start, faulting them in as
 * needed (faultin_page()). All or nothing: on an error every pin taken is
 * dropped again.
 * Context: mmap_lock NOT held; taken for read here.
 * Return: @nr_pages, or -errno.
 */
static long __get_user_pages(struct iom_mm *mm, uint64_t start,
			     unsigned long nr_pages, unsigned int flags,
			     struct iom_page **pages)
{
	unsigned long i = 0;
	int ret = 0;

	/* mm_set_has_pinned_flag(): fork checks it before page_maybe_dma_pinned() */
	if (!atomic_load_explicit(&mm->has_pinned, memory_order_relaxed))
		atomic_store_explicit(&mm->has_pinned, true, memory_order_relaxed);
	mmap_read_lock(mm);
	while (i < nr_pages) {
		uint64_t addr = start + ((uint64_t)i << IOM_PAGE_SHIFT);
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		unsigned int fault_flags;

		if (!vma) {
			ret = -EFAULT;
			break;
		}
		ret = check_vma_flags(vma, flags);
		if (ret)
			break;
		if (!follow_page_pte(vma, addr, flags, &pages[i], &fault_flags)) {
			i++;
			continue;
		}
		if (flags & IOM_FOLL_NOFAULT) {
			ret = -EFAULT;
			break;
		}
		ret = handle_mm_fault(vma, addr, fault_flags);
		if (ret == -EAGAIN) {
			/* waited on a migration entry, mmap_lock dropped */
			mmap_read_lock(mm);
			ret = 0;
			continue;
		}
		if (ret)
			break;
	}
	mmap_read_unlock(mm);
	if (ret) {
		unpin_pages_taken(mm->m, pages, i);
		return ret;
	}
	return (long)nr_pages;
}

/* ---- FOLL_LONGTERM ------------------------------------------------------- */

/*
 * folio_is_longterm_pinnable(): a page in a CMA pageblock or in
 * ZONE_MOVABLE must stay movable, so it may not be pinned for long.
 */
static bool page_is_longterm_pinnable(struct iom_machine *m,
				      const struct iom_page *page)
{
	if (is_migrate_cma(get_pageblock_migratetype(m, page)))
		return false;
	return page_zone(m, page)->zone_type != IOM_ZONE_MOVABLE;
}

/*
 * collect_longterm_unpinnable_folios(): isolate from the LRU every pinned
 * page that may not stay pinned, onto @movable.
 * Return: how many such pages there are, isolated or not (mainline counts
 * pages it failed to isolate too, so that they are retried rather than
 * left pinned where they are).
 */
static unsigned long collect_longterm_unpinnable_pages(struct iom_machine *m,
						       struct list_head *movable,
						       unsigned long nr_pages,
						       struct iom_page **pages)
{
	struct iom_page *prev = NULL;
	unsigned long i, collected = 0;

	for (i = 0; i < nr_pages; i++) {
		struct iom_page *page = pages[i];

		if (page == prev)
			continue;
		prev = page;
		if (page_is_longterm_pinnable(m, page))
			continue;
		collected++;
		/* isolated by someone else (compaction, another pinner)? */
		if (iom_isolate_lru_page(m, page))
			continue;
		list_add_tail(&page->lru, movable);
	}
	return collected;
}

/*
 * migrate_longterm_unpinnable_folios(): drop every pin, then migrate the
 * isolated pages to pages allocated without __GFP_MOVABLE (so in
 * ZONE_NORMAL, outside CMA).
 * Return: -EAGAIN (pin the range again); -ENOMEM if a page did not move.
 * Either way no pin is left.
 */
static int migrate_longterm_unpinnable_pages(struct iom_machine *m,
					     struct list_head *movable,
					     unsigned long nr_pages,
					     struct iom_page **pages)
{
	struct migration_target_control mtc = {
		.m = m,
		.nid = -1,		/* NUMA_NO_NODE: the page's own node */
		.gfp_mask = IOM_GFP_USER | IOM___GFP_NOWARN,
	};
	int ret = -EAGAIN;

	unpin_pages_taken(m, pages, nr_pages);
	if (list_empty(movable)) {
		/* nothing isolated: let the other isolator finish first */
		sched_yield();
		return -EAGAIN;
	}
	if (iom_migrate_pages(m, movable, alloc_migration_target, NULL,
			      (unsigned long)&mtc, IOM_MIGRATE_SYNC,
			      IOM_MR_LONGTERM_PIN, NULL))
		ret = -ENOMEM;
	iom_putback_movable_pages(m, movable);
	return ret;
}

/*
 * check_and_migrate_movable_pages().
 * Return: 0, every page may stay pinned (the pins are kept); else, with
 * every pin dropped, -EAGAIN (pages were moved: pin again) or -ENOMEM.
 */
static long check_and_migrate_movable_pages(struct iom_machine *m,
					    unsigned long nr_pages,
					    struct iom_page **pages)
{
	struct list_head movable;

	INIT_LIST_HEAD(&movable);
	if (!collect_longterm_unpinnable_pages(m, &movable, nr_pages, pages))
		return 0;
	return migrate_longterm_unpinnable_pages(m, &movable, nr_pages, pages);
}

/*
 * __gup_longterm_locked(): pin; for FOLL_LONGTERM, with PF_MEMALLOC_PIN so
 * faults allocate outside CMA and ZONE_MOVABLE, and again after moving
 * pages out of them, until every page may stay pinned. As mainline, there
 * is no limit on the rounds: a page moved out is never moved back by this
 * loop, and a page that could not be isolated was held by another isolator
 * for a moment (every user page libiommig maps is on an LRU).
 */
static long __gup_longterm_locked(struct iom_mm *mm, uint64_t start,
				  unsigned long nr_pages, unsigned int flags,
				  struct iom_page **pages)
{
	unsigned int pflags;
	long rc;

	if (!(flags & IOM_FOLL_LONGTERM))
		return __get_user_pages(mm, start, nr_pages, flags, pages);

	pflags = memalloc_pin_save();
	do {
		rc = __get_user_pages(mm, start, nr_pages, flags, pages);
		if (rc <= 0)
			break;
		rc = check_and_migrate_movable_pages(mm->m, nr_pages, pages);
	} while (rc == -EAGAIN);
	memalloc_pin_restore(pflags);
	return rc ? rc : (long)nr_pages;
}

long iom_pin_user_pages(struct iom_mm *mm, uint64_t start,
			unsigned long nr_pages, unsigned int gup_flags,
			struct iom_page **pages)
{
	struct iom_machine *m;

	if (!mm)
		return -EINVAL;
	m = mm->m;
	if (!pages || !nr_pages) {
		iom_warn(m, "pin_user_pages: %s", !pages ? "NULL pages array" :
			 "no pages asked for");
		return -EINVAL;
	}
	if (start & (IOM_PAGE_SIZE - 1)) {
		iom_warn(m, "pin_user_pages: start %#llx is not page aligned",
			 (unsigned long long)start);
		return -EINVAL;
	}
	if (gup_flags & ~GUP_CALLER_FLAGS) {
		iom_warn(m, "pin_user_pages: bad gup_flags %#x%s", gup_flags,
			 gup_flags & IOM_FOLL_GET ? " (FOLL_GET with FOLL_PIN)" : "");
		return -EINVAL;
	}
	if (nr_pages > (IOM_TASK_SIZE >> IOM_PAGE_SHIFT) ||
	    start + ((uint64_t)nr_pages << IOM_PAGE_SHIFT) < start) {
		iom_warn(m, "pin_user_pages: %lu pages from %#llx overflow",
			 nr_pages, (unsigned long long)start);
		return -EINVAL;
	}
	return __gup_longterm_locked(mm, start, nr_pages, gup_flags | FOLL_PIN,
				     pages);
}
