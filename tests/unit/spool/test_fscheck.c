/*
 * fs_verdict(): the table of file systems that earn the spool warning,
 * and fs_check() on this machine's own /proc and /sys (smoke: whatever
 * the verdict, the message matches it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lib/buf.h"
#include "spool/fscheck.h"

#define EXT   0xEF53UL
#define TMPFS 0x01021994UL
#define RAMFS 0x858458f6UL
#define XFS   0x58465342UL

static void
test_table(void **state)
{
	static const char *const jbd2[] = { "vda-8", "loop10-8", "dm-1-8", "sdb2" };
	static const struct {
		unsigned long f_type;
		const char   *dev;
		const char   *task;         /* journal_task, NULL: no such file */
		size_t        n;            /* how many of jbd2[] are listed */
		enum fs_verdict want;
	} t[] = {
		{ EXT, "vda", "412", 0, FS_OK },        /* journal_task decides */
		{ EXT, "vda", "<none>", 4, FS_EXT_NO_JOURNAL }, /* over "vda-8" */
		{ EXT, "sdc", "977", 0, FS_OK },        /* external journal too */
		{ EXT, "vda", NULL, 4, FS_OK },         /* fallback: "vda-8" */
		{ EXT, "vda1", NULL, 4, FS_EXT_NO_JOURNAL }, /* "vda-8": not it */
		{ EXT, "loop1", NULL, 4, FS_EXT_NO_JOURNAL }, /* "loop10" only */
		{ EXT, "loop10", NULL, 4, FS_OK },
		{ EXT, "dm-1", NULL, 4, FS_OK },
		{ EXT, "dm", NULL, 4, FS_EXT_NO_JOURNAL }, /* "dm-1-8" is dm-1 */
		{ EXT, "sdb2", NULL, 4, FS_OK },        /* listed as it is */
		{ EXT, "vda", NULL, 0, FS_EXT_NO_JOURNAL }, /* no jbd2 at all */
		{ EXT, NULL, "<none>", 0, FS_OK },      /* device unknown: no guess */
		{ EXT, "", NULL, 0, FS_OK },
		{ TMPFS, NULL, NULL, 0, FS_VOLATILE },
		{ RAMFS, "x", NULL, 4, FS_VOLATILE },
		{ XFS, "vdb", "<none>", 0, FS_OK },     /* journals its metadata */
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		enum fs_verdict v = fs_verdict(t[i].f_type, t[i].dev, t[i].task,
		    jbd2, t[i].n);
		if (v != t[i].want)
			fail_msg("case %zu (%s): got %d, want %d", i,
			    t[i].dev ? t[i].dev : "(null)", v, t[i].want);
	}
}

static void
test_check_here(void **state)
{
	const char *paths[] = { "/", "/proc", ".", "/nonexistent/x" };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		struct buf msg = BUF_INIT;
		enum fs_verdict v = fs_check("virtual_mailbox_base", paths[i], &msg);
		if (v == FS_OK)
			assert_int_equal(msg.len, 0);
		else {
			assert_non_null(strstr(buf_cstr(&msg), "virtual_mailbox_base "));
			assert_non_null(strstr(buf_cstr(&msg), paths[i]));
		}
		buf_free(&msg);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_check_here),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
