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

#include "shm/shared.h"

#define CKR_PID_BITS 22
#define CKR_PID_MASK ((UINT64_C(1) << CKR_PID_BITS) - 1)

/* Make a token; start is cut to 42 bits. This function can't fail. */
CKR_SHARED uint64_t ckr_token_make(pid_t pid, uint64_t start_ticks);
CKR_SHARED pid_t ckr_token_pid(uint64_t token);
CKR_SHARED uint64_t ckr_token_start(uint64_t token);

/*
 * Read a process's start time (clock ticks since boot).
 * @return 0; -ESRCH no such process; -EIO /proc unreadable or malformed.
 */
int ckr_proc_start_ticks(pid_t pid, uint64_t *out);

/* This process's token. @return 0, or the errors of ckr_proc_start_ticks. */
CKR_SHARED int ckr_proc_self_token(uint64_t *out);

/*
 * Is the process named by token alive? False for token 0. When /proc cannot
 * tell (e.g. hidepid), falls back to kill(pid, 0), which can only err on the
 * side of "alive". Meaningful only for a token of this pid namespace (see
 * ckr_proc_judge).
 */
bool ckr_proc_alive(uint64_t token);

/*
 * The owner identity of a process image (ring/PROTOCOL.md, "Identities"):
 * the token (pid + start time), a nonce of 64 random bits made once per
 * process image (anew in a forked child, and after exec since memory is
 * new), and the inode of the process's pid namespace (0 when unknown).
 */
typedef struct ckr_identity {
	uint64_t token;
	uint64_t nonce;
	uint64_t pidns;
} ckr_identity;

/*
 * This process image's identity (cached; recomputed in a forked child).
 * @return 0; -EIO /proc unreadable; -errno of getrandom.
 * Thread-safe; makes system calls (getpid at least): not for a hot path.
 */
CKR_SHARED int ckr_proc_self_identity(ckr_identity *out);

/* Same process image? This function can't fail. */
static inline bool ckr_identity_eq(const ckr_identity *a, const ckr_identity *b)
{
	return a->token == b->token && a->nonce == b->nonce;
}

/*
 * A new writer id for this process image (ring/PROTOCOL.md "Identities"):
 * distinct from every other writer id this image made, and (with the
 * image's random nonce) from other images'. Never 0. Lock-free, no system
 * call: safe on the begin path.
 */
uint64_t ckr_proc_next_writer(const ckr_identity *self);

/*
 * Take a claim's writer id for this process image, once: ckr_run_reopen()
 * continues a claim at its next_seq, so a second reopen of one claim would
 * repeat stored sequence numbers under the same writer (rejected as
 * duplicates, and a waiter could no longer tell its stored events from its
 * rejected ones). ckr_proc_writer_release() gives back a writer whose
 * reopen failed before any event.
 * @return 0 taken; -EEXIST this image took it before; -ENOMEM.
 * Thread-safe (a mutex); not for a hot path.
 */
int ckr_proc_writer_take(uint64_t writer);
void ckr_proc_writer_release(uint64_t writer);

/* The inode of this process's pid namespace; 0 when /proc cannot tell. */
uint64_t ckr_proc_pidns(void);

typedef enum ckr_proc_verdict {
	CKR_PROC_DEAD = 0,
	CKR_PROC_ALIVE = 1,
	CKR_PROC_UNKNOWN = 2, /* another pid namespace: /proc can't tell */
} ckr_proc_verdict;

/*
 * Judge a token by /proc, only where /proc can: a token recorded in another
 * pid namespace (pidns non-zero and not ours) is UNKNOWN.
 */
CKR_SHARED ckr_proc_verdict ckr_proc_judge(uint64_t token, uint64_t pidns);

/*
 * A 64-bit mixing function (splitmix64's finaliser): distinct inputs give
 * distinct outputs. Pure; for writer ids and salts.
 */
static inline uint64_t ckr_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

#endif /* CKR_PROC_H */
