/*
 * ckring.h — the public interface of ckring, a lock-free shared-memory
 * checkpoint ring for in-host durable recovery.
 *
 * Executor threads push checkpoint events of their *runs* into a lane of a
 * POSIX shared-memory segment (never blocking, no system call on the push
 * path); one flusher process per segment drains the lanes into an LMDB
 * environment; at boot a host lists the interrupted runs, claims each and
 * resumes it from its saved state.
 *
 * CAVEATS (read these first)
 * - fork(): a client (and its run handles) belongs to the process that
 *   attached it. In a forked child every call on it fails with CKR_EFORKED;
 *   the child must attach a client of its own.
 * - Threads: one client may be shared by all threads of a process; a run
 *   handle may be used by several threads at once (sequence numbers are
 *   assigned atomically and never repeat). ckr_run_close() and
 *   ckr_client_detach() must not race with other calls on the same handle.
 * - Durability: a push that returned 0 is *in the ring*: it survives the
 *   death of the pushing process. ckr_wait() waits for the flusher to commit
 *   it to LMDB (survives every process) or to fsync it (survives power loss).
 * - A ring that is full refuses at once (-EAGAIN); ckring never drops an
 *   accepted event and never blocks the caller to make room.
 * - Shared memory is trusted by nobody: the flusher and the inspector validate
 *   every byte they read from a segment.
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
#define CKRING_VERSION_MINOR 1

/* ckring's own error codes, in a band far from errno values. */
enum {
	CKR_ENOTSEG = -20001,     /* the object is not a ckring segment */
	CKR_EVERSION = -20002,    /* made by another layout or schema version */
	CKR_ETRUNC = -20003,      /* the object is smaller than its header says */
	CKR_EFORKED = -20004,     /* handle used in a forked child */
	CKR_ECORRUPT = -20005,    /* bytes failed validation (checksum, bounds) */
	CKR_ECLAIMED = -20006,    /* the run is claimed by another live process */
	CKR_ENOTDRAINED = -20007, /* the run's dead owner still has events in
	                           * the ring; retry once the flusher drained them */
	CKR_EEXHAUSTED = -20008,  /* recovery attempts exhausted: run now failed */
	CKR_ETERMINAL = -20009,   /* the run has already finished */
	CKR_ENOTINTERRUPTED = -20010, /* the run is running and its owner lives */
};

/*
 * Describe an error code returned by any ckring function (negative errno or
 * CKR_E*). Never returns NULL; the string is static.
 */
const char *ckr_strerror(int err);

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
	mode_t mode;      /* permission bits; 0 = 0600 */
	gid_t group;      /* owning group; (gid_t)-1 = leave as created */
} ckr_segment_opts;

/*
 * Create a segment NAME (letters, digits, '.', '_', '-'; 1..200 bytes, not
 * starting with '.'). The object is created exclusively (never reused,
 * never through a symlink) with mode 0600 unless opts asks otherwise; lane
 * capacity is the largest power of two that fits the size.
 * @param[in] name  segment name
 * @param[in] opts  NULL for defaults
 * @return 0; -EINVAL bad name or size; -EEXIST it exists; -EACCES; -ENOMEM
 *         or -ENOSPC the object could not be sized; another -errno from
 *         shm_open/ftruncate/mmap/fchown.
 * Any thread or process may call it; two creators of one name race safely
 * (one gets -EEXIST).
 */
int ckr_segment_create(const char *name, const ckr_segment_opts *opts);

/*
 * Remove the segment NAME. Processes that have it mapped keep their mapping.
 * @return 0; -EINVAL bad name; -ENOENT no such segment; -EACCES.
 */
int ckr_segment_unlink(const char *name);

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
} ckr_level;

/* What a push returns: where its record ends in which lane. */
typedef struct ckr_ticket {
	uint32_t lane;
	uint64_t pos;
} ckr_ticket;

typedef struct ckr_client_opts {
	/* Optional LMDB directory of the flusher: ckr_run_begin() then also
	 * refuses a run id the store already has. NULL: check this process only. */
	const char *db_dir;
	uint32_t max_event_size; /* per event, bytes; 0 = the segment's maximum */
	uint64_t max_run_bytes;  /* per run, all events; 0 = 1 GiB */
} ckr_client_opts;

/*
 * Attach to segment NAME as a producer: claims a free lane for this process.
 * @param[out] out  the client
 * @return 0; -EINVAL bad name/opts; -ENOENT no such segment; CKR_ENOTSEG;
 *         CKR_EVERSION; CKR_ETRUNC; -EACCES; -EUSERS no free lane;
 *         -ENOMEM; -errno from opening the store when opts->db_dir is set.
 * Thread-safe; each call makes a new client (a process may hold several).
 */
int ckr_client_attach(const char *name, const ckr_client_opts *opts,
		      ckr_client **out);

/*
 * Detach: frees the lane for reuse (events already pushed stay in the ring
 * and are still drained) and frees the client. All run handles of the client
 * must be closed and no thread may be pushing. NULL is allowed.
 */
void ckr_client_detach(ckr_client *c);

typedef struct ckr_run_spec {
	const void *id;      /* run id bytes, 1..CKR_RUN_ID_MAX */
	size_t id_len;
	ckr_kind kind;
	const char *label;   /* code/version label, may be NULL; <= 255 bytes */
	const void *meta;    /* caller metadata, opaque, may be NULL */
	size_t meta_len;
} ckr_run_spec;

/*
 * Begin a new run: pushes its begin event (sequence 0, incarnation 1).
 * @param[out] out     the run handle
 * @param[out] ticket  may be NULL
 * @return 0; -EINVAL bad spec; -EEXIST a run with this id is open in this
 *         process or already in the store (it is never reset or forked);
 *         -EAGAIN ring full (nothing was begun: call again); -E2BIG metadata
 *         larger than an event may be; CKR_EFORKED; -ENOMEM.
 * Thread-safe.
 */
int ckr_run_begin(ckr_client *c, const ckr_run_spec *spec, ckr_run **out,
		  ckr_ticket *ticket);

/* What a recovery claim hands back (see ckr_store_claim). */
typedef struct ckr_claim {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_kind kind;
	uint32_t incarnation; /* the claim's incarnation: events carry it */
	uint64_t next_seq;    /* the next sequence number of the run */
	uint32_t attempts;    /* recoveries so far, this one included */
	char label[CKR_LABEL_MAX + 1];
} ckr_claim;

/*
 * Reopen a claimed run so it continues the SAME durable record: new events
 * carry the claim's incarnation and continue its sequence. Writes nothing.
 * @return 0; -EINVAL; -EEXIST the run is open in this process; CKR_EFORKED;
 *         -ENOMEM.
 */
int ckr_run_reopen(ckr_client *c, const ckr_claim *claim, ckr_run **out);

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
int ckr_run_message(ckr_run *r, const void *msg, size_t len, ckr_ticket *ticket);

/*
 * Record a completed phase (multi-phase runs): its index (0-based), name and
 * output. Errors as ckr_run_message().
 */
int ckr_run_phase(ckr_run *r, uint32_t index, const char *name,
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
ckr_outcome ckr_classify_outcome(bool run_failed, ckr_cause cause);

/*
 * Finish a run: COMPLETE pushes a complete event, FAIL a fail event carrying
 * error (may be NULL); LEAVE_RUNNING pushes nothing. Works from any thread and
 * does not depend on the run's own cancellation. After a 0 return further
 * pushes fail with CKR_ETERMINAL.
 * @return 0; -EAGAIN ring full (the run is not finished: call again);
 *         -E2BIG error text too long; CKR_ETERMINAL already finished;
 *         -EINVAL bad outcome; CKR_EFORKED.
 */
int ckr_run_finish(ckr_run *r, ckr_outcome outcome, const char *error,
		   ckr_ticket *ticket);

/* The run's next sequence number (the number of events so far). */
uint64_t ckr_run_next_seq(const ckr_run *r);

/* Free a run handle (writes nothing; the run's record stays as it is).
 * NULL is allowed. */
void ckr_run_close(ckr_run *r);

/*
 * Wait, at most timeout_ms (-1: no bound), until the ticket's event reached
 * level. Wakes the flusher if it sleeps. Not for the hot path.
 * @return 0 reached; -ETIMEDOUT; -EINVAL bad ticket/level; CKR_EFORKED;
 *         -EPIPE no live flusher and the level is not reached.
 */
int ckr_wait(ckr_client *c, const ckr_ticket *ticket, ckr_level level,
	     int timeout_ms);

/* ------------------------------------------------------------------ */
/* The store: recovery read API (any process, concurrent with the flusher) */
/* ------------------------------------------------------------------ */

typedef struct ckr_store ckr_store;

typedef enum ckr_run_state {
	CKR_RUN_RUNNING = 1,
	CKR_RUN_FAILED = 2,
	CKR_RUN_COMPLETED = 3,
} ckr_run_state;

typedef struct ckr_store_opts {
	uint64_t map_size;      /* initial LMDB map size; 0 = 64 MiB */
	uint32_t max_attempts;  /* recoveries before a run fails; 0 = 5 */
	bool read_only;         /* no claims; for inspection */
} ckr_store_opts;

/*
 * Open the store at dir (must exist). Checks the schema version.
 * @return 0; -ENOENT no such directory or no store in it (read_only);
 *         -EACCES; CKR_EVERSION schema of another version; -ENOMEM; -EIO.
 */
int ckr_store_open(const char *dir, const ckr_store_opts *opts, ckr_store **out);
void ckr_store_close(ckr_store *s);

typedef struct ckr_run_info {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_run_state state;
	ckr_kind kind;
	uint32_t owner_pid;
	uint64_t owner_start;  /* owner's process start time, clock ticks */
	bool owner_alive;
	bool owner_drained;    /* the dead owner's lane was drained */
	uint32_t incarnation;
	uint32_t attempts;
	uint64_t events;       /* events stored */
	uint64_t last_seq;     /* highest sequence stored */
	uint64_t bytes;
	char label[CKR_LABEL_MAX + 1];
	char error[256];       /* failed runs: the error, possibly cut */
} ckr_run_info;

enum {
	CKR_LIST_INTERRUPTED = 0, /* RUNNING with a dead owner */
	CKR_LIST_RUNNING = 1,     /* every RUNNING run */
	CKR_LIST_ALL = 2,         /* every run, whatever its state */
};

/*
 * List runs. *out is malloc'd (free() it); *n its length.
 * @return 0; -ENOMEM; -EIO.
 */
int ckr_store_list(ckr_store *s, int which, ckr_run_info **out, size_t *n);

/* One run's summary. @return 0; -ENOENT; -EIO. */
int ckr_store_get(ckr_store *s, const void *id, size_t id_len,
		  ckr_run_info *out);

/*
 * Claim an interrupted run for recovery, atomically (one LMDB write
 * transaction: two claimers can never both win). Bumps the incarnation and
 * the attempt count and makes this process the owner.
 * @return 0; -ENOENT no such run; CKR_ETERMINAL the run finished;
 *         CKR_ENOTINTERRUPTED / CKR_ECLAIMED its owner is alive (the loser
 *         of a race gets CKR_ECLAIMED); CKR_ENOTDRAINED the dead owner's
 *         events are still in the ring; CKR_EEXHAUSTED attempts exceeded the
 *         maximum: the run is now failed; -EROFS store opened read-only;
 *         -EIO.
 */
int ckr_store_claim(ckr_store *s, const void *id, size_t id_len,
		    ckr_claim *out);

typedef struct ckr_blob {
	uint64_t seq;
	uint32_t index;     /* phases: the phase index */
	char *name;         /* phases: the phase name (NUL-terminated) */
	uint8_t *data;
	size_t size;
} ckr_blob;

typedef struct ckr_resume {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_kind kind;
	ckr_run_state state;
	uint64_t next_seq;      /* after the highest stored sequence */
	ckr_blob *history;      /* single-loop: the gap-free transcript prefix */
	size_t n_history;
	ckr_blob *phases;       /* multi-phase: completed phases, in order */
	size_t n_phases;
	uint64_t *gaps;         /* missing sequence numbers below next_seq */
	size_t n_gaps;
	char label[CKR_LABEL_MAX + 1];
	uint8_t *meta;          /* begin's metadata */
	size_t meta_len;
} ckr_resume;

/*
 * Load a run's resume state: single-loop → the longest gap-free prefix of its
 * messages; multi-phase → its completed phases in order. Every gap is
 * reported. Free with ckr_resume_free().
 * @return 0; -ENOENT; -ENOMEM; -EIO; CKR_ECORRUPT an undecodable row.
 */
int ckr_store_resume(ckr_store *s, const void *id, size_t id_len,
		     ckr_resume **out);
void ckr_resume_free(ckr_resume *rs);

/* ------------------------------------------------------------------ */
/* The flusher engine (the body of ckring-flusher)                     */
/* ------------------------------------------------------------------ */

typedef struct ckr_flusher ckr_flusher;

typedef enum ckr_sync {
	CKR_SYNC_ALWAYS = 0,   /* fsync every batch (group commit) */
	CKR_SYNC_NONE = 1,     /* leave it to the OS */
	CKR_SYNC_INTERVAL = 2, /* fsync at most every sync_interval_ms */
} ckr_sync;

typedef struct ckr_flusher_opts {
	const char *segment;
	const char *db_dir;
	bool create;                /* create the segment if it is missing */
	ckr_segment_opts seg;       /* with create */
	ckr_sync sync;
	uint32_t sync_interval_ms;
	uint32_t idle_max_us;       /* longest idle sleep; 0 = 1000 */
	uint64_t map_size;          /* initial map; 0 = 64 MiB; grows when full */
	uint32_t keep_completed_s;  /* keep completed runs' events this long */
	uint32_t max_attempts;      /* recorded for recoverers; 0 = 5 */
	const char **failed_part;   /* optional: on an open error, set to
	                             * "segment", "store" or "flusher slot" */
} ckr_flusher_opts;

/*
 * Open the flusher: attach (or create) the segment, open the store, claim the
 * segment's flusher slot and resume from the persisted positions.
 * @return 0; -EBUSY another live flusher serves the segment; the errors of
 *         ckr_segment_create/attach and ckr_store_open (-ENOSPC: the map or
 *         disk is too small to set the store up). A segment this call
 *         created is removed again when it fails.
 */
int ckr_flusher_open(const ckr_flusher_opts *opts, ckr_flusher **out);

/*
 * Drain until *stop becomes non-zero (a signal handler may set it), then
 * drain what is left, commit and return 0. Returns a negative error only for
 * what it cannot survive; a full disk or full map is retried, not returned.
 */
int ckr_flusher_run(ckr_flusher *f, const volatile int *stop);

/* One drain pass: at most one batch. *n_events gets the records consumed. */
int ckr_flusher_drain_once(ckr_flusher *f, size_t *n_events);

/* Release the flusher slot and close. NULL is allowed. */
void ckr_flusher_close(ckr_flusher *f);

#ifdef __cplusplus
}
#endif
#endif /* CKRING_H */
