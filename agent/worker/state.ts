import type { UpdateStep } from '../../shared/api/v1.js';

/** A digest not to ask a lease for again while the tag points at it (see settledDigestRetryMs). */
export interface SettledDigest {
  digest: string;
  why: string;
  atMs: number;
}

/** While a rollback is open or completed: run `to` instead of the tag's digest while the tag shows `from`. */
export interface RollbackPin {
  from: string;
  to: string;
}

/** What the state tells the rest of the worker. */
export interface ServiceStateListener {
  /** Something the heartbeat reports changed (the step): beat at once. */
  changed(): void;
  /** A poll of this service is wanted now (the scheduler's "poll now"). */
  pollWanted(): void;
}

/**
 * What one service's worker knows, in one place: the poller, the heartbeat loop, the health
 * monitor and the repairs read and change it; only this class takes the container for exclusive work.
 */
export class ServiceState {
  /** The update step in flight; every heartbeat reports it. */
  private currentStep: UpdateStep = 'idle';
  /** An update, a provisioning, a restart or a reconcile is running: nothing else may touch the container. */
  private busy = false;
  /** A poll found the container busy: it runs again as soon as the container is free. */
  private pollDeferred = false;
  /** The agent is stopping: no new poll starts. */
  stopping = false;
  /** The group is paused (heartbeat answer): no update starts. */
  paused = false;
  /** Start-up reconcile has not succeeded yet: no poll, and the monitor retries it. */
  needsReconcile = true;
  /** The digest the service's container runs, or ran last when it has gone missing (re-created from it: I2). */
  runningDigest: string | null = null;
  /** The group's current rollout seq as the coordinator last said; a poll's reading of the tag is newer than it. */
  knownRolloutSeq = 0;
  rollbackPin: RollbackPin | undefined;
  settled: SettledDigest | undefined;
  /** The coordinator asked for a poll (a push): the next poll runs even during the registry backoff. */
  pollRequested = false;
  /** Since when the heartbeats have seen the service ready without a break; undefined while not ready. */
  readySinceMs: number | undefined;

  constructor(private readonly listener: ServiceStateListener) {}

  get step(): UpdateStep {
    return this.currentStep;
  }

  get isBusy(): boolean {
    return this.busy;
  }

  /** Reported at once: the heartbeat beats when the step changes. */
  setStep(step: UpdateStep): void {
    if (this.currentStep === step) return;
    this.currentStep = step;
    this.listener.changed();
  }

  /** Back to idle without a beat of its own (the caller reports the change it ends with, if any). */
  resetStep(): void {
    this.currentStep = 'idle';
  }

  /** Something worth reporting changed: the heartbeat beats at once. */
  markChanged(): void {
    this.listener.changed();
  }

  /**
   * Runs `body` with the container taken; false (and `body` not run) when it was taken already,
   * in which case `whenBusy` runs first, with no await between the check and it.
   */
  async exclusive(body: () => Promise<void>, whenBusy?: () => void): Promise<boolean> {
    if (this.busy) {
      whenBusy?.();
      return false;
    }
    this.busy = true;
    try {
      await body();
      return true;
    } finally {
      this.busy = false;
      // A poll that found the container busy (a health check, a restart) runs now, not at the next slot.
      if (this.pollDeferred && !this.stopping) {
        this.pollDeferred = false;
        this.listener.pollWanted();
      }
    }
  }

  /** A poll found the container taken: it runs once the container is free. */
  deferPoll(): void {
    this.pollDeferred = true;
  }

  /** A push or an undrain: poll now, and keep the request until a poll of this service runs. */
  requestPoll(): void {
    this.pollRequested = true;
    this.listener.pollWanted();
  }

  /** The tag's digest, or the rollback's target while the group is rolled back from it. */
  digestToRun(tagDigest: string): string {
    const pin = this.rollbackPin;
    return pin !== undefined && pin.from === tagDigest ? pin.to : tagDigest;
  }

  /**
   * Follows the group's rollout as a heartbeat answer tells it. A new rollout (a push, a rollback,
   * a retry) may make a settled digest grantable: it is forgotten. The seq only grows here: an
   * answer sent before a refusal that named a newer rollout may arrive after it. Returns what changed.
   */
  followRollout(
    seq: number,
    rolledBackFrom: string | null,
    targetDigest: string | null,
  ): { forgotten: SettledDigest | undefined; pinChanged: boolean } {
    let forgotten: SettledDigest | undefined;
    if (seq > this.knownRolloutSeq) {
      forgotten = this.settled;
      this.settled = undefined;
      this.knownRolloutSeq = seq;
    }
    const pin = rolledBackFrom !== null && targetDigest !== null ? { from: rolledBackFrom, to: targetDigest } : undefined;
    const pinChanged = pin?.from !== this.rollbackPin?.from || pin?.to !== this.rollbackPin?.to;
    this.rollbackPin = pin;
    return { forgotten, pinChanged };
  }
}
