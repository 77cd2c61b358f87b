import type { ServiceConfig } from '../../shared/config/agent.js';
import { acquireLease } from './lease-requests.js';
import { recover } from './rollback.js';
import { createRun, type UpdateDeps, type UpdateResult, type UpdateTarget } from './run.js';
import { checkHealth, drain, preflight, pullImage, startNew, stopOld, succeed } from './steps.js';

export type { UpdateDeps, UpdateOutcome, UpdateResult, UpdateTarget } from './run.js';

/**
 * The agent's update of one service, docs/architecture.md "The update, step by step", steps 3 to 9:
 * pull, lease, drain, stop, start, health, then success or rollback. Each step is one named
 * function (steps.ts, lease-requests.ts, rollback.ts), logs exactly one line when it ends, and
 * reports itself through `onStep` (the step runner is in run.ts).
 *
 * Safety rules the flow keeps:
 * - Nothing destructive happens without the lease: before drain ends (stop), before stop, before
 *   the rename and before create, the lease must still be held (not lost, not past its local expiry).
 * - The journal is written before each destructive step, so a crash anywhere can be reconciled (I5).
 * - Whatever interrupts the flow after the old container was stopped (new image unhealthy, lease
 *   lost, shutdown, an engine error) ends with the old container back under its name and running
 *   (I2, I3). Only a failure of the NEW image releases the lease as `failed` (halting the rollout).
 */

/**
 * Updates one service to `target`, top to bottom. Never throws for an expected failure: the
 * result says what happened and what the node runs now. `signal` is the agent's shutdown: the
 * flow then stops at the next safe point, puts the old container back if it was touched, and
 * releases the lease as `abandoned` (a shutdown says nothing about the image). A shutdown during
 * the `success` step lets that step finish (at most readmitSeconds plus the postReady hook).
 */
export async function runUpdate(
  deps: UpdateDeps,
  service: ServiceConfig,
  target: UpdateTarget,
  signal?: AbortSignal,
): Promise<UpdateResult> {
  const run = createRun(deps, service, target, signal);
  try {
    const nothingToDo = await preflight(run);
    if (nothingToDo) return nothingToDo;
    if (service.prePull) await pullImage(run);
    const refused = await acquireLease(run);
    if (refused) return refused;
    if (!service.prePull) await pullImage(run);
    await drain(run);
    await stopOld(run);
    await startNew(run);
    await checkHealth(run);
    return await succeed(run);
  } catch (error) {
    return await recover(run, error);
  } finally {
    await run.lease?.stop();
    run.dispose();
    deps.onStep?.('idle');
  }
}
