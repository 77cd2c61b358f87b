import type { HealthReason, NodeHealth, RefusalReason, UpdateStep } from '../shared/api/v1.js';
import { backoffDelayMs, withJitterMs } from '../shared/backoff.js';
import type { Clock } from '../shared/clock.js';
import type { AgentConfig, ServiceConfig } from '../shared/config/agent.js';
import type { Logger } from '../shared/logger.js';
import type { RandomSource } from '../shared/random.js';
import { OperatorDrain } from './drain/operator-drain.js';
import type { DrainStateStore } from './drain/state.js';
import type { ContainerRuntime, CoordinatorClient, HealthProbe, HookRunner, Readiness, RegistryClient } from './ports.js';
// Types only: the Prometheus implementation (prom-client) is loaded at the first scrape (lazy-metrics.ts).
import type { AgentMetrics } from './metrics/metrics.js';
import type { ReadinessBoard } from './readiness/board.js';
import type { ProbeResult } from './readiness/probe.js';
import type { ReadinessAnswer } from './readiness/truth.js';
import { formatByDigest, parseImageReference } from '../shared/image-ref.js';
import { RegistryRateLimitedError } from './registry/errors.js';
import { PollScheduler, type CronTickSource } from './schedule/schedule.js';
import { containerSpecFor, reconcile, runUpdate, waitUntilHealthy, type UpdateDeps, type UpdateJournal } from './update/index.js';

export interface AgentDeps {
  config: AgentConfig;
  runtime: ContainerRuntime;
  registry: RegistryClient;
  coordinator: CoordinatorClient;
  /** The readiness endpoint's state: the update flow's flags and the live probes (agent/readiness/board.ts). */
  readiness: ReadinessBoard;
  healthProbe: HealthProbe;
  hooks: HookRunner;
  journal: UpdateJournal;
  /** Where an operator's drain is remembered across restarts (`<stateDir>/drained-<service>.json`). */
  drains: DrainStateStore;
  clock: Clock;
  random: RandomSource;
  logger: Logger;
  agentVersion: string;
  /** Prometheus counters (agent/metrics); nothing by default. */
  metrics?: AgentMetrics;
  /** Ticks for irregular cron expressions; node-cron by default (tests pass a fake). */
  tickSource?: CronTickSource;
  /** Set when the agent runs on its last known good config: sent with every heartbeat (agent/config/startup.ts). */
  configProblem?: string;
}

const noopAgentMetrics: AgentMetrics = {
  pollFinished() {},
  registryError() {},
  updateFinished() {},
  watchSteps() {},
};

const defaultHeartbeatIntervalMs = 5_000;
/** Registry backoff after failed polls: 5 s, 10 s, 20 s... up to 10 minutes, with jitter. */
const registryBackoff = { initialDelayMs: 5_000, maxDelayMs: 600_000, multiplier: 2 };
/** Retries of a failed start-up reconcile or provisioning. */
const repairBackoff = { initialDelayMs: 2_000, maxDelayMs: 60_000, multiplier: 2 };
/**
 * A digest the coordinator refused for good (halted, aborted, superseded, rolled back), or that failed
 * here, is not asked for again while the tag still points at it and the group's rollout stays the
 * same; after this long it is asked once more, in case the coordinator's view changed (e.g. its
 * database was replaced).
 */
const settledDigestRetryMs = 15 * 60_000;
/** Refusals that say this digest will not be granted by waiting. */
const finalRefusals: ReadonlySet<RefusalReason> = new Set(['halted', 'aborted', 'superseded', 'rolled-back']);

/**
 * The agent: at start it reconciles whatever a crash left and provisions missing services;
 * then, per service, it heartbeats the coordinator, watches its container's health (restarting a
 * dead one), and on the staggered poll schedule compares the tag's digest with the running one
 * and runs the leased update when they differ.
 */
export class Agent {
  private readonly workers: ServiceWorker[];
  private readonly scheduler: PollScheduler;
  /** Ends the heartbeat and monitor loops (after the scheduler, so an update in flight is still reported). */
  private readonly shutdown = new AbortController();
  private loops: Promise<void>[] = [];
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private stopRequested = false;
  private preparing: Promise<void> | undefined;

  constructor(private readonly deps: AgentDeps) {
    this.scheduler = new PollScheduler({
      nodeId: deps.config.nodeId,
      cron: deps.config.schedule.cron,
      splayMs: deps.config.schedule.splayMs,
      clock: deps.clock,
      random: deps.random,
      logger: deps.logger,
      ...(deps.tickSource ? { tickSource: deps.tickSource } : {}),
    });
    this.workers = deps.config.services.map((service) => new ServiceWorker(deps, service, () => this.scheduler.pollNow()));
    (deps.metrics ?? noopAgentMetrics).watchSteps(() => this.workers.map((worker) => worker.currentStep()));
  }

  /**
   * Reconciles every service (DESIGN step 10), then starts the loops. A reconcile that fails (the
   * engine is not up yet, say) does not stop the agent: that service is retried by its monitor.
   */
  start(): Promise<void> {
    this.starting ??= (async () => {
      await this.prepare();
      const signal = this.shutdown.signal;
      // Heartbeats first: the coordinator sees the node (step `reconcile`) while it reconciles.
      this.loops = this.workers.map((worker) => worker.heartbeatLoop(signal));
      for (const worker of this.workers) {
        if (this.stopRequested) return;
        await worker.reconcileAtStart();
      }
      if (this.stopRequested) return;
      this.loops.push(...this.workers.map((worker) => worker.monitorLoop(signal)));
      this.scheduler.start(async (pollSignal) => {
        for (const worker of this.workers) await worker.poll(pollSignal);
      });
    })();
    return this.starting;
  }

  /**
   * Before the readiness endpoint answers (main.ts) and before start(): a service whose update a
   * crash left half done is held out of the balancer until its reconcile has checked it; every other
   * service is answered by its live probe from the first request on, reconcile or not.
   */
  prepare(): Promise<void> {
    this.preparing ??= Promise.all(
      this.workers.map(async (worker) => {
        await worker.holdIfJournaled();
        await worker.restoreDrain();
      }),
    ).then(() => undefined);
    return this.preparing;
  }

  /**
   * Finishes or safely rolls back an update in flight (releasing its lease), then stops every loop
   * and sends a last heartbeat. Safe to call during start() and more than once.
   */
  stop(): Promise<void> {
    this.stopRequested = true;
    this.stopping ??= (async () => {
      for (const worker of this.workers) worker.beginStop();
      await this.starting?.catch(() => undefined);
      // The scheduler aborts the poll in flight: the update stops at its next safe point, rolls
      // back if it touched anything and releases its lease. Heartbeats go on meanwhile.
      await this.scheduler.stop();
      this.shutdown.abort(new Error('agent stopping'));
      await Promise.allSettled(this.loops);
      await Promise.allSettled(this.workers.map((worker) => worker.drainSettled()));
      await Promise.allSettled(this.workers.map((worker) => worker.finalHeartbeat()));
    })();
    return this.stopping;
  }
}

class ServiceWorker {
  private step: UpdateStep = 'idle';
  /** An update, a provisioning, a restart or a reconcile is running: nothing else may touch the container. */
  private busy = false;
  private stopping = false;
  private paused = false;
  /** Start-up reconcile has not succeeded yet: no poll, and the monitor retries it. */
  private needsReconcile = true;
  private repairFailures = 0;
  private repairRetryAtMs = 0;
  /** The digest the service's container runs, or ran last when it has gone missing (re-created from it: I2). */
  private runningDigest: string | null = null;
  /** What the last inspect saw: undefined before the first one. */
  private containerRunning: boolean | undefined;
  /** The health the monitor last logged (a change is logged and heartbeated at once). */
  private reportedHealthy: boolean | undefined;
  private registryFailures = 0;
  private registryRetryAtMs = 0;
  /** The coordinator asked for a poll (a push): the next poll runs even during the registry backoff. */
  private pollRequested = false;
  /** A poll found the container busy: it runs again as soon as the container is free. */
  private pollDeferred = false;
  /** A digest not to ask a lease for again while the tag points at it (see settledDigestRetryMs). */
  private settled: { digest: string; why: string; atMs: number } | undefined;
  /** The group's current rollout seq as the coordinator last said; a poll's reading of the tag is newer than it. */
  private knownRolloutSeq = 0;
  /** While a rollback is open or completed: run `to` instead of the tag's digest while the tag shows `from`. */
  private rollbackPin: { from: string; to: string } | undefined;
  /** Since when the heartbeats have seen the service ready without a break; undefined while not ready. */
  private readySinceMs: number | undefined;
  /** Consecutive failing probes seen by the monitor (logged). */
  private failedChecks = 0;
  private heartbeatIntervalMs = defaultHeartbeatIntervalMs;
  private wakeHeartbeat: AbortController = new AbortController();
  /** Something worth reporting changed since the last beat was sent. */
  private heartbeatDirty = false;
  private readonly logger: Logger;
  private readonly name: string;
  private readonly metrics: AgentMetrics;
  /** An operator's drain (`baton drain`): out of the balancer and no update until undrained. */
  private readonly operatorDrain: OperatorDrain;

  constructor(
    private readonly deps: AgentDeps,
    private readonly service: ServiceConfig,
    private readonly requestPoll: () => void,
  ) {
    this.name = service.containerName;
    this.metrics = deps.metrics ?? noopAgentMetrics;
    this.logger = deps.logger.child({ service: service.containerName, group: service.group });
    this.operatorDrain = new OperatorDrain({
      service,
      nodeId: deps.config.nodeId,
      store: deps.drains,
      hooks: deps.hooks,
      setDrained: (drained) => deps.readiness.setDrained(this.name, drained),
      logger: this.logger,
      onChange: () => this.heartbeatNow(),
      onUndrained: () => {
        // Back in service: catch up with the group's rollout now.
        this.settled = undefined;
        this.pollRequested = true;
        this.requestPoll();
      },
    });
  }

  /** Before readiness answers: a drain remembered from before this start keeps the service out (agent/drain). */
  async restoreDrain(): Promise<void> {
    try {
      await this.operatorDrain.restore();
    } catch (error) {
      this.logger.error({ err: error }, 'cannot restore the drain state');
    }
  }

  drainSettled(): Promise<void> {
    return this.operatorDrain.settled();
  }

  beginStop(): void {
    this.stopping = true;
  }

  // ---- Start

  /** A journal entry means an update was cut short here: hold the service (503 `starting`) until reconcile checks it. */
  async holdIfJournaled(): Promise<void> {
    let journaled: boolean;
    try {
      journaled = (await this.deps.journal.read(this.name)) !== undefined;
    } catch {
      journaled = true; // unreadable: reconcile decides
    }
    if (journaled) {
      this.logger.info('an update was cut short here: not ready until the reconcile has checked the container');
      this.deps.readiness.setHealthy(this.name, false);
    }
  }

  /** DESIGN step 10: end whatever a crash left half done, then make sure the service runs. */
  async reconcileAtStart(): Promise<void> {
    await this.exclusive(() => this.tryReconcile());
  }

  /** One reconcile attempt (under the exclusive flag); on failure it is retried by the monitor with backoff. */
  private async tryReconcile(): Promise<void> {
    try {
      const journal = await this.deps.journal.read(this.name);
      const result = await reconcile(this.updateDeps(), this.service, journal);
      this.needsReconcile = false;
      this.repairFailures = 0;
      this.runningDigest = result.digest;
      this.containerRunning = result.action !== 'missing';
      this.logger.info({ action: result.action, digest: result.digest, healthy: result.healthy }, 'reconciled');
      if (result.action === 'missing') await this.provision(result.previousDigest ?? null);
    } catch (error) {
      this.scheduleRepair(error, 'reconcile failed; will retry');
    } finally {
      this.step = 'idle';
    }
  }

  /** Creates a declared service that has no container yet; it is not in service, so no lease is needed. */
  private async provision(knownDigest: string | null): Promise<void> {
    const startedMs = this.deps.clock.nowMs();
    this.setStep('start');
    // A container that is not there yet is held out until it has passed its checks (below), as after an update.
    this.deps.readiness.setHealthy(this.name, false);
    try {
      const digest = knownDigest ?? this.digestToRun((await this.deps.registry.resolve(this.service.image)).digest);
      const imageByDigest = formatByDigest(parseImageReference(this.service.image), digest);
      if (!(await this.deps.runtime.hasImage(imageByDigest))) await this.deps.runtime.pull(imageByDigest);
      // A container half made by an earlier attempt (created, never started) is replaced.
      const leftover = await this.deps.runtime.inspect(this.name);
      if (leftover !== undefined && !leftover.running) await this.deps.runtime.remove(this.name);
      if (leftover === undefined || !leftover.running) {
        await this.deps.runtime.create(containerSpecFor(this.service), this.name, imageByDigest, digest);
      }
      await this.deps.runtime.start(this.name);
      this.runningDigest = digest;
      this.containerRunning = true;
      this.setStep('health');
      const health = await waitUntilHealthy(this.deps, this.name, this.service.health);
      // Held since the start of provisioning: a new container serves once it has passed the update's rules.
      if (health.healthy) this.setReady(true);
      else this.applyCheck(false, health.reason);
      this.repairFailures = 0;
      this.logger.info(
        { step: 'start', digest, durationMs: this.deps.clock.nowMs() - startedMs, healthy: health.healthy },
        'provisioned missing service',
      );
    } catch (error) {
      this.scheduleRepair(error, 'could not provision service; will retry', startedMs);
    } finally {
      this.setStep('idle');
    }
  }

  private scheduleRepair(error: unknown, message: string, startedMs?: number): void {
    const delayMs = backoffDelayMs(this.repairFailures, this.deps.random, repairBackoff);
    this.repairFailures += 1;
    this.repairRetryAtMs = this.deps.clock.nowMs() + delayMs;
    this.logger.error(
      {
        err: error,
        failures: this.repairFailures,
        retryInMs: delayMs,
        ...(startedMs === undefined ? {} : { durationMs: this.deps.clock.nowMs() - startedMs }),
      },
      message,
    );
  }

  // ---- Poll (DESIGN steps 1 to 9)

  async poll(signal: AbortSignal): Promise<void> {
    if (this.busy) {
      this.pollDeferred = true;
      return;
    }
    if (this.needsReconcile || this.stopping || signal.aborted) return;
    if (this.operatorDrain.active) {
      this.logger.debug('drained by an operator: no poll until undrained');
      return;
    }
    const nowMs = this.deps.clock.nowMs();
    if (nowMs < this.registryRetryAtMs) {
      if (!this.pollRequested) {
        this.logger.debug({ retryAtMs: this.registryRetryAtMs }, 'registry backoff: skipping this poll');
        return;
      }
      // The registry itself just notified a push: it answers again. One request per push.
      this.logger.info({ retryAtMs: this.registryRetryAtMs }, 'push notification: polling despite the registry backoff');
    }
    const requested = this.pollRequested;
    this.pollRequested = false;
    // Taken before the HEAD: whatever the tag shows was pushed after this rollout opened.
    const observedAfterSeq = this.knownRolloutSeq;
    const resolved = await this.resolveTag(signal);
    if (!resolved || signal.aborted || this.stopping) return;
    // Check and take the flag with no await in between: the monitor may have started meanwhile.
    if (this.busy) {
      this.pollRequested ||= requested;
      this.pollDeferred = true;
      return;
    }
    this.busy = true;
    try {
      await this.compareAndUpdate(resolved.digest, observedAfterSeq, signal);
    } finally {
      this.releaseBusy();
    }
  }

  /** The tag's digest, or the rollback's target while the group is rolled back from it. */
  private digestToRun(tagDigest: string): string {
    const pin = this.rollbackPin;
    return pin !== undefined && pin.from === tagDigest ? pin.to : tagDigest;
  }

  private async compareAndUpdate(tagDigest: string, observedAfterSeq: number, signal: AbortSignal): Promise<void> {
    const digest = this.digestToRun(tagDigest);
    const current = await this.deps.runtime.inspect(this.name);
    this.containerRunning = current?.running ?? false;
    // Gone: the monitor re-creates it from the digest it ran (kept in runningDigest), never from the tag.
    if (current === undefined) return;
    this.runningDigest = current.digest;
    if (current.digest === digest) {
      this.settled = undefined;
      return;
    }
    if (this.settled !== undefined && (this.settled.digest !== digest || this.deps.clock.nowMs() - this.settled.atMs >= settledDigestRetryMs)) {
      this.settled = undefined;
    }
    if (this.settled !== undefined) {
      this.logger.debug({ step: 'compare', digest, why: this.settled.why }, 'new digest, but not asking again');
      return;
    }
    if (this.paused) {
      this.logger.info({ step: 'compare', digest }, 'new digest, but the group is paused');
      return;
    }

    const imageByDigest = formatByDigest(parseImageReference(this.service.image), digest);
    try {
      const result = await runUpdate(this.updateDeps(), this.service, { digest, imageByDigest, observedAfterSeq }, signal);
      this.metrics.updateFinished(this.name, result.outcome, result.durationMs);
      if (result.runningDigest !== null) this.runningDigest = result.runningDigest;
      // The success step held the lease through readmitSeconds of readiness 200: the balancer has the node back.
      if (result.outcome === 'updated') this.readySinceMs = this.deps.clock.nowMs() - this.service.readmitSeconds * 1_000;
      if (result.outcome === 'updated' && this.service.pruneImages) await this.pruneImages(digest, result.previousDigest);
      this.logger.info(
        { outcome: result.outcome, reason: result.reason, digest, release: result.release, durationMs: result.durationMs },
        'update finished',
      );
      if (result.outcome === 'rolled-back') {
        this.settled = { digest, why: 'failed its health checks here', atMs: this.deps.clock.nowMs() };
      } else if (result.outcome === 'skipped' && result.refusal !== undefined && finalRefusals.has(result.refusal)) {
        this.settled = { digest, why: `lease refused: ${result.refusal}`, atMs: this.deps.clock.nowMs() };
      } else if (result.refusal === 'stale' && (result.rolloutSeq ?? 0) > this.knownRolloutSeq) {
        // The tag moved after we read it: read it again now, knowing the newer rollout.
        this.knownRolloutSeq = result.rolloutSeq ?? 0;
        this.pollRequested = true;
        this.pollDeferred = true;
      }
    } catch (error) {
      this.logger.error({ err: error, digest }, 'update failed unexpectedly');
    } finally {
      this.step = 'idle';
      this.failedChecks = 0;
      this.heartbeatNow();
    }
  }

  /** Keeps the image this service runs and the one it ran before; an error here never fails the update. */
  private async pruneImages(runningDigest: string, previousDigest: string | null): Promise<void> {
    const ref = parseImageReference(this.service.image);
    const keep = [runningDigest, ...(previousDigest === null ? [] : [previousDigest])].map((d) => formatByDigest(ref, d));
    try {
      await this.deps.runtime.pruneImages(keep);
    } catch (error) {
      this.logger.warn({ err: error, keep }, 'could not remove old images; will try again after the next update');
    }
  }

  currentStep(): { service: string; step: UpdateStep } {
    return { service: this.name, step: this.step };
  }

  /** Step 1: one HEAD for the tag's digest; on any registry trouble keep serving and back off with jitter. */
  private async resolveTag(signal: AbortSignal): Promise<{ digest: string } | undefined> {
    const startedMs = this.deps.clock.nowMs();
    try {
      const resolved = await this.deps.registry.resolve(this.service.image, signal);
      if (this.registryFailures > 0) this.logger.info({ failures: this.registryFailures }, 'registry reachable again');
      this.registryFailures = 0;
      this.metrics.pollFinished(this.name, 'ok');
      this.logger.debug({ step: 'poll', digest: resolved.digest, durationMs: this.deps.clock.nowMs() - startedMs }, 'polled');
      return resolved;
    } catch (error) {
      if (signal.aborted) return undefined;
      this.registryFailures += 1;
      this.metrics.pollFinished(this.name, 'error');
      this.metrics.registryError(this.name, error);
      const delayMs =
        error instanceof RegistryRateLimitedError && error.retryAfterMs !== undefined
          ? withJitterMs(error.retryAfterMs, 1_000, this.deps.random)
          : backoffDelayMs(this.registryFailures - 1, this.deps.random, registryBackoff);
      this.registryRetryAtMs = this.deps.clock.nowMs() + delayMs;
      this.logger.warn(
        { err: error, step: 'poll', durationMs: this.deps.clock.nowMs() - startedMs, failures: this.registryFailures, retryInMs: delayMs },
        'registry poll failed; the service keeps running',
      );
      return undefined;
    }
  }

  // ---- Heartbeat

  async heartbeatLoop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      this.heartbeatDirty = false;
      try {
        await this.sendHeartbeat(signal);
        if (failures > 0) this.logger.info({ failures }, 'coordinator reachable again');
        failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        failures += 1;
        if (failures === 1 || failures % 12 === 0) {
          this.logger.warn({ err: error, failures }, 'heartbeat failed; the service keeps running');
        }
      }
      await this.sleepUntilNextHeartbeat(signal, failures > 0);
    }
  }

  /** One last beat on shutdown so the status page shows the final state without waiting. */
  async finalHeartbeat(): Promise<void> {
    try {
      await this.sendHeartbeat(AbortSignal.timeout(2_000));
    } catch {
      // The coordinator may be gone too; nothing to do.
    }
  }

  private async sendHeartbeat(signal: AbortSignal): Promise<void> {
    // The step as the beat starts: the health probe below takes a moment, and a step as short as a
    // lease granted at once is still reported.
    const step = this.step;
    const answer = await this.deps.coordinator.heartbeat(
      this.deps.config.nodeId,
      {
        group: this.service.group,
        host: this.deps.config.host,
        image: this.service.image,
        currentDigest: this.runningDigest,
        ...(await this.healthForHeartbeat()),
        step,
        agentVersion: this.deps.agentVersion,
        ...(this.deps.configProblem !== undefined ? { configProblem: this.deps.configProblem } : {}),
      },
      signal,
    );
    this.heartbeatIntervalMs = answer.heartbeatIntervalMs;
    this.followRollout(answer.rolloutSeq, answer.rolledBackFrom, answer.targetDigest);
    if (answer.paused !== this.paused) this.logger.info({ paused: answer.paused }, answer.paused ? 'group paused' : 'group resumed');
    this.paused = answer.paused;
    this.operatorDrain.follow(answer.drained);
    if (answer.pollNow && !this.stopping) {
      this.logger.info('coordinator asked for a poll now (registry push)');
      // Kept until a poll of this service runs: the coordinator answers pollNow once.
      this.pollRequested = true;
      this.requestPoll();
    }
  }

  /**
   * A new rollout (a push, a rollback, a retry) may make a settled digest grantable: forget it. The
   * seq only grows here: an answer sent before a refusal that named a newer rollout may arrive after it.
   */
  private followRollout(seq: number, rolledBackFrom: string | null, targetDigest: string | null): void {
    if (seq > this.knownRolloutSeq) {
      if (this.settled !== undefined) this.logger.info({ rolloutSeq: seq, digest: this.settled.digest }, 'new rollout: asking again');
      this.settled = undefined;
      this.knownRolloutSeq = seq;
    }
    const pin = rolledBackFrom !== null && targetDigest !== null ? { from: rolledBackFrom, to: targetDigest } : undefined;
    if (pin?.from !== this.rollbackPin?.from || pin?.to !== this.rollbackPin?.to) {
      this.logger.info({ rolledBackFrom: pin?.from ?? null, target: pin?.to ?? null }, pin ? 'group rolled back' : 'rollback ended');
    }
    this.rollbackPin = pin;
  }

  /**
   * The readiness endpoint's answer now (a probe at most probeCacheMs old), in the coordinator's
   * terms, and why. A service that has just become ready is reported `starting` until it has been
   * ready for readmitSeconds: the balancer needs its `rise` checks to take the node back, and the
   * coordinator must not count it in service (and drain the next node) before then.
   */
  private async healthForHeartbeat(): Promise<{ health: NodeHealth; healthReason?: HealthReason }> {
    let answer: ReadinessAnswer;
    try {
      answer = await this.deps.readiness.check(this.name);
    } catch {
      this.readySinceMs = undefined;
      return { health: 'unknown' };
    }
    if (!answer.ready) {
      this.readySinceMs = undefined;
      return { health: nodeHealthOf(answer), healthReason: answer.reason };
    }
    const nowMs = this.deps.clock.nowMs();
    this.readySinceMs ??= nowMs;
    if (nowMs - this.readySinceMs < this.service.readmitSeconds * 1_000) return { health: 'starting', healthReason: 'starting' };
    return { health: 'healthy' };
  }

  /** Reports a change at once: wakes the heartbeat loop, or makes it beat again right after the beat in flight. */
  private heartbeatNow(): void {
    this.heartbeatDirty = true;
    this.wakeHeartbeat.abort();
  }

  private async sleepUntilNextHeartbeat(signal: AbortSignal, lastFailed: boolean): Promise<void> {
    // A change that happened while the last beat was in flight is sent now (but a failing
    // coordinator is not hammered: after a failure the loop waits its interval).
    if (this.heartbeatDirty && !lastFailed) return;
    const wake = new AbortController();
    this.wakeHeartbeat = wake;
    // One controller per sleep, linked to shutdown by a listener removed afterwards: no
    // AbortSignal.any per beat, whose bookkeeping piles up in a process that runs for months.
    const onShutdown = (): void => wake.abort();
    if (signal.aborted) return;
    signal.addEventListener('abort', onShutdown, { once: true });
    const delayMs = withJitterMs(this.heartbeatIntervalMs * 0.9, this.heartbeatIntervalMs * 0.2, this.deps.random);
    try {
      await this.deps.clock.sleep(delayMs, wake.signal);
    } catch {
      // Woken early: by shutdown or by a state change worth reporting at once.
    } finally {
      signal.removeEventListener('abort', onShutdown);
    }
  }

  // ---- Health monitor and auto-healing

  async monitorLoop(signal: AbortSignal): Promise<void> {
    const intervalMs = this.service.health.idleIntervalMs;
    while (!signal.aborted) {
      try {
        await this.deps.clock.sleep(intervalMs, signal);
      } catch {
        break;
      }
      if (signal.aborted || this.stopping) break;
      try {
        if (!this.busy) await this.exclusive(() => this.checkOnce());
        else if (this.step === 'pull' || this.step === 'lease') await this.observeWhileWaiting();
      } catch (error) {
        this.logger.warn({ err: error }, 'health monitor check failed');
      }
    }
  }

  /** Runs `body` with the exclusive flag taken; false (and `body` not run) when it was taken already. */
  private async exclusive(body: () => Promise<void>): Promise<boolean> {
    if (this.busy) return false;
    this.busy = true;
    try {
      await body();
      return true;
    } finally {
      this.releaseBusy();
    }
  }

  private releaseBusy(): void {
    this.busy = false;
    // A poll that found the container busy (a health check, a restart) runs now, not at the next slot.
    if (this.pollDeferred && !this.stopping) {
      this.pollDeferred = false;
      this.requestPoll();
    }
  }

  private async checkOnce(): Promise<void> {
    if (this.needsReconcile || this.repairRetryAtMs > this.deps.clock.nowMs()) {
      if (this.needsReconcile && this.deps.clock.nowMs() >= this.repairRetryAtMs) await this.tryReconcile();
      return;
    }
    // The same live probe the readiness endpoint answers from (shared, at most probeCacheMs old).
    const probe = await this.deps.readiness.probe(this.name);
    this.noteContainer(probe);
    const { verdict } = probe;
    if (!verdict.pass && verdict.reason === 'container-missing') {
      this.applyCheck(false);
      this.logger.warn({ digest: this.runningDigest }, 'container missing; provisioning it');
      await this.provision(this.runningDigest);
      return;
    }
    if (!verdict.pass && verdict.reason === 'container-stopped') {
      // Exited (or never started): not in service already, so restarting it needs no lease. A
      // paused container is left to whoever paused it, a restarting one to Docker's restart policy.
      this.applyCheck(false);
      this.logger.warn({ exitCode: probe.container?.exitCode ?? null, digest: this.runningDigest }, 'container not running; restarting it');
      await this.deps.runtime.start(this.name);
      this.containerRunning = true;
      return;
    }
    this.applyCheck(verdict.pass, verdict.pass ? undefined : verdict.reason);
  }

  /**
   * While an update only waits (pulling, or for a lease), the container still serves and the live
   * probe keeps readiness true to what it does; this only reports changes. A result that arrives once
   * the update has moved on to drain is dropped: from then on the update owns readiness.
   */
  private async observeWhileWaiting(): Promise<void> {
    const probe = await this.deps.readiness.probe(this.name);
    const { verdict } = probe;
    if (this.step === 'pull' || this.step === 'lease') this.applyCheck(verdict.pass, verdict.pass ? undefined : verdict.reason);
  }

  private noteContainer(probe: ProbeResult): void {
    if (probe.container !== undefined) {
      this.runningDigest = probe.container.digest;
      this.containerRunning = probe.container.running;
    } else if (!probe.verdict.pass && probe.verdict.reason === 'container-missing') {
      this.containerRunning = false;
    }
  }

  /** Logs and heartbeats a change of the probe's verdict; a pass also lifts a hold a failed update or reconcile left. */
  private applyCheck(healthy: boolean, reason?: string): void {
    this.failedChecks = healthy ? 0 : this.failedChecks + 1;
    this.setReady(healthy, reason);
  }

  private setReady(ready: boolean, reason?: string): void {
    // Only a pass lifts a hold: a failing probe already answers 503 by itself, and holding on would
    // keep a recovered service out of the balancer until the next monitor check.
    if (ready) this.deps.readiness.setHealthy(this.name, true);
    if (this.reportedHealthy !== ready) {
      this.reportedHealthy = ready;
      this.logger.info(
        { healthy: ready, digest: this.runningDigest, ...(reason === undefined ? {} : { reason, failedChecks: this.failedChecks }) },
        ready ? 'service healthy' : 'service unhealthy',
      );
      this.heartbeatNow();
    }
  }

  /** The readiness endpoint, for the update flow and reconcile: every change is also heartbeated at once. */
  private readonly reportingReadiness: Readiness = {
    setDraining: (service, draining) => {
      this.deps.readiness.setDraining(service, draining);
      this.heartbeatNow();
    },
    setHealthy: (service, healthy) => {
      this.deps.readiness.setHealthy(service, healthy);
      this.heartbeatNow();
    },
  };

  private setStep(step: UpdateStep): void {
    if (this.step === step) return;
    this.step = step;
    this.heartbeatNow();
  }

  private updateDeps(): UpdateDeps {
    return {
      runtime: this.deps.runtime,
      coordinator: this.deps.coordinator,
      readiness: this.reportingReadiness,
      healthProbe: this.deps.healthProbe,
      hooks: this.deps.hooks,
      journal: this.deps.journal,
      clock: this.deps.clock,
      random: this.deps.random,
      logger: this.deps.logger,
      nodeId: this.deps.config.nodeId,
      onStep: (step) => this.setStep(step),
      // No lease while the engine is unreachable: the update could not stop or start anything.
      holdLeaseRequest: async () => {
        const answer = await this.deps.readiness.check(this.name).catch(() => undefined);
        return answer?.reason === 'engine-unreachable' ? 'the engine is unreachable' : undefined;
      },
    };
  }
}

/** A readiness answer in the coordinator's terms: only `healthy` counts as in service. */
export function nodeHealthOf(answer: ReadinessAnswer): NodeHealth {
  if (answer.ready) return 'healthy';
  switch (answer.reason) {
    case 'drained':
    case 'draining':
      return 'draining';
    case 'starting':
      return 'starting';
    case 'container-missing':
    case 'container-stopped':
      return 'stopped';
    default:
      return 'unhealthy';
  }
}
