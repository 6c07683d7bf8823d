/*
 * segwait.c — bounded waits on a segment's state, for the fault scripts
 * (attaches read-only, polls, gives up at the timeout):
 *
 *   segwait flusher NAME PID MS   until the flusher slot holds PID (that
 *                                 flusher has its store open and serves)
 *   segwait drained NAME MS       until every lane has head == tail and no
 *                                 owner (all persisted, dead lanes freed)
 *   segwait refused NAME N MS     until the lanes refused >= N pushes
 *                                 (producers saw a full ring)
 *
 * Exit 0 when the condition holds, 1 at the timeout (the state is printed),
 * 2 on usage errors.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckring.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "shm/segment.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 holds, 0 not yet, -1 cannot attach. */
static int check(const char *what, const char *name, uint64_t arg, char *state, size_t n)
{
	ckr_segment s;
	int rc = ckr_segment_attach(name, true, &s);
	if (rc) {
		snprintf(state, n, "cannot attach: %s", ckr_strerror(rc));
		return -1;
	}
	int ok = 1;
	if (strcmp(what, "flusher") == 0) {
		uint64_t owner = atomic_load(&ckr_seg_fl(&s)->owner);
		ok = (uint64_t)ckr_token_pid(owner) == arg;
		snprintf(state, n, "flusher slot pid %d", (int)ckr_token_pid(owner));
	} else {
		uint64_t refused = 0;
		for (uint32_t i = 0; i < s.lane_count; i++) {
			ckr_lane l;
			ckr_lane_view(&s, i, &l);
			refused += atomic_load(&l.ctl->refused_full);
			if (strcmp(what, "drained") == 0 &&
			    (ckr_lane_head(&l) != ckr_lane_tail(&l) || ckr_lane_owner(&l))) {
				snprintf(state, n, "lane %u: head %" PRIu64 " tail %" PRIu64
					 " owner %#" PRIx64, i, ckr_lane_head(&l),
					 ckr_lane_tail(&l), ckr_lane_owner(&l));
				ok = 0;
				break;
			}
		}
		if (strcmp(what, "refused") == 0) {
			ok = refused >= arg;
			snprintf(state, n, "%" PRIu64 " pushes refused", refused);
		}
	}
	ckr_segment_detach(&s);
	return ok;
}

int main(int argc, char **argv)
{
	if (argc < 4 || (strcmp(argv[1], "drained") != 0 && argc < 5)) {
		fputs("usage: segwait flusher NAME PID MS | drained NAME MS | refused NAME N MS\n",
		      stderr);
		return 2;
	}
	const char *what = argv[1], *name = argv[2];
	bool drained = strcmp(what, "drained") == 0;
	uint64_t arg = drained ? 0 : strtoull(argv[3], NULL, 10);
	int64_t deadline = now_ms() + atoll(argv[drained ? 3 : 4]);
	char state[200] = "";
	for (;;) {
		if (check(what, name, arg, state, sizeof state) == 1)
			return 0;
		if (now_ms() > deadline)
			break;
		struct timespec ts = { 0, 2000000 }; /* polling a shared word: 2 ms */
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "segwait %s %s: timed out (%s)\n", what, name, state);
	return 1;
}
