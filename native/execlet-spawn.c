/*
 * execlet-spawn.node: starts a program with posix_spawn, for the nsenter modes' helper.
 *
 * Node's child_process (and node-pty) fork the whole agent to start a program: page tables for
 * ~75 MB or more are copied and every page is write-protected, on the event loop, for every
 * session (measured: 1.3 ms at 57 MB of RSS, 4.3 ms at 190 MB, and more as sessions add memory).
 * glibc's posix_spawn starts the child with vfork semantics instead (CLONE_VM | CLONE_VFORK, its
 * own stack): the agent pauses only until the child has exec'd (~0.2 ms).
 *
 *   spawn(file, argv, envp, cwd, [stdin, stdout, stderr], onExit) -> { pid, fds: [in, out, err] }
 *   spawnAsync(file, argv, envp, cwd, [stdin, stdout, stderr], onExit, onStarted)
 *   spawnPty(file, argv, envp, cwd, cols, rows, onExit) -> { pid, master }
 *   resize(master, cols, rows)
 *
 * spawn: each stdio entry is true for a connected unix socket pair, as child_process makes (the
 * agent's end is returned, -1 otherwise; stdin can be half-closed with shutdown), or false for
 * /dev/null. spawnPty: a new pseudo-terminal with node-pty's settings, the child's controlling
 * terminal and stdio; the agent gets the master, non-blocking. Every other fd is closed in the
 * child. The child starts in a new session (setsid: out of reach of signals meant for the agent),
 * with every signal at its default and none blocked (glibc keeps its two reserved signals
 * ignored). onExit(code, signal) is called once, on the event loop, after the child has been
 * reaped (code: exit status or null; signal: number or null; both null if the child was reaped by
 * someone else). Children are reaped on SIGCHLD, through a libuv signal watcher of this module:
 * each waitpid() names one of its own children, so those of child_process are left to libuv. Only
 * the main thread may call these functions.
 *
 * spawnAsync is spawn with the pause moved off the event loop: posix_spawn runs on a libuv worker
 * thread, and onStarted(error, { pid, fds }) is called on the event loop afterwards. The pause is
 * ~0.2 ms alone but 0.5-1 ms on a busy machine, where the child waits for a CPU before it can
 * exec: for a helper started ahead, the agent need not wait at all. A worker thread lives as long
 * as the process, so the helper's death signal (which follows the thread that started it) still
 * comes only when the agent dies.
 *
 * Needs glibc 2.34 (posix_spawn_file_actions_addclosefrom_np); native/build.sh leaves the module
 * out where it does not compile, and the agent then starts the helper with node-pty and
 * child_process, saying so at start-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include "napi-errno.h"

struct child {
	pid_t pid;
	napi_env env;
	napi_ref on_exit;
	napi_async_context async;
	struct child *next;
};

static struct child *children;
static uv_signal_t sigchld;
static bool sigchld_initialized;
static napi_env watching_env;


/* status < 0: the child was reaped elsewhere, its outcome is unknown. */
static void report_exit(struct child *child, int status) {
	napi_env env = child->env;
	napi_handle_scope scope;
	napi_open_handle_scope(env, &scope);
	napi_value callback, global, args[2];
	napi_get_reference_value(env, child->on_exit, &callback);
	napi_get_global(env, &global);
	if (status >= 0 && WIFEXITED(status)) {
		napi_create_int32(env, WEXITSTATUS(status), &args[0]);
		napi_get_null(env, &args[1]);
	} else if (status >= 0) {
		napi_get_null(env, &args[0]);
		napi_create_int32(env, WTERMSIG(status), &args[1]);
	} else {
		napi_get_null(env, &args[0]);
		napi_get_null(env, &args[1]);
	}
	if (napi_make_callback(env, child->async, global, callback, 2, args, NULL) == napi_pending_exception) {
		napi_value error;
		napi_get_and_clear_last_exception(env, &error);
		napi_fatal_exception(env, error);
	}
	napi_close_handle_scope(env, scope);
	napi_delete_reference(env, child->on_exit);
	napi_async_destroy(env, child->async);
}

static void on_sigchld(uv_signal_t *handle, int signum) {
	(void)handle;
	(void)signum;
	/* Signals merge: every child of ours is checked, each by its own pid. */
	struct child **link = &children;
	while (*link) {
		struct child *child = *link;
		int status;
		pid_t reaped = waitpid(child->pid, &status, WNOHANG);
		if (reaped == child->pid || (reaped < 0 && errno == ECHILD)) {
			*link = child->next;
			report_exit(child, reaped < 0 ? -1 : status);
			free(child);
		} else {
			link = &child->next;
		}
	}
	if (!children) uv_unref((uv_handle_t *)&sigchld);
}

/*
 * Starts the SIGCHLD watcher, once, on the main thread's loop. A worker thread may not spawn: its
 * loop ends with it (the static watcher would outlive it), and a child's death signal follows the
 * thread that started it.
 */
static int start_watching(napi_env env) {
	if (watching_env) return watching_env == env ? 0 : EINVAL;
	uv_loop_t *loop;
	if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop != uv_default_loop()) return EINVAL;
	int err = 0;
	if (!sigchld_initialized) {
		err = uv_signal_init(loop, &sigchld);
		sigchld_initialized = err == 0;
	}
	if (err == 0) err = uv_signal_start(&sigchld, on_sigchld, SIGCHLD);
	if (err != 0) return -err;
	/* Like a libuv process handle, the watcher keeps the loop alive only while a child is running. */
	uv_unref((uv_handle_t *)&sigchld);
	watching_env = env;
	return 0;
}

/* A JS array of strings as a NULL-terminated char*[] (one allocation); NULL on failure. */
static char **string_array(napi_env env, napi_value array) {
	uint32_t count;
	if (napi_get_array_length(env, array, &count) != napi_ok) return NULL;
	size_t *lengths = calloc(count + 1, sizeof *lengths);
	if (!lengths) return NULL;
	size_t bytes = (count + 1) * sizeof(char *);
	for (uint32_t i = 0; i < count; i++) {
		napi_value item;
		if (napi_get_element(env, array, i, &item) != napi_ok || napi_get_value_string_utf8(env, item, NULL, 0, &lengths[i]) != napi_ok) {
			free(lengths);
			return NULL;
		}
		bytes += lengths[i] + 1;
	}
	char **result = malloc(bytes);
	char *text = result ? (char *)(result + count + 1) : NULL;
	for (uint32_t i = 0; result && i < count; i++) {
		napi_value item;
		size_t copied;
		/* Copied into exactly the room measured; a NUL inside an argument is refused, not cut. */
		if (napi_get_element(env, array, i, &item) != napi_ok || napi_get_value_string_utf8(env, item, text, lengths[i] + 1, &copied) != napi_ok ||
		    copied != lengths[i] || strlen(text) != copied) {
			free(result);
			result = NULL;
			break;
		}
		result[i] = text;
		text += lengths[i] + 1;
	}
	if (result) result[count] = NULL;
	free(lengths);
	return result;
}

static bool is_function(napi_env env, napi_value value) {
	napi_valuetype type;
	return napi_typeof(env, value, &type) == napi_ok && type == napi_function;
}

/* What every spawn takes first: file, argv, envp, cwd. */
struct request {
	char file[4096];
	char cwd[4096];
	char **argv;
	char **envp;
};

static void free_request(struct request *request) {
	free(request->argv);
	free(request->envp);
	request->argv = request->envp = NULL;
}

/* Reads args[0..3] into `request`; false (with a JS exception pending) when they are not valid. */
static bool read_request(napi_env env, napi_value *args, struct request *request, const char *usage) {
	size_t length;
	if (napi_get_value_string_utf8(env, args[0], request->file, sizeof request->file, &length) != napi_ok || length >= sizeof request->file - 1 ||
	    napi_get_value_string_utf8(env, args[3], request->cwd, sizeof request->cwd, &length) != napi_ok || length >= sizeof request->cwd - 1) {
		napi_throw_type_error(env, NULL, usage);
		return false;
	}
	request->argv = string_array(env, args[1]);
	request->envp = string_array(env, args[2]);
	if (!request->argv || !request->envp || !request->argv[0]) {
		free_request(request);
		napi_throw_type_error(env, NULL, usage);
		return false;
	}
	return true;
}

/*
 * posix_spawn with what every child gets: a new session, every signal at its default and none
 * blocked, no fd beyond 0-2 (even one the agent inherited without close-on-exec: its own are all
 * close-on-exec), the working directory. Returns 0 or an errno.
 */
static int spawn_child(struct request *request, posix_spawn_file_actions_t *actions, pid_t *pid) {
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	int err = posix_spawn_file_actions_addclosefrom_np(actions, 3);
	if (err == 0) err = posix_spawn_file_actions_addchdir_np(actions, request->cwd);
	if (err == 0) err = posix_spawnattr_setsigdefault(&attr, &all);
	if (err == 0) err = posix_spawnattr_setsigmask(&attr, &none);
	/* glibc runs setsid before the file actions: a terminal they open becomes the controlling one. */
	if (err == 0) err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	if (err == 0) err = posix_spawn(pid, request->file, actions, &attr, request->argv, request->envp);
	posix_spawnattr_destroy(&attr);
	return err;
}

/* Watches a started child for its exit; on failure (out of memory) ends it and returns ENOMEM. */
static int track_child(napi_env env, pid_t pid, napi_value on_exit) {
	struct child *child = calloc(1, sizeof *child);
	napi_value resource_name;
	napi_create_string_utf8(env, "execlet-spawn", NAPI_AUTO_LENGTH, &resource_name);
	bool referenced = child && napi_create_reference(env, on_exit, 1, &child->on_exit) == napi_ok;
	if (!referenced || napi_async_init(env, NULL, resource_name, &child->async) != napi_ok) {
		/* The child is not left running unwatched. */
		if (referenced) napi_delete_reference(env, child->on_exit);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
		}
		free(child);
		return ENOMEM;
	}
	child->pid = pid;
	child->env = env;
	child->next = children;
	children = child;
	uv_ref((uv_handle_t *)&sigchld);
	return 0;
}

static void set_int(napi_env env, napi_value object, const char *name, int32_t number) {
	napi_value value;
	napi_create_int32(env, number, &value);
	napi_set_named_property(env, object, name, value);
}

/*
 * Socket pairs (or /dev/null) for fds 0-2, then spawn_child: the agent's ends in parent_fds, -1
 * where there is none. Returns 0 or an errno (nothing left open). No Node-API: runs on any thread.
 */
static int spawn_with_pipes(struct request *request, const bool pipes[3], int parent_fds[3], pid_t *pid) {
	int err = 0, child_fds[3] = {-1, -1, -1};
	for (int fd = 0; fd < 3; fd++) parent_fds[fd] = -1;
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	for (int fd = 0; fd < 3 && err == 0; fd++) {
		if (!pipes[fd]) {
			err = posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0);
			continue;
		}
		int ends[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
			err = errno;
			break;
		}
		parent_fds[fd] = ends[0];
		child_fds[fd] = ends[1];
		/* dup2 onto 0-2 clears close-on-exec there (glibc does so even when the numbers are equal). */
		err = posix_spawn_file_actions_adddup2(&actions, child_fds[fd], fd);
	}
	if (err == 0) err = spawn_child(request, &actions, pid);
	posix_spawn_file_actions_destroy(&actions);
	for (int fd = 0; fd < 3; fd++) {
		if (child_fds[fd] >= 0) close(child_fds[fd]);
		if (err != 0 && parent_fds[fd] >= 0) {
			close(parent_fds[fd]);
			parent_fds[fd] = -1;
		}
	}
	return err;
}

static void close_fds(int fds[3]) {
	for (int fd = 0; fd < 3; fd++)
		if (fds[fd] >= 0) close(fds[fd]);
}

/* { pid, fds: [in, out, err] } */
static napi_value started_result(napi_env env, pid_t pid, const int parent_fds[3]) {
	napi_value result, fds;
	napi_create_object(env, &result);
	set_int(env, result, "pid", pid);
	napi_create_array_with_length(env, 3, &fds);
	for (uint32_t fd = 0; fd < 3; fd++) {
		napi_value value;
		napi_create_int32(env, parent_fds[fd], &value);
		napi_set_element(env, fds, fd, value);
	}
	napi_set_named_property(env, result, "fds", fds);
	return result;
}

/*
 * What spawn and spawnAsync take first: file, argv, envp, cwd, [stdin, stdout, stderr], onExit
 * (and, for spawnAsync, onStarted). False, with a JS exception pending, when they are not valid.
 */
static bool read_pipe_request(napi_env env, napi_value *args, size_t argc, size_t expected, struct request *request, bool pipes[3], const char *usage) {
	for (uint32_t i = 0; i < 3 && argc == expected; i++) {
		napi_value item;
		if (napi_get_element(env, args[4], i, &item) != napi_ok || napi_get_value_bool(env, item, &pipes[i]) != napi_ok) argc = 0;
	}
	for (size_t i = 5; i < expected && argc == expected; i++)
		if (!is_function(env, args[i])) argc = 0;
	if (argc != expected) {
		napi_throw_type_error(env, NULL, usage);
		return false;
	}
	int err = start_watching(env);
	if (err != 0) {
		throw_errno(env, "spawn: watching SIGCHLD (from the main thread only)", err);
		return false;
	}
	return read_request(env, args, request, usage);
}

static napi_value spawn(napi_env env, napi_callback_info info) {
	static const char usage[] = "spawn(file, argv, envp, cwd, [stdin, stdout, stderr], onExit): strings (of at most 4094 bytes), arrays of strings without NUL bytes (argv not empty), booleans, a function";
	size_t argc = 6;
	napi_value args[6];
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	struct request request;
	bool pipes[3];
	if (!read_pipe_request(env, args, argc, 6, &request, pipes, usage)) return NULL;
	int parent_fds[3];
	pid_t pid = -1;
	int err = spawn_with_pipes(&request, pipes, parent_fds, &pid);
	if (err != 0) {
		napi_value error = throw_errno(env, request.file, err);
		free_request(&request);
		return error;
	}
	free_request(&request);
	err = track_child(env, pid, args[5]);
	if (err != 0) {
		close_fds(parent_fds);
		return throw_errno(env, "spawn: keeping track of the child", err);
	}
	return started_result(env, pid, parent_fds);
}

/* One spawnAsync: what the worker thread needs, and what it leaves for the event loop. */
struct async_spawn {
	napi_async_work work;
	struct request request;
	bool pipes[3];
	napi_ref on_exit;
	napi_ref on_started;
	/* Set on the worker thread. */
	int err;
	pid_t pid;
	int parent_fds[3];
};

static void async_spawn_execute(napi_env env, void *data) {
	(void)env;
	struct async_spawn *job = data;
	job->err = spawn_with_pipes(&job->request, job->pipes, job->parent_fds, &job->pid);
}

static void async_spawn_complete(napi_env env, napi_status status, void *data) {
	struct async_spawn *job = data;
	napi_value on_exit, on_started, global, args[2];
	napi_get_reference_value(env, job->on_exit, &on_exit);
	napi_get_reference_value(env, job->on_started, &on_started);
	napi_get_global(env, &global);
	const char *what = job->request.file;
	if (status != napi_ok && job->err == 0) job->err = ECANCELED; /* not queued to run: never here */
	if (job->err == 0) {
		job->err = track_child(env, job->pid, on_exit);
		if (job->err != 0) what = "spawn: keeping track of the child";
	}
	if (job->err != 0) {
		close_fds(job->parent_fds);
		args[0] = errno_error(env, what, job->err);
		napi_get_undefined(env, &args[1]);
	} else {
		napi_get_null(env, &args[0]);
		args[1] = started_result(env, job->pid, job->parent_fds);
		/* A child that ended before it was tracked had its SIGCHLD handled with nobody to reap it. */
		on_sigchld(&sigchld, SIGCHLD);
	}
	free_request(&job->request);
	napi_delete_reference(env, job->on_exit);
	napi_delete_reference(env, job->on_started);
	napi_delete_async_work(env, job->work);
	free(job);
	/* An exception it throws is left pending: Node.js reports it as uncaught (and the child, already
	 * tracked, and its fds are then the caller's loss: posix-spawn.ts only resolves a promise). */
	napi_call_function(env, global, on_started, 2, args, NULL);
}

/*
 * spawnAsync(file, argv, envp, cwd, [stdin, stdout, stderr], onExit, onStarted): as spawn, but
 * posix_spawn runs on a libuv worker thread; onStarted(error, { pid, fds }) on the event loop.
 * Throws only for invalid arguments.
 */
static napi_value spawn_async(napi_env env, napi_callback_info info) {
	static const char usage[] = "spawnAsync(file, argv, envp, cwd, [stdin, stdout, stderr], onExit, onStarted): strings (of at most 4094 bytes), arrays of strings without NUL bytes (argv not empty), booleans, functions";
	size_t argc = 7;
	napi_value args[7];
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	struct async_spawn *job = calloc(1, sizeof *job);
	if (!job) return throw_errno(env, "spawnAsync", ENOMEM);
	for (int fd = 0; fd < 3; fd++) job->parent_fds[fd] = -1; /* none until the worker has made them */
	if (!read_pipe_request(env, args, argc, 7, &job->request, job->pipes, usage)) {
		free(job);
		return NULL;
	}
	napi_value resource_name;
	napi_create_string_utf8(env, "execlet-spawn", NAPI_AUTO_LENGTH, &resource_name);
	if (napi_create_reference(env, args[5], 1, &job->on_exit) != napi_ok || napi_create_reference(env, args[6], 1, &job->on_started) != napi_ok ||
	    napi_create_async_work(env, NULL, resource_name, async_spawn_execute, async_spawn_complete, job, &job->work) != napi_ok ||
	    napi_queue_async_work(env, job->work) != napi_ok) {
		if (job->work) napi_delete_async_work(env, job->work);
		if (job->on_exit) napi_delete_reference(env, job->on_exit);
		if (job->on_started) napi_delete_reference(env, job->on_started);
		free_request(&job->request);
		free(job);
		return throw_errno(env, "spawnAsync: queueing the spawn", ENOMEM);
	}
	return NULL;
}

/* A terminal size from JS: 1..65535. */
static bool read_size(napi_env env, napi_value value, unsigned short *size) {
	uint32_t number;
	if (napi_get_value_uint32(env, value, &number) != napi_ok || number < 1 || number > 65535) return false;
	*size = (unsigned short)number;
	return true;
}

/* The settings node-pty gives a new terminal (so sessions behave as they did with it). */
static int set_terminal_modes(int master) {
	struct termios t;
	if (tcgetattr(master, &t) != 0) return errno;
	t.c_iflag = ICRNL | IXON | IXANY | IMAXBEL | BRKINT | IUTF8;
	t.c_oflag = OPOST | ONLCR;
	t.c_cflag = CREAD | CS8 | HUPCL;
	t.c_lflag = ICANON | ISIG | IEXTEN | ECHO | ECHOE | ECHOK | ECHOKE | ECHOCTL;
	t.c_cc[VEOF] = 4;
	t.c_cc[VEOL] = 0xff;
	t.c_cc[VEOL2] = 0xff;
	t.c_cc[VERASE] = 0x7f;
	t.c_cc[VWERASE] = 23;
	t.c_cc[VKILL] = 21;
	t.c_cc[VREPRINT] = 18;
	t.c_cc[VINTR] = 3;
	t.c_cc[VQUIT] = 0x1c;
	t.c_cc[VSUSP] = 26;
	t.c_cc[VSTART] = 17;
	t.c_cc[VSTOP] = 19;
	t.c_cc[VLNEXT] = 22;
	t.c_cc[VDISCARD] = 15;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	cfsetispeed(&t, B38400);
	cfsetospeed(&t, B38400);
	return tcsetattr(master, TCSANOW, &t) == 0 ? 0 : errno;
}

/*
 * spawnPty(file, argv, envp, cwd, cols, rows, onExit) -> { pid, master }: the child on a new
 * pseudo-terminal of that size, its controlling terminal, as stdin, stdout and stderr. The agent
 * keeps only the master (close-on-exec); once the child and whatever it started have closed the
 * terminal, reading the master gives what is left, then EIO.
 */
static napi_value spawn_pty(napi_env env, napi_callback_info info) {
	static const char usage[] = "spawnPty(file, argv, envp, cwd, cols, rows, onExit): strings (of at most 4094 bytes), arrays of strings without NUL bytes (argv not empty), sizes 1-65535, a function";
	size_t argc = 7;
	napi_value args[7];
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	struct winsize size = {0};
	if (argc != 7 || !read_size(env, args[4], &size.ws_col) || !read_size(env, args[5], &size.ws_row) || !is_function(env, args[6])) {
		napi_throw_type_error(env, NULL, usage);
		return NULL;
	}
	int err = start_watching(env);
	if (err != 0) return throw_errno(env, "spawnPty: watching SIGCHLD (from the main thread only)", err);
	struct request request;
	if (!read_request(env, args, &request, usage)) return NULL;

	char slave[128];
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0) err = errno;
	/* Non-blocking, so neither reading nor writing it can stall the event loop (libuv sets that only
	 * on a terminal fd it can reopen, which a master is not). */
	int flags = err == 0 ? fcntl(master, F_GETFL) : -1;
	if (err == 0 && (flags < 0 || fcntl(master, F_SETFL, flags | O_NONBLOCK) != 0)) err = errno;
	if (err == 0 && (grantpt(master) != 0 || unlockpt(master) != 0)) err = errno;
	if (err == 0) err = ptsname_r(master, slave, sizeof slave);
	if (err == 0) err = set_terminal_modes(master);
	if (err == 0 && ioctl(master, TIOCSWINSZ, &size) != 0) err = errno;
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	if (err == 0) err = posix_spawn_file_actions_addopen(&actions, 0, slave, O_RDWR, 0);
	if (err == 0) err = posix_spawn_file_actions_adddup2(&actions, 0, 1);
	if (err == 0) err = posix_spawn_file_actions_adddup2(&actions, 0, 2);
#if __GLIBC_PREREQ(2, 35)
	/* Fails the spawn unless the terminal did become the controlling one (not left to glibc's order). */
	if (err == 0) err = posix_spawn_file_actions_addtcsetpgrp_np(&actions, 0);
#endif
	pid_t pid = -1;
	if (err == 0) err = spawn_child(&request, &actions, &pid);
	posix_spawn_file_actions_destroy(&actions);
	if (err != 0) {
		if (master >= 0) close(master);
		napi_value error = throw_errno(env, request.file, err);
		free_request(&request);
		return error;
	}
	free_request(&request);
	err = track_child(env, pid, args[6]);
	if (err != 0) {
		close(master);
		return throw_errno(env, "spawnPty: keeping track of the child", err);
	}
	napi_value result;
	napi_create_object(env, &result);
	set_int(env, result, "pid", pid);
	set_int(env, result, "master", master);
	return result;
}

/* resize(master, cols, rows): the terminal's new size (its foreground group gets SIGWINCH). */
static napi_value resize(napi_env env, napi_callback_info info) {
	size_t argc = 3;
	napi_value args[3];
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	int32_t master;
	struct winsize size = {0};
	if (argc != 3 || napi_get_value_int32(env, args[0], &master) != napi_ok || master < 0 || !read_size(env, args[1], &size.ws_col) || !read_size(env, args[2], &size.ws_row)) {
		napi_throw_type_error(env, NULL, "resize(master, cols, rows): an fd, sizes 1-65535");
		return NULL;
	}
	if (ioctl(master, TIOCSWINSZ, &size) != 0) return throw_errno(env, "resize: TIOCSWINSZ", errno);
	return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
	static const struct { const char *name; napi_callback function; } functions[] = {
		{ "spawn", spawn },
		{ "spawnAsync", spawn_async },
		{ "spawnPty", spawn_pty },
		{ "resize", resize },
	};
	for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
		napi_value fn;
		napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].function, NULL, &fn);
		napi_set_named_property(env, exports, functions[i].name, fn);
	}
	return exports;
}
