/**
 * The agent's main loop (agent/agent.ts, agent/worker/) on fakes and a manual clock: reconcile at
 * start, heartbeat, health monitor with auto-heal, staggered polls, pause, registry backoff, "poll
 * now", shutdown. Observed through the coordinator, the runtime, readiness and the events it reports.
 */
import { describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../shared/config/agent.js';
import { Agent, type WorkerEvent } from './agent.js';
import { createReadinessBoard } from './readiness/board.js';
import { liveProbes } from './readiness/probe.js';
import { RegistryConnectionError, RegistryRateLimitedError } from './registry/errors.js';
import { nextPollAtMs } from './schedule/schedule.js';
import {
  advanceUntil,
  captureLogger,
  FakeCoordinator,
  FakeHealthProbe,
  FakeHooks,
  FakeRegistry,
  FakeRuntime,
  NEW_DIGEST,
  OLD_DIGEST,
  settle,
} from './update/testing/fakes.js';
import type { DrainState } from './drain/state.js';
import { MemoryDrainStateStore } from './update/testing/fakes.js';
import { ManualClock } from '../shared/testing/clock.js';
import { fixedRandom } from '../shared/testing/random.js';
import { MemoryUpdateJournal } from './update/testing/memory-journal.js';

const IMAGE = 'registry.test/app:latest';
const THIRD_DIGEST = `sha256:${'c'.repeat(64)}`;
const byDigest = (digest: string) => `registry.test/app@${digest}`;

interface WorldOptions {
  cron?: string;
  nodeId?: string;
  /** No `web` container at start. */
  noContainer?: boolean;
  /** What the coordinator's heartbeat answers ask for (the fake's default otherwise). */
  heartbeatIntervalMs?: number;
  /** The service's pruneImages (default true). */
  pruneImages?: boolean;
  /** Drain states remembered in the state directory from before this start. */
  drains?: DrainState[];
  /** Hooks on the `web` service. */
  hooks?: { preDrain?: string; postReady?: string };
}

function world(options: WorldOptions = {}) {
  const clock = new ManualClock(1_700_000_000_000);
  const runtime = new FakeRuntime(clock);
  if (!options.noContainer) runtime.addContainer({ name: 'web', service: 'web', digest: OLD_DIGEST });
  const registry = new FakeRegistry(clock);
  registry.push(IMAGE, OLD_DIGEST);
  const coordinator = new FakeCoordinator(clock);
  if (options.heartbeatIntervalMs !== undefined) {
    coordinator.heartbeatAnswer = { ...coordinator.heartbeatAnswer, heartbeatIntervalMs: options.heartbeatIntervalMs };
  }
  const { logger } = captureLogger();
  const events: WorkerEvent[] = [];
  const healthProbe = FakeHealthProbe.backedBy(clock, runtime, 'web');
  const journal = new MemoryUpdateJournal();
  const drains = new MemoryDrainStateStore(options.drains ?? []);
  const hooks = new FakeHooks(clock);
  const hookConfig = Object.fromEntries(Object.entries(options.hooks ?? {}).map(([which, command]) => [which, { command, timeoutMs: 5_000 }]));
  const config = agentConfigSchema.parse({
    nodeId: options.nodeId ?? 'node-1',
    host: '127.0.0.2',
    coordinator: { urls: ['http://127.0.0.1:7070'] },
    schedule: { cron: options.cron ?? '*/10 * * * * *', splayMs: 0 },
    services: [
      {
        group: 'web',
        image: IMAGE,
        containerName: 'web',
        health: {
          http: { url: 'http://127.0.0.2:8080/health' },
          intervalMs: 1_000,
          idleIntervalMs: 2_000,
          consecutivePasses: 2,
          deadlineMs: 10_000,
          minHealthyMs: 2_000,
        },
        drainSeconds: 2,
        readmitSeconds: 1,
        ...(options.pruneImages === undefined ? {} : { pruneImages: options.pruneImages }),
        hooks: hookConfig,
      },
    ],
  });
  const readiness = createReadinessBoard({
    services: ['web'],
    probe: liveProbes({ runtime, healthProbe, clock, engineTimeoutMs: 2_000 }, config.services),
    clock,
    cacheMs: 250,
    logger,
  });
  const agent = new Agent({
    config,
    runtime,
    registry,
    coordinator,
    readiness,
    healthProbe,
    hooks,
    journal,
    drains,
    clock,
    random: fixedRandom(0.5),
    logger,
    agentVersion: '0.0.0-test',
    onEvent: (event) => events.push(event),
  });
  const start = () => settle(clock, agent.start(), { stepMs: 100 });
  const stop = () => settle(clock, agent.stop(), { stepMs: 100 });
  /** Lets `ms` of simulated time pass, 100 ms at a time. */
  const run = async (ms: number) => {
    const until = clock.nowMs() + ms;
    await advanceUntil(clock, () => clock.nowMs() >= until, { stepMs: 100 });
  };
  const until = (what: () => boolean, limitMs = 120_000) => advanceUntil(clock, what, { stepMs: 100, limitMs });
  const web = () => runtime.list().find((c) => c.name === 'web');
  const acquires = () => coordinator.calls.filter((c) => c.op === 'acquire');
  const ready = () => readiness.status('web')?.ready;
  /** What the agent reported of one type, in order (the events main.ts counts in the metrics). */
  const reported = <T extends WorkerEvent['type']>(type: T) => events.filter((e): e is Extract<WorkerEvent, { type: T }> => e.type === type);
  return { clock, runtime, registry, coordinator, readiness, healthProbe, journal, drains, hooks, agent, start, stop, run, until, web, acquires, ready, reported };
}

describe('Agent: start', () => {
  it('reconciles, reports itself healthy on its digest, and polls on its schedule without updating when nothing changed', async () => {
    const w = world();
    await w.start();
    expect(w.ready()).toBe(true);
    await w.run(35_000);
    expect(w.registry.calls.length).toBeGreaterThanOrEqual(3);
    expect(w.registry.calls.length).toBeLessThanOrEqual(4); // one poll per 10 s slot
    expect(w.acquires()).toEqual([]);
    const last = w.coordinator.heartbeats().at(-1);
    expect(last).toMatchObject({ nodeId: 'node-1', group: 'web', currentDigest: OLD_DIGEST, health: 'healthy', step: 'idle' });
    await w.stop();
  });

  it('provisions a missing service from the tag, without a lease', async () => {
    const w = world({ noContainer: true });
    await w.start();
    expect(w.web()).toMatchObject({ digest: OLD_DIGEST, running: true, image: byDigest(OLD_DIGEST) });
    expect(w.ready()).toBe(true);
    expect(w.acquires()).toEqual([]);
    expect(w.reported('provisioned')).toHaveLength(1);
    await w.stop();
  });

  it('keeps running when the engine is down at start: reconcile is retried with backoff, and polls wait for it', async () => {
    const w = world();
    w.runtime.down = new Error('connect ENOENT /var/run/docker.sock');
    await w.start(); // does not reject
    expect(w.reported('reconcile-failed')).toHaveLength(1);
    // The coordinator still hears from it, and hears the truth: the engine does not answer.
    expect(w.coordinator.heartbeats().length).toBeGreaterThan(0);
    expect(w.coordinator.heartbeats().at(-1)?.health).toBe('unhealthy');
    expect(await w.readiness.check('web')).toEqual({ ready: false, reason: 'engine-unreachable' });
    w.runtime.down = undefined;
    await w.until(() => w.reported('reconciled').length === 1);
    expect(w.ready()).toBe(true);
    const reconciledAt = w.clock.nowMs();
    await w.until(() => w.registry.calls.length > 0, 20_000);
    expect(w.registry.calls[0]!.atMs).toBeGreaterThanOrEqual(reconciledAt);
    await w.stop();
  });
});

describe('Agent: updates', () => {
  it('updates to a pushed digest under a lease, and the heartbeat reports every step and the health on the way', async () => {
    const w = world();
    w.runtime.pullDurationMs = 1_000;
    w.runtime.stopDurationMs = 1_000;
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.reported('update-finished')[0]).toMatchObject({ outcome: 'updated', digest: NEW_DIGEST });
    expect(w.web()).toMatchObject({ digest: NEW_DIGEST, running: true });
    expect(w.coordinator.releases.map((r) => r.outcome)).toEqual(['updated']);
    expect(w.runtime.mutations().filter((m) => m.startsWith('pull:'))).toEqual([`pull:${byDigest(NEW_DIGEST)}`]); // one pull

    await w.run(1_000);
    const beats = w.coordinator.heartbeats();
    const steps = new Set(beats.map((b) => b.step));
    for (const step of ['pull', 'lease', 'drain', 'stop', 'health', 'success', 'idle']) expect(steps, step).toContain(step);
    // The drain is reported as soon as readiness answers 503 (not at the next interval).
    expect(beats.filter((b) => b.step === 'drain').map((b) => b.health)).toContain('draining');
    expect(beats.find((b) => b.step === 'pull')).toMatchObject({ health: 'healthy', currentDigest: OLD_DIGEST });
    expect(beats.at(-1)).toMatchObject({ step: 'idle', health: 'healthy', currentDigest: NEW_DIGEST });
    // Every step change is reported at once, not at the next interval (10 s here).
    const drainBeat = beats.find((b) => b.step === 'drain')!;
    const leaseGranted = w.acquires()[0]!.atMs;
    expect(drainBeat.atMs - leaseGranted).toBeLessThan(200);
    await w.stop();
  });

  it('starts no update while the group is paused, and updates once it is resumed', async () => {
    const w = world();
    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, paused: true, heartbeatIntervalMs: 2_000 };
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.run(40_000);
    expect(w.registry.calls.length).toBeGreaterThanOrEqual(3); // it polls...
    expect(w.acquires()).toEqual([]); // ...but asks for no lease
    expect(w.web()?.digest).toBe(OLD_DIGEST);
    expect(w.runtime.mutations()).toEqual([]);
    expect(w.reported('digest-held').filter((e) => e.why === 'group-paused').length).toBeGreaterThanOrEqual(3);

    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, paused: false };
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.web()?.digest).toBe(NEW_DIGEST);
    expect(w.reported('pause-changed').filter((e) => !e.paused)).toHaveLength(1);
    await w.stop();
  });

  it('does not ask again for a digest that failed here, until the tag moves on', async () => {
    const w = world();
    w.runtime.setImageBehaviour(NEW_DIGEST, { healthy: false });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.reported('update-finished')[0]?.outcome).toBe('rolled-back');
    expect(w.coordinator.releases.map((r) => r.outcome)).toEqual(['failed']);
    expect(w.web()?.digest).toBe(OLD_DIGEST);

    const pollsBefore = w.registry.calls.length;
    await w.run(60_000);
    expect(w.registry.calls.length).toBeGreaterThan(pollsBefore + 4);
    expect(w.acquires()).toHaveLength(1);

    w.registry.push(IMAGE, THIRD_DIGEST);
    await w.until(() => w.reported('update-finished').length === 2);
    expect(w.acquires()).toHaveLength(2);
    expect(w.web()?.digest).toBe(THIRD_DIGEST);
    await w.stop();
  });

  it('does not ask again for a digest whose rollout is halted elsewhere', async () => {
    const w = world();
    w.coordinator.acquireScript.push({ refuse: 'halted' });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.reported('update-finished')[0]).toMatchObject({ outcome: 'skipped' });
    await w.run(60_000);
    expect(w.acquires()).toHaveLength(1);
    expect(w.runtime.mutations()).toEqual([`pull:${byDigest(NEW_DIGEST)}`]); // pre-pulled, nothing else
    await w.stop();
  });
});

describe('Agent: rollouts by push', () => {
  it('sends the rollout seq it knew before the poll that found the digest', async () => {
    const w = world();
    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, rolloutSeq: 7, heartbeatIntervalMs: 2_000 };
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.acquires()[0]?.body).toMatchObject({ targetDigest: NEW_DIGEST, observedAfterSeq: 7 });
    await w.stop();
  });

  it('told `stale` with a newer rollout, it reads the tag again at once and asks with that rollout\'s seq', async () => {
    const w = world({ cron: '0 * * * *' }); // hourly: only the re-poll can come soon
    w.coordinator.acquireScript.push({ refuse: 'stale', retryAfterMs: 0, rolloutSeq: 4 });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    w.coordinator.requestPollNow();
    await w.until(() => w.reported('update-finished').length === 2, 60_000);
    expect(w.reported('update-finished').map((l) => l.outcome)).toEqual(['skipped', 'updated']);
    expect(w.acquires().map((c) => (c.body as { observedAfterSeq?: number }).observedAfterSeq)).toEqual([0, 4]);
    expect(w.acquires()[1]!.atMs - w.acquires()[0]!.atMs).toBeLessThan(1_000);
    await w.stop();
  });

  it('while the group is rolled back from the tag\'s digest, it runs the rollback target, without pulling what it has', async () => {
    const w = world({ heartbeatIntervalMs: 1_000 });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.web()?.digest === NEW_DIGEST);
    await w.until(() => w.reported('update-finished').length === 1);
    w.coordinator.heartbeatAnswer = {
      ...w.coordinator.heartbeatAnswer,
      rolloutSeq: 2,
      targetDigest: OLD_DIGEST,
      rolledBackFrom: NEW_DIGEST,
      rolloutState: 'in-progress',
    };
    w.coordinator.requestPollNow();
    await w.until(() => w.reported('update-finished').length === 2);
    expect(w.web()).toMatchObject({ digest: OLD_DIGEST, running: true, image: byDigest(OLD_DIGEST) });
    expect(w.acquires()[1]?.body).toMatchObject({ targetDigest: OLD_DIGEST, observedAfterSeq: 2 });
    // The old image was still here: only the first update pulled.
    expect(w.runtime.mutations().filter((m) => m.startsWith('pull:'))).toEqual([`pull:${byDigest(NEW_DIGEST)}`]);

    // A push of another digest ends the rollback for this node: it follows the tag again.
    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, rolloutSeq: 2, rolledBackFrom: null, targetDigest: OLD_DIGEST };
    w.registry.push(IMAGE, THIRD_DIGEST);
    await w.until(() => w.reported('update-finished').length === 3);
    expect(w.web()?.digest).toBe(THIRD_DIGEST);
    await w.stop();
  });

  it('asks again for a halted digest once a new rollout opens (baton retry)', async () => {
    const w = world({ heartbeatIntervalMs: 1_000 });
    w.coordinator.acquireScript.push({ refuse: 'halted', rolloutSeq: 1 });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.reported('update-finished').length === 1);
    await w.run(30_000);
    expect(w.acquires()).toHaveLength(1);
    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, rolloutSeq: 2, targetDigest: NEW_DIGEST, rolloutState: 'in-progress' };
    await w.until(() => w.reported('update-finished').length === 2);
    expect(w.web()?.digest).toBe(NEW_DIGEST);
    expect(w.acquires()[1]?.body).toMatchObject({ observedAfterSeq: 2 });
    await w.stop();
  });
});

describe('Agent: engine trouble while waiting for a lease', () => {
  it('asks for no lease while its engine is unreachable, and updates once it is back', async () => {
    const w = world();
    w.coordinator.acquireScript.push({ refuse: 'busy', retryAfterMs: 1_000 });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.acquires().length === 1);
    w.runtime.down = new Error('connect ECONNREFUSED /var/run/docker.sock');
    await w.run(10_000);
    expect(w.acquires()).toHaveLength(1);
    w.runtime.down = undefined;
    await w.until(() => w.reported('update-finished').length === 1, 60_000);
    expect(w.reported('update-finished')[0]).toMatchObject({ outcome: 'updated' });
    expect(w.acquires()).toHaveLength(2);
    await w.stop();
  });
});

describe('Agent: images', () => {
  it('after each update keeps only the image it runs and the one before; with pruneImages off, every image', async () => {
    for (const prune of [true, false]) {
      const w = world({ pruneImages: prune });
      await w.start();
      w.runtime.addImage(byDigest(THIRD_DIGEST)); // pulled by hand, say
      for (const [index, digest] of [NEW_DIGEST, THIRD_DIGEST, OLD_DIGEST].entries()) {
        w.registry.push(IMAGE, digest);
        await w.until(() => w.reported('update-finished').length === index + 1);
      }
      expect(w.web()?.digest).toBe(OLD_DIGEST);
      const all = [OLD_DIGEST, NEW_DIGEST, THIRD_DIGEST].map(byDigest).sort();
      expect(w.runtime.imageList(), `pruneImages ${prune}`).toEqual(prune ? [byDigest(OLD_DIGEST), byDigest(THIRD_DIGEST)].sort() : all);
      await w.stop();
    }
  });
});

describe('Agent: registry trouble', () => {
  it('backs off after failed polls (no update, the polls in between skipped) and resumes polling every slot once it answers', async () => {
    const w = world({ cron: '* * * * * *' }); // a poll every second
    await w.start();
    w.registry.down = new RegistryConnectionError('http://registry.test/v2/app/manifests/latest');
    await w.until(() => w.registry.calls.filter((c) => c.failed).length === 4);
    const times = w.registry.calls.filter((c) => c.failed).map((c) => c.atMs);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    // Equal-jitter backoff from 5 s, doubling (random 0.5: 3.75 s, 7.5 s, 15 s), rounded up to the next 1 s slot.
    expect(gaps).toEqual([4_000, 8_000, 15_000]);
    expect(w.reported('poll-skipped').filter((e) => e.why === 'registry-backoff').length).toBeGreaterThan(20);
    expect(w.acquires()).toEqual([]);
    expect(w.ready()).toBe(true); // the service keeps serving
    expect(w.runtime.mutations()).toEqual([]);

    w.registry.down = undefined;
    const failed = w.registry.calls.length;
    await w.until(() => w.registry.calls.length === failed + 3, 60_000);
    const recovered = w.registry.calls.slice(failed).map((c) => c.atMs);
    expect(recovered[2]! - recovered[1]!).toBe(1_000);
    expect(w.reported('registry-reachable')).toHaveLength(1);
    await w.stop();
  });

  it('waits out a rate limit for its Retry-After', async () => {
    const w = world({ cron: '* * * * * *' });
    await w.start();
    w.registry.failures.push(new RegistryRateLimitedError('registry.test', 429, 30_000));
    await w.until(() => w.registry.calls.some((c) => c.failed));
    const failedAt = w.registry.calls.find((c) => c.failed)!.atMs;
    await w.until(() => w.registry.calls.at(-1)!.atMs > failedAt);
    expect(w.registry.calls.at(-1)!.atMs - failedAt).toBe(31_000); // 30 s + 0.5 s jitter, next slot
    await w.stop();
  });
});

describe('Agent: poll now', () => {
  /** Hourly polls (only a push can bring an update soon) and a heartbeat every second. */
  const pushWorld = () => world({ cron: '0 * * * *', heartbeatIntervalMs: 1_000 });

  it('a push notification polls at once even during the registry backoff (FINDINGS F3)', async () => {
    const w = pushWorld();
    await w.start();
    // A registry outage: the push of a first poll fails, and the backoff begins.
    w.registry.down = new RegistryConnectionError('http://registry.test/v2/app/manifests/latest');
    w.coordinator.requestPollNow();
    await w.until(() => w.registry.calls.length === 1, 5_000);
    expect(w.reported('poll-failed')).toHaveLength(1);

    // The registry is back and notifies a push 1 s later, well inside the backoff (3.75 s).
    w.registry.down = undefined;
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.run(1_000);
    const pushedAt = w.clock.nowMs();
    w.coordinator.requestPollNow();
    await w.until(() => w.registry.calls.length === 2, 5_000);
    expect(w.registry.calls[1]!.atMs - pushedAt).toBeLessThanOrEqual(1_200);
    expect(w.registry.calls[1]!.atMs).toBeLessThan(w.registry.calls[0]!.atMs + 3_750);
    expect(w.reported('poll-despite-backoff')).toHaveLength(1);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.web()?.digest).toBe(NEW_DIGEST);
    await w.stop();
  });

  it('polls at once when a heartbeat answer says pollNow, long before its next scheduled poll', async () => {
    const w = pushWorld();
    await w.start();
    const due = nextPollAtMs({ nowMs: w.clock.nowMs(), periodMs: 3_600_000, nodeId: 'node-1', random: fixedRandom(0.5), splayMs: 0 });
    expect(due - w.clock.nowMs()).toBeGreaterThan(60_000); // otherwise this test proves nothing
    await w.run(10_000);
    expect(w.registry.calls).toEqual([]);

    w.registry.push(IMAGE, NEW_DIGEST);
    const askedAt = w.clock.nowMs();
    w.coordinator.requestPollNow();
    await w.until(() => w.registry.calls.length === 1, 5_000);
    expect(w.registry.calls[0]!.atMs - askedAt).toBeLessThanOrEqual(1_200);
    expect(w.reported('poll-now-asked')).toHaveLength(1);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.web()?.digest).toBe(NEW_DIGEST);
    await w.stop();
  });

  /** The next idle health check hangs until the returned function is called: the monitor holds the container meanwhile. */
  function holdNextCheck(w: ReturnType<typeof world>): () => (() => void) | undefined {
    let releaseCheck: (() => void) | undefined;
    const serving = w.healthProbe.respond;
    w.healthProbe.respond = (url) => {
      w.healthProbe.respond = serving;
      return new Promise<boolean>((resolve) => {
        releaseCheck = () => resolve(serving(url));
      });
    };
    return () => releaseCheck;
  }

  it('a push that arrives while a health check holds the container is polled as soon as the check ends', async () => {
    const w = pushWorld();
    await w.start();
    const held = holdNextCheck(w);
    await w.until(() => held() !== undefined, 10_000);
    const releaseCheck = held();

    w.registry.push(IMAGE, NEW_DIGEST);
    w.coordinator.requestPollNow();
    // The heartbeat that brings the push waits for the same probe (its health must be fresh), and the
    // monitor holds the container meanwhile: nothing polls until the check ends.
    await w.run(2_000);
    expect(w.registry.calls).toEqual([]);
    const releasedAt = w.clock.nowMs();
    releaseCheck?.();
    await w.until(() => w.registry.calls.length === 1, 5_000);
    expect(w.registry.calls[0]!.atMs - releasedAt).toBeLessThanOrEqual(200);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.web()?.digest).toBe(NEW_DIGEST);
    await w.stop();
  });

  it('a push whose poll finds the container taken by a health check once the tag is read is not lost', async () => {
    const w = pushWorld();
    await w.start();
    // The HEAD takes longer than a monitor interval, and the check that starts meanwhile hangs.
    w.registry.latencyMs = 3_000;
    w.registry.push(IMAGE, NEW_DIGEST);
    w.coordinator.requestPollNow();
    await w.until(() => w.registry.calls.length === 1, 5_000);
    const held = holdNextCheck(w);
    await w.until(() => held() !== undefined, 2_500);
    await w.run(4_000); // the HEAD has answered; the container was busy
    expect(w.acquires()).toEqual([]);
    w.registry.latencyMs = 0;
    held()?.();
    await w.until(() => w.registry.calls.length === 2, 1_000);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.web()?.digest).toBe(NEW_DIGEST);
    await w.stop();
  });
});

describe('Agent: health monitor and auto-heal', () => {
  it('restarts a container that died, without a lease, and reports it unhealthy until it serves again', async () => {
    const w = world();
    // The container was started an hour ago (FakeRuntime.addContainer); it exits 20 s from now.
    w.runtime.setImageBehaviour(OLD_DIGEST, { exitsAfterMs: 3_600_000 + 20_000 });
    await w.start();
    await w.until(() => w.reported('container-restarting').length === 1, 30_000);
    const noticedAt = w.clock.nowMs();
    expect(noticedAt - 20_000 - 1_700_000_000_000).toBeLessThanOrEqual(2_000); // within one monitor interval
    expect(w.reported('health-changed').filter((e) => !e.healthy)).toHaveLength(1); // out of the load balancer until it serves again
    expect(w.coordinator.heartbeats().some((b) => b.health === 'stopped' || b.health === 'unhealthy')).toBe(true);
    await w.until(() => w.web()?.running === true && w.ready() === true, 10_000);
    expect(w.runtime.mutations()).toEqual(['start:web']);
    expect(w.acquires()).toEqual([]);
    // Back in service only once it has served for readmitSeconds (1 s here): the balancer's rise.
    const readyAt = w.clock.nowMs();
    await w.until(() => w.coordinator.heartbeats().at(-1)?.health === 'healthy', 20_000);
    const beatsSince = w.coordinator.heartbeats().filter((b) => b.atMs >= readyAt);
    expect(beatsSince.filter((b) => b.health === 'healthy').every((b) => b.atMs - readyAt >= 1_000)).toBe(true);
    await w.stop();
  });

  it('re-creates a removed container from the digest it ran, not from the tag (I2)', async () => {
    const w = world();
    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, paused: true };
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST); // the tag moved, but the group is paused
    await w.runtime.stop('web', 0); // the fake refuses to remove a running container; Docker's force does both
    await w.runtime.remove('web');
    await w.until(() => w.reported('provisioned').length === 1);
    expect(w.web()).toMatchObject({ digest: OLD_DIGEST, running: true });
    expect(w.ready()).toBe(true);
    expect(w.acquires()).toEqual([]);
    await w.stop();
  });

  it('marks an unhealthy service not ready after two failed checks, and ready again when it recovers', async () => {
    const w = world();
    await w.start();
    w.runtime.setImageBehaviour(OLD_DIGEST, { healthy: false });
    await w.until(() => w.ready() === false, 10_000);
    expect(w.coordinator.heartbeats().at(-1)?.health).toBe('unhealthy');
    w.runtime.setImageBehaviour(OLD_DIGEST, {});
    await w.until(() => w.ready() === true, 10_000);
    expect(w.runtime.mutations()).toEqual([]); // a running container is not restarted for failing checks
    await w.stop();
  });

  it('keeps watching the container while an update waits for its lease', async () => {
    const w = world();
    for (let i = 0; i < 20; i += 1) w.coordinator.acquireScript.push({ refuse: 'busy', retryAfterMs: 2_000 });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.acquires().length === 2);
    expect(w.ready()).toBe(true);
    w.runtime.setImageBehaviour(OLD_DIGEST, { healthy: false });
    await w.until(() => w.ready() === false, 10_000);
    expect(w.acquires().length).toBeLessThan(20); // still waiting for the lease
    expect(w.coordinator.heartbeats().at(-1)).toMatchObject({ step: 'lease', health: 'unhealthy' });
    await w.stop();
  });
});

describe('Agent: readiness and heartbeat tell the truth', () => {
  it('answers from the live probe at start, before the start-up reconcile has finished', async () => {
    const w = world();
    // The reconcile fails (and is retried later); the container runs and serves all along.
    w.runtime.failNext('listForService', new Error('engine busy'));
    expect(await w.readiness.check('web')).toEqual({ ready: true, reason: undefined });
    await w.start();
    expect(w.reported('reconcile-failed')).toHaveLength(1);
    expect(await w.readiness.check('web')).toEqual({ ready: true, reason: undefined });
    // The heartbeat says `starting` until the service has been ready for readmitSeconds, then healthy.
    expect(w.coordinator.heartbeats()[0]).toMatchObject({ health: 'starting', healthReason: 'starting' });
    await w.until(() => w.coordinator.heartbeats().at(-1)?.health === 'healthy', 20_000);
    await w.stop();
  });

  it('holds a service whose update a crash cut short until its reconcile has checked it', async () => {
    const w = world();
    const web = w.web()!;
    await w.journal.write('web', {
      service: 'web',
      group: 'web',
      targetDigest: NEW_DIGEST,
      targetImage: byDigest(NEW_DIGEST),
      previousDigest: OLD_DIGEST,
      previousContainerId: web.id,
      oldContainerName: 'web-baton-old',
      leaseId: 'lease-9',
      fencingToken: 9,
      step: 'drain',
      startedAtMs: w.clock.nowMs(),
      updatedAtMs: w.clock.nowMs(),
    });
    await w.agent.prepare();
    expect(await w.readiness.check('web')).toEqual({ ready: false, reason: 'starting' });
    await w.start();
    expect(w.reported('reconciled')).toHaveLength(1);
    expect(await w.readiness.check('web')).toEqual({ ready: true, reason: undefined });
    await w.stop();
  });

  it('a paused container is out at once, in readiness and in the next heartbeat, and back when unpaused; it is not restarted', async () => {
    const w = world();
    await w.start();
    w.runtime.setPaused('web', true);
    await w.run(300); // past the probe cache
    expect(await w.readiness.check('web')).toEqual({ ready: false, reason: 'container-paused' });
    await w.until(() => w.coordinator.heartbeats().at(-1)?.health === 'unhealthy', 15_000);
    expect(w.coordinator.heartbeats().at(-1)?.healthReason).toBe('container-paused');
    await w.run(5_000); // monitor checks meanwhile
    expect(w.runtime.mutations()).toEqual([]);
    w.runtime.setPaused('web', false);
    await w.run(300);
    expect(await w.readiness.check('web')).toEqual({ ready: true, reason: undefined });
    await w.until(() => w.coordinator.heartbeats().at(-1)?.health === 'healthy', 15_000);
    expect(w.coordinator.heartbeats().at(-1)?.healthReason).toBeUndefined();
    await w.stop();
  });

  it('never reports healthy on a stale probe: a heartbeat right after the engine goes away says unhealthy', async () => {
    const w = world();
    await w.start();
    await w.run(1_000);
    w.runtime.down = new Error('connect ECONNREFUSED /var/run/docker.sock');
    const beats = w.coordinator.heartbeats().length;
    await w.until(() => w.coordinator.heartbeats().length > beats, 15_000);
    expect(w.coordinator.heartbeats().slice(beats).map((b) => b.health)).not.toContain('healthy');
    expect(w.coordinator.heartbeats().at(-1)).toMatchObject({ health: 'unhealthy', healthReason: 'engine-unreachable' });
    w.runtime.down = undefined;
    await w.stop();
  });

  it('answers draining throughout an update from drain to success, whatever the probe says', async () => {
    const w = world();
    w.runtime.stopDurationMs = 1_000;
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.coordinator.heartbeats().some((b) => b.step === 'drain'));
    const answers: string[] = [];
    while (w.reported('update-finished').length === 0) {
      const answer = await w.readiness.check('web');
      const step = w.coordinator.heartbeats().at(-1)?.step; // every step change is heartbeated at once
      answers.push(`${step}:${answer.ready ? 'ok' : answer.reason}`);
      await w.run(100);
    }
    for (const step of ['drain', 'stop', 'health']) {
      expect(answers.filter((a) => a.startsWith(`${step}:`)).length, step).toBeGreaterThan(0);
    }
    const updating = answers.filter((a) => /^(drain|stop|start|health):/.test(a));
    expect(updating.filter((a) => !a.endsWith(':draining'))).toEqual([]);
    expect(answers.at(-1)).toMatch(/:ok$/);
    await w.stop();
  });
});

describe('Agent: stop', () => {
  it('during an update: rolls back, releases the lease as abandoned, and sends a last heartbeat', async () => {
    const w = world();
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.coordinator.heartbeats().some((b) => b.step === 'health'));
    await w.stop();
    expect(w.reported('update-finished')[0]).toMatchObject({ outcome: 'aborted' });
    expect(w.coordinator.releases.map((r) => r.outcome)).toEqual(['abandoned']);
    expect(w.runtime.list().map((c) => ({ name: c.name, digest: c.digest, running: c.running }))).toEqual([
      { name: 'web', digest: OLD_DIGEST, running: true },
    ]);
    expect(w.ready()).toBe(true);
    // Restored and ready, but not yet for readmitSeconds: `starting` until the balancer has it back.
    expect(w.coordinator.heartbeats().at(-1)).toMatchObject({ step: 'idle', health: 'starting', currentDigest: OLD_DIGEST });
    // Heartbeats went on during the rollback.
    expect(w.coordinator.heartbeats().some((b) => b.step === 'rollback')).toBe(true);
    expect(w.clock.pendingSleepers()).toBe(0);
  });

  it('while idle: stops every loop promptly', async () => {
    const w = world();
    await w.start();
    await w.run(5_000);
    const before = w.clock.nowMs();
    await w.stop();
    expect(w.clock.nowMs() - before).toBeLessThanOrEqual(200);
    expect(w.clock.pendingSleepers()).toBe(0);
    const calls = w.registry.calls.length;
    await w.run(30_000);
    expect(w.registry.calls.length).toBe(calls);
  });
});

describe('Agent: operator drain', () => {
  const drained = { reason: 'kernel upgrade', sinceMs: 1_699_999_000_000 };
  const hooks = { preDrain: 'deregister', postReady: 'register' };

  it('drains on the heartbeat answer: 503 drained, preDrain once, remembered, no update; undrain: live again, postReady, forgotten, then it updates', async () => {
    const w = world({ heartbeatIntervalMs: 1_000, hooks });
    await w.start();
    expect(w.ready()).toBe(true);
    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, drained };
    await w.until(() => w.drains.snapshot('web')?.preDrainDone === true);
    expect(w.readiness.status('web')).toEqual({ ready: false, reason: 'drained' });
    expect(w.drains.snapshot('web')).toEqual({ service: 'web', group: 'web', reason: 'kernel upgrade', sinceMs: drained.sinceMs, preDrainDone: true });
    await w.until(() => w.coordinator.heartbeats().at(-1)?.health === 'draining');

    // A push while drained: no poll, no lease, nothing touched; the preDrain hook ran once.
    w.registry.push(IMAGE, NEW_DIGEST);
    const polls = w.registry.calls.length;
    await w.run(30_000);
    expect(w.registry.calls.length).toBe(polls);
    expect(w.acquires()).toEqual([]);
    expect(w.runtime.mutations()).toEqual([]);
    expect(w.hooks.runs.map((r) => [r.command, r.environment.BATON_OPERATOR_DRAIN, r.environment.BATON_DRAIN_REASON])).toEqual([
      ['deregister', 'drain', 'kernel upgrade'],
    ]);
    expect(w.readiness.status('web')?.reason).toBe('drained');

    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, drained: null };
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.reported('update-finished')[0]?.outcome).toBe('updated');
    expect(w.web()?.digest).toBe(NEW_DIGEST);
    expect(w.drains.snapshot('web')).toBeUndefined();
    expect(w.hooks.runs.map((r) => [r.command, r.environment.BATON_OPERATOR_DRAIN ?? 'update'])).toEqual([
      ['deregister', 'drain'],
      ['register', 'undrain'],
      ['deregister', 'update'],
      ['register', 'update'],
    ]);
    expect(w.ready()).toBe(true);
    await w.stop();
  });

  it('a restarted agent that cannot reach the coordinator stays drained from its state directory, without running preDrain again', async () => {
    const w = world({ drains: [{ service: 'web', group: 'web', ...drained, preDrainDone: true }], hooks });
    w.coordinator.unavailable = true;
    await w.agent.prepare();
    expect(w.readiness.status('web')).toEqual({ ready: false, reason: 'drained' });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.run(30_000);
    expect(await w.readiness.check('web')).toEqual({ ready: false, reason: 'drained' });
    expect(w.acquires()).toEqual([]);
    expect(w.hooks.runs).toEqual([]);

    // The coordinator answers again: it is the source of truth.
    w.coordinator.unavailable = false;
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.drains.snapshot('web')).toBeUndefined();
    // postReady of the undrain, then the update it had held back (with its own hooks).
    expect(w.hooks.runs.map((r) => [r.command, r.environment.BATON_OPERATOR_DRAIN ?? 'update'])).toEqual([
      ['register', 'undrain'],
      ['deregister', 'update'],
      ['register', 'update'],
    ]);
    expect(w.web()?.digest).toBe(NEW_DIGEST);
    await w.stop();
  });

  it('runs a preDrain that a crash cut short at the next start', async () => {
    const w = world({ drains: [{ service: 'web', group: 'web', ...drained, preDrainDone: false }], hooks });
    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, drained };
    await w.start();
    await w.until(() => w.drains.snapshot('web')?.preDrainDone === true);
    await w.run(5_000);
    expect(w.hooks.runs.map((r) => r.command)).toEqual(['deregister']);
    expect(w.readiness.status('web')?.reason).toBe('drained');
    await w.stop();
  });

  it('keeps the drain when the preDrain hook fails, and ends an update attempt refused as drained without settling the digest', async () => {
    const w = world({ heartbeatIntervalMs: 60_000, hooks });
    w.hooks.results.set('deregister', 1);
    w.coordinator.acquireScript.push({ refuse: 'drained' });
    await w.start();
    w.registry.push(IMAGE, NEW_DIGEST);
    await w.until(() => w.reported('update-finished').length === 1);
    expect(w.reported('update-finished')[0]).toMatchObject({ outcome: 'skipped' });
    expect(w.web()?.digest).toBe(OLD_DIGEST);

    w.coordinator.heartbeatAnswer = { ...w.coordinator.heartbeatAnswer, drained };
    w.coordinator.requestPollNow();
    await w.until(() => w.drains.snapshot('web')?.preDrainDone === true);
    expect(w.reported('drain-hook-failed')).toEqual([{ type: 'drain-hook-failed', service: 'web', hook: 'preDrain', exitCode: 1 }]);
    expect(w.readiness.status('web')?.reason).toBe('drained');
    await w.stop();
  });
});
