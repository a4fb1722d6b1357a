/*
 * Prometheus /metrics endpoint (text exposition format 0.0.4) on
 * metrics_listen, served by evhttp on the main thread's loop.
 *
 * Names mirror the de-facto Postfix exporter's with our own prefix
 * (STACK.md §7), base units in the names (_total, _bytes). Every value is
 * an atomic counter the workers and delivery threads update; reading them
 * here needs no lock.
 */
#include "session/metrics.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "spool/spool.h"
#include "tls/tls.h"

#define METRICS_MAX_HEADERS 8192     /* request line and headers, bytes */
#define METRICS_MAX_BODY    1024
#define METRICS_TIMEOUT_SEC 10

static void
counter(struct evbuffer *b, const char *name, const char *help, unsigned long long v)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
	    name, v);
}

static void
gauge(struct evbuffer *b, const char *name, const char *help, long long v)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name,
	    name, v);
}

/* A counter with one label: a sample for each of values[0..n). */
static void
labeled_counter(struct evbuffer *b, const char *name, const char *help, const char *label,
    const char *const *values, const unsigned long long *counts, size_t n)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(b, "%s{%s=\"%s\"} %llu\n", name, label, values[i], counts[i]);
}

static void
on_metrics(struct evhttp_request *req, void *arg)
{
	struct daemon *d = arg;
	struct daemon_stats *st = &d->stats;
	struct evbuffer *b = evbuffer_new();
	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	counter(b, "ehlo_smtpd_connects_total", "Connections accepted.",
	    atomic_load(&st->connects));
	counter(b, "ehlo_smtpd_disconnects_total", "Sessions ended.",
	    atomic_load(&st->disconnects));
	counter(b, "ehlo_smtpd_connections_rejected_total",
	    "Connections refused with 421 (connection limits, shutdown).",
	    atomic_load(&st->rejected_connections));
	counter(b, "ehlo_smtpd_connections_lost_total",
	    "Sessions whose client disconnected without QUIT.", atomic_load(&st->lost_connections));
	counter(b, "ehlo_smtpd_accept_errors_total", "Connections accept(2) could not take "
	    "(out of file descriptors or memory); the listener then rests 100 ms.",
	    atomic_load(&st->accept_errors));
	counter(b, "ehlo_smtpd_timeouts_total", "Sessions ended by a timeout.",
	    atomic_load(&st->timeouts));
	counter(b, "ehlo_smtpd_deadline_timeouts_total",
	    "Of those, sessions whose request or TLS handshake was still incomplete at its "
	    "deadline (smtpd_per_request_deadline).", atomic_load(&st->deadline_timeouts));
	counter(b, "ehlo_smtpd_error_limit_disconnects_total", "Sessions ended with 421 by "
	    "smtpd_hard_error_limit (junk commands past smtpd_junk_command_limit included).",
	    atomic_load(&st->error_limit_closes));
	counter(b, "ehlo_smtpd_messages_processed_total", "Messages accepted (250 after DATA/BDAT).",
	    atomic_load(&st->messages_accepted));
	counter(b, "ehlo_smtpd_messages_processed_bytes_total", "Bytes of the accepted messages.",
	    atomic_load(&st->bytes_accepted));
	counter(b, "ehlo_smtpd_tls_connections_total", "TLS handshakes completed.",
	    atomic_load(&st->tls_handshakes));
	counter(b, "ehlo_smtpd_tls_failures_total", "TLS handshakes that failed.",
	    atomic_load(&st->tls_failures));
	counter(b, "ehlo_smtpd_starttls_injection_total",
	    "Sessions with plaintext pipelined after STARTTLS (discarded, CVE-2011-0411).",
	    atomic_load(&st->starttls_injection));
	counter(b, "ehlo_smtpd_pregreet_total", "Clients that talked before the greeting.",
	    atomic_load(&st->pregreet));
	counter(b, "ehlo_smtpd_improper_pipelining_total",
	    "Sessions that sent more commands after one that must end a pipelined group "
	    "(RFC 2920 section 3.1), or pipelined without PIPELINING.",
	    atomic_load(&st->improper_pipelining));
	counter(b, "ehlo_smtpd_output_blocked_total",
	    "Sessions that stopped executing commands because the client did not read "
	    "its replies (more than 64 KiB pending).",
	    atomic_load(&st->output_blocked));
	counter(b, "ehlo_smtpd_proxy_errors_total", "Bad or missing PROXY protocol headers.",
	    atomic_load(&st->proxy_errors));
	labeled_counter(b, "ehlo_smtpd_helo_checks_total", "Identity policy refusals "
	    "(outcome: reject, tempfail; shadow: would have refused).", "outcome",
	    (const char *const[]){ "reject", "tempfail", "shadow" },
	    (const unsigned long long[]){ atomic_load(&st->helo_rejects),
	    atomic_load(&st->helo_tempfails), atomic_load(&st->helo_shadow_rejects) }, 3);
	labeled_counter(b, "ehlo_smtpd_memory_limit_rejects_total", "Refusals with 452 4.3.1 "
	    "because message content held in memory reached smtpd_message_memory_limit "
	    "(stage: mail, data).", "stage", (const char *const[]){ "mail", "data" },
	    (const unsigned long long[]){ atomic_load(&st->memory_rejects_mail),
	    atomic_load(&st->memory_rejects_data) }, 2);
	gauge(b, "ehlo_smtpd_message_memory_bytes", "Message content held in memory now: "
	    "bodies being received plus accepted messages not yet freed by the spool (bounded "
	    "by smtpd_message_memory_limit).", (long long)daemon_message_memory(d));
	gauge(b, "ehlo_smtpd_sessions_active", "Sessions open now.",
	    (long long)atomic_load(&st->sessions_active));
	counter(b, "ehlo_dns_inflight_limit_rejects_total", "DNS lookups failed at once as "
	    "temporary failures because dns_max_inflight queries were outstanding.",
	    atomic_load(&st->dns_inflight_rejects));
	gauge(b, "ehlo_dns_queries_inflight", "DNS queries outstanding in the resolver "
	    "library now, all workers (timed-out ones until it gives up).",
	    (long long)atomic_load(&st->dns_inflight));
	if (d->spool != NULL) {
		struct spool_stats ss;
		spool_get_stats(d->spool, &ss);
		counter(b, "ehlo_spool_deliveries_total", "Messages made durable in every Maildir.",
		    ss.jobs_ok);
		counter(b, "ehlo_spool_delivery_failures_total",
		    "Messages refused with 4xx because delivery failed (with the journal: "
		    "because the journal write failed).", ss.jobs_failed);
		counter(b, "ehlo_spool_background_delivery_failures_total",
		    "With the journal: Maildir delivery attempts after the 250 (or at "
		    "recovery) that failed for some copy; each is retried every 10 s.",
		    ss.background_failures);
		counter(b, "ehlo_spool_copies_total", "Maildir copies made durable.", ss.copies);
		counter(b, "ehlo_spool_batches_total", "Group commits performed.", ss.batches);
		counter(b, "ehlo_spool_written_bytes_total", "Bytes written into Maildirs.", ss.bytes);
		counter(b, "ehlo_spool_tmp_removed_total",
		    "Leftover files older than 36 hours removed from Maildir tmp/ directories.",
		    ss.tmp_removed);
		counter(b, "ehlo_spool_journal_records_total",
		    "Messages written to the journal (spool_journal_directory).",
		    ss.journal_records);
		counter(b, "ehlo_spool_journal_syncs_total",
		    "Journal group commits (one fdatasync each).", ss.journal_syncs);
		gauge(b, "ehlo_spool_messages_pending", "Messages the spool holds now: being "
		    "committed, or, with the journal, acknowledged and not yet in every Maildir "
		    "(failed deliveries are retried every 10 s).", (long long)ss.pending);
	}
	labeled_counter(b, "ehlo_config_reloads_total", "Configuration reloads (SIGHUP), by "
	    "result; a failed one keeps the running configuration.", "result",
	    (const char *const[]){ "success", "failure" },
	    (const unsigned long long[]){ atomic_load(&st->reloads_ok),
	    atomic_load(&st->reloads_failed) }, 2);
	gauge(b, "ehlo_config_last_reload_successful", "1 at start and after a reload that "
	    "took, 0 after one that failed.", atomic_load(&st->last_reload_ok));
	gauge(b, "ehlo_config_last_reload_success_timestamp_seconds", "When the running "
	    "configuration was loaded (start or reload), in seconds since the epoch.",
	    (long long)atomic_load(&st->last_reload_time));
	struct gen *g = daemon_gen(d);
	if (g->tls != NULL)
		gauge(b, "ehlo_tls_certificate_expiry_timestamp_seconds", "The earliest notAfter "
		    "of the certificates STARTTLS serves now (default and SNI), in seconds since "
		    "the epoch; absent without TLS.", (long long)tls_server_not_after(g->tls));
	gen_unref(&g);
	gauge(b, "ehlo_up", "1 while ehlod runs.", 1);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* RFC 9110 §9.3.2: the headers of a GET, no content. libevent
		 * leaves out Content-Length for HEAD but would still send the
		 * body, which a keep-alive client reads as the next response. */
		char len[24];
		snprintf(len, sizeof len, "%zu", evbuffer_get_length(b));
		evhttp_add_header(h, "Content-Length", len);
		evhttp_send_reply(req, HTTP_OK, "OK", NULL);
	} else {
		evhttp_send_reply(req, HTTP_OK, "OK", b);
	}
	evbuffer_free(b);
}

struct evhttp *
metrics_start(struct daemon *d, struct event_base *base, const char *listen, struct buf *err)
{
	if (listen == NULL || listen[0] == '\0')
		return NULL;
	/* metrics_listen is "addr:port" (IPv6 in brackets): reuse the listen
	 * parser, which takes "kind:addr:port". */
	struct buf spec = BUF_INIT;
	buf_appendf(&spec, "smtp:%s", listen);
	struct cfg_listen cl;
	bool ok = config_parse_listen(buf_cstr(&spec), &cl, err);
	buf_free(&spec);
	if (!ok)
		return NULL;
	struct evhttp *h = evhttp_new(base);
	if (h == NULL) {
		buf_appendf(err, "metrics: evhttp_new failed");
		return NULL;
	}
	evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	/* evhttp's defaults are unbounded headers and bodies and a 50 s idle
	 * timeout: one client trickling an endless header line would grow this
	 * process without limit. A scrape is a short GET. */
	evhttp_set_max_headers_size(h, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(h, METRICS_MAX_BODY);
	evhttp_set_timeout(h, METRICS_TIMEOUT_SEC);
	evhttp_set_cb(h, "/metrics", on_metrics, d);
	const char *addr = cl.family == AF_UNSPEC ? "::" : cl.addr;
	if (evhttp_bind_socket(h, addr, cl.port) != 0) {
		buf_appendf(err, "metrics: cannot listen on %s", listen);
		evhttp_free(h);
		return NULL;
	}
	log_info("metrics on http://%s/metrics", listen);
	return h;
}
