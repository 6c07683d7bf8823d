/*
 * tu_host.c — see tu_host.h.
 */
#include "tests/helpers/tu_host.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm/proc.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"

const char *tu_tool(const char *tool, bool hooks)
{
	static char paths[8][512];
	static int n;
	char *p = paths[n++ % 8];
	const char *b = getenv("BUILD");
	snprintf(p, sizeof paths[0], "%s/%sbin/%s", b && *b ? b : "build",
		 hooks ? "hooks/" : "", tool);
	return p;
}

void tu_gate_init(tu_gate *g)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	g->r = p[0];
	g->w = p[1];
}

void tu_gate_wait(const tu_gate *g)
{
	char c;
	if (!g)
		return;
	close(g->w);
	while (read(g->r, &c, 1) < 0 && errno == EINTR)
		;
	close(g->r);
}

void tu_gate_open(tu_gate *g)
{
	close(g->r);
	close(g->w);
	g->r = g->w = -1;
}

static void redirect(int to, const char *path)
{
	int fd = open(path ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		      0600);
	if (fd < 0 || dup2(fd, to) < 0)
		_exit(126);
	close(fd);
}

pid_t tu_spawn(const char *const *argv, const char *out, const char *err,
	       const tu_gate *gate)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		redirect(STDOUT_FILENO, out);
		redirect(STDERR_FILENO, err);
		tu_gate_wait(gate);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int tu_exit_code(pid_t pid)
{
	int st = tu_wait_child(pid, TU_TIMEOUT_MS);
	if (st < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *tu_slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	size_t cap = 4096, n = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	if (f) {
		size_t r;
		while ((r = fread(s + n, 1, cap - n - 1, f)) > 0) {
			n += r;
			if (cap - n < 2) {
				cap *= 2;
				s = realloc(s, cap);
				assert_non_null(s);
			}
		}
		fclose(f);
	}
	s[n] = '\0';
	return s;
}

int tu_lines(const char *s)
{
	int n = 0;
	for (const char *p = s; *p; p++)
		if (*p == '\n' || p[1] == '\0')
			n++;
	return n;
}

int tu_run(const char *const *argv, const char *out, const char *err)
{
	return tu_exit_code(tu_spawn(argv, out, err, NULL));
}

bool tu_flusher_serves(const char *seg, pid_t pid)
{
	ckr_segment s;
	if (ckr_segment_attach(seg, true, &s) != 0)
		return false;
	/* acquire: the flusher publishes its token once its store is ready. */
	uint64_t owner = atomic_load_explicit(&ckr_seg_fl(&s)->owner, memory_order_acquire);
	ckr_segment_detach(&s);
	return owner != 0 && ckr_token_pid(owner) == pid;
}

pid_t tu_flusher_spawn(const char *seg, const char *db, const char *err_path,
		       const char *const *extra)
{
	const char *argv[40] = { tu_tool("ckring-flusher", true), "--segment", seg,
				 "--db", db };
	int n = 5;
	for (int i = 0; extra && extra[i] && n < 39; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid_t pid = tu_spawn(argv, NULL, err_path, NULL);
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (tu_now_ms() < deadline) {
		if (tu_flusher_serves(seg, pid))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		sched_yield();
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}
