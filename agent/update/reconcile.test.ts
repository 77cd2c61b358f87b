import { describe, expect, it } from 'vitest';
import type { UpdateStep } from '../../shared/api/v1.js';
import { createFakeWorld, NEW_DIGEST, OLD_DIGEST, settle } from './testing/fakes.js';
import { reconcile } from './reconcile.js';
import type { JournalEntry } from './state-file.js';

const NEW_IMAGE = `registry.test/app@${NEW_DIGEST}`;

/** A node as a crash left it: `web` on OLD_DIGEST, then the given changes. */
function crashed() {
  const w = createFakeWorld({ imagePresent: true });
  const previous = w.runtime.list()[0];
  if (previous === undefined) throw new Error('no container');
  w.coordinator.adopt('lease-7', 7);
  const entry = (step: UpdateStep, extra: Partial<JournalEntry> = {}): JournalEntry => ({
    service: 'web',
    group: 'web',
    targetDigest: NEW_DIGEST,
    targetImage: NEW_IMAGE,
    previousDigest: OLD_DIGEST,
    previousContainerId: previous.id,
    oldContainerName: 'web-baton-old',
    leaseId: 'lease-7',
    fencingToken: 7,
    step,
    startedAtMs: 0,
    updatedAtMs: 0,
    ...extra,
  });
  /** The old container stopped and renamed, as the stop step leaves it. */
  const stopAndRename = async () => {
    await w.runtime.stop('web', 10);
    await w.runtime.rename('web', 'web-baton-old');
  };
  const createNew = async (start = true) => {
    await w.runtime.create({ name: 'web', env: {}, ports: [], volumes: [], labels: {}, restartPolicy: 'no', networkMode: 'host', stopTimeoutSeconds: 7 }, 'web', NEW_IMAGE, NEW_DIGEST);
    if (start) await w.runtime.start('web');
  };
  const run = async (journalEntry: JournalEntry | undefined) => {
    if (journalEntry) await w.journal.write('web', journalEntry);
    w.runtime.calls.length = 0;
    return settle(w.clock, reconcile(w.deps, w.service, journalEntry));
  };
  const containers = () => w.runtime.list().map((c) => ({ name: c.name, digest: c.digest, running: c.running }));
  return { ...w, previous, entry, stopAndRename, createNew, run, containers };
}

describe('reconcile', () => {
  it('nothing half done: leaves a running container alone and puts readiness to 200 after one passing check', async () => {
    const w = crashed();
    const result = await w.run(undefined);
    expect(result).toMatchObject({ action: 'none', actions: [], digest: OLD_DIGEST, healthy: true, release: 'none' });
    expect(w.runtime.mutations()).toEqual([]);
    expect(w.readiness.status('web')).toBe(200);
    expect(w.steps).toEqual(['reconcile', 'idle']);
    expect(w.lines.filter((l) => l.step === 'reconcile')).toEqual([
      // One check, at once: not the 3 passes + 5 s minHealthyMs a new container needs (an agent
      // restart must not take a serving node out of the load balancer).
      expect.objectContaining({ node: 'node-1', service: 'web', digest: OLD_DIGEST, outcome: 'none', durationMs: 0 }),
    ]);
    expect(w.healthProbe.calls).toHaveLength(1);
  });

  it('nothing half done but the running container fails its check: the full rules apply, and it is not ready', async () => {
    const w = crashed();
    w.runtime.setImageBehaviour(OLD_DIGEST, { healthy: false });
    const result = await w.run(undefined);
    expect(result).toMatchObject({ action: 'none', healthy: false });
    expect(w.readiness.status('web')).toBe(503);
  });

  it('starts a stopped container when nothing else is left', async () => {
    const w = crashed();
    await w.runtime.stop('web', 10);
    const result = await w.run(undefined);
    expect(result).toMatchObject({ action: 'started', digest: OLD_DIGEST, healthy: true });
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
  });

  it('old renamed and no new container: renames it back, starts it, releases abandoned', async () => {
    const w = crashed();
    await w.stopAndRename();
    const result = await w.run(w.entry('stop'));
    expect(result).toMatchObject({ action: 'restored-previous', digest: OLD_DIGEST, healthy: true, release: 'abandoned' });
    expect(w.runtime.mutations()).toEqual(['rename:web-baton-old:web', 'start:web']);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
    expect(w.coordinator.releases).toEqual([expect.objectContaining({ leaseId: 'lease-7', fencingToken: 7, outcome: 'abandoned' })]);
    expect(await w.journal.read('web')).toBeUndefined();
  });

  it('old stopped but not renamed yet: starts it again', async () => {
    const w = crashed();
    await w.runtime.stop('web', 10);
    const result = await w.run(w.entry('stop'));
    expect(result).toMatchObject({ action: 'restored-previous', digest: OLD_DIGEST, release: 'abandoned' });
    expect(w.runtime.mutations()).toEqual(['start:web']);
  });

  it('new container that never passed: removes it and restores the old one, abandoned (a crash is not the image failing)', async () => {
    const w = crashed();
    await w.stopAndRename();
    await w.createNew();
    const result = await w.run(w.entry('health'));
    expect(result).toMatchObject({ action: 'restored-previous', digest: OLD_DIGEST, healthy: true, release: 'abandoned' });
    expect(w.runtime.mutations()).toEqual(['stop:web', 'remove:web', 'rename:web-baton-old:web', 'start:web']);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
  });

  it('a crash during the rollback of a failed image still releases failed, so the rollout halts (I3)', async () => {
    const w = crashed();
    await w.stopAndRename();
    await w.createNew(false);
    const result = await w.run(w.entry('rollback', { failureReason: 'health check failed: boom' }));
    expect(result).toMatchObject({ action: 'restored-previous', digest: OLD_DIGEST, release: 'failed' });
    expect(w.coordinator.releases).toEqual([
      expect.objectContaining({ outcome: 'failed', message: 'health check failed: boom' }),
    ]);
  });

  it('journal says success: keeps the new container, removes the old one, releases updated', async () => {
    const w = crashed();
    await w.stopAndRename();
    await w.createNew();
    const result = await w.run(w.entry('success'));
    expect(result).toMatchObject({ action: 'committed-target', digest: NEW_DIGEST, healthy: true, release: 'updated' });
    expect(w.runtime.mutations()).toEqual(['remove:web-baton-old']);
    expect(w.containers()).toEqual([{ name: 'web', digest: NEW_DIGEST, running: true }]);
  });

  it('journal says success and the old container is already gone: just releases updated', async () => {
    const w = crashed();
    await w.stopAndRename();
    await w.createNew();
    await w.runtime.remove('web-baton-old');
    const result = await w.run(w.entry('success'));
    expect(result).toMatchObject({ action: 'committed-target', digest: NEW_DIGEST, release: 'updated', actions: [] });
  });

  it('no journal but a -baton-old container: a crash mid-update, so it prefers the previous container', async () => {
    const w = crashed();
    await w.stopAndRename();
    await w.createNew();
    const result = await w.run(undefined);
    expect(result).toMatchObject({ action: 'restored-previous', digest: OLD_DIGEST, healthy: true, release: 'none' });
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
    expect(w.coordinator.calls.some((c) => c.op === 'release')).toBe(false);
  });

  it('service container missing and no journal: reports missing for the caller to create', async () => {
    const w = crashed();
    await w.runtime.stop('web', 10);
    await w.runtime.remove('web');
    const result = await w.run(undefined);
    expect(result).toMatchObject({ action: 'missing', digest: null, healthy: false, release: 'none' });
    expect(w.readiness.status('web')).toBe(503);
  });

  it('everything gone mid-update: missing, with the previous digest to create it from (I2)', async () => {
    const w = crashed();
    await w.runtime.stop('web', 10);
    await w.runtime.remove('web');
    const result = await w.run(w.entry('start'));
    expect(result).toMatchObject({ action: 'missing', previousDigest: OLD_DIGEST, release: 'abandoned' });
  });

  it('a lease that already ended is fine: logs and continues', async () => {
    const w = crashed();
    await w.stopAndRename();
    w.coordinator.revoke('lease-7');
    const result = await w.run(w.entry('stop'));
    expect(result).toMatchObject({ action: 'restored-previous', release: 'not-released', healthy: true });
    expect(await w.journal.read('web')).toBeUndefined();
  });

  it('a coordinator outage does not hold reconcile up (I4)', async () => {
    const w = crashed();
    await w.stopAndRename();
    w.coordinator.unavailable = true;
    const result = await w.run(w.entry('stop'));
    expect(result).toMatchObject({ action: 'restored-previous', release: 'not-released', healthy: true });
    expect(w.coordinator.calls.filter((c) => c.op === 'release')).toHaveLength(1);
    // The lease is left to expire: nothing released, yet the node serves and the journal is done.
    expect(w.coordinator.releases).toEqual([]);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
    expect(await w.journal.read('web')).toBeUndefined();
  });

  it('removes stray containers of the service', async () => {
    const w = crashed();
    w.runtime.addContainer({ name: 'web-tmp', service: 'web', digest: NEW_DIGEST });
    w.runtime.addContainer({ name: 'other', service: 'other', digest: NEW_DIGEST });
    const result = await w.run(undefined);
    expect(result.actions).toEqual([expect.stringMatching(/^removed stray container web-tmp/)]);
    expect(w.containers().map((c) => c.name).sort()).toEqual(['other', 'web']);
  });

  it('reports a restored container that is not healthy, with readiness at 503', async () => {
    const w = crashed();
    w.runtime.setImageBehaviour(OLD_DIGEST, { healthy: false });
    await w.stopAndRename();
    const result = await w.run(w.entry('stop'));
    expect(result).toMatchObject({ action: 'restored-previous', digest: OLD_DIGEST, healthy: false });
    expect(result.healthReason).toMatch(/not healthy within/);
    expect(w.readiness.status('web')).toBe(503);
  });

  it('keeps the journal when the engine fails, so the next attempt can finish', async () => {
    const w = crashed();
    await w.stopAndRename();
    w.runtime.failNext('rename', new Error('engine gone'));
    await expect(w.run(w.entry('stop'))).rejects.toThrow('engine gone');
    expect(await w.journal.read('web')).toMatchObject({ step: 'stop' });
    const again = await w.run(w.entry('stop'));
    expect(again).toMatchObject({ action: 'restored-previous', digest: OLD_DIGEST });
  });
});
