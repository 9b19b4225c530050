// The `execlet` command line: dispatches to serve, exec, targets, version and help (run by main.ts).
import { ConfigError } from '../config/load.js';
import { CredentialsError } from '../auth/local-credentials.js';
import { AuditLogError } from '../auth/audit.js';
import { PolicyError } from '../auth/policy.js';
import { TokenFileError } from '../auth/token-file.js';
import { ServingTlsError } from '../auth/serving-tls.js';
import { BackendError } from '../backend/types.js';
import { EXECLET_VERSION } from '../version.js';
import { execCommand } from './exec.js';
import { execHelp, MAIN_HELP, serveHelp, targetsHelp } from './help.js';
import { serveCommand } from './serve.js';
import { targetsCommand } from './targets.js';

/** Client commands end the process once their output is flushed: a stdin left open must not keep it alive. */
const CLIENT_COMMANDS = new Set(['exec', 'targets']);

function helpFor(topic: string | undefined): string | undefined {
  switch (topic) {
    case undefined:
      return MAIN_HELP;
    case 'serve':
      return serveHelp();
    case 'exec':
      return execHelp();
    case 'targets':
      return targetsHelp();
    default:
      return undefined;
  }
}

function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) resolve();
    else stream.write('', () => resolve());
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'exec':
      return execCommand(rest);
    case 'targets':
      return targetsCommand(rest);
    case 'version':
    case '--version':
      process.stdout.write(`execlet ${EXECLET_VERSION}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
    case undefined: {
      const help = helpFor(rest[0]);
      if (help === undefined) {
        process.stderr.write(`execlet: no help for unknown command "${rest[0]}"\n\n${MAIN_HELP}`);
        return 2;
      }
      process.stdout.write(help);
      return command === undefined ? 2 : 0;
    }
    default:
      process.stderr.write(`execlet: unknown command "${command}"\n\n${MAIN_HELP}`);
      return 2;
  }
}

const argv = process.argv.slice(2);
main(argv).then(
  async (code) => {
    process.exitCode = code;
    if (CLIENT_COMMANDS.has(argv[0] ?? '')) {
      await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
      process.exit(code);
    }
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof CredentialsError || err instanceof ServingTlsError || err instanceof BackendError) {
      process.stderr.write(`execlet: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof TokenFileError || err instanceof PolicyError || err instanceof AuditLogError) {
      const setting = err instanceof TokenFileError ? 'tokenFile, --token-file' : err instanceof PolicyError ? 'policyFile, --policy-file' : 'audit.file, --audit-file';
      process.stderr.write(`execlet: ${err.message}\n(setting ${setting})\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`execlet: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
