#!/usr/bin/env node
// Entry point of the `execlet` command. V8's young generation is sized before any other module is
// loaded (loading them is what would grow it), then the command line runs (cli.ts).
import './young-generation.js';

await import('./cli.js');
