/* SPDX-License-Identifier: MIT */
/*
 * Processes and their VMAs: mm creation and exit_mmap(), mmap(), munmap()
 * and fork's dup_mmap() (mm/mmap.c, kernel/fork.c, mm/shmem.c for shared
 * anonymous memory). Simplified: VMAs are a sorted list (the kernel's maple
 * tree), adjacent VMAs are never merged, and shared anonymous memory is an
 * internal simulated file instead of a tmpfs inode.
 */
#include <errno.h>
#include <string.h>

#include <iommig/filemap.h>
#include <iommig/memory.h>

#include "mm_types.h"

#define PAGE_MASK_U64 (~(uint64_t)(IOM_PAGE_SIZE - 1))

/* ---- shmem -------------------------------------------------------------- */

struct shmem_file {
	struct iom_machine *m;
	struct iom_inode *inode;
	atomic_long refs;
};

static struct shmem_file *shmem_file_setup(struct iom_machine *m, uint64_t size)
{
	struct shmem_file *sf = iom_meta_alloc(m, sizeof(*sf), 16, true);

	if (!sf)
		return NULL;
	if (iom_inode_create(m, size, &sf->inode)) {
		iom_meta_free(m, sf, sizeof(*sf));
		return NULL;
	}
	sf->m = m;
	atomic_init(&sf->refs, 1);
	return sf;
}

void shmem_file_get(struct shmem_file *sf)
{
	atomic_fetch_add(&sf->refs, 1);
}

void shmem_file_put(struct shmem_file *sf)
{
	if (atomic_fetch_sub(&sf->refs, 1) != 1)
		return;
	if (iom_inode_destroy(sf->inode))
		iom_report_bug(sf->m, "shmem: file still mapped at its last unmap; leaked");
	iom_meta_free(sf->m, sf, sizeof(*sf));
}

/* ---- the VMA list ------------------------------------------------------- */

struct vm_area_struct *find_vma(struct iom_mm *mm, uint64_t addr)
{
	struct vm_area_struct *vma = atomic_load_explicit(&mm->mmap_cache,
							  memory_order_relaxed);
	struct list_head *pos;

	/* the VMA holding @addr is the first that ends after it */
	if (vma && vma->vm_start <= addr && vma->vm_end > addr)
		return vma;
	list_for_each(pos, &mm->mmap) {
		vma = list_entry(pos, struct vm_area_struct, vm_list);
		if (vma->vm_end > addr) {
			if (vma->vm_start <= addr)
				atomic_store_explicit(&mm->mmap_cache, vma,
						      memory_order_relaxed);
			return vma;
		}
	}
	return NULL;
}

struct vm_area_struct *vma_lookup(struct iom_mm *mm, uint64_t addr)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	return vma && vma->vm_start <= addr ? vma : NULL;
}

static struct vm_area_struct *vma_next(struct iom_mm *mm, struct vm_area_struct *vma)
{
	if (vma->vm_list.next == &mm->mmap)
		return NULL;
	return list_entry(vma->vm_list.next, struct vm_area_struct, vm_list);
}

/* Insert @vma in address order. Context: mmap_lock for write. */
static void vma_link_list(struct iom_mm *mm, struct vm_area_struct *vma)
{
	struct vm_area_struct *next = find_vma(mm, vma->vm_start);

	IOM_BUG_ON(next && next->vm_start < vma->vm_end);
	list_add_tail(&vma->vm_list, next ? &next->vm_list : &mm->mmap);
	mm->map_count++;
}

static struct vm_area_struct *vma_alloc(struct iom_mm *mm)
{
	struct vm_area_struct *vma = iom_meta_alloc(mm->m, sizeof(*vma), 64, true);

	if (vma)
		vma->vm_mm = mm;
	return vma;
}

/* Unlink a VMA already off the mm list and zapped from the rmap, and free it. */
static void remove_vma(struct vm_area_struct *vma)
{
	struct vm_area_struct *cached = vma;

	atomic_compare_exchange_strong(&vma->vm_mm->mmap_cache, &cached, NULL);
	unlink_anon_vmas(vma);
	if (vma->vm_file)
		unlink_file_vma(vma);
	if (vma->vm_shmem)
		shmem_file_put(vma->vm_shmem);
	iom_meta_free(vma->vm_mm->m, vma, sizeof(*vma));
}

/* ---- creation and exit -------------------------------------------------- */

/**
 * iom_mm_create() - a process with no VMAs and an empty page table.
 * @m:   the machine.  @mmp: gets the new process.
 * Context: any thread.
 * Return: 0; -EINVAL; -ENOMEM (no memory for the PGD or the metadata).
 */
int iom_mm_create(struct iom_machine *m, struct iom_mm **mmp)
{
	struct iom_mm *mm;

	if (!m || !mmp)
		return -EINVAL;
	mm = iom_meta_alloc(m, sizeof(*mm), 64, true);
	if (!mm)
		return -ENOMEM;
	mm->pgd_page = iom_alloc_pages(m, IOM_GFP_KERNEL | IOM___GFP_ZERO, 0);
	if (!mm->pgd_page) {
		iom_meta_free(m, mm, sizeof(*mm));
		return -ENOMEM;
	}
	mm->m = m;
	mm->pgd = page_address(m, mm->pgd_page);
	atomic_init(&mm->nr_pgtables, 1);
	{
		/*
		 * The kernel's rw_semaphore lets a waiting writer block new
		 * readers; glibc's default prefers readers, which starves
		 * munmap/mprotect/fork behind a stream of faults.
		 */
		pthread_rwlockattr_t attr;

		IOM_CHECK_PTHREAD(pthread_rwlockattr_init(&attr));
		IOM_CHECK_PTHREAD(pthread_rwlockattr_setkind_np(&attr,
					PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP));
		IOM_CHECK_PTHREAD(pthread_rwlock_init(&mm->mmap_lock, &attr));
		IOM_CHECK_PTHREAD(pthread_rwlockattr_destroy(&attr));
	}
	IOM_CHECK_PTHREAD(pthread_mutex_init(&mm->page_table_lock, NULL));
	INIT_LIST_HEAD(&mm->mmap);
	mmu_notifier_mm_init(mm);
	*mmp = mm;
	return 0;
}

/* Unmap and free every VMA and every page table but the PGD. mmap_lock for write. */
static void unmap_all(struct iom_mm *mm)
{
	while (!list_empty(&mm->mmap)) {
		struct vm_area_struct *vma =
			list_first_entry(&mm->mmap, struct vm_area_struct, vm_list);

		zap_page_range(vma, vma->vm_start, vma->vm_end);
		list_del(&vma->vm_list);
		mm->map_count--;
		remove_vma(vma);
	}
	free_pgtables(mm, 0, IOM_TASK_SIZE);
}

/**
 * iom_mm_destroy() - exit_mmap(): MMU notifiers' ->release, unmap every
 * VMA (each page's reference and mapcount dropped), free the page tables
 * and the process.
 * @mm: the process, or NULL.
 * Context: no access to @mm runs or will run.
 */
void iom_mm_destroy(struct iom_mm *mm)
{
	struct iom_machine *m;

	if (!mm)
		return;
	m = mm->m;
	__mmu_notifier_release(mm);
	mmap_write_lock(mm);
	unmap_all(mm);
	mmap_write_unlock(mm);
	if (atomic_load(&mm->nr_pgtables) != 1)
		iom_report_bug(m, "exit_mmap: %ld page tables left",
			       atomic_load(&mm->nr_pgtables) - 1);
	iom_put_page(m, mm->pgd_page);
	mmu_notifier_mm_destroy(mm);
	IOM_CHECK_PTHREAD(pthread_rwlock_destroy(&mm->mmap_lock));
	IOM_CHECK_PTHREAD(pthread_mutex_destroy(&mm->page_table_lock));
	iom_meta_free(m, mm, sizeof(*mm));
}

/**
 * iom_mm_machine() - the machine @mm lives on.
 * Context: any thread. Return: the machine, or NULL for a NULL @mm.
 */
struct iom_machine *iom_mm_machine(const struct iom_mm *mm)
{
	return mm ? mm->m : NULL;
}

/* ---- munmap ------------------------------------------------------------- */

/*
 * do_munmap() - unmap [@start, @start + @len): split the VMAs at the ends,
 * take them off the list, zap their PTEs between MMU_NOTIFY_UNMAP
 * notifications, unlink them from the rmap, free the empty page tables.
 * Context: mmap_lock for write. Return: 0, -ENOMEM (a split failed; nothing
 * was unmapped).
 */
static int do_munmap(struct iom_mm *mm, uint64_t start, uint64_t len)
{
	uint64_t end = start + len;
	struct vm_area_struct *vma = find_vma(mm, start), *last, *next = NULL;
	struct iom_mmu_notifier_range range;
	struct list_head detached, *pos;
	int ret;

	if (!vma || vma->vm_start >= end)
		return 0;
	if (vma->vm_start < start) {
		ret = split_vma(mm, vma, start);
		if (ret)
			return ret;
		vma = vma_next(mm, vma);
	}
	/* the VMA holding end - 1 is at or after vma: walk on from there */
	for (last = vma; last && last->vm_end <= end - 1; last = vma_next(mm, last))
		;
	if (last && last->vm_start < end && last->vm_end > end) {
		ret = split_vma(mm, last, end);
		if (ret)
			return ret;
	}

	INIT_LIST_HEAD(&detached);
	for (; vma && vma->vm_start < end; vma = next) {
		next = vma_next(mm, vma);
		list_move_tail(&vma->vm_list, &detached);
		mm->map_count--;
	}
	if (list_empty(&detached))
		return 0;
	/* unmaps often go up in address: the next one likely falls in next */
	if (next)
		atomic_store_explicit(&mm->mmap_cache, next, memory_order_relaxed);
	mmu_notifier_range_init(&range, IOM_MMU_NOTIFY_UNMAP, mm,
		list_first_entry(&detached, struct vm_area_struct, vm_list)->vm_start,
		list_last_entry(&detached, struct vm_area_struct, vm_list)->vm_end);
	mmu_notifier_invalidate_range_start(&range);
	list_for_each(pos, &detached) {
		vma = list_entry(pos, struct vm_area_struct, vm_list);
		zap_page_range(vma, vma->vm_start, vma->vm_end);
	}
	mmu_notifier_invalidate_range_end(&range);
	while (!list_empty(&detached)) {
		vma = list_first_entry(&detached, struct vm_area_struct, vm_list);
		list_del(&vma->vm_list);
		remove_vma(vma);
	}
	free_pgtables(mm, range.start, range.end);
	return 0;
}

/**
 * iom_munmap() - unmap [@addr, @addr + @len), splitting VMAs at the ends.
 * Unmapping nothing is not an error.
 * Context: takes mmap_lock for write.
 * Return: 0; -EINVAL (NULL @mm, unaligned @addr, zero @len, outside the
 * user range); -ENOMEM if a VMA could not be split.
 */
int iom_munmap(struct iom_mm *mm, uint64_t addr, size_t len)
{
	uint64_t alen;
	int ret;

	if (!mm || (addr & (IOM_PAGE_SIZE - 1)) || !len)
		return -EINVAL;
	alen = ((uint64_t)len + IOM_PAGE_SIZE - 1) & PAGE_MASK_U64;
	if (addr >= IOM_TASK_SIZE || alen > IOM_TASK_SIZE - addr || alen < len)
		return -EINVAL;
	mmap_write_lock(mm);
	ret = do_munmap(mm, addr, alen);
	mmap_write_unlock(mm);
	return ret;
}

/* ---- mmap --------------------------------------------------------------- */

static bool range_is_free(struct iom_mm *mm, uint64_t start, uint64_t end)
{
	struct vm_area_struct *vma = find_vma(mm, start);

	return !vma || vma->vm_start >= end;
}

/* get_unmapped_area(): @hint if it is free, else top-down. 0 if no room. */
static uint64_t get_unmapped_area(struct iom_mm *mm, uint64_t hint, uint64_t len)
{
	uint64_t gap_end = IOM_TASK_SIZE;
	struct list_head *pos;

	hint &= PAGE_MASK_U64;
	if (hint >= IOM_MMAP_MIN && hint < IOM_TASK_SIZE &&
	    len <= IOM_TASK_SIZE - hint && range_is_free(mm, hint, hint + len))
		return hint;
	for (pos = mm->mmap.prev; pos != &mm->mmap; pos = pos->prev) {
		struct vm_area_struct *vma = list_entry(pos, struct vm_area_struct, vm_list);

		if (gap_end - vma->vm_end >= len)
			return gap_end - len;
		gap_end = vma->vm_start;
	}
	if (gap_end >= IOM_MMAP_MIN && gap_end - IOM_MMAP_MIN >= len)
		return gap_end - len;
	return 0;
}

static unsigned long calc_vm_flags(int prot, int flags)
{
	unsigned long vm_flags = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;

	if (prot & IOM_PROT_READ)
		vm_flags |= VM_READ;
	if (prot & IOM_PROT_WRITE)
		vm_flags |= VM_WRITE;
	if (prot & IOM_PROT_EXEC)
		vm_flags |= VM_EXEC;
	if (flags & IOM_MAP_SHARED)
		vm_flags |= VM_SHARED | VM_MAYSHARE;
	return vm_flags;
}

/**
 * iom_mmap() - map anonymous memory or a simulated file (do_mmap()).
 * @mm:     the process.
 * @addr:   a hint, or the exact address with IOM_MAP_FIXED (what is
 *          mapped there is unmapped first).
 * @len:    bytes (rounded up to pages).
 * @prot:   IOM_PROT_*.
 * @flags:  IOM_MAP_SHARED or IOM_MAP_PRIVATE, and IOM_MAP_FIXED,
 *          IOM_MAP_ANONYMOUS, IOM_MAP_POPULATE.
 * @file:   the file, unless IOM_MAP_ANONYMOUS (then ignored).
 * @offset: byte offset in @file, page aligned, inside the file.
 * @addrp:  gets the address.
 *
 * Shared anonymous memory is backed by an internal simulated file (shmem);
 * private anonymous memory gets zero-filled pages on first touch. With
 * IOM_MAP_POPULATE the pages are faulted in before returning (failures
 * there are ignored, as the kernel's mm_populate()).
 *
 * Context: takes mmap_lock for write. Return: 0; -EINVAL; -ENOMEM.
 */
int iom_mmap(struct iom_mm *mm, uint64_t addr, size_t len, int prot, int flags,
	     struct iom_inode *file, uint64_t offset, uint64_t *addrp)
{
	const int known = IOM_MAP_SHARED | IOM_MAP_PRIVATE | IOM_MAP_FIXED |
			  IOM_MAP_ANONYMOUS | IOM_MAP_POPULATE;
	int type = flags & (IOM_MAP_SHARED | IOM_MAP_PRIVATE);
	bool anon = flags & IOM_MAP_ANONYMOUS;
	struct shmem_file *sf = NULL;
	struct vm_area_struct *vma;
	unsigned long vm_flags;
	uint64_t alen;
	int ret;

	if (!mm || !addrp || !len || (prot & ~(IOM_PROT_READ | IOM_PROT_WRITE |
					      IOM_PROT_EXEC)) ||
	    (flags & ~known) || (type != IOM_MAP_SHARED && type != IOM_MAP_PRIVATE))
		return -EINVAL;
	alen = ((uint64_t)len + IOM_PAGE_SIZE - 1) & PAGE_MASK_U64;
	if (alen < len || alen > IOM_TASK_SIZE - IOM_MMAP_MIN)
		return -ENOMEM;
	if (!anon) {
		if (!file || (offset & (IOM_PAGE_SIZE - 1)) ||
		    offset >= iom_inode_size(file))
			return -EINVAL;
	}
	if (flags & IOM_MAP_FIXED) {
		if (addr & (IOM_PAGE_SIZE - 1) || addr < IOM_MMAP_MIN)
			return -EINVAL;
		if (addr >= IOM_TASK_SIZE || alen > IOM_TASK_SIZE - addr)
			return -ENOMEM;
	}

	vma = vma_alloc(mm);
	if (!vma)
		return -ENOMEM;
	if (anon && type == IOM_MAP_SHARED) {
		sf = shmem_file_setup(mm->m, alen);
		if (!sf) {
			iom_meta_free(mm->m, vma, sizeof(*vma));
			return -ENOMEM;
		}
	}

	mmap_write_lock(mm);
	if (flags & IOM_MAP_FIXED) {
		ret = do_munmap(mm, addr, alen);
		if (ret)
			goto fail;
	} else {
		addr = get_unmapped_area(mm, addr, alen);
		if (!addr) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	vma->vm_start = addr;
	vma->vm_end = addr + alen;
	vma->vm_flags = calc_vm_flags(prot, flags);
	if (sf) {
		vma->vm_file = sf->inode;
		vma->vm_shmem = sf;
		vma->vm_pgoff = 0;
	} else if (anon) {
		vma->vm_pgoff = (unsigned long)(addr >> IOM_PAGE_SHIFT);
	} else {
		vma->vm_file = file;
		vma->vm_pgoff = (unsigned long)(offset >> IOM_PAGE_SHIFT);
	}
	if (vma->vm_file) {
		ret = vma_link_file(vma);
		if (ret)
			goto fail;
	}
	vm_flags = vma->vm_flags;
	vma_link_list(mm, vma);
	mmap_write_unlock(mm);

	if ((flags & IOM_MAP_POPULATE) && (vm_flags & (VM_READ | VM_WRITE)))
		mm_populate(mm, addr, addr + alen,
			    (vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE);
	*addrp = addr;
	return 0;

fail:
	mmap_write_unlock(mm);
	if (sf)
		shmem_file_put(sf);
	iom_meta_free(mm->m, vma, sizeof(*vma));
	return ret;
}

/* ---- fork --------------------------------------------------------------- */

/*
 * copy_pte_range() for one PTE table of @src_vma: present pages are shared
 * (a reference and a mapcount more), write-protected in both processes if
 * the mapping is private (COW); migration entries are copied, made
 * read-only for a private mapping (copy_nonpresent_pte()). A page that may
 * be DMA-pinned is copied for the child at once (copy_present_page(), in
 * memory.c), into *@prealloc.
 * Context: both page_table_locks held.
 * Return: @end; or the address of a pinned page met with no *@prealloc.
 */
static uint64_t copy_pte_table(struct vm_area_struct *dst_vma,
			       struct vm_area_struct *src_vma, pte_t *dst,
			       pte_t *src, uint64_t addr, uint64_t end,
			       struct iom_page **prealloc)
{
	struct iom_machine *m = src_vma->vm_mm->m;
	bool cow = is_cow_mapping(src_vma->vm_flags);

	for (; addr < end; addr += IOM_PAGE_SIZE, src++, dst++) {
		pte_t pte = ptep_get(src);

		if (pte_none(pte))
			continue;
		if (!pte_present(pte)) {
			swp_entry_t e = pte_to_swp_entry(pte);

			/*
			 * copy_nonpresent_pte(): a device-private entry maps
			 * its page: one more reference and mapcount, and a
			 * COW mapping shares it read-only in both.
			 */
			if (is_device_private_entry(e)) {
				struct iom_page *dpage =
					device_private_entry_to_page(m, e);

				get_device_page(dpage);
				page_dup_rmap(dpage);
				if (swp_type(e) == SWP_DEVICE_WRITE && cow) {
					pte = swp_entry_to_pte(swp_entry(SWP_DEVICE_READ,
									 swp_offset(e)));
					set_pte(src, pte);
				}
				set_pte(dst, pte);
				continue;
			}
			if (is_writable_migration_entry(e) && cow) {
				pte = swp_entry_to_pte(make_readable_migration_entry(swp_offset(e)));
				set_pte(src, pte);
			}
			set_pte(dst, pte);
			continue;
		}
		struct iom_page *page = pfn_to_page(m, pte_pfn(pte));

		if (page_needs_cow_for_dma(src_vma, page)) {
			if (copy_present_page(dst_vma, dst, addr, page, prealloc))
				return addr;
			continue;
		}
		if (cow && pte_write(pte)) {
			pte = pte_wrprotect(pte);
			set_pte(src, pte);
		}
		atomic_fetch_add(&page->_refcount, 1);	/* get_page(): mapped, so held */
		page_dup_rmap(page);
		atomic_fetch_add(iom_PageAnon(page) ? &dst_vma->vm_mm->rss_anon :
			       &dst_vma->vm_mm->rss_file, 1);
		if (src_vma->vm_flags & VM_SHARED)
			pte = pte_mkclean(pte);
		set_pte(dst, pte_mkold(pte));
	}
	return end;
}

/* copy_page_range(): the PTEs of @src_vma into the child. */
static int copy_page_range(struct vm_area_struct *dst_vma,
			   struct vm_area_struct *src_vma)
{
	struct iom_mm *src_mm = src_vma->vm_mm, *dst_mm = dst_vma->vm_mm;
	struct iom_mmu_notifier_range range;
	bool cow = is_cow_mapping(src_vma->vm_flags);
	struct iom_page *prealloc = NULL;
	uint64_t addr, next;
	int ret = 0;

	if (cow) {
		mmu_notifier_range_init(&range, IOM_MMU_NOTIFY_PROTECTION_PAGE,
					src_mm, src_vma->vm_start, src_vma->vm_end);
		mmu_notifier_invalidate_range_start(&range);
	}
	for (addr = src_vma->vm_start; addr < src_vma->vm_end; addr = next) {
		pte_t *src, *dst;

		next = (addr + PMD_SIZE) & PMD_MASK;
		if (next > src_vma->vm_end)
			next = src_vma->vm_end;
		/* the parent's tables stay: its mmap_lock is held for write */
		ptl_lock(src_mm);
		src = __pte_offset_map(src_mm, addr);
		ptl_unlock(src_mm);
		if (!src)
			continue;
		ret = __pte_alloc(dst_mm, addr);
		if (ret)
			break;
		ptl_lock(src_mm);
		ptl_lock(dst_mm);
		dst = __pte_offset_map(dst_mm, addr);
		addr = copy_pte_table(dst_vma, src_vma, dst,
				      src, addr, next, &prealloc);
		ptl_unlock(dst_mm);
		ptl_unlock(src_mm);
		if (addr < next) {
			/* a pinned page to copy: allocate with no lock held */
			prealloc = page_copy_prealloc(src_mm);
			if (!prealloc) {
				ret = -ENOMEM;
				break;
			}
			next = addr;	/* resume at that page */
		}
	}
	if (prealloc)
		iom_put_page(src_mm->m, prealloc);
	if (cow)
		mmu_notifier_invalidate_range_end(&range);
	return ret;
}

/**
 * iom_fork() - dup_mmap(): a child process with a copy of every VMA.
 * Shared mappings map the same pages; private ones map them read-only in
 * both processes and copy on the first write (a reference and a mapcount
 * more per page); an anonymous page the parent may have DMA-pinned is
 * copied for the child at once (copy_present_page()). The child's private VMAs join the parent's anon_vma
 * (simplified: no anon_vma_chain, so no per-child anon_vma).
 * @parent: the process to copy.  @childp: gets the child.
 * Context: takes the parent's mmap_lock for write.
 * Return: 0; -EINVAL; -ENOMEM (the half-built child is torn down).
 */
int iom_fork(struct iom_mm *parent, struct iom_mm **childp)
{
	struct iom_mm *child;
	struct list_head *pos;
	int ret;

	if (!parent || !childp)
		return -EINVAL;
	ret = iom_mm_create(parent->m, &child);
	if (ret)
		return ret;
	mmap_write_lock(parent);
	mmap_write_lock(child);
	list_for_each(pos, &parent->mmap) {
		struct vm_area_struct *vma = list_entry(pos, struct vm_area_struct, vm_list);
		struct vm_area_struct *new = vma_alloc(child);

		if (!new) {
			ret = -ENOMEM;
			break;
		}
		new->vm_start = vma->vm_start;
		new->vm_end = vma->vm_end;
		new->vm_flags = vma->vm_flags;
		new->vm_pgoff = vma->vm_pgoff;
		new->vm_file = vma->vm_file;
		if (new->vm_file && vma_link_file(new)) {
			iom_meta_free(child->m, new, sizeof(*new));
			ret = -ENOMEM;
			break;
		}
		new->vm_shmem = vma->vm_shmem;
		if (new->vm_shmem)
			shmem_file_get(new->vm_shmem);
		if (vma->anon_vma)
			anon_vma_link(new, vma->anon_vma);
		list_add_tail(&new->vm_list, &child->mmap);
		child->map_count++;
		ret = copy_page_range(new, vma);
		if (ret)
			break;
	}
	mmap_write_unlock(child);
	mmap_write_unlock(parent);
	if (ret) {
		iom_mm_destroy(child);
		return ret;
	}
	*childp = child;
	return 0;
}
