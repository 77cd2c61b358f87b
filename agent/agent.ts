import type { NodeHealth, UpdateStep } from '../shared/api/v1.js';
import { backoffDelayMs, withJitterMs } from '../shared/backoff.js';
import type { Clock } from '../shared/clock.js';
import type { AgentConfig, ServiceConfig } from '../shared/config/agent.js';
import type { Logger } from '../shared/logger.js';
import type { RandomSource } from '../shared/random.js';
import type { ContainerRuntime, CoordinatorClient, HealthProbe, HookRunner, RegistryClient } from './ports.js';
import type { ReadinessServer } from './readiness/server.js';
import { formatByDigest, parseImageReference } from './registry/reference.js';
import { RegistryRateLimitedError } from './registry/errors.js';
import { PollScheduler } from './schedule/schedule.js';
import { containerSpecFor, reconcile, runUpdate, waitUntilHealthy, type UpdateDeps, type UpdateJournal } from './update/index.js';

export interface AgentDeps {
  config: AgentConfig;
  runtime: ContainerRuntime;
  registry: RegistryClient;
  coordinator: CoordinatorClient;
  readiness: ReadinessServer;
  healthProbe: HealthProbe;
  hooks: HookRunner;
  journal: UpdateJournal;
  clock: Clock;
  random: RandomSource;
  logger: Logger;
  agentVersion: string;
}

/** Idle health monitoring runs at most this often, whatever the service's update-time interval. */
const minimumMonitorIntervalMs = 2_000;
/** Consecutive failed checks before an idle service is reported unhealthy (one blip is not an outage). */
const failuresBeforeUnhealthy = 2;
const defaultHeartbeatIntervalMs = 5_000;

/**
 * The agent: at start it reconciles whatever a crash left and provisions missing services;
 * then, per service, it heartbeats the coordinator, watches its container's health (restarting a
 * dead one), and on the staggered poll schedule compares the tag's digest with the running one
 * and runs the leased update when they differ.
 */
export class Agent {
  private readonly workers: ServiceWorker[];
  private readonly scheduler: PollScheduler;
  private readonly shutdown = new AbortController();
  private loops: Promise<void>[] = [];

  constructor(private readonly deps: AgentDeps) {
    this.scheduler = new PollScheduler({
      nodeId: deps.config.nodeId,
      cron: deps.config.schedule.cron,
      splayMs: deps.config.schedule.splayMs,
      clock: deps.clock,
      random: deps.random,
      logger: deps.logger,
    });
    this.workers = deps.config.services.map((service) => new ServiceWorker(deps, service, () => this.scheduler.pollNow()));
  }

  async start(): Promise<void> {
    for (const worker of this.workers) await worker.reconcileAtStart();
    const signal = this.shutdown.signal;
    this.loops = this.workers.flatMap((worker) => [worker.heartbeatLoop(signal), worker.monitorLoop(signal)]);
    this.scheduler.start(async (pollSignal) => {
      for (const worker of this.workers) await worker.poll(pollSignal);
    });
  }

  /** Finishes or safely rolls back an update in flight (releasing its lease), then stops every loop. */
  async stop(): Promise<void> {
    this.shutdown.abort(new Error('agent stopping'));
    await this.scheduler.stop();
    await Promise.allSettled(this.loops);
    await Promise.allSettled(this.workers.map((worker) => worker.finalHeartbeat()));
  }
}

class ServiceWorker {
  private step: UpdateStep = 'idle';
  private updating = false;
  private paused = false;
  private runningDigest: string | null = null;
  private registryFailures = 0;
  private registryRetryAtMs = 0;
  private failedChecks = 0;
  private heartbeatIntervalMs = defaultHeartbeatIntervalMs;
  private wakeHeartbeat: AbortController = new AbortController();
  private readonly logger: Logger;
  private readonly name: string;

  constructor(
    private readonly deps: AgentDeps,
    private readonly service: ServiceConfig,
    private readonly requestPoll: () => void,
  ) {
    this.name = service.containerName;
    this.logger = deps.logger.child({ node: deps.config.nodeId, service: service.containerName, group: service.group });
  }

  // ---- Start

  /** DESIGN step 10: end whatever a crash left half done, then make sure the service runs. */
  async reconcileAtStart(): Promise<void> {
    const journal = await this.deps.journal.read(this.name);
    const result = await reconcile(this.updateDeps(), this.service, journal);
    this.runningDigest = result.digest;
    this.logger.info({ step: 'reconcile', action: result.action, digest: result.digest, actions: result.actions }, 'reconciled');
    this.step = 'idle';
    if (result.action === 'missing') await this.provision(result.previousDigest ?? null);
  }

  /** Creates a declared service that has no container yet; it is not in service, so no lease is needed. */
  private async provision(knownDigest: string | null): Promise<void> {
    const startedMs = this.deps.clock.nowMs();
    try {
      const digest = knownDigest ?? (await this.deps.registry.resolve(this.service.image)).digest;
      const imageByDigest = formatByDigest(parseImageReference(this.service.image), digest);
      if (!(await this.deps.runtime.hasImage(imageByDigest))) await this.deps.runtime.pull(imageByDigest);
      await this.deps.runtime.create(containerSpecFor(this.service), this.name, imageByDigest, digest);
      await this.deps.runtime.start(this.name);
      const health = await waitUntilHealthy(this.deps, this.name, this.service.health);
      this.deps.readiness.setHealthy(this.name, health.healthy);
      this.runningDigest = digest;
      this.logger.info(
        { step: 'start', digest, durationMs: this.deps.clock.nowMs() - startedMs, healthy: health.healthy },
        'provisioned missing service',
      );
    } catch (error) {
      this.logger.error({ err: error, step: 'start', durationMs: this.deps.clock.nowMs() - startedMs }, 'could not provision service; will retry');
    }
  }

  // ---- Poll (DESIGN steps 1 to 9)

  async poll(signal: AbortSignal): Promise<void> {
    if (this.updating || signal.aborted) return;
    const nowMs = this.deps.clock.nowMs();
    if (nowMs < this.registryRetryAtMs) {
      this.logger.debug({ retryAtMs: this.registryRetryAtMs }, 'registry backoff: skipping this poll');
      return;
    }
    const resolved = await this.resolveTag(signal);
    if (!resolved) return;

    const current = await this.deps.runtime.inspect(this.name);
    this.runningDigest = current?.digest ?? null;
    if (current === undefined) return; // the monitor provisions it
    if (current.digest === resolved.digest) return;
    if (this.paused) {
      this.logger.info({ step: 'compare', digest: resolved.digest }, 'new digest, but the group is paused');
      return;
    }

    const imageByDigest = formatByDigest(parseImageReference(this.service.image), resolved.digest);
    this.updating = true;
    try {
      if (this.service.prePull) await this.prePull(imageByDigest, resolved.digest, signal);
      const result = await runUpdate(this.updateDeps(), this.service, { digest: resolved.digest, imageByDigest }, signal);
      this.runningDigest = result.runningDigest;
      this.logger.info({ outcome: result.outcome, reason: result.reason, digest: resolved.digest, durationMs: result.durationMs }, 'update finished');
    } catch (error) {
      this.logger.error({ err: error, digest: resolved.digest }, 'update failed before it changed anything');
    } finally {
      this.updating = false;
      this.step = 'idle';
      this.failedChecks = 0;
      this.heartbeatNow();
    }
  }

  /** Step 1: one HEAD for the tag's digest; on any registry trouble keep serving and back off with jitter. */
  private async resolveTag(signal: AbortSignal): Promise<{ digest: string } | undefined> {
    const startedMs = this.deps.clock.nowMs();
    try {
      const resolved = await this.deps.registry.resolve(this.service.image, signal);
      this.registryFailures = 0;
      this.logger.debug({ step: 'poll', digest: resolved.digest, durationMs: this.deps.clock.nowMs() - startedMs }, 'polled');
      return resolved;
    } catch (error) {
      if (signal.aborted) return undefined;
      this.registryFailures += 1;
      const delayMs =
        error instanceof RegistryRateLimitedError && error.retryAfterMs !== undefined
          ? withJitterMs(error.retryAfterMs, 1_000, this.deps.random)
          : backoffDelayMs(this.registryFailures - 1, this.deps.random, { initialDelayMs: 5_000, maxDelayMs: 600_000, multiplier: 2 });
      this.registryRetryAtMs = this.deps.clock.nowMs() + delayMs;
      this.logger.warn(
        { err: error, step: 'poll', durationMs: this.deps.clock.nowMs() - startedMs, failures: this.registryFailures, retryInMs: delayMs },
        'registry poll failed; the service keeps running',
      );
      return undefined;
    }
  }

  /** Step 3: pull the new image by digest while the old container still serves. */
  private async prePull(imageByDigest: string, digest: string, signal: AbortSignal): Promise<void> {
    if (await this.deps.runtime.hasImage(imageByDigest)) return;
    const startedMs = this.deps.clock.nowMs();
    this.step = 'pull';
    await this.deps.runtime.pull(imageByDigest, signal);
    this.logger.info({ step: 'pull', digest, durationMs: this.deps.clock.nowMs() - startedMs }, 'pre-pulled');
  }

  // ---- Heartbeat

  async heartbeatLoop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
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
      await this.sleepUntilNextHeartbeat(signal);
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
    const answer = await this.deps.coordinator.heartbeat(
      this.deps.config.nodeId,
      {
        group: this.service.group,
        host: this.deps.config.host,
        image: this.service.image,
        currentDigest: this.runningDigest,
        health: this.healthForHeartbeat(),
        step: this.step,
        agentVersion: this.deps.agentVersion,
      },
      signal,
    );
    this.heartbeatIntervalMs = answer.heartbeatIntervalMs;
    if (answer.paused !== this.paused) this.logger.info({ paused: answer.paused }, answer.paused ? 'group paused' : 'group resumed');
    this.paused = answer.paused;
    if (answer.pollNow) {
      this.logger.info('coordinator asked for a poll now (registry push)');
      this.requestPoll();
    }
  }

  private healthForHeartbeat(): NodeHealth {
    const readiness = this.deps.readiness.status(this.name);
    if (!readiness) return 'unknown';
    if (readiness.ready) return 'healthy';
    return readiness.reason === 'draining' ? 'draining' : readiness.reason === 'starting' ? 'starting' : 'unhealthy';
  }

  private heartbeatNow(): void {
    this.wakeHeartbeat.abort();
  }

  private async sleepUntilNextHeartbeat(signal: AbortSignal): Promise<void> {
    this.wakeHeartbeat = new AbortController();
    const delayMs = withJitterMs(this.heartbeatIntervalMs * 0.9, this.heartbeatIntervalMs * 0.2, this.deps.random);
    try {
      await this.deps.clock.sleep(delayMs, AbortSignal.any([signal, this.wakeHeartbeat.signal]));
    } catch {
      // Woken early: by shutdown or by a state change worth reporting at once.
    }
  }

  // ---- Health monitor and auto-healing (when no update is in flight)

  async monitorLoop(signal: AbortSignal): Promise<void> {
    const intervalMs = Math.max(this.service.health.intervalMs, minimumMonitorIntervalMs);
    while (!signal.aborted) {
      try {
        await this.deps.clock.sleep(intervalMs, signal);
      } catch {
        break;
      }
      if (this.updating || signal.aborted) continue;
      try {
        await this.checkOnce();
      } catch (error) {
        this.logger.warn({ err: error }, 'health monitor check failed');
      }
    }
  }

  private async checkOnce(): Promise<void> {
    const container = await this.deps.runtime.inspect(this.name);
    if (this.updating) return;
    if (container === undefined) {
      this.setReady(false);
      await this.provision(this.runningDigest);
      return;
    }
    this.runningDigest = container.digest;
    if (!container.running) {
      // Not in service already, so restarting it needs no lease.
      this.setReady(false);
      this.logger.warn({ exitCode: container.exitCode, digest: container.digest }, 'container not running; restarting it');
      await this.deps.runtime.start(this.name);
      return;
    }
    const healthy = await this.checkHealth(container.health);
    if (healthy) {
      this.failedChecks = 0;
      this.setReady(true);
    } else {
      this.failedChecks += 1;
      if (this.failedChecks >= failuresBeforeUnhealthy) this.setReady(false);
    }
  }

  private async checkHealth(dockerHealth: string): Promise<boolean> {
    const { http, docker } = this.service.health;
    if (docker && dockerHealth !== 'healthy') return false;
    if (http) return this.deps.healthProbe.check(http.url, http.expectedStatus, http.timeoutMs);
    return true;
  }

  private setReady(ready: boolean): void {
    const before = this.deps.readiness.status(this.name)?.ready;
    this.deps.readiness.setHealthy(this.name, ready);
    if (before !== ready) {
      this.logger.info({ healthy: ready, digest: this.runningDigest }, ready ? 'service healthy' : 'service unhealthy');
      this.heartbeatNow();
    }
  }

  private updateDeps(): UpdateDeps {
    return {
      runtime: this.deps.runtime,
      coordinator: this.deps.coordinator,
      readiness: this.deps.readiness,
      healthProbe: this.deps.healthProbe,
      hooks: this.deps.hooks,
      journal: this.deps.journal,
      clock: this.deps.clock,
      random: this.deps.random,
      logger: this.deps.logger.child({ node: this.deps.config.nodeId }),
      nodeId: this.deps.config.nodeId,
      onStep: (step) => {
        this.step = step;
        this.heartbeatNow();
      },
    };
  }
}
