/*
 * ship.h — the shipper's state, shared by ship.c (batches, the loop) and
 * ship_open.c (open, close, the handshake with the database: registration,
 * snapshot, moved runs). Internal to libckring-fleet.
 */
#ifndef CKR_FLEET_SHIP_H
#define CKR_FLEET_SHIP_H

#include "pg.h"

#define HOST_MAX 200

/* One change of the batch, copied out of the store's read transaction. */
typedef struct op {
	ckr_change_kind kind;
	uint64_t number;
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	uint32_t inc, lane, attempts;
	uint64_t seq_lo, prefix, finished_ns, created_ns;
	int state, run_kind;
	bool cleared, removed;
	size_t rows, n_rows;       /* into sh->rows */
	size_t text, error_len, label_len, meta_len; /* into the arena */
	size_t lanes, n_lanes;     /* into sh->lanes */
	uint8_t epoch[16];
} op;

typedef struct row {
	uint64_t seq, writer;
	uint32_t inc, slot;
	bool aside;
	bool in_copy;              /* written into the batch's COPY already */
	size_t off, size;          /* into the arena (when not in_copy) */
} row;

/* What the database says of a run, while the batch runs. */
typedef struct runst {
	uint8_t id_len;            /* 0: empty slot */
	uint8_t id[CKR_RUN_ID_MAX];
	bool exists, mine, refused, buffered, reported;
	char owner[HOST_MAX + 1];
	uint32_t inc;
	int state;
} runst;

/* A refusal to act on after the commit. */
typedef struct refusal {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	bool has_writer;
	uint32_t lane, slot;
	uint64_t writer, pos;
	bool mark;                 /* mark the local record moved */
	char owner[HOST_MAX + 1];
	uint32_t owner_inc;
} refusal;

struct ckr_shipper {
	ckr_ship_opts o;
	char host[HOST_MAX + 1];
	char *conninfo;
	char db_dir[4096];
	ckr_store *store;
	int lock_fd;
	ckr_replica *rep;
	uint8_t rep_epoch[16];
	uint64_t rep_retry_ns;
	char segment[CKR_NAME_MAX + 1];
	uint8_t store_id[16];
	PGconn *pg;
	bool ready;                /* connected and handshaken */
	uint64_t shipped;          /* the database's position */
	uint64_t written_back;     /* what the store was told */
	uint64_t last_wb_ns, last_hb_ns, backoff_ms;
	char err[FPG_ERR];
	ckr_ship_stats st;
	/* the batch */
	op *ops;
	size_t n_ops, cap_ops;
	row *rows;
	size_t n_rows, cap_rows;
	ckr_change_lane *lanes;
	size_t n_lanes, cap_lanes;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	uint64_t batch_bytes;
	int batch_err;
	runst *runs;
	uint32_t runs_cap, runs_n;
	refusal *refs;
	size_t n_refs, cap_refs;
	uint64_t *mark_pos;        /* per lane: the batch's latest mark */
	uint32_t mark_lanes;
	fpg_copy copy;
	uint64_t batch_rows;       /* rows in the COPY of the batch */
	/* Runs whose rows must not go into the COPY as they are read: a
	 * refusal found them there, and the batch is read again without. */
	uint8_t (*skip)[CKR_RUN_ID_MAX];
	size_t *skip_len;
	size_t n_skip, cap_skip;
};

/* A batch to read again: a refused run's rows were in its COPY. */
#define FSHIP_RETRY (-EAGAIN)


uint64_t fship_now_ns(void);
void fship_say(const ckr_shipper *sh, ckr_log_level lv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void fship_disconnect(ckr_shipper *sh);
int fship_rollback(ckr_shipper *sh, int rc);
void fship_batch_reset(ckr_shipper *sh);
/* Ship a snapshot of the store and register the host at its position, in
 * the open transaction. *at: the position. @return 0 or an error. */
int fship_snapshot(ckr_shipper *sh, uint64_t *at);
/* After a commit: refusals into slots, moved marks. */
void fship_act_on_refusals(ckr_shipper *sh);
/* Connect and handshake (ship_open.c). */
int fship_start(ckr_shipper *sh);

#endif /* CKR_FLEET_SHIP_H */
