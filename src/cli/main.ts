#!/usr/bin/env node
// Entry point of the `execlet` command: dispatches to serve, version and help.
import { ConfigError } from '../config/load.js';
import { CredentialsError } from '../auth/local-credentials.js';
import { BackendError } from '../backend/types.js';
import { EXECLET_VERSION } from '../version.js';
import { MAIN_HELP, serveHelp } from './help.js';
import { serveCommand } from './serve.js';

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'version':
    case '--version':
      process.stdout.write(`execlet ${EXECLET_VERSION}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      process.stdout.write(rest[0] === 'serve' ? serveHelp() : MAIN_HELP);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`execlet: unknown command "${command}"\n\n${MAIN_HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof CredentialsError || err instanceof BackendError) {
      process.stderr.write(`execlet: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`execlet: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
