import { createServer as createNetServer } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { BatonError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/logger.js';
import { createReadinessServer, parseListen, type ReadinessServer } from './server.js';

let servers: ReadinessServer[] = [];

afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});

async function startServer(
  services = ['app', 'api'],
  metrics?: () => string,
): Promise<{ server: ReadinessServer; base: string }> {
  const server = createReadinessServer({ listen: '127.0.0.1:0', logger: silentLogger(), services, metrics });
  servers.push(server);
  const { address, port } = await server.start();
  expect(address).toBe('127.0.0.1');
  expect(port).toBeGreaterThan(0);
  return { server, base: `http://127.0.0.1:${port}` };
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

  it('starts not ready: 503 starting until the service is healthy', async () => {
    const { server, base } = await startServer();
    const res = await get(`${base}/ready/app`);
    expect(res).toMatchObject({ status: 503, body: 'starting' });
    expect(res.headers.connection).toBe('close');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(server.status('app')).toEqual({ ready: false, reason: 'starting' });

    server.setHealthy('app', true);
    const ok = await get(`${base}/ready/app`);
    expect(ok).toMatchObject({ status: 200, body: 'ok' });
    expect(ok.headers['content-type']).toMatch(/^text\/plain/);
    // Each service has its own state.
    expect(await get(`${base}/ready/api`)).toMatchObject({ status: 503, body: 'starting' });
  });

  it('answers 503 draining while draining, whatever the health', async () => {
    const { server, base } = await startServer();
    server.setHealthy('app', true);
    server.setDraining('app', true);
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 503, body: 'draining' });
    server.setHealthy('app', false);
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 503, body: 'draining' });
    server.setHealthy('app', true);
    server.setDraining('app', false);
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 200, body: 'ok' });
  });

  it('answers 503 unhealthy once a healthy service turns unhealthy', async () => {
    const { server, base } = await startServer();
    server.setHealthy('app', true);
    server.setHealthy('app', false);
    expect(await get(`${base}/ready/app`)).toMatchObject({ status: 503, body: 'unhealthy' });
    expect(server.status('app')).toEqual({ ready: false, reason: 'unhealthy' });
  });

  it('answers 404 for an unknown service or path, and ignores query strings', async () => {
    const { server, base } = await startServer();
    expect(await get(`${base}/ready/nope`)).toMatchObject({ status: 404 });
    expect(await get(`${base}/ready/`)).toMatchObject({ status: 404 });
    expect(await get(`${base}/elsewhere`)).toMatchObject({ status: 404 });
    expect(await get(`${base}/metrics`)).toMatchObject({ status: 404 });
    server.setHealthy('app', true);
    expect(await get(`${base}/ready/app?from=haproxy`)).toMatchObject({ status: 200, body: 'ok' });
    expect(server.status('nope')).toBeUndefined();
  });

  it('answers HEAD like GET without a body, and 405 for other methods', async () => {
    const { server, base } = await startServer();
    expect(await get(`${base}/ready/app`, 'HEAD')).toMatchObject({ status: 503, body: '' });
    server.setHealthy('app', true);
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

  it('throws on an unknown service in setHealthy/setDraining', async () => {
    const server = createReadinessServer({ listen: '127.0.0.1:0', logger: silentLogger(), services: ['app'] });
    expect(() => server.setHealthy('other', true)).toThrow(BatonError);
    expect(() => server.setDraining('other', true)).toThrow(/unknown service/);
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
      const server = createReadinessServer({ listen: `127.0.0.1:${port}`, logger: silentLogger(), services: ['app'] });
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
