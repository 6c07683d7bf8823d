/*
 * report.h — what a run reports: the machine it ran on, and the results as
 * one JSON document (the spec's shape: {"machine", "results", "ratios"}) or
 * as a table with ratios and notes.
 *
 * The library never prints; this module does, to stdout only.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdbool.h>

#include "bench.h"

typedef struct machine {
	char cpu[128];
	int cpu_family, cpu_model;
	char kernel[200];
	char governor[32];
	bool constant_tsc, nonstop_tsc, rdtscp, hypervisor;
	long mem_mib;
	long pipe_max;
	double load_start; /* 1-minute load average at start-up */
} machine;

/* Read /proc/cpuinfo, uname, sysfs. Can't fail: unknowns stay empty. */
void report_machine(machine *m);

void report_json(const bench *b, const machine *m);
void report_table(const bench *b, const machine *m);

#endif /* BENCH_REPORT_H */
