/*
 * proc.c — process identity tokens and liveness (see proc.h).
 */
#include "shm/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t ckr_token_make(pid_t pid, uint64_t start_ticks)
{
	return (start_ticks << CKR_PID_BITS) | ((uint64_t)pid & CKR_PID_MASK);
}

pid_t ckr_token_pid(uint64_t token)
{
	return (pid_t)(token & CKR_PID_MASK);
}

uint64_t ckr_token_start(uint64_t token)
{
	return token >> CKR_PID_BITS;
}

/* Fields 3 (state) and 22 (start time) of /proc/PID/stat. The command name
 * (field 2) may hold spaces and parentheses, so parsing starts after the
 * last ')'. */
static int parse_stat(const char *buf, char *state, uint64_t *out)
{
	const char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == '\0')
		return -EIO;
	p++;
	*state = p[1];
	/* After ')' come fields 3.. ; starttime is field 22: skip 19 fields. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EIO;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1)
		return -EIO;
	*out = v;
	return 0;
}

static int read_stat(pid_t pid, char *state, uint64_t *out)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -EIO;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return n == 0 ? -ESRCH : -EIO; /* reaped while we read */
	buf[n] = '\0';
	return parse_stat(buf, state, out);
}

/* Threads: of /proc/PID/status; 0 when unreadable (the process is gone). */
static long thread_count(pid_t pid)
{
	char path[64], line[256];
	long n = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

int ckr_proc_start_ticks(pid_t pid, uint64_t *out)
{
	char state;
	return read_stat(pid, &state, out);
}

int ckr_proc_self_token(uint64_t *out)
{
	uint64_t start;
	int rc = ckr_proc_start_ticks(getpid(), &start);
	if (rc)
		return rc;
	*out = ckr_token_make(getpid(), start);
	return 0;
}

bool ckr_proc_alive(uint64_t token)
{
	if (token == 0)
		return false;
	pid_t pid = ckr_token_pid(token);
	uint64_t start;
	char state;
	int rc = read_stat(pid, &state, &start);
	if (rc == 0) {
		/* A dead (X) task, or a zombie (Z) whose threads are all gone,
		 * can write nothing any more. A zombie leader whose other
		 * threads still run (its main thread called pthread_exit) is
		 * alive. */
		if (state == 'X' || (state == 'Z' && thread_count(pid) <= 1))
			return false;
		return (start & (~UINT64_C(0) >> CKR_PID_BITS)) ==
		       ckr_token_start(token);
	}
	if (rc == -ESRCH)
		return false;
	return kill(pid, 0) == 0 || errno == EPERM;
}

/* The claim writers this image reopened: an open-addressing set of
 * non-zero ids (0 marks a free cell), grown at half load; a released id
 * leaves a tombstone (TAKEN_TOMB) so the probes of the others stay intact.
 * The one writer id equal to TAKEN_TOMB is kept in a flag of its own. */
static pthread_mutex_t taken_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *taken;
static size_t taken_cap, taken_used;
static bool taken_tomb_id;

#define TAKEN_TOMB UINT64_MAX /* a released cell */

/* The cell holding w, or else the first free cell of its probe. */
static size_t writer_cell(const uint64_t *set, size_t cap, uint64_t w)
{
	size_t i = (size_t)ckr_mix64(w) & (cap - 1), tomb = cap;
	for (;;) {
		if (set[i] == w)
			return i;
		if (set[i] == 0)
			return tomb < cap ? tomb : i;
		if (set[i] == TAKEN_TOMB && tomb == cap)
			tomb = i;
		i = (i + 1) & (cap - 1);
	}
}

static int taken_grow(void)
{
	size_t cap = taken_cap ? taken_cap * 2 : 64;
	uint64_t *set = calloc(cap, sizeof *set);
	if (!set)
		return -ENOMEM;
	size_t used = 0;
	for (size_t i = 0; i < taken_cap; i++)
		if (taken[i] != 0 && taken[i] != TAKEN_TOMB) {
			set[writer_cell(set, cap, taken[i])] = taken[i];
			used++;
		}
	free(taken);
	taken = set;
	taken_cap = cap;
	taken_used = used;
	return 0;
}

int ckr_proc_writer_take(uint64_t writer)
{
	int rc = 0;
	if (writer == 0)
		return -EINVAL;
	pthread_mutex_lock(&taken_lock);
	if (writer == TAKEN_TOMB) {
		rc = taken_tomb_id ? -EEXIST : 0;
		taken_tomb_id = true;
	} else if ((taken_used + 1) * 2 > taken_cap) {
		rc = taken_grow();
	}
	if (rc == 0 && writer != TAKEN_TOMB) {
		size_t i = writer_cell(taken, taken_cap, writer);
		if (taken[i] == writer) {
			rc = -EEXIST;
		} else {
			if (taken[i] == 0)
				taken_used++;
			taken[i] = writer;
		}
	}
	pthread_mutex_unlock(&taken_lock);
	return rc;
}

void ckr_proc_writer_release(uint64_t writer)
{
	pthread_mutex_lock(&taken_lock);
	if (writer == TAKEN_TOMB)
		taken_tomb_id = false;
	else if (taken_cap) {
		size_t i = writer_cell(taken, taken_cap, writer);
		if (taken[i] == writer)
			taken[i] = TAKEN_TOMB;
	}
	pthread_mutex_unlock(&taken_lock);
}

uint64_t ckr_proc_pidns(void)
{
	struct stat st;
	return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

ckr_proc_verdict ckr_proc_judge(uint64_t token, uint64_t pidns)
{
	if (pidns != 0) {
		uint64_t ours = ckr_proc_pidns();
		if (ours != 0 && ours != pidns)
			return CKR_PROC_UNKNOWN;
	}
	return ckr_proc_alive(token) ? CKR_PROC_ALIVE : CKR_PROC_DEAD;
}

/* The identity of this process image, remade when getpid() changes (a
 * forked child). Process-wide by nature: identity is a property of the
 * process. Guarded by self_lock. */
static pthread_mutex_t self_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t self_pid;
static ckr_identity self_id;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

/* A forked child has one thread: a lock held by another parent thread at
 * fork time would never be released, so the child starts afresh. */
static void self_after_fork(void)
{
	pthread_mutex_init(&self_lock, NULL);
	self_pid = 0;
}

static void self_init(void)
{
	pthread_atfork(NULL, NULL, self_after_fork);
}

static int make_identity(ckr_identity *id)
{
	uint64_t nonce = 0;
	int rc = ckr_proc_self_token(&id->token);
	if (rc)
		return rc;
	while (nonce == 0) {
		if (getrandom(&nonce, sizeof nonce, 0) == (ssize_t)sizeof nonce)
			continue;
		if (errno != EINTR)
			return -errno;
		nonce = 0;
	}
	id->nonce = nonce;
	id->pidns = ckr_proc_pidns();
	return 0;
}

int ckr_proc_self_identity(ckr_identity *out)
{
	int rc = 0;
	pthread_once(&self_once, self_init);
	pid_t pid = getpid();
	pthread_mutex_lock(&self_lock);
	if (self_pid != pid) {
		rc = make_identity(&self_id);
		self_pid = rc ? 0 : pid;
	}
	if (rc == 0)
		*out = self_id;
	pthread_mutex_unlock(&self_lock);
	return rc;
}

/* Process-wide, like the identity it extends: writer ids must differ across
 * all clients of one process image (a run begun again after close must get
 * a new writer). A forked child continues the count under its own nonce. */
static _Atomic uint64_t writer_count;

uint64_t ckr_proc_next_writer(const ckr_identity *self)
{
	for (;;) {
		/* relaxed: only uniqueness is needed, which the RMW gives. */
		uint64_t n = atomic_fetch_add_explicit(&writer_count, 1,
						       memory_order_relaxed);
		uint64_t w = ckr_mix64(self->nonce ^ ckr_mix64(n + 1));
		if (w != 0)
			return w;
	}
}
