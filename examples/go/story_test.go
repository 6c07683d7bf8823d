package examples

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ckring.dev/ckring"
)

const bound = 30 * time.Second

// The recovery story of the demo with the Go example: executor A is
// SIGKILLed in the middle of two runs, executor B shuts down in the middle
// of two (ErrShutdown: left running); each also completed one run and
// failed one. A Go host then recovers the four interrupted runs — the same
// records, continued at their next sequence — and finishes them. The store
// is checked with ckring-inspect.
func TestStoryExecutorKilledHostRecovers(t *testing.T) {
	bin := buildExample(t)
	seg := fmt.Sprintf("ckgo-ex-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)
	db := t.TempDir()
	defer ckring.UnlinkSegment(seg)
	startFlusher(t, seg, db)

	out, err := run(t, filepath.Join(bin, "executor"), "-segment", seg, "-prefix", "a-", "-crash-after", "2")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("executor A: want death by SIGKILL, got %v\n%s", err, out)
	}
	for _, want := range []string{"a-chat-ok: completed", "a-chat-fail: failed: model error",
		"a-chat-long: turn 2 checkpointed", "a-plan-long: phase research checkpointed", "crash: SIGKILL"} {
		mustSay(t, "executor A", out, want)
	}
	out, err = run(t, filepath.Join(bin, "executor"), "-segment", seg, "-prefix", "b-", "-shutdown-after", "1")
	if err != nil {
		t.Fatalf("executor B: %v\n%s", err, out)
	}
	mustSay(t, "executor B", out, "b-chat-long: interrupted by shutdown: left running for boot recovery")
	mustSay(t, "executor B", out, "b-plan-long: interrupted by shutdown: left running for boot recovery")

	before := inspectDB(t, db)
	for _, id := range []string{"a-chat-long", "a-plan-long", "b-chat-long", "b-plan-long"} {
		if r := before[id]; r.State != "running" || r.Incarnation != 1 {
			t.Fatalf("%s before the boot: %+v", id, r)
		}
	}

	out, err = run(t, filepath.Join(bin, "host"), "-segment", seg, "-db", db)
	if err != nil {
		t.Fatalf("host: %v\n%s", err, out)
	}
	for _, want := range []string{
		"a-chat-long: claimed (attempt 1, incarnation 2): 5 message(s), 0 phase(s) saved; continues at seq 6",
		"a-chat-long: resumed with 5 messages", "a-chat-long: turn 3 checkpointed",
		"a-plan-long: claimed (attempt 1, incarnation 2): 0 message(s), 2 phase(s) saved; continues at seq 3",
		"a-plan-long: resumed after 2 completed phases", "a-plan-long: phase draft checkpointed",
		"b-chat-long: claimed (attempt 1, incarnation 2): 3 message(s), 0 phase(s) saved; continues at seq 4",
		"b-plan-long: claimed (attempt 1, incarnation 2): 0 message(s), 1 phase(s) saved; continues at seq 2",
		"recovered 4 run(s): a-chat-long a-plan-long b-chat-long b-plan-long",
	} {
		mustSay(t, "host", out, want)
	}
	after := inspectDB(t, db)
	want := map[string]string{"a-chat-ok": "completed", "a-chat-fail": "failed", "b-chat-ok": "completed",
		"b-chat-fail": "failed", "a-chat-long": "completed", "a-plan-long": "completed",
		"b-chat-long": "completed", "b-plan-long": "completed"}
	if len(after) != len(want) {
		t.Fatalf("store holds %d runs, want %d: %+v", len(after), len(want), after)
	}
	for id, state := range want {
		r := after[id]
		recovered := strings.Contains(id, "long")
		// The same record, continued: one more attempt and incarnation,
		// and the sequence ran on (1 + 2 x 5 messages; 4 phases).
		if r.State != state || (recovered && (r.Attempts != 1 || r.Incarnation != 2)) ||
			(id[2:] == "chat-long" && r.LastSeq != 11) || (id[2:] == "plan-long" && r.LastSeq != 4) {
			t.Errorf("%s: %+v, want %s", id, r, state)
		}
	}
	if e := after["a-chat-fail"].Error; e == nil || !strings.HasPrefix(*e, "model error") {
		t.Errorf("a-chat-fail error %v", e)
	}
}

// The executor links libckring only (package ckring: no LMDB), as a C
// executor does; the host links libckring-store (package store) too.
func TestExecutorLinksNoLMDB(t *testing.T) {
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Skip("no ldd")
	}
	bin := buildExample(t)
	deps := func(name string) string {
		out, err := exec.Command(ldd, filepath.Join(bin, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("ldd %s: %v\n%s", name, err, out)
		}
		return string(out)
	}
	ex, host := deps("executor"), deps("host")
	if !strings.Contains(ex, "libckring.so.1 => /") || strings.Contains(ex, "liblmdb") ||
		strings.Contains(ex, "libckring-store") {
		t.Fatalf("executor links:\n%s", ex)
	}
	if !strings.Contains(host, "libckring-store.so.1 => /") || !strings.Contains(host, "liblmdb") {
		t.Fatalf("host links:\n%s", host)
	}
}

func mustSay(t *testing.T, who, out, line string) {
	t.Helper()
	if !strings.Contains(out, line) {
		t.Fatalf("%s did not say %q:\n%s", who, line, out)
	}
}

func toolDir(t *testing.T) string {
	if d := os.Getenv("CKRING_BIN"); d != "" {
		return d
	}
	d, err := filepath.Abs(filepath.Join("..", "..", "build", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// buildExample builds ./executor and ./host as a user would (go build;
// with -race under the race detector), once for all the tests.
func buildExample(t *testing.T) string {
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "ckring-go-example-"); buildErr != nil {
			return
		}
		args := []string{"build", "-o", buildDir + string(os.PathSeparator)}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "./executor", "./host")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// run runs a command to its end, at most bound; its output.
func run(t *testing.T, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not end within %v:\n%s", name, bound, out.String())
		return "", nil
	}
}

// startFlusher starts the real ckring-flusher and returns once it holds
// the segment's flusher slot (looked at every 2 ms, at most bound). It is
// stopped when the test ends.
func startFlusher(t *testing.T, seg, db string) {
	cmd := exec.Command(filepath.Join(toolDir(t), "ckring-flusher"), "--segment", seg, "--db", db,
		"--create", "--size", "4194304", "--lanes", "4", "--sync", "none")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("flusher:\n%s", out.String())
		}
	})
	end := time.Now().Add(bound)
	for {
		if o, err := ckring.Observe(seg); err == nil {
			si, err := o.Snapshot(false)
			o.Close()
			if err == nil && si.FlusherAlive && si.FlusherPID == cmd.Process.Pid {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("the flusher exited at start:\n%s", out.String())
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(end) {
			t.Fatal("the flusher did not start")
		}
	}
}

type runSummary struct {
	State       string  `json:"state"`
	Attempts    int     `json:"attempts"`
	Incarnation int     `json:"incarnation"`
	LastSeq     int     `json:"last_seq"`
	Error       *string `json:"error"`
}

// inspectDB is `ckring-inspect db DIR --json`, by run id.
func inspectDB(t *testing.T, db string) map[string]runSummary {
	out, err := exec.Command(filepath.Join(toolDir(t), "ckring-inspect"), "db", db, "--json").Output()
	if err != nil {
		t.Fatalf("ckring-inspect: %v", err)
	}
	var doc struct {
		Runs []struct {
			ID string `json:"id"`
			runSummary
		} `json:"runs"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("ckring-inspect: %v\n%s", err, out)
	}
	m := map[string]runSummary{}
	for _, r := range doc.Runs {
		m[r.ID] = r.runSummary
	}
	return m
}
