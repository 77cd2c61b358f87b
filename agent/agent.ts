import type { UpdateStep } from '../shared/api/v1.js';
import { PollScheduler, type CronTickSource } from './schedule/schedule.js';
import { ServiceWorker, type WorkerDeps } from './worker/service-worker.js';

export type { WorkerEvent } from './worker/events.js';

export interface AgentDeps extends WorkerDeps {
  /** Ticks for irregular cron expressions; node-cron by default (tests pass a fake). */
  tickSource?: CronTickSource;
}

/**
 * The agent: at start it reconciles whatever a crash left and provisions missing services;
 * then, per service (agent/worker/), it heartbeats the coordinator, watches its container's health
 * (restarting a dead one), and on the staggered poll schedule compares the tag's digest with the
 * running one and runs the leased update when they differ.
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

  constructor(deps: AgentDeps) {
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
  }

  /** The update step of every service now (the metrics' current-step gauge). */
  steps(): Array<{ service: string; step: UpdateStep }> {
    return this.workers.map((worker) => worker.currentStep());
  }

  /**
   * Reconciles every service (docs/architecture.md step 10), then starts the loops. A reconcile that
   * fails (the engine is not up yet, say) does not stop the agent: that service is retried by its monitor.
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
    this.preparing ??= Promise.all(this.workers.map((worker) => worker.prepare())).then(() => undefined);
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
