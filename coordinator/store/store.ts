import type { BatonEvent } from '../../shared/api/v1.js';
import { BatonError } from '../../shared/errors.js';
import type { Change, GroupState, LeaseRecord, NodeRecord } from '../state/model.js';
import type { StoreWritability } from './write-failure.js';

/** Another writer changed the group since it was loaded; reload and decide again. */
export class StoreConflictError extends BatonError {
  constructor(group: string, expectedVersion: number) {
    super('STORE_CONFLICT', `group ${group} changed since version ${expectedVersion}`);
  }
}

export interface EventQuery {
  /** Only events with seq greater than this. */
  afterSeq?: number;
  group?: string;
  /** Most recent first when `newestFirst`, else oldest first; at most this many. */
  limit: number;
  newestFirst?: boolean;
}

/**
 * Durable state of the coordinator. SQLite is the default backend; every backend passes
 * the contract suite in store.contract.ts.
 */
export interface Store {
  /** Names of every group the store knows. */
  listGroups(): Promise<string[]>;
  /** The group's state, or undefined if the group has never been written. */
  loadGroup(group: string): Promise<GroupState | undefined>;
  /**
   * Commits the durable changes of one decision atomically and durably (they survive power
   * loss once this resolves). `expectedVersion` is the group's version the decision was
   * made on (0 for a new group). Every change must belong to `group`, and a durable batch
   * carries exactly one put-group with version `expectedVersion + 1` (a new group's first
   * batch needs it to exist at all). Throws StoreConflictError when the stored version
   * differs, and writes nothing then. `heartbeat` changes in the batch are written too.
   * Returns the appended events with their sequence numbers.
   */
  commit(group: string, expectedVersion: number, changes: Change[]): Promise<BatonEvent[]>;
  /** Soft state: the latest heartbeat of these nodes; may be lost in a crash. Ignores forgotten nodes. */
  saveHeartbeats(nodes: NodeRecord[]): Promise<void>;
  readEvents(query: EventQuery): Promise<BatonEvent[]>;
  /** A lease by id, ended ones too: tells "that lease has ended" (409) from "no such lease" (404). */
  findLease(leaseId: string): Promise<LeaseRecord | undefined>;
  /**
   * Whether the store can commit, cheaply: from the last write, with a probe only after a write
   * failed for want of a writable database (read-only, full disk). GET /healthz answers from it.
   */
  writable(): Promise<StoreWritability>;
  close(): Promise<void>;
}
