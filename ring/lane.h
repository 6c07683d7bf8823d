/*
 * lane.h — one lane: a lock-free MPSC record ring in the segment.
 *
 * The protocol, its invariants and the model that checks it are in
 * ring/PROTOCOL.md and ring/model/; the step names P1..P8 and C1..C7 used in
 * the comments of lane.c are that document's.
 *
 *   ckr_lane_ctl (256 bytes, in the control table)
 *   +0   line 0  owner, owner_nonce, owner_pidns (attach / detach / reclaim)
 *   +64  line 1  tail, head_cache, refused_full   (producers)
 *   +128 line 2  head, synced, drained       (the consumer)
 *   +192 line 3  replicated                  (the shipper, ckring-ship)
 *
 * No counter is touched on the push fast path: "pushed" is derived as
 * drained (records the flusher consumed) + the records still in the lane.
 *
 *   data: capacity C bytes; a record at position p starts at p & (C-1):
 *   +0  seal = (lap(p) ^ salt) << 24 | (len / 8) << 2 | state
 *   +8  u32 crc32c (seal, payload_len, payload) | u32 payload_len
 *   +16 payload, zero..7 bytes of alignment
 *
 * SYNCHRONIZATION
 * | call                     | who                        | may run with            |
 * |--------------------------|----------------------------|-------------------------|
 * | reserve/commit/push      | the owner process's threads| each other, the consumer|
 * | slot_take/slot_drop      | the owner process          | the consumer            |
 * | read/release/free        | the flusher (one thread)   | producers               |
 * | slot_reject              | the flusher                | producers               |
 * | lane_acquire/detach      | attaching process          | everything              |
 * A lane is written by threads of ONE process (its owner), which holds the
 * lane's kernel lock (byte 1 + index of the segment) for its tenure; that is
 * what makes a dead owner's open claims safe to skip.
 *
 *   writer slots (32 bytes each, writers_per_lane per lane), ring/PROTOCOL.md
 *   "Writer slots": writer (owner process) | rej_writer, rej_pos, rej_reason
 *   (the flusher).
 */
#ifndef CKR_LANE_H
#define CKR_LANE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "shm/shared.h"
#include "shm/proc.h"
#include "shm/segment.h"

#define CKR_REC_HEADER 16

/* Seal states. */
enum { CKR_SEAL_NONE = 0, CKR_SEAL_BUSY = 1, CKR_SEAL_DATA = 2, CKR_SEAL_PAD = 3 };

/* Owner word: 0 = free; a process token (shm/proc.h); a token with
 * CKR_OWNER_DETACHED set = the owner left cleanly and nobody writes. */
#define CKR_OWNER_DETACHED (UINT64_C(1) << 63)

typedef struct ckr_lane_ctl {
	/* line 0 */
	_Atomic uint64_t owner;
	_Atomic uint64_t owner_since_ns; /* CLOCK_REALTIME of the attach */
	_Atomic uint64_t owner_nonce;    /* the owner's identity (with owner) */
	_Atomic uint64_t owner_pidns;    /* the owner's pid namespace, 0 unknown */
	_Atomic uint64_t tenure_gen;     /* bumped by every attach (A3): tells
	                                  * two tenures of one owner word apart */
	_Atomic uint64_t owner_presence; /* the byte of the owner image's
	                                  * presence lock (A3), 0 = it holds
	                                  * none (padding, so 0, before it) */
	uint8_t pad0[16];
	/* line 1: producers */
	_Atomic uint64_t tail;
	_Atomic uint64_t head_cache;
	_Atomic uint64_t refused_full;
	uint8_t pad1[40];
	/* line 2: the consumer */
	_Atomic uint64_t head;
	_Atomic uint64_t synced;
	_Atomic uint64_t drained;     /* records consumed (persisted/skipped) */
	uint8_t pad2[40];
	/* line 3: the shipper (persist/replica.c). Was padding in every
	 * layout-2 segment, so zero there (ftruncate): a segment made before
	 * shipping existed reads "nothing replicated", and code that predates
	 * it never reads the word; no layout bump is needed. */
	_Atomic uint64_t replicated;  /* everything below is in PostgreSQL */
	uint8_t pad3[56];
} ckr_lane_ctl;

_Static_assert(sizeof(ckr_lane_ctl) == CKR_LANE_CTL_SIZE, "lane ctl size");

/* A writer slot: which writer (run handle) of the owner process uses it, and
 * the first rejection the flusher reported for that writer. */
typedef struct ckr_writer_slot {
	_Atomic uint64_t writer;     /* owner process; 0 = free */
	_Atomic uint64_t rej_writer; /* flusher: whose rejection is below */
	_Atomic uint64_t rej_pos;    /* flusher: end of the first rejected event */
	_Atomic uint32_t rej_reason; /* flusher: ckr_reject_reason */
	uint32_t pad;
} ckr_writer_slot;

_Static_assert(sizeof(ckr_writer_slot) == CKR_WRITER_SLOT_SIZE, "slot size");

/* Why the flusher rejected an event (ring/PROTOCOL.md, acceptance rule). */
typedef enum ckr_reject_reason {
	CKR_REJECT_NONE = 0,
	CKR_REJECT_DUP_BEGIN,  /* begin of a run that already has a record */
	CKR_REJECT_FOREIGN,    /* the run has another writer */
	CKR_REJECT_STALE,      /* another incarnation (fenced by a claim) */
	CKR_REJECT_ORPHAN,     /* no such run */
	CKR_REJECT_AFTER_END,  /* the run had finished */
	CKR_REJECT_DUP_SEQ,    /* that sequence number is stored already */
	CKR_REJECT_BAD_KIND,   /* a message for a multi-phase run or the reverse */
	CKR_REJECT_BAD_BEGIN,  /* a begin that is not seq 0, incarnation 1 */
	CKR_REJECT_COUNT
} ckr_reject_reason;
/* A process-local view of one lane; the geometry is copied from the
 * validated segment handle, never re-read from shared memory. */
typedef struct ckr_lane {
	ckr_lane_ctl *ctl;
	uint8_t *data;
	uint64_t capacity;
	uint64_t mask;
	uint32_t shift;
	uint32_t index;
	uint32_t max_record;
	uint64_t salt;        /* lap tag salt, derived from the epoch */
	ckr_writer_slot *slots;
	uint32_t n_slots;
} ckr_lane;

/* The view of lane `index` (< seg->lane_count). This function can't fail. */
CKR_SHARED void ckr_lane_view(const ckr_segment *seg, uint32_t index, ckr_lane *out);

/* ---- ownership ---- */

/*
 * Claim a free lane for the process image `id` through the segment handle
 * seg (read-write), starting the search at `hint` (A1..A4): takes the lane's
 * kernel lock first, then the owner word, and clears the lane's writer
 * slots. The lock stays held through seg's descriptor until detach.
 * @return 0 and *index; -EUSERS no free lane; -errno of the lock.
 */
int ckr_lane_acquire(const ckr_segment *seg, const ckr_identity *id,
		     uint32_t hint, uint32_t *index);

/* ckr_lane_acquire() by an image that holds its presence lock on byte
 * `presence` (ckr_seg_hold_image), recorded in the tenure (A3). */
int ckr_lane_acquire_present(const ckr_segment *seg, const ckr_identity *id,
			     uint64_t presence, uint32_t hint, uint32_t *index);

/* The presence byte the tenure `owner` (loaded by the caller) recorded, if
 * it is the one its identity names; 0 if none (an image of a library before
 * presence locks, or a scribbled word). */
CKR_SHARED uint64_t ckr_lane_owner_presence(const ckr_lane *l, const ckr_identity *id);

/* The owner leaves (D1): marks the lane DETACHED (the flusher frees it once
 * it has drained it), then drops the lane's lock. No thread of the owner may
 * be pushing. */
void ckr_lane_detach(const ckr_segment *seg, ckr_lane *l, uint64_t token);

/* Undo an acquire before anything was pushed (an attach that failed
 * later): the lane is free again at once, for anyone. Can't fail. */
void ckr_lane_unacquire(const ckr_segment *seg, ckr_lane *l, uint64_t token);

/* A lane's tenure as a consumer sees it: the owner word and the tenure
 * generation loaded after it. The same owner word can name two tenures (an
 * undone attach, A5, then the same process attaching again); the
 * generation tells them apart. */
typedef struct ckr_tenure {
	uint64_t owner;
	uint64_t gen;
} ckr_tenure;

/* Load the lane's tenure (owner word, then generation). Can't fail. */
CKR_SHARED ckr_tenure ckr_lane_tenure(const ckr_lane *l);

static inline bool ckr_tenure_eq(ckr_tenure a, ckr_tenure b)
{
	return a.owner == b.owner && a.gen == b.gen;
}

/*
 * G: is tenure t gone — DETACHED, or a plain token whose lane lock was
 * found free between two loads of the tenure that agree (the owner died or
 * exec'd: the lock is taken before A4 and dropped only after D1 and A5, so
 * a free lock between two equal loads cannot be a live owner's; a detach or
 * an undo in between changes what the second load sees). A free lane (0)
 * is not gone: it may be attached at any moment. A tenure that changed
 * during the probe is not gone (the next pass sees the new one). One
 * F_OFD_GETLK system call for an owned lane: never on the push path. A
 * failed probe counts as not gone. (ring/model/claim.pml, finding F2.)
 */
CKR_SHARED bool ckr_lane_tenure_gone(const ckr_segment *seg, const ckr_lane *l,
			  ckr_tenure t);

/* The owner identity recorded for the lane's tenure (token from `owner`).
 * Meaningful while the owner word is non-zero. Can't fail. */
CKR_SHARED void ckr_lane_owner_identity(const ckr_lane *l, uint64_t owner, ckr_identity *out);

/* ---- writer slots ---- */

/* Give slot i to writer (owner process only; the slot must be free or
 * drained by the caller's own bookkeeping). Can't fail. */
void ckr_lane_slot_take(ckr_lane *l, uint32_t i, uint64_t writer);

/* Free slot i (owner process only). Can't fail. */
void ckr_lane_slot_drop(ckr_lane *l, uint32_t i);

/* Which writer holds slot i now (0 = free)? Can't fail. */
uint64_t ckr_lane_slot_writer(const ckr_lane *l, uint32_t i);

/*
 * The flusher reports that writer's event ending at pos was rejected (W2):
 * recorded only if slot i still belongs to writer and holds no earlier
 * rejection of it. Must happen before head passes pos. Can't fail.
 */
CKR_SHARED void ckr_lane_slot_reject(ckr_lane *l, uint32_t i, uint64_t writer,
			  uint64_t pos, ckr_reject_reason why);

/*
 * W3: was writer's event ending at pos rejected? Valid once head >= pos
 * (acquire). *why gets the reason. @return true rejected.
 */
bool ckr_lane_slot_rejected(const ckr_lane *l, uint32_t i, uint64_t writer,
			    uint64_t pos, ckr_reject_reason *why);

/* ---- producers ---- */

/* An open claim: write len bytes at payload, then ckr_lane_commit(). */
typedef struct ckr_reservation {
	ckr_lane *lane;
	uint64_t pos;
	uint32_t len;
	uint8_t *payload;
} ckr_reservation;

/*
 * Claim room for a record of len payload bytes (P1..P6). Between reserve and
 * commit the caller must not fail or block: commit always follows.
 * @return 0; -EAGAIN the lane is full (counted in refused_full);
 *         -E2BIG payload above the lane's max_record; CKR_ECORRUPT the
 *         lane's tail or head was scribbled (unaligned or inconsistent).
 * Lock-free, never blocks, no system call. Any thread of the owner.
 */
int ckr_lane_reserve(ckr_lane *l, uint32_t len, ckr_reservation *res);

/* Checksum the written payload and seal the record (P7..P8).
 * @return the position just past the record (the ticket). Can't fail. */
uint64_t ckr_lane_commit(const ckr_reservation *res);

/*
 * Push one record made of iov[0..n) (total payload bytes `len`).
 * @param[out] end  the position just past the record (the ticket)
 * @return 0; -EAGAIN the lane is full (counted in refused_full);
 *         -E2BIG payload above the lane's max_record.
 * Lock-free, never blocks, no system call. Any thread of the owner.
 */
int ckr_lane_pushv(ckr_lane *l, const struct iovec *iov, int n, uint32_t len,
		   uint64_t *end);

/* ckr_lane_pushv() of one buffer. */
int ckr_lane_push(ckr_lane *l, const void *payload, uint32_t len, uint64_t *end);

#ifdef CKR_TEST_HOOKS
/* Test hook: called after the claim (P4) and before the seals (P5..P8),
 * so a test can stop or kill a producer exactly between claim and commit. */
extern void (*ckr_lane_test_after_claim)(ckr_lane *l, uint64_t pos);
#endif

/* ---- the consumer ---- */

typedef enum ckr_read_status {
	CKR_READ_RECORD,    /* a good record: payload copied to the buffer */
	CKR_READ_CORRUPT,   /* a sealed record failed validation (copied) */
	CKR_READ_ABANDONED, /* a dead owner's open claim, skipped */
	CKR_READ_EMPTY,     /* nothing at this position yet */
	CKR_READ_WAIT,      /* a live producer is writing here: stop */
} ckr_read_status;

typedef struct ckr_lane_record {
	ckr_read_status status;
	uint64_t pos;         /* where the record starts (after any pad) */
	uint64_t next;        /* where the next read starts */
	uint32_t payload_len; /* RECORD: payload bytes in buf */
	uint32_t raw_len;     /* CORRUPT: raw bytes copied to buf */
	const char *reason;   /* CORRUPT: why */
} ckr_lane_record;

/*
 * Read the record at `pos` (C1..C5). Pads are stepped over. The record is
 * copied to buf (cap >= max_record + CKR_REC_HEADER) before it is checked,
 * so later writes to the segment cannot change what was validated.
 * writers_gone: the owner is dead or detached (then open claims are
 * abandoned: C4). Never writes to the lane.
 * @return 0 with *rec filled. This function has no failure: bad bytes are
 *         reported as CKR_READ_CORRUPT.
 */
int ckr_lane_read(const ckr_lane *l, uint64_t pos, bool writers_gone,
		  void *buf, size_t cap, ckr_lane_record *rec);

/*
 * ckr_lane_read() for a consumer that keeps reading the same lane: *tail_hint
 * is the last tail it saw (0 at first; reset it to 0 when the lane is freed
 * or its tail repaired). The producers' tail line is then loaded only when
 * a record lies beyond the hint, or to judge an open claim of a gone
 * owner; for a live owner an open claim or the end is reported as WAIT or
 * EMPTY by the hint (both mean "stop"). Same guarantees otherwise.
 */
CKR_SHARED int ckr_lane_read_hinted(const ckr_lane *l, uint64_t pos, bool writers_gone,
				    uint64_t *tail_hint, void *buf, size_t cap,
				    ckr_lane_record *rec);

/*
 * C6: publish that everything below pos is persisted (head = pos, release),
 * and that everything below synced_pos is fsync'd. Only the flusher, only
 * after its store commit. This function can't fail.
 */
CKR_SHARED void ckr_lane_release(ckr_lane *l, uint64_t pos, uint64_t synced_pos);

/* C6 alone: head = pos (release), synced untouched. Flusher only, after its
 * commit. Can't fail. */
CKR_SHARED void ckr_lane_publish_head(ckr_lane *l, uint64_t pos);

/* Publish that everything below pos is fsync'd (the group-commit syncer of
 * the flusher, which owns the word while it runs). Can't fail. */
CKR_SHARED void ckr_lane_publish_synced(ckr_lane *l, uint64_t pos);

/* Copy the raw bytes [pos, end) of the lane (wrapping at the lane end), at
 * most cap of them, to buf; for quarantining what C4 skipped. Only when no
 * writer exists. @return the bytes copied. */
CKR_SHARED size_t ckr_lane_copy(const ckr_lane *l, uint64_t pos, uint64_t end, void *buf,
		     size_t cap);

/* Before C7: the lane was drained to pos with no writer left; make its tail
 * pos again if a scribble moved it (a no-op otherwise). Flusher only. */
CKR_SHARED void ckr_lane_repair_tail(ckr_lane *l, uint64_t pos);

/* C7: return the lane of a dead or detached owner to use, if the owner word
 * still holds `owner`. @return true if it was freed. */
CKR_SHARED bool ckr_lane_free(ckr_lane *l, uint64_t owner);

/* Is there a sealed record (or pad) at pos, i.e. would ckr_lane_read find
 * something there now? For the flusher's idle test. Can't fail. */
CKR_SHARED bool ckr_lane_ready(const ckr_lane *l, uint64_t pos);

/* Read-only helpers for the flusher and the inspector (relaxed snapshots). */
CKR_SHARED uint64_t ckr_lane_tail(const ckr_lane *l);
CKR_SHARED uint64_t ckr_lane_head(const ckr_lane *l);
CKR_SHARED uint64_t ckr_lane_owner(const ckr_lane *l);

#endif /* CKR_LANE_H */
