import type { LeaseGrant } from '../../shared/api/v1.js';
import { backoffDelayMs, type BackoffPolicy } from '../../shared/backoff.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { RandomSource } from '../../shared/random.js';
import { checkRenew } from '../coordinator/answer-checks.js';
import { LeaseLostError } from '../coordinator/errors.js';
import type { CoordinatorClient } from '../ports.js';

export interface LeaseKeeperDeps {
  coordinator: CoordinatorClient;
  clock: Clock;
  random: RandomSource;
  logger: Logger;
}

/**
 * A granted lease while the agent works under it. It renews in the background every ttlMs/3;
 * a renew the coordinator refuses (lease lost) ends it at once, and so does a renew answered for
 * another lease id or fencing token (a protocol error: the lease is in doubt); transient failures are retried
 * with backoff until the lease's local expiry. Expiry is measured on the agent's own clock from
 * when the request that granted (or last renewed) the lease was SENT, so clock skew with the
 * coordinator never makes the agent believe it holds a lease longer than the coordinator does.
 */
export class HeldLease {
  readonly leaseId: string;
  readonly fencingToken: number;
  readonly ttlMs: number;
  private expiresAtLocalMs: number;
  private lostReasonValue: string | undefined;
  private confirmedByCoordinator = false;
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    readonly grant: LeaseGrant,
    requestedAtMs: number,
    private readonly deps: LeaseKeeperDeps,
    private readonly onLost: (reason: string) => void,
  ) {
    this.leaseId = grant.leaseId;
    this.fencingToken = grant.fencingToken;
    this.ttlMs = grant.ttlMs;
    this.expiresAtLocalMs = requestedAtMs + grant.ttlMs;
  }

  get expiresAtMs(): number {
    return this.expiresAtLocalMs;
  }

  /** Why the lease is no longer held, or undefined while it is. */
  get lostReason(): string | undefined {
    return this.lostReasonValue;
  }

  /** True when the coordinator itself said the lease is gone (a release would be refused). */
  get lostByCoordinator(): boolean {
    return this.confirmedByCoordinator;
  }

  /** Held: not reported lost and not past its local expiry (checked against the clock now). */
  isHeld(): boolean {
    if (this.lostReasonValue !== undefined) return false;
    if (this.deps.clock.nowMs() >= this.expiresAtLocalMs) {
      this.markLost(`lease ${this.leaseId} expired (no successful renew within ${this.ttlMs} ms)`, false);
      return false;
    }
    return true;
  }

  startRenewing(): void {
    this.loop ??= this.renewLoop();
  }

  /** Stops renewing (an in-flight renew is aborted) and waits for the loop to end. */
  async stop(): Promise<void> {
    if (!this.stopController.signal.aborted) this.stopController.abort(new Error('lease no longer needed'));
    await this.loop;
  }

  markLost(reason: string, byCoordinator: boolean): void {
    if (this.lostReasonValue !== undefined) return;
    this.lostReasonValue = reason;
    this.confirmedByCoordinator = byCoordinator;
    this.onLost(reason);
  }

  private async renewLoop(): Promise<void> {
    const { clock, coordinator, logger } = this.deps;
    const stop = this.stopController.signal;
    const retryPolicy: BackoffPolicy = {
      initialDelayMs: Math.max(1, Math.min(1_000, Math.floor(this.ttlMs / 10))),
      maxDelayMs: Math.max(1, Math.floor(this.ttlMs / 3)),
      multiplier: 2,
    };
    let failures = 0;
    for (;;) {
      const delayMs =
        failures === 0 ? Math.floor(this.ttlMs / 3) : backoffDelayMs(failures - 1, this.deps.random, retryPolicy);
      const wakeMs = Math.min(clock.nowMs() + delayMs, this.expiresAtLocalMs);
      try {
        await clock.sleep(Math.max(0, wakeMs - clock.nowMs()), stop);
      } catch {
        return;
      }
      if (stop.aborted || !this.isHeld()) return;
      const sentAtMs = clock.nowMs();
      try {
        const renewed = await coordinator.renew(this.leaseId, this.fencingToken, stop);
        if (stop.aborted) return;
        const wrong = checkRenew(this.leaseId, this.fencingToken, renewed);
        if (wrong !== undefined) {
          // An answer about another lease says nothing about this one: stop acting on it now.
          logger.error({ err: wrong, leaseId: this.leaseId, answeredFor: { leaseId: renewed.leaseId, fencingToken: renewed.fencingToken } }, 'renew answered for another lease');
          this.markLost(`lease ${this.leaseId} in doubt: ${wrong.message}`, false);
          return;
        }
        this.expiresAtLocalMs = Math.max(this.expiresAtLocalMs, sentAtMs + renewed.ttlMs);
        failures = 0;
      } catch (error) {
        if (stop.aborted) return;
        if (error instanceof LeaseLostError) {
          logger.warn({ err: error, leaseId: this.leaseId }, 'the coordinator says the lease is lost');
          this.markLost(`lease ${this.leaseId} lost: the coordinator refused the renew`, true);
          return;
        }
        failures += 1;
        logger.warn(
          { err: error, leaseId: this.leaseId, failures, expiresInMs: this.expiresAtLocalMs - clock.nowMs() },
          'lease renew failed; retrying until it expires',
        );
      }
    }
  }
}
