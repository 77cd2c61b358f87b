import type { DrainInfo, HealthReason, NodeHealth } from '../../shared/api/v1.js';
import { linkAbort } from '../../shared/abort.js';
import { withJitterMs } from '../../shared/backoff.js';
import type { Clock } from '../../shared/clock.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { RandomSource } from '../../shared/random.js';
import type { CoordinatorClient } from '../ports.js';
import type { ReadinessAnswer } from '../readiness/truth.js';
import type { WorkerEvent } from './events.js';
import type { ServiceState } from './state.js';

const defaultHeartbeatIntervalMs = 5_000;

export interface HeartbeatDeps {
  coordinator: CoordinatorClient;
  /** What `/ready/<service>` answers now (agent/readiness/board.ts). */
  checkReadiness: () => Promise<ReadinessAnswer>;
  clock: Clock;
  random: RandomSource;
  nodeId: string;
  host: string;
  agentVersion: string;
  /** Set when the agent runs on its last known good config: sent with every heartbeat. */
  configProblem: string | undefined;
  service: ServiceConfig;
  state: ServiceState;
  /** The node's operator drain, as every answer carries it (agent/drain). */
  followDrain: (drained: DrainInfo | null) => void;
  report: (event: WorkerEvent) => void;
}

/**
 * One service's heartbeat loop (docs/architecture.md, data flow 1): every few seconds, and at once
 * when something worth reporting changes, it tells the coordinator the node's digest, health and
 * step; the answer brings the group's rollout, the pause flag, the drain and "poll now".
 */
export class HeartbeatLoop {
  private intervalMs = defaultHeartbeatIntervalMs;
  private wake: { abort(): void } = new AbortController();
  /** Something worth reporting changed since the last beat was sent. */
  private dirty = false;

  constructor(private readonly deps: HeartbeatDeps) {}

  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      this.dirty = false;
      try {
        await this.send(signal);
        if (failures > 0) this.deps.report({ type: 'coordinator-reachable', service: this.deps.service.containerName, failures });
        failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        failures += 1;
        if (failures === 1 || failures % 12 === 0) {
          this.deps.report({ type: 'heartbeat-failed', service: this.deps.service.containerName, error, failures });
        }
      }
      await this.sleepUntilNext(signal, failures > 0);
    }
  }

  /** One last beat on shutdown so the status page shows the final state without waiting. */
  async final(): Promise<void> {
    try {
      await this.send(AbortSignal.timeout(2_000));
    } catch {
      // The coordinator may be gone too; nothing to do.
    }
  }

  /** Reports a change at once: wakes the loop, or makes it beat again right after the beat in flight. */
  now(): void {
    this.dirty = true;
    this.wake.abort();
  }

  private async send(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    const { state, service } = deps;
    // The step as the beat starts: the health probe below takes a moment, and a step as short as a
    // lease granted at once is still reported.
    const step = state.step;
    const health = await this.health();
    const answer = await deps.coordinator.heartbeat(
      deps.nodeId,
      {
        group: service.group,
        host: deps.host,
        image: service.image,
        // Read after the probe: a digest read before it could predate a release made meanwhile,
        // and tell the coordinator the old digest after it recorded the new one.
        currentDigest: state.runningDigest,
        ...health,
        step,
        agentVersion: deps.agentVersion,
        ...(deps.configProblem !== undefined ? { configProblem: deps.configProblem } : {}),
      },
      signal,
    );
    this.intervalMs = answer.heartbeatIntervalMs;
    const name = service.containerName;
    const followed = state.followRollout(answer.rolloutSeq, answer.rolledBackFrom, answer.targetDigest);
    if (followed.forgotten !== undefined) {
      deps.report({ type: 'new-rollout', service: name, rolloutSeq: answer.rolloutSeq, settledDigest: followed.forgotten.digest });
    }
    if (followed.pinChanged) {
      const pin = state.rollbackPin;
      deps.report({ type: 'rollback-changed', service: name, rolledBackFrom: pin?.from ?? null, target: pin?.to ?? null });
    }
    if (answer.paused !== state.paused) deps.report({ type: 'pause-changed', service: name, paused: answer.paused });
    state.paused = answer.paused;
    deps.followDrain(answer.drained);
    if (answer.pollNow && !state.stopping) {
      deps.report({ type: 'poll-now-asked', service: name });
      // Kept until a poll of this service runs: the coordinator answers pollNow once.
      state.requestPoll();
    }
  }

  /** The readiness endpoint's answer now (a probe at most probeCacheMs old), in the coordinator's terms. */
  private async health(): Promise<{ health: NodeHealth; healthReason?: HealthReason }> {
    let answer: ReadinessAnswer | undefined;
    try {
      answer = await this.deps.checkReadiness();
    } catch {
      answer = undefined;
    }
    const { state } = this.deps;
    const reported = heartbeatHealth(answer, state.readySinceMs, this.deps.clock.nowMs(), this.deps.service.readmitSeconds * 1_000);
    state.readySinceMs = reported.readySinceMs;
    return reported.healthReason === undefined ? { health: reported.health } : { health: reported.health, healthReason: reported.healthReason };
  }

  private async sleepUntilNext(signal: AbortSignal, lastFailed: boolean): Promise<void> {
    // A change that happened while the last beat was in flight is sent now (but a failing
    // coordinator is not hammered: after a failure the loop waits its interval).
    if (this.dirty && !lastFailed) return;
    if (signal.aborted) return;
    // One link per sleep, undone afterwards: no listener piles up on shutdown over months of beats.
    const wake = linkAbort(signal);
    this.wake = wake;
    const delayMs = withJitterMs(this.intervalMs * 0.9, this.intervalMs * 0.2, this.deps.random);
    try {
      await this.deps.clock.sleep(delayMs, wake.signal);
    } catch {
      // Woken early: by shutdown or by a state change worth reporting at once.
    } finally {
      wake.dispose();
    }
  }
}

/**
 * The health a heartbeat reports, and since when the service has been ready. A service that has
 * just become ready is reported `starting` until it has been ready for `readmitMs`: the balancer
 * needs its `rise` checks to take the node back, and the coordinator must not count it in service
 * (and drain the next node) before then. No answer (the check threw) is `unknown`.
 */
export function heartbeatHealth(
  answer: ReadinessAnswer | undefined,
  readySinceMs: number | undefined,
  nowMs: number,
  readmitMs: number,
): { health: NodeHealth; healthReason?: HealthReason; readySinceMs: number | undefined } {
  if (answer === undefined) return { health: 'unknown', readySinceMs: undefined };
  if (!answer.ready) return { health: nodeHealthOf(answer), healthReason: answer.reason, readySinceMs: undefined };
  const since = readySinceMs ?? nowMs;
  if (nowMs - since < readmitMs) return { health: 'starting', healthReason: 'starting', readySinceMs: since };
  return { health: 'healthy', readySinceMs: since };
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
