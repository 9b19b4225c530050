// Sizes V8's young generation for a daemon that is idle most of its life. Start-up's burst of
// module loading would grow it from 1 MiB to 16 MiB semi-spaces, which then stay committed — +15 MB
// of RSS on every node — until V8's memory reducer shrinks them after seconds of quiet. So growth is
// off while the agent starts (this module is imported first by main.ts, before anything else is
// loaded) and back on once it serves: under load, a young generation that grows keeps objects out
// of the old generation and its longer pauses (500 busy shells: p99 echo 24 ms without growth).
import { setFlagsFromString } from 'node:v8';

/** V8's default growth factor. */
const DEFAULT_GROWTH_FACTOR = 2;

setFlagsFromString('--semi-space-growth-factor=1');

/** Lets the young generation grow again (V8's default), once start-up is over. */
export function allowYoungGenerationGrowth(): void {
  setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
}
