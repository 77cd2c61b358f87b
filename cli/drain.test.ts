import { describe, expect, it } from 'vitest';
import { statusNodeSchema } from '../shared/api/v1.js';
import { runOperatorCommand } from './commands.js';
import { renderNodes } from './render.js';
import { UsageError } from './exit.js';

const io = { out: () => undefined, err: () => undefined, signal: new AbortController().signal };
// Nothing listens there: a usage error must be raised before any request is made.
const environment = { BATON_COORDINATOR: 'http://127.0.0.1:9' };

describe('baton drain and undrain', () => {
  it.each([
    [['drain'], /missing NODE/],
    [['drain', 'a', 'b'], /one NODE only/],
    [['drain', 'node-1', '--reason', ''], /--reason: /],
    [['drain', 'node-1', '--reason', 'x'.repeat(501)], /--reason: /],
    [['drain', 'node-1', '--reason', 'tab\there'], /--reason: must not contain control characters/],
    [['drain', 'node-1', '--group', ''], /group "": /],
    [['undrain', 'node-1', '--reason', 'why'], /reason/],
  ])('refuses %j before asking the coordinator', async ([command, ...argv], message) => {
    const run = runOperatorCommand(command as 'drain' | 'undrain', argv, environment, io);
    await expect(run).rejects.toThrow(message);
  });

  it('raises usage errors as UsageError', async () => {
    await expect(runOperatorCommand('drain', [], environment, io)).rejects.toBeInstanceOf(UsageError);
  });
});

describe('baton nodes with a drained node', () => {
  const node = (nodeId: string, drained: { reason: string | null; sinceMs: number } | null) =>
    statusNodeSchema.parse({
      nodeId,
      group: 'web',
      host: `${nodeId}.local`,
      image: 'r/web:stable',
      currentDigest: null,
      health: drained ? 'draining' : 'healthy',
      step: 'idle',
      agentVersion: '0.1.0',
      lastHeartbeatMs: 1_000,
      silent: false,
      drained,
    });

  it('marks its health and names it, with the reason, under the table', () => {
    const text = renderNodes([node('web-1', null), node('web-2', { reason: 'kernel upgrade', sinceMs: 1_000 }), node('web-3', { reason: null, sinceMs: 1_000 })], 61_000);
    const lines = text.split('\n');
    expect(lines.find((l) => l.startsWith('web-2'))).toMatch(/draining \(drained\)/);
    expect(lines.find((l) => l.startsWith('web-1'))).not.toMatch(/drained/);
    expect(lines).toContain('~ web-2 (web): drained for 1m00s: kernel upgrade');
    expect(lines).toContain('~ web-3 (web): drained for 1m00s');
  });
});
