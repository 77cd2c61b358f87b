/**
 * Realistic agent configs for a simulated host (its own dockerd, its own 127.0.0.x address), for
 * the agent processes of the integration and end-to-end tests.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { testAppPaths, testAppImage } from './images.js';
import { freePort } from './registry.js';

/** A service entry of the agent config, as written to the file (before schema defaults). */
export type ServiceConfigInput = Record<string, unknown>;

export interface AgentConfigOptions {
  /** The node id (also used for APP_NODE in the app container). */
  nodeId: string;
  /** The simulated host's loopback address (127.0.0.x): readiness and the app listen there. */
  hostAddress: string;
  /** One or more coordinator base URLs. */
  coordinatorUrl: string | string[];
  /** The host's dockerd socket (TestDockerd.socketPath). */
  dockerSocket: string;
  /** `127.0.0.1:<port>` of the test registry; the service follows `<registryHost>/testapp:<tag>`. */
  registryHost: string;
  /** Tag followed; default `latest`. Ignored when `image` is given. */
  tag?: string;
  /** Image followed, overriding `<registryHost>/testapp:<tag>`. */
  image?: string;
  /** Group of the `app` service; default `app`. */
  group?: string;
  /** Container name of the service; default `app`. */
  containerName?: string;
  /** Port the app listens on, on hostAddress; default a free one. */
  appPort?: number;
  /** Port of the readiness endpoint, on hostAddress; default a free one. */
  readinessPort?: number;
  /** Where the config file and (by default) the state dir go; default a fresh temp dir. */
  dir?: string;
  /** Default `<dir>/state`. */
  stateDir?: string;
  /** Poll schedule; default every 2 s with 300 ms splay. */
  cron?: string;
  splayMs?: number;
  /** Coordinator token (agent or join token). */
  token?: string;
  /** Default `debug` (the `polled` line is debug). */
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Merged over the generated `app` service (shallow; `health` and `env` are merged one level deeper). */
  service?: ServiceConfigInput;
  /** More services, written as given, after `app`. */
  extraServices?: ServiceConfigInput[];
  /** Merged over the top level of the generated config (e.g. `registry`, `docker`). */
  overrides?: Record<string, unknown>;
  /** File format; default `yaml`. */
  format?: 'yaml' | 'json';
}

export interface AgentConfigFile {
  /** Path of the written config file. */
  path: string;
  /** Folder of the config file (removed by `remove()` when the helper created it). */
  dir: string;
  /** The config as written (raw, before schema defaults). */
  config: Record<string, unknown>;
  nodeId: string;
  hostAddress: string;
  stateDir: string;
  containerName: string;
  /** `<hostAddress>:<port>` the readiness endpoint listens on. */
  readinessListen: string;
  /** `http://<hostAddress>:<port>/ready/<containerName>` */
  readinessUrl: string;
  appPort: number;
  /** `http://<hostAddress>:<appPort>`: the app container's base URL. */
  appUrl: string;
  /** The image (by tag) the service follows. */
  image: string;
  /** Removes the folder when the helper created it. */
  remove(): Promise<void>;
}

/**
 * Writes an agent config for one simulated host with one service `app`: the test app image by tag,
 * host networking, APP_ADDR/APP_PORT on the host's address, an HTTP health check on
 * /cgi-bin/health with short timings, short drain and readmit times.
 */
export async function writeAgentConfig(options: AgentConfigOptions): Promise<AgentConfigFile> {
  const created = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), `baton-agent-${safe(options.nodeId)}-`)));
  const stateDir = options.stateDir ?? join(dir, 'state');
  const address = options.hostAddress;
  const [appPort, readinessPort] = await Promise.all([
    options.appPort ?? freePort(address),
    options.readinessPort ?? freePort(address),
  ]);
  const containerName = options.containerName ?? 'app';
  const image = options.image ?? testAppImage(options.registryHost, options.tag ?? 'latest');
  const readinessListen = `${address}:${readinessPort}`;
  const appUrl = `http://${address}:${appPort}`;

  const baseService: ServiceConfigInput = {
    group: options.group ?? 'app',
    image,
    containerName,
    env: { APP_ADDR: address, APP_PORT: String(appPort), APP_NODE: options.nodeId, APP_GRACE_SECONDS: '2' },
    health: {
      http: { url: `${appUrl}${testAppPaths.health}`, timeoutMs: 1_000 },
      intervalMs: 300,
      idleIntervalMs: 2_000,
      consecutivePasses: 2,
      deadlineMs: 8_000,
      minHealthyMs: 1_000,
    },
    networkMode: 'host',
    restartPolicy: 'unless-stopped',
    stopTimeoutSeconds: 5,
    drainSeconds: 1,
    readmitSeconds: 1,
  };
  const override = options.service ?? {};
  const service: ServiceConfigInput = {
    ...baseService,
    ...override,
    env: { ...(baseService.env as object), ...((override.env as object | undefined) ?? {}) },
    health: { ...(baseService.health as object), ...((override.health as object | undefined) ?? {}) },
  };

  const config: Record<string, unknown> = {
    nodeId: options.nodeId,
    host: address,
    coordinator: {
      urls: Array.isArray(options.coordinatorUrl) ? options.coordinatorUrl : [options.coordinatorUrl],
      requestTimeoutMs: 3_000,
      ...(options.token !== undefined ? { token: options.token } : {}),
    },
    docker: { socketPath: options.dockerSocket, requestTimeoutMs: 60_000 },
    registry: { requestTimeoutMs: 5_000 },
    schedule: { cron: options.cron ?? '*/2 * * * * *', splayMs: options.splayMs ?? 300 },
    readiness: { listen: readinessListen },
    stateDir,
    logLevel: options.logLevel ?? 'debug',
    services: [service, ...(options.extraServices ?? [])],
    ...options.overrides,
  };

  const format = options.format ?? 'yaml';
  const path = join(dir, format === 'yaml' ? 'agent.yaml' : 'agent.json');
  await writeFile(path, format === 'yaml' ? stringify(config) : `${JSON.stringify(config, null, 2)}\n`);
  return {
    path,
    dir,
    config,
    nodeId: options.nodeId,
    hostAddress: address,
    stateDir,
    containerName,
    readinessListen,
    readinessUrl: `http://${readinessListen}/ready/${containerName}`,
    appPort,
    appUrl,
    image,
    remove: async () => {
      if (created) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `text` as it may stand in a folder name. */
function safe(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40);
}
