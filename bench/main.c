/*
 * main.c — ckring-bench's command line: arguments, usage, output. The
 * measuring is in the modules (bench.h); method and results: BENCHMARKS.md.
 *
 *   ckring-bench [--json] [--quick] [--only NAME[,NAME]] [--sizes 128,1024,4096]
 *                [--pin] [--seconds S] [--ops N] [--threads T] [--mode M]
 *                [--dir DIR] [--rates R[,R]]
 *
 * Exit 0 on success, 2 on a usage error, 1 when a benchmark could not run
 * (one line on stderr). Help to stdout, errors to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "report.h"
#include "rings.h"

static void usage(FILE *f)
{
	fputs("usage: ckring-bench [--json] [--quick] [--only NAME[,NAME]] [--sizes N[,N]]\n"
	      "                    [--pin] [--seconds S] [--ops N] [--threads T] [--mode M]\n"
	      "                    [--dir DIR] [--rates R[,R]]\n"
	      "Latency harness: ckring's push and read against the physical floor, a mutex\n"
	      "ring, a pipe, LMDB and SQLite, plus the flusher's drain rate, push->synced\n"
	      "latency and idle cost.\n"
	      "  --json        one JSON document on stdout\n"
	      "  --quick       128 B only, short runs (the whole run takes seconds)\n"
	      "  --only LIST   run only these benchmarks (see below)\n"
	      "  --sizes LIST  payload sizes in bytes (default 128,1024,4096; max 65536)\n"
	      "  --pin         pin producers and consumer to CPUs (sched_setaffinity)\n"
	      "  --seconds S   timed pass per measurement (default 1, --quick 0.25)\n"
	      "  --ops N       N timed ops per producer instead of a time (e.g. under strace;\n"
	      "                plus N/10 warm-up and N untimed throughput ops)\n"
	      "  --threads T   ring benchmarks: only the runs with T producer threads (1|2)\n"
	      "  --mode M      ring consumers: auto (concurrent on its own core when there\n"
	      "                are enough cores, else phased), concurrent, or phased\n"
	      "  --dir DIR     where databases are made (default /var/tmp)\n"
	      "  --rates LIST  offered events/s for ckring.durable (default 1000,10000,100000)\n"
	      "  --help        this text\n"
	      "benchmarks:", f);
	for (int i = 0; i < bench_n_names; i++)
		fprintf(f, " %s", bench_names[i]);
	fputs("\nMethod and results: BENCHMARKS.md.\n", f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("ckring-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	return 2;
}

/* Parse a comma list of numbers in [lo, hi]. @return count, or -1. */
static int parse_list(const char *s, double *out, int max, double lo, double hi, bool integer)
{
	int n = 0;
	const char *p = s;
	while (*p) {
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (end == p || errno || v < lo || v > hi || (integer && v != floor(v)) || n == max)
			return -1;
		out[n++] = v;
		if (*end == ',' && end[1])
			p = end + 1;
		else if (*end == '\0')
			p = end;
		else
			return -1;
	}
	return n ? n : -1;
}

static int parse_only(bench *b, const char *s)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", s);
	memset(b->only, 0, sizeof b->only);
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i = bench_name_index(tok);
		if (i < 0)
			return usage_error("unknown benchmark '%s' in --only", tok);
		b->only[i] = true;
	}
	return 0;
}

static int parse_mode(bench *b, const char *s)
{
	static const char *const names[] = { "auto", "concurrent", "phased" };
	for (int i = 0; i < 3; i++) {
		if (!strcmp(s, names[i])) {
			b->mode = i;
			return 0;
		}
	}
	return usage_error("--mode wants auto, concurrent or phased");
}

/* An option with a numeric value. @return 0, or 2 after the usage line. */
static int parse_value(bench *b, int c, const char *arg)
{
	double v[BENCH_MAX_SIZES];
	int n;
	switch (c) {
	case 's':
		n = parse_list(arg, v, BENCH_MAX_SIZES, 1, BENCH_MAX_PAYLOAD, true);
		if (n < 0)
			return usage_error("--sizes wants up to %d sizes of 1..%u bytes, "
					   "comma-separated", BENCH_MAX_SIZES, BENCH_MAX_PAYLOAD);
		for (int i = 0; i < n; i++)
			b->sizes[i] = (uint32_t)v[i];
		b->n_sizes = n;
		return 0;
	case 'r':
		n = parse_list(arg, b->rates, BENCH_MAX_RATES, 1, 1e7, false);
		if (n < 0)
			return usage_error("--rates wants up to %d rates of 1..1e7 events/s",
					   BENCH_MAX_RATES);
		b->n_rates = n;
		return 0;
	case 'S':
		if (parse_list(arg, v, 1, 0.01, 3600, false) != 1)
			return usage_error("--seconds wants a number of seconds in 0.01..3600");
		b->seconds = v[0];
		return 0;
	case 'n':
		if (parse_list(arg, v, 1, 1, 1e12, true) != 1)
			return usage_error("--ops wants a positive whole number");
		b->ops = (uint64_t)v[0];
		return 0;
	default: /* 't' */
		if (parse_list(arg, v, 1, 1, 2, true) != 1)
			return usage_error("--threads wants 1 or 2");
		b->threads = (int)v[0];
		return 0;
	}
}

static void apply_defaults(bench *b)
{
	static const uint32_t sizes[] = { 128, 1024, 4096 };
	static const double rates[] = { 1000, 10000, 100000 };
	if (!b->n_sizes) {
		b->n_sizes = b->quick ? 1 : 3;
		memcpy(b->sizes, sizes, sizeof sizes);
	}
	if (b->seconds == 0)
		b->seconds = b->quick ? 0.25 : 1.0;
	if (!b->n_rates) {
		b->n_rates = 3;
		memcpy(b->rates, rates, sizeof rates);
	}
	if (!b->dir)
		b->dir = "/var/tmp";
}

/* @return 0; 2 on a usage error (the line is printed); -1 after --help. */
static int parse_args(bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },   { "quick", no_argument, NULL, 'q' },
		{ "only", required_argument, NULL, 'o' }, { "sizes", required_argument, NULL, 's' },
		{ "pin", no_argument, NULL, 'p' },    { "seconds", required_argument, NULL, 'S' },
		{ "ops", required_argument, NULL, 'n' }, { "dir", required_argument, NULL, 'd' },
		{ "rates", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ "threads", required_argument, NULL, 't' }, { "mode", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc = 0;
	opterr = 0;
	for (int i = 0; i < bench_n_names; i++)
		b->only[i] = true;
	while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': b->json = true; break;
		case 'q': b->quick = true; break;
		case 'p': b->pin = true; break;
		case 'd': b->dir = optarg; break;
		case 'o': rc = parse_only(b, optarg); break;
		case 'm': rc = parse_mode(b, optarg); break;
		case 's': case 'r': case 'S': case 'n': case 't':
			rc = parse_value(b, c, optarg);
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return usage_error("option '%s' is unknown or lacks its value",
					   argv[optind - 1]);
		}
	}
	if (rc)
		return 2;
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	apply_defaults(b);
	return 0;
}

int main(int argc, char **argv)
{
	bench *b = calloc(1, sizeof *b);
	bench_hist *scratch = calloc(1, sizeof *scratch);
	machine m;
	if (!b || !scratch) {
		fputs("ckring-bench: out of memory\n", stderr);
		free(b);
		free(scratch);
		return 1;
	}
	int rc = parse_args(b, argc, argv);
	if (rc) {
		free(b);
		free(scratch);
		return rc < 0 ? 0 : rc;
	}
	b->ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (b->ncpu < 1)
		b->ncpu = 1;
	signal(SIGPIPE, SIG_IGN);
	report_machine(&m);
	bench_clock_calibrate(&b->clk, b->quick ? 50 : 200, scratch);
	free(scratch);
	if (bench_run_all(b)) {
		fprintf(stderr, "ckring-bench: %s\n", b->err[0] ? b->err : "failed");
		free(b);
		return 1;
	}
	if (b->json)
		report_json(b, &m);
	else
		report_table(b, &m);
	free(b);
	return fflush(stdout) ? 1 : 0;
}
