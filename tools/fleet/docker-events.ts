/**
 * What each engine itself says happened to the app containers: a live subscription to every
 * engine's event stream (`GET /events`, container events), so the end-to-end tests can check I1
 * ("never more than maxUnavailable nodes out") from Docker's own record rather than from Baton's.
 *
 * When is a node DOWN? Per node, each app container (label `baton.service=<service>`, whatever
 * its name: `app` or `app-baton-old`) is SERVING while it is
 *   running (from `start`, or running when the recorder started)
 *   AND not being stopped (no `kill`, `die` or `stop` since its last `start`)
 *   AND healthy by its own Docker HEALTHCHECK (`health_status: healthy` since its last `start`;
 *       an `health_status: unhealthy` ends it).
 * The node is UP while at least one of its app containers is serving, and DOWN otherwise: from the
 * first `kill` (SIGTERM of `docker stop`), `die` or `stop` of its serving container, or its
 * `unhealthy`, until a container (the new one, or the old one put back) has started AND reported
 * healthy. A `docker pause`d container serves nothing until its `unpause`. The HEALTHCHECK runs every second, so a DOWN interval may end up to ~1 s later than the
 * app was really back: this errs towards counting more nodes down, never fewer.
 */
import Docker from 'dockerode';
import { LABEL_SERVICE } from '../../agent/docker/runtime.js';

export interface EngineRef {
  /** Node id (one engine per node). */
  node: string;
  socketPath: string;
}

export interface AppContainerEvent {
  node: string;
  /** ms since epoch (from the engine's timeNano). */
  atMs: number;
  /** `start`, `kill`, `die`, `stop`, `health_status: healthy`, `create`, `destroy`, `rename`, ... or `seed` (state at recorder start). */
  action: string;
  containerId: string;
  /** The container's name at the time of the event. */
  name: string;
  /** For `seed`: whether it was running and healthy then. */
  running?: boolean;
  health?: string;
  /** `kill`: the signal; `die`: the exit code. */
  signal?: string;
  exitCode?: string;
  /** The baton.digest label. */
  digest?: string;
}

export interface EventRecorder {
  /** Every app container event so far, ordered by time. */
  events(): AppContainerEvent[];
  /** Events of one node. */
  eventsOf(node: string): AppContainerEvent[];
  /** Stops listening (idempotent). */
  stop(): Promise<void>;
}

interface RawEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  time?: number;
  timeNano?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/**
 * Subscribes to every engine's container events and seeds each node's state from a container list
 * taken right after subscribing. Only containers labelled `baton.service=<service>` are kept.
 */
export async function startEventRecorder(engines: EngineRef[], options: { service: string }): Promise<EventRecorder> {
  const events: AppContainerEvent[] = [];
  const streams: NodeJS.ReadableStream[] = [];
  const controllers: AbortController[] = [];
  let stopped = false;

  const seen = new Set<string>();
  await Promise.all(
    engines.map(async (engine) => {
      const docker = new Docker({ socketPath: engine.socketPath });
      /**
       * Subscribes (again: an engine may be stopped and started by a test), from `sinceSeconds`
       * when given, so that what a restarted engine did before it answered (its restore: stopping
       * and restarting containers) is replayed from its event buffer. Duplicates are dropped.
       */
      const subscribe = async (sinceSeconds?: number): Promise<void> => {
        const controller = new AbortController();
        controllers.push(controller);
        const stream = (await docker.getEvents({
          filters: { type: ['container'], label: [`${LABEL_SERVICE}=${options.service}`] },
          ...(sinceSeconds !== undefined ? { since: sinceSeconds } : {}),
          abortSignal: controller.signal,
        } as Docker.GetEventsOptions)) as NodeJS.ReadableStream;
        streams.push(stream);
        let buffer = '';
        stream.on('data', (chunk: Buffer | string) => {
          buffer += chunk.toString();
          let newline = buffer.indexOf('\n');
          while (newline !== -1) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            newline = buffer.indexOf('\n');
            if (line === '') continue;
            try {
              const raw = JSON.parse(line) as RawEvent;
              const key = `${engine.node}|${raw.timeNano ?? raw.time}|${raw.Action ?? raw.status}|${raw.Actor?.ID ?? raw.id}`;
              if (seen.has(key)) continue;
              seen.add(key);
              const event = toEvent(engine.node, raw, options.service);
              if (event) events.push(event);
            } catch {
              // A partial or foreign line: ignore.
            }
          }
        });
        let ended = false;
        const onEnd = (): void => {
          if (ended || stopped) return;
          ended = true;
          // The engine went away: subscribe again once it answers, replaying from a second before now.
          const since = Math.floor(Date.now() / 1_000) - 1;
          void (async () => {
            while (!stopped) {
              await new Promise((r) => setTimeout(r, 200));
              if (stopped) return;
              try {
                await subscribe(since);
                return;
              } catch {
                // Not back yet.
              }
            }
          })();
        };
        stream.on('error', onEnd);
        stream.on('end', onEnd);
        stream.on('close', onEnd);
      };
      await subscribe();

      // Seed: the state of the app containers right now (events before this are not needed).
      const seededAtMs = Date.now();
      const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_SERVICE}=${options.service}`] } });
      for (const summary of list) {
        const info = await docker.getContainer(summary.Id).inspect().catch(() => undefined);
        if (!info) continue;
        events.push({
          node: engine.node,
          atMs: seededAtMs,
          action: 'seed',
          containerId: info.Id,
          name: info.Name.replace(/^\//, ''),
          running: info.State.Running && !info.State.Restarting,
          health: info.State.Health?.Status ?? 'none',
          digest: info.Config.Labels?.['baton.digest'],
        });
      }
    }),
  );

  const sorted = (): AppContainerEvent[] => [...events].sort((a, b) => a.atMs - b.atMs || order(a) - order(b));
  return {
    events: sorted,
    eventsOf: (node) => sorted().filter((e) => e.node === node),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      for (const controller of controllers) controller.abort();
      for (const stream of streams) (stream as unknown as { destroy?: () => void }).destroy?.();
    },
  };
}

/** Seeds first within the same millisecond. */
function order(event: AppContainerEvent): number {
  return event.action === 'seed' ? 0 : 1;
}

function toEvent(node: string, raw: RawEvent, service: string): AppContainerEvent | undefined {
  if (raw.Type !== undefined && raw.Type !== 'container') return undefined;
  const attributes = raw.Actor?.Attributes ?? {};
  if (attributes[LABEL_SERVICE] !== service) return undefined;
  const action = raw.Action ?? raw.status ?? '';
  if (action.startsWith('exec_')) return undefined; // the HEALTHCHECK's own exec events
  const atMs = raw.timeNano !== undefined ? Math.floor(raw.timeNano / 1e6) : (raw.time ?? 0) * 1_000;
  return {
    node,
    atMs,
    action: action.trim(),
    containerId: raw.Actor?.ID ?? raw.id ?? '',
    name: attributes.name ?? '',
    ...(attributes.signal !== undefined ? { signal: attributes.signal } : {}),
    ...(attributes.exitCode !== undefined ? { exitCode: attributes.exitCode } : {}),
    ...(attributes['baton.digest'] !== undefined ? { digest: attributes['baton.digest'] } : {}),
  };
}

export interface DownInterval {
  node: string;
  fromMs: number;
  /** End of the interval; `toMs` of the window when the node was still down then. */
  toMs: number;
  /** Still down at the end of the window. */
  open: boolean;
}

export interface Unavailability {
  /** The most nodes down at the same time within the window. */
  maxDown: number;
  /** When that maximum was first reached. */
  maxDownAtMs: number | undefined;
  /** Which nodes were down then. */
  maxDownNodes: string[];
  /** Every DOWN interval (clipped to the window). */
  intervals: DownInterval[];
  /** Per node, total time down within the window. */
  downMsByNode: Record<string, number>;
}

interface ContainerState {
  running: boolean;
  stopping: boolean;
  /** `docker pause`d: frozen, serves nothing, until `unpause` (its health is kept meanwhile). */
  paused: boolean;
  healthy: boolean;
}

/**
 * Replays the events per node (see the module comment for the definition of DOWN) and sweeps the
 * DOWN intervals of all nodes for the most nodes down at once. `nodes` lists every node (a node
 * without events counts as UP only if its seed says so). `requireHealthy: false` counts a running
 * container as serving without its HEALTHCHECK (for images that have none).
 */
export function computeUnavailability(
  events: AppContainerEvent[],
  options: { nodes: string[]; fromMs?: number; toMs?: number; requireHealthy?: boolean },
): Unavailability {
  const requireHealthy = options.requireHealthy ?? true;
  const fromMs = options.fromMs ?? Number.NEGATIVE_INFINITY;
  const toMs = options.toMs ?? Date.now();
  const intervals: DownInterval[] = [];
  const ordered = [...events].sort((a, b) => a.atMs - b.atMs || order(a) - order(b));

  for (const node of options.nodes) {
    const containers = new Map<string, ContainerState>();
    const serving = (): boolean => [...containers.values()].some((c) => c.running && !c.stopping && !c.paused && (c.healthy || !requireHealthy));
    let downSince: number | undefined = undefined;
    let known = false;
    const observe = (atMs: number): void => {
      const up = serving();
      if (!up && downSince === undefined) downSince = atMs;
      if (up && downSince !== undefined) {
        pushInterval(intervals, node, downSince, atMs, fromMs, toMs, false);
        downSince = undefined;
      }
    };
    for (const event of ordered) {
      if (event.node !== node || event.atMs > toMs) continue;
      const state = containers.get(event.containerId) ?? { running: false, stopping: false, paused: false, healthy: false };
      switch (event.action) {
        case 'seed':
          state.running = event.running ?? false;
          state.stopping = false;
          state.paused = false;
          state.healthy = event.health === 'healthy';
          break;
        case 'start':
          state.running = true;
          state.stopping = false;
          state.paused = false;
          state.healthy = false;
          break;
        case 'pause':
          state.paused = true;
          break;
        case 'unpause':
          // Serving again as it was (Docker reports no health change across a pause).
          state.paused = false;
          break;
        case 'kill':
          state.stopping = true;
          break;
        case 'die':
        case 'stop':
        case 'oom':
          state.running = false;
          state.stopping = false;
          state.paused = false;
          state.healthy = false;
          break;
        case 'health_status: healthy':
          state.healthy = true;
          break;
        case 'health_status: unhealthy':
        case 'health_status: starting':
          state.healthy = false;
          break;
        case 'destroy':
          containers.delete(event.containerId);
          if (known) observe(event.atMs);
          continue;
        default:
          continue; // create, rename, attach, resize...: no change of serving
      }
      containers.set(event.containerId, state);
      // Before its first event a node counts as UP (the recorder seeds every node's containers).
      known = true;
      observe(event.atMs);
    }
    if (!known) {
      // No event at all: count the node as down for the whole window (nothing says it served).
      downSince = Number.isFinite(fromMs) ? fromMs : toMs;
    }
    if (downSince !== undefined) pushInterval(intervals, node, downSince, toMs, fromMs, toMs, true);
  }

  // Sweep: +1 at each start, -1 at each end (ends first at equal times: touching intervals do not overlap).
  const points = intervals.flatMap((i) => [
    { atMs: i.fromMs, delta: 1, node: i.node },
    { atMs: i.toMs, delta: -1, node: i.node },
  ]);
  points.sort((a, b) => a.atMs - b.atMs || a.delta - b.delta);
  let down = 0;
  let maxDown = 0;
  let maxDownAtMs: number | undefined;
  const current = new Map<string, number>();
  let maxDownNodes: string[] = [];
  for (const point of points) {
    down += point.delta;
    current.set(point.node, (current.get(point.node) ?? 0) + point.delta);
    if (down > maxDown) {
      maxDown = down;
      maxDownAtMs = point.atMs;
      maxDownNodes = [...current.entries()].filter(([, n]) => n > 0).map(([n]) => n);
    }
  }
  const downMsByNode: Record<string, number> = Object.fromEntries(options.nodes.map((n) => [n, 0]));
  for (const interval of intervals) downMsByNode[interval.node] = (downMsByNode[interval.node] ?? 0) + (interval.toMs - interval.fromMs);
  return { maxDown, maxDownAtMs, maxDownNodes, intervals, downMsByNode };
}

function pushInterval(
  intervals: DownInterval[],
  node: string,
  from: number,
  to: number,
  windowFrom: number,
  windowTo: number,
  open: boolean,
): void {
  const a = Math.max(from, windowFrom);
  const b = Math.min(to, windowTo);
  if (b > a) intervals.push({ node, fromMs: a, toMs: b, open });
}

/** One line per event, for failure messages and reports. */
export function formatEvents(events: AppContainerEvent[], sinceMs = 0): string {
  return events
    .filter((e) => e.atMs >= sinceMs)
    .map(
      (e) =>
        `${new Date(e.atMs).toISOString().slice(11, 23)} ${e.node} ${e.name} ${e.containerId.slice(0, 12)} ${e.action}` +
        `${e.signal ? ` signal=${e.signal}` : ''}${e.exitCode ? ` exit=${e.exitCode}` : ''}${e.action === 'seed' ? ` running=${String(e.running)} health=${e.health}` : ''}`,
    )
    .join('\n');
}
