/**
 * The status page while a real fleet rolls out: three engines with their agents, the registry,
 * HAProxy and the coordinator, and a `docker push` of v2. Headless Chromium keeps the page open
 * from before the push; an observer in the page records every change of the group's progress bar
 * and lease holders, so the test sees what a person watching would have seen, without a reload.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../../tools/fleet/browser.js';
import { repositoryRoot } from '../../tools/fleet/coordinator.js';
import { eventually } from '../../tools/fleet/wait.js';
import { withFleet } from './fixture.js';

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['v2'] });
let browser: Browser | undefined;
const artifacts = join(repositoryRoot, '.test-artifacts');

beforeAll(async () => {
  browser = await launchChromium();
  mkdirSync(artifacts, { recursive: true });
}, 20 * 60_000);

afterAll(async () => {
  await browser?.close();
}, 120_000);

// Page code is given as text: the project compiles without the DOM's types.
const recordChanges = `
  window.batonSeen = [];
  const record = () => {
    const group = document.querySelector('[data-testid="group"][data-group="app"]');
    if (!group) return;
    const progress = group.querySelector('[data-testid="progress"]');
    const holders = [...group.querySelectorAll('[data-testid="lease-node"]')].map((e) => e.textContent).join(',');
    const entry = JSON.stringify({
      state: group.getAttribute('data-state'),
      progress: progress ? progress.getAttribute('data-on-target') + '/' + progress.getAttribute('data-total') : null,
      holders: holders === '' ? [] : holders.split(','),
    });
    if (window.batonSeen[window.batonSeen.length - 1] !== entry) window.batonSeen.push(entry);
  };
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  record();
`;

interface Seen {
  state: string | null;
  progress: string | null;
  holders: string[];
}

describe('status page during a real rollout', () => {
  it('shows the rollout of v2 progressing node by node, live, with each lease holder in turn', async () => {
    const f = fleet();
    const context = await (browser as Browser).newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    try {
      const page = await context.newPage();
      await page.goto(`${f.coordinatorUrl}/`);
      const group = page.locator('[data-testid="group"][data-group="app"]');
      await expect.poll(() => group.count(), { timeout: 10_000 }).toBe(1);
      await page.evaluate(recordChanges);

      const digest = await f.push('v2');
      // Mid-rollout, for the eye: a node holds the lease.
      await expect.poll(() => group.getByTestId('lease-node').count(), { timeout: 30_000, interval: 50 }).toBe(1);
      await page.screenshot({ path: join(artifacts, 'status-page-fleet.png'), fullPage: true });
      await f.waitConverged(digest, 90_000);
      await eventually('the page showing the rollout completed', async () => ((await group.getAttribute('data-state')) === 'completed' ? true : undefined), 10_000);

      const seen = ((await page.evaluate('window.batonSeen')) as string[]).map((entry) => JSON.parse(entry) as Seen);
      const progressSteps = seen
        .map((s) => s.progress)
        .filter((p): p is string => p !== null)
        .filter((p, i, all) => p !== all[i - 1]);
      expect(progressSteps, JSON.stringify(seen)).toEqual(['0/3', '1/3', '2/3', '3/3']);
      // One holder at a time, and every node held the lease once, in turn.
      expect(Math.max(...seen.map((s) => s.holders.length))).toBe(1);
      const holderTurns = seen.flatMap((s) => s.holders).filter((h, i, all) => h !== all[i - 1]);
      expect([...holderTurns].sort(), JSON.stringify(seen)).toEqual(['node-1', 'node-2', 'node-3']);
      expect(seen.map((s) => s.state)).toContain('in-progress');
      expect(await group.getByTestId('group-digest').textContent()).toBe(`sha256:${digest.slice(7, 19)}`);
      // Everything above arrived over the event stream: the observer is still the one installed.
      expect(await page.evaluate('Array.isArray(window.batonSeen)')).toBe(true);
      expect(await page.getByTestId('connection').getAttribute('data-state')).toBe('live');
    } finally {
      await context.close();
    }
  }, 240_000);
});
