// Package store is the store side of the Go binding of ckring, over the C
// library's ckring_store.h (libckring-store, found with pkg-config
// "ckring-store"; it links LMDB): the flusher's LMDB store of runs and their
// events, and the recovery a host does at boot — list the interrupted runs,
// claim each (atomically: the loser of a race gets ckring.ErrClaimed),
// load its resume state, reopen the same record (ckring.Client.Reopen) and
// continue it. Recover does all of it, the seed's boot path:
//
//	st, err := store.Open("/var/lib/ckring", nil)
//	c, err := ckring.Attach("jobs", &ckring.ClientOptions{BeginCheck: st.BeginCheck})
//	rep, err := store.Recover(ctx, st, c, func(ctx context.Context, rec *store.Recovered) error {
//		// ctx carries rec's ResumeState and rec.Run as the existing
//		// Checkpointer: run the executor as for a new run.
//		return executor.Run(ctx, specOf(rec))
//	}, nil)
//
// # Caveats
//
//   - One store, one segment: a store serves the segment of its flusher; the
//     client given to Recover must be attached to that segment.
//   - The store is made by the flusher (ckring-flusher --db DIR); Open of a
//     directory it has not set up is ErrNotFound. Opening the same
//     directory twice in one process shares one LMDB environment.
//   - A claim makes this process the run's one writer: only this process
//     may reopen it. A claim succeeds only once the flusher drained every
//     lane of the run's dead writer (ckring.ErrNotDrained until then, which
//     Recover retries for a bounded time), so a claim never fences out an
//     event that was accepted into the ring.
//   - Goroutines: a Store may be used by all goroutines at once; Close may
//     race other calls (they then fail with ckring.ErrHandleClosed). The C
//     library opens LMDB with MDB_NOTLS, so calls need no locked OS thread.
//
// Errors are those of package ckring (an *ckring.OpError around a
// ckring.Errno), matched with errors.Is.
package store
