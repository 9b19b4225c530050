// Progress of a long scenario on stderr: each step as it ends, with the seconds it took — where a
// run's minutes go, for keeping the whole run under its 5 minutes.

/** Returns `step(what)`, which writes "bench: SCENARIO: WHAT in N s" for the time since the last step (or since this call). */
export function stepTimer(scenario: string): (what: string) => void {
  let since = performance.now();
  return (what) => {
    const now = performance.now();
    process.stderr.write(`bench: ${scenario}: ${what} in ${((now - since) / 1000).toFixed(1)} s\n`);
    since = now;
  };
}
