import type { Clock } from '../../shared/clock.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { Logger } from '../../shared/logger.js';
import type { ContainerRuntime } from '../ports.js';
import type { ReadinessBoard } from '../readiness/board.js';
import type { ProbeResult } from '../readiness/probe.js';
import type { HealthResult } from '../update/index.js';
import type { WorkerEvent } from './events.js';
import type { ServiceState } from './state.js';

/** The repairs the monitor runs when it finds the service needs them (repair.ts). */
export interface MonitorRepairs {
  /** What the monitor does about repairs now: nothing, wait for a retry, or retry the start-up reconcile. */
  next(nowMs: number): 'none' | 'wait' | 'reconcile';
  reconcile(): Promise<void>;
  provision(knownDigest: string | null): Promise<void>;
}

export interface HealthMonitorDeps {
  service: ServiceConfig;
  readiness: Pick<ReadinessBoard, 'probe' | 'setHealthy'>;
  runtime: Pick<ContainerRuntime, 'start'>;
  clock: Clock;
  state: ServiceState;
  repairs: MonitorRepairs;
  report: (event: WorkerEvent) => void;
  logger: Logger;
}

/**
 * One service's health monitor and auto-healing: between updates it checks the container every
 * `health.idleIntervalMs` with the same live probe readiness answers from, reports changes, restarts
 * a container that exited and re-creates one that is gone (neither needs a lease: the service is
 * out already). While an update only waits (pull, lease), it keeps reporting what the probe sees.
 */
export class HealthMonitor {
  /** The health last reported (a change is reported and heartbeated at once). */
  private reportedHealthy: boolean | undefined;
  /** Consecutive failing probes (reported with the change). */
  private failedChecks = 0;

  constructor(private readonly deps: HealthMonitorDeps) {}

  async run(signal: AbortSignal): Promise<void> {
    const { clock, state, logger } = this.deps;
    const intervalMs = this.deps.service.health.idleIntervalMs;
    while (!signal.aborted) {
      try {
        await clock.sleep(intervalMs, signal);
      } catch {
        break;
      }
      if (signal.aborted || state.stopping) break;
      try {
        if (!state.isBusy) await state.exclusive(() => this.checkOnce());
        else if (state.step === 'pull' || state.step === 'lease') await this.observeWhileWaiting();
      } catch (error) {
        logger.warn({ err: error }, 'health monitor check failed');
      }
    }
  }

  /** An update ended: the failures it saw are not the container's record. */
  resetFailedChecks(): void {
    this.failedChecks = 0;
  }

  /** A provisioned container's first health check: a pass lifts the hold provisioning set. */
  provisioned(health: HealthResult): void {
    if (health.healthy) this.setReady(true);
    else this.applyCheck(false, health.reason);
  }

  private async checkOnce(): Promise<void> {
    const { state, readiness, repairs, clock, report } = this.deps;
    const name = this.deps.service.containerName;
    const repair = repairs.next(clock.nowMs());
    if (repair !== 'none') {
      if (repair === 'reconcile') await repairs.reconcile();
      return;
    }
    // The same live probe the readiness endpoint answers from (shared, at most probeCacheMs old).
    const probe = await readiness.probe(name);
    this.noteContainer(probe);
    const { verdict } = probe;
    if (!verdict.pass && verdict.reason === 'container-missing') {
      this.applyCheck(false);
      report({ type: 'container-missing', service: name, digest: state.runningDigest });
      await repairs.provision(state.runningDigest);
      return;
    }
    if (!verdict.pass && verdict.reason === 'container-stopped') {
      // Exited (or never started): not in service already, so restarting it needs no lease. A
      // paused container is left to whoever paused it, a restarting one to Docker's restart policy.
      this.applyCheck(false);
      report({ type: 'container-restarting', service: name, digest: state.runningDigest, exitCode: probe.container?.exitCode ?? null });
      await this.deps.runtime.start(name);
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
    const { state } = this.deps;
    const { verdict } = await this.deps.readiness.probe(this.deps.service.containerName);
    if (state.step === 'pull' || state.step === 'lease') this.applyCheck(verdict.pass, verdict.pass ? undefined : verdict.reason);
  }

  private noteContainer(probe: ProbeResult): void {
    if (probe.container !== undefined) this.deps.state.runningDigest = probe.container.digest;
  }

  /** Reports a change of the probe's verdict; a pass also lifts a hold a failed update or reconcile left. */
  private applyCheck(healthy: boolean, reason?: string): void {
    this.failedChecks = healthy ? 0 : this.failedChecks + 1;
    this.setReady(healthy, reason);
  }

  private setReady(ready: boolean, reason?: string): void {
    const { state, service } = this.deps;
    // Only a pass lifts a hold: a failing probe already answers 503 by itself, and holding on would
    // keep a recovered service out of the balancer until the next monitor check.
    if (ready) this.deps.readiness.setHealthy(service.containerName, true);
    if (this.reportedHealthy === ready) return;
    this.reportedHealthy = ready;
    this.deps.report({
      type: 'health-changed',
      service: service.containerName,
      healthy: ready,
      digest: state.runningDigest,
      ...(reason === undefined ? {} : { reason, failedChecks: this.failedChecks }),
    });
    state.markChanged();
  }
}
