import type { Database } from 'better-sqlite3';
import { BatonError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/**
 * The SQLite schema, as an ordered list of migrations. A released migration never changes:
 * databases in the field have already run it. Change the schema by appending a migration.
 * Enum values are spelled out rather than generated from the zod schemas for the same
 * reason; sqlite.test.ts fails when an enum gains a value the CHECK constraints refuse.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const initialSchema = `
CREATE TABLE groups (
  name               TEXT    NOT NULL PRIMARY KEY,
  paused             INTEGER NOT NULL CHECK (paused IN (0, 1)),
  last_fencing_token INTEGER NOT NULL CHECK (last_fencing_token >= 0),
  version            INTEGER NOT NULL CHECK (version >= 1)
) STRICT;

-- A fencing token that went backwards would let a stale lease holder pass for a current one.
CREATE TRIGGER groups_fencing_token_never_decreases
BEFORE UPDATE OF last_fencing_token ON groups
WHEN NEW.last_fencing_token < OLD.last_fencing_token
BEGIN
  SELECT RAISE(ABORT, 'groups.last_fencing_token must never decrease');
END;

-- Foreign keys are deferred so that the changes of one batch may come in any order.
CREATE TABLE nodes (
  group_name        TEXT    NOT NULL REFERENCES groups (name) DEFERRABLE INITIALLY DEFERRED,
  node_id           TEXT    NOT NULL,
  host              TEXT    NOT NULL,
  image             TEXT    NOT NULL,
  current_digest    TEXT,
  health            TEXT    NOT NULL
    CHECK (health IN ('healthy', 'unhealthy', 'starting', 'draining', 'stopped', 'unknown')),
  step              TEXT    NOT NULL
    CHECK (step IN ('idle', 'poll', 'compare', 'pull', 'lease', 'drain', 'stop', 'start', 'health',
                    'success', 'rollback', 'reconcile')),
  agent_version     TEXT    NOT NULL,
  last_heartbeat_ms INTEGER NOT NULL,
  joined_at_ms      INTEGER NOT NULL,
  PRIMARY KEY (group_name, node_id)
) STRICT;

CREATE TABLE rollouts (
  rollout_id        TEXT    NOT NULL PRIMARY KEY,
  group_name        TEXT    NOT NULL REFERENCES groups (name) DEFERRABLE INITIALLY DEFERRED,
  target_digest     TEXT    NOT NULL,
  image             TEXT,
  state             TEXT    NOT NULL
    CHECK (state IN ('in-progress', 'completed', 'halted', 'paused', 'aborted', 'superseded')),
  opened_at_ms      INTEGER NOT NULL,
  ended_at_ms       INTEGER,
  halted_by_node_id TEXT,
  halt_reason       TEXT,
  UNIQUE (group_name, target_digest)
) STRICT;

CREATE TABLE leases (
  lease_id      TEXT    NOT NULL PRIMARY KEY,
  group_name    TEXT    NOT NULL REFERENCES groups (name) DEFERRABLE INITIALLY DEFERRED,
  node_id       TEXT    NOT NULL,
  rollout_id    TEXT    NOT NULL REFERENCES rollouts (rollout_id) DEFERRABLE INITIALLY DEFERRED,
  target_digest TEXT    NOT NULL,
  fencing_token INTEGER NOT NULL CHECK (fencing_token > 0),
  granted_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  ended_at_ms   INTEGER,
  ended_as      TEXT
    CHECK (ended_as IN ('updated', 'failed', 'abandoned', 'expired', 'forgotten')),
  CHECK ((ended_at_ms IS NULL) = (ended_as IS NULL)),
  UNIQUE (group_name, fencing_token)
) STRICT;

CREATE INDEX leases_active_by_group ON leases (group_name) WHERE ended_at_ms IS NULL;

-- No CHECK on type: event types will grow, and this table can never be rebuilt cheaply.
CREATE TABLE events (
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms         INTEGER NOT NULL,
  type          TEXT    NOT NULL CHECK (type <> ''),
  group_name    TEXT    NOT NULL,
  node_id       TEXT,
  digest        TEXT,
  lease_id      TEXT,
  fencing_token INTEGER,
  reason        TEXT,
  outcome       TEXT,
  message       TEXT
) STRICT;

CREATE INDEX events_by_group ON events (group_name, seq);

CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are append-only');
END;
`;

/**
 * Rollouts identified by push, not by digest: a digest may be rolled out many times, so the
 * UNIQUE (group_name, target_digest) goes, and each rollout gets its number in the group (seq),
 * what opened it, when it completed (kept once superseded) and, for a rollback, the digest rolled
 * back from. SQLite cannot drop a constraint, so the table is rebuilt. Leases reference rollouts
 * with deferred foreign keys: the rows are put back in the same transaction, so the references
 * hold again at commit. Under version 1 a digest had one rollout, so its completion time is the
 * time of the group's rollout-completed event for that digest.
 */
const rolloutsByPush = `
CREATE TABLE rollouts_v1_copy AS SELECT * FROM rollouts;
DROP TABLE rollouts;

CREATE TABLE rollouts (
  rollout_id        TEXT    NOT NULL PRIMARY KEY,
  group_name        TEXT    NOT NULL REFERENCES groups (name) DEFERRABLE INITIALLY DEFERRED,
  seq               INTEGER NOT NULL CHECK (seq >= 1),
  cause             TEXT    NOT NULL CHECK (cause IN ('push', 'rollback', 'retry')),
  target_digest     TEXT    NOT NULL,
  image             TEXT,
  state             TEXT    NOT NULL
    CHECK (state IN ('in-progress', 'completed', 'halted', 'paused', 'aborted', 'superseded')),
  opened_at_ms      INTEGER NOT NULL,
  ended_at_ms       INTEGER,
  completed_at_ms   INTEGER,
  rolled_back_from  TEXT,
  halted_by_node_id TEXT,
  halt_reason       TEXT,
  UNIQUE (group_name, seq)
) STRICT;

INSERT INTO rollouts (rollout_id, group_name, seq, cause, target_digest, image, state, opened_at_ms, ended_at_ms,
                      completed_at_ms, rolled_back_from, halted_by_node_id, halt_reason)
SELECT rollout_id, group_name,
       row_number() OVER (PARTITION BY group_name ORDER BY opened_at_ms, rowid),
       'push', target_digest, image, state, opened_at_ms, ended_at_ms,
       CASE WHEN state = 'completed' THEN ended_at_ms
            ELSE (SELECT max(e.at_ms) FROM events e
                  WHERE e.type = 'rollout-completed' AND e.group_name = c.group_name AND e.digest = c.target_digest)
       END,
       NULL, halted_by_node_id, halt_reason
FROM rollouts_v1_copy c;

DROP TABLE rollouts_v1_copy;
`;

/**
 * Operator drains (`baton drain`): one row per drain, kept after it ends like a lease. A node has
 * at most one drain not yet ended in a group (the partial unique index).
 */
const drains = `
CREATE TABLE drains (
  drain_id      TEXT    NOT NULL PRIMARY KEY,
  group_name    TEXT    NOT NULL REFERENCES groups (name) DEFERRABLE INITIALLY DEFERRED,
  node_id       TEXT    NOT NULL,
  reason        TEXT,
  started_at_ms INTEGER NOT NULL,
  ended_at_ms   INTEGER,
  ended_as      TEXT    CHECK (ended_as IN ('undrained', 'forgotten')),
  CHECK ((ended_at_ms IS NULL) = (ended_as IS NULL))
) STRICT;

CREATE UNIQUE INDEX drains_one_active_per_node ON drains (group_name, node_id) WHERE ended_at_ms IS NULL;
`;

export const migrations: readonly Migration[] = [
  { version: 1, name: 'initial schema', sql: initialSchema },
  { version: 2, name: 'rollouts by push', sql: rolloutsByPush },
  { version: 3, name: 'operator drains', sql: drains },
];

/** The database was written by a newer Baton; opening it could corrupt what this code does not know. */
export class SchemaTooNewError extends BatonError {
  constructor(
    readonly path: string,
    readonly databaseVersion: number,
    readonly knownVersion: number,
  ) {
    super(
      'STORE_SCHEMA_TOO_NEW',
      `database ${path} has schema version ${databaseVersion}, but this Baton knows versions up to ` +
        `${knownVersion}: upgrade Baton, or restore a backup taken before the upgrade`,
    );
  }
}

export interface MigrationResult {
  fromVersion: number;
  toVersion: number;
  applied: Migration[];
}

const createMigrationsTable = `
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER NOT NULL PRIMARY KEY,
  name       TEXT    NOT NULL,
  applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
`;

/** The highest migration version applied to the database; 0 for a new database. */
export function schemaVersion(db: Database): number {
  const row = db.prepare<[], { version: number | null }>('SELECT max(version) AS version FROM schema_migrations').get();
  return row?.version ?? 0;
}

export function latestVersion(list: readonly Migration[]): number {
  return list.at(-1)?.version ?? 0;
}

function assertOrdered(list: readonly Migration[]): void {
  list.forEach((migration, index) => {
    const previous = index === 0 ? 0 : (list[index - 1]?.version ?? 0);
    if (!Number.isInteger(migration.version) || migration.version <= previous) {
      throw new Error(`migration "${migration.name}" has version ${migration.version}, not above ${previous}`);
    }
  });
}

function assertNotTooNew(db: Database, known: number): void {
  const current = schemaVersion(db);
  if (current > known) throw new SchemaTooNewError(db.name, current, known);
}

/**
 * Brings the database up to the latest migration, each in its own IMMEDIATE transaction.
 * The version is re-read inside every transaction, so two processes opening the same
 * database at once apply each migration exactly once.
 */
export function migrate(db: Database, list: readonly Migration[] = migrations, logger?: Logger): MigrationResult {
  assertOrdered(list);
  const known = latestVersion(list);
  db.exec(createMigrationsTable);
  const fromVersion = schemaVersion(db);
  assertNotTooNew(db, known);
  const record = db.prepare('INSERT INTO schema_migrations (version, name) VALUES (?, ?)');
  const applied: Migration[] = [];
  for (const migration of list) {
    const apply = db.transaction(() => {
      assertNotTooNew(db, known);
      if (schemaVersion(db) >= migration.version) return false;
      db.exec(migration.sql);
      record.run(migration.version, migration.name);
      return true;
    });
    if (apply.immediate()) {
      applied.push(migration);
      logger?.info({ version: migration.version, migration: migration.name }, 'applied store migration');
    }
  }
  return { fromVersion, toVersion: schemaVersion(db), applied };
}
