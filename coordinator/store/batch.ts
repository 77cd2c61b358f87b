import { BatonError } from '../../shared/errors.js';
import type { Change } from '../state/model.js';

/**
 * A change batch that breaks the Store's contract: a bug in the caller, never a race.
 * Unlike StoreConflictError, deciding again on fresh state will not help.
 */
export class InvalidBatchError extends BatonError {
  constructor(group: string, problem: string) {
    super('STORE_INVALID_BATCH', `invalid change batch for group ${group}: ${problem}`);
  }
}

/** The group a change belongs to; a batch may only touch the group whose version it checks. */
export function groupOfChange(change: Change): string {
  switch (change.kind) {
    case 'put-group':
      return change.group.name;
    case 'put-node':
    case 'heartbeat':
      return change.node.group;
    case 'delete-node':
      return change.group;
    case 'put-rollout':
      return change.rollout.group;
    case 'put-lease':
      return change.lease.group;
    case 'put-drain':
      return change.drain.group;
    case 'append-event':
      return change.event.group;
  }
}

/**
 * Checks what every backend must refuse before writing anything: changes to another group
 * (they would bypass that group's version check) and a put-group that does not move the
 * version from expectedVersion to expectedVersion + 1 (the next writer's check would lie).
 */
export function validateBatch(group: string, expectedVersion: number, changes: readonly Change[]): void {
  if (!Number.isInteger(expectedVersion) || expectedVersion < 0) {
    throw new InvalidBatchError(group, `expectedVersion ${expectedVersion} is not a non-negative integer`);
  }
  let groupPuts = 0;
  for (const change of changes) {
    const owner = groupOfChange(change);
    if (owner !== group) throw new InvalidBatchError(group, `a ${change.kind} change belongs to group ${owner}`);
    if (change.kind !== 'put-group') continue;
    groupPuts += 1;
    if (change.group.version !== expectedVersion + 1) {
      throw new InvalidBatchError(
        group,
        `put-group carries version ${change.group.version}, expected ${expectedVersion + 1}`,
      );
    }
  }
  if (groupPuts > 1) throw new InvalidBatchError(group, `${groupPuts} put-group changes, at most one allowed`);
}
