import type { Database } from 'better-sqlite3';
import type {
  DrainRow,
  EventRow,
  GroupRow,
  HeartbeatRow,
  LeaseRow,
  NewEventRow,
  NodeRow,
  RolloutRow,
} from './sqlite-rows.js';

/** A node row as reported; upsertNode and upsertHeartbeat differ only in what a conflict updates. */
const insertNode = `
      INSERT INTO nodes (group_name, node_id, host, image, current_digest, health, step, agent_version,
                         last_heartbeat_ms, joined_at_ms)
      VALUES (@group_name, @node_id, @host, @image, @current_digest, @health, @step, @agent_version,
              @last_heartbeat_ms, @joined_at_ms)`;

const nodeSoftColumns = `
  host = excluded.host,
  image = excluded.image,
  current_digest = excluded.current_digest,
  health = excluded.health,
  step = excluded.step,
  agent_version = excluded.agent_version,
  last_heartbeat_ms = excluded.last_heartbeat_ms`;

interface EventFilter {
  after: number;
  limit: number;
}

function eventQuery(byGroup: boolean, order: 'ASC' | 'DESC'): string {
  const groupClause = byGroup ? 'group_name = @group AND ' : '';
  return `SELECT * FROM events WHERE ${groupClause}seq > @after ORDER BY seq ${order} LIMIT @limit`;
}

type RowOf<Table extends string> = Table extends 'rollouts' ? RolloutRow : Table extends 'leases' ? LeaseRow : DrainRow;

/**
 * Inserts a row of a table whose rows belong to a group, or updates every column but its id and
 * group. The WHERE makes it a no-op (0 changes) when the id belongs to another group.
 */
function upsertWithinGroup<Table extends 'rollouts' | 'leases' | 'drains'>(
  table: Table,
  idColumn: keyof RowOf<Table> & string,
  columns: readonly (keyof RowOf<Table> & string)[],
): string {
  const all = [idColumn, 'group_name', ...columns];
  return `
      INSERT INTO ${table} (${all.join(', ')})
      VALUES (${all.map((column) => `@${column}`).join(', ')})
      ON CONFLICT (${idColumn}) DO UPDATE SET
        ${columns.map((column) => `${column} = excluded.${column}`).join(',\n        ')}
      WHERE ${table}.group_name = excluded.group_name`;
}

/** Every statement the store runs, prepared once when the store opens. */
export function prepareStatements(db: Database) {
  return {
    groupVersion: db.prepare<[string], number>('SELECT version FROM groups WHERE name = ?').pluck(),
    groupNames: db.prepare<[], string>('SELECT name FROM groups ORDER BY name').pluck(),
    selectGroup: db.prepare<[string], GroupRow>('SELECT * FROM groups WHERE name = ?'),
    selectNodes: db.prepare<[string], NodeRow>('SELECT * FROM nodes WHERE group_name = ? ORDER BY node_id'),
    selectRollouts: db.prepare<[string], RolloutRow>(
      'SELECT * FROM rollouts WHERE group_name = ? ORDER BY seq',
    ),
    selectActiveLeases: db.prepare<[string], LeaseRow>(
      'SELECT * FROM leases WHERE group_name = ? AND ended_at_ms IS NULL ORDER BY fencing_token',
    ),
    selectLease: db.prepare<[string], LeaseRow>('SELECT * FROM leases WHERE lease_id = ?'),
    selectActiveDrains: db.prepare<[string], DrainRow>(
      'SELECT * FROM drains WHERE group_name = ? AND ended_at_ms IS NULL ORDER BY node_id',
    ),

    upsertGroup: db.prepare<GroupRow>(`
      INSERT INTO groups (name, paused, last_fencing_token, version)
      VALUES (@name, @paused, @last_fencing_token, @version)
      ON CONFLICT (name) DO UPDATE SET
        paused = excluded.paused,
        last_fencing_token = excluded.last_fencing_token,
        version = excluded.version`),
    upsertNode: db.prepare<NodeRow>(`${insertNode}
      ON CONFLICT (group_name, node_id) DO UPDATE SET ${nodeSoftColumns},
        joined_at_ms = excluded.joined_at_ms`),
    upsertHeartbeat: db.prepare<NodeRow>(`${insertNode}
      ON CONFLICT (group_name, node_id) DO UPDATE SET ${nodeSoftColumns}`),
    // UPDATE only: a heartbeat written after its node was forgotten must not bring it back.
    updateHeartbeat: db.prepare<HeartbeatRow>(`
      UPDATE nodes SET
        host = @host, image = @image, current_digest = @current_digest, health = @health, step = @step,
        agent_version = @agent_version, last_heartbeat_ms = @last_heartbeat_ms
      WHERE group_name = @group_name AND node_id = @node_id`),
    deleteNode: db.prepare<[string, string]>('DELETE FROM nodes WHERE group_name = ? AND node_id = ?'),
    upsertRollout: db.prepare<RolloutRow>(
      upsertWithinGroup('rollouts', 'rollout_id', [
        'seq', 'cause', 'target_digest', 'image', 'state', 'opened_at_ms', 'ended_at_ms', 'completed_at_ms',
        'rolled_back_from', 'halted_by_node_id', 'halt_reason',
      ]),
    ),
    upsertLease: db.prepare<LeaseRow>(
      upsertWithinGroup('leases', 'lease_id', [
        'node_id', 'rollout_id', 'target_digest', 'fencing_token', 'granted_at_ms', 'expires_at_ms', 'ended_at_ms', 'ended_as',
      ]),
    ),
    upsertDrain: db.prepare<DrainRow>(
      upsertWithinGroup('drains', 'drain_id', ['node_id', 'reason', 'started_at_ms', 'ended_at_ms', 'ended_as']),
    ),
    insertEvent: db
      .prepare<NewEventRow, number>(`
        INSERT INTO events (at_ms, type, group_name, node_id, digest, lease_id, fencing_token, reason,
                            outcome, message)
        VALUES (@at_ms, @type, @group_name, @node_id, @digest, @lease_id, @fencing_token, @reason,
                @outcome, @message)
        RETURNING seq`)
      .pluck(),

    eventsOldestFirst: db.prepare<EventFilter, EventRow>(eventQuery(false, 'ASC')),
    eventsNewestFirst: db.prepare<EventFilter, EventRow>(eventQuery(false, 'DESC')),
    groupEventsOldestFirst: db.prepare<EventFilter & { group: string }, EventRow>(eventQuery(true, 'ASC')),
    groupEventsNewestFirst: db.prepare<EventFilter & { group: string }, EventRow>(eventQuery(true, 'DESC')),

    // Heartbeat batches may skip the fsync of their commit; see SqliteStore.saveHeartbeats.
    relaxSync: db.prepare('PRAGMA synchronous = NORMAL'),
    restoreSync: db.prepare('PRAGMA synchronous = FULL'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
