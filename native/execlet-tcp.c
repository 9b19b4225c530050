/*
 * execlet-tcp.node: what the kernel knows of a TCP connection's peer, for telling a client that
 * is there from one that is gone.
 *
 * A WebSocket ping answers only for a client that reads: one that has stopped reading (kubectl
 * piped into `less`, a suspended client, a terminal that scrolls slowly) holds its pong behind the
 * output the agent sent before the ping, exactly like a client whose machine vanished. Its kernel
 * still tells them apart: a live peer acknowledges every segment, and answers the window probes
 * the agent's kernel sends while the peer's receive buffer is full; a vanished one answers
 * nothing.
 *
 *   tcpInfo(fd) -> { inFlight, notSent, sinceLastAckMs, probes }
 *
 * From getsockopt(TCP_INFO): the segments sent and not yet acknowledged, the bytes queued in the
 * kernel and not yet sent (held back by the peer's window), the milliseconds since the last
 * acknowledgement came from the peer, and the window probes sent since then (every
 * acknowledgement resets the count). Throws an Error with `errno` where the fd is not a TCP socket
 * (EOPNOTSUPP for a unix socket).
 * tcpi_notsent_bytes needs Linux 4.6; an older kernel's shorter answer is refused (EPROTO).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/tcp.h> /* the kernel's struct tcp_info: glibc's <netinet/tcp.h> has an older one */
#include <netinet/in.h>
#include <node_api.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "napi-errno.h"

static void set_uint(napi_env env, napi_value object, const char *name, uint32_t value) {
	napi_value number;
	napi_create_uint32(env, value, &number);
	napi_set_named_property(env, object, name, number);
}

static napi_value tcp_info(napi_env env, napi_callback_info info) {
	size_t argc = 1;
	napi_value argv[1];
	int32_t fd;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
		napi_throw_type_error(env, NULL, "tcpInfo(fd): fd must be a number");
		return NULL;
	}
	struct tcp_info tcp;
	socklen_t length = sizeof tcp;
	memset(&tcp, 0, sizeof tcp);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcp, &length) != 0) return throw_errno(env, "tcpInfo: getsockopt(TCP_INFO)", errno);
	if (length < offsetof(struct tcp_info, tcpi_notsent_bytes) + sizeof tcp.tcpi_notsent_bytes) return throw_errno(env, "tcpInfo: the kernel's TCP_INFO has no tcpi_notsent_bytes (Linux 4.6 or later)", EPROTO);
	napi_value result;
	napi_create_object(env, &result);
	set_uint(env, result, "inFlight", tcp.tcpi_unacked);
	set_uint(env, result, "notSent", tcp.tcpi_notsent_bytes);
	set_uint(env, result, "sinceLastAckMs", tcp.tcpi_last_ack_recv);
	set_uint(env, result, "probes", tcp.tcpi_probes);
	return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
	napi_value fn;
	napi_create_function(env, "tcpInfo", NAPI_AUTO_LENGTH, tcp_info, NULL, &fn);
	napi_set_named_property(env, exports, "tcpInfo", fn);
	return exports;
}
