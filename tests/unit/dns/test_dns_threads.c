/*
 * dns_new() from several threads at once, in a fresh process each round.
 *
 * libunbound keeps process-wide state that its contexts share: the first
 * ub_ctx_create*() initialises its log lock behind an unguarded "created
 * yet?" flag (util/log.c, log_init), and its configuration parser is
 * flex/bison with globals. Two workers starting at once once made ehlod
 * abort right after "ready" on glibc's mutex owner check (seen once in a
 * CI run of e2e_identity_policy). A fresh process per round, because only
 * the first creation in a process races on the flag.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "lib/buf.h"

#define THREADS 16
#define ROUNDS  600

static pthread_barrier_t start;

static void *
make_one(void *arg)
{
	(void)arg;
	struct event_base *base = event_base_new();
	if (base == NULL)
		_exit(3);
	const char *fw[] = { "127.0.0.1@9" };   /* never asked: no lookups */
	struct dns_opts o = { .forwarders = fw, .nforwarders = 1 };
	struct buf err = BUF_INIT;
	pthread_barrier_wait(&start);
	struct dns *d = dns_new(base, &o, &err);
	if (d == NULL)
		_exit(4);
	dns_free(&d);
	buf_free(&err);
	event_base_free(base);
	return NULL;
}

static void
test_concurrent_first_contexts(void **state)
{
	(void)state;
	for (int r = 0; r < ROUNDS; r++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			pthread_t t[THREADS];
			pthread_barrier_init(&start, NULL, THREADS);
			for (int i = 0; i < THREADS; i++)
				if (pthread_create(&t[i], NULL, make_one, NULL) != 0)
					_exit(2);
			for (int i = 0; i < THREADS; i++)
				pthread_join(t[i], NULL);
			_exit(0);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("round %d: child %s %d", r,
			    WIFSIGNALED(status) ? "killed by signal" : "exited",
			    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_first_contexts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
