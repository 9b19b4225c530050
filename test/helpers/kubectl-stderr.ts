// What kubectl wrote to stderr, without client-go's log of its own stream-registration race.
//
// client-go's WebSocket executor starts reading the connection before it has registered its
// streams. The "connection established" marker every upstream server sends right after the
// upgrade (an empty frame on the lowest writable channel: kube-exec-protocol.md) can be read first;
// client-go then logs "Unknown stream id 1, discarding message" (klog, to stderr) and drops it.
// Nothing is lost: the frame is empty, and a data frame dropped that way would fail the tests' own
// assertions on stdout or stderr. Only that line, for the output channels, is taken out.
const STREAM_RACE_LOG = /^E\d{4} [\d:.]+\s+\d+ websocket\.go:\d+\] Unknown stream id [12], discarding message\n/gm;

export function kubectlStderr(stderr: Buffer | string): string {
  return stderr.toString().replace(STREAM_RACE_LOG, '');
}
