/*
 * tu_flusher.c — see tu_flusher.h.
 */
#include "tests/helpers/tu_flusher.h"

#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "persist/store.h"
#include "shm/proc.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"

const char *tu_hooks_bin(const char *tool)
{
	static char path[512];
	const char *b = getenv("BUILD");
	snprintf(path, sizeof path, "%s/hooks/bin/%s", b && *b ? b : "build", tool);
	return path;
}

static void exec_flusher(const char *seg, const char *db, const char *crash,
			 const char *const *extra)
{
	const char *argv[32] = { "ckring-flusher", "--segment", seg, "--db", db,
				 "--create", "--size", "1048576", "--lanes", "4",
				 "--idle-max-us", "200" };
	int n = 12;
	for (int i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	if (crash)
		setenv("CKR_FLUSHER_CRASH", crash, 1);
	else
		unsetenv("CKR_FLUSHER_CRASH");
	execv(tu_hooks_bin("ckring-flusher"), (char *const *)argv);
	_exit(127);
}

pid_t tu_flusher_start(const char *seg, const char *db, const char *crash,
		       const char *const *extra)
{
	pid_t pid = fork();
	if (pid == 0)
		exec_flusher(seg, db, crash, extra);
	ckr_segment s;
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (tu_now_ms() < deadline) {
		if (ckr_segment_attach(seg, true, &s) == 0) {
			uint64_t owner = atomic_load(&ckr_seg_fl(&s)->owner);
			ckr_segment_detach(&s);
			if (ckr_token_pid(owner) == pid) /* its store is ready too */
				return pid;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		sched_yield();
	}
	kill(pid, SIGKILL);
	return -1;
}

int tu_flusher_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	int st = tu_wait_child(pid, TU_TIMEOUT_MS);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void tu_flusher_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	tu_wait_child(pid, TU_TIMEOUT_MS);
}

ckr_run *tu_begin(ckr_client *c, const char *id, ckr_kind kind, ckr_ticket *t)
{
	ckr_run *r = NULL;
	ckr_run_spec s = { .id = id, .id_len = strlen(id), .kind = kind, .label = "t" };
	int rc;
	while ((rc = ckr_run_begin(c, &s, &r, t)) == -EAGAIN)
		sched_yield();
	assert_int_equal(rc, 0);
	return r;
}

ckr_ticket tu_push_msgs(ckr_run *r, int from, int n)
{
	ckr_ticket t = { 0 };
	char msg[64];
	for (int i = from; i < from + n; i++) {
		int len = snprintf(msg, sizeof msg, "message %d", i), rc;
		while ((rc = ckr_run_message(r, msg, (size_t)len, &t)) == -EAGAIN)
			sched_yield();
		assert_int_equal(rc, 0);
	}
	return t;
}

static ckr_store *open_ro(const char *db)
{
	ckr_store *s;
	ckr_store_opts o = { .read_only = true };
	assert_int_equal(ckr_store_open(db, &o, &s), 0);
	return s;
}

ckr_resume *tu_resume(const char *db, const char *id)
{
	ckr_store *s = open_ro(db);
	ckr_resume *rs;
	assert_int_equal(ckr_store_resume(s, id, strlen(id), &rs), 0);
	ckr_store_close(s);
	return rs;
}

ckr_run_info tu_run_info(const char *db, const char *id)
{
	ckr_store *s = open_ro(db);
	ckr_run_info in;
	assert_int_equal(ckr_store_get(s, id, strlen(id), &in), 0);
	ckr_store_close(s);
	return in;
}

void tu_assert_history(const char *db, const char *id, int n)
{
	ckr_resume *rs = tu_resume(db, id);
	assert_int_equal(rs->n_gaps, 0);
	assert_int_equal(rs->n_history, (size_t)n);
	char want[64];
	for (int i = 0; i < n; i++) {
		int len = snprintf(want, sizeof want, "message %d", i);
		assert_int_equal(rs->history[i].seq, (uint64_t)i + 1);
		assert_int_equal(rs->history[i].size, (size_t)len);
		assert_memory_equal(rs->history[i].data, want, (size_t)len);
	}
	assert_int_equal(rs->next_seq, (uint64_t)n + 1);
	ckr_resume_free(rs);
}

uint64_t tu_store_counter(const char *db, const char *name)
{
	ckr_store *s = open_ro(db);
	uint64_t n = ckr_store_counter(s, name);
	ckr_store_close(s);
	return n;
}
