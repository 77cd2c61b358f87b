import type { ContainerInfo, ContainerStatus, DockerHealth } from '../ports.js';

/**
 * The readiness decisions, pure: what the engine and the app's check say about a service (the
 * probe), and what `GET /ready/<service>` answers from that and the update flow's flags. The live
 * probe (probe.ts) gathers the inputs, the board (board.ts) caches them; both only call these.
 */

/** Why a probe failed. `starting`: the image's Docker HEALTHCHECK has not passed yet (`health: starting`). */
export type ProbeFailure =
  | 'engine-unreachable'
  | 'container-missing'
  | 'container-stopped'
  | 'container-paused'
  | 'container-restarting'
  | 'check-failed'
  | 'starting';

/**
 * Why `/ready/<service>` answers 503: `drained` (an operator drained the node: `baton drain`),
 * `draining` (the update flow drains it), a probe failure, or `starting` also while the update flow
 * or the start-up reconcile holds the service out until it has checked it (setHealthy(false)).
 */
export type NotReadyReason = 'drained' | 'draining' | ProbeFailure;

export type ReadinessAnswer = { ready: true; reason: undefined } | { ready: false; reason: NotReadyReason };

export type ProbeVerdict = { pass: true } | { pass: false; reason: ProbeFailure };

/** What one inspect said: the engine did not answer (in time), no such container, or its state. */
export type EngineView =
  | { kind: 'unreachable' }
  | { kind: 'missing' }
  | { kind: 'found'; status: ContainerStatus; health: DockerHealth };

/** The app's HTTP check: passed, failed (a wrong status, a timeout, a refused connection), or none configured. */
export type CheckView = 'pass' | 'fail' | 'none';

/**
 * The update flow's say: draining (503 whatever the probe says), and held out until it has checked
 * the container; and the operator's: drained (503 whatever the probe says, until undrained).
 */
export interface FlowFlags {
  draining: boolean;
  held: boolean;
  drained: boolean;
}

export function engineViewOf(container: ContainerInfo | undefined): EngineView {
  return container === undefined ? { kind: 'missing' } : { kind: 'found', status: container.status, health: container.health };
}

const statusFailures: Record<Exclude<ContainerStatus, 'running'>, ProbeFailure> = {
  created: 'container-stopped',
  exited: 'container-stopped',
  dead: 'container-stopped',
  removing: 'container-stopped',
  paused: 'container-paused',
  restarting: 'container-restarting',
};

/**
 * What the engine's answer alone decides: a failure, or undefined when only the app's check is left
 * to ask. Known from the inspect alone, so a paused container fails without waiting for the HTTP
 * check (which would hang until its timeout).
 */
export function judgeEngine(engine: EngineView, requireDockerHealth: boolean): ProbeVerdict | undefined {
  if (engine.kind === 'unreachable') return { pass: false, reason: 'engine-unreachable' };
  if (engine.kind === 'missing') return { pass: false, reason: 'container-missing' };
  if (engine.status !== 'running') return { pass: false, reason: statusFailures[engine.status] };
  if (requireDockerHealth && engine.health !== 'healthy') {
    return { pass: false, reason: engine.health === 'starting' ? 'starting' : 'check-failed' };
  }
  return undefined;
}

/** The whole probe: the engine first (the more precise reason), then the app's check. */
export function judgeProbe(engine: EngineView, check: CheckView, requireDockerHealth: boolean): ProbeVerdict {
  const fromEngine = judgeEngine(engine, requireDockerHealth);
  if (fromEngine !== undefined) return fromEngine;
  return check === 'fail' ? { pass: false, reason: 'check-failed' } : { pass: true };
}

/**
 * The answer: an operator's drain wins (the node stays out until undrained), then draining (the
 * update flow owns the container from drain to success, whatever the probe says); then a failing
 * probe with its reason; then a hold; then ready. `probe` undefined: no probe has answered yet.
 */
export function decideAnswer(flags: FlowFlags, probe: ProbeVerdict | undefined): ReadinessAnswer {
  if (flags.drained) return { ready: false, reason: 'drained' };
  if (flags.draining) return { ready: false, reason: 'draining' };
  if (probe !== undefined && !probe.pass) return { ready: false, reason: probe.reason };
  if (flags.held || probe === undefined) return { ready: false, reason: 'starting' };
  return { ready: true, reason: undefined };
}
