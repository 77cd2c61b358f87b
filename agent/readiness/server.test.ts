import { createServer as createNetServer } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { BatonError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/logger.js';
import { systemClock } from '../../shared/clock.js';
import { createReadinessBoard, type ReadinessBoard } from './board.js';
import type { ProbeResult } from './probe.js';
import { createReadinessServer, parseListen, type ReadinessServer } from './server.js';
import type { ProbeVerdict } from './truth.js';

let servers: ReadinessServer[] = [];

afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});

/** The probe behind the board, as a test sets it: every service passes unless told otherwise; it counts its calls. */
class FakeProbes {
  readonly verdicts = new Map<string, ProbeVerdict>();
  calls = 0;
  /** While set, probes wait for this promise before answering. */
  gate: Promise<void> | undefined;

  readonly probe = async (service: string): Promise<ProbeResult> => {
    this.calls += 1;
    if (this.gate) await this.gate;
    return { verdict: this.verdicts.get(service) ?? { pass: true }, container: undefined };
  };
}

function boardFor(services: string[], probes: FakeProbes, cacheMs = 0): ReadinessBoard {
  return createReadinessBoard({ services, probe: probes.probe, clock: systemClock, cacheMs, logger: silentLogger() });
}

async function startServer(
  services = ['app', 'api'],
  metrics?: () => string,
  cacheMs = 0,
): Promise<{ server: ReadinessServer; board: ReadinessBoard; probes: FakeProbes; base: string }> {
  const probes = new FakeProbes();
  const board = boardFor(services, probes, cacheMs);
  const server = createReadinessServer({ listen: '127.0.0.1:0', logger: silentLogger(), board, metrics });
  servers.push(server);
  const { address, port } = await server.start();
  expect(address).toBe('127.0.0.1');
  expect(port).toBeGreaterThan(0);
  return { server, board, probes, base: `http://127.0.0.1:${port}` };
}

async function get(url: string, method: 'GET' | 'HEAD' | 'POST' = 'GET') {
  const res = await request(url, { method });
  const body = await res.body.text();
  return { status: res.statusCode, body, headers: res.headers };
}

describe('readiness endpoint', () => {
  it('answers /healthz with 200 while the agent runs', async () => {
    const { base } = await startServer();
    expect(await get(`${base}/healthz`)).toMatchObject({ status: 200, body: 'ok' });
  });

  it('answers from the live probe at once, before any flag is set: 200 ok, or 503 with the reason', async () => {
    const { board, probes, base } = await startServer();
    const ok = await get(`${base}/ready/app`);
    expect(ok).toMatchObject({ status: 200, body: 'ok' });
    expect(ok.headers['content-type']).toMatch(/^text\/plain/);
    expect(ok.headers['cache-control']).toBe('no-store');

    probes.verdicts.set('app', { pass: false, reason: 'container-paused' });
    const paused = await get(`${base}/ready/app`);
    expect(paused).toMatchObject({ status: 503, body: 'container-paused' });
    expect(paused.headers.connection).toBe('close');
    expect(board.status('app')).toEqual({ ready: false, reason: 'container-paused' });
    // Each service has its own probe.
    expect(await get(`${base}/ready/api`)).toMatchObject({ status: 200, body: 'ok' });
  });

  it('answers 503 draining while draining, whatever the probe, without probing', async () => {
    const { board, probes, base } = await startServer();
    board.setDraining('app', true);
    const before = probes.calls;
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 503, body: 'draining' });
    probes.verdicts.set('app', { pass: false, reason: 'container-stopped' });
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 503, body: 'draining' });
    expect(probes.calls).toBe(before);
    probes.verdicts.delete('app');
    board.setDraining('app', false);
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 200, body: 'ok' });
  });

  it('answers 503 starting while the update flow holds the service, even when the probe passes', async () => {
    const { board, base } = await startServer();
    board.setHealthy('app', false);
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 503, body: 'starting' });
    board.setHealthy('app', true);
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 200, body: 'ok' });
  });

  it('shares one probe among concurrent requests', async () => {
    const { probes, base } = await startServer();
    let open: () => void = () => undefined;
    probes.gate = new Promise<void>((resolve) => (open = resolve));
    const answers = Promise.all(Array.from({ length: 10 }, () => get(`${base}/ready/app`)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    open();
    expect((await answers).map((a) => a.status)).toEqual(Array.from({ length: 10 }, () => 200));
    expect(probes.calls).toBe(1);
  });

  it('answers 404 for an unknown service or path, and ignores query strings', async () => {
    const { board, base } = await startServer();
    expect(await get(`${base}/ready/nope`)).toMatchObject({ status: 404 });
    expect(await get(`${base}/ready/`)).toMatchObject({ status: 404 });
    expect(await get(`${base}/elsewhere`)).toMatchObject({ status: 404 });
    expect(await get(`${base}/metrics`)).toMatchObject({ status: 404 });
    expect(await get(`${base}/ready/app?from=haproxy`)).toMatchObject({ status: 200, body: 'ok' });
    expect(board.status('nope')).toBeUndefined();
  });

  it('answers HEAD like GET without a body, and 405 for other methods', async () => {
    const { board, base } = await startServer();
    board.setDraining('app', true);
    expect(await get(`${base}/ready/app`, 'HEAD')).toMatchObject({ status: 503, body: '' });
    board.setDraining('app', false);
    expect(await get(`${base}/ready/app`, 'HEAD')).toMatchObject({ status: 200, body: '' });
    const post = await get(`${base}/ready/app`, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });

  it('serves metrics when given', async () => {
    const { base } = await startServer(['app'], () => 'baton_up 1\n');
    const res = await get(`${base}/metrics`);
    expect(res).toMatchObject({ status: 200, body: 'baton_up 1\n' });
    expect(res.headers['content-type']).toContain('version=0.0.4');
  });

  it('throws on an unknown service in setHealthy/setDraining', () => {
    const board = boardFor(['app'], new FakeProbes());
    expect(() => board.setHealthy('other', true)).toThrow(BatonError);
    expect(() => board.setDraining('other', true)).toThrow(/unknown service/);
  });

  it('stops: the port no longer answers, and stop is idempotent', async () => {
    const { server, base } = await startServer();
    await server.stop();
    await expect(get(`${base}/healthz`)).rejects.toThrow();
    await server.stop();
  });

  it('fails to start on a taken port with a named error', async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const server = createReadinessServer({ listen: `127.0.0.1:${port}`, logger: silentLogger(), board: boardFor(['app'], new FakeProbes()) });
      await expect(server.start()).rejects.toMatchObject({ code: 'READINESS_LISTEN_FAILED' });
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('parses listen addresses', () => {
    expect(parseListen('127.0.0.1:7071')).toEqual({ host: '127.0.0.1', port: 7071 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(() => parseListen('7071')).toThrow(BatonError);
    expect(() => parseListen('127.0.0.1:70000')).toThrow(BatonError);
  });
});
