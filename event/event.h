/*
 * event.h — checkpoint events and their one wire encoding.
 *
 * An event is what a producer pushes as one ring record: begin, message,
 * phase, complete or fail, each carrying the run id, the run's incarnation
 * (fencing) and the run's own sequence number. The same bytes are the value
 * of an event row in the store (persist/FORMAT.md), so this file is also
 * part of the on-disk format.
 *
 * Wire format (version 2), little-endian, no padding:
 *     0  u8  version (CKR_EVENT_VERSION = 2)
 *     1  u8  type (ckr_event_type)
 *     2  u8  id_len (1..64)
 *     3  u8  flags (0)
 *     4  u32 incarnation (>= 1)
 *     8  u64 seq
 *    16  u64 writer (the run's writer id; ring/PROTOCOL.md "Identities")
 *    24  u32 slot (the writer's slot in its lane, for rejection reports)
 *    28  u32 0
 *    32  id[id_len]
 *        then by type:
 *    BEGIN    u8 kind, u8 label_len, u16 0, u32 owner_pid, u64 owner_start,
 *             u32 meta_len, label[label_len], meta[meta_len]
 *    MESSAGE  u32 len, data[len]
 *    PHASE    u32 index, u16 name_len, u16 0, u32 len, name[name_len], data[len]
 *    COMPLETE (nothing)
 *    FAIL     u32 len, error[len]
 * The encoding must fill the record exactly: trailing bytes are an error.
 * Version 1 (the first round; rows of a migrated store) is the same without
 * bytes 16..31: its 16-byte header is followed by the id. It decodes with
 * writer 0 and slot 0.
 *
 * Concurrency: all functions are pure; any thread may call them.
 */
#ifndef CKR_EVENT_H
#define CKR_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shm/shared.h"
#include "ckring.h"

#define CKR_EVENT_VERSION 2
#define CKR_EVENT_HEADER 32 /* bytes before the id */
#define CKR_EVENT_VERSION_1 1
#define CKR_EVENT_HEADER_1 16

typedef enum ckr_event_type {
	CKR_EV_BEGIN = 1,
	CKR_EV_MESSAGE = 2,
	CKR_EV_PHASE = 3,
	CKR_EV_COMPLETE = 4,
	CKR_EV_FAIL = 5,
} ckr_event_type;

/* A decoded event. Pointers refer into the buffer it was decoded from. */
typedef struct ckr_event {
	ckr_event_type type;
	uint8_t version;       /* decoded events: 1 or 2; the encoder writes 2 */
	uint32_t incarnation;
	uint64_t seq;
	uint64_t writer;       /* 0 only in version-1 rows */
	uint32_t slot;
	const uint8_t *id;
	size_t id_len;
	union {
		struct {
			ckr_kind kind;
			uint32_t owner_pid;
			uint64_t owner_start;
			const char *label;
			size_t label_len;
			const uint8_t *meta;
			size_t meta_len;
		} begin;
		struct {
			const uint8_t *data;
			size_t len;
		} message;
		struct {
			uint32_t index;
			const char *name;
			size_t name_len;
			const uint8_t *data;
			size_t len;
		} phase;
		struct {
			const char *error;
			size_t len;
		} fail;
	} u;
} ckr_event;

/*
 * The fast path for the hot event, a transcript message: everything before
 * its payload but the sequence number is the same for every message of one
 * writer, so it is prepared once (ckr_event_prefix_init) and each message
 * is a copy of that prefix, the sequence, the length and the data. The bytes
 * are exactly ckr_event_encode's (tests/test_event.c checks it).
 */
typedef struct ckr_event_prefix {
	uint8_t bytes[CKR_EVENT_HEADER + CKR_RUN_ID_MAX];
	uint32_t len; /* CKR_EVENT_HEADER + id_len */
} ckr_event_prefix;

/* Prepare the prefix of the messages of (id, incarnation, writer, slot).
 * id_len must be 1..CKR_RUN_ID_MAX. This function can't fail. */
void ckr_event_prefix_init(ckr_event_prefix *p, uint32_t incarnation, uint64_t writer,
			   uint32_t slot, const uint8_t *id, size_t id_len);

/* The encoded size of a message of len bytes (len < 4 GiB). */
static inline size_t ckr_event_message_size(const ckr_event_prefix *p, size_t len)
{
	return (size_t)p->len + 4 + len;
}

/* Encode message seq of len bytes into buf, which holds
 * ckr_event_message_size(p, len) bytes. This function can't fail. */
static inline void ckr_event_put_message(const ckr_event_prefix *p, uint64_t seq,
					 const void *data, size_t len, uint8_t *buf)
{
	uint8_t seq_le[8], len_le[4];
	for (int i = 0; i < 8; i++) /* little-endian whatever the host */
		seq_le[i] = (uint8_t)(seq >> (8 * i));
	for (int i = 0; i < 4; i++)
		len_le[i] = (uint8_t)(len >> (8 * i));
	memcpy(buf, p->bytes, p->len);
	memcpy(buf + 8, seq_le, 8);
	memcpy(buf + p->len, len_le, 4);
	if (len)
		memcpy(buf + p->len + 4, data, len);
}

/* The encoded size of ev, or 0 when ev is not encodable (bad id length,
 * label over 255 bytes, name over 65535 bytes, a length over 4 GiB). */
size_t ckr_event_size(const ckr_event *ev);

/*
 * Encode ev into buf (cap bytes).
 * @return the bytes written; 0 if ev is not encodable or cap is too small
 *         (nothing is written then). This function has no other failure.
 */
size_t ckr_event_encode(const ckr_event *ev, void *buf, size_t cap);

/*
 * Decode exactly len bytes. Safe on any input: it reads nothing outside
 * [buf, buf+len) and accepts only a well-formed event.
 * @return 0; CKR_ECORRUPT malformed (bad version, type, lengths, trailing
 *         bytes, id length 0 or > 64, incarnation 0, unknown kind).
 */
CKR_SHARED int ckr_event_decode(const void *buf, size_t len, ckr_event *ev);

/* The name of an event type ("begin", ...), "unknown" for others. */
const char *ckr_event_type_name(int type);

#endif /* CKR_EVENT_H */
