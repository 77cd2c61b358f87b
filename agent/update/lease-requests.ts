import { isFinalRefusal, releaseMessageMaxLength, toPrintableLine, type RefusalReason, type ReleaseOutcome } from '../../shared/api/v1.js';
import { backoffDelayMs, withJitterMs, type BackoffPolicy } from '../../shared/backoff.js';
import { checkGrant, checkRelease } from '../coordinator/answer-checks.js';
import { CoordinatorProtocolError, LeaseLostError } from '../coordinator/errors.js';
import { HeldLease } from './lease.js';
import { Interrupted, result, step, type Run, type UpdateResult } from './run.js';

/** The update's exchanges with the coordinator about its lease: asking until granted (step 4), handing it back (step 9). */

/** Refusals that end this attempt: final ones, `stale` (poll again at once) and `drained` (wait for the undrain). */
const endsAttempt = (reason: RefusalReason): boolean => isFinalRefusal(reason) || reason === 'stale' || reason === 'drained';

/** After a failed acquire request (coordinator unreachable): short, capped, reset by any answer. */
const defaultLeaseRetryBackoff: BackoffPolicy = { initialDelayMs: 1_000, maxDelayMs: 5_000, multiplier: 2 };

/**
 * Bounds of a refusal's `retryAfterMs`, whatever the coordinator says: a buggy or hostile one can
 * neither make the agent ask again in a tight loop nor park it for hours.
 */
export const minRefusalRetryMs = 100;
export const maxRefusalRetryMs = 5 * 60_000;

/** A refusal's retryAfterMs within [minRefusalRetryMs, maxRefusalRetryMs]. */
export function boundedRetryAfterMs(retryAfterMs: number): number {
  return Math.min(maxRefusalRetryMs, Math.max(minRefusalRetryMs, retryAfterMs));
}

/** Delays between attempts to deliver a release. */
const releaseRetryBackoff: BackoffPolicy = { initialDelayMs: 500, maxDelayMs: 5_000, multiplier: 2 };

/**
 * Step 4: ask for a lease until granted. A refusal is retried after its retryAfterMs plus up to half
 * of it in jitter (no growth: waiting one's turn is normal); halted, aborted, superseded, rolled-back
 * and stale end the attempt (`skipped`). Transport errors are retried with a short capped backoff: a coordinator
 * outage changes nothing on the node (I4), and it is asked again soon after it is back.
 */
export async function acquireLease(run: Run): Promise<UpdateResult | undefined> {
  const { coordinator, clock, random, nodeId } = run.deps;
  const policy = run.deps.leaseRetryBackoff ?? defaultLeaseRetryBackoff;
  const signal = run.controller.signal;
  return step(run, 'lease', async (note) => {
    let attempt = 0;
    let failures = 0;
    for (;;) {
      signal.throwIfAborted();
      const hold = await run.deps.holdLeaseRequest?.();
      if (hold !== undefined) {
        note.fields.held = hold;
        await clock.sleep(backoffDelayMs(Math.min(failures, 3), random, policy), signal);
        failures += 1;
        continue;
      }
      const sentAtMs = clock.nowMs();
      let delayMs: number;
      try {
        const { observedAfterSeq } = run.target;
        const request = {
          nodeId,
          group: run.service.group,
          targetDigest: run.target.digest,
          image: run.service.image,
          ...(observedAfterSeq === undefined ? {} : { observedAfterSeq }),
        };
        const decision = await coordinator.acquire(request, signal);
        note.fields.attempts = attempt + 1;
        if (decision.granted) {
          const wrong = checkGrant(request, decision);
          if (wrong !== undefined) {
            // Not ours to act on, nor to hand back: the update ends here, before anything changed.
            run.deps.logger.error(
              { err: wrong, service: run.name, leaseId: decision.leaseId, grantedTo: { nodeId: decision.nodeId, group: decision.group, targetDigest: decision.targetDigest } },
              'the coordinator granted a lease this node did not ask for; ignoring it',
            );
            throw new Interrupted('error', wrong.message);
          }
          const lease = new HeldLease(
            decision,
            sentAtMs,
            { coordinator, clock, random, logger: run.deps.logger },
            (reason) => run.controller.abort(new Interrupted('lease-lost', reason)),
          );
          run.lease = lease;
          note.fields.leaseId = lease.leaseId;
          note.fields.fencingToken = lease.fencingToken;
          if (signal.aborted) throw signal.reason; // granted as we shut down: recover() hands it back
          lease.startRenewing();
          return undefined;
        }
        if (endsAttempt(decision.reason)) {
          note.outcome = 'skipped';
          note.fields.reason = decision.reason;
          return result(run, 'skipped', {
            reason: `lease refused: ${decision.reason}${decision.message ? ` (${decision.message})` : ''}`,
            runningDigest: run.previous?.digest ?? null,
            refusal: decision.reason,
            rolloutSeq: decision.rolloutSeq,
          });
        }
        // Waiting one's turn (busy, unhealthy peer, paused) is not an error: ask again after the
        // coordinator's retryAfterMs plus up to half of it in jitter, without growing, so the next
        // node takes a freed slot within about one retryAfterMs.
        failures = 0;
        const waitMs = boundedRetryAfterMs(decision.retryAfterMs);
        delayMs = withJitterMs(waitMs, waitMs / 2, random);
      } catch (error) {
        if (signal.aborted || error instanceof Interrupted) throw error;
        run.deps.logger.debug({ err: error, service: run.name }, 'lease request failed; retrying');
        delayMs = backoffDelayMs(failures, random, policy);
        failures += 1;
      }
      attempt += 1;
      await clock.sleep(delayMs, signal);
    }
  });
}

/**
 * Hands the lease back. A LeaseLost answer ends it (nothing to hand back); other errors are retried
 * while the lease is still held (the renewer keeps it alive), so a `failed` verdict reaches the
 * coordinator if at all possible. Returns how it ended.
 */
export async function releaseLease(run: Run, outcome: ReleaseOutcome, message?: string): Promise<ReleaseOutcome | 'not-released'> {
  const lease = run.lease;
  if (lease === undefined) return 'not-released';
  const { coordinator, clock, random, logger } = run.deps;
  for (let attempt = 0; ; attempt += 1) {
    try {
      const answer = await coordinator.release(lease.leaseId, {
        fencingToken: lease.fencingToken,
        outcome,
        ...(message === undefined ? {} : { message: toPrintableLine(message, releaseMessageMaxLength) }),
      });
      const wrong = checkRelease(lease.leaseId, answer);
      if (wrong !== undefined) throw wrong;
      await lease.stop();
      return outcome;
    } catch (error) {
      if (error instanceof CoordinatorProtocolError) {
        // Asking again would get the same answer; the lease ends at its expiry on the coordinator.
        logger.error({ err: error, leaseId: lease.leaseId, outcome }, 'release answered with a protocol error; not retried');
        return 'not-released';
      }
      if (error instanceof LeaseLostError) {
        logger.warn({ err: error, leaseId: lease.leaseId, outcome }, 'release refused: the lease had already ended');
        return 'not-released';
      }
      if (!lease.isHeld()) {
        logger.error({ err: error, leaseId: lease.leaseId, outcome }, 'release failed and the lease has expired');
        return 'not-released';
      }
      logger.warn({ err: error, leaseId: lease.leaseId, outcome, attempt }, 'release failed; retrying');
      await clock.sleep(backoffDelayMs(attempt, random, releaseRetryBackoff));
    }
  }
}
