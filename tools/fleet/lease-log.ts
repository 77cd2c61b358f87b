/** The coordinator's own record of a fleet's leases, read back from its event log. */
import type { BatonEvent } from '../../shared/api/v1.js';
import { FLEET_GROUP } from './fleet-names.js';

export interface LeaseReplay {
  /** Most leases of the group held at once, replaying grants against releases and expiries. */
  maxHolders: number;
  /** The sequence number of the grant that reached maxHolders. */
  maxHoldersAtSeq: number | undefined;
  grants: BatonEvent[];
  releases: BatonEvent[];
  expiries: BatonEvent[];
  /** Fencing tokens of grants strictly increase. */
  tokensIncrease: boolean;
  /** Leases still held at the end of the log. */
  heldAtEnd: string[];
}

/** Replays the coordinator's event log (in seq order) for one group. */
export function replayLeases(events: BatonEvent[], group = FLEET_GROUP): LeaseReplay {
  const held = new Set<string>();
  const replay: LeaseReplay = {
    maxHolders: 0,
    maxHoldersAtSeq: undefined,
    grants: [],
    releases: [],
    expiries: [],
    tokensIncrease: true,
    heldAtEnd: [],
  };
  let lastToken = 0;
  for (const event of [...events].sort((a, b) => a.seq - b.seq)) {
    if (event.group !== group) continue;
    if (event.type === 'grant') {
      replay.grants.push(event);
      if ((event.fencingToken ?? 0) <= lastToken) replay.tokensIncrease = false;
      lastToken = event.fencingToken ?? lastToken;
      held.add(event.leaseId ?? `?${event.seq}`);
      if (held.size > replay.maxHolders) {
        replay.maxHolders = held.size;
        replay.maxHoldersAtSeq = event.seq;
      }
    } else if (event.type === 'release' || event.type === 'expiry' || (event.type === 'node-forgotten' && event.leaseId)) {
      if (event.type === 'release') replay.releases.push(event);
      if (event.type === 'expiry') replay.expiries.push(event);
      held.delete(event.leaseId ?? '');
    }
  }
  replay.heldAtEnd = [...held];
  return replay;
}

/** One line per coordinator event, for failure messages. */
export function formatBatonEvents(events: BatonEvent[]): string {
  return events
    .map(
      (e) =>
        `#${e.seq} ${new Date(e.atMs).toISOString().slice(11, 23)} ${e.type} ${e.nodeId ?? '-'} ${e.digest?.slice(7, 19) ?? '-'}` +
        `${e.fencingToken !== null ? ` token=${e.fencingToken}` : ''}${e.reason ? ` reason=${e.reason}` : ''}${e.outcome ? ` outcome=${e.outcome}` : ''}` +
        `${e.message ? ` "${e.message.slice(0, 120)}"` : ''}`,
    )
    .join('\n');
}
