/*
 * "Tell me when everything I wrote has reached the kernel" for a possibly
 * layered bufferevent (STACK.md 2.1, trap #1).
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
 */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "tls/tls.h"

static bool
chain_empty(struct bufferevent *top)
{
	struct bufferevent *b;

	for (b = top; b != NULL; b = bufferevent_get_underlying(b))
		if (evbuffer_get_length(bufferevent_get_output(b)) != 0)
			return false;
	return true;
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

	if (evbuffer_get_length(buf) != 0 || !chain_empty(w->top))
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

	if (!chain_empty(w->top)) {
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
	if (w->now != NULL)
		bev_flush_cancel(w);
	w->cb = cb;
	w->arg = arg;
	w->top = top;
	w->sock_out = bufferevent_get_output(chain_bottom(top));
	w->entry = NULL;
	w->now = event_new(bufferevent_get_base(top), -1, 0, now_cb, w);
	if (w->now == NULL)
		abort();
	if (chain_empty(top)) {
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
