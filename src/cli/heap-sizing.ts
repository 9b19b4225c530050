// Sizes V8's heap for a daemon that is idle most of its life and streams output when it is not.
//
// Young generation: start-up's burst of module loading would grow it from 1 MiB to 16 MiB
// semi-spaces, which then stay committed — +15 MB of RSS on every node — until V8's memory reducer
// shrinks them after seconds of quiet. So growth is off while the agent starts (this module is
// imported first by main.ts, before anything else is loaded) and back on once it serves: under
// load, a young generation that grows keeps objects out of the old generation and its longer pauses
// (500 busy shells: p99 echo 24 ms without growth).
//
// Old generation: V8 sets the next full collection's threshold from what survived the last one,
// times a factor it derives from how fast collection is against allocation (1.1–4×). An agent
// streaming output allocates fast (a buffer per read), so each full collection under load sets a
// low factor: with ~16 MB live the threshold sat at 27 MB, V8 started marking again after every
// scavenge, and a 512 MB transfer ran 17–25 full collections on its helper threads, each freeing
// next to nothing — 4.3–5.8 CPU s per GB against 2.2–3.4 for a bare relay (bench/README.md). Once
// the agent serves, the factor is fixed at 3×: the old generation may grow to three times what
// survived before it is collected again (the same transfer: 0–1 full collections). Start-up and the
// idle agent are not affected: nothing is collected then that the setting would delay.
import { setFlagsFromString } from 'node:v8';

/** V8's default growth factor of the young generation. */
const DEFAULT_SEMI_SPACE_GROWTH_FACTOR = 2;
/** How much the old generation may grow past what survived the last full collection, once serving. */
export const OLD_GENERATION_GROWTH_PERCENT = 200;

setFlagsFromString('--semi-space-growth-factor=1');

/** Lets the young generation grow again (V8's default), and gives the old one its headroom, once start-up is over. */
export function allowHeapGrowth(): void {
  setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_SEMI_SPACE_GROWTH_FACTOR}`);
  setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWTH_PERCENT}`);
}
