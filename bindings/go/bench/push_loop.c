/*
 * push_loop.c — the C side of bindings/go/bench.sh: ckr_run_message of one
 * payload size timed exactly as the Go benchmark times Run.Message
 * (bindings/go/bench_test.go, benchPush): bursts of BURST pushes, each timed
 * in blocks of BLOCK pushes with CLOCK_MONOTONIC (the clock Go's time.Since
 * reads); between bursts, untimed, ckr_wait until the flusher committed the
 * burst. Prints one line: "c push SIZE B: p50 X ns/op, mean Y ns/op, N ops".
 *
 *   push_loop SEGMENT OPS [SIZE [RUN_ID]]   (a flusher serves SEGMENT)
 *
 * Built against the installed (or staged) ckring with pkg-config, like the
 * examples. Exit 0; 1 an error (one line on stderr); 2 usage.
 */
#include <ckring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BURST 4096
#define BLOCK 64

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "push_loop: %s: %s\n", what, ckr_strerror(rc));
	return 1;
}

int main(int argc, char **argv)
{
	ckr_client_opts o = { .max_run_bytes = UINT64_C(1) << 60 };
	ckr_run_spec spec = { .kind = CKR_KIND_SINGLE_LOOP };
	const char *id = "bench";
	static unsigned char msg[65536];
	ckr_client *c;
	ckr_ticket last;
	ckr_run *r;
	long ops, size = 128;
	double *samples, total = 0;
	size_t n_samples = 0;
	int rc;

	if (argc < 3 || argc > 5 || (ops = atol(argv[2])) <= 0 ||
	    (argc >= 4 && ((size = atol(argv[3])) < 0 || size > (long)sizeof msg))) {
		fprintf(stderr, "usage: push_loop SEGMENT OPS [SIZE [RUN_ID]]\n");
		return 2;
	}
	if (argc == 5)
		id = argv[4];
	spec.id = id;
	spec.id_len = strlen(id);
	if (!(samples = malloc(((size_t)ops / BLOCK + 1) * sizeof *samples)))
		return fail("malloc", -12);
	if ((rc = ckr_client_attach(argv[1], &o, &c)))
		return fail("attach", rc);
	if ((rc = ckr_run_begin(c, &spec, &r, NULL)))
		return fail("begin", rc);
	for (long done = 0; done < ops;) {
		for (long in_burst = 0; in_burst < BURST && done < ops;) {
			long n = ops - done < BLOCK ? ops - done : BLOCK;
			double t0 = now_ns();
			for (long i = 0; i < n; i++)
				if ((rc = ckr_run_message(r, msg, (size_t)size, &last)))
					return fail("message", rc);
			double dt = now_ns() - t0;
			total += dt;
			samples[n_samples++] = dt / (double)n;
			done += n;
			in_burst += n;
		}
		if ((rc = ckr_wait(c, &last, CKR_LEVEL_COMMITTED, 10000)))
			return fail("wait", rc);
	}
	qsort(samples, n_samples, sizeof *samples, cmp);
	printf("c push %ld B: p50 %.1f ns/op, mean %.1f ns/op, %ld ops\n", size,
	       samples[n_samples / 2], total / (double)ops, ops);
	ckr_run_close(r);
	ckr_client_detach(c);
	free(samples);
	return 0;
}
