#!/usr/bin/env node
import { ExitCode } from '../shared/errors.js';
import type { OperatorCommand } from './commands.js';
import { CliError } from './exit.js';

const usage = `usage: baton <command> [options]

Commands:
  coordinator   run the coordinator (leases, rollouts, status page, API)
  agent         run the agent on a Docker host
  version       print the version

Operating a fleet (talk to the coordinator's API):
  status        groups, rollouts, nodes and leases (--json for JSON)
  nodes         the nodes the coordinator knows
  pause GROUP   grant no new lease in GROUP (--reason TEXT)
  resume GROUP  resume a paused GROUP (--reason TEXT)
  abort GROUP   abort GROUP's open rollout (--reason TEXT)
  rollback GROUP  roll GROUP back to its previous completed digest (--reason TEXT)
  retry GROUP   roll out again what a halted, aborted or rolled-back rollout meant to run
  forget NODE   remove a node that is gone for good (--group GROUP)
  drain NODE    take NODE out of service for maintenance, in one of its group's slots (--group, --reason)
  undrain NODE  put a drained NODE back in service (--group GROUP)
  events        the event log (--follow, --group GROUP, --limit N)

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
    case 'status':
    case 'nodes':
    case 'pause':
    case 'resume':
    case 'abort':
    case 'rollback':
    case 'retry':
    case 'forget':
    case 'drain':
    case 'undrain':
    case 'events':
      return runOperator(command, rest);
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

/** Operator commands: one line on stderr and a sysexits code for every expected failure. */
async function runOperator(command: OperatorCommand, rest: string[]): Promise<number> {
  const { runOperatorCommand } = await import('./commands.js');
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // `baton events | head`: a closed pipe ends the command quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      stop.abort();
      process.exit(ExitCode.ok);
    }
  });
  try {
    return await runOperatorCommand(command, rest, process.env, {
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
      signal: stop.signal,
    });
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`baton ${command}: ${error.message}\n`);
      if (error.exitCode === ExitCode.usage) process.stderr.write(`Run 'baton ${command} --help' for usage.\n`);
      return error.exitCode;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
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
