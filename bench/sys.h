/*
 * sys.h — what the benchmark processes need from the system: CPU pinning,
 * futex waits, shared mappings, scratch directories, the load average and a
 * process's CPU time.
 *
 * Every function is thread-safe and makes system calls: none belongs inside
 * a timed region.
 */
#ifndef BENCH_SYS_H
#define BENCH_SYS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The size of one actor's block: two 64-byte lines, because the adjacent-line
 * prefetcher pulls lines in pairs. Hot fields of different actors (threads,
 * processes) never share a block. */
#define BENCH_BLOCK 128

/* A zeroed BENCH_BLOCK-aligned allocation of n bytes (n a multiple of
 * BENCH_BLOCK), so it shares no block with another. NULL on failure;
 * free() it. */
void *bench_block_alloc(size_t n);

/* Pin the calling thread to cpu (modulo the CPUs online). @return 0; -errno. */
int bench_pin(int cpu);

/* Sleep while *w == expected (at most 50 ms: callers re-check). */
void bench_futex_wait(_Atomic uint32_t *w, uint32_t expected);
void bench_futex_wake(_Atomic uint32_t *w);

/* An anonymous shared mapping (inherited across fork), zeroed. NULL on
 * failure. Free with munmap(). */
void *bench_shared_alloc(size_t n);

/*
 * A POSIX shm object of n bytes, mapped shared, its name unlinked at once
 * (children inherit the mapping across fork; nothing is left behind if we
 * crash). The pages are reserved and touched, as ckr_segment_create does.
 * @return the mapping, or NULL with errno set.
 */
void *bench_shm_map(const char *name, size_t n);

/* mkdtemp "<parent>/ckring-bench-XXXXXX" into out. @return 0; -errno. */
int bench_mkdtemp(const char *parent, char *out, size_t n);

/* Remove dir and the files in it (no subdirectories expected). */
void bench_rmdir(const char *dir);

/* The 1-minute load average (other work disturbs a run). 0 if unknown. */
double bench_load1(void);

/* CPU time of process pid's main thread in seconds (from
 * /proc/PID/schedstat, in ns; else utime + stime of /proc/PID/stat, in
 * clock ticks), and its voluntary context switches (wake-ups of a sleeper).
 * @return 0; -errno. */
int bench_proc_cpu(pid_t pid, double *cpu_s, uint64_t *voluntary_switches);

#endif /* BENCH_SYS_H */
