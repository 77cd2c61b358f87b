import { afterAll, beforeAll } from 'vitest';
import { startFleet, type Fleet, type FleetOptions } from '../../tools/fleet/fleet.js';
import { sleep } from '../../tools/fleet/wait.js';
import { startLoad, type RunningLoad } from '../../tools/fleet/load.js';

/** Starting a fleet takes the machine-wide lock (other fleets may hold it) and builds images. */
const fleetStartTimeoutMs = 20 * 60_000;
const fleetStopTimeoutMs = 120_000;

/**
 * One fleet for the scenarios of a test file: started before the first (then `ready`, if given),
 * stopped after the last. Call the returned function inside a test to get it.
 */
export function withFleet(options: FleetOptions, ready?: (fleet: Fleet) => Promise<void> | void): () => Fleet {
  let fleet: Fleet | undefined;
  beforeAll(async () => {
    fleet = await startFleet(options);
    await ready?.(fleet);
    console.log('fleet timings (ms):', fleet.timings);
  }, fleetStartTimeoutMs);
  afterAll(async () => {
    await fleet?.stop();
  }, fleetStopTimeoutMs);
  return () => {
    if (fleet === undefined) throw new Error('the fleet did not start (see the beforeAll error)');
    return fleet;
  };
}

/** The seq of the coordinator's newest event: what a scenario reads the log after. */
export async function lastEventSeq(fleet: Fleet): Promise<number> {
  return (await fleet.events()).at(-1)?.seq ?? 0;
}

/** Steady load through HAProxy (40 requests a second) for `durationMs`, already `warmUpMs` under way. */
export async function steadyLoad(fleet: Fleet, durationMs: number, warmUpMs: number): Promise<RunningLoad> {
  const load = startLoad({ url: fleet.haproxy.url, ratePerSecond: 40, durationMs });
  await sleep(warmUpMs);
  return load;
}
