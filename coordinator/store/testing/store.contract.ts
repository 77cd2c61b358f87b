import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BatonEvent } from '../../../shared/api/v1.js';
import type { Change, GroupState } from '../../state/model.js';
import { InvalidBatchError } from '../batch.js';
import {
  appendEvent,
  deleteNode,
  digest,
  drainRecord,
  eventRecord,
  groupRecord,
  heartbeat,
  leaseRecord,
  nodeRecord,
  putDrain,
  putGroup,
  putLease,
  putNode,
  putRollout,
  rolloutRecord,
  t0,
} from './store.fixtures.js';
import { StoreConflictError, type Store } from '../store.js';

/**
 * A backend under test. `reopen` closes the current store and opens a new one over the same
 * data; `cleanup` closes whichever store is open and deletes the data.
 */
export interface StoreUnderTest {
  store: Store;
  reopen: () => Promise<Store>;
  cleanup: () => Promise<void>;
}

const allEvents = { limit: 1_000_000 };

interface Snapshot {
  groups: string[];
  states: Record<string, GroupState | undefined>;
  events: BatonEvent[];
}

async function snapshot(store: Store, groups: string[]): Promise<Snapshot> {
  const states: Record<string, GroupState | undefined> = {};
  for (const group of groups) states[group] = await store.loadGroup(group);
  return { groups: (await store.listGroups()).sort(), states, events: await store.readEvents(allEvents) };
}

/** Group `web` at version 1: two nodes, one open rollout, one active lease, one event. */
function seedChanges(group = 'web'): Change[] {
  return [
    putGroup(groupRecord(group, 1, { lastFencingToken: 1 })),
    putNode(nodeRecord(group, 'node-1', { step: 'drain', health: 'draining' })),
    putNode(nodeRecord(group, 'node-2')),
    putRollout(rolloutRecord(group, `${group}-rollout-1`)),
    putLease(leaseRecord(group, `${group}-lease-1`, { rolloutId: `${group}-rollout-1` })),
    appendEvent(eventRecord(group, { type: 'grant', nodeId: 'node-1', leaseId: `${group}-lease-1`, fencingToken: 1 })),
  ];
}

async function seed(store: Store, group = 'web'): Promise<void> {
  await store.commit(group, 0, seedChanges(group));
}

/** A commit that would be valid at `expectedVersion` if the stored version matched. */
function nextBatch(group: string, expectedVersion: number): Change[] {
  return [
    putGroup(groupRecord(group, expectedVersion + 1, { lastFencingToken: 1 })),
    putNode(nodeRecord(group, `node-${expectedVersion + 10}`)),
    appendEvent(eventRecord(group, { type: 'node-joined', nodeId: `node-${expectedVersion + 10}` })),
  ];
}

export function describeStoreContract(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`Store contract: ${name}`, () => {
    let subject: StoreUnderTest;
    let store: Store;

    beforeEach(async () => {
      subject = await makeStore();
      store = subject.store;
    });

    afterEach(async () => {
      await subject.cleanup();
    });

    describe('groups', () => {
      it('knows no group before the first commit', async () => {
        expect(await store.listGroups()).toEqual([]);
        expect(await store.loadGroup('web')).toBeUndefined();
      });

      it('lists every committed group', async () => {
        for (const group of ['web', 'api', 'db']) await seed(store, group);
        expect((await store.listGroups()).sort()).toEqual(['api', 'db', 'web']);
      });
    });

    describe('commit and loadGroup', () => {
      it('round-trips every record type', async () => {
        const group = groupRecord('web', 1, { paused: true, lastFencingToken: 2 });
        const nodes = [
          nodeRecord('web', 'node-1', { currentDigest: null, health: 'starting', step: 'pull' }),
          nodeRecord('web', 'node-2', { health: 'unhealthy', lastHeartbeatMs: t0 + 5, joinedAtMs: t0 - 5 }),
        ];
        const superseded = rolloutRecord('web', 'rollout-0', {
          targetDigest: digest('c'),
          image: null,
          state: 'halted',
          openedAtMs: t0 - 100,
          endedAtMs: t0 - 50,
          haltedByNodeId: 'node-2',
          haltReason: 'health check failed',
        });
        const current = rolloutRecord('web', 'rollout-1', {
          seq: 2,
          cause: 'rollback',
          rolledBackFrom: digest('c'),
          completedAtMs: t0 + 3,
        });
        const active = leaseRecord('web', 'lease-2', { fencingToken: 2, nodeId: 'node-1' });
        const ended = leaseRecord('web', 'lease-1', {
          rolloutId: 'rollout-0',
          targetDigest: digest('c'),
          endedAtMs: t0 - 50,
          endedAs: 'failed',
          nodeId: 'node-2',
        });
        const drained = drainRecord('web', 'drain-2', { nodeId: 'node-2' });
        const undrained = drainRecord('web', 'drain-1', { nodeId: 'node-2', reason: null, endedAtMs: t0 - 10, endedAs: 'undrained' });
        const event = eventRecord('web', {
          type: 'release',
          nodeId: 'node-2',
          digest: digest('c'),
          leaseId: 'lease-1',
          fencingToken: 1,
          reason: 'halted',
          outcome: 'failed',
          message: 'health check failed',
        });

        const events = await store.commit('web', 0, [
          putGroup(group),
          ...nodes.map(putNode),
          putRollout(current),
          putRollout(superseded),
          putLease(active),
          putLease(ended),
          putDrain(undrained),
          putDrain(drained),
          appendEvent(event),
        ]);

        expect(events).toEqual([{ ...event, seq: expect.any(Number) }]);
        expect(await store.loadGroup('web')).toEqual({
          group,
          nodes: new Map(nodes.map((node) => [node.nodeId, node])),
          rollouts: [superseded, current],
          activeLeases: new Map([[active.leaseId, active]]),
          activeDrains: new Map([[drained.nodeId, drained]]),
        });
        expect(await store.findLease('lease-1')).toEqual(ended);
        expect(await store.findLease('lease-2')).toEqual(active);
        expect(await store.findLease('lease-404')).toBeUndefined();
      });

      it('orders rollouts by their seq in the group, and keeps many rollouts of one digest', async () => {
        const third = rolloutRecord('web', 'r-3', { seq: 3, openedAtMs: t0, targetDigest: digest('1') });
        const first = rolloutRecord('web', 'r-1', { seq: 1, openedAtMs: t0 + 10, targetDigest: digest('1') });
        const second = rolloutRecord('web', 'r-2', { seq: 2, openedAtMs: t0, targetDigest: digest('2'), cause: 'rollback', rolledBackFrom: digest('1') });
        await store.commit('web', 0, [putGroup(groupRecord('web', 1)), putRollout(third), putRollout(first)]);
        await store.commit('web', 1, [putGroup(groupRecord('web', 2)), putRollout(second)]);
        const state = await store.loadGroup('web');
        expect(state?.rollouts.map((rollout) => rollout.rolloutId)).toEqual(['r-1', 'r-2', 'r-3']);
        expect(state?.rollouts[1]).toEqual(second);
      });

      it('replaces records on a later commit', async () => {
        await seed(store);
        const group = groupRecord('web', 2, { paused: true, lastFencingToken: 1 });
        const node = nodeRecord('web', 'node-1', { currentDigest: digest('b'), joinedAtMs: t0 + 1 });
        const rollout = rolloutRecord('web', 'web-rollout-1', { state: 'completed', endedAtMs: t0 + 9 });
        const lease = leaseRecord('web', 'web-lease-1', {
          rolloutId: 'web-rollout-1',
          endedAtMs: t0 + 8,
          endedAs: 'updated',
        });
        await store.commit('web', 1, [putGroup(group), putNode(node), putRollout(rollout), putLease(lease)]);

        const state = await store.loadGroup('web');
        expect(state?.group).toEqual(group);
        expect(state?.nodes.get('node-1')).toEqual(node);
        expect(state?.rollouts).toEqual([rollout]);
        expect(state?.activeLeases.size).toBe(0);
        expect(await store.findLease('web-lease-1')).toEqual(lease);
      });

      it('applies a heartbeat change to soft state only, creating the node if it is new', async () => {
        await seed(store);
        const beat = nodeRecord('web', 'node-2', {
          health: 'unhealthy',
          step: 'health',
          currentDigest: digest('b'),
          host: 'moved.example.test',
          image: 'registry.test/app:next',
          agentVersion: '0.2.0',
          lastHeartbeatMs: t0 + 1_000,
          joinedAtMs: t0 + 1_000,
        });
        const newcomer = nodeRecord('web', 'node-3', { joinedAtMs: t0 + 2_000 });
        const nextGroup = groupRecord('web', 2, { lastFencingToken: 1 });
        await store.commit('web', 1, [putGroup(nextGroup), heartbeat(beat), heartbeat(newcomer)]);

        const state = await store.loadGroup('web');
        expect(state?.nodes.get('node-2')).toEqual({ ...beat, joinedAtMs: t0 });
        expect(state?.nodes.get('node-3')).toEqual(newcomer);
      });

      it('deletes a node and keeps the history of its leases', async () => {
        await seed(store);
        const forgotten = leaseRecord('web', 'web-lease-1', {
          rolloutId: 'web-rollout-1',
          endedAtMs: t0 + 5,
          endedAs: 'forgotten',
        });
        await store.commit('web', 1, [
          putGroup(groupRecord('web', 2, { lastFencingToken: 1 })),
          deleteNode('web', 'node-1'),
          putLease(forgotten),
          appendEvent(eventRecord('web', { type: 'node-forgotten', nodeId: 'node-1' })),
        ]);

        const state = await store.loadGroup('web');
        expect([...(state?.nodes.keys() ?? [])]).toEqual(['node-2']);
        expect(state?.activeLeases.size).toBe(0);
        expect(await store.findLease('web-lease-1')).toEqual(forgotten);
      });

      it('ends a drain on a later commit, and a node may be drained again', async () => {
        await seed(store);
        const first = drainRecord('web', 'drain-1');
        await store.commit('web', 1, [putGroup(groupRecord('web', 2, { lastFencingToken: 1 })), putDrain(first)]);
        expect((await store.loadGroup('web'))?.activeDrains).toEqual(new Map([['node-2', first]]));
        const ended = { ...first, endedAtMs: t0 + 5, endedAs: 'undrained' as const };
        const again = drainRecord('web', 'drain-2', { startedAtMs: t0 + 6, reason: null });
        await store.commit('web', 2, [putGroup(groupRecord('web', 3, { lastFencingToken: 1 })), putDrain(ended), putDrain(again)]);
        expect((await store.loadGroup('web'))?.activeDrains).toEqual(new Map([['node-2', again]]));
        const forgotten = { ...again, endedAtMs: t0 + 9, endedAs: 'forgotten' as const };
        await store.commit('web', 3, [putGroup(groupRecord('web', 4, { lastFencingToken: 1 })), deleteNode('web', 'node-2'), putDrain(forgotten)]);
        expect((await store.loadGroup('web'))?.activeDrains.size).toBe(0);
      });

      it('returns the appended events, and only those, with their sequence numbers', async () => {
        expect(await store.commit('web', 0, [putGroup(groupRecord('web', 1))])).toEqual([]);
        const first = eventRecord('web', { type: 'pause', reason: 'operator' });
        const second = eventRecord('web', { type: 'resume', atMs: t0 + 1 });
        const events = await store.commit('web', 1, [
          appendEvent(first),
          putGroup(groupRecord('web', 2)),
          appendEvent(second),
        ]);
        expect(events).toEqual([
          { ...first, seq: expect.any(Number) },
          { ...second, seq: expect.any(Number) },
        ]);
        expect(events[1]!.seq).toBeGreaterThan(events[0]!.seq);
        expect(await store.readEvents(allEvents)).toEqual(events);
      });
    });

    describe('version checks', () => {
      it.each([0, 2, 7])('refuses expectedVersion %i for a group at version 1 and writes nothing', async (wrong) => {
        await seed(store);
        const before = await snapshot(store, ['web']);
        await expect(store.commit('web', wrong, nextBatch('web', wrong))).rejects.toBeInstanceOf(StoreConflictError);
        expect(await snapshot(store, ['web'])).toEqual(before);
      });

      it('refuses a non-zero expectedVersion for a group that does not exist', async () => {
        await expect(store.commit('web', 1, nextBatch('web', 1))).rejects.toBeInstanceOf(StoreConflictError);
        expect(await snapshot(store, ['web'])).toEqual({ groups: [], states: { web: undefined }, events: [] });
      });

      it('lets exactly one of two commits made on the same version win', async () => {
        await seed(store);
        const results = await Promise.allSettled([
          store.commit('web', 1, nextBatch('web', 1)),
          store.commit('web', 1, [
            putGroup(groupRecord('web', 2, { paused: true, lastFencingToken: 1 })),
            appendEvent(eventRecord('web', { type: 'pause' })),
          ]),
        ]);
        const rejected = results.filter((result) => result.status === 'rejected');
        expect(rejected).toHaveLength(1);
        expect((rejected[0] as PromiseRejectedResult).reason).toBeInstanceOf(StoreConflictError);
        const state = await store.loadGroup('web');
        expect(state?.group.version).toBe(2);
        expect(await store.readEvents(allEvents)).toHaveLength(2);
      });

      it('rejects a put-group that does not move the version to expectedVersion + 1', async () => {
        await seed(store);
        const before = await snapshot(store, ['web']);
        for (const version of [1, 3]) {
          const batch = [appendEvent(eventRecord('web')), putGroup(groupRecord('web', version))];
          await expect(store.commit('web', 1, batch)).rejects.toBeInstanceOf(InvalidBatchError);
        }
        expect(await snapshot(store, ['web'])).toEqual(before);
      });

      it('rejects a batch that touches another group', async () => {
        await seed(store, 'web');
        await seed(store, 'api');
        const before = await snapshot(store, ['web', 'api']);
        const intruders: Change[] = [
          putNode(nodeRecord('api', 'node-9')),
          deleteNode('api', 'node-1'),
          heartbeat(nodeRecord('api', 'node-1', { health: 'unhealthy' })),
          putRollout(rolloutRecord('api', 'api-rollout-2', { targetDigest: digest('d') })),
          putLease(leaseRecord('api', 'api-lease-1', { endedAtMs: t0, endedAs: 'expired' })),
          putDrain(drainRecord('api', 'api-drain-1')),
          appendEvent(eventRecord('api')),
          putGroup(groupRecord('api', 2)),
        ];
        for (const intruder of intruders) {
          const batch = [putGroup(groupRecord('web', 2, { lastFencingToken: 1 })), intruder];
          await expect(store.commit('web', 1, batch)).rejects.toBeInstanceOf(InvalidBatchError);
        }
        expect(await snapshot(store, ['web', 'api'])).toEqual(before);
      });

      it('rejects a rollout or lease whose id another group already uses', async () => {
        await seed(store, 'web');
        await seed(store, 'api');
        const before = await snapshot(store, ['web', 'api']);
        const reused: Change[] = [
          putRollout(rolloutRecord('web', 'api-rollout-1', { targetDigest: digest('e') })),
          putLease(leaseRecord('web', 'api-lease-1', { rolloutId: 'web-rollout-1', fencingToken: 7 })),
        ];
        for (const change of reused) {
          const batch = [putGroup(groupRecord('web', 2, { lastFencingToken: 7 })), change];
          await expect(store.commit('web', 1, batch)).rejects.toThrow();
        }
        expect(await snapshot(store, ['web', 'api'])).toEqual(before);
      });
    });

    describe('atomicity', () => {
      const failingChanges: [string, Change][] = [
        ['a lease reusing a fencing token', putLease(leaseRecord('web', 'lease-dup', { rolloutId: 'web-rollout-1' }))],
        ['a second rollout of the same digest', putRollout(rolloutRecord('web', 'rollout-dup'))],
      ];

      it.each(failingChanges)('rolls the whole batch back when %s fails mid-batch', async (_label, failing) => {
        await seed(store);
        const before = await snapshot(store, ['web']);
        const batch: Change[] = [
          putGroup(groupRecord('web', 2, { lastFencingToken: 3 })),
          putNode(nodeRecord('web', 'node-3')),
          deleteNode('web', 'node-2'),
          appendEvent(eventRecord('web', { type: 'node-joined', nodeId: 'node-3' })),
          failing,
          putRollout(rolloutRecord('web', 'rollout-after', { targetDigest: digest('f') })),
          appendEvent(eventRecord('web', { type: 'grant' })),
        ];
        await expect(store.commit('web', 1, batch)).rejects.toThrow();
        expect(await snapshot(store, ['web'])).toEqual(before);

        await store.commit('web', 1, nextBatch('web', 1));
        expect((await store.loadGroup('web'))?.group.version).toBe(2);
      });
    });

    describe('events', () => {
      async function commitEvents(): Promise<BatonEvent[]> {
        await seed(store, 'web');
        await seed(store, 'api');
        await store.commit('web', 1, [
          putGroup(groupRecord('web', 2, { lastFencingToken: 1 })),
          appendEvent(eventRecord('web', { type: 'renew', atMs: t0 + 1 })),
          appendEvent(eventRecord('web', { type: 'release', atMs: t0 + 2, outcome: 'updated' })),
        ]);
        await store.commit('api', 1, [
          putGroup(groupRecord('api', 2, { lastFencingToken: 1 })),
          appendEvent(eventRecord('api', { type: 'halt', reason: 'health check failed' })),
        ]);
        return store.readEvents(allEvents);
      }

      it('numbers events with strictly increasing seq across commits and groups', async () => {
        const events = await commitEvents();
        expect(events.map((event) => [event.group, event.type])).toEqual([
          ['web', 'grant'],
          ['api', 'grant'],
          ['web', 'renew'],
          ['web', 'release'],
          ['api', 'halt'],
        ]);
        events.slice(1).forEach((event, index) => expect(event.seq).toBeGreaterThan(events[index]!.seq));
      });

      it('filters by group and afterSeq, orders, and limits', async () => {
        const events = await commitEvents();
        const web = events.filter((event) => event.group === 'web');
        const seqAfterFirst = events[0]!.seq;

        expect(await store.readEvents({ limit: 2 })).toEqual(events.slice(0, 2));
        expect(await store.readEvents({ limit: 2, newestFirst: true })).toEqual([events[4], events[3]]);
        expect(await store.readEvents({ limit: 10, group: 'web' })).toEqual(web);
        expect(await store.readEvents({ limit: 10, group: 'web', newestFirst: true })).toEqual([...web].reverse());
        expect(await store.readEvents({ limit: 10, afterSeq: seqAfterFirst })).toEqual(events.slice(1));
        expect(await store.readEvents({ limit: 1, group: 'web', afterSeq: seqAfterFirst })).toEqual([web[1]]);
        expect(await store.readEvents({ limit: 10, group: 'web', afterSeq: seqAfterFirst, newestFirst: true })).toEqual(
          [web[2], web[1]],
        );
        expect(await store.readEvents({ limit: 10, afterSeq: events[4]!.seq })).toEqual([]);
        expect(await store.readEvents({ limit: 10, group: 'nope' })).toEqual([]);
        expect(await store.readEvents({ limit: 0 })).toEqual([]);
      });
    });

    describe('heartbeats', () => {
      it('saves soft state and leaves joinedAtMs and the version alone', async () => {
        await seed(store);
        const beat = nodeRecord('web', 'node-1', {
          currentDigest: digest('b'),
          health: 'starting',
          step: 'start',
          host: 'moved.example.test',
          image: 'registry.test/app:next',
          agentVersion: '0.2.0',
          lastHeartbeatMs: t0 + 3_000,
          joinedAtMs: t0 + 3_000,
        });
        await store.saveHeartbeats([beat]);
        await store.saveHeartbeats([]);

        const state = await store.loadGroup('web');
        expect(state?.nodes.get('node-1')).toEqual({ ...beat, joinedAtMs: t0 });
        expect(state?.nodes.get('node-2')).toEqual(nodeRecord('web', 'node-2'));
        expect(state?.group.version).toBe(1);
      });

      it('never brings back a deleted node, nor creates an unknown one', async () => {
        await seed(store);
        const nextGroup = groupRecord('web', 2, { lastFencingToken: 1 });
        await store.commit('web', 1, [putGroup(nextGroup), deleteNode('web', 'node-2')]);
        const before = await snapshot(store, ['web', 'ghosts']);
        await store.saveHeartbeats([
          nodeRecord('web', 'node-2', { lastHeartbeatMs: t0 + 9 }),
          nodeRecord('web', 'node-7'),
          nodeRecord('ghosts', 'node-1'),
        ]);
        expect(await snapshot(store, ['web', 'ghosts'])).toEqual(before);
      });
    });

    describe('durability', () => {
      it('keeps every committed change across close and reopen', async () => {
        await seed(store, 'web');
        await seed(store, 'api');
        await store.commit('web', 1, [...nextBatch('web', 1), putDrain(drainRecord('web', 'drain-1'))]);
        await store.saveHeartbeats([nodeRecord('web', 'node-2', { health: 'unhealthy', lastHeartbeatMs: t0 + 7 })]);
        const before = await snapshot(store, ['web', 'api']);
        expect(before.states.web?.activeDrains.size).toBe(1);

        store = await subject.reopen();
        expect(await snapshot(store, ['web', 'api'])).toEqual(before);
        expect(await store.findLease('web-lease-1')).toEqual(
          leaseRecord('web', 'web-lease-1', { rolloutId: 'web-rollout-1' }),
        );

        const [event] = await store.commit('web', 2, nextBatch('web', 2));
        expect(event!.seq).toBeGreaterThan(before.events.at(-1)!.seq);
      });
    });
  });
}
