/* SPDX-License-Identifier: MIT */
/*
 * Changing the protection of mapped ranges (mm/mprotect.c). Removing write
 * write-protects the PTEs (and makes writable migration entries readable);
 * adding write leaves them read-only and lets the next write fault make
 * them writable, so a private page still shared after fork keeps its COW.
 * Simplified: no PROT_NONE PTEs (accesses check the VMA), no VMA merging.
 */
#include <errno.h>

#include <iommig/memory.h>

#include "mm_types.h"

static int change_pte_entry(pte_t *ptep, uint64_t addr, struct mm_walk *walk)
{
	pte_t pte = ptep_get(ptep);

	(void)addr;
	(void)walk;
	if (pte_present(pte)) {
		if (pte_write(pte))
			set_pte(ptep, pte_wrprotect(pte));
	} else if (is_swap_pte(pte)) {
		swp_entry_t e = pte_to_swp_entry(pte);

		if (is_writable_migration_entry(e))
			set_pte(ptep, swp_entry_to_pte(
				make_readable_migration_entry(swp_offset(e))));
		else if (swp_type(e) == SWP_DEVICE_WRITE)
			set_pte(ptep, swp_entry_to_pte(
				swp_entry(SWP_DEVICE_READ, swp_offset(e))));
	}
	return 0;
}

static const struct mm_walk_ops change_prot_ops = {
	.pte_entry = change_pte_entry,
};

/* mprotect_fixup() for a VMA already split to the range. */
static void mprotect_fixup(struct vm_area_struct *vma, unsigned long newflags)
{
	struct iom_mm *mm = vma->vm_mm;
	struct iom_mmu_notifier_range range;
	bool wrprotect = (vma->vm_flags & VM_WRITE) && !(newflags & VM_WRITE);

	mmu_notifier_range_init(&range, IOM_MMU_NOTIFY_PROTECTION_VMA, mm,
				vma->vm_start, vma->vm_end);
	mmu_notifier_invalidate_range_start(&range);
	vma->vm_flags = newflags;
	if (wrprotect)
		walk_page_range(mm, vma->vm_start, vma->vm_end, &change_prot_ops, NULL);
	mmu_notifier_invalidate_range_end(&range);
}

/**
 * iom_mprotect() - set the protection of [@addr, @addr + @len) to @prot
 * (do_mprotect_pkey()), splitting VMAs at the ends. Nothing changes unless
 * the whole range is mapped.
 * @mm: the process.  @addr: page aligned.  @len: bytes.  @prot: IOM_PROT_*.
 * Context: takes mmap_lock for write.
 * Return: 0; -EINVAL (bad @prot, unaligned @addr, range overflow);
 * -ENOMEM if part of the range is unmapped or a split failed.
 */
int iom_mprotect(struct iom_mm *mm, uint64_t addr, size_t len, int prot)
{
	unsigned long want = 0;
	struct vm_area_struct *vma, *first;
	uint64_t end, at;
	int ret = 0;

	if (!mm || (addr & (IOM_PAGE_SIZE - 1)) ||
	    (prot & ~(IOM_PROT_READ | IOM_PROT_WRITE | IOM_PROT_EXEC)))
		return -EINVAL;
	if (!len)
		return 0;
	end = addr + (((uint64_t)len + IOM_PAGE_SIZE - 1) & ~(uint64_t)(IOM_PAGE_SIZE - 1));
	if (end <= addr || end > IOM_TASK_SIZE)
		return -ENOMEM;
	if (prot & IOM_PROT_READ)
		want |= VM_READ;
	if (prot & IOM_PROT_WRITE)
		want |= VM_WRITE;
	if (prot & IOM_PROT_EXEC)
		want |= VM_EXEC;

	mmap_write_lock(mm);
	/* the whole range must be mapped, without holes */
	first = vma_lookup(mm, addr);
	for (vma = first, at = addr; vma && vma->vm_start <= at && at < end;) {
		if ((want & VM_WRITE) && !(vma->vm_flags & VM_MAYWRITE)) {
			ret = -EACCES;
			goto out;
		}
		at = vma->vm_end;
		vma = vma->vm_list.next == &mm->mmap ? NULL :
		      list_entry(vma->vm_list.next, struct vm_area_struct, vm_list);
	}
	if (!first || at < end) {
		ret = -ENOMEM;
		goto out;
	}
	if (first->vm_start < addr) {
		ret = split_vma(mm, first, addr);
		if (ret)
			goto out;
	}
	vma = vma_lookup(mm, end - 1);
	if (vma->vm_end > end) {
		ret = split_vma(mm, vma, end);
		if (ret)
			goto out;
	}
	for (vma = vma_lookup(mm, addr); vma && vma->vm_start < end;) {
		unsigned long newflags = (vma->vm_flags & ~VM_ACCESS_FLAGS) | want;

		if (newflags != vma->vm_flags)
			mprotect_fixup(vma, newflags);
		vma = vma->vm_list.next == &mm->mmap ? NULL :
		      list_entry(vma->vm_list.next, struct vm_area_struct, vm_list);
	}
out:
	mmap_write_unlock(mm);
	return ret;
}
