/**
 * Agent benchmark: the cost of an idle `baton agent` (nothing to update) on a real engine, next to
 * a bare Node process (`node -e "setInterval(()=>{},1000)"`) measured in the same window.
 *
 * Starts one dockerd (simulated host 127.0.0.2), two real registries (one anonymous, one with
 * distribution's `auth.token` and a small token server here), a coordinator (in this process: real
 * HTTP and SQLite), and two agents (one per registry) on that engine. Each agent reaches its
 * registry through a counting reverse proxy on loopback, and the token server counts its requests,
 * so "registry requests per poll" counts everything the agent sends. After the agents have
 * provisioned their service and settled, it measures for `--seconds` (default 120):
 *   - RSS (VmRSS of /proc/<pid>/status): at the end and the maximum of 1 s samples;
 *   - CPU % of one core over the window (utime + stime of /proc/<pid>/stat);
 *   - registry requests per poll (every HEAD of the tag's manifest starts a poll).
 *
 * Usage: npm run build && npm run bench:agent [-- --seconds 120 --cron '* /10 * * * * *' (no space) --idle-interval-ms 5000]
 * The defaults are the agent's own: a poll a minute, an idle health check every 5 s.
 * Needs root (dockerd), docker-registry, busybox-static and openssl, as the integration tests do.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSign, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { stringify } from 'yaml';
import { spawnAgentProcess, type AgentProcess } from '../../tools/fleet/agent.js';
import { writeAgentConfig, type AgentConfigFile } from '../../tools/fleet/agent-config.js';
import { repositoryRoot, startInProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { startDockerd, type TestDockerd } from '../../tools/fleet/dockerd.js';
import { buildTestImages, pushAs, testAppImage } from '../../tools/fleet/images.js';
import { freePort, REGISTRY_BINARY, startRegistry } from '../../tools/fleet/registry.js';
import { sleep } from '../../tools/fleet/wait.js';
import { clockTicksPerSecond, processCpuSeconds, processRssMb } from '../process-stats.js';

/** What `baton agent` imports at start (prom-client is loaded at the first scrape only). */
const agentDependencies = ['undici', 'zod', 'pino', 'yaml', 'node-cron', 'dockerode'];
const requireFromHere = createRequire(import.meta.url);

// ---- A counting reverse proxy in front of a registry

interface CountingProxy {
  host: string;
  counts: Map<string, number>;
  total(): number;
  close(): Promise<void>;
}

/** `METHOD kind`: HEAD/GET of manifests by tag or digest, blobs, /v2/, other. */
function requestKind(method: string, url: string): string {
  const path = url.split('?')[0] ?? url;
  if (/\/manifests\/sha256:/.test(path)) return `${method} manifest by digest`;
  if (/\/manifests\//.test(path)) return `${method} manifest by tag`;
  if (/\/blobs\//.test(path)) return `${method} blob`;
  if (path === '/v2/' || path === '/v2') return `${method} /v2/`;
  return `${method} other`;
}

async function startCountingProxy(target: string): Promise<CountingProxy> {
  const [targetHost, targetPort] = target.split(':');
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const kind = requestKind(req.method ?? '?', req.url ?? '/');
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    const upstream = httpRequest(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: { ...req.headers, host: target } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    counts,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---- A registry with distribution's token auth, and its token server

interface TokenRegistry {
  host: string;
  tokenRequests(): number;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

async function startTokenRegistry(tokenLifetimeS: number): Promise<TokenRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-token-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=baton-bench-token'],
    { encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
  const key = readFileSync(keyFile, 'utf8');
  const certDer = Buffer.from(
    readFileSync(certFile, 'utf8')
      .replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
      .replace(/\s+/g, ''),
    'base64',
  );
  const service = 'baton-bench-registry';
  const issuer = 'baton-bench-token-server';
  let tokenRequests = 0;

  // Anyone gets every action asked for: the point is the protocol's cost, not access control.
  const tokenServer = createServer((req, res) => {
    tokenRequests += 1;
    const url = new URL(req.url ?? '/', 'http://token');
    const access = url.searchParams.getAll('scope').flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
    });
    const nowS = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] };
    const claims = { iss: issuer, sub: url.searchParams.get('account') ?? '', aud: service, exp: nowS + tokenLifetimeS, nbf: nowS - 10, iat: nowS, jti: randomUUID(), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(signingInput).sign(key);
    const token = `${signingInput}.${b64url(signature)}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: tokenLifetimeS, issued_at: new Date(nowS * 1000).toISOString() }));
  });
  await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
  const tokenPort = (tokenServer.address() as AddressInfo).port;

  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const configFile = join(dir, 'config.yml');
  writeFileSync(
    configFile,
    stringify({
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: join(dir, 'storage') }, maintenance: { uploadpurging: { enabled: false } } },
      http: { addr: host, secret: 'baton-bench-token-registry' },
      auth: { token: { realm: `http://127.0.0.1:${tokenPort}/token`, service, issuer, rootcertbundle: certFile } },
    }),
  );
  const child: ChildProcess = spawn(REGISTRY_BINARY, ['serve', configFile], { env: { PATH: process.env.PATH ?? '' }, stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await request(`http://${host}/v2/`, { signal: AbortSignal.timeout(1_000) });
      await res.body.dump();
      if (res.statusCode === 401) break; // up, and asking for a token
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error('the token registry did not start');
    await sleep(50);
  }
  return {
    host,
    tokenRequests: () => tokenRequests,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise<void>((resolve) => tokenServer.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- Measuring

interface Measured {
  name: string;
  pid: number;
  rssEndMb: number;
  rssMaxMb: number;
  cpuPercent: number;
  polls?: number;
  registryRequests?: number;
  breakdown?: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '120' },
      /** The agent's own default schedule; e.g. '*' + '/10 * * * * *' polls every 10 s. */
      cron: { type: 'string', default: '* * * * *' },
      'no-token': { type: 'boolean', default: false },
      /** Lifetime of the token server's tokens, in seconds (Docker Hub's are 300). */
      'token-lifetime': { type: 'string', default: '300' },
      /** Write V8 CPU profiles of the agents into this folder (NODE_OPTIONS=--cpu-prof). */
      'cpu-prof': { type: 'string' },
      /** Extra node flags for the agents (e.g. --max-semi-space-size=1). */
      'node-options': { type: 'string' },
      /** The service's health.idleIntervalMs: how often the idle monitor checks (the agent's default is 5 s). */
      'idle-interval-ms': { type: 'string', default: '5000' },
      /** Print what the agents wrote during the window that is not a log line (e.g. --trace-gc output). */
      'show-output': { type: 'boolean', default: false },
    },
  });
  const seconds = Number(values.seconds);
  const cron = values.cron as string;
  const withToken = !values['no-token'];
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

  try {
    console.log(`agent benchmark: idle agents for ${seconds} s, polls on "${cron}", next to a bare node process`);
    const registry = await startRegistry();
    cleanups.push(() => registry.stop());
    const tokenRegistry = withToken ? await startTokenRegistry(Number(values['token-lifetime'])) : undefined;
    if (tokenRegistry) cleanups.push(() => tokenRegistry.stop());
    const engine: TestDockerd = await startDockerd({ name: 'bench-host', hostAddress: '127.0.0.2' });
    cleanups.push(() => engine.stop());
    const coordinator = await startInProcessCoordinator({});
    cleanups.push(() => coordinator.stop({ removeData: true }));

    // The images, pushed as testapp:latest to each registry (straight, not through the proxies).
    const images = await buildTestImages(engine.socketPath, registry.host);
    await pushAs(engine.socketPath, testAppImage(registry.host, 'v1'), testAppImage(registry.host, 'latest'));
    if (tokenRegistry) await pushAs(engine.socketPath, testAppImage(registry.host, 'v1'), testAppImage(tokenRegistry.host, 'latest'));
    // The engine must pull through the proxies like a real host: forget the local copies' names.
    const proxy = await startCountingProxy(registry.host);
    cleanups.push(() => proxy.close());
    const tokenProxy = tokenRegistry ? await startCountingProxy(tokenRegistry.host) : undefined;
    if (tokenProxy) cleanups.push(() => tokenProxy.close());

    const agents: Array<{ label: string; agent: AgentProcess; config: AgentConfigFile; proxy: CountingProxy; tokenRequests: () => number }> = [];
    const setups = [{ label: 'agent (anonymous registry)', proxy, tokenRequests: () => 0, container: 'app' }];
    if (tokenProxy && tokenRegistry) {
      setups.push({ label: 'agent (token-auth registry)', proxy: tokenProxy, tokenRequests: tokenRegistry.tokenRequests, container: 'app-token' });
    }
    for (const [index, setup] of setups.entries()) {
      const config = await writeAgentConfig({
        nodeId: `bench-${index + 1}`,
        hostAddress: '127.0.0.2',
        coordinatorUrl: coordinator.url,
        dockerSocket: engine.socketPath,
        registryHost: setup.proxy.host,
        group: `bench-${index + 1}`,
        containerName: setup.container,
        cron,
        splayMs: 1_000,
        logLevel: 'info',
        // The idle monitor at production timings (--idle-interval-ms, the agent's default 5 s).
        service: { health: { idleIntervalMs: Number(values['idle-interval-ms']), consecutivePasses: 2, deadlineMs: 60_000, minHealthyMs: 1_000 } },
      });
      cleanups.push(() => config.remove());
      const execArgv = [
        ...(values['node-options'] ?? '').split(' ').filter((flag) => flag !== ''),
        ...(values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : []),
      ];
      const agent = await spawnAgentProcess({ configFile: config.path, execArgv });
      cleanups.push(() => agent.kill('SIGTERM', 30_000));
      agents.push({ label: setup.label, agent, config, proxy: setup.proxy, tokenRequests: setup.tokenRequests });
    }
    const bare = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], { stdio: 'ignore' });
    // The floor the dependencies set: what the agent imports at start (after lean-modules, as the
    // agent does), and nothing else of Baton's.
    const dependencyUrls = [
      pathToFileURL(join(repositoryRoot, 'dist/agent/lean-modules.js')).href,
      ...agentDependencies.map((name) => pathToFileURL(requireFromHere.resolve(name)).href),
    ];
    const dependenciesOnly = spawn(
      process.execPath,
      ['--input-type=module', '-e', `${dependencyUrls.map((url) => `await import(${JSON.stringify(url)});`).join(' ')} setInterval(()=>{},1000);`],
      { stdio: 'ignore' },
    );
    cleanups.push(async () => {
      bare.kill('SIGKILL');
      dependenciesOnly.kill('SIGKILL');
    });

    for (const { agent, config } of agents) {
      await agent.waitForLine((l) => l.msg === 'agent running', 120_000);
      for (;;) {
        const ready = await request(config.readinessUrl).then(
          async (r) => {
            await r.body.dump();
            return r.statusCode === 200;
          },
          () => false,
        );
        if (ready) break;
        await sleep(200);
      }
    }
    // Let start-up work (JIT, first polls, first token) settle before the window.
    await sleep(15_000);
    console.log(`images: v1 ${images.v1}; measuring...`);

    const pids = [
      ...agents.map((a) => ({ name: a.label, pid: a.agent.pid })),
      { name: "node importing the agent's dependencies", pid: dependenciesOnly.pid ?? -1 },
      { name: 'bare node (setInterval)', pid: bare.pid ?? -1 },
    ];
    const cpuStart = pids.map((p) => processCpuSeconds(p.pid));
    const countsStart = agents.map((a) => ({ counts: new Map(a.proxy.counts), tokens: a.tokenRequests() }));
    const outputStart = agents.map((a) => a.agent.output.length);
    const rssMax = pids.map(() => 0);
    const started = performance.now();
    for (let s = 1; s <= seconds; s += 1) {
      await sleep(Math.max(0, started + s * 1_000 - performance.now()));
      pids.forEach((p, i) => (rssMax[i] = Math.max(rssMax[i] as number, processRssMb(p.pid))));
    }
    const elapsedS = (performance.now() - started) / 1000;
    const results: Measured[] = pids.map((p, i) => ({
      name: p.name,
      pid: p.pid,
      rssEndMb: processRssMb(p.pid),
      rssMaxMb: rssMax[i] as number,
      cpuPercent: ((processCpuSeconds(p.pid) - (cpuStart[i] as number)) / elapsedS) * 100,
    }));
    agents.forEach((a, i) => {
      const before = countsStart[i]!;
      const delta = new Map<string, number>();
      for (const [kind, n] of a.proxy.counts) {
        const d = n - (before.counts.get(kind) ?? 0);
        if (d > 0) delta.set(kind, d);
      }
      const tokens = a.tokenRequests() - before.tokens;
      if (tokens > 0) delta.set('GET token (token server)', tokens);
      const polls = delta.get('HEAD manifest by tag') ?? 0;
      const all = [...delta.values()].reduce((x, y) => x + y, 0);
      Object.assign(results[i]!, {
        polls,
        registryRequests: all,
        breakdown: [...delta.entries()].map(([k, n]) => `${k}: ${n}`).join(', '),
      });
    });

    if (values['show-output']) {
      agents.forEach((a, i) => {
        const extra = a.agent.output.slice(outputStart[i]).filter((line) => !line.startsWith('{'));
        console.log(`--- ${a.label}: ${extra.length} other output lines in the window`);
        for (const line of extra) console.log(line);
      });
      agents.forEach((a, i) => {
        const logged = a.agent.output.slice(outputStart[i]).filter((line) => line.startsWith('{'));
        console.log(`--- ${a.label}: ${logged.length} log lines in the window`);
        for (const line of logged.slice(0, 20)) console.log(line.slice(0, 300));
      });
    }
    const bareResult = results.at(-1)!;
    const rows = results.map((r) => ({
      process: r.name,
      'RSS end (MB)': r.rssEndMb.toFixed(1),
      'RSS max (MB)': r.rssMaxMb.toFixed(1),
      'RSS vs bare': (r.rssMaxMb / bareResult.rssMaxMb).toFixed(2) + 'x',
      'CPU % (1 core)': r.cpuPercent.toFixed(3),
      polls: r.polls ?? '-',
      'registry req/poll': r.polls ? (r.registryRequests! / r.polls).toFixed(2) : '-',
    }));
    console.log(`\nwindow: ${elapsedS.toFixed(1)} s, ${clockTicksPerSecond} ticks/s (CPU resolution ${(100 / clockTicksPerSecond / elapsedS).toFixed(3)} %)`);
    console.table(rows);
    for (const r of results) if (r.breakdown !== undefined) console.log(`${r.name}: ${r.breakdown || 'no requests'}`);
    const agentResults = results.slice(0, agents.length);
    const dependenciesResult = results.at(-2)!;
    console.log(
      `agents' RSS over their dependencies' alone: ${agentResults.map((r) => (r.rssMaxMb / dependenciesResult.rssMaxMb).toFixed(2) + 'x').join(', ')}`,
    );
    const verdicts = [
      ['RSS <= 1.25x bare node', agentResults.every((r) => r.rssMaxMb <= 1.25 * bareResult.rssMaxMb)],
      ['idle CPU < 0.1 %', agentResults.every((r) => r.cpuPercent < 0.1)],
      ['one HEAD per poll (anonymous)', agentResults[0]!.polls! > 0 && agentResults[0]!.registryRequests === agentResults[0]!.polls],
    ] as const;
    for (const [what, ok] of verdicts) console.log(`${ok ? 'met   ' : 'MISSED'} ${what}`);
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
