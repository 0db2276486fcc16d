/* SPDX-License-Identifier: MIT */
/*
 * Seed 000's iommu_migrate() with its TODO (per-range and non-blocking
 * migration): iom_iommu_migrate(), iom_iommu_migrate_ranges() in three
 * modes (BLOCK, PER_PAGE, NONBLOCK) and the batch API
 * iom_iommu_migrate_batch_begin/switch/end(). The seed adds them to
 * drivers/iommu/iommu.c; they were part of iommu.c here too.
 *
 * The device side (transactions that wait for a blocked range, write
 * faults on fault-on-write entries) stays in iommu.c: it finds a
 * migration's record on the domain's list, under mig_lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <iommig/iommu.h>
#include <iommig/mm.h>
#include <iommig/rcu.h>

#include "iommu-internal.h"

#include "../core/debug.h"
#include "../core/list.h"
#include "../core/machine.h"
#include "../core/rcu.h"
#include "../core/trace.h"

static int pte_prot(uint64_t pte)
{
	int prot = 0;

	if (pte & IOM_IOPTE_READ)
		prot |= IOM_IOMMU_READ;
	if (pte & (IOM_IOPTE_WRITE | IOM_IOPTE_DBM))
		prot |= IOM_IOMMU_WRITE;
	if (pte & IOM_IOPTE_XN)
		prot |= IOM_IOMMU_NOEXEC;
	return prot;
}

static int cmp_range(const void *a, const void *b)
{
	const struct iom_iommu_migrate_range *x = *(const struct iom_iommu_migrate_range *const *)a;
	const struct iom_iommu_migrate_range *y = *(const struct iom_iommu_migrate_range *const *)b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/*
 * Check the ranges and collect their leaves, sorted by iova. Return: 0;
 * -EINVAL / -ENOENT with a warning.
 */
static int build_leaves(struct iom_iommu_domain *d, struct mig_rec *rec)
{
	struct iom_machine *m = d->iommu->m;
	const struct iom_iommu_migrate_range **ord;
	size_t cap = 0, n = 0;
	int ret = 0;

	ord = malloc(rec->nr * sizeof(*ord));
	if (!ord)
		return -ENOMEM;
	for (unsigned int i = 0; i < rec->nr; i++) {
		const struct iom_iommu_migrate_range *r = &rec->r[i];

		if (!r->size || (r->iova | r->paddr | r->size) & (IOM_PAGE_SIZE - 1) ||
		    r->iova + r->size - 1 < r->iova) {
			iom_warn(m, "iommu_migrate: range %u (iova %#lx, paddr %#llx, size %#zx) "
				 "is empty, wraps or is not 4 KiB aligned", i, r->iova,
				 (unsigned long long)r->paddr, r->size);
			ret = -EINVAL;
			goto out;
		}
		ord[i] = r;
		cap += r->size >> IOM_PAGE_SHIFT;
	}
	qsort(ord, rec->nr, sizeof(*ord), cmp_range);
	for (unsigned int i = 1; i < rec->nr; i++)
		if (ord[i - 1]->iova + ord[i - 1]->size > ord[i]->iova) {
			iom_warn(m, "iommu_migrate: ranges at iova %#lx and %#lx overlap",
				 ord[i - 1]->iova, ord[i]->iova);
			ret = -EINVAL;
			goto out;
		}
	rec->leaves = calloc(cap, sizeof(*rec->leaves));
	if (!rec->leaves) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < rec->nr; i++) {
		const struct iom_iommu_migrate_range *r = ord[i];
		unsigned long a = r->iova;
		int prot = -1;

		while (a < r->iova + r->size) {
			struct iom_io_pgtable_walk_data w;
			struct mig_leaf *l;
			unsigned long start;

			if (iom_io_pgtable_walk(d->pgtbl, a, &w)) {
				iom_warn(m, "iommu_migrate: iova %#lx of domain %u is not mapped", a, d->id);
				ret = -ENOENT;
				goto out;
			}
			start = a & ~(w.size - 1);
			if (start < r->iova || start + w.size > r->iova + r->size) {
				iom_warn(m, "iommu_migrate: the %zu KiB leaf at iova %#lx reaches "
					 "outside the range iova %#lx size %#zx", w.size >> 10,
					 start, r->iova, r->size);
				ret = -EINVAL;
				goto out;
			}
			if (prot >= 0 && pte_prot(w.pte) != prot) {
				iom_warn(m, "iommu_migrate: mixed permissions in the range at iova %#lx",
					 r->iova);
				ret = -EINVAL;
				goto out;
			}
			prot = pte_prot(w.pte);
			l = &rec->leaves[n++];
			l->iova = start;
			l->size = w.size;
			l->old_pte = w.pte & ~IOM_IOPTE_SW_MIGRATE;
			l->range = (unsigned int)(r - rec->r);
			l->off = start - r->iova;
			l->new_paddr = r->paddr + l->off;
			if (rec->mode == IOM_IOMMU_MIGRATE_NONBLOCK && (l->new_paddr & (w.size - 1))) {
				iom_warn(m, "iommu_migrate: new paddr %#llx is not aligned to the "
					 "%zu KiB leaf it replaces", (unsigned long long)l->new_paddr,
					 w.size >> 10);
				ret = -EINVAL;
				goto out;
			}
			a = start + w.size;
		}
	}
	rec->nr_leaves = n;
out:
	free(ord);
	return ret;
}

/* Is any range of @rec in one of the migrations of @d? Under mig_lock. */
static bool rec_overlaps(struct iom_iommu_domain *d, const struct mig_rec *rec)
{
	for (struct list_head *p = d->migs.next; p != &d->migs; p = p->next) {
		const struct mig_rec *o = list_entry(p, struct mig_rec, node);

		for (unsigned int i = 0; i < rec->nr; i++)
			for (unsigned int j = 0; j < o->nr; j++)
				if (rec->r[i].iova < o->r[j].iova + o->r[j].size &&
				    o->r[j].iova < rec->r[i].iova + rec->r[i].size)
					return true;
	}
	return false;
}

static void rec_inv_and_wait(struct iom_iommu_domain *d, const struct mig_rec *rec)
{
	unsigned long lo = ~0UL, hi = 0;

	for (unsigned int i = 0; i < rec->nr; i++) {
		if (rec->r[i].iova < lo)
			lo = rec->r[i].iova;
		if (rec->r[i].iova + rec->r[i].size - 1 > hi)
			hi = rec->r[i].iova + rec->r[i].size - 1;
	}
	/* one command: a range when the ranges are close, else the domain */
	if (rec->nr == 1 || hi - lo < (rec->nr_leaves + 8) * IOM_PAGE_SIZE * 4)
		domain_inv_range(d, lo, hi);
	else
		iom_iotlb_inv_domain(&d->iommu->tlb, d->id);
	domain_wait_inflight(d);
}

/* Re-walk a leaf's entry (the pointer is valid only inside RCU). */
static _Atomic uint64_t *leaf_ptep(struct iom_iommu_domain *d, struct mig_leaf *l)
{
	struct iom_io_pgtable_walk_data w;

	if (iom_io_pgtable_walk(d->pgtbl, l->iova, &w) || w.size != l->size)
		return NULL;
	return w.ptep;
}

/* Make @l fault on write (seed: "mark an entry as a fault-on-write entry"). */
static int pte_protect(struct iom_iommu_domain *d, struct mig_leaf *l)
{
	_Atomic uint64_t *ptep;
	uint64_t pte;
	int ret = 0;

	iom_rcu_read_lock_auto();
	ptep = leaf_ptep(d, l);
	if (!ptep) {
		ret = -ENOENT;
		goto out;
	}
	pte = atomic_load(ptep);
	while (!atomic_compare_exchange_weak(ptep, &pte,
					     (pte & ~(IOM_IOPTE_WRITE | IOM_IOPTE_DBM)) |
					     IOM_IOPTE_SW_MIGRATE))
		;
	atomic_store(&l->protected_, true);
out:
	iom_rcu_read_unlock_auto();
	return ret;
}

/* The fault side: put back the write permission the leaf had. */
void pte_restore(struct iom_iommu_domain *d, struct mig_leaf *l)
{
	_Atomic uint64_t *ptep;
	uint64_t pte, w = l->old_pte & (IOM_IOPTE_WRITE | IOM_IOPTE_DBM);

	iom_rcu_read_lock_auto();
	ptep = leaf_ptep(d, l);
	if (ptep) {
		pte = atomic_load(ptep);
		while (!atomic_compare_exchange_weak(ptep, &pte,
						     (pte & ~IOM_IOPTE_SW_MIGRATE) | w))
			;
	}
	iom_rcu_read_unlock_auto();
}

/* The switch: the leaf's entry now points at its new page, as before. */
static void pte_switch(struct iom_iommu_domain *d, struct mig_leaf *l, bool to_new)
{
	_Atomic uint64_t *ptep;
	uint64_t pa = to_new ? l->new_paddr : iom_iopte_to_paddr(l->old_pte);
	uint64_t pte;

	iom_rcu_read_lock_auto();
	ptep = leaf_ptep(d, l);
	if (ptep) {
		pte = atomic_load(ptep);
		while (!atomic_compare_exchange_weak(ptep, &pte,
						     (l->old_pte & ~IOM_IOPTE_ADDR_MASK) | pa))
			;
	}
	iom_rcu_read_unlock_auto();
}

static void rec_add(struct iom_iommu_domain *d, struct mig_rec *rec, int state)
{
	atomic_store(&rec->state, state);
	list_add_tail(&rec->node, &d->migs);
}

static void rec_remove(struct iom_iommu_domain *d, struct mig_rec *rec)
{
	pthread_mutex_lock(&d->mig_lock);
	if (atomic_load(&rec->state) == MIG_BLOCKED)
		atomic_fetch_sub(&d->nr_blocked_ranges, 1);
	atomic_store(&rec->state, MIG_DONE);
	list_del(&rec->node);
	mig_kick(d);
	pthread_mutex_unlock(&d->mig_lock);
}

/* Put the old leaves back after a failed map of the new ones. */
static void restore_old(struct iom_iommu_domain *d, struct mig_rec *rec)
{
	for (size_t i = 0; i < rec->nr_leaves; i++) {
		struct mig_leaf *l = &rec->leaves[i];

		if (iom_io_pgtable_map(d->pgtbl, l->iova, iom_iopte_to_paddr(l->old_pte),
				       l->size, pte_prot(l->old_pte), IOM_GFP_KERNEL, NULL))
			iom_warn(d->iommu->m, "iommu_migrate: could not put back iova %#lx "
				 "of domain %u: it stays unmapped", l->iova, d->id);
	}
}

/* Steps 2-4 of seed 000, for every range: unmap, copy, map. Devices are stopped. */
static int migrate_stopped(struct iom_iommu_domain *d, struct mig_rec *rec,
			   iom_iommu_copy_range_t copy, void *priv)
{
	struct iom_iommu_iotlb_gather g;
	unsigned int i;
	size_t j;
	int ret = 0;

	if (rec->mode == IOM_IOMMU_MIGRATE_PER_PAGE) {
		/*
		 * Only this record's ranges are blocked, and no transaction is
		 * in them: copy, then switch each leaf in place (no table page
		 * freed or allocated, so this cannot fail), and invalidate
		 * before the ranges open again.
		 */
		for (i = 0; i < rec->nr; i++)
			copy(priv, i, 0, rec->r[i].size);
		for (j = 0; j < rec->nr_leaves; j++)
			pte_switch(d, &rec->leaves[j], true);
		rec_inv_and_wait(d, rec);
		return 0;
	}
	iom_iommu_iotlb_gather_init(&g);
	for (i = 0; i < rec->nr; i++)
		iom_io_pgtable_unmap(d->pgtbl, rec->r[i].iova, rec->r[i].size, &g);
	rec_inv_and_wait(d, rec);
	for (i = 0; i < rec->nr; i++)
		copy(priv, i, 0, rec->r[i].size);
	/*
	 * Each range with its own permissions (one within a range): the
	 * leaves are sorted by iova, a range's leaves next to each other.
	 */
	for (j = 0; j < rec->nr_leaves; j++) {
		const struct mig_leaf *l = &rec->leaves[j];
		const struct iom_iommu_migrate_range *r = &rec->r[l->range];

		if (j && rec->leaves[j - 1].range == l->range)
			continue;
		ret = iom_io_pgtable_map(d->pgtbl, r->iova, r->paddr, r->size,
					 pte_prot(l->old_pte), IOM_GFP_KERNEL, NULL);
		if (ret)
			break;
	}
	if (ret) {
		while (j--) {
			const struct iom_iommu_migrate_range *r =
				&rec->r[rec->leaves[j].range];

			if (j && rec->leaves[j - 1].range == rec->leaves[j].range)
				continue;
			iom_io_pgtable_unmap(d->pgtbl, r->iova, r->size, NULL);
		}
		domain_wait_inflight(d);
		restore_old(d, rec);
	}
	return ret;
}

/*
 * Seed 000's TODO "migrate pages without blocking": copy while devices
 * run, with fault-on-write entries and a dirty re-copy loop, then a final
 * stop that only holds writes to the leaves still dirty.
 */
static int migrate_nonblock(struct iom_iommu_domain *d, struct mig_rec *rec,
			    iom_iommu_copy_range_t copy, void *priv,
			    struct iom_iommu_migrate_stats *st, bool timed)
{
	size_t i;
	unsigned int round;
	bool any;
	uint64_t t0 = 0;

	/* 1-2: clean and fault-on-write, then nobody writes through the old ones */
	for (i = 0; i < rec->nr_leaves; i++) {
		atomic_store(&rec->leaves[i].dirty, true);
		pte_protect(d, &rec->leaves[i]);
	}
	rec_inv_and_wait(d, rec);
	for (round = 1;; round++) {
		/* 3-5: copy what is dirty and protected */
		for (i = 0; i < rec->nr_leaves; i++) {
			struct mig_leaf *l = &rec->leaves[i];

			if (!atomic_load(&l->dirty))
				continue;
			pthread_mutex_lock(&d->mig_lock);
			if (!atomic_load(&l->protected_)) {
				/* written and restored since: copy it next round */
				pthread_mutex_unlock(&d->mig_lock);
				continue;
			}
			atomic_store(&l->dirty, false);
			atomic_store(&l->copying, true);
			pthread_mutex_unlock(&d->mig_lock);
			copy(priv, l->range, l->off, l->size);
			if (round > 1)
				st->recopied += l->size;
			pthread_mutex_lock(&d->mig_lock);
			atomic_store(&l->copying, false);
			mig_kick(d);
			pthread_mutex_unlock(&d->mig_lock);
		}
		st->rounds = round;
		/* 6: again while a device wrote meanwhile */
		any = false;
		pthread_mutex_lock(&d->mig_lock);
		for (i = 0; i < rec->nr_leaves; i++) {
			struct mig_leaf *l = &rec->leaves[i];

			if (atomic_load(&l->dirty) && !atomic_load(&l->protected_)) {
				pte_protect(d, l);
				any = true;
			}
		}
		if (!any || round >= IOM_IOMMU_MIGRATE_MAX_ROUNDS) {
			/* the final stop: from now on writes wait */
			if (timed)
				t0 = now_ns();
			atomic_store(&rec->state, MIG_FINAL);
			mig_kick(d);
		}
		pthread_mutex_unlock(&d->mig_lock);
		if (any)
			rec_inv_and_wait(d, rec);
		if (atomic_load(&rec->state) == MIG_FINAL)
			break;
	}
	/* final: copy the leaves still dirty (all protected now), switch */
	for (i = 0; i < rec->nr_leaves; i++) {
		struct mig_leaf *l = &rec->leaves[i];

		if (atomic_load(&l->dirty)) {
			copy(priv, l->range, l->off, l->size);
			st->final_dirty += l->size;
			st->recopied += l->size;
		}
	}
	for (i = 0; i < rec->nr_leaves; i++)
		pte_switch(d, &rec->leaves[i], true);
	rec_inv_and_wait(d, rec);
	if (timed)
		st->stop_ns = now_ns() - t0;
	st->write_faults = atomic_load(&rec->write_faults);
	return 0;
}

int iom_iommu_migrate_ranges(struct iom_iommu_domain *d,
			     const struct iom_iommu_migrate_range *r,
			     unsigned int nr, enum iom_iommu_migrate_mode mode,
			     iom_iommu_copy_range_t copy, void *priv,
			     struct iom_iommu_migrate_stats *st)
{
	struct iom_iommu_migrate_stats local;
	bool timed = st != NULL;	/* the clock is read only when asked */
	struct mig_rec rec;
	uint64_t t0 = 0;
	int ret;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!d || !r || !nr || !copy ||
	    (mode != IOM_IOMMU_MIGRATE_BLOCK && mode != IOM_IOMMU_MIGRATE_PER_PAGE &&
	     mode != IOM_IOMMU_MIGRATE_NONBLOCK)) {
		if (d)
			iom_warn(d->iommu->m, "iommu_migrate: bad arguments (ranges %p, nr %u, "
				 "copy %s, mode %d)", (const void *)r, nr, copy ? "set" : "NULL",
				 (int)mode);
		return -EINVAL;
	}
	memset(&rec, 0, sizeof(rec));
	rec.mode = mode;
	rec.r = r;
	rec.nr = nr;
	iom_trace(d->iommu->m, IOM_TRACE_IOMMU_MIGRATE, 'B', d->id, r[0].iova, nr, mode);
	if (mode == IOM_IOMMU_MIGRATE_BLOCK)
		iom_iommu_block(d);
	/*
	 * A range another migration is moving may be unmapped right now: say
	 * so before build_leaves() calls it a hole (checked again below,
	 * where the record is added).
	 */
	pthread_mutex_lock(&d->mig_lock);
	ret = rec_overlaps(d, &rec) ? -EBUSY : 0;
	pthread_mutex_unlock(&d->mig_lock);
	if (ret) {
		iom_warn(d->iommu->m, "iommu_migrate: a range is being migrated already");
		goto out_unblock;
	}
	ret = build_leaves(d, &rec);
	if (ret)
		goto out_unblock;
	if (mode != IOM_IOMMU_MIGRATE_BLOCK || atomic_load(&d->nr_blocked_ranges) ||
	    !list_empty(&d->migs)) {
		pthread_mutex_lock(&d->mig_lock);
		if (rec_overlaps(d, &rec)) {
			pthread_mutex_unlock(&d->mig_lock);
			iom_warn(d->iommu->m, "iommu_migrate: a range is being migrated already");
			ret = -EBUSY;
			goto out_unblock;
		}
		if (mode == IOM_IOMMU_MIGRATE_PER_PAGE) {
			rec_add(d, &rec, MIG_BLOCKED);
			atomic_fetch_add(&d->nr_blocked_ranges, 1);
		} else {
			rec_add(d, &rec, mode == IOM_IOMMU_MIGRATE_NONBLOCK ? MIG_COPY : MIG_DONE);
		}
		pthread_mutex_unlock(&d->mig_lock);
	} else {
		INIT_LIST_HEAD(&rec.node);
		pthread_mutex_lock(&d->mig_lock);
		rec_add(d, &rec, MIG_DONE);
		pthread_mutex_unlock(&d->mig_lock);
	}

	if (timed)
		t0 = now_ns();
	if (mode == IOM_IOMMU_MIGRATE_NONBLOCK) {
		ret = migrate_nonblock(d, &rec, copy, priv, st, timed);
	} else {
		if (mode == IOM_IOMMU_MIGRATE_PER_PAGE)
			domain_wait_inflight(d);	/* nobody in the ranges now */
		ret = migrate_stopped(d, &rec, copy, priv);
		st->rounds = 1;
	}
	rec_remove(d, &rec);
	if (mode != IOM_IOMMU_MIGRATE_NONBLOCK && timed)
		st->stop_ns = now_ns() - t0;
out_unblock:
	if (mode == IOM_IOMMU_MIGRATE_BLOCK)
		iom_iommu_unblock(d);
	iom_trace(d->iommu->m, IOM_TRACE_IOMMU_MIGRATE, 'E', d->id, r[0].iova, nr, ret);
	free(rec.leaves);
	return ret;
}

/*
 * A PER_PAGE migration split in three for a caller that copies page by page
 * between its own steps (the DMA layer inside one MM migration batch):
 * begin blocks every range and waits for the transactions in them (one
 * wait for the batch), switch points one range's leaves at its new pages
 * after the caller copied it, end invalidates once and opens the ranges.
 */
struct iom_iommu_migrate_batch {
	struct iom_iommu_domain *d;
	struct mig_rec rec;
	bool *switched;			/* per range */
	size_t *first_leaf;		/* per range: its leaves are in a row */
	unsigned int nr_switched;
	struct iom_iommu_migrate_range r[];
};

int iom_iommu_migrate_batch_begin(struct iom_iommu_domain *d,
				  const struct iom_iommu_migrate_range *r, unsigned int nr,
				  struct iom_iommu_migrate_batch **out)
{
	struct iom_iommu_migrate_batch *b;
	int ret;

	if (!d || !r || !nr || !out || nr > (1U << 20))
		return -EINVAL;
	b = calloc(1, sizeof(*b) + nr * sizeof(b->r[0]));
	if (!b)
		return -ENOMEM;
	b->switched = calloc(nr, sizeof(*b->switched));
	b->first_leaf = calloc(nr, sizeof(*b->first_leaf));
	if (!b->switched || !b->first_leaf) {
		free(b->switched);
		free(b->first_leaf);
		free(b);
		return -ENOMEM;
	}
	memcpy(b->r, r, nr * sizeof(*r));
	b->d = d;
	b->rec.mode = IOM_IOMMU_MIGRATE_PER_PAGE;
	b->rec.r = b->r;
	b->rec.nr = nr;
	ret = build_leaves(d, &b->rec);
	if (!ret) {
		for (size_t j = b->rec.nr_leaves; j-- > 0;)
			b->first_leaf[b->rec.leaves[j].range] = j;
		pthread_mutex_lock(&d->mig_lock);
		if (rec_overlaps(d, &b->rec)) {
			ret = -EBUSY;
		} else {
			rec_add(d, &b->rec, MIG_BLOCKED);
			atomic_fetch_add(&d->nr_blocked_ranges, 1);
		}
		pthread_mutex_unlock(&d->mig_lock);
	}
	if (ret) {
		free(b->rec.leaves);
		free(b->switched);
		free(b->first_leaf);
		free(b);
		return ret;
	}
	domain_wait_inflight(d);	/* nobody in the ranges now */
	iom_trace(d->iommu->m, IOM_TRACE_IOMMU_MIGRATE, 'B', d->id, r[0].iova, nr, IOM_IOMMU_MIGRATE_PER_PAGE);
	*out = b;
	return 0;
}

int iom_iommu_migrate_batch_switch(struct iom_iommu_migrate_batch *b, unsigned int idx)
{
	if (!b || idx >= b->rec.nr || b->switched[idx])
		return -EINVAL;
	for (size_t j = b->first_leaf[idx];
	     j < b->rec.nr_leaves && b->rec.leaves[j].range == idx; j++)
		pte_switch(b->d, &b->rec.leaves[j], true);
	b->switched[idx] = true;
	b->nr_switched++;
	return 0;
}

void iom_iommu_migrate_batch_end(struct iom_iommu_migrate_batch *b)
{
	if (!b)
		return;
	iom_trace(b->d->iommu->m, IOM_TRACE_IOMMU_MIGRATE, 'E', b->d->id, b->r[0].iova, b->rec.nr, 0);
	/* the old translations may be cached: drop them before the ranges open */
	if (b->nr_switched)
		rec_inv_and_wait(b->d, &b->rec);
	rec_remove(b->d, &b->rec);
	free(b->rec.leaves);
	free(b->switched);
	free(b->first_leaf);
	free(b);
}

struct seed_cb {
	void (*copy_cb)(void *);
	void *cb_priv;
};

static void seed_copy(void *priv, unsigned int idx, size_t off, size_t len)
{
	struct seed_cb *c = priv;

	(void)idx;
	(void)off;
	(void)len;
	c->copy_cb(c->cb_priv);
}

int iom_iommu_migrate(struct iom_iommu_domain *d, unsigned long iova,
		      uint64_t paddr, size_t size, void (*copy_cb)(void *),
		      void *cb_priv)
{
	struct iom_iommu_migrate_range r = { iova, paddr, size };
	struct seed_cb c = { copy_cb, cb_priv };

	if (!copy_cb) {
		if (d)
			iom_warn(d->iommu->m, "iommu_migrate: NULL copy_cb");
		return -EINVAL;
	}
	return iom_iommu_migrate_ranges(d, &r, 1, IOM_IOMMU_MIGRATE_BLOCK, seed_copy,
					&c, NULL);
}
