/**
 * Issue #8: `baton agent` with an invalid config file starts on its last known good config (stored
 * in its state directory the last time it started on a valid file) instead of exiting 78, so its
 * readiness endpoint keeps answering; it says so on stderr, in its log, in its metrics and in its
 * heartbeats (GET /v1/status). Without a stored copy it exits 78 as before.
 *
 * Runs the built CLI (`npm run build` first) against an in-process coordinator, all on 127.0.0.1.
 * No Docker engine: the socket path leads nowhere, so the agent keeps retrying its reconcile, which
 * is all these tests need (the readiness endpoint, metrics and heartbeats run regardless).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { statusResponseSchema } from '../../shared/api/v1.js';
import { lastKnownGoodSchema } from '../../agent/config/last-known-good.js';
import { spawnAgentProcess, stopAllAgentProcesses, type AgentLogLine } from '../../tools/fleet/agent.js';
import { startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { freePort } from '../../tools/fleet/registry.js';

let dir: string;
let coordinator: InProcessCoordinator;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baton-agent-lkg-'));
  coordinator = await startInProcessCoordinator({ config: { heartbeatIntervalMs: 500 } });
});
afterAll(async () => {
  await stopAllAgentProcesses();
  await coordinator.stop({ removeData: true });
  await rm(dir, { recursive: true, force: true });
});

function agentConfig(nodeId: string, readinessPort: number, stateDir: string): Record<string, unknown> {
  return {
    nodeId,
    host: '127.0.0.1',
    coordinator: { urls: [coordinator.url], requestTimeoutMs: 2_000 },
    docker: { socketPath: join(dir, 'no-docker.sock'), requestTimeoutMs: 1_000 },
    schedule: { cron: '0 * * * *', splayMs: 0 },
    readiness: { listen: `127.0.0.1:${readinessPort}` },
    stateDir,
    logLevel: 'info',
    services: [{ group: 'lkg', image: '127.0.0.1:1/app:latest', containerName: 'app', health: { http: { url: 'http://127.0.0.1:1/health' } } }],
  };
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const answer = await request(url, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  return { status: answer.statusCode, text: await answer.body.text() };
}

/** The node's configProblem in GET /v1/status, once it equals what `expected` accepts (heartbeats come every 500 ms). */
async function waitForConfigProblem(nodeId: string, expected: (problem: string | null | undefined) => boolean): Promise<string | null | undefined> {
  const deadline = Date.now() + 15_000;
  let last: string | null | undefined;
  while (Date.now() < deadline) {
    const status = statusResponseSchema.parse(JSON.parse((await get(`${coordinator.url}/v1/status`)).text));
    last = status.groups.flatMap((group) => group.nodes).find((node) => node.nodeId === nodeId)?.configProblem;
    if (expected(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`node ${nodeId}: configProblem still ${JSON.stringify(last)}`);
}

const running = (line: AgentLogLine) => line.msg === 'agent running';

describe('baton agent with an invalid config and a last known good copy', () => {
  it('stores a valid config, keeps running on it when the file turns invalid, and reports the problem until the file is fixed', async () => {
    const port = await freePort('127.0.0.1');
    const stateDir = join(dir, 'state');
    const configFile = join(dir, 'agent.yaml');
    const valid = agentConfig('lkg-1', port, stateDir);
    await writeFile(configFile, stringify(valid));

    // 1. A valid file: the agent runs on it and stores it.
    const first = await spawnAgentProcess({ configFile });
    await first.waitForLine(running, 20_000);
    const stored = await first.waitForLine((l) => l.msg === 'config stored as the last known good config', 5_000);
    const copy = lastKnownGoodSchema.parse(JSON.parse(await readFile(join(stateDir, 'last-known-good-config.json'), 'utf8')));
    expect(copy.sourcePath).toBe(configFile);
    expect(copy.text).toBe(await readFile(configFile, 'utf8'));
    expect(stored.sha256).toBe(copy.sha256);
    expect((await get(`http://127.0.0.1:${port}/metrics`)).text).toMatch(/^baton_agent_config_valid 1$/m);
    expect(await first.kill('SIGTERM', 20_000)).toBe(0);

    // 2. The file turns invalid (and would move the readiness endpoint): the agent starts on the copy.
    await writeFile(configFile, stringify({ ...valid, logLevel: 'loud', readiness: { listen: '127.0.0.1:99999' }, schedule: { cron: 'never' } }));
    const second = await spawnAgentProcess({ configFile });
    const problemLine = await second.waitForLine((l) => l.level === 'error' && typeof l.msg === 'string' && l.msg.startsWith('invalid configuration'), 20_000);
    expect(problemLine.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^logLevel: /), expect.stringMatching(/^readiness\.listen: /), expect.stringMatching(/^schedule\.cron: /)]));
    await second.waitForLine(running, 20_000);
    const stderr = second.stderr.join('\n');
    expect(stderr).toMatch(/^baton agent: invalid configuration in .*agent\.yaml:$/m);
    expect(stderr).toMatch(/^ {2}- logLevel: /m);
    expect(stderr).toMatch(/running on the last known good config .*last-known-good-config\.json/);
    // The readiness endpoint of the previous config keeps answering (no container: 503, but it answers).
    const ready = await get(`http://127.0.0.1:${port}/ready/app`);
    expect([200, 503]).toContain(ready.status);
    expect((await get(`http://127.0.0.1:${port}/metrics`)).text).toMatch(/^baton_agent_config_valid 0$/m);
    const problem = await waitForConfigProblem('lkg-1', (p) => typeof p === 'string');
    expect(problem).toMatch(/^invalid configuration in .*agent\.yaml: .*\(running on the last known good config of [-0-9T:.Z]+, sha256 [0-9a-f]{12}\)$/);
    for (const field of ['logLevel', 'readiness.listen', 'schedule.cron']) expect(problem).toContain(`${field}: `);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(second.running).toBe(true);
    expect(await second.kill('SIGTERM', 20_000)).toBe(0);
    // The copy was not replaced by anything from the invalid file.
    expect(lastKnownGoodSchema.parse(JSON.parse(await readFile(join(stateDir, 'last-known-good-config.json'), 'utf8'))).sha256).toBe(copy.sha256);

    // 3. Fixed file, restart: the problem is gone everywhere.
    await writeFile(configFile, stringify(valid));
    const third = await spawnAgentProcess({ configFile });
    await third.waitForLine(running, 20_000);
    expect(await waitForConfigProblem('lkg-1', (p) => p === null)).toBeNull();
    expect((await get(`http://127.0.0.1:${port}/metrics`)).text).toMatch(/^baton_agent_config_valid 1$/m);
    expect(await third.kill('SIGTERM', 20_000)).toBe(0);
  });

  it('exits 78 as before when there is no last known good copy', async () => {
    const port = await freePort('127.0.0.1');
    const configFile = join(dir, 'fresh.yaml');
    await writeFile(configFile, stringify({ ...agentConfig('lkg-2', port, join(dir, 'empty-state')), logLevel: 'loud' }));
    const agent = await spawnAgentProcess({ configFile });
    expect((await agent.exited).code).toBe(78);
    const stderr = agent.stderr.join('\n');
    expect(stderr).toMatch(/^ {2}- logLevel: /m);
    expect(stderr).toMatch(/no last known good config at .*empty-state\/last-known-good-config\.json/);
    expect(agent.lines).toEqual([]);
  });
});
