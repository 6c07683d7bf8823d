/*
 * peers.h — what a user would do instead of ckring, measured with their own
 * libraries directly: one LMDB or SQLite transaction per event, and LMDB's
 * ceiling (large append batches).
 *
 *   lmdb.direct.sync / .nosync  one write txn per event (mdb_put +
 *                               mdb_txn_commit), default sync vs MDB_NOSYNC
 *   lmdb.batch.sync             one txn of 8192 MDB_APPEND puts (the
 *                               flusher's batch limit), fsync'd; per batch
 *   sqlite.direct.sync          SQLite in WAL mode, one transaction per event
 *                               (BEGIN; INSERT; COMMIT), synchronous=FULL:
 *                               every commit fsyncs the WAL
 *   sqlite.direct.normal        the same with synchronous=NORMAL: the WAL is
 *                               fsync'd only at checkpoints (durable across a
 *                               process crash, not a power loss)
 *
 * Each measurement makes a fresh database in a directory under --dir and
 * removes it after; writes per measurement are capped (200 000 events).
 * @return 0, or -1 with the error line set (bench_fail).
 */
#ifndef BENCH_PEERS_H
#define BENCH_PEERS_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"

int bench_lmdb_direct(bench *b, uint32_t size, bool sync);
int bench_lmdb_batch(bench *b, uint32_t size);
int bench_sqlite_direct(bench *b, uint32_t size, bool full);

#endif /* BENCH_PEERS_H */
