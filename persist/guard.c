/*
 * guard.c — SIGBUS guard frames (see guard.h).
 *
 * Per thread, the innermost frame: process-wide state by nature of signals,
 * kept as initial-exec TLS so a signal handler reads it without any call (a
 * dynamic TLS access could allocate inside the handler).
 */
#include "persist/guard.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

static __thread ckr_guard *guard_top __attribute__((tls_model("initial-exec")));

void ckr_guard_push(ckr_guard *g, const void *base, size_t size)
{
	g->base = base;
	g->size = size;
	g->fault_addr = NULL;
	g->prev = guard_top;
	/* A compiler barrier is enough: the handler runs on this thread. */
	atomic_signal_fence(memory_order_seq_cst);
	guard_top = g;
	atomic_signal_fence(memory_order_seq_cst);
}

void ckr_guard_pop(ckr_guard *g)
{
	atomic_signal_fence(memory_order_seq_cst);
	guard_top = g->prev;
	atomic_signal_fence(memory_order_seq_cst);
}

static bool in_frame(const ckr_guard *g, const void *addr)
{
	uintptr_t a = (uintptr_t)addr, b = (uintptr_t)g->base;
	return a >= b && a - b < g->size;
}

void ckr_guard_unwind(const siginfo_t *si)
{
	/* Only a fault the kernel raised (BUS_ADRERR and kin), at an address
	 * a frame of this thread answers for. */
	if (!si || si->si_code <= 0)
		return;
	for (ckr_guard *g = guard_top; g; g = g->prev) {
		if (!in_frame(g, si->si_addr))
			continue;
		sigset_t bus;
		guard_top = g->prev;
		g->fault_addr = si->si_addr;
		/* sigsetjmp(env, 0) restores no mask: unblock what the kernel
		 * blocked for the handler (SIGBUS, unless SA_NODEFER). */
		sigemptyset(&bus);
		sigaddset(&bus, SIGBUS);
		pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
		siglongjmp(g->env, 1);
	}
}
