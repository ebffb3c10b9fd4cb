/* SPDX-License-Identifier: MIT */
/* backend-proc.c - a back-end binary as a child process (see backend-proc.h). */
#include "backend-proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cleanup_dir(struct tbp *b)
{
	if (b->sock[0])
		unlink(b->sock);
	if (b->dir[0])
		rmdir(b->dir);
	b->sock[0] = b->dir[0] = 0;
}

int tbp_spawn(const char *exe, const char *const *extra_args, bool quiet, int timeout_ms,
              struct tbp *out)
{
	const char *tmp = getenv("TMPDIR");
	char sockarg[PATH_MAX + 32];
	const char *argv[64];
	unsigned argc = 0;
	struct stat st;

	memset(out, 0, sizeof(*out));
	out->pid = -1;
	if (access(exe, X_OK) < 0)
		return -errno;
	snprintf(out->dir, sizeof(out->dir), "%s/vshm-be-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(out->dir)) {
		out->dir[0] = 0;
		return -errno;
	}
	snprintf(out->sock, sizeof(out->sock), "%s/vgpu.sock", out->dir);
	snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", out->sock);
	argv[argc++] = exe;
	argv[argc++] = sockarg;
	for (unsigned i = 0; extra_args && extra_args[i] && argc < 62; i++)
		argv[argc++] = extra_args[i];
	argv[argc] = NULL;

	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		cleanup_dir(out);
		return err;
	}
	if (pid == 0) {
		/* Only stdio crosses into the back-end: it must not hold our sockets open. */
		if (quiet) {
			int nul = open("/dev/null", O_RDWR);
			if (nul >= 0) {
				dup2(nul, 1);
				dup2(nul, 2);
			}
		}
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		/* Die with the test or benchmark rather than outlive it. */
		signal(SIGPIPE, SIG_DFL);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	out->pid = pid;

	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		if (stat(out->sock, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		if (!tbp_alive(out)) {
			cleanup_dir(out);
			return -ECHILD;
		}
		if (now_ms() > deadline) {
			tbp_stop(out);
			return -ETIMEDOUT;
		}
		usleep(2000);
	}
}

bool tbp_alive(struct tbp *b)
{
	int status;
	if (b->pid <= 0)
		return false;
	pid_t r = waitpid(b->pid, &status, WNOHANG);
	if (r == b->pid) {
		b->pid = -1;
		return false;
	}
	return r == 0;
}

int tbp_stop(struct tbp *b)
{
	int status = 0, ret = 0;

	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		int64_t deadline = now_ms() + 1000;
		for (;;) {
			pid_t r = waitpid(b->pid, &status, WNOHANG);
			if (r == b->pid)
				break;
			if (r < 0) {
				ret = -errno;
				break;
			}
			if (now_ms() > deadline) {
				kill(b->pid, SIGKILL);
				waitpid(b->pid, &status, 0);
				break;
			}
			usleep(2000);
		}
		b->pid = -1;
		if (ret == 0)
			ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	cleanup_dir(b);
	return ret;
}

static int read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (n < 0)
		return err;
	buf[n] = 0;
	return 0;
}

int tbp_usage(pid_t pid, struct tbp_usage *out)
{
	char path[64], buf[4096];
	int r;

	memset(out, 0, sizeof(*out));
	/* /proc/PID/stat: fields 14 and 15 after the parenthesised comm. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_file(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	char *p = strrchr(buf, ')');
	if (p) {
		unsigned long long ut = 0, stt = 0;
		/* After ") " comes field 3 (state); utime is field 14. */
		if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
		           &stt) == 2) {
			long hz = sysconf(_SC_CLK_TCK);
			out->cpu_ticks_ns =
			        (ut + stt) * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_file(path, buf, sizeof(buf)) == 0) {
		char *l = strstr(buf, "VmRSS:");
		if (l)
			out->rss_kb = strtoull(l + 6, NULL, 10);
		l = strstr(buf, "VmHWM:");
		if (l)
			out->hwm_kb = strtoull(l + 6, NULL, 10);
	}
	/* schedstat is in ns and per thread: sum the threads for the process. */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			char tpath[320];
			if (e->d_name[0] == '.')
				continue;
			snprintf(tpath, sizeof(tpath), "/proc/%d/task/%s/schedstat", (int)pid,
			         e->d_name);
			if (read_file(tpath, buf, sizeof(buf)) == 0)
				out->cpu_ns += strtoull(buf, NULL, 10);
			out->threads++;
		}
		closedir(d);
	}
	return 0;
}
