// Runs the paths of a latency scenario in rounds: each round runs every path once, in an order
// shuffled anew every round (from a fixed seed, so a run can be repeated). Rounds alternate the paths
// so that drift in the machine's load hits all of them alike; the shuffle keeps the aftermath of one
// path from always falling on the same other path. A `docker exec` leaves the engine busy for a few
// ms after the CLI has exited, and a run that starts right then is slower: in a fixed order, the
// path after the CLI would pay that in every round and the others never.
import { seededRandom } from './stats.js';

export type BenchPath = () => Promise<void>;

export async function runInRounds(rounds: number, paths: BenchPath[], seed = 0x5eed): Promise<void> {
  const random = seededRandom(seed);
  const order = paths.map((_, index) => index);
  for (let round = 0; round < rounds; round++) {
    // Fisher–Yates
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const index of order) await paths[index]!();
  }
}
