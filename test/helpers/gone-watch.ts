// Watches a WebSocketChannels for its client being taken for gone, ignoring the client's input:
// `goneNow` resolves then (with the time, from Date.now()), `reason()` says why ('' until then).
// droppedCount() reads this process's execlet_clients_dropped_total for one reason.
import { metrics } from '../../src/metrics.js';
import type { WebSocketChannels } from '../../src/protocol/channel-connection.js';

export async function droppedCount(reason: string): Promise<number> {
  return (await metrics.clientsDropped.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

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
