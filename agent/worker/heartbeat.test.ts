import { describe, expect, it } from 'vitest';
import { heartbeatHealth } from './heartbeat.js';

describe('heartbeatHealth', () => {
  const ready = { ready: true, reason: undefined } as const;

  it('reports a service ready for less than readmitMs as starting, then healthy', () => {
    expect(heartbeatHealth(ready, undefined, 10_000, 1_000)).toEqual({ health: 'starting', healthReason: 'starting', readySinceMs: 10_000 });
    expect(heartbeatHealth(ready, 10_000, 10_999, 1_000)).toMatchObject({ health: 'starting' });
    expect(heartbeatHealth(ready, 10_000, 11_000, 1_000)).toEqual({ health: 'healthy', readySinceMs: 10_000 });
  });

  it('maps a not-ready answer to the coordinator\'s terms and restarts the readmission clock', () => {
    expect(heartbeatHealth({ ready: false, reason: 'drained' }, 5, 10, 1)).toEqual({ health: 'draining', healthReason: 'drained', readySinceMs: undefined });
    expect(heartbeatHealth({ ready: false, reason: 'container-stopped' }, 5, 10, 1)).toMatchObject({ health: 'stopped' });
    expect(heartbeatHealth({ ready: false, reason: 'engine-unreachable' }, 5, 10, 1)).toMatchObject({ health: 'unhealthy' });
    expect(heartbeatHealth(undefined, 5, 10, 1)).toEqual({ health: 'unknown', readySinceMs: undefined });
  });
});
