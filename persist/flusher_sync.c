/*
 * flusher_sync.c — group commit for sync=always: a syncer thread makes each
 * committed batch durable while the drain thread already prepares the next.
 *
 * The store is opened with MDB_NOMETASYNC: each commit fsyncs the batch's
 * data pages and writes its meta page without an fsync. LMDB guarantees
 * integrity in that mode (data pages reach the disk before the meta page
 * that points to them is written); a power loss can undo only the last
 * committed transaction. So, for batch k:
 *   - COMMITTED is published at once (head = its positions): the batch is
 *     in LMDB's file, it survives any process crash;
 *   - SYNCED is published once batch k's meta page is on the disk: by the
 *     syncer's fdatasync (mdb_env_sync) asked for after commit k, or by the
 *     data fsync of commit k+1 (same file), whichever comes first.
 * Nothing committed can be lost or corrupted on power loss beyond what was
 * never said to be SYNCED; what was said to be SYNCED was covered by an
 * fsync that completed. The syncer's fsync overlaps the drain thread's next
 * batch (reading the ring, decoding, applying); LMDB allows mdb_env_sync
 * alongside a write transaction of another thread (it takes no lock).
 *
 * Concurrency: the drain thread calls ckr_flusher_sync_after_commit; the
 * syncer thread is the only other user. `lock` guards the request, the
 * result and every write of the lanes' published synced words, so they only
 * grow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "persist/flusher.h"
#include "persist/guard.h"
#include "ring/wake.h"

struct flusher_syncer {
	ckr_flusher *f;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* a request, or stop */
	pthread_cond_t done_cond; /* a request finished */
	uint64_t asked, done;     /* batch numbers */
	uint64_t *asked_pos;      /* lane positions of batch `asked` */
	uint64_t *prev_pos;       /* ... of the batch before the last commit */
	uint64_t *work;           /* the syncer's copy while it syncs */
	bool stop;
	bool seg_lost;            /* a SIGBUS: the segment shrank (guard.h) */
	int err;                  /* the first fsync error: fatal */
};

/* Publish synced = pos per lane where it grows. Under s->lock. The segment
 * may shrink under us (persist/guard.h): then a SIGBUS of this thread
 * unwinds here, with s->lock still held as on entry, and the syncer
 * publishes nothing more (the drain thread reports the loss). */
static void publish_synced(flusher_syncer *s, const uint64_t *pos)
{
	ckr_flusher *f = s->f;
	ckr_guard g;
	if (s->seg_lost)
		return;
	if (sigsetjmp(g.env, 0)) {
		s->seg_lost = true;
		return;
	}
	ckr_guard_push(&g, f->seg.base, f->seg.size);
	bool moved = false;
	for (uint32_t i = 0; i < f->seg.lane_count; i++) {
		flusher_lane *fl = &f->lanes[i];
		if (pos[i] > fl->synced) {
			fl->synced = pos[i];
			ckr_lane_publish_synced(&fl->lane, pos[i]);
			moved = true;
		}
	}
	if (moved)
		ckr_wake_published(ckr_seg_fl(&f->seg));
	ckr_guard_pop(&g);
}

static void *syncer_main(void *arg)
{
	flusher_syncer *s = arg;
	size_t bytes = s->f->seg.lane_count * sizeof *s->work;
	pthread_mutex_lock(&s->lock);
	while (!s->stop || s->asked > s->done) {
		if (s->asked == s->done) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		uint64_t k = s->asked;
		memcpy(s->work, s->asked_pos, bytes);
		pthread_mutex_unlock(&s->lock);
		uint64_t t0 = ckr_fm_now();
		int rc = ckr_store_sync(s->f->store); /* the fdatasync */
		ckr_fm_sync(s->f, ckr_fm_now() - t0); /* metrics: this thread is
						       * the fsync histogram's
						       * one writer (sync=always) */
		pthread_mutex_lock(&s->lock);
		if (rc && !s->err)
			s->err = rc;
		if (rc == 0)
			publish_synced(s, s->work);
		s->done = k;
		pthread_cond_broadcast(&s->done_cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void syncer_free(flusher_syncer *s)
{
	free(s->asked_pos);
	free(s->prev_pos);
	free(s->work);
	free(s);
}

int ckr_flusher_syncer_start(ckr_flusher *f)
{
	if (f->opts.sync != CKR_SYNC_ALWAYS)
		return 0;
	flusher_syncer *s = calloc(1, sizeof *s);
	uint32_t n = f->seg.lane_count;
	if (!s)
		return -ENOMEM;
	s->f = f;
	s->asked_pos = calloc(n, sizeof *s->asked_pos);
	s->prev_pos = calloc(n, sizeof *s->prev_pos);
	s->work = calloc(n, sizeof *s->work);
	if (!s->asked_pos || !s->prev_pos || !s->work) {
		syncer_free(s);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++)
		s->prev_pos[i] = s->asked_pos[i] = f->lanes[i].committed;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_cond_init(&s->done_cond, NULL);
	sigset_t old;
	ckr_flusher_block_signals(&old);
	int rc = pthread_create(&s->thread, NULL, syncer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		syncer_free(s);
		return -rc;
	}
	f->syncer = s;
	return 0;
}

int ckr_flusher_sync_after_commit(ckr_flusher *f)
{
	flusher_syncer *s = f->syncer;
	if (!s)
		return 0;
	size_t bytes = f->seg.lane_count * sizeof *s->asked_pos;
	pthread_mutex_lock(&s->lock);
	/* This commit's data fsync also put the previous commit's meta page on
	 * the disk (same file): that batch is durable now. */
	publish_synced(s, s->prev_pos);
	for (uint32_t i = 0; i < f->seg.lane_count; i++)
		s->asked_pos[i] = f->lanes[i].committed;
	memcpy(s->prev_pos, s->asked_pos, bytes);
	s->asked++;
	int err = s->err;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return err;
}

int ckr_flusher_sync_wait(ckr_flusher *f)
{
	flusher_syncer *s = f->syncer;
	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	while (s->done < s->asked && !s->err)
		pthread_cond_wait(&s->done_cond, &s->lock);
	int err = s->err;
	pthread_mutex_unlock(&s->lock);
	return err;
}

void ckr_flusher_syncer_stop(ckr_flusher *f)
{
	flusher_syncer *s = f->syncer;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->done_cond);
	syncer_free(s);
	f->syncer = NULL;
}
