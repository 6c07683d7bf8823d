/*
 * pg.h — what the fleet modules share: libpq calls with ckring's error
 * convention, a binary COPY buffer, the schema (schema.c). Internal to
 * libckring-fleet; only public headers besides (the library is built with
 * -Iinclude, not -I.).
 *
 * Errors: a connection that cannot be made is -ECONNREFUSED, one that broke
 * -ENOTCONN, a statement the server refused -EPROTO; the server's text is
 * copied into the caller's error buffer (FPG_ERR bytes).
 */
#ifndef CKR_FLEET_PG_H
#define CKR_FLEET_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckring_fleet.h"

#define FPG_ERR 512

/* Connect (and check the schema when check_schema). @return 0;
 * -ECONNREFUSED; CKR_EVERSION; -EPROTO. */
int fpg_connect(const char *conninfo, bool check_schema, PGconn **out, char err[FPG_ERR]);

/* The error of a failed call on c (and its text into err). */
int fpg_fail(PGconn *c, PGresult *res, char err[FPG_ERR]);

/* Run a statement that returns no rows. @return 0 or fpg_fail's. */
int fpg_exec(PGconn *c, char err[FPG_ERR], const char *sql);

/*
 * Run sql with n parameters (text, or binary where lens[i] > 0 is given
 * with bin[i]), expecting rows (want PGRES_TUPLES_OK) or a command
 * (PGRES_COMMAND_OK). *res (tuples only) to PQclear. @return 0 or
 * fpg_fail's.
 */
int fpg_params(PGconn *c, char err[FPG_ERR], const char *sql, int n,
	       const char *const *vals, const int *lens, const int *bin,
	       PGresult **res);

/* The schema (schema.c): create or check, in one transaction. */
int fpg_schema_init(PGconn *c, int *version, char err[FPG_ERR]);
int fpg_schema_check(PGconn *c, char err[FPG_ERR]);

/* A binary COPY stream being built in memory (PostgreSQL's binary COPY
 * format: signature, flags, extension, tuples, -1 trailer). */
typedef struct fpg_copy {
	uint8_t *p;
	size_t len, cap;
	size_t tuples;
	int err;            /* -ENOMEM once it failed */
} fpg_copy;

void fpg_copy_reset(fpg_copy *b);
void fpg_copy_tuple(fpg_copy *b, int fields);
void fpg_copy_bytes(fpg_copy *b, const void *p, size_t n);
void fpg_copy_i64(fpg_copy *b, int64_t v);
void fpg_copy_i32(fpg_copy *b, int32_t v);
/* Send it as COPY sql FROM STDIN (FORMAT binary); resets it.
 * @return 0 or fpg_fail's; -ENOMEM. */
int fpg_copy_send(PGconn *c, fpg_copy *b, const char *sql, char err[FPG_ERR]);
void fpg_copy_free(fpg_copy *b);

/* bytea as text input ("\\x..." hex) into a malloc'd string. */
char *fpg_hex(const void *p, size_t n);
/* A text-format array of bytea values ('{"\\\\x..",...}'), malloc'd. */
char *fpg_bytea_array(const uint8_t (*ids)[64], const size_t *lens, size_t n);
/* Decode a bytea result value (text format) into buf (cap); the length, or
 * (size_t)-1 when it does not fit or is not hex. */
size_t fpg_unhex(const char *s, uint8_t *buf, size_t cap);

#endif /* CKR_FLEET_PG_H */
