/*
 * lane.c — the lane protocol of ring/PROTOCOL.md: producers claim by CAS on
 * the tail, seal their record with a release store; the single consumer reads
 * by acquiring seals and publishes its head only after the store commit.
 *
 * Invariants (enforced where marked):
 *  - tail - head <= capacity, so a claim never overlaps an unpersisted record
 *    (P3);
 *  - every byte below tail is claimed; a claim is [old tail, new tail) of one
 *    successful CAS (P4);
 *  - a seal is valid only for its own position (lap + bounds), so stale bytes
 *    of an earlier lap are never mistaken for a record and the consumer never
 *    has to zero what it consumed (seal_valid);
 *  - the consumer skips an open claim only when no writer can exist (C4).
 */
#include "ring/lane.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "ring/crc32c.h"
#include "shm/clock.h"

#ifdef CKR_TEST_HOOKS
void (*ckr_lane_test_after_claim)(ckr_lane *l, uint64_t pos);
#endif

#define LAP_BITS 40
#define LAP_MASK ((UINT64_C(1) << LAP_BITS) - 1)
#define LEN_BITS 22

static inline uint64_t align8(uint64_t v)
{
	return (v + 7) & ~UINT64_C(7);
}

/* The lap tag of a position: its lap, salted per lane and segment, so that
 * small integers in stale payload bytes do not look like seals of the first
 * laps. */
static inline uint64_t lap_tag(const ckr_lane *l, uint64_t pos)
{
	return ((pos >> l->shift) ^ l->salt) & LAP_MASK;
}

static inline uint64_t seal_make(const ckr_lane *l, uint64_t pos, uint64_t len,
				 unsigned state)
{
	return lap_tag(l, pos) << 24 | (len >> 3) << 2 | state;
}

static inline unsigned seal_state(uint64_t w)
{
	return (unsigned)(w & 3);
}

static inline uint64_t seal_len(uint64_t w)
{
	return ((w >> 2) & ((UINT64_C(1) << LEN_BITS) - 1)) << 3;
}

static inline _Atomic uint64_t *seal_at(const ckr_lane *l, uint64_t pos)
{
	return (_Atomic uint64_t *)(void *)(l->data + (pos & l->mask));
}

/* The largest record (header + payload, aligned) a lane accepts. */
static inline uint64_t max_total(const ckr_lane *l)
{
	return align8(CKR_REC_HEADER + (uint64_t)l->max_record);
}

/*
 * Is w a seal written for position pos? Checks the lap and that the record
 * stays inside the lane; a pad must end exactly at the lane end. Length
 * against payload_len is checked by the reader once it has its copy.
 */
static bool seal_valid(const ckr_lane *l, uint64_t w, uint64_t pos)
{
	unsigned st = seal_state(w);
	uint64_t len = seal_len(w), room = l->capacity - (pos & l->mask);
	if (st == CKR_SEAL_NONE || (w >> 24) != lap_tag(l, pos))
		return false;
	if (len < 8 || len > room)
		return false;
	if (st == CKR_SEAL_PAD)
		return len == room;
	return len >= CKR_REC_HEADER && len <= max_total(l);
}

void ckr_lane_view(const ckr_segment *seg, uint32_t index, ckr_lane *out)
{
	uint64_t e0, e1;
	memcpy(&e0, seg->epoch, 8);
	memcpy(&e1, seg->epoch + 8, 8);
	out->salt = ckr_mix64(e0 ^ ckr_mix64(e1 + index)) & LAP_MASK;
	out->ctl = (ckr_lane_ctl *)(void *)(seg->base + CKR_SEG_CTL_OFFSET +
					    (uint64_t)index * CKR_LANE_CTL_SIZE);
	out->data = seg->base + seg->data_offset + (uint64_t)index * seg->lane_capacity;
	out->capacity = seg->lane_capacity;
	out->mask = seg->lane_capacity - 1;
	out->shift = seg->lane_shift;
	out->index = index;
	out->max_record = seg->max_record;
	out->n_slots = seg->writers_per_lane;
	out->slots = (ckr_writer_slot *)(void *)(seg->base + seg->writers_offset +
						 (uint64_t)index * seg->writers_per_lane *
							 CKR_WRITER_SLOT_SIZE);
}

/* ------------------------------------------------------------------ */
/* ownership                                                           */
/* ------------------------------------------------------------------ */

/* A2..A4 on lane l, whose lock we hold: the owner word must be free. */
static bool take_owner_word(ckr_lane *l, const ckr_identity *id, uint64_t presence)
{
	uint64_t expected = 0;
	/* relaxed pre-check: the CAS below decides. A DETACHED or dead
	 * tenure that the flusher has not freed yet is not free. */
	if (atomic_load_explicit(&l->ctl->owner, memory_order_relaxed) != 0)
		return false;
	/* A3, relaxed: nobody reads these while owner is 0 (the flusher reads
	 * them only after an acquire load of a non-zero owner, which the
	 * release CAS below publishes them through), and no other attacher
	 * can be here: we hold the lane's lock. */
	atomic_store_explicit(&l->ctl->owner_nonce, id->nonce, memory_order_relaxed);
	atomic_store_explicit(&l->ctl->owner_pidns, id->pidns, memory_order_relaxed);
	atomic_store_explicit(&l->ctl->owner_presence, presence, memory_order_relaxed);
	atomic_store_explicit(&l->ctl->owner_since_ns, ckr_now_ns(CLOCK_REALTIME),
			      memory_order_relaxed);
	/* A3, relaxed as well (published by A4's release): a new tenure, even
	 * under the same owner word as an undone one (A5). We hold the lock,
	 * so no other attacher bumps it; the flusher only loads it. */
	uint64_t gen = atomic_load_explicit(&l->ctl->tenure_gen, memory_order_relaxed);
	atomic_store_explicit(&l->ctl->tenure_gen, gen + 1, memory_order_relaxed);
	for (uint32_t i = 0; i < l->n_slots; i++)
		ckr_lane_slot_drop(l, i);
	/* A4, acq_rel: the acquire pairs with the consumer's release in
	 * ckr_lane_free() (C7), so we see the lane's final tail and head; the
	 * release publishes A3 to the flusher's acquire load of owner. */
	return atomic_compare_exchange_strong_explicit(&l->ctl->owner, &expected,
						       id->token, memory_order_acq_rel,
						       memory_order_relaxed);
}

int ckr_lane_acquire(const ckr_segment *seg, const ckr_identity *id,
		     uint32_t hint, uint32_t *index)
{
	return ckr_lane_acquire_present(seg, id, 0, hint, index);
}

int ckr_lane_acquire_present(const ckr_segment *seg, const ckr_identity *id,
			     uint64_t presence, uint32_t hint, uint32_t *index)
{
	for (uint32_t k = 0; k < seg->lane_count; k++) {
		ckr_lane l;
		uint32_t i = (hint + k) % seg->lane_count;
		ckr_lane_view(seg, i, &l);
		/* A1: the lock first, so a flusher that sees our token also
		 * sees the lock held (G). */
		int rc = ckr_seg_lock(seg, CKR_LOCK_LANE(i));
		if (rc == -EAGAIN)
			continue;
		if (rc)
			return rc;
		if (take_owner_word(&l, id, presence)) {
			*index = i;
			return 0;
		}
		ckr_seg_unlock(seg, CKR_LOCK_LANE(i));
	}
	return -EUSERS;
}

void ckr_lane_detach(const ckr_segment *seg, ckr_lane *l, uint64_t token)
{
	uint64_t expected = token;
	/* D1, release: pairs with the consumer's acquire of owner in the
	 * flusher; every seal we stored happens-before it sees DETACHED, so it
	 * may treat any open claim as abandoned (there is none after a clean
	 * detach). */
	atomic_compare_exchange_strong_explicit(&l->ctl->owner, &expected,
						token | CKR_OWNER_DETACHED,
						memory_order_release,
						memory_order_relaxed);
	/* Only now the lock: a free lock under a plain token means death. */
	ckr_seg_unlock(seg, CKR_LOCK_LANE(l->index));
}

void ckr_lane_unacquire(const ckr_segment *seg, ckr_lane *l, uint64_t token)
{
	uint64_t expected = token;
	/* release: pairs with a later attacher's acquire CAS (A4); nothing of
	 * ours is in the lane (no claim was made), so it is free as it was.
	 * The lock goes after the owner word, as in D1. */
	atomic_compare_exchange_strong_explicit(&l->ctl->owner, &expected, 0,
						memory_order_release, memory_order_relaxed);
	ckr_seg_unlock(seg, CKR_LOCK_LANE(l->index));
}

ckr_tenure ckr_lane_tenure(const ckr_lane *l)
{
	ckr_tenure t;
	/* acquire: pairs with A4's release CAS (and D1's release), so the
	 * generation and identity stored before it are visible; the
	 * generation is loaded after the owner word, so it is that tenure's
	 * or a later one's. */
	t.owner = atomic_load_explicit(&l->ctl->owner, memory_order_acquire);
	t.gen = atomic_load_explicit(&l->ctl->tenure_gen, memory_order_acquire);
	return t;
}

bool ckr_lane_tenure_gone(const ckr_segment *seg, const ckr_lane *l, ckr_tenure t)
{
	if (t.owner == 0)
		return false;
	if (t.owner & CKR_OWNER_DETACHED)
		return true;
	/* The tenure t was loaded before this probe. A free lock now means
	 * the owner dropped it: by death or exec, or by a clean detach (D1)
	 * or an undo (A5), both of which change the owner word before they
	 * unlock. The lock probe is a system call the owner's unlock is
	 * ordered against, so the second load below sees their owner word
	 * (or a later tenure's generation): only if it is still t did the
	 * owner die or exec with the lock held. */
	if (ckr_seg_lock_held(seg, CKR_LOCK_LANE(l->index)) != 0)
		return false;
	return ckr_tenure_eq(ckr_lane_tenure(l), t);
}

uint64_t ckr_lane_owner_presence(const ckr_lane *l, const ckr_identity *id)
{
	/* relaxed: published with the identity by A4's release CAS, which
	 * the caller's acquire load of owner read. */
	uint64_t p = atomic_load_explicit(&l->ctl->owner_presence, memory_order_relaxed);
	return p == CKR_LOCK_IMAGE(id->token, id->nonce) ? p : 0;
}

void ckr_lane_owner_identity(const ckr_lane *l, uint64_t owner, ckr_identity *out)
{
	out->token = owner & ~CKR_OWNER_DETACHED;
	/* relaxed: published by the release CAS of owner (A4), which the
	 * caller's acquire load of owner read. */
	out->nonce = atomic_load_explicit(&l->ctl->owner_nonce, memory_order_relaxed);
	out->pidns = atomic_load_explicit(&l->ctl->owner_pidns, memory_order_relaxed);
}

/* ---- writer slots ---- */

void ckr_lane_slot_take(ckr_lane *l, uint32_t i, uint64_t writer)
{
	ckr_writer_slot *s = &l->slots[i];
	/* relaxed: a rejection the flusher writes for the slot's previous
	 * writer carries that writer's id, never ours (W2 compares), so the
	 * reset needs no order; the release below publishes it anyway. */
	atomic_store_explicit(&s->rej_writer, 0, memory_order_relaxed);
	/* release: pairs with the flusher's acquire load in slot_reject(). */
	atomic_store_explicit(&s->writer, writer, memory_order_release);
}

void ckr_lane_slot_drop(ckr_lane *l, uint32_t i)
{
	ckr_writer_slot *s = &l->slots[i];
	/* relaxed: a flusher that still sees the old writer records a
	 * rejection for it, which nobody will ask about (W3 compares ids). */
	atomic_store_explicit(&s->writer, 0, memory_order_relaxed);
	atomic_store_explicit(&s->rej_writer, 0, memory_order_relaxed);
}

uint64_t ckr_lane_slot_writer(const ckr_lane *l, uint32_t i)
{
	/* relaxed: the owner process reads back its own stores. */
	return atomic_load_explicit(&l->slots[i].writer, memory_order_relaxed);
}

void ckr_lane_slot_reject(ckr_lane *l, uint32_t i, uint64_t writer,
			  uint64_t pos, ckr_reject_reason why)
{
	if (i >= l->n_slots || writer == 0)
		return; /* an untrusted slot index: nobody to tell */
	ckr_writer_slot *s = &l->slots[i];
	/* acquire: pairs with slot_take()'s release. */
	if (atomic_load_explicit(&s->writer, memory_order_acquire) != writer)
		return;
	/* relaxed: only this thread writes rej_writer once the slot is taken. */
	if (atomic_load_explicit(&s->rej_writer, memory_order_relaxed) == writer)
		return; /* an earlier rejection of this writer stands (monotone) */
	atomic_store_explicit(&s->rej_pos, pos, memory_order_relaxed);
	atomic_store_explicit(&s->rej_reason, (uint32_t)why, memory_order_relaxed);
	/* release: pairs with the waiter's acquire load of rej_writer, so it
	 * reads this rej_pos and rej_reason; the head store after this (C6,
	 * release) orders it before the waiter's head check too. */
	atomic_store_explicit(&s->rej_writer, writer, memory_order_release);
}

bool ckr_lane_slot_rejected(const ckr_lane *l, uint32_t i, uint64_t writer,
			    uint64_t pos, ckr_reject_reason *why)
{
	const ckr_writer_slot *s = &l->slots[i];
	/* acquire: pairs with slot_reject()'s release of rej_writer. */
	if (atomic_load_explicit(&s->rej_writer, memory_order_acquire) != writer)
		return false;
	if (atomic_load_explicit(&s->rej_pos, memory_order_relaxed) > pos)
		return false;
	if (why)
		*why = (ckr_reject_reason)atomic_load_explicit(&s->rej_reason,
							       memory_order_relaxed);
	return true;
}

/* ------------------------------------------------------------------ */
/* producers                                                           */
/* ------------------------------------------------------------------ */

/*
 * P1..P4: claim pad + need bytes at the tail. On success *pos is where the
 * claim starts (the pad, if any, comes first).
 */
static int claim(ckr_lane *l, uint64_t need, uint64_t *pos, uint64_t *pad)
{
	ckr_lane_ctl *c = l->ctl;
	/* relaxed: the CAS below validates t; no data is read through it. */
	uint64_t t = atomic_load_explicit(&c->tail, memory_order_relaxed);
	for (;;) {
		if (t & 7)
			return CKR_ECORRUPT; /* a scribbled tail: never write by it */
		uint64_t idx = t & l->mask;
		uint64_t p = idx + need > l->capacity ? l->capacity - idx : 0;
		/* acquire: pairs with the release store below by the producer
		 * that refreshed the cache, which had acquired head from the
		 * consumer (C6): so the consumer's reads below h happen-before
		 * our writes there, even when we never load head ourselves. */
		uint64_t h = atomic_load_explicit(&c->head_cache, memory_order_acquire);
		if (t + p + need - h > l->capacity) {
			/* acquire: pairs with the release store of head in
			 * ckr_lane_release() (C6): the consumer has finished
			 * reading everything below h, so we may overwrite it. */
			h = atomic_load_explicit(&c->head, memory_order_acquire);
			if (h & 7)
				return CKR_ECORRUPT; /* a scribbled head */
			if (h > t) {
				/* Our tail snapshot is older than the head: others
				 * claimed and the consumer consumed meanwhile. Not
				 * full; take the current tail and retry. */
				t = atomic_load_explicit(&c->tail, memory_order_relaxed);
				continue;
			}
			/* release: pairs with the acquire load of head_cache
			 * above (see there). Racing producers store values that
			 * are all <= head, which keeps it a safe hint. */
			atomic_store_explicit(&c->head_cache, h, memory_order_release);
			if (t + p + need - h > l->capacity) {
				/* relaxed: a statistic. */
				atomic_fetch_add_explicit(&c->refused_full, 1,
							  memory_order_relaxed);
				return -EAGAIN;
			}
		}
		/* acq_rel on success: orders our claim after the head we
		 * checked (acquire) and makes tail a clean hand-off between
		 * producers; on failure t is reloaded (relaxed) and we retry. */
		if (atomic_compare_exchange_weak_explicit(&c->tail, &t, t + p + need,
							  memory_order_acq_rel,
							  memory_order_relaxed)) {
			*pos = t;
			*pad = p;
			return 0;
		}
	}
}

int ckr_lane_reserve(ckr_lane *l, uint32_t len, ckr_reservation *res)
{
	if (len > l->max_record)
		return -E2BIG;
	uint64_t need = align8(CKR_REC_HEADER + (uint64_t)len), pos, pad;
	int rc = claim(l, need, &pos, &pad);
	if (rc)
		return rc;
#ifdef CKR_TEST_HOOKS
	if (ckr_lane_test_after_claim)
		ckr_lane_test_after_claim(l, pos);
#endif
	if (pad) {
		/* P5 release: a pad is complete once sealed; pairs with the
		 * consumer's acquire of the seal (C2). */
		atomic_store_explicit(seal_at(l, pos), seal_make(l, pos, pad, CKR_SEAL_PAD),
				      memory_order_release);
		pos += pad;
	}
	/* P6 relaxed: BUSY only tells a consumer that finds this owner dead
	 * how long the abandoned claim is; it publishes no data. */
	atomic_store_explicit(seal_at(l, pos), seal_make(l, pos, need, CKR_SEAL_BUSY),
			      memory_order_relaxed);
	res->lane = l;
	res->pos = pos;
	res->len = len;
	res->payload = (uint8_t *)seal_at(l, pos) + CKR_REC_HEADER;
	return 0;
}

/* P7 (header words) and P8. crc covers the DATA seal, payload_len and the
 * payload, which the caller has finished writing. */
static uint64_t seal_data(const ckr_reservation *res, uint32_t crc)
{
	const ckr_lane *l = res->lane;
	uint64_t need = align8(CKR_REC_HEADER + (uint64_t)res->len);
	uint8_t *rec = res->payload - CKR_REC_HEADER;
	memcpy(rec + 8, &crc, 4);
	memcpy(rec + 12, &res->len, 4);
	/* P8 release: pairs with the consumer's acquire of the seal (C2);
	 * everything written above is visible to it once it sees DATA. */
	atomic_store_explicit(seal_at(l, res->pos),
			      seal_make(l, res->pos, need, CKR_SEAL_DATA),
			      memory_order_release);
	return res->pos + need;
}

static uint32_t crc_head(const ckr_reservation *res)
{
	const ckr_lane *l = res->lane;
	uint64_t need = align8(CKR_REC_HEADER + (uint64_t)res->len);
	uint64_t data_seal = seal_make(l, res->pos, need, CKR_SEAL_DATA);
	return ckr_crc32c_u64_u32(data_seal, res->len); /* little-endian bytes */
}

uint64_t ckr_lane_commit(const ckr_reservation *res)
{
	uint32_t crc = ckr_crc32c(crc_head(res), res->payload, res->len);
	return seal_data(res, crc);
}

int ckr_lane_pushv(ckr_lane *l, const struct iovec *iov, int n, uint32_t len,
		   uint64_t *end)
{
	ckr_reservation res;
	int rc = ckr_lane_reserve(l, len, &res);
	if (rc)
		return rc;
	uint32_t crc = crc_head(&res);
	uint8_t *dst = res.payload;
	for (int i = 0; i < n; i++) { /* P7: plain stores, checksummed as copied */
		crc = ckr_crc32c_copy(crc, dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
	*end = seal_data(&res, crc);
	return 0;
}

int ckr_lane_push(ckr_lane *l, const void *payload, uint32_t len, uint64_t *end)
{
	struct iovec v = { .iov_base = (void *)payload, .iov_len = len };
	return ckr_lane_pushv(l, &v, 1, len, end);
}

/* ------------------------------------------------------------------ */
/* the consumer                                                        */
/* ------------------------------------------------------------------ */

/* Does the record image rec (seal w, len bytes, header first) check out:
 * payload_len agrees with the seal and the CRC matches? */
static const char *record_check(const ckr_lane *l, uint64_t w, const uint8_t *rec)
{
	uint32_t crc, plen;
	memcpy(&crc, rec + 8, 4);
	memcpy(&plen, rec + 12, 4);
	if (plen > l->max_record || align8(CKR_REC_HEADER + (uint64_t)plen) != seal_len(w))
		return "record length does not match its seal";
	uint32_t want = ckr_crc32c_u64_u32(w, plen);
	if (ckr_crc32c(want, rec + CKR_REC_HEADER, plen) != crc)
		return "checksum mismatch";
	return NULL;
}

/* Is there a sealed record (or the tail) at q? Read-only probe. */
static bool lands_on_record(const ckr_lane *l, uint64_t q)
{
	/* acquire: pairs with the producers' CAS of tail (P4) and release of
	 * the seal (P8); a probe only, nothing is read through it. */
	uint64_t tail = atomic_load_explicit(&l->ctl->tail, memory_order_acquire);
	if (q == tail)
		return true;
	if (q > tail)
		return false;
	uint64_t w = atomic_load_explicit(seal_at(l, q), memory_order_acquire);
	return seal_valid(l, w, q) && seal_state(w) != CKR_SEAL_BUSY &&
	       q + seal_len(w) <= tail;
}

/* C3: copy a sealed DATA record out and validate the copy. */
static void read_data(const ckr_lane *l, uint64_t pos, uint64_t w, void *buf,
		      ckr_lane_record *rec)
{
	uint64_t len = seal_len(w);
	uint8_t *b = buf;
	memcpy(b, &w, 8);
	memcpy(b + 8, l->data + (pos & l->mask) + 8, len - 8);
	rec->next = pos + len;
	rec->reason = record_check(l, w, b);
	if (rec->reason) {
		/* The seal's length or payload_len was damaged. Step by the
		 * seal, unless the shorter length given by payload_len lands
		 * on a record that checks out (or on the tail): then the seal
		 * was forged longer, and stepping by it would swallow that
		 * intact record. */
		uint32_t plen;
		memcpy(&plen, b + 12, 4);
		uint64_t alt = align8(CKR_REC_HEADER + (uint64_t)plen);
		if (alt < len && lands_on_record(l, pos + alt))
			rec->next = pos + alt;
		rec->status = CKR_READ_CORRUPT;
		rec->raw_len = (uint32_t)len;
		return;
	}
	uint32_t plen;
	memcpy(&plen, b + 12, 4);
	memmove(b, b + CKR_REC_HEADER, plen);
	rec->status = CKR_READ_RECORD;
	rec->payload_len = plen;
}

/* A candidate of the scan below: a seal valid for q whose record ends at or
 * before tail and, for DATA, passes its checksum in place. */
static bool scan_candidate(const ckr_lane *l, uint64_t q, uint64_t tail)
{
	/* relaxed: no writer exists (owner dead or detached). */
	uint64_t w = atomic_load_explicit(seal_at(l, q), memory_order_relaxed);
	if (!seal_valid(l, w, q) || q + seal_len(w) > tail)
		return false;
	if (seal_state(w) != CKR_SEAL_DATA)
		return true;
	return record_check(l, w, (const uint8_t *)seal_at(l, q)) == NULL;
}

/* C4 (dead owner, no seal): the first q in (pos, tail) where a record
 * checks out, or tail. Only safe when no writer exists. Stale bytes of an
 * earlier lap would need the salted lap tag, a length that fits and a
 * matching CRC to be taken for a record. */
static uint64_t scan_forward(const ckr_lane *l, uint64_t pos, uint64_t tail)
{
	for (uint64_t q = pos + 8; q < tail; q += 8)
		if (scan_candidate(l, q, tail))
			return q;
	return tail;
}

/* The tail, loaded (acquire: pairs with the producers' acq_rel CAS of tail,
 * P4) and remembered in *hint. */
static uint64_t load_tail(const ckr_lane *l, uint64_t *hint)
{
	uint64_t tail = atomic_load_explicit(&l->ctl->tail, memory_order_acquire);
	*hint = tail;
	return tail;
}

/* C4/C5: the seal at pos is not a valid DATA or PAD seal. */
static void read_open(const ckr_lane *l, uint64_t pos, uint64_t w,
		      bool writers_gone, uint64_t *hint, ckr_lane_record *rec)
{
	rec->next = pos;
	if (!writers_gone) {
		/* A live owner: stop here whatever the tail says (an open
		 * claim is never touched), so do not load it: the consumer
		 * polling a caught-up lane reads no producer-written line but
		 * the seal. EMPTY or WAIT by the last tail seen. */
		rec->status = pos < *hint && *hint - pos <= l->capacity ? CKR_READ_WAIT
									: CKR_READ_EMPTY;
		return;
	}
	uint64_t tail = load_tail(l, hint);
	if (tail == pos || tail - pos > l->capacity || (tail & 7)) {
		/* Empty; or a tail that is not ahead of us by a lap or less, or
		 * unaligned, which only a scribbled tail can be: nothing to
		 * read (the flusher repairs the tail when it frees the lane). */
		rec->status = CKR_READ_EMPTY;
		return;
	}
	rec->status = CKR_READ_ABANDONED;
	if (seal_valid(l, w, pos) && seal_state(w) == CKR_SEAL_BUSY &&
	    pos + seal_len(w) <= tail)
		rec->next = pos + seal_len(w);
	else
		rec->next = scan_forward(l, pos, tail);
}

static bool tail_covers(const ckr_lane *l, uint64_t tail, uint64_t pos, uint64_t w)
{
	return (tail & 7) == 0 && tail - pos <= l->capacity && pos + seal_len(w) <= tail;
}

/* A sealed record must lie below the tail: its producer moved the tail past
 * it (P4) before sealing (P8), so after acquiring the seal we see that tail
 * or a later one. A "record" that does not is forged. The tail only grows
 * while the lane has a writer, so a value seen before (*hint) that covers
 * the record proves it as well; only when it does not is the producers'
 * line loaded again — once per catch-up, not once per record. */
static bool below_tail(const ckr_lane *l, uint64_t pos, uint64_t w, uint64_t *hint)
{
	if (tail_covers(l, *hint, pos, w))
		return true;
	return tail_covers(l, load_tail(l, hint), pos, w);
}

int ckr_lane_read(const ckr_lane *l, uint64_t pos, bool writers_gone,
		  void *buf, size_t cap, ckr_lane_record *rec)
{
	uint64_t hint = 0; /* no hint: the tail is loaded when needed */
	if (!writers_gone)
		load_tail(l, &hint); /* keeps EMPTY and WAIT exact for one read */
	return ckr_lane_read_hinted(l, pos, writers_gone, &hint, buf, cap, rec);
}

int ckr_lane_read_hinted(const ckr_lane *l, uint64_t pos, bool writers_gone,
			 uint64_t *tail_hint, void *buf, size_t cap,
			 ckr_lane_record *rec)
{
	memset(rec, 0, sizeof *rec);
	if (pos & 7) { /* only a damaged cursor can be unaligned */
		rec->pos = rec->next = pos;
		rec->status = CKR_READ_EMPTY;
		return 0;
	}
	for (;;) {
		rec->pos = pos;
		/* C2 acquire: pairs with the producer's release of the seal
		 * (P5/P8): the record's bytes are visible once we see it. */
		uint64_t w = atomic_load_explicit(seal_at(l, pos), memory_order_acquire);
		bool valid = seal_valid(l, w, pos) && below_tail(l, pos, w, tail_hint);
		if (valid && seal_state(w) == CKR_SEAL_PAD) {
			pos += seal_len(w);
			continue;
		}
		if (valid && seal_state(w) == CKR_SEAL_DATA && cap >= seal_len(w)) {
			read_data(l, pos, w, buf, rec);
			return 0;
		}
		read_open(l, pos, w, writers_gone, tail_hint, rec);
		return 0;
	}
}

void ckr_lane_release(ckr_lane *l, uint64_t pos, uint64_t synced_pos)
{
	/* relaxed: synced is a gauge for ckr_wait(), which also re-reads it
	 * after the commit_seq futex word; it publishes no ring data. */
	atomic_store_explicit(&l->ctl->synced, synced_pos, memory_order_relaxed);
	/* C6 release: pairs with the producers' acquire of head (P3): we have
	 * finished reading everything below pos, and it is persisted. */
	atomic_store_explicit(&l->ctl->head, pos, memory_order_release);
}

void ckr_lane_publish_head(ckr_lane *l, uint64_t pos)
{
	/* C6 release: pairs with the producers' acquire of head (P3) and the
	 * waiters' acquire (client/wait.c). */
	atomic_store_explicit(&l->ctl->head, pos, memory_order_release);
}

void ckr_lane_publish_synced(ckr_lane *l, uint64_t pos)
{
	/* release: pairs with the waiter's acquire of synced (client/wait.c);
	 * it publishes no ring data, only a durability fact. */
	atomic_store_explicit(&l->ctl->synced, pos, memory_order_release);
}

size_t ckr_lane_copy(const ckr_lane *l, uint64_t pos, uint64_t end, void *buf,
		     size_t cap)
{
	size_t n = end - pos < cap ? (size_t)(end - pos) : cap, done = 0;
	while (done < n) {
		uint64_t idx = (pos + done) & l->mask;
		size_t chunk = l->capacity - idx < n - done ? (size_t)(l->capacity - idx) : n - done;
		memcpy((uint8_t *)buf + done, l->data + idx, chunk);
		done += chunk;
	}
	return n;
}

void ckr_lane_repair_tail(ckr_lane *l, uint64_t pos)
{
	/* relaxed: no writer exists (the owner word still holds a dead or
	 * detached owner, so nobody can attach); ckr_lane_free()'s release
	 * publishes these stores to the next owner. */
	if (atomic_load_explicit(&l->ctl->tail, memory_order_relaxed) != pos) {
		atomic_store_explicit(&l->ctl->tail, pos, memory_order_relaxed);
		atomic_store_explicit(&l->ctl->head_cache, pos, memory_order_relaxed);
	}
}

bool ckr_lane_free(ckr_lane *l, uint64_t owner)
{
	uint64_t expected = owner;
	/* C7 release: pairs with the acquire CAS in ckr_lane_acquire(): a new
	 * owner sees the head we published before freeing. */
	return atomic_compare_exchange_strong_explicit(&l->ctl->owner, &expected, 0,
						       memory_order_release,
						       memory_order_relaxed);
}

bool ckr_lane_ready(const ckr_lane *l, uint64_t pos)
{
	/* acquire: pairs with the producer's release of the seal (P5/P8),
	 * like C2; the caller reads the record only through ckr_lane_read. */
	uint64_t w = atomic_load_explicit(seal_at(l, pos), memory_order_acquire);
	unsigned st = seal_state(w);
	return seal_valid(l, w, pos) && (st == CKR_SEAL_DATA || st == CKR_SEAL_PAD);
}

uint64_t ckr_lane_tail(const ckr_lane *l)
{
	/* relaxed: a snapshot for the flusher's bookkeeping / the inspector. */
	return atomic_load_explicit(&l->ctl->tail, memory_order_relaxed);
}

uint64_t ckr_lane_head(const ckr_lane *l)
{
	/* relaxed: a snapshot. */
	return atomic_load_explicit(&l->ctl->head, memory_order_relaxed);
}

uint64_t ckr_lane_owner(const ckr_lane *l)
{
	/* acquire: pairs with ckr_lane_detach()'s release (a detached owner's
	 * seals are visible once DETACHED is seen). */
	return atomic_load_explicit(&l->ctl->owner, memory_order_acquire);
}
