import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nodeHealthSchema, rolloutCauseSchema, rolloutStateSchema, updateStepSchema } from '../../shared/api/v1.js';
import type { Change, DrainEnd, LeaseEnd, NodeRecord } from '../state/model.js';
import { latestVersion, migrate, migrations, SchemaTooNewError, schemaVersion, type Migration } from './migrations.js';
import { openSqliteStore, type SqliteStore } from './sqlite.js';
import { describeStoreContract } from './testing/store.contract.js';
import {
  appendEvent,
  digest,
  drainRecord,
  eventRecord,
  groupRecord,
  leaseRecord,
  nodeRecord,
  putDrain,
  putGroup,
  putLease,
  putNode,
  putRollout,
  rolloutRecord,
  t0,
} from './testing/store.fixtures.js';

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
const sick = 'sick' as NodeRecord['health'];

async function makeTempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'baton-store-'));
}

describeStoreContract('sqlite', async () => {
  const dir = await makeTempDir();
  const path = join(dir, 'baton.db');
  let current = openSqliteStore(path);
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = openSqliteStore(path);
      return current;
    },
    cleanup: async () => {
      await current.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteStore', () => {
  let dir: string;
  let path: string;
  let store: SqliteStore | undefined;

  beforeEach(async () => {
    dir = await makeTempDir();
    path = join(dir, 'baton.db');
  });

  afterEach(async () => {
    await store?.close();
    store = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  function open(): SqliteStore {
    store = openSqliteStore(path);
    return store;
  }

  /** A second, raw connection to the same file, for what the Store API does not expose. */
  function withRawConnection<T>(use: (db: Database.Database) => T): T {
    const db = new Database(path);
    try {
      return use(db);
    } finally {
      db.close();
    }
  }

  describe('connection settings', () => {
    it('runs in WAL mode with synchronous=FULL, foreign keys and a busy timeout', () => {
      expect(open().settings()).toEqual({
        journalMode: 'wal',
        synchronous: 'full',
        foreignKeys: true,
        busyTimeoutMs: 5_000,
      });
      // WAL is a property of the file, so every later connection gets it too.
      expect(withRawConnection((db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');
    });

    it('is back to synchronous=FULL after saving heartbeats, even when saving fails', async () => {
      const s = open();
      await s.commit('web', 0, [putGroup(groupRecord('web', 1)), putNode(nodeRecord('web', 'node-1'))]);
      await s.saveHeartbeats([nodeRecord('web', 'node-1', { lastHeartbeatMs: t0 + 1 })]);
      expect(s.settings().synchronous).toBe('full');

      const invalid = nodeRecord('web', 'node-1', { health: sick });
      await expect(s.saveHeartbeats([invalid])).rejects.toThrow(/CHECK constraint/);
      expect(s.settings().synchronous).toBe('full');
    });

    it('also opens in memory, for tests that need no file', async () => {
      const memory = openSqliteStore(':memory:');
      try {
        await memory.commit('web', 0, [putGroup(groupRecord('web', 1))]);
        expect(await memory.listGroups()).toEqual(['web']);
      } finally {
        await memory.close();
      }
    });

    it('closes twice without error', async () => {
      const s = open();
      await s.close();
      await s.close();
    });
  });

  describe('migrations', () => {
    it('applies each migration once, however often the database is opened', async () => {
      for (let round = 0; round < 3; round += 1) await open().close();
      const applied = withRawConnection((db) =>
        db.prepare<[], { version: number; name: string }>('SELECT version, name FROM schema_migrations').all(),
      );
      expect(applied).toEqual(migrations.map(({ version, name }) => ({ version, name })));
      const again = withRawConnection((db) => migrate(db));
      const latest = latestVersion(migrations);
      expect(again).toEqual({ fromVersion: latest, toVersion: latest, applied: [] });
    });

    it('applies each migration in its own transaction', () => {
      const first: Migration = { version: 1, name: 'first', sql: 'CREATE TABLE first (id INTEGER)' };
      const broken: Migration = {
        version: 2,
        name: 'broken',
        sql: 'CREATE TABLE second (id INTEGER); INSERT INTO missing VALUES (1);',
      };
      const fixed: Migration = { ...broken, sql: 'CREATE TABLE second (id INTEGER)' };
      withRawConnection((db) => {
        const tables = (): unknown[] =>
          db.prepare("SELECT name FROM sqlite_master WHERE name IN ('first', 'second') ORDER BY name").pluck().all();
        expect(() => migrate(db, [first, broken])).toThrow(/no such table: missing/);
        expect(schemaVersion(db)).toBe(1);
        expect(tables()).toEqual(['first']);
        expect(migrate(db, [first, fixed]).applied).toEqual([fixed]);
        expect(tables()).toEqual(['first', 'second']);
      });
    });

    it('2, rollouts by push: keeps every rollout, numbers them per group, and takes completion times from the log', async () => {
      const [initial] = migrations;
      withRawConnection((db) => {
        db.pragma('foreign_keys = ON');
        migrate(db, [initial!]);
        db.exec(`
          INSERT INTO groups VALUES ('web', 0, 1, 3);
          INSERT INTO rollouts VALUES ('r-a', 'web', '${digest('a')}', 'app:1', 'superseded', ${t0}, ${t0 + 50}, NULL, NULL);
          INSERT INTO rollouts VALUES ('r-b', 'web', '${digest('b')}', 'app:1', 'completed', ${t0 + 60}, ${t0 + 90}, NULL, NULL);
          INSERT INTO groups VALUES ('api', 0, 0, 1);
          INSERT INTO rollouts VALUES ('r-c', 'api', '${digest('a')}', NULL, 'halted', ${t0 + 5}, ${t0 + 6}, 'node-9', 'boom');
          INSERT INTO leases VALUES ('l-1', 'web', 'node-1', 'r-b', '${digest('b')}', 1, ${t0 + 61}, ${t0 + 91}, ${t0 + 80}, 'updated');
          INSERT INTO events (at_ms, type, group_name, digest) VALUES (${t0 + 40}, 'rollout-completed', 'web', '${digest('a')}');
        `);
      });
      const s = open();
      const web = await s.loadGroup('web');
      expect(web?.rollouts.map((r) => [r.rolloutId, r.seq, r.cause, r.completedAtMs, r.rolledBackFrom])).toEqual([
        ['r-a', 1, 'push', t0 + 40, null],
        ['r-b', 2, 'push', t0 + 90, null],
      ]);
      expect((await s.loadGroup('api'))?.rollouts).toEqual([
        rolloutRecord('api', 'r-c', {
          seq: 1,
          targetDigest: digest('a'),
          image: null,
          state: 'halted',
          openedAtMs: t0 + 5,
          endedAtMs: t0 + 6,
          haltedByNodeId: 'node-9',
          haltReason: 'boom',
        }),
      ]);
      expect((await s.findLease('l-1'))?.rolloutId).toBe('r-b');
      await s.close();
      store = undefined;
      withRawConnection((db) => {
        expect(db.pragma('foreign_key_check')).toEqual([]);
        expect(db.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(latestVersion(migrations));
      });
    });

    it('3, operator drains: a database at version 2 keeps everything and has no drains', async () => {
      withRawConnection((db) => {
        db.pragma('foreign_keys = ON');
        migrate(db, migrations.slice(0, 2));
        db.exec(`
          INSERT INTO groups VALUES ('web', 0, 1, 3);
          INSERT INTO nodes VALUES ('web', 'node-1', 'h', 'app:1', NULL, 'healthy', 'idle', '0.1.0', ${t0}, ${t0});
        `);
      });
      const s = open();
      const web = await s.loadGroup('web');
      expect([...(web?.nodes.keys() ?? [])]).toEqual(['node-1']);
      expect(web?.activeDrains).toEqual(new Map());
      await s.commit('web', 3, [putGroup(groupRecord('web', 4, { lastFencingToken: 1 })), putDrain(drainRecord('web', 'd-1', { nodeId: 'node-1' }))]);
      expect((await s.loadGroup('web'))?.activeDrains.get('node-1')?.drainId).toBe('d-1');
    });

    it('refuses a migration list that is not in ascending order', () => {
      const list: Migration[] = [
        { version: 2, name: 'two', sql: 'SELECT 1' },
        { version: 2, name: 'two again', sql: 'SELECT 1' },
      ];
      withRawConnection((db) => expect(() => migrate(db, list)).toThrow(/not above 2/));
    });

    it('refuses to open a database written by a newer schema', async () => {
      await open().close();
      store = undefined;
      const newer = latestVersion(migrations) + 1;
      withRawConnection((db) => {
        db.prepare("INSERT INTO schema_migrations (version, name) VALUES (?, 'future')").run(newer);
      });

      const opening = (): SqliteStore => openSqliteStore(path);
      expect(opening).toThrow(SchemaTooNewError);
      const known = latestVersion(migrations);
      expect(opening).toThrow(`schema version ${newer}, but this Baton knows versions up to ${known}`);
    });
  });

  describe('schema constraints', () => {
    async function seedWeb(s: SqliteStore): Promise<void> {
      await s.commit('web', 0, [
        putGroup(groupRecord('web', 1, { lastFencingToken: 5 })),
        putNode(nodeRecord('web', 'node-1')),
        putRollout(rolloutRecord('web', 'rollout-1')),
        putLease(leaseRecord('web', 'lease-1', { rolloutId: 'rollout-1' })),
        appendEvent(eventRecord('web')),
      ]);
    }

    it('keeps the events table append-only', async () => {
      await seedWeb(open());
      withRawConnection((db) => {
        expect(() => db.prepare("UPDATE events SET message = 'rewritten'").run()).toThrow(/append-only/);
        expect(() => db.prepare('DELETE FROM events').run()).toThrow(/append-only/);
        expect(db.prepare('SELECT count(*) FROM events').pluck().get()).toBe(1);
      });
    });

    it('accepts every value of the API enums', async () => {
      const s = open();
      const healths = nodeHealthSchema.options;
      const steps = updateStepSchema.options;
      const nodes = steps.map((step, index) =>
        nodeRecord('web', `node-${index}`, { step, health: healths[index % healths.length]! }),
      );
      const causes = rolloutCauseSchema.options;
      const rollouts = rolloutStateSchema.options.map((state, index) =>
        rolloutRecord('web', `rollout-${index}`, {
          state,
          seq: index + 1,
          cause: causes[index % causes.length]!,
          targetDigest: digest(index.toString(16)),
        }),
      );
      const ends: LeaseEnd[] = ['updated', 'failed', 'abandoned', 'expired', 'forgotten'];
      const leases = ends.map((endedAs, index) =>
        leaseRecord('web', `lease-${index}`, {
          endedAs,
          endedAtMs: t0,
          fencingToken: index + 1,
          rolloutId: 'rollout-0',
        }),
      );
      await s.commit('web', 0, [
        putGroup(groupRecord('web', 1, { lastFencingToken: ends.length })),
        ...nodes.map(putNode),
        ...rollouts.map(putRollout),
        ...leases.map(putLease),
      ]);
      const state = await s.loadGroup('web');
      expect([...(state?.nodes.values() ?? [])].sort((a, b) => a.nodeId.localeCompare(b.nodeId))).toEqual(
        [...nodes].sort((a, b) => a.nodeId.localeCompare(b.nodeId)),
      );
      expect(state?.rollouts).toEqual(rollouts);
      for (const lease of leases) expect(await s.findLease(lease.leaseId)).toEqual(lease);
      const drainEnds: DrainEnd[] = ['undrained', 'forgotten'];
      await s.commit('web', 1, [
        putGroup(groupRecord('web', 2, { lastFencingToken: ends.length })),
        ...drainEnds.map((endedAs, index) => putDrain(drainRecord('web', `drain-${index}`, { endedAs, endedAtMs: t0 }))),
      ]);
      expect((await s.loadGroup('web'))?.activeDrains.size).toBe(0);
    });

    const refused: [string, Change[]][] = [
      ['a health value outside the enum', [putNode(nodeRecord('web', 'node-2', { health: sick }))]],
      ['a fencing token that goes backwards', []],
      ['a lease ended without saying how', [putLease(leaseRecord('web', 'lease-1', { endedAtMs: t0 }))]],
      ['a lease of an unknown rollout', [putLease(leaseRecord('web', 'lease-2', { fencingToken: 6, rolloutId: 'nope' }))]],
      ['a fractional timestamp', [putNode(nodeRecord('web', 'node-2', { lastHeartbeatMs: t0 + 0.5 }))]],
      ['a drain ended without saying how', [putDrain(drainRecord('web', 'drain-1', { endedAtMs: t0 }))]],
      ['a drain ending outside the enum', [putDrain(drainRecord('web', 'drain-1', { endedAtMs: t0, endedAs: 'expired' as DrainEnd }))]],
      ['two drains of one node at once', [putDrain(drainRecord('web', 'drain-1')), putDrain(drainRecord('web', 'drain-2'))]],
    ];

    it.each(refused)('refuses %s and writes nothing', async (label, changes) => {
      const s = open();
      await seedWeb(s);
      const before = await s.loadGroup('web');
      const lastFencingToken = label.includes('backwards') ? 4 : 6;
      const batch = [putGroup(groupRecord('web', 2, { lastFencingToken })), ...changes];
      await expect(s.commit('web', 1, batch)).rejects.toThrow();
      expect(await s.loadGroup('web')).toEqual(before);
    });

    it('refuses records of a group that was never put', async () => {
      const s = open();
      await expect(s.commit('web', 0, [putNode(nodeRecord('web', 'node-1'))])).rejects.toThrow(/FOREIGN KEY/);
      expect(await s.listGroups()).toEqual([]);
    });

    it('accepts the changes of a batch in any order', async () => {
      const s = open();
      await s.commit('web', 0, [
        putLease(leaseRecord('web', 'lease-1', { rolloutId: 'rollout-1' })),
        putNode(nodeRecord('web', 'node-1')),
        putRollout(rolloutRecord('web', 'rollout-1')),
        putGroup(groupRecord('web', 1, { lastFencingToken: 1 })),
      ]);
      expect((await s.loadGroup('web'))?.activeLeases.size).toBe(1);
    });
  });

  describe('kill -9', () => {
    const crashGroup = 'crash';

    /** Runs the crash writer until it has acknowledged `acks` commits, then SIGKILLs it. */
    function runWriterAndKill(acks: number): Promise<number[]> {
      const viteNode = join(projectRoot, 'node_modules', 'vite-node', 'vite-node.mjs');
      const fixture = join(projectRoot, 'coordinator', 'store', 'testing', 'crash-writer.fixture.ts');
      const child = spawn(process.execPath, [viteNode, fixture, '--', path], {
        cwd: projectRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      let errors = '';
      let killed = false;
      const acknowledged = (): number[] =>
        output
          .split('\n')
          .slice(0, -1) // the last piece is empty or a line the child did not finish
          .map(Number);
      child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (!killed && acknowledged().length >= acks) killed = child.kill('SIGKILL');
      });
      return new Promise((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (_code, signal) => {
          if (signal === 'SIGKILL') resolve(acknowledged());
          else reject(new Error(`crash writer ended on its own after ${acknowledged().length} acks:\n${errors}`));
        });
      });
    }

    it('loses no acknowledged commit and leaves an intact database', async () => {
      const acknowledged = [...(await runWriterAndKill(150)), ...(await runWriterAndKill(300))];
      expect(acknowledged.length).toBeGreaterThanOrEqual(450);

      const s = open();
      const events = await s.readEvents({ limit: 1_000_000, group: crashGroup });
      const stored = new Set(events.map((event) => event.seq));
      expect(acknowledged.filter((seq) => !stored.has(seq))).toEqual([]);
      // Each commit bumps the version and appends one event: a torn batch would break the tie.
      expect((await s.loadGroup(crashGroup))?.group.version).toBe(events.length);
      expect(events.map((event) => event.fencingToken)).toEqual(events.map((_event, index) => index + 1));
      await s.close();

      withRawConnection((db) => {
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        expect(db.pragma('foreign_key_check')).toEqual([]);
      });
    });
  });
});
