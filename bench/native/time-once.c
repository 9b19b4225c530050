/*
 * time-once COMMAND [ARG...]: runs COMMAND once, its stdin, stdout and stderr on /dev/null, and
 * prints how long it took, in milliseconds, from just before posix_spawn until waitpid returns.
 * The bench's process baselines are timed by this small program rather than by Node.js: a Node
 * process forks its whole address space to spawn, which would add milliseconds to the baseline
 * that the command itself does not cost. Exits with the command's exit status (128+n when killed
 * by signal n; 127 when it cannot run).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: time-once COMMAND [ARG...]\n");
    return 2;
  }
  posix_spawn_file_actions_t stdio;
  posix_spawn_file_actions_init(&stdio);
  for (int fd = 0; fd <= 2; fd++) posix_spawn_file_actions_addopen(&stdio, fd, "/dev/null", O_RDWR, 0);
  double started = now_ms();
  pid_t pid;
  int err = posix_spawnp(&pid, argv[1], &stdio, NULL, &argv[1], environ);
  if (err != 0) {
    fprintf(stderr, "time-once: cannot run %s: %s\n", argv[1], strerror(err));
    return 127;
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("time-once: waitpid");
      return 127;
    }
  }
  printf("%.3f\n", now_ms() - started);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 127;
}
