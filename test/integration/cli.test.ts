import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventSchema,
  groupActionResponseSchema,
  leaseGrantSchema,
  statusNodeSchema,
  statusResponseSchema,
} from '../../shared/api/v1.js';
import { batonCli, startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { call, digestOf } from '../../tools/fleet/http.js';
import { runToExit, type ExitResult } from '../../tools/fleet/run.js';

const adminToken = 'admin-token-0123456789abcdef';
const agentToken = 'agent-token-0123456789abcdef';
const v1 = digestOf('v1');
const v2 = digestOf('v2');

/** The built CLI as a user runs it, with only the environment given here (never the test's own BATON_*). */
function runCli(args: string[], environment: Record<string, string> = {}, timeoutMs = 20_000): Promise<ExitResult> {
  return runToExit(process.execPath, [batonCli, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...environment }, timeoutMs });
}

async function freeClosedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function heartbeat(nodeId: string, group: string) {
  return {
    group,
    host: `${nodeId}.example.test`,
    image: '127.0.0.1:5000/app:latest',
    currentDigest: v1,
    health: 'healthy',
    step: 'idle',
    agentVersion: '0.1.0',
  };
}

describe('baton operator CLI (built, against a real coordinator)', () => {
  let coordinator: InProcessCoordinator;
  let admin: Record<string, string>;
  let scratch: string;

  beforeAll(async () => {
    if (!existsSync(batonCli)) throw new Error(`${batonCli} is missing: run 'npm run build' first`);
    scratch = mkdtempSync(join(tmpdir(), 'baton-cli-'));
    coordinator = await startInProcessCoordinator({
      config: { auth: { adminToken, agentTokens: [agentToken] } },
    });
    admin = { BATON_COORDINATOR: coordinator.url, BATON_TOKEN: adminToken };
    for (const [nodeId, group] of [
      ['node-a', 'web'],
      ['node-b', 'web'],
      ['node-c', 'web'],
      ['api-1', 'api'],
      ['gone-1', 'api'],
    ] as const) {
      const answer = await call(coordinator.url, 'POST', `/v1/nodes/${nodeId}/heartbeat`, {
        json: heartbeat(nodeId, group),
        token: agentToken,
      });
      expect(answer.status).toBe(200);
    }
    // An open rollout with one lease held, so status has something in every section.
    const grant = await call(coordinator.url, 'POST', '/v1/leases', {
      json: { nodeId: 'node-a', group: 'web', targetDigest: v2, image: '127.0.0.1:5000/app:latest' },
      token: agentToken,
    });
    expect(grant.status).toBe(200);
    leaseGrantSchema.parse(grant.body);
  });

  afterAll(async () => {
    await coordinator?.stop({ removeData: true });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('status prints groups, rollout, nodes and leases as tables', async () => {
    const result = await runCli(['status'], admin);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    const groupHeader = lines.find((line) => line.startsWith('GROUP'));
    expect(groupHeader).toMatch(/^GROUP\s+PAUSED\s+MAX UNAVAILABLE\s+NODES\s+ROLLOUT\s+TARGET\s+PROGRESS\s+LEASES/);
    const web = lines.find((line) => line.startsWith('web '));
    expect(web).toMatch(/^web\s+no\s+1\s+3\s+in-progress\s+sha256:76320000000\d\s+0\/3 on target, 1 updating\s+1\/1/);
    expect(lines.find((line) => line.startsWith('api '))).toMatch(/^api\s+no\s+1\s+2\s+-/);
    expect(lines.some((line) => /^NODE\s+GROUP\s+HOST\s+HEALTH\s+STEP\s+DIGEST/.test(line))).toBe(true);
    expect(lines.some((line) => /^node-b\s+web\s+node-b\.example\.test\s+healthy\s+idle\s+sha256:7631/.test(line))).toBe(true);
    const leaseLine = lines.find((line) => /^\S+\s+web\s+node-a\s+\d+\s+sha256:7632/.test(line));
    expect(leaseLine, result.stdout).toBeDefined();
    // Columns line up: each header starts where its cells start.
    const header = lines.find((line) => line.startsWith('NODE')) as string;
    const row = lines.find((line) => line.startsWith('node-b')) as string;
    expect(row.indexOf('web')).toBe(header.indexOf('GROUP'));
  });

  it('status --json is the API v1 status document', async () => {
    const result = await runCli(['status', '--json'], admin);
    expect(result.code).toBe(0);
    const status = statusResponseSchema.parse(JSON.parse(result.stdout));
    expect(status.groups.map((group) => group.name).sort()).toEqual(['api', 'web']);
    expect(status.groups.find((group) => group.name === 'web')?.leases).toHaveLength(1);
  });

  it('nodes prints a table, filters by --group, and --json parses', async () => {
    const table = await runCli(['nodes'], admin);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NODE\s+GROUP\s+HOST\s+HEALTH\s+STEP\s+DIGEST\s+VERSION\s+LAST HEARTBEAT$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/)[0]).sort()).toEqual(['api-1', 'gone-1', 'node-a', 'node-b', 'node-c']);

    const filtered = await runCli(['nodes', '--group', 'api', '--json'], admin);
    expect(filtered.code).toBe(0);
    const nodes = statusNodeSchema.array().parse(JSON.parse(filtered.stdout));
    expect(nodes.map((node) => node.nodeId).sort()).toEqual(['api-1', 'gone-1']);

    const unknown = await runCli(['nodes', '--group', 'nope'], admin);
    expect(unknown.code).toBe(65);
    expect(unknown.stderr).toContain('unknown group "nope"');
  });

  it('pause and resume a group, with a reason, in text and JSON', async () => {
    const paused = await runCli(['pause', 'api', '--reason', 'maintenance window'], admin);
    expect(paused.stderr).toBe('');
    expect(paused.code).toBe(0);
    expect(paused.stdout).toBe('api: paused; group is paused, rollout none\n');
    const status = statusResponseSchema.parse(JSON.parse((await runCli(['status', '--json'], admin)).stdout));
    expect(status.groups.find((group) => group.name === 'api')?.paused).toBe(true);
    expect(status.events.some((event) => event.type === 'pause' && event.reason === 'maintenance window')).toBe(true);

    const resumed = await runCli(['resume', 'api', '--json'], admin);
    expect(resumed.code).toBe(0);
    expect(groupActionResponseSchema.parse(JSON.parse(resumed.stdout))).toMatchObject({ group: 'api', paused: false });
  });

  it('abort ends the open rollout; a second abort has nothing to abort (65)', async () => {
    const aborted = await runCli(['abort', 'web', '--reason', 'bad build'], admin);
    expect(aborted.stderr).toBe('');
    expect(aborted.code).toBe(0);
    expect(aborted.stdout).toContain('web: aborted');
    expect(aborted.stdout).toContain('rollout aborted');

    const again = await runCli(['abort', 'web'], admin);
    expect(again.code).toBe(65);
    expect(again.stderr).toMatch(/^baton abort: nothing to abort in group web.*\(409 conflict\)\n$/);
  });

  it('retry opens a new rollout of the aborted digest; rollback with no earlier completed digest is 65', async () => {
    const retried = await runCli(['retry', 'web', '--reason', 'fixed the config'], admin);
    expect(retried.stderr).toBe('');
    expect(retried.code).toBe(0);
    expect(retried.stdout).toMatch(/^web: retrying; group is not paused, rollout in-progress \(#2, sha256:[0-9a-f]+\)\n$/);
    const status = statusResponseSchema.parse(JSON.parse((await runCli(['status', '--json'], admin)).stdout));
    expect(status.groups.find((group) => group.name === 'web')?.rollout).toMatchObject({ seq: 2, cause: 'retry', targetDigest: v2 });

    const rollback = await runCli(['rollback', 'web'], admin);
    expect(rollback.code).toBe(65);
    expect(rollback.stderr).toMatch(/^baton rollback: nothing to roll back to in group web.*\(409 conflict\)\n$/);
    const again = await runCli(['retry', 'web'], admin);
    expect(again.code).toBe(65);
    expect(again.stderr).toContain('nothing to retry in group web');
  });

  it('an unknown group is a data error (65) with the coordinator message', async () => {
    const result = await runCli(['pause', 'no-such-group'], admin);
    expect(result.code).toBe(65);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('baton pause: unknown group "no-such-group" (404)\n');
  });

  it('forget removes a node; forgetting it again is 65', async () => {
    const wrongGroup = await runCli(['forget', 'gone-1', '--group', 'web'], admin);
    expect(wrongGroup.code).toBe(65);

    const forgotten = await runCli(['forget', 'gone-1', '--group', 'api'], admin);
    expect(forgotten.stderr).toBe('');
    expect(forgotten.code).toBe(0);
    expect(forgotten.stdout).toBe('forgot node gone-1 in api\n');

    const again = await runCli(['forget', 'gone-1', '--json'], admin);
    expect(again.code).toBe(65);
    expect(again.stderr).toContain('unknown node "gone-1"');
    const nodes = await runCli(['nodes', '--json'], admin);
    expect((JSON.parse(nodes.stdout) as { nodeId: string }[]).map((node) => node.nodeId)).not.toContain('gone-1');
  });

  it('events prints one line per event, oldest first; --json prints one parseable object per line', async () => {
    const text = await runCli(['events', '--limit', '4'], admin);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z #\d+ [a-z-]+\s+\S+/);
    const seqs = lines.map((line) => Number(/#(\d+)/.exec(line)?.[1]));
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);

    const asJson = await runCli(['events', '--json', '--group', 'web', '--limit', '1000'], admin);
    expect(asJson.code).toBe(0);
    const events = asJson.stdout.trim().split('\n').map((line) => eventSchema.parse(JSON.parse(line)));
    expect(events.length).toBeGreaterThanOrEqual(5);
    expect(new Set(events.map((event) => event.group))).toEqual(new Set(['web']));
    expect(events.map((event) => event.type)).toEqual(expect.arrayContaining(['node-joined', 'rollout-opened', 'grant', 'abort']));
  });

  it('events --follow prints new events as they happen until it is stopped', async () => {
    const child = spawn(process.execPath, [batonCli, 'events', '--follow', '--limit', '1', '--interval', '200'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...admin },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const waitFor = async (predicate: () => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stdout:\n${stdout}\nstderr:\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await waitFor(() => stdout.split('\n').length >= 2, 'the newest event');
      expect(stdout.trim().split('\n')).toHaveLength(1);
      const paused = await call(coordinator.url, 'POST', '/v1/groups/api/pause', {
        json: { reason: 'follow test' },
        token: adminToken,
      });
      expect(paused.status).toBe(200);
      await waitFor(() => /#\d+ pause\s+api reason="follow test"/.test(stdout), 'the pause event');
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    await call(coordinator.url, 'POST', '/v1/groups/api/resume', { json: {}, token: adminToken });
  });

  it('an unreachable coordinator is 69 and names the URL', async () => {
    const port = await freeClosedPort();
    const url = `http://127.0.0.1:${port}`;
    for (const args of [['status'], ['pause', 'web'], ['events', '--follow']]) {
      const result = await runCli([...args, '--coordinator', url, '--timeout', '3000'], { BATON_TOKEN: adminToken });
      expect(result.code, result.stderr).toBe(69);
      expect(result.stderr).toContain(`cannot reach the coordinator at ${url}`);
      expect(result.stdout).toBe('');
    }
  });

  it('a wrong, missing or under-privileged token is 77', async () => {
    const wrong = await runCli(['status', '--token', 'not-the-right-token-at-all'], { BATON_COORDINATOR: coordinator.url });
    expect(wrong.code).toBe(77);
    expect(wrong.stderr).toContain('invalid token (401)');

    const missing = await runCli(['nodes'], { BATON_COORDINATOR: coordinator.url });
    expect(missing.code).toBe(77);
    expect(missing.stderr).toContain('a bearer token is required (401)');

    // An agent token may read, but not pause.
    const reader = { BATON_COORDINATOR: coordinator.url, BATON_TOKEN: agentToken };
    expect((await runCli(['status'], reader)).code).toBe(0);
    const forbidden = await runCli(['pause', 'web'], reader);
    expect(forbidden.code).toBe(77);
    expect(forbidden.stderr).toContain('this action needs the admin token (403)');
  });

  it('reads the token from --token-file and the coordinator from --coordinator', async () => {
    const tokenFile = join(scratch, 'token');
    writeFileSync(tokenFile, `${adminToken}\n`, { mode: 0o600 });
    const result = await runCli(['status', '--json', '--coordinator', coordinator.url, '--token-file', tokenFile]);
    expect(result.code).toBe(0);
    statusResponseSchema.parse(JSON.parse(result.stdout));

    const viaEnvironment = await runCli(['nodes'], { BATON_COORDINATOR: coordinator.url, BATON_TOKEN_FILE: tokenFile });
    expect(viaEnvironment.code).toBe(0);

    const unreadable = await runCli(['status', '--token-file', join(scratch, 'missing')], { BATON_COORDINATOR: coordinator.url });
    expect(unreadable.code).toBe(66);
    expect(unreadable.stderr).toContain('cannot read the token file');
  });

  it('bad usage is 64 and never reaches the coordinator', async () => {
    const cases: string[][] = [
      ['pause'],
      ['resume', 'a', 'b'],
      ['forget'],
      ['status', '--bogus'],
      ['status', 'extra'],
      ['events', '--limit', 'zero'],
      ['events', '--limit', '5000'],
      ['nodes', '--coordinator', 'not a url'],
      ['status', '--token', 'x', '--token-file', '/dev/null'],
      ['pause', 'bad\u0001group'],
    ];
    for (const args of cases) {
      const result = await runCli(args, admin);
      expect(result.code, `baton ${args.join(' ')}: ${result.stderr}`).toBe(64);
      expect(result.stderr).toMatch(/^baton \w+: .+\nRun 'baton \w+ --help' for usage\.\n$/);
    }
    const help = await runCli(['events', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--follow');
    expect(help.stdout).toContain('69 coordinator unreachable');
    const top = await runCli(['--help']);
    expect(top.stdout).toMatch(/status\s+groups, rollouts, nodes and leases/);
    expect((await runCli(['version'])).code).toBe(0);
  });
});
