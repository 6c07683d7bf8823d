/*
 * ckring.h — the producer side of ckring (libckring): a lock-free
 * shared-memory checkpoint ring for in-host durable recovery.
 *
 * Executor threads push checkpoint events of their *runs* into a lane of a
 * POSIX shared-memory segment (never blocking, no system call on the push
 * path); one flusher process per segment drains the lanes into an LMDB
 * store; at boot a host lists the interrupted runs, claims each and resumes
 * it from its saved state. This header is everything an executor links; the
 * store, the recovery calls and the flusher engine are in ckring_store.h
 * (libckring-store).
 *
 * CAVEATS (read these first)
 * - fork(): a client (and its run handles) belongs to the process that
 *   attached it. In a forked child every call on it fails with CKR_EFORKED;
 *   the child must attach a client of its own. The child does not keep the
 *   parent's lanes alive: their locks are dropped in the child at fork.
 * - exec(): a process that execs without detaching leaves its lanes (their
 *   kernel locks go with the exec); the flusher drains them and the runs
 *   they wrote become interrupted. One that detached every client first is
 *   seen by its presence lock (one descriptor per segment, held from the
 *   first attach until exec or exit): its runs become interrupted too,
 *   within about a second, if the flusher that freed its lanes still runs
 *   (else at its death). A process must not close the descriptors
 *   ckring holds (a closefrom() after attach makes its lanes look abandoned).
 * - Threads: one client may be shared by all threads of a process; a run
 *   handle may be used by several threads at once (sequence numbers are
 *   assigned atomically and never repeat). ckr_run_close() and
 *   ckr_client_detach() must not race with other calls on the same handle.
 * - One writer per run: the process that began a run, or the process that
 *   last claimed it, is its only writer. Events of any other writer (a
 *   duplicate begin, a writer fenced by a claim) are rejected by the flusher
 *   and never change the run; ckr_wait() on them returns CKR_EREJECTED.
 * - Durability: a push that returned 0 is *in the ring*: it survives the
 *   death of the pushing process. ckr_wait() waits for the flusher to commit
 *   it to LMDB (survives every process) or to fsync it (survives power
 *   loss), and tells whether the flusher stored it or rejected it.
 * - A ring that is full refuses at once (-EAGAIN); ckring never drops an
 *   accepted event and never blocks the caller to make room.
 * - Shared memory is trusted by nobody: the flusher and the inspector validate
 *   every byte they read from a segment.
 * - A segment truncated while it is mapped (any process with write access
 *   can ftruncate it; a full /dev/shm can fail to give a page): a push or a
 *   ckr_wait that touches a lost page raises SIGBUS in the producer (the
 *   push path has no guard). The flusher survives it (ckring_store.h,
 *   ckr_flusher_on_sigbus); an attach refuses a truncated segment
 *   (CKR_ETRUNC) before it maps anything beyond the header.
 *
 * ERRORS
 * Every function that can fail returns 0 or a negative error code with one
 * meaning each: a negative errno value, or one of the CKR_E* codes below.
 * ckr_strerror() describes either kind.
 */
#ifndef CKRING_H
#define CKRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CKRING_VERSION_MAJOR 0
#define CKRING_VERSION_MINOR 2

#if defined(__GNUC__)
#define CKR_API __attribute__((visibility("default")))
#else
#define CKR_API
#endif

/* ckring's own error codes, in a band far from errno values. */
enum {
	CKR_ENOTSEG = -20001,     /* the object is not a ckring segment */
	CKR_EVERSION = -20002,    /* made by another layout or schema version */
	CKR_ETRUNC = -20003,      /* the object is smaller than its header says
	                           * (also: it was truncated under the flusher) */
	CKR_EFORKED = -20004,     /* handle used in a forked child */
	CKR_ECORRUPT = -20005,    /* bytes failed validation (checksum, bounds) */
	CKR_ECLAIMED = -20006,    /* the run is claimed by another live process */
	CKR_ENOTDRAINED = -20007, /* the run's dead writer still has events in
	                           * the ring; retry once the flusher drained them */
	CKR_EEXHAUSTED = -20008,  /* recovery attempts exhausted: run now failed */
	CKR_ETERMINAL = -20009,   /* the run has already finished */
	CKR_ENOTINTERRUPTED = -20010, /* the run is running and its owner lives */
	CKR_EREJECTED = -20011,   /* the flusher rejected the event: the run has
	                           * another writer (a duplicate begin, or a claim
	                           * fenced this one), it had ended, or it does
	                           * not exist; the run was not changed */
	CKR_ENOTCLAIMER = -20012, /* reopen by a process that did not claim */
	CKR_ESEGMENT = -20013,    /* the store serves another segment */
	CKR_ESLOTS = -20014,      /* every writer slot of the lane is in use:
	                           * close runs, or attach another client */
	CKR_ECLOSED = -20015,     /* the ticket's run handle was closed and its
	                           * slot reused: the outcome can't be told */
	CKR_EUNSAFE = -20016,     /* the store directory or a file in it can't
	                           * be trusted: a symbolic link, another
	                           * owner, writable by others, or a
	                           * data.mdb/lock.mdb that is not a plain file */
	CKR_ENOSHIPPER = -20017,  /* REPLICATED asked, but no shipper serves the
	                           * segment (the event is committed locally) */
	CKR_EMOVED = -20018,      /* the run moved to another host (a shared
	                           * database says so): it is not driven here */
	CKR_ENOTLOST = -20019,    /* the run's host is alive (not declared lost,
	                           * its lease has not expired) */
};

/*
 * Describe an error code returned by any ckring function (negative errno or
 * CKR_E*). Never returns NULL; the string is static. This function can't
 * fail.
 */
CKR_API const char *ckr_strerror(int err);

/* Limits. */
#define CKR_RUN_ID_MAX 64       /* run ids are byte strings of 1..64 bytes */
#define CKR_LABEL_MAX 255       /* code/version label */
#define CKR_NAME_MAX 200        /* segment name */

/* ------------------------------------------------------------------ */
/* Segments                                                            */
/* ------------------------------------------------------------------ */

typedef struct ckr_segment_opts {
	uint64_t size;    /* total bytes; 0 = default (16 lanes x 1 MiB) */
	uint32_t lanes;   /* number of lanes; 0 = default (16) */
	uint32_t writers_per_lane; /* open runs a lane can hold; 0 = 256 */
	mode_t mode;      /* permission bits; 0 = 0600 */
	gid_t group;      /* owning group; (gid_t)-1 = leave as created */
} ckr_segment_opts;

/*
 * Create a segment NAME (letters, digits, '.', '_', '-'; 1..200 bytes, not
 * starting with '.'). The object is made complete under a temporary name and
 * only then given NAME, so an attacher never sees a half-made segment. It is
 * created exclusively (never reused, never through a symlink) with mode 0600
 * unless opts asks otherwise; lane capacity is the largest power of two that
 * fits the size.
 * @param[in] name  segment name
 * @param[in] opts  NULL for defaults
 * @return 0; -EINVAL bad name or size; -EEXIST it exists; -EACCES; -ENOMEM
 *         or -ENOSPC the object could not be sized (/dev/shm full); another
 *         -errno from shm_open/ftruncate/mmap/fchown/link.
 * Any thread or process may call it; two creators of one name race safely
 * (one gets -EEXIST).
 */
CKR_API int ckr_segment_create(const char *name, const ckr_segment_opts *opts);

/* Is NAME a valid segment name (see ckr_segment_create)?
 * @return 0; -EINVAL. */
CKR_API int ckr_segment_name_check(const char *name);

/*
 * Remove the segment NAME. Processes that have it mapped keep their mapping.
 * @return 0; -EINVAL bad name; -ENOENT no such segment; -EACCES.
 */
CKR_API int ckr_segment_unlink(const char *name);

/* ------------------------------------------------------------------ */
/* The executor API: clients and runs                                  */
/* ------------------------------------------------------------------ */

typedef struct ckr_client ckr_client;
typedef struct ckr_run ckr_run;

typedef enum ckr_kind {
	CKR_KIND_SINGLE_LOOP = 1, /* checkpoints its transcript (messages) */
	CKR_KIND_MULTI_PHASE = 2, /* checkpoints each completed phase */
} ckr_kind;

/* Durability levels a ticket can be waited for. */
typedef enum ckr_level {
	CKR_LEVEL_IN_RING = 1,   /* in shared memory (true once the push returned) */
	CKR_LEVEL_COMMITTED = 2, /* committed to LMDB by the flusher */
	CKR_LEVEL_SYNCED = 3,    /* committed and fsync'd */
	CKR_LEVEL_REPLICATED = 4,/* committed, and shipped to the shared
	                          * PostgreSQL by ckring-ship (survives the loss
	                          * of the host; implies COMMITTED, not SYNCED) */
} ckr_level;

/* What a push returns: where its record ends in which lane, and which
 * writer (slot) pushed it, so a wait can tell stored from rejected. */
typedef struct ckr_ticket {
	uint32_t lane;
	uint32_t slot;
	uint64_t pos;
	uint64_t writer;
} ckr_ticket;

/*
 * A begin check: called by ckr_run_begin() before anything is pushed;
 * returns 0 to go on, -EEXIST to refuse (the store already has the run), or
 * another negative error to fail the begin with it. ckring_store.h provides
 * ckr_store_begin_check() for an open store.
 */
typedef int (*ckr_begin_check_fn)(void *ctx, const void *id, size_t id_len);

typedef struct ckr_client_opts {
	/* Optional: refuse a run id the store already holds, synchronously
	 * (e.g. ckr_store_begin_check with an open ckr_store as ctx). NULL:
	 * ckr_run_begin() checks the runs open in this client only; a
	 * duplicate it cannot see is rejected by the flusher and reported by
	 * the first ckr_wait() on the begin's ticket. */
	ckr_begin_check_fn begin_check;
	void *begin_check_ctx;
	uint32_t max_event_size; /* per event, bytes; 0 = the segment's maximum */
	uint64_t max_run_bytes;  /* per run, all events but finish; 0 = 1 GiB */
	uint32_t lanes;          /* lanes this client holds; 0 = 1. Runs are
	                          * spread over them (each run keeps one), so
	                          * threads driving different runs do not share
	                          * a tail. */
} ckr_client_opts;

/*
 * Attach to segment NAME as a producer: claims opts->lanes free lanes (one
 * by default) for this process and holds each with a kernel lock (released
 * when the process dies or execs).
 * @param[out] out  the client
 * @return 0; -EINVAL bad name/opts; -ENOENT no such segment; CKR_ENOTSEG;
 *         CKR_EVERSION; CKR_ETRUNC; -EACCES; -EUSERS every lane is taken
 *         (more producer clients than lanes: "no free lane"); -EMFILE no
 *         descriptor left (an attach needs two for a moment and keeps one:
 *         the mapping's is closed, the kernel locks' is kept; the first
 *         attach of a segment by a process image keeps one more, its
 *         presence lock, until exec or exit); -ENFILE; -ENOMEM. On an
 *         error nothing stays open or held but that presence lock.
 * Thread-safe; each call makes a new client (a process may hold several).
 */
CKR_API int ckr_client_attach(const char *name, const ckr_client_opts *opts,
			      ckr_client **out);

/* The index of the (first) lane this client pushes into (tickets name the
 * lane of each event; the observer reports per lane). This function can't
 * fail. */
CKR_API uint32_t ckr_client_lane(const ckr_client *c);

/*
 * Detach: frees the lane for reuse (events already pushed stay in the ring
 * and are still drained) and frees the client. All run handles of the client
 * must be closed and no thread may be pushing. A clean detach never makes
 * this process's runs claimable: they stay RUNNING with a live owner. NULL
 * is allowed.
 */
CKR_API void ckr_client_detach(ckr_client *c);

typedef struct ckr_run_spec {
	const void *id;      /* run id bytes, 1..CKR_RUN_ID_MAX */
	size_t id_len;
	ckr_kind kind;
	const char *label;   /* code/version label, may be NULL; <= 255 bytes */
	const void *meta;    /* caller metadata, opaque, may be NULL */
	size_t meta_len;
} ckr_run_spec;

/*
 * Begin a new run: pushes its begin event (sequence 0, incarnation 1) with a
 * new writer id; this handle is the run's one writer.
 * @param[out] out     the run handle
 * @param[out] ticket  may be NULL
 * @return 0; -EINVAL bad spec; -EEXIST a run with this id is open in this
 *         client, or the begin check found it in the store (it is never
 *         reset or forked); -EAGAIN ring full (nothing was begun: call
 *         again); -E2BIG metadata larger than an event may be; CKR_ESLOTS;
 *         CKR_EFORKED; -ENOMEM; an error of the begin check.
 * Thread-safe.
 */
CKR_API int ckr_run_begin(ckr_client *c, const ckr_run_spec *spec,
			  ckr_run **out, ckr_ticket *ticket);

/* What a recovery claim hands back (see ckr_store_claim in ckring_store.h). */
typedef struct ckr_claim {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_kind kind;
	uint32_t incarnation; /* the claim's incarnation: events carry it */
	uint64_t writer;      /* the claim's writer id: events carry it */
	uint64_t owner_token; /* the claiming process (pid + start time) */
	uint64_t owner_nonce; /* ... and its process image */
	uint64_t next_seq;    /* the next sequence number of the run */
	uint64_t bytes;       /* bytes stored so far (the run's budget) */
	uint32_t attempts;    /* recoveries so far, this one included */
	uint64_t gap_seq;     /* 0, or the first missing sequence number: rows
	                       * past it were set aside by this claim */
	uint64_t set_aside;   /* rows this claim set aside */
	char label[CKR_LABEL_MAX + 1];
} ckr_claim;

/*
 * Reopen a claimed run so it continues the SAME durable record: new events
 * carry the claim's incarnation and writer and continue its sequence. Only
 * the process that made the claim may reopen it, and only once: closing the
 * handle ends this process's writing of the run (a later recovery claims
 * it again once this process has ended). Writes nothing.
 * @return 0; -EINVAL; -EEXIST the run is open in this client, or this
 *         process reopened this claim before;
 *         CKR_ENOTCLAIMER the claim was made by another process;
 *         CKR_ESLOTS; CKR_EFORKED; -ENOMEM.
 */
CKR_API int ckr_run_reopen(ckr_client *c, const ckr_claim *claim,
			   ckr_run **out);

/*
 * Append one transcript message (single-loop runs).
 * @return 0; -EAGAIN ring full (counted in the segment; nothing was pushed);
 *         -E2BIG larger than the event limit; -EFBIG the run's byte limit
 *         would be exceeded; -EINVAL wrong kind; CKR_ETERMINAL the run was
 *         finished; CKR_EFORKED; CKR_ECORRUPT the lane's shared positions
 *         were scribbled (nothing was written; the flusher repairs a lane
 *         once its owner leaves).
 * Lock-free, no system call; any thread.
 */
CKR_API int ckr_run_message(ckr_run *r, const void *msg, size_t len,
			    ckr_ticket *ticket);

/*
 * Record a completed phase (multi-phase runs): its index (0-based), name and
 * output. Errors as ckr_run_message().
 */
CKR_API int ckr_run_phase(ckr_run *r, uint32_t index, const char *name,
			  const void *output, size_t len, ckr_ticket *ticket);

typedef enum ckr_outcome {
	CKR_OUTCOME_COMPLETE = 0,      /* record and events are cleared */
	CKR_OUTCOME_LEAVE_RUNNING = 1, /* nothing is written: boot recovery */
	CKR_OUTCOME_FAIL = 2,          /* terminal, kept with its error */
} ckr_outcome;

/* Why a run's context ended (the seed's cancellation cause). */
typedef enum ckr_cause {
	CKR_CAUSE_NONE = 0,         /* not cancelled */
	CKR_CAUSE_SHUTDOWN,         /* the host is shutting down */
	CKR_CAUSE_DEADLINE,         /* the run's own deadline passed */
	CKR_CAUSE_CALLER_CANCEL,    /* the caller cancelled it */
	CKR_CAUSE_CRITIC_KILL,      /* a critic killed it */
} ckr_cause;

/*
 * Classify a finished run exactly as the seed's classifyCheckpointOutcome:
 * run_failed false → COMPLETE; else cause SHUTDOWN → LEAVE_RUNNING; else
 * (model error, tool loop, deadline, critic kill, caller cancel) → FAIL.
 * This function can't fail.
 */
CKR_API ckr_outcome ckr_classify_outcome(bool run_failed, ckr_cause cause);

/*
 * Finish a run: COMPLETE pushes a complete event, FAIL a fail event carrying
 * error (may be NULL); LEAVE_RUNNING pushes nothing. Works from any thread and
 * does not depend on the run's own cancellation. Finishing is never refused
 * for the run's byte budget. After a 0 return further pushes fail with
 * CKR_ETERMINAL.
 * @return 0; -EAGAIN ring full (the run is not finished: call again);
 *         -E2BIG error text longer than an event may be; CKR_ETERMINAL
 *         already finished; -EINVAL bad outcome; CKR_EFORKED.
 */
CKR_API int ckr_run_finish(ckr_run *r, ckr_outcome outcome, const char *error,
			   ckr_ticket *ticket);

/* The run's next sequence number (the number of events so far). This
 * function can't fail. */
CKR_API uint64_t ckr_run_next_seq(const ckr_run *r);

/* Free a run handle (writes nothing; the run's record stays as it is). Waits
 * on its tickets still tell stored from rejected until the flusher has
 * passed them. NULL is allowed. */
CKR_API void ckr_run_close(ckr_run *r);

/*
 * Wait, at most timeout_ms (-1: no bound), until the ticket's event reached
 * level. Wakes the flusher if it sleeps. Not for the hot path.
 * @return 0 reached (and stored); CKR_EREJECTED the flusher rejected the
 *         event (known once it is committed, whatever level was asked);
 *         -ETIMEDOUT; -EPIPE no live flusher serves the segment and the
 *         event is not committed (checked at least every 100 ms, also when
 *         it dies during the wait); CKR_ENOSHIPPER (REPLICATED) the event
 *         is committed but no shipper serves the segment (same checks);
 *         CKR_EREJECTED also when the shared database refused the event
 *         (its run moved to another host);
 *         -EINVAL bad ticket/level; CKR_ECLOSED the ticket's run handle was
 *         closed and its slot reused; CKR_EFORKED.
 */
CKR_API int ckr_wait(ckr_client *c, const ckr_ticket *ticket, ckr_level level,
		     int timeout_ms);

/* ------------------------------------------------------------------ */
/* Observing a segment (inspectors, metrics, benchmarks)               */
/* ------------------------------------------------------------------ */

/*
 * An observer attaches read-only: it never writes to the segment and can
 * watch it while producers and the flusher run. Its snapshots are gauges
 * (relaxed loads; a busy lane is counted approximately, a quiet one
 * exactly). It reads the mapping: a segment truncated under it faults
 * (SIGBUS); a caller that must survive that guards its calls (the observer
 * holds no lock and allocates nothing while it reads, so a siglongjmp out
 * of a call is safe).
 */
typedef struct ckr_observer ckr_observer;

/*
 * Attach to segment NAME read-only.
 * @return 0; -EINVAL bad name; -ENOENT no such segment; CKR_ENOTSEG;
 *         CKR_EVERSION; CKR_ETRUNC; -EACCES; -ENOMEM.
 */
CKR_API int ckr_observer_open(const char *name, ckr_observer **out);

/* Detach. NULL is allowed. */
CKR_API void ckr_observer_close(ckr_observer *o);

typedef enum ckr_lane_state {
	CKR_LANE_FREE = 0,         /* nobody holds it */
	CKR_LANE_ATTACHED = 1,     /* a live owner (its kernel lock is held) */
	CKR_LANE_DETACHED = 2,     /* its owner left cleanly; being drained */
	CKR_LANE_OWNER_GONE = 3,   /* its owner died or exec'd; being drained */
	CKR_LANE_INCONSISTENT = 4, /* positions out of order (scribbled) */
} ckr_lane_state;

typedef struct ckr_lane_info {
	uint32_t index;
	ckr_lane_state state;
	uint32_t owner_pid;       /* 0 when free */
	uint64_t owner_start;     /* the owner's start time, clock ticks */
	uint64_t owner_since_ns;  /* CLOCK_REALTIME of the attach */
	uint64_t head;            /* committed: everything below is stored */
	uint64_t tail;            /* end of every claim */
	uint64_t synced;          /* fsync'd */
	uint64_t capacity;
	uint64_t pending;         /* sealed records between head and tail */
	uint64_t pending_corrupt; /* ... of which fail validation */
	uint64_t refused_full;    /* pushes refused: ring full */
	uint64_t drained;         /* records the flusher consumed */
	uint32_t writers;         /* writer slots in use (open run handles) */
} ckr_lane_info;

typedef struct ckr_segment_info {
	char name[CKR_NAME_MAX + 1];
	uint32_t layout_version;
	uint8_t epoch[16];
	uint64_t size;
	uint64_t created_ns;      /* CLOCK_REALTIME */
	uint32_t lane_count;
	uint32_t writers_per_lane;
	uint64_t lane_capacity;
	uint32_t max_record;
	uint32_t attached;        /* lanes with an owner */
	uint32_t inconsistent;    /* lanes in CKR_LANE_INCONSISTENT */
	uint64_t pushed;          /* drained + pending (no push-path counter) */
	uint64_t drained;
	uint64_t refused_full;
	uint64_t reclaimed;       /* abandoned claims of gone owners skipped */
	uint64_t corrupt;         /* records that failed validation */
	uint64_t lanes_freed;
	uint64_t committed;       /* sum of the lanes' heads */
	uint64_t synced;          /* sum of the lanes' synced */
	uint64_t lag_bytes;       /* tail - head, summed */
	uint64_t lag_records;     /* pending, summed */
	bool flusher_present;     /* a flusher has its slot */
	bool flusher_alive;       /* ... and holds its kernel lock */
	uint32_t flusher_pid;
	bool heartbeat_seen;
	uint64_t heartbeat_age_ns;/* since the flusher's last loop */
	uint64_t batches;         /* store transactions the flusher committed */
	uint64_t records;         /* records it persisted */
	uint64_t taken_ns;        /* CLOCK_MONOTONIC of the snapshot */
} ckr_segment_info;

/*
 * Take a snapshot of the segment and, when lanes is not NULL, of its first
 * n_lanes lanes. This function can't fail (bad positions are reported as
 * CKR_LANE_INCONSISTENT).
 */
CKR_API void ckr_observer_snapshot(ckr_observer *o, ckr_segment_info *info,
				   ckr_lane_info *lanes, uint32_t n_lanes);

typedef enum ckr_record_kind {
	CKR_RECORD_EVENT = 0,       /* a valid record holding an event */
	CKR_RECORD_UNDECODABLE = 1, /* a valid record, but not an event */
	CKR_RECORD_CORRUPT = 2,     /* a sealed record that fails validation */
} ckr_record_kind;

typedef enum ckr_event_kind {
	CKR_EVENT_BEGIN = 1,
	CKR_EVENT_MESSAGE = 2,
	CKR_EVENT_PHASE = 3,
	CKR_EVENT_COMPLETE = 4,
	CKR_EVENT_FAIL = 5,
} ckr_event_kind;

/* One record still in a lane. Pointers are valid during the callback. */
typedef struct ckr_record_info {
	uint32_t lane;
	uint64_t pos;            /* where it starts */
	uint64_t next;           /* where the next one starts */
	ckr_record_kind kind;
	uint32_t size;           /* payload (or, corrupt, raw) bytes */
	const char *reason;      /* CORRUPT / UNDECODABLE: why */
	/* EVENT: */
	ckr_event_kind event;
	const char *event_name;  /* "begin", "message", ... */
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	uint32_t incarnation;
	uint64_t seq;
	uint64_t writer;
	ckr_kind run_kind;       /* begin: the run's kind */
	uint32_t begin_pid;      /* begin: the owner pid it names */
	uint32_t phase_index;    /* phase */
	const char *phase_name;  /* phase, not NUL-terminated */
	size_t phase_name_len;
	const void *data;        /* message data / phase output / fail text */
	size_t data_len;
} ckr_record_info;

/* Called per record; return non-zero to stop the walk. */
typedef int (*ckr_record_fn)(void *ctx, const ckr_record_info *rec);

/*
 * Walk the sealed records of lane `lane` from its head, in order, up to its
 * tail or the first claim not yet sealed. Each is copied out of the segment
 * and validated before fn sees it.
 * @return 0 (also when fn stopped the walk); -EINVAL no such lane.
 */
CKR_API int ckr_observer_records(ckr_observer *o, uint32_t lane, ckr_record_fn fn,
				 void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* CKRING_H */
