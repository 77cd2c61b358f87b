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
 * `stop()` tears everything down; a process-exit guard and a detached watchdog (fleet-guard.ts) kill
 * what is left if the test process dies first (the engines have their own watchdog, see dockerd.ts).
 * The hosts' agents are started by fleet-hosts.ts; what tests read from a fleet is in fleet-observe.ts.
 *
 * Fleets are heavy (N+1 engines): on a two-core machine two at a time would starve each other's
 * timing, so a fleet takes a machine-wide lock (a folder in /tmp, fleet-guard.ts) for its lifetime. Vitest runs
 * test files in parallel: a second file's fleet simply waits (give its beforeAll a long timeout).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { stringify } from 'yaml';
import type { BatonEvent, StatusResponse } from '../../shared/api/v1.js';
import type { AgentProcess } from './agent.js';
import type { AgentConfigFile, ServiceConfigInput } from './agent-config.js';
import { SOCKET_ACTIVATE_BINARY, type SocketActivatedAgents } from './socket-activation.js';
import { spawnCoordinatorProcess, type CoordinatorProcess } from './coordinator.js';
import { computeUnavailability, startEventRecorder, type EventRecorder, type Unavailability } from './docker-events.js';
import { startDockerd, type TestDockerd } from './dockerd.js';
import { addressOf, appBackends, startFleetAgents } from './fleet-hosts.js';
import { acquireFleetLock, startWatchdog } from './fleet-guard.js';
import { FLEET_SERVICE } from './fleet-names.js';
import { containerState, fleetDiagnostics, keepFleetLogs, readEvents, readStatus, waitConverged, type NodeContainerState } from './fleet-observe.js';
import { startHaproxy, type RunningHaproxy } from './haproxy.js';
import { importTestApp, push as pushImage, pushAs, testAppImage, type TestAppVariant } from './images.js';
import { freePort, signalRegistry, startRegistry, type RunningRegistry } from './registry.js';

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

    // ---- The engines' event record, then an agent per host
    const recorder = await startEventRecorder(
      engines.map((engine, i) => ({ node: `node-${i + 1}`, socketPath: engine.socketPath })),
      { service: FLEET_SERVICE },
    );
    frontCleanups.push(() => recorder.stop());
    const { nodes, launchAgent } = await startFleetAgents({
      dir,
      engines,
      coordinatorUrl,
      registryHost: registry.host,
      options,
      echo,
      socketActivation,
      watchdog,
      onCleanup: (cleanup) => frontCleanups.push(cleanup),
    });

    // ---- HAProxy in front of the apps, checking the agents' readiness endpoints
    const haproxy = await startHaproxy({ backends: appBackends(nodes, 'readiness'), ...(socketActivation ? { checkTimeoutMs: 5_000 } : {}) });
    frontCleanups.push(() => haproxy.stop());
    watchdog.add(haproxy.pid, haproxy.configPath);
    watchdog.addDir(haproxy.dir);

    let coordinator = coordinator0;
    const nodeAt = (index: number): FleetNode => {
      const node = nodes[index];
      if (!node) throw new Error(`no node ${index}`);
      return node;
    };
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
      status: () => readStatus(coordinatorUrl),
      events: (afterSeq = 0) => readEvents(coordinatorUrl, afterSeq),
      containers: () => Promise.all(nodes.map((node) => containerState(node))),
      waitConverged: (digest, timeoutMs = 120_000) => waitConverged(fleet, digest, timeoutMs),
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
      killAgent: async (index, signal = 'SIGKILL') => nodeAt(index).agent.kill(signal),
      restartAgent: async (index) => {
        const node = nodeAt(index);
        if (node.agent.running) throw new Error(`restartAgent: ${node.id}'s agent is still running; kill it first`);
        node.agent = await launchAgent(node.config, node.supervisor);
        node.agents.push(node.agent);
        return node.agent;
      },
      socketActivation,
      stopEngine: async (index, signal = 'SIGKILL') => nodeAt(index).engine.kill(signal),
      startEngine: async (index) => nodeAt(index).engine.restart(),
      unavailability: (fromMs, toMs) =>
        computeUnavailability(recorder.events(), { nodes: nodes.map((n) => n.id), fromMs, ...(toMs !== undefined ? { toMs } : {}) }),
      diagnostics: (sinceMs = 0) => fleetDiagnostics(fleet, sinceMs),
      stop: async () => {
        keepFleetLogs(fleet);
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
