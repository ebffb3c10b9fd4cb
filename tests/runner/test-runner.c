/* SPDX-License-Identifier: MIT */
#include "test-runner.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef NDEBUG
#error "tests must not be built with NDEBUG"
#endif

extern const struct vshm_test __start_vshm_tests[];
extern const struct vshm_test __stop_vshm_tests[];

void vshm_test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(1);
}

static int test_argc;
static char **test_argv;

const char *vshm_test_arg(int i)
{
	return i >= 1 && i < test_argc ? test_argv[i] : NULL;
}

int vshm_test_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static int run_one(const struct vshm_test *t, unsigned timeout)
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int before = vshm_test_count_fds();
		alarm(timeout);
		t->run();
		if (!t->no_leak_check) {
			int after = vshm_test_count_fds();
			if (after != before) {
				fprintf(stderr, "fd leak: %d open before, %d after\n", before,
				        after);
				_exit(1);
			}
		}
		/* exit(), not _exit(): LeakSanitizer reports from an atexit hook. */
		exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == 0 ? 0 : -1;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "test killed by signal %d%s\n", WTERMSIG(status),
		        WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *filter = getenv("VSHM_TEST_FILTER");
	const char *tmo = getenv("VSHM_TEST_TIMEOUT");
	unsigned timeout = tmo ? (unsigned)strtoul(tmo, NULL, 10) : 20;
	const struct vshm_test *t;
	unsigned n = 0, i = 0, failed = 0;

	test_argc = argc;
	test_argv = argv;
	signal(SIGPIPE, SIG_IGN);
	for (t = __start_vshm_tests; t < __stop_vshm_tests; t++)
		if (!filter || strstr(t->name, filter))
			n++;
	printf("TAP version 13\n1..%u\n", n);
	for (t = __start_vshm_tests; t < __stop_vshm_tests; t++) {
		if (filter && !strstr(t->name, filter))
			continue;
		i++;
		if (run_one(t, timeout) == 0) {
			printf("ok %u - %s\n", i, t->name);
		} else {
			printf("not ok %u - %s\n", i, t->name);
			failed++;
		}
		fflush(stdout);
	}
	return failed ? 1 : 0;
}
