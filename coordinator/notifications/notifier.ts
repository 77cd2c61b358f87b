import { createHmac } from 'node:crypto';
import { request } from 'undici';
import { linkAbort } from '../../shared/abort.js';
import type { BatonEvent } from '../../shared/api/v1.js';
import { backoffDelayMs } from '../../shared/backoff.js';
import type { Clock } from '../../shared/clock.js';
import type { CoordinatorConfig, NotificationKind, WebhookConfig } from '../../shared/config/coordinator.js';
import type { Logger } from '../../shared/logger.js';
import type { RandomSource } from '../../shared/random.js';
import { batonVersion } from '../../shared/version.js';

/**
 * Webhook notifications on rollout milestones. Events are turned into notifications as they
 * are committed and put on a bounded queue per webhook; a worker per webhook sends them in
 * order, retrying with exponential backoff and jitter. Nothing here runs on the request
 * path: a slow or dead receiver delays only its own queue.
 */

/** The JSON body of every notification. `text` is a one-line summary (Slack-style receivers show it). */
export interface Notification {
  kind: NotificationKind;
  /** Unique per notification: `<event seq>`; receivers can use it to drop duplicates after a retry. */
  id: string;
  group: string;
  nodeId: string | null;
  digest: string | null;
  reason: string | null;
  message: string | null;
  atMs: number;
  at: string;
  seq: number;
  text: string;
}

/** The notification an event stands for, if any. */
export function notificationOf(event: BatonEvent): Notification | undefined {
  const kind = kindOf(event);
  if (kind === undefined) return undefined;
  return {
    kind,
    id: String(event.seq),
    group: event.group,
    nodeId: event.nodeId,
    digest: event.digest,
    reason: event.reason,
    message: event.message,
    atMs: event.atMs,
    at: new Date(event.atMs).toISOString(),
    seq: event.seq,
    text: summaryOf(kind, event),
  };
}

function kindOf(event: BatonEvent): NotificationKind | undefined {
  switch (event.type) {
    case 'rollout-opened':
      return 'rollout-started';
    case 'release':
      if (event.outcome === 'updated') return 'node-updated';
      if (event.outcome === 'failed') return 'node-rolled-back';
      return undefined;
    case 'halt':
      return 'rollout-halted';
    case 'rollout-completed':
      return 'rollout-completed';
    default:
      return undefined;
  }
}

function shortDigest(digest: string | null): string {
  if (digest === null) return 'an unknown digest';
  const [algorithm, hex = ''] = digest.split(':');
  return `${algorithm}:${hex.slice(0, 12)}`;
}

function summaryOf(kind: NotificationKind, event: BatonEvent): string {
  const group = event.group;
  const digest = shortDigest(event.digest);
  const node = event.nodeId ?? 'a node';
  switch (kind) {
    case 'rollout-started':
      return `Baton: rollout of ${digest} started in group ${group}`;
    case 'node-updated':
      return `Baton: ${node} in group ${group} now runs ${digest}`;
    case 'node-rolled-back':
      return `Baton: ${node} in group ${group} rolled back from ${digest}${event.message ? `: ${event.message}` : ''}`;
    case 'rollout-halted':
      return `Baton: rollout of ${digest} in group ${group} HALTED by ${node}: ${event.reason ?? 'failure'}`;
    case 'rollout-completed':
      return `Baton: rollout of ${digest} in group ${group} completed`;
  }
}

/** Where a webhook's logs and stats point, without the path or query (they may hold a secret). */
export function webhookLabel(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid url)';
  }
}

export interface NotifierStats {
  delivered: number;
  retried: number;
  failed: number;
  dropped: number;
  queued: number;
}

interface Delivery {
  notification: Notification;
  body: string;
}

/** An answer worth another attempt: 408, 429 or 5xx. */
class RetryableError extends Error {}

class WebhookQueue {
  /** Waiting to be sent; the one being sent is not among them. */
  private readonly items: Delivery[] = [];
  private running: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly label: string;

  constructor(
    readonly webhook: WebhookConfig,
    private readonly options: NotifierOptions,
    private readonly stats: NotifierStats,
  ) {
    this.label = webhookLabel(webhook.url);
  }

  wants(kind: NotificationKind): boolean {
    return this.webhook.events === undefined || this.webhook.events.includes(kind);
  }

  push(delivery: Delivery): void {
    if (this.abort.signal.aborted) return;
    this.items.push(delivery);
    this.stats.queued += 1;
    if (this.items.length > this.options.queueLimit) {
      const dropped = this.items.shift();
      this.stats.queued -= 1;
      this.stats.dropped += 1;
      this.options.logger.warn(
        { webhook: this.label, kind: dropped?.notification.kind, seq: dropped?.notification.seq },
        'webhook queue full: dropped the oldest notification',
      );
    }
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves when the queue is empty (or it was closed). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  close(): void {
    this.abort.abort(new Error('notifier closed'));
  }

  private async drain(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const delivery = this.items.shift();
      if (delivery === undefined) return;
      try {
        await this.deliver(delivery);
      } finally {
        // Counted as queued until it is done with, in flight included.
        this.stats.queued -= 1;
      }
    }
  }

  private async deliver(delivery: Delivery): Promise<void> {
    const { webhook } = this;
    const { notification } = delivery;
    for (let attempt = 1; attempt <= webhook.maxAttempts; attempt += 1) {
      if (this.abort.signal.aborted) return;
      try {
        const delivered = await this.attempt(delivery, attempt);
        if (delivered) this.stats.delivered += 1;
        else this.stats.failed += 1;
        return;
      } catch (error) {
        if (this.abort.signal.aborted) return;
        const last = attempt === webhook.maxAttempts;
        this.options.logger.warn(
          { webhook: this.label, kind: notification.kind, seq: notification.seq, attempt, err: (error as Error).message },
          last ? 'webhook notification failed; giving up' : 'webhook notification failed; will retry',
        );
        if (last) {
          this.stats.failed += 1;
          return;
        }
        this.stats.retried += 1;
        const delayMs = backoffDelayMs(attempt - 1, this.options.random, { ...webhook.backoff, multiplier: 2 });
        try {
          await this.options.clock.sleep(delayMs, this.abort.signal);
        } catch {
          return;
        }
      }
    }
  }

  private async attempt(delivery: Delivery, attempt: number): Promise<boolean> {
    const { webhook } = this;
    const headers: Record<string, string> = {
      ...webhook.headers,
      'content-type': 'application/json',
      'user-agent': `baton-coordinator/${batonVersion}`,
      'x-baton-event': delivery.notification.kind,
      'x-baton-delivery': delivery.notification.id,
      'x-baton-attempt': String(attempt),
    };
    if (webhook.secret !== undefined) {
      headers['x-baton-signature'] = `sha256=${createHmac('sha256', webhook.secret).update(delivery.body).digest('hex')}`;
    }
    // Linked, not AbortSignal.any: the notifier's own signal lives as long as the coordinator.
    const bounded = linkAbort(this.abort.signal, AbortSignal.timeout(webhook.timeoutMs));
    let status: number;
    try {
      const answer = await request(webhook.url, {
        method: 'POST',
        headers,
        body: delivery.body,
        signal: bounded.signal,
        headersTimeout: webhook.timeoutMs,
        bodyTimeout: webhook.timeoutMs,
      });
      // Read (and discard) the body so the connection can be reused.
      await answer.body.text().catch(() => undefined);
      status = answer.statusCode;
    } finally {
      bounded.dispose();
    }
    if (status >= 200 && status < 300) return true;
    if (status === 408 || status === 429 || status >= 500) throw new RetryableError(`receiver answered ${status}`);
    this.options.logger.warn(
      { webhook: this.label, kind: delivery.notification.kind, seq: delivery.notification.seq, status },
      'webhook refused the notification; not retrying',
    );
    return false;
  }
}

export interface NotifierOptions {
  webhooks: WebhookConfig[];
  queueLimit: number;
  clock: Clock;
  random: RandomSource;
  logger: Logger;
}

export class Notifier {
  private readonly queues: WebhookQueue[];
  private readonly totals: NotifierStats = { delivered: 0, retried: 0, failed: 0, dropped: 0, queued: 0 };

  constructor(private readonly options: NotifierOptions) {
    this.queues = options.webhooks.map((webhook) => new WebhookQueue(webhook, options, this.totals));
  }

  /** Queues the notifications these events stand for; returns at once. */
  handle(events: BatonEvent[]): void {
    for (const event of events) {
      const notification = notificationOf(event);
      if (notification === undefined) continue;
      const body = JSON.stringify(notification);
      for (const queue of this.queues) if (queue.wants(notification.kind)) queue.push({ notification, body });
    }
  }

  stats(): NotifierStats {
    return { ...this.totals };
  }

  /** Waits until every queue is empty. */
  async idle(): Promise<void> {
    await Promise.all(this.queues.map((queue) => queue.idle()));
  }

  /** Gives queued notifications up to `graceMs` to go out, then abandons the rest. */
  async close(graceMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    for (const queue of this.queues) queue.close();
    await this.idle();
  }
}

/** Starts notifying on the service's events as the config says; undefined when no webhook is configured. */
export function startNotifier(
  service: { onEvents(listener: (events: BatonEvent[]) => void): () => void },
  config: CoordinatorConfig['notifications'],
  dependencies: { clock: Clock; random: RandomSource; logger: Logger },
): { notifier: Notifier; stop: (graceMs?: number) => Promise<void> } | undefined {
  if (config.webhooks.length === 0) return undefined;
  const logger = dependencies.logger.child({ component: 'notifications' });
  const notifier = new Notifier({ webhooks: config.webhooks, queueLimit: config.queueLimit, ...dependencies, logger });
  const unsubscribe = service.onEvents((events) => notifier.handle(events));
  logger.info({ webhooks: config.webhooks.map((webhook) => webhookLabel(webhook.url)) }, 'webhook notifications on');
  return {
    notifier,
    stop: async (graceMs) => {
      unsubscribe();
      await notifier.close(graceMs);
    },
  };
}
