import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';

/** Debian's CNCF distribution registry (package `docker-registry`). */
export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export interface StartRegistryOptions {
  /** Webhook the registry POSTs push and pull events to (must be a loopback URL). */
  notificationsUrl?: string;
  /**
   * Serve HTTPS with this certificate and key (PEM files); with `clientCaFile`, every client must
   * present a certificate that CA signed (mutual TLS).
   */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
  /** The address to listen on; default 127.0.0.1. */
  listenHost?: string;
  /** Serve this storage folder (another registry's `storageDir`) instead of a fresh one. */
  storageDir?: string;
}

export interface RunningRegistry {
  /** e.g. `http://127.0.0.1:41234` (`https://` with `tls`) */
  url: string;
  /** e.g. `127.0.0.1:41234`: what image references start with. */
  host: string;
  /** Folder holding the config (and the storage, unless `storageDir` was given). */
  dir: string;
  /** The images: pass it as `storageDir` to serve them from a second registry. */
  storageDir: string;
  stop(): Promise<void>;
}

/** A port nothing listens on right now (the registry binds it a moment later). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function assertLoopbackUrl(url: string): void {
  const { hostname } = new URL(url);
  if (!(hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname))) {
    throw new Error(`notificationsUrl must be a loopback URL, got ${url}`);
  }
}

function registryConfig(storageDir: string, addr: string, options: StartRegistryOptions): string {
  const { notificationsUrl, tls } = options;
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true }, formatter: 'text' },
    storage: {
      filesystem: { rootdirectory: storageDir },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr,
      secret: 'baton-test-registry-secret',
      ...(tls === undefined
        ? {}
        : { tls: { certificate: tls.certFile, key: tls.keyFile, ...(tls.clientCaFile === undefined ? {} : { clientcas: [tls.clientCaFile] }) } }),
    },
  };
  if (notificationsUrl !== undefined) {
    config.notifications = {
      endpoints: [{ name: 'baton', url: notificationsUrl, timeout: '1s', threshold: 3, backoff: '1s' }],
    };
  }
  return stringify(config);
}

async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function launch(dir: string, options: StartRegistryOptions): Promise<RunningRegistry> {
  const listenHost = options.listenHost ?? '127.0.0.1';
  const port = await freePort(listenHost);
  const host = `${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`;
  const url = `${options.tls === undefined ? 'http' : 'https'}://${host}`;
  const configPath = join(dir, 'config.yml');
  const storageDir = options.storageDir ?? join(dir, 'storage');
  await writeFile(configPath, registryConfig(storageDir, host, options));

  // A clean environment: REGISTRY_* variables would override the config file.
  const child = spawn(REGISTRY_BINARY, ['serve', configPath], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-8_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // Kill it even when the test process exits without reaching afterAll.
  const onProcessExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', onProcessExit);

  let stopped = false;
  const stopProcess = async (): Promise<void> => {
    process.removeListener('exit', onProcessExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if (!(await waitForExit(child, 5_000))) {
        child.kill('SIGKILL');
        await waitForExit(child, 5_000);
      }
    }
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stopProcess();
      throw Object.assign(new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}) on ${host}:\n${output}`), {
        output,
      });
    }
    // Over TLS the handshake needs the test's CA (and maybe a client certificate): listening is enough.
    if (options.tls === undefined ? await answersV2(url) : await listening(listenHost, port)) break;
    if (Date.now() > deadline) {
      await stopProcess();
      throw new Error(`docker-registry did not answer GET /v2/ on ${host} within 20 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    url,
    host,
    dir,
    storageDir,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await stopProcess();
    },
  };
}

async function answersV2(url: string): Promise<boolean> {
  try {
    const res = await request(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false; // Not listening yet.
  }
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1_000 });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/**
 * Starts a real registry on 127.0.0.1 (or `listenHost`, over HTTPS with `tls`) with filesystem storage in a fresh temporary folder and
 * waits until `GET /v2/` answers. Call `stop()` in afterAll: it kills the process and removes the folder.
 */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<RunningRegistry> {
  if (options.notificationsUrl !== undefined) assertLoopbackUrl(options.notificationsUrl);
  const dir = await mkdtemp(join(tmpdir(), 'baton-registry-'));
  let lastError: unknown;
  // The free port can be taken between probing and binding: try a few.
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const registry = await launch(dir, options);
      return {
        ...registry,
        stop: async () => {
          await registry.stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      lastError = error;
      const output = (error as { output?: string }).output ?? '';
      if (!/address already in use/i.test(output)) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

/** Signals the registry's process, found by its command line (`docker-registry serve <dir>/config.yml`). */
export function signalRegistry(registry: RunningRegistry, signal: NodeJS.Signals): void {
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
