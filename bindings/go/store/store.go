package store

/*
#cgo pkg-config: ckring-store
#include <stdlib.h>
#include <ckring_store.h>
*/
import "C"

import (
	"strings"
	"sync"
	"time"
	"unsafe"

	"ckring.dev/ckring"
)

// Options are the options of Open (ckr_store_opts); the zero value (or nil)
// asks for the defaults.
type Options struct {
	MapSize     uint64 // initial LMDB map size; 0 = 64 MiB
	MaxAttempts uint32 // recoveries before a run fails; 0 = the flusher's setting (default 5)
	ReadOnly    bool   // no claims: for inspection
}

// A Store is an open handle of a flusher's LMDB store (ckr_store_open),
// used concurrently with the flusher. Every method may be called from any
// goroutine at once; Close may race them (they then fail with
// ckring.ErrHandleClosed). A handle belongs to its process.
type Store struct {
	dir string
	mu  sync.RWMutex // RLock: a call using h; Lock: Close
	h   *C.ckr_store // nil once closed
}

// Open opens the store in dir (which must exist) and checks its schema.
// A second Open of the same directory in this process shares its LMDB
// environment.
//
// Errors: ckring.ErrNotFound (no such directory; or no store in it, read
// only), -EACCES, ckring.ErrUnsafe (its data.mdb or lock.mdb is a symbolic
// link, not a regular file, or has another hard link), ckring.ErrVersion
// (a schema of another version: a store of an older ckring is migrated by
// opening it once with ckring-flusher), -ENOMEM, -EIO.
func Open(dir string, opts *Options) (*Store, error) {
	var o C.ckr_store_opts
	if opts != nil {
		o.map_size = C.uint64_t(opts.MapSize)
		o.max_attempts = C.uint32_t(opts.MaxAttempts)
		o.read_only = C.bool(opts.ReadOnly)
	}
	if strings.IndexByte(dir, 0) >= 0 {
		return nil, ckring.CodeError("open store "+dir, "", int(ckring.ErrInvalid))
	}
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var h *C.ckr_store
	if rc := C.ckr_store_open(cdir, &o, &h); rc != 0 {
		return nil, ckring.CodeError("open store "+dir, "", int(rc))
	}
	return &Store{dir: dir, h: h}, nil
}

// Dir is the directory the store was opened in. It can't fail.
func (s *Store) Dir() string { return s.dir }

// Close closes the handle (the environment closes with its last handle).
// Calls in progress finish first. A second Close does nothing; it returns
// nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h != nil {
		C.ckr_store_close(s.h)
		s.h = nil
	}
	return nil
}

// enter begins a call: false (and no lock held) once closed.
func (s *Store) enter() bool {
	s.mu.RLock()
	if s.h == nil {
		s.mu.RUnlock()
		return false
	}
	return true
}

func closedErr(op, id string) error {
	return &ckring.OpError{Op: op, Run: id, Err: ckring.ErrHandleClosed}
}

// RunState is the state of a stored run (ckr_run_state).
type RunState int

const (
	Running   RunState = C.CKR_RUN_RUNNING
	Failed    RunState = C.CKR_RUN_FAILED
	Completed RunState = C.CKR_RUN_COMPLETED
)

func (s RunState) String() string {
	switch s {
	case Running:
		return "running"
	case Failed:
		return "failed"
	case Completed:
		return "completed"
	}
	return "state?"
}

// RunInfo is a run's summary (ckr_run_info).
type RunInfo struct {
	ID           string
	State        RunState
	Kind         ckring.Kind
	OwnerPID     int
	OwnerStart   uint64 // the owner's process start time, clock ticks
	OwnerAlive   bool
	OwnerDrained bool // the owner is gone and the flusher drained every lane it wrote: claimable
	Incarnation  uint32
	Attempts     uint32
	Events       uint64 // events stored, the begin included
	LastSeq      uint64 // highest sequence stored
	PrefixSeq    uint64 // highest sequence of the gap-free prefix
	SetAside     uint64 // rows set aside by claims (past a gap)
	Bytes        uint64
	Created      time.Time
	Finished     time.Time // zero while running
	Label        string
	Error        string // failed runs: the error, possibly cut
}

func runInfo(in *C.ckr_run_info) RunInfo {
	ri := RunInfo{
		ID:           C.GoStringN((*C.char)(unsafe.Pointer(&in.id[0])), C.int(in.id_len)),
		State:        RunState(in.state),
		Kind:         ckring.Kind(in.kind),
		OwnerPID:     int(in.owner_pid),
		OwnerStart:   uint64(in.owner_start),
		OwnerAlive:   bool(in.owner_alive),
		OwnerDrained: bool(in.owner_drained),
		Incarnation:  uint32(in.incarnation),
		Attempts:     uint32(in.attempts),
		Events:       uint64(in.events),
		LastSeq:      uint64(in.last_seq),
		PrefixSeq:    uint64(in.prefix_seq),
		SetAside:     uint64(in.set_aside),
		Bytes:        uint64(in.bytes),
		Created:      time.Unix(0, int64(in.created_ns)),
		Label:        C.GoString(&in.label[0]),
		Error:        C.GoString(&in.error[0]),
	}
	if in.finished_ns != 0 {
		ri.Finished = time.Unix(0, int64(in.finished_ns))
	}
	return ri
}

// Which selects the runs List returns (ckr_list_which).
type Which int

const (
	Interrupted Which = C.CKR_LIST_INTERRUPTED // RUNNING with an owner that is not alive
	AllRunning  Which = C.CKR_LIST_RUNNING     // every RUNNING run
	All         Which = C.CKR_LIST_ALL         // every run, whatever its state
)

// List lists runs (ckr_store_list). Errors: ckring.ErrInvalid, -ENOMEM,
// -EIO, ckring.ErrHandleClosed.
func (s *Store) List(which Which) ([]RunInfo, error) {
	if !s.enter() {
		return nil, closedErr("list", "")
	}
	defer s.mu.RUnlock()
	var v *C.ckr_run_info
	var n C.size_t
	if rc := C.ckr_store_list(s.h, C.ckr_list_which(which), &v, &n); rc != 0 {
		return nil, ckring.CodeError("list", "", int(rc))
	}
	defer C.free(unsafe.Pointer(v))
	out := make([]RunInfo, 0, int(n))
	for _, in := range unsafe.Slice(v, int(n)) {
		out = append(out, runInfo(&in))
	}
	return out, nil
}

// Get is one run's summary (ckr_store_get). Errors: ckring.ErrNotFound,
// ckring.ErrInvalid, -EIO, ckring.ErrHandleClosed.
func (s *Store) Get(id string) (RunInfo, error) {
	if !s.enter() {
		return RunInfo{}, closedErr("get", id)
	}
	defer s.mu.RUnlock()
	var in C.ckr_run_info
	if rc := C.ckr_store_get(s.h, strData(id), C.size_t(len(id)), &in); rc != 0 {
		return RunInfo{}, ckring.CodeError("get", id, int(rc))
	}
	return runInfo(&in), nil
}

// BeginCheck is for ckring.ClientOptions.BeginCheck: nil when the store has
// no run id, ckring.ErrExists when it has (a run is never reset or forked),
// -EIO, ckring.ErrHandleClosed.
func (s *Store) BeginCheck(id string) error {
	if !s.enter() {
		return closedErr("begin check", id)
	}
	defer s.mu.RUnlock()
	if rc := C.ckr_store_begin_check(unsafe.Pointer(s.h), strData(id), C.size_t(len(id))); rc != 0 {
		return ckring.Errno(rc)
	}
	return nil
}

// Claim claims an interrupted run for recovery, atomically: one LMDB write
// transaction, so two claimers never both win (ckr_store_claim). It bumps
// the incarnation and the attempt count, makes this process the run's one
// writer with a new writer id, and closes the dead writer's tenure: rows
// past the first gap are set aside, so the run continues right after its
// gap-free prefix. Pass the claim to ckring.Client.Reopen in this process.
//
// Errors: ckring.ErrNotFound (no such run), ckring.ErrTerminal (the run
// finished), ckring.ErrNotInterrupted (its owner is alive),
// ckring.ErrClaimed (another live process claimed it: the loser of a race),
// ckring.ErrNotDrained (the dead owner's events may still be in the ring:
// retry once the flusher drained them), ckring.ErrExhausted (attempts
// exceeded the maximum: the run is now failed), ckring.ErrReadOnly,
// -ENOSPC, -EIO, ckring.ErrHandleClosed.
func (s *Store) Claim(id string) (*ckring.Claim, error) {
	if !s.enter() {
		return nil, closedErr("claim", id)
	}
	defer s.mu.RUnlock()
	var cl C.ckr_claim
	if rc := C.ckr_store_claim(s.h, strData(id), C.size_t(len(id)), &cl); rc != 0 {
		return nil, ckring.CodeError("claim", id, int(rc))
	}
	return claimOf(&cl), nil
}

// ClaimBatch claims the runs ids in ONE transaction (ckr_store_claim_batch;
// one fsync'd commit instead of one per run): each exactly as Claim would,
// and as atomically against racing recoverers. claims[i] is the claim of
// ids[i], or nil and errs[i] its refusal (the errors of Claim). err is
// non-nil, and nothing was claimed, only when the transaction failed
// (ckring.ErrInvalid, ckring.ErrReadOnly, -EBUSY, -ENOSPC, -EIO,
// ckring.ErrHandleClosed). Chunk long lists (say 1000 ids a call): the
// first runs resume sooner, and a transaction stays small.
func (s *Store) ClaimBatch(ids []string) (claims []*ckring.Claim, errs []error, err error) {
	claims, errs = make([]*ckring.Claim, len(ids)), make([]error, len(ids))
	if len(ids) == 0 {
		return claims, errs, nil
	}
	in := make([]C.ckr_run_info, len(ids))
	for i, id := range ids {
		if len(id) == 0 || len(id) > ckring.RunIDMax {
			return nil, nil, ckring.CodeError("claim batch", id, int(ckring.ErrInvalid))
		}
		for j := 0; j < len(id); j++ {
			in[i].id[j] = C.uint8_t(id[j])
		}
		in[i].id_len = C.size_t(len(id))
	}
	out := make([]C.ckr_claim, len(ids))
	res := make([]C.int, len(ids))
	if !s.enter() {
		return nil, nil, closedErr("claim batch", "")
	}
	defer s.mu.RUnlock()
	if rc := C.ckr_store_claim_batch(s.h, &in[0], C.size_t(len(ids)), &out[0], &res[0]); rc < 0 {
		return nil, nil, ckring.CodeError("claim batch", "", int(rc))
	}
	for i := range ids {
		if res[i] == 0 {
			claims[i] = claimOf(&out[i])
		} else {
			errs[i] = ckring.CodeError("claim", ids[i], int(res[i]))
		}
	}
	return claims, errs, nil
}

func claimOf(cl *C.ckr_claim) *ckring.Claim {
	return &ckring.Claim{
		ID:          C.GoStringN((*C.char)(unsafe.Pointer(&cl.id[0])), C.int(cl.id_len)),
		Kind:        ckring.Kind(cl.kind),
		Incarnation: uint32(cl.incarnation),
		Writer:      uint64(cl.writer),
		OwnerToken:  uint64(cl.owner_token),
		OwnerNonce:  uint64(cl.owner_nonce),
		NextSeq:     uint64(cl.next_seq),
		Bytes:       uint64(cl.bytes),
		Attempts:    uint32(cl.attempts),
		GapSeq:      uint64(cl.gap_seq),
		SetAside:    uint64(cl.set_aside),
		Label:       C.GoString(&cl.label[0]),
	}
}

// Blob is one stored message or phase (ckr_blob).
type Blob struct {
	Seq         uint64
	Index       uint32 // phases: the phase index
	Incarnation uint32 // the incarnation that wrote it
	Name        string // phases: the phase name
	Data        []byte
}

// Resume is a run's resume state as the store has it (ckr_resume).
type Resume struct {
	ID       string
	Kind     ckring.Kind
	RunState RunState
	NextSeq  uint64   // after the highest stored sequence
	History  []Blob   // single-loop: the gap-free transcript prefix
	Phases   []Blob   // multi-phase: completed phases, in order
	Gaps     []uint64 // missing sequence numbers below NextSeq
	SetAside []Blob   // rows set aside by claims: never part of the resume state
	Label    string
	Meta     []byte // the begin's metadata
}

// ResumeState is what the executor continues from (WithResumeState):
// History's data, or the completed phases.
func (r *Resume) ResumeState() *ckring.ResumeState {
	rs := &ckring.ResumeState{}
	for _, b := range r.History {
		rs.History = append(rs.History, b.Data)
	}
	for _, p := range r.Phases {
		rs.CompletedPhases = append(rs.CompletedPhases,
			ckring.PhaseOutput{Index: int(p.Index), Name: p.Name, Output: p.Data})
	}
	return rs
}

// Resume loads a run's resume state (ckr_store_resume), copied into Go
// memory: single-loop, the longest gap-free prefix of its messages;
// multi-phase, its completed phases in order; every gap reported.
// Errors: ckring.ErrNotFound, -ENOMEM, -EIO, ckring.ErrCorrupt (an
// undecodable row), ckring.ErrHandleClosed.
func (s *Store) Resume(id string) (*Resume, error) {
	if !s.enter() {
		return nil, closedErr("resume", id)
	}
	defer s.mu.RUnlock()
	var rs *C.ckr_resume
	if rc := C.ckr_store_resume(s.h, strData(id), C.size_t(len(id)), &rs); rc != 0 {
		return nil, ckring.CodeError("resume", id, int(rc))
	}
	defer C.ckr_resume_free(rs)
	r := &Resume{
		ID:       C.GoStringN((*C.char)(unsafe.Pointer(&rs.id[0])), C.int(rs.id_len)),
		Kind:     ckring.Kind(rs.kind),
		RunState: RunState(rs.state),
		NextSeq:  uint64(rs.next_seq),
		History:  blobs(rs.history, rs.n_history),
		Phases:   blobs(rs.phases, rs.n_phases),
		SetAside: blobs(rs.set_aside, rs.n_set_aside),
		Label:    C.GoString(&rs.label[0]),
	}
	if rs.n_gaps > 0 {
		for _, g := range unsafe.Slice(rs.gaps, int(rs.n_gaps)) {
			r.Gaps = append(r.Gaps, uint64(g))
		}
	}
	if rs.meta_len > 0 {
		r.Meta = C.GoBytes(unsafe.Pointer(rs.meta), C.int(rs.meta_len))
	}
	return r, nil
}

func blobs(v *C.ckr_blob, n C.size_t) []Blob {
	if n == 0 {
		return nil
	}
	out := make([]Blob, 0, int(n))
	for _, b := range unsafe.Slice(v, int(n)) {
		x := Blob{Seq: uint64(b.seq), Index: uint32(b.index), Incarnation: uint32(b.incarnation),
			Data: []byte{}}
		if b.name != nil {
			x.Name = C.GoString(b.name)
		}
		if b.size > 0 {
			x.Data = C.GoBytes(unsafe.Pointer(b.data), C.int(b.size))
		}
		out = append(out, x)
	}
	return out
}

// Counter is a counter the store keeps ("stored", "foreign", "dup_begin",
// "stale", "orphan", "after_end", "dup_seq", "bad_kind", "bad_begin",
// "quarantined"; persist/FORMAT.md): 0 when never counted, unreadable, or
// the store is closed. It can't fail.
func (s *Store) Counter(name string) uint64 {
	if strings.IndexByte(name, 0) >= 0 || !s.enter() {
		return 0
	}
	defer s.mu.RUnlock()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return uint64(C.ckr_store_counter(s.h, cname))
}

// Prune removes the runs finished longer ago than the given ages (0 =
// never; whole seconds) and returns how many (ckr_store_prune). Completed
// runs stay as small tombstones (a late duplicate begin must still find
// them). Errors: ckring.ErrReadOnly, -EIO, ckring.ErrHandleClosed.
func (s *Store) Prune(completedAge, failedAge time.Duration) (int, error) {
	if !s.enter() {
		return 0, closedErr("prune", "")
	}
	defer s.mu.RUnlock()
	rc := C.ckr_store_prune(s.h, seconds(completedAge), seconds(failedAge))
	if rc < 0 {
		return 0, ckring.CodeError("prune", "", int(rc))
	}
	return int(rc), nil
}

// seconds is d in whole seconds, rounded up (a positive age never becomes
// 0, which means "never").
func seconds(d time.Duration) C.uint32_t {
	if d <= 0 {
		return 0
	}
	return C.uint32_t((d + time.Second - 1) / time.Second)
}

// strData is the address of s's bytes, for C to read during one call.
func strData(s string) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&s))
}
