package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"ckring.dev/ckring"
	"ckring.dev/ckring/internal/testenv"
	"ckring.dev/ckring/store"
)

// TestHelperProcess is not a test: it is the body of the helper processes
// the tests start (testenv.StartHelper re-executes this binary), chosen by
// $CKRING_GO_HELPER. Each speaks in lines: "ready ...", then obeys commands
// from stdin until EOF; "FAIL ..." on an error.
func TestHelperProcess(t *testing.T) {
	name := os.Getenv(testenv.HelperEnv)
	if name == "" {
		t.Skip("only a helper process runs this")
	}
	args := testenv.HelperArgs()
	var err error
	switch name {
	case "executor":
		err = helperExecutor(args)
	case "claimer":
		err = helperClaimer(args)
	case "recoverer":
		err = helperRecoverer(args)
	default:
		err = fmt.Errorf("no helper %q", name)
	}
	if err != nil {
		testenv.Say("FAIL %s: %v", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperExecutor SEGMENT CHAT_ID PLAN_ID N: a Go executor process. Begins a
// single-loop run of N messages ("turn i") and a multi-phase run of N
// phases, waits until the flusher committed them, says "ready". Commands:
// "push" appends one more message (not waited for) and says "pushed SEQ";
// "exit" leaves at once, without detaching or finishing anything.
func helperExecutor(args []string) error {
	seg, chatID, planID := args[0], args[1], args[2]
	n, _ := strconv.Atoi(args[3])
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Bound)
	defer cancel()
	c, err := ckring.Attach(seg, nil)
	if err != nil {
		return err
	}
	chat, err := c.Begin(ctx, ckring.RunSpec{ID: chatID, Kind: ckring.SingleLoop, Label: "go-executor/1"})
	if err != nil {
		return err
	}
	plan, err := c.Begin(ctx, ckring.RunSpec{ID: planID, Kind: ckring.MultiPhase, Label: "go-executor/1"})
	if err != nil {
		return err
	}
	var t1, t2 ckring.Ticket
	for i := 0; i < n; i++ {
		if t1, err = chat.AppendMessage(ctx, []byte("turn "+strconv.Itoa(i))); err != nil {
			return err
		}
		if t2, err = plan.RecordPhase(ctx, ckring.PhaseOutput{Index: i, Name: phaseName(i),
			Output: []byte("output " + strconv.Itoa(i))}); err != nil {
			return err
		}
	}
	if err := chat.Wait(ctx, t1, ckring.LevelCommitted); err != nil {
		return err
	}
	if err := plan.Wait(ctx, t2, ckring.LevelCommitted); err != nil {
		return err
	}
	testenv.Say("ready")
	cmds := testenv.Commands()
	for cmds.Scan() {
		switch cmds.Text() {
		case "push":
			if _, err := chat.AppendMessage(ctx, []byte("turn "+strconv.Itoa(n))); err != nil {
				return err
			}
			testenv.Say("pushed %d", chat.(*ckring.Run).NextSeq()-1)
			n++
		case "exit":
			os.Exit(0)
		}
	}
	return nil
}

func phaseName(i int) string {
	names := []string{"plan", "research", "draft", "review"}
	return names[i%len(names)]
}

// helperClaimer DB ID: claims run ID and holds the claim (says "claimed")
// until stdin ends.
func helperClaimer(args []string) error {
	st, err := store.Open(args[0], nil)
	if err != nil {
		return err
	}
	if _, err := claimWhenDrained(st, args[1]); err != nil {
		return err
	}
	testenv.Say("claimed")
	cmds := testenv.Commands()
	for cmds.Scan() {
	}
	return nil
}

// helperRecoverer SEGMENT DB ID: claims run ID, reopens it, appends one
// message, waits until it is committed, says "ready", and waits for
// stdin to end (or to be killed).
func helperRecoverer(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Bound)
	defer cancel()
	st, err := store.Open(args[1], nil)
	if err != nil {
		return err
	}
	c, err := ckring.Attach(args[0], nil)
	if err != nil {
		return err
	}
	cl, err := claimWhenDrained(st, args[2])
	if err != nil {
		return err
	}
	r, err := c.Reopen(cl)
	if err != nil {
		return err
	}
	tk, err := r.AppendMessage(ctx, []byte("by the recoverer"))
	if err != nil {
		return err
	}
	if err := r.Wait(ctx, tk, ckring.LevelCommitted); err != nil {
		return err
	}
	testenv.Say("ready")
	cmds := testenv.Commands()
	for cmds.Scan() {
	}
	return nil
}

// claimWhenDrained claims id, retrying while the flusher has not drained
// its dead writer yet (bounded).
func claimWhenDrained(st *store.Store, id string) (*ckring.Claim, error) {
	end := time.Now().Add(testenv.Bound)
	for {
		cl, err := st.Claim(id)
		if err == nil || !errors.Is(err, ckring.ErrNotDrained) || time.Now().After(end) {
			return cl, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
