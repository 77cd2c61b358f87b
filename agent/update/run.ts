import { setMaxListeners } from 'node:events';
import { linkAbort, type LinkedAbort } from '../../shared/abort.js';
import type { RefusalReason, ReleaseOutcome, UpdateStep } from '../../shared/api/v1.js';
import type { BackoffPolicy } from '../../shared/backoff.js';
import type { Clock } from '../../shared/clock.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { Logger } from '../../shared/logger.js';
import type { RandomSource } from '../../shared/random.js';
import type { ContainerInfo, ContainerRuntime, CoordinatorClient, HealthProbe, HookRunner, Readiness } from '../ports.js';
import { oldContainerName } from './containers.js';
import type { HeldLease } from './lease.js';
import type { JournalEntry, UpdateJournal } from './state-file.js';

/**
 * One update run and the step runner the update flow (updater.ts) is written in: what a run
 * carries from step to step, what interrupts it, and how each step reports, logs and journals.
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

export type InterruptKind = 'failed' | 'lease-lost' | 'aborted' | 'error';

/** What stops the flow: `failed` = the new image failed; the others are not the image's fault. */
export class Interrupted extends Error {
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
export interface StepNote {
  outcome: StepOutcome;
  fields: Record<string, unknown>;
}

export interface Run {
  readonly deps: UpdateDeps;
  readonly service: ServiceConfig;
  readonly target: UpdateTarget;
  readonly name: string;
  readonly oldName: string;
  /** The agent's shutdown signal. */
  readonly shutdown: AbortSignal;
  /** Fires on shutdown or when the lease is lost: every wait of the flow listens to it. */
  readonly controller: LinkedAbort;
  readonly startedAtMs: number;
  previous: ContainerInfo | undefined;
  lease: HeldLease | undefined;
  /** Readiness was set to draining. */
  drained: boolean;
  /** The old container was (being) stopped: an interruption from here on needs a rollback. */
  touched: boolean;
  dispose: () => void;
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function createRun(deps: UpdateDeps, service: ServiceConfig, target: UpdateTarget, signal?: AbortSignal): Run {
  const shutdown = signal ?? new AbortController().signal;
  const controller = linkAbort(shutdown);
  // Every sleep and health check listens to this signal; a long update adds many listeners.
  setMaxListeners(0, controller.signal);
  return {
    deps,
    service,
    target,
    name: service.containerName,
    oldName: oldContainerName(service.containerName),
    shutdown,
    controller,
    startedAtMs: deps.clock.nowMs(),
    previous: undefined,
    lease: undefined,
    drained: false,
    touched: false,
    dispose: controller.dispose,
  };
}

export function classify(run: Run, error: unknown): Interrupted {
  if (error instanceof Interrupted) return error;
  if (run.lease?.lostReason !== undefined) return new Interrupted('lease-lost', run.lease.lostReason);
  if (run.shutdown.aborted) return new Interrupted('aborted', 'the agent is shutting down');
  return new Interrupted('error', describe(error));
}

/** Before a destructive step: the lease must still be held, and no shutdown may be pending. */
export function checkpoint(run: Run, before: string): void {
  const lease = run.lease;
  if (lease === undefined || !lease.isHeld()) {
    throw new Interrupted('lease-lost', `${lease?.lostReason ?? 'no lease'}; stopped before ${before}`);
  }
  if (run.shutdown.aborted) throw new Interrupted('aborted', `the agent is shutting down; stopped before ${before}`);
}

export async function writeJournal(
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

export function logJournalError(run: Run, error: unknown): void {
  run.deps.logger.error({ err: error, node: run.deps.nodeId, service: run.name }, 'update journal write failed');
}

/** Runs one step: reports it, times it, and logs exactly one line when it ends, however it ends. */
export async function step<T>(run: Run, name: UpdateStep, body: (note: StepNote) => Promise<T>): Promise<T> {
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

export function result(
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
