/*
 * rings.h — the rings ckring-bench compares, behind one interface:
 *
 *   floor       fetch-add on a shared tail + memcpy + release store of a seal
 *               word, in a MAP_SHARED POSIX shm mapping: the physical floor of
 *               any multi-producer shared-memory ring (no checksum, no
 *               lap-proof header, no refusal: a full ring makes it wait).
 *   ckring      a real segment through the public API only: producers
 *               ckr_client_attach + ckr_run_begin + ckr_run_message (an op
 *               includes the event encoding); the consumer is the raw
 *               consumer of ckring_store.h (read + validate, release).
 *   mutex_ring  a ring guarded by a PTHREAD_PROCESS_SHARED mutex in shm.
 *   pipe        write() to a pipe read by a daemon process.
 *
 * Every ring has capacity BENCH_RING_CAP (ckring's default lane capacity,
 * 1 MiB), so all of them lap the same way. Consumers run in their own
 * process and copy every record out to a private buffer, as a flusher
 * would; they publish their head every BENCH_RELEASE_EVERY bytes (inside
 * read()) and whenever they run dry (release()).
 *
 * Concurrency: push() may be called by the threads of one producing process
 * at once (each with its own thr handle); read()/release() by the one
 * consumer. Every hot block is laid out in layout.h.
 */
#ifndef BENCH_RINGS_H
#define BENCH_RINGS_H

#include <stdint.h>

#include "layout.h"

#define BENCH_RING_CAP (UINT64_C(1) << 20)
#define BENCH_MAX_PAYLOAD (UINT32_C(64) << 10)
#define BENCH_RELEASE_EVERY (UINT64_C(64) << 10)
#define BENCH_DATA_OFFSET 4096 /* ring data starts on its own page */

typedef struct bench_ring bench_ring;

typedef struct ring_ops {
	const char *name;
	/* Records a producer thread pushes besides its ops (ckring: the
	 * run's begin event); the consumer sees them too. */
	unsigned extra_per_thread;
	/* Bytes a record adds to its payload (8-aligned in the ring), when
	 * fixed; else thr_record_bytes tells. */
	unsigned header_bytes;
	/* Parent, before any fork. @return 0; -errno / CKR_E*. */
	int (*create)(bench_ring *r);
	/* Parent, once every producer and the consumer are set up (may be
	 * NULL; ckring unlinks the segment's name here). */
	void (*attached)(bench_ring *r);
	/* Once in each producing process. @return 0; -errno. */
	int (*proc_open)(bench_ring *r, void **proc);
	/* Once in each producing thread (idx: unique in the run); *thr is
	 * owned by that thread. */
	int (*thr_open)(void *proc, int idx, void **thr);
	/* @return 0; -EAGAIN full (nothing pushed); another -errno. */
	int (*push)(void *thr, const void *p, uint32_t len);
	/* Pushes that had to wait for room (floor only; may be NULL). */
	uint64_t (*thr_waits)(void *thr);
	/* Ring bytes per record, as the producer saw them (may be NULL). */
	uint32_t (*thr_record_bytes)(void *thr);
	void (*thr_close)(void *thr);
	void (*proc_close)(bench_ring *r, void *proc);
	/* In the consumer process. */
	int (*cons_open)(bench_ring *r, void **cons);
	/* Read one record (the pipe: what is there): records read (0 =
	 * nothing now), or -1 when the ring is closed and empty. Counts bad
	 * records in *corrupt. Publishes the head every RELEASE_EVERY bytes. */
	long (*read)(void *cons, uint64_t *corrupt);
	/* Publish the head now (the consumer ran dry). */
	void (*release)(void *cons);
	void (*cons_close)(void *cons);
	/* Parent, after every producer finished (may be NULL). */
	void (*end_of_input)(bench_ring *r);
	void (*destroy)(bench_ring *r);
} ring_ops;

struct bench_ring {
	const ring_ops *ops;
	uint32_t size;     /* payload bytes per push */
	uint64_t capacity; /* ring bytes */
	char name[64];     /* shm / segment name */
	void *impl;
};

extern const ring_ops bench_floor_ops;
extern const ring_ops bench_ckring_ops;
extern const ring_ops bench_mutex_ops;
extern const ring_ops bench_pipe_ops;

/* Create ckring segment NAME of `lanes` lanes of exactly `capacity` bytes
 * (checked). @return 0; -EINVAL the layout gives another capacity; the
 * errors of ckr_segment_create / ckr_observer_open. */
int bench_ck_segment_create(const char *name, uint32_t lanes, uint64_t capacity);

static inline uint64_t bench_align8(uint64_t v)
{
	return (v + 7) & ~UINT64_C(7);
}

/* Bytes of a floor or mutex-ring mapping: header page, data, and a slack of
 * one largest record so a record never wraps. */
static inline uint64_t bench_flat_ring_bytes(const bench_ring *r)
{
	return BENCH_DATA_OFFSET + r->capacity + bench_align8(8 + BENCH_MAX_PAYLOAD);
}

#endif /* BENCH_RINGS_H */
