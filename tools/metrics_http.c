/*
 * metrics_http.c — ckring-flusher's Prometheus exporter (metrics_http.h).
 *
 * What is shown, and where each number comes from (Prometheus naming:
 * ckring_ prefix, _total counters, seconds and bytes):
 *   the engine   ckr_flusher_metrics_get(): events stored / rejected by
 *                reason / corrupt / quarantined / reclaimed, batches, map
 *                growth, disk-full retries, retention, and the commit,
 *                fsync and batch-size histograms (process-lifetime counters:
 *                they restart at 0 with the flusher, as Prometheus expects);
 *   the segment  the read-only observer: per lane lag bytes and records,
 *                refusals (a segment-lifetime counter), the heartbeat, and
 *                the age of the oldest unflushed event (lanewatch.h);
 *   the store    ckr_store_census_get() every census interval (default
 *                10 s; it walks every run record): runs by state,
 *                interrupted and claimable runs, the age of the least
 *                recently written interrupted run, map size and use.
 *
 * Locking: one mutex guards the sampler's state (observer, lanewatch, last
 * census); it is taken by the sampler thread and libmicrohttpd's thread,
 * never by the engine's.
 */
#include "metrics_http.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "lanewatch.h"

#define SAMPLE_MS 100
#define DEFAULT_CENSUS_S 10
#define DEFAULT_FILE_S 5
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
	metrics_opts o;
	ckr_flusher *f;
	ckr_observer *ob;
	ckr_store *store;          /* read-only handle for the census */
	struct MHD_Daemon *httpd;
	int listen_fd;
	unsigned port;
	pthread_t sampler;
	bool sampler_started;
	pthread_mutex_t lock;      /* everything below */
	pthread_cond_t wake;
	bool stop;
	ckr_segment_info info;
	ckr_lane_info *lanes;
	lanewatch lw;
	uint64_t lw_now_ns;        /* CLOCK_MONOTONIC of the last sample */
	ckr_store_census census;
	bool census_ok;
	uint64_t census_ns;        /* CLOCK_REALTIME of the last census */
};

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* the text format                                                     */
/* ------------------------------------------------------------------ */

static void head(FILE *o, const char *name, const char *type, const char *help)
{
	fprintf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *o, const char *name, const char *type, const char *help,
		double v)
{
	head(o, name, type, help);
	fprintf(o, "%s %.17g\n", name, v);
}

static void hist(FILE *o, const char *name, const char *help, const ckr_histogram *h)
{
	uint64_t cum = 0;
	head(o, name, "histogram", help);
	for (uint32_t i = 0; i < h->n_buckets; i++) {
		cum += h->count[i];
		if (isinf(h->le[i]))
			fprintf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
		else
			fprintf(o, "%s_bucket{le=\"%.9g\"} %llu\n", name, h->le[i],
				(unsigned long long)cum);
	}
	fprintf(o, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name,
		(unsigned long long)h->total);
}

static void render_engine(FILE *o, const ckr_flusher_metrics *fm)
{
	one(o, "ckring_events_stored_total", "counter",
	    "Events the flusher accepted and applied to their runs: stored rows and "
	    "the finishes that change a record (since it started).", (double)fm->stored);
	head(o, "ckring_events_rejected_total", "counter",
	     "Events the flusher rejected (not from the run's current writer, or "
	     "after its end), by reason; each is reported to its writer.");
	for (unsigned i = 0; i < CKR_FLUSHER_REJECT_REASONS; i++)
		fprintf(o, "ckring_events_rejected_total{reason=\"%s\"} %llu\n",
			ckr_flusher_reject_name(i), (unsigned long long)fm->rejected[i]);
	one(o, "ckring_records_corrupt_total", "counter",
	    "Records in the ring that failed validation.", (double)fm->corrupt);
	one(o, "ckring_records_quarantined_total", "counter",
	    "Rows written to the store's quarantine (corrupt records and skipped "
	    "claims).", (double)fm->quarantined);
	one(o, "ckring_claims_reclaimed_total", "counter",
	    "Abandoned claims of dead or detached producers skipped.",
	    (double)fm->reclaimed);
	one(o, "ckring_batches_total", "counter", "Store transactions committed.",
	    (double)fm->batches);
	one(o, "ckring_map_grown_total", "counter", "Times the LMDB map was doubled.",
	    (double)fm->map_grown);
	one(o, "ckring_store_full_retries_total", "counter",
	    "Commits deferred because the disk or map was full (events stay in the "
	    "ring).", (double)fm->disk_full);
	one(o, "ckring_retention_runs_pruned_total", "counter",
	    "Runs the flusher's retention removed (failed) or cleared (completed).",
	    (double)fm->pruned_runs);
	one(o, "ckring_retention_rows_pruned_total", "counter",
	    "Rows the flusher's retention deleted.", (double)fm->pruned_rows);
	hist(o, "ckring_commit_duration_seconds",
	     "Duration of a batch's commit (sync=always: with its data pages' fsync).",
	     &fm->commit_seconds);
	hist(o, "ckring_fsync_duration_seconds",
	     "Duration of an fsync beside the commits (the group commit's, or "
	     "sync=interval's).", &fm->fsync_seconds);
	hist(o, "ckring_batch_size_events", "Events (records) per committed batch.",
	     &fm->batch_events);
	one(o, "ckring_flusher_start_time_seconds", "gauge",
	    "Unix time the flusher opened.", (double)fm->started_ns / 1e9);
	one(o, "ckring_flusher_last_commit_timestamp_seconds", "gauge",
	    "Unix time of the last commit (0: none yet).", (double)fm->last_commit_ns / 1e9);
}

/* Lanes that were ever used (a free lane never written has tail 0). */
static bool lane_shown(const ckr_lane_info *li)
{
	return li->tail > 0 || li->state != CKR_LANE_FREE || li->refused_full > 0;
}

typedef enum lane_value { LV_LAG, LV_RECORDS, LV_AGE, LV_REFUSED, LV_CAP } lane_value;

static void lane_series(FILE *o, const metrics *m, const char *name, const char *type,
			const char *help, lane_value what)
{
	head(o, name, type, help);
	for (uint32_t i = 0; i < m->info.lane_count; i++) {
		const ckr_lane_info *li = &m->lanes[i];
		if (!lane_shown(li))
			continue;
		bool bad = li->state == CKR_LANE_INCONSISTENT;
		double v = 0;
		switch (what) {
		case LV_LAG: v = bad ? 0 : (double)(li->tail - li->head); break;
		case LV_RECORDS: v = (double)li->pending; break;
		case LV_AGE: v = lw_age_s(&m->lw, i, m->lw_now_ns); break;
		case LV_REFUSED: v = (double)li->refused_full; break;
		case LV_CAP: v = (double)li->capacity; break;
		}
		fprintf(o, "%s{lane=\"%u\"} %.17g\n", name, i, v);
	}
}

static void render_segment(FILE *o, const metrics *m)
{
	const ckr_segment_info *g = &m->info;
	double oldest = 0;
	for (uint32_t i = 0; i < g->lane_count; i++) {
		double a = lw_age_s(&m->lw, i, m->lw_now_ns);
		oldest = a > oldest ? a : oldest;
	}
	lane_series(o, m, "ckring_lane_lag_bytes", "gauge",
		    "Bytes pushed into the lane and not yet committed (tail - head).", LV_LAG);
	lane_series(o, m, "ckring_lane_lag_records", "gauge",
		    "Sealed records in the lane not yet committed.", LV_RECORDS);
	lane_series(o, m, "ckring_lane_oldest_unflushed_age_seconds", "gauge",
		    "Time since this process's sampler first saw the lane's oldest "
		    "uncommitted event (0: none; low by at most 0.1 s).", LV_AGE);
	lane_series(o, m, "ckring_lane_refused_total", "counter",
		    "Pushes refused because the lane was full (since the segment was "
		    "created).", LV_REFUSED);
	lane_series(o, m, "ckring_lane_capacity_bytes", "gauge", "The lane's ring size.",
		    LV_CAP);
	one(o, "ckring_lag_bytes", "gauge", "Uncommitted bytes, all lanes.",
	    (double)g->lag_bytes);
	one(o, "ckring_oldest_unflushed_age_seconds", "gauge",
	    "The largest ckring_lane_oldest_unflushed_age_seconds.", oldest);
	one(o, "ckring_lanes_attached", "gauge", "Lanes held by a producer.",
	    (double)g->attached);
	one(o, "ckring_flusher_heartbeat_age_seconds", "gauge",
	    "Time since the flusher's loop last beat in the segment.",
	    g->heartbeat_seen ? (double)g->heartbeat_age_ns / 1e9 : 0);
}

static void render_store(FILE *o, const metrics *m)
{
	const ckr_store_census *c = &m->census;
	static const char *const states[] = { NULL, "running", "failed", "completed" };
	if (!m->census_ok)
		return;
	head(o, "ckring_runs", "gauge", "Runs in the store by state (from the last "
	     "census).");
	for (int s = 1; s <= 3; s++)
		fprintf(o, "ckring_runs{state=\"%s\"} %llu\n", states[s],
			(unsigned long long)c->runs[s]);
	one(o, "ckring_runs_interrupted", "gauge",
	    "Running runs whose owner is not alive.", (double)c->interrupted);
	one(o, "ckring_runs_claimable", "gauge",
	    "Interrupted runs a claim would take now (owner ended).", (double)c->claimable);
	one(o, "ckring_runs_being_pruned", "gauge",
	    "Runs marked as being removed by a prune.", (double)c->removing);
	double age = c->oldest_interrupted_ns && m->census_ns > c->oldest_interrupted_ns
			     ? (double)(m->census_ns - c->oldest_interrupted_ns) / 1e9 : 0;
	one(o, "ckring_oldest_interrupted_run_age_seconds", "gauge",
	    "Time since the least recently written interrupted run was last written "
	    "(0: none).", age);
	one(o, "ckring_store_map_size_bytes", "gauge", "The LMDB map size.",
	    (double)c->map_size);
	one(o, "ckring_store_map_used_bytes", "gauge", "LMDB pages in use.",
	    (double)c->map_used);
	one(o, "ckring_store_census_timestamp_seconds", "gauge",
	    "Unix time of the census the ckring_runs* values come from.",
	    (double)m->census_ns / 1e9);
}

/* Take a fresh segment sample (under the lock). */
static void sample(metrics *m)
{
	ckr_observer_snapshot(m->ob, &m->info, m->lanes, m->info.lane_count);
	m->lw_now_ns = now_ns(CLOCK_MONOTONIC);
	lw_observe(&m->lw, m->lanes, m->info.lane_count, m->lw_now_ns);
}

/* The whole exposition, malloc'd (*len bytes). Takes the lock. */
static char *render(metrics *m, size_t *len)
{
	char *buf = NULL;
	FILE *o = open_memstream(&buf, len);
	ckr_flusher_metrics fm;
	if (!o)
		return NULL;
	ckr_flusher_metrics_get(m->f, &fm);
	render_engine(o, &fm);
	pthread_mutex_lock(&m->lock);
	sample(m);
	render_segment(o, m);
	render_store(o, m);
	pthread_mutex_unlock(&m->lock);
	if (fclose(o) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ------------------------------------------------------------------ */
/* the file                                                            */
/* ------------------------------------------------------------------ */

/* Write the exposition to o->file atomically: a temp file beside it (not
 * ending in .prom, so the collector never reads it half-written), then
 * rename. @return 0; -errno. */
static int write_file(metrics *m)
{
	char tmp[4200];
	size_t len = 0;
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", m->o.file, (int)getpid()) >=
	    (int)sizeof tmp)
		return -ENAMETOOLONG;
	char *text = render(m, &len);
	if (!text)
		return -ENOMEM;
	FILE *f = fopen(tmp, "w");
	int rc = f ? 0 : -errno;
	if (f && fwrite(text, 1, len, f) != len)
		rc = -EIO;
	if (f && fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, m->o.file) != 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	free(text);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the sampler thread                                                  */
/* ------------------------------------------------------------------ */

static void take_census(metrics *m)
{
	ckr_store_census c;
	int rc = ckr_store_census_get(m->store, &c);
	pthread_mutex_lock(&m->lock);
	if (rc == 0) {
		m->census = c;
		m->census_ok = true;
		m->census_ns = now_ns(CLOCK_REALTIME);
	}
	pthread_mutex_unlock(&m->lock);
}

static void *sampler_main(void *arg)
{
	metrics *m = arg;
	uint64_t t = now_ns(CLOCK_MONOTONIC), census_at = t, file_at = t;
	uint64_t census_every = (uint64_t)m->o.census_every_s * 1000000000u;
	uint64_t file_every = (uint64_t)m->o.file_every_s * 1000000000u;
	take_census(m);
	if (m->o.file)
		write_file(m);
	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += SAMPLE_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&m->wake, &m->lock, &until);
		if (m->stop)
			break;
		sample(m);
		pthread_mutex_unlock(&m->lock);
		t = now_ns(CLOCK_MONOTONIC);
		if (t - census_at >= census_every) {
			census_at = t;
			take_census(m);
		}
		if (m->o.file && t - file_at >= file_every) {
			file_at = t;
			write_file(m);
		}
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
			     const char *type, char *body, size_t len, bool owned)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **req)
{
	static char not_found[] = "not found: the metrics are at /metrics\n";
	static char index_page[] = "ckring-flusher: metrics at /metrics\n";
	static char no_method[] = "only GET and HEAD\n";
	metrics *m = cls;
	(void)version;
	(void)upload;
	if (*req == NULL) { /* first call: headers only */
		*req = m;
		return MHD_YES;
	}
	if (*upload_size) { /* a body we do not read */
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", no_method,
			     strlen(no_method), false);
	if (strcmp(url, "/") == 0)
		return reply(c, MHD_HTTP_OK, "text/plain", index_page, strlen(index_page),
			     false);
	if (strcmp(url, "/metrics") != 0)
		return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
			     strlen(not_found), false);
	size_t len = 0;
	char *body = render(m, &len);
	if (!body)
		return MHD_NO;
	return reply(c, MHD_HTTP_OK, CONTENT_TYPE, body, len, true);
}

/* Split "ADDR:PORT" / "[V6]:PORT" into host and port. */
static bool split_addr(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || !colon[1] || strlen(colon + 1) >= pcap)
		return false;
	const char *h = s;
	size_t hn = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hn < 3 || s[hn - 1] != ']')
			return false;
		h++;
		hn -= 2;
	}
	if (hn >= hcap)
		return false;
	memcpy(host, h, hn);
	host[hn] = '\0';
	strcpy(port, colon + 1);
	char *end;
	long p = strtol(port, &end, 10);
	return *end == '\0' && p >= 0 && p <= 65535 && isdigit((unsigned char)port[0]);
}

bool metrics_addr_ok(const char *s)
{
	char host[256], port[8];
	return s && split_addr(s, host, sizeof host, port, sizeof port);
}

/* A listening socket on o->listen. @return the fd, or -1 with *err set. */
static int listen_on(metrics *m, char *err, size_t err_len)
{
	char host[256], port[8];
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM }, *ai = NULL;
	split_addr(m->o.listen, host, sizeof host, port, sizeof port);
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		snprintf(err, err_len, "cannot serve metrics on %s: %s", m->o.listen,
			 gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	int one_ = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one_, sizeof one_);
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 32) != 0) {
		snprintf(err, err_len, "cannot serve metrics on %s: %s", m->o.listen,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	struct sockaddr_storage sa;
	socklen_t sl = sizeof sa;
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		m->port = ntohs(sa.ss_family == AF_INET6
					? ((struct sockaddr_in6 *)&sa)->sin6_port
					: ((struct sockaddr_in *)&sa)->sin_port);
	freeaddrinfo(ai);
	return fd;
}

static int start_http(metrics *m, char *err, size_t err_len)
{
	m->listen_fd = listen_on(m, err, err_len);
	if (m->listen_fd < 0)
		return -1;
	m->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
				    on_request, m, MHD_OPTION_LISTEN_SOCKET, m->listen_fd,
				    MHD_OPTION_CONNECTION_LIMIT, 64,
				    MHD_OPTION_CONNECTION_TIMEOUT, 10, MHD_OPTION_END);
	if (!m->httpd) {
		snprintf(err, err_len, "cannot serve metrics on %s: libmicrohttpd did not "
			 "start", m->o.listen);
		close(m->listen_fd);
		m->listen_fd = -1;
		return -1;
	}
	m->listen_fd = -1; /* the daemon's now: MHD_stop_daemon closes it */
	return 0;
}

/* ------------------------------------------------------------------ */
/* start / stop                                                        */
/* ------------------------------------------------------------------ */

static int open_sources(metrics *m, char *err, size_t err_len)
{
	ckr_store_opts so = { .read_only = true };
	int rc = ckr_observer_open(m->o.segment, &m->ob);
	if (rc) {
		snprintf(err, err_len, "metrics: cannot observe segment '%s': %s",
			 m->o.segment, ckr_strerror(rc));
		return -1;
	}
	rc = ckr_store_open(m->o.db_dir, &so, &m->store);
	if (rc) {
		snprintf(err, err_len, "metrics: cannot read store '%s': %s", m->o.db_dir,
			 ckr_strerror(rc));
		return -1;
	}
	ckr_observer_snapshot(m->ob, &m->info, NULL, 0);
	m->lanes = calloc(m->info.lane_count ? m->info.lane_count : 1, sizeof *m->lanes);
	if (!m->lanes || lw_init(&m->lw, m->info.lane_count) != 0) {
		snprintf(err, err_len, "metrics: out of memory");
		return -1;
	}
	return 0;
}

int metrics_start(const metrics_opts *o, ckr_flusher *f, metrics **out, char *err,
		  size_t err_len)
{
	metrics *m = calloc(1, sizeof *m);
	if (!m) {
		snprintf(err, err_len, "metrics: out of memory");
		return -1;
	}
	m->o = *o;
	m->f = f;
	m->listen_fd = -1;
	if (!m->o.census_every_s)
		m->o.census_every_s = DEFAULT_CENSUS_S;
	if (!m->o.file_every_s)
		m->o.file_every_s = DEFAULT_FILE_S;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wake, &ca);
	pthread_condattr_destroy(&ca);
	int rc = open_sources(m, err, err_len);
	if (rc == 0 && m->o.file && (rc = write_file(m)) != 0)
		snprintf(err, err_len, "cannot write --metrics-file %s: %s", m->o.file,
			 strerror(-rc));
	/* The exporter's threads (libmicrohttpd's, the sampler) inherit a
	 * mask of the asynchronous signals: SIGTERM/SIGINT are the drain
	 * loop's (its handler interrupts the engine's sleep). */
	sigset_t block, old;
	sigfillset(&block);
	sigdelset(&block, SIGBUS);
	sigdelset(&block, SIGSEGV);
	sigdelset(&block, SIGFPE);
	sigdelset(&block, SIGILL);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	if (rc == 0 && m->o.listen)
		rc = start_http(m, err, err_len);
	if (rc == 0 && pthread_create(&m->sampler, NULL, sampler_main, m) != 0) {
		snprintf(err, err_len, "metrics: cannot start a thread");
		rc = -1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	m->sampler_started = rc == 0;
	if (rc) {
		metrics_stop(m);
		return -1;
	}
	*out = m;
	return 0;
}

unsigned metrics_port(const metrics *m)
{
	return m ? m->port : 0;
}

void metrics_stop(metrics *m)
{
	if (!m)
		return;
	if (m->httpd)
		MHD_stop_daemon(m->httpd);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->sampler_started) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_cond_signal(&m->wake);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->sampler, NULL);
		if (m->o.file)
			write_file(m);
	}
	ckr_observer_close(m->ob);
	ckr_store_close(m->store);
	lw_free(&m->lw);
	free(m->lanes);
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
