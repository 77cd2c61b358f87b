import { containerSpecFor, stopAndRemove } from './containers.js';
import { waitUntilHealthy } from './health.js';
import { releaseLease } from './lease-requests.js';
import { checkpoint, describe, Interrupted, logJournalError, result, step, writeJournal, type Run, type UpdateResult } from './run.js';

/** The update's steps that change the node, in order (docs/architecture.md, "The update, step by step"). */

/** Not a numbered step: what runs now decides whether there is anything to do. */
export async function preflight(run: Run): Promise<UpdateResult | undefined> {
  const { runtime } = run.deps;
  const current = await runtime.inspect(run.name);
  if (current === undefined) {
    return result(run, 'error', { reason: `container ${run.name} does not exist; create it first`, runningDigest: null });
  }
  run.previous = current;
  if (current.digest === run.target.digest) {
    return result(run, 'skipped', { reason: 'already on the target digest', runningDigest: current.digest });
  }
  const leftover = await runtime.inspect(run.oldName);
  if (leftover !== undefined) {
    return result(run, 'error', {
      reason: `${run.oldName} exists from an earlier interrupted update; reconcile first`,
      runningDigest: current.digest,
    });
  }
  return undefined;
}

/** Step 3: pull by digest while the old container still serves (skipped when the image is already here). */
export async function pullImage(run: Run): Promise<void> {
  const { runtime } = run.deps;
  await step(run, 'pull', async (note) => {
    if (await runtime.hasImage(run.target.imageByDigest)) {
      note.outcome = 'skipped';
      note.fields.reason = 'image already present';
      return;
    }
    try {
      await runtime.pull(run.target.imageByDigest, run.controller.signal);
    } catch (error) {
      if (run.controller.signal.aborted) throw error;
      throw new Interrupted('error', `pull of ${run.target.imageByDigest} failed: ${describe(error)}`);
    }
  });
}

/** Step 5: readiness 503, the preDrain hook, then wait drainSeconds so the load balancer stops sending. */
export async function drain(run: Run): Promise<void> {
  const { readiness, clock } = run.deps;
  await step(run, 'drain', async () => {
    await writeJournal(run, 'drain');
    run.drained = true;
    readiness.setDraining(run.name, true);
    const hook = run.service.hooks.preDrain;
    if (hook) await runHook(run, 'preDrain', hook, { failOnError: true });
    await clock.sleep(run.service.drainSeconds * 1_000, run.controller.signal);
  });
}

/**
 * Step 6: stop the old container gracefully, then rename it to `<name>-baton-old` for a rollback.
 * One journal entry (step `stop`) covers both changes: reconcile reads the containers' actual state.
 */
export async function stopOld(run: Run): Promise<void> {
  const { runtime, readiness } = run.deps;
  await step(run, 'stop', async () => {
    checkpoint(run, 'stopping the old container');
    await writeJournal(run, 'stop');
    readiness.setHealthy(run.name, false);
    run.touched = true;
    await runtime.stop(run.name, run.service.stopTimeoutSeconds);
    checkpoint(run, 'renaming the old container');
    await runtime.rename(run.name, run.oldName);
  });
}

/** Step 7: create and start the new container from the declared spec and the target digest. */
export async function startNew(run: Run): Promise<void> {
  const { runtime } = run.deps;
  await step(run, 'start', async () => {
    checkpoint(run, 'creating the new container');
    await writeJournal(run, 'start');
    try {
      await runtime.create(containerSpecFor(run.service), run.name, run.target.imageByDigest, run.target.digest);
    } catch (error) {
      throw new Interrupted('failed', `create failed: ${describe(error)}`);
    }
    checkpoint(run, 'starting the new container');
    try {
      await runtime.start(run.name);
    } catch (error) {
      throw new Interrupted('failed', `start failed: ${describe(error)}`);
    }
  });
}

/** Step 8: consecutive passes within the deadline, then healthy for the minimum time. */
export async function checkHealth(run: Run): Promise<void> {
  await step(run, 'health', async (note) => {
    await writeJournal(run, 'health');
    const health = await waitUntilHealthy(run.deps, run.name, run.service.health, run.controller.signal);
    note.fields.checks = health.checks;
    if (!health.healthy) throw new Interrupted('failed', `health check failed: ${health.reason}`);
  });
}

/**
 * Step 9, success: journal the commit point, readiness back to 200, the postReady hook, wait
 * readmitSeconds so the load balancer takes the node back, remove the old container, release
 * `updated`. This step ignores shutdown and lease loss: the new container is proven, and the wait
 * is what keeps the next node from draining before this one is back (I1).
 */
export async function succeed(run: Run): Promise<UpdateResult> {
  const { readiness, runtime, clock, journal, logger } = run.deps;
  return step(run, 'success', async (note) => {
    await writeJournal(run, 'success', { mustSucceed: false });
    readiness.setHealthy(run.name, true);
    readiness.setDraining(run.name, false);
    run.drained = false;
    const hook = run.service.hooks.postReady;
    if (hook) await runHook(run, 'postReady', hook, { failOnError: false });
    await clock.sleep(run.service.readmitSeconds * 1_000);
    let oldRemoved = true;
    try {
      const old = await runtime.inspect(run.oldName);
      if (old !== undefined) await stopAndRemove(runtime, old, run.service.stopTimeoutSeconds);
    } catch (error) {
      // Keep the journal (step success): reconcile removes it later and keeps the new container.
      oldRemoved = false;
      note.fields.removeError = describe(error);
      logger.warn({ err: error, service: run.name, container: run.oldName }, 'could not remove the old container');
    }
    const release = await releaseLease(run, 'updated');
    note.fields.release = release;
    if (oldRemoved) await journal.clear(run.name).catch((e: unknown) => logJournalError(run, e));
    return result(run, 'updated', { runningDigest: run.target.digest, release });
  });
}

async function runHook(
  run: Run,
  which: 'preDrain' | 'postReady',
  hook: { command: string; timeoutMs: number },
  options: { failOnError: boolean },
): Promise<void> {
  const environment = {
    BATON_HOOK: which,
    BATON_NODE_ID: run.deps.nodeId,
    BATON_SERVICE: run.name,
    BATON_GROUP: run.service.group,
    BATON_TARGET_DIGEST: run.target.digest,
    BATON_PREVIOUS_DIGEST: run.previous?.digest ?? '',
  };
  let problem: string | undefined;
  try {
    const code = await run.deps.hooks.run(hook.command, hook.timeoutMs, environment);
    if (code !== 0) problem = `${which} hook exited with code ${code}`;
  } catch (error) {
    problem = `${which} hook failed: ${describe(error)}`;
  }
  if (problem === undefined) return;
  if (options.failOnError) throw new Interrupted('error', problem);
  run.deps.logger.warn({ node: run.deps.nodeId, service: run.name, hook: which }, problem);
}
