/*
 * fuzz_segment.c — libFuzzer target: a /dev/shm object made from fuzzer
 * bytes (layout in fuzz_common.h: size, header, lane control table, patches)
 * is attached with ckr_segment_attach() read-only and read-write; when the
 * attach succeeds, every lane is walked from its (untrusted) head with
 * ckr_lane_read(), writers gone and not, as the flusher and the inspector do.
 *
 * Properties: no crash, no SIGBUS (nothing is touched beyond the object's
 * real size), an attach that succeeds describes a geometry that fits the
 * object, and the walk stays within it.
 *
 * KNOWN BUG B1 (docs/BAD_INPUT.md): an unaligned head or tail word makes
 * ckr_lane_read() load a seal straddling the lane end, past the mapping for
 * the last lane (SIGSEGV; the flusher would crash the same way). Unless
 * CKR_TEST_KNOWN_BUGS=1 the harness rounds every lane's head and tail words
 * down to multiples of 8 before attaching, so the rest can be fuzzed. The object (/dev/shm/$CKR_FUZZ_SHM,
 * default ckr-fuzz-seg-PID) is unlinked at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/segment.h"
#include "tests/fuzz/fuzz_common.h"

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_segment: property failed: %s\n", #cond); \
			abort();                                              \
		}                                                             \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

static char name[64];
static uint8_t *rbuf;
static size_t rbuf_cap;

static void unlink_object(void)
{
	if (name[0])
		shm_unlink(name);
}

static int known_bugs;

/* B1 workaround: every lane's tail (+64) and head (+128) word rounded down
 * to a multiple of 8, for the lanes the header claims (lane_count at +24),
 * as far as they fit the object. */
static void align_positions(uint8_t *obj, uint64_t size)
{
	if (size < 28)
		return;
	uint64_t lanes = fuzz_le(obj + 24, 4);
	if (lanes > CKR_MAX_LANES)
		lanes = CKR_MAX_LANES;
	for (uint64_t i = 0; i < lanes; i++) {
		uint64_t off = CKR_SEG_CTL_OFFSET + i * CKR_LANE_CTL_SIZE;
		if (off + CKR_LANE_CTL_SIZE > size)
			break;
		obj[off + 64] &= 0xf8;
		obj[off + 128] &= 0xf8;
	}
}

static void copy_cut(uint8_t *obj, uint64_t size, const uint8_t *p, size_t len,
		     uint64_t off)
{
	if (off >= size)
		return;
	if (len > size - off)
		len = (size_t)(size - off);
	memcpy(obj + off, p, len);
}

/* Build the object from the input. @return its size, or -1. */
static int64_t build(const uint8_t *in, size_t n)
{
	if (n < FUZZ_SEG_HDR)
		return -1;
	uint64_t size = fuzz_le(in, 4) % (FUZZ_SEG_MAX + 1);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		abort();
	if (size == 0) {
		close(fd);
		return 0;
	}
	uint8_t *obj = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (obj == MAP_FAILED)
		abort();
	copy_cut(obj, size, in + 4, 256, 0);
	size_t ctl = (size_t)fuzz_le(in + 260, 2);
	size_t p = FUZZ_SEG_HDR;
	if (ctl > n - p)
		ctl = n - p;
	copy_cut(obj, size, in + p, ctl, CKR_SEG_CTL_OFFSET);
	p += ctl;
	while (n - p >= 6) {
		uint64_t off = fuzz_le(in + p, 4);
		size_t len = (size_t)fuzz_le(in + p + 4, 2);
		p += 6;
		if (len > n - p)
			len = n - p;
		copy_cut(obj, size, in + p, len, off);
		p += len;
	}
	if (!known_bugs)
		align_positions(obj, size);
	munmap(obj, size);
	return (int64_t)size;
}

static void walk_lane(const ckr_segment *seg, uint32_t i, bool gone)
{
	ckr_lane l;
	ckr_lane_view(seg, i, &l);
	CHECK(l.data >= seg->base + seg->data_offset &&
	      l.data + l.capacity <= seg->base + seg->size);
	uint64_t pos = ckr_lane_head(&l);
	(void)ckr_lane_tail(&l);
	(void)ckr_lane_owner(&l);
	for (int k = 0; k < 512; k++) {
		ckr_lane_record rec;
		ckr_lane_read(&l, pos, gone, rbuf, rbuf_cap, &rec);
		if (rec.status == CKR_READ_EMPTY || rec.status == CKR_READ_WAIT)
			break;
		/* Positions are 64-bit and compared modulo 2^64, as lane.c does. */
		CHECK(rec.next - pos - 1 < 2 * l.capacity);
		if (rec.status == CKR_READ_RECORD)
			CHECK(rec.payload_len <= seg->max_record);
		pos = rec.next;
	}
}

static void try_attach(bool read_only, int64_t size)
{
	ckr_segment seg;
	int rc = ckr_segment_attach(name + 1, read_only, &seg);
	if (rc != 0) {
		CHECK(rc < 0);
		return;
	}
	CHECK((int64_t)seg.size <= size);
	CHECK(seg.lane_count >= 1 && seg.lane_count <= CKR_MAX_LANES);
	CHECK(seg.data_offset + (uint64_t)seg.lane_count * seg.lane_capacity <= seg.size);
	if (rbuf_cap < (size_t)seg.max_record + CKR_REC_HEADER) {
		free(rbuf);
		rbuf_cap = (size_t)seg.max_record + CKR_REC_HEADER;
		rbuf = malloc(rbuf_cap);
		CHECK(rbuf != NULL);
	}
	(void)atomic_load(&ckr_seg_fl(&seg)->owner);
	(void)atomic_load(&ckr_seg_ctr(&seg)->corrupt);
	for (uint32_t i = 0; i < seg.lane_count; i++) {
		walk_lane(&seg, i, false);
		walk_lane(&seg, i, true);
	}
	ckr_segment_detach(&seg);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	if (!name[0]) {
		const char *kb = getenv("CKR_TEST_KNOWN_BUGS");
		known_bugs = kb && strcmp(kb, "1") == 0;
		/* run.sh names the object (and removes it even after a crash). */
		const char *e = getenv("CKR_FUZZ_SHM");
		if (e && *e)
			snprintf(name, sizeof name, "/%s", e);
		else
			snprintf(name, sizeof name, "/ckr-fuzz-seg-%d", (int)getpid());
		atexit(unlink_object);
	}
	int64_t size = build(in, n);
	if (size < 0)
		return 0;
	try_attach(true, size);
	try_attach(false, size);
	return 0;
}
