/*
 * tu_flusher.h — test helpers around the real ckring-flusher (the hooks
 * build, $BUILD/hooks/bin, whose crash points CKR_FLUSHER_CRASH selects) and
 * the client calls most flusher tests repeat. Every wait is bounded
 * (TU_TIMEOUT_MS) and synchronised on an event, never on a sleep.
 */
#ifndef CKR_TU_FLUSHER_H
#define CKR_TU_FLUSHER_H

#include <stdbool.h>
#include <sys/types.h>

#include "ckring_store.h"

/* The path of a tool of the hooks build ("ckring-flusher"). Static buffer. */
const char *tu_hooks_bin(const char *tool);

/*
 * Start ckring-flusher on segment seg (created, 4 lanes of 256 KiB) and store
 * db; crash: CKR_FLUSHER_CRASH or NULL; extra: further arguments, NULL-ended
 * (may be NULL). Waits until it serves the segment (its store is ready).
 * @return its pid, or -1 (it exited or never got there).
 */
pid_t tu_flusher_start(const char *seg, const char *db, const char *crash,
		       const char *const *extra);

/* SIGTERM, then its exit status (-1: did not exit in time, or by a signal). */
int tu_flusher_stop(pid_t pid);

/* SIGKILL and reap. */
void tu_flusher_kill(pid_t pid);

/* Begin run id (retrying while the ring is full); asserts success. */
ckr_run *tu_begin(ckr_client *c, const char *id, ckr_kind kind, ckr_ticket *t);

/* Push "message from" .. "message from+n-1" (retrying while full); the
 * ticket of the last. */
ckr_ticket tu_push_msgs(ckr_run *r, int from, int n);

/* The run's resume state (asserts it exists). Free with ckr_resume_free. */
ckr_resume *tu_resume(const char *db, const char *id);

/* The run's summary (asserts it exists). */
ckr_run_info tu_run_info(const char *db, const char *id);

/* The transcript of run id is exactly "message 0".."message n-1", no gap. */
void tu_assert_history(const char *db, const char *id, int n);

/* A counter of the store ("stored", "foreign", ...). */
uint64_t tu_store_counter(const char *db, const char *name);

#endif
