// Watches files for the ways they are replaced in practice, for the settings that are re-read while
// the agent runs (the token file, the serving certificate): an editor or tool writing a temporary
// file and renaming it over, and a mounted Kubernetes secret or configMap, whose files are
// symlinks through a `..data` link that the kubelet swaps. Directories are watched, not the files.
import { watch as watchFs, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/** The link the kubelet swaps atomically when a mounted secret or configMap changes. */
const KUBERNETES_DATA_LINK = '..data';
/** Changes within this long of each other are one change (a rename comes with several events). */
const WATCH_DEBOUNCE_MS = 100;

/**
 * Calls `onChange` once after any of `files` (or a `..data` link beside them) changed, debounced by
 * ~100 ms; `onError` when a watcher fails later. Throws when a directory cannot be watched. Returns
 * a function that stops watching (safe to call more than once); until it is called the watchers
 * keep the process alive, like any fs.watch.
 */
export function watchFiles(files: string[], onChange: () => void, onError: (err: Error) => void): () => void {
  const names = new Map<string, Set<string>>();
  for (const file of files) {
    const directory = dirname(file);
    if (!names.has(directory)) names.set(directory, new Set([KUBERNETES_DATA_LINK]));
    names.get(directory)!.add(basename(file));
  }
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const watchers: FSWatcher[] = [];
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    for (const watcher of watchers) watcher.close();
  };
  const changedNow = (): void => {
    timer = null;
    if (!stopped) onChange();
  };
  for (const [directory, watched] of names) {
    let watcher: FSWatcher;
    try {
      watcher = watchFs(directory, { persistent: true }, (_event, filename) => {
        if (stopped) return;
        // Some platforms do not report the name; then any change in the directory may be ours.
        if (filename !== null && !watched.has(filename.toString())) return;
        if (timer !== null) clearTimeout(timer);
        timer = setTimeout(changedNow, WATCH_DEBOUNCE_MS);
      });
    } catch (err) {
      stop();
      throw new Error(`cannot watch the directory ${directory} for changes: ${(err as Error).message}`);
    }
    watcher.on('error', (err: Error) => {
      if (!stopped) onError(new Error(`watching the directory ${directory} failed: ${err.message}`));
    });
    watchers.push(watcher);
  }
  return stop;
}
