import { describe, expect, it } from 'vitest';
import { statusNodeSchema } from '../shared/api/v1.js';
import { renderNodes } from './render.js';

const node = (nodeId: string, configProblem?: string) =>
  statusNodeSchema.parse({
    nodeId,
    group: 'web',
    host: `${nodeId}.local`,
    image: 'r/web:stable',
    currentDigest: null,
    health: 'healthy',
    step: 'idle',
    agentVersion: '0.1.0',
    lastHeartbeatMs: 1_000,
    silent: false,
    ...(configProblem !== undefined ? { configProblem } : {}),
  });

describe('baton nodes', () => {
  it('names every node whose agent runs on its last known good config, under the table', () => {
    const text = renderNodes([node('web-1'), node('web-2', 'invalid configuration in /etc/baton/agent.yaml: logLevel: Invalid option')], 2_000);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^NODE\s+GROUP\s+HOST/);
    expect(lines.at(-1)).toBe('! web-2 (web): invalid configuration in /etc/baton/agent.yaml: logLevel: Invalid option');
    expect(text).not.toMatch(/! web-1/);
  });

  it('adds nothing when every config is valid, also for a coordinator that does not report configProblem', () => {
    const text = renderNodes([node('web-1')], 2_000);
    expect(text).not.toContain('!');
    expect(text.split('\n')).toHaveLength(2);
  });
});
