package ckring

/*
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <ckring.h>

// A push's result by value (see ckrgo_begun in client.go).
typedef struct ckrgo_push {
	int rc;
	ckr_ticket t;
} ckrgo_push;

// The handle comes as an integer: a pointer to an incomplete C type would be
// boxed on the Go heap by cgo's argument checks, once per call. The payload
// comes as a pointer to bytes: a type that holds no pointers, so cgo needs
// no run-time check that the Go memory behind it holds none (it would for a
// void *).
static ckrgo_push ckrgo_message(uintptr_t r, const uint8_t *msg, size_t len)
{
	ckrgo_push o;

	o.rc = ckr_run_message((ckr_run *)r, msg, len, &o.t);
	return o;
}

// ckr_run_phase wants a NUL-terminated name: copy it (a Go string is not),
// on the stack when it is short.
static ckrgo_push ckrgo_phase(uintptr_t r, uint32_t index, const char *name,
			      size_t name_len, const uint8_t *out, size_t len)
{
	ckrgo_push o;
	char small[256];
	char *n = small;

	if (name_len >= sizeof small && !(n = malloc(name_len + 1))) {
		o.rc = -ENOMEM;
		return o;
	}
	memcpy(n, name, name_len);
	n[name_len] = '\0';
	o.rc = ckr_run_phase((ckr_run *)r, index, n, out, len, &o.t);
	if (n != small)
		free(n);
	return o;
}

static ckrgo_push ckrgo_finish(uintptr_t r, int outcome, const char *err,
			       size_t err_len, int has_err)
{
	ckrgo_push o;
	char *e = NULL;

	if (has_err) {
		if (!(e = malloc(err_len + 1))) {
			o.rc = -ENOMEM;
			return o;
		}
		memcpy(e, err, err_len);
		e[err_len] = '\0';
	}
	o.rc = ckr_run_finish((ckr_run *)r, (ckr_outcome)outcome, e, &o.t);
	free(e);
	return o;
}

// The cheapest cgo call, for the benchmarks: what the transition itself
// costs on this machine.
static int ckrgo_noop(uintptr_t x)
{
	return (int)x;
}

// What ckr_classify_outcome says (the tests check ClassifyOutcome by it).
static int ckrgo_classify(int failed, int cause)
{
	return (int)ckr_classify_outcome(failed != 0, (ckr_cause)cause);
}
*/
import "C"

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Limits of ckring.h.
const (
	RunIDMax = C.CKR_RUN_ID_MAX // run ids are 1..64 bytes
	LabelMax = C.CKR_LABEL_MAX  // a run's code/version label
	NameMax  = C.CKR_NAME_MAX   // a segment name
)

// Kind is a run's kind (ckr_kind).
type Kind int

const (
	SingleLoop Kind = C.CKR_KIND_SINGLE_LOOP // checkpoints its transcript (messages)
	MultiPhase Kind = C.CKR_KIND_MULTI_PHASE // checkpoints each completed phase
)

func (k Kind) String() string {
	switch k {
	case SingleLoop:
		return "single-loop"
	case MultiPhase:
		return "multi-phase"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Level is a durability level a ticket can be waited for (ckr_level).
type Level int

const (
	LevelInRing    Level = C.CKR_LEVEL_IN_RING   // in shared memory: true once the push returned
	LevelCommitted Level = C.CKR_LEVEL_COMMITTED // committed to LMDB by the flusher
	LevelSynced    Level = C.CKR_LEVEL_SYNCED    // committed and fsync'd
	// committed, and shipped to the shared PostgreSQL by ckring-ship
	// (survives the loss of the host; implies LevelCommitted, not
	// LevelSynced). Wait returns ErrNoShipper when no shipper serves the
	// segment.
	LevelReplicated Level = C.CKR_LEVEL_REPLICATED
)

// Outcome is how a run is finished (ckr_outcome).
type Outcome int

const (
	OutcomeComplete     Outcome = C.CKR_OUTCOME_COMPLETE      // a complete event: record and events are cleared
	OutcomeLeaveRunning Outcome = C.CKR_OUTCOME_LEAVE_RUNNING // nothing is written: boot recovery picks it up
	OutcomeFail         Outcome = C.CKR_OUTCOME_FAIL          // a fail event: terminal, kept with its error
)

func (o Outcome) String() string {
	switch o {
	case OutcomeComplete:
		return "complete"
	case OutcomeLeaveRunning:
		return "leave-running"
	case OutcomeFail:
		return "fail"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Ticket is what a push returns (ckr_ticket): where its record ends in which
// lane, and which writer (slot) pushed it, so that Wait can tell stored from
// rejected. A plain value: copy it freely, across goroutines too.
type Ticket struct {
	Lane   uint32
	Slot   uint32
	Pos    uint64
	Writer uint64
}

func ticketOf(t *C.ckr_ticket) Ticket {
	return Ticket{Lane: uint32(t.lane), Slot: uint32(t.slot), Pos: uint64(t.pos), Writer: uint64(t.writer)}
}

// A Run is a handle of one run in this process: its one writer. Any number
// of goroutines may push through one Run at once (sequence numbers are
// assigned atomically and never repeat; each goroutine's events keep its
// order); Close may race them too: the calls it overtakes fail with
// ErrHandleClosed. A Run implements Checkpointer.
// It belongs to the process that made it.
type Run struct {
	c    *Client
	id   string
	kind Kind

	mu sync.RWMutex // RLock: a call using h; Lock: Close
	h  *C.ckr_run   // nil once closed
}

// handle is h for the C helpers (see ckrgo_message); under r.mu.
func (r *Run) handle() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(r.h))) }

// ID is the run's id. It can't fail.
func (r *Run) ID() string { return r.id }

// Kind is the run's kind. It can't fail.
func (r *Run) Kind() Kind { return r.kind }

// Client is the client the run was begun or reopened in.
func (r *Run) Client() *Client { return r.c }

// NextSeq is the run's next sequence number (the number of its events so
// far, the begin included); 0 once closed.
func (r *Run) NextSeq() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.h == nil {
		return 0
	}
	return uint64(C.ckr_run_next_seq(r.h))
}

// Message appends one transcript message (single-loop runs;
// ckr_run_message). The push path: lock-free, no system call, no copy but
// into the ring, no allocation; msg is read during the call only. It never
// blocks: a full ring refuses at once.
//
// Errors: ErrRingFull (counted in the segment; nothing was pushed),
// ErrTooBig (larger than the event limit), ErrRunFull (the run's byte limit
// would be exceeded), ErrInvalid (wrong kind), ErrTerminal (the run was
// finished), ErrCorrupt (the lane's shared positions were scribbled),
// ErrHandleClosed. Any goroutine.
func (r *Run) Message(msg []byte) (Ticket, error) {
	if r == nil {
		return Ticket{}, &OpError{Op: "message", Err: ErrInvalid}
	}
	var p *C.uint8_t
	if len(msg) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&msg[0]))
	}
	r.mu.RLock()
	if r.h == nil {
		r.mu.RUnlock()
		return Ticket{}, &OpError{Op: "message", Run: r.id, Err: ErrHandleClosed}
	}
	o := C.ckrgo_message(r.handle(), p, C.size_t(len(msg)))
	r.mu.RUnlock()
	if o.rc != 0 {
		return Ticket{}, CodeError("message", r.id, int(o.rc))
	}
	return ticketOf(&o.t), nil
}

// Phase records a completed phase (multi-phase runs; ckr_run_phase): its
// 0-based index, its name (no NUL) and its output. As Message: no allocation
// (a name of 256 bytes or more is copied through the C heap), never blocks.
// Errors as Message; ErrInvalid also for a name holding a NUL.
func (r *Run) Phase(index uint32, name string, output []byte) (Ticket, error) {
	if r == nil {
		return Ticket{}, &OpError{Op: "phase", Err: ErrInvalid}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return Ticket{}, &OpError{Op: "phase", Run: r.id, Err: ErrInvalid}
	}
	var p *C.uint8_t
	if len(output) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&output[0]))
	}
	r.mu.RLock()
	if r.h == nil {
		r.mu.RUnlock()
		return Ticket{}, &OpError{Op: "phase", Run: r.id, Err: ErrHandleClosed}
	}
	o := C.ckrgo_phase(r.handle(), C.uint32_t(index), (*C.char)(strData(name)), C.size_t(len(name)),
		p, C.size_t(len(output)))
	r.mu.RUnlock()
	if o.rc != 0 {
		return Ticket{}, CodeError("phase", r.id, int(o.rc))
	}
	return ticketOf(&o.t), nil
}

// Finish finishes the run (ckr_run_finish): OutcomeComplete pushes a
// complete event, OutcomeFail a fail event carrying errText (cut at a NUL);
// OutcomeLeaveRunning pushes nothing (its ticket waits as reached). Never
// refused for the run's byte budget; never blocks. After it returned nil,
// pushes fail with ErrTerminal.
//
// Errors: ErrRingFull (the run is not finished: call again), ErrTooBig
// (errText longer than an event may be), ErrTerminal (already finished),
// ErrInvalid (bad outcome), ErrHandleClosed. Any goroutine.
func (r *Run) Finish(outcome Outcome, errText string) (Ticket, error) {
	if r == nil {
		return Ticket{}, &OpError{Op: "finish", Err: ErrInvalid}
	}
	hasErr := C.int(0)
	if outcome == OutcomeFail {
		hasErr = 1
	}
	r.mu.RLock()
	if r.h == nil {
		r.mu.RUnlock()
		return Ticket{}, &OpError{Op: "finish", Run: r.id, Err: ErrHandleClosed}
	}
	o := C.ckrgo_finish(r.handle(), C.int(outcome), (*C.char)(strData(errText)), C.size_t(len(errText)), hasErr)
	r.mu.RUnlock()
	if o.rc != 0 {
		return Ticket{}, CodeError("finish", r.id, int(o.rc))
	}
	return ticketOf(&o.t), nil
}

// Close frees the handle (ckr_run_close): writes nothing, the run's record
// stays as it is (a run closed without finishing stays RUNNING). Waits on
// its tickets still tell stored from rejected until the flusher passed them.
// Pushes in progress finish first; later calls fail with ErrHandleClosed. A
// second Close does nothing. It returns nil.
func (r *Run) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == nil {
		return nil
	}
	C.ckr_run_close(r.h)
	r.h = nil
	r.c.forget(r)
	return nil
}

// Wait waits for one of the run's tickets: Client.Wait.
func (r *Run) Wait(ctx context.Context, t Ticket, level Level) error {
	if r == nil {
		return &OpError{Op: "wait", Err: ErrInvalid}
	}
	return r.c.Wait(ctx, t, level)
}

// AppendMessage is the Checkpointer port over Message: a full ring is
// retried with a short backoff until ctx is done (then the error matches
// both ErrRingFull and ctx's error). Nothing else of ctx is used: the push
// itself never waits.
func (r *Run) AppendMessage(ctx context.Context, msg []byte) (Ticket, error) {
	for backoff := time.Duration(0); ; {
		t, err := r.Message(msg)
		if err == nil || !isFull(err) {
			return t, err
		}
		if backoff, err = pause(ctx, backoff, err); err != nil {
			return Ticket{}, err
		}
	}
}

// RecordPhase is the Checkpointer port over Phase, retrying a full ring as
// AppendMessage does. ErrInvalid for an index outside uint32.
func (r *Run) RecordPhase(ctx context.Context, p PhaseOutput) (Ticket, error) {
	if p.Index < 0 || uint64(p.Index) > uint64(^uint32(0)) {
		return Ticket{}, &OpError{Op: "phase", Run: r.ID(), Err: ErrInvalid}
	}
	for backoff := time.Duration(0); ; {
		t, err := r.Phase(uint32(p.Index), p.Name, p.Output)
		if err == nil || !isFull(err) {
			return t, err
		}
		if backoff, err = pause(ctx, backoff, err); err != nil {
			return Ticket{}, err
		}
	}
}

// Complete finishes the run as completed (the record and its events are
// cleared), retrying a full ring until ctx is done, then waits (bounded by
// ctx) for the client's FinishLevel. ErrTerminal if it had finished.
func (r *Run) Complete(ctx context.Context) error {
	return r.finishPort(ctx, OutcomeComplete, "")
}

// Fail finishes the run as failed, keeping runErr's text (at most 4 KiB of
// it) as its error; otherwise as Complete.
func (r *Run) Fail(ctx context.Context, runErr error) error {
	text := "failed"
	if runErr != nil {
		text = runErr.Error()
	}
	return r.finishPort(ctx, OutcomeFail, cutText(text, maxFailText))
}

// maxFailText bounds the error text a fail event carries (the store keeps
// 255 bytes of it in its run summary, and all of it in the event).
const maxFailText = 4096

func (r *Run) finishPort(ctx context.Context, o Outcome, text string) error {
	for backoff := time.Duration(0); ; {
		t, err := r.Finish(o, text)
		if err == nil {
			if r.c.finishLevel > LevelInRing {
				return r.c.Wait(ctx, t, r.c.finishLevel)
			}
			return nil
		}
		if !isFull(err) {
			return err
		}
		if backoff, err = pause(ctx, backoff, err); err != nil {
			return err
		}
	}
}

// cutText cuts s to at most n bytes at a UTF-8 boundary, without NULs.
func cutText(s string, n int) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isFull(err error) bool {
	e, ok := err.(*OpError)
	return ok && e.Err == ErrRingFull
}

// cClassify is ckr_classify_outcome (for the tests: ClassifyOutcome must
// agree with the C library).
func cClassify(failed bool, cause int) Outcome {
	f := C.int(0)
	if failed {
		f = 1
	}
	return Outcome(C.ckrgo_classify(f, C.int(cause)))
}

// cNoop is an empty C call (BenchmarkCgoNoop: the floor of any cgo call).
func cNoop(x uintptr) int { return int(C.ckrgo_noop(C.uintptr_t(x))) }

// The C causes (ckr_cause), for cClassify.
const (
	cCauseNone         = C.CKR_CAUSE_NONE
	cCauseShutdown     = C.CKR_CAUSE_SHUTDOWN
	cCauseDeadline     = C.CKR_CAUSE_DEADLINE
	cCauseCallerCancel = C.CKR_CAUSE_CALLER_CANCEL
	cCauseCriticKill   = C.CKR_CAUSE_CRITIC_KILL
)
