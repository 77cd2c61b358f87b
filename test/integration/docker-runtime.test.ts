/**
 * The agent's Docker runtime against a real dockerd and a real registry: a builder engine makes
 * the test images and pushes them, a second engine (a separate image store) pulls and runs them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ContainerConflictError,
  ContainerNotFoundError,
  ImageNotPresentError,
  ImagePullError,
  InvalidImageReferenceError,
  createDockerRuntime,
} from '../../agent/docker/runtime.js';
import type { ContainerRuntime, ContainerSpec } from '../../agent/ports.js';
import { silentLogger } from '../../shared/logger.js';
import { startDockerd, type TestDockerd } from '../../tools/fleet/dockerd.js';
import { buildTestImages, pushAs, testAppImage, testAppPaths, type TestImages } from '../../tools/fleet/images.js';
import { freePort, startRegistry, type RunningRegistry } from '../../tools/fleet/registry.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: await response.text() };
}

let registry: RunningRegistry;
let builder: TestDockerd;
let host: TestDockerd;
let images: TestImages;
let runtime: ContainerRuntime;
let docker: Docker;
let volumeDir: string;
const timings: Record<string, number> = {};

const ref = (digest: string) => testAppImage(registry.host, digest);

beforeAll(async () => {
  let t = performance.now();
  registry = await startRegistry();
  timings.registry = performance.now() - t;
  t = performance.now();
  [builder, host] = await Promise.all([startDockerd({ name: 'builder' }), startDockerd({ name: 'host-1', hostAddress: '127.0.0.2' })]);
  timings.startDockerdPair = performance.now() - t;
  t = performance.now();
  images = await buildTestImages(builder.socketPath, registry.host);
  timings.buildTestImages = performance.now() - t;
  runtime = createDockerRuntime({ socketPath: host.socketPath, timeoutMs: 15_000, logger: silentLogger() });
  docker = new Docker({ socketPath: host.socketPath });
  volumeDir = await mkdtemp(join(tmpdir(), 'baton-vol-'));
});

afterAll(async () => {
  const t = performance.now();
  await Promise.allSettled([builder?.stop(), host?.stop(), registry?.stop()]);
  timings.teardown = performance.now() - t;
  if (volumeDir) await rm(volumeDir, { recursive: true, force: true });
  console.log('timings (ms):', Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])));
});

function spec(overrides: Partial<ContainerSpec> & { name: string }): ContainerSpec {
  return {
    env: {},
    ports: [],
    volumes: [],
    labels: {},
    restartPolicy: 'no',
    networkMode: 'host',
    stopTimeoutSeconds: 5,
    ...overrides,
  };
}

describe('test images', () => {
  it('pushes three variants with distinct digests, and pushAs re-tags without a new digest', async () => {
    expect(new Set([images.v1, images.v2, images.bad]).size).toBe(3);
    for (const digest of Object.values(images)) expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const latest = await pushAs(builder.socketPath, testAppImage(registry.host, 'v2'), testAppImage(registry.host, 'latest'));
    expect(latest).toBe(images.v2);
  });
});

describe('DockerRuntime on a real engine', () => {
  it('pulls by digest into a separate engine', async () => {
    expect(await runtime.hasImage(ref(images.v1))).toBe(false);
    let t = performance.now();
    await runtime.pull(ref(images.v1));
    timings.pull = performance.now() - t;
    expect(await runtime.hasImage(ref(images.v1))).toBe(true);
    expect(await runtime.hasImage(ref(images.v2))).toBe(false);
    t = performance.now();
    await runtime.pull(ref(images.v1)); // already there: fine
    timings.pullAgain = performance.now() - t;
  });

  it('fails a pull of a digest the registry does not have with ImagePullError (notFound)', async () => {
    const missing = ref(`sha256:${'0'.repeat(64)}`);
    const error = await runtime.pull(missing).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ImagePullError);
    expect((error as ImagePullError).notFound).toBe(true);
    expect((error as ImagePullError).code).toBe('IMAGE_NOT_FOUND');
    await expect(runtime.pull(`${registry.host}/testapp:v1`)).rejects.toBeInstanceOf(InvalidImageReferenceError);
    await expect(runtime.pull(`${registry.host}/nothing-here@sha256:${'1'.repeat(64)}`)).rejects.toBeInstanceOf(ImagePullError);
  });

  it('creates a container with every declared setting, starts it, and it serves', async () => {
    const appPort = await freePort();
    const image = ref(images.v1);
    const info = await runtime.create(
      spec({
        name: 'web',
        entrypoint: ['/bin/sh', '-c'],
        command: ['exec /bin/testapp'],
        env: { APP_PORT: String(appPort), APP_NODE: 'node-1', GREETING: 'a=b c' },
        ports: [{ containerPort: 8080, hostPort: appPort, protocol: 'tcp', hostIp: '127.0.0.1' }],
        volumes: [
          { source: join(volumeDir, 'data'), target: '/data', readOnly: false },
          { source: volumeDir, target: '/config', readOnly: true },
        ],
        labels: { team: 'web', 'baton.service': 'spoofed' },
        restartPolicy: 'unless-stopped',
        stopTimeoutSeconds: 7,
        user: 'nobody',
      }),
      'web-svc',
      image,
      images.v1,
    );
    expect(info).toMatchObject({ name: 'web', image, digest: images.v1, running: false, exitCode: null, health: 'none' });
    expect(info.labels).toMatchObject({ team: 'web', 'baton.service': 'web-svc', 'baton.digest': images.v1, 'baton.image': image });

    const raw = await docker.getContainer('web').inspect();
    expect(raw.Config.Image).toBe(image);
    expect(raw.Config.Entrypoint).toEqual(['/bin/sh', '-c']);
    expect(raw.Config.Cmd).toEqual(['exec /bin/testapp']);
    expect(raw.Config.Env).toEqual(expect.arrayContaining([`APP_PORT=${appPort}`, 'APP_NODE=node-1', 'GREETING=a=b c', 'APP_ADDR=127.0.0.1']));
    expect(raw.Config.Labels).toEqual({
      team: 'web',
      'baton.service': 'web-svc',
      'baton.digest': images.v1,
      'baton.image': image,
      'org.opencontainers.image.title': 'baton-testapp',
      'baton.testapp.variant': 'v1',
    });
    expect(raw.Config.User).toBe('nobody');
    expect((raw.Config as { StopTimeout?: number }).StopTimeout).toBe(7);
    expect(raw.HostConfig.NetworkMode).toBe('host');
    expect(raw.HostConfig.RestartPolicy).toEqual({ Name: 'unless-stopped', MaximumRetryCount: 0 });
    expect(raw.HostConfig.Binds).toEqual([`${join(volumeDir, 'data')}:/data`, `${volumeDir}:/config:ro`]);
    expect(raw.Mounts.map((m) => ({ source: m.Source, target: m.Destination, rw: m.RW }))).toEqual(
      expect.arrayContaining([
        { source: join(volumeDir, 'data'), target: '/data', rw: true },
        { source: volumeDir, target: '/config', rw: false },
      ]),
    );

    await runtime.start('web');
    await runtime.start('web'); // already running: fine
    const version = await eventually('the app to answer', async () => {
      const answer = await get(`http://127.0.0.1:${appPort}${testAppPaths.version}`);
      return answer.status === 200 ? answer.body : undefined;
    }, 10_000);
    expect(version).toBe('v1');
    expect((await get(`http://127.0.0.1:${appPort}${testAppPaths.info}`)).body).toMatch(/^v1 node-1 /);
    const healthy = await eventually('docker health', async () => {
      const current = await runtime.inspect('web');
      return current?.health === 'healthy' ? current : undefined;
    }, 10_000);
    expect(healthy).toMatchObject({ running: true, exitCode: null, digest: images.v1 });

    // The app's switch for "this node turned unhealthy".
    const health = `http://127.0.0.1:${appPort}${testAppPaths.health}`;
    expect(await get(health)).toEqual({ status: 200, body: 'ok v1\n' });
    await get(`http://127.0.0.1:${appPort}${testAppPaths.break}`);
    expect((await get(health)).status).toBe(500);
    await get(`http://127.0.0.1:${appPort}${testAppPaths.heal}`);
    expect((await get(health)).status).toBe(200);
  });

  it('records port bindings when the network mode publishes ports', async () => {
    const hostPort = await freePort();
    const info = await runtime.create(
      spec({
        name: 'web-isolated',
        networkMode: 'none',
        ports: [
          { containerPort: 8080, hostPort, protocol: 'tcp', hostIp: '127.0.0.1' },
          { containerPort: 8080, hostPort: hostPort + 1, protocol: 'tcp' },
          { containerPort: 5353, hostPort: 5353, protocol: 'udp', hostIp: '127.0.0.1' },
        ],
      }),
      'web-svc',
      ref(images.v1),
      images.v1,
    );
    const raw = await docker.getContainer(info.id).inspect();
    expect(raw.HostConfig.NetworkMode).toBe('none');
    expect(raw.HostConfig.PortBindings).toEqual({
      '8080/tcp': [
        { HostIp: '127.0.0.1', HostPort: String(hostPort) },
        { HostIp: '', HostPort: String(hostPort + 1) },
      ],
      '5353/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }],
    });
    expect(Object.keys(raw.Config.ExposedPorts ?? {}).sort()).toEqual(['5353/udp', '8080/tcp']);
    expect(raw.HostConfig.RestartPolicy).toEqual({ Name: 'no', MaximumRetryCount: 0 });
  });

  it('refuses a taken name and an image that was not pulled, with named errors', async () => {
    await expect(runtime.create(spec({ name: 'web' }), 'web-svc', ref(images.v1), images.v1)).rejects.toBeInstanceOf(ContainerConflictError);
    await expect(runtime.create(spec({ name: 'web-v2' }), 'web-svc', ref(images.v2), images.v2)).rejects.toBeInstanceOf(ImageNotPresentError);
    await expect(runtime.create(spec({ name: 'web-tag' }), 'web-svc', `${registry.host}/testapp:v1`, images.v1)).rejects.toBeInstanceOf(
      InvalidImageReferenceError,
    );
    expect(await runtime.inspect('web-v2')).toBeUndefined();
  });

  it('stops gracefully within the timeout, letting an in-flight request finish', async () => {
    const port = Number((await docker.getContainer('web').inspect()).Config.Env.find((e) => e.startsWith('APP_PORT='))!.split('=')[1]);
    const slow = get(`http://127.0.0.1:${port}${testAppPaths.slow}?1`);
    await sleep(300);
    const t = performance.now();
    await runtime.stop('web', 5);
    const stopMs = performance.now() - t;
    expect(await slow).toEqual({ status: 200, body: 'slow v1\n' });
    expect(stopMs).toBeLessThan(4_000); // exited on SIGTERM, no SIGKILL after 5 s
    const stopped = await runtime.inspect('web');
    expect(stopped).toMatchObject({ running: false, exitCode: 0 });
    await runtime.stop('web', 5); // already stopped: fine
    await expect(fetch(`http://127.0.0.1:${port}/version`)).rejects.toThrow();
  });

  it('renames, lists by service, removes', async () => {
    const before = await runtime.inspect('web');
    await runtime.rename('web', 'web-old');
    expect(await runtime.inspect('web')).toBeUndefined();
    expect((await runtime.inspect('web-old'))?.id).toBe(before?.id);
    await expect(runtime.rename('web-old', 'web-isolated')).rejects.toBeInstanceOf(ContainerConflictError);
    await expect(runtime.rename('web', 'web-x')).rejects.toBeInstanceOf(ContainerNotFoundError);

    // A container of another service, and one made without Baton's labels.
    await docker.createContainer({ name: 'other', Image: ref(images.v1), Labels: { 'baton.service': 'other-svc' } });
    await docker.createContainer({ name: 'plain', Image: ref(images.v1) });
    const listed = await runtime.listForService('web-svc');
    expect(listed.map((c) => c.name)).toEqual(['web-isolated', 'web-old']);
    expect(listed.every((c) => c.digest === images.v1 && c.labels['baton.service'] === 'web-svc')).toBe(true);
    expect(await runtime.listForService('nobody-here')).toEqual([]);

    // Without the label, the digest comes from the image's repo digests.
    expect(await runtime.inspect('plain')).toMatchObject({ name: 'plain', digest: images.v1, image: ref(images.v1), running: false });

    await runtime.remove('web-old');
    await runtime.remove('web-old'); // already gone: fine
    expect(await runtime.inspect('web-old')).toBeUndefined();
    expect((await runtime.listForService('web-svc')).map((c) => c.name)).toEqual(['web-isolated']);
  });

  it('answers undefined for a missing container, or one only an id prefix matches', async () => {
    expect(await runtime.inspect('does-not-exist')).toBeUndefined();
    const plain = await docker.getContainer('plain').inspect();
    expect(await runtime.inspect(plain.Id.slice(0, 12))).toBeUndefined();
    await expect(runtime.start('does-not-exist')).rejects.toBeInstanceOf(ContainerNotFoundError);
    await expect(runtime.stop('does-not-exist', 1)).rejects.toBeInstanceOf(ContainerNotFoundError);
    await runtime.remove('does-not-exist');
  });

  it('removes a running container (force)', async () => {
    const appPort = await freePort();
    await runtime.create(spec({ name: 'doomed', env: { APP_PORT: String(appPort) } }), 'doomed-svc', ref(images.v1), images.v1);
    await runtime.start('doomed');
    expect((await runtime.inspect('doomed'))?.running).toBe(true);
    await runtime.remove('doomed');
    expect(await runtime.inspect('doomed')).toBeUndefined();
  });

  it('runs the bad image: its health endpoints fail and Docker reports it unhealthy', async () => {
    const appPort = await freePort();
    await runtime.pull(ref(images.bad));
    await runtime.create(spec({ name: 'bad', env: { APP_PORT: String(appPort) } }), 'bad-svc', ref(images.bad), images.bad);
    await runtime.start('bad');
    const base = `http://127.0.0.1:${appPort}`;
    await eventually('the bad app to answer', async () => ((await get(`${base}/version`)).status === 200 ? true : undefined), 10_000);
    expect(await get(`${base}/version`)).toEqual({ status: 200, body: 'bad' });
    expect((await get(`${base}${testAppPaths.health}`)).status).toBe(500);
    expect((await get(`${base}${testAppPaths.staticHealth}`)).status).toBe(500); // 302 -> /health/ -> 500
    const unhealthy = await eventually('docker health unhealthy', async () => {
      const info = await runtime.inspect('bad');
      return info?.health === 'unhealthy' ? info : undefined;
    }, 10_000);
    expect(unhealthy).toMatchObject({ running: true, digest: images.bad });
    await runtime.stop('bad', 2);
    await runtime.remove('bad');
  });

  it('prunes a repository\'s images but the kept ones, those a container uses, and tagged ones', async () => {
    for (const digest of [images.v1, images.v2, images.bad]) await runtime.pull(ref(digest));
    // Containers of earlier tests may use these images: this test decides which are used.
    const removeContainersOf = async (digest: string): Promise<void> => {
      const imageId = (await docker.getImage(ref(digest)).inspect()).Id;
      for (const container of await docker.listContainers({ all: true })) {
        if (container.ImageID === imageId) await docker.getContainer(container.Id).remove({ force: true });
      }
    };
    await removeContainersOf(images.bad);
    await runtime.create(spec({ name: 'prune-holder' }), 'prune-svc', ref(images.v2), images.v2); // created, never started

    expect(await runtime.pruneImages([ref(images.v1)])).toEqual([ref(images.bad)]);
    expect(await runtime.hasImage(ref(images.v1))).toBe(true);
    expect(await runtime.hasImage(ref(images.v2))).toBe(true); // its container holds it
    expect(await runtime.hasImage(ref(images.bad))).toBe(false);

    await removeContainersOf(images.v1);
    await docker.getImage(ref(images.v1)).tag({ repo: 'someone/else', tag: 'pinned' });
    expect(await runtime.pruneImages([ref(images.v2)])).toEqual([]); // v1 is tagged by someone: left
    await docker.getImage('someone/else:pinned').remove();
    expect(await runtime.pruneImages([ref(images.v2)])).toEqual([ref(images.v1)]);
    await runtime.remove('prune-holder');
    await expect(runtime.pruneImages([`${registry.host}/testapp:v1`])).rejects.toBeInstanceOf(InvalidImageReferenceError);
  });
});
