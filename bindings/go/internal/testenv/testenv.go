// Package testenv starts what the binding's tests run against: the real
// ckring-flusher of the build on a unique segment and a temporary store,
// helper processes (the test binary itself, re-executed), and the real
// ckring-inspect to check what the store holds.
//
// Every wait here is bounded, and waits for an event (a line from a helper,
// a process's exit) or for a condition the flusher makes true, looked at
// every few milliseconds (its slot claimed, a run's state), as the C demo
// does.
package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ckring.dev/ckring"
)

// Bound is the longest any wait of a test may take.
const Bound = 20 * time.Second

// TopDir is the top of the ckring source tree this module sits in.
func TopDir(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "include", "ckring.h")); err == nil {
			return d
		}
	}
	t.Fatalf("no ckring source tree above %s", wd)
	return ""
}

// Bin is the path of the ckring tool name: $CKRING_BIN/name, else the
// build/bin of the source tree this module sits in.
func Bin(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("CKRING_BIN")
	if dir == "" {
		dir = filepath.Join(TopDir(t), "build", "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found (build it with make, or set CKRING_BIN): %v", name, err)
	}
	return p
}

var segCounter atomic.Int64

// Segment is a segment name unique to this process and call; the segment
// is removed when the test ends.
func Segment(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("ckgo-%d-%d-%d", os.Getpid(), segCounter.Add(1), time.Now().UnixNano()%1000000)
	t.Cleanup(func() { _ = ckring.UnlinkSegment(name) })
	return name
}

// Flusher is a ckring-flusher process serving one segment.
type Flusher struct {
	t       testing.TB
	Segment string
	DB      string
	args    []string
	cmd     *exec.Cmd
	out     *lockedBuffer
	done    chan struct{}
	err     error
}

// StartFlusher starts ckring-flusher --segment seg --db db plus args, and
// returns once the flusher holds its slot. The flusher is killed when the
// test ends (its output is logged if the test failed).
func StartFlusher(t testing.TB, seg, db string, args ...string) *Flusher {
	t.Helper()
	f := &Flusher{t: t, Segment: seg, DB: db, args: args}
	f.start()
	t.Cleanup(func() {
		f.Kill()
		if t.Failed() {
			t.Logf("flusher output:\n%s", f.out.String())
		}
	})
	return f
}

// DefaultFlusherArgs makes a small segment fit for most tests.
var DefaultFlusherArgs = []string{"--create", "--size", "4194304", "--lanes", "8", "--sync", "none"}

func (f *Flusher) start() {
	f.t.Helper()
	argv := append([]string{"--segment", f.Segment, "--db", f.DB}, f.args...)
	f.cmd = exec.Command(Bin(f.t, "ckring-flusher"), argv...)
	f.out = &lockedBuffer{}
	f.cmd.Stdout = f.out
	f.cmd.Stderr = f.out
	f.done = make(chan struct{})
	if err := f.cmd.Start(); err != nil {
		f.t.Fatalf("start ckring-flusher: %v", err)
	}
	go func() {
		f.err = f.cmd.Wait()
		close(f.done)
	}()
	WaitFor(f.t, "the flusher holds its slot", func() bool {
		select {
		case <-f.done:
			f.t.Fatalf("ckring-flusher exited at start: %v\n%s", f.err, f.out.String())
		default:
		}
		return FlusherAlive(f.Segment, f.cmd.Process.Pid)
	})
}

// FlusherAlive reports whether a flusher of pid (0: any) holds the
// segment's flusher slot.
func FlusherAlive(seg string, pid int) bool {
	o, err := ckring.Observe(seg)
	if err != nil {
		return false
	}
	defer o.Close()
	si, err := o.Snapshot(false)
	return err == nil && si.FlusherAlive && (pid == 0 || si.FlusherPID == pid)
}

// Pid is the flusher's process id.
func (f *Flusher) Pid() int { return f.cmd.Process.Pid }

// Stop sends SIGTERM and waits for a clean exit (status 0).
func (f *Flusher) Stop() {
	f.t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(Bound):
		f.t.Fatal("the flusher did not stop on SIGTERM")
	}
	if f.err != nil {
		f.t.Fatalf("the flusher exited with %v\n%s", f.err, f.out.String())
	}
}

// Kill SIGKILLs the flusher (if it runs) and reaps it.
func (f *Flusher) Kill() {
	select {
	case <-f.done:
		return
	default:
	}
	_ = f.cmd.Process.Signal(syscall.SIGCONT)
	_ = f.cmd.Process.Kill()
	<-f.done
}

// Pause stops the flusher (SIGSTOP) and returns once the kernel says it is
// stopped: it holds its slot but drains nothing.
func (f *Flusher) Pause() {
	f.t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGSTOP)
	WaitFor(f.t, "the flusher is stopped", func() bool { return procState(f.Pid()) == 'T' })
}

// procState is the state letter of /proc/PID/stat ('R', 'S', 'T', ...), or 0.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// Resume continues a paused flusher (SIGCONT).
func (f *Flusher) Resume() { _ = f.cmd.Process.Signal(syscall.SIGCONT) }

// Restart starts the flusher again with the same arguments, after it
// stopped or was killed.
func (f *Flusher) Restart() {
	f.t.Helper()
	f.Kill()
	f.start()
}

// WaitFor looks at cond every 2 ms until it holds, at most Bound.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(Bound)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out (%v) waiting until %s", Bound, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A Blob is one message or phase of `ckring-inspect run --json`.
type Blob struct {
	Seq         uint64 `json:"seq"`
	Incarnation uint32 `json:"incarnation"`
	Index       uint32 `json:"index"`
	Name        string `json:"name"`
	Size        int    `json:"size"`
	Data        []byte `json:"data_b64"`
}

// RunJSON is `ckring-inspect run DIR ID --json`.
type RunJSON struct {
	ID              string `json:"id"`
	State           string `json:"state"`
	Kind            string `json:"kind"`
	Label           string `json:"label"`
	NextSeq         uint64 `json:"next_seq"`
	Gaps            []uint64
	History         []Blob `json:"history"`
	CompletedPhases []Blob `json:"completed_phases"`
	SetAside        []Blob `json:"set_aside"`
	Meta            []byte `json:"meta_b64"`
}

// InspectRun runs ckring-inspect run db id --json.
func InspectRun(t testing.TB, db, id string) RunJSON {
	t.Helper()
	var r RunJSON
	inspect(t, &r, "run", db, id, "--json")
	return r
}

// RunSummary is one run of `ckring-inspect db DIR --json`.
type RunSummary struct {
	ID           string  `json:"id"`
	State        string  `json:"state"`
	Kind         string  `json:"kind"`
	OwnerPID     int     `json:"owner_pid"`
	OwnerAlive   bool    `json:"owner_alive"`
	Events       uint64  `json:"events"`
	LastSeq      uint64  `json:"last_seq"`
	Attempts     uint32  `json:"attempts"`
	Error        *string `json:"error"`
	Interrupted  bool    `json:"interrupted"`
	OwnerDrained bool    `json:"owner_drained"`
	Incarnation  uint32  `json:"incarnation"`
	PrefixSeq    uint64  `json:"prefix_seq"`
	Label        string  `json:"label"`
}

// DBJSON is `ckring-inspect db DIR --json`.
type DBJSON struct {
	Runs     []RunSummary      `json:"runs"`
	Counters map[string]uint64 `json:"counters"`
}

// Run is the summary of run id (Fatal if it is not in the store).
func (d DBJSON) Run(t testing.TB, id string) RunSummary {
	t.Helper()
	for _, r := range d.Runs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("run %s is not in the store: %+v", id, d.Runs)
	return RunSummary{}
}

// InspectDB runs ckring-inspect db db --json.
func InspectDB(t testing.TB, db string) DBJSON {
	t.Helper()
	var d DBJSON
	inspect(t, &d, "db", db, "--json")
	return d
}

func inspect(t testing.TB, v interface{}, args ...string) {
	t.Helper()
	out, err := exec.Command(Bin(t, "ckring-inspect"), args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("ckring-inspect %s: %v %s", strings.Join(args, " "), err, msg)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("ckring-inspect %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// HelperEnv names the helper a re-executed test binary must run.
const HelperEnv = "CKRING_GO_HELPER"

// Proc is a helper process: the test binary re-executed to run one
// helper, talking in lines (its stdout) and taking commands (its stdin).
type Proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan struct{}
	err   error
	log   *lockedBuffer
}

// StartHelper runs this test binary's TestHelperProcess with helper name
// and args (read back by HelperArgs). The process is killed when the test
// ends.
func StartHelper(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), HelperEnv+"="+name)
	p := &Proc{t: t, cmd: cmd, lines: make(chan string, 64), done: make(chan struct{}), log: &lockedBuffer{}}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.log
	p.in = in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.log.Write([]byte(sc.Text() + "\n"))
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("helper %s output:\n%s", name, p.log.String())
		}
	})
	return p
}

// Pid is the helper's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Expect reads the helper's lines until one starts with prefix and returns
// it (Fatal if the helper exits first, or after Bound).
func (p *Proc) Expect(prefix string) string {
	p.t.Helper()
	timeout := time.After(Bound)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				p.t.Fatalf("helper exited (%v) before %q:\n%s", p.err, prefix, p.log.String())
			}
			if strings.HasPrefix(l, "FAIL ") {
				p.t.Fatalf("helper: %s", l)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			p.t.Fatalf("helper: no %q within %v:\n%s", prefix, Bound, p.log.String())
		}
	}
}

// Send writes one command line to the helper.
func (p *Proc) Send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("helper: send %q: %v", line, err)
	}
}

// Kill SIGKILLs the helper and reaps it.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	p.drain()
}

// Wait waits for the helper to exit and returns its error (nil: status 0).
func (p *Proc) Wait() error {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(Bound):
		p.t.Fatalf("helper did not exit within %v", Bound)
	}
	return p.err
}

func (p *Proc) drain() {
	for range p.lines {
	}
	<-p.done
}

// HelperArgs are the arguments StartHelper passed, in the helper process.
func HelperArgs() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}

// Say prints one line for the test that started this helper.
func Say(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
}

// Commands reads the helper's command lines from stdin.
func Commands() *bufio.Scanner { return bufio.NewScanner(os.Stdin) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
