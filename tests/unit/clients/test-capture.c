/* SPDX-License-Identifier: MIT */
/*
 * test-capture.c - the vshm-capture binary and tests/doc-consumer/doc_consumer.py
 * against the scripted fake daemon (fake-daemon.h): exact PNG pixels,
 * output lines, exit codes, and the document-only Python consumer's CRC.
 *
 * Paths come from the environment (meson sets them): VSC_CAPTURE_EXE,
 * VSC_DOC_CONSUMER, VSC_PYTHON.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake-daemon.h"
#include "png-read.h"
#include "test-runner.h"

extern char **environ;

struct tdir {
	char dir[64];
	char sock[128];
	char out[128];
};

static void tdir_new(struct tdir *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/vsc-cap-XXXXXX");
	CHECK(mkdtemp(t->dir) != NULL);
	snprintf(t->sock, sizeof(t->sock), "%s/d.sock", t->dir);
	snprintf(t->out, sizeof(t->out), "%s/stdout.txt", t->dir);
}

static void tdir_free(struct tdir *t)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	CHECK_EQ(system(cmd), 0);
}

/* Run @argv with stdout (and stderr) to @out; exit status or -1. */
static int run(char *const argv[], const char *out)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st;
	CHECK_OK(posix_spawn_file_actions_init(&fa));
	CHECK_OK(posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600));
	CHECK_OK(posix_spawn_file_actions_adddup2(&fa, 1, 2));
	CHECK_OK(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ));
	posix_spawn_file_actions_destroy(&fa);
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
	static char buf[16384];
	FILE *f = fopen(path, "re");
	CHECK(f != NULL);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		vshm_test_fail(__FILE__, __LINE__, "%s is not set", name);
	return v;
}

static void check_png(const char *path, const struct fk_script *s, unsigned frame)
{
	uint8_t *img;
	uint32_t w, h;
	int ct;
	if (tpng_read_rgba(path, &img, &w, &h, &ct) < 0)
		vshm_test_fail(__FILE__, __LINE__, "cannot read %s", path);
	CHECK_EQ(w, s->width);
	CHECK_EQ(h, s->height);
	CHECK_EQ(ct, PNG_COLOR_TYPE_RGB);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t px = fk_pattern(x, y, frame);
			const uint8_t *q = img + ((size_t)y * w + x) * 4;
			CHECK_EQ(q[0], (px >> 16) & 0xff);
			CHECK_EQ(q[1], (px >> 8) & 0xff);
			CHECK_EQ(q[2], px & 0xff);
		}
	free(img);
}

TEST(capture_vshm_writes_exact_pngs)
{
	struct fk_script s = {
		.width = 41, .height = 27, .num_scanouts = 1, .frames = 2, .heartbeats = true
	};
	struct tdir t;
	char path[256];
	tdir_new(&t);
	fk_script_start(&s, t.sock);
	char *argv[] = { (char *)env("VSC_CAPTURE_EXE"),
		         "--socket",
		         t.sock,
		         "--frames",
		         "2",
		         "--out",
		         t.dir,
		         "--timeout",
		         "10",
		         "--role",
		         "rec-1",
		         NULL };
	int rc = run(argv, t.out);
	fk_script_join(&s);
	const char *text = slurp(t.out);
	fprintf(stderr, "%s", text);
	CHECK_EQ(rc, 0);
	CHECK_EQ(s.error, 0);
	CHECK(s.vshm);
	CHECK_EQ(strcmp(s.role, "rec-1"), 0);
	CHECK_EQ(s.last_release, 3);
	CHECK(strstr(text, "frame scanout=0 seq=1 size=41x27") != NULL);
	CHECK(strstr(text, "frame scanout=0 seq=3 size=41x27") != NULL);
	CHECK(strstr(text, "dropped=1") != NULL); /* seq 1 -> 3 */
	CHECK(strstr(text, "summary frames=2 written=2 dropped=1") != NULL);
	CHECK(strstr(text, "flush_latency_p99_us=") != NULL);
	snprintf(path, sizeof(path), "%s/scanout0-1.png", t.dir);
	check_png(path, &s, 0);
	snprintf(path, sizeof(path), "%s/scanout0-3.png", t.dir);
	check_png(path, &s, 1);
	tdir_free(&t);
}

TEST(capture_qemu_mode)
{
	struct fk_script s = { .width = 20, .height = 9, .num_scanouts = 1, .frames = 1 };
	struct tdir t;
	char path[256];
	tdir_new(&t);
	fk_script_start(&s, t.sock);
	char *argv[] = { (char *)env("VSC_CAPTURE_EXE"),
		         "--socket",
		         t.sock,
		         "--qemu-mode",
		         "--out",
		         t.dir,
		         "--timeout",
		         "10",
		         NULL };
	int rc = run(argv, t.out);
	fk_script_join(&s);
	const char *text = slurp(t.out);
	fprintf(stderr, "%s", text);
	CHECK_EQ(rc, 0);
	CHECK(!s.vshm);
	snprintf(path, sizeof(path), "%s/scanout0-1.png", t.dir);
	check_png(path, &s, 0);
	tdir_free(&t);
}

TEST(capture_timeout_and_bad_options)
{
	struct tdir t;
	tdir_new(&t);
	const char *exe = env("VSC_CAPTURE_EXE");
	char *bad1[] = { (char *)exe, NULL };
	char *bad2[] = { (char *)exe, "--socket", t.sock, "--scanouts", "16", NULL };
	char *bad3[] = { (char *)exe, "--socket", t.sock, "--frames", "x", NULL };
	char *bad4[] = { (char *)exe, "--socket", t.sock, "--role", "no spaces", NULL };
	char *bad5[] = { (char *)exe, "--socket", t.sock, "--every", "0", NULL };
	CHECK_EQ(run(bad1, t.out), 2);
	CHECK_EQ(run(bad2, t.out), 2);
	CHECK_EQ(run(bad3, t.out), 2);
	CHECK_EQ(run(bad4, t.out), 2);
	CHECK_EQ(run(bad5, t.out), 2);
	/* Nobody listening: an error. */
	char *noconn[] = { (char *)exe, "--socket", t.sock, "--timeout", "1", NULL };
	CHECK_EQ(run(noconn, t.out), 1);
	/* A daemon that never sends anything: the timeout. */
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	CHECK(strlen(t.sock) < sizeof(a.sun_path));
	memcpy(a.sun_path, t.sock, strlen(t.sock) + 1);
	CHECK_OK(bind(lfd, (struct sockaddr *)&a, sizeof(a)));
	CHECK_OK(listen(lfd, 1));
	char *silent[] = { (char *)exe, "--socket", t.sock, "--timeout", "0.3", NULL };
	CHECK_EQ(run(silent, t.out), 1);
	CHECK(strstr(slurp(t.out), "timeout") != NULL);
	close(lfd);
	tdir_free(&t);
}

static uint32_t crc32_bytes(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

TEST(doc_consumer_against_fake_daemon)
{
	struct fk_script s = {
		.width = 50, .height = 30, .num_scanouts = 1, .frames = 1, .heartbeats = true
	};
	struct tdir t;
	char crc_hex[16], bad_hex[16];
	uint32_t crc = 0;
	for (uint32_t y = 0; y < s.height; y++)
		for (uint32_t x = 0; x < s.width; x++) {
			uint32_t px = fk_pattern(x, y, 0);
			crc = crc32_bytes(crc, (const uint8_t *)&px, 4);
		}
	snprintf(crc_hex, sizeof(crc_hex), "%08x", crc);
	snprintf(bad_hex, sizeof(bad_hex), "%08x", crc ^ 1);

	tdir_new(&t);
	fk_script_start(&s, t.sock);
	char *argv[] = { (char *)env("VSC_PYTHON"),
		         (char *)env("VSC_DOC_CONSUMER"),
		         t.sock,
		         "--scanout",
		         "0",
		         "--expect-crc32",
		         crc_hex,
		         NULL };
	int rc = run(argv, t.out);
	fk_script_join(&s);
	fprintf(stderr, "%s", slurp(t.out));
	CHECK_EQ(rc, 0);
	CHECK_EQ(s.error, 0);
	CHECK_EQ(s.last_release, 1);
	CHECK_EQ(strcmp(s.role, "doc-consumer"), 0);

	/* A wrong expectation must fail. */
	fk_script_start(&s, t.sock);
	argv[6] = bad_hex;
	CHECK_EQ(run(argv, t.out), 1);
	fk_script_join(&s);
	tdir_free(&t);
}
