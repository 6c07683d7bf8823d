/*
 * ship_open.c — opening and closing a shipper, and its handshake with the
 * database after each (re)connection (ship.c is the batches):
 *   - the host's row: none → a first start: ship a snapshot of the store
 *     and register the host at the snapshot's log position, one
 *     transaction; another store's id → refused (CKR_ESEGMENT); a
 *     position behind what the store kept → refused (CKR_ETRUNC: the
 *     database lost data, e.g. restored from a backup);
 *   - its heartbeat is refreshed and a "lost" mark cleared (it is back);
 *   - the local running runs the database gives to another host are
 *     marked moved before anything is shipped.
 */
#include "ship.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void u64s(char *buf, uint64_t v)
{
	snprintf(buf, 24, "%llu", (unsigned long long)v);
}

/* The host's row, locked: *found, its store id and position. */
static int host_row(ckr_shipper *sh, bool *found, bool *same_store, uint64_t *shipped)
{
	PGresult *r;
	int rc = fpg_params(sh->pg, sh->err,
			    "SELECT store_id = $2, shipped FROM ckring_hosts WHERE host = $1 "
			    "FOR UPDATE", 2,
			    (const char *const[]){ sh->host, (const char *)sh->store_id },
			    (const int[]){ 0, 16 }, (const int[]){ 0, 1 }, &r);
	if (rc)
		return rc;
	*found = PQntuples(r) == 1;
	if (*found) {
		*same_store = PQgetvalue(r, 0, 0)[0] == 't';
		*shipped = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	return 0;
}

static int register_host(ckr_shipper *sh, uint64_t at)
{
	char pos[24], lease[24];
	u64s(pos, at);
	u64s(lease, sh->o.lease_ms);
	return fpg_params(sh->pg, sh->err,
			  "INSERT INTO ckring_hosts (host, store_id, shipped, lease_ms) "
			  "VALUES ($1, $2, $3, $4)", 4,
			  (const char *const[]){ sh->host, (const char *)sh->store_id, pos, lease },
			  (const int[]){ 0, 16, 0, 0 }, (const int[]){ 0, 1, 0, 0 }, NULL);
}

static int back_again(ckr_shipper *sh)
{
	char lease[24];
	u64s(lease, sh->o.lease_ms);
	return fpg_params(sh->pg, sh->err,
			  "UPDATE ckring_hosts SET heartbeat_at = now(), lease_ms = $2, "
			  "lost = false, lost_reason = NULL, lost_at = NULL WHERE host = $1", 2,
			  (const char *const[]){ sh->host, lease }, NULL, NULL, NULL);
}

/* Check the database's position against what the store kept. */
static int check_position(ckr_shipper *sh, uint64_t shipped)
{
	ckr_log_info li;
	int rc = ckr_store_log_info(sh->store, &li);
	if (rc)
		return rc;
	if (shipped > li.last || shipped + 1 < li.first) {
		snprintf(sh->err, sizeof sh->err, "the database holds change %llu of host %s, "
			 "the store keeps %llu..%llu (was the database restored, or the store "
			 "replaced?)", (unsigned long long)shipped, sh->host,
			 (unsigned long long)li.first, (unsigned long long)li.last);
		return CKR_ETRUNC;
	}
	return 0;
}

static int handshake(ckr_shipper *sh)
{
	bool found = false, same = false;
	uint64_t shipped = 0;
	int rc = fpg_exec(sh->pg, sh->err, "BEGIN");
	if (rc == 0)
		rc = host_row(sh, &found, &same, &shipped);
	if (rc == 0 && found && !same) {
		snprintf(sh->err, sizeof sh->err, "host %s is registered in the database "
			 "with another store (one host name, one store)", sh->host);
		rc = CKR_ESEGMENT;
	}
	if (rc == 0 && found)
		rc = check_position(sh, shipped);
	if (rc == 0 && found)
		rc = back_again(sh);
	if (rc == 0 && !found) {
		rc = fship_snapshot(sh, &shipped);
		if (rc == 0)
			rc = register_host(sh, shipped);
	}
	if (rc == 0)
		rc = fpg_exec(sh->pg, sh->err, "COMMIT");
	if (rc)
		return fship_rollback(sh, rc); /* FSHIP_RETRY: read again */
	sh->n_skip = 0;
	sh->st.rows += sh->batch_rows;
	if (!found) {
		sh->st.snapshots++;
		fship_act_on_refusals(sh);
		fship_say(sh, CKR_LOG_INFO, "host %s registered: a snapshot of %zu runs shipped "
			  "(change %llu)", sh->host, sh->n_ops, (unsigned long long)shipped);
	}
	sh->shipped = sh->st.shipped = shipped;
	return 0;
}

/* Local running runs the database gives to another host: mark them moved. */
static int reconcile(ckr_shipper *sh)
{
	ckr_run_info *runs;
	size_t n;
	int rc = ckr_store_list(sh->store, CKR_LIST_RUNNING, &runs, &n);
	if (rc || n == 0) {
		if (rc == 0)
			free(runs);
		return rc;
	}
	uint8_t (*ids)[64] = malloc(n * sizeof *ids);
	size_t *lens = malloc(n * sizeof *lens);
	char *arr = NULL;
	PGresult *res = NULL;
	rc = ids && lens ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		memcpy(ids[i], runs[i].id, runs[i].id_len);
		lens[i] = runs[i].id_len;
	}
	if (rc == 0 && !(arr = fpg_bytea_array((const uint8_t (*)[64])ids, lens, n)))
		rc = -ENOMEM;
	if (rc == 0)
		rc = fpg_params(sh->pg, sh->err,
				"SELECT run_id, host, incarnation FROM ckring_runs WHERE "
				"run_id = ANY($1::bytea[]) AND host <> $2", 2,
				(const char *const[]){ arr, sh->host }, NULL, NULL, &res);
	for (int t = 0; rc == 0 && t < PQntuples(res); t++) {
		uint8_t id[CKR_RUN_ID_MAX];
		size_t l = fpg_unhex(PQgetvalue(res, t, 0), id, sizeof id);
		uint32_t inc = (uint32_t)strtoul(PQgetvalue(res, t, 2), NULL, 10);
		if (l == (size_t)-1 || l == 0)
			continue;
		if (ckr_store_mark_moved(sh->store, id, l, PQgetvalue(res, t, 1), inc) == 0) {
			sh->st.moved++;
			fship_say(sh, CKR_LOG_WARN, "run '%.*s' moved to host %s (incarnation %u) "
				  "while this host was away: marked moved here", (int)l,
				  (const char *)id, PQgetvalue(res, t, 1), inc);
		}
	}
	PQclear(res);
	free(arr);
	free(ids);
	free(lens);
	free(runs);
	return rc;
}

int fship_start(ckr_shipper *sh)
{
	if (!sh->pg) {
		int rc = fpg_connect(sh->conninfo, true, &sh->pg, sh->err);
		if (rc) {
			sh->pg = NULL;
			return rc;
		}
		sh->st.reconnects++;
	}
	int rc = handshake(sh);
	for (int tries = 0; rc == FSHIP_RETRY && tries < 8; tries++)
		rc = handshake(sh); /* a refused run's rows were in the snapshot's COPY */
	if (rc == 0)
		rc = reconcile(sh);
	if (rc)
		return rc == -ENOTCONN ? fship_rollback(sh, rc) : rc;
	sh->ready = true;
	sh->last_hb_ns = fship_now_ns();
	return 0;
}

/* One shipper per store: a lock file beside it (flock: dropped at exit). */
static int lock_store(ckr_shipper *sh)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/ckring-ship.lock", sh->db_dir);
	sh->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (sh->lock_fd < 0)
		return -errno;
	if (flock(sh->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(sh->lock_fd);
		sh->lock_fd = -1;
		return rc;
	}
	return 0;
}

static int copy_opts(ckr_shipper *sh, const ckr_ship_opts *o)
{
	size_t hl = o->host ? strlen(o->host) : 0;
	if (!o->db_dir || !o->conninfo || hl == 0 || hl > HOST_MAX ||
	    strlen(o->db_dir) >= sizeof sh->db_dir)
		return -EINVAL;
	sh->o = *o;
	memcpy(sh->host, o->host, hl + 1);
	snprintf(sh->db_dir, sizeof sh->db_dir, "%s", o->db_dir);
	sh->conninfo = strdup(o->conninfo);
	if (!sh->conninfo)
		return -ENOMEM;
	if (!sh->o.lease_ms)
		sh->o.lease_ms = 30000;
	if (!sh->o.heartbeat_ms)
		sh->o.heartbeat_ms = sh->o.lease_ms / 5 < 1000 ? sh->o.lease_ms / 5 : 1000;
	if (!sh->o.heartbeat_ms)
		sh->o.heartbeat_ms = 1;
	if (!sh->o.batch_rows)
		sh->o.batch_rows = 20000;
	if (!sh->o.idle_max_ms)
		sh->o.idle_max_ms = 5;
	sh->o.db_dir = sh->db_dir;
	sh->o.conninfo = sh->conninfo;
	sh->o.host = sh->host;
	return 0;
}

int ckr_shipper_open(const ckr_ship_opts *o, ckr_shipper **out)
{
	ckr_log_info li;
	if (!o || !out)
		return -EINVAL;
	ckr_shipper *sh = calloc(1, sizeof *sh);
	if (!sh)
		return -ENOMEM;
	sh->lock_fd = -1;
	int rc = copy_opts(sh, o);
	if (rc == 0)
		rc = lock_store(sh);
	if (rc == 0)
		rc = ckr_store_open(sh->db_dir, NULL, &sh->store);
	if (rc == 0)
		rc = ckr_store_ship_register(sh->store, &li);
	if (rc) {
		ckr_shipper_close(sh);
		return rc;
	}
	memcpy(sh->store_id, li.store_id, 16);
	snprintf(sh->segment, sizeof sh->segment, "%s", li.segment);
	sh->written_back = li.shipped;
	if (sh->segment[0]) {
		rc = ckr_replica_open(sh->segment, &sh->rep);
		if (rc == -EBUSY) {
			ckr_shipper_close(sh);
			return rc;
		}
		if (rc)
			sh->rep = NULL;
		else
			ckr_replica_epoch(sh->rep, sh->rep_epoch);
	}
	sh->mark_lanes = 1024;
	sh->mark_pos = calloc(sh->mark_lanes, sizeof *sh->mark_pos);
	if (!sh->mark_pos) {
		ckr_shipper_close(sh);
		return -ENOMEM;
	}
	*out = sh;
	return 0;
}

void ckr_shipper_close(ckr_shipper *sh)
{
	if (!sh)
		return;
	if (sh->store && sh->shipped > sh->written_back)
		ckr_store_ship_position(sh->store, sh->shipped);
	fship_disconnect(sh);
	ckr_replica_close(sh->rep);
	ckr_store_close(sh->store);
	if (sh->lock_fd >= 0)
		close(sh->lock_fd);
	fpg_copy_free(&sh->copy);
	free(sh->ops);
	free(sh->rows);
	free(sh->lanes);
	free(sh->arena);
	free(sh->runs);
	free(sh->refs);
	free(sh->skip);
	free(sh->skip_len);
	free(sh->mark_pos);
	free(sh->conninfo);
	free(sh);
}
