/* SPDX-License-Identifier: MIT */
/*
 * Migration of a process range to and from device-private memory
 * (mm/migrate_device.c: migrate_vma_setup, migrate_vma_collect,
 * migrate_vma_unmap, migrate_vma_pages, migrate_vma_insert_page,
 * migrate_vma_finalize). Simplified: anonymous private VMAs only and
 * order-0 pages only. As the kernel's fast path, collect turns the PTE in
 * the range into a migration entry at once; a page also mapped elsewhere
 * (shared with a forked process) is unmapped there by try_to_migrate(),
 * and finalize puts every entry back through rmap (remove_migration_ptes(),
 * which knows device-private pages). No shared zero page exists here, so
 * present PTEs always have a page.
 *
 * Conventions in this file: @args the migration, @i an index into
 * args->src/dst, @addr = args->start + @i pages.
 *
 * Reference counts of a migrating page (collect → finalize):
 *   system src: the collector's reference replaces the PTE's; LRU
 *               isolation adds one: 2 expected when the mapping moves.
 *   device src: the collector's reference replaces the entry's, plus the
 *               fault path's for args->fault_page.
 *   dst:        the driver's reference (dropped by finalize) plus the new
 *               PTE's or device-private entry's.
 */
#include <errno.h>
#include <string.h>

#include <iommig/filemap.h>
#include <iommig/migrate_device.h>

#include "mm_types.h"

static inline uint64_t mig_addr(const struct iom_migrate_vma *args,
				unsigned long i)
{
	return args->start + ((uint64_t)i << IOM_PAGE_SHIFT);
}

struct iom_page *iom_migrate_pfn_to_page(const struct iom_machine *m,
					 unsigned long mpfn)
{
	if (!m || !(mpfn & IOM_MIGRATE_PFN_VALID))
		return NULL;
	return pfn_to_page_any(m, mpfn >> IOM_MIGRATE_PFN_SHIFT);
}

int iom_mmap_read_lock(struct iom_mm *mm)
{
	if (!mm)
		return -EINVAL;
	mmap_read_lock(mm);
	return 0;
}

int iom_mmap_read_unlock(struct iom_mm *mm)
{
	if (!mm)
		return -EINVAL;
	mmap_read_unlock(mm);
	return 0;
}

/* The reference a PTE or the collector holds, on either kind of page. */
static void mig_get_page(struct iom_machine *m, struct iom_page *page)
{
	(void)m;
	atomic_fetch_add_explicit(&page->_refcount, 1, memory_order_relaxed);
}

static void mig_put_page(struct iom_machine *m, struct iom_page *page)
{
	if (is_zone_device_page(m, page))
		put_device_page(page);
	else
		iom_put_page(m, page);
}

/* ---- step 2a: migrate_vma_collect() ------------------------------------ */

struct collect_state {
	struct iom_migrate_vma *args;
	struct vm_area_struct *vma;
};

static int migrate_vma_collect_hole(uint64_t start, uint64_t end,
				    struct mm_walk *walk)
{
	struct collect_state *cs = walk->private;
	struct iom_migrate_vma *args = cs->args;
	uint64_t addr;

	/* an anonymous VMA: the driver may fill the hole with a zeroed page */
	for (addr = start; addr < end && addr < args->end; addr += IOM_PAGE_SIZE) {
		args->src[(addr - args->start) >> IOM_PAGE_SHIFT] =
			IOM_MIGRATE_PFN_MIGRATE;
		args->cpages++;
	}
	return 0;
}

static int migrate_vma_collect_pte(pte_t *ptep, uint64_t addr,
				   struct mm_walk *walk)
{
	struct collect_state *cs = walk->private;
	struct iom_migrate_vma *args = cs->args;
	struct iom_machine *m = walk->mm->m;
	unsigned long i = (addr - args->start) >> IOM_PAGE_SHIFT;
	pte_t pte = ptep_get(ptep);
	struct iom_page *page;
	unsigned long mpfn, pfn;
	bool write, dirty, device;
	swp_entry_t entry;

	if (pte_none(pte)) {
		args->src[i] = IOM_MIGRATE_PFN_MIGRATE;
		args->cpages++;
		return 0;
	}
	if (!pte_present(pte)) {
		entry = pte_to_swp_entry(pte);
		/* a migration entry: someone else is migrating this page */
		if (!is_device_private_entry(entry) ||
		    !(args->flags & IOM_MIGRATE_VMA_SELECT_DEVICE_PRIVATE))
			return 0;
		pfn = swp_offset(entry);
		page = pfn_to_page_any(m, pfn);
		if (!page || page_pgmap(page)->owner != args->pgmap_owner)
			return 0;	/* another device's page */
		write = swp_type(entry) == SWP_DEVICE_WRITE;
		/* the device may have written it: the copy back is dirty */
		dirty = write;
		device = true;
	} else {
		if (!(args->flags & IOM_MIGRATE_VMA_SELECT_SYSTEM))
			return 0;
		pfn = pte_pfn(pte);
		page = pfn_to_page(m, pfn);
		if (!iom_PageAnon(page) || iom_PageHead(page) || iom_PageTail(page))
			return 0;
		write = pte_write(pte);
		dirty = pte_dirty(pte);
		device = false;
	}
	mig_get_page(m, page);
	if (page != args->fault_page && !iom_trylock_page(page)) {
		atomic_fetch_sub_explicit(&page->_refcount, 1, memory_order_relaxed);
		return 0;
	}
	entry = swp_entry(write ? SWP_MIGRATION_WRITE : SWP_MIGRATION_READ, pfn);
	if (dirty)
		entry = make_migration_entry_dirty(entry);
	set_pte(ptep, swp_entry_to_pte(entry));
	page_remove_rmap(page, cs->vma);
	if (!device)
		atomic_fetch_sub(&walk->mm->rss_anon, 1);
	/* the entry's reference is now ours; ours is not the last */
	atomic_fetch_sub_explicit(&page->_refcount, 1, memory_order_relaxed);

	mpfn = iom_migrate_pfn(pfn) | IOM_MIGRATE_PFN_MIGRATE;
	if (write)
		mpfn |= IOM_MIGRATE_PFN_WRITE;
	args->src[i] = mpfn;
	args->cpages++;
	return 0;
}

static const struct mm_walk_ops migrate_vma_walk_ops = {
	.pte_entry = migrate_vma_collect_pte,
	.pte_hole = migrate_vma_collect_hole,
};

static void migrate_vma_collect(struct iom_migrate_vma *args,
				struct vm_area_struct *vma)
{
	struct collect_state cs = { .args = args, .vma = vma };
	struct iom_mmu_notifier_range range;

	mmu_notifier_range_init(&range, IOM_MMU_NOTIFY_MIGRATE, args->mm,
				args->start, args->end);
	range.owner = args->pgmap_owner;
	mmu_notifier_invalidate_range_start(&range);
	walk_page_range(args->mm, args->start, args->end, &migrate_vma_walk_ops,
			&cs);
	mmu_notifier_invalidate_range_end(&range);
}

/* ---- putting a page back where its migration entry is ------------------ */

/*
 * The collector's references on @page, which is not migrating: its
 * migration entries become its PTEs (or device-private entries) again.
 */
static void migrate_vma_restore(struct iom_migrate_vma *args,
				struct iom_page *page, bool isolated)
{
	struct iom_machine *m = args->mm->m;

	remove_migration_ptes(page, page);
	if (page != args->fault_page)
		iom_unlock_page(page);
	if (isolated)
		iom_putback_lru_page(m, page);
	mig_put_page(m, page);
}

/* ---- step 2b: migrate_vma_unmap() -------------------------------------- */

static void migrate_vma_unmap(struct iom_migrate_vma *args)
{
	struct iom_machine *m = args->mm->m;
	unsigned long i;

	for (i = 0; i < args->npages; i++) {
		struct iom_page *page = iom_migrate_pfn_to_page(m, args->src[i]);
		bool isolated = false;
		int expected;

		if (!page || !(args->src[i] & IOM_MIGRATE_PFN_MIGRATE))
			continue;
		if (is_zone_device_page(m, page)) {
			expected = 1 + (page == args->fault_page);
		} else {
			if (iom_isolate_lru_page(m, page))
				goto restore;
			isolated = true;
			expected = 2;
		}
		/* mapped elsewhere too (fork): migration entries there as well */
		if (iom_page_mapped(page))
			try_to_migrate(m, page, 0);
		/* migrate_vma_check_page(): no pin or other user */
		if (iom_page_ref_count(page) == expected &&
		    !iom_page_mapped(page))
			continue;
restore:
		migrate_vma_restore(args, page, isolated);
		args->src[i] = 0;
		args->cpages--;
	}
}

/* ---- step 2: migrate_vma_setup() ---------------------------------------- */

static struct vm_area_struct *migrate_vma_check_args(struct iom_migrate_vma *args)
{
	struct vm_area_struct *vma;

	if (!args || !args->mm || !args->src || !args->dst)
		return NULL;
	if ((args->start | args->end) & (IOM_PAGE_SIZE - 1) ||
	    args->start >= args->end)
		return NULL;
	if (!args->flags || (args->flags & ~(IOM_MIGRATE_VMA_SELECT_SYSTEM |
					     IOM_MIGRATE_VMA_SELECT_DEVICE_PRIVATE)))
		return NULL;
	if (args->fault_page && !is_zone_device_page(args->mm->m, args->fault_page))
		return NULL;
	vma = vma_lookup(args->mm, args->start);
	/* one VMA: a hole or a VMA of other protection in the range fails */
	if (!vma || args->end > vma->vm_end)
		return NULL;
	if (!vma_is_anonymous(vma) || (vma->vm_flags & VM_SHARED) ||
	    !(vma->vm_flags & VM_READ))
		return NULL;
	return vma;
}

int iom_migrate_vma_setup(struct iom_migrate_vma *args)
{
	struct vm_area_struct *vma = migrate_vma_check_args(args);

	if (!vma)
		return -EINVAL;
	args->npages = (unsigned long)((args->end - args->start) >> IOM_PAGE_SHIFT);
	args->cpages = 0;
	memset(args->src, 0, args->npages * sizeof(*args->src));
	memset(args->dst, 0, args->npages * sizeof(*args->dst));
	migrate_vma_collect(args, vma);
	if (args->cpages)
		migrate_vma_unmap(args);
	return 0;
}

/* ---- step 4: migrate_vma_pages() ---------------------------------------- */

/*
 * migrate_vma_insert_page(): the source was a hole: map @page at @addr if
 * it still is one. Context: mmap_lock held. Return: true if mapped.
 */
static bool migrate_vma_insert_page(struct iom_migrate_vma *args,
				    struct vm_area_struct *vma, uint64_t addr,
				    struct iom_page *page)
{
	struct iom_mm *mm = args->mm;
	struct iom_machine *m = mm->m;
	bool device = is_zone_device_page(m, page);
	bool write = vma->vm_flags & VM_WRITE;
	pte_t *ptep, pte;

	if (anon_vma_prepare(vma) || __pte_alloc(mm, addr))
		return false;
	if (device) {
		pte = swp_entry_to_pte(swp_entry(write ? SWP_DEVICE_WRITE :
						 SWP_DEVICE_READ,
						 page_to_pfn_any(m, page)));
	} else {
		pte = pfn_pte(page_to_pfn(m, page),
			      _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED);
		if (write)
			pte = pte_mkdirty(pte_mkwrite(pte));
	}
	ptep = pte_offset_map_lock(mm, addr);
	if (!ptep)
		return false;
	if (!pte_none(ptep_get(ptep))) {
		/* the CPU faulted a page in meanwhile: it wins */
		pte_unmap_unlock(mm);
		return false;
	}
	mig_get_page(m, page);
	page_add_new_anon_rmap(page, vma, addr);
	if (!device) {
		iom_lru_cache_add(m, page);
		atomic_fetch_add(&mm->rss_anon, 1);
	}
	set_pte(ptep, pte);
	pte_unmap_unlock(mm);
	return true;
}

void iom_migrate_vma_pages(struct iom_migrate_vma *args)
{
	struct iom_mmu_notifier_range range;
	struct vm_area_struct *vma;
	struct iom_machine *m;
	bool notified = false;
	unsigned long i;

	if (!args || !args->mm || !args->src || !args->dst || !args->npages)
		return;
	m = args->mm->m;
	vma = vma_lookup(args->mm, args->start);
	if (!vma)
		return;
	for (i = 0; i < args->npages; i++) {
		struct iom_page *newpage = iom_migrate_pfn_to_page(m, args->dst[i]);
		struct iom_page *page = iom_migrate_pfn_to_page(m, args->src[i]);
		int expected;

		if (!newpage) {
			args->src[i] &= ~IOM_MIGRATE_PFN_MIGRATE;
			continue;
		}
		if (!(args->src[i] & IOM_MIGRATE_PFN_MIGRATE))
			continue;
		if (!page) {
			if (!notified) {
				notified = true;
				mmu_notifier_range_init(&range, IOM_MMU_NOTIFY_MIGRATE,
							args->mm, args->start,
							args->end);
				range.owner = args->pgmap_owner;
				mmu_notifier_invalidate_range_start(&range);
			}
			if (!migrate_vma_insert_page(args, vma, mig_addr(args, i),
						     newpage))
				args->src[i] &= ~IOM_MIGRATE_PFN_MIGRATE;
			continue;
		}
		/*
		 * migrate_folio_extra(MIGRATE_SYNC_NO_COPY): the driver copied;
		 * the mapping moves if nobody took a reference meanwhile.
		 */
		expected = is_zone_device_page(m, page) ?
			   1 + (page == args->fault_page) : 2;
		if (iom_page_ref_count(page) != expected) {
			args->src[i] &= ~IOM_MIGRATE_PFN_MIGRATE;
			continue;
		}
		newpage->index = page->index;
		set_page_mapping(newpage, page_mapping_raw(page));
		iom_SetPageSwapBacked(newpage);
		if (iom_PageDirty(page))
			iom_SetPageDirty(newpage);
	}
	if (notified)
		mmu_notifier_invalidate_range_end(&range);
}

/* ---- step 6: migrate_vma_finalize() ------------------------------------- */

void iom_migrate_vma_finalize(struct iom_migrate_vma *args)
{
	struct vm_area_struct *vma;
	struct iom_machine *m;
	unsigned long i;

	if (!args || !args->mm || !args->src || !args->dst || !args->npages)
		return;
	m = args->mm->m;
	vma = vma_lookup(args->mm, args->start);
	for (i = 0; i < args->npages; i++) {
		struct iom_page *newpage = iom_migrate_pfn_to_page(m, args->dst[i]);
		struct iom_page *page = iom_migrate_pfn_to_page(m, args->src[i]);
		bool device = page && is_zone_device_page(m, page);

		if (!page) {
			/* a hole: mapped by migrate_vma_pages() or not at all */
			if (newpage) {
				iom_unlock_page(newpage);
				mig_put_page(m, newpage);
			}
			continue;
		}
		if (!vma)
			continue;	/* cannot happen with mmap_lock held */
		if (!(args->src[i] & IOM_MIGRATE_PFN_MIGRATE) || !newpage) {
			if (newpage) {
				iom_unlock_page(newpage);
				mig_put_page(m, newpage);
			}
			migrate_vma_restore(args, page, !device);
			continue;
		}
		remove_migration_ptes(page, newpage);
		/* the old page leaves the process: no longer anonymous */
		set_page_mapping(page, NULL);
		iom_ClearPageDirty(page);
		if (page != args->fault_page)
			iom_unlock_page(page);
		if (!device)	/* the isolation's reference */
			atomic_fetch_sub_explicit(&page->_refcount, 1,
						  memory_order_relaxed);
		mig_put_page(m, page);

		iom_unlock_page(newpage);
		if (!is_zone_device_page(m, newpage))
			iom_lru_cache_add(m, newpage);
		mig_put_page(m, newpage);
	}
}
