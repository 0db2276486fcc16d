/* SPDX-License-Identifier: MIT */
/*
 * CPU page tables, faults and accesses (mm/memory.c; the arch fault handler
 * and copy_{to,from}_user are folded into iom_access()). Simplified: one
 * page-table lock per process (no split PTLs), no shared zero page (read
 * faults allocate a zeroed page), no THP, no swap. An access copies under
 * the page-table lock, which stands for the TLB and its shootdown. No
 * PageAnonExclusive: an anonymous page mapped once is exclusive, and may
 * be reused by a write fault if nobody else holds it or it is DMA-pinned
 * (gup.c keeps pinned pages exclusive: unshare on pin, copy on fork).
 * A device-private entry (migrate_device.c) faults through its owner's
 * ->migrate_to_ram() (do_swap_page()).
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include <iommig/filemap.h>
#include <iommig/memory.h>
#include <iommig/migrate_device.h>

#include "mm_types.h"

/* ---- page tables -------------------------------------------------------- */

static inline unsigned int pt_index(uint64_t addr, int level)
{
	return (unsigned int)(addr >> (IOM_PAGE_SHIFT + level * PT_LEVEL_BITS)) &
	       (PTRS_PER_TABLE - 1);
}

static inline uint64_t pt_span(int level)
{
	return 1ULL << (IOM_PAGE_SHIFT + level * PT_LEVEL_BITS);
}

static inline pte_t *pt_table(const struct iom_machine *m, pte_t entry)
{
	return page_address(m, pfn_to_page(m, pte_pfn(entry)));
}

/*
 * The PTE table covering @addr, or NULL; *@level gets the level whose entry
 * was missing (so a walker can skip that level's whole span).
 * Context: page_table_lock held.
 */
static pte_t *pte_table_of(struct iom_mm *mm, uint64_t addr, int *level)
{
	pte_t *table = mm->pgd;
	int l;

	for (l = PT_LEVELS - 1; l > 0; l--) {
		pte_t e = ptep_get(&table[pt_index(addr, l)]);

		if (!(e & _PAGE_PRESENT)) {
			if (level)
				*level = l;
			return NULL;
		}
		table = pt_table(mm->m, e);
	}
	return table;
}

pte_t *__pte_offset_map(struct iom_mm *mm, uint64_t addr)
{
	pte_t *table = pte_table_of(mm, addr, NULL);

	return table ? &table[pt_index(addr, 0)] : NULL;
}

pte_t *pte_offset_map_lock(struct iom_mm *mm, uint64_t addr)
{
	pte_t *ptep;

	ptl_lock(mm);
	ptep = __pte_offset_map(mm, addr);
	if (!ptep)
		ptl_unlock(mm);
	return ptep;
}

/* Where the hole left by a missing table at @level ends, bounded by @end. */
static uint64_t hole_end(uint64_t addr, int level, uint64_t end)
{
	uint64_t next = (addr + pt_span(level)) & ~(pt_span(level) - 1);

	return next > end || next == 0 ? end : next;
}

/*
 * __pte_alloc() - __pud_alloc() + __pmd_alloc() + __pte_alloc() in one: a
 * missing table is allocated with no lock held and installed under
 * page_table_lock unless another fault installed one first.
 */
int __pte_alloc(struct iom_mm *mm, uint64_t addr)
{
	struct iom_machine *m = mm->m;
	struct iom_page *spare = NULL;

	for (;;) {
		pte_t *table = mm->pgd;
		bool missing = false;
		int l;

		ptl_lock(mm);
		for (l = PT_LEVELS - 1; l > 0; l--) {
			pte_t *ep = &table[pt_index(addr, l)];
			pte_t e = ptep_get(ep);

			if (!(e & _PAGE_PRESENT)) {
				if (!spare) {
					missing = true;
					break;
				}
				e = pfn_pte(page_to_pfn(m, spare), _PAGE_TABLE);
				set_pte(ep, e);
				atomic_fetch_add(&mm->nr_pgtables, 1);
				spare = NULL;
			}
			table = pt_table(m, e);
		}
		ptl_unlock(mm);
		if (!missing)
			break;
		spare = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_ZERO, 0);
		if (!spare)
			return -ENOMEM;
	}
	if (spare)
		iom_put_page(m, spare);
	return 0;
}

int walk_page_range(struct iom_mm *mm, uint64_t start, uint64_t end,
		    const struct mm_walk_ops *ops, void *private)
{
	struct mm_walk walk = {
		.ops = ops, .mm = mm, .vma = find_vma(mm, start), .private = private,
	};
	uint64_t addr = start & ~(IOM_PAGE_SIZE - 1);
	int ret = 0;

	if (walk.vma && walk.vma->vm_start > start)
		walk.vma = NULL;
	while (addr < end && !ret) {
		uint64_t next;
		pte_t *table;
		int level = 0;

		ptl_lock(mm);
		table = pte_table_of(mm, addr, &level);
		if (!table) {
			ptl_unlock(mm);
			next = hole_end(addr, level, end);
			if (ops->pte_hole)
				ret = ops->pte_hole(addr, next, &walk);
			addr = next;
			continue;
		}
		next = (addr + PMD_SIZE) & PMD_MASK;
		if (next > end || next == 0)
			next = end;
		for (; addr < next; addr += IOM_PAGE_SIZE) {
			if (ops->pte_entry) {
				ret = ops->pte_entry(&table[pt_index(addr, 0)], addr, &walk);
				if (ret)
					break;
			}
		}
		ptl_unlock(mm);
		addr = next;
	}
	return ret;
}

/*
 * free_pgtables() for one table at @level (1: a PMD table whose entries are
 * PTE tables) over [@start, @end): free the empty tables below it.
 * Freed pages go on @freed (linked through page->lru). Under page_table_lock.
 */
static bool table_empty(const pte_t *table)
{
	unsigned int i;

	for (i = 0; i < PTRS_PER_TABLE; i++)
		if (ptep_get(&table[i]))
			return false;
	return true;
}

static void free_table_range(struct iom_mm *mm, pte_t *table, int level,
			     uint64_t start, uint64_t end, struct list_head *freed)
{
	struct iom_machine *m = mm->m;
	uint64_t span = pt_span(level), addr = start;

	while (addr < end) {
		uint64_t next = (addr + span) & ~(span - 1);
		pte_t *ep = &table[pt_index(addr, level)];
		pte_t e = ptep_get(ep);

		if (next > end || next == 0)
			next = end;
		if (e & _PAGE_PRESENT) {
			pte_t *child = pt_table(m, e);

			if (level > 1)
				free_table_range(mm, child, level - 1, addr, next, freed);
			if (table_empty(child)) {
				pte_clear(ep);
				list_add(&pfn_to_page(m, pte_pfn(e))->lru, freed);
			}
		}
		addr = next;
	}
}

static void free_table_pages(struct iom_mm *mm, struct list_head *freed)
{
	while (!list_empty(freed)) {
		struct iom_page *page = list_first_entry(freed, struct iom_page, lru);

		list_del(&page->lru);
		atomic_fetch_sub(&mm->nr_pgtables, 1);
		iom_put_page(mm->m, page);
	}
}

void free_pgtables(struct iom_mm *mm, uint64_t start, uint64_t end)
{
	struct list_head freed;

	INIT_LIST_HEAD(&freed);
	ptl_lock(mm);
	free_table_range(mm, mm->pgd, PT_LEVELS - 1, start, end, &freed);
	ptl_unlock(mm);
	free_table_pages(mm, &freed);
}


/* ---- zap ---------------------------------------------------------------- */

#define ZAP_BATCH 64

struct zap_batch {
	unsigned int nr;
	struct iom_page *pages[ZAP_BATCH];
	bool dirty[ZAP_BATCH];
};

/* tlb_finish_mmu(): the PTEs are gone; drop what they held. */
static void zap_flush(struct iom_machine *m, struct zap_batch *b)
{
	unsigned int i;

	for (i = 0; i < b->nr; i++) {
		if (b->dirty[i])
			iom_set_page_dirty(b->pages[i]);
		iom_put_page(m, b->pages[i]);
	}
	b->nr = 0;
}

void zap_page_range(struct vm_area_struct *vma, uint64_t start, uint64_t end)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_machine *m = mm->m;
	struct zap_batch batch;
	uint64_t addr = start;

	batch.nr = 0;
	while (addr < end) {
		uint64_t next = (addr + PMD_SIZE) & PMD_MASK;
		pte_t *table;
		int level = 0;

		ptl_lock(mm);
		table = pte_table_of(mm, addr, &level);
		if (!table) {
			ptl_unlock(mm);
			addr = hole_end(addr, level, end);
			continue;
		}
		if (next > end || next == 0)
			next = end;
		for (; addr < next && batch.nr < ZAP_BATCH; addr += IOM_PAGE_SIZE) {
			pte_t *ptep = &table[pt_index(addr, 0)];
			pte_t pte = ptep_get(ptep);
			struct iom_page *page;

			if (pte_none(pte))
				continue;
			pte_clear(ptep);
			if (!pte_present(pte)) {
				swp_entry_t e = pte_to_swp_entry(pte);

				/* migration entries hold no reference */
				if (!is_device_private_entry(e))
					continue;
				/* a device page's ->page_free() takes leaf locks only */
				page = device_private_entry_to_page(m, e);
				page_remove_rmap(page, vma);
				put_device_page(page);
				continue;
			}
			page = pfn_to_page(m, pte_pfn(pte));
			page_remove_rmap(page, vma);
			atomic_fetch_sub(iom_PageAnon(page) ? &mm->rss_anon : &mm->rss_file, 1);
			batch.dirty[batch.nr] = pte_dirty(pte) && !iom_PageAnon(page);
			batch.pages[batch.nr++] = page;
		}
		ptl_unlock(mm);
		zap_flush(m, &batch);
	}
}

/* ---- faults ------------------------------------------------------------- */

static inline bool vma_access_ok(const struct vm_area_struct *vma, bool write)
{
	if (write)
		return vma->vm_flags & VM_WRITE;
	return vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC);
}

static inline pte_t mk_user_pte(const struct iom_machine *m,
				const struct iom_page *page, bool write)
{
	pte_t pte = pfn_pte(page_to_pfn(m, page),
			    _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED);

	return write ? pte_mkdirty(pte_mkwrite(pte)) : pte;
}

static unsigned long file_nr_pages(struct iom_inode *inode)
{
	return (unsigned long)((iom_inode_size(inode) + IOM_PAGE_SIZE - 1) >> IOM_PAGE_SHIFT);
}

/* do_anonymous_page(): a zeroed page, writable if the VMA is. */
static int do_anonymous_page(struct vm_area_struct *vma, uint64_t addr)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_machine *m = mm->m;
	struct iom_page *page;
	pte_t *ptep;

	if (anon_vma_prepare(vma) || __pte_alloc(mm, addr))
		return -ENOMEM;
	page = iom_alloc_pages(m, current_gfp_context(IOM_GFP_HIGHUSER_MOVABLE |
						      IOM___GFP_ZERO), 0);
	if (!page)
		return -ENOMEM;
	ptl_lock(mm);
	ptep = __pte_offset_map(mm, addr);
	if (!ptep || !pte_none(ptep_get(ptep))) {
		ptl_unlock(mm);
		iom_put_page(m, page);
		return 0;
	}
	page_add_new_anon_rmap(page, vma, addr);
	set_pte(ptep, mk_user_pte(m, page, vma->vm_flags & VM_WRITE));
	iom_lru_cache_add(m, page);
	atomic_fetch_add(&mm->rss_anon, 1);
	ptl_unlock(mm);
	return 0;
}

static struct iom_page *vma_getpage(struct vm_area_struct *vma, unsigned long index);

/* do_cow_fault(): a write to a private file page never faulted in. */
static int do_cow_fault(struct vm_area_struct *vma, uint64_t addr,
			unsigned long index)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_machine *m = mm->m;
	struct iom_page *page, *new;
	pte_t *ptep;

	if (anon_vma_prepare(vma))
		return -ENOMEM;
	new = iom_alloc_pages(m, current_gfp_context(IOM_GFP_HIGHUSER_MOVABLE), 0);
	if (!new)
		return -ENOMEM;
	page = vma_getpage(vma, index);
	if (!page) {
		iom_put_page(m, new);
		return -ENOMEM;
	}
	memcpy(page_address(m, new), page_address(m, page), IOM_PAGE_SIZE);
	iom_unlock_page(page);
	iom_put_page(m, page);

	ptl_lock(mm);
	ptep = __pte_offset_map(mm, addr);
	if (!ptep || !pte_none(ptep_get(ptep))) {
		ptl_unlock(mm);
		iom_put_page(m, new);
		return 0;
	}
	page_add_new_anon_rmap(new, vma, addr);
	set_pte(ptep, mk_user_pte(m, new, true));
	iom_lru_cache_add(m, new);
	atomic_fetch_add(&mm->rss_anon, 1);
	ptl_unlock(mm);
	return 0;
}

/*
 * shmem_get_folio(): the page at @index of a shared anonymous mapping's
 * file, created zeroed and PG_swapbacked before it enters the cache, so it
 * goes on the anon LRU and reclaim leaves it alone (there is no swap).
 * Return: the page locked with a reference, or NULL.
 */
static struct iom_page *shmem_getpage(struct iom_address_space *mapping,
				      unsigned long index)
{
	struct iom_machine *m = mapping->m;

	for (;;) {
		struct iom_page *page = iom_find_lock_page(mapping, index);
		int err;

		if (page)
			return page;
		page = iom_alloc_pages(m, current_gfp_context(mapping->gfp_mask |
							      IOM___GFP_ZERO), 0);
		if (!page)
			return NULL;
		iom_SetPageSwapBacked(page);
		iom_SetPageUptodate(page);
		err = iom_add_to_page_cache_lru(page, mapping, index, mapping->gfp_mask);
		if (!err)
			return page;	/* locked by add_to_page_cache_lru() */
		iom_put_page(m, page);
		if (err != -EEXIST)
			return NULL;
	}
}

/* The page-cache page of a file VMA, locked, with a reference. */
static struct iom_page *vma_getpage(struct vm_area_struct *vma, unsigned long index)
{
	struct iom_address_space *mapping = vma_mapping(vma);

	if (vma->vm_shmem)
		return shmem_getpage(mapping, index);
	/* an ownerless cache (IOMAP's): map what it holds, create nothing */
	if (!mapping->host)
		return iom_find_lock_page(mapping, index);
	return iom_find_or_create_page(mapping, index, mapping->gfp_mask);
}

/*
 * do_read_fault() / do_shared_fault(): map the page-cache page. A private
 * mapping maps it read-only (a write copies it later); a shared one maps it
 * writable only on a write fault, so the first write dirties the page.
 */
static int do_fault(struct vm_area_struct *vma, uint64_t addr, bool write)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_machine *m = mm->m;
	unsigned long index = linear_page_index(vma, addr);
	struct iom_page *page;
	pte_t *ptep;

	if (index >= file_nr_pages(vma->vm_file))
		return -EFAULT;		/* SIGBUS beyond the end of the file */
	if (__pte_alloc(mm, addr))
		return -ENOMEM;
	if (write && !(vma->vm_flags & VM_SHARED))
		return do_cow_fault(vma, addr, index);

	page = vma_getpage(vma, index);
	if (!page)
		return vma_mapping(vma)->host ? -ENOMEM : -EFAULT;
	ptl_lock(mm);
	ptep = __pte_offset_map(mm, addr);
	if (!ptep || !pte_none(ptep_get(ptep))) {
		ptl_unlock(mm);
		iom_unlock_page(page);
		iom_put_page(m, page);
		return 0;
	}
	/* the reference find_or_create_page() took becomes the PTE's */
	page_add_file_rmap(page, vma);
	set_pte(ptep, mk_user_pte(m, page, write));
	atomic_fetch_add(&mm->rss_file, 1);
	ptl_unlock(mm);
	if (write)
		iom_set_page_dirty(page);	/* fault_dirty_shared_page() */
	iom_unlock_page(page);
	return 0;
}

/* The page is still in its mapping: dirty it (under the page lock). */
static void dirty_shared_page(struct iom_page *page)
{
	iom_lock_page(page);
	if (iom_page_mapping(page))
		iom_set_page_dirty(page);
	iom_unlock_page(page);
}

/*
 * An anonymous page only this PTE maps, that nobody else holds -- or that
 * is DMA-pinned: fork copies pinned pages and a read pin unshares first
 * (gup.c), so a pinned page mapped once is exclusive (the kernel's
 * PageAnonExclusive, which libiommig does not keep).
 */
static bool wp_can_reuse_anon(const struct iom_page *page)
{
	if (!iom_PageAnon(page) || iom_page_mapcount(page) != 1)
		return false;
	return iom_page_ref_count(page) == 1 ||
	       iom_page_ref_count(page) >= GUP_PIN_COUNTING_BIAS;
}

/*
 * do_wp_page() - a write to a present read-only PTE of a writable VMA, or
 * (@unshare) a read that needs an exclusive anonymous page.
 * Shared: make it writable and dirty the page (wp_page_shared()). Private:
 * reuse an exclusive anonymous page (wp_page_reuse()), else copy it
 * (wp_page_copy()); an unshare leaves the PTE read-only.
 * Context: page_table_lock held on entry, released on return.
 */
static int do_wp_page(struct vm_area_struct *vma, uint64_t addr, pte_t *ptep,
		      pte_t pte, bool unshare)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_machine *m = mm->m;
	struct iom_page *page = pfn_to_page(m, pte_pfn(pte)), *new;
	struct iom_mmu_notifier_range range;
	pte_t cur;

	/* only an anonymous page mapped more than once is not exclusive */
	if (unshare && (vma->vm_flags & VM_SHARED || !iom_PageAnon(page) ||
			iom_page_mapcount(page) < 2)) {
		ptl_unlock(mm);
		return 0;
	}
	if (vma->vm_flags & VM_SHARED) {
		set_pte(ptep, pte_mkyoung(pte_mkdirty(pte_mkwrite(pte))));
		iom_get_page(m, page);
		ptl_unlock(mm);
		dirty_shared_page(page);
		iom_put_page(m, page);
		return 0;
	}
	if (wp_can_reuse_anon(page)) {
		set_pte(ptep, pte_mkyoung(pte_mkdirty(pte_mkwrite(pte))));
		ptl_unlock(mm);
		return 0;
	}

	iom_get_page(m, page);
	ptl_unlock(mm);
	if (anon_vma_prepare(vma)) {
		iom_put_page(m, page);
		return -ENOMEM;
	}
	new = iom_alloc_pages(m, current_gfp_context(IOM_GFP_HIGHUSER_MOVABLE), 0);
	if (!new) {
		iom_put_page(m, page);
		return -ENOMEM;
	}
	memcpy(page_address(m, new), page_address(m, page), IOM_PAGE_SIZE);

	mmu_notifier_range_init(&range, IOM_MMU_NOTIFY_CLEAR, mm, addr,
				addr + IOM_PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl_lock(mm);
	ptep = __pte_offset_map(mm, addr);
	cur = ptep ? ptep_get(ptep) : 0;
	if (!pte_present(cur) || pte_pfn(cur) != pte_pfn(pte) || pte_write(cur) ||
	    (unshare && iom_page_mapcount(page) < 2)) {
		/* someone else changed the PTE meanwhile: look again */
		ptl_unlock(mm);
		mmu_notifier_invalidate_range_end(&range);
		iom_put_page(m, new);
		iom_put_page(m, page);
		return 0;
	}
	page_remove_rmap(page, vma);
	if (!iom_PageAnon(page)) {
		atomic_fetch_sub(&mm->rss_file, 1);
		atomic_fetch_add(&mm->rss_anon, 1);
	}
	page_add_new_anon_rmap(new, vma, addr);
	set_pte(ptep, unshare ? pte_mkyoung(pfn_pte(page_to_pfn(m, new),
						    _PAGE_PRESENT | _PAGE_USER)) :
				mk_user_pte(m, new, true));
	iom_lru_cache_add(m, new);
	ptl_unlock(mm);
	mmu_notifier_invalidate_range_end(&range);
	iom_put_page(m, page);		/* the old PTE's reference */
	iom_put_page(m, page);		/* ours */
	return 0;
}

/* ---- fork of DMA-pinned pages (copy_present_pte()) ---------------------- */

struct iom_page *page_copy_prealloc(struct iom_mm *src_mm)
{
	return iom_alloc_pages(src_mm->m,
			       current_gfp_context(IOM_GFP_HIGHUSER_MOVABLE), 0);
}

int copy_present_page(struct vm_area_struct *dst_vma, pte_t *dst_pte,
		      uint64_t addr, struct iom_page *page,
		      struct iom_page **prealloc)
{
	struct iom_mm *dst_mm = dst_vma->vm_mm;
	struct iom_machine *m = dst_mm->m;
	struct iom_page *new = *prealloc;

	if (!new)
		return -EAGAIN;
	*prealloc = NULL;
	/* the parent writes under its page_table_lock, held here */
	memcpy(page_address(m, new), page_address(m, page), IOM_PAGE_SIZE);
	page_add_new_anon_rmap(new, dst_vma, addr);
	set_pte(dst_pte, mk_user_pte(m, new, dst_vma->vm_flags & VM_WRITE));
	iom_lru_cache_add(m, new);
	atomic_fetch_add(&dst_mm->rss_anon, 1);
	return 0;
}

static void migration_wait_unlock(void *arg)
{
	struct iom_mm *mm = arg;

	ptl_unlock(mm);
	mmap_read_unlock(mm);
}

/*
 * migration_entry_wait(): the PTE is a migration entry; sleep until the
 * migrator unlocks the page, holding no reference to it, then let the
 * caller retry. Called with the page-table lock and mmap_lock (read) held;
 * returns with both dropped.
 */
void migration_entry_wait(struct iom_mm *mm, pte_t *ptep)
{
	struct iom_page *page =
		migration_entry_to_page(mm->m, pte_to_swp_entry(ptep_get(ptep)));

	atomic_fetch_add(&mm->migration_waits, 1);
	migration_entry_wait_on_locked(page, migration_wait_unlock, mm);
}

/*
 * do_swap_page(), reduced to its device-private branch (there is no swap):
 * the page lives in device memory; its owner's ->migrate_to_ram() brings
 * it back, with the page locked and referenced as the kernel's does, and
 * the access is retried. A page locked by a migration in progress is just
 * retried after a yield. Called with page_table_lock held; returns with
 * it dropped. Return: 0 (retry) or -EFAULT (the driver failed: SIGBUS).
 */
static int do_swap_page(struct vm_area_struct *vma, uint64_t addr, pte_t pte,
			unsigned int flags)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_page *page =
		device_private_entry_to_page(mm->m, pte_to_swp_entry(pte));
	struct iom_dev_pagemap *pgmap;
	struct iom_vm_fault vmf;
	int ret;

	if (!page) {
		ptl_unlock(mm);
		return -EFAULT;
	}
	if (!iom_trylock_page(page)) {
		ptl_unlock(mm);
		sched_yield();
		return 0;
	}
	get_device_page(page);		/* the entry holds one: not the first */
	ptl_unlock(mm);
	pgmap = page_pgmap(page);
	vmf.mm = mm;
	vmf.address = addr;
	vmf.flags = (flags & FAULT_FLAG_WRITE) ? IOM_FAULT_FLAG_WRITE : 0;
	vmf.page = page;
	ret = pgmap->ops->migrate_to_ram(&vmf);
	iom_unlock_page(page);
	put_device_page(page);
	return ret ? -EFAULT : 0;
}

int handle_mm_fault(struct vm_area_struct *vma, uint64_t addr,
		    unsigned int flags)
{
	struct iom_mm *mm = vma->vm_mm;
	bool write = flags & FAULT_FLAG_WRITE;
	bool unshare = !write && (flags & FAULT_FLAG_UNSHARE);
	pte_t *ptep, pte;

	if (!vma_access_ok(vma, write))
		return -EFAULT;
	addr &= ~(uint64_t)(IOM_PAGE_SIZE - 1);
	ptl_lock(mm);
	ptep = __pte_offset_map(mm, addr);
	pte = ptep ? ptep_get(ptep) : 0;
	if (pte_none(pte)) {
		ptl_unlock(mm);
		if (vma_is_anonymous(vma))
			return do_anonymous_page(vma, addr);
		return do_fault(vma, addr, write);
	}
	if (!pte_present(pte)) {
		if (pte_is_migration(pte)) {
			migration_entry_wait(mm, ptep);
			return -EAGAIN;
		}
		if (is_device_private_entry(pte_to_swp_entry(pte)))
			return do_swap_page(vma, addr, pte, flags);
		ptl_unlock(mm);
		return -EFAULT;
	}
	if (write && !pte_write(pte))
		return do_wp_page(vma, addr, ptep, pte, false);
	if (unshare && is_cow_mapping(vma->vm_flags) && !pte_write(pte))
		return do_wp_page(vma, addr, ptep, pte, true);
	set_pte(ptep, write ? pte_mkdirty(pte_mkyoung(pte)) : pte_mkyoung(pte));
	ptl_unlock(mm);
	return 0;
}

/* ---- CPU accesses ------------------------------------------------------- */

/*
 * The present PTE of @addr, faulted in as needed, permitting @write.
 * Return: 0 with mmap_lock (read) and page_table_lock held and *@ptepp set;
 * or -errno with neither held.
 */
static int fault_in_locked(struct iom_mm *mm, uint64_t addr, bool write,
			   pte_t **ptepp)
{
	int ret;

	mmap_read_lock(mm);
	for (;;) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		pte_t *ptep;

		if (!vma || !vma_access_ok(vma, write)) {
			ret = -EFAULT;
			break;
		}
		ptl_lock(mm);
		ptep = __pte_offset_map(mm, addr);
		if (ptep) {
			pte_t pte = ptep_get(ptep);

			if (pte_present(pte) && (!write || pte_write(pte))) {
				*ptepp = ptep;
				return 0;
			}
		}
		ptl_unlock(mm);
		ret = handle_mm_fault(vma, addr, write ? FAULT_FLAG_WRITE : 0);
		if (ret == -EAGAIN) {
			mmap_read_lock(mm);	/* we waited on a migration entry */
			continue;
		}
		if (ret)
			break;
	}
	mmap_read_unlock(mm);
	return ret;
}

/* One access within one page. */
static int access_one(struct iom_mm *mm, uint64_t addr, char *buf, size_t n,
		      bool write)
{
	struct iom_machine *m = mm->m;
	struct iom_page *page, *dirty = NULL;
	pte_t *ptep, pte;
	char *kaddr;
	int ret;

	ret = fault_in_locked(mm, addr, write, &ptep);
	if (ret)
		return ret;
	pte = ptep_get(ptep);
	page = pfn_to_page(m, pte_pfn(pte));
	kaddr = (char *)page_address(m, page) + (addr & (IOM_PAGE_SIZE - 1));
	if (write) {
		memcpy(kaddr, buf, n);
		set_pte(ptep, pte_mkdirty(pte_mkyoung(pte)));
		/*
		 * The first write through a clean PTE dirties the page (the
		 * kernel's write fault); page_mkclean() cleans the PTE again
		 * when the page is written back. A page whose ->set_page_dirty
		 * keeps it clean (IOMAP's) is not locked on every write.
		 */
		if (!iom_PageAnon(page) && !pte_dirty(pte) && !iom_PageDirty(page)) {
			iom_get_page(m, page);
			dirty = page;
		}
	} else {
		memcpy(buf, kaddr, n);
		if (!pte_young(pte))
			set_pte(ptep, pte_mkyoung(pte));
	}
	ptl_unlock(mm);
	mmap_read_unlock(mm);
	if (dirty) {
		dirty_shared_page(dirty);
		iom_put_page(m, dirty);
	}
	return 0;
}

/**
 * iom_access() - the CPU reads or writes @len bytes at @addr of @mm.
 * @mm:    the process.
 * @addr:  first byte.
 * @buf:   source (write) or destination (read).
 * @len:   bytes.
 * @write: direction.
 *
 * Page by page: look the address up, fault (anonymous zero page, page
 * cache, COW), copy through the page's content. Stops at the first page it
 * cannot access; bytes before it have been accessed, none after.
 *
 * Context: any thread; takes mmap_lock for read; may sleep on a migration
 * entry, on a page lock or in the allocator.
 * Return: 0; -EFAULT; -ENOMEM; -EINVAL for a NULL @mm or @buf.
 */
int iom_access(struct iom_mm *mm, uint64_t addr, void *buf, size_t len,
	       bool write)
{
	char *p = buf;

	if (!mm || (!buf && len))
		return -EINVAL;
	while (len) {
		size_t n = IOM_PAGE_SIZE - (addr & (IOM_PAGE_SIZE - 1));
		int ret;

		if (n > len)
			n = len;
		if (addr >= IOM_TASK_SIZE)
			return -EFAULT;
		ret = access_one(mm, addr, p, n, write);
		if (ret)
			return ret;
		addr += n;
		p += n;
		len -= n;
	}
	return 0;
}

/**
 * iom_read() - iom_access() for reading @len bytes at @addr into @buf.
 * Context: as iom_access(). Return: as iom_access().
 */
int iom_read(struct iom_mm *mm, uint64_t addr, void *buf, size_t len)
{
	return iom_access(mm, addr, buf, len, false);
}

/**
 * iom_write() - iom_access() for writing @len bytes of @buf at @addr.
 * Context: as iom_access(). Return: as iom_access().
 */
int iom_write(struct iom_mm *mm, uint64_t addr, const void *buf, size_t len)
{
	return iom_access(mm, addr, (void *)buf, len, true);
}

/*
 * populate_vma_page_range(): fault [@start, @end) in, for write where the
 * VMA is private and writable (to break COW at once), as mm_populate().
 * Errors are ignored, as the kernel's mmap does.
 */
void mm_populate(struct iom_mm *mm, uint64_t start, uint64_t end, bool write)
{
	uint64_t addr;

	for (addr = start; addr < end; addr += IOM_PAGE_SIZE) {
		pte_t *ptep;

		if (fault_in_locked(mm, addr, write, &ptep))
			break;
		ptl_unlock(mm);
		mmap_read_unlock(mm);
	}
}

/**
 * iom_follow_page() - the page mapped at @addr, with a reference taken,
 * without faulting (follow_page()).
 * Context: any thread; takes mmap_lock for read.
 * Return: 0; -ENOENT nothing mapped; -EAGAIN a migration entry is there;
 * -EFAULT outside a VMA; -EINVAL bad arguments.
 */
int iom_follow_page(struct iom_mm *mm, uint64_t addr, struct iom_page **pagep)
{
	pte_t *ptep, pte;
	int ret;

	if (!mm || !pagep)
		return -EINVAL;
	*pagep = NULL;
	mmap_read_lock(mm);
	if (!vma_lookup(mm, addr)) {
		ret = -EFAULT;
		goto out;
	}
	ptep = pte_offset_map_lock(mm, addr & ~(uint64_t)(IOM_PAGE_SIZE - 1));
	if (!ptep) {
		ret = -ENOENT;
		goto out;
	}
	pte = ptep_get(ptep);
	if (pte_present(pte)) {
		*pagep = pfn_to_page(mm->m, pte_pfn(pte));
		iom_get_page(mm->m, *pagep);
		ret = 0;
	} else if (pte_is_migration(pte)) {
		ret = -EAGAIN;
	} else {
		ret = -ENOENT;
	}
	pte_unmap_unlock(mm);
out:
	mmap_read_unlock(mm);
	return ret;
}
