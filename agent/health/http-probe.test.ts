import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpHealthProbe } from './http-probe.js';

let server: Server;
let base: string;
let requests = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests += 1;
    if (req.url === '/ok') res.end('ok');
    else if (req.url === '/fail') {
      res.statusCode = 500;
      res.end('unhealthy');
    } else if (req.url === '/redirect') {
      res.writeHead(302, { location: '/ok' });
      res.end();
    } else if (req.url === '/hang') {
      // never answers
    } else if (req.url === '/big') {
      res.end('x'.repeat(1_000_000));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('createHttpHealthProbe', () => {
  const probe = createHttpHealthProbe();

  it('passes on the expected status only, without following redirects', async () => {
    expect(await probe.check(`${base}/ok`, 200, 1_000)).toBe(true);
    expect(await probe.check(`${base}/fail`, 200, 1_000)).toBe(false);
    expect(await probe.check(`${base}/fail`, 500, 1_000)).toBe(true);
    expect(await probe.check(`${base}/redirect`, 200, 1_000)).toBe(false);
    expect(await probe.check(`${base}/redirect`, 302, 1_000)).toBe(true);
    expect(await probe.check(`${base}/big`, 200, 2_000)).toBe(true);
  });

  it('fails on a timeout, a refused connection or a bad URL, and never throws', async () => {
    const started = performance.now();
    expect(await probe.check(`${base}/hang`, 200, 200)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await probe.check('http://127.0.0.1:1/health', 200, 1_000)).toBe(false);
    expect(await probe.check('not a url', 200, 1_000)).toBe(false);
  });

  it('closes its connection after each check (no keep-alive socket left behind)', async () => {
    const before = requests;
    for (let i = 0; i < 5; i += 1) expect(await probe.check(`${base}/ok`, 200, 1_000)).toBe(true);
    expect(requests - before).toBe(5);
    const open = await new Promise<number>((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
    expect(open).toBeLessThanOrEqual(1); // at most the /hang request's socket, destroyed by the client
  });
});
