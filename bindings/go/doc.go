// Package ckring is the Go binding of ckring, a lock-free shared-memory
// checkpoint ring for in-host durable recovery: executor goroutines push
// checkpoint events of their runs (a begin, transcript messages or
// completed phases, an end) into a lane of a POSIX shared-memory segment,
// never blocking and without a system call; a flusher process
// (ckring-flusher) drains the lanes into an LMDB store; at boot a host lists
// the interrupted runs, claims each and resumes it from its saved state
// (package ckring.dev/ckring/store).
//
// This package is the producer side, over the C library's public header
// ckring.h (libckring, found with pkg-config "ckring"; no LMDB is linked).
// The store, the recovery calls and Recover are in ckring.dev/ckring/store
// (libckring-store, pkg-config "ckring-store"), so that an executor that
// only pushes does not link the store.
//
// # Using it
//
//	c, err := ckring.Attach("jobs", nil)                  // one per process
//	defer c.Detach()
//	cp, err := c.Begin(ctx, ckring.RunSpec{ID: "run-42", Kind: ckring.SingleLoop, Label: "agent v1.3"})
//	defer cp.Close()
//	t, err := cp.AppendMessage(ctx, msg)                 // in the ring: survives this process
//	err = cp.Wait(ctx, t, ckring.LevelCommitted)         // optional: in LMDB
//	_, err = ckring.FinalizeCheckpoint(ctx, cp, runErr, cause)
//
// An executor written as the seed's takes the Checkpointer a recovery
// host put in its context instead of beginning a new record, and continues
// from the ResumeState:
//
//	cp := ckring.ExistingCheckpointerFromContext(ctx)
//	if cp == nil {
//		cp, err = factory.Begin(ctx, spec)
//	}
//	history, err := ckring.DecodeHistory[Message](ckring.ResumeStateFromContext(ctx))
//
// # Caveats (read these first)
//
//   - Goroutines: one Client may (and should) be shared by every goroutine of
//     a process; all its methods may be called at once. A Run may be used by
//     several goroutines at once: sequence numbers are assigned atomically
//     and never repeat, and each goroutine's events keep its order. Unlike
//     the C API, Run.Close and Client.Detach may race other calls: the calls
//     they overtake fail with ErrHandleClosed (a push in progress finishes
//     first; a Wait in progress returns within about 50 ms); nothing ever
//     touches freed memory. Detach closes the client's open runs.
//   - One writer per run: the process that began a run, or the process that
//     last claimed it, is its only writer. Events of any other writer (a
//     duplicate begin, a writer fenced by a claim) are rejected by the
//     flusher and never change the run; Wait on them returns ErrRejected.
//   - Durability: a push that returned nil is in the ring: it survives the
//     death of this process. Wait waits until the flusher committed it to
//     LMDB (LevelCommitted: survives every process) or fsync'd it
//     (LevelSynced: survives power loss), or until ckring-ship shipped it
//     to the shared PostgreSQL (LevelReplicated: survives the loss of the
//     host; ErrNoShipper when no shipper runs), and tells stored from
//     rejected.
//   - A full ring refuses at once (ErrRingFull); nothing accepted is ever
//     dropped. The raw pushes (Run.Message, Run.Phase, Run.Finish,
//     Client.BeginRun) never block; the Checkpointer port (AppendMessage,
//     RecordPhase, Complete, Fail, Client.Begin) retries a full ring with a
//     short backoff until its context is done.
//   - The push path copies nothing but into the ring and allocates nothing:
//     Go memory is passed to C for the duration of the call only (it must
//     hold no Go pointers: []byte and string do not), never kept, never
//     pinned. What cgo itself adds is measured by bindings/go/bench.sh.
//   - Processes: handles belong to the process that made them. Go programs
//     do not fork; a process started by os/exec is a new process and must
//     Attach its own client (its parent's lanes and runs are not its own).
//     A process that exits or execs without Detach leaves its lanes: the
//     kernel drops their locks, the flusher drains them and the runs they
//     wrote become interrupted, for the next boot to recover. Do not close
//     file descriptors you did not open: ckring holds one per lane.
//   - The library never prints: errors are values, and FinalizeCheckpoint
//     returns what the seed would log.
//
// # Errors
//
// Every error of a call is an *OpError (which operation, which run) around
// an Errno, the C library's code (a negative errno value or a CKR_E* code),
// ErrHandleClosed, or a context error. Match them with errors.Is:
//
//	errors.Is(err, ckring.ErrClaimed)     // another live process claimed the run
//	errors.Is(err, ckring.ErrRingFull)    // also syscall.EAGAIN
//	errors.Is(err, ckring.ErrTimeout)     // also context.DeadlineExceeded
//
// # Building
//
// The C library is found with pkg-config, as a C program finds it: after
// `make install` (PREFIX=/usr/local by default) `go build` works as is; for
// another prefix, set PKG_CONFIG_PATH=PREFIX/lib/pkgconfig (and, to run,
// LD_LIBRARY_PATH=PREFIX/lib unless PREFIX/lib is a system library
// directory). The module is ckring.dev/ckring, stdlib only, Go 1.19 or
// later; it is not served by a module proxy: use it through a replace
// directive (replace ckring.dev/ckring => /path/to/ckring/bindings/go) or a
// go.work, as examples/go does.
package ckring
