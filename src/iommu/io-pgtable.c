/* SPDX-License-Identifier: MIT */
/*
 * I/O page tables: drivers/iommu/io-pgtable.c (alloc/free_io_pgtable_ops),
 * drivers/iommu/io-pgtable-arm.c (the ARM LPAE stage-1 format, 4 KiB
 * granule only) and the map/unmap loops of drivers/iommu/iommu.c
 * (iommu_pgsize(), __iommu_map(), __iommu_unmap()).
 *
 * Simplified: one format, no stage 2, no 16K/64K granules or concatenated
 * tables, coherent walks only, explicit READ/WRITE permission bits. Two
 * deliberate differences from arm_lpae (Linux 6.13+), both as the x86
 * formats and the issue ask:
 *  - an unmap that covers part of a block removes the whole block and
 *    returns its size (arm_lpae WARNs and unmaps nothing since commit
 *    33729a5fc0ca dropped the split of blocks);
 *  - a table left empty by an unmap is freed. Each table page counts its
 *    entries in page->private; an empty table is killed with a
 *    compare-and-swap of that count to TBL_DEAD, so a concurrent map that
 *    wants to install into it (it must first take a reference on the
 *    count) fails and walks again from the top.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/io-pgtable.h>
#include <iommig/mm.h>

#include "../core/debug.h"
#include "../core/machine.h"
#include "../core/percpu.h"
#include "../core/rcu.h"

#define ARM_LPAE_GRANULE	4096UL
#define ARM_LPAE_BITS_PER_LEVEL	9
#define ARM_LPAE_PTES_PER_TABLE	512
#define ARM_LPAE_MAX_LEVELS	IOM_IO_PGTABLE_MAX_LEVELS
#define ARM_LPAE_PGSIZES	((1UL << 12) | (1UL << 21) | (1UL << 30))

/* Shift and size of what one entry of @lvl maps (level 3: 4 KiB). */
#define ARM_LPAE_LVL_SHIFT(lvl)	(12 + ARM_LPAE_BITS_PER_LEVEL * (3 - (lvl)))
#define ARM_LPAE_BLOCK_SIZE(lvl) (1UL << ARM_LPAE_LVL_SHIFT(lvl))

/* page->private of a table page: live entries, or dead from TBL_DEAD up. */
#define TBL_DEAD		(1UL << 62)
#define TBL_IS_DEAD(c)		((c) >= (1UL << 61))

typedef _Atomic uint64_t arm_lpae_iopte;

struct arm_lpae_io_pgtable {
	struct iom_io_pgtable_ops ops;		/* first: ops -> data */
	struct iom_io_pgtable_cfg cfg;
	void *cookie;
	struct iom_machine *m;
	int start_level;
	unsigned int pgd_bits;
	arm_lpae_iopte *pgd;
	struct iom_page *pgd_page;
	atomic_long nr_pages;
	/*
	 * The spare: the last table an unmap emptied, kept linked (a map
	 * there reuses it) until another table empties or
	 * iom_io_pgtable_reap() runs. Guarded by spare_lock.
	 */
	atomic_int spare_lock;
	struct iom_page *spare;
	unsigned long spare_iova;
	int spare_lvl;
};

/* The tables an operation went through; page[start_level] is NULL (pgd). */
struct lpae_path {
	struct iom_page *page[ARM_LPAE_MAX_LEVELS];
	arm_lpae_iopte *ptep[ARM_LPAE_MAX_LEVELS];
};

_Static_assert(sizeof(struct rcu_head) <= sizeof(struct iom_list_head),
	       "a table page's rcu_head lives in its lru linkage");

static inline struct arm_lpae_io_pgtable *ops_to_data(const struct iom_io_pgtable_ops *ops)
{
	return (struct arm_lpae_io_pgtable *)ops;
}

static inline unsigned int lvl_idx(const struct arm_lpae_io_pgtable *data,
				   unsigned long iova, int lvl)
{
	unsigned long mask = lvl == data->start_level ?
		(1UL << data->pgd_bits) - 1 : ARM_LPAE_PTES_PER_TABLE - 1;

	return (unsigned int)((iova >> ARM_LPAE_LVL_SHIFT(lvl)) & mask);
}

/* Entries of the table of @lvl from @idx to its end. */
static inline size_t max_entries(const struct arm_lpae_io_pgtable *data,
				 unsigned int idx, int lvl)
{
	size_t n = lvl == data->start_level ? 1UL << data->pgd_bits :
		ARM_LPAE_PTES_PER_TABLE;

	return n - idx;
}

static inline uint64_t pte_load(arm_lpae_iopte *ptep)
{
	return atomic_load_explicit(ptep, memory_order_acquire);
}

static inline void pte_store(arm_lpae_iopte *ptep, uint64_t pte)
{
	atomic_store_explicit(ptep, pte, memory_order_release);
}

static inline struct iom_page *table_page(const struct iom_machine *m,
					  uint64_t pte)
{
	return m->mem_map + ((pte & IOM_IOPTE_ADDR_MASK) >> IOM_PAGE_SHIFT) -
	       m->start_pfn;
}

/* iopte_deref(): the next-level table a table entry points to. */
static inline arm_lpae_iopte *iopte_deref(const struct iom_machine *m,
					  uint64_t pte)
{
	unsigned long pfn = (pte & IOM_IOPTE_ADDR_MASK) >> IOM_PAGE_SHIFT;

	return (arm_lpae_iopte *)(m->arena + ((pfn - m->start_pfn) << IOM_PAGE_SHIFT));
}

/* ---- table pages ---------------------------------------------------------- */

static unsigned long *tbl_count(struct iom_page *page)
{
	return &page->private;
}

/* Take @n references (entries about to be installed); false if dying. */
static bool table_get(struct iom_page *page, unsigned long n)
{
	unsigned long c = __atomic_load_n(tbl_count(page), __ATOMIC_ACQUIRE);

	do {
		if (TBL_IS_DEAD(c))
			return false;
	} while (!__atomic_compare_exchange_n(tbl_count(page), &c, c + n, true,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
	return true;
}

/* Drop @n; true when the table became empty. */
static bool table_put(struct iom_page *page, unsigned long n)
{
	return n && __atomic_sub_fetch(tbl_count(page), n, __ATOMIC_ACQ_REL) == 0;
}

/* Kill an empty table: the caller then owns its slot and its page. */
static bool table_try_kill(struct iom_page *page)
{
	unsigned long zero = 0;

	return __atomic_compare_exchange_n(tbl_count(page), &zero, TBL_DEAD,
					   false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

/* Kill a table whatever it holds; false if someone else killed it first. */
static bool table_force_kill(struct iom_page *page)
{
	return !TBL_IS_DEAD(__atomic_exchange_n(tbl_count(page), TBL_DEAD,
						__ATOMIC_ACQ_REL));
}

/* __arm_lpae_alloc_pages(): a zeroed, unmovable page of the machine. */
static arm_lpae_iopte *alloc_table(struct arm_lpae_io_pgtable *data,
				   iom_gfp_t gfp, struct iom_page **pagep)
{
	struct iom_machine *m = data->m;
	struct iom_page *page;

	gfp &= ~(iom_gfp_t)(IOM___GFP_MOVABLE | IOM___GFP_HIGHMEM |
			    IOM___GFP_RECLAIMABLE | IOM___GFP_COMP);
	page = iom_alloc_pages(m, gfp | IOM___GFP_ZERO | IOM___GFP_NOWARN, 0);
	if (!page)
		return NULL;
	__atomic_store_n(tbl_count(page), 0UL, __ATOMIC_RELAXED);
	atomic_fetch_add_explicit(&data->nr_pages, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->iommu_pgtable_pages, 1,
				  memory_order_relaxed);
	if (pagep)
		*pagep = page;
	return iom_page_address(m, page);
}

/* A table never published: straight back to the allocator. */
static void free_table_now(struct arm_lpae_io_pgtable *data,
			   struct iom_page *page)
{
	struct iom_machine *m = data->m;

	atomic_fetch_sub_explicit(&data->nr_pages, 1, memory_order_relaxed);
	__atomic_store_n(tbl_count(page), 0UL, __ATOMIC_RELAXED);
	iom___free_pages(m, page, 0);
	atomic_fetch_sub_explicit(&m->iommu_pgtable_pages, 1,
				  memory_order_relaxed);
}

static void table_free_rcu(struct rcu_head *head)
{
	struct iom_page *page = caa_container_of((struct iom_list_head *)head,
						 struct iom_page, lru);
	struct iom_machine *m;

	iom_rcu_cb_enter();
	m = (struct iom_machine *)page->index;
	page->index = 0;
	page->lru.next = page->lru.prev = &page->lru;
	__atomic_store_n(tbl_count(page), 0UL, __ATOMIC_RELAXED);
	iom___free_pages(m, page, 0);
	atomic_fetch_sub_explicit(&m->iommu_pgtable_pages, 1,
				  memory_order_relaxed);
	iom_rcu_cb_exit();
}

/*
 * A table taken out of the tree: devices may still be walking it, so it
 * goes back to the buddy allocator after a grace period. The count stays
 * dead until then, so a stale reference can never revive it.
 */
static void free_table_deferred(struct arm_lpae_io_pgtable *data,
				struct iom_page *page)
{
	atomic_fetch_sub_explicit(&data->nr_pages, 1, memory_order_relaxed);
	page->index = (unsigned long)data->m;
	if (unlikely(!iom_rcu_registered))
		iom_rcu_register_auto();
	iom_rcu_tsan_release(&iom_rcu_tsan_gp);
	iom_call_rcu((struct rcu_head *)(void *)&page->lru, table_free_rcu);
}

/* __arm_lpae_free_pgtable(): a dead table at @lvl and every table below. */
static void free_subtree(struct arm_lpae_io_pgtable *data, int lvl,
			 struct iom_page *page)
{
	arm_lpae_iopte *table = iom_page_address(data->m, page);
	unsigned int i;

	if (lvl < ARM_LPAE_MAX_LEVELS - 1) {
		for (i = 0; i < ARM_LPAE_PTES_PER_TABLE; i++) {
			uint64_t pte = pte_load(&table[i]);
			struct iom_page *child;

			if (!pte || iom_iopte_leaf(pte, lvl))
				continue;
			child = table_page(data->m, pte);
			if (table_force_kill(child))
				free_subtree(data, lvl + 1, child);
		}
	}
	free_table_deferred(data, page);
}

/* ---- TLB callbacks (io_pgtable_tlb_*) ------------------------------------ */

static void tlb_flush_walk(struct arm_lpae_io_pgtable *data, unsigned long iova,
			   size_t size)
{
	const struct iom_iommu_flush_ops *tlb = data->cfg.tlb;

	if (tlb && tlb->tlb_flush_walk)
		tlb->tlb_flush_walk(iova, size, ARM_LPAE_GRANULE, data->cookie);
}

static void tlb_add_page(struct arm_lpae_io_pgtable *data,
			 struct iom_iommu_iotlb_gather *gather,
			 unsigned long iova, size_t granule)
{
	const struct iom_iommu_flush_ops *tlb = data->cfg.tlb;

	if (tlb && tlb->tlb_add_page)
		tlb->tlb_add_page(gather, iova, granule, data->cookie);
}

/*
 * The table at @lvl of @path became empty: kill it, clear its parent's
 * slot, and go on up while parents become empty too. @iova lies in it.
 */
static void table_reap(struct arm_lpae_io_pgtable *data, struct lpae_path *path,
		       int lvl, unsigned long iova)
{
	while (lvl > data->start_level) {
		size_t psize = ARM_LPAE_BLOCK_SIZE(lvl - 1);
		struct iom_page *page = path->page[lvl];

		if (!table_try_kill(page))
			return;
		pte_store(path->ptep[lvl - 1], 0);
		tlb_flush_walk(data, iova & ~(psize - 1), psize);
		free_table_deferred(data, page);
		lvl--;
		if (lvl == data->start_level || !table_put(path->page[lvl], 1))
			return;
	}
}

/*
 * Reap the table @page at @lvl that held @iova if it is still linked
 * there and still empty: walk down again, since the path of the unmap
 * that emptied it is gone. In an RCU read section.
 */
static void reap_table_at(struct arm_lpae_io_pgtable *data, struct iom_page *page,
			  unsigned long iova, int lvl)
{
	struct lpae_path path;
	int l = data->start_level;

	path.page[l] = NULL;
	path.ptep[l] = data->pgd;
	for (; l < lvl; l++) {
		arm_lpae_iopte *ptep = path.ptep[l] + lvl_idx(data, iova, l);
		uint64_t pte = pte_load(ptep);

		if (!pte || iom_iopte_leaf(pte, l))
			return;
		path.ptep[l] = ptep;
		path.page[l + 1] = table_page(data->m, pte);
		path.ptep[l + 1] = iopte_deref(data->m, pte);
	}
	if (path.page[lvl] == page)
		table_reap(data, &path, lvl, iova);
}

/*
 * An unmap emptied the table at @lvl of @path. It becomes the spare and
 * the previous spare is reaped: a map/unmap loop in one table then
 * allocates nothing, as with the kernel's arm_lpae (which never frees
 * tables on unmap), while empty tables still go back to the allocator.
 */
static void table_emptied(struct arm_lpae_io_pgtable *data, struct lpae_path *path,
			  int lvl, unsigned long iova)
{
	struct iom_page *old;
	unsigned long old_iova;
	int old_lvl;

	iom_spin_lock(&data->spare_lock);
	old = data->spare;
	old_iova = data->spare_iova;
	old_lvl = data->spare_lvl;
	data->spare = path->page[lvl];
	data->spare_iova = iova;
	data->spare_lvl = lvl;
	iom_spin_unlock(&data->spare_lock);
	if (old && old != path->page[lvl])
		reap_table_at(data, old, old_iova, old_lvl);
}

void iom_io_pgtable_reap(struct iom_io_pgtable_ops *ops)
{
	struct arm_lpae_io_pgtable *data;
	struct iom_page *old;

	if (!ops)
		return;
	data = ops_to_data(ops);
	iom_spin_lock(&data->spare_lock);
	old = data->spare;
	data->spare = NULL;
	iom_spin_unlock(&data->spare_lock);
	if (!old)
		return;
	iom_rcu_read_lock_auto();
	reap_table_at(data, old, data->spare_iova, data->spare_lvl);
	iom_rcu_read_unlock_auto();
}

/* ---- map -------------------------------------------------------------------- */

/* arm_lpae_prot_to_pte(), with explicit permission bits. */
static uint64_t prot_to_pte(const struct arm_lpae_io_pgtable *data, int prot)
{
	uint64_t pte = IOM_IOPTE_VALID | IOM_IOPTE_AF;

	if (prot & IOM_IOMMU_READ)
		pte |= IOM_IOPTE_READ;
	if (prot & IOM_IOMMU_WRITE) {
		pte |= IOM_IOPTE_WRITE;
		if (data->cfg.quirks & IOM_IO_PGTABLE_QUIRK_ARM_HD)
			pte |= IOM_IOPTE_DBM;
	}
	if (prot & IOM_IOMMU_NOEXEC)
		pte |= IOM_IOPTE_XN;
	return pte;
}

static int map_eexist(struct arm_lpae_io_pgtable *data, unsigned long iova)
{
	if (!(data->cfg.quirks & IOM_IO_PGTABLE_QUIRK_NO_WARN))
		iom_warn(data->m, "io-pgtable: map of iova %#lx over an existing "
			 "mapping (unmap first)", iova);
	return -EEXIST;
}

/*
 * arm_lpae_init_pte(): @n leaf entries at @ptep of @lvl, in the table of
 * @path at @lvl. All or nothing: -EEXIST if one is taken. An empty table
 * where a block goes is removed first, as the kernel does. -EAGAIN: the
 * table is dying, walk again.
 */
static int init_pte(struct arm_lpae_io_pgtable *data, struct lpae_path *path,
		    unsigned long iova, uint64_t paddr, uint64_t prot, int lvl,
		    size_t n, arm_lpae_iopte *ptep)
{
	struct iom_page *tpage = path->page[lvl];
	size_t size = ARM_LPAE_BLOCK_SIZE(lvl), i, j;
	int ret = 0;

	if (lvl == ARM_LPAE_MAX_LEVELS - 1)
		prot |= IOM_IOPTE_TABLE;	/* a page */
	if (tpage && !table_get(tpage, n))
		return -EAGAIN;
	for (i = 0; i < n; i++) {
		uint64_t pte = pte_load(&ptep[i]);
		struct iom_page *child;

		if (!pte)
			continue;
		if (iom_iopte_leaf(pte, lvl)) {
			ret = map_eexist(data, iova + i * size);
			goto undo;
		}
		child = table_page(data->m, pte);
		if (!table_try_kill(child)) {
			if (TBL_IS_DEAD(__atomic_load_n(tbl_count(child),
							__ATOMIC_ACQUIRE))) {
				ret = -EAGAIN;	/* its killer clears the slot */
				goto undo;
			}
			ret = map_eexist(data, iova + i * size);
			goto undo;
		}
		pte_store(&ptep[i], 0);
		tlb_flush_walk(data, iova + i * size, size);
		free_table_deferred(data, child);
		if (tpage)
			table_put(tpage, 1);	/* we still hold n: never 0 */
	}
	for (i = 0; i < n; i++) {
		uint64_t expected = 0;

		if (!atomic_compare_exchange_strong_explicit(
			    &ptep[i], &expected, (paddr + i * size) | prot,
			    memory_order_release, memory_order_relaxed)) {
			/* a racing map of the same range: undo ours */
			for (j = 0; j < i; j++)
				pte_store(&ptep[j], 0);
			ret = map_eexist(data, iova + i * size);
			goto undo;
		}
	}
	return 0;
undo:
	if (tpage && table_put(tpage, n))
		table_reap(data, path, lvl, iova);
	return ret;
}

/*
 * __arm_lpae_map(): walk down to the level of @size, installing missing
 * tables with a compare-and-swap (arm_lpae_install_table()); the loser of
 * a race frees its table and uses the winner's.
 */
static int __arm_lpae_map(struct arm_lpae_io_pgtable *data, unsigned long iova,
			  uint64_t paddr, size_t size, size_t pgcount,
			  uint64_t prot, iom_gfp_t gfp, size_t *mapped)
{
	struct lpae_path path;
	unsigned int tries = 0;
	int lvl, ret;

retry:
	if (++tries % 64 == 0)
		sched_yield();
	lvl = data->start_level;
	path.page[lvl] = NULL;
	path.ptep[lvl] = data->pgd;
	for (;;) {
		unsigned int idx = lvl_idx(data, iova, lvl);
		arm_lpae_iopte *ptep = path.ptep[lvl] + idx;
		struct iom_page *tpage = path.page[lvl];
		uint64_t pte;

		if (size == ARM_LPAE_BLOCK_SIZE(lvl)) {
			size_t n = max_entries(data, idx, lvl);

			if (n > pgcount)
				n = pgcount;
			path.ptep[lvl] = ptep;
			ret = init_pte(data, &path, iova, paddr, prot, lvl, n,
				       ptep);
			if (ret == -EAGAIN)
				goto retry;
			if (!ret)
				*mapped += n * size;
			return ret;
		}
		IOM_BUG_ON(lvl >= ARM_LPAE_MAX_LEVELS - 1);
		pte = pte_load(ptep);
		if (!pte) {
			struct iom_page *npage;
			arm_lpae_iopte *table;
			uint64_t expected = 0, npte;

			if (tpage && !table_get(tpage, 1))
				goto retry;
			table = alloc_table(data, gfp, &npage);
			if (!table) {
				path.ptep[lvl] = ptep;
				if (tpage && table_put(tpage, 1))
					table_reap(data, &path, lvl, iova);
				return -ENOMEM;
			}
			npte = iom_page_to_phys(data->m, npage) |
			       IOM_IOPTE_VALID | IOM_IOPTE_TABLE;
			if (atomic_compare_exchange_strong_explicit(
				    ptep, &expected, npte, memory_order_release,
				    memory_order_acquire)) {
				pte = npte;
			} else {
				free_table_now(data, npage);
				path.ptep[lvl] = ptep;
				if (tpage && table_put(tpage, 1)) {
					/* the winner's table came and went */
					table_reap(data, &path, lvl, iova);
					goto retry;
				}
				pte = expected;
			}
		}
		if (iom_iopte_leaf(pte, lvl))
			return map_eexist(data, iova);
		path.ptep[lvl] = ptep;
		lvl++;
		path.page[lvl] = table_page(data->m, pte);
		path.ptep[lvl] = iopte_deref(data->m, pte);
	}
}

/* arm_lpae_map_pages() */
static int arm_lpae_map_pages(struct iom_io_pgtable_ops *ops, unsigned long iova,
			      uint64_t paddr, size_t pgsize, size_t pgcount,
			      int iommu_prot, iom_gfp_t gfp, size_t *mapped)
{
	struct arm_lpae_io_pgtable *data = ops_to_data(ops);
	size_t dummy = 0;
	int ret;

	if (!mapped)
		mapped = &dummy;
	if (!pgsize || (pgsize & (pgsize - 1)) ||
	    (pgsize & data->cfg.pgsize_bitmap) != pgsize || !pgcount) {
		iom_warn(data->m, "io-pgtable: map_pages: bad page size %#zx "
			 "or count %zu (sizes %#lx)", pgsize, pgcount,
			 data->cfg.pgsize_bitmap);
		return -EINVAL;
	}
	if ((iova | paddr) & (pgsize - 1)) {
		iom_warn(data->m, "io-pgtable: map_pages: iova %#lx or paddr "
			 "%#llx not aligned to %#zx", iova,
			 (unsigned long long)paddr, pgsize);
		return -EINVAL;
	}
	if ((iova >> data->cfg.ias) || (paddr >> data->cfg.oas)) {
		iom_warn(data->m, "io-pgtable: map_pages: iova %#lx or paddr "
			 "%#llx beyond ias %u / oas %u", iova,
			 (unsigned long long)paddr, data->cfg.ias,
			 data->cfg.oas);
		return -ERANGE;
	}
	/* If no access, then nothing to do */
	if (!(iommu_prot & (IOM_IOMMU_READ | IOM_IOMMU_WRITE)))
		return 0;
	iom_rcu_read_lock_auto();
	ret = __arm_lpae_map(data, iova, paddr, pgsize, pgcount,
			     prot_to_pte(data, iommu_prot), gfp, mapped);
	iom_rcu_read_unlock_auto();
	return ret;
}

/* ---- unmap ---------------------------------------------------------------- */

/*
 * __arm_lpae_unmap(): clear up to @pgcount entries of @size from @iova,
 * within one table. *@next: where the caller's loop goes on.
 */
static size_t __arm_lpae_unmap(struct arm_lpae_io_pgtable *data,
			       struct iom_iommu_iotlb_gather *gather,
			       unsigned long iova, size_t size, size_t pgcount,
			       unsigned long *next)
{
	bool add = gather && !gather->queued;
	struct lpae_path path;
	int lvl = data->start_level;
	size_t i, n;

	*next = iova;
	path.page[lvl] = NULL;
	path.ptep[lvl] = data->pgd;
	for (;;) {
		unsigned int idx = lvl_idx(data, iova, lvl);
		arm_lpae_iopte *ptep = path.ptep[lvl] + idx;
		uint64_t pte = pte_load(ptep);

		if (!pte)
			return 0;
		path.ptep[lvl] = ptep;
		if (size == ARM_LPAE_BLOCK_SIZE(lvl)) {
			n = max_entries(data, idx, lvl);
			if (n > pgcount)
				n = pgcount;
			for (i = 0; i < n; i++) {
				pte = pte_load(&ptep[i]);
				if (!pte)
					break;
				if (!iom_iopte_leaf(pte, lvl)) {
					struct iom_page *child = table_page(data->m, pte);

					/* a racing reaper frees it: empty */
					if (!table_force_kill(child))
						break;
					pte_store(&ptep[i], 0);
					/* Also flush any partial walks */
					tlb_flush_walk(data, iova + i * size, size);
					free_subtree(data, lvl + 1, child);
				} else if (!atomic_exchange_explicit(&ptep[i], 0,
								     memory_order_acq_rel)) {
					break;
				}
			}
			if (add)
				for (size_t j = 0; j < i; j++)
					tlb_add_page(data, gather, iova + j * size,
						     size);
			if (path.page[lvl] && table_put(path.page[lvl], i))
				table_emptied(data, &path, lvl, iova);
			*next = iova + i * size;
			return i * size;
		}
		if (iom_iopte_leaf(pte, lvl)) {
			/* Part of a block: the whole block goes. */
			size_t bsize = ARM_LPAE_BLOCK_SIZE(lvl);
			unsigned long base = iova & ~(bsize - 1);

			if (!atomic_exchange_explicit(ptep, 0, memory_order_acq_rel))
				return 0;
			if (add)
				tlb_add_page(data, gather, base, bsize);
			if (path.page[lvl] && table_put(path.page[lvl], 1))
				table_emptied(data, &path, lvl, iova);
			*next = base + bsize;
			return bsize;
		}
		/* Keep on walkin' */
		lvl++;
		path.page[lvl] = table_page(data->m, pte);
		path.ptep[lvl] = iopte_deref(data->m, pte);
	}
}

static size_t arm_lpae_unmap_range(struct arm_lpae_io_pgtable *data,
				   unsigned long iova, size_t pgsize,
				   size_t pgcount,
				   struct iom_iommu_iotlb_gather *gather,
				   unsigned long *next)
{
	size_t ret;

	*next = iova;
	if (!pgsize || (pgsize & (pgsize - 1)) ||
	    (pgsize & data->cfg.pgsize_bitmap) != pgsize || !pgcount ||
	    (iova & (pgsize - 1))) {
		iom_warn(data->m, "io-pgtable: unmap_pages: bad page size "
			 "%#zx, count %zu or alignment of iova %#lx", pgsize,
			 pgcount, iova);
		return 0;
	}
	if (iova >> data->cfg.ias) {
		iom_warn(data->m, "io-pgtable: unmap_pages: iova %#lx beyond "
			 "ias %u", iova, data->cfg.ias);
		return 0;
	}
	iom_rcu_read_lock_auto();
	ret = __arm_lpae_unmap(data, gather, iova, pgsize, pgcount, next);
	iom_rcu_read_unlock_auto();
	if (!ret && !(data->cfg.quirks & IOM_IO_PGTABLE_QUIRK_NO_WARN))
		iom_warn(data->m, "io-pgtable: unmap of iova %#lx: nothing "
			 "mapped", iova);
	return ret;
}

/* arm_lpae_unmap_pages() */
static size_t arm_lpae_unmap_pages(struct iom_io_pgtable_ops *ops,
				   unsigned long iova, size_t pgsize,
				   size_t pgcount,
				   struct iom_iommu_iotlb_gather *gather)
{
	unsigned long next;

	return arm_lpae_unmap_range(ops_to_data(ops), iova, pgsize, pgcount,
				    gather, &next);
}

/* ---- walks ------------------------------------------------------------------- */

/* The leaf for @iova; caller is in a read section. */
static int lpae_walk(struct arm_lpae_io_pgtable *data, unsigned long iova,
		     struct iom_io_pgtable_walk_data *out)
{
	arm_lpae_iopte *table = data->pgd;
	int lvl;

	for (lvl = data->start_level; lvl < ARM_LPAE_MAX_LEVELS; lvl++) {
		arm_lpae_iopte *ptep = table + lvl_idx(data, iova, lvl);
		uint64_t pte = pte_load(ptep);

		out->level = lvl;
		out->size = ARM_LPAE_BLOCK_SIZE(lvl);
		if (!pte)
			break;
		if (iom_iopte_leaf(pte, lvl)) {
			out->pte = pte;
			out->ptep = ptep;
			return 0;
		}
		table = iopte_deref(data->m, pte);
	}
	out->pte = 0;
	out->ptep = NULL;
	return -ENOENT;
}

/* arm_lpae_iova_to_phys() */
static uint64_t arm_lpae_iova_to_phys(struct iom_io_pgtable_ops *ops,
				      unsigned long iova)
{
	struct arm_lpae_io_pgtable *data = ops_to_data(ops);
	struct iom_io_pgtable_walk_data w;
	int ret;

	if (iova >> data->cfg.ias)
		return 0;
	iom_rcu_read_lock_auto();
	ret = lpae_walk(data, iova, &w);
	iom_rcu_read_unlock_auto();
	if (ret)
		return 0;
	return iom_iopte_to_paddr(w.pte) | (iova & (w.size - 1));
}

int iom_io_pgtable_walk(struct iom_io_pgtable_ops *ops, unsigned long iova,
			struct iom_io_pgtable_walk_data *out)
{
	struct arm_lpae_io_pgtable *data = ops_to_data(ops);
	int ret;

	if (!ops || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (iova >> data->cfg.ias)
		return -ERANGE;
	iom_rcu_read_lock_auto();
	ret = lpae_walk(data, iova, out);
	iom_rcu_read_unlock_auto();
	return ret;
}

static unsigned long count_leaves(struct arm_lpae_io_pgtable *data,
				  arm_lpae_iopte *table, int lvl,
				  unsigned long *nr)
{
	size_t i, n = lvl == data->start_level ? 1UL << data->pgd_bits :
		ARM_LPAE_PTES_PER_TABLE;
	unsigned long sum = 0;

	for (i = 0; i < n; i++) {
		uint64_t pte = pte_load(&table[i]);

		if (!pte)
			continue;
		if (iom_iopte_leaf(pte, lvl)) {
			nr[lvl]++;
			sum++;
		} else {
			sum += count_leaves(data, iopte_deref(data->m, pte),
					    lvl + 1, nr);
		}
	}
	return sum;
}

unsigned long iom_io_pgtable_nr_leaves(struct iom_io_pgtable_ops *ops,
				       unsigned long *nr)
{
	struct arm_lpae_io_pgtable *data = ops_to_data(ops);
	unsigned long local[ARM_LPAE_MAX_LEVELS], sum;

	if (!ops)
		return 0;
	if (!nr)
		nr = local;
	memset(nr, 0, sizeof(local));
	iom_rcu_read_lock_auto();
	sum = count_leaves(data, data->pgd, data->start_level, nr);
	iom_rcu_read_unlock_auto();
	return sum;
}

unsigned long iom_io_pgtable_nr_pages(const struct iom_io_pgtable_ops *ops)
{
	return ops ? (unsigned long)atomic_load(&ops_to_data(ops)->nr_pages) : 0;
}

unsigned long iom_io_pgtable_machine_pages(const struct iom_machine *m)
{
	return m ? (unsigned long)atomic_load(&m->iommu_pgtable_pages) : 0;
}

const struct iom_io_pgtable_cfg *
iom_io_pgtable_get_cfg(const struct iom_io_pgtable_ops *ops)
{
	return ops ? &ops_to_data(ops)->cfg : NULL;
}

/* ---- alloc and free (io-pgtable.c) ------------------------------------------ */

/* arm_64_lpae_alloc_pgtable_s1() with arm_lpae_alloc_pgtable() */
static struct iom_io_pgtable_ops *
arm_64_lpae_alloc_pgtable_s1(struct iom_machine *m,
			     struct iom_io_pgtable_cfg *cfg, void *cookie)
{
	struct arm_lpae_io_pgtable *data;
	unsigned int va_bits, levels;

	if (!(cfg->pgsize_bitmap & (1UL << 12))) {
		iom_warn(m, "io-pgtable: pgsize_bitmap %#lx has no 4 KiB "
			 "granule (the only one modelled)", cfg->pgsize_bitmap);
		errno = EINVAL;
		return NULL;
	}
	/* arm_lpae_restrict_pgsizes() */
	cfg->pgsize_bitmap &= ARM_LPAE_PGSIZES;
	if (cfg->ias < 32 || cfg->ias > 48 || cfg->oas < 32 || cfg->oas > 48) {
		iom_warn(m, "io-pgtable: ias %u / oas %u out of 32..48",
			 cfg->ias, cfg->oas);
		errno = EINVAL;
		return NULL;
	}
	data = calloc(1, sizeof(*data));
	if (!data) {
		errno = ENOMEM;
		return NULL;
	}
	data->m = m;
	data->cfg = *cfg;
	data->cookie = cookie;
	va_bits = cfg->ias - 12;
	levels = (va_bits + ARM_LPAE_BITS_PER_LEVEL - 1) / ARM_LPAE_BITS_PER_LEVEL;
	data->start_level = ARM_LPAE_MAX_LEVELS - (int)levels;
	data->pgd_bits = va_bits - ARM_LPAE_BITS_PER_LEVEL * (levels - 1);
	data->pgd = alloc_table(data, IOM_GFP_KERNEL, &data->pgd_page);
	if (!data->pgd) {
		free(data);
		errno = ENOMEM;
		return NULL;
	}
	data->ops = (struct iom_io_pgtable_ops){
		.map_pages = arm_lpae_map_pages,
		.unmap_pages = arm_lpae_unmap_pages,
		.iova_to_phys = arm_lpae_iova_to_phys,
	};
	return &data->ops;
}

struct iom_io_pgtable_ops *
iom_alloc_io_pgtable_ops(struct iom_machine *m, enum iom_io_pgtable_fmt fmt,
			 struct iom_io_pgtable_cfg *cfg, void *cookie)
{
	if (!m || !cfg) {
		errno = EINVAL;
		return NULL;
	}
	if (fmt != IOM_ARM_64_LPAE_S1) {
		iom_warn(m, "io-pgtable: unknown format %d", (int)fmt);
		errno = EINVAL;
		return NULL;
	}
	return arm_64_lpae_alloc_pgtable_s1(m, cfg, cookie);
}

/* arm_lpae_free_pgtable() */
void iom_free_io_pgtable_ops(struct iom_io_pgtable_ops *ops)
{
	struct arm_lpae_io_pgtable *data = ops_to_data(ops);
	const struct iom_iommu_flush_ops *tlb;

	if (!ops)
		return;
	tlb = data->cfg.tlb;
	if (tlb && tlb->tlb_flush_all)
		tlb->tlb_flush_all(data->cookie);
	/* the pgd as a dead table of the start level */
	__atomic_store_n(tbl_count(data->pgd_page), TBL_DEAD, __ATOMIC_RELEASE);
	{
		arm_lpae_iopte *table = data->pgd;
		size_t i, n = 1UL << data->pgd_bits;

		for (i = 0; i < n; i++) {
			uint64_t pte = pte_load(&table[i]);
			struct iom_page *child;

			if (!pte || iom_iopte_leaf(pte, data->start_level))
				continue;
			child = table_page(data->m, pte);
			if (table_force_kill(child))
				free_subtree(data, data->start_level + 1, child);
		}
		free_table_deferred(data, data->pgd_page);
	}
	IOM_BUG_ON(atomic_load(&data->nr_pages) != 0);
	free(data);
}

/* ---- the loops of iommu.c ---------------------------------------------------- */

static inline unsigned int fls_long(unsigned long x)
{
	return x ? 64 - (unsigned int)__builtin_clzl(x) : 0;
}

/* GENMASK(h, 0) */
static inline unsigned long genmask0(unsigned int h)
{
	return h >= 63 ? ~0UL : (1UL << (h + 1)) - 1;
}

size_t iom_iommu_pgsize(unsigned long pgsize_bitmap, unsigned long iova,
			uint64_t paddr, size_t size, size_t *count)
{
	unsigned int pgsize_idx, pgsize_idx_next;
	unsigned long pgsizes, addr_merge = iova | (unsigned long)paddr;
	size_t offset, pgsize, pgsize_next;

	if (!size)
		return 0;
	/* Page sizes supported by the hardware and small enough for @size */
	pgsizes = pgsize_bitmap & genmask0(fls_long(size) - 1);
	/* Constrain the page sizes further based on the maximum alignment */
	if (addr_merge)
		pgsizes &= genmask0((unsigned int)__builtin_ctzl(addr_merge));
	if (!pgsizes)
		return 0;
	/* Pick the biggest page size remaining and go with it */
	pgsize_idx = fls_long(pgsizes) - 1;
	pgsize = 1UL << pgsize_idx;
	if (!count)
		return pgsize;
	/* Find the next biggest support page size, if it exists */
	pgsizes = pgsize_bitmap & ~genmask0(pgsize_idx);
	if (!pgsizes)
		goto out_set_count;
	pgsize_idx_next = (unsigned int)__builtin_ctzl(pgsizes);
	pgsize_next = 1UL << pgsize_idx_next;
	/* No bigger page unless iova and paddr are offset alike in it */
	if ((iova ^ paddr) & (pgsize_next - 1))
		goto out_set_count;
	/* Offset to the next page size alignment boundary */
	offset = pgsize_next - (addr_merge & (pgsize_next - 1));
	/* If size holds the larger page, map only up to it with small ones */
	if (offset + pgsize_next <= size)
		size = offset;
out_set_count:
	*count = size >> pgsize_idx;
	return pgsize;
}

static size_t min_pagesz(const struct arm_lpae_io_pgtable *data)
{
	return 1UL << __builtin_ctzl(data->cfg.pgsize_bitmap);
}

int iom_io_pgtable_map(struct iom_io_pgtable_ops *ops, unsigned long iova,
		       uint64_t paddr, size_t size, int prot, iom_gfp_t gfp,
		       size_t *mappedp)
{
	struct arm_lpae_io_pgtable *data = ops_to_data(ops);
	unsigned long orig_iova = iova;
	size_t orig_size = size, minsz;
	int ret = 0;

	if (mappedp)
		*mappedp = 0;
	if (!ops)
		return -EINVAL;
	minsz = min_pagesz(data);
	if (!size || ((iova | paddr | size) & (minsz - 1))) {
		iom_warn(data->m, "io-pgtable: map: unaligned: iova %#lx pa "
			 "%#llx size %#zx min_pagesz %#zx", iova,
			 (unsigned long long)paddr, size, minsz);
		return -EINVAL;
	}
	while (size) {
		size_t pgsize, count = 0, mapped = 0;

		pgsize = iom_iommu_pgsize(data->cfg.pgsize_bitmap, iova, paddr,
					  size, &count);
		ret = ops->map_pages(ops, iova, paddr, pgsize, count, prot, gfp,
				     &mapped);
		size -= mapped;
		if (ret)
			break;
		if (!mapped)		/* no access asked: nothing to map */
			break;
		iova += mapped;
		paddr += mapped;
	}
	/* unroll mapping in case something went wrong */
	if (ret) {
		if (orig_size - size)
			iom_io_pgtable_unmap(ops, orig_iova, orig_size - size,
					     NULL);
		return ret;
	}
	if (mappedp)
		*mappedp = orig_size - size;
	return 0;
}

size_t iom_io_pgtable_unmap(struct iom_io_pgtable_ops *ops, unsigned long iova,
			    size_t size, struct iom_iommu_iotlb_gather *gather)
{
	struct arm_lpae_io_pgtable *data = ops_to_data(ops);
	struct iom_iommu_iotlb_gather local;
	unsigned long end = iova + size;
	size_t unmapped = 0, minsz;

	if (!ops)
		return 0;
	minsz = min_pagesz(data);
	if (!size || ((iova | size) & (minsz - 1)) || end < iova) {
		iom_warn(data->m, "io-pgtable: unmap: unaligned: iova %#lx "
			 "size %#zx min_pagesz %#zx", iova, size, minsz);
		return 0;
	}
	if (!gather) {
		iom_iommu_iotlb_gather_init(&local);
		gather = &local;
	}
	while (iova < end) {
		size_t pgsize, count = 0, ret;
		unsigned long next;

		pgsize = iom_iommu_pgsize(data->cfg.pgsize_bitmap, iova, iova,
					  end - iova, &count);
		ret = arm_lpae_unmap_range(data, iova, pgsize, count, gather,
					   &next);
		if (!ret)
			break;
		unmapped += ret;
		iova = next;
	}
	if (gather == &local && data->cfg.tlb && data->cfg.tlb->iotlb_sync)
		data->cfg.tlb->iotlb_sync(&local, data->cookie);
	return unmapped;
}
