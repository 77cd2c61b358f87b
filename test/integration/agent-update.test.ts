/**
 * The agent as a real process (`node dist/cli/baton.js agent`, so `npm run build` first) on real
 * Docker engines, a real registry and a real coordinator (in process: real HTTP, real SQLite).
 *
 * Each scenario has its own simulated host (dockerd on 127.0.0.x), its own group and its own tag,
 * so the scenarios run concurrently without seeing each other's pushes, leases or halts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusResponseSchema, eventSchema, type BatonEvent, type StatusResponse } from '../../shared/api/v1.js';
import { agentLines, spawnAgentProcess, stopAllAgentProcesses, type AgentLogLine } from '../../tools/fleet/agent.js';
import { writeAgentConfig, type AgentConfigFile, type AgentConfigOptions } from '../../tools/fleet/agent-config.js';
import { startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { startDockerd, type TestDockerd } from '../../tools/fleet/dockerd.js';
import { call } from '../../tools/fleet/http.js';
import { buildTestImages, pushAs, testAppImage, type TestImages } from '../../tools/fleet/images.js';
import { freePort, startRegistry, type RunningRegistry } from '../../tools/fleet/registry.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';

let registry: RunningRegistry;
let builder: TestDockerd;
let coordinator: InProcessCoordinator;
let images: TestImages;
const engines: TestDockerd[] = [];
const configs: AgentConfigFile[] = [];
const tempDirs: string[] = [];
const timings: Record<string, number> = {};

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return { status: response.status, body: await response.text() };
}

async function status(): Promise<StatusResponse> {
  return statusResponseSchema.parse((await call(coordinator.url, 'GET', '/v1/status')).body);
}

async function groupStatus(group: string) {
  return (await status()).groups.find((g) => g.name === group);
}

async function events(group: string): Promise<BatonEvent[]> {
  const answer = await call(coordinator.url, 'GET', `/v1/events?group=${encodeURIComponent(group)}&limit=1000`);
  return eventSchema.array().parse((answer.body as { events: unknown }).events);
}

/** Tags a pushed variant as `tag` in the registry (a push: the tag moves to that digest). */
function publish(variant: 'v1' | 'v2' | 'bad', tag: string): Promise<string> {
  return pushAs(builder.socketPath, testAppImage(registry.host, variant), testAppImage(registry.host, tag));
}

/** A simulated host: its own engine, and an agent config whose `app` service (group = node id) follows `tag`. */
async function host(nodeId: string, address: string, tag: string, extra: Partial<AgentConfigOptions> = {}) {
  const t = performance.now();
  const engine = await startDockerd({ name: nodeId, hostAddress: address });
  timings[`dockerd ${nodeId}`] = performance.now() - t;
  engines.push(engine);
  const config = await writeAgentConfig({
    nodeId,
    hostAddress: address,
    coordinatorUrl: coordinator.url,
    dockerSocket: engine.socketPath,
    registryHost: registry.host,
    group: nodeId,
    tag,
    ...extra,
  });
  configs.push(config);
  return { engine, config, docker: new Docker({ socketPath: engine.socketPath }) };
}

/** Every container of the engine (running or not), by name. */
async function containers(docker: Docker): Promise<Array<{ name: string; labels: Record<string, string>; state: string }>> {
  const list = await docker.listContainers({ all: true });
  return list
    .map((c) => ({ name: (c.Names[0] ?? '').replace(/^\//, ''), labels: c.Labels, state: c.State }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

async function serves(config: AgentConfigFile, version: string, timeoutMs = 20_000): Promise<void> {
  await eventually(
    `${config.nodeId} serving ${version} and ready`,
    async () => {
      const [app, ready] = await Promise.all([get(`${config.appUrl}/version`), get(config.readinessUrl)]);
      return app.body === version && ready.status === 200 ? true : undefined;
    },
    timeoutMs,
  );
}

/** Samples readiness and /version every ~40 ms, for "drained before stopped" assertions. */
function watch(config: AgentConfigFile) {
  const samples: Array<{ atMs: number; ready: number | 'down'; version: string }> = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const atMs = performance.now();
      const [ready, version] = await Promise.all([
        get(config.readinessUrl).then(
          (r) => r.status,
          () => 'down' as const,
        ),
        get(`${config.appUrl}/version`).then(
          (r) => (r.status === 200 ? r.body : `status ${r.status}`),
          () => 'down',
        ),
      ]);
      samples.push({ atMs, ready, version });
      await sleep(40);
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

const finished = (outcome: string) => agentLines.updateFinished(outcome);
const anyUpdateFinished = (line: AgentLogLine) => line.msg === 'update finished';

beforeAll(async () => {
  let t = performance.now();
  registry = await startRegistry();
  [builder, coordinator] = await Promise.all([
    startDockerd({ name: 'builder' }),
    startInProcessCoordinator({ config: { heartbeatIntervalMs: 1_000, leaseTtlMs: 10_000 } }),
  ]);
  timings.setup = performance.now() - t;
  t = performance.now();
  images = await buildTestImages(builder.socketPath, registry.host);
  timings.buildTestImages = performance.now() - t;
});

afterAll(async () => {
  const t = performance.now();
  await stopAllAgentProcesses();
  await Promise.allSettled([...engines, builder].map((engine) => engine?.stop()));
  await Promise.allSettled([registry?.stop(), coordinator?.stop({ removeData: true })]);
  await Promise.allSettled([...configs.map((c) => c.remove()), ...tempDirs.map((d) => rm(d, { recursive: true, force: true }))]);
  timings.teardown = performance.now() - t;
  console.log('timings (ms):', Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])));
});

describe('baton agent on a real engine, registry and coordinator', () => {
  it.concurrent('provisions v1, rolls to v2 (drain before stop, lease granted and released), rolls bad back and halts', async () => {
    const started = performance.now();
    await publish('v1', 'latest');
    const { config, docker } = await host('node-a', '127.0.0.2', 'latest');
    const agent = await spawnAgentProcess({ configFile: config.path });

    // Provisioning: the service did not exist; no lease is needed for it.
    await agent.waitForLine(agentLines.running, 60_000);
    await serves(config, 'v1');
    const provisioned = await eventually('coordinator: node-a healthy on v1', async () => {
      const node = (await groupStatus('node-a'))?.nodes.find((n) => n.nodeId === 'node-a');
      return node?.health === 'healthy' && node.currentDigest === images.v1 ? node : undefined;
    }, 20_000);
    expect(provisioned.step).toBe('idle');
    expect(provisioned.image).toBe(config.image);
    timings['a: provision'] = performance.now() - started;

    // v2: poll, pull by digest, lease, drain, stop, start, health, release `updated`.
    let t = performance.now();
    const watcher = watch(config);
    let mark = agent.mark();
    await publish('v2', 'latest');
    const done = await agent.waitForLine(anyUpdateFinished, 40_000, { after: mark });
    await watcher.stop();
    expect(done.outcome, agent.tail()).toBe('updated');
    timings['a: v1 -> v2'] = performance.now() - t;
    await serves(config, 'v2');

    const after = agent.lines.slice(mark);
    const pulled = after.find((l) => l.msg === 'pulled image');
    expect(pulled?.image).toBe(testAppImage(registry.host, images.v2)); // by digest, never by tag
    const order = ['pull', 'lease', 'drain', 'stop', 'start', 'health', 'success'];
    const stepEnds = after.filter((l) => typeof l.step === 'string' && 'durationMs' in l && order.includes(l.step as string));
    expect(stepEnds.map((l) => l.step)).toEqual(order);
    expect(stepEnds.every((l) => l.outcome === 'ok' || (l.step === 'pull' && l.outcome === 'skipped'))).toBe(true);

    // Drained before stopped: readiness answered 503 while v1 still served, for about drainSeconds.
    const { samples } = watcher;
    const firstNotReady = samples.findIndex((s) => s.ready !== 200);
    const firstDown = samples.findIndex((s) => s.version !== 'v1');
    expect(firstNotReady, JSON.stringify(samples.slice(0, 5))).toBeGreaterThanOrEqual(0);
    expect(firstDown).toBeGreaterThan(firstNotReady);
    const drainedForMs = (samples[firstDown]?.atMs ?? 0) - (samples[firstNotReady]?.atMs ?? 0);
    expect(drainedForMs).toBeGreaterThan(700);
    expect(samples.slice(firstNotReady, firstDown).every((s) => s.ready === 503 && s.version === 'v1')).toBe(true);
    // Not ready again until v2 served.
    const backReady = samples.findIndex((s, i) => i > firstNotReady && s.ready === 200);
    expect(samples[backReady]?.version).toBe('v2');

    // The old container is gone; one `app`, created from v2 by digest.
    const afterV2 = await containers(docker);
    expect(afterV2.map((c) => c.name)).toEqual(['app']);
    expect(afterV2[0]?.labels['baton.digest']).toBe(images.v2);
    expect(afterV2[0]?.state).toBe('running');

    const logV2 = await events('node-a');
    const grant = logV2.find((e) => e.type === 'grant' && e.nodeId === 'node-a' && e.digest === images.v2);
    expect(grant, JSON.stringify(logV2)).toBeDefined();
    const releasedV2 = logV2.find((e) => e.type === 'release' && e.leaseId === grant?.leaseId);
    expect(releasedV2?.outcome).toBe('updated');
    expect(releasedV2!.seq).toBeGreaterThan(grant!.seq);
    await eventually('coordinator: node-a healthy on v2, no lease', async () => {
      const group = await groupStatus('node-a');
      const node = group?.nodes.find((n) => n.nodeId === 'node-a');
      return node?.currentDigest === images.v2 && node.health === 'healthy' && group?.leases.length === 0 ? true : undefined;
    }, 20_000);

    // bad: health fails within the deadline; rolled back to v2, released `failed`, rollout halted.
    t = performance.now();
    mark = agent.mark();
    await publish('bad', 'latest');
    const badDone = await agent.waitForLine(anyUpdateFinished, 60_000, { after: mark });
    expect(badDone.outcome, agent.tail()).toBe('rolled-back');
    timings['a: bad, rolled back'] = performance.now() - t;
    await serves(config, 'v2');
    const afterBad = await containers(docker);
    expect(afterBad.map((c) => c.name)).toEqual(['app']);
    expect(afterBad[0]?.labels['baton.digest']).toBe(images.v2);

    const logBad = await events('node-a');
    const badGrant = logBad.find((e) => e.type === 'grant' && e.digest === images.bad);
    const badRelease = logBad.find((e) => e.type === 'release' && e.leaseId === badGrant?.leaseId);
    expect(badRelease?.outcome, JSON.stringify(logBad)).toBe('failed');
    const group = await groupStatus('node-a');
    expect(group?.rollout?.targetDigest).toBe(images.bad);
    expect(group?.rollout?.state).toBe('halted');
    expect(group?.rollout?.haltedByNodeId).toBe('node-a');

    // The halted digest is not tried again by later polls: no second grant, still v2.
    const polledMark = agent.mark();
    await agent.waitForLine(agentLines.polled, 10_000, { after: polledMark });
    await agent.waitForLine(agentLines.polled, 10_000, { after: agent.mark() });
    const logLater = await events('node-a');
    expect(logLater.filter((e) => e.type === 'grant' && e.digest === images.bad)).toHaveLength(1);
    // Nor asked for: the agent remembers the digest failed here (no refusal spam in the event log).
    expect(logLater.filter((e) => e.type === 'refusal' && e.seq > badRelease!.seq)).toEqual([]);
    expect(agent.lines.slice(polledMark).filter((l) => l.msg === 'pulled image' || l.step === 'drain')).toEqual([]);
    expect((await get(`${config.appUrl}/version`)).body).toBe('v2');

    expect(await agent.kill('SIGTERM')).toBe(0);
  });

  it.concurrent('kill -9 in the stop step, then in the health step: each restart reconciles, and the node ends on one digest', async () => {
    const started = performance.now();
    await publish('v1', 'crash');
    const { config, docker } = await host('node-b', '127.0.0.3', 'crash');
    const first = await spawnAgentProcess({ configFile: config.path });
    await first.waitForLine(agentLines.running, 60_000);
    await serves(config, 'v1');

    // 1: kill -9 once the old container has stopped (stop step: before or just after the rename).
    await publish('v2', 'crash');
    await first.waitForLine(agentLines.docker('stopped container', 'app'), 30_000);
    expect(await first.kill('SIGKILL')).toBeNull();
    timings['b: first kill'] = performance.now() - started;

    const second = await spawnAgentProcess({ configFile: config.path });
    const reconciled = await second.waitForLine((l) => l.step === 'reconcile' && 'journalStep' in l, 30_000);
    // The kill lands a few ms after the line: the agent may have renamed the old one and begun `start`.
    expect(['stop', 'start']).toContain(reconciled.journalStep);
    expect(reconciled.outcome).toBe('restored-previous');
    expect(reconciled.release, second.tail(60)).toBe('abandoned');
    expect(reconciled.healthy).toBe(true);
    expect((await containers(docker)).map((c) => [c.name, c.labels['baton.digest']])).toEqual([['app', images.v1]]);

    // 2: the agent tries v2 again; kill -9 once the new container has started (health step).
    const mark = second.mark();
    await second.waitForLine(agentLines.docker('started container', 'app'), 30_000, { after: mark });
    expect(await second.kill('SIGKILL')).toBeNull();

    const third = await spawnAgentProcess({ configFile: config.path });
    const reconciledAgain = await third.waitForLine((l) => l.step === 'reconcile' && 'journalStep' in l, 30_000);
    expect(['start', 'health']).toContain(reconciledAgain.journalStep);
    expect(reconciledAgain.outcome).toBe('restored-previous');
    const afterSecondKill = await containers(docker);
    expect(afterSecondKill.map((c) => [c.name, c.labels['baton.digest'], c.state])).toEqual([['app', images.v1, 'running']]);

    // 3: left alone, it finishes: exactly one `app`, on v2, healthy; no `app-baton-old`; no lease left.
    const done = await third.waitForLine(anyUpdateFinished, 40_000);
    expect(done.outcome, third.tail()).toBe('updated');
    await serves(config, 'v2');
    const final = await containers(docker);
    expect(final.map((c) => [c.name, c.labels['baton.digest'], c.state])).toEqual([['app', images.v2, 'running']]);
    await eventually('coordinator: node-b healthy on v2, no lease', async () => {
      const group = await groupStatus('node-b');
      const node = group?.nodes.find((n) => n.nodeId === 'node-b');
      return node?.currentDigest === images.v2 && node.health === 'healthy' && group?.leases.length === 0 ? true : undefined;
    }, 20_000);
    const log = await events('node-b');
    const releases = log.filter((e) => e.type === 'release').map((e) => e.outcome);
    expect(releases).toEqual(['abandoned', 'abandoned', 'updated']);
    expect(log.filter((e) => e.type === 'halt')).toEqual([]);
    expect(await third.kill('SIGTERM')).toBe(0);
    timings['b: total'] = performance.now() - started;
  });

  it.concurrent('SIGTERM during an update: rolls back, hands the lease back, exits 0', async () => {
    const started = performance.now();
    await publish('v1', 'term');
    const { config, docker } = await host('node-c', '127.0.0.4', 'term');
    const agent = await spawnAgentProcess({ configFile: config.path });
    await agent.waitForLine(agentLines.running, 60_000);
    await serves(config, 'v1');

    const mark = agent.mark();
    await publish('v2', 'term');
    await agent.waitForLine(agentLines.docker('started container', 'app'), 30_000, { after: mark });
    const t = performance.now();
    expect(await agent.kill('SIGTERM', 40_000)).toBe(0);
    timings['c: SIGTERM to exit'] = performance.now() - t;

    const done = agent.lines.slice(mark).find(anyUpdateFinished);
    expect(done?.outcome, agent.tail()).toBe('aborted');
    expect(agent.lines.at(-1)?.msg).toBe('agent stopped');
    // The node serves v1 again without its agent: one `app`, running v1.
    expect((await containers(docker)).map((c) => [c.name, c.labels['baton.digest'], c.state])).toEqual([['app', images.v1, 'running']]);
    expect((await get(`${config.appUrl}/version`)).body).toBe('v1');
    const log = await events('node-c');
    const grant = log.find((e) => e.type === 'grant');
    expect(log.find((e) => e.type === 'release' && e.leaseId === grant?.leaseId)?.outcome).toBe('abandoned');
    const group = await groupStatus('node-c');
    expect(group?.leases).toEqual([]);
    expect(group?.rollout?.state).not.toBe('halted');
    timings['c: total'] = performance.now() - started;
  });

  it.concurrent('creates containers with every declared setting (host and none network modes), before and after an update', async () => {
    const address = '127.0.0.5';
    const volumeDir = await mkdtemp(join(tmpdir(), 'baton-vol-'));
    tempDirs.push(volumeDir);
    const appPort = await freePort(address);
    const publishedPort = await freePort(address);
    await publish('v1', 'spec');
    const { config, docker } = await host('node-d', address, 'spec', {
      appPort,
      service: {
        command: ['/bin/sh', '-c', 'echo "$APP_NODE" > /data/started && exec /bin/testapp'],
        env: { EXTRA_SETTING: 'with spaces = and equals' },
        ports: [{ containerPort: appPort, hostPort: appPort, hostIp: address }],
        volumes: [
          { source: volumeDir, target: '/data' },
          { source: 'baton-test-config', target: '/config', readOnly: true },
        ],
        labels: { 'com.example.team': 'platform', 'com.example.tier': 'web' },
        restartPolicy: 'on-failure',
        stopTimeoutSeconds: 3,
        user: '0:0',
      },
      extraServices: [
        {
          group: 'node-d-side',
          image: testAppImage(registry.host, 'spec'),
          containerName: 'side',
          entrypoint: ['/bin/sh', '-c'],
          command: ['exec /bin/testapp'],
          env: { APP_ADDR: '127.0.0.1', APP_PORT: '8080' },
          ports: [{ containerPort: 8080, hostPort: publishedPort, protocol: 'tcp' }],
          networkMode: 'none',
          restartPolicy: 'always',
          // No address reaches a `none` container from outside: the image's own HEALTHCHECK decides.
          health: { docker: true, intervalMs: 300, consecutivePasses: 1, deadlineMs: 15_000, minHealthyMs: 0 },
          drainSeconds: 0,
          readmitSeconds: 0,
        },
      ],
    });
    const agent = await spawnAgentProcess({ configFile: config.path });
    await agent.waitForLine(agentLines.running, 60_000);
    await serves(config, 'v1');

    const check = async (digest: string) => {
      const app = await docker.getContainer('app').inspect();
      expect(app.Config.Image).toBe(testAppImage(registry.host, digest));
      expect(app.Config.Cmd).toEqual(['/bin/sh', '-c', 'echo "$APP_NODE" > /data/started && exec /bin/testapp']);
      expect(app.Config.Env).toEqual(
        expect.arrayContaining([
          `APP_ADDR=${address}`,
          `APP_PORT=${appPort}`,
          'APP_NODE=node-d',
          'EXTRA_SETTING=with spaces = and equals',
          'TESTAPP_VARIANT=' + (digest === images.v1 ? 'v1' : 'v2'), // the image's own ENV is kept
        ]),
      );
      expect(app.Config.Labels).toMatchObject({
        'com.example.team': 'platform',
        'com.example.tier': 'web',
        'baton.service': 'app',
        'baton.digest': digest,
      });
      expect(app.Config.User).toBe('0:0');
      expect((app.Config as { StopTimeout?: number }).StopTimeout).toBe(3);
      expect(app.Config.ExposedPorts).toEqual({ [`${appPort}/tcp`]: {} });
      expect(app.HostConfig.PortBindings).toEqual({ [`${appPort}/tcp`]: [{ HostIp: address, HostPort: String(appPort) }] });
      expect(app.HostConfig.NetworkMode).toBe('host');
      expect(app.HostConfig.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 0 });
      expect(app.HostConfig.Binds).toEqual([`${volumeDir}:/data`, 'baton-test-config:/config:ro']);
      const mounts = app.Mounts.map((m) => ({ type: m.Type, destination: m.Destination, rw: m.RW }));
      expect(mounts).toEqual(
        expect.arrayContaining([
          { type: 'bind', destination: '/data', rw: true },
          { type: 'volume', destination: '/config', rw: false },
        ]),
      );

      const side = await docker.getContainer('side').inspect();
      expect(side.Config.Entrypoint).toEqual(['/bin/sh', '-c']);
      expect(side.Config.Cmd).toEqual(['exec /bin/testapp']);
      expect(side.HostConfig.NetworkMode).toBe('none');
      expect(side.HostConfig.PortBindings).toEqual({ '8080/tcp': [{ HostIp: '', HostPort: String(publishedPort) }] });
      expect(side.HostConfig.RestartPolicy?.Name).toBe('always');
      expect(side.State.Health?.Status).toBe('healthy');
      expect(side.Config.Labels?.['baton.digest']).toBe(digest);
    };
    await eventually(
      'side healthy',
      async () => ((await docker.getContainer('side').inspect()).State.Health?.Status === 'healthy' ? true : undefined),
      20_000,
    );
    await check(images.v1);
    // The command ran with the env, and wrote into the bind-mounted folder.
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(join(volumeDir, 'started'), 'utf8')).trim()).toBe('node-d');

    // Both services follow `spec`; each updates under its own group's lease, one after the other.
    const mark = agent.mark();
    await publish('v2', 'spec');
    await agent.waitForLine((l) => finished('updated')(l) && l.service === 'app', 60_000, { after: mark });
    await agent.waitForLine((l) => finished('updated')(l) && l.service === 'side', 60_000, { after: mark });
    await serves(config, 'v2');
    await check(images.v2);
    expect((await containers(docker)).map((c) => c.name)).toEqual(['app', 'side']);
    expect(await agent.kill('SIGTERM')).toBe(0);
  });
});
