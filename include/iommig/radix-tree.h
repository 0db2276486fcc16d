/* SPDX-License-Identifier: MIT */
/*
 * libiommig - an RCU radix tree (lib/radix-tree.c as of Linux 4.x, the
 * page cache's tree before the XArray).
 *
 * Conventions in this header:
 *   @root:  the tree.
 *   @index: a key (unsigned long; dense ranges of keys are cheapest).
 *   @item:  a stored pointer: non-NULL with its two low bits clear (the
 *           tree uses them internally, as the kernel's does).
 *   @tag:   0 .. IOM_RADIX_TREE_MAX_TAGS - 1.
 *
 * Locking: lookups (lookup, lookup_slot, gang lookups, tag_get, tagged)
 * need only iom_rcu_read_lock() — see iommig/rcu.h for the registration
 * rule. Every other call changes the tree and must be serialised by the
 * caller's own lock (the page cache uses the mapping's lock). Nodes removed
 * from the tree are freed after an RCU grace period, so a reader never
 * sees a freed node.
 */
#ifndef IOMMIG_RADIX_TREE_H
#define IOMMIG_RADIX_TREE_H

#include <stdbool.h>
#include <stdint.h>

#include <iommig/machine.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOM_RADIX_TREE_MAP_SHIFT	6	/* 64 slots a node */
#define IOM_RADIX_TREE_MAX_TAGS		3

/* The page cache's tags (include/linux/fs.h PAGECACHE_TAG_*). */
#define IOM_PAGECACHE_TAG_DIRTY		0
#define IOM_PAGECACHE_TAG_WRITEBACK	1
#define IOM_PAGECACHE_TAG_TOWRITE	2

/**
 * struct iom_radix_tree_root - a tree. Fields are private.
 * @m:      machine whose mem_ops allocate the nodes, or NULL for malloc.
 * @rnode:  the root node or the single item at index 0.
 * @height: levels below the root.
 * @tags:   root tag bits: set if any entry carries the tag.
 */
struct iom_radix_tree_root {
	struct iom_machine *m;
	void *rnode;
	unsigned int height;
	unsigned int tags;
};

/**
 * iom_radix_tree_init() - an empty tree whose nodes come from @m's
 * metadata hook (NULL: malloc). Nodes freed with call_rcu; a machine's
 * teardown waits for them (iom_rcu_barrier()).
 */
IOM_API void iom_radix_tree_init(struct iom_radix_tree_root *root,
				 struct iom_machine *m);

/**
 * iom_radix_tree_insert() - store @item at @index.
 * Context: caller's write lock.
 * Return: 0; -EEXIST if @index holds an item; -EINVAL for a NULL or
 * misaligned @item; -ENOMEM (the tree is unchanged).
 */
IOM_API int iom_radix_tree_insert(struct iom_radix_tree_root *root,
				  unsigned long index, void *item);
/**
 * iom_radix_tree_lookup() - the item at @index, or NULL.
 * Context: RCU reader, or the write lock.
 */
IOM_API void *iom_radix_tree_lookup(const struct iom_radix_tree_root *root,
				    unsigned long index);
/**
 * iom_radix_tree_lookup_slot() - the slot holding @index's item, for
 * iom_radix_tree_replace_slot(); NULL if empty.
 * Context: RCU reader (read the slot with iom_radix_tree_deref_slot()), or
 * the write lock.
 */
IOM_API void **iom_radix_tree_lookup_slot(const struct iom_radix_tree_root *root,
					  unsigned long index);
/**
 * iom_radix_tree_deref_slot() - read a slot under RCU. NULL means "look up
 * again" as well as "empty": a concurrent grow or shrink of the tree can
 * move the item (the kernel's radix_tree_deref_retry() case).
 */
IOM_API void *iom_radix_tree_deref_slot(void **slot);
/**
 * iom_radix_tree_replace_slot() - store @item in an occupied @slot; readers
 * see the old or the new item, never anything else. Tags are kept.
 * Context: write lock. Return: 0; -EINVAL for a NULL or misaligned @item,
 * or an empty @slot (use insert).
 */
IOM_API int iom_radix_tree_replace_slot(struct iom_radix_tree_root *root,
					void **slot, void *item);
/**
 * iom_radix_tree_delete() - remove the item at @index, clearing its tags and
 * freeing (after a grace period) the nodes left empty.
 * Context: write lock. Return: the item, or NULL if there was none.
 */
IOM_API void *iom_radix_tree_delete(struct iom_radix_tree_root *root,
				    unsigned long index);

/**
 * iom_radix_tree_tag_set() - tag the present item at @index.
 * Context: write lock. Return: 0, -ENOENT (no item), -EINVAL (bad tag).
 */
IOM_API int iom_radix_tree_tag_set(struct iom_radix_tree_root *root,
				   unsigned long index, unsigned int tag);
/** iom_radix_tree_tag_clear() - as tag_set. Return: 0, -ENOENT, -EINVAL. */
IOM_API int iom_radix_tree_tag_clear(struct iom_radix_tree_root *root,
				     unsigned long index, unsigned int tag);
/** iom_radix_tree_tag_get() - is @index tagged? Context: RCU reader. */
IOM_API bool iom_radix_tree_tag_get(const struct iom_radix_tree_root *root,
				    unsigned long index, unsigned int tag);
/** iom_radix_tree_tagged() - does any item carry @tag? */
IOM_API bool iom_radix_tree_tagged(const struct iom_radix_tree_root *root,
				   unsigned int tag);

/**
 * iom_radix_tree_gang_lookup() - up to @max_items items at indices >=
 * @first_index, in index order, into @results (and their indices into
 * @indices if not NULL). Context: RCU reader. Return: number found.
 */
IOM_API unsigned int iom_radix_tree_gang_lookup(const struct iom_radix_tree_root *root,
						void **results, unsigned long *indices,
						unsigned long first_index,
						unsigned int max_items);
/** iom_radix_tree_gang_lookup_tag() - as gang_lookup, only items with @tag. */
IOM_API unsigned int iom_radix_tree_gang_lookup_tag(const struct iom_radix_tree_root *root,
						    void **results, unsigned long *indices,
						    unsigned long first_index,
						    unsigned int max_items,
						    unsigned int tag);
/** iom_radix_tree_empty() - no items? */
IOM_API bool iom_radix_tree_empty(const struct iom_radix_tree_root *root);

#ifdef __cplusplus
}
#endif
#endif /* IOMMIG_RADIX_TREE_H */
