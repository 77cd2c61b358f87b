import { describe, expect, it } from 'vitest';
import { captureLogger } from '../update/testing/fakes.js';
import { createShellHookRunner, HookTimeoutError, hookOutputTailBytes } from './shell.js';

/** Real /bin/sh hooks: the output the agent keeps of them is bounded. */

const MiB = 1024 * 1024;

function runner() {
  const { logger, lines } = captureLogger();
  const hooks = createShellHookRunner({ logger, baseEnvironment: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  const finished = () => lines.filter((l) => l.msg === 'hook finished');
  return { hooks, finished };
}

describe('shell hooks: bounded output', () => {
  it('a hook that writes 64 MiB to stdout and 16 MiB to stderr: the log keeps the last 8 KiB of each, with the totals', async () => {
    const { hooks, finished } = runner();
    const heapBefore = process.memoryUsage().heapUsed;
    const code = await hooks.run(
      'head -c 67108864 /dev/zero | tr "\\0" o; echo; echo "last line of stdout"; head -c 16777216 /dev/zero | tr "\\0" e >&2; echo "last line of stderr" >&2',
      60_000,
      {},
    );
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(code).toBe(0);
    const [line] = finished();
    expect(line).toMatchObject({ exitCode: 0, stdoutBytes: 64 * MiB + 1 + 20, stderrBytes: 16 * MiB + 20 });
    expect(Buffer.byteLength(String(line?.stdout))).toBe(hookOutputTailBytes);
    expect(Buffer.byteLength(String(line?.stderr))).toBe(hookOutputTailBytes);
    expect(String(line?.stdout)).toMatch(/o\nlast line of stdout\n$/);
    expect(String(line?.stderr)).toMatch(/elast line of stderr\n$/);
    // 80 MiB went through; what stayed is a few KiB (the heap may move for other reasons, not by tens of MiB).
    expect(heapGrowth).toBeLessThan(16 * MiB);
  }, 60_000);

  it('a runaway hook that writes without end: killed at its timeout, its kept output still bounded', async () => {
    const { hooks, finished } = runner();
    await expect(hooks.run('yes runaway', 1_000, {})).rejects.toBeInstanceOf(HookTimeoutError);
    await expect.poll(() => finished().length, { timeout: 5_000 }).toBe(1);
    const [line] = finished();
    expect(line).toMatchObject({ signal: 'SIGKILL' });
    expect(Number(line?.stdoutBytes)).toBeGreaterThan(hookOutputTailBytes);
    expect(Buffer.byteLength(String(line?.stdout))).toBe(hookOutputTailBytes);
    expect(String(line?.stdout)).toMatch(/^(runaway\n)+$|^\w*\n(runaway\n)+$/);
  }, 10_000);

  it('a short hook keeps all its output and its exit code', async () => {
    const { hooks, finished } = runner();
    expect(await hooks.run('echo out; echo err >&2; exit 3', 5_000, {})).toBe(3);
    expect(finished()[0]).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n', stdoutBytes: 4, stderrBytes: 4 });
  });
});
