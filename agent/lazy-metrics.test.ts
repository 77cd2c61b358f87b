import { describe, expect, it } from 'vitest';
import { BatonError } from '../shared/errors.js';
import { createLazyAgentMetrics } from './lazy-metrics.js';
import { createPrometheusAgentMetrics, type AgentMetrics } from './metrics/metrics.js';

function feed(metrics: AgentMetrics): void {
  metrics.watchSteps(() => [{ service: 'web', step: 'idle' }]);
  for (let i = 0; i < 5; i += 1) metrics.pollFinished('web', 'ok');
  metrics.pollFinished('web', 'error');
  metrics.pollFinished('api', 'error');
  metrics.registryError('web', new BatonError('REGISTRY_TIMEOUT', 'timed out'));
  metrics.registryError('api', new BatonError('REGISTRY_RATE_LIMITED', '429'));
  metrics.registryError('api', new BatonError('REGISTRY_RATE_LIMITED', '429 again'));
  metrics.registryError('api', new Error('something else'));
  metrics.updateFinished('web', 'updated', 42_000);
  metrics.updateFinished('web', 'rolled-back', 15_000);
}

describe('createLazyAgentMetrics', () => {
  it('loads prom-client only at the first scrape, and then shows what happened before it', async () => {
    let loads = 0;
    const lazy = createLazyAgentMetrics({ nodeId: 'n1', version: '1.2.3' }, async () => {
      loads += 1;
      return import('./metrics/metrics.js');
    });
    feed(lazy);
    expect(loads).toBe(0);

    const eager = createPrometheusAgentMetrics({ nodeId: 'n1', version: '1.2.3' });
    feed(eager);
    const [lazyText, eagerText] = await Promise.all([lazy.render(), lazy.render().then(() => eager.render())]);
    expect(loads).toBe(1);
    expect(lazyText).toBe(eagerText);

    // After loading, calls go straight through.
    lazy.pollFinished('web', 'ok');
    eager.pollFinished('web', 'ok');
    expect(await lazy.render()).toBe(await eager.render());
    expect(loads).toBe(1);
    expect(await lazy.render()).toMatch(/baton_agent_polls_total\{service="web",result="ok"\} 6/);
  });
});
