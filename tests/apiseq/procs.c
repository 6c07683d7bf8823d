/*
 * procs.c — see procs.h.
 */
#include "tests/apiseq/procs.h"
#include "tests/helpers/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring/lane.h"
#include "shm/proc.h"

int64_t ap_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read exactly n bytes within the deadline (tests/helpers/testutil.c). */
static int read_full(int fd, void *buf, size_t n, int64_t deadline)
{
	int64_t left = deadline - ap_now_ms();
	return left <= 0 ? -ETIMEDOUT : tu_read_full(fd, buf, n, (int)left);
}

int ap_worker_spawn(const char *bin, const char *seg, const char *db, ap_worker *w,
		    as_rep *hello, int timeout_ms)
{
	int cmd[2], rep[2];
	if (pipe2(cmd, O_CLOEXEC))
		return -errno;
	if (pipe2(rep, O_CLOEXEC)) {
		close(cmd[0]);
		close(cmd[1]);
		return -errno;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(cmd[0]), close(cmd[1]), close(rep[0]), close(rep[1]);
		return e;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the driver */
		/* fds 3 and 4 survive exec (and the worker's own execs). */
		if (dup2(cmd[0], AS_CMD_FD) < 0 || dup2(rep[1], AS_REP_FD) < 0)
			_exit(126);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		execl(bin, "apiseq-worker", seg, db, (char *)NULL);
		_exit(127);
	}
	close(cmd[0]);
	close(rep[1]);
	memset(w, 0, sizeof *w);
	w->pid = pid;
	w->to = cmd[1];
	w->from = rep[0];
	w->alive = true;
	w->img = -1;
	void *extra = NULL;
	int rc = ap_recv(w, hello, &extra, timeout_ms);
	free(extra);
	if (rc == 0 && hello->op != OP_HELLO)
		rc = -EPROTO;
	if (rc) {
		ap_kill_reap(pid, timeout_ms);
		ap_worker_close(w);
	}
	return rc;
}

int ap_send(ap_worker *w, const as_cmd *c)
{
	size_t put = 0;
	while (put < sizeof *c) {
		ssize_t r = write(w->to, (const char *)c + put, sizeof *c - put);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		put += (size_t)r;
	}
	return 0;
}

int ap_recv(ap_worker *w, as_rep *r, void **extra, int timeout_ms)
{
	int64_t deadline = ap_now_ms() + timeout_ms;
	*extra = NULL;
	int rc = read_full(w->from, r, sizeof *r, deadline);
	if (rc)
		return rc;
	if (r->extra_len) {
		*extra = malloc(r->extra_len);
		if (!*extra)
			abort();
		rc = read_full(w->from, *extra, r->extra_len, deadline);
		if (rc) {
			free(*extra);
			*extra = NULL;
		}
	}
	return rc;
}

int ap_reap(pid_t pid, int timeout_ms)
{
	int64_t deadline = ap_now_ms() + timeout_ms;
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0)
			return -1;
		if (ap_now_ms() > deadline)
			return -1;
		/* Polling a child's exit (waitpid has no timeout): 1 ms steps. */
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

int ap_signal(pid_t pid, int sig)
{
	if (pid <= 0) {
		fprintf(stderr, "apiseq: driver bug: kill(%d, %d) refused\n", (int)pid, sig);
		abort();
	}
	return kill(pid, sig);
}

int ap_kill_reap(pid_t pid, int timeout_ms)
{
	ap_signal(pid, SIGKILL);
	return ap_reap(pid, timeout_ms);
}

void ap_worker_close(ap_worker *w)
{
	if (w->to >= 0)
		close(w->to);
	if (w->from >= 0)
		close(w->from);
	w->to = w->from = -1;
	w->alive = false;
	w->busy = false;
	w->stopped = false;
}

pid_t ap_flusher_start(const char *bin, const char *seg, const char *db,
		       const ap_flusher_opts *o, int timeout_ms, int *status)
{
	char sync[32], idle[32], map[32], att[32];
	if (o->sync == CKR_SYNC_INTERVAL)
		snprintf(sync, sizeof sync, "interval=%u", o->interval_ms);
	else
		snprintf(sync, sizeof sync, "%s", o->sync == CKR_SYNC_NONE ? "none" : "always");
	snprintf(idle, sizeof idle, "%u", o->idle_max_us ? o->idle_max_us : 1000);
	snprintf(map, sizeof map, "%llu",
		 (unsigned long long)(o->map_size ? o->map_size : UINT64_C(64) << 20));
	snprintf(att, sizeof att, "%u", o->max_attempts ? o->max_attempts : 5);
	*status = 0;
	uint64_t hb0 = 0;
	ckr_segment s;
	if (ckr_segment_attach(seg, true, &s) == 0) {
		hb0 = atomic_load(&ckr_seg_fl(&s)->heartbeat_ns);
		ckr_segment_detach(&s);
	}
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the driver */
		if (o->crash)
			setenv("CKR_FLUSHER_CRASH", o->crash, 1);
		else
			unsetenv("CKR_FLUSHER_CRASH");
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		if (!o->verbose && o->errlog) {
			int fd = open(o->errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd >= 0)
				dup2(fd, 2);
		}
		execl(bin, "ckring-flusher", "--segment", seg, "--db", db, "--sync", sync,
		      "--idle-max-us", idle, "--map-size", map, "--max-attempts", att,
		      (char *)NULL);
		_exit(127);
	}
	int64_t deadline = ap_now_ms() + timeout_ms;
	bool view = ckr_segment_attach(seg, true, &s) == 0;
	while (ap_now_ms() < deadline) {
		if (view) {
			uint64_t owner = atomic_load(&ckr_seg_fl(&s)->owner);
			uint64_t hb = atomic_load(&ckr_seg_fl(&s)->heartbeat_ns);
			/* Its slot, then the heartbeat at the end of its open:
			 * the store is set up and max_attempts recorded. */
			if (ckr_token_pid(owner) == pid && hb != hb0) {
				ckr_segment_detach(&s);
				return pid;
			}
		} else {
			view = ckr_segment_attach(seg, true, &s) == 0;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			if (view)
				ckr_segment_detach(&s);
			*status = st;
			return -1;
		}
		/* Polling two words of the segment; leave the CPU to it. */
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
	if (view)
		ckr_segment_detach(&s);
	ap_kill_reap(pid, timeout_ms);
	return -1;
}

int ap_flusher_refused(const char *bin, const char *seg, const char *db, bool create,
		       uint32_t max_attempts, int timeout_ms, int *lines, char *first,
		       size_t first_len)
{
	int err[2];
	char att[32];
	snprintf(att, sizeof att, "%u", max_attempts);
	*lines = 0;
	if (first_len)
		first[0] = '\0';
	if (pipe2(err, O_CLOEXEC))
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(err[1], 2);
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		unsetenv("CKR_FLUSHER_CRASH");
		if (create)
			execl(bin, "ckring-flusher", "--segment", seg, "--db", db, "--create",
			      "--max-attempts", att, (char *)NULL);
		else
			execl(bin, "ckring-flusher", "--segment", seg, "--db", db,
			      "--max-attempts", att, (char *)NULL);
		_exit(127);
	}
	close(err[1]);
	char buf[4096];
	size_t n = 0;
	int64_t deadline = ap_now_ms() + timeout_ms;
	for (;;) {
		int64_t left = deadline - ap_now_ms();
		if (left <= 0)
			break;
		struct pollfd p = { .fd = err[0], .events = POLLIN };
		int rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		ssize_t r = read(err[0], buf + n, sizeof buf - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof buf - 1)
			break;
	}
	close(err[0]);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		*lines += buf[i] == '\n';
	if (n && buf[n - 1] != '\n')
		(*lines)++;
	char *nl = strchr(buf, '\n');
	size_t fl = nl ? (size_t)(nl - buf) : n;
	if (first_len)
		snprintf(first, first_len, "%.*s", (int)fl, buf);
	int st = ap_reap(pid, timeout_ms);
	if (st == -1)
		ap_kill_reap(pid, timeout_ms);
	return st;
}

int ap_lanes_drained(const ckr_segment *seg, int timeout_ms)
{
	int64_t deadline = ap_now_ms() + timeout_ms;
	for (;;) {
		bool all = true;
		for (uint32_t i = 0; i < seg->lane_count && all; i++) {
			ckr_lane l;
			ckr_lane_view(seg, i, &l);
			all = ckr_lane_head(&l) == ckr_lane_tail(&l);
		}
		if (all)
			return 0;
		if (ap_now_ms() > deadline)
			return -ETIMEDOUT;
		/* Waiting on words the flusher moves: 200 us polls. */
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

int ap_lanes_freed(const ckr_segment *seg, const uint64_t *live, size_t n, int timeout_ms)
{
	int64_t deadline = ap_now_ms() + timeout_ms;
	for (;;) {
		bool all = true;
		for (uint32_t i = 0; i < seg->lane_count && all; i++) {
			ckr_lane l;
			ckr_lane_view(seg, i, &l);
			uint64_t o = ckr_lane_owner(&l);
			if (o == 0)
				continue;
			bool held = false;
			for (size_t k = 0; k < n && !held; k++)
				held = live[k] == o;
			all = held;
		}
		if (all)
			return 0;
		if (ap_now_ms() > deadline)
			return -ETIMEDOUT;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}
