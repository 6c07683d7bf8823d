package ckring

/*
#include <stdlib.h>
#include <ckring.h>
*/
import "C"

import (
	"strings"
	"sync"
	"time"
	"unsafe"
)

// An Observer attaches to a segment read-only (ckr_observer_open): it never
// writes to it and may watch it while producers and the flusher run. Its
// snapshots are gauges (a busy lane is counted approximately, a quiet one
// exactly). Any goroutine may call its methods at once, Close included.
//
// It reads the mapping: a segment truncated under it faults (SIGBUS), which
// a Go program cannot survive. Segments are created complete and never
// truncated by ckring; only a hostile process could.
type Observer struct {
	mu sync.RWMutex
	h  *C.ckr_observer
}

// Observe attaches an observer to the segment. Errors: ErrInvalid,
// ErrNotFound, ErrNotSegment, ErrVersion, ErrTruncated, -EACCES, -ENOMEM.
func Observe(segment string) (*Observer, error) {
	if strings.IndexByte(segment, 0) >= 0 {
		return nil, &OpError{Op: "observe " + segment, Err: ErrInvalid}
	}
	name := C.CString(segment)
	defer C.free(unsafe.Pointer(name))
	var h *C.ckr_observer
	if rc := C.ckr_observer_open(name, &h); rc != 0 {
		return nil, CodeError("observe "+segment, "", int(rc))
	}
	return &Observer{h: h}, nil
}

// Close detaches the observer. A second Close does nothing; it returns nil.
func (o *Observer) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h != nil {
		C.ckr_observer_close(o.h)
		o.h = nil
	}
	return nil
}

// LaneState is what a lane's owner is doing (ckr_lane_state).
type LaneState int

const (
	LaneFree         LaneState = C.CKR_LANE_FREE         // nobody holds it
	LaneAttached     LaneState = C.CKR_LANE_ATTACHED     // a live owner holds its kernel lock
	LaneDetached     LaneState = C.CKR_LANE_DETACHED     // its owner left cleanly; being drained
	LaneOwnerGone    LaneState = C.CKR_LANE_OWNER_GONE   // its owner died or exec'd; being drained
	LaneInconsistent LaneState = C.CKR_LANE_INCONSISTENT // positions out of order (scribbled)
)

// LaneInfo is a snapshot of one lane (ckr_lane_info).
type LaneInfo struct {
	Index          uint32
	State          LaneState
	OwnerPID       int
	OwnerStart     uint64 // the owner's start time, clock ticks
	OwnerSince     time.Time
	Head           uint64 // committed: everything below is stored
	Tail           uint64 // end of every claim
	Synced         uint64 // fsync'd
	Capacity       uint64
	Pending        uint64 // sealed records between head and tail
	PendingCorrupt uint64 // ... of which fail validation
	RefusedFull    uint64 // pushes refused: ring full
	Drained        uint64 // records the flusher consumed
	Writers        uint32 // writer slots in use (open run handles)
}

// SegmentInfo is a snapshot of a segment (ckr_segment_info).
type SegmentInfo struct {
	Name           string
	LayoutVersion  uint32
	Epoch          [16]byte
	Size           uint64
	Created        time.Time
	LaneCount      uint32
	WritersPerLane uint32
	LaneCapacity   uint64
	MaxRecord      uint32
	Attached       uint32 // lanes with an owner
	Inconsistent   uint32
	Pushed         uint64 // drained + pending
	Drained        uint64
	RefusedFull    uint64
	Reclaimed      uint64 // abandoned claims of gone owners skipped
	Corrupt        uint64
	LanesFreed     uint64
	Committed      uint64 // sum of the lanes' heads
	SyncedSum      uint64 // sum of the lanes' synced
	LagBytes       uint64 // tail - head, summed
	LagRecords     uint64
	FlusherPresent bool // a flusher has its slot
	FlusherAlive   bool // ... and holds its kernel lock
	FlusherPID     int
	HeartbeatSeen  bool
	HeartbeatAge   time.Duration // since the flusher's last loop
	Batches        uint64        // store transactions the flusher committed
	Records        uint64        // records it persisted
	Lanes          []LaneInfo    // with Snapshot(true)
}

// Snapshot takes a snapshot of the segment and, with lanes, of every lane
// (ckr_observer_snapshot). ErrHandleClosed once closed.
func (o *Observer) Snapshot(lanes bool) (SegmentInfo, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.h == nil {
		return SegmentInfo{}, &OpError{Op: "snapshot", Err: ErrHandleClosed}
	}
	var si C.ckr_segment_info
	C.ckr_observer_snapshot(o.h, &si, nil, 0)
	info := segmentInfo(&si)
	if lanes && si.lane_count > 0 {
		li := make([]C.ckr_lane_info, int(si.lane_count))
		C.ckr_observer_snapshot(o.h, &si, &li[0], si.lane_count)
		info = segmentInfo(&si)
		for i := range li {
			info.Lanes = append(info.Lanes, laneInfo(&li[i]))
		}
	}
	return info, nil
}

func segmentInfo(s *C.ckr_segment_info) SegmentInfo {
	info := SegmentInfo{
		Name:           C.GoString(&s.name[0]),
		LayoutVersion:  uint32(s.layout_version),
		Size:           uint64(s.size),
		Created:        time.Unix(0, int64(s.created_ns)),
		LaneCount:      uint32(s.lane_count),
		WritersPerLane: uint32(s.writers_per_lane),
		LaneCapacity:   uint64(s.lane_capacity),
		MaxRecord:      uint32(s.max_record),
		Attached:       uint32(s.attached),
		Inconsistent:   uint32(s.inconsistent),
		Pushed:         uint64(s.pushed),
		Drained:        uint64(s.drained),
		RefusedFull:    uint64(s.refused_full),
		Reclaimed:      uint64(s.reclaimed),
		Corrupt:        uint64(s.corrupt),
		LanesFreed:     uint64(s.lanes_freed),
		Committed:      uint64(s.committed),
		SyncedSum:      uint64(s.synced),
		LagBytes:       uint64(s.lag_bytes),
		LagRecords:     uint64(s.lag_records),
		FlusherPresent: bool(s.flusher_present),
		FlusherAlive:   bool(s.flusher_alive),
		FlusherPID:     int(s.flusher_pid),
		HeartbeatSeen:  bool(s.heartbeat_seen),
		HeartbeatAge:   time.Duration(s.heartbeat_age_ns),
		Batches:        uint64(s.batches),
		Records:        uint64(s.records),
	}
	for i := range info.Epoch {
		info.Epoch[i] = byte(s.epoch[i])
	}
	return info
}

func laneInfo(l *C.ckr_lane_info) LaneInfo {
	return LaneInfo{
		Index:          uint32(l.index),
		State:          LaneState(l.state),
		OwnerPID:       int(l.owner_pid),
		OwnerStart:     uint64(l.owner_start),
		OwnerSince:     time.Unix(0, int64(l.owner_since_ns)),
		Head:           uint64(l.head),
		Tail:           uint64(l.tail),
		Synced:         uint64(l.synced),
		Capacity:       uint64(l.capacity),
		Pending:        uint64(l.pending),
		PendingCorrupt: uint64(l.pending_corrupt),
		RefusedFull:    uint64(l.refused_full),
		Drained:        uint64(l.drained),
		Writers:        uint32(l.writers),
	}
}
