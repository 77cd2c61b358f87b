import { createHash } from 'node:crypto';
import { MockAgent, type Interceptable } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../shared/logger.js';
import { createRegistryClient, isLoopbackRegistry, registryScheme } from './client.js';
import { createCredentialStore, noCredentials, type CredentialStore } from './credentials.js';
import {
  InvalidDigestHeaderError,
  ManifestNotFoundError,
  PlatformNotFoundError,
  RegistryAuthError,
  RegistryConnectionError,
  RegistryError,
  RegistryProtocolError,
  RegistryRateLimitedError,
  RegistryTimeoutError,
  UnexpectedRegistryStatusError,
} from './errors.js';
import type { Platform } from './platform.js';
import { MediaType } from './schemas.js';
import { ManualClock } from '../../shared/testing/clock.js';

const REGISTRY = 'registry.example.com';
const ORIGIN = `https://${REGISTRY}`;
const AUTH_ORIGIN = 'https://auth.example.com';
const IMAGE = `${REGISTRY}/team/app:v1`;
const HEAD_PATH = '/v2/team/app/manifests/v1';
const sha = (text: string): string => `sha256:${createHash('sha256').update(text).digest('hex')}`;
const D1 = sha('one');
const D2 = sha('two');
const CHALLENGE = `Bearer realm="${AUTH_ORIGIN}/token",service="${REGISTRY}",scope="repository:team/app:pull"`;
const creds = createCredentialStore({ entries: new Map([[REGISTRY, { username: 'alice', password: 's3cret' }]]) });
const BASIC = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;

const mocks: MockAgent[] = [];
afterEach(async () => {
  await Promise.all(mocks.splice(0).map((m) => m.close()));
});

function setup(options: { credentials?: CredentialStore; timeoutMs?: number; platform?: Platform; insecure?: string[] } = {}) {
  const mock = new MockAgent({ enableCallHistory: true });
  mock.disableNetConnect();
  mocks.push(mock);
  const clock = new ManualClock();
  const client = createRegistryClient({
    timeoutMs: options.timeoutMs ?? 2_000,
    credentials: options.credentials ?? noCredentials,
    platform: options.platform ?? { os: 'linux', architecture: 'amd64' },
    insecureRegistries: options.insecure ?? [],
    logger: silentLogger(),
    clock,
    dispatcher: mock,
  });
  const calls = () =>
    (mock.getCallHistory()?.calls() ?? []).map((c) => ({
      request: `${c.method} ${c.origin}${c.path}`,
      authorization: c.headers?.authorization,
      searchParams: c.searchParams,
      accept: c.headers?.accept,
    }));
  const requests = () => calls().map((c) => c.request);
  const clear = () => mock.clearCallHistory();
  return { mock, clock, client, calls, requests, clear, registry: mock.get(ORIGIN), auth: mock.get(AUTH_ORIGIN) };
}

const manifestHeaders = (digest: string, mediaType: string = MediaType.dockerManifest) => ({
  'docker-content-digest': digest,
  'content-type': mediaType,
});

/** HEAD answers 200 only with this Authorization (or none, when undefined); 401 with the challenge otherwise. */
function headWith(pool: Interceptable, authorization: string | undefined, digest: string, times = 1) {
  pool
    .intercept({
      path: HEAD_PATH,
      method: 'HEAD',
      headers: (h: Record<string, string>) => h.authorization === authorization,
    })
    .reply(200, '', { headers: manifestHeaders(digest) })
    .times(times);
}

function challengeOnce(pool: Interceptable, challenge = CHALLENGE) {
  pool
    .intercept({ path: HEAD_PATH, method: 'HEAD', headers: (h: Record<string, string>) => h.authorization === undefined })
    .reply(401, '', { headers: { 'www-authenticate': challenge } });
}

function tokenOnce(pool: Interceptable, body: object, status = 200) {
  pool.intercept({ path: (p: string) => p.startsWith('/token?'), method: 'GET' }).reply(status, JSON.stringify(body), {
    headers: { 'content-type': 'application/json' },
  });
}

describe('resolve: a single manifest', () => {
  it('is one HEAD with the Accept header listing indexes and manifests, over HTTPS', async () => {
    const t = setup();
    headWith(t.registry, undefined, D1);
    await expect(t.client.resolve(IMAGE)).resolves.toEqual({ digest: D1, tagDigest: D1, mediaType: MediaType.dockerManifest });
    const [call] = t.calls();
    expect(t.calls()).toHaveLength(1);
    expect(call?.request).toBe(`HEAD ${ORIGIN}${HEAD_PATH}`);
    expect(call?.accept?.toString().split(/,\s*/)).toEqual([
      'application/vnd.oci.image.index.v1+json',
      'application/vnd.docker.distribution.manifest.list.v2+json',
      'application/vnd.oci.image.manifest.v1+json',
      'application/vnd.docker.distribution.manifest.v2+json',
    ]);
  });

  it('strips Content-Type parameters and accepts OCI manifests', async () => {
    const t = setup();
    t.registry
      .intercept({ path: HEAD_PATH, method: 'HEAD' })
      .reply(200, '', { headers: manifestHeaders(D1, `${MediaType.ociManifest}; charset=utf-8`) });
    await expect(t.client.resolve(IMAGE)).resolves.toMatchObject({ mediaType: MediaType.ociManifest });
  });

  it('asks by digest for a pinned reference', async () => {
    const t = setup();
    t.registry.intercept({ path: `/v2/team/app/manifests/${D2}`, method: 'HEAD' }).reply(200, '', { headers: manifestHeaders(D2) });
    await expect(t.client.resolve(`${REGISTRY}/team/app@${D2}`)).resolves.toMatchObject({ digest: D2, tagDigest: D2 });
  });

  it('speaks plain HTTP to loopback and insecure registries', async () => {
    const t = setup({ insecure: ['insecure.example.com:5000', 'http://other.example.com'] });
    for (const origin of ['http://127.0.0.1:5000', 'http://insecure.example.com:5000', 'http://other.example.com:81', 'http://localhost']) {
      t.mock.get(origin).intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(200, '', { headers: manifestHeaders(D1) });
      const host = new URL(origin).host;
      await expect(t.client.resolve(`${host}/team/app:v1`)).resolves.toMatchObject({ digest: D1 });
    }
    expect(registryScheme('insecure.example.com:5001', ['insecure.example.com:5000'])).toBe('https');
    // registry.tls set: TLS to loopback too, unless the registry is listed as insecure.
    expect(registryScheme('127.0.0.1:5000', [], true)).toBe('https');
    expect(registryScheme('127.0.0.1:5000', ['127.0.0.1:5000'], true)).toBe('http');
    expect(isLoopbackRegistry('127.8.9.10:1')).toBe(true);
    expect(isLoopbackRegistry('[::1]:5000')).toBe(true);
    expect(isLoopbackRegistry('127.example.com')).toBe(false);
  });

  it('raises ManifestNotFoundError on 404', async () => {
    const t = setup();
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(404, '');
    await expect(t.client.resolve(IMAGE)).rejects.toMatchObject({
      name: 'ManifestNotFoundError',
      registry: REGISTRY,
      repository: 'team/app',
      reference: 'v1',
    });
  });

  it('rejects an invalid reference before any request', async () => {
    const t = setup();
    await expect(t.client.resolve('Bad/Name')).rejects.toMatchObject({ code: 'IMAGE_REFERENCE_INVALID' });
    expect(t.calls()).toHaveLength(0);
  });
});

describe('resolve: bad answers never give a digest', () => {
  it.each([
    ['missing', undefined],
    ['malformed', 'sha256:1234'],
    ['upper-case', `sha256:${'A'.repeat(64)}`],
    ['other algorithm', `md5:${'a'.repeat(32)}`],
  ])('%s Docker-Content-Digest → InvalidDigestHeaderError', async (_, header) => {
    const t = setup();
    const headers: Record<string, string> = { 'content-type': MediaType.dockerManifest };
    if (header !== undefined) headers['docker-content-digest'] = header;
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(200, '', { headers });
    const error = await t.client.resolve(IMAGE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidDigestHeaderError);
    expect(error).toMatchObject({ code: 'REGISTRY_DIGEST_INVALID', received: header });
  });

  it('a digest that is not the pinned one → RegistryProtocolError', async () => {
    const t = setup();
    t.registry.intercept({ path: `/v2/team/app/manifests/${D2}`, method: 'HEAD' }).reply(200, '', { headers: manifestHeaders(D1) });
    await expect(t.client.resolve(`${REGISTRY}/team/app@${D2}`)).rejects.toBeInstanceOf(RegistryProtocolError);
  });

  it.each([
    ['schema 1', 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
    ['missing', undefined],
  ])('%s Content-Type → RegistryProtocolError', async (_, contentType) => {
    const t = setup();
    const headers: Record<string, string> = { 'docker-content-digest': D1 };
    if (contentType !== undefined) headers['content-type'] = contentType;
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(200, '', { headers });
    await expect(t.client.resolve(IMAGE)).rejects.toBeInstanceOf(RegistryProtocolError);
  });

  it('429 with Retry-After → RegistryRateLimitedError with retryAfterMs', async () => {
    const t = setup();
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(429, '', { headers: { 'retry-after': '7' } });
    const error = await t.client.resolve(IMAGE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryRateLimitedError);
    expect(error).toMatchObject({ code: 'REGISTRY_RATE_LIMITED', status: 429, retryAfterMs: 7_000 });
  });

  it('503 with an HTTP-date Retry-After, read against the injected clock', async () => {
    const t = setup();
    const at = new Date(t.clock.nowMs() + 90_000).toUTCString();
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(503, '', { headers: { 'retry-after': at } });
    await expect(t.client.resolve(IMAGE)).rejects.toMatchObject({ name: 'RegistryRateLimitedError', status: 503, retryAfterMs: 90_000 });
  });

  it('429 without Retry-After is rate limiting without a hint; 503 without it and 500 are unexpected', async () => {
    const t = setup();
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(429, '');
    await expect(t.client.resolve(IMAGE)).rejects.toMatchObject({ name: 'RegistryRateLimitedError', retryAfterMs: undefined });
    for (const status of [503, 500, 302, 400]) {
      t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(status, '');
      const error = await t.client.resolve(IMAGE).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnexpectedRegistryStatusError);
      expect(error).toMatchObject({ status, method: 'HEAD' });
    }
  });

  it('403 → RegistryAuthError', async () => {
    const t = setup();
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(403, '');
    await expect(t.client.resolve(IMAGE)).rejects.toBeInstanceOf(RegistryAuthError);
  });

  it('a registry that does not answer in time → RegistryTimeoutError', async () => {
    const t = setup({ timeoutMs: 50 });
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(200, '', { headers: manifestHeaders(D1) }).delay(2_000);
    const error = await t.client.resolve(IMAGE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryTimeoutError);
    expect(error).toMatchObject({ code: 'REGISTRY_TIMEOUT', timeoutMs: 50 });
  });

  it("the caller's abort is passed through, not turned into a timeout", async () => {
    const t = setup({ timeoutMs: 5_000 });
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(200, '', { headers: manifestHeaders(D1) }).delay(2_000);
    const controller = new AbortController();
    const pending = t.client.resolve(IMAGE, controller.signal).catch((e: unknown) => e);
    controller.abort(new Error('shutting down'));
    const error = await pending;
    expect(error).not.toBeInstanceOf(RegistryError);
    expect((error as Error).message).toBe('shutting down');
  });

  it('a connection failure → RegistryConnectionError', async () => {
    const t = setup();
    t.registry
      .intercept({ path: HEAD_PATH, method: 'HEAD' })
      .replyWithError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const error = await t.client.resolve(IMAGE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryConnectionError);
    expect((error as Error).message).toContain('ECONNREFUSED');
  });
});

describe('resolve: bearer tokens', () => {
  it('401 → token endpoint with basic credentials → retry with Bearer; then one HEAD per poll', async () => {
    const t = setup({ credentials: creds });
    challengeOnce(t.registry);
    tokenOnce(t.auth, { token: 'tok-1', expires_in: 300 });
    headWith(t.registry, 'Bearer tok-1', D1, 3);

    await expect(t.client.resolve(IMAGE)).resolves.toMatchObject({ digest: D1 });
    const calls = t.calls();
    expect(calls.map((c) => c.request)).toEqual([
      `HEAD ${ORIGIN}${HEAD_PATH}`,
      `GET ${AUTH_ORIGIN}/token`,
      `HEAD ${ORIGIN}${HEAD_PATH}`,
    ]);
    expect(calls[0]?.authorization).toBeUndefined();
    expect(calls[1]?.authorization).toBe(BASIC);
    expect(calls[1]?.searchParams).toEqual({ service: REGISTRY, scope: 'repository:team/app:pull', account: 'alice' });
    expect(calls[2]?.authorization).toBe('Bearer tok-1');

    t.clear();
    await t.client.resolve(IMAGE);
    await t.client.resolve(IMAGE);
    expect(t.requests()).toEqual([`HEAD ${ORIGIN}${HEAD_PATH}`, `HEAD ${ORIGIN}${HEAD_PATH}`]);
  });

  it('keeps the token until expires_in minus the margin, then fetches a new one without a 401', async () => {
    const t = setup({ credentials: creds });
    challengeOnce(t.registry);
    tokenOnce(t.auth, { token: 'tok-1', expires_in: 60 });
    headWith(t.registry, 'Bearer tok-1', D1, 2);
    await t.client.resolve(IMAGE);

    await t.clock.advance(49_999); // 60 s lifetime, 10 s margin
    t.clear();
    await t.client.resolve(IMAGE);
    expect(t.requests()).toEqual([`HEAD ${ORIGIN}${HEAD_PATH}`]);

    await t.clock.advance(1);
    tokenOnce(t.auth, { access_token: 'tok-2' }); // no expires_in: 60 s
    headWith(t.registry, 'Bearer tok-2', D2, 2);
    t.clear();
    await expect(t.client.resolve(IMAGE)).resolves.toMatchObject({ digest: D2 });
    expect(t.requests()).toEqual([`GET ${AUTH_ORIGIN}/token`, `HEAD ${ORIGIN}${HEAD_PATH}`]);

    await t.clock.advance(49_000);
    t.clear();
    await t.client.resolve(IMAGE);
    expect(t.requests()).toEqual([`HEAD ${ORIGIN}${HEAD_PATH}`]);
  });

  it('fetches an anonymous token without credentials', async () => {
    const t = setup();
    challengeOnce(t.registry);
    tokenOnce(t.auth, { token: 'anon' });
    headWith(t.registry, 'Bearer anon', D1);
    await t.client.resolve(IMAGE);
    const token = t.calls()[1];
    expect(token?.authorization).toBeUndefined();
    expect(token?.searchParams).toEqual({ service: REGISTRY, scope: 'repository:team/app:pull' });
  });

  it('asks once for the token when polls run concurrently', async () => {
    const t = setup({ credentials: creds });
    t.registry
      .intercept({ path: HEAD_PATH, method: 'HEAD', headers: (h: Record<string, string>) => h.authorization === undefined })
      .reply(401, '', { headers: { 'www-authenticate': CHALLENGE } })
      .times(2);
    tokenOnce(t.auth, { token: 'tok-1' });
    headWith(t.registry, 'Bearer tok-1', D1, 2);
    await Promise.all([t.client.resolve(IMAGE), t.client.resolve(IMAGE)]);
    expect(t.requests().filter((r) => r.startsWith('GET'))).toHaveLength(1);
  });

  it('drops a token the registry refuses and fetches a fresh one; a second refusal is RegistryAuthError', async () => {
    const t = setup({ credentials: creds });
    challengeOnce(t.registry);
    tokenOnce(t.auth, { token: 'tok-1', expires_in: 300 });
    headWith(t.registry, 'Bearer tok-1', D1);
    await t.client.resolve(IMAGE);

    // Revoked: the cached token is refused, a new one is fetched and works.
    t.registry
      .intercept({ path: HEAD_PATH, method: 'HEAD', headers: (h: Record<string, string>) => h.authorization === 'Bearer tok-1' })
      .reply(401, '', { headers: { 'www-authenticate': CHALLENGE } });
    tokenOnce(t.auth, { token: 'tok-2', expires_in: 300 });
    headWith(t.registry, 'Bearer tok-2', D2);
    await expect(t.client.resolve(IMAGE)).resolves.toMatchObject({ digest: D2 });

    // Refused again even with a fresh token: give up this poll, and forget the token for the next.
    t.registry
      .intercept({ path: HEAD_PATH, method: 'HEAD', headers: (h: Record<string, string>) => h.authorization?.startsWith('Bearer') ?? false })
      .reply(401, '', { headers: { 'www-authenticate': `${CHALLENGE},error="insufficient_scope"` } })
      .times(2);
    tokenOnce(t.auth, { token: 'tok-3', expires_in: 300 });
    await expect(t.client.resolve(IMAGE)).rejects.toBeInstanceOf(RegistryAuthError);
    t.clear();
    tokenOnce(t.auth, { token: 'tok-4', expires_in: 300 });
    headWith(t.registry, 'Bearer tok-4', D1);
    await expect(t.client.resolve(IMAGE)).resolves.toMatchObject({ digest: D1 });
    expect(t.requests()[0]).toMatch(/^GET /);
  });

  it('token endpoint refusing the credentials → RegistryAuthError; rate limiting → RegistryRateLimitedError', async () => {
    const t = setup({ credentials: creds });
    challengeOnce(t.registry);
    tokenOnce(t.auth, { errors: [] }, 401);
    await expect(t.client.resolve(IMAGE)).rejects.toThrow(/refused the credentials of alice/);

    t.auth
      .intercept({ path: (p: string) => p.startsWith('/token?'), method: 'GET' })
      .reply(429, '', { headers: { 'retry-after': '30' } });
    await expect(t.client.resolve(IMAGE)).rejects.toMatchObject({ name: 'RegistryRateLimitedError', retryAfterMs: 30_000 });
  });

  it('a token answer without a token, or not JSON → RegistryProtocolError', async () => {
    const t = setup();
    challengeOnce(t.registry);
    tokenOnce(t.auth, { expires_in: 60 });
    await expect(t.client.resolve(IMAGE)).rejects.toThrow(/neither token nor access_token/);
    t.auth.intercept({ path: (p: string) => p.startsWith('/token?'), method: 'GET' }).reply(200, '<html>');
    await expect(t.client.resolve(IMAGE)).rejects.toBeInstanceOf(RegistryProtocolError);
  });

  it('a 401 without a usable challenge → RegistryAuthError', async () => {
    const t = setup({ credentials: creds });
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(401, '');
    await expect(t.client.resolve(IMAGE)).rejects.toThrow(/without a WWW-Authenticate challenge/);
    challengeOnce(t.registry, 'Negotiate');
    await expect(t.client.resolve(IMAGE)).rejects.toThrow(/unsupported challenges \(negotiate\)/);
    challengeOnce(t.registry, 'Bearer realm="ftp://auth.example.com/token"');
    await expect(t.client.resolve(IMAGE)).rejects.toThrow(/must be http or https/);
  });
});

describe('resolve: basic auth', () => {
  it('401 Basic → retry with credentials; later polls send them at once', async () => {
    const t = setup({ credentials: creds });
    challengeOnce(t.registry, 'Basic realm="Registry Realm"');
    headWith(t.registry, BASIC, D1, 2);
    await expect(t.client.resolve(IMAGE)).resolves.toMatchObject({ digest: D1 });
    expect(t.calls().map((c) => c.authorization)).toEqual([undefined, BASIC]);
    t.clear();
    await t.client.resolve(IMAGE);
    expect(t.calls().map((c) => c.authorization)).toEqual([BASIC]);
  });

  it('Basic without credentials, or refused credentials → RegistryAuthError', async () => {
    const anonymous = setup();
    challengeOnce(anonymous.registry, 'Basic realm="r"');
    await expect(anonymous.client.resolve(IMAGE)).rejects.toThrow(/no credentials are configured/);

    const t = setup({ credentials: creds });
    challengeOnce(t.registry, 'Basic realm="r"');
    t.registry
      .intercept({ path: HEAD_PATH, method: 'HEAD', headers: (h: Record<string, string>) => h.authorization === BASIC })
      .reply(401, '', { headers: { 'www-authenticate': 'Basic realm="r"' } });
    await expect(t.client.resolve(IMAGE)).rejects.toBeInstanceOf(RegistryAuthError);
  });
});

describe('resolve: multi-platform indexes', () => {
  const AMD64 = sha('amd64');
  const ARM64 = sha('arm64');
  const ARMV7 = sha('armv7');
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [
      { mediaType: MediaType.ociManifest, digest: ARM64, size: 500, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MediaType.ociManifest, digest: AMD64, size: 500, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MediaType.ociManifest, digest: ARMV7, size: 500, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      {
        mediaType: MediaType.ociManifest,
        digest: sha('attestation'),
        size: 500,
        platform: { os: 'unknown', architecture: 'unknown' },
        annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
      },
    ],
  });
  const INDEX = sha(index);

  function serveIndex(pool: Interceptable, body: string, digest: string, times = 1) {
    pool
      .intercept({ path: HEAD_PATH, method: 'HEAD' })
      .reply(200, '', { headers: manifestHeaders(digest, MediaType.ociIndex) })
      .times(times);
    pool
      .intercept({ path: `/v2/team/app/manifests/${digest}`, method: 'GET' })
      .reply(200, body, { headers: { 'content-type': MediaType.ociIndex, 'docker-content-digest': digest } });
  }

  it.each([
    [{ os: 'linux', architecture: 'amd64' }, AMD64],
    [{ os: 'linux', architecture: 'arm64' }, ARM64],
    [{ os: 'linux', architecture: 'arm', variant: 'v8' }, ARMV7],
  ])('%o → its manifest; the next poll of the unchanged index is one HEAD', async (platform, expected) => {
    const t = setup({ platform });
    serveIndex(t.registry, index, INDEX, 2);
    await expect(t.client.resolve(IMAGE)).resolves.toEqual({ digest: expected, tagDigest: INDEX, mediaType: MediaType.ociIndex });
    expect(t.requests()).toEqual([`HEAD ${ORIGIN}${HEAD_PATH}`, `GET ${ORIGIN}/v2/team/app/manifests/${INDEX}`]);
    t.clear();
    await expect(t.client.resolve(IMAGE)).resolves.toMatchObject({ digest: expected });
    expect(t.requests()).toEqual([`HEAD ${ORIGIN}${HEAD_PATH}`]);
  });

  it('sends the bearer token on the index GET too', async () => {
    const t = setup({ credentials: creds });
    challengeOnce(t.registry);
    tokenOnce(t.auth, { token: 'tok-1', expires_in: 300 });
    t.registry
      .intercept({ path: HEAD_PATH, method: 'HEAD', headers: { authorization: 'Bearer tok-1' } })
      .reply(200, '', { headers: manifestHeaders(INDEX, MediaType.ociIndex) });
    t.registry
      .intercept({ path: `/v2/team/app/manifests/${INDEX}`, method: 'GET', headers: { authorization: 'Bearer tok-1' } })
      .reply(200, index);
    await expect(t.client.resolve(IMAGE)).resolves.toMatchObject({ digest: AMD64 });
  });

  it('no manifest for this platform → PlatformNotFoundError listing what there is', async () => {
    const t = setup({ platform: { os: 'linux', architecture: 's390x' } });
    serveIndex(t.registry, index, INDEX);
    const error = await t.client.resolve(IMAGE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlatformNotFoundError);
    expect((error as Error).message).toContain('linux/s390x');
    expect((error as PlatformNotFoundError).available).toEqual(['linux/arm64/v8', 'linux/amd64', 'linux/arm/v7', 'unknown/unknown']);
  });

  it('an index body whose digest is not the one asked for → RegistryProtocolError', async () => {
    const t = setup();
    serveIndex(t.registry, index.replace(AMD64, D1), INDEX);
    await expect(t.client.resolve(IMAGE)).rejects.toThrow(/not the requested/);
  });

  it.each([
    ['not JSON', '{"schemaVersion": 2,'],
    ['a bad digest', index.replace(AMD64, 'sha256:nope')],
    ['no manifests', JSON.stringify({ schemaVersion: 2 })],
  ])('an index that is %s → RegistryProtocolError', async (_, body) => {
    const t = setup();
    serveIndex(t.registry, body, sha(body));
    await expect(t.client.resolve(IMAGE)).rejects.toBeInstanceOf(RegistryProtocolError);
  });

  it('the index vanishing between HEAD and GET → ManifestNotFoundError', async () => {
    const t = setup();
    t.registry.intercept({ path: HEAD_PATH, method: 'HEAD' }).reply(200, '', { headers: manifestHeaders(INDEX, MediaType.dockerManifestList) });
    t.registry.intercept({ path: `/v2/team/app/manifests/${INDEX}`, method: 'GET' }).reply(404, '{"errors":[]}');
    await expect(t.client.resolve(IMAGE)).rejects.toBeInstanceOf(ManifestNotFoundError);
  });

  it('an index larger than 4 MiB is refused', async () => {
    const t = setup();
    const huge = JSON.stringify({ schemaVersion: 2, manifests: [], padding: 'x'.repeat(4 * 1024 * 1024) });
    serveIndex(t.registry, huge, sha(huge));
    await expect(t.client.resolve(IMAGE)).rejects.toThrow(/exceeds the limit/);
  });
});
