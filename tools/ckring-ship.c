/*
 * ckring-ship — ship a store's committed changes to the shared PostgreSQL
 * (persist/PG_SCHEMA.md) until SIGTERM/SIGINT, exactly once; publish
 * REPLICATED; keep this host's heartbeat. Argument parsing and usage only;
 * the engine is libckring-fleet (fleet/ship.c).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckring_fleet.h"
#define CLI_PROG "ckring-ship"
#include "cli.h"

static volatile int stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_log(void *ctx, ckr_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	fprintf(stderr, "ckring-ship: %s\n", msg);
}

static void usage(FILE *out)
{
	fputs("usage: ckring-ship --db DIR --pg CONNINFO --host NAME [options]\n"
	      "       ckring-ship --pg CONNINFO --init-schema\n"
	      "Follow the store at DIR (its change log) and apply every committed change\n"
	      "to the PostgreSQL database of CONNINFO, exactly once, as host NAME, until\n"
	      "SIGTERM/SIGINT. Publishes REPLICATED for waiting producers and a heartbeat;\n"
	      "another host may recover this host's runs once it is declared lost or its\n"
	      "lease expired. PostgreSQL going away is waited out.\n\n"
	      "  --db DIR            the store (made by ckring-flusher)\n"
	      "  --pg CONNINFO       libpq connection string (\"host=/run/pg dbname=ckring\")\n"
	      "  --host NAME         this host's name in the database (1..200 bytes)\n"
	      "  --init-schema       create (or check) the database's schema first; alone\n"
	      "                      (without --db/--host): only that, then exit\n"
	      "  --lease DUR         lost when the heartbeat is older (default 30s;\n"
	      "                      DUR: a number with ms, s, m or h)\n"
	      "  --batch-rows N      rows per PostgreSQL transaction (default 20000)\n"
	      "  --idle-max-ms N     longest idle poll of the change log (default 5)\n"
	      "  --once              ship what is there, then exit 0\n"
	      "  --help              this text\n", out);
}

typedef struct args {
	ckr_ship_opts o;
	bool init_schema, once;
} args;

enum { O_DB = 1, O_PG, O_HOST, O_INIT, O_LEASE, O_BATCH, O_IDLE, O_ONCE, O_HELP };

static int parse_args(int argc, char **argv, args *a)
{
	static const struct option lo[] = {
		{ "db", 1, NULL, O_DB },          { "pg", 1, NULL, O_PG },
		{ "host", 1, NULL, O_HOST },      { "init-schema", 0, NULL, O_INIT },
		{ "lease", 1, NULL, O_LEASE },    { "batch-rows", 1, NULL, O_BATCH },
		{ "idle-max-ms", 1, NULL, O_IDLE }, { "once", 0, NULL, O_ONCE },
		{ "help", 0, NULL, O_HELP },      { NULL, 0, NULL, 0 },
	};
	int c;
	uint64_t ms, n;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		const char *v = optarg;
		switch (c) {
		case O_DB: a->o.db_dir = v; break;
		case O_PG: a->o.conninfo = v; break;
		case O_HOST: a->o.host = v; break;
		case O_INIT: a->init_schema = true; break;
		case O_LEASE:
			if (!cli_dur_ms(v, UINT32_MAX, &ms) || ms == 0)
				return cli_usage_error("bad --lease (e.g. 30s, 500ms)", v);
			a->o.lease_ms = (uint32_t)ms;
			break;
		case O_BATCH:
			if (!cli_u64(v, 10, 1, 10000000, &n))
				return cli_usage_error("bad --batch-rows", v);
			a->o.batch_rows = (uint32_t)n;
			break;
		case O_IDLE:
			if (!cli_u64(v, 10, 1, 10000, &n))
				return cli_usage_error("bad --idle-max-ms (1..10000)", v);
			a->o.idle_max_ms = (uint32_t)n;
			break;
		case O_ONCE: a->once = true; break;
		case O_HELP: usage(stdout); return 1;
		default: return cli_usage_error("unknown or incomplete option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument", argv[optind]);
	if (!a->o.conninfo)
		return cli_usage_error("--pg is required", NULL);
	bool schema_only = a->init_schema && !a->o.db_dir && !a->o.host;
	if (!schema_only && (!a->o.db_dir || !a->o.host))
		return cli_usage_error("--db, --pg and --host are required", NULL);
	if (a->o.host && (!*a->o.host || strlen(a->o.host) > 200))
		return cli_usage_error("bad --host (1..200 bytes)", a->o.host);
	return 0;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static int init_schema(const char *conninfo)
{
	char err[512] = "";
	int version = 0;
	int rc = ckr_fleet_init_schema(conninfo, &version, err, sizeof err);
	if (rc) {
		fprintf(stderr, "ckring-ship: cannot set up the schema: %s%s%s\n",
			ckr_strerror(rc), err[0] ? ": " : "", err);
		return 1;
	}
	return 0;
}

/* Ship until nothing is left (--once). */
static int ship_once(ckr_shipper *sh)
{
	for (int tries = 0;;) {
		size_t n = 0;
		int rc = ckr_shipper_step(sh, &n);
		if (rc == 0 && n == 0)
			return 0;
		if (rc == 0)
			continue;
		if (++tries > 3 || rc == CKR_ESEGMENT || rc == CKR_ETRUNC || rc == CKR_EVERSION)
			return rc;
	}
}

int main(int argc, char **argv)
{
	args a = { 0 };
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (a.init_schema && init_schema(a.o.conninfo))
		return 1;
	if (!a.o.db_dir)
		return 0;
	install_signals();
	a.o.log = on_log;
	ckr_shipper *sh;
	rc = ckr_shipper_open(&a.o, &sh);
	if (rc) {
		fprintf(stderr, "ckring-ship: cannot ship store '%s': %s\n", a.o.db_dir,
			rc == -EBUSY ? "another ckring-ship serves this store or its segment"
				     : ckr_strerror(rc));
		return 1;
	}
	rc = a.once ? ship_once(sh) : ckr_shipper_run(sh, &stop_flag);
	ckr_ship_stats st;
	ckr_shipper_stats_get(sh, &st);
	if (rc && a.once)
		fprintf(stderr, "ckring-ship: %s%s%s\n", ckr_strerror(rc),
			ckr_shipper_error(sh)[0] ? ": " : "", ckr_shipper_error(sh));
	if (rc == 0)
		fprintf(stderr, "ckring-ship: stopped at change %llu of %llu: %llu changes, "
			"%llu rows in %llu transactions, %llu refused, %llu runs marked moved\n",
			(unsigned long long)st.shipped, (unsigned long long)st.last,
			(unsigned long long)st.changes, (unsigned long long)st.rows,
			(unsigned long long)st.batches, (unsigned long long)st.refused,
			(unsigned long long)st.moved);
	ckr_shipper_close(sh);
	return rc ? 1 : 0;
}
