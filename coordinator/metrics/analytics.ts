import type { BatonEvent, FiguresResponse } from '../../shared/api/v1.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';

/**
 * Deployment figures derived from the event log: success rate of rollouts, time to roll
 * back, nodes updated per hour. At start the whole log is read once, page by page, in the
 * background; then every committed event is applied as it happens. Memory is bounded: a
 * fixed number of rollouts, samples and open leases is kept.
 */

/** A duration the metrics want to observe, derived from a live (not replayed) event. */
export type Measurement =
  | { kind: 'rollout-completed'; group: string; durationMs: number }
  | { kind: 'rolled-back'; group: string; durationMs: number }
  | { kind: 'fleet-rolled-back'; group: string; durationMs: number };

type Outcome = 'open' | 'succeeded' | 'failed' | 'aborted' | 'superseded';

interface RolloutTrack {
  /** Opened by `baton rollback`, or by a push of a digest that had completed in the group before. */
  isRollback: boolean;
  /** When it first opened. */
  openedAtMs: number;
  /** Completed at least once (a reopening does not count twice). */
  everCompleted: boolean;
  /** When the current open stretch began (opening or reopening); null once ended. */
  openSinceMs: number | null;
  /** Time spent open in earlier stretches (a completed rollout reopened for a late node). */
  earlierOpenMs: number;
  outcome: Outcome;
  updatedNodes: number;
  lastTouchedMs: number;
}

export interface EventSource {
  readEvents(query: { afterSeq?: number; limit: number }): Promise<BatonEvent[]>;
  onEvents(listener: (events: BatonEvent[]) => void): () => void;
}

const MAX_ROLLOUTS = 5_000;
const MAX_OPEN_LEASES = 50_000;
const MAX_SAMPLES = 200;
const RATE_ROLLOUTS = 20;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const PAGE = 5_000;

export class FleetAnalytics {
  /** Every rollout tracked, by the seq of the event that opened it. */
  private readonly rollouts = new Map<number, RolloutTrack>();
  /** The latest rollout of each group and digest (a digest may be rolled out many times). */
  private readonly latestByDigest = new Map<string, RolloutTrack>();
  /** Digests that completed in each group (group and digest), for telling a rollback by push. */
  private readonly completedDigests = new Set<string>();
  private readonly fleetRollbackSamples: number[] = [];
  private fleetRollbackCount = 0;
  private readonly grantedAt = new Map<string, number>();
  private readonly rollbackSamples: number[] = [];
  private readonly durationSamples: number[] = [];
  /** Times of `updated` releases within the last day, oldest first. */
  private updateTimes: number[] = [];
  private rollbackCount = 0;
  private lastSeq = 0;
  private sinceMs: number | null = null;
  private readonly listeners = new Set<(measurement: Measurement) => void>();
  private unsubscribe: (() => void) | undefined;
  private replaying = true;
  private queued: BatonEvent[] = [];
  private stopped = false;
  /** Resolves once the stored log has been read; figures are complete from then on. */
  readonly ready: Promise<void>;

  constructor(
    private readonly source: EventSource,
    private readonly clock: Clock,
    private readonly logger?: Logger,
  ) {
    // Subscribe before reading the log, so no event falls between the two.
    this.unsubscribe = source.onEvents((events) => {
      if (this.replaying) this.queued.push(...events);
      else for (const event of events) this.apply(event, true);
    });
    this.ready = this.replay();
  }

  /** Measurements of live events (rollout durations, rollbacks), for histograms. */
  onMeasurement(listener: (measurement: Measurement) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  figures(nowMs: number = this.clock.nowMs()): FiguresResponse {
    this.trimUpdateTimes(nowMs);
    const counts = { open: 0, succeeded: 0, failed: 0, aborted: 0, superseded: 0 };
    for (const track of this.rollouts.values()) counts[track.outcome] += 1;
    const ended = counts.succeeded + counts.failed + counts.aborted;
    let lastHour = 0;
    for (const at of this.updateTimes) if (at > nowMs - HOUR_MS) lastHour += 1;
    return {
      serverTimeMs: nowMs,
      sinceMs: this.sinceMs,
      rollouts: {
        ...counts,
        successRate: ended === 0 ? null : counts.succeeded / ended,
        medianDurationMs: median(this.durationSamples),
      },
      rollback: {
        count: this.rollbackCount,
        lastMs: this.rollbackSamples.at(-1) ?? null,
        medianMs: median(this.rollbackSamples),
        maxMs: this.rollbackSamples.length === 0 ? null : Math.max(...this.rollbackSamples),
      },
      fleetRollback: {
        count: this.fleetRollbackCount,
        lastMs: this.fleetRollbackSamples.at(-1) ?? null,
        medianMs: median(this.fleetRollbackSamples),
        maxMs: this.fleetRollbackSamples.length === 0 ? null : Math.max(...this.fleetRollbackSamples),
      },
      updates: { lastHour, last24h: this.updateTimes.length, perHourWhileRolling: this.ratePerHour(nowMs) },
    };
  }

  private async replay(): Promise<void> {
    try {
      for (;;) {
        const page = await this.source.readEvents({ afterSeq: this.lastSeq, limit: PAGE });
        // An event at or after the first one heard live happened after we subscribed: it is live.
        const firstLive = this.queued[0]?.seq ?? Number.POSITIVE_INFINITY;
        for (const event of page) this.apply(event, event.seq >= firstLive);
        if (page.length < PAGE || this.stopped) break;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      this.logger?.warn({ err: error }, 'could not read the event log for deployment figures; they start from now');
    } finally {
      this.replaying = false;
      const queued = this.queued;
      this.queued = [];
      for (const event of queued) this.apply(event, true);
    }
  }

  private apply(event: BatonEvent, live: boolean): void {
    if (event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    this.sinceMs ??= event.atMs;
    const key = event.digest === null ? undefined : `${event.group}\u0000${event.digest}`;
    switch (event.type) {
      case 'rollout-opened':
        if (key !== undefined) this.opened(key, event);
        break;
      case 'rollout-completed':
        if (key !== undefined) this.completed(key, event, live);
        break;
      case 'halt':
        if (key !== undefined) this.ended(key, 'failed', event.atMs);
        break;
      case 'abort':
        if (key !== undefined) this.ended(key, 'aborted', event.atMs);
        break;
      case 'rollout-superseded': {
        const track = key === undefined ? undefined : this.latestByDigest.get(key);
        // A rollout that completed stays a success when a newer digest comes along.
        if (key !== undefined && (track === undefined || track.outcome === 'open')) this.ended(key, 'superseded', event.atMs);
        break;
      }
      case 'grant':
        if (event.leaseId !== null) {
          this.grantedAt.set(event.leaseId, event.atMs);
          evictOldest(this.grantedAt, MAX_OPEN_LEASES);
        }
        break;
      case 'release':
        this.released(event, key, live);
        break;
      case 'expiry':
      case 'node-forgotten':
        if (event.leaseId !== null) this.grantedAt.delete(event.leaseId);
        break;
      default:
        break;
    }
  }

  private track(key: string, atMs: number, seq = -atMs): RolloutTrack {
    let track = this.latestByDigest.get(key);
    if (track === undefined) {
      // Seen before its opening (the log was cut): count it from here.
      track = this.newTrack(key, atMs, seq, false);
    }
    track.lastTouchedMs = atMs;
    return track;
  }

  private newTrack(key: string, atMs: number, seq: number, isRollback: boolean): RolloutTrack {
    const track: RolloutTrack = {
      isRollback,
      openedAtMs: atMs,
      everCompleted: false,
      openSinceMs: atMs,
      earlierOpenMs: 0,
      outcome: 'open',
      updatedNodes: 0,
      lastTouchedMs: atMs,
    };
    this.rollouts.set(seq, track);
    evictOldest(this.rollouts, MAX_ROLLOUTS);
    this.latestByDigest.set(key, track);
    evictOldest(this.latestByDigest, MAX_ROLLOUTS);
    return track;
  }

  /**
   * A new rollout (reason push, rollback or retry) or a completed one reopened for a late node
   * (reason `reopened`; logs written before rollouts had causes say neither, and had one rollout
   * per digest, so a second opening of a digest there is a reopening).
   */
  private opened(key: string, event: BatonEvent): void {
    const known = this.latestByDigest.get(key);
    const reopening = event.reason === 'reopened' || (event.reason === null && known !== undefined);
    if (!reopening || known === undefined) {
      const isRollback = event.reason === 'rollback' || (event.reason === 'push' && this.completedDigests.has(key));
      this.newTrack(key, event.atMs, event.seq, isRollback);
      return;
    }
    known.lastTouchedMs = event.atMs;
    if (known.openSinceMs === null) known.openSinceMs = event.atMs;
    known.outcome = 'open';
  }

  private ended(key: string, outcome: Outcome, atMs: number): RolloutTrack {
    const track = this.track(key, atMs);
    if (track.openSinceMs !== null) {
      track.earlierOpenMs += Math.max(0, atMs - track.openSinceMs);
      track.openSinceMs = null;
    }
    track.outcome = outcome;
    return track;
  }

  private completed(key: string, event: BatonEvent, live: boolean): void {
    const stretchStart = this.latestByDigest.get(key)?.openSinceMs ?? null;
    const track = this.ended(key, 'succeeded', event.atMs);
    this.completedDigests.add(key);
    evictOldest(this.completedDigests, MAX_ROLLOUTS);
    const firstCompletion = !track.everCompleted;
    track.everCompleted = true;
    if (track.isRollback && firstCompletion) {
      const durationMs = Math.max(0, event.atMs - track.openedAtMs);
      this.fleetRollbackCount += 1;
      pushSample(this.fleetRollbackSamples, durationMs);
      if (live) this.emit({ kind: 'fleet-rolled-back', group: event.group, durationMs });
    }
    if (stretchStart === null) return;
    const durationMs = Math.max(0, event.atMs - stretchStart);
    pushSample(this.durationSamples, durationMs);
    if (live) this.emit({ kind: 'rollout-completed', group: event.group, durationMs });
  }

  private released(event: BatonEvent, key: string | undefined, live: boolean): void {
    const grantedAtMs = event.leaseId === null ? undefined : this.grantedAt.get(event.leaseId);
    if (event.leaseId !== null) this.grantedAt.delete(event.leaseId);
    if (event.outcome === 'updated') {
      this.updateTimes.push(event.atMs);
      if (key !== undefined) this.track(key, event.atMs).updatedNodes += 1;
    }
    if (event.outcome === 'failed') {
      this.rollbackCount += 1;
      if (grantedAtMs === undefined) return;
      const durationMs = Math.max(0, event.atMs - grantedAtMs);
      pushSample(this.rollbackSamples, durationMs);
      if (live) this.emit({ kind: 'rolled-back', group: event.group, durationMs });
    }
  }

  private emit(measurement: Measurement): void {
    for (const listener of this.listeners) {
      try {
        listener(measurement);
      } catch (error) {
        this.logger?.warn({ err: error }, 'measurement listener failed');
      }
    }
  }

  private trimUpdateTimes(nowMs: number): void {
    const firstKept = this.updateTimes.findIndex((at) => at > nowMs - DAY_MS);
    if (firstKept === -1) this.updateTimes = [];
    else if (firstKept > 0) this.updateTimes = this.updateTimes.slice(firstKept);
  }

  /** Updated nodes per hour of open rollout, over the rollouts touched most recently. */
  private ratePerHour(nowMs: number): number | null {
    const recent = [...this.rollouts.values()]
      .filter((track) => track.updatedNodes > 0)
      .sort((a, b) => b.lastTouchedMs - a.lastTouchedMs)
      .slice(0, RATE_ROLLOUTS);
    let nodes = 0;
    let openMs = 0;
    for (const track of recent) {
      nodes += track.updatedNodes;
      openMs += track.earlierOpenMs + (track.openSinceMs === null ? 0 : Math.max(0, nowMs - track.openSinceMs));
    }
    if (nodes === 0) return null;
    // A rollout that took no measurable time would make an infinite rate; count at least a second.
    return (nodes / Math.max(openMs, 1_000)) * HOUR_MS;
  }
}

function pushSample(samples: number[], value: number): void {
  samples.push(value);
  if (samples.length > MAX_SAMPLES) samples.splice(0, samples.length - MAX_SAMPLES);
}

function evictOldest<K>(collection: Map<K, unknown> | Set<K>, limit: number): void {
  while (collection.size > limit) {
    const oldest = collection.keys().next();
    if (oldest.done === true) return;
    collection.delete(oldest.value);
  }
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const value = sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  return Math.round(value);
}
