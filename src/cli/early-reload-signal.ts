// SIGHUP while the agent starts: Node.js ends a process on a SIGHUP nobody listens for, and the
// agent's reload handler exists only once it serves. A reload asked for meanwhile (a config tool
// that rewrote the token file, `systemctl reload` during a restart) is held from the moment this
// module runs and carried out once the agent is up, instead of killing the starting agent.

let held = false;
const hold = (): void => {
  held = true;
};

/** Starts holding SIGHUP. Only `execlet serve` does this: for the client commands a hang-up ends them. */
export function holdReloadSignal(): void {
  process.on('SIGHUP', hold);
}

/**
 * Hands SIGHUP to `reload` from now on, and calls it once at once if a SIGHUP came while starting
 * (after the files were read, maybe: reading them again is what was asked for).
 */
export function releaseReloadSignal(reload: () => void): void {
  process.on('SIGHUP', reload);
  process.off('SIGHUP', hold);
  if (held) {
    held = false;
    reload();
  }
}
