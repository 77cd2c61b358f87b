import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseDaemonArgs } from './daemon-args.js';
import { ExitCode } from './errors.js';

function run(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const result = parseDaemonArgs(argv, 'usage: baton thing', { stdout, stderr });
  return { result, stdout: String(stdout.read() ?? ''), stderr: String(stderr.read() ?? '') };
}

describe('parseDaemonArgs', () => {
  it('takes --config FILE, -c FILE or nothing', () => {
    expect(run(['--config', '/etc/baton.yaml']).result).toEqual({ run: true, configPath: '/etc/baton.yaml' });
    expect(run(['-c', 'x.json']).result).toEqual({ run: true, configPath: 'x.json' });
    expect(run([]).result).toEqual({ run: true, configPath: undefined });
  });

  it('prints the usage for --help, and the error and the usage for anything else', () => {
    expect(run(['--help'])).toEqual({ result: { run: false, exitCode: ExitCode.ok }, stdout: 'usage: baton thing\n', stderr: '' });
    const unknown = run(['--bogus']);
    expect(unknown.result).toEqual({ run: false, exitCode: ExitCode.usage });
    expect(unknown.stderr).toMatch(/bogus[\s\S]*\nusage: baton thing\n$/);
  });
});
