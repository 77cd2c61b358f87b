import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../shared/random.js';
import type { Notification } from '../../coordinator/notifications/notifier.js';
import { startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { digestOf } from '../../tools/fleet/http.js';
import { simFleet } from '../../tools/fleet/sim-agent.js';

const image = '127.0.0.1:5000/shop/web:v2';
const secret = 'webhook-secret-0123456789';

interface Delivery {
  status: number;
  headers: IncomingHttpHeaders;
  body: Notification;
  raw: string;
}

/** A real receiver on 127.0.0.1: it fails the very first request with 500, then answers 200 after `delayMs`. */
async function startReceiver(delayMs = 0): Promise<{ url: string; deliveries: Delivery[]; close: () => Promise<void> }> {
  const deliveries: Delivery[] = [];
  const server: Server = createServer((request, response) => {
    let raw = '';
    request.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    request.on('end', () => {
      const status = deliveries.length === 0 ? 500 : 200;
      const delivery = { status, headers: request.headers, body: JSON.parse(raw) as Notification, raw };
      setTimeout(() => {
        deliveries.push(delivery);
        response.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/baton`,
    deliveries,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('webhook notifications from a running coordinator', () => {
  let coordinator: InProcessCoordinator | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await coordinator?.stop({ removeData: true });
    coordinator = undefined;
  });

  it('posts every milestone of a rollout and a halt, retrying the attempt the receiver failed', async () => {
    const receiver = await startReceiver();
    cleanups.push(receiver.close);
    coordinator = await startInProcessCoordinator({
      config: {
        notifications: {
          webhooks: [{ url: receiver.url, timeoutMs: 2_000, maxAttempts: 4, secret, backoff: { initialDelayMs: 50, maxDelayMs: 200 } }],
        },
      },
      random: seededRandom(7),
    });
    const { notifier } = coordinator;
    expect(notifier).toBeDefined();
    cleanups.push(async () => coordinator?.stop({ removeData: true, notificationGraceMs: 1_000 }));

    const web = simFleet(coordinator.url, ['web-1', 'web-2', 'web-3'], { group: 'web', image, digest: digestOf('v1') });
    for (const agent of web) await agent.heartbeat();
    for (const agent of web) await agent.update(digestOf('v2'), image);
    const api = simFleet(coordinator.url, ['api-1', 'api-2'], { group: 'api', image, digest: digestOf('a1') });
    for (const agent of api) await agent.heartbeat();
    await api[0]?.fail(digestOf('a2'), image, 'health check failed: GET /health answered 500');

    await expect.poll(() => receiver.deliveries.filter((d) => d.status === 200).length, { timeout: 10_000 }).toBe(8);
    await notifier?.idle();

    // The first attempt got a 500 and was sent again: same delivery id, attempt 2.
    const [failed, retried] = receiver.deliveries;
    expect(failed?.status).toBe(500);
    expect(failed?.headers['x-baton-attempt']).toBe('1');
    expect(retried?.headers['x-baton-attempt']).toBe('2');
    expect(retried?.headers['x-baton-delivery']).toBe(failed?.headers['x-baton-delivery']);
    expect(retried?.body).toEqual(failed?.body);

    const delivered = receiver.deliveries.filter((d) => d.status === 200).map((d) => d.body);
    expect(delivered.map((n) => `${n.kind} ${n.group} ${n.nodeId ?? ''}`.trim())).toEqual([
      'rollout-started web web-1',
      'node-updated web web-1',
      'node-updated web web-2',
      'node-updated web web-3',
      'rollout-completed web',
      'rollout-started api api-1',
      'node-rolled-back api api-1',
      'rollout-halted api api-1',
    ]);
    const halted = delivered.at(-1);
    expect(halted).toMatchObject({ digest: digestOf('a2'), reason: 'health check failed: GET /health answered 500' });
    expect(halted?.text).toContain('HALTED by api-1');
    // In the order the events happened, each signed with the webhook's secret.
    const seqs = delivered.map((n) => n.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    for (const delivery of receiver.deliveries) {
      const expected = createHmac('sha256', secret).update(delivery.raw).digest('hex');
      expect(delivery.headers['x-baton-signature']).toBe(`sha256=${expected}`);
    }
    expect(notifier?.stats()).toEqual({ delivered: 8, retried: 1, failed: 0, dropped: 0, queued: 0 });
  });

  it('keeps a slow receiver off the request path', async () => {
    const receiver = await startReceiver(1_500);
    cleanups.push(receiver.close);
    coordinator = await startInProcessCoordinator({
      config: { notifications: { webhooks: [{ url: receiver.url, backoff: { initialDelayMs: 10, maxDelayMs: 20 } }] } },
      random: seededRandom(1),
    });
    const { notifier } = coordinator;
    cleanups.push(async () => coordinator?.stop({ removeData: true, notificationGraceMs: 0 }));
    const [agent] = simFleet(coordinator.url, ['web-1'], { group: 'web', image, digest: digestOf('v1') });
    await agent?.heartbeat();
    const started = performance.now();
    await agent?.update(digestOf('v2'), image);
    // Eight requests (lease, five steps, release, heartbeat) while three notifications wait on a 1.5 s receiver.
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(receiver.deliveries).toHaveLength(0);
    expect(notifier?.stats().queued).toBe(3);
  });
});
