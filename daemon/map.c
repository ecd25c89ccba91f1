/*
 * A hash table from strings to pointers: the rate-limit buckets per
 * channel, the names cache.  Chained, grows by doubling, keys are copied.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "slackd.h"

struct map_entry {
	struct map_entry *next;
	void *value;
	size_t hash;
	char key[];
};

struct map {
	struct map_entry **table;
	size_t nbuckets;
	size_t count;
};

static size_t
map_hash(const char *key)
{
	size_t h = 14695981039346656037ULL; /* FNV-1a */

	while (*key != '\0')
		h = (h ^ (unsigned char)*key++) * 1099511628211ULL;
	return h;
}

struct map *
map_new(void)
{
	struct map *m;

	m = xcalloc(1, sizeof *m);
	m->nbuckets = 64;
	m->table = xcalloc(m->nbuckets, sizeof *m->table);
	return m;
}

void
map_free(struct map *m, void (*free_value)(void *))
{
	struct map_entry *e, *next;
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nbuckets; i++) {
		for (e = m->table[i]; e != NULL; e = next) {
			next = e->next;
			if (free_value != NULL)
				free_value(e->value);
			free(e);
		}
	}
	free(m->table);
	free(m);
}

size_t
map_count(const struct map *m)
{
	return m->count;
}

static struct map_entry **
map_slot(const struct map *m, const char *key, size_t h)
{
	struct map_entry **ep;

	for (ep = &m->table[h & (m->nbuckets - 1)]; *ep != NULL;
	     ep = &(*ep)->next) {
		if ((*ep)->hash == h && strcmp((*ep)->key, key) == 0)
			break;
	}
	return ep;
}

void *
map_get(const struct map *m, const char *key)
{
	struct map_entry *e = *map_slot(m, key, map_hash(key));

	return e != NULL ? e->value : NULL;
}

static void
map_grow(struct map *m)
{
	struct map_entry **table, *e, *next;
	size_t i, n = m->nbuckets * 2;

	table = xcalloc(n, sizeof *table);
	for (i = 0; i < m->nbuckets; i++) {
		for (e = m->table[i]; e != NULL; e = next) {
			next = e->next;
			e->next = table[e->hash & (n - 1)];
			table[e->hash & (n - 1)] = e;
		}
	}
	free(m->table);
	m->table = table;
	m->nbuckets = n;
}

/* Set key to value; returns the value it replaces, or NULL. */
void *
map_put(struct map *m, const char *key, void *value)
{
	size_t h = map_hash(key), len;
	struct map_entry **ep = map_slot(m, key, h), *e;
	void *old;

	if ((e = *ep) != NULL) {
		old = e->value;
		e->value = value;
		return old;
	}
	if (m->count >= m->nbuckets) {
		map_grow(m);
		ep = map_slot(m, key, h);
	}
	len = strlen(key);
	e = xmalloc(sizeof *e + len + 1);
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->value = value;
	e->next = NULL;
	*ep = e;
	m->count++;
	return NULL;
}

/* Remove key; returns its value, or NULL. */
void *
map_del(struct map *m, const char *key)
{
	struct map_entry **ep = map_slot(m, key, map_hash(key)), *e;
	void *value;

	if ((e = *ep) == NULL)
		return NULL;
	*ep = e->next;
	value = e->value;
	free(e);
	m->count--;
	return value;
}

/*
 * Call fn(key, value, arg) for every entry; an entry for which it returns
 * non-zero is removed (fn frees the value if need be).
 */
void
map_foreach(struct map *m, int (*fn)(const char *, void *, void *), void *arg)
{
	struct map_entry **ep, *e;
	size_t i;

	for (i = 0; i < m->nbuckets; i++) {
		for (ep = &m->table[i]; (e = *ep) != NULL;) {
			if (fn(e->key, e->value, arg)) {
				*ep = e->next;
				free(e);
				m->count--;
			} else
				ep = &e->next;
		}
	}
}
