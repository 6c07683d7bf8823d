/*
 * ckring_fleet.h — ckring beyond one host (libckring-fleet, links libpq):
 * the shipper that follows a store's change log into a shared PostgreSQL
 * (the body of ckring-ship), and the recovery of the runs of a lost host on
 * another host (the body of ckring-recover). The embedded path does not
 * change: producers push into shm, the flusher drains into LMDB; shipping
 * is an asynchronous stage after the LMDB commit, and nothing on the push
 * or drain path touches the network. The PostgreSQL schema is
 * persist/PG_SCHEMA.md.
 *
 * CAVEATS
 * - One shipper per store and host name: a second one is refused (-EBUSY).
 *   A host name names one store in the shared database; the same name with
 *   another store is refused (CKR_ESEGMENT), so two hosts never ship as one.
 * - Exactly once: the shipped position (the change number of the host's
 *   store) is written in the same PostgreSQL transaction as the rows it
 *   covers; a shipper killed at any instant resumes from it.
 * - A host is lost when an operator says so (ckr_fleet_host_lost) or when
 *   its heartbeat is older than its lease. A lease cannot tell a dead host
 *   from one that is cut off or paused: when it is wrong, fencing by
 *   incarnation keeps the shared record right (the old host's writes for
 *   runs that moved are refused, reported and its local record is marked
 *   moved), but side effects the old host's executors caused outside ckring
 *   during the overlap are not undone. Gate irreversible effects on a
 *   REPLICATED wait: it returns CKR_EREJECTED for a refused event.
 * - The library never prints: the shipper reports through the log callback
 *   of its options; the last PostgreSQL error of a handle is available as
 *   text (ckr_fleet_error, ckr_shipper_error).
 *
 * ERRORS: as in ckring.h (0 or a negative errno / CKR_E* code); a failure
 * of PostgreSQL itself (connection, SQL) is -ECONNREFUSED (cannot connect),
 * -ENOTCONN (the connection broke) or -EPROTO (the server refused a
 * statement), with its text in the handle's error.
 */
#ifndef CKRING_FLEET_H
#define CKRING_FLEET_H

#include "ckring_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the PostgreSQL schema this library creates and needs. */
#define CKR_FLEET_SCHEMA 1

/*
 * Create the shared schema in the database of conninfo, or check it
 * (idempotent; one transaction). *version gets the schema's version.
 * errbuf (may be NULL) gets PostgreSQL's message on failure.
 * @return 0; CKR_EVERSION the database holds another version;
 *         -ECONNREFUSED; -EPROTO.
 */
CKR_API int ckr_fleet_init_schema(const char *conninfo, int *version, char *errbuf,
				  size_t errlen);

/* ------------------------------------------------------------------ */
/* The shipper (the body of ckring-ship)                               */
/* ------------------------------------------------------------------ */

typedef struct ckr_shipper ckr_shipper;

typedef struct ckr_ship_opts {
	const char *db_dir;       /* the store (its flusher may run or not) */
	const char *conninfo;     /* libpq conninfo of the shared database */
	const char *host;         /* this host's name in it (1..200 bytes) */
	uint32_t lease_ms;        /* this host is lost when its heartbeat is
	                           * older than this; 0 = 30000 */
	uint32_t heartbeat_ms;    /* 0 = lease / 5, at most 1000 */
	uint32_t batch_rows;      /* rows per PostgreSQL transaction; 0 = 20000 */
	uint32_t idle_max_ms;     /* longest idle poll of the log; 0 = 5 */
	ckr_log_fn log;           /* NULL: says nothing */
	void *log_ctx;
} ckr_ship_opts;

/*
 * Open: the store, this shipper's lock (one per store), the segment the
 * store serves if it exists (to publish REPLICATED; taken later when it
 * appears). Does not connect yet: ckr_shipper_run connects, and reconnects
 * whenever PostgreSQL goes away, never blocking the local path.
 * @return 0; -EINVAL; -EBUSY another shipper serves the store or segment;
 *         the errors of ckr_store_open.
 */
CKR_API int ckr_shipper_open(const ckr_ship_opts *opts, ckr_shipper **out);

/*
 * Ship until *stop becomes non-zero (a signal handler may set it): connect,
 * check the host's registration (a first start ships a snapshot of the
 * store), mark local runs that moved elsewhere, then follow the log, one
 * PostgreSQL transaction per batch, publishing REPLICATED after each
 * commit and a heartbeat at least every heartbeat_ms. PostgreSQL going away
 * is waited out (reconnect with backoff). @return 0 when stopped; a
 * negative error only for what waiting cannot cure (CKR_ESEGMENT the host
 * name is registered for another store; CKR_ETRUNC the database is behind
 * what the store kept; CKR_EVERSION no or another schema).
 */
CKR_API int ckr_shipper_run(ckr_shipper *sh, const volatile int *stop);

/*
 * Connect if needed and ship at most one batch. *n gets the changes
 * shipped (0: nothing new). @return 0; the errors of ckr_shipper_run and
 * those it waits out (-ECONNREFUSED, -ENOTCONN, -EPROTO).
 */
CKR_API int ckr_shipper_step(ckr_shipper *sh, size_t *n);

typedef struct ckr_ship_stats {
	uint64_t shipped;      /* the position PostgreSQL holds */
	uint64_t last;         /* the store's last change seen */
	uint64_t changes;      /* changes shipped by this shipper */
	uint64_t rows;         /* rows inserted */
	uint64_t batches;      /* PostgreSQL transactions committed */
	uint64_t refused;      /* changes refused (their run moved) */
	uint64_t moved;        /* local runs marked moved */
	uint64_t reconnects;
	uint64_t snapshots;    /* snapshots shipped (first start) */
} ckr_ship_stats;

/* Copy the statistics. This function can't fail. */
CKR_API void ckr_shipper_stats_get(const ckr_shipper *sh, ckr_ship_stats *out);

/* The last PostgreSQL error text ("" none). Valid until the next call. */
CKR_API const char *ckr_shipper_error(const ckr_shipper *sh);

/* Disconnect, write the shipped position back to the store, close. NULL
 * is allowed. */
CKR_API void ckr_shipper_close(ckr_shipper *sh);

/* ------------------------------------------------------------------ */
/* Recovery across hosts (the body of ckring-recover)                  */
/* ------------------------------------------------------------------ */

typedef struct ckr_fleet ckr_fleet;

/*
 * Connect as host `host` (the recovering host: claims make it the runs'
 * host). @return 0; -EINVAL; -ECONNREFUSED; CKR_EVERSION no or another
 * schema; -ENOMEM. errbuf as in ckr_fleet_init_schema.
 */
CKR_API int ckr_fleet_connect(const char *conninfo, const char *host, ckr_fleet **out,
			      char *errbuf, size_t errlen);
CKR_API void ckr_fleet_close(ckr_fleet *fl);
CKR_API const char *ckr_fleet_error(const ckr_fleet *fl);

typedef struct ckr_host_info {
	char host[201];
	bool lost;              /* declared lost, or its lease expired */
	bool declared;          /* declared lost by an operator */
	uint64_t heartbeat_age_ms;
	uint32_t lease_ms;
	uint64_t shipped;       /* its store's position in the database */
	uint64_t running;       /* its runs that are running */
	char reason[256];       /* why it was declared lost */
} ckr_host_info;

/* Every host of the database. *out malloc'd (free it).
 * @return 0; -ENOTCONN; -EPROTO; -ENOMEM. */
CKR_API int ckr_fleet_hosts(ckr_fleet *fl, ckr_host_info **out, size_t *n);

/*
 * Declare host lost (an operator's word: its runs become claimable at once,
 * whatever its lease says). If it comes back its shipper clears the mark,
 * and its writes for the runs that moved meanwhile are refused.
 * @return 0; -ENOENT no such host; -ENOTCONN; -EPROTO.
 */
CKR_API int ckr_fleet_host_lost(ckr_fleet *fl, const char *host, const char *reason);

typedef struct ckr_fleet_run {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	char host[201];         /* the host that holds it */
	uint32_t incarnation;
	uint32_t attempts;
	ckr_kind kind;
	uint64_t rows;          /* its rows in the database */
	char label[CKR_LABEL_MAX + 1];
} ckr_fleet_run;

/*
 * The interrupted runs of lost hosts (RUNNING in the database, their host
 * lost), and the runs the database gives this host that the local store
 * `local` does not have (a recovery of this host that died between its
 * claim and its import); local may be NULL. *out malloc'd (free it).
 * @return 0; -ENOTCONN; -EPROTO; -ENOMEM.
 */
CKR_API int ckr_fleet_list(ckr_fleet *fl, ckr_store *local, ckr_fleet_run **out,
			   size_t *n);

/*
 * Claim run id for this host, atomically in the database (a conditional
 * update on its host and incarnation: of two hosts racing, exactly one
 * wins), close the lost writer's tenure there (rows past the gap-free
 * prefix set aside), load its resume state from the database and import it
 * into the local store as a run claimed by the calling process: same id,
 * next incarnation, next sequence. *out reopens it (ckr_run_reopen); if
 * this process does not, the run is an interrupted run of the local store
 * once it is gone (ckr_store_claim continues it). max_attempts 0 = 5.
 * @return 0; -ENOENT no such run; CKR_ECLAIMED another host holds it now;
 *         CKR_ENOTLOST its host is alive; CKR_ETERMINAL it finished;
 *         CKR_EEXHAUSTED attempts exceeded: it is now failed; the errors
 *         of ckr_store_adopt (-EEXIST the local store has the run);
 *         -ENOTCONN; -EPROTO.
 */
CKR_API int ckr_fleet_claim(ckr_fleet *fl, ckr_store *local, const void *id,
			    size_t id_len, uint32_t max_attempts, ckr_claim *out);

#ifdef __cplusplus
}
#endif
#endif /* CKRING_FLEET_H */
