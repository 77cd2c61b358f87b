import { isFinalRefusal } from '../../shared/api/v1.js';
import { backoffDelayMs, withJitterMs } from '../../shared/backoff.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { Logger } from '../../shared/logger.js';
import type { RegistryClient } from '../ports.js';
import { RegistryRateLimitedError } from '../registry/errors.js';
import { formatByDigest, parseImageReference } from '../../shared/image-ref.js';
import { runUpdate, type UpdateDeps, type UpdateResult } from '../update/index.js';
import type { WorkerEvent } from './events.js';
import type { ServiceState, SettledDigest } from './state.js';

/** Registry backoff after failed polls: 5 s, 10 s, 20 s... up to 10 minutes, with jitter. */
const registryBackoff = { initialDelayMs: 5_000, maxDelayMs: 600_000, multiplier: 2 };
/**
 * A digest the coordinator refused for good (halted, aborted, superseded, rolled back), or that failed
 * here, is not asked for again while the tag still points at it and the group's rollout stays the
 * same; after this long it is asked once more, in case the coordinator's view changed (e.g. its
 * database was replaced).
 */
const settledDigestRetryMs = 15 * 60_000;
/** Refusals that say this digest will not be granted by waiting. */

export interface PollerDeps {
  service: ServiceConfig;
  /** The update flow's ports (its readiness heartbeats every change). */
  update: UpdateDeps;
  registry: Pick<RegistryClient, 'resolve'>;
  state: ServiceState;
  /** An operator drained the node: no poll until undrained. */
  drainedByOperator: () => boolean;
  /** An update attempt ended, however (the monitor starts counting failed checks afresh). */
  updateEnded: () => void;
  report: (event: WorkerEvent) => void;
  logger: Logger;
}

/**
 * One service's polls (docs/architecture.md, steps 1 to 9): on the schedule or a "poll now", one
 * registry HEAD for the tag's digest; a digest other than the running one is updated to under a
 * lease (agent/update), unless the group is paused or the digest settled.
 */
export class Poller {
  private registryFailures = 0;
  private registryRetryAtMs = 0;

  constructor(private readonly deps: PollerDeps) {}

  async poll(signal: AbortSignal): Promise<void> {
    const { state, report } = this.deps;
    const name = this.deps.service.containerName;
    if (state.isBusy) {
      state.deferPoll();
      return;
    }
    if (state.needsReconcile || state.stopping || signal.aborted) return;
    if (this.deps.drainedByOperator()) {
      report({ type: 'poll-skipped', service: name, why: 'operator-drain' });
      return;
    }
    if (this.deps.update.clock.nowMs() < this.registryRetryAtMs) {
      if (!state.pollRequested) {
        report({ type: 'poll-skipped', service: name, why: 'registry-backoff', retryAtMs: this.registryRetryAtMs });
        return;
      }
      // The registry itself just notified a push: it answers again. One request per push.
      report({ type: 'poll-despite-backoff', service: name, retryAtMs: this.registryRetryAtMs });
    }
    const requested = state.pollRequested;
    state.pollRequested = false;
    // Taken before the HEAD: whatever the tag shows was pushed after this rollout opened.
    const observedAfterSeq = state.knownRolloutSeq;
    const tagDigest = await this.resolveTag(signal);
    if (tagDigest === undefined || signal.aborted || state.stopping) return;
    await state.exclusive(
      () => this.compareAndUpdate(tagDigest, observedAfterSeq, signal),
      // The monitor took the container while the HEAD was out: poll again once it is free.
      () => {
        state.pollRequested ||= requested;
        state.deferPoll();
      },
    );
  }

  /** Step 1: one HEAD for the tag's digest; on any registry trouble keep serving and back off with jitter. */
  private async resolveTag(signal: AbortSignal): Promise<string | undefined> {
    const { clock, random } = this.deps.update;
    const name = this.deps.service.containerName;
    const startedMs = clock.nowMs();
    try {
      const resolved = await this.deps.registry.resolve(this.deps.service.image, signal);
      if (this.registryFailures > 0) this.deps.report({ type: 'registry-reachable', service: name, failures: this.registryFailures });
      this.registryFailures = 0;
      this.deps.report({ type: 'polled', service: name, digest: resolved.digest, durationMs: clock.nowMs() - startedMs });
      return resolved.digest;
    } catch (error) {
      if (signal.aborted) return undefined;
      this.registryFailures += 1;
      const retryInMs =
        error instanceof RegistryRateLimitedError && error.retryAfterMs !== undefined
          ? withJitterMs(error.retryAfterMs, 1_000, random)
          : backoffDelayMs(this.registryFailures - 1, random, registryBackoff);
      this.registryRetryAtMs = clock.nowMs() + retryInMs;
      const durationMs = clock.nowMs() - startedMs;
      this.deps.report({ type: 'poll-failed', service: name, error, failures: this.registryFailures, retryInMs, durationMs });
      return undefined;
    }
  }

  /** Step 2, then steps 3 to 9 (agent/update) when the digests differ. */
  private async compareAndUpdate(tagDigest: string, observedAfterSeq: number, signal: AbortSignal): Promise<void> {
    const { state, update, service, report } = this.deps;
    const name = service.containerName;
    const digest = state.digestToRun(tagDigest);
    const current = await update.runtime.inspect(name);
    // Gone: the monitor re-creates it from the digest it ran (kept in runningDigest), never from the tag.
    if (current === undefined) return;
    state.runningDigest = current.digest;
    const nowMs = update.clock.nowMs();
    state.settled = stillSettled(state.settled, current.digest === digest ? undefined : digest, nowMs);
    if (current.digest === digest) return;
    if (state.settled !== undefined) {
      report({ type: 'digest-held', service: name, digest, why: 'settled', detail: state.settled.why });
      return;
    }
    if (state.paused) {
      report({ type: 'digest-held', service: name, digest, why: 'group-paused' });
      return;
    }

    const imageByDigest = formatByDigest(parseImageReference(service.image), digest);
    try {
      const result = await runUpdate(update, service, { digest, imageByDigest, observedAfterSeq }, signal);
      if (result.runningDigest !== null) state.runningDigest = result.runningDigest;
      // The success step held the lease through readmitSeconds of readiness 200: the balancer has the node back.
      if (result.outcome === 'updated') state.readySinceMs = update.clock.nowMs() - service.readmitSeconds * 1_000;
      if (result.outcome === 'updated' && service.pruneImages) await this.pruneImages(digest, result.previousDigest);
      report({
        type: 'update-finished',
        service: name,
        digest,
        outcome: result.outcome,
        reason: result.reason,
        release: result.release,
        durationMs: result.durationMs,
      });
      this.followResult(result, digest);
    } catch (error) {
      report({ type: 'update-crashed', service: name, digest, error });
    } finally {
      state.resetStep();
      this.deps.updateEnded();
      state.markChanged();
    }
  }

  /** What an update's end means for the next polls: a digest settled here, or a newer rollout to read the tag for. */
  private followResult(result: UpdateResult, digest: string): void {
    const { state } = this.deps;
    const atMs = this.deps.update.clock.nowMs();
    if (result.outcome === 'rolled-back') {
      state.settled = { digest, why: 'failed its health checks here', atMs };
    } else if (result.outcome === 'skipped' && result.refusal !== undefined && isFinalRefusal(result.refusal)) {
      state.settled = { digest, why: `lease refused: ${result.refusal}`, atMs };
    } else if (result.refusal === 'stale' && (result.rolloutSeq ?? 0) > state.knownRolloutSeq) {
      // The tag moved after we read it: read it again now, knowing the newer rollout.
      state.knownRolloutSeq = result.rolloutSeq ?? 0;
      state.pollRequested = true;
      state.deferPoll();
    }
  }

  /** Keeps the image this service runs and the one it ran before; an error here never fails the update. */
  private async pruneImages(runningDigest: string, previousDigest: string | null): Promise<void> {
    const ref = parseImageReference(this.deps.service.image);
    const keep = [runningDigest, ...(previousDigest === null ? [] : [previousDigest])].map((d) => formatByDigest(ref, d));
    try {
      await this.deps.update.runtime.pruneImages(keep);
    } catch (error) {
      this.deps.logger.warn({ err: error, keep }, 'could not remove old images; will try again after the next update');
    }
  }
}

/**
 * The settled digest still to hold back, given the digest a poll wants to run (undefined: the
 * container runs it already). Forgotten when the tag moved on, or after settledDigestRetryMs.
 */
export function stillSettled(settled: SettledDigest | undefined, wanted: string | undefined, nowMs: number): SettledDigest | undefined {
  if (settled === undefined || wanted === undefined) return undefined;
  if (settled.digest !== wanted || nowMs - settled.atMs >= settledDigestRetryMs) return undefined;
  return settled;
}
