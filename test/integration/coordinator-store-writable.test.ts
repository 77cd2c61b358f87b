import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorResponseSchema, statusResponseSchema } from '../../shared/api/v1.js';
import { batonCli, spawnCoordinatorProcess, type CoordinatorProcess } from '../../tools/fleet/coordinator.js';
import { call, digestOf } from '../../tools/fleet/http.js';
import { runToExit, type ExitResult } from '../../tools/fleet/run.js';

/**
 * The coordinator on a database it cannot write, for real: a read-only bind mount, a file mode
 * the process (run as `nobody`) cannot write, a full tmpfs. Tests run as root, which ignores file
 * modes, hence the mounts and setpriv; where they are not allowed the tests are skipped.
 */

function run(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'baton-store-writable-'));
const probe = join(scratch, 'probe');
mkdirSync(probe);
const canMount = run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]) && run('umount', [probe]);
const canDropPrivileges = process.getuid?.() === 0 && run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', '']);
const mounts: string[] = [];

function mountTmpfs(path: string, size: string): void {
  mkdirSync(path, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path]);
  mounts.push(path);
}

function mountReadOnlyBind(source: string, target: string): void {
  mkdirSync(target, { recursive: true });
  execFileSync('mount', ['--bind', source, target]);
  mounts.push(target);
  execFileSync('mount', ['-o', 'remount,ro,bind', target]);
}

/** Fills the file system at `dir` to the last block. */
function fill(dir: string): string {
  const filler = join(dir, 'filler');
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k'], { stdio: 'ignore' });
  } catch {
    // dd ends with ENOSPC: that is the point.
  }
  return filler;
}

/** `baton coordinator` as a process until it exits: its code and what it wrote. */
function startToExit(dataFile: string, asNobody = false): Promise<ExitResult> {
  const node = [process.execPath, batonCli, 'coordinator'];
  const [command, ...args] = asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...node] : node;
  return runToExit(command as string, args, {
    env: { PATH: process.env.PATH ?? '', BATON_LISTEN: '127.0.0.1:0', BATON_DATA: dataFile },
    timeoutMs: 15_000,
  });
}

const heartbeat = (nodeId: string) => ({
  group: 'web',
  host: `${nodeId}.local`,
  image: '127.0.0.1:5000/app:latest',
  currentDigest: digestOf('v1'),
  health: 'healthy',
  agentVersion: '0.1.0',
});

/** A database with one node in it, written by a coordinator that then stopped. */
async function seededDatabase(dataFile: string): Promise<void> {
  const coordinator = await spawnCoordinatorProcess({ dataFile });
  expect((await call(coordinator.url, 'POST', '/v1/nodes/web-1/heartbeat', { json: heartbeat('web-1') })).status).toBe(200);
  expect(await coordinator.kill('SIGTERM')).toBe(0);
}

function expectOneClearLine(stderr: string, dataFile: string, reason: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toContain(`baton coordinator: cannot write the database ${dataFile}: `);
  expect(lines[0]).toMatch(reason);
  expect(stderr).not.toMatch(/\n\s+at /);
}

afterAll(() => {
  for (const path of mounts.splice(0).reverse()) run('umount', ['-l', path]);
  rmSync(scratch, { recursive: true, force: true });
});

describe('the coordinator refuses to start on a database it cannot write', () => {
  beforeAll(() => {
    if (!existsSync(batonCli)) throw new Error(`${batonCli} is missing: run 'npm run build' first`);
  });
  it.skipIf(!canMount)('exits 73 naming the file on a read-only mount (needs mount: skipped when not allowed)', async () => {
    const dir = join(scratch, 'ro-source');
    mkdirSync(dir);
    await seededDatabase(join(dir, 'baton.db'));
    const readOnly = join(scratch, 'ro');
    mountReadOnlyBind(dir, readOnly);
    const dataFile = join(readOnly, 'baton.db');
    const { code, stderr } = await startToExit(dataFile);
    expect(code).toBe(73);
    expectOneClearLine(stderr, dataFile, /readonly|read-only/);
  });

  it.skipIf(!canDropPrivileges)('exits 73 on a 0444 file, run as a user the mode binds (needs root and setpriv)', async () => {
    const dir = join(scratch, 'mode');
    mkdirSync(dir);
    const dataFile = join(dir, 'baton.db');
    await seededDatabase(dataFile);
    chmodSync(scratch, 0o755);
    chmodSync(dir, 0o777);
    chmodSync(dataFile, 0o444);
    const { code, stderr } = await startToExit(dataFile, true);
    expect(code).toBe(73);
    expectOneClearLine(stderr, dataFile, /readonly/);
  });

  it.skipIf(!canMount)('exits 73 with one line on a full disk, for a new database and an existing one (needs mount)', async () => {
    const dir = join(scratch, 'full');
    mountTmpfs(dir, '512k');
    await seededDatabase(join(dir, 'old.db'));
    fill(dir);
    for (const name of ['old.db', 'new.db']) {
      const dataFile = join(dir, name);
      const { code, stderr } = await startToExit(dataFile);
      expect(code, stderr).toBe(73);
      expectOneClearLine(stderr, dataFile, /full|I\/O error/);
    }
  });
});

describe('GET /healthz reports a store that cannot commit', () => {
  let coordinator: CoordinatorProcess | undefined;
  afterEach(async () => {
    await coordinator?.kill('SIGTERM');
  });

  it.skipIf(!canMount)('answers 503 with the reason while the disk is full, 200 once it is freed, and loses nothing (needs mount)', async () => {
    const dir = join(scratch, 'runtime');
    mountTmpfs(dir, '1m');
    coordinator = await spawnCoordinatorProcess({ dataFile: join(dir, 'baton.db') });
    const { url } = coordinator;
    expect((await call(url, 'POST', '/v1/nodes/web-1/heartbeat', { json: heartbeat('web-1') })).status).toBe(200);
    expect((await call(url, 'GET', '/healthz')).status).toBe(200);

    const filler = fill(dir);
    const refused = await call(url, 'POST', '/v1/nodes/web-2/heartbeat', { json: heartbeat('web-2') });
    expect(refused.status).toBe(500);
    const health = await call(url, 'GET', '/healthz');
    expect(health.status).toBe(503);
    const error = errorResponseSchema.parse(health.body);
    expect(error.error).toBe('unavailable');
    expect(error.message).toMatch(/^the store cannot commit: .*(full|I\/O error)/);
    // Still failing: each /healthz tries one small commit, and it fails again.
    expect((await call(url, 'GET', '/healthz')).status).toBe(503);

    rmSync(filler);
    expect((await call(url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(url, 'POST', '/v1/nodes/web-2/heartbeat', { json: heartbeat('web-2') })).status).toBe(200);
    const status = statusResponseSchema.parse((await call(url, 'GET', '/v1/status')).body);
    expect(status.groups[0]?.nodes.map((node) => node.nodeId).sort()).toEqual(['web-1', 'web-2']);
  });
});
