package ckring_test

import (
	"context"
	"errors"
	"log"

	"ckring.dev/ckring"
)

type message struct {
	Role, Text string
}

// An executor in the seed's shape: it continues the record a recovery host
// put in its context, or begins a new one; it checkpoints each message;
// it finalizes by outcome on a context the run's cancellation does not
// reach.
func Example_executor() {
	var factory ckring.CheckpointerFactory // a *ckring.Client, one per process
	run := func(ctx context.Context, spec ckring.RunSpec, cause func() error) error {
		cp := ckring.ExistingCheckpointerFromContext(ctx)
		if cp == nil {
			var err error
			if cp, err = factory.Begin(ctx, spec); err != nil {
				return err
			}
		}
		defer cp.Close()
		history, err := ckring.DecodeHistory[message](ckring.ResumeStateFromContext(ctx))
		if err != nil {
			return err
		}
		var runErr error
		for len(history) < 10 && runErr == nil {
			m := message{"assistant", "..."} // the model's next turn
			if _, runErr = ckring.AppendJSON(ctx, cp, m); runErr == nil {
				history = append(history, m)
			}
		}
		if _, err := ckring.FinalizeCheckpoint(ctx, cp, runErr, cause()); err != nil {
			log.Printf("finalize: %v", err) // best effort: a stale record costs a retry
		}
		return runErr
	}
	_ = run
}

// Attach once per process; every goroutine shares the client.
func ExampleAttach() {
	c, err := ckring.Attach("jobs", &ckring.ClientOptions{Lanes: 2})
	if errors.Is(err, ckring.ErrNotFound) {
		log.Fatal("no segment jobs: start ckring-flusher --segment jobs --db DIR --create")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer c.Detach()
}

// Wait tells stored, rejected, no flusher and timeout apart.
func ExampleClient_Wait() {
	var c *ckring.Client
	var t ckring.Ticket // from a push
	ctx, cancel := context.WithTimeout(context.Background(), 5e9)
	defer cancel()
	switch err := c.Wait(ctx, t, ckring.LevelSynced); {
	case err == nil: // committed and fsync'd
	case errors.Is(err, ckring.ErrRejected): // the run has another writer now
	case errors.Is(err, ckring.ErrNoFlusher): // the event waits in the ring
	case errors.Is(err, ckring.ErrTimeout): // not yet: still in the ring
	}
}
