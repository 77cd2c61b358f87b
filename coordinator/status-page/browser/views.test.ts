import { describe, expect, it } from 'vitest';
import type { Dom } from './dom.js';
import { createFiguresView } from './figures.js';
import { createFormat } from './format.js';
import { createGroupsView } from './groups.js';
import type { FiguresResponse, StatusResponse } from './types.js';

// The tiles' and the title's text are pure; rendering them needs a DOM, which the browser tests drive.
const noDom = {} as Dom;
const figuresView = createFiguresView(noDom, createFormat());
const groupsView = createGroupsView(noDom, createFormat(), {
  admin: false,
  serverNowMs: () => 0,
  controls: { isBusy: () => false, isArmed: () => false, run: () => undefined },
});

const times = { count: 0, lastMs: null, medianMs: null, maxMs: null };
const figures: FiguresResponse = {
  serverTimeMs: 0,
  sinceMs: null,
  rollouts: { succeeded: 3, failed: 1, aborted: 0, superseded: 0, open: 1, successRate: 0.75, medianDurationMs: null },
  rollback: { count: 2, lastMs: 30_000, medianMs: 45_000, maxMs: 60_000 },
  fleetRollback: times,
  updates: { lastHour: 4, last24h: 9, perHourWhileRolling: 12.34 },
};

function group(name: string, state: 'halted' | 'in-progress' | 'completed' | null, healths: Array<'healthy' | 'unhealthy'>): StatusResponse['groups'][number] {
  return {
    name,
    paused: false,
    policy: { maxUnavailable: 1, effectiveMaxUnavailable: 1, leaseTtlMs: 30_000, heartbeatMissLimitMs: 15_000 },
    rollout:
      state === null
        ? null
        : {
            rolloutId: `${name}-1`,
            group: name,
            seq: 1,
            cause: 'push',
            targetDigest: 'sha256:1',
            image: null,
            state,
            openedAtMs: 0,
            endedAtMs: null,
            completedAtMs: null,
            rolledBackFrom: null,
            haltedByNodeId: null,
            haltReason: null,
            progress: { totalNodes: healths.length, onTarget: 1, updating: 0 },
          },
    nodes: healths.map((health, i) => ({
      nodeId: `${name}-${i}`,
      group: name,
      host: 'h',
      image: 'app:v1',
      currentDigest: null,
      health,
      step: 'idle',
      agentVersion: '1',
      lastHeartbeatMs: 0,
      silent: false,
      configProblem: null,
      healthReason: null,
      drained: null,
    })),
    leases: [],
  };
}

const status = (groups: StatusResponse['groups']): StatusResponse => ({ serverTimeMs: 0, groups, events: [] });

describe('status page figures and title', () => {
  it('says what each tile shows', () => {
    const tiles = figuresView.figureTiles(status([group('web', 'in-progress', ['healthy', 'unhealthy'])]), figures);
    expect(tiles.map((tile) => [tile.testid, tile.value, tile.detail])).toEqual([
      ['figure-success-rate', '75%', '3 of 4 completed, 1 halted'],
      ['figure-rollback-time', '45 s', 'median of 2 · last 30 s · max 1 min'],
      ['figure-fleet-rollback-time', '—', 'no fleet rollback so far'],
      ['figure-updates-per-hour', '12', 'while rolling out · 4 in the last hour, 9 in 24 h'],
      ['figure-fleet', '1 / 2', '1 group'],
    ]);
  });

  it('puts halted groups first and names them in the title', () => {
    const groups = [group('b', 'completed', ['healthy']), group('c', 'in-progress', ['healthy', 'healthy']), group('a', 'halted', ['healthy'])];
    expect(groupsView.orderGroups(groups).map((g) => g.name)).toEqual(['a', 'c', 'b']);
    expect(groupsView.pageTitle(status(groups))).toBe('Halted · Baton');
    expect(groupsView.pageTitle(status(groups.slice(0, 2)))).toBe('c 1/2 · Baton');
    expect(groupsView.pageTitle(status([]))).toBe('Baton');
  });
});
