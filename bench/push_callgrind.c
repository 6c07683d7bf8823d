/*
 * push_callgrind.c — the instruction count of one push, for comparing the
 * push path before and after a change (no timing, so a loaded machine does
 * not matter): 1e6 ckr_run_message() calls of 128 bytes through the public
 * API, counted by callgrind inclusive of everything the call runs.
 *
 *   cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -I. -msse4.2 -pthread \
 *       bench/push_callgrind.c build/libckring.a -llmdb -lrt -o /tmp/pc
 *   valgrind --tool=callgrind --toggle-collect=ckr_run_message \
 *       --callgrind-out-file=/tmp/pc.out /tmp/pc
 *   callgrind_annotate /tmp/pc.out | head     # total Ir / 1e6 = Ir per push
 *
 * No flusher: every 1024 pushes the program itself marks the lane consumed
 * (outside the counted function), so no push is ever refused.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ckring.h"
#include "client/client.h"
#include "ring/lane.h"

#define PUSHES 1000000L
#define SIZE 128

int main(void)
{
	char name[64];
	uint8_t msg[SIZE];
	ckr_client *c;
	ckr_run *r;
	snprintf(name, sizeof name, "push-callgrind-%d", (int)getpid());
	ckr_segment_opts o = { .lanes = 1, .group = (gid_t)-1 };
	if (ckr_segment_create(name, &o) || ckr_client_attach(name, NULL, &c))
		return 1;
	ckr_segment_unlink(name);
	ckr_run_spec s = { .id = "probe", .id_len = 5, .kind = CKR_KIND_SINGLE_LOOP };
	if (ckr_run_begin(c, &s, &r, NULL))
		return 1;
	ckr_lane lane;
	ckr_lane_view(ckr_client_segment(c), ckr_client_lane(c), &lane);
	memset(msg, 0x5a, sizeof msg);
	for (long i = 0; i < PUSHES; i++) {
		memcpy(msg, &i, sizeof i);
		if (ckr_run_message(r, msg, sizeof msg, NULL) != 0) {
			fprintf(stderr, "push %ld refused\n", i);
			return 1;
		}
		if ((i & 1023) == 1023) {
			uint64_t t = ckr_lane_tail(&lane);
			ckr_lane_release(&lane, t, t);
		}
	}
	printf("%ld pushes of %d bytes\n", PUSHES, SIZE);
	ckr_run_close(r);
	ckr_client_detach(c);
	return 0;
}
