import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeJsonAtomically } from '../state-dir.js';

/**
 * The last known good configuration: a copy of the config file's text, taken every time the agent
 * starts on it, kept in the state directory. When the file later turns out invalid, the agent starts
 * on this copy instead of exiting (agent/config/startup.ts).
 *
 * The copy is the file's text, not the validated config: `BATON_*` variables are applied again at
 * every start (so a secret passed in the environment is never written here), and the copy is
 * validated again by the running version of Baton before it is used.
 */

export const lastKnownGoodFileName = 'last-known-good-config.json';

export const lastKnownGoodSchema = z.strictObject({
  format: z.literal('baton-agent-last-known-good/1'),
  /** Absolute path of the config file the copy was taken from. */
  sourcePath: z.string().min(1).max(4_096),
  /** SHA-256 of `text`, hex: checked at every read, so a damaged copy is never used. */
  sha256: z.string().regex(/^[a-f0-9]{64}$/),
  /** When the agent last started on it (ISO 8601). */
  savedAt: z.iso.datetime(),
  /** The Baton version that validated it. */
  batonVersion: z.string().min(1).max(64),
  /** The config file's text, as read. */
  text: z.string().max(4 * 1024 * 1024),
});
export type LastKnownGood = z.infer<typeof lastKnownGoodSchema>;

/** What reading the copy found. `unreadable` covers I/O errors, bad JSON, a bad shape and a hash that does not match. */
export type LastKnownGoodRead =
  | { kind: 'found'; copy: LastKnownGood }
  | { kind: 'absent' }
  | { kind: 'unreadable'; reason: string };

/** The file system behind the copy; tests use an in-memory one. */
export interface LastKnownGoodStore {
  read(stateDir: string): Promise<LastKnownGoodRead>;
  /** Replaces the copy durably (temp file, fsync, rename, fsync of the directory); rejects on I/O errors. */
  write(stateDir: string, copy: LastKnownGood): Promise<void>;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function lastKnownGoodPath(stateDir: string): string {
  return join(stateDir, lastKnownGoodFileName);
}

/** Checks a stored document: its shape, then that the text still has the hash it was saved with. */
export function parseLastKnownGood(json: unknown): LastKnownGoodRead {
  const parsed = lastKnownGoodSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return { kind: 'unreadable', reason: `not a last known good copy (${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid'})` };
  }
  if (sha256Hex(parsed.data.text) !== parsed.data.sha256) return { kind: 'unreadable', reason: 'its text does not match its sha256 (damaged)' };
  return { kind: 'found', copy: parsed.data };
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

export const fileLastKnownGoodStore: LastKnownGoodStore = {
  async read(stateDir) {
    let text: string;
    try {
      text = await readFile(lastKnownGoodPath(stateDir), 'utf8');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return { kind: 'absent' };
      return { kind: 'unreadable', reason: `cannot read it: ${(error as Error).message}` };
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      return { kind: 'unreadable', reason: `not valid JSON: ${(error as Error).message}` };
    }
    return parseLastKnownGood(json);
  },

  async write(stateDir, copy) {
    // Mode 0600 (writeJsonAtomically): the copy holds coordinator.token when the config file does.
    await writeJsonAtomically(stateDir, lastKnownGoodPath(stateDir), lastKnownGoodSchema.parse(copy));
  },
};
