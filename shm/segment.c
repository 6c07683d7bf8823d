/*
 * segment.c — create, attach, validate and unlink the shared-memory segment
 * (layout in segment.h). Every size read from the object is validated
 * against the object's real size before anything is mapped beyond the header.
 */
#include "shm/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm/clock.h"
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
#define CKR_SHM_DIR "/dev/shm" /* where glibc's shm_open() keeps objects */

static void shm_path(const char *name, char out[CKR_NAME_MAX + 2])
{
	snprintf(out, CKR_NAME_MAX + 2, "/%s", name);
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

/* The offsets of the writer slots and the lane data for a lane count. */
static void offsets_for(uint32_t lanes, uint32_t writers, uint64_t *w_off,
			uint64_t *d_off)
{
	*w_off = round_up(CKR_SEG_CTL_OFFSET + (uint64_t)lanes * CKR_LANE_CTL_SIZE, 4096);
	*d_off = round_up(*w_off + (uint64_t)lanes * writers * CKR_WRITER_SLOT_SIZE, 4096);
}

int ckr_segment_geometry(const ckr_segment_opts *opts, ckr_seg_geometry *g)
{
	uint32_t n = opts && opts->lanes ? opts->lanes : CKR_DEFAULT_LANES;
	uint32_t w = opts && opts->writers_per_lane ? opts->writers_per_lane
						    : CKR_DEFAULT_WRITERS;
	if (n > CKR_MAX_LANES || w > CKR_MAX_WRITERS)
		return -EINVAL;
	uint64_t w_off, d_off;
	offsets_for(n, w, &w_off, &d_off);
	uint64_t cap = CKR_DEFAULT_LANE_CAPACITY;
	if (opts && opts->size) {
		if (opts->size < d_off + (uint64_t)n * CKR_LANE_MIN_CAPACITY)
			return -EINVAL;
		uint64_t per = (opts->size - d_off) / n;
		cap = CKR_LANE_MIN_CAPACITY;
		while (cap * 2 <= per && cap * 2 <= CKR_LANE_MAX_CAPACITY)
			cap *= 2;
	}
	g->lanes = n;
	g->writers_per_lane = w;
	g->lane_capacity = cap;
	g->writers_offset = w_off;
	g->data_offset = d_off;
	g->total = d_off + (uint64_t)n * cap;
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
static int init_header(uint8_t *base, const ckr_seg_geometry *g)
{
	ckr_seg_header *h = (ckr_seg_header *)(void *)base;
	if (getrandom(h->epoch, sizeof h->epoch, 0) != (ssize_t)sizeof h->epoch)
		return -errno;
	h->layout_version = CKR_SEG_LAYOUT_VERSION;
	h->header_size = CKR_SEG_CTL_OFFSET;
	h->segment_size = g->total;
	h->lane_count = g->lanes;
	h->lane_shift = log2u64(g->lane_capacity);
	h->lane_capacity = g->lane_capacity;
	h->writers_offset = g->writers_offset;
	h->writers_per_lane = g->writers_per_lane;
	h->data_offset = g->data_offset;
	h->max_record = max_record_for(g->lane_capacity);
	h->created_ns = ckr_now_ns(CLOCK_REALTIME);
	uint64_t tok = 0;
	(void)ckr_proc_self_token(&tok); /* informational only */
	h->creator_token = tok;
	/* Release: pairs with the acquire load of magic in read_header(). The
	 * object gets its name only after this (create_named), so an attacher
	 * never sees it without magic; the pairing also covers a hostile
	 * object made by hand. */
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

/* Make the object complete under the temporary shm name tmp. */
static int build_object(const char *tmp, const ckr_segment_opts *opts,
			const ckr_seg_geometry *g)
{
	int fd = shm_open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -errno;
	int rc = size_object(fd, opts, g->total);
	if (rc == 0) {
		void *base = mmap(NULL, g->total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (base == MAP_FAILED) {
			rc = -errno;
		} else {
			rc = init_header(base, g);
			munmap(base, g->total);
		}
	}
	close(fd);
	return rc;
}

int ckr_segment_create(const char *name, const ckr_segment_opts *opts)
{
	ckr_seg_geometry g;
	char path[CKR_NAME_MAX + 2], tmp[CKR_NAME_MAX + 40];
	char from[CKR_NAME_MAX + 60], to[CKR_NAME_MAX + 20];
	uint64_t nonce;
	int rc = ckr_segment_name_check(name);
	if (rc == 0)
		rc = ckr_segment_geometry(opts, &g);
	if (rc)
		return rc;
	if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
		return -errno;
	shm_path(name, path);
	/* A leading '.' is never a valid segment name: no clash with users. */
	snprintf(tmp, sizeof tmp, "/.ckr-%016llx-%s", (unsigned long long)nonce, name);
	rc = build_object(tmp, opts, &g);
	if (rc == 0) {
		/* link() gives the complete object its name atomically, and
		 * exclusively: it never replaces nor follows what is there. */
		snprintf(from, sizeof from, "%s%s", CKR_SHM_DIR, tmp);
		snprintf(to, sizeof to, "%s%s", CKR_SHM_DIR, path);
		rc = link(from, to) == 0 ? 0 : -errno;
	}
	shm_unlink(tmp);
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
	uint64_t w_off, d_off;
	if (h->header_size != CKR_SEG_CTL_OFFSET || h->lane_count == 0 ||
	    h->lane_count > CKR_MAX_LANES || h->lane_shift < 12 ||
	    h->lane_shift > 32 || h->writers_per_lane == 0 ||
	    h->writers_per_lane > CKR_MAX_WRITERS)
		return CKR_ENOTSEG;
	offsets_for(h->lane_count, h->writers_per_lane, &w_off, &d_off);
	if (h->lane_capacity != (UINT64_C(1) << h->lane_shift) ||
	    h->writers_offset != w_off || h->data_offset != d_off ||
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

/*
 * Descriptors of read-write handles, which may hold kernel locks. An OFD
 * lock lives as long as its open file description, and a forked child
 * shares the descriptions of its parent's descriptors, so while it kept
 * them open a dead parent's lanes would look alive; the child closes its
 * copies at once (the parent's locks stay: they belong to the descriptions,
 * which the parent still holds). A mapping also holds its description, and
 * a forked child inherits the mapping: so the locks are taken through a
 * description of their own that is never mapped (lock_descriptor()), and
 * the mapping's description holds none. Process-wide by nature, like fork
 * itself; the prepare/parent handlers hold the lock across fork so the
 * child sees a consistent list, and a descriptor is opened and listed under
 * it, so no fork can copy one that is not listed yet.
 */
static pthread_mutex_t lockfd_lock = PTHREAD_MUTEX_INITIALIZER;
static int *lockfds;
static size_t n_lockfds, cap_lockfds;
static pthread_once_t lockfd_once = PTHREAD_ONCE_INIT;

static void lockfd_prepare(void)
{
	pthread_mutex_lock(&lockfd_lock);
}

static void lockfd_parent(void)
{
	pthread_mutex_unlock(&lockfd_lock);
}

/* The descriptors holding this image's presence locks, one per object
 * (ckr_seg_hold_image); under lockfd_lock, closed in a forked child too. */
typedef struct image_fd {
	dev_t dev;
	ino_t ino;
	int fd;
} image_fd;
static image_fd *imagefds;
static size_t n_imagefds, cap_imagefds;

static void lockfd_child(void)
{
	for (size_t i = 0; i < n_lockfds; i++)
		close(lockfds[i]);
	n_lockfds = 0;
	for (size_t i = 0; i < n_imagefds; i++)
		close(imagefds[i].fd);
	n_imagefds = 0;
	pthread_mutex_unlock(&lockfd_lock);
}

static void lockfd_init(void)
{
	pthread_atfork(lockfd_prepare, lockfd_parent, lockfd_child);
}

/* A new open file description of the object open as fd (same inode, read
 * and write): through /proc/self/fd, or by name when /proc is missing. */
static int reopen_object(int fd, const char *name)
{
	char path[CKR_NAME_MAX + 2];
	struct stat a, b;
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int lfd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (lfd < 0 && errno != ENOENT)
		return -errno; /* -EMFILE: no descriptor left */
	if (lfd < 0) {
		shm_path(name, path);
		lfd = shm_open(path, O_RDWR | O_NONBLOCK, 0);
		if (lfd < 0)
			return -errno;
	}
	if (fstat(fd, &a) != 0 || fstat(lfd, &b) != 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev) {
		close(lfd);
		return -ESTALE; /* the name now leads to another object */
	}
	return lfd;
}

/* The descriptor the handle's locks are taken through (see above): a new
 * description of fd's object, listed for the fork handler. @return it, or
 * -errno (-EMFILE, -ENOMEM). */
static int lock_descriptor(int fd, const char *name)
{
	int rc = 0;
	pthread_once(&lockfd_once, lockfd_init);
	pthread_mutex_lock(&lockfd_lock);
	if (n_lockfds == cap_lockfds) {
		size_t cap = cap_lockfds ? cap_lockfds * 2 : 16;
		int *p = realloc(lockfds, cap * sizeof *p);
		if (p) {
			lockfds = p;
			cap_lockfds = cap;
		} else {
			rc = -ENOMEM;
		}
	}
	if (rc == 0)
		rc = reopen_object(fd, name);
	if (rc >= 0)
		lockfds[n_lockfds++] = rc;
	pthread_mutex_unlock(&lockfd_lock);
	return rc;
}

static int lock_op(int fd, int cmd, short type, uint64_t byte, struct flock *fl);

static bool image_held(dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < n_imagefds; i++)
		if (imagefds[i].dev == dev && imagefds[i].ino == ino)
			return true;
	return false;
}

/* Under lockfd_lock: a new description of seg's object, its shared lock on
 * byte, listed. */
static int image_take(const ckr_segment *seg, const struct stat *st, uint64_t byte)
{
	if (n_imagefds == cap_imagefds) {
		size_t cap = cap_imagefds ? cap_imagefds * 2 : 4;
		image_fd *p = realloc(imagefds, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		imagefds = p;
		cap_imagefds = cap;
	}
	int fd = reopen_object(seg->fd, seg->name);
	if (fd < 0)
		return fd;
	struct flock fl;
	int rc = lock_op(fd, F_OFD_SETLK, F_RDLCK, byte, &fl);
	if (rc) {
		close(fd);
		return rc;
	}
	imagefds[n_imagefds++] = (image_fd){ st->st_dev, st->st_ino, fd };
	return 0;
}

int ckr_seg_hold_image(const ckr_segment *seg, uint64_t byte)
{
	struct stat st;
	if (seg->read_only)
		return -EBADF;
	if (fstat(seg->fd, &st) != 0)
		return -errno;
	pthread_once(&lockfd_once, lockfd_init);
	pthread_mutex_lock(&lockfd_lock);
	int rc = image_held(st.st_dev, st.st_ino) ? 0 : image_take(seg, &st, byte);
	pthread_mutex_unlock(&lockfd_lock);
	return rc;
}

/* Under lockfd_lock: is another listed handle open on this object? */
static bool object_listed(dev_t dev, ino_t ino)
{
	struct stat st;
	for (size_t i = 0; i < n_lockfds; i++)
		if (fstat(lockfds[i], &st) == 0 && st.st_dev == dev && st.st_ino == ino)
			return true;
	return false;
}

/* Under lockfd_lock: the last handle of an unlinked object is gone; its
 * presence lock goes too, so the object's memory is freed (no one can
 * attach it by name again, and this image holds nothing in it). */
static void image_drop_unlinked(const struct stat *st)
{
	if (st->st_nlink != 0 || object_listed(st->st_dev, st->st_ino))
		return;
	for (size_t i = 0; i < n_imagefds; i++) {
		if (imagefds[i].dev == st->st_dev && imagefds[i].ino == st->st_ino) {
			close(imagefds[i].fd);
			imagefds[i] = imagefds[--n_imagefds];
			return;
		}
	}
}

static void lockfd_remove(int fd)
{
	struct stat st;
	bool have = fstat(fd, &st) == 0;
	pthread_mutex_lock(&lockfd_lock);
	for (size_t i = 0; i < n_lockfds; i++) {
		if (lockfds[i] == fd) {
			lockfds[i] = lockfds[--n_lockfds];
			break;
		}
	}
	if (have)
		image_drop_unlinked(&st);
	pthread_mutex_unlock(&lockfd_lock);
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
	out->writers_offset = h->writers_offset;
	out->writers_per_lane = h->writers_per_lane;
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
	if (!read_only) {
		/* The mapping keeps fd's description; locks go through another. */
		int lfd = lock_descriptor(fd, name);
		if (lfd < 0) {
			rc = lfd;
			munmap(base, h.segment_size);
			goto out_close;
		}
		close(fd);
		fd = lfd;
	}
	memset(out, 0, sizeof *out);
	out->base = base;
	out->size = h.segment_size;
	out->fd = fd;
	out->attach_pid = getpid();
	out->read_only = read_only;
	snprintf(out->name, sizeof out->name, "%s", name);
	copy_geometry(out, &h);
	return 0;
out_close:
	close(fd);
	return rc;
}

void ckr_segment_detach(ckr_segment *seg)
{
	if (seg && seg->base) {
		munmap(seg->base, seg->size);
		seg->base = NULL;
		/* In a forked child a read-write handle's descriptor was
		 * closed at fork (its number may belong to something else
		 * now): leave it. */
		if (seg->read_only) {
			close(seg->fd);
		} else if (seg->attach_pid == getpid()) {
			lockfd_remove(seg->fd);
			close(seg->fd);
		}
		seg->fd = -1;
	}
}

static int lock_op(int fd, int cmd, short type, uint64_t byte, struct flock *fl)
{
	memset(fl, 0, sizeof *fl);
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = (off_t)byte;
	fl->l_len = 1;
	return fcntl(fd, cmd, fl) == 0 ? 0 : -errno;
}

int ckr_seg_lock(const ckr_segment *seg, uint64_t byte)
{
	struct flock fl;
	int rc = lock_op(seg->fd, F_OFD_SETLK, F_WRLCK, byte, &fl);
	return rc == -EACCES ? -EAGAIN : rc; /* POSIX allows either for "held" */
}

void ckr_seg_unlock(const ckr_segment *seg, uint64_t byte)
{
	struct flock fl;
	(void)lock_op(seg->fd, F_OFD_SETLK, F_UNLCK, byte, &fl);
}

int ckr_seg_lock_held(const ckr_segment *seg, uint64_t byte)
{
	struct flock fl;
	int rc = lock_op(seg->fd, F_OFD_GETLK, F_WRLCK, byte, &fl);
	if (rc)
		return rc;
	return fl.l_type != F_UNLCK;
}

bool ckr_seg_flusher_alive(const ckr_segment *seg)
{
	return ckr_seg_lock_held(seg, CKR_LOCK_FLUSHER) != 0;
}
