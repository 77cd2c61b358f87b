import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDir } from '../../shared/testing/temp-dir.js';
import { captureLogger } from '../update/testing/fakes.js';
import { FileDrainStateStore, type DrainState } from './state.js';

const state: DrainState = { service: 'web', group: 'web', reason: 'disk swap', sinceMs: 1_700_000_000_000, preDrainDone: false };

describe('FileDrainStateStore', () => {
  const tempDir = useTempDir('baton-drain-state-');

  it('writes atomically (mode 0600, no temporary file left), reads back, and clears (absent is fine)', async () => {
    const dir = tempDir();
    const { logger } = captureLogger();
    const store = new FileDrainStateStore(join(dir, 'state'), logger);
    expect(await store.read('web')).toBeUndefined();
    await store.write(state);
    await store.write({ ...state, preDrainDone: true });
    const file = join(dir, 'state', 'drained-web.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ ...state, preDrainDone: true });
    expect(await store.read('web')).toEqual({ ...state, preDrainDone: true });
    await store.clear('web');
    await store.clear('web');
    expect(await store.read('web')).toBeUndefined();
  });

  it('treats a damaged file, or one naming another service, as absent and says so', async () => {
    const dir = tempDir();
    const { logger, lines } = captureLogger();
    const store = new FileDrainStateStore(dir, logger);
    await writeFile(join(dir, 'drained-web.json'), '{ not json');
    expect(await store.read('web')).toBeUndefined();
    await writeFile(join(dir, 'drained-web.json'), JSON.stringify({ ...state, service: 'api' }));
    expect(await store.read('web')).toBeUndefined();
    await writeFile(join(dir, 'drained-web.json'), JSON.stringify({ ...state, sinceMs: 'yesterday' }));
    expect(await store.read('web')).toBeUndefined();
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(3);
  });

  it('refuses a service name that is not a safe file name', () => {
    const dir = tempDir();
    const { logger } = captureLogger();
    expect(() => new FileDrainStateStore(dir, logger).pathFor('../etc')).toThrow(RangeError);
  });
});
