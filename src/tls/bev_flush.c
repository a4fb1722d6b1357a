/*
 * "Tell me when everything I wrote has reached the kernel" (or all but a
 * given amount) for a possibly layered bufferevent (STACK.md 2.1, trap #1).
 *
 * A TLS filter's write callback fires when ciphertext moves into the
 * underlying bufferevent, not when it leaves the socket, so closing from a
 * write callback either fires too early (the reply is lost) or never (the
 * session leaks). Instead we watch the *socket* bufferevent's output buffer
 * with an evbuffer callback and check the whole chain each time it changes.
 *
 * The user callback never runs inside an evbuffer callback: libevent is in
 * the middle of a write there, and a callback that frees the session (the
 * usual reason to wait) would free the buffer being drained. We activate an
 * event instead, so the callback runs from the loop like any other, and we
 * recheck the chain there in case more was written meanwhile.
 *
 * bev_when_drained() is the same wait with a threshold: output flow control
 * over TLS. A filter's output moves to the socket bufferevent as soon as it
 * is written, so the replies a client does not read pile up there, below
 * the bufferevent the session writes to; only the sum over the chain says
 * how much waits.
 */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "tls/tls.h"

size_t
bev_chain_output_length(struct bufferevent *top)
{
	struct bufferevent *b;
	size_t n = 0;

	for (b = top; b != NULL; b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	return n;
}

static bool
chain_drained(const struct bev_flush *w)
{
	return bev_chain_output_length(w->top) <= w->limit;
}

static struct bufferevent *
chain_bottom(struct bufferevent *top)
{
	struct bufferevent *b = top, *u;

	while ((u = bufferevent_get_underlying(b)) != NULL)
		b = u;
	return b;
}

static void
remove_watch(struct bev_flush *w)
{
	if (w->entry != NULL) {
		evbuffer_remove_cb_entry(w->sock_out, w->entry);
		w->entry = NULL;
	}
}

static void
out_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct bev_flush *w = arg;

	(void)buf;
	if (!chain_drained(w))
		return;
	remove_watch(w);
	event_active(w->now, EV_TIMEOUT, 1);
}

static void
now_cb(int fd, short what, void *arg)
{
	struct bev_flush *w = arg;
	void (*cb)(void *) = w->cb;
	void *cbarg = w->arg;

	if (!chain_drained(w)) {
		w->entry = evbuffer_add_cb(w->sock_out, out_changed, w);
		if (w->entry == NULL)
			abort();
		return;
	}
	bev_flush_cancel(w);
	cb(cbarg);
}

void
bev_when_flushed(struct bev_flush *w, struct bufferevent *top, void (*cb)(void *), void *arg)
{
	bev_when_drained(w, top, 0, cb, arg);
}

void
bev_when_drained(struct bev_flush *w, struct bufferevent *top, size_t limit,
    void (*cb)(void *), void *arg)
{
	if (w->now != NULL)
		bev_flush_cancel(w);
	w->limit = limit;
	w->cb = cb;
	w->arg = arg;
	w->top = top;
	w->sock_out = bufferevent_get_output(chain_bottom(top));
	w->entry = NULL;
	w->now = event_new(bufferevent_get_base(top), -1, 0, now_cb, w);
	if (w->now == NULL)
		abort();
	if (chain_drained(w)) {
		event_active(w->now, EV_TIMEOUT, 1);
		return;
	}
	w->entry = evbuffer_add_cb(w->sock_out, out_changed, w);
	if (w->entry == NULL)
		abort();
}

void
bev_flush_cancel(struct bev_flush *w)
{
	if (w->now == NULL)
		return;
	remove_watch(w);
	event_free(w->now);
	w->now = NULL;
	w->cb = NULL;
	w->arg = NULL;
	w->top = NULL;
	w->sock_out = NULL;
}
