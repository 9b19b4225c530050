// mkdir -p, without Node.js's recursive mkdirSync: that one retries for ever where the kernel
// answers ENOENT for a directory whose parent exists (under /proc: `--state-dir /proc/x` hung the
// agent at full CPU). Here each missing directory is made once, from the first that exists down, and
// the first error is thrown as the system gave it.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Makes `path` and any missing parents with `mode`; does nothing for a directory that exists, and throws ENOTDIR for anything else there. */
export function makeDirectories(path: string, mode: number): void {
  const missing: string[] = [];
  // From `path` up to the first that exists (whatever it is: a file there fails the mkdir below it).
  for (let current = resolve(path); !exists(current); current = dirname(current)) {
    missing.push(current);
    if (dirname(current) === current) break;
  }
  for (const directory of missing.reverse()) {
    try {
      mkdirSync(directory, { mode });
    } catch (err) {
      // Made meanwhile by someone else: as good (checked below). A dangling symbolic link is not.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  // What is there must be a directory (a file, or a link to nothing, is not).
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    // a dangling link: not a directory
  }
  if (!isDirectory) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), { code: 'ENOTDIR', path, syscall: 'mkdir' });
}
