/*
 * napi-errno.h: the Error the Node-API modules (execlet-spawn.c, execlet-tcp.c) report a failed
 * system call with: "WHAT: strerror(err)", its errno in .errno.
 */
#ifndef EXECLET_NAPI_ERRNO_H
#define EXECLET_NAPI_ERRNO_H
#include <node_api.h>
#include <stdio.h>
#include <string.h>

/* An Error "WHAT: strerror(err)" with .errno, not thrown. */
static inline napi_value errno_error(napi_env env, const char *what, int err) {
	char message[4608];
	snprintf(message, sizeof message, "%s: %s", what, strerror(err));
	napi_value msg, code, error;
	napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
	napi_create_int32(env, err, &code);
	napi_create_error(env, NULL, msg, &error);
	napi_set_named_property(env, error, "errno", code);
	return error;
}

static inline napi_value throw_errno(napi_env env, const char *what, int err) {
	napi_throw(env, errno_error(env, what, err));
	return NULL;
}
#endif
