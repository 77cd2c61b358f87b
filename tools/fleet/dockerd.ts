/**
 * Starts real Docker engines for tests: one `dockerd` per simulated host, each fully separate
 * (own data root, exec root, socket, pid file, containerd, cgroup parent), on loopback only.
 *
 * Flags, and why (verified with Debian's docker.io 20.10.24, containerd 1.6, runc 1.1 on a
 * cgroup v1 host, running as root):
 *   --data-root / --exec-root / -H unix://… / --pidfile   everything per engine under one mkdtemp
 *                       dir `/tmp/baton-d-XXXXXX` (short: unix socket paths are limited to ~107
 *                       bytes, and containerd puts its socket under the exec root).
 *   --config-file <root>/daemon.json   an empty `{}`: never read the machine's /etc/docker/daemon.json.
 *   --bridge=none --iptables=false --ip6tables=false --ip-masq=false
 *                       no docker0, no NAT, no firewall changes: containers use host networking
 *                       (or `none`); several engines on one machine would fight over docker0 and
 *                       iptables otherwise.
 *   --storage-driver=overlay2   works here (ext4 backing fs, d_type); `vfs` is the fallback
 *                       (BATON_TEST_STORAGE_DRIVER=vfs or the `storageDriver` option): slower,
 *                       copies every layer, but needs no kernel support.
 *   --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent=/<id>   no systemd in the sandbox, so
 *                       cgroupfs; a cgroup parent per engine lets teardown find and kill every
 *                       container process of this engine even after a crash (engines would
 *                       otherwise share /sys/fs/cgroup/<ctrl>/docker).
 *   --containerd-namespace=<id> --containerd-plugins-namespace=<id>-p
 *                       dockerd 20.10 starts its own containerd (root <data-root>/containerd, socket
 *                       <exec-root>/containerd/containerd.sock) unless --containerd is given or a
 *                       system containerd answers at /run/containerd/containerd.sock, in which case
 *                       it would share that one: unique namespaces keep engines apart even then.
 *   --shutdown-timeout=2   bounds dockerd's own wait for containers at shutdown (default 15 s);
 *                       each container still gets its StopTimeout (default 10 s), which is why
 *                       teardown SIGKILLs container processes itself (below).
 *   --ip=<hostAddress>  default host IP for published ports, for the simulated host's 127.0.0.x.
 *   --insecure-registry  only needed for non-loopback registries: 127.0.0.0/8 is insecure by default.
 *   --userland-proxy=false   no docker-proxy processes (no bridge network to proxy for anyway).
 * Nothing else is needed for containers to start here: default seccomp and cgroup v1 work.
 *
 * Teardown (a shell sweep, ~1-2 s): SIGTERM dockerd and meanwhile SIGKILL the processes in the
 * engine's cgroups (the containers: a shutting-down dockerd restarts none, and need not wait their
 * stop timeouts); SIGKILL dockerd after 15 s; kill leftovers whose command line names the engine's
 * root or id (containerd, shims: after a SIGKILL of dockerd they survive it); remove the cgroups;
 * unmount everything under the root, deepest first (`<exec-root>/netns/default`, overlay mounts,
 * the data root's own private bind mount); remove the folder. A detached watchdog runs the same
 * sweep when the test process dies without calling stop() (crash, SIGKILL, forgotten stop), about
 * a second after it is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { basename, join } from 'node:path';

export interface StartDockerdOptions {
  /** Name of the simulated host; used in logs and errors. */
  name: string;
  /** The simulated host's loopback address (127.0.0.x): the engine's default IP for published ports. */
  hostAddress?: string;
  /** Extra `--insecure-registry` entries (loopback registries are insecure already). */
  insecureRegistries?: string[];
  /** Default: env BATON_TEST_STORAGE_DRIVER, else `overlay2`. */
  storageDriver?: 'overlay2' | 'vfs';
  /** How long to wait for `/_ping`; default 30 s. */
  startTimeoutMs?: number;
  /** dockerd `--shutdown-timeout` (seconds given to running containers at teardown); default 2. */
  shutdownTimeoutSeconds?: number;
  /** dockerd `--log-level`; default `warn` (`info` prints much gRPC noise). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

export interface TestDockerd {
  name: string;
  /** Absolute path of the engine's unix socket. */
  socketPath: string;
  /** `unix://<socketPath>`, for DOCKER_HOST. */
  dockerHost: string;
  hostAddress: string | undefined;
  /** The engine's temporary folder (data root, exec root, socket, log). */
  root: string;
  /** dockerd's stdout and stderr. */
  logPath: string;
  pid: number;
  /** The last lines of dockerd's log, for failure messages. */
  logTail(lines?: number): string;
  /** dockerd (this one, not a restarted one) still runs. */
  readonly running: boolean;
  /**
   * Sends `signal` to dockerd alone and resolves once it has exited. SIGKILL: the engine is gone but
   * containerd and the shims live on, so the containers keep running (an engine crash); SIGTERM: a
   * clean shutdown that stops every container first (`systemctl stop docker` without live-restore).
   */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  /**
   * Starts dockerd again with the same flags, data root and socket (after kill()); resolves when it
   * answers /_ping. Without live-restore, dockerd stops the containers it finds still running at
   * start, then its restart policies start them again.
   */
  restart(): Promise<void>;
  /** Stops dockerd and removes everything it left. Idempotent, safe after a failure. */
  stop(): Promise<void>;
}

const running = new Set<TestDockerd>();

/**
 * Kills what a dead or dying engine left, unmounts and removes its folder. `$1` root, `$2` unique id
 * (cgroup parent and containerd namespace), `$3` dockerd pid (may be empty). Idempotent.
 */
const sweepScript = String.raw`
root="$1"; id="$2"; dpid="$3"
kill_containers() {
  for d in /sys/fs/cgroup/*/"$id" /sys/fs/cgroup/"$id"; do
    [ -d "$d" ] || continue
    for p in $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
}
# dockerd: SIGTERM (while shutting down it restarts nothing) and kill the container processes
# meanwhile, so that it need not wait their stop timeouts; SIGKILL after 15 s.
# Only a positive pid whose command line names our root (never -1, never a reused pid).
case "$dpid" in ''|*[!0-9]*|0) dpid='' ;; esac
if [ -n "$dpid" ] && grep -qsF "$root" "/proc/$dpid/cmdline"; then
  kill -TERM "$dpid" 2>/dev/null
  i=0
  while kill -0 "$dpid" 2>/dev/null && [ $i -lt 75 ]; do kill_containers; sleep 0.2; i=$((i+1)); done
  kill -KILL "$dpid" 2>/dev/null
fi
# Leftovers (after a SIGKILL): containerd and shims name the root or the id on their command line.
for p in $(grep -lasF -e "$root" -e "$id" /proc/[0-9]*/cmdline | cut -d/ -f3); do
  [ "$p" = "$$" ] || [ "$p" = "$PPID" ] || kill -KILL "$p" 2>/dev/null
done
for pass in 1 2 3; do kill_containers; sleep 0.1; done
for d in /sys/fs/cgroup/*/"$id" /sys/fs/cgroup/"$id"; do
  [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
done
# Unmount everything under the root, deepest first (netns/default, overlays, the data root).
for pass in 1 2 3; do
  mounts=$(awk -v r="$root/" 'index($2 "/", r) == 1 { print $2 }' /proc/mounts | sort -r)
  [ -z "$mounts" ] && break
  for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
rm -rf "$root"
`;

/** Waits for the parent (the test process) to die, then sweeps. Killed by stop(). */
const watchdogScript = String.raw`
parent="$1"; shift
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
sh -c "$0" sweep "$@"
`;

export async function startDockerd(options: StartDockerdOptions): Promise<TestDockerd> {
  const root = await mkdtemp('/tmp/baton-d-');
  const id = basename(root); // baton-d-XXXXXX: cgroup parent and containerd namespace
  const dataRoot = join(root, 'data');
  const execRoot = join(root, 'exec');
  const socketPath = join(root, 'docker.sock');
  const pidFile = join(root, 'docker.pid');
  const logPath = join(root, 'dockerd.log');
  const configFile = join(root, 'daemon.json');
  await mkdir(dataRoot);
  await mkdir(execRoot);
  await writeFile(configFile, '{}\n');

  const storageDriver = options.storageDriver ?? (process.env.BATON_TEST_STORAGE_DRIVER as 'overlay2' | 'vfs' | undefined) ?? 'overlay2';
  const args = [
    `--config-file=${configFile}`,
    `--data-root=${dataRoot}`,
    `--exec-root=${execRoot}`,
    `--host=unix://${socketPath}`,
    `--pidfile=${pidFile}`,
    '--bridge=none',
    '--iptables=false',
    '--ip6tables=false',
    '--ip-masq=false',
    '--userland-proxy=false',
    `--storage-driver=${storageDriver}`,
    '--exec-opt=native.cgroupdriver=cgroupfs',
    `--cgroup-parent=/${id}`,
    `--containerd-namespace=${id}`,
    `--containerd-plugins-namespace=${id}-p`,
    `--shutdown-timeout=${options.shutdownTimeoutSeconds ?? 2}`,
    `--log-level=${options.logLevel ?? 'warn'}`,
  ];
  if (options.hostAddress !== undefined) {
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(options.hostAddress)) {
      throw new Error(`startDockerd(${options.name}): hostAddress must be a 127.0.0.0/8 address, got ${options.hostAddress}`);
    }
    args.push(`--ip=${options.hostAddress}`);
  }
  for (const registry of options.insecureRegistries ?? []) args.push(`--insecure-registry=${registry}`);

  let child!: ChildProcess;
  let exited!: Promise<number | null>;
  const launch = (): void => {
    const logFd = openSync(logPath, 'a');
    try {
      child = spawn('/usr/sbin/dockerd', args, {
        stdio: ['ignore', logFd, logFd],
        detached: true, // own process group: a Ctrl-C to the test run does not race the teardown
        env: { ...process.env, PATH: withSbin(process.env.PATH) },
      });
    } finally {
      closeSync(logFd);
    }
    child.unref(); // a forgotten stop() must not keep the test process alive; the watchdog cleans up
    const started = child;
    exited = new Promise<number | null>((resolve) => {
      started.once('exit', (code, signal) => resolve(code ?? (signal === null ? null : -1)));
      started.once('error', () => resolve(-1));
    });
  };
  launch();
  const pid = child.pid ?? -1;

  const watchdog = spawn('/bin/sh', ['-c', watchdogScript, sweepScript, String(process.pid), root, id, pid > 0 ? String(pid) : ''], {
    stdio: 'ignore',
    detached: true,
  });
  watchdog.unref();

  const logTail = (lines = 40): string => {
    try {
      return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };

  let stopping: Promise<void> | undefined;
  const engine: TestDockerd = {
    name: options.name,
    socketPath,
    dockerHost: `unix://${socketPath}`,
    hostAddress: options.hostAddress,
    root,
    logPath,
    pid,
    logTail,
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    async kill(signal = 'SIGKILL', timeoutMs = 30_000) {
      if (stopping) throw new Error(`${options.name}: engine stopped for good`);
      if (engine.running && child.pid !== undefined) process.kill(child.pid, signal);
      const done = await Promise.race([exited.then(() => true), delay(timeoutMs).then(() => false)]);
      if (!done) throw new Error(`${options.name}: dockerd did not exit within ${timeoutMs} ms of ${signal}`);
    },
    async restart() {
      if (stopping) throw new Error(`${options.name}: engine stopped for good`);
      if (engine.running) throw new Error(`${options.name}: dockerd still runs; kill() it first`);
      launch();
      try {
        await waitForPing(socketPath, options.startTimeoutMs ?? 30_000, exited);
      } catch (error) {
        throw new Error(`restart of ${options.name}: ${(error as Error).message}\n--- dockerd log (${logPath}) ---\n${logTail()}`, { cause: error });
      }
    },
    stop() {
      stopping ??= (async () => {
        running.delete(engine);
        killGroup(watchdog.pid, 'SIGKILL');
        const alive = engine.running && child.pid !== undefined;
        // After a restart() the first pid is gone: the sweep also kills whatever names the root.
        await runSweep(root, id, alive ? String(child.pid) : '');
      })();
      return stopping;
    },
  };
  running.add(engine);

  try {
    await waitForPing(socketPath, options.startTimeoutMs ?? 30_000, exited);
  } catch (error) {
    await engine.stop().catch(() => undefined);
    throw new Error(
      `startDockerd(${options.name}): ${(error as Error).message}\n--- dockerd log (${logPath}) ---\n${logTail()}`,
      { cause: error },
    );
  }
  return engine;
}

/** Stops every engine this process started and has not stopped yet (global teardown). */
export async function stopAllTestDockerds(): Promise<void> {
  await Promise.allSettled([...running].map((engine) => engine.stop()));
}

/** Engines this process started and has not stopped yet. */
export function runningTestDockerds(): TestDockerd[] {
  return [...running];
}

/** GET /_ping on a unix socket; true when the engine answers `OK`. */
export function pingDocker(socketPath: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(socketPath)) {
      resolve(false);
      return;
    }
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 && body === 'OK'));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function waitForPing(socketPath: string, timeoutMs: number, exited: Promise<number | null>): Promise<void> {
  const state: { exitCode?: number | null } = {};
  void exited.then((code) => (state.exitCode = code));
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if ('exitCode' in state) throw new Error(`dockerd exited (code ${String(state.exitCode)}) before answering /_ping`);
    if (await pingDocker(socketPath, 1_000)) return;
    await delay(100);
  }
  throw new Error(`dockerd did not answer /_ping on ${socketPath} within ${timeoutMs} ms`);
}

function runSweep(root: string, id: string, pid: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sweep = spawn('/bin/sh', ['-c', sweepScript, 'sweep', root, id, pid], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    sweep.stderr.setEncoding('utf8');
    sweep.stderr.on('data', (chunk: string) => (stderr += chunk));
    sweep.on('error', reject);
    sweep.on('exit', () => {
      if (existsSync(root)) reject(new Error(`could not remove ${root}: ${stderr.trim()}`));
      else resolve();
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function withSbin(path: string | undefined): string {
  const parts = (path ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  for (const dir of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!parts.includes(dir)) parts.push(dir);
  return parts.join(':');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
