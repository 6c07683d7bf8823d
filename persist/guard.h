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
 * The library installs no handler (it never installs one behind its
 * caller's back): a program that wants to survive calls ckr_guard_unwind()
 * — public: ckr_flusher_on_sigbus(), ckring_store.h — from a SIGBUS handler
 * of its own (ckring-flusher does). Without that a frame costs the same and
 * does nothing: SIGBUS stays fatal.
 *
 * ckr_guard_unwind() unwinds only a SIGBUS raised by the kernel for a fault
 * (si_code > 0) at an address inside the range of a frame of the faulting
 * thread, to the innermost such frame; it returns for anything else — a
 * SIGBUS sent with kill(), a fault in another mapping (LMDB's), a thread
 * with no frame — and the program's handler then does what it would have
 * done (ckring-flusher restores the default action: the fault repeats and
 * kills).
 *
 * What may run inside a frame: code that can be abandoned at any load or
 * store of the range — no lock held, no allocation half done. The flusher
 * keeps the one such resource it has, an open store batch, in its handle
 * and aborts it after an unwind.
 *
 * Cost: sigsetjmp without the signal mask (no system call; the unwind
 * itself unblocks SIGBUS, the one signal the kernel blocked for the
 * handler) and two thread-local stores. Never on the push path.
 *
 * Concurrency: frames are per thread; ckr_guard_unwind is async-signal-safe.
 */
#ifndef CKR_GUARD_H
#define CKR_GUARD_H

#include <setjmp.h>
#include <signal.h>
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

/* From a SIGBUS handler (SA_SIGINFO): does not return when the fault is
 * one a frame of this thread answers for (that frame's sigsetjmp returns
 * 1); returns otherwise. Async-signal-safe. */
void ckr_guard_unwind(const siginfo_t *si);

#endif /* CKR_GUARD_H */
