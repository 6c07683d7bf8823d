/*
 * bench.c — the run context, its results and the plan (see bench.h).
 */
#include "bench.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "peers.h"
#include "runner.h"
#include "scenarios_flusher.h"
#include "scenarios_recovery.h"
#include "sys.h"

const char *const bench_names[] = {
	"floor.push", "ckring.push", "ckring.push.procs", "mutex_ring.push",
	"pipe.write", "floor.read", "ckring.read", "lmdb.direct.sync",
	"lmdb.direct.nosync", "lmdb.batch.sync", "sqlite.direct.sync",
	"sqlite.direct.normal", "ckring.drain", "ckring.durable", "ckring.idle",
	"ckring.idle.attached", "recovery.claim", "recovery.claim.single",
};
const int bench_n_names = (int)(sizeof bench_names / sizeof bench_names[0]);

_Static_assert(sizeof bench_names / sizeof bench_names[0] <= 32, "bench.only is too small");

int bench_fail(bench *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err, sizeof b->err, fmt, ap);
	va_end(ap);
	return -1;
}

int bench_name_index(const char *name)
{
	for (int i = 0; i < bench_n_names; i++)
		if (!strcmp(bench_names[i], name))
			return i;
	return -1;
}

bool bench_wanted(const bench *b, const char *name)
{
	int i = bench_name_index(name);
	return i >= 0 && b->only[i];
}

result *bench_new_result(bench *b, const char *name, uint32_t size, int threads, int procs)
{
	if (b->n_res == BENCH_MAX_RESULTS)
		return NULL;
	result *r = &b->res[b->n_res++];
	memset(r, 0, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", name);
	r->size = size;
	r->threads = threads;
	r->procs = procs;
	r->latency_of = "op";
	return r;
}

/* ticks -> ns, less the timer's own cost when net; never below 0. */
static double net_ns(const bench *b, double ticks, bool net)
{
	double v = ticks - (net ? b->clk.overhead : 0);
	return v > 0 ? bench_ns(&b->clk, v) : 0;
}

void bench_fill_latency(const bench *b, result *r, const bench_hist *h, bool net)
{
	double q = b->clk.quantum;
	r->samples = h->count;
	r->p50 = net_ns(b, bh_quantile(h, 0.5, q), net);
	r->p99 = net_ns(b, bh_quantile(h, 0.99, q), net);
	r->p999 = net_ns(b, bh_quantile(h, 0.999, q), net);
	r->max = net_ns(b, (double)h->max, net);
	r->mean = h->count ? net_ns(b, h->sum / (double)h->count, net) : 0;
}

uint64_t bench_warm_ticks(const bench *b)
{
	double s = b->seconds * 0.2 < 0.05 ? 0.05 : b->seconds * 0.2;
	return bench_ticks_for_ns(&b->clk, s * 1e9);
}

uint64_t bench_run_ticks(const bench *b, double frac)
{
	return b->ops ? UINT64_MAX / 4 : bench_ticks_for_ns(&b->clk, b->seconds * frac * 1e9);
}

int bench_tmpdir(bench *b, char *out, size_t n)
{
	int rc = bench_mkdtemp(b->dir, out, n);
	return rc ? bench_fail(b, "cannot make a directory under %s: %s", b->dir,
			       strerror(-rc)) : 0;
}

static const char *fs_name(long type)
{
	switch ((unsigned long)type) {
	case 0xEF53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x01021994: return "tmpfs";
	case 0x794C7630: return "overlayfs";
	case 0x2FC12FC1: return "zfs";
	case 0x6969: return "nfs";
	case 0x65735546: return "fuse";
	case 0xF2F52010: return "f2fs";
	default: return "other";
	}
}

int bench_check_dir(bench *b)
{
	struct statfs sf;
	struct stat st;
	if (stat(b->dir, &st) || !S_ISDIR(st.st_mode))
		return bench_fail(b, "--dir %s: not a directory", b->dir);
	if (statfs(b->dir, &sf))
		return bench_fail(b, "--dir %s: statfs: %s", b->dir, strerror(errno));
	snprintf(b->fs, sizeof b->fs, "%s", fs_name((long)sf.f_type));
	if (!strcmp(b->fs, "tmpfs") && !b->json)
		fprintf(stderr, "ckring-bench: warning: %s is tmpfs: fsync is free there, the "
				"database numbers are not a disk's\n", b->dir);
	return 0;
}

static bool wants_disk(const bench *b)
{
	static const char *const disk[] = { "lmdb.direct.sync", "lmdb.direct.nosync",
					    "lmdb.batch.sync", "sqlite.direct.sync",
					    "sqlite.direct.normal", "ckring.drain",
					    "ckring.durable", "ckring.idle", "ckring.idle.attached",
					    "recovery.claim", "recovery.claim.single" };
	for (size_t i = 0; i < sizeof disk / sizeof disk[0]; i++)
		if (bench_wanted(b, disk[i]))
			return true;
	return false;
}

/* The databases at one size: the peers, then the flusher's drain. */
static int disk_benches(bench *b, uint32_t s)
{
	if (bench_wanted(b, "lmdb.direct.sync") && bench_lmdb_direct(b, s, true))
		return -1;
	if (bench_wanted(b, "lmdb.direct.nosync") && bench_lmdb_direct(b, s, false))
		return -1;
	if (bench_wanted(b, "lmdb.batch.sync") && bench_lmdb_batch(b, s))
		return -1;
	if (bench_wanted(b, "sqlite.direct.sync") && bench_sqlite_direct(b, s, true))
		return -1;
	if (bench_wanted(b, "sqlite.direct.normal") && bench_sqlite_direct(b, s, false))
		return -1;
	if (bench_wanted(b, "ckring.drain") && bench_drain(b, s))
		return -1;
	return 0;
}

/* The boot path at 10^3, 10^4, 10^5 interrupted runs (--quick: 10^3);
 * one claim a transaction only up to 10^4 (it is the slow baseline). */
static int recovery_benches(bench *b)
{
	static const uint64_t counts[] = { 1000, 10000, 100000 };
	int n = b->quick ? 1 : 3;
	for (int i = 0; i < n; i++) {
		if (bench_wanted(b, "recovery.claim") && bench_recovery(b, counts[i], false))
			return -1;
		if (i < 2 && bench_wanted(b, "recovery.claim.single") &&
		    bench_recovery(b, counts[i], true))
			return -1;
	}
	return 0;
}

int bench_run_all(bench *b)
{
	if (wants_disk(b) && bench_check_dir(b))
		return -1;
	for (int i = 0; i < b->n_sizes; i++)
		if (bench_ring_scenarios(b, b->sizes[i]))
			return -1;
	for (int i = 0; i < b->n_sizes; i++)
		if (disk_benches(b, b->sizes[i]))
			return -1;
	/* push -> synced at the first size only: the latency is the fsync's. */
	for (int k = 0; k < b->n_rates && bench_wanted(b, "ckring.durable"); k++)
		if (bench_durable(b, b->sizes[0], b->rates[k]))
			return -1;
	if (bench_wanted(b, "ckring.idle") && bench_idle(b, false))
		return -1;
	if (bench_wanted(b, "ckring.idle.attached") && bench_idle(b, true))
		return -1;
	return recovery_benches(b);
}
