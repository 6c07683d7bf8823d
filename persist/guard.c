/*
 * guard.c — SIGBUS guard frames (see guard.h).
 *
 * Process-wide state, by nature of signals: the disposition in place before
 * ckr_guard_install() (to chain to), and per thread the innermost frame. The
 * frame pointer is initial-exec TLS so the handler reads it without any call
 * (a dynamic TLS access could allocate inside a signal handler).
 */
#include "persist/guard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static __thread ckr_guard *guard_top __attribute__((tls_model("initial-exec")));
static struct sigaction guard_previous;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static int guard_install_rc;

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

/* Not ours: what the process had before the opt-in. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	if (guard_previous.sa_flags & SA_SIGINFO) {
		guard_previous.sa_sigaction(sig, si, uc);
		return;
	}
	if (guard_previous.sa_handler != SIG_DFL && guard_previous.sa_handler != SIG_IGN) {
		guard_previous.sa_handler(sig);
		return;
	}
	/* The default action (an ignored SIGBUS from a fault is fatal too):
	 * restore it; a fault then repeats when we return, a sent signal is
	 * raised again. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	/* Only a fault the kernel raised (BUS_ADRERR and kin), at an address
	 * a frame of this thread answers for. */
	if (si->si_code > 0) {
		for (ckr_guard *g = guard_top; g; g = g->prev) {
			if (!in_frame(g, si->si_addr))
				continue;
			guard_top = g->prev;
			g->fault_addr = si->si_addr;
			siglongjmp(g->env, 1);
		}
	}
	chain(sig, si, uc);
}

static void install_once(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	/* SA_NODEFER: unwinding with siglongjmp(env) of a sigsetjmp(env, 0)
	 * restores no mask, so SIGBUS must not be blocked in the handler. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	guard_install_rc = sigaction(SIGBUS, &sa, &guard_previous) == 0 ? 0 : -errno;
}

int ckr_guard_install(void)
{
	pthread_once(&guard_once, install_once);
	return guard_install_rc;
}
