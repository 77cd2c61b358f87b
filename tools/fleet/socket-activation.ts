/** Socket activation: the readiness socket held across agent restarts, as systemd does. */
import { spawn } from 'node:child_process';
import { parseHostPort } from '../../shared/host-port.js';
import { existsSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { constants as osConstants } from 'node:os';
import { createInterface } from 'node:readline';
import { agentHandle, type AgentHandle, type AgentProcess } from './agent.js';
import { batonCli } from './coordinator.js';

/** Debian's `systemd-socket-activate` (package systemd), or undefined when it is not installed. */
export const SOCKET_ACTIVATE_BINARY = ['/usr/bin/systemd-socket-activate', '/bin/systemd-socket-activate'].find((path) => existsSync(path));

export interface SocketActivatedAgentOptions {
  /** The agent's config file. */
  configFile: string;
  /** `host:port` systemd-socket-activate listens on and passes to every agent (usually the config's readiness.listen). */
  listen: string;
  /** Extra environment (BATON_*); the agents get only PATH plus these (and LISTEN_PID/LISTEN_FDS). */
  environment?: Record<string, string>;
  echo?: string;
}

/**
 * One simulated host's `baton-agent.socket` plus `baton-agent.service`: `systemd-socket-activate -l
 * <listen>` holds the readiness socket for the supervisor's whole life and runs a small shell
 * supervisor (in place of systemd's service manager) that starts one agent process per `start()`,
 * passing the socket as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to that agent's own pid (the
 * agent is exec'd in a subshell, so the pid is its own). While no agent runs, connections to the
 * socket wait in its queue and are answered by the next agent, exactly as under systemd.
 *
 * Each agent is an AgentProcess like spawnAgentProcess's (`process` is the supervisor's child:
 * the agent itself is its grandchild); `kill(signal)` signals the agent only, never the socket.
 * `stop()` ends the supervisor and whatever agent runs.
 */
export interface SocketActivatedAgents {
  /** systemd-socket-activate's pid (the supervisor shell after its exec). */
  pid: number;
  listen: string;
  /** Starts the next agent process (the previous one must have exited); resolves once it runs. */
  start(): Promise<AgentProcess>;
  /** The supervisor's own output lines (systemd-socket-activate's and the markers). */
  supervisorLines(): string[];
  stop(): Promise<void>;
}

const markerPrefix = '@@baton-supervisor ';

export async function startSocketActivatedAgents(options: SocketActivatedAgentOptions): Promise<SocketActivatedAgents> {
  if (SOCKET_ACTIVATE_BINARY === undefined) throw new Error('systemd-socket-activate is not installed (Debian package systemd)');
  const { host, port } = parseHostPort(options.listen);
  // Reads one command a line on stdin: `start` runs one agent in the foreground, then reports its end.
  // Markers go to stdout and stderr both, so the reader knows both streams of an agent are complete.
  const script = String.raw`
node="$1"; cli="$2"; config="$3"
while IFS= read -r command; do
  case "$command" in
    start)
      ( echo "${markerPrefix}pid $BASHPID"; export LISTEN_PID=$BASHPID LISTEN_FDS=1; exec "$node" "$cli" agent --config "$config" </dev/null )
      code=$?
      echo "${markerPrefix}exited $code"; echo "${markerPrefix}exited $code" >&2
      ;;
    exit) exit 0 ;;
  esac
done
`;
  const environment = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.environment };
  const child = spawn(
    SOCKET_ACTIVATE_BINARY,
    [
      '-l',
      options.listen,
      ...Object.entries(environment).flatMap(([name, value]) => ['-E', `${name}=${value}`]),
      '/bin/bash',
      '-c',
      script,
      'baton-agent-supervisor',
      process.execPath,
      batonCli,
      options.configFile,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: environment },
  );
  const pid = child.pid ?? -1;
  const killGroup = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  };
  process.once('exit', killGroup);
  const supervisorLines: string[] = [];
  let current: AgentHandle | undefined;
  let pendingPid: ((pid: number) => void) | undefined;
  let endMarkers = 0;
  let exitCode: number | undefined;
  const onMarker = (text: string): void => {
    const words = text.slice(markerPrefix.length).split(' ');
    if (words[0] === 'pid') {
      pendingPid?.(Number(words[1]));
      pendingPid = undefined;
    } else if (words[0] === 'exited') {
      exitCode = Number(words[1]);
      endMarkers += 1;
      if (endMarkers === 2 && current !== undefined) {
        // bash reports a death by signal N as 128 + N.
        const signalName =
          exitCode > 128 ? ((Object.entries(osConstants.signals).find(([, n]) => n === exitCode! - 128)?.[0] as NodeJS.Signals | undefined) ?? null) : null;
        current.ended(signalName !== null ? { code: null, signal: signalName } : { code: exitCode, signal: null });
      }
    }
  };
  let listening!: () => void;
  const listeningNow = new Promise<void>((resolve) => (listening = resolve));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    if (text.startsWith(markerPrefix)) {
      supervisorLines.push(text);
      onMarker(text);
    } else current?.stdoutLine(text);
  });
  createInterface({ input: child.stderr! }).on('line', (text) => {
    if (text.startsWith(markerPrefix)) {
      supervisorLines.push(text);
      onMarker(text);
    } else if (current === undefined || !current.agent.running || /^(Listening on|Communication attempt|Execing) /.test(text)) {
      supervisorLines.push(text);
      if (text.startsWith('Listening on')) listening();
    } else current.stderrLine(text);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    process.removeListener('exit', killGroup);
    current?.ended({ code: null, signal: 'SIGKILL' });
    listening();
  });

  // systemd-socket-activate binds, then waits for a first connection before it execs the
  // supervisor: make one (the first agent accepts it and sees it closed).
  await Promise.race([listeningNow, new Promise((r) => setTimeout(r, 10_000))]);
  if (child.exitCode !== null || child.signalCode !== null) {
    throw new Error(`systemd-socket-activate exited at start: ${supervisorLines.join('\n')}`);
  }
  await new Promise<void>((resolve) => {
    const socket = connectTcp({ host, port }, () => {
      socket.end();
      resolve();
    });
    socket.on('error', () => resolve());
  });

  const start = async (): Promise<AgentProcess> => {
    if (current?.agent.running) throw new Error('startSocketActivatedAgents: an agent is still running');
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('the socket-activation supervisor has exited');
    endMarkers = 0;
    const agentPid = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the supervisor did not start an agent within 10 s: ${supervisorLines.slice(-10).join('\n')}`)), 10_000);
      pendingPid = (p) => {
        clearTimeout(timer);
        resolve(p);
      };
      child.stdin!.write('start\n');
    });
    current = agentHandle({
      pid: agentPid,
      process: child,
      configFile: options.configFile,
      echo: options.echo ?? (process.env.BATON_TEST_ECHO ? `[${options.configFile}]` : undefined),
      signal: (signal) => {
        try {
          process.kill(agentPid, signal);
        } catch {
          // Already gone.
        }
      },
    });
    return current.agent;
  };

  return {
    pid,
    listen: options.listen,
    start,
    supervisorLines: () => [...supervisorLines],
    stop: async () => {
      killGroup();
      await exited;
    },
  };
}
