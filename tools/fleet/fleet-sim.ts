import { expect } from 'vitest';
import type { BatonEvent } from '../../shared/api/v1.js';
import { replayLeases } from './lease-log.js';

/**
 * Replays an event log in sequence order and returns the most leases ever held at once per
 * group (for the groups that had a grant), failing the test when a group's fencing tokens of
 * grants do not strictly increase.
 */
export function replayLeaseLog(events: BatonEvent[]): { maxHolders: Map<string, number>; grants: number } {
  const maxHolders = new Map<string, number>();
  let grants = 0;
  for (const group of new Set(events.map((event) => event.group))) {
    const replay = replayLeases(events, group);
    const tokens = replay.grants.map((grant) => grant.fencingToken);
    expect(replay.tokensIncrease, `fencing tokens of the grants in ${group}: ${tokens.join(', ')}`).toBe(true);
    if (replay.grants.length > 0) maxHolders.set(group, replay.maxHolders);
    grants += replay.grants.length;
  }
  return { maxHolders, grants };
}
