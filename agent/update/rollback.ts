import { restorePrevious } from './containers.js';
import { waitUntilHealthy } from './health.js';
import { releaseLease } from './lease-requests.js';
import { classify, logJournalError, result, step, writeJournal, type Interrupted, type Run, type UpdateOutcome, type UpdateResult } from './run.js';

/**
 * Step 9, failure (and every other interruption once the old container was touched): remove the
 * new container, rename the old one back, start it, check its health, readiness back on.
 */
async function rollback(run: Run, cause: Interrupted): Promise<{ restored: boolean; healthy: boolean; digest: string | null }> {
  const { runtime, readiness } = run.deps;
  try {
    return await step(run, 'rollback', async (note) => {
      note.fields.cause = cause.kind;
      note.fields.reason = cause.reason;
      await writeJournal(run, 'rollback', {
        mustSucceed: false,
        failureReason: cause.kind === 'failed' ? cause.reason : undefined,
      });
      readiness.setDraining(run.name, true);
      readiness.setHealthy(run.name, false);
      const restored = await restorePrevious(
        runtime,
        run.name,
        run.previous?.id,
        run.service.stopTimeoutSeconds,
      );
      note.fields.actions = restored.actions;
      if (restored.container === undefined || !restored.isPrevious) {
        note.outcome = 'failed';
        return { restored: false, healthy: false, digest: restored.container?.digest ?? null };
      }
      const health = await waitUntilHealthy(run.deps, run.name, run.service.health);
      readiness.setHealthy(run.name, health.healthy);
      readiness.setDraining(run.name, false);
      run.drained = false;
      if (!health.healthy) {
        note.outcome = 'failed';
        note.fields.restoredHealth = health.reason;
      }
      return { restored: true, healthy: health.healthy, digest: restored.container.digest };
    });
  } catch {
    return { restored: false, healthy: false, digest: null };
  }
}

/**
 * Decides what an interruption means. Before the lease: nothing changed, nothing to hand back.
 * Under the lease: undrain (untouched) or roll back (touched), then hand the lease back:
 * - the new image failed → `failed` (the rollout halts: I3);
 * - shutdown, or an error that is not the image's → `abandoned` (the node is as it was);
 * - lease lost: the coordinator ended it and would refuse a release, so none is sent; when it only
 *   expired by our clock (coordinator unreachable), one `abandoned` release is tried in case it
 *   still holds it, which frees the slot sooner and is refused harmlessly otherwise.
 * If the old container cannot be restored, the lease is NOT released (the node is out of service)
 * and the journal is kept for reconcile.
 */
export async function recover(run: Run, error: unknown): Promise<UpdateResult> {
  const cause = classify(run, error);
  const lease = run.lease;
  const outcome: UpdateOutcome =
    cause.kind === 'failed'
      ? 'rolled-back'
      : cause.kind === 'lease-lost'
        ? 'lease-lost'
        : cause.kind === 'aborted'
          ? 'aborted'
          : 'error';
  if (lease === undefined) {
    return result(run, outcome === 'rolled-back' ? 'error' : outcome, {
      reason: cause.reason,
      runningDigest: run.previous?.digest ?? null,
    });
  }

  let runningDigest = run.previous?.digest ?? null;
  let restoredHealthy: boolean | undefined;
  if (run.touched) {
    const rolledBack = await rollback(run, cause);
    restoredHealthy = rolledBack.healthy;
    if (!rolledBack.restored) {
      run.deps.logger.error(
        { node: run.deps.nodeId, service: run.name, reason: cause.reason },
        'could not restore the previous container; keeping the lease and the journal for reconcile',
      );
      return result(run, 'error', {
        reason: `${cause.reason}; then the rollback failed`,
        runningDigest: rolledBack.digest,
        release: 'not-released',
        restoredHealthy: false,
      });
    }
    runningDigest = rolledBack.digest;
  } else if (run.drained) {
    run.deps.readiness.setDraining(run.name, false);
    run.drained = false;
  }

  let release: UpdateResult['release'];
  if (cause.kind === 'failed') release = await releaseLease(run, 'failed', cause.reason);
  else if (cause.kind === 'lease-lost' && lease.lostByCoordinator) release = 'not-released';
  else release = await releaseLease(run, 'abandoned', cause.reason);
  await run.deps.journal.clear(run.name).catch((e: unknown) => logJournalError(run, e));
  return result(run, outcome, {
    reason: cause.reason,
    runningDigest,
    release,
    ...(restoredHealthy === undefined ? {} : { restoredHealthy }),
  });
}
