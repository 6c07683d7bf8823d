/*
 * pg.c — libpq with ckring's error convention, and the binary COPY buffer
 * the shipper fills (pg.h).
 */
#include "pg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char err[FPG_ERR], const char *msg)
{
	if (!err)
		return;
	snprintf(err, FPG_ERR, "%s", msg ? msg : "");
	size_t n = strlen(err);
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *q = err; *q; q++) /* one line */
		if (*q == '\n')
			*q = ' ';
}

int fpg_fail(PGconn *c, PGresult *res, char err[FPG_ERR])
{
	const char *msg = res ? PQresultErrorMessage(res) : NULL;
	if (!msg || !*msg)
		msg = PQerrorMessage(c);
	set_err(err, msg);
	return PQstatus(c) == CONNECTION_OK ? -EPROTO : -ENOTCONN;
}

int fpg_connect(const char *conninfo, bool check_schema, PGconn **out, char err[FPG_ERR])
{
	PGconn *c = PQconnectdb(conninfo);
	if (!c) {
		set_err(err, "out of memory");
		return -ENOMEM;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		set_err(err, PQerrorMessage(c));
		PQfinish(c);
		return -ECONNREFUSED;
	}
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	int rc = check_schema ? fpg_schema_check(c, err) : 0;
	if (rc) {
		PQfinish(c);
		return rc;
	}
	*out = c;
	return 0;
}

int fpg_exec(PGconn *c, char err[FPG_ERR], const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int st = PQresultStatus(r);
	int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : fpg_fail(c, r, err);
	PQclear(r);
	return rc;
}

int fpg_params(PGconn *c, char err[FPG_ERR], const char *sql, int n,
	       const char *const *vals, const int *lens, const int *bin, PGresult **res)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, vals, lens, bin, 0);
	int st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int rc = fpg_fail(c, r, err);
		PQclear(r);
		return rc;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

/* ---- binary COPY ---- */

static void grow(fpg_copy *b, size_t n)
{
	if (b->err || b->len + n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 1 << 16;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void put(fpg_copy *b, const void *p, size_t n)
{
	grow(b, n);
	if (b->err)
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void fpg_copy_reset(fpg_copy *b)
{
	static const uint8_t sig[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
	b->len = 0;
	b->tuples = 0;
	b->err = 0;
	put(b, sig, sizeof sig);
}

void fpg_copy_tuple(fpg_copy *b, int fields)
{
	uint16_t f = htons((uint16_t)fields);
	if (b->len == 0)
		fpg_copy_reset(b);
	put(b, &f, 2);
	b->tuples++;
}

void fpg_copy_bytes(fpg_copy *b, const void *p, size_t n)
{
	uint32_t l = htonl((uint32_t)n);
	put(b, &l, 4);
	put(b, p, n);
}

void fpg_copy_i64(fpg_copy *b, int64_t v)
{
	uint8_t q[8];
	for (int i = 0; i < 8; i++)
		q[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
	fpg_copy_bytes(b, q, 8);
}

void fpg_copy_i32(fpg_copy *b, int32_t v)
{
	uint32_t q = htonl((uint32_t)v);
	fpg_copy_bytes(b, &q, 4);
}

int fpg_copy_send(PGconn *c, fpg_copy *b, const char *sql, char err[FPG_ERR])
{
	if (b->tuples == 0) {
		b->len = 0;
		return 0;
	}
	if (b->err)
		return b->err;
	uint16_t trailer = 0xffff;
	put(b, &trailer, 2);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		int rc = fpg_fail(c, r, err);
		PQclear(r);
		return rc;
	}
	PQclear(r);
	int ok = 1;
	for (size_t off = 0; ok == 1 && off < b->len;) {
		size_t n = b->len - off > (1u << 20) ? (1u << 20) : b->len - off;
		ok = PQputCopyData(c, (const char *)b->p + off, (int)n);
		off += n;
	}
	if (ok == 1)
		ok = PQputCopyEnd(c, NULL);
	int rc = 0;
	while ((r = PQgetResult(c)) != NULL) {
		if (rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = fpg_fail(c, r, err);
		PQclear(r);
	}
	if (rc == 0 && ok != 1)
		rc = fpg_fail(c, NULL, err);
	b->len = 0;
	b->tuples = 0;
	return rc;
}

void fpg_copy_free(fpg_copy *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* ---- bytea text ---- */

static const char HEX[] = "0123456789abcdef";

char *fpg_hex(const void *p, size_t n)
{
	const uint8_t *s = p;
	char *o = malloc(3 + 2 * n);
	if (!o)
		return NULL;
	o[0] = '\\';
	o[1] = 'x';
	for (size_t i = 0; i < n; i++) {
		o[2 + 2 * i] = HEX[s[i] >> 4];
		o[3 + 2 * i] = HEX[s[i] & 15];
	}
	o[2 + 2 * n] = '\0';
	return o;
}

char *fpg_bytea_array(const uint8_t (*ids)[64], const size_t *lens, size_t n)
{
	size_t cap = 3;
	for (size_t i = 0; i < n; i++)
		cap += 2 * lens[i] + 8;
	char *o = malloc(cap), *q = o;
	if (!o)
		return NULL;
	*q++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			*q++ = ',';
		/* "\\x..": the array literal unescapes \\ to the \ of bytea hex. */
		*q++ = '"';
		*q++ = '\\';
		*q++ = '\\';
		*q++ = 'x';
		for (size_t k = 0; k < lens[i]; k++) {
			*q++ = HEX[ids[i][k] >> 4];
			*q++ = HEX[ids[i][k] & 15];
		}
		*q++ = '"';
	}
	*q++ = '}';
	*q = '\0';
	return o;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

size_t fpg_unhex(const char *s, uint8_t *buf, size_t cap)
{
	if (s[0] != '\\' || s[1] != 'x')
		return (size_t)-1;
	size_t n = strlen(s + 2);
	if (n % 2 || n / 2 > cap)
		return (size_t)-1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 + 2 * i]), lo = hexval(s[3 + 2 * i]);
		if (hi < 0 || lo < 0)
			return (size_t)-1;
		buf[i] = (uint8_t)(hi << 4 | lo);
	}
	return n / 2;
}
