package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ckring.dev/ckring"
	"ckring.dev/ckring/internal/testenv"
	"ckring.dev/ckring/store"
)

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Bound)
	t.Cleanup(cancel)
	return ctx
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

// host is a Go host: a flusher-served segment, the store open, a client.
type host struct {
	seg, db string
	f       *testenv.Flusher
	st      *store.Store
	c       *ckring.Client
}

func newHost(t *testing.T, opts *store.Options) *host {
	h := &host{seg: testenv.Segment(t), db: t.TempDir()}
	h.f = testenv.StartFlusher(t, h.seg, h.db, testenv.DefaultFlusherArgs...)
	var err error
	h.st, err = store.Open(h.db, opts)
	must(t, err)
	t.Cleanup(func() { h.st.Close() })
	h.c, err = ckring.Attach(h.seg, &ckring.ClientOptions{BeginCheck: h.st.BeginCheck})
	must(t, err)
	t.Cleanup(h.c.Detach)
	return h
}

// executorKilled runs a Go executor process that begins CHAT and PLAN with
// n messages / phases committed, and SIGKILLs it.
func (h *host) executorKilled(t *testing.T, chat, plan string, n int) {
	p := testenv.StartHelper(t, "executor", h.seg, chat, plan, strconv.Itoa(n))
	p.Expect("ready")
	p.Kill()
}

func TestOpenErrorsAndClose(t *testing.T) {
	_, err := store.Open(filepath.Join(t.TempDir(), "missing"), nil)
	wantIs(t, "missing dir", err, ckring.ErrNotFound)
	_, err = store.Open(t.TempDir(), &store.Options{ReadOnly: true})
	wantIs(t, "no store, read only", err, ckring.ErrNotFound)
	_, err = store.Open(t.TempDir(), nil)
	wantIs(t, "no store (the flusher makes it)", err, ckring.ErrNotFound)
	_, err = store.Open("a\x00b", nil)
	wantIs(t, "NUL in dir", err, ckring.ErrInvalid)
	planted := t.TempDir() // LMDB would write through a link planted there
	must(t, os.Symlink(filepath.Join(t.TempDir(), "elsewhere"), filepath.Join(planted, "data.mdb")))
	_, err = store.Open(planted, nil)
	wantIs(t, "data.mdb is a symbolic link", err, ckring.ErrUnsafe)
	h := newHost(t, nil)
	dir := h.db
	st, err := store.Open(dir, nil)
	must(t, err)
	if st.Dir() != dir {
		t.Fatal("Dir")
	}
	must(t, st.Close())
	must(t, st.Close())
	_, err = st.List(store.All)
	wantIs(t, "list after close", err, ckring.ErrHandleClosed)
	_, err = st.Claim("x")
	wantIs(t, "claim after close", err, ckring.ErrHandleClosed)
	_, _, err = st.ClaimBatch([]string{"x"})
	wantIs(t, "claim batch after close", err, ckring.ErrHandleClosed)
	_, err = st.Resume("x")
	wantIs(t, "resume after close", err, ckring.ErrHandleClosed)
	_, err = st.Get("x")
	wantIs(t, "get after close", err, ckring.ErrHandleClosed)
	wantIs(t, "begin check after close", st.BeginCheck("x"), ckring.ErrHandleClosed)
	_, err = st.Prune(0, 0)
	wantIs(t, "prune after close", err, ckring.ErrHandleClosed)
	if st.Counter("stored") != 0 {
		t.Fatal("Counter after close")
	}
}

// List, Get, Resume, Counter, BeginCheck and Prune on runs of this process.
func TestReaders(t *testing.T) {
	h := newHost(t, nil)
	ctx := bg(t)
	r, _, err := h.c.BeginRun(ckring.RunSpec{ID: "read-1", Kind: ckring.SingleLoop, Label: "lbl", Meta: []byte("m")})
	must(t, err)
	var tk ckring.Ticket
	for i := 0; i < 3; i++ {
		tk, err = r.Message([]byte{byte('a' + i)})
		must(t, err)
	}
	must(t, r.Wait(ctx, tk, ckring.LevelCommitted))
	done, _, err := h.c.BeginRun(ckring.RunSpec{ID: "read-2", Kind: ckring.MultiPhase})
	must(t, err)
	must(t, done.Fail(ctx, errors.New("boom")))
	_, err = done.Phase(0, "x", nil)
	wantIs(t, "phase after fail", err, ckring.ErrTerminal)
	tk, err = r.Message([]byte("d")) // after the fail: one commit covers both
	must(t, err)
	must(t, r.Wait(ctx, tk, ckring.LevelCommitted))

	all, err := h.st.List(store.All)
	must(t, err)
	running, err := h.st.List(store.AllRunning)
	must(t, err)
	interrupted, err := h.st.List(store.Interrupted)
	must(t, err)
	if len(all) != 2 || len(running) != 1 || running[0].ID != "read-1" || len(interrupted) != 0 {
		t.Fatalf("lists: all %d running %+v interrupted %d", len(all), running, len(interrupted))
	}
	g, err := h.st.Get("read-1")
	must(t, err)
	if g.State != store.Running || g.Kind != ckring.SingleLoop || g.OwnerPID != os.Getpid() ||
		!g.OwnerAlive || g.Events != 5 || g.LastSeq != 4 || g.PrefixSeq != 4 || g.Label != "lbl" ||
		g.Incarnation != 1 || g.Attempts != 0 || g.Created.IsZero() || !g.Finished.IsZero() {
		t.Fatalf("get: %+v", g)
	}
	f, err := h.st.Get("read-2")
	must(t, err)
	if f.State != store.Failed || f.Error != "boom" || f.Finished.IsZero() || f.State.String() != "failed" {
		t.Fatalf("get failed run: %+v", f)
	}
	_, err = h.st.Get("nope")
	wantIs(t, "get unknown", err, ckring.ErrNotFound)
	res, err := h.st.Resume("read-1")
	must(t, err)
	if res.ID != "read-1" || res.Kind != ckring.SingleLoop || res.RunState != store.Running ||
		res.NextSeq != 5 || len(res.History) != 4 || string(res.History[3].Data) != "d" ||
		res.History[0].Seq != 1 || res.Label != "lbl" || string(res.Meta) != "m" || len(res.Gaps) != 0 {
		t.Fatalf("resume: %+v", res)
	}
	rs := res.ResumeState()
	if len(rs.History) != 4 || string(rs.History[0]) != "a" || len(rs.CompletedPhases) != 0 {
		t.Fatalf("resume state: %+v", rs)
	}
	_, err = h.st.Resume("nope")
	wantIs(t, "resume unknown", err, ckring.ErrNotFound)
	if n, want := h.st.Counter("stored"), testenv.InspectDB(t, h.db).Counters["stored"]; n != want || n < 6 {
		t.Fatalf("stored counter %d, ckring-inspect says %d", n, want)
	}
	if h.st.Counter("no-such-counter") != 0 || h.st.Counter("a\x00") != 0 {
		t.Fatal("unknown counter")
	}
	wantIs(t, "begin check", h.st.BeginCheck("read-2"), ckring.ErrExists)
	must(t, h.st.BeginCheck("fresh"))
	_, _, err = h.c.BeginRun(ckring.RunSpec{ID: "read-2", Kind: ckring.SingleLoop})
	wantIs(t, "begin of a stored id", err, ckring.ErrExists)
	n, err := h.st.Prune(0, 0)
	if err != nil || n != 0 {
		t.Fatalf("prune nothing: %d %v", n, err)
	}
	ro, err := store.Open(h.db, &store.Options{ReadOnly: true})
	must(t, err)
	defer ro.Close()
	_, err = ro.Claim("read-1")
	wantIs(t, "claim read only", err, ckring.ErrReadOnly)
	_, err = ro.Prune(1, 1)
	wantIs(t, "prune read only", err, ckring.ErrReadOnly)
}

func TestClaimAndReopenErrors(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	ctx := bg(t)
	d, _, err := h.c.BeginRun(ckring.RunSpec{ID: "done", Kind: ckring.SingleLoop})
	must(t, err)
	must(t, d.Complete(ctx))
	live, _, err := h.c.BeginRun(ckring.RunSpec{ID: "live", Kind: ckring.SingleLoop})
	must(t, err)
	tk, err := live.Message([]byte("x")) // committed after the completion
	must(t, err)
	must(t, live.Wait(ctx, tk, ckring.LevelCommitted))

	_, err = h.st.Claim("live")
	wantIs(t, "claim a run whose owner lives", err, ckring.ErrNotInterrupted)
	_, err = h.st.Claim("done")
	wantIs(t, "claim a completed run", err, ckring.ErrTerminal)
	_, err = h.st.Claim("nope")
	wantIs(t, "claim unknown", err, ckring.ErrNotFound)
	_, err = h.c.Reopen(nil)
	wantIs(t, "reopen nil", err, ckring.ErrInvalid)
	_, err = h.c.Reopen(&ckring.Claim{ID: "live", Kind: ckring.SingleLoop})
	wantIs(t, "reopen a claim that is none", err, ckring.ErrInvalid)

	h.executorKilled(t, "chat-k", "plan-k", 2)
	cl, err := claimWhenDrained(h.st, "chat-k")
	must(t, err)
	forged := *cl
	forged.OwnerNonce++
	_, err = h.c.Reopen(&forged)
	wantIs(t, "reopen by another process image", err, ckring.ErrNotClaimer)
	run, err := h.c.Reopen(cl)
	must(t, err)
	_, err = h.c.Reopen(cl)
	wantIs(t, "reopen twice", err, ckring.ErrExists)
	_, err = h.st.Claim("chat-k")
	wantIs(t, "claim again by the claimer", err, ckring.ErrNotInterrupted)
	must(t, run.Close())
}

// The story: a Go executor process is SIGKILLed mid-run; a Go host recovers
// both its runs (the same records, the next sequence numbers, incarnation
// 2) and finishes them. Checked with ckring-inspect.
func TestGoExecutorKilledGoHostRecovers(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	ctx := bg(t)
	h.executorKilled(t, "chat-1", "plan-1", 3)

	var recs []*store.Recovered
	rep, err := store.Recover(ctx, h.st, h.c, func(ctx context.Context, rec *store.Recovered) error {
		cp := ckring.ExistingCheckpointerFromContext(ctx)
		rs := ckring.ResumeStateFromContext(ctx)
		if cp == nil || cp != ckring.Checkpointer(rec.Run) || rs == nil {
			return fmt.Errorf("dispatch context: checkpointer %v resume %v", cp, rs)
		}
		var tk ckring.Ticket
		var err error
		switch rec.Claim.Kind {
		case ckring.SingleLoop: // the transcript continues after its history
			tk, err = cp.AppendMessage(ctx, []byte("turn "+strconv.Itoa(len(rs.History))))
		case ckring.MultiPhase: // completed phases are skipped
			n := len(rs.CompletedPhases)
			tk, err = cp.RecordPhase(ctx, ckring.PhaseOutput{Index: n, Name: "review", Output: []byte("resumed")})
		}
		if err == nil {
			err = cp.Wait(ctx, tk, ckring.LevelCommitted)
		}
		recs = append(recs, rec)
		return err
	}, nil)
	must(t, err)
	if len(rep.Dispatched) != 2 || len(rep.Failed)+len(rep.Lost)+len(rep.Exhausted)+len(rep.Skipped) != 0 {
		t.Fatalf("report %+v", rep)
	}
	for _, rec := range recs {
		if rec.Claim.Incarnation != 2 || rec.Claim.NextSeq != 4 || rec.Claim.Attempts != 1 ||
			rec.Info.OwnerAlive || rec.Claim.Label != "go-executor/1" {
			t.Fatalf("claim %+v info %+v", rec.Claim, rec.Info)
		}
	}
	chat := testenv.InspectRun(t, h.db, "chat-1")
	if chat.State != "running" || len(chat.History) != 4 || chat.NextSeq != 5 {
		t.Fatalf("chat-1 after recovery: %+v", chat)
	}
	for i, m := range chat.History {
		inc := uint32(1)
		if i == 3 {
			inc = 2
		}
		if m.Seq != uint64(i+1) || string(m.Data) != "turn "+strconv.Itoa(i) || m.Incarnation != inc {
			t.Fatalf("chat-1 message %d: %+v", i, m)
		}
	}
	plan := testenv.InspectRun(t, h.db, "plan-1")
	if len(plan.CompletedPhases) != 4 || plan.CompletedPhases[3].Name != "review" ||
		plan.CompletedPhases[3].Incarnation != 2 || plan.CompletedPhases[0].Name != "plan" ||
		string(plan.CompletedPhases[2].Data) != "output 2" || plan.NextSeq != 5 {
		t.Fatalf("plan-1 after recovery: %+v", plan)
	}
	for _, rec := range recs {
		o, err := ckring.FinalizeCheckpoint(ctx, rec.Run, nil, nil)
		if o != ckring.OutcomeComplete || err != nil {
			t.Fatalf("finalize: %v %v", o, err)
		}
		_, err = rec.Run.Finish(ckring.OutcomeComplete, "")
		wantIs(t, "finished", err, ckring.ErrTerminal)
	}
	// The completions are committed once a later event of this client is.
	r, btk, err := h.c.BeginRun(ckring.RunSpec{ID: "marker", Kind: ckring.SingleLoop})
	must(t, err)
	must(t, r.Wait(ctx, btk, ckring.LevelCommitted))
	db := testenv.InspectDB(t, h.db)
	for _, id := range []string{"chat-1", "plan-1"} {
		if s := db.Run(t, id); s.State != "completed" || s.Attempts != 1 || s.Incarnation != 2 {
			t.Fatalf("%s: %+v", id, s)
		}
	}
	if rep2, err := store.Recover(ctx, h.st, h.c, nil, nil); err != nil || len(rep2.Dispatched) != 0 {
		t.Fatalf("second recovery: %+v %v", rep2, err)
	}
}

// A run claimed by another live process: the loser gets ErrClaimed, and
// Recover counts it as lost.
func TestClaimRaceLoserSeesErrClaimed(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	h.executorKilled(t, "chat-r", "plan-r", 1)
	p := testenv.StartHelper(t, "claimer", h.db, "chat-r")
	p.Expect("claimed")
	_, err := h.st.Claim("chat-r")
	wantIs(t, "claim after another live process", err, ckring.ErrClaimed)
	rep, err := store.Recover(bg(t), h.st, h.c, func(ctx context.Context, rec *store.Recovered) error {
		return rec.Run.Close()
	}, nil)
	must(t, err)
	// chat-r is owned by a live claimer: not interrupted, not even listed.
	if len(rep.Dispatched) != 1 || rep.Dispatched[0] != "plan-r" || len(rep.Failed) != 0 {
		t.Fatalf("report %+v", rep)
	}
	// The claimer dies: the run is interrupted again, for the next host.
	p.Kill()
	cl, err := claimWhenDrained(h.st, "chat-r")
	must(t, err)
	if cl.Attempts != 2 || cl.Incarnation != 3 {
		t.Fatalf("second claim %+v", cl)
	}
}

// The dead writer's last events are still in the ring (the flusher is
// stopped): the claim is refused with ErrNotDrained, Recover's bounded retry
// gives up; once the flusher drains, the run is recovered with every event
// that was accepted into the ring.
func TestNotDrainedThenRecovered(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	ctx := bg(t)
	p := testenv.StartHelper(t, "executor", h.seg, "chat-d", "plan-d", "2")
	p.Expect("ready")
	h.f.Pause()
	p.Send("push")
	p.Expect("pushed 3")
	p.Kill()
	_, err := h.st.Claim("chat-d")
	wantIs(t, "claim before the drain", err, ckring.ErrNotDrained)
	rep, err := store.Recover(ctx, h.st, h.c, func(context.Context, *store.Recovered) error {
		return errors.New("dispatched too early")
	}, &store.RecoverOptions{NotDrainedWait: 30e6})
	must(t, err)
	if len(rep.Failed) != 2 || len(rep.Dispatched) != 0 {
		t.Fatalf("report with the flusher stopped: %+v", rep)
	}
	for _, e := range rep.Failed {
		wantIs(t, "recover before the drain", e, ckring.ErrNotDrained)
	}
	h.f.Resume()
	var history int
	rep, err = store.Recover(ctx, h.st, h.c, func(ctx context.Context, rec *store.Recovered) error {
		if rec.Info.ID == "chat-d" {
			history = len(ckring.ResumeStateFromContext(ctx).History)
		}
		return rec.Run.Close()
	}, nil)
	must(t, err)
	if len(rep.Dispatched) != 2 || history != 3 {
		t.Fatalf("report %+v, history %d (want 3: the push the flusher had not drained)", rep, history)
	}
}

// Attempts run out: the claim fails the run (ErrExhausted), Recover counts
// it as exhausted, the store says why.
func TestExhausted(t *testing.T) {
	t.Parallel()
	h := newHost(t, &store.Options{MaxAttempts: 1})
	h.executorKilled(t, "chat-x", "plan-x", 1)
	p := testenv.StartHelper(t, "recoverer", h.seg, h.db, "chat-x")
	p.Expect("ready")
	p.Kill() // the first recovery dies too
	rep, err := store.Recover(bg(t), h.st, h.c, func(ctx context.Context, rec *store.Recovered) error {
		return rec.Run.Close()
	}, &store.RecoverOptions{BatchSize: 1})
	must(t, err)
	if len(rep.Exhausted) != 1 || rep.Exhausted[0] != "chat-x" || len(rep.Dispatched) != 1 {
		t.Fatalf("report %+v", rep)
	}
	g, err := h.st.Get("chat-x")
	must(t, err)
	if g.State != store.Failed || g.Error != "recovery exhausted" || g.Attempts != 1 {
		t.Fatalf("exhausted run: %+v", g)
	}
	_, err = h.st.Claim("chat-x")
	wantIs(t, "claim a failed run", err, ckring.ErrTerminal)
}

// Runs begun in C (ckring-load, which leaves them RUNNING and exits)
// continue in Go: the resume state is the C payloads (docs/DESIGN.md §9),
// the Go events continue the same record.
func TestCBegunGoContinues(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	ctx := bg(t)
	out, err := exec.Command(testenv.Bin(t, "ckring-load"), "--segment", h.seg, "--procs", "1",
		"--threads", "1", "--runs", "2", "--events", "5", "--size", "40", "--prefix", "c-",
		"--finish", "leave").CombinedOutput()
	if err != nil {
		t.Fatalf("ckring-load: %v\n%s", err, out)
	}
	// ckring-load exits once its events are in the ring: the flusher
	// stores them soon after.
	testenv.WaitFor(t, "the flusher stored ckring-load's runs", func() bool {
		for _, id := range []string{"c-p0-t0-r0", "c-p0-t0-r1"} {
			if g, err := h.st.Get(id); err != nil || g.Events != 6 {
				return false
			}
		}
		return true
	})
	var runs []*ckring.Run
	rep, err := store.Recover(ctx, h.st, h.c, func(ctx context.Context, rec *store.Recovered) error {
		hist := ckring.ResumeStateFromContext(ctx).History
		for m, b := range hist {
			if !bytes.Equal(b, loadPayload(rec.Info.ID, uint64(m), 40)) {
				return fmt.Errorf("%s message %d: %x", rec.Info.ID, m, b)
			}
		}
		if len(hist) != 5 || rec.Claim.NextSeq != 6 || rec.Info.Label != "ckring-load" {
			return fmt.Errorf("%s: %d messages, next %d", rec.Info.ID, len(hist), rec.Claim.NextSeq)
		}
		tk, err := rec.Run.AppendMessage(ctx, []byte("continued in Go"))
		if err == nil {
			err = rec.Run.Wait(ctx, tk, ckring.LevelCommitted)
		}
		runs = append(runs, rec.Run)
		return err
	}, nil)
	must(t, err)
	if len(rep.Dispatched) != 2 || len(rep.Failed) != 0 {
		t.Fatalf("report %+v", rep)
	}
	r := testenv.InspectRun(t, h.db, "c-p0-t0-r1")
	if len(r.History) != 6 || string(r.History[5].Data) != "continued in Go" || r.History[5].Seq != 6 ||
		r.History[5].Incarnation != 2 || r.History[4].Incarnation != 1 {
		t.Fatalf("c-p0-t0-r1: %+v", r)
	}
	for _, run := range runs {
		must(t, run.Complete(ctx))
		must(t, run.Close())
	}
}

// loadPayload is ckring-load's message m of run id (docs/DESIGN.md §9).
func loadPayload(id string, m uint64, size int) []byte {
	f := fnv.New64a()
	f.Write([]byte(id))
	hv := f.Sum64()
	b := make([]byte, size)
	binary.LittleEndian.PutUint64(b[0:], m)
	binary.LittleEndian.PutUint64(b[8:], hv)
	for i := 16; i < size; i++ {
		b[i] = byte(hv + 31*m + uint64(i))
	}
	return b
}

// A run begun by a Go executor (killed) is continued by the C host,
// examples/boot_recovery.c, built with pkg-config as a user builds it.
func TestGoBegunCContinues(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	bin := buildBootRecovery(t)
	h.executorKilled(t, "go-chat", "go-plan", 3)
	out, err := exec.Command(bin, h.seg, h.db).CombinedOutput()
	if err != nil {
		t.Fatalf("boot_recovery: %v\n%s", err, out)
	}
	for _, want := range []string{
		"2 interrupted runs",
		"run go-chat: 3 messages, 0 phases to resume from; continues at seq 4",
		"run go-plan: 0 messages, 3 phases to resume from; continues at seq 4",
		"run go-chat completed", "run go-plan completed",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Fatalf("boot_recovery said:\n%s\nwant a line %q", out, want)
		}
	}
	db := testenv.InspectDB(t, h.db)
	for _, id := range []string{"go-chat", "go-plan"} {
		if s := db.Run(t, id); s.State != "completed" || s.Attempts != 1 {
			t.Fatalf("%s: %+v", id, s)
		}
	}
}

func buildBootRecovery(t *testing.T) string {
	t.Helper()
	src := filepath.Join(testenv.TopDir(t), "examples", "boot_recovery.c")
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "ckring-store").Output()
	if err != nil {
		t.Fatalf("pkg-config ckring-store: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "boot_recovery")
	args := append([]string{"-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O1", "-o", bin, src},
		strings.Fields(string(flags))...)
	if out, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		t.Fatalf("cc boot_recovery: %v\n%s", err, out)
	}
	return bin
}

// ClaimBatch: one transaction, each run's own result.
func TestClaimBatch(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	h.executorKilled(t, "chat-b", "plan-b", 1)
	live, _, err := h.c.BeginRun(ckring.RunSpec{ID: "live-b", Kind: ckring.SingleLoop})
	must(t, err)
	defer live.Close()
	testenv.WaitFor(t, "the dead executor's runs are claimable", func() bool {
		g, err := h.st.Get("chat-b")
		return err == nil && g.OwnerDrained
	})
	testenv.WaitFor(t, "live-b is stored", func() bool { _, err := h.st.Get("live-b"); return err == nil })
	ids := []string{"chat-b", "nope", "live-b", "plan-b"}
	claims, errs, err := h.st.ClaimBatch(ids)
	must(t, err)
	if claims[0] == nil || claims[0].ID != "chat-b" || claims[0].Incarnation != 2 || errs[0] != nil {
		t.Fatalf("chat-b: %+v %v", claims[0], errs[0])
	}
	wantIs(t, "unknown in a batch", errs[1], ckring.ErrNotFound)
	wantIs(t, "live in a batch", errs[2], ckring.ErrNotInterrupted)
	if claims[1] != nil || claims[2] != nil {
		t.Fatal("a refused run has a claim")
	}
	if claims[3] == nil && !errors.Is(errs[3], ckring.ErrNotDrained) {
		t.Fatalf("plan-b: %v", errs[3])
	}
	_, _, err = h.st.ClaimBatch([]string{"ok", ""})
	wantIs(t, "empty id in a batch", err, ckring.ErrInvalid)
	c, e, err := h.st.ClaimBatch(nil)
	if err != nil || len(c) != 0 || len(e) != 0 {
		t.Fatal("empty batch")
	}
	ro, err := store.Open(h.db, &store.Options{ReadOnly: true})
	must(t, err)
	defer ro.Close()
	_, _, err = ro.ClaimBatch([]string{"plan-b"})
	wantIs(t, "batch read only", err, ckring.ErrReadOnly)
}

// Recover stops when its context ends: the error says so.
func TestRecoverContextEnded(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	h.executorKilled(t, "chat-c", "plan-c", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := store.Recover(ctx, h.st, h.c, func(context.Context, *store.Recovered) error {
		return errors.New("dispatched after the end")
	}, nil)
	wantIs(t, "recover with a cancelled context", err, context.Canceled)
	if len(rep.Dispatched) != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// A dispatch that fails is reported by run; the run stays claimed by this
// process (it is not interrupted while this process lives).
func TestRecoverDispatchError(t *testing.T) {
	t.Parallel()
	h := newHost(t, nil)
	h.executorKilled(t, "chat-e", "plan-e", 1)
	boom := errors.New("executor refused")
	rep, err := store.Recover(bg(t), h.st, h.c, func(ctx context.Context, rec *store.Recovered) error {
		defer rec.Run.Close()
		return boom
	}, nil)
	must(t, err)
	if len(rep.Failed) != 2 || len(rep.Dispatched) != 0 {
		t.Fatalf("report %+v", rep)
	}
	var oe *ckring.OpError
	if !errors.As(rep.Failed[0], &oe) || oe.Op != "dispatch" || !errors.Is(oe, boom) ||
		(oe.Run != "chat-e" && oe.Run != "plan-e") {
		t.Fatalf("failure %v", rep.Failed[0])
	}
	left, err := h.st.List(store.Interrupted)
	must(t, err)
	if len(left) != 0 {
		t.Fatalf("still interrupted: %+v", left)
	}
	_, err = h.st.Claim("chat-e")
	wantIs(t, "claim again", err, ckring.ErrNotInterrupted)
}
