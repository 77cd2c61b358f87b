import { spawn } from 'node:child_process';
import { BatonError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { HookRunner } from '../ports.js';
import { TailBuffer } from './tail-buffer.js';

export class HookTimeoutError extends BatonError {
  constructor(command: string, timeoutMs: number) {
    super('HOOK_TIMEOUT', `hook ${JSON.stringify(command)} did not finish within ${timeoutMs} ms`);
  }
}

/**
 * How much of a hook's output the agent keeps, per stream and per run: the last 8 KiB of stdout and
 * the last 8 KiB of stderr, logged when the hook ends. Older output is dropped as it arrives, so a
 * hook that writes gigabytes costs no more memory than one that writes a line.
 */
export const hookOutputTailBytes = 8 * 1024;

/** After a hook exits, how long its pipes may stay open before the run ends without the rest. */
const exitGraceMs = 200;

export interface ShellHookRunnerOptions {
  logger: Logger;
  baseEnvironment: Record<string, string>;
  /** Per stream; default hookOutputTailBytes. */
  outputTailBytes?: number;
}

/** Runs hook commands with /bin/sh; a hook that outlives its timeout is killed (its whole process group). */
export function createShellHookRunner(options: ShellHookRunnerOptions): HookRunner {
  const tailBytes = options.outputTailBytes ?? hookOutputTailBytes;
  return {
    run(command, timeoutMs, environment) {
      return new Promise<number>((resolve, reject) => {
        const child = spawn('/bin/sh', ['-c', command], {
          env: { ...options.baseEnvironment, ...environment },
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        });
        const stdout = new TailBuffer(tailBytes);
        const stderr = new TailBuffer(tailBytes);
        child.stdout.on('data', (chunk: Buffer) => stdout.append(chunk));
        child.stderr.on('data', (chunk: Buffer) => stderr.append(chunk));
        const timer = setTimeout(() => {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          reject(new HookTimeoutError(command, timeoutMs));
        }, timeoutMs);
        child.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        let finished = false;
        const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
          if (finished) return;
          finished = true;
          // A background process the hook left behind may hold the pipes open: stop reading them.
          child.stdout.destroy();
          child.stderr.destroy();
          options.logger.info(
            {
              hook: command,
              exitCode: code,
              signal,
              stdout: stdout.text(),
              stderr: stderr.text(),
              stdoutBytes: stdout.totalBytes,
              stderrBytes: stderr.totalBytes,
            },
            'hook finished',
          );
          resolve(code ?? 128);
        };
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          // The pipes usually close right after the exit, with the output's last bytes; wait for
          // that, but not for a background process that keeps them open.
          const grace = setTimeout(() => finish(code, signal), exitGraceMs);
          child.once('close', () => {
            clearTimeout(grace);
            finish(code, signal);
          });
        });
      });
    },
  };
}
