import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../shared/config/agent.js';
import { ConfigError } from '../../shared/errors.js';
import { createLogger } from '../../shared/logger.js';
import { sha256Hex, type LastKnownGood } from './last-known-good.js';
import { recordStartupConfig } from './report.js';

const config = agentConfigSchema.parse({
  nodeId: 'web-1',
  host: 'h',
  coordinator: { urls: ['http://127.0.0.1:7070'] },
  stateDir: '/state',
  services: [{ group: 'web', image: 'r/web:1', containerName: 'web', health: { docker: true } }],
});
const copy: LastKnownGood = {
  format: 'baton-agent-last-known-good/1',
  sourcePath: '/etc/baton/agent.yaml',
  sha256: sha256Hex('text'),
  savedAt: '2025-01-02T03:04:05.000Z',
  batonVersion: '0.1.0',
  text: 'text',
};

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ name: 'agent', destination }) };
}

describe('recording the start-up config', () => {
  it('stores a valid config as the last known good copy, and only warns when it cannot', async () => {
    const writes: string[] = [];
    const ok = capture();
    await recordStartupConfig({ kind: 'valid', config, copy }, { store: { write: (dir) => Promise.resolve(void writes.push(dir)) }, logger: ok.logger, stderr: () => undefined });
    expect(writes).toEqual(['/state']);
    expect(ok.lines.at(-1)).toMatchObject({ level: 'info', msg: 'config stored as the last known good config', path: '/state/last-known-good-config.json' });

    const failing = capture();
    await recordStartupConfig(
      { kind: 'valid', config, copy },
      { store: { write: () => Promise.reject(new Error('EROFS: read-only file system')) }, logger: failing.logger, stderr: () => undefined },
    );
    expect(failing.lines.at(-1)).toMatchObject({ level: 'warn', msg: expect.stringMatching(/cannot store the last known good config/) });
  });

  it('reports running on the copy on stderr (ConfigError format) and in one error line naming every bad field; stores nothing', async () => {
    const { lines, logger } = capture();
    let stderr = '';
    const error = new ConfigError('/etc/baton/agent.yaml', [
      { path: 'logLevel', message: 'Invalid option' },
      { path: '', message: 'Unrecognized key: "surprise"' },
    ]);
    await recordStartupConfig(
      { kind: 'fallback', config, error, copy, copyPath: '/state/last-known-good-config.json', problem: 'p' },
      { store: { write: () => Promise.reject(new Error('must not write')) }, logger, stderr: (text) => (stderr += text) },
    );
    expect(stderr).toMatch(/^baton agent: invalid configuration in \/etc\/baton\/agent\.yaml:\n {2}- logLevel: Invalid option\n {2}- \(root\): Unrecognized key/);
    expect(stderr).toMatch(/running on the last known good config \/state\/last-known-good-config\.json \(a copy of \/etc\/baton\/agent\.yaml, saved 2025-01-02T03:04:05\.000Z\)/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'error',
      problems: ['logLevel: Invalid option', '(root): Unrecognized key: "surprise"'],
      lastKnownGood: { path: '/state/last-known-good-config.json', sha256: copy.sha256 },
    });
  });
});
