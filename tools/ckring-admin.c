/*
 * ckring-admin — the operator's actions on a store, safe while the flusher
 * runs and against a crash of any process at any instant:
 *
 *   ckring-admin prune DIR [--failed-older-than DUR] [--completed-older-than DUR]
 *                          [--dry-run] [--json]
 *   ckring-admin fail DIR RUN_ID --reason TEXT [--json]
 *   ckring-admin retry DIR RUN_ID [--json]
 *   ckring-admin export DIR RUN_ID
 *   ckring-admin import DIR FILE [--json]
 *   ckring-admin host-lost NAME --pg CONNINFO [--reason TEXT] [--json]
 *
 * Argument parsing, printing and the JSON of export/import only; every
 * action is a call of ckring_store.h (one store transaction each, or for
 * prune a sequence of bounded ones: ring/PROTOCOL.md, "Operator actions"),
 * or, for host-lost, of ckring_fleet.h (ckr_fleet_host_lost: one UPDATE in
 * the shared database; docs/DESIGN.md §11).
 * Exit status: 0 done; 1 the action was refused or failed (one line on
 * stderr); 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckring_fleet.h"
#include "ckring_store.h"
#include "json.h"
/* jansson reads the import document; its json_null() clashes with the
 * writer's (json.h) and is not used here. */
#define json_null jansson_json_null
#include <jansson.h>
#undef json_null

#define PROG "ckring-admin"
#define CLI_PROG PROG
#include "cli.h"
#define REASON_MAX 4000

typedef struct opts {
	const char *cmd;
	const char *arg[2];
	int n_args;
	const char *reason;
	const char *pg;
	bool json, dry_run, hex, has_failed, has_completed;
	uint64_t failed_s, completed_s;
	uint64_t txn_runs, txn_rows;
} opts;

static void usage(FILE *out)
{
	fputs("usage: " PROG " prune DIR [--failed-older-than DUR] [--completed-older-than DUR]\n"
	      "                          [--dry-run] [--json]\n"
	      "       " PROG " fail DIR RUN_ID --reason TEXT [--json]\n"
	      "       " PROG " retry DIR RUN_ID [--json]\n"
	      "       " PROG " export DIR RUN_ID\n"
	      "       " PROG " import DIR FILE [--json]\n"
	      "       " PROG " host-lost NAME --pg CONNINFO [--reason TEXT] [--json]\n"
	      "Operator actions on the ckring store at DIR; safe while ckring-flusher runs;\n"
	      "and on the shared PostgreSQL of a fleet (host-lost).\n\n"
	      "  prune    remove failed runs that failed longer ago than DUR (record,\n"
	      "           events, set-aside rows), and clear the kept events of completed\n"
	      "           runs that completed longer ago than DUR (the record stays, so a\n"
	      "           late duplicate begin is still refused); in bounded transactions\n"
	      "  fail     give up on a running run: it fails with \"failed by operator:\n"
	      "           TEXT\"; its writer's later events are rejected (its waits get\n"
	      "           CKR_EREJECTED)\n"
	      "  retry    make a failed or exhausted run claimable again, with its resume\n"
	      "           state and a fresh attempt budget (the next claim names a new\n"
	      "           writer)\n"
	      "  export   print one run (record and every row, base64) as one JSON document\n"
	      "  import   write a run exported from another store (FILE, or - for stdin);\n"
	      "           refused if DIR has a run of that id; a running run arrives\n"
	      "           claimable (with a shipper: a run another host holds in the\n"
	      "           shared database is refused there and marked moved here)\n"
	      "  host-lost declare host NAME lost in the shared database of CONNINFO: its\n"
	      "           interrupted runs may be claimed by other hosts at once\n"
	      "           (ckring-recover), whatever its lease says; if it comes back,\n"
	      "           its writes for the runs that moved are refused\n\n"
	      "  DUR                 a number with s, m, h or d: 90s, 15m, 2h, 7d, 0s\n"
	      "  --dry-run           (prune) list what would go; change nothing\n"
	      "  --json              one JSON document on stdout\n"
	      "  --hex               RUN_ID is given as hex bytes\n"
	      "  --pg CONNINFO       (host-lost) libpq connection string of the database\n"
	      "  --reason TEXT       (fail) why, in the run's error; (host-lost) why,\n"
	      "                      kept with the mark (default \"declared lost\")\n"
	      "  --txn-runs N        (prune) runs touched per transaction (default 64)\n"
	      "  --txn-rows N        (prune) rows deleted per transaction (default 8192)\n"
	      "  --help              this text\n\n"
	      "Exit status: 0 done, 1 refused or failed (one line on stderr), 2 usage.\n",
	      out);
}

/* ------------------------------------------------------------------ */
/* arguments                                                           */
/* ------------------------------------------------------------------ */

enum { O_FAILED = 1, O_COMPLETED, O_DRY, O_JSON, O_REASON, O_HEX, O_TXN_RUNS,
       O_TXN_ROWS, O_PG, O_HELP };

static const struct option long_opts[] = {
	{ "failed-older-than", required_argument, NULL, O_FAILED },
	{ "completed-older-than", required_argument, NULL, O_COMPLETED },
	{ "dry-run", no_argument, NULL, O_DRY },
	{ "json", no_argument, NULL, O_JSON },
	{ "reason", required_argument, NULL, O_REASON },
	{ "hex", no_argument, NULL, O_HEX },
	{ "txn-runs", required_argument, NULL, O_TXN_RUNS },
	{ "txn-rows", required_argument, NULL, O_TXN_ROWS },
	{ "pg", required_argument, NULL, O_PG },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_option(int c, const char *a, opts *o)
{
	switch (c) {
	case O_FAILED:
		if (!cli_dur(a, false, UINT32_MAX * 100ull, &o->failed_s))
			return cli_usage_error("bad --failed-older-than (a number with s, m, h "
					   "or d, e.g. 7d)", a);
		o->has_failed = true;
		return 0;
	case O_COMPLETED:
		if (!cli_dur(a, false, UINT32_MAX * 100ull, &o->completed_s))
			return cli_usage_error("bad --completed-older-than (a number with s, m, "
					   "h or d, e.g. 1h)", a);
		o->has_completed = true;
		return 0;
	case O_DRY: o->dry_run = true; return 0;
	case O_JSON: o->json = true; return 0;
	case O_HEX: o->hex = true; return 0;
	case O_REASON:
		if (!*a || strlen(a) > REASON_MAX)
			return cli_usage_error("bad --reason (1..4000 bytes)", a);
		o->reason = a;
		return 0;
	case O_TXN_RUNS:
		return cli_u64(a, 10, 1, 100000, &o->txn_runs)
			       ? 0 : cli_usage_error("bad --txn-runs (1..100000)", a);
	case O_TXN_ROWS:
		return cli_u64(a, 10, 1, 10000000, &o->txn_rows)
			       ? 0 : cli_usage_error("bad --txn-rows (1..10000000)", a);
	case O_PG:
		if (!*a)
			return cli_usage_error("bad --pg (a libpq connection string)", a);
		o->pg = a;
		return 0;
	case O_HELP: usage(stdout); return 1;
	}
	return cli_usage_error("unknown or incomplete option", NULL);
}

/* Each command's arguments and options. */
static int check_command(const opts *o)
{
	enum { PRUNE, FAIL, RETRY, EXPORT, IMPORT, HOST_LOST, N_CMDS };
	static const char *const cmds[] = { "prune", "fail", "retry", "export", "import",
					    "host-lost" };
	static const int nargs[] = { 1, 2, 2, 2, 2, 1 };
	static const char *const missing[] = { "missing store DIR", "missing DIR or RUN_ID",
		"missing DIR or RUN_ID", "missing DIR or RUN_ID", "missing DIR or FILE",
		"missing host NAME" };
	int i = 0;
	while (i < N_CMDS && strcmp(o->cmd, cmds[i]) != 0)
		i++;
	if (i == N_CMDS)
		return cli_usage_error("unknown command (prune, fail, retry, export, import or "
				   "host-lost)", o->cmd);
	if (o->n_args < nargs[i])
		return cli_usage_error(missing[i], NULL);
	if (o->n_args > nargs[i])
		return cli_usage_error("unexpected argument", o->arg[nargs[i]]);
	bool prune = i == PRUNE, fail = i == FAIL, lost = i == HOST_LOST;
	if (!prune && (o->has_failed || o->has_completed || o->dry_run || o->txn_runs ||
		       o->txn_rows))
		return cli_usage_error("--failed-older-than, --completed-older-than, --dry-run, "
				   "--txn-runs and --txn-rows apply to 'prune' only", NULL);
	if (prune && !o->has_failed && !o->has_completed)
		return cli_usage_error("prune needs --failed-older-than DUR and/or "
				   "--completed-older-than DUR", NULL);
	if (fail && !o->reason)
		return cli_usage_error("fail needs --reason TEXT", NULL);
	if (o->reason && !fail && !lost)
		return cli_usage_error("--reason applies to 'fail' and 'host-lost' only", NULL);
	if (lost != (o->pg != NULL))
		return cli_usage_error(lost ? "host-lost needs --pg CONNINFO"
					: "--pg applies to 'host-lost' only", NULL);
	if (lost && strlen(o->arg[0]) > 200)
		return cli_usage_error("host NAME must be 1..200 bytes", o->arg[0]);
	if (o->hex && (prune || i == IMPORT || lost))
		return cli_usage_error("--hex applies to fail, retry and export", NULL);
	if (o->json && i == EXPORT)
		return cli_usage_error("export always prints JSON (--json is not needed)", NULL);
	return 0;
}

/* @return 0 parsed; 1 --help shown; 2 usage error (reported). */
static int parse_args(int argc, char **argv, opts *o)
{
	int c, rc;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		if (c == 'h')
			c = O_HELP;
		if (c == '?' || c == ':')
			return cli_usage_error("unknown or incomplete option", argv[optind - 1]);
		rc = parse_option(c, optarg, o);
		if (rc)
			return rc;
	}
	if (optind >= argc)
		return cli_usage_error("missing command (prune, fail, retry, export, import or "
				   "host-lost)", NULL);
	o->cmd = argv[optind++];
	for (; optind < argc; optind++) {
		if (o->n_args == 2)
			return cli_usage_error("unexpected argument", argv[optind]);
		o->arg[o->n_args++] = argv[optind];
	}
	return check_command(o);
}

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static int store_open_rw(const char *dir, ckr_store **s)
{
	int rc = ckr_store_open(dir, NULL, s);
	if (rc == -ENOENT)
		return cli_fail("store", dir, "no such directory, or no store in it "
				 "(has a flusher run on it?)");
	if (rc == CKR_EVERSION)
		return cli_fail("store", dir, "made by another ckring version (a schema-1 "
				 "store is migrated by starting ckring-flusher on it once)");
	if (rc)
		return cli_fail("store", dir, ckr_strerror(rc));
	return 0;
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
	return k == CKR_KIND_MULTI_PHASE ? "multi_phase" : "single_loop";
}

/* A run id for a message: as text when printable, else 0x<hex>. */
static const char *id_text(const uint8_t *id, size_t n, char *buf, size_t cap)
{
	if (json_is_text(id, n) && !memchr(id, ' ', n) && n < cap) {
		memcpy(buf, id, n);
		buf[n] = '\0';
		return buf;
	}
	size_t k = 0;
	buf[k++] = '0';
	buf[k++] = 'x';
	for (size_t i = 0; i < n && k + 3 < cap; i++)
		k += (size_t)snprintf(buf + k, cap - k, "%02x", id[i]);
	buf[k] = '\0';
	return buf;
}

static void json_run(json_w *w, const ckr_run_info *r)
{
	json_obj(w);
	json_key(w, "id"); json_strn(w, r->id, r->id_len);
	json_key(w, "id_hex"); json_hex(w, r->id, r->id_len);
	json_key(w, "state"); json_str(w, state_name(r->state));
	json_key(w, "kind"); json_str(w, kind_name(r->kind));
	json_key(w, "incarnation"); json_u64(w, r->incarnation);
	json_key(w, "attempts"); json_u64(w, r->attempts);
	json_key(w, "events"); json_u64(w, r->events);
	json_key(w, "set_aside"); json_u64(w, r->set_aside);
	json_key(w, "last_seq"); json_u64(w, r->last_seq);
	json_key(w, "owner_pid"); json_u64(w, r->owner_pid);
	json_key(w, "owner_alive"); json_bool(w, r->owner_alive);
	json_key(w, "claimable");
	json_bool(w, r->state == CKR_RUN_RUNNING && r->owner_drained);
	json_key(w, "error");
	if (r->error[0])
		json_str(w, r->error);
	else
		json_null(w);
	json_end_obj(w);
}

static void print_run_json(const char *action, const ckr_run_info *r)
{
	json_w w;
	json_init(&w, stdout, 2);
	json_obj(&w);
	json_key(&w, "action"); json_str(&w, action);
	json_key(&w, "run"); json_run(&w, r);
	json_end_obj(&w);
	json_finish(&w);
}

/* ------------------------------------------------------------------ */
/* prune                                                               */
/* ------------------------------------------------------------------ */

typedef struct prune_out {
	const opts *o;
	json_w w;
	uint64_t removed, cleared, rows, txns;
	bool step_wrote;
	ckr_pruned part;      /* a run continued across steps */
	bool has_part;
} prune_out;

static void prune_print(prune_out *po, const ckr_pruned *p)
{
	char b[160];
	bool failed = p->state == CKR_RUN_FAILED;
	po->removed += failed;
	po->cleared += !failed;
	if (po->o->json) {
		json_obj(&po->w);
		json_key(&po->w, "id"); json_strn(&po->w, p->id, p->id_len);
		json_key(&po->w, "id_hex"); json_hex(&po->w, p->id, p->id_len);
		json_key(&po->w, "state"); json_str(&po->w, state_name(p->state));
		json_key(&po->w, "action"); json_str(&po->w, failed ? "removed" : "cleared");
		json_key(&po->w, "events"); json_u64(&po->w, p->events);
		json_key(&po->w, "set_aside"); json_u64(&po->w, p->set_aside);
		json_end_obj(&po->w);
		return;
	}
	printf("%s %s run %s (%" PRIu64 " events, %" PRIu64 " set aside)\n",
	       po->o->dry_run ? (failed ? "would remove" : "would clear")
			      : (failed ? "removed" : "cleared"),
	       state_name(p->state), id_text(p->id, p->id_len, b, sizeof b), p->events,
	       p->set_aside);
}

/* The library's report of one run in one step. */
static void on_pruned(void *ctx, const ckr_pruned *p)
{
	prune_out *po = ctx;
	ckr_pruned acc = *p;
	po->step_wrote = true;
	po->rows += p->events + p->set_aside;
	if (po->has_part && po->part.id_len == p->id_len &&
	    memcmp(po->part.id, p->id, p->id_len) == 0) {
		acc.events += po->part.events;
		acc.set_aside += po->part.set_aside;
		po->has_part = false;
	}
	if (!acc.done) {
		po->part = acc;
		po->has_part = true;
		return;
	}
	prune_print(po, &acc);
}

static void prune_summary(prune_out *po)
{
	const opts *o = po->o;
	if (o->json) {
		json_end_arr(&po->w);
		json_key(&po->w, "removed"); json_u64(&po->w, po->removed);
		json_key(&po->w, "cleared"); json_u64(&po->w, po->cleared);
		json_key(&po->w, "rows"); json_u64(&po->w, po->rows);
		json_key(&po->w, "transactions"); json_u64(&po->w, po->txns);
		json_end_obj(&po->w);
		json_finish(&po->w);
		return;
	}
	printf("%s %" PRIu64 " failed run%s, %s %" PRIu64 " completed run%s: %" PRIu64
	       " rows%s", o->dry_run ? "would remove" : "removed", po->removed,
	       po->removed == 1 ? "" : "s", o->dry_run ? "would clear" : "cleared",
	       po->cleared, po->cleared == 1 ? "" : "s", po->rows,
	       o->dry_run ? "" : " deleted");
	if (!o->dry_run)
		printf(" in %" PRIu64 " transaction%s", po->txns, po->txns == 1 ? "" : "s");
	printf("\n");
}

static int cmd_prune(const opts *o)
{
	ckr_prune_opts po_opts = {
		.failed_age_s = o->has_failed ? o->failed_s : CKR_KEEP_FOREVER,
		.completed_age_s = o->has_completed ? o->completed_s : CKR_KEEP_FOREVER,
		.max_runs = (uint32_t)o->txn_runs,
		.max_rows = (uint32_t)o->txn_rows,
		.dry_run = o->dry_run,
	};
	ckr_prune_pos pos = { 0 };
	prune_out po = { .o = o };
	ckr_store *st;
	int rc = store_open_rw(o->arg[0], &st);
	if (rc)
		return rc;
	if (o->json) {
		json_init(&po.w, stdout, 2);
		json_obj(&po.w);
		json_key(&po.w, "dry_run"); json_bool(&po.w, o->dry_run);
		json_key(&po.w, "runs");
		json_arr(&po.w);
	}
	do {
		po.step_wrote = false;
		rc = ckr_store_prune_step(st, &po_opts, &pos, on_pruned, &po);
		po.txns += po.step_wrote && !o->dry_run;
	} while (rc == 0 || (rc == 1 && po.has_part));
	ckr_store_close(st);
	if (rc < 0) {
		fflush(stdout);
		return cli_fail("prune", o->arg[0], ckr_strerror(rc));
	}
	prune_summary(&po);
	return 0;
}

/* ------------------------------------------------------------------ */
/* export                                                              */
/* ------------------------------------------------------------------ */

#define EXPORT_FORMAT "ckring-run"
#define EXPORT_VERSION 1

static void json_rows(json_w *w, const ckr_export_row *v, size_t n)
{
	json_arr(w);
	for (size_t i = 0; i < n; i++) {
		json_obj(w);
		json_key(w, "seq"); json_u64(w, v[i].seq);
		json_key(w, "incarnation"); json_u64(w, v[i].incarnation);
		json_key(w, "data_b64"); json_b64(w, v[i].data, v[i].size);
		json_end_obj(w);
	}
	json_end_arr(w);
}

static void export_json(const ckr_export *e)
{
	json_w w;
	json_init(&w, stdout, 1);
	json_obj(&w);
	json_key(&w, "format"); json_str(&w, EXPORT_FORMAT);
	json_key(&w, "version"); json_u64(&w, EXPORT_VERSION);
	json_key(&w, "id"); json_strn(&w, e->id, e->id_len);
	json_key(&w, "id_hex"); json_hex(&w, e->id, e->id_len);
	json_key(&w, "state"); json_str(&w, state_name(e->state));
	json_key(&w, "kind"); json_str(&w, kind_name(e->kind));
	json_key(&w, "incarnation"); json_u64(&w, e->incarnation);
	json_key(&w, "attempts"); json_u64(&w, e->attempts);
	json_key(&w, "cleared"); json_bool(&w, e->cleared);
	json_key(&w, "created_ns"); json_u64(&w, e->created_ns);
	json_key(&w, "updated_ns"); json_u64(&w, e->updated_ns);
	json_key(&w, "finished_ns"); json_u64(&w, e->finished_ns);
	json_key(&w, "last_seq"); json_u64(&w, e->last_seq);
	json_key(&w, "label"); json_strn(&w, e->label, e->label_len);
	json_key(&w, "label_b64"); json_b64(&w, e->label, e->label_len);
	json_key(&w, "meta_b64"); json_b64(&w, e->meta, e->meta_len);
	json_key(&w, "error"); json_strn(&w, e->error, e->error_len);
	json_key(&w, "error_b64"); json_b64(&w, e->error, e->error_len);
	json_key(&w, "events"); json_rows(&w, e->events, e->n_events);
	json_key(&w, "set_aside"); json_rows(&w, e->set_aside, e->n_set_aside);
	json_end_obj(&w);
	json_finish(&w);
}

static int cmd_export(const opts *o, ckr_store *st, const uint8_t *id, size_t n)
{
	ckr_export *e;
	int rc = ckr_store_export(st, id, n, &e);
	if (rc == -ENOENT)
		return cli_fail("export", o->arg[1], "no such run in the store (or it is "
				 "being pruned)");
	if (rc)
		return cli_fail("export", o->arg[1], ckr_strerror(rc));
	export_json(e);
	ckr_export_free(e);
	return 0;
}

/* ------------------------------------------------------------------ */
/* import                                                              */
/* ------------------------------------------------------------------ */

/* The first problem found in the document, for the one error line. */
typedef struct doc_err {
	char msg[200];
} doc_err;

static bool bad(doc_err *de, const char *what, const char *key)
{
	if (!de->msg[0])
		snprintf(de->msg, sizeof de->msg, "%s '%s'", what, key);
	return false;
}

static bool get_u64(json_t *obj, const char *key, uint64_t max, uint64_t *out,
		    doc_err *de)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return bad(de, "missing or bad number", key);
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* A base64 string member into a malloc'd buffer. */
static bool get_b64(json_t *obj, const char *key, size_t max, uint8_t **out,
		    size_t *len, doc_err *de)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_string(v))
		return bad(de, "missing or bad base64 string", key);
	size_t n = json_string_length(v);
	*out = malloc(n / 4 * 3 + 1);
	if (!*out)
		return bad(de, "out of memory at", key);
	long got = json_b64_decode(json_string_value(v), n, *out);
	if (got < 0 || (size_t)got > max)
		return bad(de, "bad base64 (or too long) in", key);
	*len = (size_t)got;
	return true;
}

static bool get_rows(json_t *obj, const char *key, ckr_export_row **v, size_t *n,
		     doc_err *de)
{
	json_t *a = json_object_get(obj, key);
	if (!json_is_array(a))
		return bad(de, "missing or bad array", key);
	*n = 0;
	*v = calloc(json_array_size(a) + 1, sizeof **v);
	if (!*v)
		return bad(de, "out of memory at", key);
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *row = json_array_get(a, i);
		ckr_export_row *r = &(*v)[i];
		uint64_t inc = 0;
		if (!json_is_object(row) || !get_u64(row, "seq", UINT64_MAX >> 1, &r->seq, de) ||
		    !get_u64(row, "incarnation", UINT32_MAX, &inc, de) ||
		    !get_b64(row, "data_b64", SIZE_MAX, &r->data, &r->size, de))
			return bad(de, "bad row in", key);
		r->incarnation = (uint32_t)inc;
		(*n)++;
	}
	return true;
}

static bool get_enum(json_t *obj, const char *key, const char *a, const char *b,
		     const char *c, int *out, doc_err *de)
{
	const char *s = json_string_value(json_object_get(obj, key));
	const char *names[3] = { a, b, c };
	for (int i = 0; s && i < 3; i++)
		if (names[i] && strcmp(s, names[i]) == 0) {
			*out = i + 1;
			return true;
		}
	return bad(de, "missing or bad value of", key);
}

static bool get_id(json_t *doc, ckr_export *e, doc_err *de)
{
	json_t *hex = json_object_get(doc, "id_hex");
	const char *h = json_string_value(hex);
	size_t hn = h ? strlen(h) : 0;
	if (!h || hn == 0 || hn % 2 || hn / 2 > CKR_RUN_ID_MAX)
		return bad(de, "missing or bad", "id_hex");
	if (!cli_unhex(h, hn, e->id))
		return bad(de, "bad hex in", "id_hex");
	e->id_len = hn / 2;
	return true;
}

/* The document into e (its buffers malloc'd; free with import_free). */
static bool doc_to_export(json_t *doc, ckr_export *e, doc_err *de)
{
	const char *fmt = json_string_value(json_object_get(doc, "format"));
	uint64_t ver = 0, inc = 0, att = 0, cleared;
	int state = 0, kind = 0;
	if (!json_is_object(doc) || !fmt || strcmp(fmt, EXPORT_FORMAT) != 0)
		return bad(de, "not a ckring run export (no \"format\": \"" EXPORT_FORMAT
			   "\")", "format");
	if (!get_u64(doc, "version", 1000, &ver, de) || ver != EXPORT_VERSION)
		return bad(de, "unsupported export version", "version");
	cleared = json_is_true(json_object_get(doc, "cleared"));
	bool ok = get_id(doc, e, de) &&
		  get_enum(doc, "state", "running", "failed", "completed", &state, de) &&
		  get_enum(doc, "kind", "single_loop", "multi_phase", NULL, &kind, de) &&
		  get_u64(doc, "incarnation", UINT32_MAX, &inc, de) &&
		  get_u64(doc, "attempts", UINT32_MAX, &att, de) &&
		  get_u64(doc, "created_ns", UINT64_MAX >> 1, &e->created_ns, de) &&
		  get_u64(doc, "finished_ns", UINT64_MAX >> 1, &e->finished_ns, de) &&
		  get_u64(doc, "last_seq", UINT64_MAX >> 1, &e->last_seq, de) &&
		  get_b64(doc, "label_b64", CKR_LABEL_MAX, &e->label, &e->label_len, de) &&
		  get_b64(doc, "meta_b64", UINT32_MAX, &e->meta, &e->meta_len, de) &&
		  get_b64(doc, "error_b64", 4096, &e->error, &e->error_len, de) &&
		  get_rows(doc, "events", &e->events, &e->n_events, de) &&
		  get_rows(doc, "set_aside", &e->set_aside, &e->n_set_aside, de);
	e->state = (ckr_run_state)state;
	e->kind = (ckr_kind)kind;
	e->incarnation = (uint32_t)inc;
	e->attempts = (uint32_t)att;
	e->cleared = cleared;
	return ok;
}

static void import_free(ckr_export *e)
{
	for (size_t i = 0; e->events && i < e->n_events + 1; i++)
		free(e->events[i].data);
	for (size_t i = 0; e->set_aside && i < e->n_set_aside + 1; i++)
		free(e->set_aside[i].data);
	free(e->events);
	free(e->set_aside);
	free(e->label);
	free(e->meta);
	free(e->error);
}

static int import_refused(const opts *o, const ckr_export *e, int rc)
{
	char b[160];
	const char *id = id_text(e->id, e->id_len, b, sizeof b);
	if (rc == -EEXIST)
		fprintf(stderr, PROG ": import '%s': the store already has a run '%s' "
			"(nothing was written)\n", o->arg[1], id);
	else if (rc == CKR_ECORRUPT)
		fprintf(stderr, PROG ": import '%s': a row of run '%s' does not check (it "
			"does not decode, names another run, or does not fit the run's "
			"kind): nothing was written\n", o->arg[1], id);
	else if (rc == -EINVAL)
		fprintf(stderr, PROG ": import '%s': a field of run '%s' is out of range: "
			"nothing was written\n", o->arg[1], id);
	else
		fprintf(stderr, PROG ": import '%s': %s\n", o->arg[1], ckr_strerror(rc));
	return 1;
}

static int import_done(const opts *o, const ckr_run_info *r)
{
	char b[160];
	if (o->json) {
		print_run_json("import", r);
		return 0;
	}
	printf("imported run %s: %s, %" PRIu64 " events, %" PRIu64 " set aside%s\n",
	       id_text(r->id, r->id_len, b, sizeof b), state_name(r->state), r->events,
	       r->set_aside, r->state == CKR_RUN_RUNNING ? "; claimable (interrupted)" : "");
	return 0;
}

static int cmd_import(const opts *o)
{
	const char *path = o->arg[1];
	json_error_t jerr;
	FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!in)
		return cli_fail("import", path, strerror(errno));
	json_t *doc = json_loadf(in, 0, &jerr);
	if (in != stdin)
		fclose(in);
	if (!doc) {
		fprintf(stderr, PROG ": import '%s': not a JSON document (%s, line %d)\n",
			path, jerr.text, jerr.line);
		return 1;
	}
	ckr_export e;
	doc_err de = { { 0 } };
	memset(&e, 0, sizeof e);
	bool ok = doc_to_export(doc, &e, &de);
	json_decref(doc);
	int rc = 1;
	ckr_store *st = NULL;
	ckr_run_info r;
	if (!ok)
		fprintf(stderr, PROG ": import '%s': %s (nothing was written)\n", path, de.msg);
	else if ((rc = store_open_rw(o->arg[0], &st)) == 0) {
		int irc = ckr_store_import(st, &e, &r);
		rc = irc ? import_refused(o, &e, irc) : import_done(o, &r);
		ckr_store_close(st);
	}
	import_free(&e);
	return rc;
}

/* ------------------------------------------------------------------ */
/* fail, retry                                                         */
/* ------------------------------------------------------------------ */

static int cmd_fail(const opts *o, ckr_store *st, const uint8_t *id, size_t n)
{
	ckr_run_info r;
	char b[160];
	int rc = ckr_store_fail(st, id, n, o->reason, &r);
	if (rc == -ENOENT)
		return cli_fail("fail", o->arg[1], "no such run in the store");
	if (rc == CKR_ETERMINAL)
		return cli_fail("fail", o->arg[1], "the run has finished already "
				 "(only a running run can be failed)");
	if (rc)
		return cli_fail("fail", o->arg[1], ckr_strerror(rc));
	if (o->json) {
		print_run_json("fail", &r);
		return 0;
	}
	printf("run %s failed (incarnation %" PRIu32 ", %" PRIu64 " events kept): %s\n",
	       id_text(id, n, b, sizeof b), r.incarnation, r.events, r.error);
	printf("  its writer's later events are rejected; 'ckring-admin retry' makes it "
	       "claimable again\n");
	return 0;
}

static int cmd_retry(const opts *o, ckr_store *st, const uint8_t *id, size_t n)
{
	ckr_run_info r;
	char b[160];
	int rc = ckr_store_retry(st, id, n, &r);
	if (rc == -ENOENT)
		return cli_fail("retry", o->arg[1], "no such run in the store (or it is "
				 "being pruned)");
	if (rc == -EALREADY)
		return cli_fail("retry", o->arg[1], "the run is running (only a failed run "
				 "can be retried; 'ckring-admin fail' first)");
	if (rc == CKR_ETERMINAL)
		return cli_fail("retry", o->arg[1], "the run completed: a completed run "
				 "keeps no events, there is nothing to resume");
	if (rc == CKR_EMOVED)
		return cli_fail("retry", o->arg[1], "the run moved to another host (the "
				 "shared database gives it there): it is never driven here again");
	if (rc)
		return cli_fail("retry", o->arg[1], ckr_strerror(rc));
	if (o->json) {
		print_run_json("retry", &r);
		return 0;
	}
	printf("run %s is claimable again: %" PRIu64 " events kept (resume state up to "
	       "seq %" PRIu64 "), attempts reset to 0; the next claim makes incarnation "
	       "%" PRIu32 "\n", id_text(id, n, b, sizeof b), r.events, r.prefix_seq,
	       r.incarnation + 1);
	return 0;
}

/* ------------------------------------------------------------------ */
/* host-lost                                                           */
/* ------------------------------------------------------------------ */

static int cmd_host_lost(const opts *o)
{
	const char *host = o->arg[0];
	char err[512] = "";
	ckr_fleet *fl;
	/* The connection names no host of its own: declaring claims nothing. */
	int rc = ckr_fleet_connect(o->pg, "-", &fl, err, sizeof err);
	if (rc) {
		fprintf(stderr, PROG ": host-lost '%s': cannot use the database: %s%s%s\n", host,
			ckr_strerror(rc), err[0] ? ": " : "", err);
		return 1;
	}
	rc = ckr_fleet_host_lost(fl, host, o->reason);
	if (rc == -ENOENT)
		fprintf(stderr, PROG ": host-lost '%s': no such host in the database (its "
			"shipper never registered)\n", host);
	else if (rc)
		fprintf(stderr, PROG ": host-lost '%s': %s%s%s\n", host, ckr_strerror(rc),
			ckr_fleet_error(fl)[0] ? ": " : "", ckr_fleet_error(fl));
	ckr_fleet_close(fl);
	if (rc)
		return 1;
	if (o->json) {
		json_w w;
		json_init(&w, stdout, 2);
		json_obj(&w);
		json_key(&w, "action"); json_str(&w, "host-lost");
		json_key(&w, "host"); json_str(&w, host);
		json_key(&w, "reason"); json_str(&w, o->reason ? o->reason : "declared lost");
		json_end_obj(&w);
		json_finish(&w);
	} else {
		printf("host %s declared lost: its interrupted runs may be claimed by other "
		       "hosts now (ckring-recover)\n", host);
	}
	return 0;
}

static int with_run(const opts *o, int (*fn)(const opts *, ckr_store *,
					     const uint8_t *, size_t))
{
	uint8_t id[CKR_RUN_ID_MAX];
	size_t n = 0;
	ckr_store *st;
	int rc = cli_run_id(o->arg[1], o->hex, id, &n);
	if (rc)
		return rc;
	rc = store_open_rw(o->arg[0], &st);
	if (rc)
		return rc;
	rc = fn(o, st, id, n);
	ckr_store_close(st);
	return rc;
}

int main(int argc, char **argv)
{
	opts o = { 0 };
	int rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (strcmp(o.cmd, "prune") == 0)
		rc = cmd_prune(&o);
	else if (strcmp(o.cmd, "fail") == 0)
		rc = with_run(&o, cmd_fail);
	else if (strcmp(o.cmd, "retry") == 0)
		rc = with_run(&o, cmd_retry);
	else if (strcmp(o.cmd, "export") == 0)
		rc = with_run(&o, cmd_export);
	else if (strcmp(o.cmd, "host-lost") == 0)
		rc = cmd_host_lost(&o);
	else
		rc = cmd_import(&o);
	if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, PROG ": write error: %s\n", strerror(errno));
		rc = 1;
	}
	return rc;
}
