import { backoffDelayMs } from '../../shared/backoff.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { Logger } from '../../shared/logger.js';
import type { RegistryClient } from '../ports.js';
import { formatByDigest, parseImageReference } from '../../shared/image-ref.js';
import { containerSpecFor, reconcile, waitUntilHealthy, type HealthResult, type UpdateDeps } from '../update/index.js';
import type { WorkerEvent } from './events.js';
import type { MonitorRepairs } from './monitor.js';
import type { ServiceState } from './state.js';

/** Retries of a failed start-up reconcile or provisioning. */
const repairBackoff = { initialDelayMs: 2_000, maxDelayMs: 60_000, multiplier: 2 };

export interface RepairDeps {
  service: ServiceConfig;
  /** What reconcile and provisioning change the node with: the update flow's own ports. */
  update: UpdateDeps;
  registry: Pick<RegistryClient, 'resolve'>;
  /** The readiness board itself: holding a service out is not a change the heartbeat reports at once. */
  setHealthy: (healthy: boolean) => void;
  state: ServiceState;
  /** The first health check of a provisioned container (the monitor reports it). */
  provisioned: (health: HealthResult) => void;
  report: (event: WorkerEvent) => void;
  logger: Logger;
}

/**
 * What brings a service back to a known state without a lease (docs/architecture.md step 10): the
 * start-up reconcile, and provisioning a service that has no container. Either, when it fails
 * (the engine is not up yet, say), is retried by the health monitor with backoff.
 */
export class ServiceRepairs implements MonitorRepairs {
  private failures = 0;
  private retryAtMs = 0;

  constructor(private readonly deps: RepairDeps) {}

  /** A journal entry means an update was cut short here: hold the service (503 `starting`) until reconcile checks it. */
  async holdIfJournaled(): Promise<void> {
    let journaled: boolean;
    try {
      journaled = (await this.deps.update.journal.read(this.deps.service.containerName)) !== undefined;
    } catch {
      journaled = true; // unreadable: reconcile decides
    }
    if (journaled) {
      this.deps.logger.info('an update was cut short here: not ready until the reconcile has checked the container');
      this.deps.setHealthy(false);
    }
  }

  next(nowMs: number): 'none' | 'wait' | 'reconcile' {
    const { needsReconcile } = this.deps.state;
    if (!needsReconcile && this.retryAtMs <= nowMs) return 'none';
    return needsReconcile && nowMs >= this.retryAtMs ? 'reconcile' : 'wait';
  }

  /** One reconcile attempt (the caller holds the container); on failure it is retried by the monitor with backoff. */
  async reconcile(): Promise<void> {
    const { update, service, state, report } = this.deps;
    try {
      const journal = await update.journal.read(service.containerName);
      const result = await reconcile(update, service, journal);
      state.needsReconcile = false;
      this.failures = 0;
      state.runningDigest = result.digest;
      report({ type: 'reconciled', service: service.containerName, action: result.action, digest: result.digest, healthy: result.healthy });
      if (result.action === 'missing') await this.provision(result.previousDigest ?? null);
    } catch (error) {
      const retryInMs = this.scheduleRetry();
      report({ type: 'reconcile-failed', service: service.containerName, error, failures: this.failures, retryInMs });
    } finally {
      state.resetStep();
      state.markChanged();
    }
  }

  /** Creates a declared service that has no container yet; it is not in service, so no lease is needed. */
  async provision(knownDigest: string | null): Promise<void> {
    const { update, service, state, report } = this.deps;
    const { runtime, clock } = update;
    const name = service.containerName;
    const startedMs = clock.nowMs();
    state.setStep('start');
    // A container that is not there yet is held out until it has passed its checks (below), as after an update.
    this.deps.setHealthy(false);
    try {
      const digest = knownDigest ?? state.digestToRun((await this.deps.registry.resolve(service.image)).digest);
      const imageByDigest = formatByDigest(parseImageReference(service.image), digest);
      if (!(await runtime.hasImage(imageByDigest))) await runtime.pull(imageByDigest);
      // A container half made by an earlier attempt (created, never started) is replaced.
      const leftover = await runtime.inspect(name);
      if (leftover !== undefined && !leftover.running) await runtime.remove(name);
      if (leftover === undefined || !leftover.running) await runtime.create(containerSpecFor(service), name, imageByDigest, digest);
      await runtime.start(name);
      state.runningDigest = digest;
      state.setStep('health');
      const health = await waitUntilHealthy(update, name, service.health);
      // Held since the start of provisioning: a new container serves once it has passed the update's rules.
      this.deps.provisioned(health);
      this.failures = 0;
      report({ type: 'provisioned', service: name, digest, durationMs: clock.nowMs() - startedMs, healthy: health.healthy });
    } catch (error) {
      const retryInMs = this.scheduleRetry();
      report({ type: 'provision-failed', service: name, error, failures: this.failures, retryInMs, durationMs: clock.nowMs() - startedMs });
    } finally {
      state.setStep('idle');
    }
  }

  private scheduleRetry(): number {
    const { clock, random } = this.deps.update;
    const delayMs = backoffDelayMs(this.failures, random, repairBackoff);
    this.failures += 1;
    this.retryAtMs = clock.nowMs() + delayMs;
    return delayMs;
  }
}
