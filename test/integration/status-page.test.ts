import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { statusResponseSchema } from '../../shared/api/v1.js';
import { repositoryRoot, startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { launchChromium } from '../../tools/fleet/browser.js';
import { call, digestOf } from '../../tools/fleet/http.js';
import { SimAgent, simFleet } from '../../tools/fleet/sim-agent.js';
import { ManualClock } from '../../shared/testing/clock.js';

const agentToken = 'agent-token-0123456789abcdef';
const adminToken = 'admin-token-0123456789abcdef';
const auth = { agentTokens: [agentToken], adminToken, publicStatus: false };

const v1 = digestOf('web-v1');
const v2 = digestOf('web-v2');
const image = '127.0.0.1:5000/shop/web:v2';
const artifacts = join(repositoryRoot, '.test-artifacts');

const xssNode = '<script>alert(1)</script>';

/** Waits for the page to catch up: snapshots follow events within a fraction of a second. */
const poll = <T>(read: () => T | Promise<T>) => expect.poll(read, { timeout: 10_000, interval: 50 });

describe('status page in headless Chromium', () => {
  let browser: Browser;
  let coordinator: InProcessCoordinator | undefined;
  let context: BrowserContext | undefined;
  const dialogs: string[] = [];

  beforeAll(async () => {
    browser = await launchChromium();
    mkdirSync(artifacts, { recursive: true });
  });
  afterAll(async () => browser?.close());
  afterEach(async () => {
    await context?.close();
    context = undefined;
    await coordinator?.stop({ removeData: true });
    coordinator = undefined;
  });

  async function open(token: string | undefined, viewport = { width: 1280, height: 900 }): Promise<Page> {
    context = await browser.newContext({ viewport, colorScheme: 'light' });
    const page = await context.newPage();
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    const url = (coordinator as InProcessCoordinator).url;
    await page.goto(token === undefined ? `${url}/` : `${url}/?token=${encodeURIComponent(token)}`);
    return page;
  }

  async function start(): Promise<InProcessCoordinator> {
    coordinator = await startInProcessCoordinator({ config: { auth, leaseTtlMs: 30_000 } });
    return coordinator;
  }

  it('shows a rollout across 3 nodes progressing live, without a reload', async () => {
    const { url } = await start();
    const [a, b, c] = simFleet(url, ['web-1', 'web-2', 'web-3'], {
      group: 'web',
      image,
      digest: v1,
      token: agentToken,
    }) as [SimAgent, SimAgent, SimAgent];
    for (const agent of [a, b, c]) await agent.heartbeat();

    const page = await open(agentToken);
    // The token went into a cookie and out of the address bar.
    expect(new URL(page.url()).search).toBe('');
    const cookies = await context?.cookies();
    expect(cookies?.find((cookie) => cookie.name === 'baton_token')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });

    const group = page.locator('[data-testid="group"][data-group="web"]');
    await poll(() => group.getAttribute('data-state')).toBe('none');
    // Page code is given as text: the project compiles without the DOM's types.
    await page.evaluate("window.batonMarker = 'same page'");
    const progress = group.getByTestId('progress');
    const seen: string[] = [];
    const record = async () => {
      const value = `${await progress.getAttribute('data-on-target')}/${await progress.getAttribute('data-total')}`;
      if (seen.at(-1) !== value) seen.push(value);
    };

    // web-1 takes the lease: the rollout opens, web-1 is the lease holder, in its drain step.
    const grant = await a.mustAcquire(v2, image);
    await a.enter('drain', 'draining');
    await poll(() => group.getAttribute('data-state')).toBe('in-progress');
    await poll(() => group.getByTestId('lease-node').allTextContents()).toEqual(['web-1']);
    await poll(() => group.getByTestId('lease-step').textContent()).toBe('drain');
    await poll(() => group.getByTestId('lease-time-left').textContent()).toMatch(/^\d+ s left$/);
    await poll(() => group.getByTestId('group-tag').textContent()).toBe('web:v2');
    await poll(() => group.getByTestId('group-digest').textContent()).toBe(`sha256:${v2.slice(7, 19)}`);
    await record();
    await a.enter('health', 'starting');
    await poll(() => group.getByTestId('lease-step').textContent()).toBe('health');
    await a.release(grant, 'updated');
    await a.heartbeat();
    await poll(() => progress.getAttribute('data-on-target')).toBe('1');
    await record();
    const row = page.locator('[data-testid="node-row"][data-node-id="web-1"]');
    await poll(() => row.getByTestId('node-digest').getAttribute('data-on-target')).toBe('true');
    await poll(() => row.getByTestId('node-health').textContent()).toBe('healthy');

    await b.update(v2, image);
    await poll(() => progress.getAttribute('data-on-target')).toBe('2');
    await record();
    await c.update(v2, image);
    await poll(() => group.getAttribute('data-state')).toBe('completed');
    await poll(() => progress.getAttribute('data-on-target')).toBe('3');
    await record();
    expect(seen).toEqual(['0/3', '1/3', '2/3', '3/3']);
    expect(await group.getByTestId('rollout-state').textContent()).toBe('Completed');
    expect(await group.getByTestId('lease').count()).toBe(0);

    // Events arrived over the stream; figures were recomputed.
    await poll(() => page.locator('[data-testid="event"][data-type="rollout-completed"]').count()).toBe(1);
    await poll(() => page.getByTestId('figure-success-rate-value').textContent()).toBe('100%');
    await poll(() => page.getByTestId('figure-updates-per-hour-value').textContent()).not.toBe('—');
    await poll(() => page.getByTestId('connection').getAttribute('data-state')).toBe('live');

    // Still the same document: everything above came without a reload.
    expect(await page.evaluate('window.batonMarker')).toBe('same page');
    // Nodes' table rows: id, host, digest, health, heartbeat, step.
    expect(await page.getByTestId('node-row').count()).toBe(3);
    expect(await row.getByTestId('node-host').textContent()).toBe('web-1.example');
    expect(await row.getByTestId('node-step').textContent()).toBe('idle');
    expect(await row.getByTestId('node-heartbeat').textContent()).toMatch(/ago|just now/);
  });

  it('shows a halted rollout with the failing node and its reason', async () => {
    const { url } = await start();
    const agents = simFleet(url, ['api-1', 'api-2', 'api-3'], { group: 'api', image, digest: v1, token: agentToken });
    for (const agent of agents) await agent.heartbeat();
    await agents[0]?.update(v2, image);
    await agents[1]?.fail(v2, image, 'health check failed: GET /health answered 500 three times');

    const page = await open(agentToken);
    const group = page.locator('[data-testid="group"][data-group="api"]');
    await poll(() => group.getAttribute('data-state')).toBe('halted');
    expect(await group.getByTestId('rollout-state').textContent()).toBe('Halted');
    expect(await group.getByTestId('halt-node').textContent()).toBe('api-2');
    expect(await group.getByTestId('halt-reason').textContent()).toBe('health check failed: GET /health answered 500 three times');
    expect(await group.getByTestId('progress').getAttribute('data-on-target')).toBe('1');
    await poll(() => page.getByTestId('figure-rollback-time-value').textContent()).toMatch(/^\d+ s$/);
    await poll(() => page.getByTestId('figure-success-rate-value').textContent()).toBe('0%');
  });

  it('renders markup from agents as text: no script runs, the text is visible', async () => {
    const { url } = await start();
    const evil = new SimAgent(url, xssNode, {
      group: 'web',
      image: '127.0.0.1:5000/shop/web:"><img src=x onerror=alert(2)>',
      digest: v1,
      token: agentToken,
      host: '<img src=x onerror=alert(3)>',
    });
    const good = new SimAgent(url, 'web-ok', { group: 'web', image, digest: v1, token: agentToken });
    await evil.heartbeat();
    await good.heartbeat();
    await evil.fail(v2, '127.0.0.1:5000/shop/web:<svg onload=alert(4)>', '<b>bold</b><script>alert(5)</script>');

    const page = await open(agentToken);
    const row = page.locator('[data-testid="node-row"]').filter({ hasText: xssNode });
    await poll(() => row.count()).toBe(1);
    expect(await row.getByTestId('node-id').textContent()).toBe(xssNode);
    expect(await row.getByTestId('node-id').isVisible()).toBe(true);
    expect(await row.getByTestId('node-host').textContent()).toBe('<img src=x onerror=alert(3)>');
    const group = page.locator('[data-testid="group"][data-group="web"]');
    expect(await group.getByTestId('halt-node').textContent()).toBe(xssNode);
    expect(await group.getByTestId('halt-reason').textContent()).toBe('<b>bold</b><script>alert(5)</script>');
    expect(await group.getByTestId('group-tag').textContent()).toBe('web:<svg onload=alert(4)>');
    await poll(() => page.getByTestId('event-text').filter({ hasText: xssNode }).count()).toBeGreaterThan(0);
    expect(await page.getByText(xssNode).first().isVisible()).toBe(true);

    // Only the page's own two script elements exist, and no element came from the data.
    expect(await page.locator('script').count()).toBe(2);
    expect(await page.locator('main img, main svg, main b').count()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(dialogs).toEqual([]);
  });

  it('shows pause, resume and abort only with the admin token; pause pauses the group', async () => {
    const { url } = await start();
    const agents = simFleet(url, ['web-1', 'web-2'], { group: 'web', image, digest: v1, token: agentToken });
    for (const agent of agents) await agent.heartbeat();
    await agents[0]?.mustAcquire(v2, image);

    const reader = await open(agentToken);
    const readerGroup = reader.locator('[data-testid="group"][data-group="web"]');
    await poll(() => readerGroup.getAttribute('data-state')).toBe('in-progress');
    expect(await reader.getByTestId('pause').count()).toBe(0);
    expect(await reader.getByTestId('abort').count()).toBe(0);
    expect(await reader.getByTestId('admin-actions').count()).toBe(0);
    // Nor can the page's session act without the admin token.
    const forbidden = await reader.evaluate(async () => {
      const answer = await fetch('/v1/groups/web/pause', { method: 'POST', headers: { 'x-baton-csrf': '1' } });
      return answer.status;
    });
    expect(forbidden).toBe(403);
    await context?.close();

    const page = await open(adminToken);
    const group = page.locator('[data-testid="group"][data-group="web"]');
    await poll(() => group.getByTestId('pause').count()).toBe(1);
    expect(await group.getByTestId('abort').count()).toBe(1);
    expect(await group.getByTestId('resume').count()).toBe(0);
    await group.getByTestId('pause').click();

    await poll(() => group.getAttribute('data-state')).toBe('paused');
    await poll(() => group.getByTestId('resume').count()).toBe(1);
    const status = statusResponseSchema.parse((await call(url, 'GET', '/v1/status', { token: agentToken })).body);
    expect(status.groups[0]).toMatchObject({ name: 'web', paused: true, rollout: { state: 'paused' } });
    await poll(() => page.getByTestId('toast').textContent()).toContain('pause done');

    // Abort asks twice; the first click only arms it.
    await group.getByTestId('abort').click();
    await poll(() => group.getByTestId('abort').textContent()).toBe('Click again to abort');
    const still = statusResponseSchema.parse((await call(url, 'GET', '/v1/status', { token: agentToken })).body);
    expect(still.groups[0]?.rollout?.state).toBe('paused');
  });

  it('asks for a token, refuses a wrong one, and keeps a CSRF-less cookie from acting', async () => {
    const { url } = await start();
    const bare = await call(url, 'GET', '/');
    expect(bare.status).toBe(401);
    expect(String(bare.body)).toContain('data-testid="sign-in"');
    expect((await call(url, 'GET', '/?token=wrong-token-0123456789')).status).toBe(401);
    expect((await call(url, 'GET', '/v1/events/stream')).status).toBe(401);
    expect((await call(url, 'GET', '/v1/figures')).status).toBe(401);

    const page = await open(undefined);
    await page.getByTestId('token-input').fill(adminToken);
    await page.getByTestId('sign-in-button').click();
    await page.waitForURL(`${url}/`);
    await poll(() => page.getByTestId('connection').getAttribute('data-state')).toBe('live');
    expect(await page.getByTestId('no-groups').isVisible()).toBe(true);
    const csp = (await call(url, 'GET', '/', { token: adminToken })).headers['content-security-policy'];
    expect(String(csp)).toContain("default-src 'none'");

    // The cookie alone (no x-baton-csrf header, as a cross-site form would send it) acts on nothing.
    const cookie = (await context?.cookies())?.find((c) => c.name === 'baton_token');
    expect(cookie?.value).toBe(adminToken);
    const { request } = await import('undici');
    const answer = await request(`${url}/v1/groups/web/pause`, { method: 'POST', headers: { cookie: `baton_token=${cookie?.value}` } });
    await answer.body.text();
    expect(answer.statusCode).toBe(401);
  });

  it('reads well on a phone and saves a screenshot for the README', async () => {
    // A manual clock lets the scene span minutes, so the figures look like a real day's.
    const clock = new ManualClock();
    const digestOf = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`;
    const v2 = digestOf('web-v2');
    coordinator = await startInProcessCoordinator({ clock, config: { auth, leaseTtlMs: 120_000 } });
    const { url } = coordinator;
    const web = simFleet(url, ['web-1', 'web-2', 'web-3', 'web-4'], { group: 'web', image, digest: digestOf('web-v1'), token: agentToken });
    const apiImage = '127.0.0.1:5000/shop/api:2.4.1';
    const api = simFleet(url, ['api-1', 'api-2', 'api-3'], { group: 'api', image: apiImage, digest: digestOf('api-v1'), token: agentToken });
    const workerImage = '127.0.0.1:5000/shop/worker:1.9';
    const worker = simFleet(url, ['worker-1', 'worker-2'], {
      group: 'worker',
      image: workerImage,
      digest: digestOf('worker-v1'),
      token: agentToken,
    });
    const everyone = [...web, ...api, ...worker];
    // Time passes in steps shorter than the heartbeat miss limit, and every agent keeps beating.
    const advance = async (ms: number) => {
      for (let left = ms; left > 0; left -= 5_000) {
        await clock.advance(Math.min(5_000, left));
        for (const agent of everyone) await agent.heartbeat();
      }
    };
    const update = async (agent: SimAgent, digest: string, ref: string, ms: number) => {
      const grant = await agent.mustAcquire(digest, ref);
      await agent.enter('drain', 'draining');
      await advance(ms / 2);
      await agent.enter('health', 'starting');
      await advance(ms / 2);
      await agent.release(grant, 'updated');
    };
    for (const agent of everyone) await agent.heartbeat();
    for (const agent of api) await update(agent, digestOf('api-v2'), apiImage, 40_000);
    await advance(60_000);
    const failing = await worker[0]?.mustAcquire(digestOf('worker-v2'), workerImage);
    await worker[0]?.enter('health', 'starting');
    await advance(45_000);
    await worker[0]?.enter('rollback', 'starting');
    if (failing) await worker[0]?.release(failing, 'failed', 'health check failed: GET /health answered 503 for 60 s');
    await advance(30_000);
    await update(web[0] as SimAgent, v2, image, 50_000);
    await update(web[1] as SimAgent, v2, image, 40_000);
    await web[2]?.mustAcquire(v2, image);
    await web[2]?.enter('drain', 'draining');
    await advance(10_000);
    await web[2]?.enter('health', 'starting');

    const page = await open(adminToken);
    await poll(() => page.locator('[data-testid="group"]').count()).toBe(3);
    await poll(() => page.locator('[data-group="web"] [data-testid="lease-step"]').textContent()).toBe('health');
    await poll(() => page.getByTestId('figure-success-rate-value').textContent()).toBe('50%');
    // docs/status-page.png (for the README) is a copy of this file, committed by hand when the page changes.
    await page.screenshot({ path: join(artifacts, 'status-page.png'), fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    // Nothing but the nodes' table (which scrolls in its own box) is wider than the phone.
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(artifacts, 'status-page-phone.png') });
  });
});
