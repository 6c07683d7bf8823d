/*
 * shim.c — an LD_PRELOAD fault injector for the real ckring tools: makes a
 * chosen library or system call fail with a chosen error, after a number of
 * calls, a number of times, while an "arm" file exists.
 *
 *   CKR_FAULT      comma-separated rules  FUNC:ERROR[:after=N][:times=M]
 *                  FUNC   mdb_txn_commit | mdb_put | mdb_env_sync |
 *                         ftruncate | posix_fallocate | mmap | shm_open
 *                  ERROR  EIO | ENOSPC | ENOMEM | EACCES | EPERM | EMFILE |
 *                         MAP_FULL (LMDB's MDB_MAP_FULL) | a number
 *                  after  let the first N matching calls through (default 0)
 *                  times  fail M calls, then let every call through again
 *                         (default 0: fail for as long as the rule is armed)
 *   CKR_FAULT_ARM  a path: the rules are active only while it exists (a test
 *                  arms and clears a fault by creating/removing the file)
 *   CKR_FAULT_LOG  a path: one line "FUNC ERROR" is appended per failure
 *
 * ftruncate, posix_fallocate and mmap fail only on objects under /dev/shm
 * (the segment), never on LMDB's files or anonymous memory. A failing
 * mdb_txn_commit aborts the transaction first, as LMDB does when its commit
 * fails, so the caller sees exactly what a real I/O error gives it.
 *
 * Build: cc -shared -fPIC -o shim.so tests/faults/shim.c -ldl
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

enum fn { F_COMMIT, F_PUT, F_SYNC, F_FTRUNCATE, F_FALLOCATE, F_MMAP, F_SHM_OPEN, F_COUNT };

static const char *const fn_names[F_COUNT] = {
	"mdb_txn_commit", "mdb_put", "mdb_env_sync", "ftruncate", "posix_fallocate",
	"mmap", "shm_open",
};

typedef struct rule {
	bool on;
	int err;
	char err_name[24];
	unsigned long after, times;
	atomic_ulong seen, failed;
} rule;

static rule rules[F_COUNT];
static const char *arm_path, *log_path;
static atomic_int ready; /* 0 not parsed, 1 parsing, 2 done */

static int parse_err(const char *s)
{
	static const struct { const char *n; int v; } t[] = {
		{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "ENOMEM", ENOMEM },
		{ "EACCES", EACCES }, { "EPERM", EPERM }, { "EMFILE", EMFILE },
		{ "MAP_FULL", MDB_MAP_FULL },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (strcmp(s, t[i].n) == 0)
			return t[i].v;
	return atoi(s);
}

static void parse_rule(char *r)
{
	char *save = NULL, *name = strtok_r(r, ":", &save), *err = strtok_r(NULL, ":", &save);
	if (!name || !err)
		return;
	for (int f = 0; f < F_COUNT; f++) {
		if (strcmp(name, fn_names[f]) != 0)
			continue;
		rule *ru = &rules[f];
		ru->on = true;
		ru->err = parse_err(err);
		snprintf(ru->err_name, sizeof ru->err_name, "%s", err);
		for (char *o; (o = strtok_r(NULL, ":", &save));) {
			if (strncmp(o, "after=", 6) == 0)
				ru->after = strtoul(o + 6, NULL, 10);
			else if (strncmp(o, "times=", 6) == 0)
				ru->times = strtoul(o + 6, NULL, 10);
		}
	}
}

static void init(void)
{
	int expected = 0;
	if (!atomic_compare_exchange_strong(&ready, &expected, 1))
		return; /* parsed, or being parsed by another thread (no rule yet) */
	const char *spec = getenv("CKR_FAULT");
	arm_path = getenv("CKR_FAULT_ARM");
	log_path = getenv("CKR_FAULT_LOG");
	if (spec) {
		char buf[1024];
		snprintf(buf, sizeof buf, "%s", spec);
		char *save = NULL;
		for (char *r = strtok_r(buf, ",", &save); r; r = strtok_r(NULL, ",", &save))
			parse_rule(r);
	}
	atomic_store(&ready, 2);
}

static void log_failure(enum fn f)
{
	if (!log_path)
		return;
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	char line[96];
	int n = snprintf(line, sizeof line, "%s %s\n", fn_names[f], rules[f].err_name);
	if (write(fd, line, (size_t)n) < 0) {
		/* nothing to do: the log is a test aid */
	}
	close(fd);
}

/* Should this call of f fail? Counts the call when the rule is armed. */
static bool should_fail(enum fn f)
{
	init();
	if (atomic_load(&ready) != 2)
		return false;
	rule *r = &rules[f];
	if (!r->on || (arm_path && access(arm_path, F_OK) != 0))
		return false;
	unsigned long n = atomic_fetch_add(&r->seen, 1) + 1;
	if (n <= r->after)
		return false;
	if (r->times && atomic_fetch_add(&r->failed, 1) >= r->times)
		return false;
	log_failure(f);
	return true;
}

/* Is fd an object under /dev/shm (a segment)? */
static bool is_shm_fd(int fd)
{
	char link[64], path[256];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return strncmp(path, "/dev/shm/", 9) == 0;
}

static void *real(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p) {
		fprintf(stderr, "ckr fault shim: no %s\n", name);
		abort();
	}
	return p;
}

int mdb_txn_commit(MDB_txn *txn)
{
	static int (*next)(MDB_txn *);
	if (!next)
		next = (int (*)(MDB_txn *))real("mdb_txn_commit");
	if (txn && should_fail(F_COMMIT)) {
		static void (*abort_txn)(MDB_txn *);
		if (!abort_txn)
			abort_txn = (void (*)(MDB_txn *))real("mdb_txn_abort");
		abort_txn(txn); /* a failed commit frees the transaction */
		return rules[F_COMMIT].err;
	}
	return next(txn);
}

int mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags)
{
	static int (*next)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *, unsigned);
	if (!next)
		next = (int (*)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *, unsigned))real("mdb_put");
	if (should_fail(F_PUT))
		return rules[F_PUT].err;
	return next(txn, dbi, key, data, flags);
}

int mdb_env_sync(MDB_env *env, int force)
{
	static int (*next)(MDB_env *, int);
	if (!next)
		next = (int (*)(MDB_env *, int))real("mdb_env_sync");
	if (should_fail(F_SYNC))
		return rules[F_SYNC].err;
	return next(env, force);
}

int ftruncate(int fd, off_t len)
{
	static int (*next)(int, off_t);
	if (!next)
		next = (int (*)(int, off_t))real("ftruncate");
	if (is_shm_fd(fd) && should_fail(F_FTRUNCATE)) {
		errno = rules[F_FTRUNCATE].err;
		return -1;
	}
	return next(fd, len);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
	static int (*next)(int, off_t, off_t);
	if (!next)
		next = (int (*)(int, off_t, off_t))real("posix_fallocate");
	if (is_shm_fd(fd) && should_fail(F_FALLOCATE))
		return rules[F_FALLOCATE].err; /* it returns the error number */
	return next(fd, off, len);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static void *(*next)(void *, size_t, int, int, int, off_t);
	if (!next)
		next = (void *(*)(void *, size_t, int, int, int, off_t))real("mmap");
	if (fd >= 0 && !(flags & MAP_ANONYMOUS) && is_shm_fd(fd) && should_fail(F_MMAP)) {
		errno = rules[F_MMAP].err;
		return MAP_FAILED;
	}
	return next(addr, len, prot, flags, fd, off);
}

int shm_open(const char *name, int oflag, mode_t mode)
{
	static int (*next)(const char *, int, mode_t);
	if (!next)
		next = (int (*)(const char *, int, mode_t))real("shm_open");
	if (should_fail(F_SHM_OPEN)) {
		errno = rules[F_SHM_OPEN].err;
		return -1;
	}
	return next(name, oflag, mode);
}
