/* The Prometheus /metrics endpoint (metrics_listen). See metrics.c. */
#ifndef EHLO_SESSION_METRICS_H
#define EHLO_SESSION_METRICS_H

#include "session/daemon.h"

struct evhttp;
struct event_base;

/* Serves /metrics for d on base at listen ("127.0.0.1:9187", "[::1]:9187").
 * NULL with nothing in err when listen is empty; NULL with a reason in err
 * when it cannot listen. Free with evhttp_free(). */
struct evhttp *metrics_start(struct daemon *d, struct event_base *base, const char *listen,
                             struct buf *err);

#endif
