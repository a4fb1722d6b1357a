/*
 * Replays a fuzz harness over its seed corpus when libFuzzer is not in the
 * build (gcc builds): every file under the directories or files given as
 * arguments is passed once to LLVMFuzzerTestOneInput. Exit 0 if the harness
 * returned for every input (a crash or a sanitizer report fails the test).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	size_t cap = 1 << 16, len = 0;
	uint8_t *p = malloc(cap);
	size_t r;
	while (p && (r = fread(p + len, 1, cap - len, f)) > 0) {
		len += r;
		if (len == cap)
			p = realloc(p, cap *= 2);
	}
	fclose(f);
	if (p == NULL)
		return -1;
	LLVMFuzzerTestOneInput(p, len);
	free(p);
	return 1;
}

static int
run_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char sub[4096];
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		int r = run_path(sub);
		if (r < 0) {
			closedir(d);
			return -1;
		}
		n += r;
	}
	closedir(d);
	return n;
}

int
main(int argc, char **argv)
{
	int total = 0;
	for (int i = 1; i < argc; i++) {
		int r = run_path(argv[i]);
		if (r < 0)
			return 1;
		total += r;
	}
	/* An empty corpus would make this a test that cannot fail. */
	if (total == 0) {
		fprintf(stderr, "no corpus inputs found\n");
		return 1;
	}
	printf("replayed %d inputs\n", total);
	return 0;
}
