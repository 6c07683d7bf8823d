/*
 * recover.c — recovering a lost host's runs on another host (ckring_fleet.h,
 * ckr_fleet_*; the body of ckring-recover).
 *
 * Lost: declared by an operator (ckring_hosts.lost) or a heartbeat older
 * than the host's lease, judged by the database's clock (now()), the one
 * clock every host shares; the hosts' own clocks never meet.
 *
 * A claim is one transaction:
 *   UPDATE ckring_runs SET host = me, incarnation = incarnation + 1, ...
 *    WHERE run_id = id AND state = running AND host = <the host we listed>
 *      AND incarnation = <the incarnation we listed> AND that host is lost
 * — a conditional update on (host, incarnation): of two hosts racing, the
 * second finds the row changed (PostgreSQL re-checks the WHERE clause of an
 * UPDATE that waited for another's row lock) and updates nothing. The lost
 * writer's tenure is closed in the same transaction: the rows past the
 * gap-free prefix are set aside. The resume state (the begin and the
 * prefix) is read in it too, and imported into the local store after the
 * commit (ckr_store_adopt): the same run, the next incarnation, the next
 * sequence. A recoverer that dies between the commit and the import leaves
 * the run with its host in the database; ckr_fleet_list offers it to this
 * host again (the local store does not have it), and claiming it again
 * bumps the incarnation once more.
 */
#include "pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_ATTEMPTS 5
#define HOST_MAX 200

struct ckr_fleet {
	PGconn *pg;
	char host[HOST_MAX + 1];
	char err[FPG_ERR];
};

static const char LOST[] =
	"(h.lost OR now() - h.heartbeat_at > h.lease_ms * interval '1 millisecond')";

int ckr_fleet_connect(const char *conninfo, const char *host, ckr_fleet **out,
		      char *errbuf, size_t errlen)
{
	if (!conninfo || !host || !*host || strlen(host) > HOST_MAX || !out)
		return -EINVAL;
	ckr_fleet *fl = calloc(1, sizeof *fl);
	if (!fl)
		return -ENOMEM;
	snprintf(fl->host, sizeof fl->host, "%s", host);
	int rc = fpg_connect(conninfo, true, &fl->pg, fl->err);
	if (rc) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s", fl->err);
		free(fl);
		return rc;
	}
	*out = fl;
	return 0;
}

void ckr_fleet_close(ckr_fleet *fl)
{
	if (!fl)
		return;
	PQfinish(fl->pg);
	free(fl);
}

const char *ckr_fleet_error(const ckr_fleet *fl)
{
	return fl->err;
}

int ckr_fleet_hosts(ckr_fleet *fl, ckr_host_info **out, size_t *n)
{
	PGresult *r;
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "SELECT h.host, %s, h.lost, (extract(epoch from now() - h.heartbeat_at) * "
		 "1000)::bigint, h.lease_ms, h.shipped, coalesce(h.lost_reason, ''), "
		 "(SELECT count(*) FROM ckring_runs r WHERE r.host = h.host AND r.state = 1) "
		 "FROM ckring_hosts h ORDER BY h.host", LOST);
	int rc = fpg_params(fl->pg, fl->err, sql, 0, NULL, NULL, NULL, &r);
	if (rc)
		return rc;
	int k = PQntuples(r);
	ckr_host_info *v = calloc(k ? (size_t)k : 1, sizeof *v);
	if (!v) {
		PQclear(r);
		return -ENOMEM;
	}
	for (int i = 0; i < k; i++) {
		snprintf(v[i].host, sizeof v[i].host, "%s", PQgetvalue(r, i, 0));
		v[i].lost = PQgetvalue(r, i, 1)[0] == 't';
		v[i].declared = PQgetvalue(r, i, 2)[0] == 't';
		long long age = strtoll(PQgetvalue(r, i, 3), NULL, 10);
		v[i].heartbeat_age_ms = age > 0 ? (uint64_t)age : 0;
		v[i].lease_ms = (uint32_t)strtoul(PQgetvalue(r, i, 4), NULL, 10);
		v[i].shipped = strtoull(PQgetvalue(r, i, 5), NULL, 10);
		snprintf(v[i].reason, sizeof v[i].reason, "%s", PQgetvalue(r, i, 6));
		v[i].running = strtoull(PQgetvalue(r, i, 7), NULL, 10);
	}
	PQclear(r);
	*out = v;
	*n = (size_t)k;
	return 0;
}

int ckr_fleet_host_lost(ckr_fleet *fl, const char *host, const char *reason)
{
	PGresult *r;
	if (!fl || !host)
		return -EINVAL;
	int rc = fpg_params(fl->pg, fl->err,
			    "UPDATE ckring_hosts SET lost = true, lost_reason = $2, "
			    "lost_at = now() WHERE host = $1", 2,
			    (const char *const[]){ host, reason ? reason : "declared lost" },
			    NULL, NULL, &r);
	if (rc)
		return rc;
	bool found = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	return found ? 0 : -ENOENT;
}

/* Fill one listed run from row i of r (columns as in ckr_fleet_list). */
static bool fill_run(PGresult *r, int i, ckr_fleet_run *out)
{
	memset(out, 0, sizeof *out);
	size_t l = fpg_unhex(PQgetvalue(r, i, 0), out->id, sizeof out->id);
	if (l == (size_t)-1 || l == 0)
		return false;
	out->id_len = l;
	snprintf(out->host, sizeof out->host, "%s", PQgetvalue(r, i, 1));
	out->incarnation = (uint32_t)strtoul(PQgetvalue(r, i, 2), NULL, 10);
	out->attempts = (uint32_t)strtoul(PQgetvalue(r, i, 3), NULL, 10);
	out->kind = (ckr_kind)atoi(PQgetvalue(r, i, 4));
	out->rows = strtoull(PQgetvalue(r, i, 5), NULL, 10);
	uint8_t label[CKR_LABEL_MAX];
	size_t ll = fpg_unhex(PQgetvalue(r, i, 6), label, sizeof label);
	if (ll != (size_t)-1) {
		memcpy(out->label, label, ll);
		out->label[ll] = '\0';
	}
	return true;
}

int ckr_fleet_list(ckr_fleet *fl, ckr_store *local, ckr_fleet_run **out, size_t *n)
{
	PGresult *r;
	char sql[1024];
	if (!fl || !out || !n)
		return -EINVAL;
	snprintf(sql, sizeof sql,
		 "SELECT r.run_id, r.host, r.incarnation, r.attempts, r.kind, "
		 "(SELECT count(*) FROM ckring_events e WHERE e.run_id = r.run_id), r.label "
		 "FROM ckring_runs r JOIN ckring_hosts h ON h.host = r.host "
		 "WHERE r.state = 1 AND ((r.host <> $1 AND %s) OR r.host = $1) "
		 "ORDER BY r.run_id", LOST);
	int rc = fpg_params(fl->pg, fl->err, sql, 1, (const char *const[]){ fl->host }, NULL,
			    NULL, &r);
	if (rc)
		return rc;
	int k = PQntuples(r);
	size_t m = 0;
	ckr_fleet_run *v = calloc(k ? (size_t)k : 1, sizeof *v);
	if (!v) {
		PQclear(r);
		return -ENOMEM;
	}
	for (int i = 0; i < k; i++) {
		if (!fill_run(r, i, &v[m]))
			continue;
		if (strcmp(v[m].host, fl->host) == 0) {
			/* Ours in the database: listed only if the local store
			 * lacks it (a recovery here died before its import). */
			ckr_run_info in;
			if (!local || ckr_store_get(local, v[m].id, v[m].id_len, &in) != -ENOENT)
				continue;
		}
		m++;
	}
	PQclear(r);
	*out = v;
	*n = m;
	return 0;
}

/* ---- claim ---- */

typedef struct claimed {
	uint32_t incarnation, attempts;
	uint64_t created_ns;
	ckr_change_row *rows;
	size_t n_rows;
	PGresult *res;           /* holds the rows' bytes */
	uint8_t *bytes;
} claimed;

/* Why the conditional update changed nothing. */
static int why_not(ckr_fleet *fl, const void *id, size_t id_len)
{
	PGresult *r;
	char sql[512];
	snprintf(sql, sizeof sql, "SELECT r.state, r.host = $2, %s FROM ckring_runs r "
		 "JOIN ckring_hosts h ON h.host = r.host WHERE r.run_id = $1", LOST);
	int rc = fpg_params(fl->pg, fl->err, sql, 2,
			    (const char *const[]){ (const char *)id, fl->host },
			    (const int[]){ (int)id_len, 0 }, (const int[]){ 1, 0 }, &r);
	if (rc)
		return rc;
	if (PQntuples(r) == 0)
		rc = -ENOENT;
	else if (atoi(PQgetvalue(r, 0, 0)) != CKR_RUN_RUNNING)
		rc = CKR_ETERMINAL;
	else if (PQgetvalue(r, 0, 2)[0] != 't' && PQgetvalue(r, 0, 1)[0] != 't')
		rc = CKR_ENOTLOST;
	else
		rc = CKR_ECLAIMED;
	PQclear(r);
	return rc;
}

/* The conditional update: this host takes the run from a lost host (or
 * from itself, when the local store lacks it), if it still has the host
 * and incarnation it had when we looked. */
static int take(ckr_fleet *fl, const void *id, size_t id_len, claimed *c)
{
	PGresult *r;
	char sql[1024];
	int rc = fpg_params(fl->pg, fl->err, "SELECT host, incarnation FROM ckring_runs "
			    "WHERE run_id = $1 AND state = 1", 1,
			    (const char *const[]){ (const char *)id }, (const int[]){ (int)id_len },
			    (const int[]){ 1 }, &r);
	if (rc)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return why_not(fl, id, id_len);
	}
	char was_host[HOST_MAX + 1], was_inc[24];
	snprintf(was_host, sizeof was_host, "%s", PQgetvalue(r, 0, 0));
	snprintf(was_inc, sizeof was_inc, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	snprintf(sql, sizeof sql,
		 "UPDATE ckring_runs r SET host = $2, incarnation = r.incarnation + 1, "
		 "attempts = r.attempts + 1, updated_at = now() FROM ckring_hosts h "
		 "WHERE r.run_id = $1 AND r.state = 1 AND r.host = $3 AND r.incarnation = $4 "
		 "AND h.host = r.host AND (r.host = $2 OR %s) "
		 "RETURNING r.incarnation, r.attempts, r.created_ns", LOST);
	rc = fpg_params(fl->pg, fl->err, sql, 4,
			(const char *const[]){ (const char *)id, fl->host, was_host, was_inc },
			(const int[]){ (int)id_len, 0, 0, 0 }, (const int[]){ 1, 0, 0, 0 }, &r);
	if (rc)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return why_not(fl, id, id_len);
	}
	c->incarnation = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
	c->attempts = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
	c->created_ns = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
	PQclear(r);
	return 0;
}

static int exhaust(ckr_fleet *fl, const void *id, size_t id_len)
{
	return fpg_params(fl->pg, fl->err,
			  "UPDATE ckring_runs SET state = 2, error = 'recovery exhausted'::bytea, "
			  "updated_at = now() WHERE run_id = $1", 1,
			  (const char *const[]){ (const char *)id }, (const int[]){ (int)id_len },
			  (const int[]){ 1 }, NULL);
}

/* The rows, the gap-free prefix kept, the rest set aside (the lost
 * writer's tenure closed). Rows in binary (the bytes as stored). */
static int load_prefix(ckr_fleet *fl, const void *id, size_t id_len, claimed *c)
{
	PGresult *r;
	int rc = PQsendQueryParams(fl->pg, "SELECT seq, incarnation, data FROM ckring_events "
				   "WHERE run_id = $1 ORDER BY seq", 1, NULL,
				   (const char *const[]){ (const char *)id },
				   (const int[]){ (int)id_len }, (const int[]){ 1 }, 1)
			 ? 0 : fpg_fail(fl->pg, NULL, fl->err);
	if (rc)
		return rc;
	r = PQgetResult(fl->pg);
	for (PGresult *more; (more = PQgetResult(fl->pg));)
		PQclear(more);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = fpg_fail(fl->pg, r, fl->err);
		PQclear(r);
		return rc;
	}
	int k = PQntuples(r);
	c->rows = calloc(k ? (size_t)k : 1, sizeof *c->rows);
	if (!c->rows) {
		PQclear(r);
		return -ENOMEM;
	}
	size_t n = 0;
	for (int i = 0; i < k; i++) {
		const uint8_t *q = (const uint8_t *)PQgetvalue(r, i, 0);
		uint64_t seq = 0;
		for (int b = 0; b < 8; b++)
			seq = seq << 8 | q[b];
		if (seq != n)
			break; /* a gap: the prefix ends */
		const uint8_t *ip = (const uint8_t *)PQgetvalue(r, i, 1);
		c->rows[n] = (ckr_change_row){
			.seq = seq,
			.incarnation = (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 |
				       (uint32_t)ip[2] << 8 | ip[3],
			.data = (const uint8_t *)PQgetvalue(r, i, 2),
			.size = (size_t)PQgetlength(r, i, 2) };
		n++;
	}
	c->n_rows = n;
	c->res = r;
	if (n == 0)
		return CKR_ECORRUPT; /* no begin row: nothing to resume from */
	char prefix[24], inc[24];
	snprintf(prefix, sizeof prefix, "%zu", n - 1);
	snprintf(inc, sizeof inc, "%u", c->incarnation);
	return fpg_params(fl->pg, fl->err,
			  "WITH m AS (DELETE FROM ckring_events WHERE run_id = $1 AND seq > $2 "
			  "RETURNING run_id, incarnation, seq, data) INSERT INTO ckring_set_aside "
			  "(run_id, incarnation, seq, data) SELECT run_id, incarnation, seq, data "
			  "FROM m ON CONFLICT DO NOTHING", 2,
			  (const char *const[]){ (const char *)id, prefix },
			  (const int[]){ (int)id_len, 0 }, (const int[]){ 1, 0 }, NULL);
}

int ckr_fleet_claim(ckr_fleet *fl, ckr_store *local, const void *id, size_t id_len,
		    uint32_t max_attempts, ckr_claim *out)
{
	claimed c = { 0 };
	ckr_run_info in;
	if (!fl || !local || !id || id_len == 0 || id_len > CKR_RUN_ID_MAX || !out)
		return -EINVAL;
	/* A run the local store has (and did not give away) is local. */
	if (ckr_store_get(local, id, id_len, &in) == 0 &&
	    strncmp(in.error, "moved to host ", 14) != 0)
		return -EEXIST;
	int rc = fpg_exec(fl->pg, fl->err, "BEGIN");
	if (rc == 0)
		rc = take(fl, id, id_len, &c);
	if (rc == 0 && c.attempts > (max_attempts ? max_attempts : DEFAULT_MAX_ATTEMPTS)) {
		rc = exhaust(fl, id, id_len);
		if (rc == 0)
			rc = fpg_exec(fl->pg, fl->err, "COMMIT");
		return rc ? rc : CKR_EEXHAUSTED;
	}
	if (rc == 0)
		rc = load_prefix(fl, id, id_len, &c);
	if (rc == 0)
		rc = fpg_exec(fl->pg, fl->err, "COMMIT");
	else if (PQstatus(fl->pg) == CONNECTION_OK)
		PQclear(PQexec(fl->pg, "ROLLBACK"));
	if (rc == 0) {
		ckr_adopt im = { .id = id, .id_len = id_len, .incarnation = c.incarnation,
				  .attempts = c.attempts, .rows = c.rows, .n_rows = c.n_rows,
				  .created_ns = c.created_ns };
		rc = ckr_store_adopt(local, &im, out);
		if (rc)
			snprintf(fl->err, sizeof fl->err, "claimed in the database, but the "
				 "local import failed: %s (list again: it is offered to this "
				 "host until imported)", ckr_strerror(rc));
	}
	PQclear(c.res);
	free(c.rows);
	return rc;
}
