/*
 * procs.h — the processes of the API-sequence test: workers (fork + exec of
 * apiseq-worker with a command pipe and a reply pipe), the real ckring-flusher
 * of the hooks build, second flushers that must be refused, and a read-only
 * view of the segment for quiescing (every lane's head reaches its tail).
 *
 * Every wait is bounded and waits on an event (a pipe, a pid, a word in the
 * segment); nothing sleeps as synchronisation.
 *
 * Concurrency: the driver's thread only.
 */
#ifndef CKR_APISEQ_PROCS_H
#define CKR_APISEQ_PROCS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/segment.h"
#include "tests/apiseq/proto.h"

typedef struct ap_worker {
	pid_t pid;
	int to, from;           /* command pipe (write end), reply pipe (read end) */
	int img;                /* the model's image of the current process image */
	bool alive, stopped, busy;
	as_cmd pend;            /* the command in flight */
	int64_t t_send;
} ap_worker;

/* Start a worker; waits (bounded) for its hello. @return 0; -errno. */
int ap_worker_spawn(const char *bin, const char *seg, const char *db, ap_worker *w,
		    as_rep *hello, int timeout_ms);

/* Send one command. @return 0; -EPIPE the worker is gone. */
int ap_send(ap_worker *w, const as_cmd *c);

/* Read one reply and its extra bytes (*extra malloc'd or NULL; free it).
 * @return 0; -EPIPE end of file (the worker died); -ETIMEDOUT. */
int ap_recv(ap_worker *w, as_rep *r, void **extra, int timeout_ms);

/* SIGKILL and reap (bounded). @return the wait status, -1 on timeout. */
int ap_kill_reap(pid_t pid, int timeout_ms);

/* kill(pid, sig) for one process only: a pid <= 0 (kill(0) would signal
 * the driver's own process group, kill(-1) every process) is a driver bug,
 * reported on stderr before abort() (a core shows where). */
int ap_signal(pid_t pid, int sig);

/* Reap a process that is exiting. @return the wait status; -1 timeout. */
int ap_reap(pid_t pid, int timeout_ms);

/* Close a worker's pipes (after it is gone). */
void ap_worker_close(ap_worker *w);

typedef struct ap_flusher_opts {
	int sync;               /* ckr_sync */
	uint32_t interval_ms;
	const char *crash;      /* CKR_FLUSHER_CRASH or NULL */
	uint32_t idle_max_us;
	uint64_t map_size;      /* 0: default */
	uint32_t max_attempts;
	bool verbose;           /* keep its stderr (else into errlog) */
	const char *errlog;     /* its stderr (truncated at each start) */
} ap_flusher_opts;

/* Start ckring-flusher on seg/db and wait (bounded) until it serves the
 * segment (its pid in the flusher slot). @return the pid, or -1 (then
 * *status holds its exit status if it exited). */
pid_t ap_flusher_start(const char *bin, const char *seg, const char *db,
		       const ap_flusher_opts *o, int timeout_ms, int *status);

/* Run a flusher that must be refused; capture its stderr. @return its exit
 * status (-1 when it did not exit in time: it was killed); *lines the
 * number of stderr lines, first the first of them. */
int ap_flusher_refused(const char *bin, const char *seg, const char *db, bool create,
		       uint32_t max_attempts, int timeout_ms, int *lines, char *first,
		       size_t first_len);

/* Wait until every lane's head reached its tail. @return 0; -ETIMEDOUT. */
int ap_lanes_drained(const ckr_segment *seg, int timeout_ms);

/* Wait until no lane is held except by the given live tokens (the flusher
 * freed every lane of a dead or detached owner). @return 0; -ETIMEDOUT. */
int ap_lanes_freed(const ckr_segment *seg, const uint64_t *live, size_t n, int timeout_ms);

int64_t ap_now_ms(void);

#endif /* CKR_APISEQ_PROCS_H */
