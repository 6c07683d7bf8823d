/*
 * lanewatch.h — the age of the oldest unflushed event of each lane, for the
 * metrics exporter (tools/metrics_http.c) and `ckring-inspect segment
 * --watch`, from observer snapshots (ckring.h) alone. Header-only, static.
 *
 * The segment keeps no push times (a push makes no system call, so it
 * cannot read a clock), so the age is what an observer saw: a sampler
 * records, each time it sees a lane's tail grow, a mark (tail, time). The
 * oldest unflushed byte is at head; the first mark whose tail is above head
 * is the first sample that saw that byte. So
 *
 *     age = now - time of the first mark with tail > head   (0 when empty)
 *
 * is the time since the sampler first saw the oldest event the flusher has
 * not committed. It is low by at most one sampling interval (the byte was
 * pushed after the sample before). Marks at or below head are dropped; when
 * LW_MARKS are held (a lane behind for LW_MARKS samples of growth), the
 * newest mark takes the new tail instead of a new mark, which can only make
 * the age of those later bytes read high, never low, once they are oldest.
 * A snapshot whose tail went back (a recreated segment) starts afresh.
 *
 * Concurrency: a lanewatch belongs to one thread (or is used under a lock).
 */
#ifndef CKR_TOOLS_LANEWATCH_H
#define CKR_TOOLS_LANEWATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckring.h"

#define LW_MARKS 64

typedef struct lw_mark {
	uint64_t tail;
	uint64_t t_ns;   /* CLOCK_MONOTONIC of the sample that saw it */
} lw_mark;

typedef struct lw_lane {
	lw_mark m[LW_MARKS]; /* a ring: first, n */
	unsigned first, n;
	uint64_t head, tail; /* of the last sample */
} lw_lane;

typedef struct lanewatch {
	uint32_t n_lanes;
	lw_lane *lanes;
} lanewatch;

/* @return 0; -1 out of memory. */
static inline int lw_init(lanewatch *w, uint32_t n_lanes)
{
	w->n_lanes = n_lanes;
	w->lanes = calloc(n_lanes ? n_lanes : 1, sizeof *w->lanes);
	return w->lanes ? 0 : -1;
}

static inline void lw_free(lanewatch *w)
{
	free(w->lanes);
	w->lanes = NULL;
}

static inline lw_mark *lw_at(lw_lane *l, unsigned i)
{
	return &l->m[(l->first + i) % LW_MARKS];
}

/* One lane's sample: head, tail at now_ns. */
static inline void lw_lane_observe(lw_lane *l, uint64_t head, uint64_t tail,
				   uint64_t now_ns)
{
	if (tail < l->tail || head > tail)
		l->n = 0; /* positions went back or make no sense: start afresh */
	while (l->n && lw_at(l, 0)->tail <= head) {
		l->first = (l->first + 1) % LW_MARKS;
		l->n--;
	}
	bool grew = tail > head && (l->n == 0 || tail > lw_at(l, l->n - 1)->tail);
	if (grew && l->n == LW_MARKS) {
		lw_at(l, l->n - 1)->tail = tail; /* full: widen the newest mark */
	} else if (grew) {
		*lw_at(l, l->n) = (lw_mark){ tail, now_ns };
		l->n++;
	}
	l->head = head;
	l->tail = tail;
}

/* Feed a snapshot of n lanes (ckr_observer_snapshot) taken at now_ns. */
static inline void lw_observe(lanewatch *w, const ckr_lane_info *li, uint32_t n,
			      uint64_t now_ns)
{
	for (uint32_t i = 0; i < n && i < w->n_lanes; i++) {
		if (li[i].state == CKR_LANE_INCONSISTENT)
			continue;
		lw_lane_observe(&w->lanes[i], li[i].head, li[i].tail, now_ns);
	}
}

/* The age in seconds of lane i's oldest unflushed event at now_ns. */
static inline double lw_age_s(const lanewatch *w, uint32_t i, uint64_t now_ns)
{
	if (i >= w->n_lanes)
		return 0;
	const lw_lane *l = &w->lanes[i];
	if (l->tail <= l->head || l->n == 0)
		return 0;
	uint64_t t = l->m[l->first].t_ns;
	return now_ns > t ? (double)(now_ns - t) / 1e9 : 0;
}

#endif /* CKR_TOOLS_LANEWATCH_H */
