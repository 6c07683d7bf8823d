// Command executor is the Go example's executor process: it attaches to a
// segment, runs four runs through agent.Executor — two short single-loop
// runs (one completes, one fails with a model error) and then a long
// single-loop run and a multi-phase run side by side — and finalizes each
// by its outcome.
//
//	executor -segment jobs [-prefix demo-] [-crash-after N | -shutdown-after N]
//
// -crash-after N: once both long runs have checkpointed N steps, the
// process SIGKILLs itself (the crash of the demo): their records stay
// RUNNING, for a host to recover (see ../host). -shutdown-after N: instead
// the host "shuts down" (as on SIGTERM, which is handled the same way at
// any time): the runs are cancelled with ckring.ErrShutdown as the cause and
// left running. A flusher must serve the segment (ckring-flusher --segment
// jobs --db DIR --create). Exit 0; 1 on an error; killed by SIGKILL with
// -crash-after.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"ckring.dev/ckring"
	"ckring.dev/examples/agent"
)

func main() {
	segment := flag.String("segment", "", "segment a flusher serves")
	prefix := flag.String("prefix", "demo-", "prefix of the run ids")
	crashAfter := flag.Int("crash-after", 0, "SIGKILL this process once the long runs did N steps")
	shutdownAfter := flag.Int("shutdown-after", 0, "shut down (ErrShutdown) once the long runs did N steps")
	flag.Parse()
	if *segment == "" || flag.NArg() != 0 || (*crashAfter > 0 && *shutdownAfter > 0) {
		fmt.Fprintln(os.Stderr, "usage: executor -segment NAME [-prefix P] [-crash-after N | -shutdown-after N]")
		os.Exit(2)
	}
	if err := run(*segment, *prefix, *crashAfter, *shutdownAfter); err != nil {
		fmt.Fprintln(os.Stderr, "executor:", err)
		os.Exit(1)
	}
}

func say(format string, args ...interface{}) { fmt.Printf("executor: "+format+"\n", args...) }

func run(segment, prefix string, crashAfter, shutdownAfter int) error {
	// One client, shared by every run; Complete and Fail return once the
	// flusher committed them.
	c, err := ckring.Attach(segment, &ckring.ClientOptions{FinishLevel: ckring.LevelCommitted})
	if err != nil {
		return err
	}
	defer c.Detach()
	ctx, shutdown, cause := withShutdown(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; shutdown() }()

	exec := &agent.Executor{Checkpointer: c, Label: "go-example/1.0", Say: say}
	longExec := *exec // the long runs stop (crash or shut down) mid-run
	longExec.AfterStep = stopAt(2, crashAfter, shutdownAfter, shutdown)
	short := []agent.Spec{
		{ID: prefix + "chat-ok", Kind: ckring.SingleLoop, Prompt: "summarise the incident", Turns: 2},
		{ID: prefix + "chat-fail", Kind: ckring.SingleLoop, Prompt: "draft the reply", Turns: 4, FailAt: 2},
	}
	long := []agent.Spec{
		{ID: prefix + "chat-long", Kind: ckring.SingleLoop, Prompt: "review the pool change", Turns: 5},
		{ID: prefix + "plan-long", Kind: ckring.MultiPhase, Prompt: "the post-mortem"},
	}
	for _, s := range short {
		if err := exec.Run(ctx, s, cause); err != nil && !errors.Is(err, agent.ErrModel) {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(long))
	for _, s := range long {
		wg.Add(1)
		go func(s agent.Spec) {
			defer wg.Done()
			if err := longExec.Run(ctx, s, cause); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}(s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

// stopAt is the AfterStep hook of the long runs: once all n of them did
// `after` steps, crash (SIGKILL this process) or shut down. Each run waits
// at that point until the others are there, so both die mid-run.
func stopAt(n, crashAfter, shutdownAfter int, shutdown func()) func(context.Context, string, int) {
	after := crashAfter + shutdownAfter
	if after == 0 {
		return nil
	}
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	return func(ctx context.Context, id string, step int) {
		if step != after {
			return
		}
		mu.Lock()
		arrived++
		last := arrived == n
		mu.Unlock()
		if !last {
			select { // wait for the other run (or a shutdown)
			case <-all:
			case <-ctx.Done():
			}
			return
		}
		if crashAfter > 0 {
			say("crash: SIGKILL in the middle of %d runs", n)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		say("shutdown: the host stops; the runs are cancelled")
		shutdown()
		close(all)
	}
}

// withShutdown is a context whose cancellation records ckring.ErrShutdown
// as its cause (Go 1.19 has no context.WithCancelCause).
func withShutdown(parent context.Context) (context.Context, func(), func() error) {
	ctx, cancel := context.WithCancel(parent)
	var once sync.Once
	var mu sync.Mutex
	var cause error
	shutdown := func() {
		once.Do(func() {
			mu.Lock()
			cause = ckring.ErrShutdown
			mu.Unlock()
			cancel()
		})
	}
	get := func() error {
		mu.Lock()
		defer mu.Unlock()
		if cause == nil {
			return ctx.Err()
		}
		return cause
	}
	return ctx, shutdown, get
}
