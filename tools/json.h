/*
 * json.h — a tiny header-only JSON writer for the ckring tools, plus base64.
 *
 * The writer inserts commas and (optionally) indentation itself; the caller
 * only says what comes next:
 *
 *     json_w w;
 *     json_init(&w, stdout, 2);
 *     json_obj(&w);
 *       json_key(&w, "name"); json_str(&w, "seg");
 *       json_key(&w, "lanes"); json_arr(&w); json_u64(&w, 1); json_end_arr(&w);
 *     json_end_obj(&w);
 *     json_finish(&w);            (prints the final newline)
 *
 * Strings are escaped per RFC 8259: '"', '\\' and control characters are
 * escaped; well-formed UTF-8 is copied as is; a byte that is not part of
 * well-formed UTF-8 (overlong forms, surrogates, stray continuation bytes)
 * is written as U+FFFD, so the output is always valid UTF-8 JSON. Byte
 * strings that must survive exactly (run ids, payloads) should also be
 * written as hex or base64 (json_hex, json_b64).
 *
 * Errors: the writer does not fail; write errors are left on the FILE
 * (check ferror() or fflush() at the end). Nesting deeper than
 * JSON_MAX_DEPTH is a programming error (asserted).
 *
 * Concurrency: a json_w belongs to one thread. All functions are static, so
 * each tool gets its own copy and the unused ones cost nothing.
 */
#ifndef CKR_TOOLS_JSON_H
#define CKR_TOOLS_JSON_H

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define JSON_MAX_DEPTH 32

typedef struct json_w {
	FILE *f;
	int indent;                   /* spaces per level; 0 = compact */
	int depth;
	bool has_items[JSON_MAX_DEPTH]; /* does the open container have items? */
	bool after_key;               /* a key was written; its value is next */
} json_w;

static inline void json_init(json_w *w, FILE *f, int indent)
{
	memset(w, 0, sizeof *w);
	w->f = f;
	w->indent = indent;
}

static inline void json_newline(json_w *w)
{
	if (!w->indent)
		return;
	fputc('\n', w->f);
	for (int i = 0; i < w->depth * w->indent; i++)
		fputc(' ', w->f);
}

/* Before any value or key: the comma and the indentation. */
static inline void json_sep(json_w *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth > 0) {
		if (w->has_items[w->depth])
			fputc(',', w->f);
		w->has_items[w->depth] = true;
		json_newline(w);
	}
}

static inline void json_open(json_w *w, char c)
{
	json_sep(w);
	fputc(c, w->f);
	assert(w->depth + 1 < JSON_MAX_DEPTH);
	w->depth++;
	w->has_items[w->depth] = false;
}

/* Open an object / an array; json_end_obj() / json_end_arr() close it. */
static inline void json_obj(json_w *w) { json_open(w, '{'); }
static inline void json_arr(json_w *w) { json_open(w, '['); }

static inline void json_close(json_w *w, char c)
{
	assert(w->depth > 0);
	bool items = w->has_items[w->depth];
	w->depth--;
	if (items)
		json_newline(w);
	fputc(c, w->f);
}

static inline void json_end_obj(json_w *w) { json_close(w, '}'); }
static inline void json_end_arr(json_w *w) { json_close(w, ']'); }

/* The length of the well-formed UTF-8 sequence at p (n bytes left), or 0. */
static inline size_t json_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t cp;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/* Write the escaped body of a string (no quotes). */
static inline void json_escape(FILE *f, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
		} else if (c == '\n') {
			fputs("\\n", f);
		} else if (c == '\t') {
			fputs("\\t", f);
		} else if (c == '\r') {
			fputs("\\r", f);
		} else if (c < 0x20 || c == 0x7F) {
			fprintf(f, "\\u%04x", c);
		} else if (c < 0x80) {
			fputc(c, f);
		} else {
			size_t len = json_utf8_len(p + i, n - i);
			if (len == 0) {
				fputs("\\ufffd", f); /* not well-formed UTF-8 */
				i++;
				continue;
			}
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		}
		i++;
	}
}

/* Is data well-formed UTF-8 without control characters? */
static inline bool json_is_text(const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n;) {
		if (p[i] < 0x20 || p[i] == 0x7F)
			return false;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t len = json_utf8_len(p + i, n - i);
		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/* An object key. */
static inline void json_key(json_w *w, const char *k)
{
	json_sep(w);
	fputc('"', w->f);
	json_escape(w->f, k, strlen(k));
	fputs(w->indent ? "\": " : "\":", w->f);
	w->after_key = true;
}

static inline void json_strn(json_w *w, const void *s, size_t n)
{
	json_sep(w);
	fputc('"', w->f);
	json_escape(w->f, s, n);
	fputc('"', w->f);
}

/* A NUL-terminated string; NULL is written as null. */
static inline void json_null(json_w *w)
{
	json_sep(w);
	fputs("null", w->f);
}

static inline void json_str(json_w *w, const char *s)
{
	if (s)
		json_strn(w, s, strlen(s));
	else
		json_null(w);
}

static inline void json_u64(json_w *w, uint64_t v)
{
	json_sep(w);
	fprintf(w->f, "%" PRIu64, v);
}

static inline void json_i64(json_w *w, int64_t v)
{
	json_sep(w);
	fprintf(w->f, "%" PRId64, v);
}

/* A number; NaN and infinities (not JSON) are written as null. */
static inline void json_double(json_w *w, double v)
{
	json_sep(w);
	if (isfinite(v))
		fprintf(w->f, "%.6g", v);
	else
		fputs("null", w->f);
}

static inline void json_bool(json_w *w, bool v)
{
	json_sep(w);
	fputs(v ? "true" : "false", w->f);
}

/* Bytes as a lower-case hex string. */
static inline void json_hex(json_w *w, const void *data, size_t n)
{
	const unsigned char *p = data;
	json_sep(w);
	fputc('"', w->f);
	for (size_t i = 0; i < n; i++)
		fprintf(w->f, "%02x", p[i]);
	fputc('"', w->f);
}

/* ---- base64 (RFC 4648, standard alphabet, padded) ---- */

static const char json_b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The encoded length of n bytes (without a NUL). */
static inline size_t json_b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Encode n bytes into out (json_b64_len(n) + 1 bytes; NUL-terminated).
 * @return the encoded length. This function can't fail. */
static inline size_t json_b64_encode(const void *data, size_t n, char *out)
{
	const unsigned char *p = data;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = json_b64_alphabet[v >> 18 & 63];
		out[o++] = json_b64_alphabet[v >> 12 & 63];
		out[o++] = i + 1 < n ? json_b64_alphabet[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? json_b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static inline int json_b64_value(char c)
{
	const char *p = c ? strchr(json_b64_alphabet, c) : NULL;
	return p ? (int)(p - json_b64_alphabet) : -1;
}

/*
 * Decode the padded base64 text s (n characters) into out (at least
 * n / 4 * 3 bytes). @return the decoded length, or -1 if s is not
 * well-formed padded base64.
 */
static inline long json_b64_decode(const char *s, size_t n, void *out)
{
	unsigned char *o = out;
	size_t len = 0;
	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int pad = 0;
		if (i + 4 == n && s[i + 3] == '=')
			pad = s[i + 2] == '=' ? 2 : 1;
		uint32_t x = 0;
		for (int k = 0; k < 4; k++) {
			int v = k >= 4 - pad ? 0 : json_b64_value(s[i + k]);
			if (v < 0)
				return -1;
			x = x << 6 | (uint32_t)v;
		}
		o[len++] = (unsigned char)(x >> 16);
		if (pad < 2)
			o[len++] = (unsigned char)(x >> 8);
		if (pad < 1)
			o[len++] = (unsigned char)x;
	}
	return (long)len;
}

/* Bytes as a base64 string value. */
static inline void json_b64(json_w *w, const void *data, size_t n)
{
	static const size_t chunk = 3 * 1024;
	char buf[4 * 1024 + 1];
	const unsigned char *p = data;
	json_sep(w);
	fputc('"', w->f);
	for (size_t i = 0; i < n; i += chunk) {
		size_t k = n - i < chunk ? n - i : chunk;
		json_b64_encode(p + i, k, buf);
		fputs(buf, w->f);
	}
	fputc('"', w->f);
}

/* End the document with a newline. */
static inline void json_finish(json_w *w)
{
	assert(w->depth == 0);
	fputc('\n', w->f);
}

#endif /* CKR_TOOLS_JSON_H */
