/*
 * push_callgrind.c — the instruction count of one push, for comparing the
 * push path before and after a change (no timing, so a loaded machine does
 * not matter): 1e6 ckr_run_message() calls of 128 bytes through the public
 * API, counted by callgrind inclusive of everything the call runs. Not
 * built by make (a directory of its own: bench/*.c is ckring-bench).
 *
 *   make lib
 *   cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -pthread \
 *       bench/callgrind/push_callgrind.c build/libckring-store.a \
 *       build/libckring.a -llmdb -lrt -o /tmp/pc
 *   valgrind --tool=callgrind --toggle-collect=ckr_run_message \
 *       --callgrind-out-file=/tmp/pc.out /tmp/pc 2>&1 | grep Collected
 *   # Collected / 1e6 = instructions per push
 *
 * No flusher: every 1024 pushes the program drains the lane itself with the
 * raw consumer (outside the counted function), so no push is ever refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckring_store.h"

#define PUSHES 1000000L
#define SIZE 128

/* Read and release everything in the client's lane. */
static int drain(ckr_consumer *k, uint32_t lane, void *buf, size_t cap)
{
	size_t len;
	int rc;
	while ((rc = ckr_consumer_read(k, lane, buf, cap, &len)) == 0)
		;
	if (rc != -ENODATA)
		return rc;
	return ckr_consumer_release(k, lane);
}

int main(void)
{
	char name[64];
	uint8_t msg[SIZE];
	ckr_client *c;
	ckr_consumer *k;
	ckr_run *r;
	snprintf(name, sizeof name, "push-callgrind-%d", (int)getpid());
	ckr_segment_opts o = { .lanes = 1, .group = (gid_t)-1 };
	if (ckr_segment_create(name, &o) || ckr_client_attach(name, NULL, &c) ||
	    ckr_consumer_open(name, &k))
		return 1;
	ckr_segment_unlink(name);
	size_t cap = ckr_consumer_buf_size(k);
	void *buf = malloc(cap);
	ckr_run_spec s = { .id = "probe", .id_len = 5, .kind = CKR_KIND_SINGLE_LOOP };
	if (!buf || ckr_run_begin(c, &s, &r, NULL))
		return 1;
	memset(msg, 0x5a, sizeof msg);
	for (long i = 0; i < PUSHES; i++) {
		memcpy(msg, &i, sizeof i);
		if (ckr_run_message(r, msg, sizeof msg, NULL) != 0) {
			fprintf(stderr, "push %ld refused\n", i);
			return 1;
		}
		if ((i & 1023) == 1023 && drain(k, ckr_client_lane(c), buf, cap) != 0)
			return 1;
	}
	printf("%ld pushes of %d bytes\n", PUSHES, SIZE);
	ckr_run_close(r);
	ckr_client_detach(c);
	ckr_consumer_close(k);
	free(buf);
	return 0;
}
