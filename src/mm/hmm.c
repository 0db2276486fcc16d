/* SPDX-License-Identifier: MIT */
/*
 * HMM: devices mirror a process's CPU page table (mm/hmm.c), with the
 * interval notifiers of mm/mmu_notifier.c that tell them when to retry,
 * and the 5.x hmm_mirror registration that seed 001's hmm_domain builds on.
 * Simplified: interval notifiers are built on the plain MMU notifiers, one
 * sequence count per notifier instead of one per process (an invalidation
 * moves the count at its start and again at its end, so a notifier
 * inserted half way through one still sees it); hmm_range_fault() takes
 * mmap_lock itself; no huge pages.
 *
 * Conventions in this file: @mni an interval notifier, @mirror an
 * hmm_mirror, @range an hmm_range, @mm its process.
 */
#include <errno.h>

#include <iommig/hmm.h>
#include <iommig/memory.h>
#include <iommig/migrate_device.h>

#include "mm_types.h"

/* ---- interval notifiers ------------------------------------------------- */

static const struct iom_hmm_mirror_ops *mirror_ops_of(struct iom_mmu_interval_notifier *mni);

static bool mni_overlaps(const struct iom_mmu_interval_notifier *mni,
			 const struct iom_mmu_notifier_range *r)
{
	return r->start < mni->end && r->end > mni->start;
}

/* Odd while an invalidation runs; every start and every end moves it. */
static int mni_invalidate_range_start(struct iom_mmu_notifier *mn,
				      const struct iom_mmu_notifier_range *r)
{
	struct iom_mmu_interval_notifier *mni =
		container_of(mn, struct iom_mmu_interval_notifier, mn);
	unsigned long seq;

	if (!mni_overlaps(mni, r))
		return 0;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&mni->lock));
	mni->active++;
	seq = (atomic_load(&mni->invalidate_seq) | 1UL) + 2;
	atomic_store(&mni->invalidate_seq, seq);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&mni->lock));
	mni->ops->invalidate(mni, r, seq);
	return 0;
}

static void mni_invalidate_range_end(struct iom_mmu_notifier *mn,
				     const struct iom_mmu_notifier_range *r)
{
	struct iom_mmu_interval_notifier *mni =
		container_of(mn, struct iom_mmu_interval_notifier, mn);

	if (!mni_overlaps(mni, r))
		return;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&mni->lock));
	/* An end whose start ran before the insert finds active == 0. */
	if (mni->active > 0)
		mni->active--;
	if (!mni->active) {
		atomic_store(&mni->invalidate_seq,
			     (atomic_load(&mni->invalidate_seq) | 1UL) + 1);
		IOM_CHECK_PTHREAD(pthread_cond_broadcast(&mni->wq));
	} else {
		atomic_store(&mni->invalidate_seq,
			     atomic_load(&mni->invalidate_seq) + 2);
	}
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&mni->lock));
}

static void mni_release(struct iom_mmu_notifier *mn, struct iom_mm *mm)
{
	struct iom_mmu_interval_notifier *mni =
		container_of(mn, struct iom_mmu_interval_notifier, mn);
	const struct iom_hmm_mirror_ops *mops = mirror_ops_of(mni);

	(void)mm;
	if (mops) {
		struct iom_hmm_mirror *mirror =
			container_of(mni, struct iom_hmm_mirror, notifier);

		atomic_store(&mirror->released, true);
		if (mops->release)
			mops->release(mirror);
	}
}

static const struct iom_mmu_notifier_ops mni_mn_ops = {
	.release = mni_release,
	.invalidate_range_start = mni_invalidate_range_start,
	.invalidate_range_end = mni_invalidate_range_end,
};

/**
 * iom_mmu_interval_notifier_insert() - mmu_interval_notifier_insert():
 * watch [@start, @start + @length) of @mm.
 * @mni: zero-initialised.  @mm: the process.  @ops: ->invalidate.
 * Context: not from a notifier callback of @mm.
 * Return: 0; -EINVAL; -EBUSY if @mni is already inserted.
 */
int iom_mmu_interval_notifier_insert(struct iom_mmu_interval_notifier *mni,
				     struct iom_mm *mm, uint64_t start,
				     uint64_t length,
				     const struct iom_mmu_interval_notifier_ops *ops)
{
	int ret;

	if (!mni || !mm || !ops || !ops->invalidate || !length ||
	    start + length < start)
		return -EINVAL;
	if (mni->mm)
		return -EBUSY;
	mni->ops = ops;
	mni->start = start;
	mni->end = start + length;
	atomic_init(&mni->invalidate_seq, 0);
	mni->active = 0;
	IOM_CHECK_PTHREAD(pthread_mutex_init(&mni->lock, NULL));
	IOM_CHECK_PTHREAD(pthread_cond_init(&mni->wq, NULL));
	mni->mn.ops = &mni_mn_ops;
	mni->mn.mm = NULL;
	ret = iom_mmu_notifier_register(&mni->mn, mm);
	if (ret) {
		IOM_CHECK_PTHREAD(pthread_cond_destroy(&mni->wq));
		IOM_CHECK_PTHREAD(pthread_mutex_destroy(&mni->lock));
		return ret;
	}
	mni->mm = mm;
	return 0;
}

/**
 * iom_mmu_interval_notifier_remove() - mmu_interval_notifier_remove():
 * when it returns, no callback of @mni runs or will run.
 * Context: not from a notifier callback. A no-op for NULL or not inserted.
 */
void iom_mmu_interval_notifier_remove(struct iom_mmu_interval_notifier *mni)
{
	if (!mni || !mni->mm)
		return;
	iom_mmu_notifier_unregister(&mni->mn);	/* no-op after ->release */
	IOM_CHECK_PTHREAD(pthread_cond_destroy(&mni->wq));
	IOM_CHECK_PTHREAD(pthread_mutex_destroy(&mni->lock));
	mni->mm = NULL;
}

/**
 * iom_mmu_interval_read_begin() - mmu_interval_read_begin(): sleep while
 * an invalidation of @mni runs, then return the sequence.
 * Context: may sleep; not with the driver's update lock held.
 * Return: the (even) sequence; 0 for NULL or a notifier not inserted.
 */
unsigned long iom_mmu_interval_read_begin(struct iom_mmu_interval_notifier *mni)
{
	unsigned long seq;

	if (!mni || !mni->mm)
		return 0;
	IOM_CHECK_PTHREAD(pthread_mutex_lock(&mni->lock));
	while (mni->active)
		IOM_CHECK_PTHREAD(pthread_cond_wait(&mni->wq, &mni->lock));
	seq = atomic_load(&mni->invalidate_seq);
	IOM_CHECK_PTHREAD(pthread_mutex_unlock(&mni->lock));
	return seq;
}

/**
 * iom_mmu_interval_read_retry() - mmu_interval_read_retry().
 * Context: the lock the ->invalidate callback takes held.
 * Return: true if an invalidation started since @seq was read.
 */
bool iom_mmu_interval_read_retry(struct iom_mmu_interval_notifier *mni,
				 unsigned long seq)
{
	if (!mni || !mni->mm)
		return true;
	return atomic_load(&mni->invalidate_seq) != seq;
}

/**
 * iom_mmu_interval_check_retry() - mmu_interval_check_retry(): as
 * read_retry() but without the lock, so only a hint to stop early.
 * Context: any. Return: true if the caller should retry.
 */
bool iom_mmu_interval_check_retry(struct iom_mmu_interval_notifier *mni,
				  unsigned long seq)
{
	return iom_mmu_interval_read_retry(mni, seq);
}

/**
 * iom_mmu_interval_set_seq() - mmu_interval_set_seq(): kept for the
 * kernel's protocol; the sequence moved before ->invalidate was called.
 * Context: from ->invalidate, under the driver's update lock.
 */
void iom_mmu_interval_set_seq(struct iom_mmu_interval_notifier *mni,
			      unsigned long cur_seq)
{
	if (mni)
		IOM_BUG_ON(atomic_load(&mni->invalidate_seq) < cur_seq);
}

/* ---- hmm_range_fault ---------------------------------------------------- */

#define HMM_NEED_FAULT		1
#define HMM_NEED_WRITE_FAULT	2
/* walk results that are not errors: */
#define HMM_WALK_AGAIN		1	/* look again from @last, locks held */
#define HMM_WALK_RELOCK		2	/* mmap_lock was dropped: retake it */

static uint64_t hmm_req_flags(const struct iom_hmm_range *range, unsigned long i)
{
	return ((range->hmm_pfns[i] & range->pfn_flags_mask) | range->default_flags) &
	       (IOM_HMM_PFN_REQ_FAULT | IOM_HMM_PFN_REQ_WRITE);
}

static unsigned int hmm_pte_need_fault(uint64_t req, uint64_t cpu_flags)
{
	if (!(req & IOM_HMM_PFN_REQ_FAULT))
		return 0;
	if ((req & IOM_HMM_PFN_REQ_WRITE) && !(cpu_flags & IOM_HMM_PFN_WRITE))
		return HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT;
	if (!(cpu_flags & IOM_HMM_PFN_VALID))
		return HMM_NEED_FAULT;
	return 0;
}

/* hmm_pfns_fill() of a range nothing can map: -EFAULT if a fault is asked. */
static int hmm_fill_error(struct iom_hmm_range *range, uint64_t addr, uint64_t end)
{
	unsigned long i = (unsigned long)((addr - range->start) >> IOM_PAGE_SHIFT);
	unsigned long n = (unsigned long)((end - addr) >> IOM_PAGE_SHIFT);
	unsigned long k;

	for (k = 0; k < n; k++)
		if (hmm_req_flags(range, i + k) & IOM_HMM_PFN_REQ_FAULT)
			return -EFAULT;
	for (k = 0; k < n; k++)
		range->hmm_pfns[i + k] = IOM_HMM_PFN_ERROR;
	return 0;
}

/*
 * One pass from *@lastp: mmap_lock held for read. Return 0 when the range
 * is filled; HMM_WALK_AGAIN after a fault (locks held) or HMM_WALK_RELOCK
 * (mmap_lock dropped), *@lastp where to go on; or -errno.
 */
static int hmm_walk(struct iom_mm *mm, struct iom_hmm_range *range,
		    uint64_t *lastp)
{
	uint64_t addr = *lastp;

	while (addr < range->end) {
		unsigned long i = (unsigned long)((addr - range->start) >> IOM_PAGE_SHIFT);
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		unsigned int need, flags = 0;
		uint64_t req, cpu = 0;
		pte_t *ptep, pte;
		int ret;

		if (!vma || !(vma->vm_flags & VM_READ)) {
			uint64_t next = range->end;

			if (vma) {
				next = vma->vm_end;
			} else {
				vma = find_vma(mm, addr);
				if (vma && vma->vm_start < next)
					next = vma->vm_start;
			}
			if (next > range->end)
				next = range->end;
			ret = hmm_fill_error(range, addr, next);
			if (ret)
				return ret;
			addr = next;
			continue;
		}
		req = hmm_req_flags(range, i);
		ptl_lock(mm);
		ptep = __pte_offset_map(mm, addr);
		pte = ptep ? ptep_get(ptep) : 0;
		if (pte_present(pte)) {
			cpu = IOM_HMM_PFN_VALID | (pte_write(pte) ? IOM_HMM_PFN_WRITE : 0);
		} else if (is_swap_pte(pte) &&
			   is_device_private_entry(pte_to_swp_entry(pte))) {
			swp_entry_t entry = pte_to_swp_entry(pte);
			struct iom_page *dpage = device_private_entry_to_page(mm->m, entry);

			/* the caller's own device memory: report it, never fault */
			if (range->dev_private_owner && dpage &&
			    page_pgmap(dpage)->owner == range->dev_private_owner) {
				cpu = IOM_HMM_PFN_VALID;
				if (swp_type(entry) == SWP_DEVICE_WRITE)
					cpu |= IOM_HMM_PFN_WRITE;
				range->hmm_pfns[i] = (uint64_t)swp_offset(entry) | cpu;
				ptl_unlock(mm);
				addr += IOM_PAGE_SIZE;
				continue;
			}
		}
		need = hmm_pte_need_fault(req, cpu);
		if (!need) {
			range->hmm_pfns[i] = cpu ? (uint64_t)pte_pfn(pte) | cpu : 0;
			ptl_unlock(mm);
			addr += IOM_PAGE_SIZE;
			continue;
		}
		if (pte_is_migration(pte)) {
			*lastp = addr;
			migration_entry_wait(mm, ptep);	/* drops both locks */
			return HMM_WALK_RELOCK;
		}
		ptl_unlock(mm);
		if (need & HMM_NEED_WRITE_FAULT) {
			if (!(vma->vm_flags & VM_WRITE))
				return -EPERM;
			flags |= FAULT_FLAG_WRITE;
		}
		*lastp = addr;
		ret = handle_mm_fault(vma, addr, flags);
		if (ret == -EAGAIN)
			return HMM_WALK_RELOCK;
		if (ret)
			return ret;
		return HMM_WALK_AGAIN;
	}
	return 0;
}

/**
 * iom_hmm_range_fault() - hmm_range_fault(): fill @range->hmm_pfns[] from
 * the CPU page table of the notifier's process, faulting in the pages
 * whose flags ask for it.
 * @range: the request; @range->notifier_seq from read_begin().
 *
 * Entries that ask for no fault get the CPU's state: pfn | VALID [| WRITE],
 * 0 when nothing is mapped, ERROR outside a readable VMA. Between faults the
 * notifier's sequence is checked, so a racing invalidation ends the call
 * with -EBUSY; the caller must still check read_retry() under its lock.
 *
 * Context: may sleep; takes mmap_lock for read; not from a notifier
 * callback, and not with the lock ->invalidate takes held.
 * Return: 0; -EBUSY (retry from read_begin); -EFAULT; -EPERM; -ENOMEM;
 * -EINVAL (NULL argument, notifier not inserted or its process gone,
 * unaligned or empty range, or a range outside the notifier's interval).
 */
int iom_hmm_range_fault(struct iom_hmm_range *range)
{
	struct iom_mmu_interval_notifier *mni;
	struct iom_mm *mm;
	uint64_t last;
	int ret;

	if (!range || !range->notifier || !range->hmm_pfns)
		return -EINVAL;
	mni = range->notifier;
	if (!mni->mm || !mni->mn.mm)
		return -EINVAL;
	if ((range->start | range->end) & (IOM_PAGE_SIZE - 1) ||
	    range->start >= range->end || range->start < mni->start ||
	    range->end > mni->end || range->end > IOM_TASK_SIZE)
		return -EINVAL;
	mm = mni->mm;
	last = range->start;
	mmap_read_lock(mm);
	for (;;) {
		if (iom_mmu_interval_check_retry(mni, range->notifier_seq)) {
			ret = -EBUSY;
			break;
		}
		ret = hmm_walk(mm, range, &last);
		if (ret == HMM_WALK_RELOCK) {
			mmap_read_lock(mm);
			continue;
		}
		if (ret != HMM_WALK_AGAIN)
			break;
	}
	mmap_read_unlock(mm);
	return ret;
}

/* ---- mirrors ------------------------------------------------------------ */

static bool hmm_mirror_invalidate(struct iom_mmu_interval_notifier *mni,
				  const struct iom_mmu_notifier_range *r,
				  unsigned long cur_seq)
{
	struct iom_hmm_mirror *mirror =
		container_of(mni, struct iom_hmm_mirror, notifier);
	struct iom_hmm_update update = {
		.start = r->start < mni->start ? mni->start : r->start,
		.end = r->end > mni->end ? mni->end : r->end,
		.event = r->event,
		.owner = r->owner,
	};

	(void)cur_seq;
	mirror->ops->sync_cpu_device_pagetables(mirror, &update);
	return true;
}

static const struct iom_mmu_interval_notifier_ops hmm_mirror_mni_ops = {
	.invalidate = hmm_mirror_invalidate,
};

static const struct iom_hmm_mirror_ops *mirror_ops_of(struct iom_mmu_interval_notifier *mni)
{
	if (mni->ops != &hmm_mirror_mni_ops)
		return NULL;
	return container_of(mni, struct iom_hmm_mirror, notifier)->ops;
}

/* The mirror of @mm for @device. Context: mmap_lock held for write. */
static struct iom_hmm_mirror *hmm_find_mirror_locked(struct iom_mm *mm,
						     const void *device)
{
	struct iom_hmm_mirror *found = NULL;
	struct list_head *pos;

	IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(&mm->notifier_srcu));
	list_for_each(pos, &mm->notifiers) {
		struct iom_mmu_notifier *mn = list_entry(pos, struct iom_mmu_notifier, list);
		struct iom_mmu_interval_notifier *mni;
		struct iom_hmm_mirror *mirror;

		if (mn->ops != &mni_mn_ops)
			continue;
		mni = container_of(mn, struct iom_mmu_interval_notifier, mn);
		if (!mirror_ops_of(mni))
			continue;
		mirror = container_of(mni, struct iom_hmm_mirror, notifier);
		if (mirror->device == device) {
			found = mirror;
			break;
		}
	}
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->notifier_srcu));
	return found;
}

/* Context: mmap_lock held for write. */
static int hmm_mirror_insert(struct iom_hmm_mirror *mirror, struct iom_mm *mm)
{
	int ret;

	atomic_init(&mirror->released, false);
	atomic_init(&mirror->users, 1);
	ret = iom_mmu_interval_notifier_insert(&mirror->notifier, mm, 0,
					       IOM_TASK_SIZE, &hmm_mirror_mni_ops);
	if (!ret)
		mirror->mm = mm;
	return ret;
}

static bool hmm_mirror_ops_ok(const struct iom_hmm_mirror_ops *ops)
{
	return ops && ops->sync_cpu_device_pagetables;
}

/**
 * iom_hmm_mirror_register() - hmm_mirror_register(): @mirror follows @mm
 * from now on: every invalidation of @mm's page table reaches
 * ->sync_cpu_device_pagetables() first.
 * @mirror: zero-initialised but for ->ops and ->device.  @mm: the process.
 * Context: not from a notifier callback; takes mmap_lock for write.
 * Return: 0; -EINVAL (bad arguments, or ->device already mirrors @mm);
 * -EBUSY (@mirror is registered).
 */
int iom_hmm_mirror_register(struct iom_hmm_mirror *mirror, struct iom_mm *mm)
{
	int ret;

	if (!mirror || !mm || !hmm_mirror_ops_ok(mirror->ops) || !mirror->device)
		return -EINVAL;
	if (mirror->mm || mirror->notifier.mm)
		return -EBUSY;
	mmap_write_lock(mm);
	if (hmm_find_mirror_locked(mm, mirror->device))
		ret = -EINVAL;	/* same device can mirror only once */
	else
		ret = hmm_mirror_insert(mirror, mm);
	mmap_write_unlock(mm);
	return ret;
}

/**
 * iom_hmm_mirror_unregister() - hmm_mirror_unregister(): when it returns,
 * no callback of @mirror runs or will run. NULL or not registered: no-op.
 * Context: not from a notifier callback.
 */
void iom_hmm_mirror_unregister(struct iom_hmm_mirror *mirror)
{
	if (!mirror || !mirror->mm)
		return;
	iom_mmu_interval_notifier_remove(&mirror->notifier);
	mirror->mm = NULL;
}

/**
 * iom_hmm_mirror_get() - mmu_notifier_get() for mirrors: the mirror of @mm
 * for @device with a new reference, made by @ops->alloc_mirror() and
 * registered if there is none.
 * @ops: with sync_cpu_device_pagetables, alloc_mirror and free_mirror.
 * @device: the identity the mirror is shared under.  @mm: the process.
 * @out: the mirror.
 * Context: not from a notifier callback; takes mmap_lock for write, and
 * calls ->alloc_mirror() under it.
 * Return: 0; -EINVAL (bad arguments, or @device mirrors @mm with other
 * ops); -ENOMEM.
 */
int iom_hmm_mirror_get(const struct iom_hmm_mirror_ops *ops, const void *device,
		       struct iom_mm *mm, struct iom_hmm_mirror **out)
{
	struct iom_hmm_mirror *mirror;
	int ret = 0;

	if (!hmm_mirror_ops_ok(ops) || !ops->alloc_mirror || !ops->free_mirror ||
	    !device || !mm || !out)
		return -EINVAL;
	mmap_write_lock(mm);
	mirror = hmm_find_mirror_locked(mm, device);
	if (mirror) {
		if (mirror->ops != ops)
			ret = -EINVAL;
		else
			atomic_fetch_add(&mirror->users, 1);
	} else {
		mirror = ops->alloc_mirror(mm, device);
		if (!mirror) {
			ret = -ENOMEM;
		} else {
			mirror->ops = ops;
			mirror->device = device;
			ret = hmm_mirror_insert(mirror, mm);
			if (ret)
				ops->free_mirror(mirror);
		}
	}
	mmap_write_unlock(mm);
	if (!ret)
		*out = mirror;
	return ret;
}

/**
 * iom_hmm_mirror_put() - mmu_notifier_put(): drop a reference taken by
 * iom_hmm_mirror_get(); the last unregisters the mirror and frees it with
 * ->free_mirror(). NULL: a no-op.
 * Context: not from a notifier callback; takes mmap_lock for write unless
 * the process has exited.
 */
void iom_hmm_mirror_put(struct iom_hmm_mirror *mirror)
{
	struct iom_mm *mm;
	bool last;

	if (!mirror || !mirror->mm)
		return;
	if (atomic_load(&mirror->released)) {
		/* the process is gone: nobody can get() it any more */
		if (atomic_fetch_sub(&mirror->users, 1) == 1) {
			iom_mmu_interval_notifier_remove(&mirror->notifier);
			mirror->mm = NULL;
			mirror->ops->free_mirror(mirror);
		}
		return;
	}
	mm = mirror->mm;
	mmap_write_lock(mm);
	last = atomic_fetch_sub(&mirror->users, 1) == 1;
	if (last) {
		iom_mmu_interval_notifier_remove(&mirror->notifier);
		mirror->mm = NULL;
	}
	mmap_write_unlock(mm);
	if (last)
		mirror->ops->free_mirror(mirror);
}
