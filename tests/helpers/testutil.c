/*
 * testutil.c — see testutil.h.
 */
#include "tests/helpers/testutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/segment.h"

const char *tu_segname(const char *tag)
{
	static char names[8][96];
	static int n;
	char *s = names[n % 8];
	snprintf(s, sizeof names[0], "ckrt-%d-%d-%s", (int)getpid(), n, tag);
	n++;
	return s;
}

char *tu_tmpdir(const char *tag)
{
	static char dirs[8][128];
	static int n;
	char *s = dirs[n++ % 8];
	snprintf(s, sizeof dirs[0], "/tmp/ckrt-%s-XXXXXX", tag);
	if (!mkdtemp(s)) {
		perror("mkdtemp");
		abort();
	}
	return s;
}

void tu_rmrf(const char *dir)
{
	char cmd[300];
	if (!dir || strncmp(dir, "/tmp/ckrt-", 10) != 0)
		return; /* only ever our own temp dirs */
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
}

int64_t tu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tu_read_full(int fd, void *buf, size_t n, int timeout_ms)
{
	int64_t deadline = tu_now_ms() + timeout_ms;
	size_t got = 0;
	while (got < n) {
		int64_t left = deadline - tu_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -ETIMEDOUT;
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r == 0)
			return -EPIPE;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			got += (size_t)r;
	}
	return 0;
}

int tu_wait_child(pid_t pid, int timeout_ms)
{
	int64_t deadline = tu_now_ms() + timeout_ms;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		if (tu_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		/* Polling a child's exit: waitpid has no timeout. 1 ms steps. */
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

bool tu_wait_stopped(pid_t pid, int timeout_ms)
{
	int64_t deadline = tu_now_ms() + timeout_ms;
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	while (tu_now_ms() < deadline) {
		FILE *f = fopen(path, "r");
		if (!f)
			return false;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *p = strrchr(buf, ')');
		if (p && (p[2] == 'T' || p[2] == 't'))
			return true;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

/* ---- appended helpers (stress / multi-process tests) ---- */

long tu_env_long(const char *name, long def)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	return (errno || *end) ? def : v;
}

bool tu_known_bugs(void)
{
	return tu_env_long("CKR_TEST_KNOWN_BUGS", 0) == 1;
}

uint64_t tu_seed(const char *tag)
{
	uint64_t s = (uint64_t)tu_env_long("CKR_SEED", 0);
	if (s == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		s = tu_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32)) | 1;
	}
	fprintf(stderr, "%s: CKR_SEED=%llu\n", tag, (unsigned long long)s);
	return s;
}

uint64_t tu_mix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

void tu_shm_path(const char *name, char *out, size_t n)
{
	snprintf(out, n, "/dev/shm/%s", name);
}

char tu_proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return (p && p[1] == ' ') ? p[2] : 0;
}

uint64_t tu_seg_size(uint32_t lanes, uint64_t lane_bytes)
{
	ckr_segment_opts o = { .lanes = lanes, .group = (gid_t)-1 };
	ckr_seg_geometry g;
	if (ckr_segment_geometry(&o, &g) != 0)
		return 0;
	return g.data_offset + (uint64_t)lanes * lane_bytes;
}
