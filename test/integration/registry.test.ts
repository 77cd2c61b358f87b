import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type ClosableRegistryClient } from '../../agent/registry/client.js';
import { noCredentials } from '../../agent/registry/credentials.js';
import { ManifestNotFoundError, PlatformNotFoundError } from '../../agent/registry/errors.js';
import type { Platform } from '../../agent/registry/platform.js';
import { systemClock } from '../../shared/clock.js';
import { silentLogger } from '../../shared/logger.js';
import { MediaTypes, deleteManifest, pushImage, pushIndex } from '../../tools/fleet/oci.js';
import { startRegistry, type RunningRegistry } from '../../tools/fleet/registry.js';

/** Records `METHOD path` of every request that goes through. */
function countingAgent(): { dispatcher: Dispatcher; requests: string[]; close(): Promise<void> } {
  const agent = new Agent();
  const requests: string[] = [];
  const dispatcher = agent.compose((dispatch) => (opts, handler) => {
    requests.push(`${opts.method} ${opts.path}`);
    return dispatch(opts, handler);
  });
  return { dispatcher, requests, close: () => agent.close() };
}

describe('registry client against a real docker-registry', () => {
  let registry: RunningRegistry;
  const clients: ClosableRegistryClient[] = [];
  const agents: Array<{ close(): Promise<void> }> = [];

  const client = (platform: Platform = { os: 'linux', architecture: 'amd64' }, dispatcher?: Dispatcher) => {
    const c = createRegistryClient({
      timeoutMs: 5_000,
      credentials: noCredentials,
      platform,
      insecureRegistries: [],
      logger: silentLogger(),
      clock: systemClock,
      dispatcher,
    });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    registry = await startRegistry();
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(agents.map((a) => a.close()));
    await registry?.stop();
  });

  it('resolves a tag to the digest the push returned, and follows the tag when it moves', async () => {
    const image = `${registry.host}/team/app:v1`;
    const first = await pushImage(registry.url, 'team/app', 'v1');
    await expect(client().resolve(image)).resolves.toEqual({
      digest: first.digest,
      tagDigest: first.digest,
      mediaType: MediaTypes.dockerManifest,
    });

    const second = await pushImage(registry.url, 'team/app', 'v1');
    expect(second.digest).not.toBe(first.digest);
    const resolved = await client().resolve(image);
    expect(resolved.digest).toBe(second.digest);
  });

  it('resolves an OCI manifest', async () => {
    const pushed = await pushImage(registry.url, 'team/oci', 'latest', { format: 'oci' });
    await expect(client().resolve(`${registry.host}/team/oci`)).resolves.toEqual({
      digest: pushed.digest,
      tagDigest: pushed.digest,
      mediaType: MediaTypes.ociManifest,
    });
  });

  it('resolves a reference pinned by digest', async () => {
    const pushed = await pushImage(registry.url, 'team/pinned', 'v1');
    const resolved = await client().resolve(`${registry.host}/team/pinned@${pushed.digest}`);
    expect(resolved.digest).toBe(pushed.digest);
  });

  it('raises ManifestNotFoundError for a missing tag and a missing repository', async () => {
    await pushImage(registry.url, 'team/present', 'v1');
    await expect(client().resolve(`${registry.host}/team/present:nope`)).rejects.toBeInstanceOf(ManifestNotFoundError);
    await expect(client().resolve(`${registry.host}/team/absent:v1`)).rejects.toMatchObject({
      name: 'ManifestNotFoundError',
      code: 'REGISTRY_MANIFEST_NOT_FOUND',
      repository: 'team/absent',
      reference: 'v1',
    });
  });

  it('raises ManifestNotFoundError once a manifest is deleted', async () => {
    const pushed = await pushImage(registry.url, 'team/deleted', 'v1');
    await deleteManifest(registry.url, 'team/deleted', pushed.digest);
    await expect(client().resolve(`${registry.host}/team/deleted:v1`)).rejects.toBeInstanceOf(ManifestNotFoundError);
  });

  for (const format of ['oci', 'docker'] as const) {
    it(`picks this host's platform from a multi-platform ${format} index, and caches it: one HEAD per poll`, async () => {
      const index = await pushIndex(registry.url, `team/multi-${format}`, 'v1', { format });
      const [amd64, arm64] = index.manifests;
      const image = `${registry.host}/team/multi-${format}:v1`;
      const indexType = format === 'oci' ? MediaTypes.ociIndex : MediaTypes.dockerManifestList;

      const counting = countingAgent();
      agents.push(counting);
      const onAmd64 = client({ os: 'linux', architecture: 'amd64' }, counting.dispatcher);
      await expect(onAmd64.resolve(image)).resolves.toEqual({ digest: amd64?.digest, tagDigest: index.digest, mediaType: indexType });
      expect(counting.requests).toEqual([
        `HEAD /v2/team/multi-${format}/manifests/v1`,
        `GET /v2/team/multi-${format}/manifests/${index.digest}`,
      ]);

      counting.requests.length = 0;
      await expect(onAmd64.resolve(image)).resolves.toMatchObject({ digest: amd64?.digest });
      expect(counting.requests).toEqual([`HEAD /v2/team/multi-${format}/manifests/v1`]);

      const onArm64 = client({ os: 'linux', architecture: 'arm64', variant: 'v8' });
      await expect(onArm64.resolve(image)).resolves.toEqual({ digest: arm64?.digest, tagDigest: index.digest, mediaType: indexType });
    });
  }

  it('follows an index tag to its new index, and refuses a platform the index lacks', async () => {
    const first = await pushIndex(registry.url, 'team/moving', 'v1');
    const c = client();
    expect((await c.resolve(`${registry.host}/team/moving:v1`)).digest).toBe(first.manifests[0]?.digest);
    const second = await pushIndex(registry.url, 'team/moving', 'v1');
    const resolved = await c.resolve(`${registry.host}/team/moving:v1`);
    expect(resolved).toMatchObject({ digest: second.manifests[0]?.digest, tagDigest: second.digest });

    await expect(client({ os: 'linux', architecture: 's390x' }).resolve(`${registry.host}/team/moving:v1`)).rejects.toBeInstanceOf(
      PlatformNotFoundError,
    );
  });
});

describe('startRegistry with notifications', () => {
  let registry: RunningRegistry | undefined;
  let server: Server | undefined;

  afterAll(async () => {
    await registry?.stop();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('POSTs push events to the webhook', async () => {
    const events: Array<{ action: string; target?: { repository?: string; tag?: string; digest?: string } }> = [];
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        try {
          const envelope = JSON.parse(body) as { events?: typeof events };
          events.push(...(envelope.events ?? []));
        } catch {
          // Ignore anything that is not an event envelope.
        }
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    registry = await startRegistry({ notificationsUrl: `http://127.0.0.1:${port}/events` });

    const pushed = await pushImage(registry.url, 'team/notified', 'v7');
    const deadline = Date.now() + 15_000;
    const isManifestPush = (e: (typeof events)[number]) =>
      e.action === 'push' && e.target?.repository === 'team/notified' && e.target.tag === 'v7';
    while (!events.some(isManifestPush) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(events.find(isManifestPush)?.target?.digest).toBe(pushed.digest);
  });

  it('refuses a webhook that is not on loopback', async () => {
    await expect(startRegistry({ notificationsUrl: 'http://10.1.2.3/events' })).rejects.toThrow(/loopback/);
  });
});
