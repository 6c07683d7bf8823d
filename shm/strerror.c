/*
 * strerror.c — ckr_strerror(): one description for each error code ckring
 * returns, errno values and its own CKR_E* band alike.
 */
#include <errno.h>
#include <string.h>

#include "ckring.h"

const char *ckr_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case CKR_ENOTSEG:
		return "not a ckring segment";
	case CKR_EVERSION:
		return "made by another layout or schema version";
	case CKR_ETRUNC:
		return "segment is smaller than its header says (truncated)";
	case CKR_EFORKED:
		return "handle belongs to the parent process (used after fork)";
	case CKR_ECORRUPT:
		return "data failed validation (corrupt)";
	case CKR_ECLAIMED:
		return "run already claimed by another live process";
	case CKR_ENOTDRAINED:
		return "run's dead owner still has events in the ring (flusher has not drained them yet)";
	case CKR_EEXHAUSTED:
		return "recovery attempts exhausted: run marked failed";
	case CKR_ETERMINAL:
		return "run has already finished";
	case CKR_ENOTINTERRUPTED:
		return "run is not interrupted (its owner is alive)";
	case CKR_EREJECTED:
		return "event rejected by the flusher: the run has another writer (a duplicate begin, or a claim fenced this one), had ended, or does not exist";
	case CKR_ENOTCLAIMER:
		return "claim was made by another process: only the claimer may reopen the run";
	case CKR_ESEGMENT:
		return "the store serves another segment (one store serves one segment)";
	case CKR_ESLOTS:
		return "every writer slot of the lane is in use (close runs, or attach another client)";
	case CKR_ECLOSED:
		return "the ticket's run handle was closed and its slot reused: its outcome can't be told";
	case CKR_EUNSAFE:
		return "the store directory or a file in it is not safe to use (a symbolic link, another owner, writable by others, or a data.mdb/lock.mdb that is not a plain file)";
	case CKR_ENOSHIPPER:
		return "no shipper serves the segment: the event is committed locally but cannot reach REPLICATED (start ckring-ship)";
	case CKR_EMOVED:
		return "the run moved to another host: it is not driven here";
	case CKR_ENOTLOST:
		return "the run's host is alive (not declared lost and its lease has not expired)";
	case -EAGAIN:
		return "ring full (nothing was pushed; try again)";
	case -E2BIG:
		return "event larger than the maximum event size";
	case -EFBIG:
		return "run would exceed its byte limit";
	case -EUSERS:
		return "no free lane in the segment (more producer clients than lanes)";
	case -EMFILE:
		return "too many open files: this process reached its descriptor limit (ulimit -n)";
	case -ENFILE:
		return "too many open files in the system (its file table is full)";
	case -EBUSY:
		return "busy: another flusher serves this segment";
	}
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}
