import type { Clock } from '../../shared/clock.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { ContainerInfo, ContainerRuntime, HealthProbe } from '../ports.js';
import { engineViewOf, judgeEngine, judgeProbe, type CheckView, type EngineView, type ProbeVerdict } from './truth.js';

/**
 * The live probe behind `/ready/<service>` and the heartbeat's health: one inspect of the container
 * and, at the same time, the app's HTTP check when one is configured (the Docker HEALTHCHECK status
 * comes with the inspect). A failure the inspect alone shows (engine unreachable, container missing,
 * stopped, paused, restarting, HEALTHCHECK not healthy) answers as soon as the inspect does, without
 * waiting for the HTTP check. The decisions are truth.ts's.
 */

export interface LiveProbeDeps {
  runtime: Pick<ContainerRuntime, 'inspect'>;
  healthProbe: HealthProbe;
  clock: Clock;
  /** An inspect not answered within this long counts as `engine-unreachable`. */
  engineTimeoutMs: number;
}

export interface ProbeTarget {
  containerName: string;
  health: Pick<ServiceConfig['health'], 'http' | 'docker'>;
}

export interface ProbeResult {
  verdict: ProbeVerdict;
  /** What the inspect saw; undefined when the container is missing or the engine did not answer. */
  container: ContainerInfo | undefined;
}

export async function probeService(deps: LiveProbeDeps, target: ProbeTarget): Promise<ProbeResult> {
  const { http, docker } = target.health;
  // Started first, so that it runs during the inspect; it never rejects.
  const check: Promise<CheckView> = http
    ? deps.healthProbe.check(http.url, http.expectedStatus, http.timeoutMs).then(
        (ok): CheckView => (ok ? 'pass' : 'fail'),
        (): CheckView => 'fail',
      )
    : Promise.resolve('none');
  const { engine, container } = await inspectWithin(deps, target.containerName);
  const fromEngine = judgeEngine(engine, docker);
  if (fromEngine !== undefined) return { verdict: fromEngine, container };
  return { verdict: judgeProbe(engine, await check, docker), container };
}

type Inspected = { engine: EngineView; container: ContainerInfo | undefined };

/** One inspect, bounded by the injected clock: the engine's own timeout is meant for pulls (minutes). */
async function inspectWithin(deps: LiveProbeDeps, name: string): Promise<Inspected> {
  const unreachable: Inspected = { engine: { kind: 'unreachable' }, container: undefined };
  const timer = new AbortController();
  const timedOut = deps.clock.sleep(deps.engineTimeoutMs, timer.signal).then(
    () => unreachable,
    () => unreachable,
  );
  const inspected = deps.runtime.inspect(name).then(
    (container): Inspected => ({ engine: engineViewOf(container), container }),
    (): Inspected => unreachable,
  );
  try {
    return await Promise.race([inspected, timedOut]);
  } finally {
    timer.abort();
  }
}

/** The probe of each service by container name, for the board (a name it does not know throws). */
export function liveProbes(deps: LiveProbeDeps, targets: ProbeTarget[]): (service: string) => Promise<ProbeResult> {
  const byName = new Map(targets.map((target) => [target.containerName, target]));
  return (service) => {
    const target = byName.get(service);
    if (target === undefined) return Promise.reject(new Error(`no probe for service ${JSON.stringify(service)}`));
    return probeService(deps, target);
  };
}
