/*
 * test_ring.c — the lane protocol, one behaviour per test, edge states set
 * up by writing positions directly (ring/lane.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ring/lane.h"
#include "shm/proc.h"
#include "tests/helpers/testutil.h"

typedef struct fixture {
	const char *name;
	ckr_segment seg;
	ckr_lane lane;
	uint8_t buf[1 << 20];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	ckr_segment_opts o = { .lanes = 2, .size = tu_seg_size(2, 65536),
			       .group = (gid_t)-1 };
	f->name = tu_segname("ring");
	if (ckr_segment_create(f->name, &o) || ckr_segment_attach(f->name, false, &f->seg))
		return -1;
	ckr_lane_view(&f->seg, 0, &f->lane);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	ckr_segment_detach(&f->seg);
	ckr_segment_unlink(f->name);
	free(f);
	return 0;
}

/* Put an empty lane at position pos (head = tail = pos). */
static void place_at(ckr_lane *l, uint64_t pos)
{
	atomic_store(&l->ctl->tail, pos);
	atomic_store(&l->ctl->head, pos);
	atomic_store(&l->ctl->head_cache, pos);
}

static void read_expect(fixture *f, uint64_t pos, bool gone, ckr_read_status st,
			ckr_lane_record *rec)
{
	ckr_lane_read(&f->lane, pos, gone, f->buf, sizeof f->buf, rec);
	assert_int_equal(rec->status, st);
}

static void test_push_then_read_round_trip(void **state)
{
	fixture *f = *state;
	uint64_t end;
	ckr_lane_record rec;
	assert_int_equal(ckr_lane_push(&f->lane, "hello", 5, &end), 0);
	assert_int_equal(end, 24); /* 16 header + 5 payload, 8-aligned */
	read_expect(f, 0, false, CKR_READ_RECORD, &rec);
	assert_int_equal(rec.payload_len, 5);
	assert_memory_equal(f->buf, "hello", 5);
	assert_int_equal(rec.next, 24);
	read_expect(f, 24, false, CKR_READ_EMPTY, &rec);
}

static void test_empty_record(void **state)
{
	fixture *f = *state;
	uint64_t end;
	ckr_lane_record rec;
	assert_int_equal(ckr_lane_push(&f->lane, "", 0, &end), 0);
	read_expect(f, 0, false, CKR_READ_RECORD, &rec);
	assert_int_equal(rec.payload_len, 0);
	assert_int_equal(rec.next, 16);
}

static void test_wrap_writes_pad_and_reads_across(void **state)
{
	fixture *f = *state;
	uint64_t C = f->lane.capacity, end;
	ckr_lane_record rec;
	place_at(&f->lane, 3 * C - 40); /* third lap, 40 bytes before the end */
	uint8_t msg[100];
	memset(msg, 0xAB, sizeof msg);
	assert_int_equal(ckr_lane_push(&f->lane, msg, sizeof msg, &end), 0);
	assert_int_equal(end, 3 * C + 120); /* pad 40, then 16 + 100 -> 120 */
	read_expect(f, 3 * C - 40, false, CKR_READ_RECORD, &rec);
	assert_int_equal(rec.pos, 3 * C);
	assert_int_equal(rec.payload_len, 100);
	assert_memory_equal(f->buf, msg, 100);
}

static void test_pad_of_eight_bytes(void **state)
{
	fixture *f = *state;
	uint64_t C = f->lane.capacity, end;
	ckr_lane_record rec;
	place_at(&f->lane, C - 8);
	assert_int_equal(ckr_lane_push(&f->lane, "x", 1, &end), 0);
	assert_int_equal(end, C + 24);
	read_expect(f, C - 8, false, CKR_READ_RECORD, &rec);
	assert_int_equal(rec.pos, C);
}

static void test_full_refuses_with_eagain_and_counts(void **state)
{
	fixture *f = *state;
	uint64_t C = f->lane.capacity, end;
	uint8_t msg[1000] = { 0 };
	int rc, n = 0;
	while ((rc = ckr_lane_push(&f->lane, msg, sizeof msg, &end)) == 0)
		n++;
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(n, (int)(C / 1016));
	assert_int_equal(atomic_load(&f->lane.ctl->refused_full), 1);
	assert_int_equal(ckr_lane_push(&f->lane, msg, sizeof msg, &end), -EAGAIN);
	assert_int_equal(atomic_load(&f->lane.ctl->refused_full), 2);
}

static void test_release_makes_room(void **state)
{
	fixture *f = *state;
	uint64_t C = f->lane.capacity, end;
	uint8_t msg[1000] = { 0 };
	while (ckr_lane_push(&f->lane, msg, sizeof msg, &end) == 0)
		;
	ckr_lane_release(&f->lane, 1016, 1016);
	assert_int_equal(ckr_lane_push(&f->lane, msg, sizeof msg, &end), 0);
	assert_true(end - 1016 <= C);
}

static void test_max_record_accepted_one_more_refused(void **state)
{
	fixture *f = *state;
	uint32_t max = f->lane.max_record;
	uint8_t *msg = calloc(1, max + 1);
	uint64_t end;
	ckr_lane_record rec;
	assert_int_equal(ckr_lane_push(&f->lane, msg, max + 1, &end), -E2BIG);
	assert_int_equal(ckr_lane_push(&f->lane, msg, max, &end), 0);
	read_expect(f, 0, false, CKR_READ_RECORD, &rec);
	assert_int_equal(rec.payload_len, max);
	free(msg);
}

static void test_bad_crc_is_corrupt_and_skipped(void **state)
{
	fixture *f = *state;
	uint64_t end;
	ckr_lane_record rec;
	ckr_lane_push(&f->lane, "hello world", 11, &end);
	ckr_lane_push(&f->lane, "next", 4, &end);
	f->lane.data[16] ^= 1; /* flip a payload bit of the first record */
	read_expect(f, 0, false, CKR_READ_CORRUPT, &rec);
	assert_string_equal(rec.reason, "checksum mismatch");
	assert_int_equal(rec.next, 32);
	read_expect(f, rec.next, false, CKR_READ_RECORD, &rec);
	assert_memory_equal(f->buf, "next", 4);
}

static void test_bad_length_is_corrupt(void **state)
{
	fixture *f = *state;
	uint64_t end;
	ckr_lane_record rec;
	ckr_lane_push(&f->lane, "hello", 5, &end);
	uint32_t bogus = 4000;
	memcpy(f->lane.data + 12, &bogus, 4);
	read_expect(f, 0, false, CKR_READ_CORRUPT, &rec);
	assert_string_equal(rec.reason, "record length does not match its seal");
	assert_int_equal(rec.next, 24);
}

static void test_stale_seal_of_earlier_lap_is_not_a_record(void **state)
{
	fixture *f = *state;
	uint64_t C = f->lane.capacity, end;
	ckr_lane_record rec;
	ckr_lane_push(&f->lane, "lap0", 4, &end);
	ckr_lane_release(&f->lane, end, end);
	place_at(&f->lane, C); /* next lap, same index: the old seal remains */
	read_expect(f, C, false, CKR_READ_EMPTY, &rec);
	read_expect(f, C, true, CKR_READ_EMPTY, &rec);
}

/* A claim whose producer has not sealed it: tail moved, seal is stale. */
static void open_claim(fixture *f, uint64_t len)
{
	atomic_fetch_add(&f->lane.ctl->tail, len);
}

static void test_open_claim_of_live_owner_waits(void **state)
{
	fixture *f = *state;
	ckr_lane_record rec;
	open_claim(f, 32);
	read_expect(f, 0, false, CKR_READ_WAIT, &rec);
	assert_int_equal(rec.next, 0);
}

static void test_unsealed_claim_of_dead_owner_is_scanned_past(void **state)
{
	fixture *f = *state;
	uint64_t end;
	ckr_lane_record rec;
	open_claim(f, 48); /* died right after its CAS: no seal at all */
	ckr_lane_push(&f->lane, "after", 5, &end);
	read_expect(f, 0, true, CKR_READ_ABANDONED, &rec);
	assert_int_equal(rec.next, 48);
	read_expect(f, 48, true, CKR_READ_RECORD, &rec);
	assert_memory_equal(f->buf, "after", 5);
}

static void test_busy_claim_of_dead_owner_skipped_exactly(void **state)
{
	fixture *f = *state;
	uint64_t end;
	ckr_lane_record rec;
	/* A record that died half-written: claimed and BUSY-sealed. */
	ckr_lane_push(&f->lane, "0123456789abcdef0123", 20, &end);
	uint64_t w = atomic_load((_Atomic uint64_t *)(void *)f->lane.data);
	atomic_store((_Atomic uint64_t *)(void *)f->lane.data, (w & ~UINT64_C(3)) | CKR_SEAL_BUSY);
	ckr_lane_push(&f->lane, "kept", 4, &end);
	read_expect(f, 0, false, CKR_READ_WAIT, &rec);
	read_expect(f, 0, true, CKR_READ_ABANDONED, &rec);
	assert_int_equal(rec.next, 40);
	read_expect(f, 40, true, CKR_READ_RECORD, &rec);
	assert_memory_equal(f->buf, "kept", 4);
}

static void test_unsealed_tail_claim_of_dead_owner_skips_to_tail(void **state)
{
	fixture *f = *state;
	ckr_lane_record rec;
	open_claim(f, 64);
	read_expect(f, 0, true, CKR_READ_ABANDONED, &rec);
	assert_int_equal(rec.next, 64);
	read_expect(f, 64, true, CKR_READ_EMPTY, &rec);
}

static void test_scribbled_tail_reads_as_empty(void **state)
{
	fixture *f = *state;
	ckr_lane_record rec;
	atomic_store(&f->lane.ctl->tail, UINT64_C(1) << 50);
	read_expect(f, 0, true, CKR_READ_EMPTY, &rec);
}

static void test_acquire_until_no_lane_left(void **state)
{
	fixture *f = *state;
	uint32_t a, b, c;
	ckr_identity i1 = { 111, 1, 0 }, i2 = { 222, 2, 0 }, i3 = { 333, 3, 0 };
	assert_int_equal(ckr_lane_acquire(&f->seg, &i1, 0, &a), 0);
	assert_int_equal(ckr_lane_acquire(&f->seg, &i2, 0, &b), 0);
	assert_int_not_equal(a, b);
	assert_int_equal(ckr_lane_acquire(&f->seg, &i3, 0, &c), -EUSERS);
	ckr_lane la;
	ckr_lane_view(&f->seg, a, &la);
	assert_false(ckr_lane_free(&la, 999)); /* not its owner */
	assert_true(ckr_lane_free(&la, 111));
	/* Freed, but its lock is still held through this handle: the lane is
	 * taken only once the tenure's lock is gone too. */
	ckr_seg_unlock(&f->seg, CKR_LOCK_LANE(a));
	assert_int_equal(ckr_lane_acquire(&f->seg, &i3, 0, &c), 0);
	assert_int_equal(c, a);
}

static void test_detach_marks_lane_detached(void **state)
{
	fixture *f = *state;
	uint32_t a;
	ckr_lane l;
	ckr_identity id = { 4242, 7, 0 };
	assert_int_equal(ckr_lane_acquire(&f->seg, &id, 1, &a), 0);
	ckr_lane_view(&f->seg, a, &l);
	assert_int_equal(atomic_load(&l.ctl->owner_nonce), 7);
	ckr_lane_detach(&f->seg, &l, 4242);
	assert_int_equal(ckr_lane_owner(&l), 4242 | CKR_OWNER_DETACHED);
	assert_true(ckr_lane_free(&l, 4242 | CKR_OWNER_DETACHED));
	assert_int_equal(ckr_lane_owner(&l), 0);
}

/*
 * G with a tenure loaded before the owner left (ring/model/claim.pml,
 * finding F2): a clean detach (D1) or an undo (A5) between the load and the
 * lock probe leaves a free lock under the owner word that was loaded, yet
 * the owner lives: not gone. The same owner word attached again is a new
 * tenure (its generation moved). The flusher's view is a second handle, so
 * its lock probe sees the producer's lock as another description's.
 */
static void test_tenure_loaded_before_detach_or_undo_is_not_gone(void **state)
{
	fixture *f = *state;
	ckr_segment view;
	ckr_lane mine, seen;
	uint32_t a, b;
	ckr_identity id = { 5150, 9, 0 };
	assert_int_equal(ckr_segment_attach(f->name, true, &view), 0);
	assert_int_equal(ckr_lane_acquire(&f->seg, &id, 1, &a), 0);
	ckr_lane_view(&f->seg, a, &mine);
	ckr_lane_view(&view, a, &seen);
	ckr_tenure t1 = ckr_lane_tenure(&seen);
	assert_int_equal(t1.owner, 5150);
	assert_false(ckr_lane_tenure_gone(&view, &seen, t1)); /* lock held */

	ckr_lane_unacquire(&f->seg, &mine, 5150);             /* A5 */
	assert_false(ckr_lane_tenure_gone(&view, &seen, t1));

	assert_int_equal(ckr_lane_acquire(&f->seg, &id, a, &b), 0);
	assert_int_equal(b, a);
	ckr_tenure t2 = ckr_lane_tenure(&seen);
	assert_int_equal(t2.owner, t1.owner);                 /* the same word */
	assert_int_not_equal(t2.gen, t1.gen);                 /* a new tenure */
	assert_false(ckr_tenure_eq(t1, t2));

	ckr_lane_detach(&f->seg, &mine, 5150);                /* D1 */
	assert_false(ckr_lane_tenure_gone(&view, &seen, t2));
	ckr_tenure t3 = ckr_lane_tenure(&seen);
	assert_true(t3.owner & CKR_OWNER_DETACHED);
	assert_true(ckr_lane_tenure_gone(&view, &seen, t3));  /* seen as such */
	ckr_segment_detach(&view);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_push_then_read_round_trip),
		T(test_empty_record),
		T(test_wrap_writes_pad_and_reads_across),
		T(test_pad_of_eight_bytes),
		T(test_full_refuses_with_eagain_and_counts),
		T(test_release_makes_room),
		T(test_max_record_accepted_one_more_refused),
		T(test_bad_crc_is_corrupt_and_skipped),
		T(test_bad_length_is_corrupt),
		T(test_stale_seal_of_earlier_lap_is_not_a_record),
		T(test_open_claim_of_live_owner_waits),
		T(test_unsealed_claim_of_dead_owner_is_scanned_past),
		T(test_busy_claim_of_dead_owner_skipped_exactly),
		T(test_unsealed_tail_claim_of_dead_owner_skips_to_tail),
		T(test_scribbled_tail_reads_as_empty),
		T(test_acquire_until_no_lane_left),
		T(test_detach_marks_lane_detached),
		T(test_tenure_loaded_before_detach_or_undo_is_not_gone),
#undef T
	};
	return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
