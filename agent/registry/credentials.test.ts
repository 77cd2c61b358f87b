import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.js';
import {
  createCredentialStore,
  credentialsFromDockerConfig,
  loadCredentialStore,
  normalizeRegistryHost,
} from './credentials.js';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('normalizeRegistryHost', () => {
  it.each([
    ['https://index.docker.io/v1/', 'registry-1.docker.io'],
    ['docker.io', 'registry-1.docker.io'],
    ['http://127.0.0.1:5000', '127.0.0.1:5000'],
    ['Registry.Example.com/some/path', 'registry.example.com'],
    ['ghcr.io', 'ghcr.io'],
  ])('%s → %s', (key, host) => expect(normalizeRegistryHost(key)).toBe(host));
});

describe('credentialsFromDockerConfig', () => {
  it('reads auth and username/password entries, and skips entries kept in a credsStore', () => {
    const entries = credentialsFromDockerConfig(
      {
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub-user:hub:pass') },
          '127.0.0.1:5000': { username: 'local', password: 'secret' },
          'ghcr.io': {},
        },
        credsStore: 'desktop',
        experimental: 'enabled',
      },
      'config.json',
    );
    const store = createCredentialStore({ entries });
    expect(store.lookup('registry-1.docker.io')).toEqual({ username: 'hub-user', password: 'hub:pass' });
    expect(store.lookup('127.0.0.1:5000')).toEqual({ username: 'local', password: 'secret' });
    expect(store.lookup('ghcr.io')).toBeUndefined();
    expect(store.lookup('127.0.0.1:5001')).toBeUndefined();
  });

  it('names the field of a bad entry', () => {
    const error = configError(() =>
      credentialsFromDockerConfig(
        { auths: { 'r.io': { auth: 'not base64!' }, 'q.io': { auth: b64('nocolon') }, 'p.io': { username: 'u' } } },
        '/etc/baton/docker.json',
      ),
    );
    expect(error.source).toBe('/etc/baton/docker.json');
    expect(error.problems.map((p) => p.path)).toEqual(['auths.r.io.auth', 'auths.q.io.auth', 'auths.p.io.password']);
    expect(error.message).toContain('base64');
  });

  it('reports schema problems with their path', () => {
    const error = configError(() => credentialsFromDockerConfig({ auths: { 'r.io': { auth: 42 } } }, 'c.json'));
    expect(error.problems[0]?.path).toBe('auths.r.io.auth');
  });
});

describe('createCredentialStore fallback', () => {
  it('sends the fallback to the listed registries only, after the per-registry entries', () => {
    const store = createCredentialStore({
      entries: new Map([['127.0.0.1:5000', { username: 'a', password: 'b' }]]),
      fallback: { username: 'u', password: 'p', registries: ['registry.example.com', '127.0.0.1:5000'] },
    });
    expect(store.lookup('127.0.0.1:5000')).toEqual({ username: 'a', password: 'b' });
    expect(store.lookup('REGISTRY.example.com')).toEqual({ username: 'u', password: 'p' });
    expect(store.lookup('registry-1.docker.io')).toBeUndefined();
    expect(createCredentialStore({ fallback: { username: 'u', password: 'p' } }).lookup('any.io')).toEqual({
      username: 'u',
      password: 'p',
    });
  });
});

describe('loadCredentialStore', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'baton-credentials-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a config.json and a password file (one trailing newline stripped)', async () => {
    const configPath = join(dir, 'config.json');
    const passwordFile = join(dir, 'password');
    await writeFile(configPath, JSON.stringify({ auths: { 'ghcr.io': { auth: b64('gh:token') } } }));
    await writeFile(passwordFile, 'pa ss\n');
    const store = await loadCredentialStore({ dockerConfigPath: configPath, username: 'me', passwordFile });
    expect(store.lookup('ghcr.io')).toEqual({ username: 'gh', password: 'token' });
    expect(store.lookup('127.0.0.1:5000')).toEqual({ username: 'me', password: 'pa ss' });
  });

  it('raises ConfigError for an unreadable file, invalid JSON, an empty password', async () => {
    await expect(loadCredentialStore({ dockerConfigPath: join(dir, 'missing.json') })).rejects.toMatchObject({
      name: 'ConfigError',
      problems: [{ path: 'registry.dockerConfigPath' }],
    });
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{ nope');
    await expect(loadCredentialStore({ dockerConfigPath: bad })).rejects.toThrow(/not valid JSON/);
    const empty = join(dir, 'empty');
    await writeFile(empty, '\n');
    await expect(loadCredentialStore({ username: 'me', passwordFile: empty })).rejects.toThrow(/empty/);
    await expect(loadCredentialStore({ username: 'me' })).rejects.toThrow(/passwordFile/);
  });

  it('has no credentials when nothing is configured', async () => {
    expect((await loadCredentialStore({})).lookup('ghcr.io')).toBeUndefined();
  });
});
