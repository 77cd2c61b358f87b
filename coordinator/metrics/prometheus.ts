import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  nodeHealthSchema,
  refusalReasonSchema,
  rolloutStateSchema,
  type BatonEvent,
  type StatusResponse,
} from '../../shared/api/v1.js';
import type { FleetAnalytics } from './analytics.js';

/** What the metrics read from the coordinator: its groups at scrape time and its events as they happen. */
export interface MetricsSource {
  groupStatuses(): StatusResponse['groups'];
  onEvents(listener: (events: BatonEvent[]) => void): () => void;
}

/** Totals a notifier keeps, exported as counters at scrape time. */
export interface NotificationTotals {
  stats(): { delivered: number; retried: number; failed: number; dropped: number; queued: number };
}

export interface CoordinatorMetrics {
  registry: Registry;
  /** The exposition text and its content type, for GET /metrics. */
  render(): Promise<{ contentType: string; body: string }>;
  stop(): void;
}

const seconds = (ms: number): number => ms / 1_000;

/**
 * The coordinator's Prometheus metrics, in a registry of their own (never the global one:
 * tests run several coordinators in one process). Gauges are read from the cached state at
 * scrape time; counters and histograms follow the events committed since the process started.
 */
export function createCoordinatorMetrics(options: {
  source: MetricsSource;
  analytics: FleetAnalytics;
  notifier?: NotificationTotals;
  /** Node.js process metrics (CPU, memory, event loop); main turns them on. */
  processMetrics?: boolean;
}): CoordinatorMetrics {
  const { source } = options;
  const registry = new Registry();
  // One read of the state per scrape, shared by every gauge.
  let scrape: StatusResponse['groups'] | undefined;
  const groups = (): StatusResponse['groups'] => scrape ?? source.groupStatuses();
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry });

  new Gauge({
    name: 'baton_rollouts',
    help: 'Groups whose current rollout is in each state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, number>(rolloutStateSchema.options.map((state) => [state, 0]));
      for (const group of groups()) {
        if (group.rollout) counts.set(group.rollout.state, (counts.get(group.rollout.state) ?? 0) + 1);
      }
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });

  new Gauge({
    name: 'baton_rollout_progress_ratio',
    help: 'Share of a group\'s nodes that run the target digest of its current rollout.',
    labelNames: ['group', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const group of groups()) {
        const rollout = group.rollout;
        if (!rollout) continue;
        const { onTarget, totalNodes } = rollout.progress;
        this.set({ group: group.name, state: rollout.state }, totalNodes === 0 ? 0 : onTarget / totalNodes);
      }
    },
  });

  new Gauge({
    name: 'baton_leases_held',
    help: 'Leases held now, per group: nodes out of service for an update.',
    labelNames: ['group'],
    registers: [registry],
    collect() {
      this.reset();
      for (const group of groups()) this.set({ group: group.name }, group.leases.length);
    },
  });

  new Gauge({
    name: 'baton_nodes',
    help: 'Nodes per group by the health their agent last reported.',
    labelNames: ['group', 'health'],
    registers: [registry],
    collect() {
      this.reset();
      for (const group of groups()) {
        const counts = new Map<string, number>(nodeHealthSchema.options.map((health) => [health, 0]));
        for (const node of group.nodes) counts.set(node.health, (counts.get(node.health) ?? 0) + 1);
        for (const [health, count] of counts) this.set({ group: group.name, health }, count);
      }
    },
  });

  new Gauge({
    name: 'baton_nodes_silent',
    help: 'Nodes per group whose last heartbeat is older than the miss limit.',
    labelNames: ['group'],
    registers: [registry],
    collect() {
      this.reset();
      for (const group of groups()) {
        this.set({ group: group.name }, group.nodes.filter((node) => node.silent).length);
      }
    },
  });

  const grants = new Counter({
    name: 'baton_lease_grants_total',
    help: 'Leases granted.',
    labelNames: ['group'],
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'baton_lease_refusals_total',
    help: `Lease requests refused, by reason (${refusalReasonSchema.options.join(', ')}).`,
    labelNames: ['group', 'reason'],
    registers: [registry],
  });
  const releases = new Counter({
    name: 'baton_lease_releases_total',
    help: 'Leases handed back, by outcome (updated, failed, abandoned).',
    labelNames: ['group', 'outcome'],
    registers: [registry],
  });
  const expiries = new Counter({
    name: 'baton_lease_expiries_total',
    help: 'Leases that ran out without being renewed.',
    labelNames: ['group'],
    registers: [registry],
  });
  const events = new Counter({
    name: 'baton_events_total',
    help: 'Events appended to the log, by type.',
    labelNames: ['type'],
    registers: [registry],
  });
  const rolloutDuration = new Histogram({
    name: 'baton_rollout_duration_seconds',
    help: 'Time from a rollout opening (or reopening) to its completion.',
    labelNames: ['group'],
    buckets: [10, 30, 60, 120, 300, 600, 1_800, 3_600, 7_200, 21_600, 86_400],
    registers: [registry],
  });
  const rollbackDuration = new Histogram({
    name: 'baton_rollback_duration_seconds',
    help: 'Time to roll back: from a node\'s lease grant to its failed release.',
    labelNames: ['group'],
    buckets: [5, 15, 30, 60, 120, 300, 600, 1_800, 3_600],
    registers: [registry],
  });

  const fleetRollbackDuration = new Histogram({
    name: 'baton_fleet_rollback_duration_seconds',
    help: 'Time to roll the fleet back: from a rollout back to an earlier completed digest opening (baton rollback, or the push of the old tag) to every node running it.',
    labelNames: ['group'],
    buckets: [5, 15, 30, 60, 120, 300, 600, 1_800, 3_600],
    registers: [registry],
  });

  if (options.notifier) {
    const notifier = options.notifier;
    new Counter({
      name: 'baton_notifications_total',
      help: 'Webhook notifications by outcome: delivered, retried (one per extra attempt), failed (attempts used up), dropped (queue full).',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        this.reset();
        const stats = notifier.stats();
        for (const outcome of ['delivered', 'retried', 'failed', 'dropped'] as const) this.inc({ outcome }, stats[outcome]);
      },
    });
    new Gauge({
      name: 'baton_notifications_queued',
      help: 'Webhook notifications waiting to be sent.',
      registers: [registry],
      collect() {
        this.set(notifier.stats().queued);
      },
    });
  }

  const stopEvents = source.onEvents((batch) => {
    for (const event of batch) {
      events.inc({ type: event.type });
      switch (event.type) {
        case 'grant':
          grants.inc({ group: event.group });
          break;
        case 'refusal':
          refusals.inc({ group: event.group, reason: event.reason ?? 'unknown' });
          break;
        case 'release':
          releases.inc({ group: event.group, outcome: event.outcome ?? 'unknown' });
          break;
        case 'expiry':
          expiries.inc({ group: event.group });
          break;
        default:
          break;
      }
    }
  });
  const stopMeasurements = options.analytics.onMeasurement((measurement) => {
    const histogram = {
      'rollout-completed': rolloutDuration,
      'rolled-back': rollbackDuration,
      'fleet-rolled-back': fleetRollbackDuration,
    }[measurement.kind];
    histogram.observe({ group: measurement.group }, seconds(measurement.durationMs));
  });

  return {
    registry,
    render: async () => {
      scrape = source.groupStatuses();
      try {
        return { contentType: registry.contentType, body: await registry.metrics() };
      } finally {
        scrape = undefined;
      }
    },
    stop: () => {
      stopEvents();
      stopMeasurements();
    },
  };
}
