/*
 * tu_host.h — helpers of the "survive the host" tests (issue 12): run the
 * real tools as child processes with their output in files, start them at
 * one moment (a gate), and read back what they said. Uses only the public
 * headers and testutil, so the tests built on it can also be built against
 * an older tree to show that they fail there.
 */
#ifndef CKR_TU_HOST_H
#define CKR_TU_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* $BUILD/bin/TOOL (the release tools), or $BUILD/hooks/bin/TOOL when hooks
 * is true. Each call returns its own static buffer slot (8 slots). */
const char *tu_tool(const char *tool, bool hooks);

/* A gate: children started through it wait until tu_gate_open(), then all
 * go at once (they see the pipe's end of file together). */
typedef struct tu_gate {
	int r, w;
} tu_gate;

void tu_gate_init(tu_gate *g);
/* In a child: wait for the gate (returns at once when g is NULL). */
void tu_gate_wait(const tu_gate *g);
/* In the parent, after every child was forked: let them go. */
void tu_gate_open(tu_gate *g);

/*
 * Fork and exec argv[0] with argv (NULL-ended); stdout and stderr go to
 * the files out and err (NULL: /dev/null), created afresh. With a gate the
 * child waits for it before the exec. @return the child's pid (asserts).
 */
pid_t tu_spawn(const char *const *argv, const char *out, const char *err,
	       const tu_gate *gate);

/* Wait (bounded: TU_TIMEOUT_MS) for pid; its exit status 0..255, 128+N for
 * a death by signal N, or -1 when it did not end in time (then killed). */
int tu_exit_code(pid_t pid);

/* The whole file (NUL-terminated, malloc'd; "" when unreadable). */
char *tu_slurp(const char *path);

/* Lines of text s (a last line without newline counts). */
int tu_lines(const char *s);

/* Run argv to its end with output in out/err files; its exit code as
 * tu_exit_code. */
int tu_run(const char *const *argv, const char *out, const char *err);

/* Start ckring-flusher (the hooks build) with stderr to err_path and wait
 * (bounded) until it serves seg: its pid, or -1 when it exited first. The
 * arguments after --segment/--db are extra (NULL-ended, may be NULL). */
pid_t tu_flusher_spawn(const char *seg, const char *db, const char *err_path,
		       const char *const *extra);

/* Is the flusher slot of segment seg held by a live flusher with this pid
 * (read through a read-only attach of the segment)? */
bool tu_flusher_serves(const char *seg, pid_t pid);

#endif
