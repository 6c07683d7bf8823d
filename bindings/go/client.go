package ckring

/*
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <ckring.h>

// What ckr_run_begin hands back, by value: nothing of it lives in Go memory,
// so the call passes no Go pointer that cgo would have to move to the heap.
typedef struct ckrgo_begun {
	int rc;
	ckr_run *run;
	ckr_ticket t;
} ckrgo_begun;

static ckrgo_begun ckrgo_begin(ckr_client *c, const uint8_t *id, size_t id_len,
			       int kind, const char *label, size_t label_len,
			       int has_label, const uint8_t *meta, size_t meta_len)
{
	ckrgo_begun o;
	char lab[CKR_LABEL_MAX + 1];
	ckr_run_spec s;

	memset(&o, 0, sizeof o);
	memset(&s, 0, sizeof s);
	if (label_len > CKR_LABEL_MAX) {
		o.rc = -EINVAL;
		return o;
	}
	s.id = id;
	s.id_len = id_len;
	s.kind = (ckr_kind)kind;
	if (has_label) {
		memcpy(lab, label, label_len);
		lab[label_len] = '\0';
		s.label = lab;
	}
	s.meta = meta;
	s.meta_len = meta_len;
	o.rc = ckr_run_begin(c, &s, &o.run, &o.t);
	return o;
}

static int ckrgo_wait(ckr_client *c, uint32_t lane, uint32_t slot, uint64_t pos,
		      uint64_t writer, int level, int timeout_ms)
{
	ckr_ticket t;

	t.lane = lane;
	t.slot = slot;
	t.pos = pos;
	t.writer = writer;
	return ckr_wait(c, &t, (ckr_level)level, timeout_ms);
}
*/
import "C"

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// ClientOptions are the options of Attach (ckr_client_opts). The zero value
// (or nil) asks for the defaults.
type ClientOptions struct {
	// BeginCheck, if set, is called by Begin before anything is pushed:
	// a non-nil error refuses the begin with it. (*store.Store).BeginCheck
	// refuses, with ErrExists, a run id its store already holds. Without
	// it Begin refuses only the runs open in this client; a duplicate it
	// cannot see is rejected by the flusher and reported by Wait on the
	// begin's ticket (ErrRejected).
	BeginCheck func(id string) error
	// MaxEventSize bounds each event, bytes; 0 = the segment's maximum.
	MaxEventSize uint32
	// MaxRunBytes bounds a run's events but its finish; 0 = 1 GiB.
	MaxRunBytes uint64
	// Lanes this client holds; 0 = 1. Runs are spread over them round
	// robin (each run keeps one), so goroutines driving different runs do
	// not share a ring tail.
	Lanes uint32
	// FinishLevel: Complete and Fail wait (bounded by their context) until
	// the finishing event reaches this level; 0 or LevelInRing = they
	// return as soon as it is pushed (it then survives this process).
	FinishLevel Level
}

// A Client is one process's producer attachment to a segment: its lanes,
// held with kernel locks that the kernel drops when the process dies. Make
// one per process and share it among all goroutines: every method may be
// called from any goroutine at once; Detach may be too (calls that race it
// fail with ErrHandleClosed, never touch freed memory).
type Client struct {
	segment     string
	beginCheck  func(string) error
	finishLevel Level

	closing atomic.Bool   // set first by Detach: Waits stop at their next slice
	mu      sync.RWMutex  // RLock: a call using h; Lock: Detach
	h       *C.ckr_client // nil once detached

	runsMu sync.Mutex
	runs   map[*Run]struct{} // open run handles, closed by Detach
}

// Attach attaches to the segment as a producer (ckr_client_attach): claims
// opts.Lanes free lanes (one by default) for this process.
//
// Errors: ErrInvalid (bad name or options, more lanes than the segment has),
// ErrNotFound (no such segment), ErrNotSegment, ErrVersion, ErrTruncated,
// -EACCES, ErrNoLane (every lane is taken), -EMFILE, -ENOMEM. Any goroutine;
// each call makes a new client (a process may hold several).
func Attach(segment string, opts *ClientOptions) (*Client, error) {
	var o C.ckr_client_opts
	c := &Client{segment: segment, runs: make(map[*Run]struct{})}
	if opts != nil {
		o.max_event_size = C.uint32_t(opts.MaxEventSize)
		o.max_run_bytes = C.uint64_t(opts.MaxRunBytes)
		o.lanes = C.uint32_t(opts.Lanes)
		c.beginCheck = opts.BeginCheck
		c.finishLevel = opts.FinishLevel
		if c.finishLevel != 0 && (c.finishLevel < LevelInRing || c.finishLevel > LevelReplicated) {
			return nil, &OpError{Op: "attach " + segment, Err: ErrInvalid}
		}
	}
	if strings.IndexByte(segment, 0) >= 0 {
		return nil, &OpError{Op: "attach " + segment, Err: ErrInvalid}
	}
	name := C.CString(segment)
	defer C.free(unsafe.Pointer(name))
	var h *C.ckr_client
	if rc := C.ckr_client_attach(name, &o, &h); rc != 0 {
		return nil, CodeError("attach "+segment, "", int(rc))
	}
	c.h = h
	return c, nil
}

// Segment is the name of the segment the client is attached to. It can't
// fail.
func (c *Client) Segment() string { return c.segment }

// Lane is the index of the client's (first) lane: tickets name the lane of
// each event; ckring-inspect reports per lane. 0 once detached.
func (c *Client) Lane() uint32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.h == nil {
		return 0
	}
	return uint32(C.ckr_client_lane(c.h))
}

// Detach closes every run handle of the client that is still open (writing
// nothing: their runs stay as they are), then frees its lanes
// (ckr_client_detach; events already pushed are still drained). A clean
// detach never makes this process's runs claimable: they stay RUNNING with
// a live owner until the process exits. Calls racing it fail with
// ErrHandleClosed; a Wait in progress returns within about 50 ms. A second
// Detach does nothing. It can't fail.
func (c *Client) Detach() {
	c.closing.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h == nil {
		return
	}
	c.runsMu.Lock()
	open := make([]*Run, 0, len(c.runs))
	for r := range c.runs {
		open = append(open, r)
	}
	c.runsMu.Unlock()
	for _, r := range open {
		r.Close()
	}
	C.ckr_client_detach(c.h)
	c.h = nil
}

// enter makes a call on the client: false once it is detached (or being
// detached). A true return must be paired with c.mu.RUnlock().
func (c *Client) enter() bool {
	if c.closing.Load() {
		return false
	}
	c.mu.RLock()
	if c.h == nil {
		c.mu.RUnlock()
		return false
	}
	return true
}

func (c *Client) forget(r *Run) {
	c.runsMu.Lock()
	delete(c.runs, r)
	c.runsMu.Unlock()
}

func (c *Client) track(r *Run) {
	c.runsMu.Lock()
	c.runs[r] = struct{}{}
	c.runsMu.Unlock()
}

// RunSpec names a new run (ckr_run_spec).
type RunSpec struct {
	ID    string // 1..64 bytes, any bytes
	Kind  Kind   // SingleLoop or MultiPhase
	Label string // code/version label, at most 255 bytes, no NUL; may be ""
	Meta  []byte // opaque caller metadata, kept with the run; may be nil
}

// BeginRun begins a new run (ckr_run_begin): pushes its begin event
// (sequence 0, incarnation 1) with a new writer id; the returned handle is
// the run's one writer. It never blocks: a full ring refuses at once.
//
// Errors: ErrInvalid (bad spec), ErrExists (a run with this id is open in
// this client, or the BeginCheck refused it: a run is never reset),
// ErrRingFull (nothing was begun: call again), ErrTooBig (metadata larger
// than an event may be), ErrSlots, -ENOMEM, the BeginCheck's error,
// ErrHandleClosed. Any goroutine.
func (c *Client) BeginRun(spec RunSpec) (*Run, Ticket, error) {
	if c == nil {
		return nil, Ticket{}, &OpError{Op: "begin", Run: spec.ID, Err: ErrInvalid}
	}
	if c.beginCheck != nil {
		if err := c.beginCheck(spec.ID); err != nil {
			return nil, Ticket{}, &OpError{Op: "begin", Run: spec.ID, Err: err}
		}
	}
	if strings.IndexByte(spec.Label, 0) >= 0 {
		return nil, Ticket{}, &OpError{Op: "begin", Run: spec.ID, Err: ErrInvalid}
	}
	if !c.enter() {
		return nil, Ticket{}, &OpError{Op: "begin", Run: spec.ID, Err: ErrHandleClosed}
	}
	defer c.mu.RUnlock()
	var meta *C.uint8_t
	if len(spec.Meta) > 0 {
		meta = (*C.uint8_t)(unsafe.Pointer(&spec.Meta[0]))
	}
	hasLabel := C.int(0)
	if spec.Label != "" {
		hasLabel = 1
	}
	o := C.ckrgo_begin(c.h, (*C.uint8_t)(strData(spec.ID)), C.size_t(len(spec.ID)), C.int(spec.Kind),
		(*C.char)(strData(spec.Label)), C.size_t(len(spec.Label)), hasLabel,
		meta, C.size_t(len(spec.Meta)))
	if o.rc != 0 {
		return nil, Ticket{}, CodeError("begin", spec.ID, int(o.rc))
	}
	r := &Run{c: c, h: o.run, id: spec.ID, kind: spec.Kind}
	c.track(r)
	return r, ticketOf(&o.t), nil
}

// Begin is the CheckpointerFactory port over BeginRun: it begins the run
// and returns its handle (a *Run) as a Checkpointer. A full ring is retried
// with a short backoff until ctx is done. Errors as BeginRun.
func (c *Client) Begin(ctx context.Context, spec RunSpec) (Checkpointer, error) {
	for backoff := time.Duration(0); ; {
		r, _, err := c.BeginRun(spec)
		if err == nil {
			return r, nil
		}
		if !isFull(err) {
			return nil, err
		}
		if backoff, err = pause(ctx, backoff, err); err != nil {
			return nil, err
		}
	}
}

// Claim is what a recovery claim hands back (ckr_claim; made by
// (*store.Store).Claim): pass it unchanged to Reopen.
type Claim struct {
	ID          string
	Kind        Kind
	Incarnation uint32 // the claim's incarnation: events carry it
	Writer      uint64 // the claim's writer id: events carry it
	OwnerToken  uint64 // the claiming process (pid + start time)
	OwnerNonce  uint64 // ... and its process image
	NextSeq     uint64 // the next sequence number of the run
	Bytes       uint64 // bytes stored so far (the run's budget)
	Attempts    uint32 // recoveries so far, this one included
	GapSeq      uint64 // 0, or the first missing sequence: rows past it were set aside
	SetAside    uint64 // rows this claim set aside
	Label       string
}

// Reopen reopens a claimed run so that it continues the SAME durable record
// (ckr_run_reopen): new events carry the claim's incarnation and writer and
// continue its sequence. Only the process that made the claim may reopen
// it, and only once: closing the run ends this process's writing of it.
// Writes nothing.
//
// Errors: ErrInvalid (a claim that is not one), ErrExists (the run is open
// in this client, or this process reopened the claim before), ErrNotClaimer (another process made the claim),
// ErrSlots, -ENOMEM, ErrHandleClosed. Any goroutine.
func (c *Client) Reopen(cl *Claim) (*Run, error) {
	if c == nil || cl == nil || len(cl.ID) == 0 || len(cl.ID) > RunIDMax || len(cl.Label) > LabelMax {
		id := ""
		if cl != nil {
			id = cl.ID
		}
		return nil, &OpError{Op: "reopen", Run: id, Err: ErrInvalid}
	}
	var x C.ckr_claim
	for i := 0; i < len(cl.ID); i++ {
		x.id[i] = C.uint8_t(cl.ID[i])
	}
	x.id_len = C.size_t(len(cl.ID))
	x.kind = C.ckr_kind(cl.Kind)
	x.incarnation = C.uint32_t(cl.Incarnation)
	x.writer = C.uint64_t(cl.Writer)
	x.owner_token = C.uint64_t(cl.OwnerToken)
	x.owner_nonce = C.uint64_t(cl.OwnerNonce)
	x.next_seq = C.uint64_t(cl.NextSeq)
	x.bytes = C.uint64_t(cl.Bytes)
	x.attempts = C.uint32_t(cl.Attempts)
	x.gap_seq = C.uint64_t(cl.GapSeq)
	x.set_aside = C.uint64_t(cl.SetAside)
	for i := 0; i < len(cl.Label); i++ {
		x.label[i] = C.char(cl.Label[i])
	}
	if !c.enter() {
		return nil, &OpError{Op: "reopen", Run: cl.ID, Err: ErrHandleClosed}
	}
	defer c.mu.RUnlock()
	var h *C.ckr_run
	if rc := C.ckr_run_reopen(c.h, &x, &h); rc != 0 {
		return nil, CodeError("reopen", cl.ID, int(rc))
	}
	r := &Run{c: c, h: h, id: cl.ID, kind: cl.Kind}
	c.track(r)
	return r, nil
}

// waitSlice bounds each C wait, so that cancellation and Detach are seen
// within it.
const waitSlice = 50 * time.Millisecond

// Wait waits until the ticket's event reached level (ckr_wait), at most
// until ctx is done: its deadline bounds the wait, its cancellation is seen
// within about 50 ms. It wakes the flusher if it sleeps. Not for the hot
// path. A ticket of any client of the same segment may be waited for.
//
// Returns nil: reached, and stored. Errors: ErrRejected (the flusher
// rejected the event: known once it is committed, whatever level was
// asked), ErrNoFlusher (no live flusher serves the segment, checked at
// least every 100 ms, also when it dies during the wait), ErrNoShipper
// (LevelReplicated: the event is committed, but no shipper serves the
// segment: ckring-ship is not running), ErrTimeout
// (ctx's deadline passed first; also matches context.DeadlineExceeded),
// context.Canceled (ctx was cancelled), ErrInvalid (bad ticket or level),
// ErrClosed (the ticket's run handle was closed and its slot reused: the
// outcome can't be told), ErrHandleClosed. A wait for LevelInRing, or on
// the ticket of a LeaveRunning finish (which pushes nothing), returns nil at
// once.
func (c *Client) Wait(ctx context.Context, t Ticket, level Level) error {
	if c == nil {
		return &OpError{Op: "wait", Err: ErrInvalid}
	}
	if !c.enter() {
		return &OpError{Op: "wait", Err: ErrHandleClosed}
	}
	defer c.mu.RUnlock()
	deadline, bounded := ctx.Deadline()
	for {
		ms := sliceMS(ctx, deadline, bounded)
		rc := C.ckrgo_wait(c.h, C.uint32_t(t.Lane), C.uint32_t(t.Slot), C.uint64_t(t.Pos),
			C.uint64_t(t.Writer), C.int(level), C.int(ms))
		if rc == 0 {
			return nil
		}
		if Errno(rc) != ErrTimeout {
			return CodeError("wait", "", int(rc))
		}
		if err := ctx.Err(); err != nil {
			if err == context.DeadlineExceeded {
				return &OpError{Op: "wait", Err: ErrTimeout}
			}
			return &OpError{Op: "wait", Err: err}
		}
		if bounded && !time.Now().Before(deadline) {
			return &OpError{Op: "wait", Err: ErrTimeout}
		}
		if c.closing.Load() {
			return &OpError{Op: "wait", Err: ErrHandleClosed}
		}
	}
}

// sliceMS is the timeout of the next C wait: 0 (a last look) once ctx is
// done or its deadline passed, else the time to the deadline rounded up to
// a millisecond, at most waitSlice.
func sliceMS(ctx context.Context, deadline time.Time, bounded bool) int {
	if ctx.Err() != nil {
		return 0
	}
	d := waitSlice
	if bounded {
		left := time.Until(deadline)
		if left <= 0 {
			return 0
		}
		if left < d {
			d = left
		}
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// strData is the address of s's bytes, for C to read during one call (Go
// strings hold no pointers, and C never keeps them).
func strData(s string) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&s))
}

// pause sleeps before retrying a full ring: 10 µs doubling to 1 ms. It
// returns the next backoff, or last wrapped with ctx's error once ctx is
// done.
func pause(ctx context.Context, backoff time.Duration, last error) (time.Duration, error) {
	if backoff == 0 {
		backoff = 10 * time.Microsecond
	} else if backoff < time.Millisecond {
		backoff *= 2
	}
	t := time.NewTimer(backoff)
	select {
	case <-ctx.Done():
		t.Stop()
		return 0, &fullError{last: last, ctx: ctx.Err()}
	case <-t.C:
		return backoff, nil
	}
}

// fullError is a push that found the ring full until its context ended: it
// matches both ErrRingFull (through the last error) and the context's error.
type fullError struct {
	last error
	ctx  error
}

func (e *fullError) Error() string { return e.last.Error() + " (until: " + e.ctx.Error() + ")" }
func (e *fullError) Unwrap() error { return e.last }
func (e *fullError) Is(target error) bool {
	return target == e.ctx || (e.ctx == context.DeadlineExceeded && target == ErrTimeout)
}
