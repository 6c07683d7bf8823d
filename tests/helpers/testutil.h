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
