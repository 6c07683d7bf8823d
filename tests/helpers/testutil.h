/*
 * testutil.h — helpers shared by the tests: unique names, temp dirs, bounded
 * waits on events (never sleeps as synchronisation), child processes.
 */
#ifndef CKR_TESTUTIL_H
#define CKR_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Generous bound for every wait in a test, in milliseconds. */
#define TU_TIMEOUT_MS 30000

/* A segment name unique to this process and call: "ckrt-<pid>-<n>-<tag>". */
const char *tu_segname(const char *tag);

/* mkdtemp under /tmp; the returned string is static per call slot. */
char *tu_tmpdir(const char *tag);

/* rm -rf dir (best effort). */
void tu_rmrf(const char *dir);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t tu_now_ms(void);

/* Read exactly n bytes from fd within timeout_ms. @return 0; -ETIMEDOUT;
 * -EPIPE on EOF; -errno. */
int tu_read_full(int fd, void *buf, size_t n, int timeout_ms);

/* Wait for child pid to exit within timeout_ms (then SIGKILL it).
 * @return the wait status, or -1 on timeout. */
int tu_wait_child(pid_t pid, int timeout_ms);

/* Wait until /proc says pid is stopped (state T) within timeout_ms. */
bool tu_wait_stopped(pid_t pid, int timeout_ms);

#endif

/* ---- appended helpers (stress / multi-process tests) ---- */

/* An integer from the environment variable name, or def when unset or
 * malformed. */
long tu_env_long(const char *name, long def);

/* True when CKR_TEST_KNOWN_BUGS=1: tests that demonstrate a reported, not
 * yet fixed bug run (and fail) instead of being skipped. */
bool tu_known_bugs(void);

/* A random seed, or CKR_SEED from the environment; printed to stderr with
 * the tag so a failing run can be replayed. */
uint64_t tu_seed(const char *tag);

/* splitmix64: a well-mixed 64-bit hash of x (deterministic test data). */
uint64_t tu_mix64(uint64_t x);

/* "/dev/shm/NAME" into out (size n). */
void tu_shm_path(const char *name, char *out, size_t n);

/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...), or 0 if the
 * process cannot be read. */
char tu_proc_state(pid_t pid);

/* The total size of a segment of `lanes` lanes of exactly lane_bytes each
 * and the default writer slots (what ckr_segment_opts.size must be). */
uint64_t tu_seg_size(uint32_t lanes, uint64_t lane_bytes);
