/*
 * torture.c — the crash-torture driver (docs/DESIGN.md §8: exactly-once and order across
 * SIGKILL of any producer, SIGKILL of the flusher and its restart, and
 * SIGSTOP/SIGCONT of producers for seconds).
 *
 * It runs the real tools: starts ckring-flusher on a fresh segment and store,
 * keeps several `ckring-load --prefix iN- --ack-file ... --finish leave`
 * invocations going, and at random times (seeded RNG) SIGKILLs producer
 * processes (the ckring-load children), SIGKILLs the flusher and restarts it
 * (sometimes with CKR_FLUSHER_CRASH so it kills itself mid-batch, after the
 * commit or after the release), and SIGSTOPs producers for up to two seconds.
 * At the end it continues and kills what is left, restarts the flusher
 * without fault injection, waits (bounded) until every lane is drained and
 * freed (a killed producer's lane is drained once the flusher sees its
 * death), stops the flusher with SIGTERM (it must exit 0) and runs the
 * verifier (tests/torture/verify.c) on the manifest of invocations.
 *
 * Every wait is bounded and waits on an event (a pid, a word in the segment);
 * the only sleeps are the random gaps between chaos actions. On any exit it
 * kills every process it started and unlinks the segment.
 *
 * usage: torture --bin DIR --dir WORKDIR --verify PATH [--segment NAME]
 *                [--seed N] [--duration S] [--max-loads N] [--lanes N]
 *                [--lane-kib N] [--verbose]
 * Exit 0: verified; 1: a violation or a failure (printed); 2: usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckring.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "shm/segment.h"

#define MAX_LOADS 4096
#define MAX_STOPPED 256
#define BOUND_MS 60000

typedef struct load {
	pid_t pid;
	bool running;
	int status;
	uint64_t procs, threads, runs, events, size;
} load;

typedef struct stopped {
	pid_t pid;
	int64_t until_ms;
} stopped;

typedef struct opts {
	const char *bin, *dir, *verify, *segment;
	uint64_t seed;
	int duration_s, max_loads, lanes, lane_kib;
	bool verbose;
} opts;

typedef struct counts {
	unsigned loads, load_failed, producer_kills, final_kills, stops, flusher_kills,
		flusher_crash_env, flusher_self_crash, flusher_restarts, flusher_unexpected;
} counts;

static opts O = { .seed = 1, .duration_s = 60, .max_loads = 3, .lanes = 32,
		  .lane_kib = 128, .segment = NULL };
static counts C;
static load loads[MAX_LOADS];
static int n_loads;
static stopped stops[MAX_STOPPED];
static int n_stops;
static pid_t flusher_pid;
static bool flusher_crash_env;
static bool flusher_killed_by_us;
static int64_t t0_ms;
static uint64_t rng_state;
static char manifest_path[600], db_path[600], flog_path[600];

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	if (!O.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "torture: [%7.3f] ", (double)(now_ms() - t0_ms) / 1000.0);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t rnd_in(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

static void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Direct children of pid, from /proc (what `pgrep -P pid` does). */
static int children_of(pid_t parent, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	int n = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%ld/stat", pid);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t r = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		char *p = strrchr(buf, ')');
		char state;
		int ppid;
		if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 && ppid == parent &&
		    state != 'Z')
			out[n++] = (pid_t)pid;
	}
	closedir(d);
	return n;
}

/*
 * In an ASan build (make asan), LeakSanitizer checks for leaks when a tool
 * exits by clone()ing a tracer task: a child of the tool in /proc that this
 * driver would take for a producer and kill, leaving the tool spinning in
 * StopTheWorld. The processes we start therefore run without leak checks
 * (a no-op in other builds).
 */
static void no_leak_check(void)
{
	const char *a = getenv("ASAN_OPTIONS");
	char buf[512];
	snprintf(buf, sizeof buf, "%s%sdetect_leaks=0", a ? a : "", a && *a ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
}

/* In a forked child about to exec a tool: stdout and stderr to path
 * (opened with O_APPEND or O_TRUNC), and no leak checks (see above). */
static void child_output_to(const char *path, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | mode, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	no_leak_check();
}

/* Wait (bounded) for pid to exit; SIGKILL it at the bound. */
static int wait_exit(pid_t pid, int64_t bound_ms)
{
	int64_t deadline = now_ms() + bound_ms;
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0)
			return -1;
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		sleep_ms(1); /* polling an exit: waitpid has no timeout */
	}
}

static void tail_file(const char *path, int lines)
{
	char cmd[800];
	snprintf(cmd, sizeof cmd, "tail -n %d '%s' | sed 's/^/    | /' >&2", lines, path);
	if (system(cmd) != 0)
		fprintf(stderr, "    (cannot show %s)\n", path);
}

/* ------------------------------------------------------------------ */
/* the flusher                                                         */
/* ------------------------------------------------------------------ */

static uint64_t segment_size(void)
{
	uint64_t off = (4096 + (uint64_t)O.lanes * 256 + 4095) / 4096 * 4096;
	return off + (uint64_t)O.lanes * (uint64_t)O.lane_kib * 1024;
}

static void account_flusher_exit(pid_t pid, int st);

static const char *pick_crash(char *buf, size_t n)
{
	switch (rnd() % 3) {
	case 0: snprintf(buf, n, "mid_batch:%" PRIu64, rnd_in(1, 3000)); break;
	case 1: snprintf(buf, n, "after_commit:%" PRIu64, rnd_in(1, 40)); break;
	default: snprintf(buf, n, "after_release:%" PRIu64, rnd_in(1, 40)); break;
	}
	return buf;
}

/* Start ckring-flusher; wait (bounded) until it holds the segment's flusher
 * slot (its store is open then) or dies. @return its pid, or 0 if it died. */
static pid_t start_flusher(const char *crash)
{
	char size[32], bin[600], lanes[16];
	const char *sync = (const char *[]){ "always", "none", "interval=5" }[rnd() % 3];
	snprintf(size, sizeof size, "%" PRIu64, segment_size());
	snprintf(lanes, sizeof lanes, "%d", O.lanes);
	snprintf(bin, sizeof bin, "%s/ckring-flusher", O.bin);
	pid_t pid = fork();
	if (pid == 0) {
		child_output_to(flog_path, O_APPEND);
		if (crash)
			setenv("CKR_FLUSHER_CRASH", crash, 1);
		else
			unsetenv("CKR_FLUSHER_CRASH");
		execl(bin, "ckring-flusher", "--segment", O.segment, "--db", db_path, "--create",
		      "--size", size, "--lanes", lanes, "--sync", sync, "--idle-max-us", "500",
		      (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return 0;
	flusher_crash_env = crash != NULL;
	flusher_killed_by_us = false;
	say("flusher %d started (sync=%s%s%s)", (int)pid, sync, crash ? ", crash at " : "",
	    crash ? crash : "");
	int64_t deadline = now_ms() + BOUND_MS;
	while (now_ms() < deadline) {
		ckr_segment s;
		if (ckr_segment_attach(O.segment, true, &s) == 0) {
			uint64_t owner = atomic_load(&ckr_seg_fl(&s)->owner);
			ckr_segment_detach(&s);
			if (ckr_token_pid(owner) == pid)
				return pid;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			account_flusher_exit(pid, st); /* e.g. its crash point came early */
			return 0;
		}
		sleep_ms(1);
	}
	fprintf(stderr, "torture: flusher %d did not come up within %d ms\n", (int)pid,
		BOUND_MS);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}

static void account_flusher_exit(pid_t pid, int st)
{
	if (flusher_killed_by_us) {
		say("flusher %d reaped (killed by us)", (int)pid);
	} else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && flusher_crash_env) {
		C.flusher_self_crash++;
		say("flusher %d killed itself at its crash point", (int)pid);
	} else {
		C.flusher_unexpected++;
		fprintf(stderr, "torture: FAIL: flusher %d exited on its own (%s %d); its log:\n",
			(int)pid, WIFSIGNALED(st) ? "signal" : "status",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		tail_file(flog_path, 15);
	}
}

/* Reap the flusher if it died. */
static void reap_flusher(void)
{
	int st;
	if (flusher_pid > 0 && waitpid(flusher_pid, &st, WNOHANG) == flusher_pid) {
		account_flusher_exit(flusher_pid, st);
		flusher_pid = 0;
	}
}

static void kill_flusher(void)
{
	if (flusher_pid <= 0)
		return;
	flusher_killed_by_us = true;
	kill(flusher_pid, SIGKILL);
	int st = wait_exit(flusher_pid, BOUND_MS);
	if (st != -1 && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
		account_flusher_exit(flusher_pid, st); /* it had died before */
	flusher_pid = 0;
}

/* ------------------------------------------------------------------ */
/* producers                                                           */
/* ------------------------------------------------------------------ */

static void launch_load(void)
{
	if (n_loads == MAX_LOADS)
		return;
	load *l = &loads[n_loads];
	l->procs = rnd_in(1, 3);
	l->threads = rnd_in(1, 3);
	l->runs = rnd_in(1, 4);
	uint64_t r = rnd() % 10;
	l->size = r < 5 ? rnd_in(16, 64) : r < 9 ? rnd_in(65, 1200) : rnd_in(1201, 6000);
	l->events = rnd_in(50, 4000);
	if (l->size * l->events > (4u << 20)) /* keep a run's history small */
		l->events = (4u << 20) / l->size;
	char prefix[32], ack[640], log[640], bin[600], a[5][24];
	snprintf(prefix, sizeof prefix, "i%d-", n_loads);
	snprintf(ack, sizeof ack, "%s/ack.%d", O.dir, n_loads);
	snprintf(log, sizeof log, "%s/load.%d.log", O.dir, n_loads);
	snprintf(bin, sizeof bin, "%s/ckring-load", O.bin);
	snprintf(a[0], 24, "%" PRIu64, l->procs);
	snprintf(a[1], 24, "%" PRIu64, l->threads);
	snprintf(a[2], 24, "%" PRIu64, l->runs);
	snprintf(a[3], 24, "%" PRIu64, l->events);
	snprintf(a[4], 24, "%" PRIu64, l->size);
	FILE *m = fopen(manifest_path, "a");
	if (!m) {
		perror("torture: manifest");
		exit(1);
	}
	fprintf(m, "%s %s %s %s %s %s %s\n", prefix, a[0], a[1], a[2], a[3], a[4], ack);
	fclose(m);
	pid_t pid = fork();
	if (pid == 0) {
		child_output_to(log, O_TRUNC);
		execl(bin, "ckring-load", "--segment", O.segment, "--procs", a[0], "--threads",
		      a[1], "--runs", a[2], "--events", a[3], "--size", a[4], "--prefix", prefix,
		      "--ack-file", ack, "--finish", "leave", (char *)NULL);
		_exit(127);
	}
	l->pid = pid;
	l->running = pid > 0;
	n_loads++;
	C.loads++;
	say("load %s: pid %d, %s procs x %s threads x %s runs x %s events of %s bytes", prefix,
	    (int)pid, a[0], a[1], a[2], a[3], a[4]);
}

static int running_loads(void)
{
	int n = 0;
	for (int i = 0; i < n_loads; i++)
		n += loads[i].running;
	return n;
}

static void forget_stopped(pid_t pid)
{
	for (int i = 0; i < n_stops; i++)
		if (stops[i].pid == pid)
			stops[i--] = stops[--n_stops];
}

static bool is_stopped(pid_t pid)
{
	for (int i = 0; i < n_stops; i++)
		if (stops[i].pid == pid)
			return true;
	return false;
}

static void reap_loads(void)
{
	for (int i = 0; i < n_loads; i++) {
		int st;
		if (loads[i].running && waitpid(loads[i].pid, &st, WNOHANG) == loads[i].pid) {
			loads[i].running = false;
			loads[i].status = st;
			bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
			C.load_failed += !ok;
			say("load i%d- ended: %s", i, ok ? "ok" : "failed (killed child?)");
		}
	}
}

/* A random producer process (a child of a running ckring-load). */
static pid_t pick_producer(bool not_stopped)
{
	pid_t cands[256];
	int n = 0;
	for (int i = 0; i < n_loads && n < 200; i++) {
		if (!loads[i].running)
			continue;
		pid_t kids[64];
		int k = children_of(loads[i].pid, kids, 64);
		for (int j = 0; j < k && n < 256; j++)
			if (!not_stopped || !is_stopped(kids[j]))
				cands[n++] = kids[j];
	}
	return n ? cands[rnd() % (uint64_t)n] : 0;
}

static void resume_due(bool all)
{
	int64_t now = now_ms();
	for (int i = 0; i < n_stops; i++) {
		if (all || stops[i].until_ms <= now) {
			kill(stops[i].pid, SIGCONT);
			say("SIGCONT producer %d", (int)stops[i].pid);
			stops[i--] = stops[--n_stops];
		}
	}
}

/* ------------------------------------------------------------------ */
/* chaos                                                               */
/* ------------------------------------------------------------------ */

static void chaos_step(int64_t *restart_at)
{
	uint64_t a = rnd() % 100;
	if (a < 30) {
		pid_t p = pick_producer(false);
		if (p && kill(p, SIGKILL) == 0) {
			forget_stopped(p);
			C.producer_kills++;
			say("SIGKILL producer %d", (int)p);
		}
	} else if (a < 50) {
		pid_t p = pick_producer(true);
		if (p && n_stops < MAX_STOPPED && kill(p, SIGSTOP) == 0) {
			stops[n_stops++] = (stopped){ p, now_ms() + (int64_t)rnd_in(100, 2000) };
			C.stops++;
			say("SIGSTOP producer %d until +%" PRId64 " ms", (int)p,
			    stops[n_stops - 1].until_ms - now_ms());
		}
	} else if (a < 58 && flusher_pid > 0) {
		say("SIGKILL flusher %d", (int)flusher_pid);
		kill_flusher();
		C.flusher_kills++;
		*restart_at = now_ms() + (int64_t)rnd_in(0, 400);
	}
}

static void ensure_flusher(int64_t restart_at, bool allow_crash)
{
	reap_flusher();
	if (flusher_pid > 0 || now_ms() < restart_at)
		return;
	char buf[48];
	const char *crash = allow_crash && rnd() % 4 == 0 ? pick_crash(buf, sizeof buf) : NULL;
	C.flusher_crash_env += crash != NULL;
	C.flusher_restarts++;
	flusher_pid = start_flusher(crash);
	if (flusher_pid == 0)
		return;
}

/* ------------------------------------------------------------------ */
/* the end: drain, stop, verify                                        */
/* ------------------------------------------------------------------ */

/* Every lane drained (head == tail) and free (owner 0)? *busy gets the first
 * lane that is not. */
static bool all_drained(int *busy, uint64_t *head, uint64_t *tail, uint64_t *owner)
{
	ckr_segment s;
	if (ckr_segment_attach(O.segment, true, &s) != 0)
		return false;
	bool done = true;
	for (uint32_t i = 0; i < s.lane_count && done; i++) {
		ckr_lane l;
		ckr_lane_view(&s, i, &l);
		*head = ckr_lane_head(&l);
		*tail = ckr_lane_tail(&l);
		*owner = ckr_lane_owner(&l);
		if (*head != *tail || *owner != 0) {
			*busy = (int)i;
			done = false;
		}
	}
	ckr_segment_detach(&s);
	return done;
}

static void segment_counters(uint64_t *reclaimed, uint64_t *corrupt, uint64_t *freed,
			     uint64_t *refused)
{
	ckr_segment s;
	*reclaimed = *corrupt = *freed = *refused = 0;
	if (ckr_segment_attach(O.segment, true, &s) != 0)
		return;
	*reclaimed = atomic_load(&ckr_seg_ctr(&s)->reclaimed);
	*corrupt = atomic_load(&ckr_seg_ctr(&s)->corrupt);
	*freed = atomic_load(&ckr_seg_ctr(&s)->lanes_freed);
	for (uint32_t i = 0; i < s.lane_count; i++) {
		ckr_lane l;
		ckr_lane_view(&s, i, &l);
		*refused += atomic_load(&l.ctl->refused_full);
	}
	ckr_segment_detach(&s);
}

static int finish_producers(void)
{
	resume_due(true);
	for (int i = 0; i < n_loads; i++) {
		if (!loads[i].running)
			continue;
		pid_t kids[64];
		int k = children_of(loads[i].pid, kids, 64);
		for (int j = 0; j < k; j++)
			if (kill(kids[j], SIGKILL) == 0)
				C.final_kills++;
	}
	int64_t deadline = now_ms() + BOUND_MS;
	while (running_loads() && now_ms() < deadline) {
		reap_loads();
		sleep_ms(2);
	}
	if (running_loads()) {
		fprintf(stderr, "torture: FAIL: ckring-load parents did not exit\n");
		return -1;
	}
	return 0;
}

static int drain_and_stop(void)
{
	reap_flusher();
	if (flusher_pid > 0 && flusher_crash_env)
		kill_flusher();
	int64_t deadline = now_ms() + BOUND_MS;
	int busy = -1;
	uint64_t head = 0, tail = 0, owner = 0;
	while (now_ms() < deadline) {
		ensure_flusher(0, false);
		if (flusher_pid > 0 && all_drained(&busy, &head, &tail, &owner))
			break;
		sleep_ms(2);
	}
	if (!all_drained(&busy, &head, &tail, &owner)) {
		fprintf(stderr, "torture: FAIL: not drained within %d ms: lane %d head %" PRIu64
			" tail %" PRIu64 " owner %#" PRIx64 " (pid %d, alive %d)\n", BOUND_MS, busy,
			head, tail, owner, (int)ckr_token_pid(owner & ~CKR_OWNER_DETACHED),
			(int)ckr_proc_alive(owner & ~CKR_OWNER_DETACHED));
		return -1;
	}
	say("drained; SIGTERM flusher %d", (int)flusher_pid);
	flusher_killed_by_us = true;
	kill(flusher_pid, SIGTERM);
	int st = wait_exit(flusher_pid, BOUND_MS);
	flusher_pid = 0;
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "torture: FAIL: flusher did not exit 0 on SIGTERM (status %#x)\n",
			st);
		tail_file(flog_path, 10);
		return -1;
	}
	return 0;
}

/* Producer errors other than being killed (e.g. no free lane), from the
 * ckring-load logs: reported, not failures. */
static void load_log_notes(void)
{
	char cmd[900];
	snprintf(cmd, sizeof cmd,
		 "cat '%s'/load.*.log 2>/dev/null | grep '^ckring-load: ' | grep -v "
		 "'^ckring-load: pushed' | sed 's/: [^:]*-p[0-9]*-t[0-9]*-r[0-9]*//' | "
		 "sort | uniq -c | sed 's/^/torture: note: producer error: /'", O.dir);
	fflush(stdout);
	if (system(cmd) == -1)
		fprintf(stderr, "torture: cannot scan the load logs\n");
}

/* Skipped abandoned claims of killed producers are kept in the quarantine
 * (counted `reclaimed` in the segment), so `quarantined` may be non-zero
 * exactly when there were some; corrupt records are checked to be 0 from
 * the segment's own counter. */
static int run_verifier(uint64_t reclaimed)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (reclaimed)
			execl(O.verify, "verify", "--db", db_path, "--manifest", manifest_path,
			      "--quiet", "--allow-counter", "quarantined", (char *)NULL);
		else
			execl(O.verify, "verify", "--db", db_path, "--manifest", manifest_path,
			      "--quiet", (char *)NULL);
		_exit(127);
	}
	int st = wait_exit(pid, 10 * BOUND_MS);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* On any exit: nothing we started survives, the segment goes. */
static void cleanup(void)
{
	for (int i = 0; i < n_stops; i++)
		kill(stops[i].pid, SIGCONT);
	for (int i = 0; i < n_loads; i++) {
		if (!loads[i].running)
			continue;
		pid_t kids[64];
		int k = children_of(loads[i].pid, kids, 64);
		for (int j = 0; j < k; j++)
			kill(kids[j], SIGKILL);
		kill(loads[i].pid, SIGKILL);
		waitpid(loads[i].pid, NULL, 0);
		loads[i].running = false;
	}
	if (flusher_pid > 0) {
		kill(flusher_pid, SIGKILL);
		waitpid(flusher_pid, NULL, 0);
		flusher_pid = 0;
	}
	if (O.segment)
		ckr_segment_unlink(O.segment);
}

static void on_signal(int sig)
{
	(void)sig;
	exit(3); /* runs cleanup() through atexit */
}

static int usage(void)
{
	fputs("usage: torture --bin DIR --dir WORKDIR --verify PATH [--segment NAME]\n"
	      "               [--seed N] [--duration S] [--max-loads N] [--lanes N]\n"
	      "               [--lane-kib N] [--verbose]\n", stderr);
	return 2;
}

static int parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--verbose") == 0) {
			O.verbose = true;
			continue;
		}
		if (!v)
			return usage();
		i++;
		if (strcmp(a, "--bin") == 0) O.bin = v;
		else if (strcmp(a, "--dir") == 0) O.dir = v;
		else if (strcmp(a, "--verify") == 0) O.verify = v;
		else if (strcmp(a, "--segment") == 0) O.segment = v;
		else if (strcmp(a, "--seed") == 0) O.seed = strtoull(v, NULL, 0);
		else if (strcmp(a, "--duration") == 0) O.duration_s = atoi(v);
		else if (strcmp(a, "--max-loads") == 0) O.max_loads = atoi(v);
		else if (strcmp(a, "--lanes") == 0) O.lanes = atoi(v);
		else if (strcmp(a, "--lane-kib") == 0) O.lane_kib = atoi(v);
		else return usage();
	}
	if (!O.bin || !O.dir || !O.verify || O.duration_s < 1 || O.max_loads < 1 ||
	    O.lanes < 1 || O.lane_kib < 4)
		return usage();
	return 0;
}

int main(int argc, char **argv)
{
	static char segname[64];
	if (parse(argc, argv))
		return 2;
	if (!O.segment) {
		snprintf(segname, sizeof segname, "ckr-torture-%d", (int)getpid());
		O.segment = segname;
	}
	rng_state = O.seed;
	t0_ms = now_ms();
	snprintf(manifest_path, sizeof manifest_path, "%s/manifest", O.dir);
	snprintf(db_path, sizeof db_path, "%s/db", O.dir);
	snprintf(flog_path, sizeof flog_path, "%s/flusher.log", O.dir);
	if (mkdir(db_path, 0700) != 0 && errno != EEXIST) {
		perror("torture: mkdir db");
		return 1;
	}
	ckr_segment_unlink(O.segment); /* a leftover of an earlier run */
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	/* torture.sh runs us in our own session so that its trap can kill
	 * our whole group; should the script die without running its trap,
	 * we still clean up after ourselves. */
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		return 3;
	printf("torture: seed %" PRIu64 ", %d s, segment %s, %d lanes x %d KiB, up to %d "
	       "ckring-load invocations at once\n", O.seed, O.duration_s, O.segment, O.lanes,
	       O.lane_kib, O.max_loads);
	fflush(stdout);
	flusher_pid = start_flusher(NULL);
	if (flusher_pid == 0) {
		fprintf(stderr, "torture: FAIL: the first flusher did not start; its log:\n");
		tail_file(flog_path, 10);
		return 1;
	}
	int64_t end = t0_ms + (int64_t)O.duration_s * 1000, restart_at = 0;
	while (now_ms() < end) {
		ensure_flusher(restart_at, true);
		reap_loads();
		resume_due(false);
		while (running_loads() < O.max_loads && n_loads < MAX_LOADS)
			launch_load();
		chaos_step(&restart_at);
		sleep_ms((int64_t)rnd_in(10, 200)); /* the gap between chaos actions */
	}
	int fail = finish_producers();
	if (fail == 0)
		fail = drain_and_stop();
	uint64_t reclaimed, corrupt, freed, refused;
	segment_counters(&reclaimed, &corrupt, &freed, &refused);
	printf("torture: %u ckring-load invocations (%u ended by a kill or failure), %u "
	       "producer SIGKILLs (+%u at the end), %u SIGSTOPs, %u flusher SIGKILLs, %u "
	       "restarts (%u with CKR_FLUSHER_CRASH, %u self-crashes), %u unexpected flusher "
	       "exits\n", C.loads, C.load_failed, C.producer_kills, C.final_kills, C.stops,
	       C.flusher_kills, C.flusher_restarts, C.flusher_crash_env, C.flusher_self_crash,
	       C.flusher_unexpected);
	printf("torture: segment: %" PRIu64 " abandoned claims reclaimed, %" PRIu64
	       " corrupt, %" PRIu64 " lanes freed, %" PRIu64 " pushes refused (ring full)\n",
	       reclaimed, corrupt, freed, refused);
	load_log_notes();
	fflush(stdout);
	if (fail == 0 && run_verifier(reclaimed) != 0)
		fail = -1;
	if (corrupt) {
		fprintf(stderr, "torture: FAIL: %" PRIu64 " records counted corrupt without "
			"any scribble\n", corrupt);
		fail = -1;
	}
	if (C.flusher_unexpected)
		fail = -1;
	printf("torture: %s (replay: --seed %" PRIu64 " --duration %d)\n",
	       fail ? "FAILED" : "PASSED", O.seed, O.duration_s);
	return fail ? 1 : 0;
}
