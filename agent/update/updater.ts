import { setMaxListeners } from 'node:events';
import type { RefusalReason, ReleaseOutcome, UpdateStep } from '../../shared/api/v1.js';
import { backoffDelayMs, withJitterMs, type BackoffPolicy } from '../../shared/backoff.js';
import type { Clock } from '../../shared/clock.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { Logger } from '../../shared/logger.js';
import type { RandomSource } from '../../shared/random.js';
import type {
  ContainerInfo,
  ContainerRuntime,
  CoordinatorClient,
  HealthProbe,
  HookRunner,
  Readiness,
} from '../ports.js';
import { containerSpecFor, oldContainerName, restorePrevious, stopAndRemove } from './containers.js';
import { waitUntilHealthy } from './health.js';
import { HeldLease, isLeaseLostError } from './lease.js';
import type { JournalEntry, UpdateJournal } from './state-file.js';

/**
 * The agent's update of one service, DESIGN.md "The agent's update, in order", steps 3 to 9:
 * pull, lease, drain, stop, start, health, then success or rollback. Each step is one named
 * function below, logs exactly one line when it ends, and reports itself through `onStep`.
 *
 * Safety rules the flow keeps:
 * - Nothing destructive happens without the lease: before drain ends (stop), before stop, before
 *   the rename and before create, the lease must still be held (not lost, not past its local expiry).
 * - The journal is written before each destructive step, so a crash anywhere can be reconciled (I5).
 * - Whatever interrupts the flow after the old container was stopped (new image unhealthy, lease
 *   lost, shutdown, an engine error) ends with the old container back under its name and running
 *   (I2, I3). Only a failure of the NEW image releases the lease as `failed` (halting the rollout).
 */

export interface UpdateDeps {
  runtime: ContainerRuntime;
  coordinator: CoordinatorClient;
  readiness: Readiness;
  healthProbe: HealthProbe;
  hooks: HookRunner;
  journal: UpdateJournal;
  clock: Clock;
  random: RandomSource;
  logger: Logger;
  nodeId: string;
  /** True when a renew or release error means the coordinator no longer holds our lease. Default: `code === 'LEASE_LOST'`. */
  isLeaseLost?: (error: unknown) => boolean;
  /** Told the step in flight (for the heartbeat); `idle` when the flow returns. */
  onStep?: (step: UpdateStep) => void;
  /** Delays after failed acquire requests (transport errors); a refusal waits its retryAfterMs plus jitter instead. */
  leaseRetryBackoff?: BackoffPolicy;
  /**
   * Asked before every lease request: a reason not to ask now (the engine is unreachable, so the
   * update could not proceed and the slot would be held for nothing), or undefined.
   */
  holdLeaseRequest?: () => Promise<string | undefined>;
}

export interface UpdateTarget {
  /** The digest to run (this host's platform manifest). */
  digest: string;
  /** `repo@sha256:...`: what to pull and create the container from. */
  imageByDigest: string;
  /** The group's rollout seq the agent knew before the poll that found `digest` (see LeaseRequest). */
  observedAfterSeq?: number;
}

export type UpdateOutcome =
  /** The node runs the target digest, healthy; the lease was released as `updated`. */
  | 'updated'
  /** The new image failed (health, create, start); the old container runs again; released as `failed`. */
  | 'rolled-back'
  /** Nothing was changed: already on target, or the rollout is halted, aborted or superseded. */
  | 'skipped'
  /** The lease was lost mid-update; the old container runs again; no release (the coordinator ended the lease). */
  | 'lease-lost'
  /** The signal fired (agent shutdown); the old container runs again; released as `abandoned`. */
  | 'aborted'
  /** Something else went wrong (pull, hook, engine, journal); see `reason`. Restored when `runningDigest` is set. */
  | 'error';

export interface UpdateResult {
  outcome: UpdateOutcome;
  /** Why, for every outcome but `updated`. */
  reason?: string;
  targetDigest: string;
  previousDigest: string | null;
  /**
   * Digest of the container running under the service's name when the flow returned: the target
   * after `updated`, the previous one otherwise; null when the flow could not tell (a restore
   * failed: the journal is kept, and reconcile will finish the job).
   */
  runningDigest: string | null;
  /** How the lease was handed back: a release outcome, `not-released` (lost, or the release failed), or `none` (no lease taken). */
  release: ReleaseOutcome | 'not-released' | 'none';
  /** After a rollback: whether the restored container passed its health check. */
  restoredHealthy?: boolean;
  /** When `skipped` because of the coordinator's refusal: a final one, or `stale` (poll again). */
  refusal?: RefusalReason;
  /** With `refusal`: the group's current rollout seq, as the coordinator said. */
  rolloutSeq?: number;
  durationMs: number;
}

/** Refusals that end the attempt: waiting would not help (`stale`: the tag moved; the agent polls again). */
const attemptEndingRefusals: ReadonlySet<RefusalReason> = new Set(['halted', 'aborted', 'superseded', 'rolled-back', 'stale', 'drained']);

/** After a failed acquire request (coordinator unreachable): short, capped, reset by any answer. */
const defaultLeaseRetryBackoff: BackoffPolicy = { initialDelayMs: 1_000, maxDelayMs: 5_000, multiplier: 2 };

/** Delays between attempts to deliver a release. */
const releaseRetryBackoff: BackoffPolicy = { initialDelayMs: 500, maxDelayMs: 5_000, multiplier: 2 };

type InterruptKind = 'failed' | 'lease-lost' | 'aborted' | 'error';

/** What stops the flow: `failed` = the new image failed; the others are not the image's fault. */
class Interrupted extends Error {
  constructor(
    readonly kind: InterruptKind,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'Interrupted';
  }
}

type StepOutcome = 'ok' | 'skipped' | 'failed' | 'lease-lost' | 'aborted' | 'error';

/** A step may set its logged outcome (default `ok`) and add fields to its log line. */
interface StepNote {
  outcome: StepOutcome;
  fields: Record<string, unknown>;
}

interface Run {
  readonly deps: UpdateDeps;
  readonly service: ServiceConfig;
  readonly target: UpdateTarget;
  readonly name: string;
  readonly oldName: string;
  /** The agent's shutdown signal. */
  readonly shutdown: AbortSignal;
  /** Fires on shutdown or when the lease is lost: every wait of the flow listens to it. */
  readonly controller: AbortController;
  readonly isLeaseLost: (error: unknown) => boolean;
  readonly startedAtMs: number;
  previous: ContainerInfo | undefined;
  lease: HeldLease | undefined;
  /** Readiness was set to draining. */
  drained: boolean;
  /** The old container was (being) stopped: an interruption from here on needs a rollback. */
  touched: boolean;
  dispose: () => void;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function createRun(deps: UpdateDeps, service: ServiceConfig, target: UpdateTarget, signal?: AbortSignal): Run {
  const controller = new AbortController();
  // Every sleep and health check listens to this signal; a long update adds many listeners.
  setMaxListeners(0, controller.signal);
  const shutdown = signal ?? new AbortController().signal;
  const onShutdown = (): void => controller.abort(shutdown.reason);
  if (shutdown.aborted) onShutdown();
  else shutdown.addEventListener('abort', onShutdown, { once: true });
  return {
    deps,
    service,
    target,
    name: service.containerName,
    oldName: oldContainerName(service.containerName),
    shutdown,
    controller,
    isLeaseLost: deps.isLeaseLost ?? isLeaseLostError,
    startedAtMs: deps.clock.nowMs(),
    previous: undefined,
    lease: undefined,
    drained: false,
    touched: false,
    dispose: () => shutdown.removeEventListener('abort', onShutdown),
  };
}

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

// ---- The steps, in order

/** Not a DESIGN step: what runs now decides whether there is anything to do. */
async function preflight(run: Run): Promise<UpdateResult | undefined> {
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
async function pullImage(run: Run): Promise<void> {
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

/**
 * Step 4: ask for a lease until granted. A refusal is retried after its retryAfterMs plus up to half
 * of it in jitter (no growth: waiting one's turn is normal); halted, aborted, superseded, rolled-back
 * and stale end the attempt (`skipped`). Transport errors are retried with a short capped backoff: a coordinator
 * outage changes nothing on the node (I4), and it is asked again soon after it is back.
 */
async function acquireLease(run: Run): Promise<UpdateResult | undefined> {
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
        const decision = await coordinator.acquire(
          {
            nodeId,
            group: run.service.group,
            targetDigest: run.target.digest,
            image: run.service.image,
            ...(observedAfterSeq === undefined ? {} : { observedAfterSeq }),
          },
          signal,
        );
        note.fields.attempts = attempt + 1;
        if (decision.granted) {
          const lease = new HeldLease(
            decision,
            sentAtMs,
            { coordinator, clock, random, logger: run.deps.logger, isLeaseLost: run.isLeaseLost },
            (reason) => run.controller.abort(new Interrupted('lease-lost', reason)),
          );
          run.lease = lease;
          note.fields.leaseId = lease.leaseId;
          note.fields.fencingToken = lease.fencingToken;
          if (signal.aborted) throw signal.reason; // granted as we shut down: recover() hands it back
          lease.startRenewing();
          return undefined;
        }
        if (attemptEndingRefusals.has(decision.reason)) {
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
        delayMs = withJitterMs(decision.retryAfterMs, decision.retryAfterMs / 2, random);
      } catch (error) {
        if (signal.aborted) throw error;
        run.deps.logger.debug({ err: error, service: run.name }, 'lease request failed; retrying');
        delayMs = backoffDelayMs(failures, random, policy);
        failures += 1;
      }
      attempt += 1;
      await clock.sleep(delayMs, signal);
    }
  });
}

/** Step 5: readiness 503, the preDrain hook, then wait drainSeconds so the load balancer stops sending. */
async function drain(run: Run): Promise<void> {
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
async function stopOld(run: Run): Promise<void> {
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
async function startNew(run: Run): Promise<void> {
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
async function checkHealth(run: Run): Promise<void> {
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
async function succeed(run: Run): Promise<UpdateResult> {
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

// ---- After an interruption

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
async function recover(run: Run, error: unknown): Promise<UpdateResult> {
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

function classify(run: Run, error: unknown): Interrupted {
  if (error instanceof Interrupted) return error;
  if (run.lease?.lostReason !== undefined) return new Interrupted('lease-lost', run.lease.lostReason);
  if (run.shutdown.aborted) return new Interrupted('aborted', 'the agent is shutting down');
  return new Interrupted('error', describe(error));
}

// ---- Helpers

/** Before a destructive step: the lease must still be held, and no shutdown may be pending. */
function checkpoint(run: Run, before: string): void {
  const lease = run.lease;
  if (lease === undefined || !lease.isHeld()) {
    throw new Interrupted('lease-lost', `${lease?.lostReason ?? 'no lease'}; stopped before ${before}`);
  }
  if (run.shutdown.aborted) throw new Interrupted('aborted', `the agent is shutting down; stopped before ${before}`);
}

async function writeJournal(
  run: Run,
  step: UpdateStep,
  options: { mustSucceed?: boolean; failureReason?: string | undefined } = {},
): Promise<void> {
  const lease = run.lease;
  const previous = run.previous;
  if (lease === undefined || previous === undefined) throw new Error('journal written without a lease');
  const entry: JournalEntry = {
    service: run.name,
    group: run.service.group,
    targetDigest: run.target.digest,
    targetImage: run.target.imageByDigest,
    previousDigest: previous.digest,
    previousContainerId: previous.id,
    oldContainerName: run.oldName,
    leaseId: lease.leaseId,
    fencingToken: lease.fencingToken,
    step,
    startedAtMs: run.startedAtMs,
    updatedAtMs: run.deps.clock.nowMs(),
    ...(options.failureReason === undefined ? {} : { failureReason: options.failureReason.slice(0, 2_000) }),
  };
  try {
    await run.deps.journal.write(run.name, entry);
  } catch (error) {
    if (options.mustSucceed === false) {
      logJournalError(run, error);
      return;
    }
    throw new Interrupted('error', `cannot write the update journal: ${describe(error)}`);
  }
}

function logJournalError(run: Run, error: unknown): void {
  run.deps.logger.error({ err: error, node: run.deps.nodeId, service: run.name }, 'update journal write failed');
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

/**
 * Hands the lease back. A LeaseLost answer ends it (nothing to hand back); other errors are retried
 * while the lease is still held (the renewer keeps it alive), so a `failed` verdict reaches the
 * coordinator if at all possible. Returns how it ended.
 */
async function releaseLease(run: Run, outcome: ReleaseOutcome, message?: string): Promise<ReleaseOutcome | 'not-released'> {
  const lease = run.lease;
  if (lease === undefined) return 'not-released';
  const { coordinator, clock, random, logger } = run.deps;
  for (let attempt = 0; ; attempt += 1) {
    try {
      await coordinator.release(lease.leaseId, {
        fencingToken: lease.fencingToken,
        outcome,
        ...(message === undefined ? {} : { message: message.slice(0, 2_000) }),
      });
      await lease.stop();
      return outcome;
    } catch (error) {
      if (run.isLeaseLost(error)) {
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

/** Runs one step: reports it, times it, and logs exactly one line when it ends, however it ends. */
async function step<T>(run: Run, name: UpdateStep, body: (note: StepNote) => Promise<T>): Promise<T> {
  const { clock, logger, nodeId, onStep } = run.deps;
  onStep?.(name);
  const startMs = clock.nowMs();
  const note: StepNote = { outcome: 'ok', fields: {} };
  const line = (outcome: StepOutcome, extra: Record<string, unknown>): Record<string, unknown> => ({
    node: nodeId,
    service: run.name,
    digest: run.target.digest,
    step: name,
    durationMs: clock.nowMs() - startMs,
    outcome,
    ...note.fields,
    ...extra,
  });
  try {
    const value = await body(note);
    const fields = line(note.outcome, {});
    if (note.outcome === 'ok' || note.outcome === 'skipped') logger.info(fields, `${name}: ${note.outcome}`);
    else logger.warn(fields, `${name}: ${note.outcome}`);
    return value;
  } catch (error) {
    const cause = classify(run, error);
    const outcome: StepOutcome = cause.kind;
    logger.warn(line(outcome, { reason: cause.reason }), `${name}: ${outcome}`);
    throw cause;
  }
}

function result(
  run: Run,
  outcome: UpdateOutcome,
  fields: Partial<Omit<UpdateResult, 'outcome' | 'targetDigest' | 'previousDigest' | 'durationMs'>> & {
    runningDigest: string | null;
  },
): UpdateResult {
  return {
    outcome,
    targetDigest: run.target.digest,
    previousDigest: run.previous?.digest ?? null,
    release: run.lease === undefined ? 'none' : 'not-released',
    durationMs: run.deps.clock.nowMs() - run.startedAtMs,
    ...fields,
  };
}
