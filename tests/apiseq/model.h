/*
 * model.h — the reference model of the API-sequence test (tests/apiseq/):
 * what the store must hold, given every call the workers made and what each
 * returned, and which return codes each call may give.
 *
 * The model mirrors the contract, not the code (include/ckring.h,
 * include/ckring_store.h, ring/PROTOCOL.md "Owners, writers and claims"):
 *
 *  - A run id's *candidates* are the writers whose begin was pushed. The
 *    first begin the flusher applies wins (creates the record); every other
 *    begin and every event of its writer is rejected. Which one wins is
 *    known from a definitive observation (a wait, a label read back, a
 *    claim), from lane order (same lane: lower position first) or from
 *    knowledge that a begin was applied before another was pushed;
 *    otherwise it is a race, resolved at the next checkpoint from the
 *    store's label. A claim writer always wins its tenure.
 *  - Every event of the current writer (one handle per writer) is stored,
 *    in sequence order; finish ends the run (COMPLETE clears it to a
 *    tombstone). A push that did not return (its process was killed with
 *    the command in flight) is *maybe*: stored or not, learnt from the
 *    store. Rows of the writer a claim replaced that lie past the first gap
 *    are set aside by that claim; the new incarnation continues right after
 *    the gap-free prefix.
 *  - A claim succeeds only when the run's owner image can no longer write
 *    (dead, or exec'd) AND (by the contract) all its events were applied;
 *    it is refused while the owner lives (CKR_ENOTINTERRUPTED /
 *    CKR_ECLAIMED, exactly as store_recover.c words it), CKR_ENOTDRAINED
 *    while a dead owner may have events in the ring; a claim whose
 *    next_seq is lower than the accepted events imply fenced an event out.
 *  - Waits: never 0 for a rejected event, never CKR_EREJECTED for a stored
 *    one; -EPIPE only when no flusher was certainly alive; CKR_ECLOSED only
 *    after the handle was closed; SYNCED never reached under --sync none
 *    unless a flusher start (its fsync) or clean stop came after the push.
 *
 * Time is a logical clock: every driver action (send, reply, kill, flusher
 * event) takes the next tick, so "A happened before B" is a comparison.
 *
 * Concurrency: the driver's thread only.
 */
#ifndef CKR_APISEQ_MODEL_H
#define CKR_APISEQ_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ckring.h"
#include "ckring_store.h"
#include "tests/apiseq/proto.h"

#define AM_MAX_LANES 16
#define AM_NEVER INT64_MAX

typedef enum am_img_state { IMG_ALIVE, IMG_DEAD, IMG_EXECED } am_img_state;
typedef enum am_wstat { WS_PENDING, WS_WIN, WS_LOSE } am_wstat;
typedef enum am_land { LAND_YES = 0, LAND_NO, LAND_UNKNOWN } am_land;
typedef enum am_evtype { EV_BEGIN = 1, EV_MSG, EV_PHASE, EV_COMPLETE, EV_FAIL } am_evtype;
typedef enum am_fate { FATE_UNDECIDED = 0, FATE_STORED, FATE_REJECTED } am_fate;

typedef struct am_client {
	bool used;
	uint32_t lane;
	int check_store;        /* begin_check on this store index, -1 none */
	uint32_t max_event;
	uint64_t max_run_bytes;
	int n_open;             /* open handles */
	int n_closed;           /* closed since the last quiesce (slots may drain) */
	bool detaching;         /* a DETACH of it is in flight */
} am_client;

typedef struct am_handle {
	bool used;
	int run, writer, client, hrec;
	uint64_t next_seq, bytes;
	bool finished;          /* a finish returned 0 */
	bool slot_known;
	uint32_t slot;
	uint32_t phases;        /* phase index to use next */
	int last_ev;            /* its latest accepted event, -1 */
} am_handle;

typedef struct am_claimrec {
	bool used, reopened;
	int run, writer;
	ckr_claim cl;
} am_claimrec;

typedef struct am_img {
	int worker;             /* driver worker slot; -1: a fork child */
	pid_t pid;
	uint64_t token, nonce;
	am_img_state state;
	bool stopped;
	bool pid_dead;          /* EXECED: the process died since */
	int lanes_at_end;       /* lanes it held when it exec'd */
	int64_t t_end;          /* the kill/exec was sent (alive before it) */
	int64_t t_gone;         /* reaped / exec'd image answered (gone after) */
	int pend_writer;        /* the writer of its BEGIN in flight, -1 */
	int64_t gone_ms;        /* wall clock (ms) when it ended (driver's) */
	am_client cl[AS_MAX_CLIENTS];
	am_handle h[AS_MAX_RUNS];
	int store[AS_MAX_STORES];       /* 0 closed, 1 read-write, 2 read-only */
	uint32_t store_att[AS_MAX_STORES];
	int store_refs[AS_MAX_STORES];  /* clients using it as begin_check */
	am_claimrec claim[AS_MAX_CLAIMS];
	int *evs;               /* its accepted events with tickets (waits) */
	size_t n_evs, cap_evs;
} am_img;

typedef struct am_writer {
	int run, img;
	uint64_t wid;           /* the real writer id (tickets, claims); 0 unknown */
	uint32_t inc;
	am_wstat st;            /* decided status (WS_PENDING: see am_writer_status) */
	bool from_claim;
	bool cmd_pending;       /* its BEGIN is in flight */
	bool begin_maybe;       /* its begin may not have reached the ring */
	bool begin_ok;          /* its begin was accepted (push returned 0) */
	int begin_ev;
	uint32_t kind;
	uint64_t begin_size;
	char label[CKR_LABEL_MAX + 1];
	bool label_null;
	uint64_t meta_tag;
	uint32_t meta_len;
	int64_t t_send;
	int *evs;               /* its events (accepted or maybe), push order */
	size_t n_evs, cap_evs;
} am_writer;

typedef struct am_event {
	int run, writer, hrec, img;
	uint8_t type;
	bool maybe;             /* in flight when its process died */
	uint8_t land;           /* maybe events: am_land */
	bool single_burst;      /* maybe, one thread: landed ones form a prefix */
	bool wild;              /* TBURST: data is one of 2 x n payloads */
	bool aside;             /* its row was set aside by a claim */
	uint8_t obs;            /* observed fate (am_fate) by a wait */
	uint64_t seq;
	uint64_t tag;           /* payload tag (wild: the burst's base tag) */
	uint32_t len, index, name_len;
	uint32_t wild_n;        /* wild: messages per thread */
	uint64_t size;          /* encoded size: the row's bytes */
	ckr_ticket tk;
	int64_t t_send, t_recv;
	uint32_t inc;
} am_event;

typedef struct am_run {
	uint8_t id[CKR_RUN_ID_MAX];
	uint8_t id_len;
	int *cands;             /* begin writers */
	size_t n_cands, cap_cands;
	int winner;             /* decided winner writer, -1 */
	int64_t t_exists;       /* the record is known to exist by then */
	int *tenure;            /* [0] winner, then claim writers */
	size_t n_tenure, cap_tenure;
	uint32_t attempts;      /* claims that succeeded (certain) */
	int n_maybe_claims;     /* claims in flight when their claimer died */
	uint32_t maybe_claim_max[4];
	int maybe_claim_img[4];
	bool exhausted;         /* a claim failed it (recovery exhausted) */
	int64_t t_term;         /* known terminal (in the store) by then */
	bool maybe_exhausted;   /* a maybe claim may have */
	int fin_ev;             /* the current tenure's finish event, -1 */
	int *rows;              /* seq -> event (stored rows), -1 none */
	size_t n_rows;          /* size of rows[] */
	uint64_t last_seq;      /* the record's last_seq */
	int *aside;             /* events set aside, in claim order */
	size_t n_aside, cap_aside;
	int claims_pending;     /* CLAIM commands in flight */
	int finish_pending;     /* FINISH (complete/fail) commands in flight */
	int64_t t_claim_done;   /* last successful claim's reply */
	int64_t t_claim_send;   /* ... and its send */
	bool checked_once;
	bool dirty;             /* touched since the last checkpoint */
	char won_how[96];       /* the observation that decided the winner */
	int64_t won_t;
} am_run;

typedef struct am_lane {
	int img, client;        /* holder, -1 none */
	bool maybe_held;        /* an ended tenure the flusher may not have freed */
	int64_t *kt;            /* known-applied history: (time, position) */
	uint64_t *kp;
	size_t nk, capk;
	uint64_t max_pos;       /* highest ticket position seen */
} am_lane;

typedef struct am_gen {
	int64_t t_start, t_ready, t_end;
	int mode;               /* ckr_sync */
	bool armed;             /* crash point set: may die at any moment */
	bool clean;             /* ended by SIGTERM (final sync) */
	int64_t t_stop, t_cont; /* last SIGSTOP interval (t_cont AM_NEVER: stopped) */
	bool ever_stopped;
	uint32_t max_attempts;
} am_gen;

/* Counters the store keeps, as intervals [lo, hi]. */
typedef struct am_counts {
	uint64_t stored, dup_begin, foreign, quarantined_lo, quarantined_hi;
	uint64_t foreign_maybe, dup_begin_maybe;
} am_counts;

typedef struct am {
	uint32_t lanes, wpl, max_record;
	uint32_t meta_max_attempts;
	uint32_t meta_prev;     /* the value before the last change ... */
	int64_t t_meta;         /* ... made (by a flusher start) then */
	int64_t T;
	am_img *imgs;
	size_t n_imgs, cap_imgs;
	am_run *runs;
	size_t n_runs, cap_runs;
	am_writer *ws;
	size_t n_ws, cap_ws;
	am_event *evs;
	size_t n_evs, cap_evs;
	int64_t *hrec;          /* handle records: closed time (AM_NEVER open) */
	size_t n_hrec, cap_hrec;
	am_gen *gens;
	size_t n_gens, cap_gens;
	am_lane lane[AM_MAX_LANES];
	int *hmap;              /* run id hash → run index + 1 */
	size_t hcap;
	am_counts cnt;
	int64_t t_quiesced;
	uint64_t wild_quarantine;
	/* divergence */
	bool failed;
	char why[8192];
	int focus;              /* the run the last check was about, -1 */
	int claim_prev_img;     /* the owner image a claim just replaced, -1 */
	/* statistics */
	uint64_t n_races, n_claims_ok, n_rejected_seen, n_gaps_seen, n_epipe;
	uint64_t n_synced_to, n_eclosed, n_eagain;
} am;

void am_init(am *m, uint32_t lanes, uint32_t wpl, uint32_t max_attempts);
void am_free(am *m);

/* Next tick of the logical clock. */
int64_t am_tick(am *m);

/* Record a divergence (the first one wins) with printf arguments. */
void am_diverge(am *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Images (process images of workers and fork children). */
int am_img_new(am *m, int worker, pid_t pid, uint64_t token);
void am_img_end(am *m, int img, am_img_state how, int64_t t_end, int64_t t_gone);
/* Lanes not held by a live client were all seen free (full checkpoint). */
void am_lanes_free(am *m);

/* The run with this id (created on first use). */
int am_run_get(am *m, const uint8_t *id, size_t len);
int am_run_find(const am *m, const uint8_t *id, size_t len);

/* A command to image img is being sent / was answered / was lost with its
 * process (killed in flight). am_sent returns the send time. */
int64_t am_sent(am *m, int img, const as_cmd *c);
void am_done(am *m, int img, const as_cmd *c, const as_rep *r, const void *extra,
	     int64_t t_send);
void am_lost(am *m, int img, const as_cmd *c, int64_t t_send);

/* A worker image that is about to be killed after a reply (PARKPUSH). */
void am_parked(am *m, int img);

/* Flusher generations. */
void am_flusher_started(am *m, int mode, bool armed, uint32_t max_attempts,
			int64_t t_start, int64_t t_ready);
void am_flusher_ended(am *m, int64_t t, bool clean);
void am_flusher_stopped(am *m, bool stopped);
am_gen *am_flusher_cur(am *m);  /* the live generation, or NULL */

/* Everything pushed so far is applied (lanes drained at t). */
void am_quiesced(am *m, int64_t t);

/* Would a wait on event ei for level come back by itself (reached, or
 * -EPIPE)? The generator uses it before a timeout of -1. */
bool am_wait_returns(const am *m, int ei, uint32_t level);

/* Status of a writer now: decided or provisional (see model.c). */
am_wstat am_writer_status(const am *m, int w);
am_fate am_event_fate(const am *m, int e);

/* Decisions from observations; they check consistency. */
void am_decide_win(am *m, int run, int w, const char *how);
void am_decide_lose(am *m, int w, const char *how);
/* The candidate whose begin carried label, -1. */
int am_cand_by_label(const am *m, int run, const char *label);

/* The encoded size of an event (event/event.h). */
uint64_t am_size_begin(size_t id_len, size_t label_len, size_t meta_len);
uint64_t am_size_msg(size_t id_len, size_t len);
uint64_t am_size_phase(size_t id_len, size_t name_len, size_t len);
uint64_t am_size_fail(size_t id_len, size_t len);
uint64_t am_size_complete(size_t id_len);

/* Print what the model knows of run (candidates, tenures, rows). */
void am_dump_run(const am *m, int run, FILE *out);

/* Helpers for the checker. */
void am_row_put(am *m, int run, int e);
uint64_t am_prefix(const am *m, int run);
const char *am_rc(int rc);
const char *am_op_name(uint32_t op);
void am_run_id_text(const am_run *r, char *out, size_t n);

#endif /* CKR_APISEQ_MODEL_H */
