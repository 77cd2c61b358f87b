import { parseArgs } from 'node:util';
import { ExitCode } from './errors.js';

/**
 * The command line of `baton agent` and `baton coordinator`: `[--config FILE] [--help]`.
 * `--help` prints `usage` and exits 0; anything else unknown prints the error and `usage`
 * and exits with the usage code.
 */
export function parseDaemonArgs(
  argv: string[],
  usage: string,
  output: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
): { run: true; configPath: string | undefined } | { run: false; exitCode: number } {
  try {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } });
    if (values.help) {
      output.stdout.write(`${usage}\n`);
      return { run: false, exitCode: ExitCode.ok };
    }
    return { run: true, configPath: values.config };
  } catch (error) {
    output.stderr.write(`${(error as Error).message}\n${usage}\n`);
    return { run: false, exitCode: ExitCode.usage };
  }
}
