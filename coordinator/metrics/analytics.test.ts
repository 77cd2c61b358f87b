import { describe, expect, it } from 'vitest';
import type { BatonEvent } from '../../shared/api/v1.js';
import { newEvent } from '../state/model.js';
import { FleetAnalytics, median, type EventSource, type Measurement } from './analytics.js';
import { ManualClock } from '../../shared/testing/clock.js';

const T0 = 1_700_000_000_000;
const MIN = 60_000;
const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

/** An event log in memory, with the service's onEvents. */
class FakeLog implements EventSource {
  readonly events: BatonEvent[] = [];
  private readonly listeners = new Set<(events: BatonEvent[]) => void>();
  reads = 0;

  add(atMs: number, type: BatonEvent['type'], details: Partial<BatonEvent> = {}): BatonEvent {
    const event: BatonEvent = { seq: this.events.length + 1, ...newEvent({ atMs, type, group: 'web', ...details }) };
    this.events.push(event);
    return event;
  }

  /** Appends and tells listeners, as a commit does. */
  commit(atMs: number, type: BatonEvent['type'], details: Partial<BatonEvent> = {}): void {
    const event = this.add(atMs, type, details);
    for (const listener of this.listeners) listener([event]);
  }

  async readEvents(query: { afterSeq?: number; limit: number }): Promise<BatonEvent[]> {
    this.reads += 1;
    return this.events.filter((e) => e.seq > (query.afterSeq ?? 0)).slice(0, query.limit);
  }

  onEvents(listener: (events: BatonEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** One node's successful update: grant, then release "updated" `ms` later. */
function update(log: FakeLog, at: number, node: string, digest: string, ms: number, commit = false): void {
  const put = commit ? log.commit.bind(log) : log.add.bind(log);
  put(at, 'grant', { nodeId: node, digest, leaseId: `${node}-${digest}` });
  put(at + ms, 'release', { nodeId: node, digest, leaseId: `${node}-${digest}`, outcome: 'updated' });
}

describe('FleetAnalytics', () => {
  it('counts each push of a digest as its own rollout, and times fleet rollbacks: baton rollback and a push back to a completed digest', async () => {
    const log = new FakeLog();
    const clock = new ManualClock(T0);
    const analytics = new FleetAnalytics(log, clock);
    await analytics.ready;
    const measured: Measurement[] = [];
    analytics.onMeasurement((m) => measured.push(m));
    log.commit(T0, 'rollout-opened', { digest: d(1), reason: 'push' });
    log.commit(T0 + MIN, 'rollout-completed', { digest: d(1) });
    log.commit(T0 + 2 * MIN, 'rollout-superseded', { digest: d(1) });
    log.commit(T0 + 2 * MIN, 'rollout-opened', { digest: d(2), reason: 'push' });
    log.commit(T0 + 3 * MIN, 'rollout-completed', { digest: d(2) });
    // The tag pointed back at d(1): a rollback by push, two minutes to converge.
    log.commit(T0 + 4 * MIN, 'rollout-superseded', { digest: d(2) });
    log.commit(T0 + 4 * MIN, 'rollout-opened', { digest: d(1), reason: 'push' });
    log.commit(T0 + 5 * MIN, 'rollout-opened', { digest: d(1), reason: 'reopened' });
    log.commit(T0 + 6 * MIN, 'rollout-completed', { digest: d(1) });
    // baton rollback to d(2): one minute.
    log.commit(T0 + 7 * MIN, 'rollout-superseded', { digest: d(1) });
    log.commit(T0 + 7 * MIN, 'rollout-opened', { digest: d(2), reason: 'rollback' });
    log.commit(T0 + 8 * MIN, 'rollout-completed', { digest: d(2) });
    // A retry is not a rollback.
    log.commit(T0 + 9 * MIN, 'rollout-opened', { digest: d(3), reason: 'push' });
    log.commit(T0 + 9 * MIN, 'halt', { digest: d(3) });
    log.commit(T0 + 10 * MIN, 'rollout-opened', { digest: d(3), reason: 'retry' });
    log.commit(T0 + 11 * MIN, 'rollout-completed', { digest: d(3) });
    const figures = analytics.figures(T0 + 12 * MIN);
    expect(figures.rollouts).toMatchObject({ succeeded: 5, failed: 1, open: 0 });
    expect(figures.fleetRollback).toEqual({ count: 2, lastMs: MIN, medianMs: 1.5 * MIN, maxMs: 2 * MIN });
    expect(measured.filter((m) => m.kind === 'fleet-rolled-back')).toEqual([
      { kind: 'fleet-rolled-back', group: 'web', durationMs: 2 * MIN },
      { kind: 'fleet-rolled-back', group: 'web', durationMs: MIN },
    ]);
    analytics.stop();
  });

  it('counts rollouts by how they ended; a completed one stays a success when superseded', async () => {
    const log = new FakeLog();
    log.add(T0, 'rollout-opened', { digest: d(1) });
    update(log, T0, 'a', d(1), MIN);
    log.add(T0 + MIN, 'rollout-completed', { digest: d(1) });
    log.add(T0 + 2 * MIN, 'rollout-opened', { digest: d(2) });
    log.add(T0 + 2 * MIN, 'rollout-superseded', { digest: d(1) });
    log.add(T0 + 3 * MIN, 'halt', { digest: d(2), nodeId: 'a', reason: 'x' });
    log.add(T0 + 4 * MIN, 'rollout-opened', { digest: d(3) });
    log.add(T0 + 5 * MIN, 'abort', { digest: d(3) });
    log.add(T0 + 6 * MIN, 'rollout-opened', { digest: d(4) });
    log.add(T0 + 7 * MIN, 'rollout-opened', { digest: d(5) });
    log.add(T0 + 7 * MIN, 'rollout-superseded', { digest: d(4) });
    log.add(T0 + 8 * MIN, 'rollout-opened', { group: 'api', digest: d(1) });
    const clock = new ManualClock(T0 + 9 * MIN);
    const analytics = new FleetAnalytics(log, clock);
    await analytics.ready;
    const figures = analytics.figures();
    expect(figures.rollouts).toMatchObject({ succeeded: 1, failed: 1, aborted: 1, superseded: 1, open: 2 });
    expect(figures.rollouts.successRate).toBeCloseTo(1 / 3);
    expect(figures.rollouts.medianDurationMs).toBe(MIN);
    expect(figures.sinceMs).toBe(T0);
  });

  it('measures time to roll back from grant to failed release, and reports live ones only', async () => {
    const log = new FakeLog();
    log.add(T0, 'rollout-opened', { digest: d(1) });
    log.add(T0, 'grant', { nodeId: 'a', digest: d(1), leaseId: 'L1' });
    log.add(T0 + 90_000, 'release', { nodeId: 'a', digest: d(1), leaseId: 'L1', outcome: 'failed' });
    log.add(T0 + 90_000, 'halt', { nodeId: 'a', digest: d(1), reason: 'health' });
    const clock = new ManualClock(T0 + 10 * MIN);
    const analytics = new FleetAnalytics(log, clock);
    const measured: Measurement[] = [];
    analytics.onMeasurement((m) => measured.push(m));
    await analytics.ready;
    expect(analytics.figures().rollback).toEqual({ count: 1, lastMs: 90_000, medianMs: 90_000, maxMs: 90_000 });
    expect(measured).toEqual([]);

    log.commit(T0 + 11 * MIN, 'rollout-opened', { group: 'api', digest: d(2) });
    log.commit(T0 + 11 * MIN, 'grant', { group: 'api', nodeId: 'b', digest: d(2), leaseId: 'L2' });
    log.commit(T0 + 11 * MIN + 30_000, 'release', { group: 'api', nodeId: 'b', digest: d(2), leaseId: 'L2', outcome: 'failed' });
    expect(measured).toEqual([{ kind: 'rolled-back', group: 'api', durationMs: 30_000 }]);
    expect(analytics.figures().rollback).toEqual({ count: 2, lastMs: 30_000, medianMs: 60_000, maxMs: 90_000 });
  });

  it('rates nodes per hour over open rollout time, and counts the last hour and day', async () => {
    const log = new FakeLog();
    // Yesterday: 3 nodes in 6 minutes. Today: 2 nodes so far, 4 minutes into a rollout.
    log.add(T0, 'rollout-opened', { digest: d(1) });
    for (let i = 0; i < 3; i += 1) update(log, T0 + i * 2 * MIN, `n${i}`, d(1), 2 * MIN);
    log.add(T0 + 6 * MIN, 'rollout-completed', { digest: d(1) });
    const today = T0 + 25 * 60 * MIN;
    log.add(today, 'rollout-opened', { digest: d(2) });
    update(log, today, 'n0', d(2), MIN);
    update(log, today + MIN, 'n1', d(2), MIN);
    const clock = new ManualClock(today + 4 * MIN);
    const analytics = new FleetAnalytics(log, clock);
    await analytics.ready;
    const { updates } = analytics.figures();
    expect(updates.lastHour).toBe(2);
    expect(updates.last24h).toBe(2);
    // 5 nodes over 6 + 4 minutes of open rollouts = 30 per hour.
    expect(updates.perHourWhileRolling).toBeCloseTo(30);
  });

  it('reads the log in pages and loses no event committed while it reads', async () => {
    const log = new FakeLog();
    for (let i = 0; i < 12_000; i += 1) log.add(T0 + i, 'renew', { leaseId: 'x' });
    const analytics = new FleetAnalytics(log, new ManualClock(T0 + MIN));
    const measured: Measurement[] = [];
    analytics.onMeasurement((m) => measured.push(m));
    // Committed before the first page is read: queued, applied once, and live.
    log.commit(T0 + 20_000, 'rollout-opened', { digest: d(9) });
    log.commit(T0 + 20_000, 'rollout-completed', { digest: d(9) });
    await analytics.ready;
    expect(log.reads).toBe(3);
    expect(analytics.figures().rollouts).toMatchObject({ succeeded: 1, open: 0 });
    expect(measured).toEqual([{ kind: 'rollout-completed', group: 'web', durationMs: 0 }]);
    log.commit(T0 + 30_000, 'rollout-opened', { digest: d(8) });
    expect(analytics.figures().rollouts.open).toBe(1);
    analytics.stop();
    log.commit(T0 + 40_000, 'rollout-completed', { digest: d(8) });
    expect(analytics.figures().rollouts.open).toBe(1);
  });

  it('takes a middle value for the median', () => {
    expect(median([])).toBeNull();
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(3);
  });
});
