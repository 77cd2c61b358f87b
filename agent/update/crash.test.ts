import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../shared/logger.js';
import {
  createFakeWorld,
  FakeCoordinator,
  FakeHealthProbe,
  FakeReadiness,
  FakeRuntime,
  NEW_DIGEST,
  OLD_DIGEST,
  settle,
  type ImageBehaviour,
  type RuntimeSnapshot,
} from './testing/fakes.js';
import { reconcile } from './reconcile.js';
import { type JournalEntry } from './state-file.js';
import { runUpdate } from './updater.js';
import { ManualClock } from '../../shared/testing/clock.js';
import { MemoryUpdateJournal } from './testing/memory-journal.js';

/**
 * I5: kill -9 at any point. Each scenario runs a whole update and snapshots the node (containers and
 * journal) after every step boundary, every runtime change and every journal write; then each
 * snapshot is handed to a fresh agent's reconcile, which must end with exactly one running,
 * healthy container named `web`, on the digest the journal says.
 */

interface Snapshot {
  label: string;
  runtime: RuntimeSnapshot;
  journal: JournalEntry[];
}

type Scenario = 'success' | 'unhealthy image' | 'lease lost during health' | 'shutdown during health' | 'create fails';

async function recordCrashPoints(scenario: Scenario): Promise<{ snapshots: Snapshot[]; behaviours: Map<string, ImageBehaviour> }> {
  const w = createFakeWorld({
    service: {
      health: {
        http: { url: 'http://127.0.0.1:8080/health' },
        intervalMs: 1_000,
        consecutivePasses: 3,
        deadlineMs: 10_000,
        minHealthyMs: 5_000,
      },
    },
  });
  const controller = new AbortController();
  if (scenario === 'unhealthy image') w.runtime.setImageBehaviour(NEW_DIGEST, { healthy: false });
  if (scenario === 'lease lost during health') {
    w.coordinator.ttlMs = 24_000;
    w.coordinator.renewScript.push('ok', 'lost');
    w.runtime.setImageBehaviour(NEW_DIGEST, { healthyAfterMs: 8_000 });
  }
  if (scenario === 'shutdown during health') {
    void w.clock.sleep(12_500).then(() => controller.abort(new Error('shutdown')));
  }
  if (scenario === 'create fails') w.runtime.failNext('create', new Error('no space left'));

  const snapshots: Snapshot[] = [];
  const take = (label: string) => snapshots.push({ label, runtime: w.runtime.snapshot(), journal: w.journal.snapshot() });
  take('before the update');
  const onMutation = w.runtime.onMutation;
  w.runtime.onMutation = (op, args) => {
    onMutation?.(op, args);
    take(`after runtime ${op} ${String(args[0])}`);
  };
  const onChange = w.journal.onChange;
  w.journal.onChange = (op, service) => {
    onChange?.(op, service);
    take(`after journal ${op} ${w.journal.snapshot()[0]?.step ?? ''}`);
  };
  const onStep = w.deps.onStep;
  const deps = {
    ...w.deps,
    onStep: (step: Parameters<typeof onStep>[0]) => {
      onStep(step);
      take(`at step ${step}`);
    },
  };
  await settle(w.clock, runUpdate(deps, w.service, w.target, controller.signal));
  take('after the update');
  return { snapshots, behaviours: new Map(w.runtime.imageBehaviours) };
}

async function reconcileSnapshot(snapshot: Snapshot, behaviours: Map<string, ImageBehaviour>) {
  const clock = new ManualClock(1_000_000);
  const runtime = FakeRuntime.fromSnapshot(clock, snapshot.runtime, behaviours);
  const coordinator = new FakeCoordinator(clock);
  const entry = snapshot.journal[0];
  if (entry) coordinator.adopt(entry.leaseId, entry.fencingToken);
  const readiness = new FakeReadiness(clock);
  const journal = new MemoryUpdateJournal(snapshot.journal);
  const w = createFakeWorld();
  const deps = {
    runtime,
    coordinator,
    readiness,
    healthProbe: FakeHealthProbe.backedBy(clock, runtime, 'web'),
    journal,
    clock,
    logger: silentLogger(),
    nodeId: 'node-1',
  };
  const result = await settle(clock, reconcile(deps, w.service, await journal.read('web')));
  return { result, runtime, coordinator, readiness, journal, entry };
}

function expectedDigest(snapshot: Snapshot): string {
  const entry = snapshot.journal[0];
  if (entry) return entry.step === 'success' ? NEW_DIGEST : OLD_DIGEST;
  const containers = snapshot.runtime.containers;
  if (containers.some((c) => c.name === 'web-baton-old')) return OLD_DIGEST;
  return containers.find((c) => c.name === 'web')?.digest ?? 'none';
}

const scenarios: Scenario[] = ['success', 'unhealthy image', 'lease lost during health', 'shutdown during health', 'create fails'];

describe('crash at any point, then reconcile (I5)', () => {
  it.each(scenarios)('%s: every crash point ends with one healthy container on a digest consistent with the journal', async (scenario) => {
    const { snapshots, behaviours } = await recordCrashPoints(scenario);
    expect(snapshots.length).toBeGreaterThan(10);
    for (const snapshot of snapshots) {
      const { result, runtime, coordinator, readiness, journal, entry } = await reconcileSnapshot(snapshot, behaviours);
      const context = `${scenario} / ${snapshot.label}`;
      const containers = runtime.list();
      expect(containers.map((c) => ({ name: c.name, running: c.running })), context).toEqual([{ name: 'web', running: true }]);
      expect(containers[0]?.digest, context).toBe(expectedDigest(snapshot));
      expect(result.digest, context).toBe(expectedDigest(snapshot));
      expect(result.healthy, context).toBe(true);
      expect(readiness.status('web'), context).toBe(200);
      expect(journal.snapshot(), context).toEqual([]);
      if (entry) {
        const expectedRelease =
          entry.step === 'success' ? 'updated' : entry.step === 'rollback' && entry.failureReason ? 'failed' : 'abandoned';
        expect(result.release, context).toBe(expectedRelease);
        expect(coordinator.releases.map((r) => r.outcome), context).toEqual([expectedRelease]);
      } else {
        // Without a journal the node was never mid-change: exactly as before the update, or as after it.
        const shape = snapshot.runtime.containers.map((c) => `${c.name}:${c.digest ?? ''}:${c.running}`);
        expect([[`web:${OLD_DIGEST}:true`], [`web:${NEW_DIGEST}:true`]], context).toContainEqual(shape);
        expect(result.release, context).toBe('none');
      }
    }
  });

  it('a crash during the rollback of an unhealthy image still halts the rollout', async () => {
    const { snapshots, behaviours } = await recordCrashPoints('unhealthy image');
    const duringRollback = snapshots.filter((s) => s.journal[0]?.step === 'rollback');
    expect(duringRollback.length).toBeGreaterThan(3);
    for (const snapshot of duringRollback) {
      const { coordinator } = await reconcileSnapshot(snapshot, behaviours);
      expect(coordinator.releases[0]?.outcome, snapshot.label).toBe('failed');
    }
  });
});
