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
	// BatchSize is how many runs one transaction claims (ClaimBatch); 0 =
	// 100. The runs of a batch are claimed at once and then dispatched one
	// after the other; 1 claims each run just before its dispatch.
	BatchSize int
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
	Failed     []error  // *ckring.OpError by run: claim (also still ErrNotDrained after the bound), resume, reopen, dispatch, or ctx ended
}

// Recover is the host's whole boot path (the seed's recovery dispatch): list
// the interrupted runs of st; claim them, opts.BatchSize in one transaction
// (retrying those refused with ckring.ErrNotDrained, bounded by
// opts.NotDrainedWait and ctx); for each run claimed, load its resume
// state, reopen the same record in c, and call dispatch with
// ckring.WithResumeState and ckring.WithExistingCheckpointer on ctx, one
// run after the other, in the store's order.
//
// A run another process claimed first is Lost, one whose attempts ran out
// is Exhausted (it is failed now), one that finished or whose owner came
// back is Skipped: none of these is an error. The error is non-nil only when
// the listing failed or ctx ended before every run was handled: the runs not
// yet claimed are left for the next boot; those of the current batch already
// claimed but not dispatched are reported Failed (with ctx's error) and stay
// claimed by this process until it exits. c must be attached to the segment
// st's flusher serves. Any goroutine; two Recovers (in one process or two)
// share the runs out, each run to one of them.
func Recover(ctx context.Context, st *Store, c *ckring.Client, dispatch Dispatch, opts *RecoverOptions) (Report, error) {
	r := recoverer{ctx: ctx, st: st, c: c, dispatch: dispatch, wait: 10 * time.Second, batch: 100}
	if opts != nil && opts.NotDrainedWait > 0 {
		r.wait = opts.NotDrainedWait
	}
	if opts != nil && opts.BatchSize > 0 {
		r.batch = opts.BatchSize
	}
	runs, err := st.List(Interrupted)
	if err != nil {
		return r.rep, err
	}
	for len(runs) > 0 {
		n := r.batch
		if n > len(runs) {
			n = len(runs)
		}
		if err := r.claimBatch(runs[:n]); err != nil {
			return r.rep, err
		}
		runs = runs[n:]
	}
	return r.rep, nil
}

type recoverer struct {
	ctx      context.Context
	st       *Store
	c        *ckring.Client
	dispatch Dispatch
	wait     time.Duration
	batch    int
	rep      Report
}

// claimBatch claims runs (retrying the not yet drained ones) and dispatches
// each run it claimed. Its error is ctx's, once ctx ended.
func (r *recoverer) claimBatch(runs []RunInfo) error {
	end := time.Now().Add(r.wait)
	for len(runs) > 0 {
		if err := r.ctx.Err(); err != nil {
			return &ckring.OpError{Op: "recover", Err: err}
		}
		ids := make([]string, len(runs))
		for i := range runs {
			ids[i] = runs[i].ID
		}
		claims, errs, err := r.st.ClaimBatch(ids)
		if err != nil {
			r.rep.Failed = append(r.rep.Failed, err)
			return nil
		}
		var again []RunInfo
		for i := range runs {
			if claims[i] != nil {
				continue
			}
			if errors.Is(errs[i], ckring.ErrNotDrained) && time.Now().Before(end) {
				again = append(again, runs[i])
			} else {
				r.refused(runs[i].ID, errs[i])
			}
		}
		for i := range runs {
			if claims[i] == nil {
				continue
			}
			if err := r.ctx.Err(); err != nil {
				r.rep.Failed = append(r.rep.Failed, &ckring.OpError{Op: "dispatch", Run: runs[i].ID, Err: err})
				continue
			}
			r.resume(&runs[i], claims[i])
		}
		if len(again) > 0 && !r.pause() {
			for i := range again {
				r.refused(again[i].ID, ckring.CodeError("claim", again[i].ID, int(ckring.ErrNotDrained)))
			}
			return &ckring.OpError{Op: "recover", Err: r.ctx.Err()}
		}
		runs = again
	}
	return nil
}

// refused files a run the claim refused.
func (r *recoverer) refused(id string, err error) {
	switch {
	case errors.Is(err, ckring.ErrClaimed):
		r.rep.Lost = append(r.rep.Lost, id)
	case errors.Is(err, ckring.ErrExhausted):
		r.rep.Exhausted = append(r.rep.Exhausted, id)
	case errors.Is(err, ckring.ErrTerminal), errors.Is(err, ckring.ErrNotInterrupted),
		errors.Is(err, ckring.ErrNotFound):
		r.rep.Skipped = append(r.rep.Skipped, id)
	default:
		r.rep.Failed = append(r.rep.Failed, err)
	}
}

// resume loads a claimed run's resume state, reopens it and dispatches it.
// A failure leaves the run claimed by this live process until it exits; the
// next boot retries it.
func (r *recoverer) resume(info *RunInfo, cl *ckring.Claim) {
	res, err := r.st.Resume(info.ID)
	if err != nil {
		r.rep.Failed = append(r.rep.Failed, err)
		return
	}
	run, err := r.c.Reopen(cl)
	if err != nil {
		r.rep.Failed = append(r.rep.Failed, err)
		return
	}
	rec := &Recovered{Info: *info, Claim: cl, Resume: res, Run: run}
	dctx := ckring.WithExistingCheckpointer(ckring.WithResumeState(r.ctx, res.ResumeState()), run)
	if err := r.dispatch(dctx, rec); err != nil {
		r.rep.Failed = append(r.rep.Failed, &ckring.OpError{Op: "dispatch", Run: info.ID, Err: err})
		return
	}
	r.rep.Dispatched = append(r.rep.Dispatched, info.ID)
}

// pause waits 10 ms before claims are retried: false if ctx ended first.
func (r *recoverer) pause() bool {
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
