/*
 * sys.c — pinning, futexes, shared memory, scratch directories, /proc (see
 * sys.h).
 */
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void *bench_block_alloc(size_t n)
{
	void *p = aligned_alloc(BENCH_BLOCK, n);
	if (p)
		memset(p, 0, n);
	return p;
}

int bench_pin(int cpu)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(n > 0 ? cpu % (int)n : 0, &set);
	return sched_setaffinity(0, sizeof set, &set) ? -errno : 0;
}

void bench_futex_wait(_Atomic uint32_t *w, uint32_t expected)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 50000000 }; /* re-check */
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, expected, &ts, NULL, 0);
}

void bench_futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void *bench_shared_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *bench_shm_map(const char *name, size_t n)
{
	char path[96];
	snprintf(path, sizeof path, "/%s", name);
	int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return NULL;
	shm_unlink(path);
	int rc = posix_fallocate(fd, 0, (off_t)n);
	void *p = MAP_FAILED;
	if (rc == 0)
		p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	else
		errno = rc;
	int saved = errno;
	close(fd);
	errno = saved;
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, n);
	return p;
}

int bench_mkdtemp(const char *parent, char *out, size_t n)
{
	if ((size_t)snprintf(out, n, "%s/ckring-bench-XXXXXX", parent) >= n)
		return -ENAMETOOLONG;
	return mkdtemp(out) ? 0 : -errno;
}

void bench_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[PATH_MAX + 256];
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

double bench_load1(void)
{
	char line[128] = "";
	FILE *f = fopen("/proc/loadavg", "r");
	if (f && !fgets(line, sizeof line, f))
		line[0] = '\0';
	if (f)
		fclose(f);
	return atof(line);
}

/* Fields 14 and 15 (utime, stime) of /proc/PID/stat, after the ")" that
 * ends the command name (which may hold spaces). */
static int stat_cpu(pid_t pid, double *cpu_s)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime(14) stime(15) */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -EIO;
	*cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

/* The first field of /proc/PID/schedstat: ns on a CPU. */
static int schedstat_cpu(pid_t pid, double *cpu_s)
{
	char path[64];
	unsigned long long ns;
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int n = fscanf(f, "%llu", &ns);
	fclose(f);
	if (n != 1)
		return -EIO;
	*cpu_s = (double)ns * 1e-9;
	return 0;
}

int bench_proc_cpu(pid_t pid, double *cpu_s, uint64_t *voluntary_switches)
{
	int rc = schedstat_cpu(pid, cpu_s);
	if (rc)
		rc = stat_cpu(pid, cpu_s);
	if (rc)
		return rc;
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	*voluntary_switches = 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %lu", voluntary_switches) == 1)
			break;
	fclose(f);
	return 0;
}
