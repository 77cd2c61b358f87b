import { spawn } from 'node:child_process';
import { BatonError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { HookRunner } from '../ports.js';

export class HookTimeoutError extends BatonError {
  constructor(command: string, timeoutMs: number) {
    super('HOOK_TIMEOUT', `hook ${JSON.stringify(command)} did not finish within ${timeoutMs} ms`);
  }
}

/** Runs hook commands with /bin/sh; a hook that outlives its timeout is killed (its whole process group). */
export function createShellHookRunner(options: { logger: Logger; baseEnvironment: Record<string, string> }): HookRunner {
  return {
    run(command, timeoutMs, environment) {
      return new Promise<number>((resolve, reject) => {
        const child = spawn('/bin/sh', ['-c', command], {
          env: { ...options.baseEnvironment, ...environment },
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        });
        const output: string[] = [];
        child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
        const timer = setTimeout(() => {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          reject(new HookTimeoutError(command, timeoutMs));
        }, timeoutMs);
        child.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          options.logger.info({ hook: command, exitCode: code, signal, output: output.join('').slice(-2_000) }, 'hook finished');
          resolve(code ?? 128);
        });
      });
    },
  };
}
