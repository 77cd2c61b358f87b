import type { Logger } from '../../shared/logger.js';
// Types only: the Prometheus implementation is loaded at the first scrape (agent/lazy-metrics.ts).
import type { AgentMetrics } from '../metrics/metrics.js';
import type { ReconcileAction, UpdateOutcome, UpdateResult } from '../update/index.js';

/**
 * What a service's worker reports as it happens. Every event is logged (logWorkerEvent); the
 * agent's `onEvent` gets it too: main.ts counts it in the metrics (recordWorkerMetrics), tests
 * observe the worker through it. `service` is the container name.
 */
export type WorkerEvent =
  | { type: 'reconciled'; service: string; action: ReconcileAction; digest: string | null; healthy: boolean }
  | { type: 'reconcile-failed'; service: string; error: unknown; failures: number; retryInMs: number }
  | { type: 'provisioned'; service: string; digest: string; healthy: boolean; durationMs: number }
  | { type: 'provision-failed'; service: string; error: unknown; failures: number; retryInMs: number; durationMs: number }
  | { type: 'polled'; service: string; digest: string; durationMs: number }
  | { type: 'poll-failed'; service: string; error: unknown; failures: number; retryInMs: number; durationMs: number }
  | { type: 'registry-reachable'; service: string; failures: number }
  | { type: 'poll-skipped'; service: string; why: 'registry-backoff'; retryAtMs: number }
  | { type: 'poll-skipped'; service: string; why: 'operator-drain' }
  | { type: 'poll-despite-backoff'; service: string; retryAtMs: number }
  | { type: 'poll-now-asked'; service: string }
  /** A new digest that is not updated to now: the group is paused, or the digest settled (see SettledDigest). */
  | { type: 'digest-held'; service: string; digest: string; why: 'group-paused' }
  | { type: 'digest-held'; service: string; digest: string; why: 'settled'; detail: string }
  | {
      type: 'update-finished';
      service: string;
      digest: string;
      outcome: UpdateOutcome;
      reason: string | undefined;
      release: UpdateResult['release'];
      durationMs: number;
    }
  | { type: 'update-crashed'; service: string; digest: string; error: unknown }
  | { type: 'pause-changed'; service: string; paused: boolean }
  | { type: 'new-rollout'; service: string; rolloutSeq: number; settledDigest: string }
  | { type: 'rollback-changed'; service: string; rolledBackFrom: string | null; target: string | null }
  | { type: 'heartbeat-failed'; service: string; error: unknown; failures: number }
  | { type: 'coordinator-reachable'; service: string; failures: number }
  | { type: 'health-changed'; service: string; healthy: boolean; digest: string | null; reason?: string; failedChecks?: number }
  | { type: 'container-missing'; service: string; digest: string | null }
  | { type: 'container-restarting'; service: string; digest: string | null; exitCode: number | null }
  /** An operator drain's hook exited non-zero (`exitCode`) or could not run (`error`). */
  | { type: 'drain-hook-failed'; service: string; hook: 'preDrain' | 'postReady'; exitCode: number | null; error?: unknown };

export type WorkerEventType = WorkerEvent['type'];

/**
 * One log line per event, on a logger that already names the service and group. The wording is
 * what operators grep for: change it with care.
 */
export function logWorkerEvent(logger: Logger, event: WorkerEvent): void {
  switch (event.type) {
    case 'reconciled':
      return logger.info({ action: event.action, digest: event.digest, healthy: event.healthy }, 'reconciled');
    case 'reconcile-failed':
      return logger.error({ err: event.error, failures: event.failures, retryInMs: event.retryInMs }, 'reconcile failed; will retry');
    case 'provisioned':
      return logger.info(
        { step: 'start', digest: event.digest, durationMs: event.durationMs, healthy: event.healthy },
        'provisioned missing service',
      );
    case 'provision-failed':
      return logger.error(
        { err: event.error, failures: event.failures, retryInMs: event.retryInMs, durationMs: event.durationMs },
        'could not provision service; will retry',
      );
    case 'polled':
      return logger.debug({ step: 'poll', digest: event.digest, durationMs: event.durationMs }, 'polled');
    case 'poll-failed':
      return logger.warn(
        { err: event.error, step: 'poll', durationMs: event.durationMs, failures: event.failures, retryInMs: event.retryInMs },
        'registry poll failed; the service keeps running',
      );
    case 'registry-reachable':
      return logger.info({ failures: event.failures }, 'registry reachable again');
    case 'poll-skipped':
      if (event.why === 'operator-drain') return logger.debug('drained by an operator: no poll until undrained');
      return logger.debug({ retryAtMs: event.retryAtMs }, 'registry backoff: skipping this poll');
    case 'poll-despite-backoff':
      return logger.info({ retryAtMs: event.retryAtMs }, 'push notification: polling despite the registry backoff');
    case 'poll-now-asked':
      return logger.info('coordinator asked for a poll now (registry push)');
    case 'digest-held':
      if (event.why === 'group-paused') return logger.info({ step: 'compare', digest: event.digest }, 'new digest, but the group is paused');
      return logger.debug({ step: 'compare', digest: event.digest, why: event.detail }, 'new digest, but not asking again');
    case 'update-finished':
      return logger.info(
        { outcome: event.outcome, reason: event.reason, digest: event.digest, release: event.release, durationMs: event.durationMs },
        'update finished',
      );
    case 'update-crashed':
      return logger.error({ err: event.error, digest: event.digest }, 'update failed unexpectedly');
    case 'pause-changed':
      return logger.info({ paused: event.paused }, event.paused ? 'group paused' : 'group resumed');
    case 'new-rollout':
      return logger.info({ rolloutSeq: event.rolloutSeq, digest: event.settledDigest }, 'new rollout: asking again');
    case 'rollback-changed':
      return logger.info(
        { rolledBackFrom: event.rolledBackFrom, target: event.target },
        event.rolledBackFrom === null ? 'rollback ended' : 'group rolled back',
      );
    case 'heartbeat-failed':
      return logger.warn({ err: event.error, failures: event.failures }, 'heartbeat failed; the service keeps running');
    case 'coordinator-reachable':
      return logger.info({ failures: event.failures }, 'coordinator reachable again');
    case 'health-changed':
      return logger.info(
        {
          healthy: event.healthy,
          digest: event.digest,
          ...(event.reason === undefined ? {} : { reason: event.reason, failedChecks: event.failedChecks }),
        },
        event.healthy ? 'service healthy' : 'service unhealthy',
      );
    case 'container-missing':
      return logger.warn({ digest: event.digest }, 'container missing; provisioning it');
    case 'container-restarting':
      return logger.warn({ exitCode: event.exitCode, digest: event.digest }, 'container not running; restarting it');
    case 'drain-hook-failed':
      return event.exitCode === null
        ? logger.warn({ err: event.error, hook: event.hook }, `${event.hook} hook of an operator drain failed`)
        : logger.warn({ hook: event.hook, exitCode: event.exitCode }, `${event.hook} hook of an operator drain exited with code ${event.exitCode}`);
  }
}

/** The agent's Prometheus counters, from the events that carry them. */
export function recordWorkerMetrics(metrics: AgentMetrics, event: WorkerEvent): void {
  switch (event.type) {
    case 'polled':
      metrics.pollFinished(event.service, 'ok');
      return;
    case 'poll-failed':
      metrics.pollFinished(event.service, 'error');
      metrics.registryError(event.service, event.error);
      return;
    case 'update-finished':
      metrics.updateFinished(event.service, event.outcome, event.durationMs);
      return;
    default:
      return;
  }
}
