import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ContainerSpec } from '../ports.js';
import { BatonError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/logger.js';
import {
  ContainerConflictError,
  ContainerNotFoundError,
  DockerApiError,
  DockerTimeoutError,
  DockerUnavailableError,
  ImageNotPresentError,
  ImagePullError,
  InvalidImageReferenceError,
  createDockerRuntime,
  toContainerInfo,
  toCreateOptions,
} from './runtime.js';

const digest = `sha256:${'a'.repeat(64)}`;
const image = `127.0.0.1:5000/team/app@${digest}`;

const baseSpec: ContainerSpec = {
  name: 'web',
  env: {},
  ports: [],
  volumes: [],
  labels: {},
  restartPolicy: 'unless-stopped',
  networkMode: 'host',
  stopTimeoutSeconds: 10,
};

describe('toCreateOptions', () => {
  it('maps every declared setting', () => {
    const options = toCreateOptions(
      {
        ...baseSpec,
        command: ['serve', '--fast'],
        entrypoint: ['/bin/app'],
        env: { A: '1', B: 'x=y' },
        ports: [
          { containerPort: 8080, hostPort: 80, protocol: 'tcp', hostIp: '127.0.0.1' },
          { containerPort: 8080, hostPort: 81, protocol: 'tcp' },
          { containerPort: 53, hostPort: 5353, protocol: 'udp' },
        ],
        volumes: [
          { source: '/srv/data', target: '/data', readOnly: false },
          { source: 'named', target: '/cache', readOnly: true },
        ],
        labels: { team: 'web', 'baton.digest': 'forged' },
        restartPolicy: 'on-failure',
        networkMode: 'none',
        stopTimeoutSeconds: 30,
        user: '1000:1000',
      },
      'svc',
      image,
      digest,
    );
    expect(options).toEqual({
      name: 'web',
      Image: image,
      Cmd: ['serve', '--fast'],
      Entrypoint: ['/bin/app'],
      Env: ['A=1', 'B=x=y'],
      Labels: { team: 'web', 'baton.service': 'svc', 'baton.digest': digest, 'baton.image': image },
      ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
      StopTimeout: 30,
      User: '1000:1000',
      HostConfig: {
        PortBindings: {
          '8080/tcp': [
            { HostIp: '127.0.0.1', HostPort: '80' },
            { HostIp: '', HostPort: '81' },
          ],
          '53/udp': [{ HostIp: '', HostPort: '5353' }],
        },
        Binds: ['/srv/data:/data', 'named:/cache:ro'],
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 0 },
        NetworkMode: 'none',
      },
    });
  });

  it('leaves command, entrypoint and user to the image when not declared', () => {
    const options = toCreateOptions(baseSpec, 'svc', image, digest);
    expect(JSON.parse(JSON.stringify(options))).not.toHaveProperty('Cmd');
    expect(JSON.parse(JSON.stringify(options))).not.toHaveProperty('Entrypoint');
    expect(JSON.parse(JSON.stringify(options))).not.toHaveProperty('User');
  });
});

function rawContainer(overrides: {
  state?: Partial<Docker.ContainerInspectInfo['State']>;
  labels?: Record<string, string>;
  image?: string;
}): Docker.ContainerInspectInfo {
  return {
    Id: 'f'.repeat(64),
    Name: '/web',
    Image: `sha256:${'b'.repeat(64)}`,
    State: {
      Status: 'running',
      Running: true,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: 1,
      ExitCode: 0,
      Error: '',
      StartedAt: '',
      FinishedAt: '',
      ...overrides.state,
    },
    Config: { Image: overrides.image ?? image, Labels: overrides.labels ?? {} },
  } as unknown as Docker.ContainerInspectInfo;
}

describe('toContainerInfo', () => {
  it('maps a running, healthy container made by Baton', () => {
    const info = toContainerInfo(
      rawContainer({ state: { Health: { Status: 'healthy', FailingStreak: 0, Log: [] } }, labels: { 'baton.digest': digest, x: 'y' } }),
      undefined,
    );
    expect(info).toEqual({
      id: 'f'.repeat(64),
      name: 'web',
      image,
      digest,
      running: true,
      status: 'running',
      exitCode: null,
      health: 'healthy',
      labels: { 'baton.digest': digest, x: 'y' },
    });
  });

  it('gives the exit code of a stopped container, none for one never started', () => {
    expect(toContainerInfo(rawContainer({ state: { Status: 'exited', Running: false, ExitCode: 137 } }), [])).toMatchObject({
      running: false,
      exitCode: 137,
    });
    expect(toContainerInfo(rawContainer({ state: { Status: 'created', Running: false, ExitCode: 0 } }), [])).toMatchObject({
      running: false,
      exitCode: null,
    });
  });

  it('does not count a paused or restarting container as running', () => {
    expect(toContainerInfo(rawContainer({ state: { Status: 'paused', Paused: true } }), [])).toMatchObject({ running: false, status: 'paused' });
    expect(toContainerInfo(rawContainer({ state: { Status: 'restarting', Restarting: true, ExitCode: 1 } }), [])).toMatchObject({
      running: false,
      status: 'restarting',
      exitCode: 1,
    });
    // Docker reports Running: true alongside Paused or Restarting; those win.
    expect(toContainerInfo(rawContainer({ state: { Status: 'running', Running: true, Paused: true } }), []).status).toBe('paused');
    expect(toContainerInfo(rawContainer({ state: { Status: 'dead', Running: false } }), []).status).toBe('dead');
  });

  it.each([
    ['starting', 'starting'],
    ['unhealthy', 'unhealthy'],
    ['none', 'none'],
    [undefined, 'none'],
  ] as const)('maps health %s to %s', (status, health) => {
    const state = status === undefined ? {} : { Health: { Status: status, FailingStreak: 0, Log: [] } };
    expect(toContainerInfo(rawContainer({ state }), []).health).toBe(health);
  });

  it("without Baton's label, takes the digest of the image's repo digest for the container's repository", () => {
    const other = `sha256:${'c'.repeat(64)}`;
    const raw = rawContainer({ image: '127.0.0.1:5000/team/app:v1' });
    expect(toContainerInfo(raw, [`mirror.local/app@${other}`, `127.0.0.1:5000/team/app@${digest}`]).digest).toBe(digest);
    expect(toContainerInfo(raw, [`mirror.local/app@${other}`]).digest).toBe(other);
    expect(toContainerInfo(raw, []).digest).toBeNull();
  });
});

// ---- a fake engine on a unix socket, for the error paths a real engine rarely shows

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

let dir: string;
let socketPath: string;
let server: Server | NetServer | undefined;
const openSockets = new Set<Socket>();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baton-fake-docker-'));
  socketPath = join(dir, 'docker.sock');
});

afterEach(async () => {
  for (const socket of openSockets) socket.destroy();
  openSockets.clear();
  if (server) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function fakeEngine(handler: Handler): Promise<void> {
  const http = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => handler(req, res, body));
  });
  http.on('connection', (socket: Socket) => {
    openSockets.add(socket);
    socket.on('close', () => openSockets.delete(socket));
  });
  server = http;
  await new Promise<void>((resolve) => http.listen(socketPath, resolve));
}

/** Accepts connections and never answers. */
async function silentEngine(): Promise<void> {
  const net = createNetServer((socket) => {
    openSockets.add(socket);
    socket.on('close', () => openSockets.delete(socket));
  });
  server = net;
  await new Promise<void>((resolve) => net.listen(socketPath, resolve));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

const running = (name: string) => ({
  Id: 'f'.repeat(64),
  Name: `/${name}`,
  Image: `sha256:${'b'.repeat(64)}`,
  State: { Status: 'running', Running: true, Paused: false, Restarting: false, ExitCode: 0 },
  Config: { Image: image, Labels: { 'baton.digest': digest } },
});

const runtimeFor = (timeoutMs = 2_000) => createDockerRuntime({ socketPath, timeoutMs, logger: silentLogger() });

describe('DockerRuntime error handling (fake engine)', () => {
  it('raises DockerUnavailableError when the socket is missing', async () => {
    const error = await runtimeFor().inspect('web').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DockerUnavailableError);
    expect(error).toBeInstanceOf(BatonError);
    expect((error as DockerUnavailableError).code).toBe('DOCKER_UNAVAILABLE');
  });

  it('bounds every call by the timeout', async () => {
    await silentEngine();
    const started = performance.now();
    const error = await runtimeFor(300).inspect('web').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DockerTimeoutError);
    expect((error as DockerTimeoutError).code).toBe('DOCKER_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(2_000);
    await expect(runtimeFor(300).hasImage(image)).rejects.toBeInstanceOf(DockerTimeoutError);
  });

  it('gives stop the kill timeout on top of the call bound', async () => {
    await fakeEngine((req, res) => {
      if (req.url?.startsWith('/containers/web/json')) return json(res, 200, running('web'));
      if (req.url?.includes('/stop')) {
        setTimeout(() => {
          res.writeHead(204);
          res.end();
        }, 600);
        return;
      }
      json(res, 500, { message: 'unexpected' });
    });
    await runtimeFor(300).stop('web', 1); // answer after 600 ms < 1 s + 300 ms
  });

  it('stops a pull when the caller aborts', async () => {
    await silentEngine();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await runtimeFor(5_000).pull(image, controller.signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DockerTimeoutError);
    expect((error as DockerTimeoutError).code).toBe('DOCKER_ABORTED');
  });

  it('treats an already stopped container (304) and a vanished one on remove (404) as success', async () => {
    const calls: string[] = [];
    await fakeEngine((req, res) => {
      calls.push(`${req.method} ${req.url?.split('?')[0]}`);
      if (req.url?.startsWith('/containers/web/json')) return json(res, 200, running('web'));
      if (req.url?.includes('/stop')) {
        res.writeHead(304);
        return res.end();
      }
      if (req.url?.includes('/start')) {
        res.writeHead(304);
        return res.end();
      }
      if (req.method === 'DELETE') return json(res, 404, { message: 'No such container' });
      json(res, 500, { message: 'unexpected' });
    });
    const runtime = runtimeFor();
    await runtime.stop('web', 1);
    await runtime.start('web');
    await runtime.remove('web');
    // Acts on the id it resolved, never on a name the engine could resolve to something else.
    expect(calls).toContain(`POST /containers/${'f'.repeat(64)}/stop`);
    expect(calls).toContain(`DELETE /containers/${'f'.repeat(64)}`);
  });

  it('names conflicts, missing containers, missing images and other engine errors', async () => {
    await fakeEngine((req, res) => {
      if (req.url?.startsWith('/containers/create')) {
        if (req.url.includes('name=taken')) return json(res, 409, { message: 'Conflict. The container name "/taken" is already in use' });
        if (req.url.includes('name=noimage')) return json(res, 404, { message: `No such image: ${image}` });
        return json(res, 500, { message: 'boom' });
      }
      if (req.url?.startsWith('/containers/web/json')) return json(res, 200, running('web'));
      if (req.url?.includes('/rename')) return json(res, 409, { message: 'name in use' });
      if (req.url?.includes('/start')) return json(res, 500, { message: 'port is already allocated' });
      json(res, 404, { message: 'No such container' });
    });
    const runtime = runtimeFor();
    await expect(runtime.create({ ...baseSpec, name: 'taken' }, 'svc', image, digest)).rejects.toBeInstanceOf(ContainerConflictError);
    await expect(runtime.create({ ...baseSpec, name: 'noimage' }, 'svc', image, digest)).rejects.toBeInstanceOf(ImageNotPresentError);
    const failed = await runtime.create({ ...baseSpec, name: 'other' }, 'svc', image, digest).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(DockerApiError);
    expect(failed).toMatchObject({ statusCode: 500, operation: 'create', code: 'DOCKER_API_ERROR' });
    expect((failed as Error).message).toContain('boom');
    await expect(runtime.create(baseSpec, 'svc', '127.0.0.1:5000/app:v1', digest)).rejects.toBeInstanceOf(InvalidImageReferenceError);
    await expect(runtime.rename('web', 'taken')).rejects.toBeInstanceOf(ContainerConflictError);
    await expect(runtime.rename('gone', 'x')).rejects.toBeInstanceOf(ContainerNotFoundError);
    await expect(runtime.start('web')).rejects.toThrow(/port is already allocated/);
    expect(await runtime.inspect('gone')).toBeUndefined();
  });

  it('ignores a container the engine found by id prefix rather than by name', async () => {
    await fakeEngine((req, res) => {
      if (req.url?.startsWith('/containers/fff/json')) return json(res, 200, running('someone-else'));
      json(res, 404, { message: 'No such container' });
    });
    expect(await runtimeFor().inspect('fff')).toBeUndefined();
    await runtimeFor().remove('fff'); // must not remove someone-else
  });

  it('fails a pull whose stream reports an error, or that breaks off', async () => {
    let mode: 'error' | 'truncated' | 'ok-but-missing' | 'http-404' = 'error';
    await fakeEngine((req, res) => {
      if (req.url?.startsWith('/images/create')) {
        if (mode === 'http-404') return json(res, 404, { message: 'manifest for app not found: manifest unknown' });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.write(JSON.stringify({ status: 'Pulling from team/app', id: digest }) + '\n');
        if (mode === 'error') {
          res.end(JSON.stringify({ errorDetail: { message: 'unauthorized: authentication required' }, error: 'unauthorized' }) + '\n');
        } else if (mode === 'truncated') {
          setTimeout(() => res.destroy(), 20);
        } else {
          res.end(JSON.stringify({ status: `Status: Downloaded newer image for ${image}` }) + '\n');
        }
        return;
      }
      if (req.url?.startsWith('/images/')) return json(res, 404, { message: 'No such image' });
      json(res, 500, { message: 'unexpected' });
    });
    const runtime = runtimeFor();
    const unauthorized = await runtime.pull(image).catch((e: unknown) => e);
    expect(unauthorized).toBeInstanceOf(ImagePullError);
    expect(unauthorized).toMatchObject({ notFound: false, code: 'IMAGE_PULL_FAILED' });
    expect((unauthorized as Error).message).toContain('authentication required');

    mode = 'truncated';
    await expect(runtime.pull(image)).rejects.toMatchObject({ code: 'IMAGE_PULL_FAILED', message: expect.stringMatching(/broke off/) });

    mode = 'ok-but-missing';
    await expect(runtime.pull(image)).rejects.toThrow(/not in the engine/);

    mode = 'http-404';
    await expect(runtime.pull(image)).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND', notFound: true, statusCode: 404 });
  });

  it('sends registry credentials with a pull', async () => {
    let header: string | undefined;
    await fakeEngine((req, res) => {
      if (req.url?.startsWith('/images/create')) {
        header = req.headers['x-registry-auth'] as string | undefined;
        res.writeHead(200);
        return res.end(JSON.stringify({ status: 'done' }) + '\n');
      }
      json(res, 200, { Id: 'sha256:x', RepoDigests: [image] });
    });
    await createDockerRuntime({
      socketPath,
      timeoutMs: 2_000,
      logger: silentLogger(),
      authconfig: (ref) => (ref.startsWith('127.0.0.1:5000/') ? { username: 'u', password: 'p', serveraddress: '127.0.0.1:5000' } : undefined),
    }).pull(image);
    expect(header).toBeDefined();
    const decoded = JSON.parse(Buffer.from(header!.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString()) as Record<string, string>;
    expect(decoded).toEqual({ username: 'u', password: 'p', serveraddress: '127.0.0.1:5000' });
  });
});
