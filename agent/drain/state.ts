import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../../shared/logger.js';
import { errorCode, removeDurably, writeJsonAtomically } from '../state-dir.js';

/**
 * What the agent remembers of an operator's drain (`baton drain`), per service, so that a restarted
 * agent (or a rebooted host) that cannot reach the coordinator still keeps the service out of the
 * balancer. The coordinator is the source of truth whenever it answers a heartbeat.
 */
export const drainStateSchema = z.object({
  service: z.string().min(1),
  group: z.string().min(1),
  reason: z.string().nullable(),
  /** When the coordinator says the drain started. */
  sinceMs: z.number().int(),
  /** The preDrain hook has run for this drain (it runs once; again only if the agent died during it). */
  preDrainDone: z.boolean(),
});
export type DrainState = z.infer<typeof drainStateSchema>;

export interface DrainStateStore {
  /** The service's drain, or undefined when none (or when the stored one is unreadable: logged). */
  read(service: string): Promise<DrainState | undefined>;
  /** Replaces it durably: when this resolves, it survives a crash or a power cut. */
  write(state: DrainState): Promise<void>;
  /** Removes it; absent is fine. */
  clear(service: string): Promise<void>;
}

const serviceFileName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** `<stateDir>/drained-<service>.json`, replaced atomically (temp file, fsync, rename, fsync of the directory). */
export class FileDrainStateStore implements DrainStateStore {
  constructor(
    private readonly stateDir: string,
    private readonly logger: Logger,
  ) {}

  pathFor(service: string): string {
    if (!serviceFileName.test(service)) throw new RangeError(`not a valid service name for a drain file: ${service}`);
    return join(this.stateDir, `drained-${service}.json`);
  }

  async read(service: string): Promise<DrainState | undefined> {
    const file = this.pathFor(service);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') this.logger.error({ err: error, file, service }, 'cannot read the drain state; treating the service as not drained');
      return undefined;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      this.logger.error({ err: error, file, service }, 'drain state is not valid JSON; treating the service as not drained');
      return undefined;
    }
    const parsed = drainStateSchema.safeParse(json);
    if (!parsed.success || parsed.data.service !== service) {
      const problems = parsed.success ? [`service: names ${parsed.data.service}`] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
      this.logger.error({ file, service, problems }, 'drain state is invalid; treating the service as not drained');
      return undefined;
    }
    return parsed.data;
  }

  async write(state: DrainState): Promise<void> {
    const valid = drainStateSchema.parse(state);
    await writeJsonAtomically(this.stateDir, this.pathFor(valid.service), valid);
  }

  async clear(service: string): Promise<void> {
    await removeDurably(this.stateDir, this.pathFor(service));
  }
}
