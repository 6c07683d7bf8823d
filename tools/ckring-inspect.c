/*
 * ckring-inspect — the operator's view of a live segment and of the store.
 *
 *   ckring-inspect segment NAME [--json] [--records] [--watch]
 *   ckring-inspect db DIR [--json] [--state S] [--older-than DUR] [--limit N]
 *                         [--after ID]
 *   ckring-inspect run DIR RUN_ID [--json] [--hex]
 *
 * Argument parsing and printing only, over the public headers: the segment
 * is read through the observer of ckring.h (read-only; every record copied
 * and validated before it is decoded), the store through the recovery API
 * of ckring_store.h. Nothing here writes to either.
 *
 * A segment is untrusted input: a truncated object (even one truncated
 * while we read it: SIGBUS), a foreign object, or lanes whose positions make
 * no sense are reported in one line (exit 1) or flagged per lane; they never
 * crash the inspector.
 *
 * Exit status: 0 success; 1 the segment/store/run could not be read (one
 * line on stderr); 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckring_store.h"
#include "json.h"
#include "lanewatch.h"

#define PROG "ckring-inspect"
#define CLI_PROG PROG
#include "cli.h"

/* ------------------------------------------------------------------ */
/* process-wide state a signal handler must reach (the only globals)    */
/* ------------------------------------------------------------------ */

/* SIGBUS while reading the mapping (the object was truncated under us). */
static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;
/* SIGINT/SIGTERM during --watch. */
static volatile sig_atomic_t stop_watch;

static void on_sigbus(int sig)
{
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_stop(int sig)
{
	(void)sig;
	stop_watch = 1;
}

static void install_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn; /* no SA_RESTART: a sleep ends at once */
	sigaction(sig, &sa, NULL);
}

/* ------------------------------------------------------------------ */
/* options                                                             */
/* ------------------------------------------------------------------ */

typedef struct opts {
	const char *cmd;
	const char *arg[2]; /* positional arguments after the command */
	int n_args;
	bool json, records, watch, hex;
	/* db: a filtered page (ckr_store_query) instead of every run */
	bool query;
	int state_sel;       /* 0 none; 1..3 a ckr_run_state; 4 interrupted */
	ckr_list_query q;
} opts;

static void usage(FILE *out)
{
	fputs("usage: " PROG " segment NAME [--json] [--records] [--watch]\n"
	      "       " PROG " db DIR [--json] [--state S] [--older-than DUR] [--limit N]\n"
	      "                          [--after ID]\n"
	      "       " PROG " run DIR RUN_ID [--json] [--hex]\n"
	      "Show a live ckring segment, or the runs kept in a flusher's store.\n\n"
	      "  segment NAME   attach read-only: layout, lanes (owner, head, tail,\n"
	      "                 fill), counters, the flusher (liveness, heartbeat,\n"
	      "                 committed/synced positions, lag)\n"
	      "  db DIR         every run in the LMDB store at DIR: state, kind,\n"
	      "                 owner, events, last sequence, attempts, error\n"
	      "  run DIR ID     one run's resume state (history or completed phases)\n\n"
	      "  --json         one JSON document on stdout\n"
	      "  --records      (segment) decode the records still in each lane\n"
	      "  --watch        (segment) refresh every second with rates, lag and the\n"
	      "                 age of the oldest unflushed event, until ^C\n"
	      "  --state S      (db) only runs in state S: running, failed, completed\n"
	      "                 or interrupted (running, owner not alive)\n"
	      "  --older-than DUR  (db) only runs finished (running: last written)\n"
	      "                 longer ago than DUR (a number with s, m, h or d)\n"
	      "  --limit N      (db) at most N runs, in id order (default: all; with a\n"
	      "                 filter, 1000); says how to ask for the next page\n"
	      "  --after ID     (db) start after run ID (the last of the previous page)\n"
	      "  --hex          (run) RUN_ID is given as hex bytes\n"
	      "  --help         this text\n\n"
	      "Exit status: 0 ok, 1 could not read the segment/store/run, 2 usage.\n",
	      out);
}

enum { O_JSON = 1, O_RECORDS, O_WATCH, O_HEX, O_HELP, O_STATE, O_OLDER, O_LIMIT,
       O_AFTER };

static const struct option long_opts[] = {
	{ "json", no_argument, NULL, O_JSON },
	{ "records", no_argument, NULL, O_RECORDS },
	{ "watch", no_argument, NULL, O_WATCH },
	{ "hex", no_argument, NULL, O_HEX },
	{ "help", no_argument, NULL, O_HELP },
	{ "state", required_argument, NULL, O_STATE },
	{ "older-than", required_argument, NULL, O_OLDER },
	{ "limit", required_argument, NULL, O_LIMIT },
	{ "after", required_argument, NULL, O_AFTER },
	{ NULL, 0, NULL, 0 },
};

/* Which options and how many arguments each command takes. */
static int check_command(const opts *o)
{
	bool seg = strcmp(o->cmd, "segment") == 0, db = strcmp(o->cmd, "db") == 0,
	     run = strcmp(o->cmd, "run") == 0;
	int want = seg || db ? 1 : 2;
	if (!seg && !db && !run)
		return cli_usage_error("unknown command (segment, db or run)", o->cmd);
	if (o->n_args < want)
		return cli_usage_error(seg ? "missing segment NAME"
				   : db ? "missing store DIR" : "missing DIR or RUN_ID", NULL);
	if (o->n_args > want)
		return cli_usage_error("unexpected argument", o->arg[want]);
	if (!seg && (o->records || o->watch))
		return cli_usage_error("--records and --watch apply to 'segment' only", NULL);
	if (!run && o->hex)
		return cli_usage_error("--hex applies to 'run' only", NULL);
	if (o->watch && (o->json || o->records))
		return cli_usage_error("--watch cannot be combined with --json or --records", NULL);
	if (!db && o->query)
		return cli_usage_error("--state, --older-than, --limit and --after apply to 'db' "
				   "only", NULL);
	return 0;
}

/* The db filters. @return 0; 2 usage error (reported). */
static int parse_db_option(int c, const char *a, opts *o)
{
	static const char *const states[] = { "running", "failed", "completed",
					      "interrupted" };
	uint64_t v;
	o->query = true;
	switch (c) {
	case O_STATE:
		for (int i = 0; i < 4; i++)
			if (strcmp(a, states[i]) == 0) {
				o->state_sel = i + 1;
				return 0;
			}
		return cli_usage_error("bad --state (running, failed, completed or interrupted)", a);
	case O_OLDER:
		if (!cli_dur(a, false, UINT32_MAX * 100ull, &o->q.older_than_s))
			return cli_usage_error("bad --older-than (a number with s, m, h or d, "
					   "e.g. 2h)", a);
		o->q.by_age = true;
		return 0;
	case O_LIMIT:
		if (!cli_u64(a, 10, 1, 1000000, &v))
			return cli_usage_error("bad --limit (1..1000000)", a);
		o->q.limit = (size_t)v;
		return 0;
	default:
		if (!*a || strlen(a) > CKR_RUN_ID_MAX)
			return cli_usage_error("bad --after (a run id of 1..64 bytes)", a);
		o->q.after = a;
		o->q.after_len = strlen(a);
		return 0;
	}
}

/* @return 0 parsed; 1 --help shown; 2 usage error (reported). */
static int parse_args(int argc, char **argv, opts *o)
{
	int c, extra = 0;
	const char *extra_arg = NULL;
	if (argc < 2)
		return cli_usage_error("missing command (segment, db or run)", NULL);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case O_JSON: o->json = true; break;
		case O_RECORDS: o->records = true; break;
		case O_WATCH: o->watch = true; break;
		case O_HEX: o->hex = true; break;
		case 'h':
		case O_HELP: usage(stdout); return 1;
		case O_STATE:
		case O_OLDER:
		case O_LIMIT:
		case O_AFTER:
			if (parse_db_option(c, optarg, o))
				return 2;
			break;
		default:
			return cli_usage_error("unknown or incomplete option", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage_error("missing command (segment, db or run)", NULL);
	o->cmd = argv[optind++];
	for (; optind < argc; optind++) {
		if (o->n_args < 2)
			o->arg[o->n_args++] = argv[optind];
		else if (!extra++)
			extra_arg = argv[optind];
	}
	if (extra)
		return cli_usage_error("unexpected argument", extra_arg);
	return check_command(o);
}

/* ------------------------------------------------------------------ */
/* small formatting helpers                                            */
/* ------------------------------------------------------------------ */

/* Untrusted text (labels, errors, phase names) for a terminal: control
 * characters are shown as \xNN, never sent as they are. */
static void print_safe(FILE *f, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7F)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

/* Run ids and other byte strings: as text when printable, else 0x<hex>. */
static void print_bytes(FILE *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	bool text = n > 0 && json_is_text(p, n) && !memchr(p, ' ', n);
	if (text) {
		fwrite(p, 1, n, f);
		return;
	}
	fputs("0x", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
}

/* The display width of print_bytes(). */
static size_t bytes_width(const void *p, size_t n)
{
	return n > 0 && json_is_text(p, n) && !memchr(p, ' ', n) ? n : 2 + 2 * n;
}

/* A payload preview: quoted text cut to max chars, or a hex prefix. */
static void print_preview(FILE *f, const uint8_t *p, size_t n, size_t max)
{
	size_t k = n < max ? n : max;
	while (k > 0 && k < n && (p[k] & 0xC0) == 0x80)
		k--; /* do not cut a UTF-8 sequence */
	if (json_is_text(p, k)) {
		fprintf(f, "\"%.*s\"%s", (int)k, (const char *)p, k < n ? "..." : "");
		return;
	}
	k = n < 16 ? n : 16;
	fputs("0x", f);
	for (size_t i = 0; i < k; i++)
		fprintf(f, "%02x", p[i]);
	fputs(k < n ? "..." : "", f);
}

static void json_id(json_w *w, const void *id, size_t n)
{
	json_key(w, "id");
	json_strn(w, id, n);
	json_key(w, "id_hex");
	json_hex(w, id, n);
}

static const char *state_name(int s)
{
	switch (s) {
	case CKR_RUN_RUNNING: return "running";
	case CKR_RUN_FAILED: return "failed";
	case CKR_RUN_COMPLETED: return "completed";
	}
	return "unknown";
}

static const char *kind_name(int k)
{
	switch (k) {
	case CKR_KIND_SINGLE_LOOP: return "single_loop";
	case CKR_KIND_MULTI_PHASE: return "multi_phase";
	}
	return "unknown";
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* ------------------------------------------------------------------ */
/* segment snapshot (the observer of ckring.h)                         */
/* ------------------------------------------------------------------ */

typedef struct seg_snap {
	ckr_segment_info info;
	ckr_lane_info *lanes;     /* info.lane_count entries */
} seg_snap;

static void snap_take(ckr_observer *ob, seg_snap *s)
{
	ckr_observer_snapshot(ob, &s->info, s->lanes, s->info.lane_count);
}

/* Heartbeat age in ms, or -1 when the flusher never beat. */
static double heartbeat_age_ms(const seg_snap *s)
{
	return s->info.heartbeat_seen ? (double)s->info.heartbeat_age_ns / 1e6 : -1;
}

static uint64_t fill_bytes(const ckr_lane_info *li)
{
	return li->state == CKR_LANE_INCONSISTENT ? 0 : li->tail - li->head;
}

/* ------------------------------------------------------------------ */
/* segment: text                                                       */
/* ------------------------------------------------------------------ */

static void print_epoch(FILE *f, const uint8_t *e)
{
	for (int i = 0; i < 16; i++)
		fprintf(f, "%02x", e[i]);
}

static const char *lane_state(ckr_lane_state st)
{
	switch (st) {
	case CKR_LANE_FREE: return "free";
	case CKR_LANE_ATTACHED: return "attached";
	case CKR_LANE_DETACHED: return "detached";
	case CKR_LANE_OWNER_GONE: return "owner-dead";
	case CKR_LANE_INCONSISTENT: return "INCONSISTENT";
	}
	return "?";
}

static void print_layout(const seg_snap *s)
{
	const ckr_segment_info *g = &s->info;
	time_t created = (time_t)(g->created_ns / 1000000000u);
	char when[64] = "?";
	struct tm tm;
	if (localtime_r(&created, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
	printf("segment %s  (layout v%" PRIu32 ", epoch ", g->name, g->layout_version);
	print_epoch(stdout, g->epoch);
	printf(", created %s)\n", when);
	printf("  %" PRIu32 " lanes x %" PRIu64 " bytes, %" PRIu32 " writer slots a lane, "
	       "max record %" PRIu32 " bytes, size %" PRIu64 " bytes\n", g->lane_count,
	       g->lane_capacity, g->writers_per_lane, g->max_record, g->size);
	if (g->attached == g->lane_count)
		printf("  every lane is taken: one more producer client gets \"no free "
		       "lane\" (-EUSERS)\n");
}

static void print_lanes(const seg_snap *s)
{
	uint32_t unused = 0;
	printf("\nlanes:\n  %4s %-8s %-12s %14s %14s %22s %8s %10s %7s\n", "lane", "owner",
	       "state", "head", "tail", "fill", "refused", "drained", "writers");
	for (uint32_t i = 0; i < s->info.lane_count; i++) {
		const ckr_lane_info *li = &s->lanes[i];
		if (li->state == CKR_LANE_FREE && li->tail == 0 && li->refused_full == 0) {
			unused++;
			continue;
		}
		char fill[40];
		if (li->state != CKR_LANE_INCONSISTENT)
			snprintf(fill, sizeof fill, "%" PRIu64 " B (%.1f%%)", fill_bytes(li),
				 pct(fill_bytes(li), li->capacity));
		else
			snprintf(fill, sizeof fill, "?");
		printf("  %4" PRIu32 " %-8" PRIu32 " %-12s %14" PRIu64 " %14" PRIu64 " %22s %8"
		       PRIu64 " %10" PRIu64 " %7" PRIu32 "\n", i, li->owner_pid,
		       lane_state(li->state), li->head, li->tail, fill, li->refused_full,
		       li->drained, li->writers);
	}
	if (unused)
		printf("  (%" PRIu32 " unused lane%s not shown)\n", unused, unused == 1 ? "" : "s");
}

static void print_flusher(const seg_snap *s)
{
	const ckr_segment_info *g = &s->info;
	double age = heartbeat_age_ms(s);
	printf("\nflusher:\n");
	if (!g->flusher_present)
		printf("  none attached (nothing drains this segment)\n");
	else
		printf("  pid %" PRIu32 ", %s", g->flusher_pid,
		       g->flusher_alive ? "alive" : "DEAD (nothing drains this segment)");
	if (g->flusher_present && age >= 0)
		printf(", heartbeat %.1f ms ago", age);
	if (g->flusher_present)
		printf("\n");
	printf("  batches %" PRIu64 ", records %" PRIu64 "\n", g->batches, g->records);
	printf("  committed %" PRIu64 " B, synced %" PRIu64 " B (sums over lanes)\n",
	       g->committed, g->synced);
	printf("  lag %" PRIu64 " B, %" PRIu64 " record%s\n", g->lag_bytes, g->lag_records,
	       g->lag_records == 1 ? "" : "s");
}

static void print_segment_text(const seg_snap *s)
{
	const ckr_segment_info *g = &s->info;
	print_layout(s);
	print_lanes(s);
	printf("\ncounters:\n  pushed %" PRIu64 ", refused_full %" PRIu64
	       ", reclaimed (unblocked) %" PRIu64 ", corrupt %" PRIu64
	       ", lanes freed %" PRIu64 "\n", g->pushed, g->refused_full, g->reclaimed,
	       g->corrupt, g->lanes_freed);
	print_flusher(s);
	if (g->inconsistent)
		printf("\nWARNING: %" PRIu32 " lane%s with inconsistent positions "
		       "(tail behind head or more than a lap ahead)\n", g->inconsistent,
		       g->inconsistent == 1 ? "" : "s");
}

/* ------------------------------------------------------------------ */
/* segment: JSON                                                       */
/* ------------------------------------------------------------------ */

static void json_lane(json_w *w, const ckr_lane_info *li)
{
	json_obj(w);
	json_key(w, "index"); json_u64(w, li->index);
	json_key(w, "owner_pid"); json_u64(w, li->owner_pid);
	json_key(w, "owner_alive"); json_bool(w, li->state == CKR_LANE_ATTACHED);
	json_key(w, "detached"); json_bool(w, li->state == CKR_LANE_DETACHED);
	json_key(w, "state"); json_str(w, lane_state(li->state));
	json_key(w, "head"); json_u64(w, li->head);
	json_key(w, "tail"); json_u64(w, li->tail);
	json_key(w, "synced"); json_u64(w, li->synced);
	json_key(w, "capacity"); json_u64(w, li->capacity);
	json_key(w, "fill_bytes"); json_u64(w, fill_bytes(li));
	json_key(w, "fill_pct"); json_double(w, pct(fill_bytes(li), li->capacity));
	json_key(w, "pending_records"); json_u64(w, li->pending);
	json_key(w, "refused_full"); json_u64(w, li->refused_full);
	json_key(w, "drained"); json_u64(w, li->drained);
	json_key(w, "writers"); json_u64(w, li->writers);
	json_end_obj(w);
}

static void json_counters(json_w *w, const ckr_segment_info *g)
{
	json_key(w, "counters");
	json_obj(w);
	json_key(w, "pushed"); json_u64(w, g->pushed);
	json_key(w, "refused_full"); json_u64(w, g->refused_full);
	json_key(w, "reclaimed"); json_u64(w, g->reclaimed);
	json_key(w, "unblocked"); json_u64(w, g->reclaimed);
	json_key(w, "corrupt"); json_u64(w, g->corrupt);
	json_key(w, "lanes_freed"); json_u64(w, g->lanes_freed);
	json_key(w, "drained"); json_u64(w, g->drained);
	json_end_obj(w);
}

static void json_flusher(json_w *w, const seg_snap *s)
{
	const ckr_segment_info *g = &s->info;
	double age = heartbeat_age_ms(s);
	json_key(w, "flusher");
	json_obj(w);
	json_key(w, "pid"); json_u64(w, g->flusher_pid);
	json_key(w, "alive"); json_bool(w, g->flusher_alive);
	json_key(w, "heartbeat_age_ms");
	if (age < 0)
		json_null(w);
	else
		json_double(w, age);
	json_key(w, "committed"); json_u64(w, g->committed);
	json_key(w, "synced"); json_u64(w, g->synced);
	json_key(w, "lag_bytes"); json_u64(w, g->lag_bytes);
	json_key(w, "lag_records"); json_u64(w, g->lag_records);
	json_key(w, "batches"); json_u64(w, g->batches);
	json_key(w, "records"); json_u64(w, g->records);
	json_end_obj(w);
}

static void json_segment_head(json_w *w, const seg_snap *s)
{
	const ckr_segment_info *g = &s->info;
	json_key(w, "name"); json_str(w, g->name);
	json_key(w, "version"); json_u64(w, g->layout_version);
	json_key(w, "epoch"); json_hex(w, g->epoch, sizeof g->epoch);
	json_key(w, "lane_count"); json_u64(w, g->lane_count);
	json_key(w, "lanes_free"); json_u64(w, g->lane_count - g->attached);
	json_key(w, "lane_capacity"); json_u64(w, g->lane_capacity);
	json_key(w, "writers_per_lane"); json_u64(w, g->writers_per_lane);
	json_key(w, "max_record"); json_u64(w, g->max_record);
	json_key(w, "size"); json_u64(w, g->size);
	json_key(w, "created_ns"); json_u64(w, g->created_ns);
	json_key(w, "lanes");
	json_arr(w);
	for (uint32_t i = 0; i < g->lane_count; i++)
		json_lane(w, &s->lanes[i]);
	json_end_arr(w);
	json_counters(w, g);
	json_flusher(w, s);
}

/* ------------------------------------------------------------------ */
/* segment: --records                                                  */
/* ------------------------------------------------------------------ */

static void rec_text(const ckr_record_info *r)
{
	printf("  %4" PRIu32 " %14" PRIu64 "  ", r->lane, r->pos);
	if (r->kind != CKR_RECORD_EVENT) {
		printf("CORRUPT (%s), %" PRIu32 " bytes\n", r->reason, r->size);
		return;
	}
	printf("%-8s ", r->event_name);
	print_bytes(stdout, r->id, r->id_len);
	printf("  seq %" PRIu64 ", incarnation %" PRIu32 ", %" PRIu32 " bytes", r->seq,
	       r->incarnation, r->size);
	if (r->event == CKR_EVENT_PHASE) {
		printf(", phase %" PRIu32 " \"", r->phase_index);
		print_safe(stdout, r->phase_name, r->phase_name_len);
		printf("\"");
	} else if (r->event == CKR_EVENT_BEGIN) {
		printf(", %s, owner pid %" PRIu32, kind_name(r->run_kind), r->begin_pid);
	}
	printf("\n");
}

static void rec_json(json_w *w, const ckr_record_info *r)
{
	json_obj(w);
	json_key(w, "lane"); json_u64(w, r->lane);
	json_key(w, "pos"); json_u64(w, r->pos);
	json_key(w, "status"); json_str(w, r->kind == CKR_RECORD_EVENT ? "record" : "corrupt");
	if (r->kind != CKR_RECORD_EVENT) {
		json_key(w, "reason"); json_str(w, r->reason);
		json_key(w, "size"); json_u64(w, r->size);
		json_end_obj(w);
		return;
	}
	json_key(w, "type"); json_str(w, r->event_name);
	json_id(w, r->id, r->id_len);
	json_key(w, "seq"); json_u64(w, r->seq);
	json_key(w, "incarnation"); json_u64(w, r->incarnation);
	json_key(w, "size"); json_u64(w, r->size);
	if (r->event == CKR_EVENT_PHASE) {
		json_key(w, "phase_index"); json_u64(w, r->phase_index);
		json_key(w, "phase_name"); json_strn(w, r->phase_name, r->phase_name_len);
	}
	json_end_obj(w);
}

static int show_record(void *ctx, const ckr_record_info *r)
{
	if (ctx)
		rec_json(ctx, r);
	else
		rec_text(r);
	return 0;
}

static void records_all(ckr_observer *ob, const seg_snap *s, json_w *w)
{
	if (!w)
		printf("\npending records (between head and tail):\n");
	for (uint32_t i = 0; i < s->info.lane_count; i++)
		ckr_observer_records(ob, i, show_record, w);
	if (!w && s->info.lag_records == 0)
		printf("  (none)\n");
}

/* ------------------------------------------------------------------ */
/* segment: --watch                                                    */
/* ------------------------------------------------------------------ */

/*
 * The same numbers as ckring-flusher's metrics: rates of the segment's
 * counters, lag (ckring_lag_bytes), and the age of the oldest unflushed event
 * (ckring_oldest_unflushed_age_seconds), measured the same way (lanewatch.h)
 * from this process's own samples, every 100 ms.
 */
static void watch_line(const seg_snap *now, const seg_snap *prev, unsigned line,
		       double oldest_s)
{
	const ckr_segment_info *n = &now->info, *p = prev ? &prev->info : NULL;
	double dt = p ? (double)(n->taken_ns - p->taken_ns) / 1e9 : 0;
	/* A busy lane is counted approximately: never show a negative rate. */
	double push_rate = dt > 0 && n->pushed > p->pushed
				   ? (double)(n->pushed - p->pushed) / dt : 0;
	double drain_rate = dt > 0 && n->drained > p->drained
				    ? (double)(n->drained - p->drained) / dt : 0;
	double refuse_rate = dt > 0 && n->refused_full > p->refused_full
				     ? (double)(n->refused_full - p->refused_full) / dt : 0;
	char when[16] = "";
	time_t t = time(NULL);
	struct tm tm;
	if (line % 20 == 0)
		printf("%-8s %12s %10s %10s %12s %9s %8s %9s %8s %8s %6s  %s\n", "time",
		       "pushed", "pushed/s", "drained/s", "lag_bytes", "lag_recs", "oldest_s",
		       "refused/s", "refused", "corrupt", "lanes", "flusher");
	if (localtime_r(&t, &tm))
		strftime(when, sizeof when, "%H:%M:%S", &tm);
	printf("%-8s %12" PRIu64 " %10.0f %10.0f %12" PRIu64 " %9" PRIu64 " %8.1f %9.0f %8"
	       PRIu64 " %8" PRIu64 " %6" PRIu32 "  %s", when, n->pushed, push_rate, drain_rate,
	       n->lag_bytes, n->lag_records, oldest_s, refuse_rate, n->refused_full,
	       n->corrupt, n->attached,
	       !n->flusher_present ? "none" : n->flusher_alive ? "alive" : "DEAD");
	if (n->flusher_alive && heartbeat_age_ms(now) >= 0)
		printf(" (heartbeat %.1f ms ago)", heartbeat_age_ms(now));
	printf("\n");
	fflush(stdout);
}

/* The largest age of a lane's oldest unflushed event. */
static double oldest_age(const lanewatch *lw, uint32_t n, uint64_t now)
{
	double m = 0;
	for (uint32_t i = 0; i < n; i++) {
		double a = lw_age_s(lw, i, now);
		m = a > m ? a : m;
	}
	return m;
}

/* lw: made by the caller, before its sigsetjmp, and freed by it (a SIGBUS
 * jumps out of here). */
static int watch(ckr_observer *ob, seg_snap *a, seg_snap *b, lanewatch *lw)
{
	struct timespec tick = { 0, 100000000 }; /* sample 10 times a second */
	install_handler(SIGINT, on_stop);
	install_handler(SIGTERM, on_stop);
	snap_take(ob, a);
	lw_observe(lw, a->lanes, a->info.lane_count, a->info.taken_ns);
	watch_line(a, NULL, 0, 0);
	for (unsigned t = 1, line = 1; !stop_watch; t++) {
		nanosleep(&tick, NULL);
		if (stop_watch)
			break;
		snap_take(ob, b);
		lw_observe(lw, b->lanes, b->info.lane_count, b->info.taken_ns);
		if (t % 10)
			continue;
		watch_line(b, a, line++, oldest_age(lw, b->info.lane_count, b->info.taken_ns));
		seg_snap x = *a;
		*a = *b;
		*b = x;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* segment: the command                                                */
/* ------------------------------------------------------------------ */

static int segment_show(ckr_observer *ob, seg_snap *s, const opts *o)
{
	snap_take(ob, s);
	if (!o->json) {
		print_segment_text(s);
		if (o->records)
			records_all(ob, s, NULL);
		return 0;
	}
	json_w w;
	json_init(&w, stdout, 2);
	json_obj(&w);
	json_segment_head(&w, s);
	if (o->records) {
		json_key(&w, "records");
		json_arr(&w);
		records_all(ob, s, &w);
		json_end_arr(&w);
	}
	json_end_obj(&w);
	json_finish(&w);
	return 0;
}

static int cmd_segment(const opts *o)
{
	ckr_observer *ob;
	const char *name = o->arg[0];
	int rc = ckr_observer_open(name, &ob);
	if (rc == -ENOENT)
		return cli_fail("segment", name, "no such segment");
	if (rc == -EINVAL)
		return cli_fail("segment", name, "invalid segment name (letters, digits, "
			    "'.', '_', '-'; at most 200 bytes)");
	if (rc)
		return cli_fail("segment", name, ckr_strerror(rc));
	seg_snap a, b;
	lanewatch lw = { 0 };
	ckr_observer_snapshot(ob, &a.info, NULL, 0); /* the lane count */
	b.info.lane_count = a.info.lane_count;
	a.lanes = calloc(a.info.lane_count, sizeof *a.lanes);
	b.lanes = calloc(a.info.lane_count, sizeof *b.lanes);
	if (!a.lanes || !b.lanes || (o->watch && lw_init(&lw, a.info.lane_count) != 0)) {
		rc = cli_fail("segment", name, ckr_strerror(-ENOMEM));
		goto out;
	}
	/* The observer reads the mapping: a segment truncated under us faults;
	 * it holds no lock and allocates nothing while it reads, so we may
	 * jump out of it (ckring.h). */
	install_handler(SIGBUS, on_sigbus);
	if (sigsetjmp(bus_jmp, 1)) {
		bus_armed = 0;
		fflush(stdout);
		rc = cli_fail("segment", name, "truncated while being read (SIGBUS)");
		goto out;
	}
	bus_armed = 1;
	rc = o->watch ? watch(ob, &a, &b, &lw) : segment_show(ob, &a, o);
	bus_armed = 0;
out:
	lw_free(&lw);
	free(a.lanes);
	free(b.lanes);
	ckr_observer_close(ob);
	return rc;
}

/* ------------------------------------------------------------------ */
/* db                                                                  */
/* ------------------------------------------------------------------ */

static int store_open_ro(const char *dir, ckr_store **s)
{
	ckr_store_opts so = { .read_only = true };
	int rc = ckr_store_open(dir, &so, s);
	if (rc == -ENOENT)
		return cli_fail("store", dir, "no such directory, or no store in it "
			    "(has a flusher run on it?)");
	if (rc == CKR_EVERSION)
		return cli_fail("store", dir, "made by another ckring version: a store of "
			    "ckring 0.1 (schema 1) is migrated in place by starting "
			    "ckring-flusher --db on it once; a newer schema needs a newer "
			    "ckring");
	if (rc)
		return cli_fail("store", dir, ckr_strerror(rc));
	return 0;
}

static const char *const store_counters[] = {
	"stored", "dup_begin", "foreign", "bad_begin", "bad_kind", "stale", "orphan",
	"after_end", "dup_seq", "quarantined",
};

static void json_run_info(json_w *w, const ckr_run_info *r)
{
	json_obj(w);
	json_id(w, r->id, r->id_len);
	json_key(w, "state"); json_str(w, state_name(r->state));
	json_key(w, "kind"); json_str(w, kind_name(r->kind));
	json_key(w, "owner_pid"); json_u64(w, r->owner_pid);
	json_key(w, "owner_alive"); json_bool(w, r->owner_alive);
	json_key(w, "events"); json_u64(w, r->events);
	json_key(w, "last_seq"); json_u64(w, r->last_seq);
	json_key(w, "attempts"); json_u64(w, r->attempts);
	json_key(w, "error");
	if (r->state == CKR_RUN_FAILED || r->error[0])
		json_str(w, r->error);
	else
		json_null(w);
	json_key(w, "interrupted");
	json_bool(w, r->state == CKR_RUN_RUNNING && !r->owner_alive);
	json_key(w, "owner_drained"); json_bool(w, r->owner_drained);
	json_key(w, "incarnation"); json_u64(w, r->incarnation);
	json_key(w, "prefix_seq"); json_u64(w, r->prefix_seq);
	json_key(w, "set_aside"); json_u64(w, r->set_aside);
	json_key(w, "bytes"); json_u64(w, r->bytes);
	json_key(w, "label"); json_str(w, r->label);
	json_end_obj(w);
}

static void db_json(ckr_store *st, const ckr_run_info *v, size_t n)
{
	json_w w;
	json_init(&w, stdout, 2);
	json_obj(&w);
	json_key(&w, "runs");
	json_arr(&w);
	for (size_t i = 0; i < n; i++)
		json_run_info(&w, &v[i]);
	json_end_arr(&w);
	json_key(&w, "counters");
	json_obj(&w);
	for (size_t i = 0; i < sizeof store_counters / sizeof store_counters[0]; i++) {
		json_key(&w, store_counters[i]);
		json_u64(&w, ckr_store_counter(st, store_counters[i]));
	}
	json_end_obj(&w);
	json_end_obj(&w);
	json_finish(&w);
}

static void db_summary(const char *dir, const ckr_run_info *v, size_t n)
{
	size_t by[4] = { 0 }, interrupted = 0;
	for (size_t i = 0; i < n; i++) {
		by[v[i].state <= 3 ? v[i].state : 0]++;
		interrupted += v[i].state == CKR_RUN_RUNNING && !v[i].owner_alive;
	}
	printf("store %s: %zu run%s (%zu running, %zu failed, %zu completed); "
	       "%zu interrupted\n", dir, n, n == 1 ? "" : "s", by[CKR_RUN_RUNNING],
	       by[CKR_RUN_FAILED], by[CKR_RUN_COMPLETED], interrupted);
}

static void db_text(const char *dir, const ckr_run_info *v, size_t n)
{
	size_t idw = 2;
	db_summary(dir, v, n);
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (bytes_width(v[i].id, v[i].id_len) > idw)
			idw = bytes_width(v[i].id, v[i].id_len);
	printf("  %-*s  %-9s %-11s %8s %-5s %7s %8s %8s  %s\n", (int)idw, "id", "state",
	       "kind", "owner", "alive", "events", "last_seq", "attempts", "error");
	for (size_t i = 0; i < n; i++) {
		const ckr_run_info *r = &v[i];
		printf("  ");
		print_bytes(stdout, r->id, r->id_len);
		printf("%*s  %-9s %-11s %8" PRIu32 " %-5s %7" PRIu64 " %8" PRIu64 " %8" PRIu32
		       "  ", (int)(idw - bytes_width(r->id, r->id_len)), "",
		       state_name(r->state), kind_name(r->kind), r->owner_pid,
		       r->owner_alive ? "yes" : "no", r->events, r->last_seq, r->attempts);
		print_safe(stdout, r->error[0] ? r->error : "-", r->error[0] ? strlen(r->error) : 1);
		printf("\n");
	}
}

/* One page (--state, --older-than, --limit, --after): ckr_store_query. */
static int db_page(const opts *o, ckr_store *st)
{
	ckr_list_query q = o->q;
	ckr_run_info *v = NULL;
	size_t n = 0;
	bool more = false;
	q.which = o->state_sel == 4 ? CKR_LIST_INTERRUPTED : CKR_LIST_ALL;
	q.state = o->state_sel >= 1 && o->state_sel <= 3 ? (ckr_run_state)o->state_sel : 0;
	int rc = ckr_store_query(st, &q, &v, &n, &more);
	if (rc)
		return cli_fail("store", o->arg[0], ckr_strerror(rc));
	if (o->json) {
		json_w w;
		json_init(&w, stdout, 2);
		json_obj(&w);
		json_key(&w, "runs");
		json_arr(&w);
		for (size_t i = 0; i < n; i++)
			json_run_info(&w, &v[i]);
		json_end_arr(&w);
		json_key(&w, "more"); json_bool(&w, more);
		json_key(&w, "next_after");
		if (more && n)
			json_strn(&w, v[n - 1].id, v[n - 1].id_len);
		else
			json_null(&w);
		json_end_obj(&w);
		json_finish(&w);
	} else {
		db_text(o->arg[0], v, n);
		if (more && n) {
			printf("(more: --after ");
			print_bytes(stdout, v[n - 1].id, v[n - 1].id_len);
			printf(")\n");
		}
	}
	free(v);
	return 0;
}

static int cmd_db(const opts *o)
{
	ckr_store *st;
	ckr_run_info *v = NULL;
	size_t n = 0;
	const char *dir = o->arg[0];
	int rc = store_open_ro(dir, &st);
	if (rc)
		return rc;
	if (o->query) {
		rc = db_page(o, st);
		ckr_store_close(st);
		return rc;
	}
	rc = ckr_store_list(st, CKR_LIST_ALL, &v, &n);
	if (rc) {
		ckr_store_close(st);
		return cli_fail("store", dir, ckr_strerror(rc));
	}
	if (o->json)
		db_json(st, v, n);
	else
		db_text(dir, v, n);
	free(v);
	ckr_store_close(st);
	return 0;
}

/* ------------------------------------------------------------------ */
/* run                                                                 */
/* ------------------------------------------------------------------ */

static void json_blobs(json_w *w, const ckr_blob *b, size_t n, bool phases)
{
	json_arr(w);
	for (size_t i = 0; i < n; i++) {
		json_obj(w);
		if (phases) {
			json_key(w, "index"); json_u64(w, b[i].index);
			json_key(w, "name"); json_str(w, b[i].name ? b[i].name : "");
		}
		json_key(w, "seq"); json_u64(w, b[i].seq);
		json_key(w, "incarnation"); json_u64(w, b[i].incarnation);
		json_key(w, "size"); json_u64(w, b[i].size);
		json_key(w, "data_b64"); json_b64(w, b[i].data, b[i].size);
		json_end_obj(w);
	}
	json_end_arr(w);
}

static void run_json(const ckr_resume *rs)
{
	json_w w;
	json_init(&w, stdout, 2);
	json_obj(&w);
	json_id(&w, rs->id, rs->id_len);
	json_key(&w, "state"); json_str(&w, state_name(rs->state));
	json_key(&w, "kind"); json_str(&w, kind_name(rs->kind));
	json_key(&w, "label"); json_str(&w, rs->label);
	json_key(&w, "next_seq"); json_u64(&w, rs->next_seq);
	json_key(&w, "gaps");
	json_arr(&w);
	for (size_t i = 0; i < rs->n_gaps; i++)
		json_u64(&w, rs->gaps[i]);
	json_end_arr(&w);
	json_key(&w, "history");
	json_blobs(&w, rs->history, rs->n_history, false);
	json_key(&w, "completed_phases");
	json_blobs(&w, rs->phases, rs->n_phases, true);
	/* Rows a claim set aside (past a gap): kept, never part of the resume
	 * state. */
	json_key(&w, "set_aside");
	json_blobs(&w, rs->set_aside, rs->n_set_aside, rs->kind == CKR_KIND_MULTI_PHASE);
	json_key(&w, "meta_b64"); json_b64(&w, rs->meta, rs->meta_len);
	json_end_obj(&w);
	json_finish(&w);
}

static void run_text(const ckr_resume *rs)
{
	printf("run ");
	print_bytes(stdout, rs->id, rs->id_len);
	printf("  (%s, %s", state_name(rs->state), kind_name(rs->kind));
	if (rs->label[0]) {
		printf(", label ");
		print_safe(stdout, rs->label, strlen(rs->label));
	}
	printf(")\n");
	printf("  next sequence %" PRIu64 "\n", rs->next_seq);
	printf("  gaps: ");
	for (size_t i = 0; i < rs->n_gaps; i++)
		printf("%s%" PRIu64, i ? ", " : "", rs->gaps[i]);
	printf("%s\n", rs->n_gaps ? "  (resume stops before the first gap)" : "none");
	if (rs->n_set_aside) {
		printf("  set aside by claims (past a gap; not part of the resume state): %zu\n",
		       rs->n_set_aside);
		for (size_t i = 0; i < rs->n_set_aside; i++) {
			const ckr_blob *b = &rs->set_aside[i];
			printf("    seq %-6" PRIu64 " incarnation %-3" PRIu32 " %6zu B  ", b->seq,
			       b->incarnation, b->size);
			print_preview(stdout, b->data, b->size, 50);
			printf("\n");
		}
	}
	if (rs->kind == CKR_KIND_MULTI_PHASE) {
		printf("  completed phases: %zu\n", rs->n_phases);
		for (size_t i = 0; i < rs->n_phases; i++) {
			const ckr_blob *b = &rs->phases[i];
			size_t nl = b->name ? strlen(b->name) : 0;
			printf("    [%" PRIu32 "] ", b->index);
			print_safe(stdout, b->name ? b->name : "", nl);
			printf("%*s seq %-6" PRIu64 " %6zu B  ", nl < 12 ? (int)(12 - nl) : 0, "",
			       b->seq, b->size);
			print_preview(stdout, b->data, b->size, 60);
			printf("\n");
		}
		return;
	}
	printf("  history: %zu message%s\n", rs->n_history, rs->n_history == 1 ? "" : "s");
	for (size_t i = 0; i < rs->n_history; i++) {
		const ckr_blob *b = &rs->history[i];
		printf("    seq %-6" PRIu64 " %6zu B  ", b->seq, b->size);
		print_preview(stdout, b->data, b->size, 72);
		printf("\n");
	}
}

static int cmd_run(const opts *o)
{
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len = 0;
	ckr_store *st;
	ckr_resume *rs;
	int rc = cli_run_id(o->arg[1], o->hex, id, &id_len);
	if (rc)
		return rc;
	rc = store_open_ro(o->arg[0], &st);
	if (rc)
		return rc;
	rc = ckr_store_resume(st, id, id_len, &rs);
	ckr_store_close(st);
	if (rc == -ENOENT)
		return cli_fail("run", o->arg[1], "no such run in the store");
	if (rc)
		return cli_fail("run", o->arg[1], ckr_strerror(rc));
	if (o->json)
		run_json(rs);
	else
		run_text(rs);
	ckr_resume_free(rs);
	return 0;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	opts o = { 0 };
	int rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (strcmp(o.cmd, "segment") == 0)
		rc = cmd_segment(&o);
	else if (strcmp(o.cmd, "db") == 0)
		rc = cmd_db(&o);
	else
		rc = cmd_run(&o);
	if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, PROG ": write error: %s\n", strerror(errno));
		rc = 1;
	}
	return rc;
}
