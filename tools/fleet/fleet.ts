/**
 * A whole Baton fleet on one machine, for end-to-end tests (needs `npm run build`: the coordinator
 * and the agents are the real `baton` processes):
 *
 *   registry (docker-registry, notifications → the coordinator's /v1/registry/events)
 *   builder dockerd: builds the test app variants and pushes them; `push(variant)` moves `testapp:latest`
 *   baton coordinator: one process, SQLite in the fleet's folder, no tokens (loopback only)
 *   N simulated hosts: each its own dockerd and its own `baton agent` process with its own config
 *     (nodeId node-<i>, host address 127.0.0.<10+i-1>: the app and the readiness endpoint listen there)
 *   HAProxy in front of the N apps, health-checking each agent's readiness endpoint
 *   a Docker event recorder on every host engine (tools/fleet/docker-events.ts)
 *
 * `startFleet()` resolves once every node runs v1, healthy, and HAProxy has every server UP.
 * `stop()` tears everything down; a process-exit guard and a detached watchdog kill what is left
 * if the test process dies first (the engines have their own watchdog, see dockerd.ts).
 *
 * Fleets are heavy (N+1 engines): on a two-core machine two at a time would starve each other's
 * timing, so a fleet takes a machine-wide lock (a folder in /tmp) for its lifetime. Vitest runs
 * test files in parallel: a second file's fleet simply waits (give its beforeAll a long timeout).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { request } from 'undici';
import { stringify } from 'yaml';
import { statusResponseSchema, type BatonEvent, type StatusResponse } from '../../shared/api/v1.js';
import { parseHostPort } from '../../shared/host-port.js';
import { LABEL_DIGEST } from '../../agent/docker/runtime.js';
import {
  SOCKET_ACTIVATE_BINARY,
  spawnAgentProcess,
  startSocketActivatedAgents,
  writeAgentConfig,
  type AgentConfigFile,
  type AgentProcess,
  type ServiceConfigInput,
  type SocketActivatedAgents,
} from './agent.js';
import { spawnCoordinatorProcess, type CoordinatorProcess } from './coordinator.js';
import { computeUnavailability, formatEvents, startEventRecorder, type EventRecorder, type Unavailability } from './docker-events.js';
import { startDockerd, type TestDockerd } from './dockerd.js';
import { startHaproxy, type RunningHaproxy } from './haproxy.js';
import { importTestApp, push as pushImage, pushAs, testAppImage, type TestAppVariant } from './images.js';
import { freePort, REGISTRY_BINARY, startRegistry, type RunningRegistry } from './registry.js';

export const FLEET_GROUP = 'app';
export const FLEET_SERVICE = 'app';

export interface FleetOptions {
  /** Number of hosts, 1 to 9; default 3. */
  nodes?: number;
  /** The coordinator's maxUnavailable; default 1. */
  maxUnavailable?: number;
  /** Merged over the coordinator's config (heartbeatIntervalMs, leaseTtlMs, ...). */
  coordinatorConfig?: Record<string, unknown>;
  /** Merged over each agent's `app` service (e.g. drainSeconds, health). */
  agentOverrides?: ServiceConfigInput;
  /** Agent poll schedule; default every 2 s (the agent helper's default). */
  cron?: string;
  splayMs?: number;
  /** Variants built and pushed as `testapp:<variant>`; v1 is always built and becomes `latest`. */
  variants?: TestAppVariant[];
  /** Echo agent and coordinator lines to stdout (also env BATON_TEST_ECHO). */
  echo?: boolean;
  /** How long to wait for the machine-wide fleet lock; default 15 minutes. */
  lockTimeoutMs?: number;
  /**
   * Run each agent the way `baton-agent.socket` + `baton-agent.service` do: Debian's
   * `systemd-socket-activate` holds the readiness socket for the fleet's life and passes it to every
   * agent process (LISTEN_FDS), so a check made while an agent restarts waits in the socket's queue
   * instead of being refused; HAProxy's `timeout check` is then 5 s (the README's), to cover a
   * restart. Default: env BATON_FLEET_SOCKET_ACTIVATION (`1` on, `0` off), else off.
   */
  socketActivation?: boolean;
}

export interface FleetNode {
  /** node-1, node-2, ... */
  id: string;
  /** 0-based. */
  index: number;
  /** 127.0.0.10, 127.0.0.11, ... */
  address: string;
  engine: TestDockerd;
  docker: Docker;
  config: AgentConfigFile;
  /** The agent process now running (replaced by restartAgent). */
  agent: AgentProcess;
  /** Every agent process this node has had, oldest first. */
  agents: AgentProcess[];
  /** With socketActivation: the systemd-socket-activate supervisor holding this node's readiness socket. */
  supervisor: SocketActivatedAgents | undefined;
}

export interface NodeContainerState {
  node: string;
  /** The digest label of the container named `app`, if any. */
  digest: string | undefined;
  running: boolean;
  health: string;
  /** An `app-baton-old` container exists (an update in flight or a leftover). */
  hasOld: boolean;
}

export interface Fleet {
  registry: RunningRegistry;
  builder: TestDockerd;
  coordinatorUrl: string;
  coordinator: CoordinatorProcess;
  /** Every coordinator process, oldest first. */
  coordinators: CoordinatorProcess[];
  haproxy: RunningHaproxy;
  nodes: FleetNode[];
  recorder: EventRecorder;
  /** Digests of the variants pushed so far (by variant name, or by the label given to rebuild()). */
  digests: Record<string, string>;
  /** The image every agent follows: `<registry>/testapp:latest`. */
  image: string;
  /** How long startFleet took, per phase (ms). */
  timings: Record<string, number>;
  dir: string;
  /** Points `testapp:latest` at `variant` (built at start); resolves with the digest, after the push. */
  push(variant: TestAppVariant): Promise<string>;
  /** Builds `variant` anew (a new digest with the same content) as `testapp:<label>`; does not move latest. */
  rebuild(variant: TestAppVariant, label: string): Promise<string>;
  /** Points `testapp:latest` at a pushed label (variant or rebuild label). */
  pushLabel(label: string): Promise<string>;
  status(): Promise<StatusResponse>;
  /** Every event of the coordinator's log after `afterSeq` (default 0), paged. */
  events(afterSeq?: number): Promise<BatonEvent[]>;
  /** Each node's `app` container from its own engine. */
  containers(): Promise<NodeContainerState[]>;
  /** Resolves when every node runs `digest`, healthy, with no old container left, and HAProxy has every server UP. */
  waitConverged(digest: string, timeoutMs?: number): Promise<void>;
  killCoordinator(signal?: NodeJS.Signals): Promise<void>;
  /** A new coordinator process on the same port and database. */
  restartCoordinator(configOverrides?: Record<string, unknown>): Promise<void>;
  /** SIGSTOP / SIGCONT of the registry process: a hung registry (connections accepted, never answered). */
  pauseRegistry(): void;
  resumeRegistry(): void;
  killAgent(index: number, signal?: NodeJS.Signals): Promise<number | null>;
  /** A new agent process with the node's config (under socket activation: on the same held socket). */
  restartAgent(index: number): Promise<AgentProcess>;
  /** Agents run under systemd-socket-activate (FleetOptions.socketActivation). */
  socketActivation: boolean;
  /**
   * Stops node `index`'s dockerd (see TestDockerd.kill): SIGKILL (default) leaves its containers
   * running, as an engine crash does; SIGTERM stops them first, as `systemctl stop docker` does.
   * Resolves once dockerd has exited.
   */
  stopEngine(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts node `index`'s dockerd again, same flags and data root; resolves when it answers. */
  startEngine(index: number): Promise<void>;
  /** I1 from the engines' events over [fromMs, toMs]. */
  unavailability(fromMs: number, toMs?: number): Unavailability;
  /** Recent lines of everything, for a failure message. */
  diagnostics(sinceMs?: number): string;
  stop(): Promise<void>;
}

const defaultCoordinatorConfig = {
  logLevel: 'info',
  heartbeatIntervalMs: 1_000,
  heartbeatMissLimitMs: 5_000,
  leaseTtlMs: 10_000,
};

export async function startFleet(options: FleetOptions = {}): Promise<Fleet> {
  const nodeCount = options.nodes ?? 3;
  if (nodeCount < 1 || nodeCount > 9) throw new Error('startFleet: 1 to 9 nodes');
  const echo = options.echo ?? Boolean(process.env.BATON_TEST_ECHO);
  const socketActivation = options.socketActivation ?? process.env.BATON_FLEET_SOCKET_ACTIVATION === '1';
  if (socketActivation && SOCKET_ACTIVATE_BINARY === undefined) {
    throw new Error('startFleet: socketActivation needs systemd-socket-activate (Debian package systemd, scripts/install-deps.sh)');
  }
  const timings: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string): void => {
    timings[name] = Math.round(performance.now() - t);
    t = performance.now();
  };

  const releaseLock = await acquireFleetLock(options.lockTimeoutMs ?? 15 * 60_000);
  lap('lock');
  const dir = await mkdtemp(join(tmpdir(), 'baton-fleet-'));
  const watchdog = startWatchdog(dir);
  // Two phases, each in parallel: first what uses the infrastructure (HAProxy, agents, the event
  // recorder), then the infrastructure (engines, registry, coordinator).
  const cleanups: (() => Promise<unknown>)[] = [];
  const frontCleanups: (() => Promise<unknown>)[] = [];
  const cleanupAll = async (): Promise<void> => {
    const front = frontCleanups.splice(0);
    await Promise.allSettled(front.map((cleanup) => cleanup()));
    const back = cleanups.splice(0);
    await Promise.allSettled(back.map((cleanup) => cleanup()));
  };

  try {
    // ---- Coordinator first (the registry posts its notifications there)
    const coordinatorPort = await freePort();
    const coordinatorDir = join(dir, 'coordinator');
    await mkdir(coordinatorDir);
    const dataFile = join(coordinatorDir, 'baton.db');
    const coordinatorConfigPath = join(coordinatorDir, 'coordinator.yaml');
    let coordinatorConfig: Record<string, unknown> = {
      ...defaultCoordinatorConfig,
      maxUnavailable: options.maxUnavailable ?? 1,
      ...options.coordinatorConfig,
    };
    await writeFile(coordinatorConfigPath, stringify(coordinatorConfig));
    const coordinators: CoordinatorProcess[] = [];
    const launchCoordinator = async (): Promise<CoordinatorProcess> => {
      const started = await spawnCoordinatorProcess({ dataFile, port: coordinatorPort, configFile: coordinatorConfigPath });
      watchdog.add(started.process.pid, coordinatorConfigPath);
      const kill = (): void => {
        started.process.kill('SIGKILL');
      };
      process.once('exit', kill);
      started.process.once('exit', () => process.removeListener('exit', kill));
      if (echo) {
        started.process.stdout?.on('data', (chunk: Buffer) => process.stdout.write(`[coordinator] ${chunk.toString()}`));
      }
      coordinators.push(started);
      return started;
    };
    const coordinatorUrl = `http://127.0.0.1:${coordinatorPort}`;
    const coordinatorReady = launchCoordinator();
    cleanups.push(async () => {
      for (const c of coordinators) await c.kill('SIGKILL');
    });

    // ---- Registry and engines, in parallel
    const registryReady = startRegistry({ notificationsUrl: `${coordinatorUrl}/v1/registry/events` });
    const builderReady = startDockerd({ name: 'builder' });
    const enginesReady = Promise.all(
      Array.from({ length: nodeCount }, (_, i) => startDockerd({ name: `node-${i + 1}`, hostAddress: addressOf(i) })),
    );
    const [coordinator0, registry, builder, engines] = await Promise.allSettled([coordinatorReady, registryReady, builderReady, enginesReady]).then(
      (results) => {
        for (const r of results) if (r.status === 'fulfilled') registerCleanup(r.value);
        const failed = results.find((r) => r.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
        return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [CoordinatorProcess, RunningRegistry, TestDockerd, TestDockerd[]];
      },
    );
    function registerCleanup(value: unknown): void {
      const list = Array.isArray(value) ? value : [value];
      for (const item of list) {
        if (item && typeof item === 'object' && 'stop' in item && typeof item.stop === 'function') {
          cleanups.push(() => (item as { stop: () => Promise<void> }).stop());
        }
      }
    }
    watchdog.add(undefined, registry.dir);
    watchdog.addDir(registry.dir);
    lap('coordinatorRegistryEngines');

    // ---- Images: every variant built in parallel on the builder, pushed as testapp:<variant>
    const variants = [...new Set<TestAppVariant>(['v1', ...(options.variants ?? ['v2', 'v3', 'bad'])])];
    const digests: Record<string, string> = {};
    await Promise.all(
      variants.map(async (variant) => {
        const reference = testAppImage(registry.host, variant);
        await importTestApp(builder.socketPath, variant, reference);
        digests[variant] = await pushImage(builder.socketPath, reference);
      }),
    );
    const image = testAppImage(registry.host, 'latest');
    const pushLabel = async (label: string): Promise<string> => {
      if (digests[label] === undefined) throw new Error(`fleet: nothing pushed as ${label}`);
      return pushAs(builder.socketPath, testAppImage(registry.host, label), image);
    };
    await pushLabel('v1');
    lap('images');

    // ---- Agents, one per host
    const nodes: FleetNode[] = [];
    await Promise.all(engines.map((_, i) => mkdir(join(dir, `node-${i + 1}`))));
    const configs = await Promise.all(
      engines.map((engine, i) =>
        writeAgentConfig({
          nodeId: `node-${i + 1}`,
          hostAddress: addressOf(i),
          coordinatorUrl,
          dockerSocket: engine.socketPath,
          registryHost: registry.host,
          group: FLEET_GROUP,
          containerName: FLEET_SERVICE,
          dir: join(dir, `node-${i + 1}`),
          ...(options.cron !== undefined ? { cron: options.cron } : {}),
          ...(options.splayMs !== undefined ? { splayMs: options.splayMs } : {}),
          logLevel: 'debug',
          ...(options.agentOverrides !== undefined ? { service: options.agentOverrides } : {}),
        }),
      ),
    );
    const launchAgent = async (config: AgentConfigFile, supervisor: SocketActivatedAgents | undefined): Promise<AgentProcess> => {
      const agent = supervisor
        ? await supervisor.start()
        : await spawnAgentProcess({ configFile: config.path, ...(echo ? { echo: `[${config.nodeId}]` } : {}) });
      watchdog.add(agent.pid, config.path);
      return agent;
    };
    const supervisors: SocketActivatedAgents[] = [];
    frontCleanups.push(async () => {
      await Promise.allSettled(supervisors.map((s) => s.stop()));
    });
    const recorder = await startEventRecorder(
      engines.map((engine, i) => ({ node: `node-${i + 1}`, socketPath: engine.socketPath })),
      { service: FLEET_SERVICE },
    );
    frontCleanups.push(() => recorder.stop());
    for (const [i, engine] of engines.entries()) {
      const config = configs[i] as AgentConfigFile;
      let supervisor: SocketActivatedAgents | undefined;
      if (socketActivation) {
        supervisor = await startSocketActivatedAgents({
          configFile: config.path,
          listen: config.readinessListen,
          ...(echo ? { echo: `[${config.nodeId}]` } : {}),
        });
        supervisors.push(supervisor);
        watchdog.add(supervisor.pid, config.path);
      }
      const agent = await launchAgent(config, supervisor);
      nodes.push({
        id: config.nodeId,
        index: i,
        address: addressOf(i),
        engine,
        docker: new Docker({ socketPath: engine.socketPath }),
        config,
        agent,
        agents: [agent],
        supervisor,
      });
    }
    frontCleanups.push(async () => {
      await Promise.allSettled(nodes.flatMap((n) => n.agents.map((a) => a.kill('SIGKILL', 10_000))));
    });

    // ---- HAProxy in front of the apps, checking the agents' readiness endpoints
    const haproxy = await startHaproxy({
      backends: nodes.map((node) => ({
        name: node.id,
        appAddress: node.address,
        appPort: node.config.appPort,
        readinessAddress: node.address,
        readinessPort: parseHostPort(node.config.readinessListen).port,
        service: FLEET_SERVICE,
      })),
      ...(socketActivation ? { checkTimeoutMs: 5_000 } : {}),
    });
    frontCleanups.push(() => haproxy.stop());
    watchdog.add(haproxy.pid, haproxy.configPath);
    watchdog.addDir(haproxy.dir);

    let coordinator = coordinator0;
    const fleet: Fleet = {
      registry,
      builder,
      coordinatorUrl,
      get coordinator() {
        return coordinator;
      },
      coordinators,
      haproxy,
      nodes,
      recorder,
      digests,
      image,
      timings,
      dir,
      push: (variant) => pushLabel(variant),
      rebuild: async (variant, label) => {
        const reference = testAppImage(registry.host, label);
        await importTestApp(builder.socketPath, variant, reference);
        const digest = await pushImage(builder.socketPath, reference);
        digests[label] = digest;
        return digest;
      },
      pushLabel,
      status: async () => statusResponseSchema.parse(await getJson(`${coordinatorUrl}/v1/status`)),
      events: async (afterSeq = 0) => {
        const all: BatonEvent[] = [];
        let after = afterSeq;
        for (;;) {
          const page = (await getJson(`${coordinatorUrl}/v1/events?afterSeq=${after}&limit=1000`)) as { events: BatonEvent[] };
          all.push(...page.events);
          if (page.events.length < 1_000) return all;
          after = page.events[page.events.length - 1]?.seq ?? after;
        }
      },
      containers: () => Promise.all(nodes.map((node) => containerState(node))),
      waitConverged: async (digest, timeoutMs = 120_000) => {
        const deadline = performance.now() + timeoutMs;
        let last = '';
        while (performance.now() < deadline) {
          try {
            const states = await fleet.containers();
            const status = await fleet.status();
            const group = status.groups.find((g) => g.name === FLEET_GROUP);
            const servers = await haproxy.serverStates();
            const enginesOk = states.every((s) => s.digest === digest && s.running && s.health === 'healthy' && !s.hasOld);
            const coordinatorOk =
              group !== undefined &&
              group.nodes.length === nodes.length &&
              group.nodes.every((n) => n.currentDigest === digest && n.health === 'healthy' && n.step === 'idle') &&
              group.leases.length === 0;
            const lbOk = servers.length === nodes.length && servers.every((s) => s.status === 'UP');
            if (enginesOk && coordinatorOk && lbOk) return;
            last =
              `engines: ${JSON.stringify(states.map((s) => [s.node, s.digest?.slice(7, 19), s.running, s.health, s.hasOld]))}; ` +
              `coordinator: ${JSON.stringify(group?.nodes.map((n) => [n.nodeId, n.currentDigest?.slice(7, 19), n.health, n.step]))} ` +
              `leases ${group?.leases.length} rollout ${group?.rollout?.state}; haproxy: ${JSON.stringify(servers.map((s) => [s.name, s.status]))}`;
          } catch (error) {
            last = String(error);
          }
          await sleep(250);
        }
        throw new Error(`fleet did not converge on ${digest} within ${timeoutMs} ms; last: ${last}\n${fleet.diagnostics()}`);
      },
      killCoordinator: async (signal = 'SIGKILL') => {
        await coordinator.kill(signal);
      },
      restartCoordinator: async (configOverrides) => {
        if (coordinator.process.exitCode === null && coordinator.process.signalCode === null) {
          throw new Error('restartCoordinator: the coordinator is still running; kill it first');
        }
        if (configOverrides) {
          coordinatorConfig = { ...coordinatorConfig, ...configOverrides };
          await writeFile(coordinatorConfigPath, stringify(coordinatorConfig));
        }
        coordinator = await launchCoordinator();
      },
      pauseRegistry: () => signalRegistry(registry, 'SIGSTOP'),
      resumeRegistry: () => signalRegistry(registry, 'SIGCONT'),
      killAgent: async (index, signal = 'SIGKILL') => {
        const node = nodes[index];
        if (!node) throw new Error(`no node ${index}`);
        return node.agent.kill(signal);
      },
      restartAgent: async (index) => {
        const node = nodes[index];
        if (!node) throw new Error(`no node ${index}`);
        if (node.agent.running) throw new Error(`restartAgent: ${node.id}'s agent is still running; kill it first`);
        node.agent = await launchAgent(node.config, node.supervisor);
        node.agents.push(node.agent);
        return node.agent;
      },
      socketActivation,
      stopEngine: async (index, signal = 'SIGKILL') => {
        const node = nodes[index];
        if (!node) throw new Error(`no node ${index}`);
        await node.engine.kill(signal);
      },
      startEngine: async (index) => {
        const node = nodes[index];
        if (!node) throw new Error(`no node ${index}`);
        await node.engine.restart();
      },
      unavailability: (fromMs, toMs) =>
        computeUnavailability(recorder.events(), { nodes: nodes.map((n) => n.id), fromMs, ...(toMs !== undefined ? { toMs } : {}) }),
      diagnostics: (sinceMs = 0) => {
        const parts: string[] = [];
        parts.push(`--- docker events ---\n${formatEvents(recorder.events(), sinceMs)}`);
        parts.push(`--- coordinator (last 40 lines) ---\n${coordinator.lines.slice(-40).join('\n')}`);
        // Routine heartbeat answers would push everything else out of the tail.
        const worthReading = (line: string) => !line.includes('"msg":"coordinator answered"');
        for (const node of nodes) {
          parts.push(`--- ${node.id} agent (last 40 lines but heartbeats) ---\n${node.agent.output.filter(worthReading).slice(-40).join('\n')}`);
        }
        parts.push(`--- haproxy (non-200 and state lines, last 40) ---\n${haproxy
          .log()
          .filter((l) => !/ 200 \d+ /.test(l))
          .slice(-40)
          .join('\n')}`);
        return parts.join('\n');
      },
      stop: async () => {
        keepLogs();
        try {
          signalRegistry(registry, 'SIGCONT'); // a test may end with the registry paused
        } catch {
          // Already gone.
        }
        await cleanupAll();
        watchdog.stop();
        await rm(dir, { recursive: true, force: true });
        releaseLock();
      },
    };

    /** With BATON_FLEET_LOGS=<folder>: every process's full output is kept there after the fleet stops. */
    const keepLogs = (): void => {
      const keepIn = process.env.BATON_FLEET_LOGS;
      if (!keepIn) return;
      const folder = join(keepIn, `fleet-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      mkdirSync(folder, { recursive: true });
      fleet.coordinators.forEach((c, i) => writeFileSync(join(folder, `coordinator-${i}.log`), `${c.lines.join('\n')}\n`));
      for (const node of fleet.nodes) {
        node.agents.forEach((a, i) => writeFileSync(join(folder, `${node.id}-agent-${i}.log`), `${a.output.join('\n')}\n`));
      }
      writeFileSync(join(folder, 'haproxy.log'), `${haproxy.log().join('\n')}\n`);
      writeFileSync(join(folder, 'docker-events.log'), `${formatEvents(recorder.events(), 0)}\n`);
    };

    // ---- Every node on v1, healthy; HAProxy sees every server UP
    await fleet.waitConverged(digests.v1 as string, 90_000).catch((error: unknown) => {
      throw new Error(`startFleet: the fleet did not come up on v1: ${(error as Error).message}`);
    });
    lap('agentsAndHaproxy');
    return fleet;
  } catch (error) {
    await cleanupAll();
    watchdog.stop();
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    releaseLock();
    throw error;
  }
}

/** The registry helper does not expose its pid: find the `docker-registry serve <dir>/config.yml` process. */
function signalRegistry(registry: RunningRegistry, signal: NodeJS.Signals): void {
  const configPath = join(registry.dir, 'config.yml');
  const pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  for (const pid of pids) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const args = cmdline.split('\0');
    if (args[0] === REGISTRY_BINARY && args.includes(configPath)) {
      process.kill(Number(pid), signal);
      return;
    }
  }
  throw new Error(`registry process for ${configPath} not found`);
}

export function addressOf(index: number): string {
  return `127.0.0.${10 + index}`;
}

async function containerState(node: FleetNode): Promise<NodeContainerState> {
  const inspect = async (name: string) => {
    try {
      return await node.docker.getContainer(name).inspect();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  };
  const [current, old] = await Promise.all([inspect(FLEET_SERVICE), inspect(`${FLEET_SERVICE}-baton-old`)]);
  return {
    node: node.id,
    digest: current?.Config.Labels?.[LABEL_DIGEST],
    running: current?.State.Running ?? false,
    health: current?.State.Health?.Status ?? 'none',
    hasOld: old !== undefined,
  };
}

async function getJson(url: string): Promise<unknown> {
  const answer = await request(url, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  const text = await answer.body.text();
  if (answer.statusCode !== 200) throw new Error(`GET ${url}: ${answer.statusCode} ${text.slice(0, 300)}`);
  return JSON.parse(text) as unknown;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a value other than undefined. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  while (performance.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? '' : `: ${String(lastError)}`}`);
}

// ---- Machine-wide lock: one fleet at a time

const lockDir = '/tmp/baton-e2e-fleet.lock';

async function acquireFleetLock(timeoutMs: number): Promise<() => void> {
  if (process.env.BATON_E2E_NO_LOCK) return () => undefined;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        process.removeListener('exit', release);
        rmSync(lockDir, { recursive: true, force: true });
      };
      process.once('exit', release);
      return release;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // Stale: the holder is gone.
      let holder = NaN;
      try {
        holder = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        // Being written or removed right now.
      }
      if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) rmSync(lockDir, { recursive: true, force: true });
      if (Number.isNaN(holder) && existsSync(lockDir)) {
        // No pid file for a while: a holder died between mkdir and write. Give it a moment first.
        await sleep(1_000);
        if (!existsSync(join(lockDir, 'pid'))) rmSync(lockDir, { recursive: true, force: true });
      }
    }
    if (performance.now() > deadline) throw new Error(`startFleet: another fleet held ${lockDir} for ${timeoutMs} ms`);
    await sleep(500);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---- Watchdog: kills the fleet's processes when the test process dies without stop()

/**
 * A detached shell that waits for the test process to die, then SIGKILLs every pid listed in
 * `<dir>/pids` whose command line still names its marker (a path of this fleet), and every process
 * whose command line names the fleet's folder. stop() kills the watchdog itself.
 */
function startWatchdog(dir: string): { add(pid: number | undefined, marker: string): void; addDir(path: string): void; stop(): void } {
  const pidsFile = join(dir, 'pids');
  const dirsFile = join(dir, 'dirs');
  writeFileSync(pidsFile, '');
  writeFileSync(dirsFile, '');
  const script = String.raw`
parent="$1"; dir="$2"; pids="$3"; dirs="$4"; lock="$5"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
while read -r pid marker; do
  [ -n "$pid" ] && [ "$pid" != "-" ] && grep -qsF "$marker" "/proc/$pid/cmdline" && kill -KILL "$pid" 2>/dev/null
  if [ "$pid" = "-" ]; then
    for p in $(grep -lasF "$marker" /proc/[0-9]*/cmdline | cut -d/ -f3); do [ "$p" = "$$" ] || kill -KILL "$p" 2>/dev/null; done
  fi
done < "$pids"
for p in $(grep -lasF "$dir" /proc/[0-9]*/cmdline | cut -d/ -f3); do [ "$p" = "$$" ] || kill -KILL "$p" 2>/dev/null; done
sleep 0.5
while read -r extra; do case "$extra" in /tmp/baton-*) rm -rf "$extra" ;; esac; done < "$dirs"
[ "$(cat "$lock/pid" 2>/dev/null)" = "$parent" ] && rm -rf "$lock"
rm -rf "$dir"
`;
  const child = spawn('/bin/sh', ['-c', script, 'fleet-watchdog', String(process.pid), dir, pidsFile, dirsFile, lockDir], {
    stdio: 'ignore',
    detached: true,
  });
  child.unref();
  const append = (file: string, line: string): void => {
    try {
      writeFileSync(file, `${line}\n`, { flag: 'a' });
    } catch {
      // The fleet is being torn down.
    }
  };
  return {
    add: (pid, marker) => append(pidsFile, `${pid ?? '-'} ${marker}`),
    addDir: (path) => append(dirsFile, path),
    stop() {
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    },
  };
}

// ---- The coordinator's own record

export interface LeaseReplay {
  /** Most leases of the group held at once, replaying grants against releases and expiries. */
  maxHolders: number;
  /** The sequence number of the grant that reached maxHolders. */
  maxHoldersAtSeq: number | undefined;
  grants: BatonEvent[];
  releases: BatonEvent[];
  expiries: BatonEvent[];
  /** Fencing tokens of grants strictly increase. */
  tokensIncrease: boolean;
  /** Leases still held at the end of the log. */
  heldAtEnd: string[];
}

/** Replays the coordinator's event log (in seq order) for one group. */
export function replayLeases(events: BatonEvent[], group = FLEET_GROUP): LeaseReplay {
  const held = new Set<string>();
  const replay: LeaseReplay = {
    maxHolders: 0,
    maxHoldersAtSeq: undefined,
    grants: [],
    releases: [],
    expiries: [],
    tokensIncrease: true,
    heldAtEnd: [],
  };
  let lastToken = 0;
  for (const event of [...events].sort((a, b) => a.seq - b.seq)) {
    if (event.group !== group) continue;
    if (event.type === 'grant') {
      replay.grants.push(event);
      if ((event.fencingToken ?? 0) <= lastToken) replay.tokensIncrease = false;
      lastToken = event.fencingToken ?? lastToken;
      held.add(event.leaseId ?? `?${event.seq}`);
      if (held.size > replay.maxHolders) {
        replay.maxHolders = held.size;
        replay.maxHoldersAtSeq = event.seq;
      }
    } else if (event.type === 'release' || event.type === 'expiry' || (event.type === 'node-forgotten' && event.leaseId)) {
      if (event.type === 'release') replay.releases.push(event);
      if (event.type === 'expiry') replay.expiries.push(event);
      held.delete(event.leaseId ?? '');
    }
  }
  replay.heldAtEnd = [...held];
  return replay;
}

/** One line per coordinator event, for failure messages. */
export function formatBatonEvents(events: BatonEvent[]): string {
  return events
    .map(
      (e) =>
        `#${e.seq} ${new Date(e.atMs).toISOString().slice(11, 23)} ${e.type} ${e.nodeId ?? '-'} ${e.digest?.slice(7, 19) ?? '-'}` +
        `${e.fencingToken !== null ? ` token=${e.fencingToken}` : ''}${e.reason ? ` reason=${e.reason}` : ''}${e.outcome ? ` outcome=${e.outcome}` : ''}` +
        `${e.message ? ` "${e.message.slice(0, 120)}"` : ''}`,
    )
    .join('\n');
}
