import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { digestSchema, fencingTokenSchema, leaseIdSchema, updateStepSchema } from '../../shared/api/v1.js';
import type { Logger } from '../../shared/logger.js';
import { errorCode, removeDurably, writeJsonAtomically } from '../state-dir.js';

/**
 * The update journal: what an agent writes down BEFORE each destructive step of an update, so
 * that a crash (kill -9, power loss) at any point can be reconciled at the next start (I5).
 */

export const journalEntrySchema = z.object({
  /** The service's container name. */
  service: z.string().min(1),
  group: z.string().min(1),
  /** The digest the update installs, and its `repo@sha256:...` reference. */
  targetDigest: digestSchema,
  targetImage: z.string().min(1),
  /** The digest the container ran before the update; null when Docker could not tell. */
  previousDigest: z.string().nullable(),
  /** Id of the container that served before the update (it keeps its id across the rename). */
  previousContainerId: z.string().min(1),
  /** Name the previous container is renamed to while the new one runs: `<name>-baton-old`. */
  oldContainerName: z.string().min(1),
  leaseId: leaseIdSchema,
  fencingToken: fencingTokenSchema,
  /** The step about to run (or running) when the entry was written. */
  step: updateStepSchema,
  startedAtMs: z.number().int(),
  updatedAtMs: z.number().int(),
  /**
   * Set when the step is `rollback` because the NEW image failed (health, create, start): reconcile
   * then releases the lease as `failed` with this message so the rollout still halts (I3).
   */
  failureReason: z.string().max(2_000).optional(),
});
export type JournalEntry = z.infer<typeof journalEntrySchema>;

export interface UpdateJournal {
  /** The entry for this service, or undefined when none (or when the stored one is unreadable). */
  read(service: string): Promise<JournalEntry | undefined>;
  /** Replaces the entry durably: when this resolves, the entry survives a crash. Rejects on I/O errors. */
  write(service: string, entry: JournalEntry): Promise<void>;
  /** Removes the entry; absent is fine. */
  clear(service: string): Promise<void>;
}

/** Container names are safe file names; anything else is refused rather than joined into a path. */
const serviceFileName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

function fileNameFor(service: string): string {
  if (!serviceFileName.test(service)) throw new RangeError(`not a valid service name for a journal: ${service}`);
  return `update-${service}.json`;
}

/**
 * One JSON file per service under `stateDir`, replaced atomically (temp file, fsync, rename,
 * fsync of the directory). An unreadable or invalid file is logged and treated as absent: the
 * agent never crashes over its own state file, and reconcile then works from the containers.
 */
export class FileUpdateJournal implements UpdateJournal {
  constructor(
    private readonly stateDir: string,
    private readonly logger: Logger,
  ) {}

  pathFor(service: string): string {
    return join(this.stateDir, fileNameFor(service));
  }

  async read(service: string): Promise<JournalEntry | undefined> {
    const file = this.pathFor(service);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      this.logger.error({ err: error, file, service }, 'cannot read the update journal; treating it as absent');
      return undefined;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      this.logger.error({ err: error, file, service }, 'update journal is not valid JSON; treating it as absent');
      return undefined;
    }
    const parsed = journalEntrySchema.safeParse(json);
    if (!parsed.success) {
      this.logger.error(
        { file, service, problems: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) },
        'update journal is invalid; treating it as absent',
      );
      return undefined;
    }
    if (parsed.data.service !== service) {
      this.logger.error({ file, service, found: parsed.data.service }, 'update journal names another service; ignoring it');
      return undefined;
    }
    return parsed.data;
  }

  async write(service: string, entry: JournalEntry): Promise<void> {
    await writeJsonAtomically(this.stateDir, this.pathFor(service), journalEntrySchema.parse(entry));
  }

  async clear(service: string): Promise<void> {
    await removeDurably(this.stateDir, this.pathFor(service));
  }
}
