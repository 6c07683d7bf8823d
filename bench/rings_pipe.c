/*
 * rings_pipe.c — write() to a pipe read by a daemon process (see rings.h).
 * The pipe is sized like the other rings where the system allows it
 * (F_SETPIPE_SZ); the reader sleeps in read().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "rings.h"

typedef struct pipe_ring {
	int fd[2];
	long pipe_size;
} pipe_ring;

typedef struct pipe_cons {
	int fd;
	uint32_t size;
	uint64_t bytes, counted;
	uint8_t buf[1 << 20];
} pipe_cons;

static int pipe_create(bench_ring *r)
{
	pipe_ring *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	if (pipe2(p->fd, O_CLOEXEC)) {
		int e = errno;
		free(p);
		return -e;
	}
	(void)fcntl(p->fd[1], F_SETPIPE_SZ, (int)r->capacity);
	p->pipe_size = fcntl(p->fd[1], F_GETPIPE_SZ);
	r->impl = p;
	return 0;
}

static int pipe_proc_open(bench_ring *r, void **proc)
{
	*proc = &((pipe_ring *)r->impl)->fd[1];
	return 0;
}

static int pipe_thr_open(void *proc, int idx, void **thr)
{
	*thr = proc;
	return 0;
}

static int pipe_push(void *thr, const void *p, uint32_t len)
{
	int fd = *(int *)thr;
	const uint8_t *b = p;
	while (len) { /* a write above PIPE_BUF may be split */
		ssize_t n = write(fd, b, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += n;
		len -= (uint32_t)n;
	}
	return 0;
}

static void pipe_thr_close(void *thr)
{
}

static void pipe_proc_close(bench_ring *r, void *proc)
{
}

static int pipe_cons_open(bench_ring *r, void **cons)
{
	pipe_ring *p = r->impl;
	pipe_cons *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	close(p->fd[1]); /* the consumer's copy: EOF comes when the producer closes */
	c->fd = p->fd[0];
	c->size = r->size;
	*cons = c;
	return 0;
}

/* What is in the pipe (read() blocks until something is): whole records. */
static long pipe_read(void *cons, uint64_t *corrupt)
{
	pipe_cons *c = cons;
	ssize_t n = read(c->fd, c->buf, sizeof c->buf);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	c->bytes += (uint64_t)n;
	uint64_t recs = c->bytes / c->size;
	long got = (long)(recs - c->counted);
	c->counted = recs;
	return got;
}

static void pipe_release(void *cons)
{
}

static void pipe_cons_close(void *cons)
{
	free(cons);
}

static void pipe_end(bench_ring *r)
{
	pipe_ring *p = r->impl;
	if (p->fd[1] >= 0)
		close(p->fd[1]);
	p->fd[1] = -1;
}

static void pipe_destroy(bench_ring *r)
{
	pipe_ring *p = r->impl;
	if (p) {
		pipe_end(r);
		close(p->fd[0]);
		free(p);
	}
	r->impl = NULL;
}

const ring_ops bench_pipe_ops = {
	.name = "pipe",
	.create = pipe_create,
	.proc_open = pipe_proc_open,
	.thr_open = pipe_thr_open,
	.push = pipe_push,
	.thr_close = pipe_thr_close,
	.proc_close = pipe_proc_close,
	.cons_open = pipe_cons_open,
	.read = pipe_read,
	.release = pipe_release,
	.cons_close = pipe_cons_close,
	.end_of_input = pipe_end,
	.destroy = pipe_destroy,
};
