#!/usr/bin/env node
// Entry point of the `execlet` command. V8's heap is sized before any other module is
// loaded (loading them is what would grow it), then the command line runs (cli.ts).
import './heap-sizing.js';
import { holdReloadSignal } from './early-reload-signal.js';

// A SIGHUP while the agent starts is held for it (early-reload-signal.ts), not the end of it.
if (process.argv[2] === 'serve') holdReloadSignal();
await import('./cli.js');
