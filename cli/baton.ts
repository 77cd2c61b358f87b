#!/usr/bin/env node
import { ExitCode } from '../shared/errors.js';

const usage = `usage: baton <command> [options]

Commands:
  coordinator   run the coordinator (leases, rollouts, status page, API)
  agent         run the agent on a Docker host
  version       print the version

Run 'baton <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'coordinator': {
      const { runCoordinator } = await import('../coordinator/main.js');
      return runCoordinator(rest, process.env);
    }
    case 'agent': {
      const { runAgent } = await import('../agent/main.js');
      return runAgent(rest, process.env);
    }
    case 'version':
    case '--version': {
      const { batonVersion } = await import('../shared/version.js');
      process.stdout.write(`${batonVersion}\n`);
      return ExitCode.ok;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${usage}\n`);
      return command === undefined ? ExitCode.usage : ExitCode.ok;
    default:
      process.stderr.write(`baton: unknown command ${JSON.stringify(command)}\n${usage}\n`);
      return ExitCode.usage;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`baton: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = ExitCode.software;
  },
);
