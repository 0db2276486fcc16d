/* SPDX-License-Identifier: MIT */
/*
 * Processes, VMAs, CPU page tables, anon_vmas and the helpers shared by
 * memory.c, mmap.c, mprotect.c, rmap.c, mmu_notifier.c and the migration,
 * gup and hmm code (include/linux/mm_types.h, pgtable.h, swapops.h, rmap.h,
 * mmu_notifier.h). Not exported.
 *
 * Conventions in this file:
 *   @m:    the machine.      @mm:  a process (struct iom_mm).
 *   @vma:  one of @mm's VMAs. @addr: a user virtual address of @mm.
 *   @ptep: a pointer to one entry inside a page-table page.
 *
 * Lock order (outermost first):
 *   mm->mmap_lock → page lock → mapping->i_mmap_rwsem / anon_vma->rwsem
 *   → mm->page_table_lock → (lru_lock, zone->lock inside the allocator).
 * mm->page_table_lock is one mutex per process: the kernel's split PTLs
 * (one lock per page-table page) are simplified to the kernel's original
 * single lock. Never allocate from the page allocator with it held: the
 * allocator may reclaim, which takes page locks and rmap locks.
 */
#ifndef IOM_MM_MM_TYPES_H
#define IOM_MM_MM_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <iommig/filemap.h>
#include <iommig/memory.h>

#include "internal.h"

/* ---- page-table format (arch/x86/include/asm/pgtable_types.h) ----------- */

/*
 * Four levels of 512 entries (PGD, PUD, PMD, PTE), 9 bits each, 4 KiB
 * pages: 48-bit virtual addresses. Every table is one page of the machine
 * (allocated with IOM_GFP_KERNEL | __GFP_ZERO), its content the entries.
 * An upper-level entry is the next table's pfn << 12 | _PAGE_TABLE.
 */
typedef uint64_t pte_t;

#define PT_LEVELS		4
#define PT_LEVEL_BITS		9
#define PTRS_PER_TABLE		(1U << PT_LEVEL_BITS)
#define PMD_SHIFT		(IOM_PAGE_SHIFT + PT_LEVEL_BITS)	/* a PTE table spans 2 MiB */
#define PMD_SIZE		(1ULL << PMD_SHIFT)
#define PMD_MASK		(~(PMD_SIZE - 1))

/* Bits of a present entry, at the x86 positions. */
#define _PAGE_PRESENT		(1ULL << 0)
#define _PAGE_RW		(1ULL << 1)
#define _PAGE_USER		(1ULL << 2)
#define _PAGE_ACCESSED		(1ULL << 5)	/* "young" */
#define _PAGE_DIRTY		(1ULL << 6)
#define _PAGE_PFN_SHIFT		IOM_PAGE_SHIFT
#define _PAGE_PFN_MASK		(((1ULL << 40) - 1) << _PAGE_PFN_SHIFT)
#define _PAGE_TABLE		(_PAGE_PRESENT | _PAGE_RW | _PAGE_USER)

/*
 * Non-present "swap-style" entries: _PAGE_PRESENT clear, a type in bits
 * 1..5 (never 0, so a non-present entry is never pte_none()), and an offset
 * in the pfn field: the pfn for migration and device-private entries
 * (include/linux/swapops.h). There is no swap device.
 */
#define SWP_TYPE_SHIFT		1
#define SWP_TYPE_MASK		0x1fULL
#define SWP_MIGRATION_READ	1	/* a read-only PTE under migration */
#define SWP_MIGRATION_WRITE	2	/* a writable PTE under migration */
#define SWP_DEVICE_READ		3	/* device-private page (migrate_device.c) */
#define SWP_DEVICE_WRITE	4	/* device-private page, writable */
/* a migration entry of a dirty PTE (the kernel's SWP_MIG_DIRTY_BIT, 6.1) */
#define SWP_MIG_DIRTY		(1ULL << 6)

typedef struct { uint64_t val; } swp_entry_t;

static inline pte_t ptep_get(const pte_t *ptep)
{
	return __atomic_load_n(ptep, __ATOMIC_RELAXED);
}

/* set_pte(): Context: mm->page_table_lock held. */
static inline void set_pte(pte_t *ptep, pte_t pte)
{
	__atomic_store_n(ptep, pte, __ATOMIC_RELAXED);
}

static inline void pte_clear(pte_t *ptep) { set_pte(ptep, 0); }

static inline bool pte_none(pte_t pte) { return pte == 0; }
static inline bool pte_present(pte_t pte) { return pte & _PAGE_PRESENT; }
static inline bool pte_write(pte_t pte) { return pte & _PAGE_RW; }
static inline bool pte_dirty(pte_t pte) { return pte & _PAGE_DIRTY; }
static inline bool pte_young(pte_t pte) { return pte & _PAGE_ACCESSED; }
static inline unsigned long pte_pfn(pte_t pte)
{
	return (unsigned long)((pte & _PAGE_PFN_MASK) >> _PAGE_PFN_SHIFT);
}
static inline pte_t pfn_pte(unsigned long pfn, pte_t prot)
{
	return ((pte_t)pfn << _PAGE_PFN_SHIFT) | prot;
}
static inline pte_t pte_mkwrite(pte_t pte) { return pte | _PAGE_RW; }
static inline pte_t pte_wrprotect(pte_t pte) { return pte & ~_PAGE_RW; }
static inline pte_t pte_mkdirty(pte_t pte) { return pte | _PAGE_DIRTY; }
static inline pte_t pte_mkclean(pte_t pte) { return pte & ~_PAGE_DIRTY; }
static inline pte_t pte_mkyoung(pte_t pte) { return pte | _PAGE_ACCESSED; }
static inline pte_t pte_mkold(pte_t pte) { return pte & ~_PAGE_ACCESSED; }

/* is_swap_pte(): neither none nor present. */
static inline bool is_swap_pte(pte_t pte)
{
	return !pte_none(pte) && !pte_present(pte);
}

static inline swp_entry_t swp_entry(unsigned int type, unsigned long offset)
{
	swp_entry_t e = { ((uint64_t)offset << _PAGE_PFN_SHIFT) |
			  (((uint64_t)type & SWP_TYPE_MASK) << SWP_TYPE_SHIFT) };
	return e;
}
static inline unsigned int swp_type(swp_entry_t e)
{
	return (unsigned int)((e.val >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK);
}
static inline unsigned long swp_offset(swp_entry_t e)
{
	return (unsigned long)((e.val & _PAGE_PFN_MASK) >> _PAGE_PFN_SHIFT);
}
static inline swp_entry_t pte_to_swp_entry(pte_t pte)
{
	swp_entry_t e = { pte };
	return e;
}
static inline pte_t swp_entry_to_pte(swp_entry_t e) { return e.val; }

static inline bool is_migration_entry(swp_entry_t e)
{
	return swp_type(e) == SWP_MIGRATION_READ ||
	       swp_type(e) == SWP_MIGRATION_WRITE;
}
static inline bool is_writable_migration_entry(swp_entry_t e)
{
	return swp_type(e) == SWP_MIGRATION_WRITE;
}
static inline bool is_device_private_entry(swp_entry_t e)
{
	return swp_type(e) == SWP_DEVICE_READ || swp_type(e) == SWP_DEVICE_WRITE;
}
/* make_migration_entry(): for @page, writable if the PTE was. */
static inline swp_entry_t make_migration_entry(const struct iom_machine *m,
					       const struct iom_page *page,
					       bool write)
{
	return swp_entry(write ? SWP_MIGRATION_WRITE : SWP_MIGRATION_READ,
			 page_to_pfn_any(m, page));	/* a device page's too */
}
static inline swp_entry_t make_migration_entry_dirty(swp_entry_t e)
{
	e.val |= SWP_MIG_DIRTY;
	return e;
}
static inline bool is_migration_entry_dirty(swp_entry_t e)
{
	return e.val & SWP_MIG_DIRTY;
}
static inline swp_entry_t make_readable_migration_entry(unsigned long pfn)
{
	return swp_entry(SWP_MIGRATION_READ, pfn);
}
/* migration_entry_to_page(): pfn_swap_entry_to_page(). */
static inline struct iom_page *migration_entry_to_page(const struct iom_machine *m,
						       swp_entry_t e)
{
	return pfn_to_page_any(m, swp_offset(e));	/* a device page's too */
}
/* pfn_swap_entry_to_page() of a device-private entry: NULL if no such page. */
static inline struct iom_page *device_private_entry_to_page(const struct iom_machine *m,
							    swp_entry_t e)
{
	return pfn_to_page_any(m, swp_offset(e));
}
static inline bool pte_is_migration(pte_t pte)
{
	return is_swap_pte(pte) && is_migration_entry(pte_to_swp_entry(pte));
}

/* ---- VMAs (struct vm_area_struct) --------------------------------------- */

#define VM_NONE		0x00000000UL
#define VM_READ		0x00000001UL
#define VM_WRITE	0x00000002UL
#define VM_EXEC		0x00000004UL
#define VM_SHARED	0x00000008UL
#define VM_MAYREAD	0x00000010UL
#define VM_MAYWRITE	0x00000020UL
#define VM_MAYEXEC	0x00000040UL
#define VM_MAYSHARE	0x00000080UL
#define VM_ACCESS_FLAGS	(VM_READ | VM_WRITE | VM_EXEC)

struct anon_vma;
struct shmem_file;

/*
 * struct vm_area_struct - a mapped range [vm_start, vm_end) of @vm_mm.
 *
 * vm_start, vm_end and vm_pgoff change only with mmap_lock held for write
 * AND the VMA's rmap locks held for write (vma_lock_rmap()), because rmap
 * walkers read them under the rmap locks alone. Everything else is
 * mmap_lock's.
 *
 * @vm_pgoff:  page offset in @vm_file, or, for private anonymous VMAs,
 *             vm_start >> 12 at creation (kept across splits): the base of
 *             the linear page->index of their anonymous pages.
 * @vm_file:   the mapped file (for MAP_SHARED|MAP_ANONYMOUS, the internal
 *             shmem file), or NULL.
 * @vm_shmem:  the shmem file object that owns @vm_file, for shared
 *             anonymous VMAs.
 * @anon_vma:  where this VMA's anonymous pages are found by rmap; set once
 *             under page_table_lock (anon_vma_prepare()).
 */
struct vm_area_struct {
	struct iom_mm *vm_mm;
	uint64_t vm_start;
	uint64_t vm_end;
	unsigned long vm_flags;
	unsigned long vm_pgoff;
	struct iom_inode *vm_file;
	struct shmem_file *vm_shmem;
	struct anon_vma *anon_vma;
	struct list_head vm_list;	/* mm->mmap, sorted by address */
	struct list_head anon_vma_node;	/* anon_vma->vmas */
	struct list_head shared_node;	/* the file's i_mmap list */
};

static inline bool vma_is_anonymous(const struct vm_area_struct *vma)
{
	return vma->vm_file == NULL;
}

/* is_cow_mapping(): private and may be written. */
static inline bool is_cow_mapping(unsigned long flags)
{
	return (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE;
}

static inline struct iom_address_space *vma_mapping(const struct vm_area_struct *vma)
{
	return vma->vm_file ? iom_inode_mapping(vma->vm_file) : NULL;
}

/* linear_page_index(): the page->index @addr of @vma maps. */
static inline unsigned long linear_page_index(const struct vm_area_struct *vma,
					      uint64_t addr)
{
	return vma->vm_pgoff + (unsigned long)((addr - vma->vm_start) >> IOM_PAGE_SHIFT);
}

/* ---- anon_vma (include/linux/rmap.h) ------------------------------------ */

/*
 * struct anon_vma - the VMAs in which the anonymous pages that point at it
 * (page->mapping = anon_vma | PAGE_MAPPING_ANON) may be mapped.
 *
 * Simplified from the kernel's anon_vma + anon_vma_chain tree: a forked
 * child's VMA links into its parent's anon_vma (one anon_vma per family),
 * so an rmap walk may visit VMAs that cannot map the page; the pfn check
 * in the walk skips them.
 *
 * @refcount: one per linked VMA plus page_get_anon_vma() holders. It drops
 *            to zero (and the anon_vma is freed) only under the hashed
 *            lifetime lock of rmap.c, the stand-in for the kernel's
 *            SLAB_TYPESAFE_BY_RCU + rcu_read_lock() in page_get_anon_vma().
 */
struct anon_vma {
	struct iom_machine *m;
	pthread_rwlock_t rwsem;
	atomic_long refcount;
	struct list_head vmas;		/* of vma->anon_vma_node */
	unsigned long nr_vmas;
};

#define PAGE_MAPPING_ANON	0x1UL
#define PAGE_MAPPING_MOVABLE	0x2UL	/* a non-LRU movable page (migrate.c) */
#define PAGE_MAPPING_FLAGS	0x3UL

/* page->mapping is read and written atomically (filemap.c's READ_MAPPING). */
static inline struct iom_address_space *page_mapping_raw(const struct iom_page *page)
{
	return __atomic_load_n(&page->mapping, __ATOMIC_ACQUIRE);
}
static inline void set_page_mapping(struct iom_page *page,
				    struct iom_address_space *mapping)
{
	__atomic_store_n(&page->mapping, mapping, __ATOMIC_RELEASE);
}

static inline struct anon_vma *page_anon_vma(const struct iom_page *page)
{
	uintptr_t mapping = (uintptr_t)page_mapping_raw(page);

	if ((mapping & PAGE_MAPPING_FLAGS) != PAGE_MAPPING_ANON)
		return NULL;
	return (struct anon_vma *)(mapping - PAGE_MAPPING_ANON);
}

/* The file's VMAs (mapping->i_mmap): a list instead of the kernel's interval tree. */
struct i_mmap_root {
	struct list_head vmas;		/* of vma->shared_node */
	unsigned long nr_vmas;
};

/* ---- the process (struct mm_struct) ------------------------------------- */

/*
 * struct iom_mm - a simulated process.
 * @mmap:            VMAs sorted by address, non-overlapping (the kernel's
 *                   maple tree simplified to a sorted list).
 * @pgd:             the top-level table (content of @pgd_page).
 * @nr_pgtables:     page-table pages, @pgd_page included.
 * @notifier_srcu:   read around every notifier callback, written by
 *                   register/unregister (SRCU simplified to an rwlock).
 * @migration_waits: times an access slept in migration_entry_wait().
 */
struct iom_mm {
	struct iom_machine *m;
	pthread_rwlock_t mmap_lock;
	pthread_mutex_t page_table_lock;
	struct iom_page *pgd_page;
	pte_t *pgd;
	struct list_head mmap;
	unsigned long map_count;
	/*
	 * mmap_cache: the VMA find_vma() found last (2.6's mm->mmap_cache,
	 * later the per-thread vmacache): faults and munmaps walk the list
	 * only on a miss. Read and set under mmap_lock for read (relaxed: a
	 * stale hint is only a miss); cleared by remove_vma() under the lock
	 * for write, so a cached VMA is never a freed one.
	 */
	_Atomic(struct vm_area_struct *) mmap_cache;
	atomic_long nr_pgtables;
	atomic_long rss_anon;
	atomic_long rss_file;

	pthread_rwlock_t notifier_srcu;
	struct list_head notifiers;
	atomic_int nr_notifiers;

	atomic_ulong migration_waits;
	atomic_bool has_pinned;		/* MMF_HAS_PINNED: gup.c pinned a page */
};

static inline void mmap_read_lock(struct iom_mm *mm)
{
	IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(&mm->mmap_lock));
}
static inline void mmap_read_unlock(struct iom_mm *mm)
{
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->mmap_lock));
}
static inline void mmap_write_lock(struct iom_mm *mm)
{
	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(&mm->mmap_lock));
}
static inline void mmap_write_unlock(struct iom_mm *mm)
{
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->mmap_lock));
}
static inline void ptl_lock(struct iom_mm *mm)
{
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&mm->page_table_lock));
}
static inline void ptl_unlock(struct iom_mm *mm)
{
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&mm->page_table_lock));
}

/* ---- memory.c: page tables, faults -------------------------------------- */

/*
 * pte_offset_map_lock() - the PTE of @addr with mm->page_table_lock held, or
 * NULL (lock not held) if a table on the way is missing.
 * Context: mmap_lock held, or the caller otherwise keeps the tables from
 * being freed (rmap walkers: a VMA linked in the rmap keeps its tables).
 */
pte_t *pte_offset_map_lock(struct iom_mm *mm, uint64_t addr);
static inline void pte_unmap_unlock(struct iom_mm *mm) { ptl_unlock(mm); }
/* Under page_table_lock: the PTE of @addr or NULL; allocates nothing. */
pte_t *__pte_offset_map(struct iom_mm *mm, uint64_t addr);
/*
 * __pte_alloc() - make sure every table down to the PTE table of @addr
 * exists (tables are allocated without the lock, installed under it).
 * Context: mmap_lock held; page_table_lock NOT held. Return: 0, -ENOMEM.
 */
int __pte_alloc(struct iom_mm *mm, uint64_t addr);

/*
 * struct mm_walk_ops - walk_page_range() callbacks (include/linux/pagewalk.h).
 * @pte_entry: every entry (none included) of every PTE table that exists in
 *             the range, page_table_lock held. Nonzero stops the walk and is
 *             returned.
 * @pte_hole:  a range with no PTE table, lock not held (may be NULL).
 */
struct mm_walk;
struct mm_walk_ops {
	int (*pte_entry)(pte_t *ptep, uint64_t addr, struct mm_walk *walk);
	int (*pte_hole)(uint64_t start, uint64_t end, struct mm_walk *walk);
};
struct mm_walk {
	const struct mm_walk_ops *ops;
	struct iom_mm *mm;
	struct vm_area_struct *vma;	/* the VMA of the range, or NULL */
	void *private;
};
/*
 * walk_page_range() - the page-table walker. Context: mmap_lock held (read
 * is enough for walks that only change entries); not page_table_lock.
 * Return: 0 or the first nonzero callback return.
 */
int walk_page_range(struct iom_mm *mm, uint64_t start, uint64_t end,
		    const struct mm_walk_ops *ops, void *private);

/* handle_mm_fault() flags. */
#define FAULT_FLAG_WRITE	0x01
/*
 * FAULT_FLAG_UNSHARE: a read fault that must leave an exclusive anonymous
 * page behind (gup.c's read pin of a page shared after fork): a shared
 * anonymous page of a COW mapping is copied, and the copy mapped read-only.
 */
#define FAULT_FLAG_UNSHARE	0x02

/*
 * handle_mm_fault() - resolve a fault at @addr of @vma: allocate page
 * tables, fault the page in, break COW, or sleep on a migration entry.
 * Checks @vma's protection first.
 * Context: mmap_lock held for read (or write) by the caller.
 * Return: 0 (the caller looks at the PTE again); -EFAULT; -ENOMEM;
 * -EAGAIN when mmap_lock has been RELEASED (a migration entry was waited
 * for): the caller retakes it and looks the VMA up again.
 */
int handle_mm_fault(struct vm_area_struct *vma, uint64_t addr,
		    unsigned int flags);

/*
 * migration_entry_wait() - @ptep (page_table_lock held, mmap_lock held for
 * read) is a migration entry: take a reference on its page, drop both
 * locks, sleep until the page is unlocked, drop the reference. Returns with
 * neither lock held. If the page's count is frozen or zero, yields instead.
 */
void migration_entry_wait(struct iom_mm *mm, pte_t *ptep);

/*
 * zap_page_range() - clear every PTE of [@start, @end) in @vma (present
 * entries drop their page's mapcount and reference; migration entries are
 * just cleared), no notifier (callers send it). Context: mmap_lock held.
 */
void zap_page_range(struct vm_area_struct *vma, uint64_t start, uint64_t end);
/*
 * free_pgtables() - free every page-table page (PTE, PMD, PUD) touched by
 * [@start, @end) that is empty. Context: mmap_lock held for write.
 */
void free_pgtables(struct iom_mm *mm, uint64_t start, uint64_t end);

/*
 * mm_populate() - fault [@start, @end) in (for write if @write), as
 * populate_vma_page_range(); stops at the first error. Context: mmap_lock
 * NOT held.
 */
void mm_populate(struct iom_mm *mm, uint64_t start, uint64_t end, bool write);


/*
 * page_needs_cow_for_dma() - fork must give the child its own copy of
 * @page now instead of sharing it copy-on-write: the parent (@vma's
 * process) has pinned pages and @page, anonymous in a COW mapping, may be
 * DMA-pinned. Sharing it would let the parent's next write copy it away
 * from the device's view.
 */
static inline bool page_needs_cow_for_dma(struct vm_area_struct *vma,
					  const struct iom_page *page)
{
	if (!is_cow_mapping(vma->vm_flags) || !iom_PageAnon(page))
		return false;
	if (!atomic_load_explicit(&vma->vm_mm->has_pinned, memory_order_relaxed))
		return false;
	return iom_page_ref_count(page) >= GUP_PIN_COUNTING_BIAS;
}
/*
 * page_copy_prealloc() - the page fork copies a pinned page into, allocated
 * with no lock held (page_table_lock of neither process). NULL: no memory.
 */
struct iom_page *page_copy_prealloc(struct iom_mm *src_mm);
/*
 * copy_present_page() - fork's copy of the pinned @page, mapped at @addr of
 * @dst_vma by @dst_pte (which must be none): the content goes into
 * *@prealloc, which the child then owns; the parent keeps @page, and its
 * PTE, unchanged. Context: both page_table_locks held.
 * Return: 0; -EAGAIN if *@prealloc is NULL (drop the locks, allocate it
 * with page_copy_prealloc() and try again).
 */
int copy_present_page(struct vm_area_struct *dst_vma, pte_t *dst_pte,
		      uint64_t addr, struct iom_page *page,
		      struct iom_page **prealloc);

/* ---- mmap.c ------------------------------------------------------------- */

/*
 * find_vma(): the first VMA that ends after @addr (it may start after it),
 * or NULL. vma_lookup(): the VMA containing @addr, or NULL.
 * Context: mmap_lock held.
 */
/* rmap.c: try_to_migrate() with the kernel's TTU flags. */
enum ttu_flags {
	TTU_BATCH_FLUSH = 0x40,	/* batch TLB flushes where possible */
};
bool try_to_migrate(struct iom_machine *m, struct iom_page *page,
		    enum ttu_flags flags);
/* The one flush owed for the PTEs cleared with TTU_BATCH_FLUSH. */
void try_to_unmap_flush(void);
/*
 * remove_migration_ptes() without the public checks: @src and @dst may be
 * device-private pages (migrate_device.c); a device @dst gets
 * device-private entries. Context: as iom_remove_migration_ptes().
 */
void remove_migration_ptes(struct iom_page *src, struct iom_page *dst);

struct vm_area_struct *find_vma(struct iom_mm *mm, uint64_t addr);
struct vm_area_struct *vma_lookup(struct iom_mm *mm, uint64_t addr);
/* vma_lock_rmap()/vma_unlock_rmap(): the VMA's i_mmap_rwsem and anon_vma
 * rwsem for write (in that order), to change what rmap walkers read. */
void vma_lock_rmap(struct vm_area_struct *vma);
void vma_unlock_rmap(struct vm_area_struct *vma);
/*
 * split_vma() - split @vma at @addr (vm_start < @addr < vm_end, page
 * aligned); the new VMA is the upper part. Context: mmap_lock for write.
 * Return: 0, -ENOMEM.
 */
int split_vma(struct iom_mm *mm, struct vm_area_struct *vma, uint64_t addr);

/*
 * The shmem file behind a MAP_SHARED|MAP_ANONYMOUS mapping (mm/shmem.c,
 * reduced to a simulated file with a reference per VMA); the last put
 * destroys the file. Context: the VMA is already out of the file's i_mmap.
 */
void shmem_file_get(struct shmem_file *sf);
void shmem_file_put(struct shmem_file *sf);

/* ---- rmap.c ------------------------------------------------------------- */

/* anon_vma_prepare(): give @vma an anon_vma. Context: mmap_lock held. Return: 0, -ENOMEM. */
int anon_vma_prepare(struct vm_area_struct *vma);
/* anon_vma_link(): link @vma into @av (a ref). Context: mmap_lock for write. */
void anon_vma_link(struct vm_area_struct *vma, struct anon_vma *av);
/* unlink_anon_vmas(): unlink @vma from its anon_vma and drop its ref. */
void unlink_anon_vmas(struct vm_area_struct *vma);
/* vma_link_file(), unlink_file_vma(): @vma in/out of its file's i_mmap. */
int vma_link_file(struct vm_area_struct *vma);
void unlink_file_vma(struct vm_area_struct *vma);
/*
 * page_get_anon_vma() - the anonymous @page's anon_vma with a reference
 * (keeps it, and so rmap walks over it, alive), or NULL if the page is not
 * mapped. Migration takes it before try_to_migrate() and holds it until
 * after remove_migration_ptes(), as the kernel's unmap_and_move() does.
 */
struct anon_vma *page_get_anon_vma(struct iom_page *page);
void put_anon_vma(struct anon_vma *av);
static inline void get_anon_vma(struct anon_vma *av)
{
	atomic_fetch_add(&av->refcount, 1);
}

/*
 * Mapcount changes, under page_table_lock of the PTE's mm.
 * page_add_new_anon_rmap(): a new page, mapcount 0 → 1, mapping and index
 * set, PG_swapbacked. page_add_anon_rmap()/page_add_file_rmap()/
 * page_dup_rmap(): one more PTE. page_remove_rmap(): one fewer.
 */
void page_add_new_anon_rmap(struct iom_page *page, struct vm_area_struct *vma,
			    uint64_t addr);
void page_add_anon_rmap(struct iom_page *page, struct vm_area_struct *vma,
			uint64_t addr);
void page_add_file_rmap(struct iom_page *page, struct vm_area_struct *vma);
void page_dup_rmap(struct iom_page *page);
void page_remove_rmap(struct iom_page *page, struct vm_area_struct *vma);

/* vma_address(): where @page would be mapped in @vma, or 0 if outside it. */
uint64_t vma_address(const struct iom_page *page, const struct vm_area_struct *vma);

/*
 * struct rmap_walk_control - rmap_walk() (include/linux/rmap.h).
 * @rmap_one: called for each VMA that may map the page at @addr, with the
 *            rmap lock (anon_vma->rwsem or i_mmap_rwsem) held for read, not
 *            page_table_lock; false stops the walk.
 * @arg:      passed to @rmap_one.
 */
struct rmap_walk_control {
	void *arg;
	bool (*rmap_one)(struct iom_page *page, struct vm_area_struct *vma,
			 uint64_t addr, void *arg);
};
/*
 * rmap_walk() - every VMA in which @page may be mapped. For an anonymous
 * page the anon_vma must be kept alive by the caller (page mapped and
 * locked, or a page_get_anon_vma() reference). Context: @page locked.
 */
void rmap_walk(struct iom_page *page, const struct rmap_walk_control *rwc);
/*
 * page_mkclean() - write-protect and clean every PTE mapping the file
 * @page, so the next write faults and dirties it again (for
 * clear_page_dirty_for_io()). Context: @page locked. Return: PTEs cleaned.
 */
int page_mkclean(struct iom_machine *m, struct iom_page *page);

/* ---- mmu_notifier.c ----------------------------------------------------- */

void mmu_notifier_mm_init(struct iom_mm *mm);
void mmu_notifier_mm_destroy(struct iom_mm *mm);
static inline void mmu_notifier_range_init(struct iom_mmu_notifier_range *r,
					   enum iom_mmu_notifier_event event,
					   struct iom_mm *mm, uint64_t start,
					   uint64_t end)
{
	r->mm = mm;
	r->start = start;
	r->end = end;
	r->event = event;
	r->owner = NULL;
}
/* Context: no page_table_lock (callbacks may sleep). */
void __mmu_notifier_invalidate_range_start(struct iom_mmu_notifier_range *r);
void __mmu_notifier_invalidate_range_end(struct iom_mmu_notifier_range *r);
static inline void mmu_notifier_invalidate_range_start(struct iom_mmu_notifier_range *r)
{
	if (atomic_load_explicit(&r->mm->nr_notifiers, memory_order_acquire))
		__mmu_notifier_invalidate_range_start(r);
}
static inline void mmu_notifier_invalidate_range_end(struct iom_mmu_notifier_range *r)
{
	if (atomic_load_explicit(&r->mm->nr_notifiers, memory_order_acquire))
		__mmu_notifier_invalidate_range_end(r);
}
/* __mmu_notifier_release(): ->release of each notifier, which is then unhooked. */
void __mmu_notifier_release(struct iom_mm *mm);

#endif /* IOM_MM_MM_TYPES_H */
