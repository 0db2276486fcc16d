/* SPDX-License-Identifier: MIT */
/*
 * libiommig - page migration (include/linux/migrate.h, migrate_mode.h;
 * mm/migrate.c).
 *
 * Conventions in this header:
 *   @m:       the machine.
 *   @page:    the page being migrated (the old page).
 *   @newpage: the page it moves to.
 *   @mapping: @page's address_space, NULL for an anonymous page.
 *
 * The migration modes (enum iom_migrate_mode) are in <iommig/mm.h>.
 */
#ifndef IOMMIG_MIGRATE_H
#define IOMMIG_MIGRATE_H

#include <stdint.h>

#include <iommig/filemap.h>
#include <iommig/memory.h>
#include <iommig/mm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why a page is migrated: the kernel's enum migrate_reason, same order. */
enum iom_migrate_reason {
	IOM_MR_COMPACTION,
	IOM_MR_MEMORY_FAILURE,
	IOM_MR_MEMORY_HOTPLUG,
	IOM_MR_SYSCALL,		/* also applies to cpusets */
	IOM_MR_MEMPOLICY_MBIND,
	IOM_MR_NUMA_MISPLACED,
	IOM_MR_CONTIG_RANGE,
	IOM_MR_LONGTERM_PIN,
	IOM_MR_DEMOTION,
	IOM_MR_TYPES,
};
/* MR_CMA was the kernel's name of MR_CONTIG_RANGE before Linux 4.18. */
#define IOM_MR_CMA IOM_MR_CONTIG_RANGE

/** iom_migrate_reason_name() - the kernel's migrate_reason_names[] string. */
IOM_API const char *iom_migrate_reason_name(int reason);

/*
 * new_page_t / free_page_t: allocate the target of @page, and give back a
 * target that was not used (NULL @put_new_page: iom_put_page()).
 */
typedef struct iom_page *(*iom_new_page_t)(struct iom_page *page,
					   unsigned long private);
typedef void (*iom_free_page_t)(struct iom_page *page, unsigned long private);

/**
 * struct iom_migrate_batch_ops - a page owner's part in one migrate_pages()
 * batch (see a_ops->migrate_batch_add in <iommig/filemap.h>).
 * @prepared: every page of the batch was offered; none is moved yet.
 * @end:      every page was moved or given up (those given up are still
 *            locked and not yet restored); free @priv here.
 */
struct iom_migrate_batch_ops {
	void (*prepared)(void *priv);
	void (*end)(void *priv);
};

/* Owners one batch can hold. */
#define IOM_MIGRATE_BATCH_CLIENTS	4

/**
 * iom_migrate_batch_client() - from a_ops->migrate_batch_add: the caller's
 * state in @batch, made by @make(@arg) on its first call for @ops.
 * Return: the state; NULL if @make failed or @batch holds
 * IOM_MIGRATE_BATCH_CLIENTS owners already (then the page is migrated
 * alone, as without batching).
 */
IOM_API void *iom_migrate_batch_client(struct iom_migrate_batch *batch,
				       const struct iom_migrate_batch_ops *ops,
				       void *(*make)(void *arg), void *arg);

/**
 * iom_migrate_pages() - migrate_pages(): migrate every page on @from.
 * @m:            the machine.
 * @from:         isolated pages linked through page->lru, each holding the
 *                reference iom_isolate_lru_page() took.
 * @get_new_page: allocates a target page (one reference).
 * @put_new_page: frees an unused target (NULL: iom_put_page()).
 * @private:      passed to both.
 * @mode:         IOM_MIGRATE_ASYNC never sleeps on a page lock.
 * @reason:       an enum iom_migrate_reason. With IOM_MR_MEMORY_FAILURE
 *                a migrated old page is not freed: its isolation
 *                reference stays with the caller, as in the kernel.
 * @nr_succeeded: if not NULL, pages migrated.
 *
 * Up to 10 passes; pages that failed with -EAGAIN (locked, or referenced
 * by someone else) are retried, from the third pass on with a sleeping
 * lock (non-ASYNC modes). Migrated pages are freed; the others stay on
 * @from for the caller's iom_putback_movable_pages(). Counts
 * pgmigrate_success and pgmigrate_fail.
 *
 * Context: may sleep (not in ASYNC mode, except in the allocator).
 * Return: the number of pages not migrated; -ENOMEM if a target could not
 * be allocated (the pages not yet tried stay on @from); -EINVAL for bad
 * arguments.
 */
IOM_API int iom_migrate_pages(struct iom_machine *m, struct iom_list_head *from,
			      iom_new_page_t get_new_page,
			      iom_free_page_t put_new_page, unsigned long private,
			      enum iom_migrate_mode mode, int reason,
			      unsigned int *nr_succeeded);

/**
 * iom_putback_movable_pages() - putback_movable_pages(): give each page
 * on @l back to its LRU (or to its owner's ->putback_page for a non-LRU
 * movable page) and drop the isolation reference.
 */
IOM_API void iom_putback_movable_pages(struct iom_machine *m,
				       struct iom_list_head *l);

/**
 * iom_migrate_page() - migrate_page(), seed 000: the generic
 * a_ops->migratepage: iom_migrate_page_move_mapping() then
 * iom_migrate_page_copy().
 * Context: both pages locked; @page unmapped (migration entries only).
 * Return: 0; -EAGAIN if @page has references beyond the expected ones.
 */
IOM_API int iom_migrate_page(struct iom_address_space *mapping,
			     struct iom_page *newpage, struct iom_page *page,
			     enum iom_migrate_mode mode);

/**
 * iom_migrate_page_move_mapping() - migrate_page_move_mapping(): give
 * @newpage @page's place: mapping, index, PG_swapbacked and, for a
 * page-cache page, the tree slot (tags kept), the cache's reference,
 * PG_dirty and PG_private with page->private (the owner of PG_private
 * moves its own reference, as the seed's DMA layer does in
 * migratepagecopy). The expected count of @page is the kernel's: 1 (the
 * migrator's) + 1 if in a page cache + 1 if PG_private + @extra_count;
 * a page-cache page is frozen at that count while its slot is replaced.
 * Context: both pages locked.
 * Return: 0; -EAGAIN if the count is not the expected one (nothing
 * changed); -EINVAL.
 */
IOM_API int iom_migrate_page_move_mapping(struct iom_address_space *mapping,
					  struct iom_page *newpage,
					  struct iom_page *page, int extra_count);

/**
 * iom_migrate_page_copy() - migrate_page_copy(), seed 000: if @page's
 * mapping has a_ops->migratepagecopy, call it; else copy the content.
 * Then copy the page state (migrate_page_states()): uptodate, referenced,
 * active, dirty (if move_mapping did not move it), private.
 */
IOM_API void iom_migrate_page_copy(struct iom_machine *m,
				   struct iom_page *newpage,
				   struct iom_page *page);

/*
 * Non-LRU movable pages (include/linux/migrate.h: __SetPageMovable,
 * isolate_movable_page; the pre-6.0 a_ops variant of movable_operations).
 * A driver's page that is not on an LRU list (a balloon page, a zsmalloc
 * page...) can still be migrated by compaction and CMA if its owner's
 * address_space has ->isolate_page, ->migratepage and ->putback_page:
 *   ->isolate_page(page, mode): the driver lets go of the page (it stops
 *       using it); true if it may be migrated;
 *   ->migratepage(mapping, newpage, page, mode): copy and take @newpage
 *       instead (iom___SetPageMovable(newpage), iom___ClearPageMovable(page),
 *       the driver's reference moves to @newpage); 0 or -EAGAIN;
 *   ->putback_page(page): migration failed; the driver has it back.
 * The driver calls these under the page lock, and iom___ClearPageMovable()
 * before it frees a page.
 */

/** iom___SetPageMovable() - mark @page movable for @mapping. Return: 0, -EINVAL
 * (an LRU or anonymous page, one with a mapping, or @mapping lacks an op). */
IOM_API int iom___SetPageMovable(struct iom_page *page,
				 struct iom_address_space *mapping);
/** iom___ClearPageMovable() - the driver releases @page: no longer migratable. */
IOM_API void iom___ClearPageMovable(struct iom_page *page);
/** iom_PageMovable() - PageMovable(): movable and not released. */
IOM_API bool iom_PageMovable(const struct iom_page *page);
/**
 * iom_isolate_movable_page() - isolate_movable_page(): take a non-LRU
 * movable page for migration (a reference, PG_isolated) if its driver's
 * ->isolate_page agrees; put it on a list for iom_migrate_pages().
 * Context: any; does not sleep (trylocks the page).
 * Return: 0; -EBUSY (free, not movable, locked, already isolated, or the
 * driver refused); -EINVAL.
 */
IOM_API int iom_isolate_movable_page(struct iom_machine *m, struct iom_page *page,
				     int mode);

/* move_pages(2) flags (MPOL_MF_*, Linux values). */
#define IOM_MPOL_MF_MOVE	(1 << 1)	/* pages mapped by this process only */
#define IOM_MPOL_MF_MOVE_ALL	(1 << 2)	/* every page, even shared ones */

/**
 * iom_move_pages() - move_pages(2): move the pages of @mm at the addresses
 * @pages to the nodes @nodes, or with @nodes NULL, report where they are.
 * @mm:       the process.
 * @nr_pages: entries in @pages, @nodes and @status.
 * @pages:    virtual addresses (any address within a page).
 * @nodes:    target node of each page, or NULL.
 * @status:   out: the node each page is on afterwards, or -errno for it:
 *            -EFAULT (no VMA), -ENOENT (nothing mapped, or a page being
 *            migrated), -EACCES (mapped by several processes without
 *            IOM_MPOL_MF_MOVE_ALL), -EBUSY (could not be isolated).
 * @flags:    IOM_MPOL_MF_MOVE or IOM_MPOL_MF_MOVE_ALL (0 acts as MOVE).
 *
 * Consecutive entries for the same node are migrated together
 * (iom_migrate_pages(), IOM_MIGRATE_SYNC, reason IOM_MR_SYSCALL, targets
 * allocated on that node only), as the kernel's do_pages_move().
 *
 * Context: may sleep.
 * Return: 0; the number of pages not migrated (those that failed plus
 * those not tried after a failure); -ENODEV for a node without memory
 * (pages before it are moved); -EINVAL for bad arguments or flags;
 * -E2BIG for more than INT32_MAX pages.
 */
IOM_API long iom_move_pages(struct iom_mm *mm, unsigned long nr_pages,
			    const uint64_t *pages, const int *nodes, int *status,
			    int flags);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_MIGRATE_H */
