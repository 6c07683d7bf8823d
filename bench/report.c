/*
 * report.c — the machine, JSON and table output (see report.h).
 */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "rings.h"
#include "sys.h"

/* ------------------------------------------------------------------ */
/* the machine                                                         */
/* ------------------------------------------------------------------ */

static bool has_flag(const char *flags, const char *f)
{
	size_t n = strlen(f);
	for (const char *p = flags; (p = strstr(p, f)); p += n)
		if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || !p[n]))
			return true;
	return false;
}

static void read_line_file(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "r");
	out[0] = '\0';
	if (f && fgets(out, (int)n, f))
		out[strcspn(out, "\n")] = '\0';
	if (f)
		fclose(f);
}

static void cpuinfo_line(machine *m, const char *line, const char *v)
{
	if (!m->cpu[0] && !strncmp(line, "model name", 10))
		snprintf(m->cpu, sizeof m->cpu, "%s", v);
	if (!m->cpu_family && !strncmp(line, "cpu family", 10))
		m->cpu_family = atoi(v);
	if (!m->cpu_model && !strncmp(line, "model\t", 6))
		m->cpu_model = atoi(v);
	if (!strncmp(line, "flags", 5)) {
		m->constant_tsc = has_flag(v, "constant_tsc");
		m->nonstop_tsc = has_flag(v, "nonstop_tsc");
		m->rdtscp = has_flag(v, "rdtscp");
		m->hypervisor = has_flag(v, "hypervisor");
	}
}

void report_machine(machine *m)
{
	memset(m, 0, sizeof *m);
	char line[4096];
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof line, f)) {
		char *v = strchr(line, ':');
		if (!v)
			continue;
		v += v[1] == ' ' ? 2 : 1;
		v[strcspn(v, "\n")] = '\0';
		cpuinfo_line(m, line, v);
	}
	if (f)
		fclose(f);
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
	read_line_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", m->governor,
		       sizeof m->governor);
	m->mem_mib = (long)((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) /
			    1048576.0);
	read_line_file("/proc/sys/fs/pipe-max-size", line, sizeof line);
	m->pipe_max = atol(line);
	m->load_start = bench_load1();
}

/* ------------------------------------------------------------------ */
/* ratios                                                              */
/* ------------------------------------------------------------------ */

static const result *find(const bench *b, const char *name, uint32_t size, int threads,
			  int procs, double rate)
{
	for (int i = 0; i < b->n_res; i++) {
		const result *r = &b->res[i];
		if (!strcmp(r->name, name) && r->size == size && r->threads == threads &&
		    r->procs == procs && r->rate == rate && !r->pending)
			return r;
	}
	return NULL;
}

typedef enum { F_P50, F_P999, F_MEAN, F_OPS } field;

static double get(const result *r, field f)
{
	switch (f) {
	case F_P50: return r->p50;
	case F_P999: return r->p999;
	case F_MEAN: return r->mean;
	default: return r->ops_per_s;
	}
}

#define N_RATIOS 8

typedef struct ratio_row {
	const char *key, *label;
	const char *a, *c; /* result names: a / c */
	field f;
	double v[BENCH_MAX_SIZES * BENCH_MAX_RATES];
	char at[BENCH_MAX_SIZES * BENCH_MAX_RATES][32];
	int n;
	double target; /* 0: none; otherwise the value must be <= target */
} ratio_row;

static void add_ratio(ratio_row *r, const char *at, const result *a, const result *c)
{
	snprintf(r->at[r->n], sizeof r->at[r->n], "%s", at);
	r->v[r->n++] = a && c && get(c, r->f) > 0 ? get(a, r->f) / get(c, r->f) : NAN;
}

#define RATIO(k, l, a_, c_, f_, t_) { .key = k, .label = l, .a = a_, .c = c_, .f = f_, .target = t_ }
static const ratio_row ratio_defs[N_RATIOS] = {
	RATIO("push_p50_over_floor_p50", "ckring.push p50 / floor.push p50", "ckring.push",
	      "floor.push", F_P50, 2.0),
	RATIO("push_p999_over_mutex_ring_p999", "ckring.push p99.9 / mutex_ring.push p99.9",
	      "ckring.push", "mutex_ring.push", F_P999, 0),
	RATIO("push_p999_over_pipe_write_p999", "ckring.push p99.9 / pipe.write p99.9",
	      "ckring.push", "pipe.write", F_P999, 0),
	RATIO("read_mean_over_floor_read_mean", "ckring.read mean / floor.read mean",
	      "ckring.read", "floor.read", F_MEAN, 0),
	RATIO("lmdb_direct_sync_p50_over_push_p50", "lmdb.direct.sync p50 / ckring.push p50",
	      "lmdb.direct.sync", "ckring.push", F_P50, 0),
	RATIO("sqlite_direct_sync_p50_over_lmdb_direct_sync_p50",
	      "sqlite.direct.sync p50 / lmdb.direct.sync p50", "sqlite.direct.sync",
	      "lmdb.direct.sync", F_P50, 0),
	RATIO("drain_over_lmdb_batch_sync", "ckring.drain / lmdb.batch.sync (events/s)",
	      "ckring.drain", "lmdb.batch.sync", F_OPS, 0),
	RATIO("durable_p50_over_lmdb_direct_sync_p50",
	      "ckring.durable p50 / one fsync'd LMDB commit p50", "ckring.durable",
	      "lmdb.direct.sync", F_P50, 0),
};
#undef RATIO

static int make_ratios(const bench *b, ratio_row *rows)
{
	memcpy(rows, ratio_defs, sizeof ratio_defs);
	for (int i = 0; i < b->n_sizes; i++) {
		uint32_t s = b->sizes[i];
		char at[32];
		snprintf(at, sizeof at, "%u", s);
		for (int k = 0; k < N_RATIOS - 1; k++)
			add_ratio(&rows[k], at, find(b, rows[k].a, s, 1, 1, 0),
				  find(b, rows[k].c, s, 1, 1, 0));
		for (int k = 0; k < b->n_rates; k++) {
			const result *du = find(b, "ckring.durable", s, 1, 1, b->rates[k]);
			if (!du && i > 0)
				continue;
			snprintf(at, sizeof at, "%u@%.0f/s", s, b->rates[k]);
			add_ratio(&rows[N_RATIOS - 1], at, du, find(b, "lmdb.direct.sync", s, 1, 1, 0));
		}
	}
	return N_RATIOS;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.4g", v);
}

static void json_machine(FILE *f, const bench *b, const machine *m)
{
	fputs("{\"machine\": {\"cpu\": ", f);
	json_str(f, m->cpu);
	fprintf(f, ", \"cpu_family\": %d, \"cpu_model\": %d, \"cores\": %d, \"kernel\": ",
		m->cpu_family, m->cpu_model, b->ncpu);
	json_str(f, m->kernel);
	const char *k[] = { "tsc_ghz", "timer_overhead_ns", "tsc_step_ns", "loadavg_start",
			    "loadavg_end", "seconds" };
	double v[] = { b->clk.ticks_per_ns, b->clk.overhead_ns, bench_ns(&b->clk, b->clk.quantum),
		       m->load_start, bench_load1(), b->seconds };
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		fprintf(f, ", \"%s\": ", k[i]);
		json_num(f, v[i]);
	}
	fprintf(f, ", \"constant_tsc\": %s, \"nonstop_tsc\": %s, \"rdtscp\": %s, "
		   "\"hypervisor\": %s, \"memory_mib\": %ld, \"governor\": ",
		m->constant_tsc ? "true" : "false", m->nonstop_tsc ? "true" : "false",
		m->rdtscp ? "true" : "false", m->hypervisor ? "true" : "false", m->mem_mib);
	json_str(f, m->governor[0] ? m->governor : "unknown");
	fputs(", \"db_dir\": ", f);
	json_str(f, b->dir);
	fputs(", \"db_fs\": ", f);
	json_str(f, b->fs);
	fprintf(f, ", \"ring_capacity\": %lu, \"pipe_max_size\": %ld, \"pinned\": %s, "
		   "\"quick\": %s, \"ops\": %lu, \"mode\": \"%s\", \"compiler\": ",
		(unsigned long)BENCH_RING_CAP, m->pipe_max, b->pin ? "true" : "false",
		b->quick ? "true" : "false", (unsigned long)b->ops,
		b->mode == BENCH_MODE_PHASED ? "phased"
		: b->mode == BENCH_MODE_CONCURRENT ? "concurrent" : "auto");
	json_str(f, __VERSION__);
	fputs(", \"flusher_benchmarks\": \"enabled\"}", f);
}

static void json_extras(FILE *f, const result *r)
{
	if (r->mode)
		fprintf(f, ", \"mode\": \"%s\"", r->mode);
	if (!strncmp(r->name, "floor.", 6))
		fprintf(f, ", \"full_waits\": %lu", (unsigned long)r->waits);
	if (r->record_bytes)
		fprintf(f, ", \"record_bytes\": %u", r->record_bytes);
	if (r->batch)
		fprintf(f, ", \"batch\": %u", r->batch);
	if (r->rate > 0) {
		fputs(", \"offered_per_s\": ", f);
		json_num(f, r->rate);
	}
	if (r->runs) {
		fprintf(f, ", \"runs\": %llu, \"list_ms\": ", (unsigned long long)r->runs);
		json_num(f, r->list_ns / 1e6);
		fputs(", \"first_resumed_ms\": ", f);
		json_num(f, r->first_ns / 1e6);
		fputs(", \"last_resumed_ms\": ", f);
		json_num(f, r->last_ns / 1e6);
	}
	if (!strncmp(r->name, "ckring.idle", 11)) {
		fputs(", \"cpu_pct\": ", f);
		json_num(f, r->cpu_pct);
		fputs(", \"wakeups_per_s\": ", f);
		json_num(f, r->wakeups_per_s);
	}
	if (r->pending)
		fputs(", \"pending\": true", f);
	if (r->note[0]) {
		fputs(", \"note\": ", f);
		json_str(f, r->note);
	}
}

static void json_result(FILE *f, const result *r)
{
	fputs("{\"name\": ", f);
	json_str(f, r->name);
	fprintf(f, ", \"size\": %u, \"threads\": %d, \"procs\": %d", r->size, r->threads,
		r->procs);
	const char *k[] = { "ops_per_s", "p50_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns" };
	double v[] = { r->ops_per_s, r->p50, r->p99, r->p999, r->max, r->mean };
	for (int j = 0; j < 6; j++) {
		fprintf(f, ", \"%s\": ", k[j]);
		json_num(f, r->pending || (j > 0 && r->no_latency) ? NAN : v[j]);
	}
	fprintf(f, ", \"samples\": %lu, \"refused\": %lu, \"refused_throughput_pass\": %lu, "
		   "\"latency_of\": \"%s\"",
		(unsigned long)r->samples, (unsigned long)r->refused,
		(unsigned long)r->refused_tp, r->latency_of);
	json_extras(f, r);
	fputc('}', f);
}

static void json_ratios(FILE *f, const bench *b)
{
	ratio_row rows[N_RATIOS];
	int n = make_ratios(b, rows);
	fputs("{", f);
	for (int i = 0; i < n; i++) {
		fprintf(f, "%s\n  \"%s\": {", i ? "," : "", rows[i].key);
		for (int j = 0; j < rows[i].n; j++) {
			fprintf(f, "%s\"%s\": ", j ? ", " : "", rows[i].at[j]);
			json_num(f, rows[i].v[j]);
		}
		if (rows[i].target > 0) {
			fprintf(f, "%s\"target_max\": ", rows[i].n ? ", " : "");
			json_num(f, rows[i].target);
		}
		fputc('}', f);
	}
	fputs("}", f);
}

void report_json(const bench *b, const machine *m)
{
	FILE *f = stdout;
	json_machine(f, b, m);
	fputs(",\n \"results\": [", f);
	for (int i = 0; i < b->n_res; i++) {
		fputs(i ? ",\n  " : "\n  ", f);
		json_result(f, &b->res[i]);
	}
	fputs("],\n \"ratios\": ", f);
	json_ratios(f, b);
	fputs("}\n", f);
}

/* ------------------------------------------------------------------ */
/* the table                                                           */
/* ------------------------------------------------------------------ */

static void put_ns(char *out, size_t n, double ns)
{
	if (ns < 1000)
		snprintf(out, n, "%.1f ns", ns);
	else if (ns < 1e6)
		snprintf(out, n, "%.2f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(out, n, "%.2f ms", ns / 1e6);
	else
		snprintf(out, n, "%.2f s", ns / 1e9);
}

static void put_rate(char *out, size_t n, double r)
{
	if (r >= 1e6)
		snprintf(out, n, "%.2fM", r / 1e6);
	else if (r >= 1e3)
		snprintf(out, n, "%.1fk", r / 1e3);
	else
		snprintf(out, n, "%.0f", r);
}

static void row_notes(const result *r, char *note, size_t cap)
{
	size_t k = 0;
	note[0] = '\0';
#define ADD(...) (k += (size_t)snprintf(note + k, k < cap ? cap - k : 0, __VA_ARGS__))
	if (r->mode)
		ADD("%s", r->mode);
	if (!strncmp(r->name, "ckring.idle", 11))
		ADD(", CPU %.2f %% of a core, %.0f wake-ups/s", r->cpu_pct, r->wakeups_per_s);
	if (r->rate > 0)
		ADD(", offered %.0f/s", r->rate);
	if (r->batch)
		ADD(", per batch of %u", r->batch);
	if (r->record_bytes)
		ADD(", %u B records", r->record_bytes);
	if (r->refused || r->refused_tp)
		ADD(", refused %lu+%lu", (unsigned long)r->refused, (unsigned long)r->refused_tp);
	if (r->waits)
		ADD(", %lu full waits", (unsigned long)r->waits);
	if (r->note[0] && strncmp(r->name, "ckring.idle", 11))
		ADD(", %s", r->note);
#undef ADD
}

static void table_row(const result *r)
{
	char c[6][24], note[320];
	if (r->pending || r->no_latency) {
		put_rate(c[0], sizeof c[0], r->ops_per_s);
		row_notes(r, note, sizeof note);
		printf("%-20s %5u %3d %3d %9s %10s %10s %10s %10s %10s  %s\n", r->name, r->size,
		       r->threads, r->procs, r->pending ? "-" : c[0], "-", "-", "-", "-", "-",
		       r->pending ? r->note : note);
		return;
	}
	put_rate(c[0], sizeof c[0], r->ops_per_s);
	put_ns(c[1], sizeof c[1], r->mean);
	put_ns(c[2], sizeof c[2], r->p50);
	put_ns(c[3], sizeof c[3], r->p99);
	put_ns(c[4], sizeof c[4], r->p999);
	put_ns(c[5], sizeof c[5], r->max);
	row_notes(r, note, sizeof note);
	printf("%-20s %5u %3d %3d %9s %10s %10s %10s %10s %10s  %s\n", r->name, r->size,
	       r->threads, r->procs, c[0], c[1], c[2], c[3], c[4], c[5], note);
}

static void table_ratios(const bench *b)
{
	ratio_row rows[N_RATIOS];
	int n = make_ratios(b, rows);
	printf("\nratios (by payload size):\n");
	for (int i = 0; i < n; i++) {
		printf("  %-50s", rows[i].label);
		for (int j = 0; j < rows[i].n; j++) {
			if (isnan(rows[i].v[j]))
				printf("  %s: n/a", rows[i].at[j]);
			else
				printf("  %s: %.3g", rows[i].at[j], rows[i].v[j]);
			if (rows[i].target > 0 && !isnan(rows[i].v[j]))
				printf(rows[i].v[j] <= rows[i].target ? " (ok)" : " (MISSED)");
		}
		if (rows[i].target > 0)
			printf("   [target <= %.1f]", rows[i].target);
		putchar('\n');
	}
}

static void table_notes(const bench *b)
{
	bool phased = false;
	for (int i = 0; i < b->n_res; i++) {
		const result *r = &b->res[i];
		phased = phased || (r->mode && !strcmp(r->mode, "phased"));
		if ((r->refused || r->refused_tp) && !strncmp(r->name, "ckring.push", 11))
			printf("note: %s %u B (%d thr, %d procs): %lu pushes refused in the timed "
			       "pass, %lu in the throughput pass (ring full): the bench consumer "
			       "did not keep up with the producers.\n",
			       r->name, r->size, r->threads, r->procs, (unsigned long)r->refused,
			       (unsigned long)r->refused_tp);
	}
	if (phased)
		printf("note: \"phased\" = producers push bursts of <= half the ring, then wait "
		       "while the consumer drains (fewer cores than producers + consumer, or a "
		       ".read row: the consumer timed alone).\n");
}

void report_table(const bench *b, const machine *m)
{
	printf("ckring-bench: %s (family %d model %d), %d cores, %s\n", m->cpu, m->cpu_family,
	       m->cpu_model, b->ncpu, m->kernel);
	printf("  TSC %.3f GHz, step %.1f ns (constant_tsc %s, nonstop_tsc %s), timer overhead "
	       "%.1f ns (subtracted), pinned %s, db %s (%s), load %.2f -> %.2f\n\n",
	       b->clk.ticks_per_ns, bench_ns(&b->clk, b->clk.quantum),
	       m->constant_tsc ? "yes" : "no", m->nonstop_tsc ? "yes" : "no",
	       b->clk.overhead_ns, b->pin ? "yes" : "no", b->dir, b->fs[0] ? b->fs : "unused",
	       m->load_start, bench_load1());
	printf("%-20s %5s %3s %3s %9s %10s %10s %10s %10s %10s  %s\n", "name", "size", "thr",
	       "prc", "ops/s", "mean", "p50", "p99", "p99.9", "max", "notes");
	for (int i = 0; i < b->n_res; i++)
		table_row(&b->res[i]);
	table_ratios(b);
	table_notes(b);
}
