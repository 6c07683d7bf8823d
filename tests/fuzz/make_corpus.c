/*
 * make_corpus.c — writes the seed corpus of the fuzz targets: a few small
 * VALID inputs in the layouts of fuzz_common.h, made with the library's own
 * encoder, producer and segment code, so the fuzzers start from inputs that
 * reach deep into the decoders.
 *
 *   corpus/fuzz_event/    one encoding of each event type (TYPE-v1, the
 *                    version 1 encodings a schema-1 store holds, were made
 *                    by the first round's encoder and are kept by hand)
 *   corpus/fuzz_record/  lanes holding records: fresh, wrapped with a pad, an
 *                    open (BUSY) claim, a checksum flipped
 *   corpus/fuzz_segment/ a real segment (ckr_segment_create + a client pushing)
 *
 * usage: make_corpus OUTDIR   (the committed tests/fuzz/corpus was made by
 * it after the lane format last changed; regenerate it when it changes:
 *   cc -std=c11 -D_GNU_SOURCE -Iinclude -I. tests/fuzz/make_corpus.c \
 *      build/libckring.a -llmdb -lpthread -lrt -o /tmp/make_corpus &&
 *   /tmp/make_corpus tests/fuzz/corpus )
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckring.h"
#include "event/event.h"
#include "shm/segment.h"
#include "tests/fuzz/fuzz_common.h"

static const char *outdir;

static void put_file(const char *sub, const char *name, const void *p, size_t n)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", outdir, sub);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n) {
		fprintf(stderr, "make_corpus: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fclose(f);
}

/* ---- events ---- */

static size_t make_event(int type, uint8_t *buf, size_t cap)
{
	ckr_event ev = { .type = (ckr_event_type)type, .incarnation = 1, .seq = 7,
			 .id = (const uint8_t *)"run-42", .id_len = 6 };
	switch (type) {
	case CKR_EV_BEGIN:
		ev.seq = 0;
		ev.u.begin.kind = CKR_KIND_SINGLE_LOOP;
		ev.u.begin.owner_pid = 1234;
		ev.u.begin.owner_start = 99999;
		ev.u.begin.label = "agent v1.3";
		ev.u.begin.label_len = 10;
		ev.u.begin.meta = (const uint8_t *)"{\"k\":1}";
		ev.u.begin.meta_len = 7;
		break;
	case CKR_EV_MESSAGE:
		ev.u.message.data = (const uint8_t *)"hello, transcript";
		ev.u.message.len = 17;
		break;
	case CKR_EV_PHASE:
		ev.u.phase.index = 2;
		ev.u.phase.name = "plan";
		ev.u.phase.name_len = 4;
		ev.u.phase.data = (const uint8_t *)"phase output";
		ev.u.phase.len = 12;
		break;
	case CKR_EV_FAIL:
		ev.u.fail.error = "tool loop";
		ev.u.fail.len = 9;
		break;
	default:
		break;
	}
	return ckr_event_encode(&ev, buf, cap);
}

static void events(void)
{
	uint8_t buf[512];
	for (int t = CKR_EV_BEGIN; t <= CKR_EV_FAIL; t++) {
		size_t n = make_event(t, buf, sizeof buf);
		char name[32];
		snprintf(name, sizeof name, "%s", ckr_event_type_name(t));
		if (n == 0) {
			fprintf(stderr, "make_corpus: cannot encode %s\n", name);
			exit(1);
		}
		put_file("fuzz_event", name, buf, n);
	}
}

/* ---- lanes ---- */

static void put_lane(const char *name, const fuzz_lane *fl, uint8_t flags)
{
	uint64_t cap = fl->lane.capacity;
	uint8_t *b = calloc(1, FUZZ_REC_HDR + cap);
	uint64_t head = atomic_load(&fl->ctl->head), tail = atomic_load(&fl->ctl->tail);
	b[0] = (uint8_t)(flags | 16); /* raw tail */
	fuzz_put_le(b + 1, head, 8);
	fuzz_put_le(b + 9, tail, 8);
	memcpy(b + FUZZ_REC_HDR, fl->data, cap);
	put_file("fuzz_record", name, b, FUZZ_REC_HDR + cap);
	free(b);
}

static void push_events(fuzz_lane *fl, int n)
{
	uint8_t buf[512];
	for (int i = 0; i < n; i++) {
		size_t len = make_event(1 + i % 5, buf, sizeof buf);
		uint64_t end;
		if (ckr_lane_push(&fl->lane, buf, (uint32_t)len, &end) != 0) {
			/* full: the "consumer" releases everything */
			atomic_store(&fl->ctl->head, atomic_load(&fl->ctl->tail));
			if (ckr_lane_push(&fl->lane, buf, (uint32_t)len, &end) != 0)
				exit(1);
		}
	}
}

static void records(void)
{
	fuzz_lane fl;
	if (fuzz_lane_new(&fl, 4096))
		exit(1);
	push_events(&fl, 5);
	put_lane("fresh", &fl, 0);
	/* wrapped: many laps, a pad at the lane end; head at a record start */
	push_events(&fl, 97);
	uint64_t tail = atomic_load(&fl.ctl->tail);
	atomic_store(&fl.ctl->head, tail);
	push_events(&fl, 9);
	put_lane("wrapped", &fl, 0);
	/* an open claim (BUSY, never committed) followed by nothing */
	ckr_reservation res;
	if (ckr_lane_reserve(&fl.lane, 40, &res) == 0)
		memset(res.payload, 0xab, 40);
	put_lane("busy-claim-gone", &fl, 3);
	fuzz_lane_free(&fl);
	/* a checksum flipped */
	if (fuzz_lane_new(&fl, 4096))
		exit(1);
	push_events(&fl, 3);
	fl.data[8] ^= 0x5a;
	put_lane("bad-crc", &fl, 1);
	fuzz_lane_free(&fl);
}

/* ---- a segment ---- */

static void segment(void)
{
	char name[64], path[128];
	snprintf(name, sizeof name, "ckr-fuzz-corpus-%d", (int)getpid());
	ckr_segment_opts o = { .lanes = 2, .writers_per_lane = 2 };
	ckr_seg_geometry g;
	if (ckr_segment_geometry(&o, &g) != 0)
		exit(1);
	o.size = g.data_offset + 2 * CKR_LANE_MIN_CAPACITY;
	int rc = ckr_segment_create(name, &o);
	if (rc != 0) {
		fprintf(stderr, "make_corpus: segment create: %s\n", ckr_strerror(rc));
		exit(1);
	}
	ckr_client *c;
	ckr_run *r;
	ckr_run_spec s = { .id = "seg-run", .id_len = 7, .kind = CKR_KIND_SINGLE_LOOP,
			   .label = "corpus" };
	if ((rc = ckr_client_attach(name, NULL, &c)) != 0 ||
	    (rc = ckr_run_begin(c, &s, &r, NULL)) != 0) {
		fprintf(stderr, "make_corpus: attach/begin: %s\n", ckr_strerror(rc));
		exit(1);
	}
	for (int i = 0; i < 6; i++)
		ckr_run_message(r, "a corpus message", 16, NULL);
	ckr_run_close(r);
	/* keep the client attached: its lane shows a live owner */
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	FILE *f = fopen(path, "rb");
	struct stat st;
	if (!f || stat(path, &st) != 0)
		exit(1);
	size_t size = (size_t)st.st_size;
	uint8_t *obj = malloc(size);
	if (fread(obj, 1, size, f) != size)
		exit(1);
	fclose(f);
	ckr_client_detach(c);
	ckr_segment_unlink(name);
	uint8_t *b = calloc(1, FUZZ_SEG_HDR + 4096 + size + 64 * 6);
	size_t n = 0;
	fuzz_put_le(b, size, 4);
	memcpy(b + 4, obj, 256);
	size_t ctl = 2 * 256;
	fuzz_put_le(b + 260, ctl, 2);
	memcpy(b + FUZZ_SEG_HDR, obj + CKR_SEG_CTL_OFFSET, ctl);
	n = FUZZ_SEG_HDR + ctl;
	/* patches: every non-zero 512-byte chunk of the lane data */
	for (size_t off = CKR_SEG_CTL_OFFSET + ctl; off < size; off += 512) {
		size_t k = 0;
		while (k < 512 && obj[off + k] == 0)
			k++;
		if (k == 512)
			continue;
		fuzz_put_le(b + n, off, 4);
		fuzz_put_le(b + n + 4, 512, 2);
		memcpy(b + n + 6, obj + off, 512);
		n += 6 + 512;
	}
	put_file("fuzz_segment", "two-lanes", b, n);
	/* the same, truncated below its header's size */
	fuzz_put_le(b, size - 4096, 4);
	put_file("fuzz_segment", "truncated", b, n);
	free(b);
	free(obj);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fputs("usage: make_corpus OUTDIR\n", stderr);
		return 2;
	}
	outdir = argv[1];
	mkdir(outdir, 0755);
	events();
	records();
	segment();
	return 0;
}
