import { describe, expect, it } from 'vitest';
import {
  coordinatorUnavailableError,
  createFakeWorld,
  NEW_DIGEST,
  OLD_DIGEST,
  settle,
  type FakeWorldOptions,
} from './testing/fakes.js';
import { runUpdate } from './updater.js';

const NEW_IMAGE = `registry.test/app@${NEW_DIGEST}`;

function world(options: FakeWorldOptions = {}) {
  const w = createFakeWorld(options);
  const run = (signal?: AbortSignal) => settle(w.clock, runUpdate(w.deps, w.service, w.target, signal));
  /** Fires `controller` when the manual clock reaches `atMs`. */
  const abortAt = (controller: AbortController, atMs: number) => {
    void w.clock.sleep(atMs - w.clock.nowMs()).then(() => controller.abort(new Error('agent shutting down')));
  };
  const containers = () => w.runtime.list().map((c) => ({ name: c.name, digest: c.digest, running: c.running }));
  return { ...w, run, abortAt, containers };
}

describe('runUpdate: success', () => {
  it('pulls, leases, drains, stops, starts, checks health, readmits, then cleans up, in that order', async () => {
    const w = world();
    const result = await w.run();

    expect(result).toMatchObject({
      outcome: 'updated',
      targetDigest: NEW_DIGEST,
      previousDigest: OLD_DIGEST,
      runningDigest: NEW_DIGEST,
      release: 'updated',
      durationMs: 22_000,
    });
    expect(w.timeline).toEqual([
      `runtime:pull:${NEW_IMAGE}`,
      'journal:drain',
      'ready:503', // draining: the load balancer stops sending
      'journal:stop',
      'ready:503', // not healthy any more
      'runtime:stop:web',
      'runtime:rename:web>web-baton-old',
      'journal:start',
      'runtime:create:web',
      'runtime:start:web',
      'journal:health',
      'journal:success',
      'ready:503', // healthy, still draining
      'ready:200', // back in service
      'runtime:remove:web-baton-old',
      'journal:clear',
    ]);
    expect(w.containers()).toEqual([{ name: 'web', digest: NEW_DIGEST, running: true }]);
    expect(w.steps).toEqual(['pull', 'lease', 'drain', 'stop', 'start', 'health', 'success', 'idle']);
  });

  it('drains for drainSeconds before the stop and readmits only after health, then waits readmitSeconds', async () => {
    const w = world();
    await w.run();
    const at = (op: string, name: string) => w.runtime.calls.find((c) => c.op === op && c.args[0] === name)?.atMs;
    const drainedAt = w.readiness.events.find((e) => e.draining)?.atMs;
    expect(drainedAt).toBe(0);
    expect(at('stop', 'web')).toBe(10_000);
    expect(w.runtime.calls.find((c) => c.op === 'stop')?.args).toEqual(['web', 7]);
    expect(at('start', 'web')).toBe(10_000);
    // three passes at 10, 11, 12 s, then 5 s of minimum healthy time
    const checks = w.healthProbe.calls.map((c) => c.atMs);
    expect(checks).toEqual([10_000, 11_000, 12_000, 13_000, 14_000, 15_000, 16_000, 17_000]);
    const readmittedAt = w.readiness.events.findLast((e) => e.status === 200)?.atMs;
    expect(readmittedAt).toBe(17_000);
    expect(w.readiness.status('web')).toBe(200);
    expect(at('remove', 'web-baton-old')).toBe(22_000);
    const release = w.coordinator.calls.find((c) => c.op === 'release');
    expect(release).toMatchObject({ atMs: 22_000, leaseId: 'lease-1', body: { fencingToken: 1, outcome: 'updated' } });
    // renewed every ttl/3 while working
    expect(w.coordinator.calls.filter((c) => c.op === 'renew').map((c) => c.atMs)).toEqual([10_000, 20_000]);
  });

  it('creates the new container from the declared spec and the target digest', async () => {
    const w = world({ service: { env: { A: '1' }, ports: [{ containerPort: 80, hostPort: 8080 }] } });
    await w.run();
    const create = w.runtime.calls.find((c) => c.op === 'create');
    expect(create?.args).toEqual(['web', NEW_IMAGE, 'web', NEW_DIGEST]);
    const acquire = w.coordinator.calls.find((c) => c.op === 'acquire');
    expect(acquire?.body).toEqual({
      nodeId: 'node-1',
      group: 'web',
      targetDigest: NEW_DIGEST,
      image: 'registry.test/app:latest',
    });
  });

  it('logs exactly one structured line per step', async () => {
    const w = world();
    await w.run();
    const lines = w.stepLines();
    expect(lines.map((l) => l.step)).toEqual(['pull', 'lease', 'drain', 'stop', 'start', 'health', 'success']);
    for (const line of lines) {
      expect(line).toMatchObject({ node: 'node-1', service: 'web', digest: NEW_DIGEST, outcome: 'ok' });
      expect(typeof line.durationMs).toBe('number');
    }
    expect(lines.map((l) => l.durationMs)).toEqual([0, 0, 10_000, 0, 0, 7_000, 5_000]);
  });

  it('skips the pull when the image is already present', async () => {
    const w = world({ imagePresent: true });
    const result = await w.run();
    expect(result.outcome).toBe('updated');
    expect(w.runtime.calls.some((c) => c.op === 'pull')).toBe(false);
    expect(w.stepLines()[0]).toMatchObject({ step: 'pull', outcome: 'skipped' });
  });

  it('pulls after the lease when prePull is off', async () => {
    const w = world({ service: { prePull: false } });
    const result = await w.run();
    expect(result.outcome).toBe('updated');
    expect(w.steps.slice(0, 3)).toEqual(['lease', 'pull', 'drain']);
  });

  it('runs the hooks with the update in their environment', async () => {
    const w = world({ service: { hooks: { preDrain: { command: 'deregister' }, postReady: { command: 'register' } } } });
    await w.run();
    expect(w.hooks.runs.map((r) => [r.command, r.atMs, r.timeoutMs])).toEqual([
      ['deregister', 0, 30_000],
      ['register', 17_000, 30_000],
    ]);
    expect(w.hooks.runs[0]?.environment).toMatchObject({
      BATON_HOOK: 'preDrain',
      BATON_SERVICE: 'web',
      BATON_TARGET_DIGEST: NEW_DIGEST,
      BATON_PREVIOUS_DIGEST: OLD_DIGEST,
      BATON_NODE_ID: 'node-1',
    });
  });

  it('keeps going through a coordinator outage after the grant (I4) and finishes the update', async () => {
    const w = world();
    void w.clock.sleep(1_000).then(() => {
      w.coordinator.unavailable = true;
    });
    const result = await w.run();
    // the lease stays valid by our clock until 30 s, long enough to finish; the release cannot be delivered
    expect(result).toMatchObject({ outcome: 'updated', runningDigest: NEW_DIGEST, release: 'not-released' });
    expect(w.containers()).toEqual([{ name: 'web', digest: NEW_DIGEST, running: true }]);
    expect(w.readiness.status('web')).toBe(200);
  });

  it('does nothing when the container already runs the target digest', async () => {
    const w = world();
    await w.runtime.stop('web', 1);
    await w.runtime.remove('web');
    w.runtime.addContainer({ name: 'web', service: 'web', digest: NEW_DIGEST });
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'skipped', release: 'none', reason: 'already on the target digest' });
    expect(w.coordinator.calls).toEqual([]);
  });
});

describe('runUpdate: the new image fails', () => {
  const quickHealth = {
    http: { url: 'http://127.0.0.1:8080/health' },
    intervalMs: 1_000,
    consecutivePasses: 3,
    deadlineMs: 10_000,
    minHealthyMs: 5_000,
  };

  it('rolls back to the old container on the old digest, healthy, and releases failed', async () => {
    const w = world({ service: { health: quickHealth } });
    w.runtime.setImageBehaviour(NEW_DIGEST, { healthy: false });
    const result = await w.run();

    expect(result).toMatchObject({
      outcome: 'rolled-back',
      runningDigest: OLD_DIGEST,
      release: 'failed',
      restoredHealthy: true,
    });
    expect(result.reason).toMatch(/^health check failed: not healthy within 10000 ms/);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
    expect(w.timeline.slice(w.timeline.indexOf('journal:health'))).toEqual([
      'journal:health',
      'journal:rollback',
      'ready:503',
      'ready:503',
      'runtime:stop:web',
      'runtime:remove:web',
      'runtime:rename:web-baton-old>web',
      'runtime:start:web',
      'ready:503',
      'ready:200',
      'journal:clear',
    ]);
    expect(w.coordinator.releases).toEqual([
      expect.objectContaining({ leaseId: 'lease-1', outcome: 'failed', message: result.reason }),
    ]);
    // health failed at 20 s (10 s deadline after the start at 10 s); the old one then passed in 7 s
    expect(w.coordinator.calls.find((c) => c.op === 'release')?.atMs).toBe(27_000);
    expect(w.readiness.status('web')).toBe(200);
    const rollbackEntry = w.journal.history.find((h) => h.entry?.step === 'rollback')?.entry;
    expect(rollbackEntry?.failureReason).toBe(result.reason);
    expect(w.stepLines().map((l) => [l.step, l.outcome])).toEqual([
      ['pull', 'ok'],
      ['lease', 'ok'],
      ['drain', 'ok'],
      ['stop', 'ok'],
      ['start', 'ok'],
      ['health', 'failed'],
      ['rollback', 'ok'],
    ]);
    expect(w.steps.slice(-3)).toEqual(['health', 'rollback', 'idle']);
  });

  it('rolls back at once when the new container exits', async () => {
    const w = world();
    w.runtime.setImageBehaviour(NEW_DIGEST, { exitsAfterMs: 0 });
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'rolled-back', release: 'failed', runningDigest: OLD_DIGEST });
    expect(result.reason).toBe('health check failed: container web is not running (exit code 1)');
    expect(w.coordinator.calls.find((c) => c.op === 'release')?.atMs).toBe(17_000);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
  });

  it('rolls back when create fails, and releases failed', async () => {
    const w = world();
    w.runtime.failNext('create', new Error('port is already allocated'));
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'rolled-back', release: 'failed', reason: 'create failed: port is already allocated' });
    expect(w.runtime.mutations().slice(1)).toEqual(['stop:web', 'rename:web:web-baton-old', 'rename:web-baton-old:web', 'start:web']);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
  });

  it('rolls back when the new container does not start', async () => {
    const w = world();
    w.runtime.failNext('start', new Error('exec: "/app": no such file'));
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'rolled-back', release: 'failed' });
    expect(w.runtime.mutations().slice(1)).toEqual([
      'stop:web',
      'rename:web:web-baton-old',
      `create:web:${NEW_IMAGE}`,
      'remove:web',
      'rename:web-baton-old:web',
      'start:web',
    ]);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
  });

  it('reports a failed restore as an error, keeps the journal and does not release', async () => {
    const w = world();
    w.runtime.setImageBehaviour(NEW_DIGEST, { exitsAfterMs: 0 });
    w.runtime.failNext('rename', new Error('engine gone'), (args) => args[0] === 'web-baton-old');
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'error', release: 'not-released', restoredHealthy: false });
    expect(w.coordinator.releases).toEqual([]);
    expect(w.journal.snapshot()[0]).toMatchObject({ step: 'rollback' });
  });
});

describe('runUpdate: the lease', () => {
  it('retries a refusal after retryAfterMs plus up to half of it in jitter, then proceeds', async () => {
    const w = world();
    w.coordinator.acquireScript.push({ refuse: 'busy', retryAfterMs: 5_000 }, { refuse: 'unhealthy-peer', retryAfterMs: 2_000 });
    const result = await w.run();
    expect(result.outcome).toBe('updated');
    // fixedRandom(0.5): 5000 + 1250, then 2000 + 500
    expect(w.coordinator.calls.filter((c) => c.op === 'acquire').map((c) => c.atMs)).toEqual([0, 6_250, 8_750]);
    expect(w.runtime.calls.find((c) => c.op === 'stop')?.atMs).toBe(18_750);
    expect(w.stepLines().find((l) => l.step === 'lease')).toMatchObject({ outcome: 'ok', durationMs: 8_750, attempts: 3 });
  });

  it('waiting its turn does not back off: ten busy refusals, asked again every retryAfterMs plus jitter', async () => {
    const w = world({ imagePresent: true });
    for (let i = 0; i < 10; i += 1) w.coordinator.acquireScript.push({ refuse: 'busy', retryAfterMs: 2_000 });
    const result = await w.run();
    expect(result.outcome).toBe('updated');
    const times = w.coordinator.calls.filter((c) => c.op === 'acquire').map((c) => c.atMs);
    expect(times).toHaveLength(11);
    expect(new Set(times.slice(1).map((t, i) => t - (times[i] as number)))).toEqual(new Set([2_500]));
  });

  it('retries when the coordinator cannot be reached, changing nothing meanwhile (I4), with a capped backoff', async () => {
    const w = world();
    for (let i = 0; i < 6; i += 1) w.coordinator.acquireScript.push(coordinatorUnavailableError());
    const result = await w.run();
    expect(result.outcome).toBe('updated');
    const times = w.coordinator.calls.filter((c) => c.op === 'acquire').map((c) => c.atMs);
    // fixedRandom(0.5), equal jitter: 750, 1500, 3000, then capped at 5 s: 3750 each
    expect(times.slice(1).map((t, i) => t - (times[i] as number))).toEqual([750, 1_500, 3_000, 3_750, 3_750, 3_750]);
  });

  it.each(['halted', 'aborted', 'superseded'] as const)('stops at a %s refusal: skipped, nothing changed', async (reason) => {
    const w = world({ imagePresent: true });
    w.coordinator.acquireScript.push({ refuse: reason });
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'skipped', release: 'none', runningDigest: OLD_DIGEST });
    expect(result.reason).toContain(reason);
    expect(w.runtime.mutations()).toEqual([]);
    expect(w.readiness.events).toEqual([]);
    expect(w.journal.history).toEqual([]);
    expect(w.coordinator.calls.filter((c) => c.op === 'acquire')).toHaveLength(1);
    expect(w.stepLines().find((l) => l.step === 'lease')).toMatchObject({ outcome: 'skipped', reason });
  });

  it('rolls back when the lease is lost during health, before any further destructive step, and does not release', async () => {
    const w = world();
    w.coordinator.ttlMs = 24_000; // renews at 8 s and 16 s
    w.coordinator.renewScript.push('ok', 'lost');
    w.runtime.setImageBehaviour(NEW_DIGEST, { healthyAfterMs: 8_000 }); // still starting at 16 s
    const result = await w.run();

    expect(result).toMatchObject({ outcome: 'lease-lost', release: 'not-released', runningDigest: OLD_DIGEST, restoredHealthy: true });
    expect(result.reason).toMatch(/lost: the coordinator refused the renew/);
    expect(w.runtime.mutations()).toEqual([
      `pull:${NEW_IMAGE}`,
      'stop:web',
      'rename:web:web-baton-old',
      `create:web:${NEW_IMAGE}`,
      'start:web',
      // lease lost at 16 s: straight to the rollback
      'stop:web',
      'remove:web',
      'rename:web-baton-old:web',
      'start:web',
    ]);
    const rollbackStop = w.runtime.calls.filter((c) => c.op === 'stop')[1];
    expect(rollbackStop?.atMs).toBe(16_000);
    expect(w.coordinator.calls.some((c) => c.op === 'release')).toBe(false);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
    expect(w.readiness.status('web')).toBe(200);
    expect(w.journal.snapshot()).toEqual([]);
    expect(w.stepLines().map((l) => [l.step, l.outcome])).toEqual([
      ['pull', 'ok'],
      ['lease', 'ok'],
      ['drain', 'ok'],
      ['stop', 'ok'],
      ['start', 'ok'],
      ['health', 'lease-lost'],
      ['rollback', 'ok'],
    ]);
  });

  it('undrains without touching the container when the lease is lost during the drain', async () => {
    const w = world();
    w.coordinator.ttlMs = 24_000;
    w.coordinator.renewScript.push('lost'); // at 8 s, inside the 10 s drain
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'lease-lost', release: 'not-released' });
    expect(w.runtime.mutations()).toEqual([`pull:${NEW_IMAGE}`]);
    expect(w.readiness.status('web')).toBe(200);
    expect(w.readiness.events.at(-1)?.atMs).toBe(8_000);
  });

  it('checks the lease again after a slow stop: lost meanwhile means no rename, and the old container restarts', async () => {
    const w = world();
    w.coordinator.ttlMs = 33_000; // renew at 11 s
    w.coordinator.renewScript.push('lost');
    w.runtime.stopDurationMs = 5_000; // the stop runs 10 s → 15 s
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'lease-lost', runningDigest: OLD_DIGEST });
    expect(result.reason).toMatch(/stopped before renaming the old container$/);
    expect(w.runtime.mutations()).toEqual([`pull:${NEW_IMAGE}`, 'stop:web', 'start:web']);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
  });

  it('keeps renewing through a coordinator outage, and stops at the lease expiry by its own clock', async () => {
    const w = world({ service: { drainSeconds: 15 } });
    w.coordinator.ttlMs = 9_000; // renew every 3 s
    w.coordinator.renewScript.push('ok', 'unavailable', 'unavailable', 'unavailable', 'unavailable');
    const result = await w.run();
    // renewed at 3 s (valid until 12 s), then failing renews with backoff, then expiry at 12 s mid-drain
    expect(w.coordinator.calls.filter((c) => c.op === 'renew').map((c) => c.atMs)).toEqual([3_000, 6_000, 6_675, 8_025, 10_275]);
    expect(result).toMatchObject({ outcome: 'lease-lost', runningDigest: OLD_DIGEST });
    expect(result.reason).toMatch(/expired/);
    // expired by our clock only: one best-effort release as abandoned (this coordinator still had it)
    expect(result.release).toBe('abandoned');
    expect(w.coordinator.calls.find((c) => c.op === 'release')?.atMs).toBe(12_000);
    expect(w.runtime.mutations()).toEqual([`pull:${NEW_IMAGE}`]);
    expect(w.readiness.status('web')).toBe(200);
  });
});

describe('runUpdate: shutdown and other interruptions', () => {
  it('shutdown mid-drain: the old container keeps serving and the lease is released as abandoned', async () => {
    const w = world();
    const controller = new AbortController();
    w.abortAt(controller, 5_000);
    const result = await w.run(controller.signal);
    expect(result).toMatchObject({ outcome: 'aborted', release: 'abandoned', runningDigest: OLD_DIGEST });
    expect(w.runtime.mutations()).toEqual([`pull:${NEW_IMAGE}`]);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
    expect(w.readiness.status('web')).toBe(200);
    expect(w.coordinator.releases).toEqual([expect.objectContaining({ outcome: 'abandoned' })]);
    expect(w.coordinator.calls.find((c) => c.op === 'release')?.atMs).toBe(5_000);
    expect(w.journal.snapshot()).toEqual([]);
    expect(w.stepLines().at(-1)).toMatchObject({ step: 'drain', outcome: 'aborted', durationMs: 5_000 });
    expect(w.steps.at(-1)).toBe('idle');
  });

  it('shutdown during health: rolls back to the old container and releases abandoned, not failed', async () => {
    const w = world();
    const controller = new AbortController();
    w.abortAt(controller, 12_500);
    const result = await w.run(controller.signal);
    expect(result).toMatchObject({ outcome: 'aborted', release: 'abandoned', runningDigest: OLD_DIGEST, restoredHealthy: true });
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
    expect(w.coordinator.releases).toEqual([expect.objectContaining({ outcome: 'abandoned' })]);
    expect(w.readiness.status('web')).toBe(200);
  });

  it('shutdown while waiting for a lease: gives up, nothing changed, nothing to release', async () => {
    const w = world({ imagePresent: true });
    w.coordinator.acquireScript.push({ refuse: 'busy', retryAfterMs: 10_000 });
    const controller = new AbortController();
    w.abortAt(controller, 2_000);
    const result = await w.run(controller.signal);
    expect(result).toMatchObject({ outcome: 'aborted', release: 'none' });
    expect(w.clock.nowMs()).toBeLessThan(2_200);
    expect(w.coordinator.calls.map((c) => c.op)).toEqual(['acquire']);
    expect(w.runtime.mutations()).toEqual([]);
  });

  it('a grant that arrives as the agent shuts down is handed straight back as abandoned', async () => {
    const w = world({ imagePresent: true });
    const controller = new AbortController();
    const acquire = w.coordinator.acquire.bind(w.coordinator);
    w.coordinator.acquire = (body) => {
      controller.abort(new Error('agent shutting down'));
      return acquire(body);
    };
    const result = await w.run(controller.signal);
    expect(result).toMatchObject({ outcome: 'aborted', release: 'abandoned' });
    expect(w.coordinator.releases).toEqual([expect.objectContaining({ leaseId: 'lease-1', outcome: 'abandoned' })]);
    expect(w.runtime.mutations()).toEqual([]);
    expect(w.readiness.events).toEqual([]);
  });

  it('shutdown during the readmit wait: the success step finishes', async () => {
    const w = world();
    const controller = new AbortController();
    w.abortAt(controller, 19_000);
    const result = await w.run(controller.signal);
    expect(result).toMatchObject({ outcome: 'updated', release: 'updated' });
    expect(w.runtime.calls.find((c) => c.op === 'remove')?.atMs).toBe(22_000);
  });

  it('a failing preDrain hook ends the update before the stop: undrained, released as abandoned', async () => {
    const w = world({ service: { hooks: { preDrain: { command: 'deregister' } } } });
    w.hooks.results.set('deregister', 3);
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'error', release: 'abandoned', reason: 'preDrain hook exited with code 3' });
    expect(w.runtime.mutations()).toEqual([`pull:${NEW_IMAGE}`]);
    expect(w.readiness.status('web')).toBe(200);
  });

  it('a failing postReady hook is only a warning', async () => {
    const w = world({ service: { hooks: { postReady: { command: 'register' } } } });
    w.hooks.results.set('register', new Error('timed out'));
    const result = await w.run();
    expect(result.outcome).toBe('updated');
    expect(w.lines.some((l) => l.msg === 'postReady hook failed: timed out')).toBe(true);
  });

  it('a journal that cannot be written stops the update before the destructive step', async () => {
    const w = world();
    w.journal.onChange = () => {
      w.journal.failNextWrite = new Error('ENOSPC: no space left on device');
      w.journal.onChange = undefined;
    };
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'error', release: 'abandoned' });
    expect(result.reason).toContain('ENOSPC');
    expect(w.runtime.mutations()).toEqual([`pull:${NEW_IMAGE}`]);
    expect(w.readiness.status('web')).toBe(200);
  });

  it('a failed pull ends the update before asking for a lease', async () => {
    const w = world();
    w.runtime.failNext('pull', new Error('manifest unknown'));
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'error', release: 'none', runningDigest: OLD_DIGEST });
    expect(result.reason).toBe(`pull of ${NEW_IMAGE} failed: manifest unknown`);
    expect(w.coordinator.calls).toEqual([]);
  });

  it('a failed pull under the lease (prePull off) releases it as abandoned', async () => {
    const w = world({ service: { prePull: false } });
    w.runtime.failNext('pull', new Error('manifest unknown'));
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'error', release: 'abandoned' });
    expect(w.readiness.events).toEqual([]);
  });

  it('refuses to start when a <name>-baton-old container is left over, before asking for a lease', async () => {
    const w = world();
    w.runtime.addContainer({ name: 'web-baton-old', service: 'web', digest: OLD_DIGEST, running: false });
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'error', release: 'none' });
    expect(w.coordinator.calls).toEqual([]);
  });

  it('reports a missing service container as an error', async () => {
    const w = world();
    await w.runtime.stop('web', 1);
    await w.runtime.remove('web');
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'error', runningDigest: null });
    expect(w.coordinator.calls).toEqual([]);
  });
});
