/*
 * test_bench_layout.c — the benchmark harness's shared memory layout
 * (bench/layout.h): no two actors' hot fields share a 128-byte block (two
 * cache lines: the adjacent-line prefetcher moves them in pairs), and every
 * per-actor object fills whole blocks, so two of them side by side never
 * share one either. One ring per test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdalign.h>
#include <string.h>

#include <cmocka.h>

#include "bench/layout.h"

typedef struct field {
	const char *name;
	size_t off, size;
	const char *actor;
} field;

#define F(type, member, actor) \
	{ #type "." #member, offsetof(type, member), sizeof(((type *)0)->member), actor }

/* The blocks [first, last] that bytes [off, off + size) touch. */
static void blocks(const field *f, size_t *first, size_t *last)
{
	*first = f->off / BENCH_BLOCK;
	*last = (f->off + f->size - 1) / BENCH_BLOCK;
}

/* Fail if fields of two different actors touch one block. */
static void check_apart(const field *fs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			size_t a0, a1, b0, b1;
			if (!strcmp(fs[i].actor, fs[j].actor))
				continue;
			blocks(&fs[i], &a0, &a1);
			blocks(&fs[j], &b0, &b1);
			if (a0 <= b1 && b0 <= a1)
				fail_msg("%s (%s) and %s (%s) share a %d-byte block", fs[i].name,
					 fs[i].actor, fs[j].name, fs[j].actor, BENCH_BLOCK);
		}
	}
}

/* An object one actor owns, allocated or arrayed side by side with others
 * of its kind: block-aligned and a whole number of blocks. */
static void check_whole_blocks(const char *name, size_t align, size_t size)
{
	if (align < BENCH_BLOCK || size % BENCH_BLOCK)
		fail_msg("%s: alignment %zu, size %zu: not whole %d-byte blocks", name, align,
			 size, BENCH_BLOCK);
}

#define WHOLE(type) check_whole_blocks(#type, alignof(type), sizeof(type))

static void test_floor_producers_and_consumer_apart(void **state)
{
	static const field fs[] = {
		F(floor_hdr, tail, "producers"),
		F(floor_hdr, head, "consumer"),
	};
	check_apart(fs, sizeof fs / sizeof fs[0]);
	assert_true(alignof(floor_hdr) >= BENCH_BLOCK);
	WHOLE(floor_thr); /* one per producer thread */
}

static void test_mutex_ring_lock_tail_head_apart(void **state)
{
	static const field fs[] = {
		F(mx_hdr, m, "lock"),
		F(mx_hdr, tail, "producers"),
		F(mx_hdr, head, "consumer"),
	};
	check_apart(fs, sizeof fs / sizeof fs[0]);
	assert_true(alignof(mx_hdr) >= BENCH_BLOCK);
}

static void test_ckring_producer_threads_apart(void **state)
{
	WHOLE(ck_thr); /* one per producer thread, each its own run */
}

static void test_runner_actors_apart(void **state)
{
	field fs[6 + BENCH_MAX_PROD] = {
		F(run_shared, ready, "parent"),
		F(run_shared, go, "parent"),
		F(run_shared, cons_stop, "parent"), /* polled by an idle consumer */
		F(run_shared, gen, "hand-off"),
		F(run_shared, sync, "hand-off"),
		F(run_shared, cons, "consumer"),
	};
	char names[BENCH_MAX_PROD][32];
	for (int i = 0; i < BENCH_MAX_PROD; i++) {
		snprintf(names[i], sizeof names[i], "producer %d", i);
		fs[6 + i] = (field){ "run_shared.slot[i]",
				     offsetof(run_shared, slot) + (size_t)i * sizeof(prod_slot),
				     sizeof(prod_slot), names[i] };
	}
	check_apart(fs, sizeof fs / sizeof fs[0]);
	WHOLE(prod_slot);
	WHOLE(cons_slot);
	WHOLE(prod_arg); /* an array, one per producer thread */
}

/* The check itself: a layout with a producer's counter on the line the
 * consumer polls (the floor's bug of issue 14) is caught. */
typedef struct bad_shared {
	_Atomic uint32_t cons_stop;
	uint64_t producer_count;
} bad_shared;

static void test_the_check_catches_a_shared_line(void **state)
{
	static const field fs[] = {
		F(bad_shared, cons_stop, "parent"),
		F(bad_shared, producer_count, "producer 0"),
	};
	size_t a0, a1, b0, b1;
	blocks(&fs[0], &a0, &a1);
	blocks(&fs[1], &b0, &b1);
	assert_true(a0 <= b1 && b0 <= a1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_floor_producers_and_consumer_apart),
		cmocka_unit_test(test_mutex_ring_lock_tail_head_apart),
		cmocka_unit_test(test_ckring_producer_threads_apart),
		cmocka_unit_test(test_runner_actors_apart),
		cmocka_unit_test(test_the_check_catches_a_shared_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
