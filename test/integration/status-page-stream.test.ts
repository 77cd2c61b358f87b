import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { streamEventsSchema, streamSnapshotSchema, type BatonEvent } from '../../shared/api/v1.js';
import { startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { call, digestOf } from '../../tools/fleet/http.js';
import { SimAgent } from '../../tools/fleet/sim-agent.js';

const agentToken = 'agent-token-0123456789abcdef';
const adminToken = 'admin-token-0123456789abcdef';

interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** Opens GET /v1/events/stream and parses messages as they arrive. */
async function openStream(url: string, headers: Record<string, string>) {
  const answer = await request(`${url}/v1/events/stream`, { headers, bodyTimeout: 0 });
  const messages: SseMessage[] = [];
  let buffer = '';
  const reading = (async () => {
    for await (const chunk of answer.body) {
      buffer += (chunk as Buffer).toString();
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message: SseMessage = { event: 'message', data: '' };
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':');
          const field = line.slice(0, colon);
          const value = line.slice(colon + 1).trimStart();
          if (field === 'id') message.id = value;
          if (field === 'event') message.event = value;
          if (field === 'data') message.data += value;
        }
        if (message.data !== '') messages.push(message);
      }
    }
  })().catch(() => undefined);
  return {
    status: answer.statusCode,
    headers: answer.headers,
    messages,
    next: async (event: string, after = 0): Promise<SseMessage> => {
      await expect.poll(() => messages.slice(after).some((m) => m.event === event), { timeout: 10_000 }).toBe(true);
      return messages.slice(after).find((m) => m.event === event) as SseMessage;
    },
    ended: reading,
    close: () => answer.body.destroy(),
  };
}

describe('GET /v1/events/stream and the page\'s access rules', () => {
  let coordinator: InProcessCoordinator | undefined;
  afterEach(async () => {
    await coordinator?.stop({ removeData: true });
    coordinator = undefined;
  });

  it('sends a snapshot at once, events as they commit, what was missed after Last-Event-ID, and ends on shutdown', async () => {
    coordinator = await startInProcessCoordinator({ config: { auth: { agentTokens: [agentToken], adminToken } } });
    const { url } = coordinator;
    const agent = new SimAgent(url, 'web-1', { group: 'web', image: 'r/app:v1', digest: digestOf('v1'), token: agentToken });

    const unauthorized = await openStream(url, {});
    expect(unauthorized.status).toBe(401);
    unauthorized.close();

    const stream = await openStream(url, { authorization: `Bearer ${agentToken}` });
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toContain('text/event-stream');
    const first = streamSnapshotSchema.parse(JSON.parse((await stream.next('snapshot')).data));
    expect(first.status.groups).toEqual([]);
    expect(first.figures.rollouts.successRate).toBeNull();

    const before = stream.messages.length;
    await agent.heartbeat();
    const joined = await stream.next('events', before);
    const events: BatonEvent[] = streamEventsSchema.parse(JSON.parse(joined.data)).events;
    expect(events.map((e) => e.type)).toEqual(['node-joined']);
    expect(joined.id).toBe(String(events[0]?.seq));
    // A snapshot follows the events shortly, without waiting for the periodic one.
    const followed = streamSnapshotSchema.parse(JSON.parse((await stream.next('snapshot', before)).data));
    expect(followed.status.groups.map((g) => g.name)).toEqual(['web']);
    stream.close();

    // While nobody listened, a lease was granted; a reconnect with Last-Event-ID gets it first.
    await agent.mustAcquire(digestOf('v2'), 'r/app:v2');
    const resumed = await openStream(url, { authorization: `Bearer ${agentToken}`, 'last-event-id': joined.id ?? '0' });
    const missed = streamEventsSchema.parse(JSON.parse((await resumed.next('events')).data)).events;
    expect(missed.map((e) => e.type)).toEqual(['rollout-opened', 'grant']);
    expect(resumed.messages[0]?.event).toBe('events');

    // Shutting down ends open streams instead of waiting for them.
    const stopping = coordinator.stop({ removeData: true });
    coordinator = undefined;
    await Promise.race([
      Promise.all([stopping, resumed.ended]),
      new Promise((_, reject) => setTimeout(() => reject(new Error('stop hung on an open stream')), 5_000)),
    ]);
  });

  it('serves the page without a token when status is public, and admin rights only with the admin token', async () => {
    coordinator = await startInProcessCoordinator({ config: { auth: { agentTokens: [agentToken], adminToken, publicStatus: true } } });
    const { url } = coordinator;
    const page = await call(url, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(String(page.body)).toContain('data-admin="false"');
    expect((await call(url, 'GET', '/metrics')).status).toBe(200);
    expect((await call(url, 'GET', '/v1/figures')).status).toBe(200);

    const signIn = await call(url, 'GET', `/?token=${adminToken}`);
    expect(signIn.status).toBe(303);
    expect(signIn.headers.location).toBe('/');
    const cookie = String(signIn.headers['set-cookie']);
    expect(cookie).toMatch(/^baton_token=admin-token-0123456789abcdef; Path=\/; HttpOnly; SameSite=Strict/);
    const asAdmin = await request(`${url}/`, { headers: { cookie: cookie.split(';')[0] as string } });
    expect(await asAdmin.body.text()).toContain('data-admin="true"');

    const signOut = await call(url, 'GET', '/?signout=1');
    expect(signOut.status).toBe(303);
    expect(String(signOut.headers['set-cookie'])).toContain('Max-Age=0');
  });

  it('shows admin buttons on a coordinator without tokens (loopback only)', async () => {
    coordinator = await startInProcessCoordinator();
    const page = await call(coordinator.url, 'GET', '/');
    expect(page.status).toBe(200);
    expect(String(page.body)).toContain('data-admin="true"');
    expect(String(page.headers['set-cookie'] ?? '')).toBe('');
  });
});
