import type { Logger } from '../../shared/logger.js';
import type { Clock } from '../../shared/clock.js';
import type { CredentialStore, RegistryCredentials } from './credentials.js';
import { RegistryAuthError, RegistryProtocolError } from './errors.js';
import { headerValues, statusError, type Headers, type HttpRequest, type Send } from './http.js';
import { tokenResponseSchema } from './schemas.js';

/** One challenge of a WWW-Authenticate header; scheme and parameter names lower-cased. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const tokenChar = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Parses WWW-Authenticate values (RFC 7235): several challenges per header, each a scheme then
 * comma-separated `name=value` parameters, values as tokens or quoted strings with `\` escapes.
 */
export function parseWwwAuthenticate(values: string[]): Challenge[] {
  const challenges: Challenge[] = [];
  for (const text of values) {
    let i = 0;
    let current: Challenge | undefined;
    const skip = (chars: RegExp): void => {
      while (i < text.length && chars.test(text[i] as string)) i += 1;
    };
    const readToken = (): string => {
      const start = i;
      while (i < text.length && tokenChar.test(text[i] as string)) i += 1;
      return text.slice(start, i);
    };
    while (i < text.length) {
      skip(/[\s,]/);
      const name = readToken();
      if (name === '') {
        i += 1; // Not a token: skip the stray character.
        continue;
      }
      skip(/[ \t]/);
      if (text[i] === '=') {
        i += 1;
        skip(/[ \t]/);
        let value = '';
        if (text[i] === '"') {
          i += 1;
          while (i < text.length && text[i] !== '"') {
            if (text[i] === '\\' && i + 1 < text.length) i += 1;
            value += text[i];
            i += 1;
          }
          i += 1; // The closing quote.
        } else {
          value = readToken();
        }
        if (current) current.params[name.toLowerCase()] = value;
      } else {
        current = { scheme: name.toLowerCase(), params: {} };
        challenges.push(current);
      }
    }
  }
  return challenges;
}

/** Resolves like `promise`, or rejects with the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

export function basicAuthorization(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

type RegistryScheme = { kind: 'basic' } | { kind: 'bearer'; realm: string; service: string | undefined };

interface CachedToken {
  token: string;
  expiresAtMs: number;
}

export interface AuthenticatorOptions {
  credentials: CredentialStore;
  clock: Clock;
  send: Send;
  logger: Logger;
}

/** Default lifetime of a token whose endpoint gives no expires_in (Docker token spec). */
export const DEFAULT_TOKEN_LIFETIME_MS = 60_000;

/** A token is dropped this long before it expires, so a request never goes out with one about to lapse. */
export function tokenMarginMs(lifetimeMs: number): number {
  return Math.min(10_000, lifetimeMs / 2);
}

/**
 * What a registry wants, learnt from its 401 challenges, and the bearer tokens it issued. After
 * the first challenge every request goes out with the right Authorization header at once: with a
 * valid cached token a poll is a single request.
 */
export class Authenticator {
  private readonly schemes = new Map<string, RegistryScheme>();
  /** Scope the registry named for a repository, when it differs from `repository:<name>:pull`. */
  private readonly scopes = new Map<string, string>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(private readonly options: AuthenticatorOptions) {}

  private scopeFor(registry: string, repository: string): string {
    return this.scopes.get(`${registry} ${repository}`) ?? `repository:${repository}:pull`;
  }

  /** The Authorization header for a request to this repository, or undefined to go anonymous. */
  async authorization(registry: string, repository: string, signal?: AbortSignal): Promise<string | undefined> {
    const scheme = this.schemes.get(registry);
    if (scheme === undefined) return undefined;
    if (scheme.kind === 'basic') {
      const credentials = this.options.credentials.lookup(registry);
      return credentials ? basicAuthorization(credentials) : undefined;
    }
    const scope = this.scopeFor(registry, repository);
    const key = `${registry} ${scope}`;
    const cached = this.tokens.get(key);
    if (cached && this.options.clock.nowMs() < cached.expiresAtMs) return `Bearer ${cached.token}`;
    this.tokens.delete(key);
    // Concurrent polls share one token request; it is bounded by the request timeout, and each
    // caller stops waiting as soon as its own signal aborts.
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetchToken(registry, scheme, scope, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return `Bearer ${await untilAborted(pending, signal)}`;
  }

  /**
   * Learns from a 401 answer. Returns when a retry with fresh authorization makes sense; throws
   * RegistryAuthError when it does not (no usable challenge, no credentials, basic credentials refused).
   */
  unauthorized(registry: string, repository: string, headers: Headers, sent: string | undefined): void {
    const challenges = parseWwwAuthenticate(headerValues(headers, 'www-authenticate'));
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      const realm = bearer.params.realm as string;
      this.schemes.set(registry, { kind: 'bearer', realm, service: bearer.params.service });
      const scope = bearer.params.scope;
      if (scope) this.scopes.set(`${registry} ${repository}`, scope);
      if (sent?.startsWith('Bearer ')) {
        // The registry refused a token we thought valid (revoked, wrong scope): forget it.
        this.tokens.delete(`${registry} ${this.scopeFor(registry, repository)}`);
      }
      return;
    }
    if (basic) {
      if (sent?.startsWith('Basic ')) throw new RegistryAuthError(registry, 'basic credentials rejected');
      if (!this.options.credentials.lookup(registry)) {
        throw new RegistryAuthError(registry, 'requires basic authentication and no credentials are configured for it');
      }
      this.schemes.set(registry, { kind: 'basic' });
      return;
    }
    throw new RegistryAuthError(
      registry,
      challenges.length === 0
        ? 'answered 401 without a WWW-Authenticate challenge'
        : `answered 401 with unsupported challenges (${challenges.map((c) => c.scheme).join(', ')})`,
    );
  }

  private async fetchToken(
    registry: string,
    scheme: Extract<RegistryScheme, { kind: 'bearer' }>,
    scope: string,
    key: string,
  ): Promise<string> {
    let url: URL;
    try {
      url = new URL(scheme.realm);
    } catch {
      throw new RegistryAuthError(registry, `token realm ${JSON.stringify(scheme.realm)} is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryAuthError(registry, `token realm ${url.href} must be http or https`);
    }
    if (scheme.service !== undefined) url.searchParams.set('service', scheme.service);
    for (const s of scope.split(' ').filter((x) => x !== '')) url.searchParams.append('scope', s);
    const credentials = this.options.credentials.lookup(registry);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (credentials) {
      url.searchParams.set('account', credentials.username);
      headers.authorization = basicAuthorization(credentials);
    }
    const req: HttpRequest = { method: 'GET', url: url.href, headers, maxBodyBytes: 1_048_576 };
    const startedAtMs = this.options.clock.nowMs();
    const res = await this.options.send(req);
    if (res.status === 401 || res.status === 403) {
      throw new RegistryAuthError(
        registry,
        credentials
          ? `token endpoint ${url.origin} refused the credentials of ${credentials.username} (${res.status})`
          : `token endpoint ${url.origin} requires credentials and none are configured (${res.status})`,
      );
    }
    if (res.status !== 200) throw statusError(registry, req, res, this.options.clock.nowMs());
    let document: unknown;
    try {
      document = JSON.parse(res.body.toString('utf8'));
    } catch (error) {
      throw new RegistryProtocolError(url.origin + url.pathname, 'token endpoint answered invalid JSON', { cause: error });
    }
    const parsed = tokenResponseSchema.safeParse(document);
    if (!parsed.success) {
      throw new RegistryProtocolError(
        url.origin + url.pathname,
        `token endpoint answer: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
      );
    }
    const token = (parsed.data.token ?? parsed.data.access_token) as string;
    const lifetimeMs = parsed.data.expires_in !== undefined ? parsed.data.expires_in * 1000 : DEFAULT_TOKEN_LIFETIME_MS;
    this.tokens.set(key, { token, expiresAtMs: startedAtMs + lifetimeMs - tokenMarginMs(lifetimeMs) });
    this.options.logger.debug({ registry, scope, expiresInS: lifetimeMs / 1000 }, 'registry token fetched');
    return token;
  }
}
