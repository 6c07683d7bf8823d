/*
 * metrics_http.h — ckring-flusher's Prometheus exporter (metrics_http.c):
 * the text exposition format on http://ADDR:PORT/metrics (libmicrohttpd)
 * and/or written atomically to a file for node_exporter's textfile
 * collector. Part of the ckring-flusher binary, over the public headers.
 *
 * Threads: libmicrohttpd's own thread answers scrapes; a sampler thread
 * observes the segment (lane lag and ages) every SAMPLE_MS, reads the store's
 * census every census interval, and writes the file. Neither touches the
 * engine's thread: the engine's numbers come from ckr_flusher_metrics_get
 * (relaxed atomic loads), the segment's from the read-only observer, the
 * store's from read transactions.
 */
#ifndef CKR_TOOLS_METRICS_HTTP_H
#define CKR_TOOLS_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "ckring_store.h"

typedef struct metrics_opts {
	const char *listen;        /* "ADDR:PORT" (PORT 0: any free port), or NULL */
	const char *file;          /* textfile path, or NULL */
	const char *segment;
	const char *db_dir;
	unsigned census_every_s;   /* 0: 10 */
	unsigned file_every_s;     /* 0: 5 */
} metrics_opts;

typedef struct metrics metrics;

/* Is s of the form ADDR:PORT ([v6]:PORT; PORT 0..65535)? */
bool metrics_addr_ok(const char *s);

/*
 * Start serving f's metrics. On failure *err gets one line (no newline).
 * @return 0; -1 (the address cannot be bound, the segment cannot be
 *         observed, the file's directory is not writable, ...).
 */
int metrics_start(const metrics_opts *o, ckr_flusher *f, metrics **out, char *err,
		  size_t err_len);

/* The port bound (after PORT 0), or 0 without --metrics. */
unsigned metrics_port(const metrics *m);

/* Stop both threads, write the file a last time. Before ckr_flusher_close.
 * NULL is allowed. */
void metrics_stop(metrics *m);

#endif /* CKR_TOOLS_METRICS_HTTP_H */
