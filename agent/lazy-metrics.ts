import type { UpdateStep } from '../shared/api/v1.js';
import type { AgentMetrics, PrometheusAgentMetrics } from './metrics/metrics.js';

/**
 * The agent's metrics, with prom-client loaded only when `/metrics` is first scraped.
 *
 * prom-client and its process metrics cost about 12 MB of RSS and, with the event-loop-lag
 * monitor running, a timer wake-up in the agent all the time; most agents are never scraped. Until
 * the first scrape, what the agent reports is kept in small aggregates (counts per label set, one
 * example error per code, update durations up to a bound) and replayed into the real metrics then,
 * so counters still count from the agent's start. Process CPU and memory come from the process
 * itself and are exact at any time; the event-loop-lag histogram starts with the first scrape.
 */
export interface LazyAgentMetrics extends AgentMetrics {
  render(): Promise<string>;
}

/** Update durations kept before the first scrape (updates are rare: minutes apart at most). */
const maxBufferedUpdates = 1_000;

export function createLazyAgentMetrics(
  options: { nodeId: string; version: string; processMetrics?: boolean; configValid?: boolean },
  load: () => Promise<{ createPrometheusAgentMetrics: (o: typeof options) => PrometheusAgentMetrics }> = () => import('./metrics/metrics.js'),
): LazyAgentMetrics {
  let real: PrometheusAgentMetrics | undefined;
  let loading: Promise<PrometheusAgentMetrics> | undefined;
  const polls = new Map<string, { service: string; result: 'ok' | 'error'; count: number }>();
  const errors = new Map<string, { service: string; error: unknown; count: number }>();
  const updates: Array<{ service: string; outcome: string; durationMs: number }> = [];
  let readSteps: (() => ReadonlyArray<{ service: string; step: UpdateStep }>) | undefined;

  const errorKey = (error: unknown): string => {
    const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
    const kind = typeof error === 'object' && error !== null ? error.constructor.name : typeof error;
    return `${kind}\u0000${code}`;
  };

  const ensure = (): Promise<PrometheusAgentMetrics> => {
    loading ??= load().then(({ createPrometheusAgentMetrics }) => {
      const metrics = createPrometheusAgentMetrics(options);
      for (const { service, result, count } of polls.values()) for (let i = 0; i < count; i += 1) metrics.pollFinished(service, result);
      for (const { service, error, count } of errors.values()) for (let i = 0; i < count; i += 1) metrics.registryError(service, error);
      for (const { service, outcome, durationMs } of updates) metrics.updateFinished(service, outcome, durationMs);
      if (readSteps) metrics.watchSteps(readSteps);
      polls.clear();
      errors.clear();
      updates.length = 0;
      real = metrics;
      return metrics;
    });
    return loading;
  };

  return {
    pollFinished(service, result) {
      if (real) return real.pollFinished(service, result);
      const key = `${service}\u0000${result}`;
      const entry = polls.get(key) ?? { service, result, count: 0 };
      entry.count += 1;
      polls.set(key, entry);
    },
    registryError(service, error) {
      if (real) return real.registryError(service, error);
      const key = `${service}\u0000${errorKey(error)}`;
      const entry = errors.get(key) ?? { service, error, count: 0 };
      entry.count += 1;
      errors.set(key, entry);
    },
    updateFinished(service, outcome, durationMs) {
      if (real) return real.updateFinished(service, outcome, durationMs);
      if (updates.length < maxBufferedUpdates) updates.push({ service, outcome, durationMs });
    },
    watchSteps(read) {
      readSteps = read;
      real?.watchSteps(read);
    },
    async render() {
      return (await ensure()).render();
    },
  };
}
