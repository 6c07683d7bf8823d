/*
 * ckring-recover — a host's boot path across hosts: claim, in the shared
 * PostgreSQL, the interrupted runs of lost hosts and import each into the
 * local store as the same run (next incarnation, next sequence), where the
 * host's ordinary boot recovery continues it (ckr_store_list /
 * ckr_store_claim / ckr_run_reopen); list them; list the hosts; declare a
 * host lost. Argument parsing and output only; the work is libckring-fleet
 * (fleet/recover.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckring_fleet.h"
#define CLI_PROG "ckring-recover"
#include "cli.h"
#include "json.h"

typedef struct args {
	const char *pg, *db, *host, *lost, *reason;
	const char *runs[64];
	int n_runs;
	bool list, hosts, json;
	uint32_t max_attempts;
} args;

static void usage(FILE *out)
{
	fputs("usage: ckring-recover --pg CONNINFO --db DIR --host NAME [--run ID]...\n"
	      "                      [--max-attempts N] [--json]\n"
	      "       ckring-recover --pg CONNINFO --db DIR --host NAME --list [--json]\n"
	      "       ckring-recover --pg CONNINFO --hosts [--json]\n"
	      "       ckring-recover --pg CONNINFO --host-lost NAME [--reason TEXT]\n"
	      "Claim, in the shared database, the interrupted runs of lost hosts (every\n"
	      "one, or the --run IDs) for host NAME, and import each into the store at\n"
	      "DIR as the same run: the next incarnation, the next sequence. The host's\n"
	      "boot recovery then continues them like its own interrupted runs. Of two\n"
	      "hosts claiming one run, exactly one wins. A host is lost once declared so\n"
	      "(--host-lost, or ckring-admin host-lost) or once its lease expired.\n\n"
	      "  --list           list the claimable runs, claim nothing\n"
	      "  --hosts          list the hosts: heartbeat age, lease, lost, runs\n"
	      "  --host-lost H    declare host H lost (its runs become claimable)\n"
	      "  --reason TEXT    with --host-lost: why (kept with the mark)\n"
	      "  --max-attempts N recoveries before a run fails (default 5)\n"
	      "  --json           one JSON document on stdout\n"
	      "  --help           this text\n", out);
}

enum { O_PG = 1, O_DB, O_HOST, O_RUN, O_LIST, O_HOSTS, O_LOST, O_REASON, O_MAX,
       O_JSON, O_HELP };

static int parse_args(int argc, char **argv, args *a)
{
	static const struct option lo[] = {
		{ "pg", 1, NULL, O_PG },       { "db", 1, NULL, O_DB },
		{ "host", 1, NULL, O_HOST },   { "run", 1, NULL, O_RUN },
		{ "list", 0, NULL, O_LIST },   { "hosts", 0, NULL, O_HOSTS },
		{ "host-lost", 1, NULL, O_LOST }, { "reason", 1, NULL, O_REASON },
		{ "max-attempts", 1, NULL, O_MAX }, { "json", 0, NULL, O_JSON },
		{ "help", 0, NULL, O_HELP },   { NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		const char *v = optarg;
		switch (c) {
		case O_PG: a->pg = v; break;
		case O_DB: a->db = v; break;
		case O_HOST: a->host = v; break;
		case O_RUN:
			if (a->n_runs == 64 || !*v || strlen(v) > CKR_RUN_ID_MAX)
				return cli_usage_error("bad --run (1..64 bytes, at most 64 of them)", v);
			a->runs[a->n_runs++] = v;
			break;
		case O_LIST: a->list = true; break;
		case O_HOSTS: a->hosts = true; break;
		case O_LOST: a->lost = v; break;
		case O_REASON: a->reason = v; break;
		case O_MAX: {
			uint64_t m;
			if (!cli_u64(v, 10, 1, 1000, &m))
				return cli_usage_error("bad --max-attempts (1..1000)", v);
			a->max_attempts = (uint32_t)m;
			break;
		}
		case O_JSON: a->json = true; break;
		case O_HELP: usage(stdout); return 1;
		default: return cli_usage_error("unknown or incomplete option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument", argv[optind]);
	if (!a->pg)
		return cli_usage_error("--pg is required", NULL);
	if (!a->hosts && !a->lost && (!a->db || !a->host))
		return cli_usage_error("--db and --host are required", NULL);
	return 0;
}

static int connect_fleet(const args *a, ckr_fleet **fl)
{
	char err[512] = "";
	int rc = ckr_fleet_connect(a->pg, a->host ? a->host : "-", fl, err, sizeof err);
	if (rc)
		fprintf(stderr, "ckring-recover: cannot use the database: %s%s%s\n",
			ckr_strerror(rc), err[0] ? ": " : "", err);
	return rc;
}

static int fail_line(ckr_fleet *fl, const char *what, int rc)
{
	const char *e = ckr_fleet_error(fl);
	fprintf(stderr, "ckring-recover: %s: %s%s%s\n", what, ckr_strerror(rc),
		e[0] ? ": " : "", e);
	return 1;
}

static int cmd_hosts(ckr_fleet *fl, const args *a)
{
	ckr_host_info *h;
	size_t n;
	int rc = ckr_fleet_hosts(fl, &h, &n);
	if (rc)
		return fail_line(fl, "listing hosts", rc);
	if (a->json) {
		json_w w;
		json_init(&w, stdout, 2);
		json_obj(&w);
		json_key(&w, "hosts");
		json_arr(&w);
		for (size_t i = 0; i < n; i++) {
			json_obj(&w);
			json_key(&w, "host"); json_str(&w, h[i].host);
			json_key(&w, "lost"); json_bool(&w, h[i].lost);
			json_key(&w, "declared_lost"); json_bool(&w, h[i].declared);
			json_key(&w, "heartbeat_age_ms"); json_u64(&w, h[i].heartbeat_age_ms);
			json_key(&w, "lease_ms"); json_u64(&w, h[i].lease_ms);
			json_key(&w, "shipped"); json_u64(&w, h[i].shipped);
			json_key(&w, "running"); json_u64(&w, h[i].running);
			json_key(&w, "reason"); json_str(&w, h[i].reason);
			json_end_obj(&w);
		}
		json_end_arr(&w);
		json_end_obj(&w);
		json_finish(&w);
	} else {
		printf("%-24s %-6s %12s %10s %10s %8s\n", "HOST", "LOST", "HEARTBEAT", "LEASE",
		       "SHIPPED", "RUNNING");
		for (size_t i = 0; i < n; i++)
			printf("%-24s %-6s %10llums %8ums %10llu %8llu%s%s\n", h[i].host,
			       h[i].lost ? (h[i].declared ? "yes" : "lease") : "no",
			       (unsigned long long)h[i].heartbeat_age_ms, h[i].lease_ms,
			       (unsigned long long)h[i].shipped, (unsigned long long)h[i].running,
			       h[i].reason[0] ? "  " : "", h[i].reason);
	}
	free(h);
	return 0;
}

static int cmd_lost(ckr_fleet *fl, const args *a)
{
	int rc = ckr_fleet_host_lost(fl, a->lost, a->reason);
	if (rc == -ENOENT) {
		fprintf(stderr, "ckring-recover: no host '%s' in the database\n", a->lost);
		return 1;
	}
	if (rc)
		return fail_line(fl, "declaring the host lost", rc);
	if (!a->json)
		printf("host %s declared lost: its interrupted runs may be claimed now\n", a->lost);
	return 0;
}

static bool selected(const args *a, const ckr_fleet_run *r)
{
	if (a->n_runs == 0)
		return true;
	for (int i = 0; i < a->n_runs; i++)
		if (strlen(a->runs[i]) == r->id_len && memcmp(a->runs[i], r->id, r->id_len) == 0)
			return true;
	return false;
}

static void json_run(json_w *w, const ckr_fleet_run *r)
{
	json_key(w, "id"); json_strn(w, r->id, r->id_len);
	json_key(w, "host"); json_str(w, r->host);
	json_key(w, "incarnation"); json_u64(w, r->incarnation);
}

/* Claim (or list) the runs; one line or object per run. */
static int cmd_claim(ckr_fleet *fl, ckr_store *st, const args *a)
{
	ckr_fleet_run *runs;
	size_t n;
	int rc = ckr_fleet_list(fl, st, &runs, &n), failed = 0;
	if (rc)
		return fail_line(fl, "listing runs", rc);
	json_w w;
	if (a->json) {
		json_init(&w, stdout, 2);
		json_obj(&w);
		json_key(&w, a->list ? "runs" : "claimed");
		json_arr(&w);
	}
	for (size_t i = 0; i < n; i++) {
		const ckr_fleet_run *r = &runs[i];
		if (!selected(a, r))
			continue;
		ckr_claim cl;
		rc = a->list ? 0 : ckr_fleet_claim(fl, st, r->id, r->id_len, a->max_attempts, &cl);
		if (rc && rc != CKR_ECLAIMED && rc != CKR_ENOTLOST)
			failed++;
		if (a->json) {
			json_obj(&w);
			json_run(&w, r);
			json_key(&w, "rows"); json_u64(&w, r->rows);
			if (!a->list) {
				json_key(&w, "result");
				json_str(&w, rc ? ckr_strerror(rc) : "claimed");
				if (rc == 0) {
					json_key(&w, "new_incarnation"); json_u64(&w, cl.incarnation);
					json_key(&w, "next_seq"); json_u64(&w, cl.next_seq);
				}
			}
			json_end_obj(&w);
		} else if (a->list) {
			printf("%.*s  host %s  incarnation %u  attempts %u  rows %llu  %s\n",
			       (int)r->id_len, (const char *)r->id, r->host, r->incarnation,
			       r->attempts, (unsigned long long)r->rows, r->label);
		} else if (rc == 0) {
			printf("claimed %.*s from host %s: incarnation %u, next seq %llu "
			       "(now an interrupted run of %s)\n", (int)r->id_len,
			       (const char *)r->id, r->host, cl.incarnation,
			       (unsigned long long)cl.next_seq, a->db);
		} else {
			fprintf(stderr, "ckring-recover: %.*s: %s\n", (int)r->id_len,
				(const char *)r->id, ckr_strerror(rc));
		}
	}
	if (a->json) {
		json_end_arr(&w);
		json_end_obj(&w);
		json_finish(&w);
	}
	free(runs);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	args a = { 0 };
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc == 1 ? 0 : 2;
	ckr_fleet *fl;
	if (connect_fleet(&a, &fl))
		return 1;
	if (a.hosts || a.lost) {
		rc = a.hosts ? cmd_hosts(fl, &a) : cmd_lost(fl, &a);
		ckr_fleet_close(fl);
		return rc;
	}
	ckr_store *st;
	rc = ckr_store_open(a.db, NULL, &st);
	if (rc) {
		fprintf(stderr, "ckring-recover: cannot open store '%s': %s\n", a.db,
			ckr_strerror(rc));
		ckr_fleet_close(fl);
		return 1;
	}
	rc = cmd_claim(fl, st, &a);
	ckr_store_close(st);
	ckr_fleet_close(fl);
	return rc;
}
