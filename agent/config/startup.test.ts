import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { heartbeatRequestSchema } from '../../shared/api/v1.js';
import { ConfigError } from '../../shared/errors.js';
import { fileLastKnownGoodStore, lastKnownGoodFileName, sha256Hex, type LastKnownGood, type LastKnownGoodRead } from './last-known-good.js';
import { configProblemLine, decideStartupConfig, lenientStateDir, type StartupFiles } from './startup.js';

const configPath = '/etc/baton/agent.yaml';
const stateDir = '/var/lib/baton-test';

function agentYaml(overrides: Record<string, unknown> = {}): string {
  return stringify({
    nodeId: 'web-1',
    host: '10.0.0.11',
    coordinator: { urls: ['http://127.0.0.1:7070'] },
    stateDir,
    services: [{ group: 'web', image: '127.0.0.1:5000/web:stable', containerName: 'web', health: { docker: true } }],
    ...overrides,
  });
}

function copyOf(text: string, sourcePath = configPath): LastKnownGood {
  return {
    format: 'baton-agent-last-known-good/1',
    sourcePath,
    sha256: sha256Hex(text),
    savedAt: '2025-01-02T03:04:05.000Z',
    batonVersion: '0.1.0',
    text,
  };
}

/** The config file and the state directories in memory; `reads` records where the copy was looked for. */
function files(config: string | Error, stored: Record<string, LastKnownGoodRead> = {}): StartupFiles & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    readConfigText: (path) =>
      config instanceof Error ? Promise.reject(new ConfigError(path, [{ path: '', message: config.message }])) : Promise.resolve(config),
    lastKnownGood: {
      read: (dir) => {
        reads.push(dir);
        return Promise.resolve(stored[dir] ?? { kind: 'absent' });
      },
    },
  };
}

const decide = (f: StartupFiles, environment: NodeJS.ProcessEnv = {}) =>
  decideStartupConfig({ configPath, environment, files: f, nowMs: Date.parse('2025-06-01T00:00:00Z'), batonVersion: '0.2.0' });

describe('which config the agent starts on', () => {
  it('a valid file: starts on it, and its text (path, hash, time, version) is the copy to store', async () => {
    const text = agentYaml();
    const f = files(text);
    const result = await decide(f);
    expect(result.kind).toBe('valid');
    if (result.kind !== 'valid') return;
    expect(result.config.nodeId).toBe('web-1');
    expect(result.copy).toEqual({ ...copyOf(text), savedAt: '2025-06-01T00:00:00.000Z', batonVersion: '0.2.0' });
    expect(f.reads).toEqual([]); // the stored copy is not even read
  });

  it('an invalid file and a stored copy of it: starts on the copy (with the current BATON_* variables) and names every bad field', async () => {
    const good = agentYaml({ logLevel: 'warn' });
    const f = files(agentYaml({ logLevel: 'loud', schedule: { cron: 'every minute' }, surprise: 1 }), {
      [stateDir]: { kind: 'found', copy: copyOf(good) },
    });
    const result = await decide(f, { BATON_HOST: '10.0.0.99' });
    expect(result.kind).toBe('fallback');
    if (result.kind !== 'fallback') return;
    expect(result.config.logLevel).toBe('warn');
    expect(result.config.host).toBe('10.0.0.99');
    expect(result.copyPath).toBe(join(stateDir, lastKnownGoodFileName));
    expect(result.error.problems.map((p) => p.path).sort()).toEqual(['', 'logLevel', 'schedule.cron']);
    expect(result.error.message).toMatch(/^ {2}- logLevel: /m);
    expect(result.problem).toMatch(/^invalid configuration in \/etc\/baton\/agent\.yaml: /);
    expect(result.problem).toMatch(/logLevel: .*; .*schedule\.cron: invalid cron expression "every minute"/);
    expect(result.problem).toMatch(/surprise/);
    expect(result.problem).toMatch(/\(running on the last known good config of 2025-01-02T03:04:05\.000Z, sha256 [0-9a-f]{12}\)$/);
    expect(heartbeatRequestSchema.shape.configProblem.safeParse(result.problem).success).toBe(true);
  });

  it('a file that is not YAML: looks in BATON_STATE_DIR, else the default state directory', async () => {
    const good = agentYaml();
    const broken = 'services: [\n  - group: web\n   bad indent: {\n';
    const inDefault = files(broken, { '/var/lib/baton': { kind: 'found', copy: copyOf(good) } });
    const result = await decide(inDefault);
    expect(result.kind).toBe('fallback');
    expect(inDefault.reads).toEqual(['/var/lib/baton']);
    if (result.kind === 'fallback') {
      expect(result.error.problems[0]?.message).toMatch(/not valid YAML or JSON/);
      expect(result.problem).not.toMatch(/[\n\r\t]/); // the YAML error's code frame is folded into one line
    }

    const inEnvironment = files(broken, { '/srv/state': { kind: 'found', copy: copyOf(good) } });
    expect((await decide(inEnvironment, { BATON_STATE_DIR: '/srv/state' })).kind).toBe('fallback');
    expect(inEnvironment.reads).toEqual(['/srv/state']);
  });

  it('an invalid file without a stored copy: exit 78 as before, saying where the copy was looked for', async () => {
    const f = files(agentYaml({ logLevel: 'loud' }));
    const result = await decide(f);
    expect(result).toMatchObject({ kind: 'invalid', notes: [`no last known good config at ${join(stateDir, lastKnownGoodFileName)}`] });
    if (result.kind === 'invalid') expect(result.error.problems.map((p) => p.path)).toEqual(['logLevel']);
    expect(f.reads).toEqual([stateDir]); // the invalid file's own stateDir, read leniently
  });

  it('an unreadable or damaged copy: exit 78, saying why the copy was not used', async () => {
    const unreadable = await decide(files(agentYaml({ logLevel: 'loud' }), { [stateDir]: { kind: 'unreadable', reason: 'cannot read it: EACCES' } }));
    expect(unreadable.kind).toBe('invalid');
    if (unreadable.kind === 'invalid') expect(unreadable.notes[0]).toMatch(/cannot be used: cannot read it: EACCES/);
  });

  it('a copy of another config file, or a copy no longer valid: exit 78', async () => {
    const other = await decide(files(agentYaml({ logLevel: 'loud' }), { [stateDir]: { kind: 'found', copy: copyOf(agentYaml(), '/etc/baton/other.yaml') } }));
    expect(other.kind).toBe('invalid');
    if (other.kind === 'invalid') expect(other.notes[0]).toMatch(/is a copy of \/etc\/baton\/other\.yaml, not of \/etc\/baton\/agent\.yaml/);

    // E.g. a BATON_* variable that is itself invalid: the copy fails the same way, and both are told.
    const alsoInvalid = await decide(files(agentYaml({ logLevel: 'loud' }), { [stateDir]: { kind: 'found', copy: copyOf(agentYaml()) } }), {
      BATON_READINESS_LISTEN: 'nowhere',
    });
    expect(alsoInvalid.kind).toBe('invalid');
    if (alsoInvalid.kind === 'invalid') {
      expect(alsoInvalid.error.problems.map((p) => p.path).sort()).toEqual(['logLevel', 'readiness.listen']);
      expect(alsoInvalid.notes[0]).toMatch(/not valid either: .*readiness\.listen/s);
    }
  });

  it('a config file that cannot be read, or no config file at all: no fallback', async () => {
    const f = files(new Error('cannot read file: ENOENT'), { [stateDir]: { kind: 'found', copy: copyOf(agentYaml()) } });
    const missing = await decide(f);
    expect(missing).toMatchObject({ kind: 'invalid', notes: [] });
    expect(f.reads).toEqual([]);

    const environmentOnly = await decideStartupConfig({
      configPath: undefined,
      environment: {},
      files: f,
      nowMs: 0,
      batonVersion: '0',
    });
    expect(environmentOnly.kind).toBe('invalid');
  });

  it('the state directory of an invalid config: BATON_STATE_DIR, then a string stateDir, then the default', () => {
    expect(lenientStateDir({ stateDir: '/a' }, { BATON_STATE_DIR: '/b' })).toBe('/b');
    expect(lenientStateDir({ stateDir: '/a' }, { BATON_STATE_DIR: '' })).toBe('/a');
    expect(lenientStateDir({ stateDir: 42 }, {})).toBe('/var/lib/baton');
    expect(lenientStateDir(['not', 'a', 'map'], {})).toBe('/var/lib/baton');
    expect(lenientStateDir(undefined, {})).toBe('/var/lib/baton');
  });

  it('the problem line stays within the heartbeat bound, however many fields are bad', () => {
    const problems = Array.from({ length: 200 }, (_, i) => ({ path: `services.${i}.image`, message: 'Invalid input:\texpected string' }));
    const line = configProblemLine(new ConfigError(configPath, problems), copyOf(''));
    expect(line.length).toBeLessThanOrEqual(1_000);
    expect(line).toMatch(/… \(running on the last known good config of /);
    expect(heartbeatRequestSchema.shape.configProblem.safeParse(line).success).toBe(true);
  });
});

describe('the last known good copy on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'baton-lkg-'));
  });
  afterAll(async () => {
    await chmod(join(dir, 'locked'), 0o700).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('is written atomically (0600, no temp file left) and read back, and a damaged one is refused', async () => {
    const stateDir = join(dir, 'state', 'nested');
    expect(await fileLastKnownGoodStore.read(stateDir)).toEqual({ kind: 'absent' });
    const copy = copyOf(agentYaml());
    await fileLastKnownGoodStore.write(stateDir, copy);
    expect(await fileLastKnownGoodStore.read(stateDir)).toEqual({ kind: 'found', copy });
    const file = join(stateDir, lastKnownGoodFileName);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(stateDir)).toEqual([lastKnownGoodFileName]);

    const stored = JSON.parse(await readFile(file, 'utf8')) as LastKnownGood;
    await writeFile(file, JSON.stringify({ ...stored, text: `${stored.text}# edited\n` }));
    expect(await fileLastKnownGoodStore.read(stateDir)).toMatchObject({ kind: 'unreadable', reason: expect.stringMatching(/sha256/) });
    await writeFile(file, '{"format": "baton-agent-last-known-good/1"');
    expect(await fileLastKnownGoodStore.read(stateDir)).toMatchObject({ kind: 'unreadable', reason: expect.stringMatching(/not valid JSON/) });
    await writeFile(file, '{"format": "something else"}');
    expect(await fileLastKnownGoodStore.read(stateDir)).toMatchObject({ kind: 'unreadable', reason: expect.stringMatching(/not a last known good copy/) });
  });

  it('a state directory that is not a directory is reported as unreadable, not thrown; writing to it rejects', async () => {
    const notADirectory = join(dir, 'a-file');
    await writeFile(notADirectory, 'x');
    expect(await fileLastKnownGoodStore.read(notADirectory)).toMatchObject({ kind: 'unreadable', reason: expect.stringMatching(/ENOTDIR/) });
    await expect(fileLastKnownGoodStore.write(notADirectory, copyOf(agentYaml()))).rejects.toThrow();
  });

  // Root reads through any mode bits.
  it.skipIf(process.getuid?.() === 0)('an unreadable state directory is reported, not thrown; writing to it rejects', async () => {
    const locked = join(dir, 'locked');
    await mkdir(locked);
    await fileLastKnownGoodStore.write(locked, copyOf(agentYaml()));
    await chmod(locked, 0o000);
    expect(await fileLastKnownGoodStore.read(locked)).toMatchObject({ kind: 'unreadable', reason: expect.stringMatching(/EACCES/) });
    await expect(fileLastKnownGoodStore.write(locked, copyOf(agentYaml()))).rejects.toThrow(/EACCES/);
  });
});
