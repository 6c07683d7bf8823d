package ckring

/*
#cgo pkg-config: ckring
#include <errno.h>
#include <ckring.h>
*/
import "C"

import (
	"context"
	"errors"
	"strconv"
	"syscall"
)

// Errno is an error code of the C library: a negative errno value or one of
// its CKR_E* codes, exactly as a ckring function returned it. Its text is
// ckr_strerror's. An Errno made from a negative errno value also matches the
// syscall.Errno of that value (errors.Is(err, syscall.EAGAIN)), and so the
// portable errors that one matches (errors.Is(err, fs.ErrNotExist) for
// -ENOENT). ErrTimeout also matches context.DeadlineExceeded.
type Errno int

// Error returns ckr_strerror's description. It can't fail.
func (e Errno) Error() string {
	return "ckring: " + C.GoString(C.ckr_strerror(C.int(e)))
}

// Is reports whether e matches target: an Errno of the same code, the
// syscall.Errno of a negative errno value (and what that one matches), or
// context.DeadlineExceeded for ErrTimeout.
func (e Errno) Is(target error) bool {
	switch t := target.(type) {
	case Errno:
		return e == t
	case syscall.Errno:
		return e < 0 && e > -4096 && syscall.Errno(-e) == t
	}
	if e == ErrTimeout && target == context.DeadlineExceeded {
		return true
	}
	if e < 0 && e > -4096 {
		return syscall.Errno(-e).Is(target)
	}
	return false
}

// Timeout reports whether e is ErrTimeout (as net.Error and
// context.DeadlineExceeded do).
func (e Errno) Timeout() bool { return e == ErrTimeout }

// Temporary reports whether the call may succeed if it is simply made again
// later: a full ring, or a claim of a run whose dead writer's events the
// flusher has not drained yet.
func (e Errno) Temporary() bool { return e == ErrRingFull || e == ErrNotDrained }

// ckring's own codes (ckring.h, "ckring's own error codes").
const (
	ErrNotSegment     = Errno(C.CKR_ENOTSEG)         // the object is not a ckring segment
	ErrVersion        = Errno(C.CKR_EVERSION)        // made by another layout or schema version
	ErrTruncated      = Errno(C.CKR_ETRUNC)          // the object is smaller than its header says
	ErrForked         = Errno(C.CKR_EFORKED)         // handle used in a forked child
	ErrCorrupt        = Errno(C.CKR_ECORRUPT)        // bytes failed validation
	ErrClaimed        = Errno(C.CKR_ECLAIMED)        // the run is claimed by another live process
	ErrNotDrained     = Errno(C.CKR_ENOTDRAINED)     // the dead writer's events are still in the ring: retry
	ErrExhausted      = Errno(C.CKR_EEXHAUSTED)      // recovery attempts exhausted: the run is now failed
	ErrTerminal       = Errno(C.CKR_ETERMINAL)       // the run has already finished
	ErrNotInterrupted = Errno(C.CKR_ENOTINTERRUPTED) // the run is running and its owner lives
	ErrRejected       = Errno(C.CKR_EREJECTED)       // the flusher rejected the event: the run has another writer, had ended or does not exist
	ErrNotClaimer     = Errno(C.CKR_ENOTCLAIMER)     // reopen by a process that did not claim the run
	ErrSegment        = Errno(C.CKR_ESEGMENT)        // the store serves another segment
	ErrSlots          = Errno(C.CKR_ESLOTS)          // every writer slot of the lane is in use
	ErrClosed         = Errno(C.CKR_ECLOSED)         // the ticket's run handle was closed and its slot reused
	ErrUnsafe         = Errno(C.CKR_EUNSAFE)         // the store directory or a file in it can't be trusted (a symbolic link, another owner, writable by others)
	ErrNoShipper      = Errno(C.CKR_ENOSHIPPER)      // LevelReplicated asked, but no shipper serves the segment (the event is committed locally)
	ErrMoved          = Errno(C.CKR_EMOVED)          // the run moved to another host (a shared database says so): it is not driven here
	ErrNotLost        = Errno(C.CKR_ENOTLOST)        // the run's host is alive (not declared lost, its lease has not expired)
)

// The errno values ckring gives one meaning each (ckring.h).
const (
	ErrRingFull  = Errno(-C.EAGAIN)    // the ring is full: nothing was pushed, push again later
	ErrNoFlusher = Errno(-C.EPIPE)     // no live flusher serves the segment (Wait)
	ErrTimeout   = Errno(-C.ETIMEDOUT) // the wait's deadline passed first (matches context.DeadlineExceeded)
	ErrTooBig    = Errno(-C.E2BIG)     // larger than an event may be
	ErrRunFull   = Errno(-C.EFBIG)     // the run's byte limit would be exceeded
	ErrExists    = Errno(-C.EEXIST)    // the run is open in this client, or the store has it
	ErrInvalid   = Errno(-C.EINVAL)    // a bad argument (name, spec, kind, level, ticket)
	ErrNoLane    = Errno(-C.EUSERS)    // every lane of the segment is taken
	ErrNotFound  = Errno(-C.ENOENT)    // no such segment, store or run
	ErrBusy      = Errno(-C.EBUSY)     // busy: another flusher serves the segment
	ErrReadOnly  = Errno(-C.EROFS)     // the store was opened read-only
)

// ErrHandleClosed is returned by a call on a Client, Run or Store that was
// already closed (Detach, Close). It has no C code: the binding refuses the
// call before it reaches the library.
var ErrHandleClosed = errors.New("ckring: use of a closed handle")

// ErrShutdown is the cancellation cause that means "the host is shutting
// down": ClassifyOutcome leaves such a run RUNNING for boot recovery. Match
// it with errors.Is (a cause may wrap it).
var ErrShutdown = errors.New("ckring: host shutting down")

// OpError is the error of a call: which operation, on which run (if any),
// and why (an Errno, ErrHandleClosed or a context error). errors.Is and
// errors.As see through it.
type OpError struct {
	Op  string // "attach", "begin", "message", "wait", "claim", ...
	Run string // the run id, or ""
	Err error
}

func (e *OpError) Error() string {
	s := e.Op
	if e.Run != "" {
		s += " " + quoteID(e.Run)
	}
	return s + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// CodeError wraps a C return code rc (non-zero) as an *OpError of op on run.
// Packages built over this one (ckring.dev/ckring/store) report their C
// errors through it.
func CodeError(op, run string, rc int) error {
	return &OpError{Op: op, Run: run, Err: Errno(rc)}
}

// quoteID shows a run id: as is when it is printable ASCII, else quoted.
func quoteID(id string) string {
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return strconv.Quote(id)
		}
	}
	return id
}
