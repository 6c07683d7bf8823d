/*
 * segment.c — create, attach, validate and unlink the shared-memory segment
 * (layout in segment.h). Every size read from the object is validated
 * against the object's real size before anything is mapped beyond the header.
 */
#include "shm/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ring/lane.h"
#include "shm/futex.h"
#include "shm/proc.h"

static uint64_t magic_word(void)
{
	uint64_t m;
	memcpy(&m, CKR_SEG_MAGIC, sizeof m);
	return m;
}

int ckr_segment_name_check(const char *name)
{
	if (!name || !name[0] || name[0] == '.')
		return -EINVAL;
	size_t n = strlen(name);
	if (n > CKR_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		if (!ok)
			return -EINVAL;
	}
	return 0;
}

/* "/NAME" for shm_open(). glibc's shm_open opens under /dev/shm with
 * O_NOFOLLOW | O_CLOEXEC, so a symlink planted there is never followed. */
static void shm_path(const char *name, char out[CKR_NAME_MAX + 2])
{
	snprintf(out, CKR_NAME_MAX + 2, "/%s", name);
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

static uint64_t data_offset_for(uint32_t lanes)
{
	return round_up(CKR_SEG_CTL_OFFSET + (uint64_t)lanes * CKR_LANE_CTL_SIZE, 4096);
}

int ckr_segment_geometry(const ckr_segment_opts *opts, uint32_t *lanes,
			 uint64_t *lane_capacity, uint64_t *total)
{
	uint32_t n = opts && opts->lanes ? opts->lanes : CKR_DEFAULT_LANES;
	if (n > CKR_MAX_LANES)
		return -EINVAL;
	uint64_t cap = CKR_DEFAULT_LANE_CAPACITY;
	if (opts && opts->size) {
		uint64_t off = data_offset_for(n);
		if (opts->size < off + (uint64_t)n * CKR_LANE_MIN_CAPACITY)
			return -EINVAL;
		uint64_t per = (opts->size - off) / n;
		cap = CKR_LANE_MIN_CAPACITY;
		while (cap * 2 <= per && cap * 2 <= CKR_LANE_MAX_CAPACITY)
			cap *= 2;
	}
	*lanes = n;
	*lane_capacity = cap;
	*total = data_offset_for(n) + (uint64_t)n * cap;
	return 0;
}

static unsigned log2u64(uint64_t v)
{
	unsigned s = 0;
	while ((UINT64_C(1) << s) < v)
		s++;
	return s;
}

static uint32_t max_record_for(uint64_t cap)
{
	uint64_t m = cap / 4;
	return m > CKR_MAX_RECORD_CAP ? CKR_MAX_RECORD_CAP : (uint32_t)m;
}

/* Fill the header of a fresh, zeroed mapping; publish magic last. */
static int init_header(uint8_t *base, uint32_t lanes, uint64_t cap,
		       uint64_t total)
{
	ckr_seg_header *h = (ckr_seg_header *)(void *)base;
	if (getrandom(h->epoch, sizeof h->epoch, 0) != (ssize_t)sizeof h->epoch)
		return -errno;
	h->layout_version = CKR_SEG_LAYOUT_VERSION;
	h->header_size = CKR_SEG_CTL_OFFSET;
	h->segment_size = total;
	h->lane_count = lanes;
	h->lane_shift = log2u64(cap);
	h->lane_capacity = cap;
	h->data_offset = data_offset_for(lanes);
	h->max_record = max_record_for(cap);
	h->created_ns = ckr_now_ns(CLOCK_REALTIME);
	uint64_t tok = 0;
	(void)ckr_proc_self_token(&tok); /* informational only */
	h->creator_token = tok;
	/* Release: pairs with the acquire load of magic in read_header(); an
	 * attacher that sees magic sees every field written above. */
	atomic_store_explicit(&h->magic, magic_word(), memory_order_release);
	return 0;
}

static int size_object(int fd, const ckr_segment_opts *opts, uint64_t total)
{
	if (opts && opts->mode && fchmod(fd, opts->mode & 07777) != 0)
		return -errno;
	if (opts && opts->group != (gid_t)-1 && opts->group != 0 &&
	    fchown(fd, (uid_t)-1, opts->group) != 0)
		return -errno;
	if (ftruncate(fd, (off_t)total) != 0)
		return -errno;
	/* Reserve the memory now, so a full /dev/shm fails here and not with
	 * SIGBUS in a producer later. */
	int rc = posix_fallocate(fd, 0, (off_t)total);
	return rc ? -rc : 0;
}

int ckr_segment_create(const char *name, const ckr_segment_opts *opts)
{
	uint32_t lanes;
	uint64_t cap, total;
	char path[CKR_NAME_MAX + 2];
	int rc = ckr_segment_name_check(name);
	if (rc == 0)
		rc = ckr_segment_geometry(opts, &lanes, &cap, &total);
	if (rc)
		return rc;
	shm_path(name, path);
	int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -errno;
	rc = size_object(fd, opts, total);
	if (rc)
		goto fail_unlink;
	void *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto fail_unlink;
	}
	rc = init_header(base, lanes, cap, total);
	munmap(base, total);
	if (rc)
		goto fail_unlink;
	close(fd);
	return 0;
fail_unlink:
	shm_unlink(path);
	close(fd);
	return rc;
}

int ckr_segment_unlink(const char *name)
{
	char path[CKR_NAME_MAX + 2];
	int rc = ckr_segment_name_check(name);
	if (rc)
		return rc;
	shm_path(name, path);
	return shm_unlink(path) == 0 ? 0 : -errno;
}

/* Check a header copy against itself and the object's size. */
static int validate_header(const ckr_seg_header *h, uint64_t magic,
			   uint64_t object_size)
{
	if (magic != magic_word())
		return CKR_ENOTSEG;
	if (h->layout_version != CKR_SEG_LAYOUT_VERSION)
		return CKR_EVERSION;
	if (h->header_size != CKR_SEG_CTL_OFFSET || h->lane_count == 0 ||
	    h->lane_count > CKR_MAX_LANES || h->lane_shift < 12 ||
	    h->lane_shift > 32 ||
	    h->lane_capacity != (UINT64_C(1) << h->lane_shift) ||
	    h->data_offset != data_offset_for(h->lane_count) ||
	    h->max_record != max_record_for(h->lane_capacity) ||
	    h->segment_size != h->data_offset + h->lane_count * h->lane_capacity)
		return CKR_ENOTSEG;
	if (object_size < h->segment_size)
		return CKR_ETRUNC;
	return 0;
}

/* An object smaller than the header page: a truncated segment if it starts
 * with our magic, otherwise not a segment at all. */
static int small_object(int fd)
{
	uint64_t magic = 0;
	if (pread(fd, &magic, sizeof magic, 0) != (ssize_t)sizeof magic)
		return CKR_ENOTSEG;
	return magic == magic_word() ? CKR_ETRUNC : CKR_ENOTSEG;
}

/* Map the first page and take a private copy of the header. */
static int read_header(int fd, uint64_t object_size, ckr_seg_header *copy)
{
	if (object_size < sizeof(uint64_t))
		return CKR_ENOTSEG;
	if (object_size < CKR_SEG_CTL_OFFSET)
		return small_object(fd);
	void *p = mmap(NULL, CKR_SEG_CTL_OFFSET, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	ckr_seg_header *h = p;
	/* Acquire: pairs with the release store of magic in init_header(). */
	uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
	memcpy(copy, h, sizeof *copy);
	munmap(p, CKR_SEG_CTL_OFFSET);
	return validate_header(copy, magic, object_size);
}

static int open_object(const char *name, bool read_only, int *fd_out,
		       uint64_t *size_out)
{
	char path[CKR_NAME_MAX + 2];
	struct stat st;
	shm_path(name, path);
	/* O_NONBLOCK: a FIFO planted under the name must not block us; it is
	 * refused below. The name is valid, so EINVAL/EISDIR (glibc reports a
	 * directory as EINVAL) and ELOOP (a symlink) mean "not a segment". */
	int fd = shm_open(path, (read_only ? O_RDONLY : O_RDWR) | O_NONBLOCK, 0);
	if (fd < 0)
		return errno == ELOOP || errno == EINVAL || errno == EISDIR ? CKR_ENOTSEG
									      : -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return CKR_ENOTSEG;
	}
	*fd_out = fd;
	*size_out = (uint64_t)st.st_size;
	return 0;
}

static void copy_geometry(ckr_segment *out, const ckr_seg_header *h)
{
	out->lane_count = h->lane_count;
	out->lane_shift = h->lane_shift;
	out->lane_capacity = h->lane_capacity;
	out->data_offset = h->data_offset;
	out->max_record = h->max_record;
	memcpy(out->epoch, h->epoch, sizeof out->epoch);
}

int ckr_segment_attach(const char *name, bool read_only, ckr_segment *out)
{
	ckr_seg_header h = { 0 };
	uint64_t size = 0;
	int fd = -1;
	int rc = ckr_segment_name_check(name);
	if (rc)
		return rc;
	rc = open_object(name, read_only, &fd, &size);
	if (rc)
		return rc;
	rc = read_header(fd, size, &h);
	if (rc)
		goto out_close;
	int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
	void *base = mmap(NULL, h.segment_size, prot, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto out_close;
	}
	memset(out, 0, sizeof *out);
	out->base = base;
	out->size = h.segment_size;
	out->read_only = read_only;
	snprintf(out->name, sizeof out->name, "%s", name);
	copy_geometry(out, &h);
out_close:
	close(fd);
	return rc;
}

void ckr_segment_detach(ckr_segment *seg)
{
	if (seg && seg->base) {
		munmap(seg->base, seg->size);
		seg->base = NULL;
	}
}
