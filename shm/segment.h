/*
 * segment.h — the shared-memory segment: create, attach, validate, unlink.
 *
 * Layout (layout version 2; all offsets from the start of the mapping; every
 * region starts on its own 4 KiB page so hot words never share a cache line
 * with cold ones):
 *
 *     0               ckr_seg_header   identity, geometry, epoch (immutable)
 *     +256            ckr_seg_flusher  flusher slot, heartbeat, wake words
 *     +512            ckr_seg_counters counters the flusher writes
 *     4096            ckr_lane_ctl[lane_count]   256 bytes each (ring/lane.h)
 *     writers_offset  writer slots: lane_count x writers_per_lane x 32 bytes
 *     data_offset     lane data: lane_count x lane_capacity bytes
 *
 * Kernel locks (OFD locks, F_OFD_SETLK) on bytes of the object, never on
 * its contents: byte 0 is held by the flusher serving the segment, byte
 * 1 + i by the owner of lane i (ring/PROTOCOL.md, "Lane tenure"), byte
 * 1 + CKR_MAX_LANES by the shipper, if one runs. The kernel
 * drops them when the holder dies or execs; they work across pid namespaces.
 * They are taken through an open file description that is never mapped and
 * that a forked child does not keep (segment.c), so they end with the
 * process that took them.
 *
 * Creation is atomic: the object is made and its header written under a
 * temporary name (".ckr-..." in /dev/shm, never a valid segment name), then
 * linked to its name, so an attacher sees a complete segment or none. An
 * attacher still validates everything it derives from the header against
 * the object's real size, so a hostile or truncated object can never make us
 * map or touch out of bounds.
 *
 * Concurrency: create/attach/unlink may be called by any thread or process
 * at any time. A ckr_segment handle is immutable after attach and may be
 * shared by threads.
 */
#ifndef CKR_SEGMENT_H
#define CKR_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/proc.h"
#include "shm/shared.h"
#include "ckring.h"

#define CKR_SEG_MAGIC "CKRING\x01\x00"
#define CKR_SEG_LAYOUT_VERSION 2
#define CKR_CACHELINE 64
#define CKR_SEG_CTL_OFFSET 4096
#define CKR_LANE_CTL_SIZE 256
#define CKR_LANE_MIN_CAPACITY 4096
#define CKR_LANE_MAX_CAPACITY (UINT64_C(1) << 32)
#define CKR_MAX_LANES 1024
#define CKR_DEFAULT_LANES 16
#define CKR_DEFAULT_LANE_CAPACITY (UINT64_C(1) << 20)
#define CKR_MAX_RECORD_CAP (UINT32_C(16) << 20)
#define CKR_WRITER_SLOT_SIZE 32
#define CKR_DEFAULT_WRITERS 256
#define CKR_MAX_WRITERS 65536
#define CKR_LOCK_FLUSHER 0            /* lock byte of the flusher slot */
#define CKR_LOCK_LANE(i) (1 + (uint64_t)(i)) /* lock byte of lane i */
/* Lock byte of the shipper (ckring-ship), past every lane's: held while a
 * shipper publishes REPLICATED for the segment (persist/replica.c). */
#define CKR_LOCK_SHIPPER (1 + (uint64_t)CKR_MAX_LANES)
/* Lock bytes of process images, far past the others (a lock may lie beyond
 * the object's end): an image holds a shared lock on
 * CKR_LOCK_IMAGE(token, nonce) from its first read-write attach until it
 * execs or exits, never released while it lives (ckr_seg_hold_image). Two
 * images may share a byte: the probe then errs on "alive" only. */
#define CKR_LOCK_IMAGE_BASE (UINT64_C(1) << 40)
#define CKR_LOCK_IMAGE_SPAN (UINT64_C(1) << 32)
#define CKR_LOCK_IMAGE(token, nonce)                                           \
	(CKR_LOCK_IMAGE_BASE + (ckr_mix64((token) ^ ckr_mix64(nonce)) % CKR_LOCK_IMAGE_SPAN))

/* Immutable after creation. */
typedef struct ckr_seg_header {
	_Atomic uint64_t magic;   /* CKR_SEG_MAGIC as u64; published last */
	uint32_t layout_version;
	uint32_t header_size;     /* CKR_SEG_CTL_OFFSET */
	uint64_t segment_size;    /* bytes of the whole object */
	uint32_t lane_count;
	uint32_t lane_shift;      /* log2(lane_capacity) */
	uint64_t lane_capacity;
	uint64_t data_offset;
	uint32_t max_record;      /* largest record payload, bytes */
	uint32_t writers_per_lane;
	uint8_t epoch[16];        /* random; new for every created segment */
	uint64_t created_ns;      /* CLOCK_REALTIME */
	uint64_t creator_token;
	uint64_t writers_offset;
} ckr_seg_header;

/* The flusher's slot. */
typedef struct ckr_seg_flusher {
	/* Token of the flusher serving the segment; 0 = none. Informational:
	 * the flusher's liveness is its lock on byte CKR_LOCK_FLUSHER. Set
	 * (release) once the lock is held, cleared (release) before it is
	 * dropped. */
	_Atomic uint64_t owner;
	/* CLOCK_MONOTONIC ns of the flusher's last loop; relaxed: a gauge. */
	_Atomic uint64_t heartbeat_ns;
	/* Non-zero while the flusher sleeps (or is about to): 1 within its
	 * idle bound, 2 with no lane owned (ring/wake.h, CKR_ASLEEP_*). */
	_Atomic uint32_t asleep;
	/* Futex word waiters and attachers bump to wake a sleeping flusher. */
	_Atomic uint32_t wake_seq;
	/* Futex word the flusher bumps after publishing new committed/synced
	 * positions; ckr_wait() sleeps on it. */
	_Atomic uint32_t commit_seq;
	/* Number of processes sleeping in ckr_wait(); the flusher wakes only
	 * when it is non-zero. */
	_Atomic uint32_t waiters;
	_Atomic uint64_t batches;   /* store transactions committed */
	_Atomic uint64_t records;   /* records persisted */
} ckr_seg_flusher;

/* Counters the flusher writes (producers count in their lane). */
typedef struct ckr_seg_counters {
	_Atomic uint64_t reclaimed;  /* abandoned claims of dead owners skipped */
	_Atomic uint64_t corrupt;    /* records that failed validation */
	_Atomic uint64_t lanes_freed;/* dead owners' lanes returned to use */
} ckr_seg_counters;

typedef struct ckr_segment {
	uint8_t *base;
	size_t size;
	int fd;               /* O_CLOEXEC; kept for the kernel locks: on a
	                       * read-write handle an open file description of
	                       * its own, never mapped (see segment.c) */
	pid_t attach_pid;     /* the process that attached (fork detection) */
	bool read_only;
	char name[CKR_NAME_MAX + 1];
	/* Copies of the validated geometry: never re-read from shared memory. */
	uint32_t lane_count;
	uint32_t lane_shift;
	uint64_t lane_capacity;
	uint64_t writers_offset;
	uint32_t writers_per_lane;
	uint64_t data_offset;
	uint32_t max_record;
	uint8_t epoch[16];
} ckr_segment;

/* The derived geometry of a segment. */
typedef struct ckr_seg_geometry {
	uint32_t lanes;
	uint32_t writers_per_lane;
	uint64_t lane_capacity;
	uint64_t writers_offset;
	uint64_t data_offset;
	uint64_t total;
} ckr_seg_geometry;

/*
 * Attach to an existing segment, read-write or read-only (the inspector).
 * @return 0; -EINVAL bad name; -ENOENT no such segment; CKR_ENOTSEG not a
 *         ckring segment (or not yet initialised); CKR_EVERSION another
 *         layout version; CKR_ETRUNC smaller than its header says; -EACCES;
 *         -ENOMEM; -errno of shm_open/fstat/mmap.
 */
CKR_SHARED int ckr_segment_attach(const char *name, bool read_only, ckr_segment *out);

/* Unmap and close the descriptor (the segment object stays; the locks
 * taken through this handle are dropped). */
CKR_SHARED void ckr_segment_detach(ckr_segment *seg);

/* The derived geometry of a segment of opts (defaults applied).
 * @return 0; -EINVAL sizes out of range. */
int ckr_segment_geometry(const ckr_segment_opts *opts, ckr_seg_geometry *g);

/*
 * Take the kernel lock on byte `byte` of the segment through this handle
 * (F_OFD_SETLK, write lock, never waits).
 * @return 0; -EAGAIN another descriptor holds it; -errno (-EBADF: a
 *         read-only handle).
 */
CKR_SHARED int ckr_seg_lock(const ckr_segment *seg, uint64_t byte);

/* Drop a lock taken through this handle. This function can't fail. */
CKR_SHARED void ckr_seg_unlock(const ckr_segment *seg, uint64_t byte);

/*
 * Is byte `byte` locked through another open file description (F_OFD_GETLK)?
 * Works on read-only handles. @return 1 held; 0 free; -errno.
 */
CKR_SHARED int ckr_seg_lock_held(const ckr_segment *seg, uint64_t byte);

/*
 * Hold this process image's presence lock, `byte` (CKR_LOCK_IMAGE of its
 * identity), on the segment's object, for the rest of the image: through a
 * description of its own, kept open until exec or exit (closed in a forked
 * child, whose image is another), taken once per object (a second call for
 * the same object, by any handle, does nothing). Lets the flusher tell a
 * cleanly detached image that exec'd (its lock is gone, its pid and start
 * time are not) from one that lives (ring/PROTOCOL.md, E2).
 * @return 0; -EBADF a read-only handle; -EMFILE; -ENOMEM; -errno.
 */
int ckr_seg_hold_image(const ckr_segment *seg, uint64_t byte);

/* Is a live flusher serving the segment (its lock is held)? An error of the
 * probe counts as alive (never a false "dead"). */
bool ckr_seg_flusher_alive(const ckr_segment *seg);

static inline ckr_seg_header *ckr_seg_hdr(const ckr_segment *s)
{
	return (ckr_seg_header *)(void *)s->base;
}

static inline ckr_seg_flusher *ckr_seg_fl(const ckr_segment *s)
{
	return (ckr_seg_flusher *)(void *)(s->base + 256);
}

static inline ckr_seg_counters *ckr_seg_ctr(const ckr_segment *s)
{
	return (ckr_seg_counters *)(void *)(s->base + 512);
}

#endif /* CKR_SEGMENT_H */
