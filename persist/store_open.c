/*
 * store_open.c — opening the store: one LMDB environment per directory per
 * process (a registry of reference-counted ckr_env, so a host that opens the
 * store for recovery and embeds a flusher never opens the environment twice:
 * LMDB forbids it, closing one copy drops the other's locks), the schema
 * check and the in-place migration of a schema-1 store, and the binding of
 * the store to the one segment it serves.
 *
 * A handle's read_only is the handle's own promise (no claims, no batches);
 * the shared environment is opened read-write whenever the directory is
 * writable, so handles of both kinds can share it, and MDB_RDONLY only when
 * it is not.
 *
 * Concurrency: open and close are thread-safe (registry_lock). A handle is
 * used as store.h says.
 */
#include "persist/changelog.h"
#include "persist/store_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAP_SIZE (UINT64_C(64) << 20)
#define DEFAULT_MAX_ATTEMPTS 5
#define ENV_MODE 0600
#define ENV_MODE_SHARED 0660 /* --shared-group: the group's recoverers too */

/* The environments open in this process, by directory (dev, ino).
 * Process-wide by nature: the LMDB rule it enforces is per process. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static ckr_env *registry;
/* LMDB: a transaction that opens a database handle must end before any
 * other transaction of the process opens one. Held around init_*. */
static pthread_mutex_t dbi_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- directory checks ---- */

/*
 * What the store may trust (docs/BAD_INPUT.md, "The store"). LMDB opens
 * DIR/data.mdb and DIR/lock.mdb by name, creating them, following symbolic
 * links, and writes its lock header into lock.mdb: a planted symbolic link
 * there makes it overwrite the link's target. So every open refuses files
 * of those names that are not plain files of their own (a symbolic link,
 * anything but a regular file, a second hard link). The flusher, which
 * creates the store, also requires the directory itself to be one nobody
 * else can plant such files in: a real directory (lstat: a symbolic link to
 * one is not), owned by its effective user, writable by nobody else (its
 * group only with shared_group). Given that directory, nothing can change
 * between these checks and LMDB's opens; without it (a shared group) a
 * member of the group could still race them, which is what the option
 * accepts.
 */

/* dir without trailing slashes (lstat("link/") would follow the link). */
static int strip_slashes(const char *dir, char out[PATH_MAX])
{
	size_t n = strlen(dir);
	if (n >= PATH_MAX)
		return -ENAMETOOLONG;
	while (n > 1 && dir[n - 1] == '/')
		n--;
	memcpy(out, dir, n);
	out[n] = '\0';
	return 0;
}

static int check_dir(const char *dir, struct stat *st)
{
	if (!dir || !*dir)
		return -EINVAL;
	if (stat(dir, st) != 0)
		return -errno;
	return S_ISDIR(st->st_mode) ? 0 : -ENOTDIR;
}

/* DIR/name, if it exists, is a regular file with one link, not a symbolic
 * link. @return 0 (also when missing); CKR_EUNSAFE (why); -errno. */
static int check_store_file(const char *dir, const char *name, char *why, size_t n)
{
	char path[PATH_MAX];
	struct stat st;
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISLNK(st.st_mode))
		snprintf(why, n, "%s is a symbolic link (refused: LMDB would write "
			 "through it)", name);
	else if (!S_ISREG(st.st_mode))
		snprintf(why, n, "%s is not a regular file", name);
	else if (st.st_nlink != 1)
		snprintf(why, n, "%s has %ju hard links (refused: LMDB would write "
			 "into the other names too)", name, (uintmax_t)st.st_nlink);
	else
		return 0;
	return CKR_EUNSAFE;
}

static int check_store_files(const char *dir, char *why, size_t n)
{
	int rc = check_store_file(dir, "data.mdb", why, n);
	return rc ? rc : check_store_file(dir, "lock.mdb", why, n);
}

int ckr_store_check_dir(const char *dir, bool shared_group, char *why, size_t n)
{
	char d[PATH_MAX];
	struct stat st;
	int rc = dir && *dir ? strip_slashes(dir, d) : -EINVAL;
	why[0] = '\0';
	if (rc)
		return rc;
	if (lstat(d, &st) != 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, n, "is a symbolic link, not a directory (give the "
			 "directory itself)");
		return CKR_EUNSAFE;
	}
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != geteuid()) {
		snprintf(why, n, "is owned by uid %ju, not by this user (uid %ju)",
			 (uintmax_t)st.st_uid, (uintmax_t)geteuid());
		return CKR_EUNSAFE;
	}
	if (st.st_mode & S_IWOTH) {
		snprintf(why, n, "is writable by others (mode %04o)",
			 (unsigned)(st.st_mode & 07777));
		return CKR_EUNSAFE;
	}
	if ((st.st_mode & S_IWGRP) && !shared_group) {
		snprintf(why, n, "is writable by its group (mode %04o; --shared-group "
			 "allows that)", (unsigned)(st.st_mode & 07777));
		return CKR_EUNSAFE;
	}
	if (access(d, W_OK) != 0)
		return -errno; /* -EROFS: a read-only file system */
	return check_store_files(d, why, n);
}

/* -ENOENT unless dir holds an LMDB data file. */
static int check_data_file(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if (lstat(path, &st) != 0)
		return -errno;
	return S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) ? 0 : -ENOENT;
}

/* ---- the shared environment ---- */

static ckr_env *registry_find(const struct stat *st)
{
	for (ckr_env *e = registry; e; e = e->next)
		if (e->dev == st->st_dev && e->ino == st->st_ino)
			return e;
	return NULL;
}

/* Open dir's environment (map_size 0: LMDB's, i.e. the file's, size). */
static int env_new(const char *dir, const struct stat *st, unsigned flags,
		   uint64_t map_size, mode_t mode, ckr_env **out)
{
	ckr_env *e = calloc(1, sizeof *e);
	int rc, dead;

	if (!e)
		return -ENOMEM;
	if (pthread_rwlock_init(&e->map_lock, NULL) != 0) {
		free(e);
		return -ENOMEM;
	}
	rc = mdb_env_create(&e->env);
	if (rc)
		goto fail_lock;
	rc = mdb_env_set_maxdbs(e->env, CKR_DB_COUNT);
	if (rc == 0 && map_size)
		rc = mdb_env_set_mapsize(e->env, (size_t)map_size);
	if (rc == 0)
		rc = mdb_env_open(e->env, dir, flags | MDB_NOTLS, mode);
	if (rc)
		goto fail_env;
	mdb_reader_check(e->env, &dead); /* free slots of dead readers */
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->read_only = (flags & MDB_RDONLY) != 0;
	atomic_init(&e->batch_open, false);
	*out = e;
	return 0;

fail_env:
	mdb_env_close(e->env);
fail_lock:
	pthread_rwlock_destroy(&e->map_lock);
	free(e);
	return ckr_st_err(rc);
}

/* Make the shared map at least map_size (no transaction may be open in this
 * process meanwhile: exclusive map_lock). */
static int env_widen(ckr_env *e, uint64_t map_size)
{
	MDB_envinfo info;
	int rc;

	pthread_rwlock_wrlock(&e->map_lock);
	rc = mdb_env_info(e->env, &info);
	if (rc == 0 && info.me_mapsize < map_size)
		rc = mdb_env_set_mapsize(e->env, (size_t)map_size);
	pthread_rwlock_unlock(&e->map_lock);
	return ckr_st_err(rc);
}

/*
 * Find or open dir's environment and take a reference. writable: the
 * caller will write (a read-only environment is refused with -EROFS);
 * sync_flags: the flusher's sync policy, MDB_NOSYNC (sync none/interval)
 * or MDB_NOMETASYNC (sync always: group commit, persist/flusher_sync.c), 0
 * for others. The flags apply to the whole environment, so a recoverer
 * sharing it commits its claims that way too — a claim lost with power is
 * simply made again.
 */
static int env_get(const char *dir, bool writable, unsigned sync_flags,
		   uint64_t map_size, mode_t mode, ckr_env **out)
{
	struct stat st;
	char why[160];
	int rc = check_dir(dir, &st);
	if (rc == 0)
		rc = check_store_files(dir, why, sizeof why);
	if (rc)
		return rc;
	pthread_mutex_lock(&registry_lock);
	ckr_env *e = registry_find(&st);
	if (!e) {
		int w = access(dir, W_OK) == 0 ? 0 : errno;
		unsigned flags = w == 0 ? 0 : MDB_RDONLY;
		if (writable && flags)
			rc = w == EROFS ? -EROFS : -EACCES;
		else
			rc = env_new(dir, &st, flags, map_size, mode, &e);
		if (rc == 0) {
			e->next = registry;
			registry = e;
		}
	} else if (writable && e->read_only) {
		rc = -EROFS;
	} else if (map_size) {
		rc = env_widen(e, map_size);
	}
	if (rc == 0 && sync_flags)
		rc = ckr_st_err(mdb_env_set_flags(e->env, sync_flags, 1));
	if (rc == 0) {
		e->refs++;
		*out = e;
	}
	pthread_mutex_unlock(&registry_lock);
	return rc;
}

static void env_put(ckr_env *e)
{
	pthread_mutex_lock(&registry_lock);
	if (--e->refs == 0) {
		for (ckr_env **p = &registry; *p; p = &(*p)->next) {
			if (*p == e) {
				*p = e->next;
				break;
			}
		}
		mdb_env_close(e->env);
		pthread_rwlock_destroy(&e->map_lock);
		free(e);
	}
	pthread_mutex_unlock(&registry_lock);
}

static ckr_store *handle_new(ckr_env *e, bool read_only)
{
	ckr_store *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->shared = e;
	s->env = e->env;
	s->map_lock = &e->map_lock;
	s->batch_open = &e->batch_open;
	s->read_only = read_only || e->read_only;
	return s;
}

/* ---- schema ---- */

/* The meta database holds our schema version in *schema (0: none). */
static int read_schema(MDB_txn *txn, MDB_dbi meta, uint32_t *schema)
{
	int rc = ckr_st_get_u32(txn, meta, "schema", schema);

	if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
		*schema = 0;
		return 0;
	}
	return ckr_st_err(rc);
}

/* Open the databases other than meta (flags: 0 or MDB_CREATE). `gone` is
 * the flusher's own (E1/E2): a reader does not need it, so a store whose
 * flusher has not created it yet opens without it. */
static int open_dbs(ckr_store *s, MDB_txn *txn, unsigned flags)
{
	for (int i = CKR_DB_META + 1; i < CKR_DB_COUNT; i++) {
		int rc = mdb_dbi_open(txn, ckr_st_db_names[i], flags, &s->dbi[i]);
		if (rc == MDB_NOTFOUND && i == CKR_DB_GONE) {
			s->dbi[i] = 0; /* not open: ckr_st_has_gone() */
			continue;
		}
		if (rc)
			return rc == MDB_NOTFOUND ? CKR_ECORRUPT : ckr_st_err(rc);
	}
	return 0;
}

/* A brand-new environment holds no named database at all. */
static int env_is_empty(MDB_txn *txn, bool *empty)
{
	MDB_dbi main_dbi;
	MDB_stat st;
	int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);

	if (rc == 0)
		rc = mdb_stat(txn, main_dbi, &st);
	if (rc)
		return ckr_st_err(rc);
	*empty = st.ms_entries == 0;
	return 0;
}

/* Create meta in an empty environment (anything else is not ours). */
static int create_meta(ckr_store *s, MDB_txn *txn)
{
	bool empty = false;
	int rc = env_is_empty(txn, &empty);

	if (rc == 0 && !empty)
		rc = CKR_EVERSION; /* someone else's LMDB environment */
	if (rc == 0)
		rc = ckr_st_err(mdb_dbi_open(txn, ckr_st_db_names[CKR_DB_META],
					     MDB_CREATE, &s->dbi[CKR_DB_META]));
	if (rc == 0)
		rc = ckr_st_err(ckr_st_put_u32(txn, s->dbi[CKR_DB_META], "schema",
					       CKR_STORE_SCHEMA));
	return rc;
}

/* Flusher: create the databases when new, migrate schema 1, check the
 * schema, record max_attempts for recoverers (with defer: only in a new
 * store). One write transaction. */
static int init_rw(ckr_store *s, uint32_t max_attempts, bool defer)
{
	MDB_txn *txn;
	uint32_t schema = CKR_STORE_SCHEMA;
	bool fresh = false;
	int rc = ckr_st_txn_begin(s, true, &txn);

	if (rc)
		return rc;
	rc = mdb_dbi_open(txn, ckr_st_db_names[CKR_DB_META], 0, &s->dbi[CKR_DB_META]);
	if (rc == MDB_NOTFOUND) {
		rc = create_meta(s, txn);
		fresh = true;
	} else if (rc == 0)
		rc = read_schema(txn, s->dbi[CKR_DB_META], &schema);
	else
		rc = ckr_st_err(rc);
	if (rc == 0 && (schema < 1 || schema > CKR_STORE_SCHEMA))
		rc = CKR_EVERSION;
	if (rc == 0)
		rc = open_dbs(s, txn, MDB_CREATE);
	if (rc == 0 && schema == 1)
		rc = ckr_st_migrate_1_to_2(txn, s);
	if (rc == 0 && schema <= 2)
		rc = ckr_st_migrate_2_to_3(txn, s);
	else if (rc == 0)
		rc = ckr_clog_init_meta(txn, s); /* a new store */
	if (rc == 0 && (fresh || !defer))
		rc = ckr_st_err(ckr_st_put_u32(txn, s->dbi[CKR_DB_META], "max_attempts",
					       max_attempts ? max_attempts
							    : DEFAULT_MAX_ATTEMPTS));
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return rc;
	}
	return ckr_st_txn_commit(s, txn);
}

/* Recoverer/inspector: the store must exist; check it, open its databases
 * (a read transaction; committing it keeps the handles). */
static int init_existing(ckr_store *s)
{
	MDB_txn *txn;
	uint32_t schema = 0;
	int rc = ckr_st_txn_begin(s, false, &txn);

	if (rc)
		return rc;
	rc = mdb_dbi_open(txn, ckr_st_db_names[CKR_DB_META], 0, &s->dbi[CKR_DB_META]);
	if (rc == MDB_NOTFOUND)
		rc = -ENOENT; /* an environment the flusher has not set up yet */
	else if (rc == 0)
		rc = read_schema(txn, s->dbi[CKR_DB_META], &schema);
	else
		rc = ckr_st_err(rc);
	if (rc == 0 && schema != CKR_STORE_SCHEMA)
		rc = CKR_EVERSION; /* schema 1: the flusher migrates it */
	if (rc == 0)
		rc = open_dbs(s, txn, 0);
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return rc;
	}
	return ckr_st_txn_commit(s, txn);
}

/* ---- public ---- */

int ckr_store_open_rw(const char *dir, const ckr_store_rw_opts *opts,
		      ckr_store **out)
{
	ckr_store_rw_opts o = { 0 };
	ckr_env *e;
	int rc;

	if (!out)
		return -EINVAL;
	if (opts)
		o = *opts;
	char why[160];
	rc = ckr_store_check_dir(dir, o.shared_group, why, sizeof why);
	if (rc == 0)
		rc = env_get(dir, true, o.sync == CKR_SYNC_ALWAYS ? MDB_NOMETASYNC : MDB_NOSYNC,
			     o.map_size ? o.map_size : DEFAULT_MAP_SIZE,
			     o.shared_group ? ENV_MODE_SHARED : ENV_MODE, &e);
	if (rc)
		return rc;
	ckr_store *s = handle_new(e, false);
	if (!s) {
		env_put(e);
		return -ENOMEM;
	}
	s->keep_completed_s = o.keep_completed_s;
	pthread_mutex_lock(&dbi_lock);
	rc = init_rw(s, o.max_attempts, o.defer_max_attempts);
	pthread_mutex_unlock(&dbi_lock);
	if (rc) {
		ckr_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

int ckr_store_record_max_attempts(ckr_store *s, uint32_t max_attempts)
{
	MDB_txn *txn;
	int rc;

	if (!s)
		return -EINVAL;
	if (s->read_only)
		return -EROFS;
	uint32_t want = max_attempts ? max_attempts : DEFAULT_MAX_ATTEMPTS, have = 0;
	rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	if (ckr_st_get_u32(txn, s->dbi[CKR_DB_META], "max_attempts", &have) == 0 &&
	    have == want) {
		ckr_st_txn_abort(s, txn); /* already so: no commit, no fsync */
		return 0;
	}
	rc = ckr_st_err(ckr_st_put_u32(txn, s->dbi[CKR_DB_META], "max_attempts", want));
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return rc;
	}
	return ckr_st_txn_commit(s, txn);
}

int ckr_store_open(const char *dir, const ckr_store_opts *opts, ckr_store **out)
{
	ckr_store_opts o = { 0 };
	ckr_env *e;
	int rc;

	if (!out)
		return -EINVAL;
	if (opts)
		o = *opts;
	rc = check_data_file(dir ? dir : "");
	if (rc == 0)
		rc = env_get(dir, !o.read_only, 0,
			     o.map_size ? o.map_size : (o.read_only ? 0 : DEFAULT_MAP_SIZE),
			     ENV_MODE, &e);
	if (rc)
		return rc;
	ckr_store *s = handle_new(e, o.read_only);
	if (!s) {
		env_put(e);
		return -ENOMEM;
	}
	s->max_attempts = o.max_attempts;
	pthread_mutex_lock(&dbi_lock);
	rc = init_existing(s);
	pthread_mutex_unlock(&dbi_lock);
	if (rc) {
		ckr_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void ckr_store_close(ckr_store *s)
{
	if (!s)
		return;
	env_put(s->shared);
	free(s);
}

/* ---- the segment the store serves ---- */

static int bind_in(MDB_txn *txn, ckr_store *s, const char *name,
		   const uint8_t epoch[CKR_EPOCH_BYTES], bool *retired,
		   char bound[CKR_NAME_MAX + 1])
{
	MDB_dbi meta = s->dbi[CKR_DB_META];
	MDB_val k = { 7, "segment" }, v;
	size_t n = strlen(name);
	int rc = mdb_get(txn, meta, &k, &v);

	if (rc == 0 && (v.mv_size != n || memcmp(v.mv_data, name, n) != 0)) {
		if (bound) {
			size_t m = v.mv_size > CKR_NAME_MAX ? CKR_NAME_MAX : v.mv_size;
			memcpy(bound, v.mv_data, m);
			bound[m] = '\0';
		}
		return CKR_ESEGMENT;
	}
	if (rc == MDB_NOTFOUND) {
		v.mv_size = n;
		v.mv_data = (void *)name;
		rc = mdb_put(txn, meta, &k, &v, 0);
	}
	if (rc)
		return ckr_st_err(rc);
	uint8_t cur[CKR_EPOCH_BYTES];
	bool set;
	rc = ckr_st_current_epoch(txn, s, cur, &set);
	if (rc)
		return rc;
	*retired = set && memcmp(cur, epoch, CKR_EPOCH_BYTES) != 0;
	MDB_val ek = { 5, "epoch" }, ev = { CKR_EPOCH_BYTES, (void *)epoch };
	return ckr_st_err(mdb_put(txn, meta, &ek, &ev, 0));
}

int ckr_store_bind_segment(ckr_store *s, const char *name,
			   const uint8_t epoch[CKR_EPOCH_BYTES], bool *retired,
			   char bound[CKR_NAME_MAX + 1])
{
	MDB_txn *txn;
	bool r = false;
	int rc;

	if (!s || !name || !epoch)
		return -EINVAL;
	rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	rc = bind_in(txn, s, name, epoch, &r, bound);
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return rc;
	}
	rc = ckr_st_txn_commit(s, txn);
	if (rc == 0 && retired)
		*retired = r;
	return rc;
}
