/*
 * event.c — the checkpoint event wire codec (see event.h for the format).
 *
 * ckr_event_size() and ckr_event_encode() accept only what the decoder
 * accepts, so every encoding decodes again; ckr_event_decode() treats its
 * input as hostile: every length is checked against the bytes that remain
 * before anything is read, and it writes *ev only on success.
 *
 * Besides the checks event.h lists, the decoder also rejects non-zero
 * `flags` and non-zero reserved fields (the "u16 0" of BEGIN and PHASE, the
 * "u32 0" of the version 2 header), so that one event has exactly one
 * encoding. The encoder writes version 2 only; the decoder also reads
 * version 1 (rows a schema-1 store kept: writer 0, slot 0).
 */
#include "event/event.h"

#include <stdbool.h>
#include <string.h>

/* Fixed bytes after the id, per type. */
#define BEGIN_FIXED 20  /* kind, label_len, u16 0, owner_pid, owner_start, meta_len */
#define MESSAGE_FIXED 4 /* len */
#define PHASE_FIXED 12  /* index, name_len, u16 0, len */
#define FAIL_FIXED 4    /* len */

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static bool valid_kind(ckr_kind kind)
{
	return kind == CKR_KIND_SINGLE_LOOP || kind == CKR_KIND_MULTI_PHASE;
}

/* A (pointer, length) pair that can be encoded: length fits its field and a
 * non-empty range has a pointer. */
static bool span_ok(const void *p, size_t len, size_t max)
{
	return len <= max && (len == 0 || p != NULL);
}

/* *acc += n, false on overflow (only possible where size_t is 32 bits). */
static bool add_size(size_t *acc, size_t n)
{
	if (n > SIZE_MAX - *acc)
		return false;
	*acc += n;
	return true;
}

/* Bytes after the id for ev's type; false when ev is not encodable. */
static bool body_size(const ckr_event *ev, size_t *out)
{
	size_t n = 0;

	switch (ev->type) {
	case CKR_EV_BEGIN:
		if (!valid_kind(ev->u.begin.kind) ||
		    !span_ok(ev->u.begin.label, ev->u.begin.label_len, CKR_LABEL_MAX) ||
		    !span_ok(ev->u.begin.meta, ev->u.begin.meta_len, UINT32_MAX))
			return false;
		n = BEGIN_FIXED + ev->u.begin.label_len;
		if (!add_size(&n, ev->u.begin.meta_len))
			return false;
		break;
	case CKR_EV_MESSAGE:
		if (!span_ok(ev->u.message.data, ev->u.message.len, UINT32_MAX))
			return false;
		n = MESSAGE_FIXED;
		if (!add_size(&n, ev->u.message.len))
			return false;
		break;
	case CKR_EV_PHASE:
		if (!span_ok(ev->u.phase.name, ev->u.phase.name_len, UINT16_MAX) ||
		    !span_ok(ev->u.phase.data, ev->u.phase.len, UINT32_MAX))
			return false;
		n = PHASE_FIXED + ev->u.phase.name_len;
		if (!add_size(&n, ev->u.phase.len))
			return false;
		break;
	case CKR_EV_COMPLETE:
		break;
	case CKR_EV_FAIL:
		if (!span_ok(ev->u.fail.error, ev->u.fail.len, UINT32_MAX))
			return false;
		n = FAIL_FIXED;
		if (!add_size(&n, ev->u.fail.len))
			return false;
		break;
	default:
		return false;
	}
	*out = n;
	return true;
}

size_t ckr_event_size(const ckr_event *ev)
{
	size_t body, total = CKR_EVENT_HEADER;


	if (!ev || ev->id_len == 0 || ev->id_len > CKR_RUN_ID_MAX || !ev->id ||
	    ev->incarnation == 0)
		return 0;
	if (!body_size(ev, &body))
		return 0;
	total += ev->id_len;
	if (!add_size(&total, body))
		return 0;
	return total;
}

/* Append n bytes at *p (n may be 0 with src NULL). */
static void emit(uint8_t **p, const void *src, size_t n)
{
	if (n)
		memcpy(*p, src, n);
	*p += n;
}

static void encode_body(const ckr_event *ev, uint8_t *p)
{
	switch (ev->type) {
	case CKR_EV_BEGIN:
		p[0] = (uint8_t)ev->u.begin.kind;
		p[1] = (uint8_t)ev->u.begin.label_len;
		put_u16(p + 2, 0);
		put_u32(p + 4, ev->u.begin.owner_pid);
		put_u64(p + 8, ev->u.begin.owner_start);
		put_u32(p + 16, (uint32_t)ev->u.begin.meta_len);
		p += BEGIN_FIXED;
		emit(&p, ev->u.begin.label, ev->u.begin.label_len);
		emit(&p, ev->u.begin.meta, ev->u.begin.meta_len);
		break;
	case CKR_EV_MESSAGE:
		put_u32(p, (uint32_t)ev->u.message.len);
		p += MESSAGE_FIXED;
		emit(&p, ev->u.message.data, ev->u.message.len);
		break;
	case CKR_EV_PHASE:
		put_u32(p, ev->u.phase.index);
		put_u16(p + 4, (uint16_t)ev->u.phase.name_len);
		put_u16(p + 6, 0);
		put_u32(p + 8, (uint32_t)ev->u.phase.len);
		p += PHASE_FIXED;
		emit(&p, ev->u.phase.name, ev->u.phase.name_len);
		emit(&p, ev->u.phase.data, ev->u.phase.len);
		break;
	case CKR_EV_COMPLETE:
		break;
	case CKR_EV_FAIL:
		put_u32(p, (uint32_t)ev->u.fail.len);
		p += FAIL_FIXED;
		emit(&p, ev->u.fail.error, ev->u.fail.len);
		break;
	}
}

size_t ckr_event_encode(const ckr_event *ev, void *buf, size_t cap)
{
	size_t size = ckr_event_size(ev);
	uint8_t *p = buf;

	if (size == 0 || !buf || cap < size)
		return 0;
	p[0] = CKR_EVENT_VERSION;
	p[1] = (uint8_t)ev->type;
	p[2] = (uint8_t)ev->id_len;
	p[3] = 0;
	put_u32(p + 4, ev->incarnation);
	put_u64(p + 8, ev->seq);
	put_u64(p + 16, ev->writer);
	put_u32(p + 24, ev->slot);
	put_u32(p + 28, 0);
	memcpy(p + CKR_EVENT_HEADER, ev->id, ev->id_len);
	encode_body(ev, p + CKR_EVENT_HEADER + ev->id_len);
	return size;
}

void ckr_event_prefix_init(ckr_event_prefix *p, uint32_t incarnation, uint64_t writer,
			   uint32_t slot, const uint8_t *id, size_t id_len)
{
	uint8_t *b = p->bytes;
	memset(p, 0, sizeof *p);
	b[0] = CKR_EVENT_VERSION;
	b[1] = CKR_EV_MESSAGE;
	b[2] = (uint8_t)id_len;
	put_u32(b + 4, incarnation);
	put_u64(b + 16, writer);
	put_u32(b + 24, slot);
	memcpy(b + CKR_EVENT_HEADER, id, id_len);
	p->len = (uint32_t)(CKR_EVENT_HEADER + id_len);
}

/* A bounded reader over the bytes not yet decoded. */
typedef struct reader {
	const uint8_t *p;
	size_t left;
} reader;

/* Take n bytes: *out points at them. False (nothing taken) if fewer remain. */
static bool take(reader *r, size_t n, const uint8_t **out)
{
	if (n > r->left)
		return false;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

static bool decode_begin(reader *r, ckr_event *ev)
{
	const uint8_t *f, *label, *meta;

	if (!take(r, BEGIN_FIXED, &f) || get_u16(f + 2) != 0 ||
	    !valid_kind((ckr_kind)f[0]))
		return false;
	if (!take(r, f[1], &label) || !take(r, get_u32(f + 16), &meta))
		return false;
	ev->u.begin.kind = (ckr_kind)f[0];
	ev->u.begin.owner_pid = get_u32(f + 4);
	ev->u.begin.owner_start = get_u64(f + 8);
	ev->u.begin.label = (const char *)label;
	ev->u.begin.label_len = f[1];
	ev->u.begin.meta = meta;
	ev->u.begin.meta_len = get_u32(f + 16);
	return true;
}

static bool decode_phase(reader *r, ckr_event *ev)
{
	const uint8_t *f, *name, *data;

	if (!take(r, PHASE_FIXED, &f) || get_u16(f + 6) != 0)
		return false;
	if (!take(r, get_u16(f + 4), &name) || !take(r, get_u32(f + 8), &data))
		return false;
	ev->u.phase.index = get_u32(f);
	ev->u.phase.name = (const char *)name;
	ev->u.phase.name_len = get_u16(f + 4);
	ev->u.phase.data = data;
	ev->u.phase.len = get_u32(f + 8);
	return true;
}

/* MESSAGE and FAIL bodies: u32 len, bytes[len]. */
static bool decode_blob(reader *r, const uint8_t **data, size_t *len)
{
	const uint8_t *f;

	if (!take(r, 4, &f) || !take(r, get_u32(f), data))
		return false;
	*len = get_u32(f);
	return true;
}

static bool decode_body(reader *r, ckr_event *ev)
{
	const uint8_t *error;

	switch (ev->type) {
	case CKR_EV_BEGIN:
		return decode_begin(r, ev);
	case CKR_EV_MESSAGE:
		return decode_blob(r, &ev->u.message.data, &ev->u.message.len);
	case CKR_EV_PHASE:
		return decode_phase(r, ev);
	case CKR_EV_COMPLETE:
		return true;
	case CKR_EV_FAIL:
		if (!decode_blob(r, &error, &ev->u.fail.len))
			return false;
		ev->u.fail.error = (const char *)error;
		return true;
	}
	return false;
}

int ckr_event_decode(const void *buf, size_t len, ckr_event *ev)
{
	reader r = { buf, len };
	const uint8_t *h, *id;
	ckr_event out;

	if (!buf || !ev || len < 1)
		return CKR_ECORRUPT;
	size_t header = ((const uint8_t *)buf)[0] == CKR_EVENT_VERSION_1
				? CKR_EVENT_HEADER_1
				: CKR_EVENT_HEADER;
	if (!take(&r, header, &h))
		return CKR_ECORRUPT;
	if ((h[0] != CKR_EVENT_VERSION && h[0] != CKR_EVENT_VERSION_1) || h[3] != 0 ||
	    h[1] < CKR_EV_BEGIN || h[1] > CKR_EV_FAIL || h[2] == 0 ||
	    h[2] > CKR_RUN_ID_MAX || get_u32(h + 4) == 0 ||
	    (header == CKR_EVENT_HEADER && get_u32(h + 28) != 0) ||
	    !take(&r, h[2], &id))
		return CKR_ECORRUPT;
	memset(&out, 0, sizeof out);
	out.type = (ckr_event_type)h[1];
	out.version = h[0];
	out.incarnation = get_u32(h + 4);
	out.seq = get_u64(h + 8);
	if (header == CKR_EVENT_HEADER) {
		out.writer = get_u64(h + 16);
		out.slot = get_u32(h + 24);
	}
	out.id = id;
	out.id_len = h[2];
	if (!decode_body(&r, &out) || r.left != 0)
		return CKR_ECORRUPT;
	*ev = out;
	return 0;
}

const char *ckr_event_type_name(int type)
{
	switch (type) {
	case CKR_EV_BEGIN:
		return "begin";
	case CKR_EV_MESSAGE:
		return "message";
	case CKR_EV_PHASE:
		return "phase";
	case CKR_EV_COMPLETE:
		return "complete";
	case CKR_EV_FAIL:
		return "fail";
	}
	return "unknown";
}
