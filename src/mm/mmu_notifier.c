/* SPDX-License-Identifier: MIT */
/*
 * MMU notifiers: secondary MMUs (device mirrors) follow changes of a
 * process's page table (mm/mmu_notifier.c). Simplified: the SRCU that lets
 * unregister wait for running callbacks is a per-process rwlock, held for
 * read around callbacks and for write to change the list; no interval
 * notifiers, no non-blocking ranges.
 */
#include <errno.h>

#include <iommig/memory.h>

#include "mm_types.h"

void mmu_notifier_mm_init(struct iom_mm *mm)
{
	IOM_CHECK_PTHREAD(pthread_rwlock_init(&mm->notifier_srcu, NULL));
	INIT_LIST_HEAD(&mm->notifiers);
	atomic_init(&mm->nr_notifiers, 0);
}

void mmu_notifier_mm_destroy(struct iom_mm *mm)
{
	IOM_BUG_ON(!list_empty(&mm->notifiers));
	IOM_CHECK_PTHREAD(pthread_rwlock_destroy(&mm->notifier_srcu));
}

/**
 * iom_mmu_notifier_register() - hook @mn into @mm: from now on its
 * callbacks see every change of @mm's page table.
 * @mn: zero-initialised except ->ops.  @mm: the process.
 * Context: not from a callback of @mm's notifiers.
 * Return: 0; -EINVAL (NULL @mn, @mm or ops); -EBUSY if @mn is registered.
 */
int iom_mmu_notifier_register(struct iom_mmu_notifier *mn, struct iom_mm *mm)
{
	if (!mn || !mm || !mn->ops)
		return -EINVAL;
	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(&mm->notifier_srcu));
	if (mn->mm) {
		IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->notifier_srcu));
		return -EBUSY;
	}
	mn->mm = mm;
	list_add_tail(&mn->list, &mm->notifiers);
	atomic_fetch_add_explicit(&mm->nr_notifiers, 1, memory_order_release);
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->notifier_srcu));
	return 0;
}

/**
 * iom_mmu_notifier_unregister() - unhook @mn; when it returns, no callback
 * of @mn runs or will run (the write lock waits for readers, as
 * synchronize_srcu()). A no-op if @mn is not registered, or its process
 * has exited (->release has been called).
 * Context: not from a callback of @mm's notifiers.
 */
void iom_mmu_notifier_unregister(struct iom_mmu_notifier *mn)
{
	struct iom_mm *mm;

	if (!mn || !mn->mm)
		return;
	mm = mn->mm;
	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(&mm->notifier_srcu));
	if (mn->mm == mm) {
		list_del(&mn->list);
		mn->mm = NULL;
		atomic_fetch_sub_explicit(&mm->nr_notifiers, 1, memory_order_release);
	}
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->notifier_srcu));
}

void __mmu_notifier_invalidate_range_start(struct iom_mmu_notifier_range *r)
{
	struct iom_mm *mm = r->mm;
	struct list_head *pos;

	IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(&mm->notifier_srcu));
	list_for_each(pos, &mm->notifiers) {
		struct iom_mmu_notifier *mn = list_entry(pos, struct iom_mmu_notifier, list);

		if (mn->ops->invalidate_range_start)
			mn->ops->invalidate_range_start(mn, r);
	}
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->notifier_srcu));
}

void __mmu_notifier_invalidate_range_end(struct iom_mmu_notifier_range *r)
{
	struct iom_mm *mm = r->mm;
	struct list_head *pos;

	IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(&mm->notifier_srcu));
	list_for_each(pos, &mm->notifiers) {
		struct iom_mmu_notifier *mn = list_entry(pos, struct iom_mmu_notifier, list);

		if (mn->ops->invalidate_range_end)
			mn->ops->invalidate_range_end(mn, r);
	}
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->notifier_srcu));
}

/*
 * __mmu_notifier_release() - exit_mmap(): each notifier's ->release, then
 * every notifier is unhooked, so a later unregister is a no-op.
 */
void __mmu_notifier_release(struct iom_mm *mm)
{
	struct list_head *pos;

	IOM_CHECK_PTHREAD(pthread_rwlock_rdlock(&mm->notifier_srcu));
	list_for_each(pos, &mm->notifiers) {
		struct iom_mmu_notifier *mn = list_entry(pos, struct iom_mmu_notifier, list);

		if (mn->ops->release)
			mn->ops->release(mn, mm);
	}
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->notifier_srcu));

	IOM_CHECK_PTHREAD(pthread_rwlock_wrlock(&mm->notifier_srcu));
	while (!list_empty(&mm->notifiers)) {
		struct iom_mmu_notifier *mn =
			list_first_entry(&mm->notifiers, struct iom_mmu_notifier, list);

		list_del(&mn->list);
		mn->mm = NULL;
	}
	atomic_store_explicit(&mm->nr_notifiers, 0, memory_order_release);
	IOM_CHECK_PTHREAD(pthread_rwlock_unlock(&mm->notifier_srcu));
}
