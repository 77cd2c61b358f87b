import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/main.js';
import { loadConfig } from '../../shared/config/load.js';
import { coordinatorConfigSchema, coordinatorEnvironmentOverrides } from '../../shared/config/coordinator.js';
import { batonCli, repositoryRoot } from '../../tools/fleet/coordinator.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

/**
 * The scripts run from a frozen copy of the built checkout, so that a rebuild of dist/ in the
 * working tree while the tests run cannot look like a change the install made.
 */
let source = repositoryRoot;
const install = (...args: string[]) => run('bash', [join(source, 'scripts/install.sh'), ...args]);
const uninstall = (...args: string[]) => run('bash', [join(source, 'scripts/uninstall.sh'), ...args]);

function freezeCheckout(into: string): string {
  mkdirSync(into, { recursive: true });
  for (const entry of ['dist', 'node_modules', 'systemd', 'scripts', 'package.json', 'package-lock.json', 'README.md']) {
    if (existsSync(join(repositoryRoot, entry))) {
      cpSync(join(repositoryRoot, entry), join(into, entry), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    }
  }
  return into;
}

/** Every path under `root` with its type, mode, content hash (or link target) and, optionally, mtime. */
function snapshot(root: string, withTimes: boolean): Map<string, string> {
  const entries = new Map<string, string>();
  const walk = (relative: string): void => {
    const path = join(root, relative);
    const stat = lstatSync(path);
    const mode = (stat.mode & 0o7777).toString(8);
    const time = withTimes ? ` ${stat.mtimeMs}` : '';
    if (stat.isSymbolicLink()) entries.set(relative, `link ${readlinkSync(path)}`);
    else if (stat.isDirectory()) {
      entries.set(relative, `dir ${mode}`);
      for (const name of readdirSync(path).sort()) walk(join(relative, name));
    } else {
      entries.set(relative, `file ${mode} ${createHash('sha256').update(readFileSync(path)).digest('hex')}${time}`);
    }
  };
  walk('.');
  return entries;
}

function unitSettings(text: string): Array<[string, string]> {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith('['))
    .map((line) => {
      const equals = line.indexOf('=');
      return [line.slice(0, equals), line.slice(equals + 1)] as [string, string];
    });
}

describe('systemd units and the install script', () => {
  let scratch: string;
  let root: string;
  let first: Run;
  let second: Run;
  let afterFirst: Map<string, string>;

  beforeAll(async () => {
    if (!existsSync(batonCli)) throw new Error(`${batonCli} is missing: run 'npm run build' first`);
    scratch = mkdtempSync(join(tmpdir(), 'baton-systemd-'));
    root = join(scratch, 'root');
    source = freezeCheckout(join(scratch, 'checkout'));
    first = await install('--root', root, '--both');
    afterFirst = snapshot(root, true);
    second = await install('--root', root, '--both');
  }, 240_000);

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('installs the package, units, sysusers file and example configs under the root', () => {
    expect(first.code, first.stderr).toBe(0);
    for (const path of [
      'opt/baton/bin/baton',
      'opt/baton/dist/cli/baton.js',
      'opt/baton/package.json',
      'opt/baton/node_modules/better-sqlite3/package.json',
      'opt/baton/systemd/baton-agent.service',
      'etc/systemd/system/baton-agent.service',
      'etc/systemd/system/baton-agent.socket',
      'etc/systemd/system/baton-coordinator.service',
      'etc/baton/agent.yaml',
      'etc/baton/agent.env',
      'etc/baton/coordinator.yaml',
      'etc/baton/coordinator.env',
      'usr/lib/sysusers.d/baton.conf',
    ]) {
      expect(existsSync(join(root, path)), path).toBe(true);
    }
    expect(readlinkSync(join(root, 'usr/local/bin/baton'))).toBe('/opt/baton/bin/baton');
    // Production dependencies only.
    for (const dev of ['vitest', 'typescript', 'eslint', 'playwright-core']) {
      expect(existsSync(join(root, 'opt/baton/node_modules', dev)), dev).toBe(false);
    }
    const modes = (path: string) => (lstatSync(join(root, path)).mode & 0o777).toString(8);
    expect(modes('etc/baton')).toBe('750');
    expect(modes('etc/baton/agent.yaml')).toBe('640');
    expect(modes('etc/baton/agent.env')).toBe('600');
    expect(modes('etc/systemd/system/baton-agent.service')).toBe('644');
    expect(modes('opt/baton/bin/baton')).toBe('755');
    expect(readFileSync(join(root, 'usr/lib/sysusers.d/baton.conf'), 'utf8')).toMatch(/^u baton - ".+" \/var\/lib\/baton -$/m);
  });

  it('is idempotent: a second run changes nothing (same tree, hashes, modes and times)', () => {
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('install: unchanged /opt/baton');
    expect(second.stdout).toContain('install: nothing changed');
    expect(snapshot(root, true)).toEqual(afterFirst);
  });

  it('the installed wrapper runs Baton from production dependencies alone', async () => {
    const wrapper = join(root, 'opt/baton/bin/baton');
    const version = await run(wrapper, ['version']);
    expect(version).toMatchObject({ code: 0, stdout: `${JSON.parse(readFileSync(join(repositoryRoot, 'package.json'), 'utf8')).version}\n` });
    // Loading the agent and the coordinator pulls in dockerode, fastify, better-sqlite3, prom-client...
    const agent = await run(wrapper, ['agent', '--config', join(scratch, 'missing.yaml')]);
    expect(agent.code, agent.stderr).toBe(78);
    expect(agent.stderr).toContain('cannot read file');
    const coordinator = await run(wrapper, ['coordinator', '--config', join(scratch, 'missing.yaml')]);
    expect(coordinator.code, coordinator.stderr).toBe(78);
    const cli = await run(wrapper, ['status', '--coordinator', 'http://127.0.0.1:9', '--timeout', '2000']);
    expect(cli.code).toBe(69);
  });

  it('the example configs are valid configs', () => {
    const agent = loadAgentConfig(join(root, 'etc/baton/agent.yaml'), {});
    expect(agent.stateDir).toBe('/var/lib/baton');
    expect(agent.services[0]?.containerName).toBe('web');
    const coordinator = loadConfig(coordinatorConfigSchema, {
      path: join(root, 'etc/baton/coordinator.yaml'),
      environment: {},
      overrides: coordinatorEnvironmentOverrides,
    });
    expect(coordinator.dataFile).toBe('/var/lib/baton/coordinator.db');
    // The env examples hold only comments: no secret ships in them.
    for (const name of ['agent.env', 'coordinator.env']) {
      const lines = readFileSync(join(root, 'etc/baton', name), 'utf8').split('\n');
      expect(lines.filter((line) => line.trim() !== '' && !line.startsWith('#'))).toEqual([]);
    }
  });

  it('the units carry the restart policy, the hardening and the paths the install uses', () => {
    for (const part of ['agent', 'coordinator'] as const) {
      const settings = unitSettings(readFileSync(join(root, `etc/systemd/system/baton-${part}.service`), 'utf8'));
      const get = (key: string) => settings.filter(([k]) => k === key).map(([, v]) => v);
      expect(get('Type')).toEqual(['simple']);
      expect(get('ExecStart')).toEqual([`/opt/baton/bin/baton ${part} --config /etc/baton/${part}.yaml`]);
      expect(get('EnvironmentFile')).toEqual([`-/etc/baton/${part}.env`]);
      expect(get('Restart')).toEqual(['on-failure']);
      expect(get('RestartPreventExitStatus')).toEqual(['78']);
      expect(get('User')).toEqual(['baton']);
      expect(get('NoNewPrivileges')).toEqual(['yes']);
      expect(get('ProtectSystem')).toEqual(['strict']);
      expect(get('ProtectHome')).toEqual(['yes']);
      expect(get('PrivateTmp')).toEqual(['yes']);
      expect(get('StateDirectory')).toEqual(['baton']);
      expect(get('CapabilityBoundingSet')).toEqual(['']);
      expect(get('ReadWritePaths')).toEqual([]);
      expect(get('SupplementaryGroups')).toEqual(part === 'agent' ? ['docker'] : []);
      expect(get('Sockets')).toEqual(part === 'agent' ? ['baton-agent.socket'] : []);
    }
    const socket = unitSettings(readFileSync(join(root, 'etc/systemd/system/baton-agent.socket'), 'utf8'));
    expect(socket.filter(([k]) => k === 'ListenStream').map(([, v]) => v)).toEqual(['7071']);
    expect(socket.filter(([k]) => k === 'Accept').map(([, v]) => v)).toEqual(['no']);
  });

  it('systemd-analyze verify passes on the installed units, without a warning', async () => {
    // verify --root resolves units, ExecStart and targets inside the root: give it the host's
    // own unit directory, so only Baton's files are under test.
    const verifyRoot = join(scratch, 'verify-root');
    for (const part of ['etc', 'usr', 'opt/baton/bin']) {
      cpSync(join(root, part), join(verifyRoot, part), { recursive: true, verbatimSymlinks: true });
    }
    mkdirSync(join(verifyRoot, 'usr/lib/systemd'), { recursive: true });
    cpSync('/usr/lib/systemd/system', join(verifyRoot, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });

    const verified = await run('systemd-analyze', [
      'verify',
      `--root=${verifyRoot}`,
      'baton-agent.socket',
      'baton-agent.service',
      'baton-coordinator.service',
    ]);
    expect(verified.stderr).toBe('');
    expect(verified.code).toBe(0);

    // The same check notices a broken unit: a misspelt setting, and an ExecStart that is missing.
    const broken = join(verifyRoot, 'etc/systemd/system/baton-agent.service');
    writeFileSync(broken, readFileSync(broken, 'utf8').replace('ProtectSystem=strict', 'ProtectSystm=strict'));
    const misspelt = await run('systemd-analyze', ['verify', `--root=${verifyRoot}`, 'baton-agent.service']);
    expect(misspelt.stderr).toContain("Unknown key 'ProtectSystm'");
    rmSync(join(verifyRoot, 'opt/baton/bin/baton'));
    const missing = await run('systemd-analyze', ['verify', `--root=${verifyRoot}`, 'baton-coordinator.service']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('/opt/baton/bin/baton is not executable');
  });

  it('never overwrites an existing config, and restores a changed unit', async () => {
    const config = join(root, 'etc/baton/agent.yaml');
    writeFileSync(config, '# mine\n');
    const unit = join(root, 'etc/systemd/system/baton-coordinator.service');
    writeFileSync(unit, '[Service]\nExecStart=/bin/false\n');
    const again = await install('--root', root);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(config, 'utf8')).toBe('# mine\n');
    expect(readFileSync(unit, 'utf8')).toBe(readFileSync(join(source, 'systemd/baton-coordinator.service'), 'utf8'));
    expect(again.stdout).toContain('install: kept /etc/baton/agent.yaml');
    expect(again.stdout).toContain('install: wrote /etc/systemd/system/baton-coordinator.service');
    expect(again.stdout).toContain('install: unchanged /opt/baton');
  }, 120_000);

  it('--agent installs only the agent unit and its configs; bad flags are 64', async () => {
    const agentRoot = join(scratch, 'agent-only');
    const result = await install('--agent', '--root', agentRoot);
    expect(result.code, result.stderr).toBe(0);
    expect(existsSync(join(agentRoot, 'etc/systemd/system/baton-agent.service'))).toBe(true);
    expect(existsSync(join(agentRoot, 'etc/systemd/system/baton-agent.socket'))).toBe(true);
    expect(existsSync(join(agentRoot, 'etc/systemd/system/baton-coordinator.service'))).toBe(false);
    expect(readdirSync(join(agentRoot, 'etc/baton')).sort()).toEqual(['agent.env', 'agent.yaml']);
    const bad = await install('--root', agentRoot, '--everything');
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('unknown argument: --everything');
  }, 120_000);

  it('uninstall removes the package and units, keeps configs and state unless --purge', async () => {
    mkdirSync(join(root, 'var/lib/baton'), { recursive: true });
    writeFileSync(join(root, 'var/lib/baton/coordinator.db'), 'state');
    const removed = await uninstall('--root', root);
    expect(removed.code, removed.stderr).toBe(0);
    for (const gone of [
      'opt/baton',
      'usr/local/bin/baton',
      'usr/lib/sysusers.d/baton.conf',
      'etc/systemd/system/baton-agent.service',
      'etc/systemd/system/baton-agent.socket',
      'etc/systemd/system/baton-coordinator.service',
    ]) {
      expect(existsSync(join(root, gone)) || lstatExists(join(root, gone)), gone).toBe(false);
    }
    expect(readFileSync(join(root, 'etc/baton/agent.yaml'), 'utf8')).toBe('# mine\n');
    expect(readFileSync(join(root, 'var/lib/baton/coordinator.db'), 'utf8')).toBe('state');
    expect(removed.stdout).toContain('uninstall: kept /etc/baton');

    const again = await uninstall('--root', root);
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain('removed');

    const purged = await uninstall('--root', root, '--purge');
    expect(purged.code, purged.stderr).toBe(0);
    expect(existsSync(join(root, 'etc/baton'))).toBe(false);
    expect(existsSync(join(root, 'var/lib/baton'))).toBe(false);
  }, 120_000);
});

function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
