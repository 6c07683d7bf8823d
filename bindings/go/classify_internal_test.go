package ckring

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"
)

var errModel = errors.New("model error")

// The seed's classifyCheckpointOutcome table, row by row, and
// ckr_classify_outcome agreeing with every row.
func TestClassifyOutcomeSeedTable(t *testing.T) {
	critic := errors.New("critic kill")
	toolLoop := errors.New("tool loop")
	rows := []struct {
		name   string
		runErr error
		cause  error
		cCause int
		want   Outcome
	}{
		{"success", nil, nil, cCauseNone, OutcomeComplete},
		{"success despite a shutdown cause", nil, ErrShutdown, cCauseShutdown, OutcomeComplete},
		{"success despite a deadline cause", nil, context.DeadlineExceeded, cCauseDeadline, OutcomeComplete},
		{"shutdown", context.Canceled, ErrShutdown, cCauseShutdown, OutcomeLeaveRunning},
		{"shutdown, cause wrapped", context.Canceled, fmt.Errorf("host: %w", ErrShutdown), cCauseShutdown, OutcomeLeaveRunning},
		{"shutdown, any run error", errModel, ErrShutdown, cCauseShutdown, OutcomeLeaveRunning},
		{"model error", errModel, nil, cCauseNone, OutcomeFail},
		{"tool loop", toolLoop, nil, cCauseNone, OutcomeFail},
		{"own deadline", context.DeadlineExceeded, context.DeadlineExceeded, cCauseDeadline, OutcomeFail},
		{"critic kill", context.Canceled, critic, cCauseCriticKill, OutcomeFail},
		{"caller cancel", context.Canceled, context.Canceled, cCauseCallerCancel, OutcomeFail},
		{"run error is the shutdown, cause none", ErrShutdown, nil, cCauseNone, OutcomeFail},
	}
	for _, r := range rows {
		if got := ClassifyOutcome(r.runErr, r.cause); got != r.want {
			t.Errorf("%s: ClassifyOutcome = %v, want %v", r.name, got, r.want)
		}
		if got := cClassify(r.runErr != nil, r.cCause); got != r.want {
			t.Errorf("%s: ckr_classify_outcome = %v, want %v", r.name, got, r.want)
		}
	}
}

var sink int

// BenchmarkCgoNoop is the floor of any cgo call here: an empty C function
// taking and returning an integer, timed as the push benchmarks are (blocks
// of 64 calls; p50 over the blocks), for bindings/go/bench.sh.
func BenchmarkCgoNoop(b *testing.B) {
	samples := make([]float64, 0, b.N/64+1)
	for done := 0; done < b.N; {
		n := 64
		if b.N-done < n {
			n = b.N - done
		}
		t0 := time.Now()
		for i := 0; i < n; i++ {
			sink += cNoop(uintptr(i))
		}
		samples = append(samples, float64(time.Since(t0).Nanoseconds())/float64(n))
		done += n
	}
	sort.Float64s(samples)
	b.ReportMetric(samples[len(samples)/2], "p50-ns/op")
}

func TestCutText(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"a\x00b", 10, "a"},
		{"aé", 2, "a"}, // é is 2 bytes: never cut in a rune
		{"aé", 3, "aé"},
		{"日本", 4, "日"},
	} {
		if got := cutText(c.in, c.n); got != c.want {
			t.Errorf("cutText(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[fmt.Stringer]string{
		SingleLoop: "single-loop", MultiPhase: "multi-phase", Kind(7): "kind(7)",
		OutcomeComplete: "complete", OutcomeLeaveRunning: "leave-running", OutcomeFail: "fail",
		Outcome(9): "outcome(9)", WithoutCancel(context.Background()).(fmt.Stringer): "ckring.WithoutCancel",
	} {
		if got := v.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	e := &fullError{last: CodeError("message", "r", int(ErrRingFull)), ctx: context.DeadlineExceeded}
	if got := e.Error(); got != "message r: ckring: ring full (nothing was pushed; try again) (until: context deadline exceeded)" {
		t.Errorf("fullError: %q", got)
	}
	if !errors.Is(e, ErrTimeout) || !errors.Is(e, ErrRingFull) || errors.Is(e, context.Canceled) {
		t.Error("fullError matches")
	}
}
