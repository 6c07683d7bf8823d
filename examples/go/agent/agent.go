// Package agent is the Go example's executor, in the shape of the seed's
// (shared/seed/durable_recovery.go): a run checkpoints through a
// ckring.Checkpointer — a single-loop run its transcript, a multi-phase run
// each completed phase — and is finalized by outcome
// (ckring.FinalizeCheckpoint: complete, fail, or leave running on
// shutdown). Run by a recovery host, it takes the existing Checkpointer
// and the ResumeState from its context and continues the same record.
//
// The "model" is a stand-in: deterministic text, no waiting, and a failure
// at a chosen turn.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"ckring.dev/ckring"
)

// Message is one transcript entry; the checkpoints are its JSON.
type Message struct {
	Role string `json:"role"`
	Text string `json:"text"`
}

// Phases are the phases of every multi-phase run, in order.
var Phases = []string{"plan", "research", "draft", "review"}

// Spec is what a run is asked to do. It travels with the run as its
// metadata (ckring.RunSpec.Meta), so a recovery host knows it too.
type Spec struct {
	ID     string      `json:"id"`
	Kind   ckring.Kind `json:"kind"`
	Prompt string      `json:"prompt"`
	Turns  int         `json:"turns"`             // single-loop: assistant turns
	FailAt int         `json:"fail_at,omitempty"` // single-loop: the model fails at this turn (1-based; 0 never)
}

// SpecOf is the Spec a run was begun with (its metadata).
func SpecOf(meta []byte) (Spec, error) {
	var s Spec
	err := json.Unmarshal(meta, &s)
	return s, err
}

// ErrModel is the stand-in model's failure.
var ErrModel = errors.New("model error: upstream returned 503")

// Executor runs runs. Its fields are read only; one Executor may run many
// runs at once.
type Executor struct {
	Checkpointer ckring.CheckpointerFactory // the seed's Ports.Checkpointer
	Label        string                     // code/version label of the runs it begins
	// AfterStep, if set, is called after each step (a turn or a phase) is
	// committed, with the number of steps the run has done in all.
	AfterStep func(ctx context.Context, id string, step int)
	// Say narrates; nil is quiet.
	Say func(format string, args ...interface{})
}

func (e *Executor) say(format string, args ...interface{}) {
	if e.Say != nil {
		e.Say(format, args...)
	}
}

// Run executes spec to its end or until ctx ends, then finalizes its
// checkpoint by outcome: cause() says why ctx ended (ckring.ErrShutdown
// leaves the run for boot recovery; Go 1.19 has no context.Cause). It
// returns the run's error.
func (e *Executor) Run(ctx context.Context, spec Spec, cause func() error) error {
	cp := ckring.ExistingCheckpointerFromContext(ctx)
	if cp == nil {
		meta, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		cp, err = e.Checkpointer.Begin(ctx, ckring.RunSpec{ID: spec.ID, Kind: spec.Kind, Label: e.Label, Meta: meta})
		if err != nil {
			return err
		}
	}
	defer cp.Close()
	rs := ckring.ResumeStateFromContext(ctx)
	var runErr error
	if spec.Kind == ckring.MultiPhase {
		runErr = e.multiPhase(ctx, cp, spec, rs)
	} else {
		runErr = e.singleLoop(ctx, cp, spec, rs)
	}
	var why error
	if runErr != nil && cause != nil {
		why = cause()
	}
	o, err := ckring.FinalizeCheckpoint(ctx, cp, runErr, why)
	switch {
	case err != nil:
		e.say("%s: finalize (%v) failed: %v", spec.ID, o, err) // best effort, as the seed
	case o == ckring.OutcomeLeaveRunning:
		e.say("%s: interrupted by shutdown: left running for boot recovery", spec.ID)
	case o == ckring.OutcomeFail:
		e.say("%s: failed: %v", spec.ID, runErr)
	default:
		e.say("%s: completed", spec.ID)
	}
	return runErr
}

// singleLoop continues the transcript after its saved history: a turn is
// the model's reply, then the next user message.
func (e *Executor) singleLoop(ctx context.Context, cp ckring.Checkpointer, spec Spec, rs *ckring.ResumeState) error {
	history, err := ckring.DecodeHistory[Message](rs)
	if err != nil {
		return err
	}
	if len(history) == 0 {
		m := Message{Role: "user", Text: spec.Prompt}
		if err := e.append(ctx, cp, m); err != nil {
			return err
		}
		history = append(history, m)
	} else {
		e.say("%s: resumed with %d messages", spec.ID, len(history))
	}
	for turn := len(history)/2 + 1; turn <= spec.Turns; turn++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if turn == spec.FailAt {
			return ErrModel
		}
		reply := Message{Role: "assistant", Text: fmt.Sprintf("turn %d: %d messages read", turn, len(history))}
		next := Message{Role: "user", Text: fmt.Sprintf("go on (%d)", turn)}
		for _, m := range []Message{reply, next} {
			if err := e.append(ctx, cp, m); err != nil {
				return err
			}
			history = append(history, m)
		}
		e.say("%s: turn %d checkpointed", spec.ID, turn)
		if e.AfterStep != nil {
			e.AfterStep(ctx, spec.ID, turn)
		}
	}
	return nil
}

// append checkpoints m and waits until the flusher committed it (for the
// narration: a push that returned is already safe from this process's
// death).
func (e *Executor) append(ctx context.Context, cp ckring.Checkpointer, m Message) error {
	t, err := ckring.AppendJSON(ctx, cp, m)
	if err != nil {
		return err
	}
	return cp.Wait(ctx, t, ckring.LevelCommitted)
}

// multiPhase skips the completed phases and runs the rest; an interrupted
// phase re-runs from its start.
func (e *Executor) multiPhase(ctx context.Context, cp ckring.Checkpointer, spec Spec, rs *ckring.ResumeState) error {
	var outputs []string
	if rs != nil {
		for _, p := range rs.CompletedPhases {
			out, err := ckring.DecodePhase[string](p)
			if err != nil {
				return err
			}
			outputs = append(outputs, out)
		}
		e.say("%s: resumed after %d completed phases", spec.ID, len(outputs))
	}
	for i := len(outputs); i < len(Phases); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		out := fmt.Sprintf("%s of %q (after %d phases)", Phases[i], spec.Prompt, len(outputs))
		t, err := ckring.RecordPhaseJSON(ctx, cp, i, Phases[i], out)
		if err == nil {
			err = cp.Wait(ctx, t, ckring.LevelCommitted)
		}
		if err != nil {
			return err
		}
		outputs = append(outputs, out)
		e.say("%s: phase %s checkpointed", spec.ID, Phases[i])
		if e.AfterStep != nil {
			e.AfterStep(ctx, spec.ID, i+1)
		}
	}
	return nil
}
