import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { updateStepSchema, type UpdateStep } from '../../shared/api/v1.js';
import { BatonError } from '../../shared/errors.js';

/**
 * What the agent reports about itself. The agent calls these at the points that matter; the
 * default does nothing, so unit tests and fakes need no Prometheus at all.
 */
export interface AgentMetrics {
  /** One registry poll (HEAD of the tag) of one service ended. */
  pollFinished(service: string, result: 'ok' | 'error'): void;
  /** A poll failed; `error` is what the registry client threw (its code becomes the `code` label). */
  registryError(service: string, error: unknown): void;
  /** One update attempt ended, by the update flow's outcome (`updated`, `rolled-back`, `skipped`, ...). */
  updateFinished(service: string, outcome: string, durationMs: number): void;
  /** Called once by the agent: read at every scrape for the current-step gauge. */
  watchSteps(read: () => ReadonlyArray<{ service: string; step: UpdateStep }>): void;
}

export const noopAgentMetrics: AgentMetrics = {
  pollFinished() {},
  registryError() {},
  updateFinished() {},
  watchSteps() {},
};

/** Bounded label values: the registry client's error codes, or `unknown`. */
export function registryErrorCode(error: unknown): string {
  if (error instanceof BatonError && /^[A-Z0-9_]{1,64}$/.test(error.code)) return error.code.toLowerCase();
  return 'unknown';
}

export interface PrometheusAgentMetrics extends AgentMetrics {
  readonly registry: Registry;
  /** The exposition text (prom-client renders asynchronously). */
  render(): Promise<string>;
  readonly contentType: string;
}

/** Update durations run from seconds (skipped) to many minutes (slow pulls, long drains and health deadlines). */
const updateBuckets = [1, 5, 10, 30, 60, 120, 300, 600, 1_200, 1_800, 3_600];

/**
 * The agent's metrics on its own prom-client Registry (never the global one, so a process can
 * hold several agents in tests and nothing leaks between them).
 */
export function createPrometheusAgentMetrics(options: {
  nodeId: string;
  version: string;
  /** Node.js process metrics (CPU, memory, event loop lag), prefixed `baton_agent_`. */
  processMetrics?: boolean;
  /** False while the agent runs on its last known good config because its config file is invalid; default true. */
  configValid?: boolean;
}): PrometheusAgentMetrics {
  const registry = new Registry();
  let readSteps: () => ReadonlyArray<{ service: string; step: UpdateStep }> = () => [];

  new Gauge({
    name: 'baton_agent_info',
    help: 'Always 1; the labels name this agent.',
    labelNames: ['node', 'version'] as const,
    registers: [registry],
  }).set({ node: options.nodeId, version: options.version }, 1);

  new Gauge({
    name: 'baton_agent_config_valid',
    help: '1 when the agent runs on its config file; 0 when that file is invalid and the agent runs on its last known good copy.',
    registers: [registry],
  }).set(options.configValid === false ? 0 : 1);

  const polls = new Counter({
    name: 'baton_agent_polls_total',
    help: 'Registry polls (one HEAD of the tag per service), by result.',
    labelNames: ['service', 'result'] as const,
    registers: [registry],
  });
  const registryErrors = new Counter({
    name: 'baton_agent_registry_errors_total',
    help: 'Failed registry polls, by error code (e.g. registry_timeout, registry_rate_limited).',
    labelNames: ['service', 'code'] as const,
    registers: [registry],
  });
  const updateDuration = new Histogram({
    name: 'baton_agent_update_duration_seconds',
    help: 'Duration of update attempts, from lease request to release, by outcome.',
    labelNames: ['service', 'outcome'] as const,
    buckets: updateBuckets,
    registers: [registry],
  });
  new Gauge({
    name: 'baton_agent_update_step',
    help: 'The update step each service is in: 1 for the current step, 0 for the others (idle when no update runs).',
    labelNames: ['service', 'step'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { service, step } of readSteps()) {
        for (const candidate of updateStepSchema.options) this.set({ service, step: candidate }, candidate === step ? 1 : 0);
      }
    },
  });

  // Event-loop lag sampled every second, not every 10 ms (prom-client's default): a 100 Hz timer
  // was most of an idle agent's CPU. The lag percentiles stay meaningful at this resolution.
  if (options.processMetrics) {
    collectDefaultMetrics({ register: registry, prefix: 'baton_agent_', eventLoopMonitoringPrecision: 1_000 });
  }

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    pollFinished(service, result) {
      polls.inc({ service, result });
    },
    registryError(service, error) {
      registryErrors.inc({ service, code: registryErrorCode(error) });
    },
    updateFinished(service, outcome, durationMs) {
      updateDuration.observe({ service, outcome }, Math.max(0, durationMs) / 1_000);
    },
    watchSteps(read) {
      readSteps = read;
    },
  };
}
