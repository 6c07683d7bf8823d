/*
 * test_segment.c — create / attach / validate / unlink of the shared-memory
 * segment (shm/segment.c), one behaviour per test. Hostile objects are built
 * directly in /dev/shm (garbage, wrong version, hostile geometry, symlinks,
 * FIFOs) and every object a test makes is removed by the teardown, whether
 * the test passed or not.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm/clock.h"
#include "shm/futex.h"
#include "shm/proc.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"

#define NNAMES 3

/* Every test gets NNAMES unique names; the teardown removes whatever object
 * (segment, garbage, symlink, FIFO, directory) a test left under them. */
typedef struct fixture {
	char name[NNAMES][CKR_NAME_MAX + 1];
	ckr_segment seg[2];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	for (int i = 0; i < NNAMES; i++)
		snprintf(f->name[i], sizeof f->name[i], "%s", tu_segname("seg"));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char path[CKR_NAME_MAX + 16];
	for (int i = 0; i < 2; i++)
		ckr_segment_detach(&f->seg[i]);
	for (int i = 0; i < NNAMES; i++) {
		tu_shm_path(f->name[i], path, sizeof path);
		if (unlink(path) != 0 && errno == EISDIR)
			rmdir(path);
	}
	free(f);
	return 0;
}

/* ---- helpers ---------------------------------------------------------- */

/* 2 lanes of 64 writers: lane ctl to 8192, writer slots to 12288. */
#define SMALL_DATA 12288
static const ckr_segment_opts small_opts = {
	.lanes = 2, .writers_per_lane = 64, .size = SMALL_DATA + 2 * 65536,
	.group = (gid_t)-1,
};

static void create_small(const char *name)
{
	assert_int_equal(ckr_segment_create(name, &small_opts), 0);
}

/* Open the object behind NAME directly (not through the library). */
static int open_raw(const char *name, int flags, mode_t mode)
{
	char path[CKR_NAME_MAX + 16];
	tu_shm_path(name, path, sizeof path);
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, mode);
	assert_true(fd >= 0);
	return fd;
}

/* Overwrite n bytes of the object at off, as a hostile writer would. */
static void poke(const char *name, size_t off, const void *v, size_t n)
{
	int fd = open_raw(name, O_RDWR, 0);
	assert_int_equal(pwrite(fd, v, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void poke_u32(const char *name, size_t off, uint32_t v)
{
	poke(name, off, &v, sizeof v);
}

static void poke_u64(const char *name, size_t off, uint64_t v)
{
	poke(name, off, &v, sizeof v);
}

static struct stat stat_raw(const char *name)
{
	struct stat st;
	int fd = open_raw(name, O_RDONLY, 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	return st;
}

static int attach_rc(const char *name, bool read_only)
{
	ckr_segment s = { 0 };
	int rc = ckr_segment_attach(name, read_only, &s);
	ckr_segment_detach(&s);
	return rc;
}

/* A name of n characters that is otherwise valid. */
static char *long_name(size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, 'n', n);
	s[n] = '\0';
	return s;
}

/* ---- create and attach ------------------------------------------------ */

static void test_create_defaults_then_attach_sees_geometry(void **state)
{
	fixture *f = *state;
	assert_int_equal(ckr_segment_create(f->name[0], NULL), 0);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	ckr_segment *s = &f->seg[0];
	assert_int_equal(s->lane_count, CKR_DEFAULT_LANES);
	assert_int_equal(s->lane_capacity, CKR_DEFAULT_LANE_CAPACITY);
	assert_int_equal(s->lane_shift, 20);
	assert_int_equal(s->writers_offset, 8192); /* 4096 + 16 x 256, page aligned */
	assert_int_equal(s->writers_per_lane, CKR_DEFAULT_WRITERS);
	assert_int_equal(s->data_offset, 8192 + 16 * 256 * 32);
	assert_int_equal(s->size, s->data_offset + 16 * CKR_DEFAULT_LANE_CAPACITY);
	assert_int_equal(s->max_record, CKR_DEFAULT_LANE_CAPACITY / 4);
	assert_false(s->read_only);
	assert_string_equal(s->name, f->name[0]);
	assert_int_equal(stat_raw(f->name[0]).st_size, (off_t)s->size);
}

static void test_header_records_version_creator_and_time(void **state)
{
	fixture *f = *state;
	uint64_t before = ckr_now_ns(CLOCK_REALTIME), tok = 0;
	create_small(f->name[0]);
	uint64_t after = ckr_now_ns(CLOCK_REALTIME);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	const ckr_seg_header *h = ckr_seg_hdr(&f->seg[0]);
	assert_memory_equal((const void *)&h->magic, CKR_SEG_MAGIC, 8);
	assert_int_equal(h->layout_version, CKR_SEG_LAYOUT_VERSION);
	assert_int_equal(h->header_size, CKR_SEG_CTL_OFFSET);
	assert_int_equal(h->segment_size, f->seg[0].size);
	assert_in_range(h->created_ns, before, after);
	assert_int_equal(ckr_proc_self_token(&tok), 0);
	assert_int_equal(h->creator_token, tok);
}

static void test_create_twice_is_eexist(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	assert_int_equal(ckr_segment_create(f->name[0], &small_opts), -EEXIST);
	assert_int_equal(ckr_segment_create(f->name[0], NULL), -EEXIST);
}

typedef struct create_race {
	const char *name;
	pthread_barrier_t go;
	int rc[4];
} create_race;

typedef struct race_slot {
	create_race *race;
	int idx;
} race_slot;

static void *race_create_one(void *arg)
{
	race_slot *s = arg;
	pthread_barrier_wait(&s->race->go);
	s->race->rc[s->idx] = ckr_segment_create(s->race->name, &small_opts);
	return NULL;
}

static void test_concurrent_creates_exactly_one_wins(void **state)
{
	fixture *f = *state;
	create_race r = { .name = f->name[0] };
	race_slot slots[4];
	pthread_t th[4];
	pthread_barrier_init(&r.go, NULL, 4);
	for (int i = 0; i < 4; i++) {
		slots[i] = (race_slot){ .race = &r, .idx = i };
		assert_int_equal(pthread_create(&th[i], NULL, race_create_one, &slots[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&r.go);
	int won = 0;
	for (int i = 0; i < 4; i++) {
		if (r.rc[i] == 0)
			won++;
		else
			assert_int_equal(r.rc[i], -EEXIST);
	}
	assert_int_equal(won, 1);
	assert_int_equal(attach_rc(f->name[0], false), 0);
}

static void test_epoch_differs_between_segments(void **state)
{
	fixture *f = *state;
	static const uint8_t zero[16];
	create_small(f->name[0]);
	create_small(f->name[1]);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	assert_int_equal(ckr_segment_attach(f->name[1], false, &f->seg[1]), 0);
	assert_memory_not_equal(f->seg[0].epoch, zero, 16);
	assert_memory_not_equal(f->seg[0].epoch, f->seg[1].epoch, 16);
}

static void test_recreated_segment_gets_new_epoch(void **state)
{
	fixture *f = *state;
	uint8_t first[16];
	create_small(f->name[0]);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	memcpy(first, f->seg[0].epoch, 16);
	ckr_segment_detach(&f->seg[0]);
	assert_int_equal(ckr_segment_unlink(f->name[0]), 0);
	create_small(f->name[0]);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	assert_memory_not_equal(first, f->seg[0].epoch, 16);
}

static void test_read_only_attach_maps_and_reads_header(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	assert_int_equal(ckr_segment_attach(f->name[0], true, &f->seg[0]), 0);
	ckr_segment *s = &f->seg[0];
	assert_true(s->read_only);
	assert_int_equal(s->lane_count, 2);
	assert_int_equal(s->lane_capacity, 65536);
	assert_memory_equal((const void *)&ckr_seg_hdr(s)->magic, CKR_SEG_MAGIC, 8);
	assert_int_equal(ckr_seg_hdr(s)->lane_count, 2);
}

/* The protection of the mapping at base, from /proc/self/maps ("r--s"). */
static void mapping_perms(const void *base, char perms[5])
{
	FILE *m = fopen("/proc/self/maps", "r");
	char line[512];
	perms[0] = '\0';
	assert_non_null(m);
	while (fgets(line, sizeof line, m)) {
		unsigned long lo, hi;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 &&
		    lo == (unsigned long)(uintptr_t)base) {
			memcpy(perms, p, 5);
			break;
		}
	}
	fclose(m);
}

static void test_read_only_attach_maps_without_write(void **state)
{
	fixture *f = *state;
	char perms[5];
	create_small(f->name[0]);
	assert_int_equal(ckr_segment_attach(f->name[0], true, &f->seg[0]), 0);
	mapping_perms(f->seg[0].base, perms);
	assert_string_equal(perms, "r--s");
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[1]), 0);
	mapping_perms(f->seg[1].base, perms);
	assert_string_equal(perms, "rw-s");
}

static void test_attach_shares_memory_with_other_attach(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	assert_int_equal(ckr_segment_attach(f->name[0], true, &f->seg[1]), 0);
	f->seg[0].base[f->seg[0].data_offset + 100] = 0x5a;
	assert_int_equal(f->seg[1].base[f->seg[1].data_offset + 100], 0x5a);
}

/* ---- names ------------------------------------------------------------ */

static void expect_einval_everywhere(const char *name)
{
	ckr_segment s = { 0 };
	assert_int_equal(ckr_segment_name_check(name), -EINVAL);
	assert_int_equal(ckr_segment_create(name, NULL), -EINVAL);
	assert_int_equal(ckr_segment_attach(name, false, &s), -EINVAL);
	assert_int_equal(ckr_segment_attach(name, true, &s), -EINVAL);
	assert_int_equal(ckr_segment_unlink(name), -EINVAL);
}

static void test_empty_name_is_einval(void **state)
{
	expect_einval_everywhere("");
}

static void test_null_name_is_einval(void **state)
{
	expect_einval_everywhere(NULL);
}

static void test_dot_name_is_einval(void **state)
{
	expect_einval_everywhere(".x");
	expect_einval_everywhere(".");
	expect_einval_everywhere("..");
}

static void test_slash_in_name_is_einval(void **state)
{
	expect_einval_everywhere("a/b");
	expect_einval_everywhere("/abs");
	expect_einval_everywhere("../escape");
}

static void test_space_and_controls_in_name_are_einval(void **state)
{
	expect_einval_everywhere("a b");
	expect_einval_everywhere("a\nb");
	expect_einval_everywhere("a\tb");
	expect_einval_everywhere("caf\xc3\xa9");
}

static void test_name_of_201_chars_is_einval(void **state)
{
	char *n = long_name(CKR_NAME_MAX + 1);
	expect_einval_everywhere(n);
	free(n);
}

static void test_name_of_200_chars_is_accepted(void **state)
{
	fixture *f = *state;
	/* Replace name[2] with a 200-character unique name (the teardown
	 * removes it). */
	char *n = long_name(CKR_NAME_MAX);
	memcpy(n, f->name[2], strlen(f->name[2]));
	snprintf(f->name[2], sizeof f->name[2], "%s", n);
	free(n);
	assert_int_equal(strlen(f->name[2]), CKR_NAME_MAX);
	assert_int_equal(ckr_segment_create(f->name[2], &small_opts), 0);
	assert_int_equal(ckr_segment_attach(f->name[2], false, &f->seg[0]), 0);
	assert_string_equal(f->seg[0].name, f->name[2]);
	assert_int_equal(ckr_segment_unlink(f->name[2]), 0);
}

/* ---- missing, unlink -------------------------------------------------- */

static void test_attach_missing_is_enoent(void **state)
{
	fixture *f = *state;
	assert_int_equal(attach_rc(f->name[0], false), -ENOENT);
	assert_int_equal(attach_rc(f->name[0], true), -ENOENT);
}

static void test_unlink_then_attach_is_enoent(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	assert_int_equal(ckr_segment_unlink(f->name[0]), 0);
	assert_int_equal(attach_rc(f->name[0], false), -ENOENT);
}

static void test_unlink_missing_is_enoent(void **state)
{
	fixture *f = *state;
	assert_int_equal(ckr_segment_unlink(f->name[0]), -ENOENT);
}

static void test_unlink_keeps_existing_mapping(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	assert_int_equal(ckr_segment_unlink(f->name[0]), 0);
	f->seg[0].base[f->seg[0].data_offset] = 7; /* still mapped, still ours */
	assert_int_equal(ckr_seg_hdr(&f->seg[0])->lane_count, 2);
}

/* ---- objects that are not segments ------------------------------------ */

static void test_attach_refuses_garbage_object(void **state)
{
	fixture *f = *state;
	uint8_t junk[8192];
	for (size_t i = 0; i < sizeof junk; i += 8) {
		uint64_t w = tu_mix64(i);
		memcpy(junk + i, &w, 8);
	}
	int fd = open_raw(f->name[0], O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	close(fd);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
	assert_int_equal(attach_rc(f->name[0], true), CKR_ENOTSEG);
}

static void test_attach_refuses_empty_object(void **state)
{
	fixture *f = *state;
	close(open_raw(f->name[0], O_RDWR | O_CREAT | O_EXCL, 0600));
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
	assert_int_equal(attach_rc(f->name[0], true), CKR_ENOTSEG);
}

/*
 * Regression test (a bug, now fixed, in shm/segment.c read_header()): an object smaller than
 * one page is answered CKR_ETRUNC without looking at it, so 100 bytes of
 * garbage are reported as a "truncated segment" instead of "not a ckring
 * segment".
 */
static void test_attach_refuses_small_garbage_as_not_a_segment(void **state)
{
	fixture *f = *state;
	char junk[100];
	memset(junk, 'x', sizeof junk);
	int fd = open_raw(f->name[0], O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	close(fd);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_unpublished_header(void **state)
{
	fixture *f = *state;
	/* A creator that died before publishing magic: every other field is
	 * right, magic is still 0. */
	create_small(f->name[0]);
	poke_u64(f->name[0], offsetof(ckr_seg_header, magic), 0);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_wrong_layout_version(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	poke_u32(f->name[0], offsetof(ckr_seg_header, layout_version),
		 CKR_SEG_LAYOUT_VERSION + 1);
	assert_int_equal(attach_rc(f->name[0], false), CKR_EVERSION);
	assert_int_equal(attach_rc(f->name[0], true), CKR_EVERSION);
}

static void test_attach_refuses_truncated_segment(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	int fd = open_raw(f->name[0], O_RDWR, 0);
	assert_int_equal(ftruncate(fd, SMALL_DATA + 65536), 0); /* half a lane gone */
	close(fd);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ETRUNC);
	assert_int_equal(attach_rc(f->name[0], true), CKR_ETRUNC);
}

static void test_attach_refuses_segment_truncated_by_one_byte(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	int fd = open_raw(f->name[0], O_RDWR, 0);
	assert_int_equal(ftruncate(fd, SMALL_DATA + 2 * 65536 - 1), 0);
	close(fd);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ETRUNC);
}

static void test_attach_refuses_segment_truncated_inside_header(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	int fd = open_raw(f->name[0], O_RDWR, 0);
	assert_int_equal(ftruncate(fd, 100), 0);
	close(fd);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ETRUNC);
}

static void test_attach_accepts_object_larger_than_header_says(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	int fd = open_raw(f->name[0], O_RDWR, 0);
	assert_int_equal(ftruncate(fd, SMALL_DATA + 4 * 65536), 0);
	close(fd);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	assert_int_equal(f->seg[0].size, SMALL_DATA + 2 * 65536); /* maps what it knows */
}

static void test_attach_refuses_zero_lanes(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	poke_u32(f->name[0], offsetof(ckr_seg_header, lane_count), 0);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_too_many_lanes(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	poke_u32(f->name[0], offsetof(ckr_seg_header, lane_count), UINT32_MAX);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_lane_shift_40(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	/* Consistent with itself (capacity = 1 << 40), so only the bound on
	 * lane_shift can catch it. */
	poke_u32(f->name[0], offsetof(ckr_seg_header, lane_shift), 40);
	poke_u64(f->name[0], offsetof(ckr_seg_header, lane_capacity), UINT64_C(1) << 40);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_capacity_not_matching_shift(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	poke_u64(f->name[0], offsetof(ckr_seg_header, lane_capacity), 65536 + 8);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_data_offset_off(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	poke_u64(f->name[0], offsetof(ckr_seg_header, data_offset), 4096);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
	poke_u64(f->name[0], offsetof(ckr_seg_header, data_offset), SMALL_DATA + 8);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_wrong_max_record(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	poke_u32(f->name[0], offsetof(ckr_seg_header, max_record), 65536);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_segment_size_not_matching_geometry(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	poke_u64(f->name[0], offsetof(ckr_seg_header, segment_size), SMALL_DATA + 65536);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

static void test_attach_refuses_wrong_header_size(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	poke_u32(f->name[0], offsetof(ckr_seg_header, header_size), 8192);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

/* ---- symlinks, FIFOs, directories: nothing is followed or blocked on --- */

static void plant_symlink(const char *link_name, const char *target_name)
{
	char link[CKR_NAME_MAX + 16], target[CKR_NAME_MAX + 16];
	tu_shm_path(link_name, link, sizeof link);
	tu_shm_path(target_name, target, sizeof target);
	assert_int_equal(symlink(target, link), 0);
}

static void test_attach_refuses_symlink_to_segment(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	plant_symlink(f->name[1], f->name[0]);
	int rw = attach_rc(f->name[1], false), ro = attach_rc(f->name[1], true);
	assert_int_not_equal(rw, 0);
	assert_int_not_equal(ro, 0);
	assert_true(rw == CKR_ENOTSEG || rw == -ELOOP);
	assert_true(ro == CKR_ENOTSEG || ro == -ELOOP);
}

static void test_create_does_not_follow_dangling_symlink(void **state)
{
	fixture *f = *state;
	plant_symlink(f->name[1], f->name[0]); /* name[0] does not exist */
	assert_int_equal(ckr_segment_create(f->name[1], &small_opts), -EEXIST);
	char target[CKR_NAME_MAX + 16];
	tu_shm_path(f->name[0], target, sizeof target);
	assert_int_equal(access(target, F_OK), -1); /* nothing created there */
}

static void test_unlink_removes_symlink_not_target(void **state)
{
	fixture *f = *state;
	create_small(f->name[0]);
	plant_symlink(f->name[1], f->name[0]);
	assert_int_equal(ckr_segment_unlink(f->name[1]), 0);
	assert_int_equal(attach_rc(f->name[0], false), 0);
}

static void make_fifo(const char *name)
{
	char path[CKR_NAME_MAX + 16];
	tu_shm_path(name, path, sizeof path);
	assert_int_equal(mkfifo(path, 0600), 0);
}

static void test_attach_refuses_fifo(void **state)
{
	fixture *f = *state;
	make_fifo(f->name[0]);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

/*
 * Regression test (a bug, now fixed, in shm/segment.c open_object()): a read-only attach opens
 * the object O_RDONLY without O_NONBLOCK, so a FIFO planted at /dev/shm/NAME
 * blocks the attacher (the inspector) forever in open(). The attach runs in
 * a child with a bounded wait so the test itself never hangs.
 */
static void test_read_only_attach_refuses_fifo_without_blocking(void **state)
{
	fixture *f = *state;
	make_fifo(f->name[0]);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(attach_rc(f->name[0], true) == CKR_ENOTSEG ? 0 : 1);
	int st = tu_wait_child(pid, 2000);
	assert_int_not_equal(st, -1); /* -1: still blocked in open() after 2 s */
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void make_dir(const char *name)
{
	char path[CKR_NAME_MAX + 16];
	tu_shm_path(name, path, sizeof path);
	assert_int_equal(mkdir(path, 0700), 0);
}

static void test_read_only_attach_refuses_directory(void **state)
{
	fixture *f = *state;
	make_dir(f->name[0]);
	assert_int_equal(attach_rc(f->name[0], true), CKR_ENOTSEG);
}

/*
 * Regression test (a bug, now fixed, in shm/segment.c open_object()): glibc's shm_open turns
 * EISDIR into EINVAL, so a read-write attach of a directory answers -EINVAL
 * ("bad name") for a valid name.
 */
static void test_attach_refuses_directory_as_not_a_segment(void **state)
{
	fixture *f = *state;
	make_dir(f->name[0]);
	assert_int_equal(attach_rc(f->name[0], false), CKR_ENOTSEG);
}

/* ---- permissions ------------------------------------------------------ */

static void test_default_mode_is_0600(void **state)
{
	fixture *f = *state;
	assert_int_equal(ckr_segment_create(f->name[0], NULL), 0);
	assert_int_equal(stat_raw(f->name[0]).st_mode & 07777, 0600);
}

static void test_default_mode_is_0600_with_open_umask(void **state)
{
	fixture *f = *state;
	mode_t old = umask(0);
	int rc = ckr_segment_create(f->name[0], &small_opts);
	umask(old);
	assert_int_equal(rc, 0);
	assert_int_equal(stat_raw(f->name[0]).st_mode & 07777, 0600);
}

static void test_asked_mode_0640_is_applied(void **state)
{
	fixture *f = *state;
	ckr_segment_opts o = small_opts;
	o.mode = 0640;
	assert_int_equal(ckr_segment_create(f->name[0], &o), 0);
	assert_int_equal(stat_raw(f->name[0]).st_mode & 07777, 0640);
}

static void test_asked_mode_is_applied_despite_umask(void **state)
{
	fixture *f = *state;
	ckr_segment_opts o = small_opts;
	o.mode = 0660;
	mode_t old = umask(077);
	int rc = ckr_segment_create(f->name[0], &o);
	umask(old);
	assert_int_equal(rc, 0);
	assert_int_equal(stat_raw(f->name[0]).st_mode & 07777, 0660);
}

static void test_asked_group_is_applied(void **state)
{
	fixture *f = *state;
	ckr_segment_opts o = small_opts;
	/* Group 0 means "leave as created" in ckr_segment_opts; root may give
	 * the object any group, anyone else only one of their own. */
	o.group = getegid() != 0 ? getegid() : geteuid() == 0 ? 4242 : 0;
	if (o.group == 0)
		skip();
	assert_int_equal(ckr_segment_create(f->name[0], &o), 0);
	assert_int_equal(stat_raw(f->name[0]).st_gid, o.group);
}

/* ---- size and lane geometry ------------------------------------------- */

static void test_size_too_small_is_einval(void **state)
{
	fixture *f = *state;
	ckr_segment_opts o = small_opts;
	o.size = 4096;
	assert_int_equal(ckr_segment_create(f->name[0], &o), -EINVAL);
	assert_int_equal(attach_rc(f->name[0], false), -ENOENT); /* nothing left */
}

static void test_size_one_byte_below_minimum_is_einval(void **state)
{
	fixture *f = *state;
	ckr_seg_geometry g;
	/* 2 lanes of 64 writers: control table ends at 8192, the writer slots
	 * (2 x 64 x 32 bytes) at 12288, then 2 x the 4 KiB minimum. */
	ckr_segment_opts o = { .lanes = 2, .writers_per_lane = 64,
			       .size = 12288 + 2 * 4096 - 1, .group = (gid_t)-1 };
	assert_int_equal(ckr_segment_geometry(&o, &g), -EINVAL);
	assert_int_equal(ckr_segment_create(f->name[0], &o), -EINVAL);
	o.size++;
	assert_int_equal(ckr_segment_geometry(&o, &g), 0);
	assert_int_equal(g.lane_capacity, CKR_LANE_MIN_CAPACITY);
	assert_int_equal(g.writers_offset, 8192);
	assert_int_equal(g.data_offset, 12288);
	assert_int_equal(ckr_segment_create(f->name[0], &o), 0);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	assert_int_equal(f->seg[0].lane_capacity, 4096);
	assert_int_equal(f->seg[0].max_record, 1024);
}

static void test_more_than_1024_lanes_is_einval(void **state)
{
	fixture *f = *state;
	ckr_seg_geometry g;
	ckr_segment_opts o = { .lanes = CKR_MAX_LANES + 1, .group = (gid_t)-1 };
	assert_int_equal(ckr_segment_geometry(&o, &g), -EINVAL);
	assert_int_equal(ckr_segment_create(f->name[0], &o), -EINVAL);
	o.size = UINT64_C(1) << 30;
	assert_int_equal(ckr_segment_create(f->name[0], &o), -EINVAL);
}

static void test_1024_lanes_of_minimum_size_attach(void **state)
{
	fixture *f = *state;
	uint64_t w_off = 4096 + 1024 * 256; /* already page aligned */
	uint64_t off = w_off + 1024 * 4 * 32; /* 4 writers a lane */
	ckr_segment_opts o = { .lanes = 1024, .writers_per_lane = 4,
			       .size = off + 1024 * 4096, .group = (gid_t)-1 };
	assert_int_equal(ckr_segment_create(f->name[0], &o), 0);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	assert_int_equal(f->seg[0].lane_count, 1024);
	assert_int_equal(f->seg[0].writers_offset, w_off);
	assert_int_equal(f->seg[0].writers_per_lane, 4);
	assert_int_equal(f->seg[0].data_offset, off);
	assert_int_equal(f->seg[0].size, o.size);
}

static void test_lane_capacity_is_largest_power_of_two_that_fits(void **state)
{
	ckr_seg_geometry g;
	ckr_segment_opts o = { .lanes = 2, .writers_per_lane = 64,
			       .size = 12288 + 2 * 65536, .group = (gid_t)-1 };
	assert_int_equal(ckr_segment_geometry(&o, &g), 0);
	assert_int_equal(g.lanes, 2);
	assert_int_equal(g.lane_capacity, 65536);
	assert_int_equal(g.total, o.size);
	o.size--;
	assert_int_equal(ckr_segment_geometry(&o, &g), 0);
	assert_int_equal(g.lane_capacity, 32768);
	assert_true(g.total <= o.size);
}

static void test_default_geometry_without_opts(void **state)
{
	ckr_seg_geometry g;
	assert_int_equal(ckr_segment_geometry(NULL, &g), 0);
	assert_int_equal(g.lanes, CKR_DEFAULT_LANES);
	assert_int_equal(g.writers_per_lane, CKR_DEFAULT_WRITERS);
	assert_int_equal(g.lane_capacity, CKR_DEFAULT_LANE_CAPACITY);
	/* 16 lanes: ctl ends at 8192; 16 x 256 x 32 bytes of writer slots. */
	assert_int_equal(g.data_offset, 8192 + 16 * 256 * 32);
	assert_int_equal(g.total, g.data_offset + CKR_DEFAULT_LANES * CKR_DEFAULT_LANE_CAPACITY);
}

static void test_created_size_matches_geometry(void **state)
{
	fixture *f = *state;
	ckr_seg_geometry g;
	ckr_segment_opts o = { .lanes = 3, .size = 1000000, .group = (gid_t)-1 };
	assert_int_equal(ckr_segment_geometry(&o, &g), 0);
	assert_int_equal(ckr_segment_create(f->name[0], &o), 0);
	assert_int_equal(ckr_segment_attach(f->name[0], false, &f->seg[0]), 0);
	assert_int_equal(f->seg[0].lane_count, 3);
	assert_int_equal(f->seg[0].lane_capacity, g.lane_capacity);
	assert_int_equal(f->seg[0].size, g.total);
	assert_int_equal(stat_raw(f->name[0]).st_size, (off_t)g.total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_create_defaults_then_attach_sees_geometry),
		T(test_header_records_version_creator_and_time),
		T(test_create_twice_is_eexist),
		T(test_concurrent_creates_exactly_one_wins),
		T(test_epoch_differs_between_segments),
		T(test_recreated_segment_gets_new_epoch),
		T(test_read_only_attach_maps_and_reads_header),
		T(test_read_only_attach_maps_without_write),
		T(test_attach_shares_memory_with_other_attach),
		T(test_empty_name_is_einval),
		T(test_null_name_is_einval),
		T(test_dot_name_is_einval),
		T(test_slash_in_name_is_einval),
		T(test_space_and_controls_in_name_are_einval),
		T(test_name_of_201_chars_is_einval),
		T(test_name_of_200_chars_is_accepted),
		T(test_attach_missing_is_enoent),
		T(test_unlink_then_attach_is_enoent),
		T(test_unlink_missing_is_enoent),
		T(test_unlink_keeps_existing_mapping),
		T(test_attach_refuses_garbage_object),
		T(test_attach_refuses_empty_object),
		T(test_attach_refuses_small_garbage_as_not_a_segment),
		T(test_attach_refuses_unpublished_header),
		T(test_attach_refuses_wrong_layout_version),
		T(test_attach_refuses_truncated_segment),
		T(test_attach_refuses_segment_truncated_by_one_byte),
		T(test_attach_refuses_segment_truncated_inside_header),
		T(test_attach_accepts_object_larger_than_header_says),
		T(test_attach_refuses_zero_lanes),
		T(test_attach_refuses_too_many_lanes),
		T(test_attach_refuses_lane_shift_40),
		T(test_attach_refuses_capacity_not_matching_shift),
		T(test_attach_refuses_data_offset_off),
		T(test_attach_refuses_wrong_max_record),
		T(test_attach_refuses_segment_size_not_matching_geometry),
		T(test_attach_refuses_wrong_header_size),
		T(test_attach_refuses_symlink_to_segment),
		T(test_create_does_not_follow_dangling_symlink),
		T(test_unlink_removes_symlink_not_target),
		T(test_attach_refuses_fifo),
		T(test_read_only_attach_refuses_fifo_without_blocking),
		T(test_read_only_attach_refuses_directory),
		T(test_attach_refuses_directory_as_not_a_segment),
		T(test_default_mode_is_0600),
		T(test_default_mode_is_0600_with_open_umask),
		T(test_asked_mode_0640_is_applied),
		T(test_asked_mode_is_applied_despite_umask),
		T(test_asked_group_is_applied),
		T(test_size_too_small_is_einval),
		T(test_size_one_byte_below_minimum_is_einval),
		T(test_more_than_1024_lanes_is_einval),
		T(test_1024_lanes_of_minimum_size_attach),
		T(test_lane_capacity_is_largest_power_of_two_that_fits),
		T(test_default_geometry_without_opts),
		T(test_created_size_matches_geometry),
#undef T
	};
	return cmocka_run_group_tests_name("segment", tests, NULL, NULL);
}
