import { readFile } from 'node:fs/promises';
import { ConfigError, type ConfigProblem } from '../../shared/errors.js';
import { problemsOf } from '../../shared/config/load.js';
import { DOCKER_HUB_REGISTRY, isDockerHub } from '../../shared/image-ref.js';
import { dockerConfigSchema } from './schemas.js';

export interface RegistryCredentials {
  username: string;
  password: string;
}

/** Credentials by registry host (`host[:port]`, as in ImageReference.registry). */
export interface CredentialStore {
  lookup(registry: string): RegistryCredentials | undefined;
}

export const noCredentials: CredentialStore = { lookup: () => undefined };

/**
 * The registry host a config.json key names: `https://index.docker.io/v1/` → `registry-1.docker.io`,
 * `http://127.0.0.1:5000` → `127.0.0.1:5000`. Host names compare case-insensitively.
 */
export function normalizeRegistryHost(key: string): string {
  let host = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash !== -1) host = host.slice(0, slash);
  host = host.toLowerCase();
  return isDockerHub(host) ? DOCKER_HUB_REGISTRY : host;
}

const base64Pattern = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Reads the `auths` of a Docker config.json: `auth` (base64 of `user:password`) or `username` and
 * `password`. Entries with neither (their secret lives in a credsStore) are skipped; anything
 * malformed is a ConfigError naming the field.
 */
export function credentialsFromDockerConfig(document: unknown, source: string): Map<string, RegistryCredentials> {
  const parsed = dockerConfigSchema.safeParse(document);
  if (!parsed.success) throw new ConfigError(source, problemsOf(parsed.error));
  const problems: ConfigProblem[] = [];
  const entries = new Map<string, RegistryCredentials>();
  for (const [key, entry] of Object.entries(parsed.data.auths)) {
    const field = `auths.${key}`;
    if (entry.auth !== undefined && entry.auth !== '') {
      const text = entry.auth.trim();
      const decoded = base64Pattern.test(text) ? Buffer.from(text, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      if (colon <= 0) {
        problems.push({ path: `${field}.auth`, message: 'must be the base64 encoding of "username:password"' });
        continue;
      }
      entries.set(normalizeRegistryHost(key), { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) });
    } else if (entry.username !== undefined || entry.password !== undefined) {
      if (!entry.username) problems.push({ path: `${field}.username`, message: 'required next to password' });
      else if (!entry.password) problems.push({ path: `${field}.password`, message: 'required next to username' });
      else entries.set(normalizeRegistryHost(key), { username: entry.username, password: entry.password });
    }
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  return entries;
}

export interface CredentialStoreOptions {
  /** Per-registry credentials, e.g. from credentialsFromDockerConfig; these win. */
  entries?: Map<string, RegistryCredentials>;
  /** The agent config's `registry.username` and password file. */
  fallback?: RegistryCredentials & {
    /** Registries the fallback is sent to; all of them when undefined. */
    registries?: string[];
  };
}

export function createCredentialStore(options: CredentialStoreOptions): CredentialStore {
  const entries = new Map<string, RegistryCredentials>();
  for (const [key, value] of options.entries ?? []) entries.set(normalizeRegistryHost(key), value);
  const fallback = options.fallback;
  const fallbackHosts = fallback?.registries ? new Set(fallback.registries.map(normalizeRegistryHost)) : undefined;
  return {
    lookup(registry) {
      const host = normalizeRegistryHost(registry);
      const entry = entries.get(host);
      if (entry) return entry;
      if (fallback && (fallbackHosts === undefined || fallbackHosts.has(host))) {
        return { username: fallback.username, password: fallback.password };
      }
      return undefined;
    },
  };
}

async function readText(path: string, field: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [{ path: field, message: `cannot read ${path}: ${(error as Error).message}` }]);
  }
}

export interface LoadCredentialsOptions {
  /** The agent config's `registry.dockerConfigPath`. */
  dockerConfigPath?: string;
  /** The agent config's `registry.username` (needs passwordFile). */
  username?: string;
  passwordFile?: string;
  /** Registries username/password are sent to; all of them when undefined. */
  registries?: string[];
}

/** Builds the store from the agent config's `registry` section, reading the files it names. */
export async function loadCredentialStore(options: LoadCredentialsOptions): Promise<CredentialStore> {
  let entries: Map<string, RegistryCredentials> | undefined;
  if (options.dockerConfigPath !== undefined) {
    const text = await readText(options.dockerConfigPath, 'registry.dockerConfigPath');
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(options.dockerConfigPath, [{ path: '', message: `not valid JSON: ${(error as Error).message}` }]);
    }
    entries = credentialsFromDockerConfig(document, options.dockerConfigPath);
  }
  let fallback: CredentialStoreOptions['fallback'];
  if (options.username !== undefined) {
    if (options.passwordFile === undefined) {
      throw new ConfigError('agent config', [{ path: 'registry.passwordFile', message: 'registry.username needs registry.passwordFile' }]);
    }
    // A password file ends with one newline when written by an editor or `echo`; only that is stripped.
    const password = (await readText(options.passwordFile, 'registry.passwordFile')).replace(/\r?\n$/, '');
    if (password === '') {
      throw new ConfigError(options.passwordFile, [{ path: 'registry.passwordFile', message: 'the password file is empty' }]);
    }
    fallback = { username: options.username, password, registries: options.registries };
  }
  return createCredentialStore({ entries, fallback });
}
