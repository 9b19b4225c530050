// Watches a WebSocketChannels for its client being taken for gone, ignoring the client's input:
// `goneNow` resolves then (with the time, from Date.now()), `reason()` says why ('' until then).
import type { WebSocketChannels } from '../../src/protocol/channel-connection.js';

export function watchGone(channels: WebSocketChannels): { goneNow: Promise<number>; reason: () => string } {
  let reason = '';
  const goneNow = new Promise<number>((resolve) =>
    channels.attach({
      stdin: () => undefined,
      stdinEnd: () => undefined,
      resize: () => undefined,
      clientGone: (why) => {
        reason = why;
        resolve(Date.now());
      },
    }),
  );
  return { goneNow, reason: () => reason };
}
