/**
 * The fleet's hosts: on each engine, an agent with its own config (node-<i>, address 127.0.0.<10+i-1>),
 * run directly or, with socket activation, under a supervisor that holds its readiness socket; and
 * how a load balancer reaches their apps.
 */
import { mkdir } from 'node:fs/promises';
import { parseHostPort } from '../../shared/host-port.js';
import { join } from 'node:path';
import Docker from 'dockerode';
import { spawnAgentProcess, type AgentProcess } from './agent.js';
import { writeAgentConfig, type AgentConfigFile } from './agent-config.js';
import { startSocketActivatedAgents, type SocketActivatedAgents } from './socket-activation.js';
import type { TestDockerd } from './dockerd.js';
import type { FleetNode, FleetOptions } from './fleet.js';
import type { Watchdog } from './fleet-guard.js';
import { FLEET_GROUP, FLEET_SERVICE } from './fleet-names.js';
import { startHaproxy, type HaproxyBackend, type RunningHaproxy } from './haproxy.js';
import { testAppPaths } from './images.js';

export interface FleetAgentsInput {
  /** The fleet's folder: each node's config and state go in `node-<i>` below it. */
  dir: string;
  engines: TestDockerd[];
  coordinatorUrl: string;
  registryHost: string;
  options: Pick<FleetOptions, 'cron' | 'splayMs' | 'agentOverrides'>;
  echo: boolean;
  socketActivation: boolean;
  watchdog: Watchdog;
  /** Takes what stops the supervisors and the agents, for the fleet's teardown. */
  onCleanup(cleanup: () => Promise<unknown>): void;
}

export interface FleetAgents {
  nodes: FleetNode[];
  /** Starts an agent for `config` (on `supervisor`'s socket when given) and tells the watchdog. */
  launchAgent(config: AgentConfigFile, supervisor: SocketActivatedAgents | undefined): Promise<AgentProcess>;
}

export function addressOf(index: number): string {
  return `127.0.0.${10 + index}`;
}

export async function startFleetAgents(input: FleetAgentsInput): Promise<FleetAgents> {
  const { dir, engines, options, echo, watchdog } = input;
  await Promise.all(engines.map((_, i) => mkdir(join(dir, `node-${i + 1}`))));
  const configs = await Promise.all(
    engines.map((engine, i) =>
      writeAgentConfig({
        nodeId: `node-${i + 1}`,
        hostAddress: addressOf(i),
        coordinatorUrl: input.coordinatorUrl,
        dockerSocket: engine.socketPath,
        registryHost: input.registryHost,
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
  input.onCleanup(async () => {
    await Promise.allSettled(supervisors.map((s) => s.stop()));
  });
  const nodes: FleetNode[] = [];
  for (const [i, engine] of engines.entries()) {
    const config = configs[i] as AgentConfigFile;
    let supervisor: SocketActivatedAgents | undefined;
    if (input.socketActivation) {
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
  input.onCleanup(async () => {
    await Promise.allSettled(nodes.flatMap((n) => n.agents.map((a) => a.kill('SIGKILL', 10_000))));
  });
  return { nodes, launchAgent };
}

/**
 * HAProxy's servers for the hosts' apps, checked at each agent's readiness endpoint (`readiness`) or,
 * as a balancer in front of hosts without Baton would, at the app itself (`app`, with checkUri).
 */
export function appBackends(nodes: FleetNode[], check: 'readiness' | 'app'): HaproxyBackend[] {
  return nodes.map((node) => ({
    name: node.id,
    appAddress: node.address,
    appPort: node.config.appPort,
    readinessAddress: node.address,
    readinessPort: check === 'app' ? node.config.appPort : parseHostPort(node.config.readinessListen).port,
    service: FLEET_SERVICE,
  }));
}

/** A second HAProxy in front of the same apps, checking each app's own health: Baton's readiness left out. */
export function startAppCheckHaproxy(nodes: FleetNode[]): Promise<RunningHaproxy> {
  return startHaproxy({ backends: appBackends(nodes, 'app'), checkUri: testAppPaths.health });
}
