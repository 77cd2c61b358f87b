import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDir } from '../../shared/testing/temp-dir.js';
import { captureLogger, NEW_DIGEST, OLD_DIGEST } from './testing/fakes.js';
import { FileUpdateJournal, type JournalEntry } from './state-file.js';
import { MemoryUpdateJournal } from './testing/memory-journal.js';

const entry: JournalEntry = {
  service: 'web',
  group: 'web',
  targetDigest: NEW_DIGEST,
  targetImage: `registry.test/app@${NEW_DIGEST}`,
  previousDigest: OLD_DIGEST,
  previousContainerId: 'c0001',
  oldContainerName: 'web-baton-old',
  leaseId: 'lease-1',
  fencingToken: 3,
  step: 'stop',
  startedAtMs: 1_000,
  updatedAtMs: 2_000,
};

describe('FileUpdateJournal', () => {
  const tempDir = useTempDir('baton-journal-');

  it('writes one JSON file per service, atomically, and reads it back', async () => {
    const dir = tempDir();
    const { logger } = captureLogger();
    const stateDir = join(dir, 'state'); // created on first write
    const journal = new FileUpdateJournal(stateDir, logger);
    expect(await journal.read('web')).toBeUndefined();
    await journal.write('web', entry);
    await journal.write('web', { ...entry, step: 'start' });
    expect(await journal.read('web')).toEqual({ ...entry, step: 'start' });
    expect(await readdir(stateDir)).toEqual(['update-web.json']); // no temp file left behind
    expect(JSON.parse(await readFile(journal.pathFor('web'), 'utf8'))).toMatchObject({ step: 'start' });
    await journal.write('api', { ...entry, service: 'api' });
    expect((await readdir(stateDir)).sort()).toEqual(['update-api.json', 'update-web.json']);
  });

  it('clears an entry, and clearing an absent one is fine', async () => {
    const dir = tempDir();
    const journal = new FileUpdateJournal(dir, captureLogger().logger);
    await journal.write('web', entry);
    await journal.clear('web');
    await journal.clear('web');
    expect(await journal.read('web')).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it('reports a corrupt file and treats it as absent', async () => {
    const dir = tempDir();
    const { logger, lines } = captureLogger();
    const journal = new FileUpdateJournal(dir, logger);
    await writeFile(journal.pathFor('web'), '{"service": "web", "step": "st');
    expect(await journal.read('web')).toBeUndefined();
    expect(lines).toEqual([expect.objectContaining({ level: 'error', msg: 'update journal is not valid JSON; treating it as absent' })]);
  });

  it('reports a file that does not match the schema and treats it as absent', async () => {
    const dir = tempDir();
    const { logger, lines } = captureLogger();
    const journal = new FileUpdateJournal(dir, logger);
    await writeFile(journal.pathFor('web'), JSON.stringify({ ...entry, fencingToken: -1 }));
    expect(await journal.read('web')).toBeUndefined();
    expect(lines[0]).toMatchObject({ level: 'error', msg: 'update journal is invalid; treating it as absent' });
    expect(String((lines[0]?.problems as string[])[0])).toMatch(/^fencingToken/);
  });

  it('ignores a file that names another service', async () => {
    const dir = tempDir();
    const { logger, lines } = captureLogger();
    const journal = new FileUpdateJournal(dir, logger);
    await writeFile(journal.pathFor('web'), JSON.stringify({ ...entry, service: 'api' }));
    expect(await journal.read('web')).toBeUndefined();
    expect(lines).toHaveLength(1);
  });

  it('refuses service names that are not container names (no path tricks)', async () => {
    const dir = tempDir();
    const journal = new FileUpdateJournal(dir, captureLogger().logger);
    await expect(journal.write('../etc', { ...entry, service: '../etc' })).rejects.toThrow(RangeError);
  });

  it('refuses to write an invalid entry', async () => {
    const dir = tempDir();
    const journal = new FileUpdateJournal(dir, captureLogger().logger);
    await expect(journal.write('web', { ...entry, targetDigest: 'latest' })).rejects.toThrow();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('MemoryUpdateJournal', () => {
  it('keeps copies, records its history, and can fail a write on demand', async () => {
    const journal = new MemoryUpdateJournal();
    const mine = { ...entry };
    await journal.write('web', mine);
    mine.step = 'health';
    expect(await journal.read('web')).toMatchObject({ step: 'stop' });
    journal.failNextWrite = new Error('disk full');
    await expect(journal.write('web', entry)).rejects.toThrow('disk full');
    await journal.write('web', { ...entry, step: 'start' });
    await journal.clear('web');
    expect(journal.history.map((h) => `${h.op}:${h.entry?.step ?? ''}`)).toEqual(['write:stop', 'write:start', 'clear:']);
  });
});
