// Command host is the Go example's boot-recovery host: it opens the
// flusher's store, lists the interrupted runs, claims each (a racing host
// gets ckring.ErrClaimed), loads its resume state, reopens the SAME record
// and continues it through the same executor (../agent) that began it —
// all of it store.Recover — then says what it did.
//
//	host -segment jobs -db DIR
//
// Exit 0 when every interrupted run was recovered and finished; 1
// otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"ckring.dev/ckring"
	"ckring.dev/ckring/store"
	"ckring.dev/examples/agent"
)

func main() {
	segment := flag.String("segment", "", "segment the flusher serves")
	db := flag.String("db", "", "the flusher's store directory")
	flag.Parse()
	if *segment == "" || *db == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: host -segment NAME -db DIR")
		os.Exit(2)
	}
	if err := run(*segment, *db); err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		os.Exit(1)
	}
}

func say(format string, args ...interface{}) { fmt.Printf("host: "+format+"\n", args...) }

func run(segment, db string) error {
	st, err := store.Open(db, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	// The store refuses, at begin, a run id it already holds; Complete and
	// Fail return once the flusher committed them.
	c, err := ckring.Attach(segment, &ckring.ClientOptions{BeginCheck: st.BeginCheck,
		FinishLevel: ckring.LevelCommitted})
	if err != nil {
		return err
	}
	defer c.Detach()
	exec := &agent.Executor{Checkpointer: c, Label: "go-example/1.0", Say: say}
	ctx := context.Background()
	rep, err := store.Recover(ctx, st, c, func(ctx context.Context, rec *store.Recovered) error {
		spec, err := agent.SpecOf(rec.Resume.Meta)
		if err != nil {
			return err
		}
		say("%s: claimed (attempt %d, incarnation %d): %d message(s), %d phase(s) saved; continues at seq %d",
			spec.ID, rec.Claim.Attempts, rec.Claim.Incarnation, len(rec.Resume.History),
			len(rec.Resume.Phases), rec.Claim.NextSeq)
		// ctx carries the resume state and rec.Run as the existing
		// checkpointer: the executor continues the same record.
		return exec.Run(ctx, spec, nil)
	}, nil)
	if err != nil {
		return err
	}
	sort.Strings(rep.Dispatched)
	say("recovered %d run(s): %s", len(rep.Dispatched), strings.Join(rep.Dispatched, " "))
	if len(rep.Lost)+len(rep.Exhausted)+len(rep.Skipped) > 0 {
		say("claimed by another host: %v; attempts exhausted: %v; finished meanwhile: %v",
			rep.Lost, rep.Exhausted, rep.Skipped)
	}
	for _, e := range rep.Failed {
		say("not recovered: %v", e)
	}
	if len(rep.Failed) > 0 {
		return fmt.Errorf("%d run(s) not recovered", len(rep.Failed))
	}
	return nil
}
