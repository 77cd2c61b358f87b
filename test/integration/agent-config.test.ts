/**
 * `baton agent` refuses a config it cannot use before touching anything: every problem is printed
 * with its field path, and the exit code is 78 (EX_CONFIG) so systemd does not restart-loop on it.
 * Runs the built CLI (`npm run build` first); needs no Docker engine.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnAgentProcess } from '../../tools/fleet/agent.js';
import { batonCli } from '../../tools/fleet/coordinator.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baton-agent-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const goodService = {
  group: 'web',
  image: '127.0.0.1:5000/testapp:latest',
  containerName: 'app',
  health: { http: { url: 'http://127.0.0.1:8080/cgi-bin/health' } },
};

async function runWith(config: unknown, environment: Record<string, string> = {}) {
  const agent = await spawnAgentProcess({ config, environment });
  const { code } = await agent.exited;
  return { code, stderr: agent.stderr.join('\n'), stdout: agent.lines };
}

describe('baton agent with an invalid config', () => {
  it('prints every problem with its field path and exits 78', async () => {
    const { code, stderr, stdout } = await runWith({
      nodeId: 'node-1',
      host: '127.0.0.2',
      coordinator: { urls: ['ftp://127.0.0.1:7070'], requestTimeoutMs: 5 },
      schedule: { cron: 'every minute please', splayMs: -1 },
      readiness: { listen: '127.0.0.2:99999' },
      logLevel: 'loud',
      services: [
        goodService,
        {
          group: 'web',
          image: '127.0.0.1:5000/other:latest',
          containerName: 'bad name!',
          env: { '1BAD': 'x' },
          ports: [{ containerPort: 0, hostPort: 70_000 }],
          volumes: [{ source: '/srv', target: 'relative' }],
          restartPolicy: 'sometimes',
          health: { intervalMs: 10 },
          surprise: true,
        },
      ],
    });
    expect(code).toBe(78);
    expect(stdout).toEqual([]); // nothing started, nothing logged
    const expectedPaths = [
      'coordinator.urls.0',
      'coordinator.requestTimeoutMs',
      'schedule.splayMs',
      'schedule.cron',
      'readiness.listen',
      'logLevel',
      'services.1.containerName',
      'services.1.env.1BAD',
      'services.1.ports.0.containerPort',
      'services.1.ports.0.hostPort',
      'services.1.volumes.0.target',
      'services.1.restartPolicy',
      'services.1.health.intervalMs',
      'services.1.health',
      'services.1',
    ];
    for (const path of expectedPaths) expect(stderr, `${path} in:\n${stderr}`).toMatch(new RegExp(`^  - ${path.replace(/\./g, '\\.')}: `, 'm'));
    expect(stderr).toMatch(/schedule\.cron: invalid cron expression "every minute please"/);
    expect(stderr).toMatch(/services\.1: .*surprise/);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('exits 78 for a missing file, invalid YAML, a missing tokenFile or registry CA file and an invalid BATON_* override', async () => {
    const missing = await spawnAgentProcess({ configFile: join(dir, 'nope.yaml') });
    expect((await missing.exited).code).toBe(78);
    expect(missing.stderr.join('\n')).toMatch(/cannot read file/);

    const yamlFile = join(dir, 'broken.yaml');
    await writeFile(yamlFile, 'services: [\n  - group: web\n   bad indent: {\n');
    const broken = await spawnAgentProcess({ configFile: yamlFile });
    expect((await broken.exited).code).toBe(78);
    expect(broken.stderr.join('\n')).toMatch(/not valid YAML or JSON/);

    const base = { nodeId: 'n', host: '127.0.0.2', coordinator: { urls: ['http://127.0.0.1:7070'] }, services: [goodService] };
    const token = await runWith({ ...base, coordinator: { ...base.coordinator, tokenFile: join(dir, 'no-token') } });
    expect(token.code).toBe(78);
    expect(token.stderr).toMatch(/coordinator\.tokenFile: cannot read/);
    const registryCa = await runWith({ ...base, registry: { tls: { caFile: join(dir, 'no-ca.pem') } } });
    expect(registryCa.code).toBe(78);
    expect(registryCa.stderr).toMatch(/^ {2}- registry\.tls\.caFile: cannot read .*no-ca\.pem/m);

    // Alone (the schema is otherwise happy), each used to crash later with exit 70 and a stack trace.
    const cron = await runWith({ ...base, schedule: { cron: '61 * * * *' } });
    expect(cron.code).toBe(78);
    expect(cron.stderr).toMatch(/^ {2}- schedule\.cron: invalid cron expression "61 \* \* \* \*"/m);
    const listen = await runWith({ ...base, readiness: { listen: '127.0.0.1:99999' } });
    expect(listen.code).toBe(78);
    expect(listen.stderr).toMatch(/^ {2}- readiness\.listen: port must be between 0 and 65535/m);

    const overridden = await runWith(base, { BATON_COORDINATOR_URLS: 'not a url', BATON_LOG_LEVEL: 'chatty' });
    expect(overridden.code).toBe(78);
    expect(overridden.stderr).toMatch(/coordinator\.urls\.0: /);
    expect(overridden.stderr).toMatch(/logLevel: /);
  });

  it('exits 64 on an unknown option', () => {
    const result = spawnSync(process.execPath, [batonCli, 'agent', '--frobnicate'], { encoding: 'utf8', timeout: 20_000 });
    expect(result.status).toBe(64);
    expect(result.stderr).toMatch(/usage: baton agent/);
  });
});
