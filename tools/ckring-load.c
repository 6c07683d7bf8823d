/*
 * ckring-load — the load generator of docs/DESIGN.md §9: P processes x T threads, each
 * thread driving R single-loop runs round-robin with N verifiable messages
 * each; optional ack file of accepted messages per run (survives SIGKILL).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckring.h"
#define CLI_PROG "ckring-load"
#include "cli.h"

/* How long ckring-load waits for a missing segment to appear by default:
 * ample for a flusher started at the same moment to create it. */
#define DEFAULT_WAIT_MS 5000

typedef struct load_opts {
	const char *segment, *prefix, *ack_file;
	uint64_t procs, threads, runs, events, size;
	uint64_t wait_ms;
	ckr_outcome finish;
	bool finish_leave;
} load_opts;

typedef struct thread_ctx {
	const load_opts *o;
	ckr_client *client;
	uint64_t proc, thread;
	_Atomic uint64_t *acks; /* NULL without --ack-file */
	uint64_t pushed, refused;
	int err;
} thread_ctx;

static uint64_t fnv1a64(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Message m of run id, docs/DESIGN.md §9: m LE, FNV-1a-64(id) LE, then h + 31m + i. */
static void make_message(uint8_t *buf, size_t size, const char *id, uint64_t m)
{
	uint64_t h = fnv1a64(id, strlen(id));
	for (int i = 0; i < 8; i++) {
		buf[i] = (uint8_t)(m >> (8 * i));
		buf[8 + i] = (uint8_t)(h >> (8 * i));
	}
	for (size_t i = 16; i < size; i++)
		buf[i] = (uint8_t)(h + 31 * m + i);
}

/* Retry a push refused for a full ring; count the refusals. */
#define PUSH_RETRY(ctx, expr)                                      \
	({                                                         \
		int rc_;                                           \
		while ((rc_ = (expr)) == -EAGAIN) {                \
			(ctx)->refused++;                          \
			sched_yield();                             \
		}                                                  \
		rc_;                                               \
	})

static int begin_runs(thread_ctx *t, ckr_run **runs, char (*ids)[80])
{
	const load_opts *o = t->o;
	for (uint64_t r = 0; r < o->runs; r++) {
		snprintf(ids[r], 80, "%sp%llu-t%llu-r%llu", o->prefix,
			 (unsigned long long)t->proc, (unsigned long long)t->thread,
			 (unsigned long long)r);
		ckr_run_spec spec = { .id = ids[r], .id_len = strlen(ids[r]),
				      .kind = CKR_KIND_SINGLE_LOOP, .label = "ckring-load" };
		int rc = PUSH_RETRY(t, ckr_run_begin(t->client, &spec, &runs[r], NULL));
		if (rc) {
			fprintf(stderr, "ckring-load: begin %s: %s\n", ids[r], ckr_strerror(rc));
			return rc;
		}
	}
	return 0;
}

static int push_rounds(thread_ctx *t, ckr_run **runs, char (*ids)[80], uint8_t *msg)
{
	const load_opts *o = t->o;
	uint64_t base = (t->proc * o->threads + t->thread) * o->runs;
	for (uint64_t m = 0; m < o->events; m++) {
		for (uint64_t r = 0; r < o->runs; r++) {
			make_message(msg, o->size, ids[r], m);
			int rc = PUSH_RETRY(t, ckr_run_message(runs[r], msg, o->size, NULL));
			if (rc) {
				fprintf(stderr, "ckring-load: %s message %llu: %s\n", ids[r],
					(unsigned long long)m, ckr_strerror(rc));
				return rc;
			}
			t->pushed++;
			if (t->acks) /* relaxed: the file is read after we stop */
				atomic_store_explicit(&t->acks[base + r], m + 1,
						      memory_order_relaxed);
		}
	}
	return 0;
}

static int finish_runs(thread_ctx *t, ckr_run **runs, uint64_t n)
{
	int err = 0;
	for (uint64_t r = 0; r < n; r++) {
		if (!t->o->finish_leave && err == 0)
			err = PUSH_RETRY(t, ckr_run_finish(runs[r], t->o->finish,
							   "ckring-load: --finish fail", NULL));
		ckr_run_close(runs[r]);
	}
	return err;
}

static void *thread_main(void *arg)
{
	thread_ctx *t = arg;
	const load_opts *o = t->o;
	ckr_run **runs = calloc(o->runs, sizeof *runs);
	char (*ids)[80] = calloc(o->runs, sizeof *ids);
	uint8_t *msg = malloc(o->size);
	if (!runs || !ids || !msg) {
		t->err = -ENOMEM;
		goto out;
	}
	t->err = begin_runs(t, runs, ids);
	if (t->err == 0)
		t->err = push_rounds(t, runs, ids, msg);
	int ferr = finish_runs(t, runs, o->runs);
	if (t->err == 0)
		t->err = ferr;
out:
	free(runs);
	free(ids);
	free(msg);
	return NULL;
}

static _Atomic uint64_t *map_acks(const load_opts *o, bool create)
{
	if (!o->ack_file)
		return NULL;
	size_t len = o->procs * o->threads * o->runs * 8;
	int fd = open(o->ack_file, create ? O_RDWR | O_CREAT | O_TRUNC : O_RDWR, 0644);
	if (fd < 0 || (create && ftruncate(fd, (off_t)len) != 0)) {
		fprintf(stderr, "ckring-load: ack file %s: %s\n", o->ack_file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return MAP_FAILED;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p;
}

/* One producer process: its client, its threads. @return exit status. */
static int proc_main(const load_opts *o, uint64_t proc, _Atomic uint64_t *acks,
		     uint64_t *pushed, uint64_t *refused)
{
	ckr_client *c;
	int rc = ckr_client_attach(o->segment, NULL, &c);
	if (rc) {
		fprintf(stderr, "ckring-load: attach %s: %s\n", o->segment, ckr_strerror(rc));
		return 1;
	}
	pthread_t *th = calloc(o->threads, sizeof *th);
	thread_ctx *ctx = calloc(o->threads, sizeof *ctx);
	int status = th && ctx ? 0 : 1;
	for (uint64_t t = 0; status == 0 && t < o->threads; t++) {
		ctx[t] = (thread_ctx){ .o = o, .client = c, .proc = proc, .thread = t, .acks = acks };
		pthread_create(&th[t], NULL, thread_main, &ctx[t]);
	}
	for (uint64_t t = 0; status == 0 && t < o->threads; t++) {
		pthread_join(th[t], NULL);
		*pushed += ctx[t].pushed;
		*refused += ctx[t].refused;
		if (ctx[t].err)
			status = 1;
	}
	free(th);
	free(ctx);
	ckr_client_detach(c);
	return status;
}

static void usage(FILE *out)
{
	fputs("usage: ckring-load --segment NAME --procs P --threads T --runs R --events N\n"
	      "                   --size BYTES [--prefix P] [--ack-file F]\n"
	      "                   [--finish leave|complete|fail] [--wait-ms MS]\n"
	      "Each of T threads in each of P processes drives R single-loop runs\n"
	      "(ids {PREFIX}p{P}-t{T}-r{R}), one message per run per round, N messages\n"
	      "each, of BYTES >= 16 bytes derived from (run id, sequence) (docs/DESIGN.md §9).\n"
	      "--ack-file F: one little-endian u64 per run (process, thread, run order):\n"
	      "the number of that run's messages accepted so far.\n"
	      "--wait-ms MS: wait at most MS ms for a missing segment to appear\n"
	      "(default 5000; 0: do not wait), so the load may start before, with\n"
	      "or after ckring-flusher --create.\n", out);
}

static int parse_finish(const char *a, load_opts *o)
{
	o->finish_leave = strcmp(a, "leave") == 0;
	if (strcmp(a, "complete") == 0)
		o->finish = CKR_OUTCOME_COMPLETE;
	else if (strcmp(a, "fail") == 0)
		o->finish = CKR_OUTCOME_FAIL;
	else if (!o->finish_leave)
		return cli_usage_error("bad --finish (leave|complete|fail)", a);
	return 0;
}

static int parse_args(int argc, char **argv, load_opts *o)
{
	static const struct option lo[] = {
		{ "segment", 1, NULL, 's' }, { "procs", 1, NULL, 'p' },
		{ "threads", 1, NULL, 't' }, { "runs", 1, NULL, 'r' },
		{ "events", 1, NULL, 'n' },  { "size", 1, NULL, 'z' },
		{ "prefix", 1, NULL, 'x' },  { "ack-file", 1, NULL, 'a' },
		{ "finish", 1, NULL, 'f' },  { "wait-ms", 1, NULL, 'w' },
		{ "help", 0, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		const char *a = optarg;
		switch (c) {
		case 's': o->segment = a; break;
		case 'p': if (!cli_u64(a, 10, 1, 64, &o->procs)) return cli_usage_error("bad --procs (1..64)", a); break;
		case 't': if (!cli_u64(a, 10, 1, 256, &o->threads)) return cli_usage_error("bad --threads (1..256)", a); break;
		case 'r': if (!cli_u64(a, 10, 1, 100000, &o->runs)) return cli_usage_error("bad --runs", a); break;
		case 'n': if (!cli_u64(a, 10, 1, UINT32_MAX, &o->events)) return cli_usage_error("bad --events", a); break;
		case 'z': if (!cli_u64(a, 10, 1, 16u << 20, &o->size) || o->size < 16) return cli_usage_error("bad --size (>= 16)", a); break;
		case 'x': o->prefix = a; break;
		case 'a': o->ack_file = a; break;
		case 'f': if (parse_finish(a, o)) return 2; break;
		case 'w': if (!cli_u64(a, 10, 0, 3600000, &o->wait_ms)) return cli_usage_error("bad --wait-ms (0..3600000)", a); break;
		case 'h': usage(stdout); return 1;
		default: return cli_usage_error("unknown or incomplete option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument", argv[optind]);
	if (!o->segment || !o->procs || !o->threads || !o->runs || !o->events || !o->size)
		return cli_usage_error("--segment, --procs, --threads, --runs, --events and --size are required", NULL);
	if (strlen(o->prefix) + 40 > 64)
		return cli_usage_error("--prefix too long for a 64-byte run id", o->prefix);
	return 0;
}

/*
 * Attach read-only, waiting at most o->wait_ms for a segment that does not
 * exist yet (a flusher started at the same moment is creating it). Only a
 * missing segment is waited for: ckr_segment_create() gives a segment its
 * name only once it is complete, so anything else (not a segment, another
 * version, truncated) is an answer, not a moment of a creation.
 */
static int attach_waiting(const load_opts *o, ckr_observer **ob)
{
	struct timespec t0, now, pause = { 0, 1000000 }; /* 1 ms, doubling to 64 */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int rc = ckr_observer_open(o->segment, ob);
		if (rc != -ENOENT)
			return rc;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t ms = (int64_t)(now.tv_sec - t0.tv_sec) * 1000 +
			     (now.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= (int64_t)o->wait_ms)
			return rc;
		nanosleep(&pause, NULL);
		if (pause.tv_nsec < 64000000)
			pause.tv_nsec *= 2;
	}
}

/* Fail early, in the parent, on a missing or bad segment. */
static int check_segment(const load_opts *o)
{
	ckr_observer *ob;
	ckr_segment_info in;
	int rc = attach_waiting(o, &ob);
	if (rc == -ENOENT && o->wait_ms) {
		fprintf(stderr, "ckring-load: segment '%s': %s (waited %llu ms for it "
			"to appear)\n", o->segment, ckr_strerror(rc),
			(unsigned long long)o->wait_ms);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "ckring-load: segment '%s': %s\n", o->segment, ckr_strerror(rc));
		return 1;
	}
	ckr_observer_snapshot(ob, &in, NULL, 0);
	ckr_observer_close(ob);
	bool fits = o->size + 128 <= in.max_record;
	if (!fits) {
		fprintf(stderr, "ckring-load: --size %llu is above the segment's event limit\n",
			(unsigned long long)o->size);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	load_opts o = { .prefix = "", .finish_leave = true, .wait_ms = DEFAULT_WAIT_MS };
	int rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (check_segment(&o))
		return 1;
	_Atomic uint64_t *acks = map_acks(&o, true);
	if (acks == MAP_FAILED)
		return 1;
	/* Totals from the children, in a shared page. */
	uint64_t *totals = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t *kids = calloc(o.procs, sizeof *kids);
	for (uint64_t p = 0; p < o.procs; p++) {
		kids[p] = fork();
		if (kids[p] == 0) {
			uint64_t pushed = 0, refused = 0;
			int st = proc_main(&o, p, acks, &pushed, &refused);
			__atomic_add_fetch(&totals[0], pushed, __ATOMIC_RELAXED);
			__atomic_add_fetch(&totals[1], refused, __ATOMIC_RELAXED);
			_exit(st);
		}
	}
	int failed = 0;
	for (uint64_t p = 0; p < o.procs; p++) {
		int st;
		if (kids[p] < 0 || waitpid(kids[p], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			failed++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("ckring-load: pushed %llu messages in %llu runs, refused %llu (ring full), "
	       "%.3f s, %d of %llu processes failed\n",
	       (unsigned long long)totals[0], (unsigned long long)(o.procs * o.threads * o.runs),
	       (unsigned long long)totals[1], secs, failed, (unsigned long long)o.procs);
	free(kids);
	return failed ? 1 : 0;
}
