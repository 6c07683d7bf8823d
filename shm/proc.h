/*
 * proc.h — process identity: pid + process start time, as one 64-bit token.
 *
 * A pid alone is not an identity (pids are reused), so owners are recorded as
 * a token: the pid in the low 22 bits (Linux pid_max is at most 2^22) and the
 * process start time (clock ticks since boot, /proc/PID/stat field 22) in the
 * high 42 bits. 0 is never a valid token. A process is alive when a process
 * with that pid exists and started at that time; a stopped process is alive.
 *
 * Concurrency: all functions are thread-safe. They make system calls (read
 * /proc), so none of them belongs on a hot path.
 */
#ifndef CKR_PROC_H
#define CKR_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CKR_PID_BITS 22
#define CKR_PID_MASK ((UINT64_C(1) << CKR_PID_BITS) - 1)

/* Make a token; start is cut to 42 bits. This function can't fail. */
uint64_t ckr_token_make(pid_t pid, uint64_t start_ticks);
pid_t ckr_token_pid(uint64_t token);
uint64_t ckr_token_start(uint64_t token);

/*
 * Read a process's start time (clock ticks since boot).
 * @return 0; -ESRCH no such process; -EIO /proc unreadable or malformed.
 */
int ckr_proc_start_ticks(pid_t pid, uint64_t *out);

/* This process's token. @return 0, or the errors of ckr_proc_start_ticks. */
int ckr_proc_self_token(uint64_t *out);

/*
 * Is the process named by token alive? False for token 0. When /proc cannot
 * tell (e.g. hidepid), falls back to kill(pid, 0), which can only err on the
 * side of "alive".
 */
bool ckr_proc_alive(uint64_t token);

#endif /* CKR_PROC_H */
