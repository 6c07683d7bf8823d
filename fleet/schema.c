/*
 * schema.c — the shared PostgreSQL schema (persist/PG_SCHEMA.md), created
 * and versioned by ckring-ship --init-schema: one transaction, serialised
 * against concurrent inits by an advisory lock, idempotent. The version is
 * the single row of ckring_schema; a database of another version is
 * refused (CKR_EVERSION) rather than written into.
 */
#include "pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SCHEMA_V1[] =
	"CREATE TABLE ckring_schema (version integer NOT NULL);"
	"INSERT INTO ckring_schema VALUES (1);"
	"CREATE TABLE ckring_hosts ("
	"  host text PRIMARY KEY,"
	"  store_id bytea NOT NULL,"
	"  shipped bigint NOT NULL DEFAULT 0,"
	"  heartbeat_at timestamptz NOT NULL DEFAULT now(),"
	"  lease_ms integer NOT NULL DEFAULT 30000,"
	"  lost boolean NOT NULL DEFAULT false,"
	"  lost_reason text,"
	"  lost_at timestamptz,"
	"  registered_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE ckring_runs ("
	"  run_id bytea PRIMARY KEY,"
	"  host text NOT NULL,"
	"  incarnation integer NOT NULL,"
	"  state smallint NOT NULL,"
	"  kind smallint NOT NULL,"
	"  label bytea NOT NULL DEFAULT '\\x',"
	"  meta bytea NOT NULL DEFAULT '\\x',"
	"  error bytea,"
	"  attempts integer NOT NULL DEFAULT 0,"
	"  cleared boolean NOT NULL DEFAULT false,"
	"  created_ns bigint NOT NULL DEFAULT 0,"
	"  finished_ns bigint NOT NULL DEFAULT 0,"
	"  updated_at timestamptz NOT NULL DEFAULT now());"
	"CREATE INDEX ckring_runs_running ON ckring_runs (host) WHERE state = 1;"
	"CREATE TABLE ckring_events ("
	"  run_id bytea NOT NULL,"
	"  seq bigint NOT NULL,"
	"  incarnation integer NOT NULL,"
	"  data bytea NOT NULL,"
	"  PRIMARY KEY (run_id, seq));"
	"CREATE TABLE ckring_set_aside ("
	"  run_id bytea NOT NULL,"
	"  incarnation integer NOT NULL,"
	"  seq bigint NOT NULL,"
	"  data bytea NOT NULL,"
	"  PRIMARY KEY (run_id, incarnation, seq));"
	"CREATE TABLE ckring_refused ("
	"  id bigserial PRIMARY KEY,"
	"  host text NOT NULL,"
	"  run_id bytea NOT NULL,"
	"  change bigint NOT NULL,"
	"  incarnation integer NOT NULL,"
	"  owner text,"
	"  owner_incarnation integer,"
	"  at timestamptz NOT NULL DEFAULT now());";

/* The version in the database: 0 none (no table). */
static int read_version(PGconn *c, int *version, char err[FPG_ERR])
{
	PGresult *r;
	int rc = fpg_params(c, err, "SELECT to_regclass('ckring_schema') IS NOT NULL", 0,
			    NULL, NULL, NULL, &r);
	if (rc)
		return rc;
	bool exists = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	*version = 0;
	if (!exists)
		return 0;
	rc = fpg_params(c, err, "SELECT max(version) FROM ckring_schema", 0, NULL, NULL,
			NULL, &r);
	if (rc)
		return rc;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		*version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

int fpg_schema_check(PGconn *c, char err[FPG_ERR])
{
	int v;
	int rc = read_version(c, &v, err);
	if (rc)
		return rc;
	if (v == CKR_FLEET_SCHEMA)
		return 0;
	if (err)
		snprintf(err, FPG_ERR, v ? "the database holds ckring schema %d, this is schema %d"
					 : "the database has no ckring schema (ckring-ship --init-schema creates it)",
			 v, CKR_FLEET_SCHEMA);
	return CKR_EVERSION;
}

int fpg_schema_init(PGconn *c, int *version, char err[FPG_ERR])
{
	int v = 0;
	int rc = fpg_exec(c, err, "BEGIN");
	if (rc == 0)
		rc = fpg_exec(c, err, "SELECT pg_advisory_xact_lock(7461001)");
	if (rc == 0)
		rc = read_version(c, &v, err);
	if (rc == 0 && v == 0)
		rc = fpg_exec(c, err, SCHEMA_V1);
	if (rc == 0 && v != 0 && v != CKR_FLEET_SCHEMA) {
		snprintf(err, FPG_ERR, "the database holds ckring schema %d, this is schema %d",
			 v, CKR_FLEET_SCHEMA);
		rc = CKR_EVERSION;
	}
	if (rc == 0)
		rc = fpg_exec(c, err, "COMMIT");
	else
		PQclear(PQexec(c, "ROLLBACK"));
	if (rc == 0 && version)
		*version = CKR_FLEET_SCHEMA;
	return rc;
}

int ckr_fleet_init_schema(const char *conninfo, int *version, char *errbuf, size_t errlen)
{
	char err[FPG_ERR] = "";
	PGconn *c;
	if (!conninfo)
		return -EINVAL;
	int rc = fpg_connect(conninfo, false, &c, err);
	if (rc == 0) {
		rc = fpg_schema_init(c, version, err);
		PQfinish(c);
	}
	if (rc && errbuf && errlen)
		snprintf(errbuf, errlen, "%s", err);
	return rc;
}
