import { releaseMessageMaxLength, toPrintableLine, type ReleaseOutcome, type UpdateStep } from '../../shared/api/v1.js';
import type { Clock } from '../../shared/clock.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { Logger } from '../../shared/logger.js';
import type { ContainerInfo, ContainerRuntime, CoordinatorClient, HealthProbe, Readiness } from '../ports.js';
import { LeaseLostError } from '../coordinator/errors.js';
import { checkRelease } from '../coordinator/answer-checks.js';
import { oldContainerName, restorePrevious, stopAndRemove } from './containers.js';
import { waitUntilHealthy, type HealthResult } from './health.js';
import type { JournalEntry, UpdateJournal } from './state-file.js';

/**
 * docs/architecture.md step 10 and I5: at agent start, finish whatever a crash left half done, so that the
 * service ends with exactly one container, named `<name>`, running one digest, and no strays.
 *
 * | journal                     | containers found                         | what reconcile does                                      |
 * |-----------------------------|------------------------------------------|----------------------------------------------------------|
 * | step `success`              | new container under `<name>`             | keep it, remove `<name>-baton-old`, release `updated`    |
 * | any other step              | anything                                 | remove a new container, restore the previous one, start it; release `abandoned` (`failed` when the journal recorded the new image failing) |
 * | none                        | `<name>-baton-old` exists                | crash mid-update with a lost journal: prefer the previous container, as above (no lease to release) |
 * | none                        | only `<name>`                            | start it if stopped                                      |
 * | none or any                 | no container at all                      | report `missing`: the caller creates it (auto-heal)       |
 *
 * Why `abandoned` and not `failed` after a crash: the new image never finished its health checks, so
 * it was never proven bad; a crash of the agent is not the image's failure and must not halt the
 * rollout. The exception is a crash during the rollback of an image that DID fail: the journal then
 * carries `failureReason`, and the release is `failed` so the rollout still halts (I3).
 *
 * The release uses the journal's lease id and fencing token, once: a LeaseLost answer (the lease
 * expired while the agent was down) is expected and fine, and a coordinator outage only means the
 * lease expires by itself (I4: reconcile never waits on the coordinator).
 */

export interface ReconcileDeps {
  runtime: ContainerRuntime;
  coordinator: CoordinatorClient;
  readiness: Readiness;
  healthProbe: HealthProbe;
  journal: UpdateJournal;
  clock: Clock;
  logger: Logger;
  nodeId: string;
  onStep?: (step: UpdateStep) => void;
}

export type ReconcileAction =
  /** Nothing was half done; the container was running. */
  | 'none'
  /** The container was stopped and has been started. */
  | 'started'
  /** An interrupted update was undone: the previous container runs under `<name>` again. */
  | 'restored-previous'
  /** An update that had passed its health checks was finished: the new container stays, the old one is gone. */
  | 'committed-target'
  /** No container exists for the service: the caller must create it. */
  | 'missing';

export interface ReconcileResult {
  service: string;
  action: ReconcileAction;
  /** Every change made, in order, in words. */
  actions: string[];
  /** The digest the container under `<name>` runs now; null when missing or unknown. */
  digest: string | null;
  /** The container passed its health check (always false when missing). */
  healthy: boolean;
  healthReason?: string;
  /** How the journal's lease was handed back, or `none` when there was no journal. */
  release: ReleaseOutcome | 'not-released' | 'none';
  /**
   * When missing after an interrupted update: the digest the service ran before it. Create the
   * container from it (not from the tag) to keep I2.
   */
  previousDigest?: string | null;
}

export async function reconcile(
  deps: ReconcileDeps,
  service: ServiceConfig,
  entry: JournalEntry | undefined,
): Promise<ReconcileResult> {
  const { runtime, readiness, clock, logger } = deps;
  const name = service.containerName;
  const oldName = oldContainerName(name);
  deps.onStep?.('reconcile');
  const startMs = clock.nowMs();
  const actions: string[] = [];
  try {
    const current = await runtime.inspect(name);
    const backup = await runtime.inspect(oldName);
    const committed =
      entry?.step === 'success' && current !== undefined && current.id !== entry.previousContainerId;

    let final: ContainerInfo | undefined;
    let action: ReconcileAction;
    let releaseAs: ReleaseOutcome | undefined;
    let releaseMessage: string | undefined;

    if (committed) {
      if (backup !== undefined) {
        await stopAndRemove(runtime, backup, service.stopTimeoutSeconds);
        actions.push(`removed ${oldName} (${backup.id})`);
      }
      if (!current.running) {
        await runtime.start(name);
        actions.push(`started ${name}`);
      }
      final = await runtime.inspect(name);
      action = 'committed-target';
      releaseAs = 'updated';
    } else if (entry === undefined && backup === undefined) {
      if (current === undefined) {
        action = 'missing';
      } else if (!current.running) {
        readiness.setHealthy(name, false);
        await runtime.start(name);
        actions.push(`started ${name}`);
        action = 'started';
      } else {
        action = 'none';
      }
      final = current === undefined ? undefined : await runtime.inspect(name);
    } else {
      readiness.setHealthy(name, false);
      const restored = await restorePrevious(runtime, name, entry?.previousContainerId, service.stopTimeoutSeconds);
      actions.push(...restored.actions);
      final = restored.container;
      action = final === undefined ? 'missing' : restored.actions.length === 0 ? 'none' : 'restored-previous';
      if (entry !== undefined) {
        if (entry.step === 'rollback' && entry.failureReason !== undefined) {
          releaseAs = 'failed';
          releaseMessage = entry.failureReason;
        } else {
          releaseAs = 'abandoned';
          releaseMessage = `agent restarted during step ${entry.step}; update undone`;
        }
      }
    }

    await removeStrays(deps, service, final, actions);

    let health: HealthResult | undefined;
    if (final !== undefined) {
      // A container nothing touched (no journal, no leftover, found running) is the one that served
      // before the agent restarted: one passing check puts it back in the load balancer at once.
      // The consecutive passes and minHealthyMs are for a container that has just been (re)started.
      const untouched = action === 'none' && entry === undefined;
      const rules = untouched ? { ...service.health, consecutivePasses: 1, minHealthyMs: 0 } : service.health;
      health = await waitUntilHealthy(deps, name, rules);
      readiness.setHealthy(name, health.healthy);
    } else {
      readiness.setHealthy(name, false);
    }
    readiness.setDraining(name, false);

    const release =
      entry !== undefined && releaseAs !== undefined ? await releaseOnce(deps, entry, releaseAs, releaseMessage) : 'none';
    if (entry !== undefined) await deps.journal.clear(name);

    const result: ReconcileResult = {
      service: name,
      action,
      actions,
      digest: final?.digest ?? null,
      healthy: health?.healthy ?? false,
      ...(health !== undefined && !health.healthy ? { healthReason: health.reason } : {}),
      release,
      ...(action === 'missing' && entry !== undefined ? { previousDigest: entry.previousDigest } : {}),
    };
    const line = {
      node: deps.nodeId,
      service: name,
      digest: result.digest,
      step: 'reconcile' as const,
      durationMs: clock.nowMs() - startMs,
      outcome: action,
      actions,
      healthy: result.healthy,
      release,
      journalStep: entry?.step ?? null,
    };
    if (result.healthy || action === 'missing') logger.info(line, `reconcile: ${action}`);
    else logger.warn({ ...line, reason: result.healthReason }, `reconcile: ${action}, not healthy`);
    return result;
  } catch (error) {
    logger.error(
      { node: deps.nodeId, service: name, step: 'reconcile', durationMs: clock.nowMs() - startMs, outcome: 'error', actions, err: error },
      'reconcile failed; the journal is kept',
    );
    throw error;
  } finally {
    deps.onStep?.('idle');
  }
}

/** Any other container labelled for the service (not the one kept) is stopped and removed. */
async function removeStrays(
  deps: ReconcileDeps,
  service: ServiceConfig,
  keep: ContainerInfo | undefined,
  actions: string[],
): Promise<void> {
  const all = await deps.runtime.listForService(service.containerName);
  for (const container of all) {
    if (keep !== undefined && (container.id === keep.id || container.name === service.containerName)) continue;
    await stopAndRemove(deps.runtime, container, service.stopTimeoutSeconds);
    actions.push(`removed stray container ${container.name} (${container.id})`);
  }
}

async function releaseOnce(
  deps: ReconcileDeps,
  entry: JournalEntry,
  outcome: ReleaseOutcome,
  message: string | undefined,
): Promise<ReleaseOutcome | 'not-released'> {
  try {
    const answer = await deps.coordinator.release(entry.leaseId, {
      fencingToken: entry.fencingToken,
      outcome,
      ...(message === undefined ? {} : { message: toPrintableLine(message, releaseMessageMaxLength) }),
    });
    const wrong = checkRelease(entry.leaseId, answer);
    if (wrong !== undefined) throw wrong;
    return outcome;
  } catch (error) {
    if (error instanceof LeaseLostError) {
      deps.logger.info({ leaseId: entry.leaseId, outcome }, 'lease from the journal had already ended');
    } else {
      deps.logger.warn({ err: error, leaseId: entry.leaseId, outcome }, 'could not release the journal lease; it will expire');
    }
    return 'not-released';
  }
}
