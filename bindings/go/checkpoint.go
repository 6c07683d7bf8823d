package ckring

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Checkpointer persists one run's resumable progress (the seed's port). A
// *Run is one; a test may give an executor a fake. Its methods may be called
// from several goroutines at once.
type Checkpointer interface {
	// AppendMessage appends one transcript message (single-loop runs).
	AppendMessage(ctx context.Context, msg []byte) (Ticket, error)
	// RecordPhase records a completed phase's output (multi-phase runs).
	RecordPhase(ctx context.Context, p PhaseOutput) (Ticket, error)
	// Complete finishes the run as completed: the record is cleared.
	Complete(ctx context.Context) error
	// Fail finishes the run as failed, keeping runErr's text.
	Fail(ctx context.Context, runErr error) error
	// Wait waits until the ticket's event reached level, at most until
	// ctx is done (nil: stored; ErrRejected, ErrNoFlusher, ErrTimeout).
	Wait(ctx context.Context, t Ticket, level Level) error
	// Close frees the handle; the record stays as it is.
	Close() error
}

// CheckpointerFactory begins the durable record of a new run (the seed's
// Ports.Checkpointer). A *Client is one.
type CheckpointerFactory interface {
	Begin(ctx context.Context, spec RunSpec) (Checkpointer, error)
}

var (
	_ Checkpointer        = (*Run)(nil)
	_ CheckpointerFactory = (*Client)(nil)
)

// PhaseOutput is the output of a completed phase of a multi-phase run.
type PhaseOutput struct {
	Index  int    // 0-based
	Name   string // no NUL
	Output []byte // the caller's own serialisation
}

// ResumeState carries a recovered run's prior progress into the executor, so
// that the run continues instead of restarting (the seed's ResumeState):
//   - single-loop: History is the saved transcript, one message per element,
//     in order (the longest gap-free prefix the store holds); the run
//     continues after it.
//   - multi-phase: CompletedPhases are skipped; the interrupted phase re-runs
//     from its start (boundary-granular: there is no mid-phase transcript
//     resume, so History is unused for multi-phase runs).
//
// The bytes are the caller's own serialisation of its message type (see
// AppendJSON and DecodeHistory for JSON).
type ResumeState struct {
	History         [][]byte
	CompletedPhases []PhaseOutput
}

type resumeStateKey struct{}

// WithResumeState carries a recovered run's prior progress into the run.
func WithResumeState(ctx context.Context, rs *ResumeState) context.Context {
	return context.WithValue(ctx, resumeStateKey{}, rs)
}

// ResumeStateFromContext is the ResumeState WithResumeState put in ctx, or
// nil (a fresh run).
func ResumeStateFromContext(ctx context.Context) *ResumeState {
	rs, _ := ctx.Value(resumeStateKey{}).(*ResumeState)
	return rs
}

type existingCheckpointerKey struct{}

// WithExistingCheckpointer carries a pre-existing Checkpointer into the run,
// so that a recovery re-run reuses the SAME durable record: the executor
// uses it instead of calling its factory's Begin.
func WithExistingCheckpointer(ctx context.Context, cp Checkpointer) context.Context {
	return context.WithValue(ctx, existingCheckpointerKey{}, cp)
}

// ExistingCheckpointerFromContext is the Checkpointer WithExistingCheckpointer
// put in ctx, or nil (begin a new record).
func ExistingCheckpointerFromContext(ctx context.Context) Checkpointer {
	cp, _ := ctx.Value(existingCheckpointerKey{}).(Checkpointer)
	return cp
}

// ClassifyOutcome maps (run error, cancellation cause) to the durable
// finalize action, exactly as the seed's classifyCheckpointOutcome (and
// ckr_classify_outcome): success clears the checkpoint (OutcomeComplete); a
// shutdown-caused cancellation (errors.Is(cause, ErrShutdown)) leaves the
// record so boot recovery picks it up (OutcomeLeaveRunning, neither Complete
// nor Fail); anything else (a model error, a tool loop, the run's own
// deadline, a critic kill, a caller cancel) is terminal (OutcomeFail).
// It can't fail.
func ClassifyOutcome(runErr, cause error) Outcome {
	switch {
	case runErr == nil:
		return OutcomeComplete
	case errors.Is(cause, ErrShutdown):
		return OutcomeLeaveRunning
	default:
		return OutcomeFail
	}
}

// FinalizeTimeout bounds FinalizeCheckpoint's Complete or Fail, which no
// longer depend on the run's cancellation.
const FinalizeTimeout = 10 * time.Second

// FinalizeCheckpoint applies ClassifyOutcome(runErr, cause) to the run's
// checkpointer (nil-safe: a nil cp only classifies) and returns the outcome
// and the error of Complete or Fail. It runs on a context detached from
// ctx's cancellation (WithoutCancel, bounded by FinalizeTimeout), so that a
// cancelled run still records its terminal state. Errors are best-effort:
// a stale record only costs a wasteful boot-recovery retry, not data; the
// seed logs them, and so should the caller (this package never prints).
// OutcomeLeaveRunning writes nothing. It does not close cp.
func FinalizeCheckpoint(ctx context.Context, cp Checkpointer, runErr, cause error) (Outcome, error) {
	o := ClassifyOutcome(runErr, cause)
	if cp == nil || o == OutcomeLeaveRunning {
		return o, nil
	}
	fctx, cancel := context.WithTimeout(WithoutCancel(ctx), FinalizeTimeout)
	defer cancel()
	if o == OutcomeComplete {
		return o, cp.Complete(fctx)
	}
	return o, cp.Fail(fctx, runErr)
}

// WithoutCancel returns a context that keeps ctx's values but not its
// cancellation nor its deadline: it is never done. (Go 1.21's
// context.WithoutCancel; this module supports Go 1.19.)
func WithoutCancel(ctx context.Context) context.Context {
	return detached{ctx}
}

type detached struct{ parent context.Context }

func (detached) Deadline() (time.Time, bool)         { return time.Time{}, false }
func (detached) Done() <-chan struct{}               { return nil }
func (detached) Err() error                          { return nil }
func (d detached) Value(key interface{}) interface{} { return d.parent.Value(key) }
func (d detached) String() string                    { return "ckring.WithoutCancel" }

// AppendJSON appends msg, serialised with encoding/json, to the transcript.
func AppendJSON[T any](ctx context.Context, cp Checkpointer, msg T) (Ticket, error) {
	b, err := json.Marshal(msg)
	if err != nil {
		return Ticket{}, err
	}
	return cp.AppendMessage(ctx, b)
}

// RecordPhaseJSON records phase index's output, serialised with
// encoding/json.
func RecordPhaseJSON[T any](ctx context.Context, cp Checkpointer, index int, name string, output T) (Ticket, error) {
	b, err := json.Marshal(output)
	if err != nil {
		return Ticket{}, err
	}
	return cp.RecordPhase(ctx, PhaseOutput{Index: index, Name: name, Output: b})
}

// DecodeHistory decodes a resumed transcript written by AppendJSON (nil rs:
// nil, nil).
func DecodeHistory[T any](rs *ResumeState) ([]T, error) {
	if rs == nil {
		return nil, nil
	}
	out := make([]T, 0, len(rs.History))
	for _, b := range rs.History {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// DecodePhase decodes a completed phase's output written by RecordPhaseJSON.
func DecodePhase[T any](p PhaseOutput) (T, error) {
	var v T
	err := json.Unmarshal(p.Output, &v)
	return v, err
}
