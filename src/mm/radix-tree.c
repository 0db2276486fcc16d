/* SPDX-License-Identifier: MIT */
/*
 * The RCU radix tree (lib/radix-tree.c of Linux 4.14, the page cache's tree
 * before the XArray): 64-slot nodes with three tag bitmaps, extend and
 * shrink at the top, a lone item at index 0 kept in the root, call_rcu frees.
 * Simplified: no multi-order, exceptional or sibling entries, no IDR; the
 * per-cpu preload becomes a per-call one (an insert allocates every node it
 * needs first), so -ENOMEM changes nothing.
 *
 * Conventions in this file:
 *   @root:   the tree; @node: an internal node; @index: a key.
 *   entry:   what a slot (or root->rnode) holds: NULL, an item, or a node
 *            pointer with RADIX_TREE_INTERNAL_NODE set.
 *   shift:   as the kernel's: a node at shift s indexes bits [s, s + 6).
 *   Readers (lookup, gang lookups, tag_get, tagged, empty) run under RCU
 *   and read every slot, root->rnode and tag word with an atomic load;
 *   writers hold the caller's lock and publish with release stores. Fields
 *   only writers read (count, offset, parent) are plain.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-memb.h>

#include <iommig/radix-tree.h>

#include "../core/debug.h"
#include "../core/machine.h"
#include "../core/rcu.h"

#define RADIX_TREE_MAP_SHIFT	IOM_RADIX_TREE_MAP_SHIFT
#define RADIX_TREE_MAP_SIZE	(1UL << RADIX_TREE_MAP_SHIFT)
#define RADIX_TREE_MAP_MASK	(RADIX_TREE_MAP_SIZE - 1)
#define RADIX_TREE_MAX_TAGS	IOM_RADIX_TREE_MAX_TAGS
/* Nodes on the path of a 64-bit index: shifts 0, 6, ..., 60. */
#define RADIX_TREE_MAX_PATH	((64 + RADIX_TREE_MAP_SHIFT - 1) / RADIX_TREE_MAP_SHIFT)

#define RADIX_TREE_ENTRY_MASK		3UL
#define RADIX_TREE_INTERNAL_NODE	1UL
/*
 * Left in slot 0 of a leaf whose lone item moved up into root->rnode by a
 * shrink: a reader that meets it starts again from the root.
 */
#define RADIX_TREE_RETRY	((void *)RADIX_TREE_INTERNAL_NODE)

/* Nodes start on a cache line: a lookup touches one line per level. */
#define RADIX_TREE_NODE_ALIGN	64

struct radix_tree_node {
	unsigned char shift;		/* bits of the index below this level */
	unsigned char offset;		/* slot in the parent */
	unsigned char count;		/* non-NULL slots */
	struct radix_tree_node *parent;	/* writers only: readers never go up */
	struct iom_machine *m;		/* whose hook frees it; NULL: free() */
	struct rcu_head rcu_head;
	void *slots[RADIX_TREE_MAP_SIZE];
	unsigned long tags[RADIX_TREE_MAX_TAGS];
};

_Static_assert(RADIX_TREE_MAP_SIZE == 8 * sizeof(unsigned long),
	       "one tag word a node");

/* ---- ThreadSanitizer and RCU ---------------------------------------------
 *
 * liburcu is not instrumented, so TSan cannot see that a grace period
 * orders a reader's last load from a node before the callback that frees
 * it (core/rcu.h states it with iom_rcu_tsan_gp). Besides the release in
 * iom_rcu_read_unlock(), each read-side function here releases once done
 * with the nodes, for readers that call urcu_memb_read_unlock() directly;
 * a writer releases before call_rcu() for its own last accesses. A reader
 * still inside a node when it is freed is not covered, and is reported.
 */
#define tsan_rcu_reader_done()	iom_rcu_tsan_release(&iom_rcu_tsan_gp)

/* ---- entries, atomics ---------------------------------------------------- */

static inline bool radix_tree_is_internal_node(const void *ptr)
{
	return ((uintptr_t)ptr & RADIX_TREE_ENTRY_MASK) ==
		RADIX_TREE_INTERNAL_NODE;
}

static inline struct radix_tree_node *entry_to_node(void *ptr)
{
	return (void *)((uintptr_t)ptr & ~RADIX_TREE_INTERNAL_NODE);
}

static inline void *node_to_entry(struct radix_tree_node *node)
{
	return (void *)((uintptr_t)node | RADIX_TREE_INTERNAL_NODE);
}

/* A caller's item: the tree needs its two low bits. */
static inline bool item_valid(const void *item)
{
	return item && !((uintptr_t)item & RADIX_TREE_ENTRY_MASK);
}

/*
 * rcu_dereference(): an acquire load (what consume becomes), so a reader
 * sees a node or item initialised before it was published.
 */
static inline void *rcu_deref(void *const *slot)
{
	return __atomic_load_n(slot, __ATOMIC_ACQUIRE);
}

/* rcu_assign_pointer(). */
static inline void rcu_assign(void **slot, void *entry)
{
	__atomic_store_n(slot, entry, __ATOMIC_RELEASE);
}

/* Largest index below a node at @shift (shift 60: the whole range). */
static inline unsigned long shift_maxindex(unsigned int shift)
{
	return (RADIX_TREE_MAP_SIZE << shift) - 1;
}

static inline unsigned long node_maxindex(const struct radix_tree_node *node)
{
	return shift_maxindex(node->shift);
}

/* Shift of the smallest root node that covers @index. */
static unsigned int shift_for_index(unsigned long index)
{
	unsigned int shift = 0;

	while (index > shift_maxindex(shift))
		shift += RADIX_TREE_MAP_SHIFT;
	return shift;
}

/* ---- tags ---------------------------------------------------------------- */

static inline unsigned long tags_load(const struct radix_tree_node *node,
				      unsigned int tag)
{
	return __atomic_load_n(&node->tags[tag], __ATOMIC_RELAXED);
}

static inline bool tag_get(const struct radix_tree_node *node,
			   unsigned int tag, unsigned int offset)
{
	return (tags_load(node, tag) >> offset) & 1;
}

/* Writers only (serialised): a plain read and a store readers may load. */
static inline void tag_set(struct radix_tree_node *node, unsigned int tag,
			   unsigned int offset)
{
	__atomic_store_n(&node->tags[tag], node->tags[tag] | (1UL << offset),
			 __ATOMIC_RELAXED);
}

static inline void tag_clear(struct radix_tree_node *node, unsigned int tag,
			     unsigned int offset)
{
	__atomic_store_n(&node->tags[tag], node->tags[tag] & ~(1UL << offset),
			 __ATOMIC_RELAXED);
}

static inline bool any_tag_set(const struct radix_tree_node *node,
			       unsigned int tag)
{
	return node->tags[tag] != 0;
}

static inline bool root_tag_get(const struct iom_radix_tree_root *root,
				unsigned int tag)
{
	return (__atomic_load_n(&root->tags, __ATOMIC_RELAXED) >> tag) & 1;
}

static inline void root_tag_set(struct iom_radix_tree_root *root,
				unsigned int tag)
{
	__atomic_store_n(&root->tags, root->tags | (1u << tag),
			 __ATOMIC_RELAXED);
}

static inline void root_tag_clear(struct iom_radix_tree_root *root,
				  unsigned int tag)
{
	__atomic_store_n(&root->tags, root->tags & ~(1u << tag),
			 __ATOMIC_RELAXED);
}

static inline void root_tag_clear_all(struct iom_radix_tree_root *root)
{
	__atomic_store_n(&root->tags, 0u, __ATOMIC_RELAXED);
}

/* ---- node allocation ------------------------------------------------------ */

static struct radix_tree_node *radix_tree_node_alloc_raw(struct iom_machine *m)
{
	struct radix_tree_node *node;
	void *p;

	if (m)
		return iom_meta_alloc(m, sizeof(*node), RADIX_TREE_NODE_ALIGN,
				      true);
	if (posix_memalign(&p, RADIX_TREE_NODE_ALIGN, sizeof(*node)))
		return NULL;
	memset(p, 0, sizeof(*node));
	return p;
}

/* A node that was never published: no reader can hold it. */
static void radix_tree_node_free_now(struct radix_tree_node *node)
{
	if (node->m)
		iom_meta_free(node->m, node, sizeof(*node));
	else
		free(node);
}

static void radix_tree_node_rcu_free(struct rcu_head *head)
{
	struct radix_tree_node *node =
		caa_container_of(head, struct radix_tree_node, rcu_head);

	iom_rcu_cb_enter();
	radix_tree_node_free_now(node);
	iom_rcu_cb_exit();
}

/*
 * A node taken out of the tree: readers that found it before may still be
 * walking it, so it goes back only after a grace period. call_rcu() wants
 * a registered thread; a writer that never read under RCU is registered
 * here (and unregistered when it exits, see core/rcu.c).
 */
static void radix_tree_node_free(struct radix_tree_node *node)
{
	if (unlikely(!iom_rcu_registered))
		iom_rcu_register_auto();
	tsan_rcu_reader_done();
	iom_call_rcu(&node->rcu_head, radix_tree_node_rcu_free);
}

/*
 * The kernel's radix_tree_preload(), per call: the nodes an insert will
 * link, allocated up front so that failure leaves the tree untouched.
 */
struct radix_tree_preload {
	unsigned int nr;
	struct radix_tree_node *nodes[2 * RADIX_TREE_MAX_PATH];
};

static int radix_tree_preload(struct iom_radix_tree_root *root,
			      struct radix_tree_preload *pl, unsigned int nr)
{
	IOM_BUG_ON(nr > 2 * RADIX_TREE_MAX_PATH);
	for (pl->nr = 0; pl->nr < nr; pl->nr++) {
		struct radix_tree_node *node = radix_tree_node_alloc_raw(root->m);

		if (!node) {
			while (pl->nr)
				radix_tree_node_free_now(pl->nodes[--pl->nr]);
			return -ENOMEM;
		}
		node->m = root->m;
		pl->nodes[pl->nr] = node;
	}
	return 0;
}

/* radix_tree_node_alloc(): a zeroed node from the preload. */
static struct radix_tree_node *radix_tree_node_alloc(struct radix_tree_preload *pl,
						     struct radix_tree_node *parent,
						     unsigned int shift,
						     unsigned int offset,
						     unsigned int count)
{
	struct radix_tree_node *node;

	IOM_BUG_ON(!pl->nr);
	node = pl->nodes[--pl->nr];
	node->shift = (unsigned char)shift;
	node->offset = (unsigned char)offset;
	node->count = (unsigned char)count;
	node->parent = parent;
	return node;
}

/* ---- shape ------------------------------------------------------------------ */

/*
 * radix_tree_load_root(): the root entry, the largest index the tree can
 * hold without growing, and the kernel's "shift" of the root (node shift
 * + 6, or 0 for an empty tree or a lone item).
 */
static unsigned int radix_tree_load_root(const struct iom_radix_tree_root *root,
					 void **entryp, unsigned long *maxindex)
{
	void *entry = rcu_deref(&root->rnode);

	*entryp = entry;
	if (radix_tree_is_internal_node(entry)) {
		struct radix_tree_node *node = entry_to_node(entry);

		*maxindex = node_maxindex(node);
		return node->shift + RADIX_TREE_MAP_SHIFT;
	}
	*maxindex = 0;
	return 0;
}

/* Levels of nodes (0: empty or a lone item), for root->height. */
static void radix_tree_update_height(struct iom_radix_tree_root *root)
{
	void *entry = root->rnode;
	unsigned int height = 0;

	if (radix_tree_is_internal_node(entry))
		height = entry_to_node(entry)->shift / RADIX_TREE_MAP_SHIFT + 1;
	__atomic_store_n(&root->height, height, __ATOMIC_RELAXED);
}

/*
 * __radix_tree_lookup(): the entry at @index, and where it lives: its node
 * (NULL for root->rnode) and slot. Safe for readers; a reader that meets a
 * slot a shrink left behind starts again.
 */
static void *__radix_tree_lookup(const struct iom_radix_tree_root *root,
				 unsigned long index,
				 struct radix_tree_node **nodep, void ***slotp)
{
	struct radix_tree_node *parent;
	unsigned int shift;
	void **slot;
	void *entry;

restart:
	parent = NULL;
	slot = (void **)&root->rnode;
	entry = rcu_deref(slot);
	if (radix_tree_is_internal_node(entry)) {
		parent = entry_to_node(entry);
		shift = parent->shift;
		if (index > shift_maxindex(shift))
			return NULL;
		/*
		 * The kernel reads each node's ->shift in radix_tree_descend():
		 * a second cache line a level, as ->shift and most slots are
		 * lines apart (a cold leaf cost two misses; with 1M keys the
		 * lookup took twice as long). A child's shift is its parent's
		 * minus 6 for its whole life, so only the root's is read.
		 */
		for (;;) {
			slot = &parent->slots[(index >> shift) &
					      RADIX_TREE_MAP_MASK];
			entry = rcu_deref(slot);
			if (!radix_tree_is_internal_node(entry))
				break;
			if (entry == RADIX_TREE_RETRY)
				goto restart;
			IOM_BUG_ON(shift == 0);
			parent = entry_to_node(entry);
			shift -= RADIX_TREE_MAP_SHIFT;
			IOM_BUG_ON(parent->shift != shift);
		}
	} else if (index) {
		return NULL;
	}
	if (nodep)
		*nodep = parent;
	if (slotp)
		*slotp = slot;
	return entry;
}

/* ---- insert ---------------------------------------------------------------- */

/*
 * How many nodes inserting at @index will link (extension above the root
 * plus the missing path below), or -EEXIST. Walks like the insert will.
 */
static int radix_tree_nodes_needed(const struct iom_radix_tree_root *root,
				   unsigned long index, unsigned int *nr)
{
	unsigned long maxindex;
	unsigned int shift, maxshift;
	void *entry;

	shift = radix_tree_load_root(root, &entry, &maxindex);
	if (!entry) {
		*nr = index ? shift_for_index(index) / RADIX_TREE_MAP_SHIFT + 1 : 0;
		return 0;
	}
	if (index > maxindex) {
		/*
		 * New levels on top (shifts @shift .. maxshift), then a fresh
		 * path below the new root: @index does not go through slot 0
		 * at the top, where the old tree hangs.
		 */
		maxshift = shift_for_index(index);
		*nr = (maxshift - shift) / RADIX_TREE_MAP_SHIFT + 1 +
		      maxshift / RADIX_TREE_MAP_SHIFT;
		return 0;
	}
	while (radix_tree_is_internal_node(entry)) {
		struct radix_tree_node *node = entry_to_node(entry);

		entry = node->slots[(index >> node->shift) & RADIX_TREE_MAP_MASK];
		if (!entry) {
			*nr = node->shift / RADIX_TREE_MAP_SHIFT;
			return 0;
		}
	}
	return -EEXIST;
}

/*
 * radix_tree_extend(): add levels on top until the root covers @index. Each
 * new root holds the old one in slot 0 and inherits the root tags there.
 * Returns the new root "shift".
 */
static unsigned int radix_tree_extend(struct iom_radix_tree_root *root,
				      struct radix_tree_preload *pl,
				      unsigned long index, unsigned int shift)
{
	unsigned int maxshift = shift_for_index(index), tag;
	void *entry = root->rnode;

	if (!entry)
		return maxshift + RADIX_TREE_MAP_SHIFT;
	do {
		struct radix_tree_node *node =
			radix_tree_node_alloc(pl, NULL, shift, 0, 1);

		for (tag = 0; tag < RADIX_TREE_MAX_TAGS; tag++)
			if (root_tag_get(root, tag))
				node->tags[tag] = 1;
		if (radix_tree_is_internal_node(entry))
			entry_to_node(entry)->parent = node;
		/* Not yet visible: plain stores, published below. */
		node->slots[0] = entry;
		entry = node_to_entry(node);
		rcu_assign(&root->rnode, entry);
		shift += RADIX_TREE_MAP_SHIFT;
	} while (shift <= maxshift);
	return maxshift + RADIX_TREE_MAP_SHIFT;
}

/*
 * __radix_tree_create(): make the path to @index, from @pl's nodes, and
 * return the (empty) slot and its node. Each new node is complete before
 * the store that links it.
 */
static void **__radix_tree_create(struct iom_radix_tree_root *root,
				  struct radix_tree_preload *pl,
				  unsigned long index,
				  struct radix_tree_node **nodep)
{
	struct radix_tree_node *node = NULL;
	unsigned long maxindex;
	unsigned int shift, offset = 0;
	void **slot = &root->rnode;
	void *child;

	shift = radix_tree_load_root(root, &child, &maxindex);
	if (index > maxindex)
		shift = radix_tree_extend(root, pl, index, shift);
	child = root->rnode;

	while (shift > 0) {
		shift -= RADIX_TREE_MAP_SHIFT;
		if (!child) {
			struct radix_tree_node *new =
				radix_tree_node_alloc(pl, node, shift, offset, 0);

			child = node_to_entry(new);
			rcu_assign(slot, child);
			if (node)
				node->count++;
		}
		IOM_BUG_ON(!radix_tree_is_internal_node(child));
		node = entry_to_node(child);
		IOM_BUG_ON(node->shift != shift);
		offset = (index >> shift) & RADIX_TREE_MAP_MASK;
		slot = &node->slots[offset];
		child = *slot;
	}
	*nodep = node;
	return slot;
}

int iom_radix_tree_insert(struct iom_radix_tree_root *root,
			  unsigned long index, void *item)
{
	struct radix_tree_preload pl;
	struct radix_tree_node *node;
	unsigned int nr, tag;
	void **slot;
	int err;

	if (!root || !item_valid(item))
		return -EINVAL;
	err = radix_tree_nodes_needed(root, index, &nr);
	if (err)
		return err;
	err = radix_tree_preload(root, &pl, nr);
	if (err)
		return err;

	slot = __radix_tree_create(root, &pl, index, &node);
	IOM_BUG_ON(pl.nr != 0);
	IOM_BUG_ON(*slot != NULL);
	if (node) {
		unsigned int offset = (unsigned int)(slot - node->slots);

		/* A deleted item took its tags with it. */
		for (tag = 0; tag < RADIX_TREE_MAX_TAGS; tag++)
			IOM_BUG_ON(tag_get(node, tag, offset));
		node->count++;
	}
	rcu_assign(slot, item);
	radix_tree_update_height(root);
	return 0;
}

/* ---- lookup ------------------------------------------------------------------ */

void *iom_radix_tree_lookup(const struct iom_radix_tree_root *root,
			    unsigned long index)
{
	void *item;

	if (!root)
		return NULL;
	item = __radix_tree_lookup(root, index, NULL, NULL);
	tsan_rcu_reader_done();
	return item;
}

void **iom_radix_tree_lookup_slot(const struct iom_radix_tree_root *root,
				  unsigned long index)
{
	void **slot;

	if (!root || !__radix_tree_lookup(root, index, NULL, &slot))
		slot = NULL;
	tsan_rcu_reader_done();
	return slot;
}

/*
 * The kernel's callers test radix_tree_deref_retry() on what they read; our
 * API has no such test, so a slot that no longer holds an item (a shrink
 * left RETRY in it, or a grow put a node where the lone item was) reads
 * as empty and the caller looks up again.
 */
void *iom_radix_tree_deref_slot(void **slot)
{
	void *entry;

	if (!slot)
		return NULL;
	entry = rcu_deref(slot);
	tsan_rcu_reader_done();
	return radix_tree_is_internal_node(entry) ? NULL : entry;
}

int iom_radix_tree_replace_slot(struct iom_radix_tree_root *root,
				void **slot, void *item)
{
	if (!root || !slot || !item_valid(item))
		return -EINVAL;
	/* An empty slot needs insert: the node's count would go wrong. */
	if (!item_valid(*slot))
		return -EINVAL;
	rcu_assign(slot, item);
	return 0;
}

/* ---- delete ------------------------------------------------------------------ */

/*
 * radix_tree_shrink(): while the root node holds only slot 0, make that
 * child the root. A reader that loaded the old root still walks valid
 * memory until the grace period: its slot 0 keeps pointing at the child
 * node, or, when the child was the lone item now in root->rnode, holds
 * RETRY so that the reader looks again from the root rather than keep
 * using a slot the tree no longer updates.
 */
static void radix_tree_shrink(struct iom_radix_tree_root *root)
{
	for (;;) {
		void *entry = root->rnode, *child;
		struct radix_tree_node *node;

		if (!radix_tree_is_internal_node(entry))
			break;
		node = entry_to_node(entry);
		if (node->count != 1)
			break;
		child = node->slots[0];
		if (!child)
			break;
		/* An item in slot 0 of a node above the leaves: none here. */
		if (!radix_tree_is_internal_node(child) && node->shift)
			break;

		if (radix_tree_is_internal_node(child))
			entry_to_node(child)->parent = NULL;
		/*
		 * The child was reachable through node->slots[0] already, so
		 * it is initialised for any reader that finds it here.
		 */
		rcu_assign(&root->rnode, child);
		node->count = 0;
		if (!radix_tree_is_internal_node(child))
			rcu_assign(&node->slots[0], RADIX_TREE_RETRY);
		radix_tree_node_free(node);
	}
}

/*
 * delete_node(): free @node and its ancestors while they are empty; shrink
 * the tree when the walk stops at a root node that still has items.
 */
static void delete_node(struct iom_radix_tree_root *root,
			struct radix_tree_node *node)
{
	do {
		struct radix_tree_node *parent;

		if (node->count) {
			if (node_to_entry(node) == root->rnode)
				radix_tree_shrink(root);
			return;
		}
		parent = node->parent;
		if (parent) {
			rcu_assign(&parent->slots[node->offset], NULL);
			parent->count--;
		} else {
			root_tag_clear_all(root);
			rcu_assign(&root->rnode, NULL);
		}
		radix_tree_node_free(node);
		node = parent;
	} while (node);
}

/*
 * node_tag_clear(): clear @tag at @offset of @node, then in each ancestor
 * whose child has no tagged entry left, and at last in the root.
 */
static void node_tag_clear(struct iom_radix_tree_root *root,
			   struct radix_tree_node *node, unsigned int tag,
			   unsigned int offset)
{
	while (node) {
		if (!tag_get(node, tag, offset))
			return;
		tag_clear(node, tag, offset);
		if (any_tag_set(node, tag))
			return;
		offset = node->offset;
		node = node->parent;
	}
	if (root_tag_get(root, tag))
		root_tag_clear(root, tag);
}

void *iom_radix_tree_delete(struct iom_radix_tree_root *root,
			    unsigned long index)
{
	struct radix_tree_node *node;
	unsigned int tag, offset = 0;
	void **slot;
	void *item;

	if (!root)
		return NULL;
	item = __radix_tree_lookup(root, index, &node, &slot);
	if (!item)
		return NULL;
	if (node)
		offset = (unsigned int)(slot - node->slots);
	for (tag = 0; tag < RADIX_TREE_MAX_TAGS; tag++)
		node_tag_clear(root, node, tag, offset);
	rcu_assign(slot, NULL);
	if (node) {
		node->count--;
		delete_node(root, node);
	}
	radix_tree_update_height(root);
	return item;
}

bool iom_radix_tree_empty(const struct iom_radix_tree_root *root)
{
	return !root || rcu_deref(&root->rnode) == NULL;
}

/* ---- tags ------------------------------------------------------------------- */

int iom_radix_tree_tag_set(struct iom_radix_tree_root *root,
			   unsigned long index, unsigned int tag)
{
	unsigned long maxindex;
	void *entry;

	if (!root || tag >= RADIX_TREE_MAX_TAGS)
		return -EINVAL;
	if (!__radix_tree_lookup(root, index, NULL, NULL))
		return -ENOENT;
	/* Top down, as the kernel: a reader may meet a tag with nothing under it yet. */
	radix_tree_load_root(root, &entry, &maxindex);
	while (radix_tree_is_internal_node(entry)) {
		struct radix_tree_node *node = entry_to_node(entry);
		unsigned int offset = (index >> node->shift) & RADIX_TREE_MAP_MASK;

		if (!tag_get(node, tag, offset))
			tag_set(node, tag, offset);
		entry = node->slots[offset];
	}
	if (!root_tag_get(root, tag))
		root_tag_set(root, tag);
	return 0;
}

int iom_radix_tree_tag_clear(struct iom_radix_tree_root *root,
			     unsigned long index, unsigned int tag)
{
	struct radix_tree_node *node;
	void **slot;

	if (!root || tag >= RADIX_TREE_MAX_TAGS)
		return -EINVAL;
	if (!__radix_tree_lookup(root, index, &node, &slot))
		return -ENOENT;
	node_tag_clear(root, node, tag,
		       node ? (unsigned int)(slot - node->slots) : 0);
	return 0;
}

bool iom_radix_tree_tag_get(const struct iom_radix_tree_root *root,
			    unsigned long index, unsigned int tag)
{
	unsigned long maxindex;
	bool ret = false;
	void *entry;

	if (!root || tag >= RADIX_TREE_MAX_TAGS || !root_tag_get(root, tag))
		return false;
	radix_tree_load_root(root, &entry, &maxindex);
	if (!entry || index > maxindex)
		goto out;
	ret = true;
	while (radix_tree_is_internal_node(entry)) {
		struct radix_tree_node *node;
		unsigned int offset;

		/* A shrink moved the item, tags and all, to the root. */
		if (entry == RADIX_TREE_RETRY)
			break;
		node = entry_to_node(entry);
		offset = (index >> node->shift) & RADIX_TREE_MAP_MASK;
		if (!tag_get(node, tag, offset)) {
			ret = false;
			break;
		}
		entry = rcu_deref(&node->slots[offset]);
	}
out:
	tsan_rcu_reader_done();
	return ret;
}

bool iom_radix_tree_tagged(const struct iom_radix_tree_root *root,
			   unsigned int tag)
{
	return root && tag < RADIX_TREE_MAX_TAGS && root_tag_get(root, tag);
}

/* ---- gang lookups ------------------------------------------------------------ */

/*
 * The first non-empty slot of @node at or after @offset (with @tag set, if
 * @tag >= 0), its entry in *@entryp; RADIX_TREE_MAP_SIZE if none. A tag bit
 * over an empty slot is a delete in progress and is skipped.
 */
static unsigned int radix_tree_find_next(const struct radix_tree_node *node,
					 unsigned int offset, int tag,
					 void **entryp)
{
	unsigned long bits;

	if (tag < 0) {
		for (; offset < RADIX_TREE_MAP_SIZE; offset++) {
			void *entry = rcu_deref(&node->slots[offset]);

			if (entry) {
				*entryp = entry;
				return offset;
			}
		}
		return RADIX_TREE_MAP_SIZE;
	}
	bits = tags_load(node, (unsigned int)tag) & (~0UL << offset);
	while (bits) {
		void *entry;

		offset = (unsigned int)__builtin_ctzl(bits);
		entry = rcu_deref(&node->slots[offset]);
		if (entry) {
			*entryp = entry;
			return offset;
		}
		bits &= bits - 1;
	}
	return RADIX_TREE_MAP_SIZE;
}

/*
 * The kernel walks with radix_tree_next_chunk() and climbs with parent
 * pointers; readers here must not follow ->parent (a shrink rewrites it),
 * so the walk keeps its own path. @index always names the next index not
 * yet looked at; a RETRY restarts from the root at @index, keeping what was
 * found.
 */
static unsigned int radix_tree_gang(const struct iom_radix_tree_root *root,
				    void **results, unsigned long *indices,
				    unsigned long index, unsigned int max_items,
				    int tag)
{
	struct radix_tree_node *path[RADIX_TREE_MAX_PATH];
	struct radix_tree_node *node;
	unsigned int found = 0, depth;
	unsigned long maxindex;
	void *entry;

restart:
	if (tag >= 0 && !root_tag_get(root, (unsigned int)tag))
		return found;
	radix_tree_load_root(root, &entry, &maxindex);
	if (!entry || index > maxindex)
		return found;
	if (!radix_tree_is_internal_node(entry)) {
		/* A lone item at index 0, its tags in the root's. */
		results[found] = entry;
		if (indices)
			indices[found] = 0;
		return found + 1;
	}
	node = entry_to_node(entry);
	depth = 0;
	for (;;) {
		unsigned int shift = node->shift;
		unsigned int want = (index >> shift) & RADIX_TREE_MAP_MASK;
		unsigned int offset = radix_tree_find_next(node, want, tag, &entry);

		if (offset == RADIX_TREE_MAP_SIZE) {
			if (!depth)
				return found;
			/* Past this node: the start of its next sibling. */
			index = ((index >> (shift + RADIX_TREE_MAP_SHIFT)) + 1)
				<< (shift + RADIX_TREE_MAP_SHIFT);
			if (!index)
				return found;
			goto ascend;
		}
		if (offset != want)
			index = (index & ~shift_maxindex(shift)) |
				((unsigned long)offset << shift);
		if (entry == RADIX_TREE_RETRY)
			goto restart;
		if (radix_tree_is_internal_node(entry)) {
			IOM_BUG_ON(depth >= RADIX_TREE_MAX_PATH);
			path[depth++] = node;
			node = entry_to_node(entry);
			continue;
		}
		IOM_BUG_ON(shift != 0);
		results[found] = entry;
		if (indices)
			indices[found] = index;
		if (++found == max_items || ++index == 0)
			return found;
		if (index & RADIX_TREE_MAP_MASK)
			continue;
ascend:
		/* Climb while @index has also run off the end of the parent. */
		do {
			if (!depth)
				return found;
			node = path[--depth];
		} while (!((index >> node->shift) & RADIX_TREE_MAP_MASK));
	}
}

unsigned int iom_radix_tree_gang_lookup(const struct iom_radix_tree_root *root,
					void **results, unsigned long *indices,
					unsigned long first_index,
					unsigned int max_items)
{
	unsigned int n;

	if (!root || !results || !max_items)
		return 0;
	n = radix_tree_gang(root, results, indices, first_index, max_items, -1);
	tsan_rcu_reader_done();
	return n;
}

unsigned int iom_radix_tree_gang_lookup_tag(const struct iom_radix_tree_root *root,
					    void **results, unsigned long *indices,
					    unsigned long first_index,
					    unsigned int max_items,
					    unsigned int tag)
{
	unsigned int n;

	if (!root || !results || !max_items || tag >= RADIX_TREE_MAX_TAGS)
		return 0;
	n = radix_tree_gang(root, results, indices, first_index, max_items,
			    (int)tag);
	tsan_rcu_reader_done();
	return n;
}

void iom_radix_tree_init(struct iom_radix_tree_root *root,
			 struct iom_machine *m)
{
	if (!root)
		return;
	root->m = m;
	root->rnode = NULL;
	root->height = 0;
	root->tags = 0;
}
