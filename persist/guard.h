/*
 * guard.h — surviving a segment that shrinks under the flusher (SIGBUS).
 *
 * A process that touches a page of a shared mapping beyond the end of the
 * object (someone with write access ftruncate()d the segment, or tmpfs had
 * no page to give) gets SIGBUS, which kills it by default. No size check can
 * close that window (the object can shrink between the check and the load),
 * so the flusher engine runs every stretch of code that touches the segment
 * inside a *guard frame*:
 *
 *     ckr_guard g;
 *     if (sigsetjmp(g.env, 0))          // 2nd return: a SIGBUS unwound here
 *             return ...g.fault_addr...; // the region's state is abandoned
 *     ckr_guard_push(&g, base, size);
 *     ... touch [base, base + size) ...
 *     ckr_guard_pop(&g);
 *
 * The handler that unwinds is installed only by ckr_guard_install() (public:
 * ckr_flusher_catch_sigbus(), ckring_store.h), an explicit opt-in of the
 * program: the library never installs a handler behind its caller's back.
 * Without it a frame costs the same and does nothing (SIGBUS stays fatal).
 *
 * The handler unwinds only a SIGBUS raised by the kernel for a fault (si_code
 * > 0) at an address inside the range of a frame of the faulting thread; it
 * unwinds to the innermost such frame. Anything else — a SIGBUS sent with
 * kill(), a fault in another mapping (LMDB's), a thread with no frame — goes
 * to the disposition that was in place before the opt-in: that handler is
 * called, or the default action is restored and the fault repeats (death).
 *
 * What may run inside a frame: code that can be abandoned at any load or
 * store of the range — no lock held, no allocation half done. The flusher
 * keeps the one such resource it has, an open store batch, in its handle
 * and aborts it after an unwind.
 *
 * Cost: sigsetjmp without the signal mask (no system call: the handler is
 * installed with SA_NODEFER, so SIGBUS is not blocked when it unwinds) and
 * two thread-local stores. Never on the push path.
 *
 * Concurrency: frames are per thread; install is thread-safe and idempotent.
 */
#ifndef CKR_GUARD_H
#define CKR_GUARD_H

#include <setjmp.h>
#include <stddef.h>

typedef struct ckr_guard {
	sigjmp_buf env;
	const unsigned char *base; /* the range this frame answers for */
	size_t size;
	struct ckr_guard *prev;    /* the enclosing frame of this thread */
	void *fault_addr;          /* after an unwind: the address that faulted */
} ckr_guard;

/* Enter frame g (after sigsetjmp(g->env, 0) returned 0) for [base, base+size).
 * This function can't fail. */
void ckr_guard_push(ckr_guard *g, const void *base, size_t size);

/* Leave frame g (the innermost one of this thread). Not after an unwind: the
 * handler has left it already. This function can't fail. */
void ckr_guard_pop(ckr_guard *g);

/* Install the process-wide SIGBUS handler (once; later calls return 0).
 * @return 0; -errno of sigaction. */
int ckr_guard_install(void);

#endif /* CKR_GUARD_H */
