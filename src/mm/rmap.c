/* SPDX-License-Identifier: MIT */
/*
 * Reverse mapping: from a page to every PTE that maps it (mm/rmap.c).
 * Simplified: a forked child's VMAs link into the parent's anon_vma (no
 * anon_vma_chain tree, one anon_vma per process family); a file's VMAs are
 * a list, not an interval tree; anon_vmas are kept alive for
 * page_get_anon_vma() by a hashed lock instead of SLAB_TYPESAFE_BY_RCU.
 *
 * Conventions: @page a page of @m, locked by the caller of the rmap walks;
 * @vma a VMA that may map it; @av an anon_vma.
 */
#include <errno.h>
#include <string.h>

#include <iommig/filemap.h>
#include <iommig/memory.h>

#include <iommig/migrate_device.h>

#include "mm_types.h"

/* ---- anon_vma ----------------------------------------------------------- */

/*
 * The anon_vma lifetime locks: a refcount reaches zero, and
 * page_get_anon_vma() turns "the page is mapped" into a reference, only
 * under the lock of the anon_vma's address, so one cannot free what the
 * other is about to take. Hashed like the kernel's page wait table; they
 * hold no state of any machine.
 */
#define AV_LIFETIME_LOCKS 64
static pthread_mutex_t av_lifetime[AV_LIFETIME_LOCKS] = {
	[0 ... AV_LIFETIME_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t *av_lifetime_lock(const void *av)
{
	uintptr_t h = (uintptr_t)av >> 6;

	h ^= h >> 7;
	return &av_lifetime[h % AV_LIFETIME_LOCKS];
}

static struct anon_vma *anon_vma_alloc(struct iom_machine *m)
{
	struct anon_vma *av = iom_meta_alloc(m, sizeof(*av), 64, true);

	if (!av)
		return NULL;
	av->m = m;
	IOM_CHECK_PTHREAD(pthread_rwlock_init(&av->rwsem, NULL));
	atomic_init(&av->refcount, 0);
	INIT_LIST_HEAD(&av->vmas);
	return av;
}

static void anon_vma_free(struct anon_vma *av)
{
	IOM_BUG_ON(av->nr_vmas || !list_empty(&av->vmas));
	IOM_CHECK_PTHREAD(pthread_rwlock_destroy(&av->rwsem));
	iom_meta_free(av->m, av, sizeof(*av));
}

void put_anon_vma(struct anon_vma *av)
{
	pthread_mutex_t *lock = av_lifetime_lock(av);
	long old = atomic_load(&av->refcount);
	bool last;

	while (old > 1)
		if (atomic_compare_exchange_weak(&av->refcount, &old, old - 1))
			return;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(lock));
	last = atomic_fetch_sub(&av->refcount, 1) == 1;
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(lock));
	if (last)
		anon_vma_free(av);
}

struct anon_vma *page_get_anon_vma(struct iom_page *page)
{
	struct anon_vma *av = page_anon_vma(page);
	pthread_mutex_t *lock;

	if (!av)
		return NULL;
	lock = av_lifetime_lock(av);
	IOM_CHECK_PTHREAD(pthread_mutex_lock(lock));
	/*
	 * A mapped page is mapped in a VMA still linked to its anon_vma
	 * (VMAs are unlinked only after their PTEs are zapped), so the
	 * count is not zero and cannot reach zero while we hold the lock.
	 */
	if (iom_page_mapped(page))
		atomic_fetch_add(&av->refcount, 1);
	else
		av = NULL;
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(lock));
	return av;
}

static void __anon_vma_link(struct vm_area_struct *vma, struct anon_vma *av)
{
	list_add_tail(&vma->anon_vma_node, &av->vmas);
	av->nr_vmas++;
	get_anon_vma(av);
	vma->anon_vma = av;
}

void anon_vma_link(struct vm_area_struct *vma, struct anon_vma *av)
{
	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(&av->rwsem));
	__anon_vma_link(vma, av);
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&av->rwsem));
}

/*
 * anon_vma_prepare() - the first anonymous page of @vma needs an anon_vma.
 * Faults race here under mmap_lock for read; page_table_lock decides.
 */
int anon_vma_prepare(struct vm_area_struct *vma)
{
	struct iom_mm *mm = vma->vm_mm;
	struct anon_vma *av;
	bool lost;

	ptl_lock(mm);
	av = vma->anon_vma;
	ptl_unlock(mm);
	if (av)
		return 0;
	av = anon_vma_alloc(mm->m);
	if (!av)
		return -ENOMEM;
	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(&av->rwsem));
	ptl_lock(mm);
	lost = vma->anon_vma != NULL;
	if (!lost)
		__anon_vma_link(vma, av);
	ptl_unlock(mm);
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&av->rwsem));
	if (lost)
		anon_vma_free(av);
	return 0;
}

void unlink_anon_vmas(struct vm_area_struct *vma)
{
	struct anon_vma *av = vma->anon_vma;

	if (!av)
		return;
	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(&av->rwsem));
	list_del(&vma->anon_vma_node);
	av->nr_vmas--;
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&av->rwsem));
	vma->anon_vma = NULL;
	put_anon_vma(av);
}

/* ---- the file's i_mmap -------------------------------------------------- */

/* Context: i_mmap_rwsem held for write. */
static int __vma_link_file(struct vm_area_struct *vma)
{
	struct iom_address_space *mapping = vma_mapping(vma);
	struct i_mmap_root *root = mapping->i_mmap;

	if (!root) {
		root = iom_meta_alloc(vma->vm_mm->m, sizeof(*root), 16, true);
		if (!root)
			return -ENOMEM;
		INIT_LIST_HEAD(&root->vmas);
		mapping->i_mmap = root;
	}
	list_add_tail(&vma->shared_node, &root->vmas);
	root->nr_vmas++;
	return 0;
}

int vma_link_file(struct vm_area_struct *vma)
{
	struct iom_address_space *mapping = vma_mapping(vma);
	int ret;

	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(rwsem(&mapping->i_mmap_rwsem)));
	ret = __vma_link_file(vma);
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(rwsem(&mapping->i_mmap_rwsem)));
	return ret;
}

void unlink_file_vma(struct vm_area_struct *vma)
{
	struct iom_address_space *mapping = vma_mapping(vma);
	struct i_mmap_root *root;

	if (!mapping)
		return;
	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(rwsem(&mapping->i_mmap_rwsem)));
	root = mapping->i_mmap;
	list_del(&vma->shared_node);
	if (--root->nr_vmas == 0) {
		mapping->i_mmap = NULL;	/* iom_inode_destroy() may go ahead */
		iom_meta_free(vma->vm_mm->m, root, sizeof(*root));
	}
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(rwsem(&mapping->i_mmap_rwsem)));
}

/**
 * iom_mapping_mapped() - mapping_mapped() for a range of indices: does a
 * VMA map any page index of [@first, @last] of @mapping?
 * Context: takes i_mmap_rwsem for read.
 */
bool iom_mapping_mapped(struct iom_address_space *mapping, unsigned long first,
			unsigned long last)
{
	bool mapped = false;

	if (!mapping)
		return false;
	IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(rwsem(&mapping->i_mmap_rwsem)));
	if (mapping->i_mmap) {
		struct i_mmap_root *root = mapping->i_mmap;

		for (struct list_head *p = root->vmas.next; p != &root->vmas && !mapped;
		     p = p->next) {
			struct vm_area_struct *vma = list_entry(p, struct vm_area_struct,
								shared_node);
			unsigned long start = vma->vm_pgoff;
			unsigned long end = start + (unsigned long)((vma->vm_end - vma->vm_start) >>
								   IOM_PAGE_SHIFT);

			mapped = start <= last && first < end;
		}
	}
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(rwsem(&mapping->i_mmap_rwsem)));
	return mapped;
}

void vma_lock_rmap(struct vm_area_struct *vma)
{
	if (vma->vm_file)
		IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(rwsem(&vma_mapping(vma)->i_mmap_rwsem)));
	if (vma->anon_vma)
		IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(&vma->anon_vma->rwsem));
}

void vma_unlock_rmap(struct vm_area_struct *vma)
{
	if (vma->anon_vma)
		IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&vma->anon_vma->rwsem));
	if (vma->vm_file)
		IOM_CHECK_PTHREAD(pthread_rwlock_unlock(rwsem(&vma_mapping(vma)->i_mmap_rwsem)));
}

/*
 * split_vma() lives here because it must change the VMA under its rmap
 * locks: the new upper VMA is linked and the old one shrunk in one
 * critical section, so a walker never sees the range twice.
 */
int split_vma(struct iom_mm *mm, struct vm_area_struct *vma, uint64_t addr)
{
	struct vm_area_struct *new;
	int ret = 0;

	IOM_BUG_ON(addr <= vma->vm_start || addr >= vma->vm_end ||
		   (addr & (IOM_PAGE_SIZE - 1)));
	new = iom_meta_alloc(mm->m, sizeof(*new), 64, true);
	if (!new)
		return -ENOMEM;
	/*
	 * Field by field: the list links belong to the rmap locks, which are
	 * not held yet (vm_area_dup() copies only what the VMA owns).
	 */
	new->vm_mm = vma->vm_mm;
	new->vm_end = vma->vm_end;
	new->vm_flags = vma->vm_flags;
	new->vm_file = vma->vm_file;
	new->vm_shmem = vma->vm_shmem;
	new->vm_start = addr;
	new->vm_pgoff = vma->vm_pgoff + (unsigned long)((addr - vma->vm_start) >> IOM_PAGE_SHIFT);
	new->anon_vma = NULL;

	vma_lock_rmap(vma);
	if (vma->vm_file)
		ret = __vma_link_file(new);	/* the root exists: cannot fail */
	if (!ret) {
		if (vma->anon_vma)
			__anon_vma_link(new, vma->anon_vma);
		vma->vm_end = addr;
	}
	vma_unlock_rmap(vma);
	if (ret) {
		iom_meta_free(mm->m, new, sizeof(*new));
		return ret;
	}
	if (new->vm_shmem)
		shmem_file_get(new->vm_shmem);
	list_add(&new->vm_list, &vma->vm_list);
	mm->map_count++;
	return 0;
}

/* ---- mapcount ----------------------------------------------------------- */

void page_add_new_anon_rmap(struct iom_page *page, struct vm_area_struct *vma,
			    uint64_t addr)
{
	IOM_BUG_ON(!vma->anon_vma || iom_page_mapcount(page) != 0);
	iom_SetPageSwapBacked(page);
	set_page_mapping(page, (struct iom_address_space *)
			 ((uintptr_t)vma->anon_vma | PAGE_MAPPING_ANON));
	page->index = linear_page_index(vma, addr);
	atomic_store(&page->_mapcount, 1);
}

void page_add_anon_rmap(struct iom_page *page, struct vm_area_struct *vma,
			uint64_t addr)
{
	(void)vma;
	(void)addr;
	atomic_fetch_add(&page->_mapcount, 1);
}

void page_add_file_rmap(struct iom_page *page, struct vm_area_struct *vma)
{
	(void)vma;
	atomic_fetch_add(&page->_mapcount, 1);
}

void page_dup_rmap(struct iom_page *page)
{
	atomic_fetch_add(&page->_mapcount, 1);
}

void page_remove_rmap(struct iom_page *page, struct vm_area_struct *vma)
{
	int old = atomic_fetch_sub(&page->_mapcount, 1);

	(void)vma;
	IOM_BUG_ON(old <= 0);
}

uint64_t vma_address(const struct iom_page *page, const struct vm_area_struct *vma)
{
	unsigned long pgoff = page->index;
	uint64_t off;

	if (pgoff < vma->vm_pgoff)
		return 0;
	off = (uint64_t)(pgoff - vma->vm_pgoff) << IOM_PAGE_SHIFT;
	if (off >= vma->vm_end - vma->vm_start)
		return 0;
	return vma->vm_start + off;
}

/* ---- the walk ----------------------------------------------------------- */

/* The page's mapping is a page cache (not anon, not a movable-ops marker). */
static struct iom_address_space *page_file_mapping(const struct iom_page *page)
{
	uintptr_t mapping = (uintptr_t)page_mapping_raw(page);

	if (!mapping || (mapping & PAGE_MAPPING_FLAGS))
		return NULL;
	return (struct iom_address_space *)mapping;
}

void rmap_walk(struct iom_page *page, const struct rmap_walk_control *rwc)
{
	struct iom_address_space *mapping;
	struct anon_vma *av = page_anon_vma(page);
	struct list_head *pos;

	if (av) {
		IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(&av->rwsem));
		list_for_each(pos, &av->vmas) {
			struct vm_area_struct *vma =
				list_entry(pos, struct vm_area_struct, anon_vma_node);
			uint64_t addr = vma_address(page, vma);

			if (addr && !rwc->rmap_one(page, vma, addr, rwc->arg))
				break;
		}
		IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&av->rwsem));
		return;
	}
	mapping = page_file_mapping(page);
	if (!mapping)
		return;
	IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(rwsem(&mapping->i_mmap_rwsem)));
	if (mapping->i_mmap) {
		struct i_mmap_root *root = mapping->i_mmap;

		list_for_each(pos, &root->vmas) {
			struct vm_area_struct *vma =
				list_entry(pos, struct vm_area_struct, shared_node);
			uint64_t addr = vma_address(page, vma);

			if (addr && !rwc->rmap_one(page, vma, addr, rwc->arg))
				break;
		}
	}
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(rwsem(&mapping->i_mmap_rwsem)));
}

/* The anon_vma reference an anonymous page's walk needs (NULL: unmapped). */
static bool rmap_walk_pinned(struct iom_page *page,
			     const struct rmap_walk_control *rwc)
{
	struct anon_vma *av = NULL;

	if (iom_PageAnon(page)) {
		av = page_get_anon_vma(page);
		if (!av)
			return false;
	}
	rmap_walk(page, rwc);
	if (av)
		put_anon_vma(av);
	return true;
}

/*
 * Is the PTE at @addr of @vma a mapping of @page: present, or for a device
 * page its device-private entry (page_vma_mapped_walk())? Under
 * page_table_lock.
 */
static pte_t *page_vma_mapped(struct iom_page *page, struct vm_area_struct *vma,
			      uint64_t addr)
{
	struct iom_machine *m = vma->vm_mm->m;
	pte_t *ptep = __pte_offset_map(vma->vm_mm, addr);
	pte_t pte;

	if (!ptep)
		return NULL;
	pte = ptep_get(ptep);
	if (pte_present(pte))
		return pte_pfn(pte) == page_to_pfn(m, page) ? ptep : NULL;
	if (is_zone_device_page(m, page) && is_swap_pte(pte) &&
	    is_device_private_entry(pte_to_swp_entry(pte)) &&
	    swp_offset(pte_to_swp_entry(pte)) == pgmap_page_to_pfn(page))
		return ptep;
	return NULL;
}

/* Transfer a PTE's dirty bit to the page (folio_mark_dirty()). */
static void pte_dirty_to_page(struct iom_page *page)
{
	if (iom_PageAnon(page))
		iom_SetPageDirty(page);
	else
		iom_set_page_dirty(page);
}

/* ---- iom_rmap_walk ------------------------------------------------------ */

struct rmap_walk_arg {
	bool (*fn)(struct iom_mm *mm, uint64_t addr, void *arg);
	void *arg;
	unsigned long visited;
};

static bool rmap_walk_one(struct iom_page *page, struct vm_area_struct *vma,
			  uint64_t addr, void *arg)
{
	struct rmap_walk_arg *a = arg;
	struct iom_mm *mm = vma->vm_mm;
	bool mapped;

	ptl_lock(mm);
	mapped = page_vma_mapped(page, vma, addr) != NULL;
	ptl_unlock(mm);
	if (!mapped)
		return true;
	a->visited++;
	return a->fn(mm, addr, a->arg);
}

/**
 * iom_rmap_walk() - call @fn for every present PTE that maps @page.
 * @m:    the machine.  @page: the page.
 * @fn:   called with (process, address, @arg), the page locked and the rmap
 *        lock (anon_vma or i_mmap, for read) held: it must not take
 *        mmap_lock nor change mappings. Returns false to stop.
 * @arg:  passed to @fn.
 * Context: @page locked, a reference held.
 * Return: PTEs visited.
 */
unsigned long iom_rmap_walk(struct iom_machine *m, struct iom_page *page,
			    bool (*fn)(struct iom_mm *mm, uint64_t addr, void *arg),
			    void *arg)
{
	struct rmap_walk_arg a = { .fn = fn, .arg = arg, .visited = 0 };
	struct rmap_walk_control rwc = { .arg = &a, .rmap_one = rmap_walk_one };

	if (!m || !page || !fn || !page_in_mem_map(m, page))
		return 0;
	if (!iom_page_mapped(page))
		return 0;
	rmap_walk_pinned(page, &rwc);
	return a.visited;
}

/* ---- try_to_unmap ------------------------------------------------------- */

/*
 * unmap_one(): take the PTE of @page at @addr away, replacing it by none
 * (try_to_unmap_one()) or by a migration entry of the same write-ness
 * (try_to_migrate_one()), between @event notifications. The PTE's mapcount
 * and page reference go with it (a migration entry holds neither, as in
 * the kernel); a dirty PTE dirties the page.
 */
/* ---- deferred TLB flushes (the kernel's current->tlb_ubc) -------------- */

/*
 * CPU TLBs are not modelled: a CPU access always walks the page table. What
 * is modelled is how many flushes migration issues: one per PTE
 * (ptep_clear_flush(), counted as nr_tlb_local_flush_one), or, with
 * TTU_BATCH_FLUSH, one for a whole batch of unmapped pages
 * (try_to_unmap_flush() -> arch_tlbbatch_flush(), counted as
 * nr_tlb_remote_flush), which is what the 6.3 migration batching saves.
 */
struct tlbflush_unmap_batch {
	struct iom_machine *m;
	bool flush_required;
};

static IOM_TLS struct tlbflush_unmap_batch tlb_ubc;

static void set_tlb_ubc_flush_pending(struct iom_mm *mm)
{
	tlb_ubc.m = mm->m;
	tlb_ubc.flush_required = true;
}

void try_to_unmap_flush(void)
{
	if (!tlb_ubc.flush_required)
		return;
	count_vm_event(tlb_ubc.m, IOM_NR_TLB_REMOTE_FLUSH);
	tlb_ubc.flush_required = false;
	tlb_ubc.m = NULL;
}

static bool unmap_one(struct iom_page *page, struct vm_area_struct *vma,
		      uint64_t addr, enum iom_mmu_notifier_event event,
		      bool migration_entry, enum ttu_flags flags)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_mmu_notifier_range range;
	bool device = is_zone_device_page(mm->m, page);
	pte_t *ptep, pte = 0;

	mmu_notifier_range_init(&range, event, mm, addr, addr + IOM_PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl_lock(mm);
	ptep = page_vma_mapped(page, vma, addr);
	if (ptep) {
		bool write, dirty;

		pte = ptep_get(ptep);
		if (device) {
			/* a device-private entry: the device may have written */
			write = swp_type(pte_to_swp_entry(pte)) == SWP_DEVICE_WRITE;
			dirty = write;
		} else {
			write = pte_write(pte);
			dirty = pte_dirty(pte);
		}
		if (migration_entry) {
			swp_entry_t entry = make_migration_entry(mm->m, page, write);

			/* remember the dirty bit for the new PTE (Linux 6.1) */
			if (dirty)
				entry = make_migration_entry_dirty(entry);
			set_pte(ptep, swp_entry_to_pte(entry));
		}
		else
			pte_clear(ptep);
		page_remove_rmap(page, vma);
		if (!device)
			atomic_fetch_sub(iom_PageAnon(page) ? &mm->rss_anon :
					 &mm->rss_file, 1);
		/* ptep_get_and_clear() + deferred flush, or ptep_clear_flush() */
		if (flags & TTU_BATCH_FLUSH)
			set_tlb_ubc_flush_pending(mm);
		else
			count_vm_event(mm->m, IOM_NR_TLB_LOCAL_FLUSH_ONE);
	}
	ptl_unlock(mm);
	mmu_notifier_invalidate_range_end(&range);
	if (ptep && device) {
		put_device_page(page);		/* the caller holds one more */
	} else if (ptep) {
		if (pte_dirty(pte))
			pte_dirty_to_page(page);
		iom_put_page(mm->m, page);
	}
	return iom_page_mapped(page);
}

static bool try_to_unmap_one(struct iom_page *page, struct vm_area_struct *vma,
			     uint64_t addr, void *arg)
{
	(void)arg;
	return unmap_one(page, vma, addr, IOM_MMU_NOTIFY_CLEAR, false, 0);
}

/**
 * iom_try_to_unmap() - clear every PTE that maps @page, for reclaim
 * (try_to_unmap()). Each clearing is bracketed by MMU_NOTIFY_CLEAR
 * notifications; a dirty PTE dirties the page. Anonymous pages are refused:
 * with no swap their content would be lost.
 * Context: @page locked, a reference held by the caller.
 * Return: true if no PTE maps the page any more.
 */
bool iom_try_to_unmap(struct iom_machine *m, struct iom_page *page)
{
	struct rmap_walk_control rwc = { .rmap_one = try_to_unmap_one };

	if (!m || !page || !page_in_mem_map(m, page))
		return false;
	if (!iom_page_mapped(page))
		return true;
	if (iom_PageAnon(page))
		return false;
	rmap_walk_pinned(page, &rwc);
	return !iom_page_mapped(page);
}

/* ---- migration entries -------------------------------------------------- */

static bool try_to_migrate_one(struct iom_page *page, struct vm_area_struct *vma,
			       uint64_t addr, void *arg)
{
	enum ttu_flags flags = (enum ttu_flags)(uintptr_t)arg;

	return unmap_one(page, vma, addr, IOM_MMU_NOTIFY_MIGRATE, true, flags);
}

/**
 * iom_try_to_migrate() - replace every PTE that maps @page by a migration
 * entry, writable if the PTE was (try_to_migrate()). Each replacement is
 * bracketed by MMU_NOTIFY_MIGRATE notifications; the PTE's mapcount and
 * page reference are dropped as in the kernel (a migration entry holds
 * neither), and a dirty PTE dirties the page. Accesses that meet an entry
 * sleep until the page is unlocked.
 * Context: @page locked and a reference held by the caller (the one
 * isolation took), which keeps the page alive while only entries point
 * at it. For an anonymous page the caller keeps the anon_vma alive until
 * iom_remove_migration_ptes() (page_get_anon_vma() before this call), or
 * knows the mappings cannot go away meanwhile.
 * Return: true if no present PTE maps the page now.
 */
bool try_to_migrate(struct iom_machine *m, struct iom_page *page,
		    enum ttu_flags flags)
{
	struct rmap_walk_control rwc = {
		.arg = (void *)(uintptr_t)flags,
		.rmap_one = try_to_migrate_one,
	};

	/* a device-private page too (migrate_device.c) */
	if (!m || !page || (!page_in_mem_map(m, page) && !iom_page_pgmap(m, page)))
		return false;
	if (!iom_page_mapped(page))
		return true;
	if (iom_page_ref_count(page) <= iom_page_mapcount(page)) {
		iom_warn(m, "try_to_migrate: pfn %#lx: the caller holds no reference",
			 page_to_pfn_any(m, page));
		return false;
	}
	rmap_walk_pinned(page, &rwc);
	return !iom_page_mapped(page);
}

bool iom_try_to_migrate(struct iom_machine *m, struct iom_page *page)
{
	return try_to_migrate(m, page, 0);
}

struct remove_migration_arg {
	struct iom_page *src;
	struct iom_page *dst;
};

static bool remove_migration_pte(struct iom_page *page, struct vm_area_struct *vma,
				 uint64_t addr, void *arg)
{
	struct remove_migration_arg *a = arg;
	struct iom_mm *mm = vma->vm_mm;
	struct iom_machine *m = mm->m;
	pte_t *ptep, pte;
	swp_entry_t entry;

	(void)page;
	ptl_lock(mm);
	ptep = __pte_offset_map(mm, addr);
	if (!ptep)
		goto out;
	pte = ptep_get(ptep);
	if (!pte_is_migration(pte))
		goto out;
	entry = pte_to_swp_entry(pte);
	if (swp_offset(entry) != page_to_pfn_any(m, a->src))
		goto out;
	if (is_zone_device_page(m, a->dst)) {
		/* migrate_device.c: the page now lives on the device */
		pte = swp_entry_to_pte(swp_entry(is_writable_migration_entry(entry) ?
						 SWP_DEVICE_WRITE : SWP_DEVICE_READ,
						 pgmap_page_to_pfn(a->dst)));
		atomic_fetch_add(&a->dst->_refcount, 1);
		page_add_anon_rmap(a->dst, vma, addr);
		set_pte(ptep, pte);
		goto out;
	}
	pte = pfn_pte(page_to_pfn(m, a->dst), _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED);
	if (is_writable_migration_entry(entry)) {
		pte = pte_mkwrite(pte);
		if (is_migration_entry_dirty(entry) || iom_PageDirty(a->dst))
			pte = pte_mkdirty(pte);
	}
	atomic_fetch_add(&a->dst->_refcount, 1);	/* get_page(): dst is held */
	if (iom_PageAnon(a->dst))
		page_add_anon_rmap(a->dst, vma, addr);
	else
		page_add_file_rmap(a->dst, vma);
	atomic_fetch_add(iom_PageAnon(a->dst) ? &mm->rss_anon : &mm->rss_file, 1);
	set_pte(ptep, pte);
out:
	ptl_unlock(mm);
	return true;
}

/**
 * iom_remove_migration_ptes() - turn every migration entry for @src into a
 * present PTE mapping @dst (remove_migration_ptes()): a reference and a
 * mapcount on @dst for each. @dst must already have taken @src's place
 * (mapping, index); the walk goes over @dst's anon_vma or file. @src ==
 * @dst restores after a failed migration.
 * Context: both pages locked; see iom_try_to_migrate() for the references.
 */
void remove_migration_ptes(struct iom_page *src, struct iom_page *dst)
{
	struct remove_migration_arg a = { .src = src, .dst = dst };
	struct rmap_walk_control rwc = { .arg = &a, .rmap_one = remove_migration_pte };

	rmap_walk(page_mapping_raw(dst) ? dst : src, &rwc);
}

void iom_remove_migration_ptes(struct iom_machine *m, struct iom_page *src,
			       struct iom_page *dst)
{
	struct remove_migration_arg a = { .src = src, .dst = dst };
	struct rmap_walk_control rwc = { .arg = &a, .rmap_one = remove_migration_pte };

	if (!m || !src || !dst || !page_in_mem_map(m, src) ||
	    !page_in_mem_map(m, dst))
		return;
	if (iom_page_ref_count(dst) <= 0) {
		iom_warn(m, "remove_migration_ptes: pfn %#lx is free",
			 page_to_pfn(m, dst));
		return;
	}
	rmap_walk(page_mapping_raw(dst) ? dst : src, &rwc);
}

/* ---- page_mkclean ------------------------------------------------------- */

static bool page_mkclean_one(struct iom_page *page, struct vm_area_struct *vma,
			     uint64_t addr, void *arg)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_mmu_notifier_range range;
	int *cleaned = arg;
	pte_t *ptep;

	mmu_notifier_range_init(&range, IOM_MMU_NOTIFY_PROTECTION_PAGE, mm, addr,
				addr + IOM_PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl_lock(mm);
	ptep = page_vma_mapped(page, vma, addr);
	if (ptep) {
		pte_t pte = ptep_get(ptep);

		if (pte_write(pte) || pte_dirty(pte)) {
			set_pte(ptep, pte_mkclean(pte_wrprotect(pte)));
			(*cleaned)++;
		}
	}
	ptl_unlock(mm);
	mmu_notifier_invalidate_range_end(&range);
	return true;
}

int page_mkclean(struct iom_machine *m, struct iom_page *page)
{
	struct rmap_walk_control rwc = { .rmap_one = page_mkclean_one };
	int cleaned = 0;

	(void)m;
	if (iom_PageAnon(page) || !iom_page_mapped(page))
		return 0;
	rwc.arg = &cleaned;
	rmap_walk(page, &rwc);
	return cleaned;
}
