import { mkdir, open, rename, unlink } from 'node:fs/promises';

/**
 * Files in the agent's state directory (the update journal, the last known good config, an
 * operator drain) are written so that a crash or power loss leaves the old file or the new one,
 * never half of one: a private temp file, fsync, rename, then fsync of the directory.
 */

/** Writes `value` as JSON to `file` in `dir` atomically and durably (mode 0600: it may hold a token). */
export async function writeJsonAtomically(dir: string, file: string, value: unknown): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dir);
}

/** Removes `file` durably; a file that is not there is fine. */
export async function removeDurably(dir: string, file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return;
    throw error;
  }
  await syncDirectory(dir);
}

export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

/** Makes a rename or unlink durable. Some file systems refuse fsync on a directory: the file is written all the same. */
async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Only durability across a power loss is weaker; the write itself succeeded.
  } finally {
    await handle?.close();
  }
}
