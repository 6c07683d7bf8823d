/*
 * futex.h — process-shared futex wait/wake on 32-bit words in the segment.
 *
 * Never used on the push path: only by a producer that chose to wait for
 * durability and by the flusher around its idle sleep.
 * Concurrency: any thread of any process mapping the word.
 */
#ifndef CKR_FUTEX_H
#define CKR_FUTEX_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * Sleep while *word == expected, at most timeout_ns (< 0: no bound).
 * @return 0 woken (or the word had changed); -ETIMEDOUT; -EINTR.
 * Not FUTEX_PRIVATE: the word is shared between processes.
 */
static inline int ckr_futex_wait(_Atomic uint32_t *word, uint32_t expected,
				 int64_t timeout_ns)
{
	struct timespec ts, *tp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000);
		ts.tv_nsec = (long)(timeout_ns % 1000000000);
		tp = &ts;
	}
	long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, tp,
			  NULL, 0);
	if (rc == 0 || errno == EAGAIN)
		return 0;
	return -errno;
}

/* Wake up to n sleepers on word. This function can't fail in practice. */
static inline void ckr_futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}

#endif /* CKR_FUTEX_H */
