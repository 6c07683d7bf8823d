package ckring

/*
#include <stdlib.h>
#include <ckring.h>
*/
import "C"

import (
	"os"
	"strings"
	"unsafe"
)

// SegmentOptions are the layout of a new segment (ckr_segment_opts). The
// zero value asks for the defaults.
type SegmentOptions struct {
	Size           uint64      // total bytes; 0 = 16 lanes x 1 MiB
	Lanes          uint32      // number of lanes; 0 = 16
	WritersPerLane uint32      // open runs a lane can hold; 0 = 256
	Mode           os.FileMode // permission bits; 0 = 0600
	Group          int         // owning group id; -1 or 0 = leave as created
}

// CreateSegment creates the segment name (letters, digits, '.', '_', '-';
// 1..200 bytes, not starting with '.'), atomically and exclusively
// (ckr_segment_create). A flusher usually does this (ckring-flusher
// --create); executors attach to an existing segment.
//
// Errors: ErrInvalid (bad name or size), ErrExists (it exists), -EACCES,
// -ENOMEM/-ENOSPC (/dev/shm full), another errno. Any goroutine; two
// creators of one name race safely (one gets ErrExists).
func CreateSegment(name string, opts *SegmentOptions) error {
	if strings.IndexByte(name, 0) >= 0 {
		return &OpError{Op: "create segment " + name, Err: ErrInvalid}
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var o C.ckr_segment_opts
	o.group = C.gid_t(^uint32(0))
	if opts != nil {
		o.size = C.uint64_t(opts.Size)
		o.lanes = C.uint32_t(opts.Lanes)
		o.writers_per_lane = C.uint32_t(opts.WritersPerLane)
		o.mode = C.mode_t(opts.Mode.Perm())
		if opts.Group > 0 {
			o.group = C.gid_t(opts.Group)
		}
	}
	if rc := C.ckr_segment_create(cname, &o); rc != 0 {
		return CodeError("create segment "+name, "", int(rc))
	}
	return nil
}

// UnlinkSegment removes the segment name; processes that have it mapped
// keep their mapping. Errors: ErrInvalid, ErrNotFound, -EACCES.
func UnlinkSegment(name string) error {
	if strings.IndexByte(name, 0) >= 0 {
		return &OpError{Op: "unlink segment " + name, Err: ErrInvalid}
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if rc := C.ckr_segment_unlink(cname); rc != 0 {
		return CodeError("unlink segment "+name, "", int(rc))
	}
	return nil
}

// CheckSegmentName reports whether name is a valid segment name (nil, or
// ErrInvalid).
func CheckSegmentName(name string) error {
	if strings.IndexByte(name, 0) >= 0 {
		return &OpError{Op: "segment name", Err: ErrInvalid}
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if rc := C.ckr_segment_name_check(cname); rc != 0 {
		return CodeError("segment name", "", int(rc))
	}
	return nil
}
