import type { Clock } from '../../shared/clock.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { ContainerRuntime, HealthProbe } from '../ports.js';

export type HealthCheckConfig = ServiceConfig['health'];

export interface HealthDeps {
  runtime: Pick<ContainerRuntime, 'inspect'>;
  healthProbe: HealthProbe;
  clock: Clock;
}

export type HealthResult =
  | { healthy: true; checks: number; elapsedMs: number }
  | { healthy: false; reason: string; checks: number; elapsedMs: number };

type CheckResult = { pass: true } | { pass: false; reason: string; fatal: boolean };

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One check of a container: running, then the Docker HEALTHCHECK and/or the HTTP check. */
async function checkOnce(deps: HealthDeps, containerName: string, health: HealthCheckConfig): Promise<CheckResult> {
  let info;
  try {
    info = await deps.runtime.inspect(containerName);
  } catch (error) {
    return { pass: false, reason: `inspect failed: ${describe(error)}`, fatal: false };
  }
  if (info === undefined) return { pass: false, reason: `container ${containerName} does not exist`, fatal: true };
  if (!info.running) {
    const code = info.exitCode === null ? '' : ` (exit code ${info.exitCode})`;
    return { pass: false, reason: `container ${containerName} is not running${code}`, fatal: true };
  }
  if (health.docker) {
    if (info.health === 'none') {
      return { pass: false, reason: 'docker: the image has no HEALTHCHECK', fatal: true };
    }
    if (info.health !== 'healthy') return { pass: false, reason: `docker: health is ${info.health}`, fatal: false };
  }
  if (health.http) {
    const { url, expectedStatus, timeoutMs } = health.http;
    let ok: boolean;
    try {
      ok = await deps.healthProbe.check(url, expectedStatus, timeoutMs);
    } catch (error) {
      return { pass: false, reason: `http: ${url}: ${describe(error)}`, fatal: false };
    }
    if (!ok) return { pass: false, reason: `http: ${url} did not answer ${expectedStatus}`, fatal: false };
  }
  return { pass: true };
}

/**
 * Waits until `containerName` is healthy by the service's rules (docs/architecture.md step 8):
 *
 * 1. checks at start and then every `intervalMs`, until `consecutivePasses` checks in a row pass; a
 *    check counts only if it starts no later than `deadlineMs` after the first one;
 * 2. then the container must stay healthy for `minHealthyMs`, checked every `intervalMs` and once more
 *    at the end of that window; one failing check there fails the whole wait.
 *
 * A container that does not exist or is not running fails at once (at the check that sees it), as
 * does `docker: true` for an image without a HEALTHCHECK. All timing goes through the injected clock.
 * Rejects with the signal's reason when `signal` aborts.
 */
export async function waitUntilHealthy(
  deps: HealthDeps,
  containerName: string,
  health: HealthCheckConfig,
  signal?: AbortSignal,
): Promise<HealthResult> {
  const { clock } = deps;
  const startMs = clock.nowMs();
  const deadlineMs = startMs + health.deadlineMs;
  let checks = 0;
  const fail = (reason: string): HealthResult => ({ healthy: false, reason, checks, elapsedMs: clock.nowMs() - startMs });

  let passes = 0;
  let lastFailure = 'no check passed';
  let nextCheckMs = startMs;
  for (;;) {
    signal?.throwIfAborted();
    const result = await checkOnce(deps, containerName, health);
    checks += 1;
    signal?.throwIfAborted();
    if (result.pass) {
      passes += 1;
      if (passes >= health.consecutivePasses) break;
    } else {
      if (result.fatal) return fail(result.reason);
      passes = 0;
      lastFailure = result.reason;
    }
    nextCheckMs += health.intervalMs;
    if (nextCheckMs > deadlineMs) {
      return fail(
        `not healthy within ${health.deadlineMs} ms (${passes} of ${health.consecutivePasses} consecutive passes; last failure: ${lastFailure})`,
      );
    }
    await clock.sleep(Math.max(0, nextCheckMs - clock.nowMs()), signal);
  }

  const passedMs = clock.nowMs();
  const stableUntilMs = passedMs + health.minHealthyMs;
  let nextMs = passedMs;
  while (clock.nowMs() < stableUntilMs) {
    nextMs = Math.min(nextMs + health.intervalMs, stableUntilMs);
    await clock.sleep(Math.max(0, nextMs - clock.nowMs()), signal);
    const result = await checkOnce(deps, containerName, health);
    checks += 1;
    signal?.throwIfAborted();
    if (!result.pass) {
      return fail(`unhealthy ${clock.nowMs() - passedMs} ms after passing its checks: ${result.reason}`);
    }
  }
  return { healthy: true, checks, elapsedMs: clock.nowMs() - startMs };
}
