import Database from 'better-sqlite3';
import type { BatonEvent } from '../../shared/api/v1.js';
import { BatonError } from '../../shared/errors.js';
import { silentLogger, type Logger } from '../../shared/logger.js';
import type { Change, GroupState, LeaseRecord, NodeRecord } from '../state/model.js';
import { InvalidBatchError, validateBatch } from './batch.js';
import { migrate, migrations, schemaVersion } from './migrations.js';
import {
  drainFromRow,
  drainToRow,
  eventFromRow,
  eventToRow,
  groupFromRow,
  groupToRow,
  heartbeatToRow,
  leaseFromRow,
  leaseToRow,
  nodeFromRow,
  nodeToRow,
  rolloutFromRow,
  rolloutToRow,
  type EventRow,
} from './sqlite-rows.js';
import { prepareStatements, type Statements } from './sqlite-statements.js';
import { StoreConflictError, type EventQuery, type Store } from './store.js';
import { StoreUnwritableError, writeFailureOf, type StoreWritability } from './write-failure.js';

export interface SqliteStoreOptions {
  logger?: Logger;
  /** How long a statement waits for another process's lock before failing with SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

export type SynchronousMode = 'off' | 'normal' | 'full' | 'extra';

/** The connection settings as SQLite reports them back. */
export interface SqliteSettings {
  journalMode: string;
  synchronous: SynchronousMode;
  foreignKeys: boolean;
  busyTimeoutMs: number;
}

const defaultBusyTimeoutMs = 5_000;
const synchronousModes: readonly SynchronousMode[] = ['off', 'normal', 'full', 'extra'];

/** The database cannot be used the way Baton needs it (e.g. a file system without WAL support). */
export class StoreSetupError extends BatonError {
  constructor(message: string) {
    super('STORE_SETUP', message);
  }
}

/**
 * Opens (creating if needed) the coordinator's database at `path`, migrates it and commits one
 * write to prove it can. Throws SchemaTooNewError if a newer Baton has written it, and
 * StoreUnwritableError if it cannot be written (a read-only file or mount, a full disk).
 */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): SqliteStore {
  const logger = options.logger ?? silentLogger();
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (error) {
    throw unwritable(path, error);
  }
  try {
    configureConnection(db, options.busyTimeoutMs ?? defaultBusyTimeoutMs);
    const result = migrate(db, migrations, logger);
    commitProbe(db);
    logger.debug({ path, schemaVersion: result.toVersion }, 'opened store');
    return new SqliteStore(db, logger);
  } catch (error) {
    db.close();
    throw unwritable(path, error);
  }
}

function unwritable(path: string, error: unknown): unknown {
  const reason = writeFailureOf(error);
  return reason === undefined ? error : new StoreUnwritableError(path, reason, { cause: error });
}

/**
 * Commits one small write: the schema version into the header's user_version (which nothing
 * else reads). SQLite opens a file it may not write read-only without a word, and in WAL mode a
 * write that is rolled back never reaches the disk, so only a commit proves the store can commit.
 */
function commitProbe(db: Database.Database): void {
  db.pragma(`user_version = ${schemaVersion(db)}`);
}

function configureConnection(db: Database.Database, busyTimeoutMs: number): void {
  // First, so that switching to WAL waits for another process's lock instead of failing.
  db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(busyTimeoutMs))}`);
  db.pragma('foreign_keys = ON');
  const journalMode = db.pragma('journal_mode = WAL', { simple: true });
  if (journalMode !== 'wal' && !db.memory) {
    throw new StoreSetupError(`database ${db.name} cannot use WAL mode (journal_mode is ${String(journalMode)})`);
  }
  // FULL: in WAL mode, NORMAL may lose the last commits on power loss; a granted lease must not be.
  db.pragma('synchronous = FULL');
}

export class SqliteStore implements Store {
  private readonly statements: Statements;
  private readonly commitBatch: (group: string, expectedVersion: number, changes: Change[]) => BatonEvent[];
  private readonly updateHeartbeats: (nodes: NodeRecord[]) => void;
  private readonly readGroup: (group: string) => GroupState | undefined;
  /** Why the last write failed, if it failed for want of a writable database; cleared by the next write that commits. */
  private writeFailure: string | undefined;

  /** Use openSqliteStore: it configures and migrates the connection first. */
  constructor(
    private readonly db: Database.Database,
    private readonly logger: Logger,
  ) {
    this.statements = prepareStatements(db);
    const commitBatch = db.transaction(this.applyBatch.bind(this));
    this.commitBatch = (...args) => commitBatch.immediate(...args);
    const updateHeartbeats = db.transaction(this.applyHeartbeats.bind(this));
    this.updateHeartbeats = (nodes) => updateHeartbeats.immediate(nodes);
    // A read transaction: every table is read from one snapshot, even with another writer.
    const readGroup = db.transaction(this.selectGroupState.bind(this));
    this.readGroup = (group) => readGroup.deferred(group);
  }

  async listGroups(): Promise<string[]> {
    return this.statements.groupNames.all();
  }

  async loadGroup(group: string): Promise<GroupState | undefined> {
    return this.readGroup(group);
  }

  async commit(group: string, expectedVersion: number, changes: Change[]): Promise<BatonEvent[]> {
    validateBatch(group, expectedVersion, changes);
    return this.tracked(() => this.commitBatch(group, expectedVersion, changes));
  }

  /**
   * Updates the soft columns of nodes that still exist, in one transaction whose commit
   * skips the fsync (synchronous=NORMAL): heartbeats come back within seconds, so losing the
   * last batch to a power cut costs nothing. In WAL mode this cannot corrupt the database,
   * and the next FULL commit syncs these frames along with its own.
   */
  async saveHeartbeats(nodes: NodeRecord[]): Promise<void> {
    if (nodes.length === 0) return;
    this.statements.relaxSync.run();
    try {
      this.tracked(() => this.updateHeartbeats(nodes));
    } finally {
      this.statements.restoreSync.run();
    }
  }

  async readEvents(query: EventQuery): Promise<BatonEvent[]> {
    const { limit } = query;
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError(`event limit must be a whole number, got ${limit}`);
    return this.selectEvents(query).map(eventFromRow);
  }

  /** The lease with this id, ended or not; undefined if it never existed. */
  async findLease(leaseId: string): Promise<LeaseRecord | undefined> {
    const row = this.statements.selectLease.get(leaseId);
    return row === undefined ? undefined : leaseFromRow(row);
  }

  /**
   * Whether the store can commit: as the last write found it, so this costs nothing while writes
   * succeed; after a write failed for want of a writable database, one small commit tells whether
   * it still cannot (the disk was freed, the mount made writable again).
   */
  async writable(): Promise<StoreWritability> {
    if (this.writeFailure === undefined) return { ok: true };
    try {
      this.tracked(() => commitProbe(this.db));
    } catch {
      // tracked() recorded why; the answer below says it.
    }
    return this.writeFailure === undefined ? { ok: true } : { ok: false, reason: this.writeFailure };
  }

  /** Checkpoints the WAL into the main file and closes; closing twice is harmless. */
  async close(): Promise<void> {
    if (!this.db.open) return;
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (error) {
      // Every commit is already durable in the WAL; the next open checkpoints it.
      this.logger.warn({ err: error }, 'store checkpoint before close failed');
    }
    this.db.close();
  }

  settings(): SqliteSettings {
    const synchronous = Number(this.db.pragma('synchronous', { simple: true }));
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: synchronousModes[synchronous] ?? 'off',
      foreignKeys: Number(this.db.pragma('foreign_keys', { simple: true })) === 1,
      busyTimeoutMs: Number(this.db.pragma('busy_timeout', { simple: true })),
    };
  }

  /** Runs a write, remembering whether it failed because the database cannot be written. */
  private tracked<T>(write: () => T): T {
    try {
      const result = write();
      if (this.writeFailure !== undefined) this.logger.info({ previously: this.writeFailure }, 'store commits again');
      this.writeFailure = undefined;
      return result;
    } catch (error) {
      const reason = writeFailureOf(error);
      if (reason !== undefined && this.writeFailure === undefined) this.logger.error({ reason }, 'store cannot commit');
      if (reason !== undefined) this.writeFailure = reason;
      throw error;
    }
  }

  private applyBatch(group: string, expectedVersion: number, changes: Change[]): BatonEvent[] {
    const storedVersion = this.statements.groupVersion.get(group) ?? 0;
    if (storedVersion !== expectedVersion) throw new StoreConflictError(group, expectedVersion);
    const events: BatonEvent[] = [];
    for (const change of changes) {
      const event = this.applyChange(group, change);
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  private applyChange(group: string, change: Change): BatonEvent | undefined {
    const s = this.statements;
    switch (change.kind) {
      case 'put-group':
        s.upsertGroup.run(groupToRow(change.group));
        return undefined;
      case 'put-node':
        s.upsertNode.run(nodeToRow(change.node));
        return undefined;
      case 'heartbeat':
        s.upsertHeartbeat.run(nodeToRow(change.node));
        return undefined;
      case 'delete-node':
        s.deleteNode.run(change.group, change.nodeId);
        return undefined;
      case 'put-rollout': {
        const result = s.upsertRollout.run(rolloutToRow(change.rollout));
        this.expectOwnRecord(group, 'rollout', change.rollout.rolloutId, result);
        return undefined;
      }
      case 'put-lease': {
        const result = s.upsertLease.run(leaseToRow(change.lease));
        this.expectOwnRecord(group, 'lease', change.lease.leaseId, result);
        return undefined;
      }
      case 'put-drain': {
        const result = s.upsertDrain.run(drainToRow(change.drain));
        this.expectOwnRecord(group, 'drain', change.drain.drainId, result);
        return undefined;
      }
      case 'append-event': {
        const row = eventToRow(change.event);
        const seq = s.insertEvent.get(row);
        if (seq === undefined) throw new Error('event insert returned no seq');
        return eventFromRow({ seq, ...row });
      }
    }
  }

  /** An upsert that changed nothing hit a row of the same id in another group. */
  private expectOwnRecord(group: string, kind: string, id: string, result: Database.RunResult): void {
    if (result.changes === 0) throw new InvalidBatchError(group, `${kind} ${id} belongs to another group`);
  }

  private applyHeartbeats(nodes: NodeRecord[]): void {
    for (const node of nodes) this.statements.updateHeartbeat.run(heartbeatToRow(node));
  }

  private selectGroupState(group: string): GroupState | undefined {
    const s = this.statements;
    const groupRow = s.selectGroup.get(group);
    if (groupRow === undefined) return undefined;
    const nodes = s.selectNodes.all(group).map(nodeFromRow);
    const leases = s.selectActiveLeases.all(group).map(leaseFromRow);
    const drains = s.selectActiveDrains.all(group).map(drainFromRow);
    return {
      group: groupFromRow(groupRow),
      nodes: new Map(nodes.map((node) => [node.nodeId, node])),
      rollouts: s.selectRollouts.all(group).map(rolloutFromRow),
      activeLeases: new Map(leases.map((lease) => [lease.leaseId, lease])),
      activeDrains: new Map(drains.map((drain) => [drain.nodeId, drain])),
    };
  }

  private selectEvents(query: EventQuery): EventRow[] {
    const s = this.statements;
    const filter = { after: query.afterSeq ?? 0, limit: query.limit };
    if (query.group === undefined) {
      return (query.newestFirst ? s.eventsNewestFirst : s.eventsOldestFirst).all(filter);
    }
    const byGroup = { ...filter, group: query.group };
    return (query.newestFirst ? s.groupEventsNewestFirst : s.groupEventsOldestFirst).all(byGroup);
  }
}
