import { expect } from 'vitest';
import type { BatonEvent } from '../../shared/api/v1.js';

/**
 * Replays an event log in sequence order and returns the most leases ever held at once per
 * group, checking on the way that fencing tokens of grants strictly increase per group.
 */
export function replayLeaseLog(events: BatonEvent[]): { maxHolders: Map<string, number>; grants: number } {
  const holders = new Map<string, Set<string>>();
  const maxHolders = new Map<string, number>();
  const lastToken = new Map<string, number>();
  let grants = 0;
  const ordered = [...events].sort((a, b) => a.seq - b.seq);
  for (const event of ordered) {
    const held = holders.get(event.group) ?? new Set<string>();
    holders.set(event.group, held);
    if (event.type === 'grant') {
      grants += 1;
      const token = event.fencingToken ?? 0;
      expect(token, `fencing token after ${lastToken.get(event.group)} in ${event.group}`).toBeGreaterThan(
        lastToken.get(event.group) ?? 0,
      );
      lastToken.set(event.group, token);
      held.add(event.leaseId ?? '');
      maxHolders.set(event.group, Math.max(maxHolders.get(event.group) ?? 0, held.size));
    }
    if (event.type === 'release' || event.type === 'expiry' || (event.type === 'node-forgotten' && event.leaseId)) {
      held.delete(event.leaseId ?? '');
    }
  }
  return { maxHolders, grants };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
