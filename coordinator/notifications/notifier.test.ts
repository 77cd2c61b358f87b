import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BatonEvent } from '../../shared/api/v1.js';
import { webhookSchema, type WebhookConfig } from '../../shared/config/coordinator.js';
import { silentLogger } from '../../shared/logger.js';
import { newEvent } from '../state/model.js';
import { Notifier, notificationOf, webhookLabel, type Notification } from './notifier.js';
import { ManualClock } from '../../shared/testing/clock.js';
import { fixedRandom } from '../../shared/testing/random.js';

const digest = `sha256:${'ab'.repeat(32)}`;
let seq = 0;
function event(type: BatonEvent['type'], details: Partial<BatonEvent> = {}): BatonEvent {
  seq += 1;
  return { seq, ...newEvent({ atMs: 1_700_000_000_000 + seq, type, group: 'web', nodeId: 'web-1', digest, ...details }) };
}

interface Received {
  body: Notification;
  headers: IncomingMessage['headers'];
}

/** A webhook receiver on 127.0.0.1 whose answer to each request is decided by `answer`. */
async function receiver(answer: (received: Received, index: number) => number | 'hang'): Promise<{
  url: string;
  received: Received[];
  close: () => Promise<void>;
  waitFor: (count: number) => Promise<void>;
}> {
  const received: Received[] = [];
  const hanging: ServerResponse[] = [];
  const waiters: (() => void)[] = [];
  const server: Server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => {
      const entry = { body: JSON.parse(text) as Notification, headers: request.headers };
      received.push(entry);
      for (const wake of waiters.splice(0)) wake();
      const status = answer(entry, received.length - 1);
      if (status === 'hang') hanging.push(response);
      else response.writeHead(status).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/secret-path?key=abc`,
    received,
    waitFor: async (count) => {
      while (received.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
    },
    close: async () => {
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function webhook(url: string, overrides: Record<string, unknown> = {}): WebhookConfig {
  return webhookSchema.parse({ url, timeoutMs: 2_000, ...overrides });
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('notificationOf', () => {
  it('maps the five milestones and nothing else', () => {
    expect(notificationOf(event('rollout-opened'))?.kind).toBe('rollout-started');
    expect(notificationOf(event('release', { outcome: 'updated' }))?.kind).toBe('node-updated');
    const rolledBack = notificationOf(event('release', { outcome: 'failed', message: 'health check failed' }));
    expect(rolledBack).toMatchObject({ kind: 'node-rolled-back', nodeId: 'web-1', group: 'web', digest });
    expect(rolledBack?.text).toBe(`Baton: web-1 in group web rolled back from sha256:${'ab'.repeat(6)}: health check failed`);
    expect(notificationOf(event('halt', { reason: 'boom' }))?.kind).toBe('rollout-halted');
    expect(notificationOf(event('rollout-completed'))?.kind).toBe('rollout-completed');
    for (const type of ['grant', 'renew', 'refusal', 'expiry', 'pause', 'node-joined'] as const) {
      expect(notificationOf(event(type))).toBeUndefined();
    }
    expect(notificationOf(event('release', { outcome: 'abandoned' }))).toBeUndefined();
    const started = event('rollout-opened');
    expect(notificationOf(started)).toMatchObject({ id: String(started.seq), seq: started.seq, at: new Date(started.atMs).toISOString() });
  });

  it('logs a webhook by its origin only: the path may hold a secret', () => {
    expect(webhookLabel('https://hooks.example.com/services/T000/B000/XXXX')).toBe('https://hooks.example.com');
  });
});

describe('Notifier', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  it('retries with exponential backoff and jitter on the injected clock, then delivers', async () => {
    const hook = await receiver((_, index) => (index < 2 ? 503 : 200));
    closers.push(hook.close);
    const clock = new ManualClock();
    const notifier = new Notifier({
      webhooks: [webhook(hook.url, { backoff: { initialDelayMs: 1_000, maxDelayMs: 60_000 } })],
      queueLimit: 10,
      clock,
      random: fixedRandom(0.5),
      logger: silentLogger(),
    });
    closers.push(() => notifier.close(0));
    notifier.handle([event('rollout-completed')]);

    await hook.waitFor(1);
    await expect.poll(() => clock.pendingSleepers()).toBe(1);
    // Attempt 0 failed: half of 1 s fixed, plus half of it times 0.5 of jitter = 750 ms.
    await clock.advance(749);
    await settle();
    expect(hook.received).toHaveLength(1);
    await clock.advance(1);
    await hook.waitFor(2);
    await expect.poll(() => clock.pendingSleepers()).toBe(1);
    // Attempt 1 failed: the ceiling doubled to 2 s, so 1 s + 0.5 × 1 s = 1.5 s.
    await clock.advance(1_499);
    await settle();
    expect(hook.received).toHaveLength(2);
    await clock.advance(1);
    await hook.waitFor(3);
    await notifier.idle();

    expect(hook.received.map((r) => r.headers['x-baton-attempt'])).toEqual(['1', '2', '3']);
    expect(new Set(hook.received.map((r) => r.headers['x-baton-delivery'])).size).toBe(1);
    expect(hook.received[0]?.headers['content-type']).toBe('application/json');
    expect(hook.received[0]?.headers['x-baton-event']).toBe('rollout-completed');
    expect(notifier.stats()).toEqual({ delivered: 1, retried: 2, failed: 0, dropped: 0, queued: 0 });
  });

  it('gives up after maxAttempts, and at once on a 4xx answer', async () => {
    const failing = await receiver(() => 500);
    const refusing = await receiver(() => 404);
    closers.push(failing.close, refusing.close);
    const clock = new ManualClock();
    const notifier = new Notifier({
      webhooks: [webhook(failing.url, { maxAttempts: 3 }), webhook(refusing.url, { maxAttempts: 3 })],
      queueLimit: 10,
      clock,
      random: fixedRandom(0),
      logger: silentLogger(),
    });
    closers.push(() => notifier.close(0));
    notifier.handle([event('halt', { reason: 'boom' })]);
    for (let i = 0; i < 3; i += 1) {
      await failing.waitFor(i + 1);
      await expect.poll(() => clock.pendingSleepers() > 0 || failing.received.length === 3).toBe(true);
      await clock.advance(60_000);
    }
    await notifier.idle();
    expect(failing.received).toHaveLength(3);
    expect(refusing.received).toHaveLength(1);
    expect(notifier.stats()).toMatchObject({ delivered: 0, failed: 2, retried: 2, queued: 0 });
  });

  it('sends each webhook only the kinds it asked for, signed when it has a secret', async () => {
    const hook = await receiver(() => 204);
    closers.push(hook.close);
    const secret = 'webhook-secret-0123456789';
    const notifier = new Notifier({
      webhooks: [webhook(hook.url, { events: ['rollout-halted', 'rollout-completed'], secret, headers: { authorization: 'Bearer xyz' } })],
      queueLimit: 10,
      clock: new ManualClock(),
      random: fixedRandom(0),
      logger: silentLogger(),
    });
    closers.push(() => notifier.close(0));
    notifier.handle([event('rollout-opened'), event('release', { outcome: 'updated' }), event('halt', { reason: 'x' })]);
    notifier.handle([event('rollout-completed')]);
    await hook.waitFor(2);
    await notifier.idle();
    expect(hook.received.map((r) => r.body.kind)).toEqual(['rollout-halted', 'rollout-completed']);
    const { createHmac } = await import('node:crypto');
    const first = hook.received[0];
    const expected = createHmac('sha256', secret).update(JSON.stringify(first?.body)).digest('hex');
    expect(first?.headers['x-baton-signature']).toBe(`sha256=${expected}`);
    expect(first?.headers.authorization).toBe('Bearer xyz');
  });

  it('never blocks its caller, and drops the oldest waiting notification beyond the queue limit', async () => {
    const hook = await receiver(() => 'hang');
    closers.push(hook.close);
    const notifier = new Notifier({
      webhooks: [webhook(hook.url, { timeoutMs: 60_000 })],
      queueLimit: 2,
      clock: new ManualClock(),
      random: fixedRandom(0),
      logger: silentLogger(),
    });
    closers.push(() => notifier.close(0));
    const started = performance.now();
    const events = Array.from({ length: 6 }, () => event('rollout-completed'));
    notifier.handle(events);
    expect(performance.now() - started).toBeLessThan(50);
    await hook.waitFor(1);
    // One in flight (hanging), two waiting, three dropped.
    expect(notifier.stats()).toMatchObject({ queued: 3, dropped: 3, delivered: 0 });
    expect(hook.received[0]?.body.seq).toBe(events[0]?.seq);
  });

  it('validates webhook config: http(s) URLs only, bounded attempts and timeouts', () => {
    expect(webhookSchema.safeParse({ url: 'ftp://example.com/x' }).success).toBe(false);
    expect(webhookSchema.safeParse({ url: 'http://127.0.0.1:9/x', maxAttempts: 0 }).success).toBe(false);
    expect(webhookSchema.safeParse({ url: 'http://127.0.0.1:9/x', timeoutMs: 10 }).success).toBe(false);
    expect(webhookSchema.safeParse({ url: 'http://127.0.0.1:9/x', events: ['nope'] }).success).toBe(false);
    expect(webhookSchema.parse({ url: 'http://127.0.0.1:9/x' })).toMatchObject({ timeoutMs: 5_000, maxAttempts: 5 });
  });
});
