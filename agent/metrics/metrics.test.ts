import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../shared/config/agent.js';
import { silentLogger } from '../../shared/logger.js';
import { Agent } from '../agent.js';
import { createReadinessBoard, type ReadinessBoard } from '../readiness/board.js';
import { liveProbes } from '../readiness/probe.js';
import { createReadinessServer } from '../readiness/server.js';
import { RegistryRateLimitedError, RegistryTimeoutError } from '../registry/errors.js';
import {
  advanceUntil,
  FakeCoordinator,
  FakeHealthProbe,
  FakeHooks,
  FakeRegistry,
  FakeRuntime,
  NEW_DIGEST,
  OLD_DIGEST,
  settle,
} from '../update/testing/fakes.js';
import { MemoryDrainStateStore } from '../update/testing/fakes.js';
import { createPrometheusAgentMetrics, noopAgentMetrics, registryErrorCode, type PrometheusAgentMetrics } from './metrics.js';
import { ManualClock } from '../../shared/testing/clock.js';
import { fixedRandom } from '../../shared/testing/random.js';
import { MemoryUpdateJournal } from '../update/testing/memory-journal.js';
import { recordWorkerMetrics } from '../worker/events.js';

async function valueOf(metrics: PrometheusAgentMetrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const found = values.find((entry) =>
    Object.entries(labels).every(([key, value]) => (entry.labels as Record<string, unknown>)[key] === value),
  );
  return found?.value;
}

describe('agent metrics (prom-client, own registry)', () => {
  it('counts polls and registry errors, times updates by outcome, and shows the current step', async () => {
    const metrics = createPrometheusAgentMetrics({ nodeId: 'node-1', version: '1.2.3' });
    let step: 'idle' | 'drain' = 'drain';
    metrics.watchSteps(() => [{ service: 'web', step }]);
    metrics.pollFinished('web', 'ok');
    metrics.pollFinished('web', 'ok');
    metrics.pollFinished('web', 'error');
    metrics.registryError('web', new RegistryTimeoutError('http://r/v2/', 1_000));
    metrics.registryError('web', new Error('anything else'));
    metrics.updateFinished('web', 'updated', 42_000);
    metrics.updateFinished('web', 'rolled-back', 3_000);

    expect(await valueOf(metrics, 'baton_agent_polls_total', { service: 'web', result: 'ok' })).toBe(2);
    expect(await valueOf(metrics, 'baton_agent_polls_total', { service: 'web', result: 'error' })).toBe(1);
    expect(await valueOf(metrics, 'baton_agent_registry_errors_total', { code: 'registry_timeout' })).toBe(1);
    expect(await valueOf(metrics, 'baton_agent_registry_errors_total', { code: 'unknown' })).toBe(1);

    const text = await metrics.render();
    expect(text).toContain('baton_agent_info{node="node-1",version="1.2.3"} 1');
    expect(text).toContain('baton_agent_update_duration_seconds_bucket{le="60",service="web",outcome="updated"} 1');
    expect(text).toContain('baton_agent_update_duration_seconds_bucket{le="30",service="web",outcome="updated"} 0');
    expect(text).toContain('baton_agent_update_duration_seconds_sum{service="web",outcome="updated"} 42');
    expect(text).toContain('baton_agent_update_duration_seconds_count{service="web",outcome="rolled-back"} 1');
    expect(text).toContain('baton_agent_update_step{service="web",step="drain"} 1');
    expect(text).toContain('baton_agent_update_step{service="web",step="idle"} 0');
    step = 'idle';
    const later = await metrics.render();
    expect(later).toContain('baton_agent_update_step{service="web",step="idle"} 1');
    expect(later).toContain('baton_agent_update_step{service="web",step="drain"} 0');
    // No process metrics unless asked, and nothing on prom-client's global registry.
    expect(text).not.toContain('process_cpu');
  });

  it('says whether the agent runs on its config file (1) or on its last known good copy (0)', async () => {
    const onFile = createPrometheusAgentMetrics({ nodeId: 'a', version: '0' });
    const onCopy = createPrometheusAgentMetrics({ nodeId: 'b', version: '0', configValid: false });
    expect(await onFile.render()).toMatch(/^baton_agent_config_valid 1$/m);
    expect(await onCopy.render()).toMatch(/^baton_agent_config_valid 0$/m);
  });

  it('keeps registries apart: two agents in one process do not collide', async () => {
    const a = createPrometheusAgentMetrics({ nodeId: 'a', version: '0', processMetrics: true });
    const b = createPrometheusAgentMetrics({ nodeId: 'b', version: '0', processMetrics: true });
    a.pollFinished('web', 'ok');
    expect(await valueOf(a, 'baton_agent_polls_total', { result: 'ok' })).toBe(1);
    expect(await valueOf(b, 'baton_agent_polls_total', { result: 'ok' })).toBeUndefined();
    expect(await a.render()).toContain('baton_agent_process_cpu_seconds_total');
  });

  it('maps registry errors to bounded codes', () => {
    expect(registryErrorCode(new RegistryRateLimitedError('r', 429, undefined))).toBe('registry_rate_limited');
    expect(registryErrorCode(new TypeError('x'))).toBe('unknown');
    expect(registryErrorCode('text')).toBe('unknown');
    expect(() => noopAgentMetrics.updateFinished('web', 'updated', 1)).not.toThrow();
  });

  it('is served by the readiness listener at /metrics (rendered asynchronously)', async () => {
    const metrics = createPrometheusAgentMetrics({ nodeId: 'node-1', version: '1.2.3' });
    metrics.pollFinished('web', 'ok');
    const readiness = createReadinessServer({
      listen: '127.0.0.1:0',
      logger: silentLogger(),
      board: passingBoard(),
      metrics: () => metrics.render(),
    });
    const { port } = await readiness.start();
    try {
      const answer = await request(`http://127.0.0.1:${port}/metrics`);
      expect(answer.statusCode).toBe(200);
      expect(answer.headers['content-type']).toContain('version=0.0.4');
      expect(await answer.body.text()).toContain('baton_agent_polls_total{service="web",result="ok"} 1');

      const failing = createReadinessServer({
        listen: '127.0.0.1:0',
        logger: silentLogger(),
        board: passingBoard(),
        metrics: () => Promise.reject(new Error('boom')),
      });
      const other = await failing.start();
      try {
        const broken = await request(`http://127.0.0.1:${other.port}/metrics`);
        expect(broken.statusCode).toBe(500);
        await broken.body.text();
      } finally {
        await failing.stop();
      }
    } finally {
      await readiness.stop();
    }
  });

  it('is fed by the agent: polls, a rate-limited poll, an update by outcome, and the step while it runs', async () => {
    const image = 'registry.test/app:latest';
    const clock = new ManualClock(1_700_000_000_000);
    const runtime = new FakeRuntime(clock);
    runtime.addContainer({ name: 'web', service: 'web', digest: OLD_DIGEST });
    const registry = new FakeRegistry(clock);
    registry.push(image, OLD_DIGEST);
    const coordinator = new FakeCoordinator(clock);
    const metrics = createPrometheusAgentMetrics({ nodeId: 'node-1', version: 'test' });
    const config = agentConfigSchema.parse({
      nodeId: 'node-1',
      host: '127.0.0.2',
      coordinator: { urls: ['http://127.0.0.1:7070'] },
      schedule: { cron: '*/10 * * * * *', splayMs: 0 },
      services: [
        {
          group: 'web',
          image,
          containerName: 'web',
          health: { http: { url: 'http://127.0.0.2:8080/health' }, intervalMs: 1_000, consecutivePasses: 2, deadlineMs: 10_000, minHealthyMs: 2_000 },
          drainSeconds: 2,
          readmitSeconds: 1,
        },
      ],
    });
    const healthProbe = FakeHealthProbe.backedBy(clock, runtime, 'web');
    const readiness = createReadinessBoard({
      services: ['web'],
      probe: liveProbes({ runtime, healthProbe, clock, engineTimeoutMs: 2_000 }, config.services),
      clock,
      cacheMs: 250,
      logger: silentLogger(),
    });
    const agent = new Agent({
      config,
      runtime,
      registry,
      coordinator,
      readiness,
      healthProbe,
      hooks: new FakeHooks(clock),
      journal: new MemoryUpdateJournal(),
      drains: new MemoryDrainStateStore(),
      clock,
      random: fixedRandom(0.5),
      logger: silentLogger(),
      agentVersion: 'test',
      // Wired as agent/main.ts wires it.
      onEvent: (event) => recordWorkerMetrics(metrics, event),
    });
    metrics.watchSteps(() => agent.steps());
    const until = (what: () => boolean) => advanceUntil(clock, what, { stepMs: 100, limitMs: 300_000 });
    const polls = (result: string) => valueOf(metrics, 'baton_agent_polls_total', { service: 'web', result });

    await settle(clock, agent.start(), { stepMs: 100 });
    await until(() => registry.calls.length >= 2);
    expect(await polls('ok')).toBe(2);

    registry.failures.push(new RegistryRateLimitedError('registry.test', 429, 1_000));
    await until(() => registry.calls.length >= 3);
    expect(await polls('error')).toBe(1);
    expect(await valueOf(metrics, 'baton_agent_registry_errors_total', { code: 'registry_rate_limited' })).toBe(1);

    registry.push(image, NEW_DIGEST);
    await until(() => coordinator.heartbeats().some((beat) => beat.step === 'drain'));
    expect(await metrics.render()).toContain('baton_agent_update_step{service="web",step="drain"} 1');
    await until(() => runtime.list().find((c) => c.name === 'web')?.digest === NEW_DIGEST && coordinator.calls.some((c) => c.op === 'release'));
    await until(() => coordinator.heartbeats().at(-1)?.step === 'idle');

    const text = await metrics.render();
    expect(text).toMatch(/baton_agent_update_duration_seconds_count\{service="web",outcome="updated"\} 1\n/);
    expect(text).toContain('baton_agent_update_step{service="web",step="idle"} 1');
    await settle(clock, agent.stop(), { stepMs: 100 });
  });
});

/** A board whose one service `web` always passes its probe. */
function passingBoard(): ReadinessBoard {
  return createReadinessBoard({
    services: ['web'],
    probe: () => Promise.resolve({ verdict: { pass: true }, container: undefined }),
    clock: new ManualClock(),
    cacheMs: 0,
    logger: silentLogger(),
  });
}
