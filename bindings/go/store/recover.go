package store

import (
	"context"
	"errors"
	"time"

	"ckring.dev/ckring"
)

// RecoverOptions tune Recover; the zero value (or nil) asks for the
// defaults.
type RecoverOptions struct {
	// NotDrainedWait bounds how long a claim refused with
	// ckring.ErrNotDrained (the flusher has not yet drained the dead
	// writer's lanes) is retried, every 10 ms; 0 = 10 s.
	NotDrainedWait time.Duration
}

// Recovered is one interrupted run, claimed and reopened: what Recover hands
// to dispatch.
type Recovered struct {
	Info   RunInfo       // as listed (before the claim)
	Claim  *ckring.Claim // the claim (incarnation, next sequence, attempts)
	Resume *Resume       // everything the store kept of the run
	Run    *ckring.Run   // the SAME record reopened: the run's one writer now
}

// Dispatch continues one recovered run. Its ctx carries the run's
// ckring.ResumeState (ckring.ResumeStateFromContext) and its Run as the
// existing Checkpointer (ckring.ExistingCheckpointerFromContext), so that
// an executor written as the seed's continues the same record instead of
// beginning a new one. Dispatch owns rec.Run from the call on, whatever it
// returns: it may continue the run on another goroutine, and Closes it when
// done (Client.Detach closes what is left).
type Dispatch func(ctx context.Context, rec *Recovered) error

// Report is what Recover did, by run id.
type Report struct {
	Dispatched []string // claimed, resumed, reopened, and dispatch returned nil
	Lost       []string // another live process claimed it first (ckring.ErrClaimed)
	Exhausted  []string // attempts exhausted: the claim marked the run failed (ckring.ErrExhausted)
	Skipped    []string // no longer interrupted at the claim: finished, running again, or gone
	Failed     []error  // *ckring.OpError by run: claim (also still ErrNotDrained after the bound), resume, reopen or dispatch
}

// Recover is the host's whole boot path (the seed's recovery dispatch): list
// the interrupted runs of st; for each, claim it (retrying
// ckring.ErrNotDrained, bounded by opts.NotDrainedWait and ctx), load its
// resume state, reopen the same record in c, and call dispatch with
// ckring.WithResumeState and ckring.WithExistingCheckpointer on ctx. Runs
// are claimed one after the other, in the store's order.
//
// A run another process claimed first is Lost, one whose attempts ran out
// is Exhausted (it is failed now), one that finished or whose owner came
// back is Skipped: none of these is an error. The error is non-nil only when
// the listing failed or ctx ended before every run was handled (the rest
// are left as they are, for the next boot). c must be attached to the
// segment st's flusher serves. Any goroutine; two Recovers (in one process
// or two) share the runs out, each run to one of them.
func Recover(ctx context.Context, st *Store, c *ckring.Client, dispatch Dispatch, opts *RecoverOptions) (Report, error) {
	var rep Report
	wait := 10 * time.Second
	if opts != nil && opts.NotDrainedWait > 0 {
		wait = opts.NotDrainedWait
	}
	runs, err := st.List(Interrupted)
	if err != nil {
		return rep, err
	}
	for i := range runs {
		if err := ctx.Err(); err != nil {
			return rep, &ckring.OpError{Op: "recover", Err: err}
		}
		recoverOne(ctx, st, c, &runs[i], dispatch, wait, &rep)
	}
	return rep, nil
}

func recoverOne(ctx context.Context, st *Store, c *ckring.Client, info *RunInfo, dispatch Dispatch,
	wait time.Duration, rep *Report) {
	cl, err := claimDrained(ctx, st, info.ID, wait)
	switch {
	case err == nil:
	case errors.Is(err, ckring.ErrClaimed):
		rep.Lost = append(rep.Lost, info.ID)
		return
	case errors.Is(err, ckring.ErrExhausted):
		rep.Exhausted = append(rep.Exhausted, info.ID)
		return
	case errors.Is(err, ckring.ErrTerminal), errors.Is(err, ckring.ErrNotInterrupted),
		errors.Is(err, ckring.ErrNotFound):
		rep.Skipped = append(rep.Skipped, info.ID)
		return
	default:
		rep.Failed = append(rep.Failed, err)
		return
	}
	// From here the run is ours: a failure leaves it claimed by a live
	// process (this one) until the process exits; the next boot retries.
	res, err := st.Resume(info.ID)
	if err != nil {
		rep.Failed = append(rep.Failed, err)
		return
	}
	run, err := c.Reopen(cl)
	if err != nil {
		rep.Failed = append(rep.Failed, err)
		return
	}
	rec := &Recovered{Info: *info, Claim: cl, Resume: res, Run: run}
	dctx := ckring.WithExistingCheckpointer(ckring.WithResumeState(ctx, res.ResumeState()), run)
	if err := dispatch(dctx, rec); err != nil {
		rep.Failed = append(rep.Failed, &ckring.OpError{Op: "dispatch", Run: info.ID, Err: err})
		return
	}
	rep.Dispatched = append(rep.Dispatched, info.ID)
}

// claimDrained claims id, retrying ErrNotDrained every 10 ms for at most
// wait (and while ctx lives).
func claimDrained(ctx context.Context, st *Store, id string, wait time.Duration) (*ckring.Claim, error) {
	end := time.Now().Add(wait)
	for {
		cl, err := st.Claim(id)
		if err == nil || !errors.Is(err, ckring.ErrNotDrained) || !time.Now().Before(end) {
			return cl, err
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}
