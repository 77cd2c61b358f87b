import type { UpdateStep } from '../../shared/api/v1.js';
import type { Clock } from '../../shared/clock.js';
import type { AgentConfig, ServiceConfig } from '../../shared/config/agent.js';
import type { Logger } from '../../shared/logger.js';
import type { RandomSource } from '../../shared/random.js';
import { OperatorDrain } from '../drain/operator-drain.js';
import type { DrainStateStore } from '../drain/state.js';
import type { ContainerRuntime, CoordinatorClient, HealthProbe, HookRunner, Readiness, RegistryClient } from '../ports.js';
import type { ReadinessBoard } from '../readiness/board.js';
import type { UpdateDeps, UpdateJournal } from '../update/index.js';
import { logWorkerEvent, type WorkerEvent } from './events.js';
import { HeartbeatLoop } from './heartbeat.js';
import { HealthMonitor } from './monitor.js';
import { Poller } from './poller.js';
import { ServiceRepairs } from './repair.js';
import { ServiceState } from './state.js';

export interface WorkerDeps {
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
  /** Set when the agent runs on its last known good config: sent with every heartbeat (agent/config/startup.ts). */
  configProblem?: string;
  /** Told every event after it is logged (main.ts counts them in the metrics). */
  onEvent?: (event: WorkerEvent) => void;
}

/**
 * One service on this node: a heartbeat loop, a health monitor and a poller around the one state
 * they share (state.ts), the repairs (reconcile, provisioning) and the operator drain. This class
 * only wires them; the Agent (agent/agent.ts) runs them.
 */
export class ServiceWorker {
  private readonly state: ServiceState;
  private readonly heartbeat: HeartbeatLoop;
  private readonly monitor: HealthMonitor;
  private readonly repairs: ServiceRepairs;
  private readonly poller: Poller;
  /** An operator's drain (`baton drain`): out of the balancer and no update until undrained. */
  private readonly operatorDrain: OperatorDrain;
  private readonly name: string;
  private readonly logger: Logger;

  constructor(deps: WorkerDeps, service: ServiceConfig, requestPoll: () => void) {
    const name = service.containerName;
    const logger = deps.logger.child({ service: name, group: service.group });
    this.name = name;
    this.logger = logger;
    const report = (event: WorkerEvent): void => {
      logWorkerEvent(logger, event);
      deps.onEvent?.(event);
    };
    const state = new ServiceState({ changed: () => this.heartbeat.now(), pollWanted: requestPoll });
    this.state = state;
    this.operatorDrain = new OperatorDrain({
      service,
      nodeId: deps.config.nodeId,
      store: deps.drains,
      hooks: deps.hooks,
      setDrained: (drained) => deps.readiness.setDrained(name, drained),
      logger,
      onChange: () => state.markChanged(),
      onHookFailed: (failure) => report({ type: 'drain-hook-failed', service: name, ...failure }),
      onUndrained: () => {
        // Back in service: catch up with the group's rollout now.
        state.settled = undefined;
        state.requestPoll();
      },
    });
    this.heartbeat = new HeartbeatLoop({
      coordinator: deps.coordinator,
      checkReadiness: () => deps.readiness.check(name),
      clock: deps.clock,
      random: deps.random,
      nodeId: deps.config.nodeId,
      host: deps.config.host,
      agentVersion: deps.agentVersion,
      configProblem: deps.configProblem,
      service,
      state,
      followDrain: (drained) => this.operatorDrain.follow(drained),
      report,
    });
    const update = updateDepsFor(deps, name, state);
    this.repairs = new ServiceRepairs({
      service,
      update,
      registry: deps.registry,
      setHealthy: (healthy) => deps.readiness.setHealthy(name, healthy),
      state,
      provisioned: (health) => this.monitor.provisioned(health),
      report,
      logger,
    });
    this.monitor = new HealthMonitor({
      service,
      readiness: deps.readiness,
      runtime: deps.runtime,
      clock: deps.clock,
      state,
      repairs: this.repairs,
      report,
      logger,
    });
    this.poller = new Poller({
      service,
      update,
      registry: deps.registry,
      state,
      drainedByOperator: () => this.operatorDrain.active,
      updateEnded: () => this.monitor.resetFailedChecks(),
      report,
      logger,
    });
  }

  /**
   * Before readiness answers: a service whose update a crash cut short is held until reconciled,
   * and a drain remembered from before this start keeps the service out (agent/drain).
   */
  async prepare(): Promise<void> {
    await this.repairs.holdIfJournaled();
    try {
      await this.operatorDrain.restore();
    } catch (error) {
      this.logger.error({ err: error }, 'cannot restore the drain state');
    }
  }

  /** Step 10: end whatever a crash left half done, then make sure the service runs. */
  async reconcileAtStart(): Promise<void> {
    await this.state.exclusive(() => this.repairs.reconcile());
  }

  heartbeatLoop(signal: AbortSignal): Promise<void> {
    return this.heartbeat.run(signal);
  }

  monitorLoop(signal: AbortSignal): Promise<void> {
    return this.monitor.run(signal);
  }

  poll(signal: AbortSignal): Promise<void> {
    return this.poller.poll(signal);
  }

  beginStop(): void {
    this.state.stopping = true;
  }

  drainSettled(): Promise<void> {
    return this.operatorDrain.settled();
  }

  finalHeartbeat(): Promise<void> {
    return this.heartbeat.final();
  }

  currentStep(): { service: string; step: UpdateStep } {
    return { service: this.name, step: this.state.step };
  }
}

/** The update flow's ports for one service: every readiness change and step is heartbeated at once. */
function updateDepsFor(deps: WorkerDeps, name: string, state: ServiceState): UpdateDeps {
  const readiness: Readiness = {
    setDraining: (service, draining) => {
      deps.readiness.setDraining(service, draining);
      state.markChanged();
    },
    setHealthy: (service, healthy) => {
      deps.readiness.setHealthy(service, healthy);
      state.markChanged();
    },
  };
  return {
    runtime: deps.runtime,
    coordinator: deps.coordinator,
    readiness,
    healthProbe: deps.healthProbe,
    hooks: deps.hooks,
    journal: deps.journal,
    clock: deps.clock,
    random: deps.random,
    logger: deps.logger,
    nodeId: deps.config.nodeId,
    // The end (idle) is reported by the caller once it has recorded the digest that runs now: a beat
    // sent at `idle` before that would tell the coordinator the old digest after the release.
    onStep: (step) => (step === 'idle' ? state.resetStep() : state.setStep(step)),
    // No lease while the engine is unreachable: the update could not stop or start anything.
    holdLeaseRequest: async () => {
      const answer = await deps.readiness.check(name).catch(() => undefined);
      return answer?.reason === 'engine-unreachable' ? 'the engine is unreachable' : undefined;
    },
  };
}
