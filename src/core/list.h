/* SPDX-License-Identifier: MIT */
/* Doubly linked lists, as include/linux/list.h (the subset libiommig uses). */
#ifndef IOM_CORE_LIST_H
#define IOM_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include <iommig/mm.h>

#define list_head iom_list_head

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(head, type, member) \
	list_entry((head)->next, type, member)
#define list_last_entry(head, type, member) \
	list_entry((head)->prev, type, member)

/*
 * ->next is written with WRITE_ONCE semantics: in struct iom_page it shares
 * its word with compound_head, which other threads may read locklessly.
 */
#define LIST_WRITE_NEXT(e, v) __atomic_store_n(&(e)->next, (v), __ATOMIC_RELAXED)

static inline void INIT_LIST_HEAD(struct list_head *h)
{
	LIST_WRITE_NEXT(h, h);
	h->prev = h;
}

static inline bool list_empty(const struct list_head *h)
{
	return h->next == h;
}

static inline void __list_add(struct list_head *n, struct list_head *prev,
			      struct list_head *next)
{
	next->prev = n;
	LIST_WRITE_NEXT(n, next);
	n->prev = prev;
	LIST_WRITE_NEXT(prev, n);
}

static inline void list_add(struct list_head *n, struct list_head *head)
{
	__list_add(n, head, head->next);
}

static inline void list_add_tail(struct list_head *n, struct list_head *head)
{
	__list_add(n, head->prev, head);
}

static inline void __list_del(struct list_head *e)
{
	e->next->prev = e->prev;
	LIST_WRITE_NEXT(e->prev, e->next);
}

static inline void list_del(struct list_head *e)
{
	__list_del(e);
	LIST_WRITE_NEXT(e, (struct list_head *)NULL);
	e->prev = NULL;
}

static inline void list_move(struct list_head *e, struct list_head *head)
{
	__list_del(e);
	list_add(e, head);
}

static inline void list_move_tail(struct list_head *e, struct list_head *head)
{
	__list_del(e);
	list_add_tail(e, head);
}

/* Move all of @list to the front of @head; @list is left empty. */
static inline void list_splice_init(struct list_head *list,
				    struct list_head *head)
{
	if (list_empty(list))
		return;
	struct list_head *first = list->next, *last = list->prev;

	LIST_WRITE_NEXT(last, head->next);
	head->next->prev = last;
	LIST_WRITE_NEXT(head, first);
	first->prev = head;
	INIT_LIST_HEAD(list);
}

/* Move all of @list to the back of @head; @list is left empty. */
static inline void list_splice_tail_init(struct list_head *list,
					 struct list_head *head)
{
	if (list_empty(list))
		return;
	struct list_head *first = list->next, *last = list->prev;

	first->prev = head->prev;
	LIST_WRITE_NEXT(head->prev, first);
	LIST_WRITE_NEXT(last, head);
	head->prev = last;
	INIT_LIST_HEAD(list);
}

/*
 * Move the entries of @head before @entry (not included) to the empty
 * @list; @entry == @head moves them all.
 */
static inline void list_cut_before(struct list_head *list,
				   struct list_head *head,
				   struct list_head *entry)
{
	if (head->next == entry) {
		INIT_LIST_HEAD(list);
		return;
	}
	LIST_WRITE_NEXT(list, head->next);
	list->next->prev = list;
	list->prev = entry->prev;
	LIST_WRITE_NEXT(list->prev, list);
	LIST_WRITE_NEXT(head, entry);
	entry->prev = head;
}

#define list_for_each(pos, head) \
	for (pos = (head)->next; pos != (head); pos = pos->next)

#endif /* IOM_CORE_LIST_H */
