package ckring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ckring.dev/ckring"
	"ckring.dev/ckring/internal/testenv"
)

// bg is a context bounded by the tests' bound.
func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Bound)
	t.Cleanup(cancel)
	return ctx
}

// served is a fresh segment served by a real flusher, and its store dir.
func served(t *testing.T, args ...string) (string, string, *testenv.Flusher) {
	seg, db := testenv.Segment(t), t.TempDir()
	if len(args) == 0 {
		args = testenv.DefaultFlusherArgs
	}
	return seg, db, testenv.StartFlusher(t, seg, db, args...)
}

func attach(t *testing.T, seg string, o *ckring.ClientOptions) *ckring.Client {
	t.Helper()
	c, err := ckring.Attach(seg, o)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	t.Cleanup(c.Detach)
	return c
}

func begin(t *testing.T, c *ckring.Client, id string, k ckring.Kind) *ckring.Run {
	t.Helper()
	r, _, err := c.BeginRun(ckring.RunSpec{ID: id, Kind: k, Label: "go-test/1"})
	if err != nil {
		t.Fatalf("begin %s: %v", id, err)
	}
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want an error matching %v", what, err, target)
	}
}

var allCodes = []ckring.Errno{
	ckring.ErrNotSegment, ckring.ErrVersion, ckring.ErrTruncated, ckring.ErrForked,
	ckring.ErrCorrupt, ckring.ErrClaimed, ckring.ErrNotDrained, ckring.ErrExhausted,
	ckring.ErrTerminal, ckring.ErrNotInterrupted, ckring.ErrRejected, ckring.ErrNotClaimer,
	ckring.ErrSegment, ckring.ErrSlots, ckring.ErrClosed, ckring.ErrRingFull,
	ckring.ErrNoFlusher, ckring.ErrTimeout, ckring.ErrTooBig, ckring.ErrRunFull,
	ckring.ErrExists, ckring.ErrInvalid, ckring.ErrNoLane, ckring.ErrNotFound,
	ckring.ErrBusy, ckring.ErrReadOnly, ckring.ErrUnsafe, ckring.ErrNoShipper, ckring.ErrMoved,
	ckring.ErrNotLost,
}

// Every code has its own ckr_strerror text and is matched through an
// OpError, and by nothing else of the list.
func TestErrnoIsAndText(t *testing.T) {
	seen := map[string]ckring.Errno{}
	for _, e := range allCodes {
		text := e.Error()
		if strings.Contains(text, "unknown error") || !strings.HasPrefix(text, "ckring: ") {
			t.Errorf("%d: text %q", int(e), text)
		}
		if o, dup := seen[text]; dup {
			t.Errorf("%d and %d share the text %q", int(o), int(e), text)
		}
		seen[text] = e
		wrapped := fmt.Errorf("outer: %w", ckring.CodeError("op", "run-1", int(e)))
		if !errors.Is(wrapped, e) {
			t.Errorf("%v not matched through OpError", e)
		}
		for _, other := range allCodes {
			if other != e && errors.Is(wrapped, other) {
				t.Errorf("%v matches %v", e, other)
			}
		}
	}
	if got := ckring.CodeError("claim", "run-1", int(ckring.ErrClaimed)).Error(); got !=
		"claim run-1: ckring: run already claimed by another live process" {
		t.Errorf("OpError text: %q", got)
	}
	if got := ckring.CodeError("get", "a\x00b", int(ckring.ErrNotFound)).Error(); !strings.HasPrefix(got, `get "a\x00b": `) {
		t.Errorf("OpError text of a binary id: %q", got)
	}
}

func TestErrnoMatchesSystemErrors(t *testing.T) {
	wantIs(t, "ring full", ckring.ErrRingFull, syscall.EAGAIN)
	wantIs(t, "no flusher", ckring.ErrNoFlusher, syscall.EPIPE)
	wantIs(t, "not found", ckring.ErrNotFound, fs.ErrNotExist)
	wantIs(t, "exists", ckring.ErrExists, fs.ErrExist)
	wantIs(t, "timeout", ckring.ErrTimeout, context.DeadlineExceeded)
	wantIs(t, "timeout", ckring.ErrTimeout, syscall.ETIMEDOUT)
	if errors.Is(ckring.ErrClaimed, syscall.Errno(20006)) {
		t.Error("a CKR_E* code matches an errno")
	}
	if !ckring.ErrTimeout.Timeout() || ckring.ErrRingFull.Timeout() {
		t.Error("Timeout()")
	}
	if !ckring.ErrRingFull.Temporary() || !ckring.ErrNotDrained.Temporary() || ckring.ErrClaimed.Temporary() {
		t.Error("Temporary()")
	}
}

// The codes of the later rounds are ckring.h's, each its own.
func TestErrnoCodesOfTheHeader(t *testing.T) {
	for e, want := range map[ckring.Errno]int{
		ckring.ErrUnsafe: -20016, ckring.ErrNoShipper: -20017, ckring.ErrMoved: -20018,
		ckring.ErrNotLost: -20019,
	} {
		if int(e) != want {
			t.Errorf("%v is %d, want %d (ckring.h)", e, int(e), want)
		}
	}
	wantIs(t, "no shipper", ckring.CodeError("wait", "", -20017), ckring.ErrNoShipper)
	if !strings.Contains(ckring.ErrNoShipper.Error(), "no shipper") ||
		!strings.Contains(ckring.ErrMoved.Error(), "moved to another host") {
		t.Errorf("texts: %q, %q", ckring.ErrNoShipper.Error(), ckring.ErrMoved.Error())
	}
}

type ctxKey struct{}

func TestWithoutCancelKeepsValuesDropsCancel(t *testing.T) {
	parent, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "v"), time.Hour)
	cancel()
	d := ckring.WithoutCancel(parent)
	if d.Err() != nil || d.Done() != nil {
		t.Fatalf("detached context is done: %v", d.Err())
	}
	if _, ok := d.Deadline(); ok {
		t.Fatal("detached context has a deadline")
	}
	if d.Value(ctxKey{}) != "v" {
		t.Fatal("detached context lost a value")
	}
}

func TestResumeStateAndExistingCheckpointerCarriers(t *testing.T) {
	ctx := context.Background()
	if ckring.ResumeStateFromContext(ctx) != nil || ckring.ExistingCheckpointerFromContext(ctx) != nil {
		t.Fatal("a bare context carries resume state")
	}
	rs := &ckring.ResumeState{History: [][]byte{[]byte("a")}}
	cp := &fakeCP{}
	ctx = ckring.WithExistingCheckpointer(ckring.WithResumeState(ctx, rs), cp)
	if ckring.ResumeStateFromContext(ctx) != rs || ckring.ExistingCheckpointerFromContext(ctx) != cp {
		t.Fatal("carriers lost their values")
	}
}

// fakeCP records what FinalizeCheckpoint and the JSON helpers do to it.
type fakeCP struct {
	mu        sync.Mutex
	calls     []string
	msgs      [][]byte
	phases    []ckring.PhaseOutput
	ctxErr    error
	ctxVal    interface{}
	deadline  time.Time
	failedErr error
}

func (f *fakeCP) note(ctx context.Context, call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	f.ctxErr, f.ctxVal = ctx.Err(), ctx.Value(ctxKey{})
	f.deadline, _ = ctx.Deadline()
}

func (f *fakeCP) AppendMessage(ctx context.Context, msg []byte) (ckring.Ticket, error) {
	f.note(ctx, "message")
	f.msgs = append(f.msgs, append([]byte(nil), msg...))
	return ckring.Ticket{}, nil
}

func (f *fakeCP) RecordPhase(ctx context.Context, p ckring.PhaseOutput) (ckring.Ticket, error) {
	f.note(ctx, "phase")
	f.phases = append(f.phases, p)
	return ckring.Ticket{}, nil
}

func (f *fakeCP) Complete(ctx context.Context) error { f.note(ctx, "complete"); return nil }
func (f *fakeCP) Fail(ctx context.Context, err error) error {
	f.note(ctx, "fail")
	f.failedErr = err
	return errors.New("fail refused")
}
func (f *fakeCP) Wait(context.Context, ckring.Ticket, ckring.Level) error { return nil }
func (f *fakeCP) Close() error                                            { return nil }

// FinalizeCheckpoint: the outcome of the table, on a context the run's
// cancellation does not reach (values kept, bounded by FinalizeTimeout).
func TestFinalizeCheckpoint(t *testing.T) {
	modelErr := errors.New("model error")
	for _, c := range []struct {
		runErr, cause error
		want          ckring.Outcome
		call          string
	}{
		{nil, nil, ckring.OutcomeComplete, "complete"},
		{context.Canceled, ckring.ErrShutdown, ckring.OutcomeLeaveRunning, ""},
		{modelErr, nil, ckring.OutcomeFail, "fail"},
		{context.Canceled, context.Canceled, ckring.OutcomeFail, "fail"},
	} {
		run, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
		cancel() // the run's context is cancelled: finalize must still write
		cp := &fakeCP{}
		start := time.Now()
		o, err := ckring.FinalizeCheckpoint(run, cp, c.runErr, c.cause)
		if o != c.want {
			t.Errorf("%v/%v: outcome %v, want %v", c.runErr, c.cause, o, c.want)
		}
		if c.call == "" {
			if len(cp.calls) != 0 || err != nil {
				t.Errorf("leave running wrote %v (%v)", cp.calls, err)
			}
			continue
		}
		if len(cp.calls) != 1 || cp.calls[0] != c.call {
			t.Errorf("%v: calls %v, want [%s]", c.runErr, cp.calls, c.call)
		}
		if cp.ctxErr != nil || cp.ctxVal != "v" {
			t.Errorf("finalize context: err %v value %v", cp.ctxErr, cp.ctxVal)
		}
		if cp.deadline.Before(start.Add(ckring.FinalizeTimeout-time.Second)) ||
			cp.deadline.After(time.Now().Add(ckring.FinalizeTimeout)) {
			t.Errorf("finalize deadline %v not FinalizeTimeout after %v", cp.deadline, start)
		}
		if c.call == "fail" && (cp.failedErr != c.runErr || err == nil) {
			t.Errorf("Fail got %v, returned %v", cp.failedErr, err)
		}
	}
	if o, err := ckring.FinalizeCheckpoint(context.Background(), nil, nil, nil); o != ckring.OutcomeComplete || err != nil {
		t.Errorf("nil checkpointer: %v %v", o, err)
	}
}

type turn struct {
	Role string `json:"role"`
	Text string `json:"text"`
}

func TestJSONHelpers(t *testing.T) {
	cp := &fakeCP{}
	ctx := context.Background()
	in := []turn{{"user", "hello"}, {"assistant", "hi"}}
	for _, m := range in {
		if _, err := ckring.AppendJSON(ctx, cp, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ckring.RecordPhaseJSON(ctx, cp, 2, "draft", map[string]int{"words": 3}); err != nil {
		t.Fatal(err)
	}
	out, err := ckring.DecodeHistory[turn](&ckring.ResumeState{History: cp.msgs})
	if err != nil || len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("DecodeHistory: %v %v", out, err)
	}
	ph, err := ckring.DecodePhase[map[string]int](cp.phases[0])
	if err != nil || ph["words"] != 3 || cp.phases[0].Index != 2 || cp.phases[0].Name != "draft" {
		t.Fatalf("DecodePhase: %v %v %+v", ph, err, cp.phases[0])
	}
	if _, err := ckring.DecodeHistory[turn](&ckring.ResumeState{History: [][]byte{[]byte("{")}}); err == nil {
		t.Fatal("DecodeHistory accepted bad JSON")
	}
	if out, err := ckring.DecodeHistory[turn](nil); out != nil || err != nil {
		t.Fatal("DecodeHistory(nil)")
	}
	if _, err := ckring.AppendJSON(ctx, cp, func() {}); err == nil {
		t.Fatal("AppendJSON of a func")
	}
}

func TestSegmentCreateUnlinkAndNames(t *testing.T) {
	seg := testenv.Segment(t)
	must(t, ckring.CheckSegmentName(seg))
	wantIs(t, "bad name", ckring.CheckSegmentName(".x"), ckring.ErrInvalid)
	wantIs(t, "NUL name", ckring.CheckSegmentName("a\x00b"), ckring.ErrInvalid)
	must(t, ckring.CreateSegment(seg, &ckring.SegmentOptions{Size: 1 << 20, Lanes: 2, WritersPerLane: 4}))
	wantIs(t, "second create", ckring.CreateSegment(seg, nil), ckring.ErrExists)
	wantIs(t, "bad name", ckring.CreateSegment("a/b", nil), ckring.ErrInvalid)
	o, err := ckring.Observe(seg)
	must(t, err)
	si, err := o.Snapshot(true)
	must(t, err)
	if si.Name != seg || si.LaneCount != 2 || si.WritersPerLane != 4 || len(si.Lanes) != 2 ||
		si.FlusherAlive || si.Lanes[1].State != ckring.LaneFree {
		t.Fatalf("snapshot: %+v", si)
	}
	must(t, o.Close())
	must(t, o.Close())
	if _, err := o.Snapshot(false); !errors.Is(err, ckring.ErrHandleClosed) {
		t.Fatalf("snapshot after close: %v", err)
	}
	must(t, ckring.UnlinkSegment(seg))
	wantIs(t, "unlink again", ckring.UnlinkSegment(seg), ckring.ErrNotFound)
	_, err = ckring.Observe(seg)
	wantIs(t, "observe missing", err, ckring.ErrNotFound)
}

func TestAttachErrors(t *testing.T) {
	_, err := ckring.Attach(testenv.Segment(t), nil)
	wantIs(t, "missing segment", err, ckring.ErrNotFound)
	wantIs(t, "missing segment", err, fs.ErrNotExist)
	_, err = ckring.Attach("no/slash", nil)
	wantIs(t, "bad name", err, ckring.ErrInvalid)
	_, err = ckring.Attach("a\x00b", nil)
	wantIs(t, "NUL in name", err, ckring.ErrInvalid)

	junk := testenv.Segment(t)
	must(t, os.WriteFile("/dev/shm/"+junk, bytes.Repeat([]byte{0x5a}, 8192), 0o600))
	_, err = ckring.Attach(junk, nil)
	wantIs(t, "not a segment", err, ckring.ErrNotSegment)

	seg := testenv.Segment(t)
	must(t, ckring.CreateSegment(seg, &ckring.SegmentOptions{Size: 1 << 20, Lanes: 2}))
	_, err = ckring.Attach(seg, &ckring.ClientOptions{Lanes: 3})
	wantIs(t, "more lanes than the segment", err, ckring.ErrInvalid)
	_, err = ckring.Attach(seg, &ckring.ClientOptions{FinishLevel: 7})
	wantIs(t, "bad finish level", err, ckring.ErrInvalid)
	c := attach(t, seg, &ckring.ClientOptions{Lanes: 2})
	_, err = ckring.Attach(seg, nil)
	wantIs(t, "every lane taken", err, ckring.ErrNoLane)
	if c.Segment() != seg {
		t.Fatal("Segment()")
	}
}

// A single-loop run: three messages committed, what the store holds (by
// ckring-inspect), then completed with FinishLevel committed.
func TestSingleLoopRunStoredAndCompleted(t *testing.T) {
	seg, db, _ := served(t)
	ctx := bg(t)
	c := attach(t, seg, &ckring.ClientOptions{FinishLevel: ckring.LevelCommitted})
	cp, err := c.Begin(ctx, ckring.RunSpec{ID: "chat-1", Kind: ckring.SingleLoop, Label: "agent v1.3",
		Meta: []byte(`{"user":7}`)})
	must(t, err)
	defer cp.Close()
	var last ckring.Ticket
	msgs := []string{"user: hi", "assistant: hello", ""}
	for _, m := range msgs {
		last, err = cp.AppendMessage(ctx, []byte(m))
		must(t, err)
	}
	must(t, cp.Wait(ctx, last, ckring.LevelCommitted))
	if n := cp.(*ckring.Run).NextSeq(); n != 4 {
		t.Fatalf("NextSeq %d, want 4", n)
	}
	r := testenv.InspectRun(t, db, "chat-1")
	if r.State != "running" || r.Kind != "single_loop" || r.Label != "agent v1.3" ||
		string(r.Meta) != `{"user":7}` || len(r.History) != 3 || r.NextSeq != 4 {
		t.Fatalf("inspect run: %+v", r)
	}
	for i, h := range r.History {
		if h.Seq != uint64(i+1) || string(h.Data) != msgs[i] || h.Incarnation != 1 {
			t.Fatalf("history[%d] = %+v", i, h)
		}
	}
	must(t, cp.Complete(ctx)) // waits until committed (FinishLevel)
	if s := testenv.InspectDB(t, db).Run(t, "chat-1"); s.State != "completed" {
		t.Fatalf("state %s after Complete", s.State)
	}
	wantIs(t, "complete twice", cp.Complete(ctx), ckring.ErrTerminal)
	_, err = cp.AppendMessage(ctx, []byte("late"))
	wantIs(t, "push after complete", err, ckring.ErrTerminal)
}

// A multi-phase run: phases stored in order with their names; Fail keeps
// the error's text.
func TestMultiPhaseRunFailKeepsError(t *testing.T) {
	seg, db, _ := served(t)
	ctx := bg(t)
	c := attach(t, seg, &ckring.ClientOptions{FinishLevel: ckring.LevelCommitted})
	r := begin(t, c, "plan-1", ckring.MultiPhase)
	defer r.Close()
	long := strings.Repeat("n", 300) // copied through the C heap
	_, err := r.RecordPhase(ctx, ckring.PhaseOutput{Index: 0, Name: "plan", Output: []byte("steps")})
	must(t, err)
	t1, err := r.Phase(1, long, nil)
	must(t, err)
	must(t, r.Wait(ctx, t1, ckring.LevelCommitted))
	got := testenv.InspectRun(t, db, "plan-1")
	if len(got.CompletedPhases) != 2 || got.CompletedPhases[0].Name != "plan" ||
		string(got.CompletedPhases[0].Data) != "steps" || got.CompletedPhases[1].Name != long ||
		got.CompletedPhases[1].Index != 1 || len(got.History) != 0 {
		t.Fatalf("phases: %+v", got.CompletedPhases)
	}
	must(t, r.Fail(ctx, fmt.Errorf("model error: %w", context.DeadlineExceeded)))
	s := testenv.InspectDB(t, db).Run(t, "plan-1")
	if s.State != "failed" || s.Error == nil || *s.Error != "model error: context deadline exceeded" {
		t.Fatalf("after Fail: %+v", s)
	}
}

func TestPushErrors(t *testing.T) {
	seg, _, _ := served(t)
	ctx := bg(t)
	c := attach(t, seg, &ckring.ClientOptions{MaxEventSize: 512, MaxRunBytes: 2000})
	single := begin(t, c, "s", ckring.SingleLoop)
	multi := begin(t, c, "m", ckring.MultiPhase)
	_, err := single.Phase(0, "p", nil)
	wantIs(t, "phase on a single-loop run", err, ckring.ErrInvalid)
	_, err = multi.Message([]byte("x"))
	wantIs(t, "message on a multi-phase run", err, ckring.ErrInvalid)
	_, err = multi.Phase(0, "a\x00b", nil)
	wantIs(t, "NUL in a phase name", err, ckring.ErrInvalid)
	_, err = multi.RecordPhase(ctx, ckring.PhaseOutput{Index: -1})
	wantIs(t, "negative phase index", err, ckring.ErrInvalid)
	_, err = single.Message(make([]byte, 600))
	wantIs(t, "larger than MaxEventSize", err, ckring.ErrTooBig)
	for i := 0; ; i++ {
		if _, err = single.Message(make([]byte, 300)); err != nil {
			break
		}
		if i > 10 {
			t.Fatal("MaxRunBytes not enforced")
		}
	}
	wantIs(t, "past MaxRunBytes", err, ckring.ErrRunFull)
	_, err = single.Finish(ckring.Outcome(9), "")
	wantIs(t, "bad outcome", err, ckring.ErrInvalid)
	_, err = single.Finish(ckring.OutcomeComplete, "") // finishing ignores the budget
	must(t, err)
	_, err = single.Message(nil)
	wantIs(t, "after finish", err, ckring.ErrTerminal)
	_, err = single.Finish(ckring.OutcomeFail, "again")
	wantIs(t, "finish twice", err, ckring.ErrTerminal)
	var nilRun *ckring.Run
	_, err = nilRun.Message(nil)
	wantIs(t, "nil run", err, ckring.ErrInvalid)
	wantIs(t, "nil run complete", nilRun.Complete(ctx), ckring.ErrInvalid)
	must(t, nilRun.Close())
}

func TestBeginErrors(t *testing.T) {
	seg, _, _ := served(t)
	ctx := bg(t)
	refuse := errors.New("store has it")
	c := attach(t, seg, &ckring.ClientOptions{MaxEventSize: 512, BeginCheck: func(id string) error {
		if id == "known" {
			return fmt.Errorf("%v: %w", refuse, ckring.ErrExists)
		}
		return nil
	}})
	begin(t, c, "open", ckring.SingleLoop)
	_, _, err := c.BeginRun(ckring.RunSpec{ID: "open", Kind: ckring.SingleLoop})
	wantIs(t, "open in this client", err, ckring.ErrExists)
	_, err = c.Begin(ctx, ckring.RunSpec{ID: "known", Kind: ckring.SingleLoop})
	wantIs(t, "begin check", err, ckring.ErrExists)
	if !strings.Contains(err.Error(), "store has it") {
		t.Fatalf("begin check error: %v", err)
	}
	for _, s := range []ckring.RunSpec{
		{ID: "", Kind: ckring.SingleLoop},
		{ID: strings.Repeat("i", ckring.RunIDMax+1), Kind: ckring.SingleLoop},
		{ID: "k", Kind: 3},
		{ID: "l", Kind: ckring.SingleLoop, Label: strings.Repeat("l", ckring.LabelMax+1)},
		{ID: "z", Kind: ckring.SingleLoop, Label: "a\x00b"},
	} {
		_, _, err = c.BeginRun(s)
		wantIs(t, fmt.Sprintf("spec %q kind %v label %d", s.ID, s.Kind, len(s.Label)), err, ckring.ErrInvalid)
	}
	_, _, err = c.BeginRun(ckring.RunSpec{ID: "big", Kind: ckring.SingleLoop, Meta: make([]byte, 600)})
	wantIs(t, "metadata too big", err, ckring.ErrTooBig)
	_, _, err = c.BeginRun(ckring.RunSpec{ID: strings.Repeat("i", ckring.RunIDMax)})
	wantIs(t, "kind 0", err, ckring.ErrInvalid)
	bin := "\x00\xffid"
	r, _, err := c.BeginRun(ckring.RunSpec{ID: bin, Kind: ckring.MultiPhase})
	must(t, err)
	if r.ID() != bin || r.Kind() != ckring.MultiPhase || r.Client() != c {
		t.Fatalf("run %q %v", r.ID(), r.Kind())
	}
	var nilClient *ckring.Client
	_, _, err = nilClient.BeginRun(ckring.RunSpec{ID: "x", Kind: ckring.SingleLoop})
	wantIs(t, "nil client", err, ckring.ErrInvalid)
}

// A full ring refuses at once; the port retries until its context ends;
// a wait with no flusher says so; once a flusher serves the segment the
// events pushed before it are stored.
func TestRingFullAndNoFlusher(t *testing.T) {
	seg, db := testenv.Segment(t), t.TempDir()
	must(t, ckring.CreateSegment(seg, &ckring.SegmentOptions{Size: 64 << 10, Lanes: 1}))
	c := attach(t, seg, nil)
	r := begin(t, c, "full", ckring.SingleLoop)
	msg := make([]byte, 1000)
	var last ckring.Ticket
	pushed := 0
	var err error
	for { // 1000 B messages until one does not fit
		var tk ckring.Ticket
		if tk, err = r.Message(msg); err != nil {
			break
		}
		last = tk
		pushed++
	}
	wantIs(t, "full ring", err, ckring.ErrRingFull)
	wantIs(t, "full ring", err, syscall.EAGAIN)
	if pushed == 0 {
		t.Fatal("nothing fit")
	}
	for { // the last bytes: nothing at all fits now
		var tk ckring.Ticket
		if tk, err = r.Message(nil); err != nil {
			break
		}
		last = tk
		pushed++
	}
	wantIs(t, "full ring", err, ckring.ErrRingFull)
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = r.AppendMessage(short, msg)
	wantIs(t, "port on a full ring", err, ckring.ErrRingFull)
	wantIs(t, "port on a full ring", err, context.DeadlineExceeded)
	_, err = c.Begin(short, ckring.RunSpec{ID: "other", Kind: ckring.SingleLoop})
	wantIs(t, "begin on a full ring", err, ckring.ErrRingFull)
	wantIs(t, "no flusher", c.Wait(bg(t), last, ckring.LevelCommitted), ckring.ErrNoFlusher)
	wantIs(t, "complete on a full ring", r.Complete(short), ckring.ErrRingFull)
	wantIs(t, "complete on a full ring", r.Complete(short), context.DeadlineExceeded)

	testenv.StartFlusher(t, seg, db, "--sync", "none")
	ctx := bg(t)
	tk, err := r.AppendMessage(ctx, msg) // retried until the flusher made room
	must(t, err)
	must(t, c.Wait(ctx, tk, ckring.LevelCommitted))
	if h := testenv.InspectRun(t, db, "full").History; len(h) != pushed+1 {
		t.Fatalf("%d messages stored, %d pushed", len(h), pushed+1)
	}
	must(t, r.Fail(ctx, nil)) // the refused Completes left the run open
	tk, err = r.Finish(ckring.OutcomeComplete, "")
	wantIs(t, "finished", err, ckring.ErrTerminal)
	r2 := begin(t, c, "marker", ckring.SingleLoop)
	tk, err = r2.Message(nil)
	must(t, err)
	must(t, c.Wait(ctx, tk, ckring.LevelCommitted))
	if s := testenv.InspectDB(t, db).Run(t, "full"); s.State != "failed" || s.Error == nil || *s.Error != "failed" {
		t.Fatalf("after Fail(nil): %+v", s)
	}
}

// Wait tells stored, rejected, timed out, cancelled, no flusher apart.
func TestWaitOutcomes(t *testing.T) {
	seg, _, f := served(t)
	ctx := bg(t)
	c := attach(t, seg, nil)
	r := begin(t, c, "w", ckring.SingleLoop)
	tk, err := r.Message([]byte("one"))
	must(t, err)
	must(t, c.Wait(ctx, tk, ckring.LevelCommitted))
	must(t, c.Wait(ctx, tk, ckring.LevelInRing))
	wantIs(t, "bad level", c.Wait(ctx, tk, ckring.Level(0)), ckring.ErrInvalid)
	wantIs(t, "bad ticket", c.Wait(ctx, ckring.Ticket{Lane: 1 << 20, Writer: 1, Pos: 1}, ckring.LevelCommitted), ckring.ErrInvalid)

	// A second client of this process begins the same id: the flusher
	// rejects that begin and its writer's events, and says so.
	c2 := attach(t, seg, nil)
	dup, btk, err := c2.BeginRun(ckring.RunSpec{ID: "w", Kind: ckring.SingleLoop})
	must(t, err)
	dtk, err := dup.Message([]byte("intruder"))
	must(t, err)
	wantIs(t, "duplicate begin", c2.Wait(ctx, btk, ckring.LevelCommitted), ckring.ErrRejected)
	wantIs(t, "its message", dup.Wait(ctx, dtk, ckring.LevelCommitted), ckring.ErrRejected)

	f.Pause()
	tk, err = r.Message([]byte("two"))
	must(t, err)
	short, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	err = c.Wait(short, tk, ckring.LevelCommitted)
	cancel()
	wantIs(t, "paused flusher", err, ckring.ErrTimeout)
	wantIs(t, "paused flusher", err, context.DeadlineExceeded)
	cctx, ccancel := context.WithCancel(context.Background())
	go ccancel()
	wantIs(t, "cancelled", c.Wait(cctx, tk, ckring.LevelCommitted), context.Canceled)
	f.Resume()
	must(t, c.Wait(ctx, tk, ckring.LevelCommitted))

	// A leave-running finish pushes nothing: its ticket is reached at once.
	lr := begin(t, c, "leave", ckring.SingleLoop)
	ltk, err := lr.Finish(ckring.OutcomeLeaveRunning, "")
	must(t, err)
	must(t, c.Wait(ctx, ltk, ckring.LevelSynced))

	f.Kill()
	tk, err = r.Message([]byte("three"))
	must(t, err)
	wantIs(t, "dead flusher", c.Wait(ctx, tk, ckring.LevelCommitted), ckring.ErrNoFlusher)
	f.Restart() // the event waited in the ring
	must(t, c.Wait(ctx, tk, ckring.LevelCommitted))
}

func TestWaitSynced(t *testing.T) {
	seg, _, _ := served(t, "--create", "--size", "1048576", "--lanes", "2", "--sync", "always")
	ctx := bg(t)
	c := attach(t, seg, nil)
	r := begin(t, c, "sync", ckring.SingleLoop)
	tk, err := r.Message([]byte("durable"))
	must(t, err)
	must(t, c.Wait(ctx, tk, ckring.LevelSynced))
}

// LevelReplicated without a shipper: the event is committed, the wait says
// nobody ships it (ErrNoShipper, not a timeout); the lower levels are
// reached as ever. Complete with FinishLevel LevelReplicated says so too;
// a level past it is refused.
func TestWaitReplicatedWithoutShipper(t *testing.T) {
	seg, _, _ := served(t)
	ctx := bg(t)
	c := attach(t, seg, nil)
	r := begin(t, c, "repl", ckring.SingleLoop)
	tk, err := r.Message([]byte("far"))
	must(t, err)
	wantIs(t, "no shipper", c.Wait(ctx, tk, ckring.LevelReplicated), ckring.ErrNoShipper)
	must(t, c.Wait(ctx, tk, ckring.LevelCommitted))
	fc := attach(t, seg, &ckring.ClientOptions{FinishLevel: ckring.LevelReplicated})
	fr := begin(t, fc, "repl-finish", ckring.SingleLoop)
	wantIs(t, "complete, no shipper", fr.Complete(ctx), ckring.ErrNoShipper)
	_, err = ckring.Attach(seg, &ckring.ClientOptions{FinishLevel: ckring.LevelReplicated + 1})
	wantIs(t, "a level past replicated", err, ckring.ErrInvalid)
}

// One writer slot per lane: a second open run gets ErrSlots; a ticket of a
// closed handle whose slot was reused can't be told (ErrClosed).
func TestSlotsAndClosedTickets(t *testing.T) {
	seg, db := testenv.Segment(t), t.TempDir()
	must(t, ckring.CreateSegment(seg, &ckring.SegmentOptions{Size: 1 << 20, Lanes: 1, WritersPerLane: 1}))
	testenv.StartFlusher(t, seg, db, "--sync", "none")
	ctx := bg(t)
	c := attach(t, seg, nil)
	a := begin(t, c, "a", ckring.SingleLoop)
	_, _, err := c.BeginRun(ckring.RunSpec{ID: "b", Kind: ckring.SingleLoop})
	wantIs(t, "no slot", err, ckring.ErrSlots)
	tk, err := a.Message([]byte("x"))
	must(t, err)
	must(t, c.Wait(ctx, tk, ckring.LevelCommitted))
	must(t, a.Close())
	begin(t, c, "b", ckring.SingleLoop) // takes a's slot: the flusher passed a's events
	wantIs(t, "reused slot", c.Wait(ctx, tk, ckring.LevelCommitted), ckring.ErrClosed)
}

func TestClosedHandles(t *testing.T) {
	seg, _, f := served(t)
	ctx := bg(t)
	c := attach(t, seg, nil)
	r := begin(t, c, "r", ckring.SingleLoop)
	must(t, r.Close())
	must(t, r.Close())
	_, err := r.Message(nil)
	wantIs(t, "message after close", err, ckring.ErrHandleClosed)
	_, err = r.Phase(0, "", nil)
	wantIs(t, "phase after close", err, ckring.ErrHandleClosed)
	_, err = r.Finish(ckring.OutcomeComplete, "")
	wantIs(t, "finish after close", err, ckring.ErrHandleClosed)
	if r.NextSeq() != 0 {
		t.Fatal("NextSeq after close")
	}
	r2 := begin(t, c, "r", ckring.SingleLoop) // the id is free in the client again
	tk, err := r2.Message([]byte("m"))
	must(t, err)

	// Detach races a wait on a paused flusher: the wait ends with
	// ErrHandleClosed, whichever comes first.
	f.Pause()
	done := make(chan error)
	go func() { done <- c.Wait(ctx, tk, ckring.LevelCommitted) }()
	c.Detach()
	wantIs(t, "wait racing detach", <-done, ckring.ErrHandleClosed)
	f.Resume()
	_, err = r2.Message(nil)
	wantIs(t, "run of a detached client", err, ckring.ErrHandleClosed)
	_, _, err = c.BeginRun(ckring.RunSpec{ID: "x", Kind: ckring.SingleLoop})
	wantIs(t, "begin after detach", err, ckring.ErrHandleClosed)
	_, err = c.Reopen(&ckring.Claim{ID: "x", Kind: ckring.SingleLoop})
	wantIs(t, "reopen after detach", err, ckring.ErrHandleClosed)
	wantIs(t, "wait after detach", c.Wait(ctx, tk, ckring.LevelCommitted), ckring.ErrHandleClosed)
	if c.Lane() != 0 {
		t.Fatal("Lane after detach")
	}
	c.Detach()
}

// Several goroutines share one run (and Wait on it) at once: every message
// is stored once, sequence numbers 1..N without a gap, each goroutine's
// messages in its own order. Run with -race.
func TestGoroutinesShareARun(t *testing.T) {
	seg, db, _ := served(t)
	ctx := bg(t)
	c := attach(t, seg, nil)
	r := begin(t, c, "shared", ckring.SingleLoop)
	const workers, each = 6, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var last ckring.Ticket
			for i := 0; i < each; i++ {
				tk, err := r.AppendMessage(ctx, []byte(fmt.Sprintf("%d/%d", g, i)))
				if err != nil {
					errs <- err
					return
				}
				last = tk
				if i%50 == 49 {
					if err := r.Wait(ctx, tk, ckring.LevelCommitted); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- r.Wait(ctx, last, ckring.LevelCommitted)
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	if n := r.NextSeq(); n != workers*each+1 {
		t.Fatalf("NextSeq %d", n)
	}
	h := testenv.InspectRun(t, db, "shared").History
	if len(h) != workers*each {
		t.Fatalf("%d messages stored, want %d", len(h), workers*each)
	}
	next := make([]int, workers)
	for k, m := range h {
		if m.Seq != uint64(k+1) {
			t.Fatalf("history[%d] has seq %d", k, m.Seq)
		}
		parts := strings.Split(string(m.Data), "/")
		g, _ := strconv.Atoi(parts[0])
		i, _ := strconv.Atoi(parts[1])
		if i != next[g] {
			t.Fatalf("goroutine %d: message %d where %d was due", g, i, next[g])
		}
		next[g]++
	}
}

// Close overtakes goroutines pushing on the run: each stops with
// ErrHandleClosed, nothing else. Run with -race.
func TestCloseRacesPushes(t *testing.T) {
	seg, _, _ := served(t)
	c := attach(t, seg, nil)
	r := begin(t, c, "racing", ckring.SingleLoop)
	const workers = 4
	started := make(chan struct{}, workers)
	ended := make(chan error, workers)
	for g := 0; g < workers; g++ {
		go func() {
			first := true
			for {
				_, err := r.Message([]byte("x"))
				if err != nil && !errors.Is(err, ckring.ErrRingFull) {
					ended <- err
					return
				}
				if first {
					started <- struct{}{}
					first = false
				}
			}
		}()
	}
	for g := 0; g < workers; g++ {
		<-started
	}
	must(t, r.Close())
	for g := 0; g < workers; g++ {
		wantIs(t, "push overtaken by close", <-ended, ckring.ErrHandleClosed)
	}
}

// A client of three lanes spreads its runs over them, round robin.
func TestLanesOption(t *testing.T) {
	seg, _, _ := served(t)
	c := attach(t, seg, &ckring.ClientOptions{Lanes: 3})
	lanes := map[uint32]bool{}
	for i := 0; i < 3; i++ {
		_, tk, err := c.BeginRun(ckring.RunSpec{ID: "lane-" + strconv.Itoa(i), Kind: ckring.SingleLoop})
		must(t, err)
		lanes[tk.Lane] = true
	}
	if len(lanes) != 3 || !lanes[c.Lane()] {
		t.Fatalf("runs on lanes %v, first lane %d", lanes, c.Lane())
	}
	o, err := ckring.Observe(seg)
	must(t, err)
	defer o.Close()
	si, err := o.Snapshot(true)
	must(t, err)
	mine := 0
	for _, l := range si.Lanes {
		if l.State == ckring.LaneAttached && l.OwnerPID == os.Getpid() {
			mine++
			if !lanes[l.Index] {
				t.Errorf("lane %d held but unused", l.Index)
			}
		}
	}
	if mine != 3 || !si.FlusherAlive {
		t.Fatalf("%d lanes held by this process, flusher alive %v", mine, si.FlusherAlive)
	}
}

// The push path allocates nothing: Message, Phase and the Checkpointer port
// over them (the payload is passed to C for the call only).
func TestPushAllocatesNothing(t *testing.T) {
	seg, _, _ := served(t, "--create", "--size", "16777216", "--lanes", "2", "--sync", "none")
	ctx := bg(t)
	c := attach(t, seg, nil)
	s := begin(t, c, "allocs-s", ckring.SingleLoop)
	m := begin(t, c, "allocs-m", ckring.MultiPhase)
	msg := make([]byte, 128)
	for name, push := range map[string]func(){
		"Message":       func() { _, _ = s.Message(msg) },
		"AppendMessage": func() { _, _ = s.AppendMessage(ctx, msg) },
		"Phase":         func() { _, _ = m.Phase(1, "draft", msg) },
		"RecordPhase":   func() { _, _ = m.RecordPhase(ctx, ckring.PhaseOutput{Index: 1, Name: "draft", Output: msg}) },
	} {
		if n := testing.AllocsPerRun(500, push); n != 0 {
			t.Errorf("%s: %v allocations per push", name, n)
		}
	}
}
