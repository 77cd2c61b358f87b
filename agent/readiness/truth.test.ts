/**
 * The readiness truth table: every engine and container state × the app's check × the update flow's
 * flags → what `/ready/<service>` answers, and why. Then the live probe on the fake runtime: the
 * same answers from real calls, and a paused container failing at once, not after the HTTP timeout.
 */
import { describe, expect, it } from 'vitest';
import type { ContainerStatus, DockerHealth } from '../ports.js';
import { FakeHealthProbe, FakeRuntime, OLD_DIGEST } from '../update/testing/fakes.js';
import { probeService, type ProbeTarget } from './probe.js';
import { decideAnswer, judgeProbe, type CheckView, type EngineView, type NotReadyReason } from './truth.js';
import { ManualClock } from '../../shared/testing/clock.js';

const statuses: ContainerStatus[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];
const healths: DockerHealth[] = ['healthy', 'unhealthy', 'starting', 'none'];
const engines: Array<{ name: string; view: EngineView }> = [
  { name: 'unreachable', view: { kind: 'unreachable' } },
  { name: 'missing', view: { kind: 'missing' } },
  ...statuses.flatMap((status) =>
    healths.map((health) => ({ name: `${status}/${health}`, view: { kind: 'found', status, health } as EngineView })),
  ),
];
const checks: CheckView[] = ['pass', 'fail', 'none'];

/** The table, written out independently of truth.ts: the first matching row wins. */
function expected(engine: EngineView, check: CheckView, dockerHealth: boolean, draining: boolean, held: boolean): NotReadyReason | 'ok' {
  if (draining) return 'draining';
  if (engine.kind === 'unreachable') return 'engine-unreachable';
  if (engine.kind === 'missing') return 'container-missing';
  if (engine.status === 'paused') return 'container-paused';
  if (engine.status === 'restarting') return 'container-restarting';
  if (engine.status !== 'running') return 'container-stopped';
  if (dockerHealth && engine.health === 'starting') return 'starting';
  if (dockerHealth && engine.health !== 'healthy') return 'check-failed';
  if (check === 'fail') return 'check-failed';
  if (held) return 'starting';
  return 'ok';
}

describe('readiness truth table', () => {
  const rows = engines.flatMap(({ name, view }) =>
    checks.flatMap((check) =>
      [false, true].flatMap((dockerHealth) =>
        [false, true].flatMap((draining) => [false, true].map((held) => ({ name, view, check, dockerHealth, draining, held }))),
      ),
    ),
  );

  it(`covers ${rows.length} combinations`, () => {
    expect(rows.length).toBe(engines.length * checks.length * 8);
  });

  it.each(rows)('engine $name, check $check, docker health required $dockerHealth, draining $draining, held $held', (row) => {
    const answer = decideAnswer({ draining: row.draining, held: row.held, drained: false }, judgeProbe(row.view, row.check, row.dockerHealth));
    const want = expected(row.view, row.check, row.dockerHealth, row.draining, row.held);
    expect(answer).toEqual(want === 'ok' ? { ready: true, reason: undefined } : { ready: false, reason: want });
  });

  it('answers starting before any probe has answered, draining first', () => {
    expect(decideAnswer({ draining: false, held: false, drained: false }, undefined)).toEqual({ ready: false, reason: 'starting' });
    expect(decideAnswer({ draining: true, held: false, drained: false }, undefined)).toEqual({ ready: false, reason: 'draining' });
  });

  it('answers drained while an operator drained the node, whatever the update flow and the probe say', () => {
    const verdicts = [{ pass: true } as const, { pass: false, reason: 'check-failed' } as const, undefined];
    for (const probe of verdicts) {
      for (const draining of [false, true]) {
        for (const held of [false, true]) {
          expect(decideAnswer({ draining, held, drained: true }, probe)).toEqual({ ready: false, reason: 'drained' });
        }
      }
    }
  });
});

describe('live probe on the fake engine', () => {
  const httpTarget: ProbeTarget = {
    containerName: 'web',
    health: { http: { url: 'http://127.0.0.1:8080/health', expectedStatus: 200, timeoutMs: 2_000 }, docker: false },
  };

  function setup() {
    const clock = new ManualClock();
    const runtime = new FakeRuntime(clock);
    runtime.addContainer({ name: 'web', service: 'web', digest: OLD_DIGEST });
    const healthProbe = FakeHealthProbe.backedBy(clock, runtime, 'web');
    const deps = { runtime, healthProbe, clock, engineTimeoutMs: 1_000 };
    return { clock, runtime, healthProbe, deps };
  }

  it('passes a running container whose check passes, and runs the check alongside the inspect', async () => {
    const { runtime, healthProbe, deps } = setup();
    const result = await probeService(deps, httpTarget);
    expect(result.verdict).toEqual({ pass: true });
    expect(result.container).toMatchObject({ name: 'web', status: 'running', digest: OLD_DIGEST });
    expect(healthProbe.calls).toHaveLength(1);
    expect(runtime.calls.map((c) => c.op)).toEqual(['inspect']);
  });

  it('names each state of the engine and the container', async () => {
    const s = setup();
    s.runtime.setPaused('web', true);
    expect((await probeService(s.deps, httpTarget)).verdict).toEqual({ pass: false, reason: 'container-paused' });
    s.runtime.setPaused('web', false);
    s.runtime.setRestarting('web', true);
    expect((await probeService(s.deps, httpTarget)).verdict).toEqual({ pass: false, reason: 'container-restarting' });
    s.runtime.setRestarting('web', false);
    await s.runtime.stop('web', 0);
    expect((await probeService(s.deps, httpTarget)).verdict).toEqual({ pass: false, reason: 'container-stopped' });
    await s.runtime.remove('web');
    expect((await probeService(s.deps, httpTarget)).verdict).toEqual({ pass: false, reason: 'container-missing' });
    s.runtime.down = new Error('connect ENOENT /var/run/docker.sock');
    expect((await probeService(s.deps, httpTarget)).verdict).toEqual({ pass: false, reason: 'engine-unreachable' });
  });

  it('fails an app that fails its check, or a container whose HEALTHCHECK is not healthy when required', async () => {
    const s = setup();
    s.runtime.setImageBehaviour(OLD_DIGEST, { healthy: false });
    expect((await probeService(s.deps, httpTarget)).verdict).toEqual({ pass: false, reason: 'check-failed' });
    s.healthProbe.respond = () => Promise.reject(new Error('ECONNREFUSED'));
    expect((await probeService(s.deps, httpTarget)).verdict).toEqual({ pass: false, reason: 'check-failed' });
    const dockerOnly: ProbeTarget = { containerName: 'web', health: { docker: true } };
    expect((await probeService(s.deps, dockerOnly)).verdict).toEqual({ pass: false, reason: 'check-failed' });
    s.runtime.setImageBehaviour(OLD_DIGEST, {});
    expect((await probeService(s.deps, dockerOnly)).verdict).toEqual({ pass: true });
  });

  it('fails a paused container as soon as the inspect answers, not after the HTTP check times out', async () => {
    const s = setup();
    s.runtime.setPaused('web', true);
    // A paused app does not answer: its check would hang until its timeout.
    s.healthProbe.respond = () => s.clock.sleep(2_000).then(() => false);
    let settled: string | undefined;
    void probeService(s.deps, httpTarget).then((r) => (settled = r.verdict.pass ? 'pass' : r.verdict.reason));
    await s.clock.advance(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe('container-paused');
  });

  it('counts an engine that does not answer within engineTimeoutMs as unreachable', async () => {
    const s = setup();
    s.runtime.inspectLatencyMs = 60_000;
    let settled: string | undefined;
    void probeService(s.deps, httpTarget).then((r) => (settled = r.verdict.pass ? 'pass' : r.verdict.reason));
    await s.clock.advance(999);
    expect(settled).toBeUndefined();
    await s.clock.advance(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe('engine-unreachable');
  });
});
