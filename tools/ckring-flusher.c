/*
 * ckring-flusher — drain one segment into an LMDB environment until
 * SIGTERM/SIGINT, then drain what is left, commit and exit 0.
 * Argument parsing and usage only; the engine is persist/flusher*.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckring_store.h"
#define CLI_PROG "ckring-flusher"
#include "cli.h"
#include "metrics_http.h"

static volatile int stop_flag;
static ckr_flusher *volatile serving; /* for the handler: once it runs */

/* The engine's log: printed as it comes once the flusher runs; while it
 * opens, an error is kept to make the one line that explains a refusal. */
typedef struct log_state {
	bool opening;
	char open_error[512];
} log_state;

static void on_log(void *ctx, ckr_log_level level, const char *msg)
{
	log_state *ls = ctx;
	if (ls->opening && level == CKR_LOG_ERROR) {
		snprintf(ls->open_error, sizeof ls->open_error, "%s", msg);
		return;
	}
	fprintf(stderr, "ckring-flusher: %s\n", msg);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
	ckr_flusher_interrupt(serving); /* async-signal-safe */
}

static void usage(FILE *out)
{
	fputs("usage: ckring-flusher --segment NAME --db DIR [options]\n"
	      "Drain a ckring segment into the LMDB environment at DIR until\n"
	      "SIGTERM/SIGINT; then drain what is left, commit and exit 0.\n\n"
	      "  --segment NAME        segment to serve (letters, digits, . _ -)\n"
	      "  --db DIR              LMDB environment directory: must exist, be a\n"
	      "                        directory (not a symbolic link) of this user,\n"
	      "                        writable by nobody else\n"
	      "  --create              create the segment if it does not exist\n"
	      "  --size BYTES          with --create: total size (default 16 MiB)\n"
	      "  --lanes N             with --create: lanes (default 16)\n"
	      "  --mode OCTAL          with --create: permissions (default 0600)\n"
	      "  --sync always|none|interval=MS   durability of commits (default always)\n"
	      "  --idle-max-us N       longest idle sleep (default 1000)\n"
	      "  --map-size BYTES      initial LMDB map size (default 64 MiB; grows)\n"
	      "  --keep-completed DUR  keep completed runs' events this long (DUR: a\n"
	      "                        number with s, m, h or d; plain digits are\n"
	      "                        seconds; 0: clear them at completion)\n"
	      "  --keep-failed DUR     remove failed runs (record, events) this long\n"
	      "                        after they failed (default: keep them; 0s: at\n"
	      "                        once); in bounded steps in the background\n"
	      "  --metrics ADDR:PORT   serve Prometheus metrics on http://ADDR:PORT/metrics\n"
	      "                        (PORT 0: any free port, printed at start)\n"
	      "  --metrics-file PATH   write the same text to PATH every 5 s (atomically:\n"
	      "                        temp file + rename), for node_exporter's textfile\n"
	      "                        collector\n"
	      "  --max-attempts N      recoveries before a run fails (default 5)\n"
	      "  --shared-group        DIR may be writable by its group (never by\n"
	      "                        others); the store's files are made 0660\n"
	      "  --help                this text\n", out);
}

static bool parse_sync(const char *s, ckr_flusher_opts *o)
{
	uint64_t ms;
	if (strcmp(s, "always") == 0)
		o->sync = CKR_SYNC_ALWAYS;
	else if (strcmp(s, "none") == 0)
		o->sync = CKR_SYNC_NONE;
	else if (strncmp(s, "interval=", 9) == 0 && cli_u64(s + 9, 0, 1, 3599999, &ms)) {
		o->sync = CKR_SYNC_INTERVAL;
		o->sync_interval_ms = (uint32_t)ms;
	} else {
		return false;
	}
	return true;
}

enum { O_SEGMENT = 1, O_DB, O_CREATE, O_SIZE, O_LANES, O_MODE, O_SYNC, O_IDLE,
       O_MAP, O_KEEP, O_ATTEMPTS, O_SHARED, O_HELP, O_KEEP_FAILED, O_METRICS,
       O_METRICS_FILE };

/* The options of the metrics exporter (tools/metrics_http.c). */
static metrics_opts mopts;

static const struct option long_opts[] = {
	{ "segment", required_argument, NULL, O_SEGMENT },
	{ "db", required_argument, NULL, O_DB },
	{ "create", no_argument, NULL, O_CREATE },
	{ "size", required_argument, NULL, O_SIZE },
	{ "lanes", required_argument, NULL, O_LANES },
	{ "mode", required_argument, NULL, O_MODE },
	{ "sync", required_argument, NULL, O_SYNC },
	{ "idle-max-us", required_argument, NULL, O_IDLE },
	{ "map-size", required_argument, NULL, O_MAP },
	{ "keep-completed", required_argument, NULL, O_KEEP },
	{ "max-attempts", required_argument, NULL, O_ATTEMPTS },
	{ "shared-group", no_argument, NULL, O_SHARED },
	{ "keep-failed", required_argument, NULL, O_KEEP_FAILED },
	{ "metrics", required_argument, NULL, O_METRICS },
	{ "metrics-file", required_argument, NULL, O_METRICS_FILE },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

/* @return 0 parsed; 1 --help shown; 2 usage error (reported). */
static int parse_args(int argc, char **argv, ckr_flusher_opts *o)
{
	int c;
	uint64_t v;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		const char *a = optarg;
		switch (c) {
		case O_SEGMENT: o->segment = a; break;
		case O_DB: o->db_dir = a; break;
		case O_CREATE: o->create = true; break;
		case O_SIZE:
			if (!cli_u64(a, 0, 1, UINT64_MAX, &v))
				return cli_usage_error("bad --size", a);
			o->seg.size = v;
			break;
		case O_LANES:
			if (!cli_u64(a, 0, 1, 1024, &v))
				return cli_usage_error("bad --lanes (1..1024)", a);
			o->seg.lanes = (uint32_t)v;
			break;
		case O_MODE:
			if (!cli_u64(a, 8, 1, 0777, &v))
				return cli_usage_error("bad --mode (octal, e.g. 0640)", a);
			o->seg.mode = (mode_t)v;
			break;
		case O_SYNC:
			if (!parse_sync(a, o))
				return cli_usage_error("bad --sync (always|none|interval=MS)", a);
			break;
		case O_IDLE:
			if (!cli_u64(a, 0, 1, 1000000, &v))
				return cli_usage_error("bad --idle-max-us (1..1000000)", a);
			o->idle_max_us = (uint32_t)v;
			break;
		case O_MAP:
			if (!cli_u64(a, 0, 65536, UINT64_MAX, &v))
				return cli_usage_error("bad --map-size (>= 65536)", a);
			o->map_size = v;
			break;
		case O_KEEP:
			if (!cli_dur(a, true, UINT32_MAX, &v))
				return cli_usage_error("bad --keep-completed (seconds, or a number "
						   "with s, m, h or d)", a);
			o->keep_completed_s = (uint32_t)v;
			break;
		case O_KEEP_FAILED:
			if (!cli_dur(a, false, UINT32_MAX, &v))
				return cli_usage_error("bad --keep-failed (a number with s, m, h "
						   "or d, e.g. 7d)", a);
			o->prune_failed = true;
			o->keep_failed_s = (uint32_t)v;
			break;
		case O_METRICS:
			if (!metrics_addr_ok(a))
				return cli_usage_error("bad --metrics (ADDR:PORT, e.g. "
						   "127.0.0.1:9464)", a);
			mopts.listen = a;
			break;
		case O_METRICS_FILE:
			if (!*a)
				return cli_usage_error("bad --metrics-file (a path)", a);
			mopts.file = a;
			break;
		case O_ATTEMPTS:
			if (!cli_u64(a, 0, 1, 1000, &v))
				return cli_usage_error("bad --max-attempts (1..1000)", a);
			o->max_attempts = (uint32_t)v;
			break;
		case O_SHARED: o->shared_group = true; break;
		case O_HELP: usage(stdout); return 1;
		default:
			return cli_usage_error("unknown or incomplete option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument", argv[optind]);
	if (!o->segment || !o->db_dir)
		return cli_usage_error("--segment and --db are required", NULL);
	return 0;
}

/* What to do about an open failure, when the error alone does not say
 * (into buf, "" when nothing). */
static const char *open_hint(int rc, const char *part, const char *segment,
			     char *buf, size_t n)
{
	buf[0] = '\0';
	if (strcmp(part, "segment") == 0 && rc == CKR_ETRUNC)
		snprintf(buf, n, "; remove it (rm /dev/shm/%s) and start again with "
			 "--create (its runs then become claimable)", segment);
	else if (strcmp(part, "segment") == 0 && rc == -ENOSPC)
		snprintf(buf, n, " (/dev/shm is full or smaller than --size)");
	return buf;
}

/* A segment truncated under us must not kill us: the engine's own SIGBUS
 * unwinds (its call returns CKR_ETRUNC, it said so in one line, kept what it
 * committed; we exit 1). Any other SIGBUS: the default action, as before. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	ckr_flusher_on_sigbus(si);
	signal(sig, SIG_DFL); /* returning repeats a fault, now fatal */
	if (si->si_code <= 0)
		raise(sig);   /* a SIGBUS someone sent: as if we had no handler */
}

static void install_sigbus(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: futex sleeps end at once */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int main(int argc, char **argv)
{
	ckr_flusher_opts o = { .seg = { .group = (gid_t)-1 }, .sync = CKR_SYNC_ALWAYS };
	int rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	install_signals();
	install_sigbus();
	ckr_flusher *f;
	const char *part = "flusher";
	log_state ls = { .opening = true };
	o.failed_part = &part;
	o.log = on_log;
	o.log_ctx = &ls;
	rc = ckr_flusher_open(&o, &f);
	if (rc) {
		char hint[300];
		if (ls.open_error[0])
			fprintf(stderr, "ckring-flusher: %s\n", ls.open_error);
		else
			fprintf(stderr, "ckring-flusher: cannot serve segment '%s' with store "
				"'%s': %s: %s%s\n", o.segment, o.db_dir, part,
				rc == -EBUSY ? "another live flusher serves it"
					     : ckr_strerror(rc),
				open_hint(rc, part, o.segment, hint, sizeof hint));
		return 1;
	}
	ls.opening = false;
	metrics *m = NULL;
	if (mopts.listen || mopts.file) {
		char err[512];
		mopts.segment = o.segment;
		mopts.db_dir = o.db_dir;
		if (metrics_start(&mopts, f, &m, err, sizeof err) != 0) {
			fprintf(stderr, "ckring-flusher: %s\n", err);
			ckr_flusher_close(f);
			return 1;
		}
		if (mopts.listen)
			fprintf(stderr, "ckring-flusher: metrics on port %u (%s)\n",
				metrics_port(m), mopts.listen);
	}
	serving = f;
	rc = ckr_flusher_run(f, &stop_flag);
	serving = NULL;
	metrics_stop(m);
	if (rc == CKR_ETRUNC) {
		/* The engine's one line said what happened and what is kept. */
		ckr_flusher_close(f);
		return 1;
	}
	ckr_flusher_stats st;
	ckr_flusher_stats_get(f, &st);
	fprintf(stderr, "ckring-flusher: stopped: %llu events stored, %llu rejected, "
		"%llu corrupt, %llu reclaimed, map grown %llu times\n",
		(unsigned long long)st.stored, (unsigned long long)st.rejected,
		(unsigned long long)st.corrupt, (unsigned long long)st.reclaimed,
		(unsigned long long)st.map_grown);
	ckr_flusher_close(f);
	if (rc) {
		fprintf(stderr, "ckring-flusher: %s\n", ckr_strerror(rc));
		return 1;
	}
	return 0;
}
