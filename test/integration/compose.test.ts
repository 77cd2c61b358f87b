import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadAgentConfig } from '../../agent/main.js';
import { loadConfig } from '../../shared/config/load.js';
import { coordinatorConfigSchema, coordinatorEnvironmentOverrides } from '../../shared/config/coordinator.js';
import { repositoryRoot } from '../../tools/fleet/coordinator.js';

/**
 * The demo stack cannot be built or started here (no image can be pulled), so these tests check
 * what can be checked without Docker: compose accepts the file, HAProxy accepts its config, Baton
 * accepts the demo configs, and the pieces agree with each other (names, ports, tokens).
 */

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd = repositoryRoot): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      const failure = error as (Error & { code?: unknown }) | null;
      const code = failure ? (typeof failure.code === 'number' ? failure.code : null) : 0;
      if (failure && failure.code === 'ENOENT') {
        resolve({ code: null, stdout: '', stderr: `${command}: not found on PATH` });
        return;
      }
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

function onPath(binary: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, binary)));
}

const demo = (name: string) => join(repositoryRoot, 'docker/demo', name);
const readEnvFile = (path: string): Record<string, string> =>
  Object.fromEntries(
    readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => /^[A-Z_][A-Z0-9_]*=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );

interface ComposeService {
  build?: { context: string; dockerfile?: string };
  image?: string;
  network_mode?: string;
  volumes?: string[];
  environment?: Record<string, string>;
  command?: string[];
  profiles?: string[];
}

describe('docker-compose demo stack', () => {
  it('docker-compose config -q accepts docker-compose.yml', async () => {
    if (!onPath('docker-compose')) {
      throw new Error('docker-compose is not installed: scripts/install-deps.sh installs the Debian package docker-compose');
    }
    const result = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('defines the registry, coordinator, three agents on the Docker socket and HAProxy, all on the host network', async () => {
    if (!onPath('docker-compose')) throw new Error('docker-compose is not installed (scripts/install-deps.sh)');
    const result = await run('docker-compose', ['-f', 'docker-compose.yml', 'config']);
    expect(result.code, result.stderr).toBe(0);
    const config = parseYaml(result.stdout) as { services: Record<string, ComposeService> };
    const services = config.services;
    expect(Object.keys(services).sort()).toEqual(['agent-1', 'agent-2', 'agent-3', 'coordinator', 'demo-app', 'haproxy', 'registry']);
    // demo-app only builds the app image (profile "tools"): `docker-compose up` does not start it.
    expect(services['demo-app']?.profiles).toEqual(['tools']);
    for (const [name, service] of Object.entries(services)) {
      if (name !== 'demo-app') expect(service.network_mode, name).toBe('host');
      expect(service.build, 'every image is built here, none is pulled').toBeDefined();
      const build = service.build as { context: string; dockerfile?: string };
      expect(existsSync(join(build.context, build.dockerfile ?? 'Dockerfile'))).toBe(true);
    }
    for (const n of [1, 2, 3]) {
      const agent = services[`agent-${n}`] as ComposeService;
      expect(agent.command).toEqual(['agent', '--config', '/etc/baton/agent.yaml']);
      expect(agent.volumes).toContain('/var/run/docker.sock:/var/run/docker.sock:rw');
      expect(agent.volumes).toContain(`${demo(`agent-${n}.yaml`)}:/etc/baton/agent.yaml:ro`);
    }
    expect(services.coordinator?.command).toEqual(['coordinator', '--config', '/etc/baton/coordinator.yaml']);
  });

  it('every Dockerfile starts from Debian bookworm or Node 20 on bookworm', () => {
    for (const dockerfile of ['baton', 'registry', 'haproxy', 'demo-app'].map((d) => join(repositoryRoot, 'docker', d, 'Dockerfile'))) {
      const froms = readFileSync(dockerfile, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('FROM '))
        .map((line) => line.split(/\s+/)[1]);
      expect(froms.length, dockerfile).toBeGreaterThan(0);
      for (const from of froms) expect(['debian:bookworm-slim', 'node:20-bookworm-slim']).toContain(from);
    }
    expect(readFileSync(join(repositoryRoot, 'docker/registry/Dockerfile'), 'utf8')).toContain('docker-registry');
  });

  it('HAProxy accepts its config (haproxy -c)', async () => {
    if (!onPath('haproxy')) throw new Error('haproxy is not installed (scripts/install-deps.sh)');
    const result = await run('haproxy', ['-c', '-f', join(repositoryRoot, 'docker/haproxy/haproxy.cfg')]);
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(0);
  });

  it('Baton accepts the demo configs, and HAProxy, agents, registry and coordinator agree', () => {
    const coordinatorEnv = readEnvFile(demo('coordinator.env'));
    const coordinator = loadConfig(coordinatorConfigSchema, {
      path: demo('coordinator.yaml'),
      environment: coordinatorEnv,
      overrides: coordinatorEnvironmentOverrides,
    });
    expect(coordinator.listen).toBe('127.0.0.1:7070');
    const joinToken = coordinator.auth.joinToken;
    expect(joinToken).toBeDefined();

    const haproxy = readFileSync(join(repositoryRoot, 'docker/haproxy/haproxy.cfg'), 'utf8');
    const servers = [...haproxy.matchAll(/^\s*server (\S+) 127\.0\.0\.1:(\d+) check port (\d+)$/gm)].map((m) => ({
      name: m[1],
      port: Number(m[2]),
      checkPort: Number(m[3]),
    }));
    expect(servers).toHaveLength(3);
    expect(haproxy).toContain('uri-lf /ready/%[srv_name]');

    const agentEnv = readEnvFile(demo('agent.env'));
    expect(agentEnv.BATON_TOKEN).toBe(joinToken);
    const registry = parseYaml(readFileSync(join(repositoryRoot, 'docker/registry/config.yml'), 'utf8')) as {
      http: { addr: string };
      notifications: { endpoints: Array<{ url: string; headers: Record<string, string[]> }> };
    };
    const endpoint = registry.notifications.endpoints[0];
    expect(endpoint?.url).toBe(`http://${coordinator.listen}/v1/registry/events`);
    expect(endpoint?.headers.Authorization).toEqual([`Bearer ${joinToken}`]);

    for (const [index, server] of servers.entries()) {
      const agent = loadAgentConfig(demo(`agent-${index + 1}.yaml`), agentEnv);
      const service = agent.services[0];
      expect(agent.coordinator.urls).toEqual([`http://${coordinator.listen}`]);
      expect(agent.coordinator.token).toBe(joinToken);
      // HAProxy's server name is the container name it asks the readiness endpoint about.
      expect(service?.containerName).toBe(server.name);
      expect(agent.readiness.listen).toBe(`127.0.0.1:${server.checkPort}`);
      expect(service?.env.PORT).toBe(String(server.port));
      expect(service?.health.http?.url).toBe(`http://127.0.0.1:${server.port}/health`);
      expect(service?.image.startsWith(`${registry.http.addr}/`)).toBe(true);
      expect(service?.networkMode).toBe('host');
      // Drain covers HAProxy's inter x fall (1 s x 2).
      expect(service?.drainSeconds).toBeGreaterThanOrEqual(2);
    }
  });
});
