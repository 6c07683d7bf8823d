/*
 * proto.h — the wire between the API-sequence driver and its workers
 * (tests/apiseq/): one fixed-size command down a pipe (the worker's fd 3),
 * one fixed-size reply back (fd 4), optionally followed by `extra_len`
 * bytes of arrays (tickets, run infos, resume blobs).
 *
 * A worker executes exactly the API call the command names and answers with
 * the exact return code and outputs; it never retries and never decides
 * anything (the driver and its model do). Message, phase, metadata and error
 * bytes are not sent: both sides derive them from a 64-bit tag
 * (as_fill), so the driver can check stored bytes exactly.
 *
 * Both ends are the same build (the driver execs the worker from its own
 * build directory), so the structs are sent as raw bytes.
 */
#ifndef CKR_APISEQ_PROTO_H
#define CKR_APISEQ_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ckring.h"
#include "ckring_store.h"

#define AS_CMD_FD 3
#define AS_REP_FD 4
#define AS_MAX_CLIENTS 4
#define AS_MAX_RUNS 24
#define AS_MAX_STORES 3
#define AS_MAX_CLAIMS 16
#define AS_BURST_MAX 32

typedef enum as_op {
	OP_HELLO = 1,     /* reply only: the worker (or its exec'd image) is up */
	OP_ATTACH,        /* client: segment variant, opts → idx, lane, geometry */
	OP_DETACH,        /* client: closes its open handles, then detaches */
	OP_BEGIN,         /* client, id, kind, label/meta → run idx, ticket */
	OP_MSG,           /* run, len, tag → ticket */
	OP_PHASE,         /* run, index, name, len, tag → ticket */
	OP_FINISH,        /* run, outcome, error → ticket */
	OP_CLOSE,         /* run */
	OP_WAIT,          /* client, ticket, level, timeout → rc, elapsed */
	OP_STORE_OPEN,    /* read_only, max_attempts → store idx */
	OP_STORE_CLOSE,   /* store */
	OP_LIST,          /* store, which → ckr_run_info[] */
	OP_GET,           /* store, id → ckr_run_info */
	OP_CLAIM,         /* store, id (flags: retry while not drained) → claim */
	OP_RESUME,        /* store, id → as_resume_hdr + as_blob[] + gaps */
	OP_REOPEN,        /* client, claim idx (or the claim in the command) */
	OP_BEGIN_CHECK,   /* store, id: ckr_store_begin_check */
	OP_PRUNE,         /* store, ages */
	OP_FORK,          /* the child checks CKR_EFORKED (and more) */
	OP_EXEC,          /* exec a fresh worker image (no detach) */
	OP_EXIT,          /* exit (flags: detach first) */
	OP_KILLPUSH,      /* run: SIGKILL self between claim and commit */
	OP_PARKPUSH,      /* run, len2: a thread parks between claim and
	                   * commit (before its sequence number is taken),
	                   * then len2 more messages are pushed */
	OP_TBURST,        /* run: two threads push len2 messages each; the
	                   * reply comes once both pushed one; then SIGKILL */
	OP_BURST,         /* run, len messages of size len2 */
	OP_EMBED,         /* ckr_flusher_open in this process (refused) */
	OP_MISUSE,        /* calls with bad arguments: each must be refused */
} as_op;

/* OP_ATTACH flags */
#define AF_BEGIN_CHECK 1u /* opts.begin_check on store `store` */
#define AF_MISSING_SEG 2u /* attach a segment that does not exist */
#define AF_BAD_NAME 4u    /* attach an invalid name */
/* OP_CLAIM flags */
#define CF_RETRY 1u       /* retry (bounded) while CKR_ENOTDRAINED */
/* OP_REOPEN flags */
#define RF_GIVEN 1u       /* use cmd.claim_data, not a claim of this worker */
/* OP_FORK flags */
#define FF_LINGER 1u      /* the child stays alive until killed */
#define FF_DUP_BEGIN 2u   /* the child begins id and waits on it */
/* OP_EXIT flags */
#define XF_DETACH 1u      /* detach every client and close stores first */
/* OP_EMBED flags */
#define EF_OTHER_SEG 1u   /* name another segment (str) and create it */
/* OP_FINISH / OP_MSG / OP_PHASE flags */
#define PF_NULL_DATA 1u   /* pass NULL data with len 0 */

typedef struct as_cmd {
	uint32_t op;
	uint32_t flags;
	int32_t client, run, store, claim;
	int32_t timeout_ms;
	uint32_t kind, level, outcome, which;
	uint32_t len, len2, index;
	uint32_t id_len;
	uint64_t tag, tag2;
	uint64_t u64;           /* max_run_bytes (attach) */
	uint32_t max_event;     /* attach */
	uint32_t max_attempts;  /* store open */
	ckr_ticket ticket;
	ckr_claim claim_data;
	uint8_t id[CKR_RUN_ID_MAX + 8];
	char str[CKR_NAME_MAX + 8];
} as_cmd;

typedef struct as_rep {
	uint32_t op;
	int32_t rc;
	int32_t idx;            /* new client/run/store/claim index */
	uint32_t lane;          /* attach: the lane */
	uint32_t max_record, writers_per_lane, lanes;
	uint32_t n;             /* entries in extra / messages accepted */
	uint32_t extra_len;
	int32_t sub[12];        /* sub-results (fork child, misuse, burst) */
	uint64_t token;         /* hello/attach: this process's token */
	uint64_t nonce;         /* hello: this process image's nonce */
	uint64_t next_seq;      /* after a push: ckr_run_next_seq */
	int64_t elapsed_us;     /* wait / claim retry time */
	pid_t pid;              /* hello: pid; fork: the child's pid */
	ckr_ticket ticket;
	ckr_run_info info;      /* get */
	ckr_claim claim;        /* claim */
} as_rep;

/* Resume state, flattened (OP_RESUME extra: hdr, then n_items + n_aside
 * blobs, then n_gaps u64). */
typedef struct as_resume_hdr {
	uint32_t kind, state;
	uint64_t next_seq;
	uint32_t n_items, n_aside, n_gaps;
	uint32_t meta_len;
	uint64_t meta_hash;
	char label[CKR_LABEL_MAX + 1];
} as_resume_hdr;

typedef struct as_blob {
	uint64_t seq;
	uint32_t index, incarnation;
	uint64_t size;
	uint64_t hash;          /* as_hash of the data */
	uint64_t name_hash;     /* phases: as_hash of the name */
} as_blob;

/* FNV-1a 64 of n bytes. */
static inline uint64_t as_hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static inline uint64_t as_mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* The bytes of tag, n of them (messages, phase outputs, metadata). */
static inline void as_fill(uint64_t tag, size_t n, uint8_t *out)
{
	uint64_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if ((i & 7) == 0)
			w = as_mix(tag + (i >> 3));
		out[i] = (uint8_t)(w >> ((i & 7) * 8));
	}
}

/* Printable text of tag, n bytes plus a NUL (labels, names, errors). */
static inline void as_text(uint64_t tag, size_t n, char *out)
{
	static const char a[] = "abcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			w = as_mix(tag ^ (UINT64_C(0x5151) + i));
		out[i] = a[(w >> ((i % 8) * 8)) % (sizeof a - 1)];
	}
	out[n] = '\0';
}

/* The hash of as_fill(tag, n) without a buffer. */
static inline uint64_t as_fill_hash(uint64_t tag, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325), w = 0;
	for (size_t i = 0; i < n; i++) {
		if ((i & 7) == 0)
			w = as_mix(tag + (i >> 3));
		h ^= (uint8_t)(w >> ((i & 7) * 8));
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

#endif /* CKR_APISEQ_PROTO_H */
