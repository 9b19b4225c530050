/*
 * execlet-nsenter: runs a command in the namespaces of a host process, in ONE exec.
 *
 *   execlet-nsenter --target PID --ns NAME[,NAME...] [--toolbox] -- COMMAND [ARG...]
 *   execlet-nsenter --standby ["      "]    (those arguments, and more, come on stdin: see below)
 *
 * NAME is a file of /proc/PID/ns: user, cgroup, ipc, uts, net, pid, mnt. It replaces the agent's
 * former chain `setpriv --pdeathsig KILL -- nsenter --pid -- setpriv … nsenter --mount … --
 * [unshare --mount-proc --] COMMAND` (five execs of dynamic binaries, ~6 ms) and behaves like it:
 *
 *  - PR_SET_PDEATHSIG=SIGKILL on every process it makes, re-armed after each fork and credential
 *    change (both clear it), each time followed by a check that the parent is still there: if the
 *    agent is killed, the command dies with it.
 *  - Every /proc/PID/ns file is opened (O_CLOEXEC) before any namespace is entered, then they are
 *    entered in util-linux nsenter's order: cgroup, ipc, uts, net, pid, mnt, errors ignored, then
 *    user and whatever failed, errors reported (so entering a user namespace works both to gain and
 *    to drop privileges). A user namespace that is already ours is skipped (setns would say EINVAL);
 *    after entering one, the credentials become root of that namespace, as nsenter's default.
 *  - The mount namespace puts the root and working directory at its root; chdir("/") says so.
 *  - The pid namespace applies to children only: with `pid`, it forks, and the parent waits and then
 *    exits with the child's code, or kills itself with the signal that killed the child, as
 *    nsenter's parent does; unlike it, it does not stop when the child stops (a child continued
 *    alone would leave it stopped and the session without an end). Unlike nsenter's, the waiting parent
 *    ignores SIGHUP, SIGINT, SIGQUIT and SIGTERM: the agent ends a session by signalling the whole
 *    process tree (SIGHUP, then SIGKILL after a grace period) and a terminal signals its foreground
 *    group (Ctrl-C), so the command gets those signals itself and decides; a parent that died of
 *    them first would SIGKILL the command through its death signal, cutting short a shell's HUP
 *    trap or an editor's Ctrl-C. SIGKILL still ends both.
 *  - --toolbox (unshare --mount-proc): in the process that runs COMMAND (inside the pid namespace),
 *    a new mount namespace, "/" made recursively private, a fresh proc mounted on /proc.
 *  - COMMAND is run with execvp(3) and the PATH of the environment given: no shell command line.
 *    stdin/stdout/stderr are left as they are (pipes or the pty); nothing else is passed on.
 *
 * Exit status, as env(1) and nsenter report them:
 *   125  its own errors: bad arguments (the message names the problem), a namespace that cannot
 *        be opened or entered, fork, mount or credential failures
 *   126  COMMAND was found but could not be run (permission, format)
 *   127  COMMAND was not found
 *   otherwise COMMAND's status; a COMMAND killed by signal N kills this process with N too.
 *
 * Build: cc -O2 -static -Wall -Wextra -Werror (native/build.sh, run by `npm run build`). Static, so
 * one exec costs no dynamic loading and it runs in any image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_OWN_ERROR 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127
#define USAGE "usage: execlet-nsenter --target PID --ns NAME[,NAME...] [--toolbox] -- COMMAND [ARG...]"

/* In the order they are entered (user first in this table, but entered last: see enter_all). */
enum { NS_USER, NS_CGROUP, NS_IPC, NS_UTS, NS_NET, NS_PID, NS_MNT, NS_COUNT };
static struct ns {
	const char *name;
	int type;
	bool wanted;
	int fd;
} namespaces[NS_COUNT] = {
	[NS_USER] = { "user", CLONE_NEWUSER, false, -1 }, [NS_CGROUP] = { "cgroup", CLONE_NEWCGROUP, false, -1 },
	[NS_IPC] = { "ipc", CLONE_NEWIPC, false, -1 },    [NS_UTS] = { "uts", CLONE_NEWUTS, false, -1 },
	[NS_NET] = { "net", CLONE_NEWNET, false, -1 },    [NS_PID] = { "pid", CLONE_NEWPID, false, -1 },
	[NS_MNT] = { "mnt", CLONE_NEWNS, false, -1 },
};

/* How a process checks, after arming PR_SET_PDEATHSIG, that its parent has not died already. */
static pid_t expected_parent;    /* the first process: getppid() must still be this */
static int parent_pipe = -1;     /* the forked child: read end of a pipe only the parent writes to */

/* "execlet-nsenter: MESSAGE" on stderr, and the usage line after an argument error. */
static void report(bool usage, const char *format, va_list args)
{
	fputs("execlet-nsenter: ", stderr);
	vfprintf(stderr, format, args);
	fputs(usage ? "\n" USAGE "\n" : "\n", stderr);
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *format, ...)
{
	va_list args;
	va_start(args, format);
	report(false, format, args);
	va_end(args);
	exit(EXIT_OWN_ERROR);
}

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *format, ...)
{
	va_list args;
	va_start(args, format);
	report(true, format, args);
	va_end(args);
	exit(EXIT_OWN_ERROR);
}

/*
 * Dies with the parent from now on, and at once if it is already gone (it may have died before the
 * prctl). In the forked child, getppid() cannot tell: the parent is outside the child's pid
 * namespace (0), and so is the reaper it would be re-parented to. There the pipe tells: the parent
 * holds its only write end, which the kernel closes (POLLHUP) before it sends the death signal.
 */
static void arm_deathsig(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	bool gone;
	if (parent_pipe >= 0) {
		struct pollfd p = { .fd = parent_pipe, .events = POLLIN };
		int ready;
		do ready = poll(&p, 1, 0);
		while (ready < 0 && errno == EINTR);
		gone = ready != 0;    /* POLLHUP, or an error: no parent to trust */
	} else {
		gone = getppid() != expected_parent;
	}
	if (gone) kill(getpid(), SIGKILL);    /* what the death signal would have done */
}

static pid_t parse_pid(const char *text)
{
	long value = 0;
	if (*text == '\0') usage_error("--target needs a PID, not '%s'", text);
	for (const char *c = text; *c; c++) {
		if (*c < '0' || *c > '9' || value > 99999999) usage_error("--target needs a PID, not '%s'", text);
		value = value * 10 + (*c - '0');
	}
	if (value < 1) usage_error("--target needs a PID, not '%s'", text);
	return (pid_t)value;
}

/* "net,pid,mnt": each a known name, none twice, none empty. */
static void parse_ns_list(const char *list)
{
	for (const char *start = list;;) {
		const char *end = strchrnul(start, ',');
		size_t length = (size_t)(end - start);
		if (length == 0) usage_error("empty namespace name in --ns '%s'", list);
		struct ns *found = NULL;
		for (size_t i = 0; i < NS_COUNT; i++)
			if (strlen(namespaces[i].name) == length && strncmp(namespaces[i].name, start, length) == 0) found = &namespaces[i];
		if (!found) usage_error("unknown namespace '%.*s' in --ns (choose from user, cgroup, ipc, uts, net, pid, mnt)", (int)length, start);
		if (found->wanted) usage_error("namespace '%s' given twice in --ns", found->name);
		found->wanted = true;
		if (*end == '\0') return;
		start = end + 1;
	}
}

static bool same_file(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Two passes, as nsenter: all but user (errors ignored), then user and the rest (errors reported). */
static void enter_all(pid_t target)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = pass == 0 ? NS_USER + 1 : NS_USER; i < NS_COUNT; i++) {
			struct ns *n = &namespaces[i];
			if (n->fd < 0) continue;
			if (setns(n->fd, n->type) != 0) {
				if (pass == 0) continue;
				fail("cannot enter /proc/%d/ns/%s: %s", (int)target, n->name, strerror(errno));
			}
			close(n->fd);
			n->fd = -1;
		}
	}
}

/* The parent of a forked child: waits for it, then ends the way it ended. */
static void __attribute__((noreturn)) wait_and_mirror(pid_t child)
{
	int status;
	/*
	 * Stops are not mirrored (nsenter stops itself with its child, for the job control of a shell
	 * that started it): the agent does no job control, and a child continued alone (kill -CONT from
	 * another shell) would leave this process stopped, its session never ending.
	 */
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) fail("waitpid: %s", strerror(errno));
	}
	if (WIFEXITED(status)) exit(WEXITSTATUS(status));
	int sig = WTERMSIG(status);
	prctl(PR_SET_DUMPABLE, 0);    /* SIGSEGV, SIGABRT…: the child's crash, not a core of ours */
	signal(sig, SIG_DFL);
	sigset_t only;
	sigemptyset(&only);
	sigaddset(&only, sig);
	sigprocmask(SIG_UNBLOCK, &only, NULL);
	kill(getpid(), sig);
	exit(128 + sig);    /* not reached for a signal whose default action is to terminate */
}

/*
 * --standby: the agent starts the helper before it knows what to run, and sends the arguments,
 * environment and which of stdin/stdout/stderr go to /dev/null on stdin when a session needs it:
 * a 4-byte big-endian length, then that many bytes of NUL-terminated strings — the streams to
 * point at /dev/null ("", "0", "12", …), the argument count, the arguments (argv[0] first), then
 * the environment entries. Nothing more is read from stdin: what follows is the command's input.
 * End of input before a request: the agent let the standby go, and it exits 0.
 */
static void read_exactly(void *buffer, size_t length, bool eof_ok)
{
	for (size_t done = 0; done < length;) {
		ssize_t got = read(STDIN_FILENO, (char *)buffer + done, length - done);
		if (got < 0 && errno == EINTR) continue;
		if (got < 0) fail("reading the standby request: %s", strerror(errno));
		if (got == 0) {
			if (done == 0 && eof_ok) exit(0);
			fail("the standby request ended after %zu of %zu bytes", done, length);
		}
		done += (size_t)got;
	}
}

#define MAX_STANDBY_REQUEST (4u << 20)

static char **read_standby_request(int *argc)
{
	unsigned char header[4];
	read_exactly(header, sizeof(header), true);
	size_t length = (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 | header[3];
	if (length == 0 || length > MAX_STANDBY_REQUEST) fail("a standby request of %zu bytes", length);
	char *request = malloc(length + 1);
	if (!request) fail("no memory for a standby request of %zu bytes", length);
	read_exactly(request, length, false);
	request[length] = '\0';
	if (request[length - 1] != '\0') fail("the standby request does not end with a NUL");
	size_t count = 0;
	for (size_t i = 0; i < length; i++) count += request[i] == '\0';
	char **strings = calloc(count + 2, sizeof(char *));
	if (!strings) fail("no memory for a standby request of %zu strings", count);
	for (size_t i = 0, at = 0; i < count; i++) {
		strings[i] = request + at;
		at += strlen(request + at) + 1;
	}
	if (count < 2) fail("the standby request has %zu strings, not the streams and the argument count", count);
	const char *nulls = strings[0];
	char *end;
	errno = 0;
	long args = strtol(strings[1], &end, 10);
	if (errno || *end || args < 1 || (size_t)args > count - 2) fail("the standby request's argument count '%s' is not 1 to %zu", strings[1], count - 2);
	for (const char *stream = nulls; *stream; stream++) {
		if (*stream < '0' || *stream > '2') fail("the standby request names stream '%c', not 0, 1 or 2", *stream);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0 || dup2(null, *stream - '0') < 0) fail("/dev/null for stream %c: %s", *stream, strerror(errno));
		close(null);
	}
	char **arguments = &strings[2];
	environ = &strings[2 + args];    /* up to the NULL that calloc left after the last string */
	char **terminated = calloc((size_t)args + 1, sizeof(char *));
	if (!terminated) fail("no memory for %ld arguments", args);
	memcpy(terminated, arguments, (size_t)args * sizeof(char *));
	*argc = (int)args;
	return terminated;
}

/*
 * A standby shows the session's arguments in ps (/proc/PID/cmdline), as a helper started for it
 * would: they are written over its own, "--standby" and the argument of spaces the agent gave it as
 * room, cut short where they do not fit. Its arguments are one block of memory, from the first
 * byte after argv[0] to the NUL after the last; the kernel shows that block, whose last byte stays
 * a NUL.
 */
static void show_arguments(char **own, int own_count, char **shown, int shown_count)
{
	char *room = own[1], *end = own[own_count - 1] + strlen(own[own_count - 1]) + 1;
	size_t size = (size_t)(end - room), used = 0;
	for (int i = 1; i < shown_count && used + 1 < size; i++) {
		size_t length = strlen(shown[i]);
		if (length > size - used - 1) length = size - used - 1;
		memcpy(room + used, shown[i], length);
		used += length;
		room[used++] = '\0';
	}
	memset(room + used, 0, size - used);
}

static bool all_spaces(const char *text)
{
	while (*text == ' ') text++;
	return *text == '\0';
}

int main(int argc, char *argv[])
{
	expected_parent = getppid();
	arm_deathsig();
	if (argc >= 2 && strcmp(argv[1], "--standby") == 0) {
		if (argc > 3 || (argc == 3 && !all_spaces(argv[2]))) usage_error("--standby takes nothing but an argument of spaces (room for the arguments it is sent)");
		int count;
		char **sent = read_standby_request(&count);
		show_arguments(argv, argc, sent, count);
		argv = sent;
		argc = count;
	}

	pid_t target = 0;
	bool toolbox = false, have_ns = false;
	int i = 1;
	for (;; i++) {
		if (i >= argc) usage_error("missing '--' before the command");
		const char *arg = argv[i];
		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		} else if (strcmp(arg, "--target") == 0) {
			if (target) usage_error("--target given twice");
			if (++i >= argc) usage_error("--target needs a PID");
			target = parse_pid(argv[i]);
		} else if (strcmp(arg, "--ns") == 0) {
			if (have_ns) usage_error("--ns given twice");
			if (++i >= argc) usage_error("--ns needs a list of namespaces");
			parse_ns_list(argv[i]);
			have_ns = true;
		} else if (strcmp(arg, "--toolbox") == 0) {
			if (toolbox) usage_error("--toolbox given twice");
			toolbox = true;
		} else if (arg[0] == '-') {
			usage_error("unknown option '%s'", arg);
		} else {
			usage_error("unexpected argument '%s' before '--' (the command goes after it)", arg);
		}
	}
	if (!target) usage_error("missing --target PID");
	if (!have_ns) usage_error("missing --ns NAME[,NAME...]");
	if (i >= argc) usage_error("missing the command after '--'");
	char **command = &argv[i];

	/* Open everything first: once in the target's mount namespace, its /proc is not the node's. */
	for (size_t n = 0; n < NS_COUNT; n++) {
		if (!namespaces[n].wanted) continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)target, namespaces[n].name);
		namespaces[n].fd = open(path, O_RDONLY | O_CLOEXEC);
		if (namespaces[n].fd < 0) fail("cannot open %s: %s", path, strerror(errno));
	}
	struct ns *user = &namespaces[NS_USER];
	bool groups_dropped = false;
	if (user->fd >= 0 && same_file(user->fd, "/proc/self/ns/user")) {
		close(user->fd);    /* already ours: nothing to enter, and no credentials to change */
		user->fd = -1;
		user->wanted = false;
	}
	if (user->wanted) groups_dropped = setgroups(0, NULL) == 0;    /* tried before and after, as nsenter */
	enter_all(target);
	arm_deathsig();    /* entering a user namespace may have cleared it */
	if (namespaces[NS_MNT].wanted && chdir("/") != 0) fail("chdir /: %s", strerror(errno));

	if (namespaces[NS_PID].wanted) {    /* pid: only children are in the new pid namespace */
		int pipe_fds[2];
		signal(SIGCHLD, SIG_DFL);    /* an inherited SIG_IGN would make waitpid fail */
		if (pipe2(pipe_fds, O_CLOEXEC) != 0) fail("pipe: %s", strerror(errno));
		/* Held back over the fork, so the parent cannot die of one before it ignores them. */
		static const int ending[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM };
		sigset_t held, previous;
		sigemptyset(&held);
		for (size_t s = 0; s < sizeof(ending) / sizeof(ending[0]); s++) sigaddset(&held, ending[s]);
		sigprocmask(SIG_BLOCK, &held, &previous);
		pid_t child = fork();
		if (child < 0) fail("fork: %s", strerror(errno));
		if (child > 0) {
			close(pipe_fds[0]);
			for (size_t s = 0; s < sizeof(ending) / sizeof(ending[0]); s++) signal(ending[s], SIG_IGN);
			sigprocmask(SIG_SETMASK, &previous, NULL);    /* any held one is discarded, now ignored */
			wait_and_mirror(child);    /* keeps the write end open until it exits */
		}
		sigprocmask(SIG_SETMASK, &previous, NULL);    /* the command: dispositions as inherited */
		close(pipe_fds[1]);
		parent_pipe = pipe_fds[0];
		arm_deathsig();    /* fork cleared it */
	}

	if (user->wanted) {    /* root of the namespace entered, as nsenter without --preserve-credentials */
		if (setgroups(0, NULL) != 0 && !groups_dropped) fail("setgroups: %s", strerror(errno));
		if (setgid(0) != 0) fail("setgid 0 in the user namespace: %s", strerror(errno));
		if (setuid(0) != 0) fail("setuid 0 in the user namespace: %s", strerror(errno));
		arm_deathsig();    /* a credential change cleared it */
	}

	if (toolbox) {    /* unshare --mount-proc: this process's own /proc for its pid namespace */
		if (unshare(CLONE_NEWNS) != 0) fail("cannot create a mount namespace: %s", strerror(errno));
		if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("cannot make / private: %s", strerror(errno));
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) != 0) fail("cannot mount proc on /proc: %s", strerror(errno));
	}

	execvp(command[0], command);
	int error = errno;
	fprintf(stderr, "execlet-nsenter: cannot run %s: %s\n", command[0], strerror(error));
	return error == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}
