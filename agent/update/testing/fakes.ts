import type {
  HeartbeatRequest,
  HeartbeatResponse,
  LeaseDecision,
  LeaseGrant,
  LeaseRefusal,
  LeaseRequest,
  RefusalReason,
  ReleaseRequest,
  ReleaseResponse,
  RenewResponse,
} from '../../../shared/api/v1.js';
import type { z } from 'zod';
import type { UpdateStep } from '../../../shared/api/v1.js';
import { type Clock } from '../../../shared/clock.js';
import { serviceSchema } from '../../../shared/config/agent.js';
import { BatonError } from '../../../shared/errors.js';
import { type RandomSource } from '../../../shared/random.js';
import { pino, type Logger } from 'pino';
import { LeaseLostError } from '../../coordinator/errors.js';
import { drainStateSchema, type DrainState, type DrainStateStore } from '../../drain/state.js';
import type {
  ContainerInfo,
  ContainerRuntime,
  ContainerSpec,
  ContainerStatus,
  CoordinatorClient,
  DockerHealth,
  HealthProbe,
  HookRunner,
  Readiness,
  RegistryClient,
  ResolvedDigest,
} from '../../ports.js';
import { ManualClock } from '../../../shared/testing/clock.js';
import { fixedRandom } from '../../../shared/testing/random.js';
import { MemoryUpdateJournal } from './memory-journal.js';

/**
 * In-memory fakes of every port the update flow uses (agent/ports.ts), for fast, exact unit tests
 * driven by a ManualClock. Each records its calls in order.
 */

// ---- Container runtime

/** How containers created from a digest behave once started. */
export interface ImageBehaviour {
  /** The image's checks pass (HTTP and Docker HEALTHCHECK). Default true. */
  healthy?: boolean;
  /** Checks fail (Docker health `starting`) until the container has run this long. Default 0. */
  healthyAfterMs?: number;
  /** The container exits (code 1) this long after start. Default: never. */
  exitsAfterMs?: number;
  /** The image declares a Docker HEALTHCHECK. Default true. */
  hasHealthcheck?: boolean;
}

interface FakeContainer {
  id: string;
  name: string;
  image: string;
  digest: string | null;
  running: boolean;
  exitCode: number | null;
  startedAtMs: number | null;
  labels: Record<string, string>;
  spec: ContainerSpec | null;
  /** `docker pause` (a running container only). */
  paused?: boolean;
  /** Docker's restart policy is restarting it. */
  restarting?: boolean;
}

export interface RuntimeSnapshot {
  containers: FakeContainer[];
  images: string[];
  nextId: number;
}

export type RuntimeOp =
  | 'inspect'
  | 'listForService'
  | 'pull'
  | 'hasImage'
  | 'create'
  | 'start'
  | 'stop'
  | 'rename'
  | 'remove'
  | 'pruneImages';

export interface RuntimeCall {
  op: RuntimeOp;
  args: unknown[];
  atMs: number;
  /** The call rejected (injected failure or an invalid operation). */
  failed: boolean;
}

const mutatingOps: ReadonlySet<RuntimeOp> = new Set(['pull', 'create', 'start', 'stop', 'rename', 'remove']);

export class FakeRuntime implements ContainerRuntime {
  private containers = new Map<string, FakeContainer>();
  private images = new Set<string>();
  private behaviours = new Map<string, ImageBehaviour>();
  private failures: Array<{ op: RuntimeOp; error: Error; match?: (args: unknown[]) => boolean }> = [];
  private nextId = 1;
  readonly calls: RuntimeCall[] = [];
  /** Called after every successful mutating call (crash tests snapshot here). */
  onMutation: ((op: RuntimeOp, args: unknown[]) => void) | undefined;
  /** Pulls take this long on the clock (default 0). */
  pullDurationMs = 0;
  /** stop() takes this long on the clock (default 0). */
  stopDurationMs = 0;
  /** While set, every call rejects with this error (the engine is unreachable). */
  down: Error | undefined;
  /** inspect() answers after this long on the clock (default 0: at once). */
  inspectLatencyMs = 0;

  constructor(private readonly clock: Clock) {}

  static fromSnapshot(clock: Clock, snapshot: RuntimeSnapshot, behaviours: Map<string, ImageBehaviour> = new Map()): FakeRuntime {
    const runtime = new FakeRuntime(clock);
    for (const c of snapshot.containers) runtime.containers.set(c.name, structuredClone(c));
    for (const image of snapshot.images) runtime.images.add(image);
    runtime.nextId = snapshot.nextId;
    runtime.behaviours = new Map(behaviours);
    return runtime;
  }

  snapshot(): RuntimeSnapshot {
    return {
      containers: [...this.containers.values()].map((c) => structuredClone(c)),
      images: [...this.images],
      nextId: this.nextId,
    };
  }

  get imageBehaviours(): Map<string, ImageBehaviour> {
    return this.behaviours;
  }

  // -- setup

  /** Adds a container as if Baton had created (and by default started) it earlier. */
  addContainer(options: { name: string; service: string; digest: string; image?: string; running?: boolean }): ContainerInfo {
    const id = this.newId();
    const image = options.image ?? `registry.test/app@${options.digest}`;
    const container: FakeContainer = {
      id,
      name: options.name,
      image,
      digest: options.digest,
      running: options.running ?? true,
      exitCode: options.running === false ? 0 : null,
      startedAtMs: options.running === false ? null : this.clock.nowMs() - 3_600_000,
      labels: { 'baton.service': options.service, 'baton.digest': options.digest },
      spec: null,
    };
    this.containers.set(container.name, container);
    this.images.add(image);
    return this.info(container);
  }

  addImage(imageByDigest: string): void {
    this.images.add(imageByDigest);
  }

  setImageBehaviour(digest: string, behaviour: ImageBehaviour): void {
    this.behaviours.set(digest, behaviour);
  }

  /** The next call of `op` (matching `match`, if given) rejects with `error`. */
  failNext(op: RuntimeOp, error: Error, match?: (args: unknown[]) => boolean): void {
    this.failures.push({ op, error, ...(match === undefined ? {} : { match }) });
  }

  // -- observation

  /** Every container, as inspect would show it. */
  list(): ContainerInfo[] {
    return [...this.containers.values()].map((c) => this.info(c));
  }

  /** True when the container answers its checks now: running, healthy image, past its warm-up. */
  isServing(name: string): boolean {
    const c = this.containers.get(name);
    if (c === undefined) return false;
    this.settle(c);
    if (!c.running || c.startedAtMs === null || c.paused === true || c.restarting === true) return false;
    const behaviour = this.behaviourOf(c);
    if (behaviour.healthy === false) return false;
    return this.clock.nowMs() - c.startedAtMs >= (behaviour.healthyAfterMs ?? 0);
  }

  /** Successful mutating calls only, as `op:arg0[:arg1]` strings: easy to compare in order. */
  mutations(): string[] {
    return this.calls
      .filter((c) => mutatingOps.has(c.op) && !c.failed)
      .map((c) => [c.op, ...c.args.filter((a) => typeof a === 'string').slice(0, 2)].join(':'));
  }

  // -- ContainerRuntime

  /** `docker pause` / `docker unpause`. */
  setPaused(name: string, paused: boolean): void {
    this.mustGet(name).paused = paused;
  }

  /** Docker's restart policy is (or is no longer) restarting the container. */
  setRestarting(name: string, restarting: boolean): void {
    this.mustGet(name).restarting = restarting;
  }

  async inspect(name: string): Promise<ContainerInfo | undefined> {
    if (this.inspectLatencyMs > 0) await this.clock.sleep(this.inspectLatencyMs);
    return this.call('inspect', [name], () => {
      const c = this.containers.get(name);
      return c === undefined ? undefined : this.info(c);
    });
  }

  listForService(service: string): Promise<ContainerInfo[]> {
    return this.call('listForService', [service], () =>
      [...this.containers.values()].filter((c) => c.labels['baton.service'] === service).map((c) => this.info(c)),
    );
  }

  async pull(imageByDigest: string, signal?: AbortSignal): Promise<void> {
    if (this.pullDurationMs > 0) await this.clock.sleep(this.pullDurationMs, signal);
    return this.call('pull', [imageByDigest], () => {
      this.images.add(imageByDigest);
    });
  }

  hasImage(imageByDigest: string): Promise<boolean> {
    return this.call('hasImage', [imageByDigest], () => this.images.has(imageByDigest));
  }

  /** Images now in the engine (`repo@digest`). */
  imageList(): string[] {
    return [...this.images].sort();
  }

  pruneImages(keep: string[]): Promise<string[]> {
    return this.call('pruneImages', keep, () => {
      const repository = keep[0]?.split('@')[0];
      const used = new Set([...this.containers.values()].map((c) => c.image));
      const removed = [...this.images].filter(
        (image) => image.split('@')[0] === repository && !keep.includes(image) && !used.has(image),
      );
      for (const image of removed) this.images.delete(image);
      return removed;
    });
  }

  create(spec: ContainerSpec, service: string, imageByDigest: string, digest: string): Promise<ContainerInfo> {
    return this.call('create', [spec.name, imageByDigest, service, digest], () => {
      if (this.containers.has(spec.name)) throw new Error(`conflict: container name ${spec.name} is in use`);
      if (!this.images.has(imageByDigest)) throw new Error(`no such image: ${imageByDigest}`);
      const container: FakeContainer = {
        id: this.newId(),
        name: spec.name,
        image: imageByDigest,
        digest,
        running: false,
        exitCode: null,
        startedAtMs: null,
        labels: { ...spec.labels, 'baton.service': service, 'baton.digest': digest },
        spec: structuredClone(spec),
      };
      this.containers.set(spec.name, container);
      return this.info(container);
    });
  }

  start(name: string): Promise<void> {
    return this.call('start', [name], () => {
      const c = this.mustGet(name);
      if (c.running) return;
      c.running = true;
      c.exitCode = null;
      c.startedAtMs = this.clock.nowMs();
    });
  }

  async stop(name: string, timeoutSeconds: number): Promise<void> {
    if (this.stopDurationMs > 0) await this.clock.sleep(this.stopDurationMs);
    return this.call('stop', [name, timeoutSeconds], () => {
      const c = this.mustGet(name);
      if (!c.running) return;
      c.running = false;
      c.exitCode = 0;
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.call('rename', [from, to], () => {
      const c = this.mustGet(from);
      if (this.containers.has(to)) throw new Error(`conflict: container name ${to} is in use`);
      this.containers.delete(from);
      c.name = to;
      this.containers.set(to, c);
    });
  }

  remove(name: string): Promise<void> {
    return this.call('remove', [name], () => {
      const c = this.mustGet(name);
      this.settle(c);
      if (c.running) throw new Error(`conflict: container ${name} is running; stop it first`);
      this.containers.delete(name);
    });
  }

  // -- internals

  private call<T>(op: RuntimeOp, args: unknown[], body: () => T): Promise<T> {
    const record: RuntimeCall = { op, args, atMs: this.clock.nowMs(), failed: false };
    this.calls.push(record);
    if (this.down !== undefined) {
      record.failed = true;
      return Promise.reject(this.down);
    }
    const index = this.failures.findIndex((f) => f.op === op && (f.match === undefined || f.match(args)));
    if (index >= 0) {
      const [failure] = this.failures.splice(index, 1);
      record.failed = true;
      return Promise.reject(failure?.error);
    }
    try {
      const value = body();
      if (mutatingOps.has(op)) this.onMutation?.(op, args);
      return Promise.resolve(value);
    } catch (error) {
      record.failed = true;
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private newId(): string {
    const id = `c${String(this.nextId).padStart(4, '0')}`;
    this.nextId += 1;
    return id;
  }

  private mustGet(name: string): FakeContainer {
    const c = this.containers.get(name);
    if (c === undefined) throw new Error(`no such container: ${name}`);
    return c;
  }

  private behaviourOf(c: FakeContainer): ImageBehaviour {
    return (c.digest === null ? undefined : this.behaviours.get(c.digest)) ?? {};
  }

  /** Applies a scheduled exit. */
  private settle(c: FakeContainer): void {
    const exitsAfterMs = this.behaviourOf(c).exitsAfterMs;
    if (c.running && c.startedAtMs !== null && exitsAfterMs !== undefined && this.clock.nowMs() - c.startedAtMs >= exitsAfterMs) {
      c.running = false;
      c.exitCode = 1;
    }
  }

  private dockerHealth(c: FakeContainer): DockerHealth {
    const behaviour = this.behaviourOf(c);
    if (behaviour.hasHealthcheck === false) return 'none';
    if (!c.running || c.startedAtMs === null) return 'none';
    const warm = this.clock.nowMs() - c.startedAtMs >= (behaviour.healthyAfterMs ?? 0);
    if (!warm) return 'starting';
    return behaviour.healthy === false ? 'unhealthy' : 'healthy';
  }

  private statusOf(c: FakeContainer): ContainerStatus {
    if (c.running && c.paused === true) return 'paused';
    if (c.restarting === true) return 'restarting';
    if (c.running) return 'running';
    return c.startedAtMs === null && c.exitCode === null ? 'created' : 'exited';
  }

  private info(c: FakeContainer): ContainerInfo {
    this.settle(c);
    const status = this.statusOf(c);
    return {
      id: c.id,
      name: c.name,
      image: c.image,
      digest: c.digest,
      running: status === 'running',
      status,
      exitCode: c.running ? null : c.exitCode,
      health: this.dockerHealth(c),
      labels: { ...c.labels },
    };
  }
}

// ---- Coordinator

/** What the real client throws when the coordinator no longer holds a lease (a 409 lease-ended). */
export function leaseLostError(leaseId: string, operation: 'renew' | 'release'): LeaseLostError {
  return new LeaseLostError(leaseId, 'lease-ended', operation, `lease ${leaseId} is not held`);
}

export function coordinatorUnavailableError(message = 'coordinator unavailable'): BatonError {
  return new BatonError('COORDINATOR_UNAVAILABLE', message);
}

/** One scripted answer to acquire: a decision, an error to throw, or a refusal shorthand. */
export type AcquireScript = LeaseDecision | Error | { refuse: RefusalReason; retryAfterMs?: number; rolloutSeq?: number };
/** One scripted answer to renew: `{ answer }` overrides fields of the answer an `ok` would give. */
export type RenewScript = 'ok' | 'lost' | 'unavailable' | { answer: Partial<RenewResponse> };

export interface CoordinatorCall {
  op: 'heartbeat' | 'acquire' | 'renew' | 'release';
  atMs: number;
  leaseId?: string;
  body?: unknown;
}

/**
 * Grants by default (ttl `ttlMs`); acquire answers and renew answers can be scripted in order.
 * Leases it granted are live until released or revoked; renew/release of any other lease, or
 * with a wrong token, throws LeaseLostError. `unavailable = true` makes every call throw.
 */
export class FakeCoordinator implements CoordinatorClient {
  readonly calls: CoordinatorCall[] = [];
  readonly releases: Array<{ leaseId: string } & ReleaseRequest> = [];
  readonly acquireScript: AcquireScript[] = [];
  readonly renewScript: RenewScript[] = [];
  private readonly live = new Map<string, { token: number; grant: LeaseGrant }>();
  private nextLease = 1;
  private nextToken = 1;
  unavailable = false;
  ttlMs = 30_000;
  /** Overrides fields of every release answer (an answer about another lease, say). */
  releaseAnswer: Partial<ReleaseResponse> = {};

  constructor(private readonly clock: Clock) {}

  /** Makes the coordinator forget a lease (expired or taken away): later renew/release throw LeaseLostError. */
  revoke(leaseId: string): void {
    this.live.delete(leaseId);
  }

  /** Registers a lease as live, as if granted before a crash (for reconcile tests). */
  adopt(leaseId: string, fencingToken: number): void {
    this.live.set(leaseId, { token: fencingToken, grant: this.makeGrant(leaseId, fencingToken, 'g', 'n', 'sha256:' + '0'.repeat(64)) });
  }

  isLive(leaseId: string): boolean {
    return this.live.has(leaseId);
  }

  /** What heartbeats answer (change it to pause the group, shorten the interval...). */
  heartbeatAnswer: HeartbeatResponse = {
    pollNow: false,
    paused: false,
    heartbeatIntervalMs: 10_000,
    targetDigest: null,
    rolloutState: null,
    rolloutSeq: 0,
    rolledBackFrom: null,
    drained: null,
  };
  private pollNowPending = false;

  /** The next heartbeat answers `pollNow: true` (as after a registry push), once. */
  requestPollNow(): void {
    this.pollNowPending = true;
  }

  /** The bodies of the heartbeats received so far, in order. */
  heartbeats(): Array<HeartbeatRequest & { nodeId: string; atMs: number }> {
    return this.calls
      .filter((c) => c.op === 'heartbeat')
      .map((c) => ({ ...(c.body as HeartbeatRequest & { nodeId: string }), atMs: c.atMs }));
  }

  heartbeat(nodeId: string, body: HeartbeatRequest): Promise<HeartbeatResponse> {
    this.calls.push({ op: 'heartbeat', atMs: this.clock.nowMs(), body: { nodeId, ...body } });
    if (this.unavailable) return Promise.reject(coordinatorUnavailableError());
    const pollNow = this.pollNowPending || this.heartbeatAnswer.pollNow;
    this.pollNowPending = false;
    return Promise.resolve({ ...this.heartbeatAnswer, pollNow });
  }

  acquire(body: LeaseRequest): Promise<LeaseDecision> {
    this.calls.push({ op: 'acquire', atMs: this.clock.nowMs(), body });
    if (this.unavailable) return Promise.reject(coordinatorUnavailableError());
    const scripted = this.acquireScript.shift();
    if (scripted instanceof Error) return Promise.reject(scripted);
    if (scripted !== undefined && 'refuse' in scripted) {
      const refusal: LeaseRefusal = {
        granted: false,
        reason: scripted.refuse,
        retryAfterMs: scripted.retryAfterMs ?? 5_000,
        message: `refused: ${scripted.refuse}`,
        rolloutSeq: scripted.rolloutSeq ?? 0,
      };
      return Promise.resolve(refusal);
    }
    if (scripted !== undefined) {
      if (scripted.granted) this.live.set(scripted.leaseId, { token: scripted.fencingToken, grant: scripted });
      return Promise.resolve(scripted);
    }
    const leaseId = `lease-${this.nextLease++}`;
    const grant = this.makeGrant(leaseId, this.nextToken++, body.group, body.nodeId, body.targetDigest);
    this.live.set(leaseId, { token: grant.fencingToken, grant });
    return Promise.resolve(grant);
  }

  renew(leaseId: string, fencingToken: number): Promise<RenewResponse> {
    this.calls.push({ op: 'renew', atMs: this.clock.nowMs(), leaseId });
    if (this.unavailable) return Promise.reject(coordinatorUnavailableError());
    const scripted = this.renewScript.shift() ?? 'ok';
    if (scripted === 'unavailable') return Promise.reject(coordinatorUnavailableError());
    const lease = this.live.get(leaseId);
    if (scripted === 'lost' || lease === undefined || lease.token !== fencingToken) {
      this.live.delete(leaseId);
      return Promise.reject(leaseLostError(leaseId, 'renew'));
    }
    const answer = { leaseId, fencingToken, ttlMs: this.ttlMs, expiresAtMs: this.clock.nowMs() + this.ttlMs };
    return Promise.resolve(typeof scripted === 'object' ? { ...answer, ...scripted.answer } : answer);
  }

  release(leaseId: string, body: ReleaseRequest): Promise<ReleaseResponse> {
    this.calls.push({ op: 'release', atMs: this.clock.nowMs(), leaseId, body });
    if (this.unavailable) return Promise.reject(coordinatorUnavailableError());
    const lease = this.live.get(leaseId);
    if (lease === undefined || lease.token !== body.fencingToken) {
      return Promise.reject(leaseLostError(leaseId, 'release'));
    }
    this.live.delete(leaseId);
    this.releases.push({ leaseId, ...body });
    return Promise.resolve({
      leaseId,
      outcome: body.outcome,
      rolloutState: body.outcome === 'failed' ? 'halted' : 'in-progress',
      ...this.releaseAnswer,
    });
  }

  private makeGrant(leaseId: string, fencingToken: number, group: string, nodeId: string, targetDigest: string): LeaseGrant {
    return {
      granted: true,
      leaseId,
      fencingToken,
      group,
      nodeId,
      targetDigest,
      rolloutId: 'rollout-1',
      rolloutSeq: 1,
      ttlMs: this.ttlMs,
      expiresAtMs: this.clock.nowMs() + this.ttlMs,
    };
  }
}

// ---- Registry

/**
 * The registry: every image resolves to `digests[image]` (set it to "push"), or the next scripted
 * errors are thrown first. Records the time of every resolve.
 */
export class FakeRegistry implements RegistryClient {
  readonly digests = new Map<string, string>();
  /** Errors thrown by the next resolves, in order. */
  readonly failures: Error[] = [];
  /** Every resolve stays failing with this error while set. */
  down: Error | undefined;
  readonly calls: Array<{ image: string; atMs: number; failed: boolean }> = [];
  /** Simulated time each resolve takes (answered as of its start). */
  latencyMs = 0;

  constructor(private readonly clock: Clock) {}

  push(image: string, digest: string): void {
    this.digests.set(image, digest);
  }

  async resolve(image: string): Promise<ResolvedDigest> {
    const error = this.failures.shift() ?? this.down;
    const digest = this.digests.get(image);
    const failed = error !== undefined || digest === undefined;
    this.calls.push({ image, atMs: this.clock.nowMs(), failed });
    if (this.latencyMs > 0) await this.clock.sleep(this.latencyMs);
    if (error !== undefined) return Promise.reject(error);
    if (digest === undefined) return Promise.reject(new BatonError('MANIFEST_NOT_FOUND', `${image}: manifest unknown`));
    return Promise.resolve({ digest, tagDigest: digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
  }
}

// ---- Readiness

export interface ReadinessEvent {
  atMs: number;
  service: string;
  draining: boolean;
  healthy: boolean;
  /** What `GET /ready/<service>` answers after this change. */
  status: 200 | 503;
}

export class FakeReadiness implements Readiness {
  private readonly state = new Map<string, { draining: boolean; healthy: boolean }>();
  readonly events: ReadinessEvent[] = [];
  /** Called after every change. */
  onChange: ((event: ReadinessEvent) => void) | undefined;

  constructor(
    private readonly clock: Clock,
    initial: Record<string, { draining?: boolean; healthy?: boolean }> = {},
  ) {
    for (const [service, s] of Object.entries(initial)) {
      this.state.set(service, { draining: s.draining ?? false, healthy: s.healthy ?? true });
    }
  }

  setDraining(service: string, draining: boolean): void {
    this.update(service, { draining });
  }

  setHealthy(service: string, healthy: boolean): void {
    this.update(service, { healthy });
  }

  status(service: string): 200 | 503 {
    const s = this.state.get(service);
    return s !== undefined && s.healthy && !s.draining ? 200 : 503;
  }

  private update(service: string, change: Partial<{ draining: boolean; healthy: boolean }>): void {
    const next = { ...(this.state.get(service) ?? { draining: false, healthy: false }), ...change };
    this.state.set(service, next);
    const event: ReadinessEvent = { atMs: this.clock.nowMs(), service, ...next, status: next.healthy && !next.draining ? 200 : 503 };
    this.events.push(event);
    this.onChange?.(event);
  }
}

// ---- HTTP health probe

export class FakeHealthProbe implements HealthProbe {
  readonly calls: Array<{ url: string; atMs: number }> = [];

  constructor(
    private readonly clock: Clock,
    /** Answers one check; throw to simulate a connection error. */
    public respond: (url: string) => boolean | Promise<boolean>,
  ) {}

  /** A probe whose every URL answers as the runtime's container `containerName` serves. */
  static backedBy(clock: Clock, runtime: FakeRuntime, containerName: string): FakeHealthProbe {
    return new FakeHealthProbe(clock, () => runtime.isServing(containerName));
  }

  /** A probe answering from a list, in order (the last answer repeats). */
  static scripted(clock: Clock, answers: boolean[]): FakeHealthProbe {
    let index = 0;
    return new FakeHealthProbe(clock, () => {
      const answer = answers[Math.min(index, answers.length - 1)] ?? false;
      index += 1;
      return answer;
    });
  }

  async check(url: string): Promise<boolean> {
    this.calls.push({ url, atMs: this.clock.nowMs() });
    return this.respond(url);
  }
}

// ---- Hooks

export class FakeHooks implements HookRunner {
  readonly runs: Array<{ command: string; timeoutMs: number; environment: Record<string, string>; atMs: number }> = [];
  /** Exit code per command (default 0); an Error rejects the run. */
  readonly results = new Map<string, number | Error>();

  constructor(private readonly clock: Clock) {}

  run(command: string, timeoutMs: number, environment: Record<string, string>): Promise<number> {
    this.runs.push({ command, timeoutMs, environment: { ...environment }, atMs: this.clock.nowMs() });
    const result = this.results.get(command) ?? 0;
    return result instanceof Error ? Promise.reject(result) : Promise.resolve(result);
  }
}

// ---- Logging and driving the clock

/** A pino logger that keeps its lines (parsed) in memory. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug', base: undefined, timestamp: false, formatters: { level: (label) => ({ level: label }) } },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Awaits `promise` while moving the manual clock forward `stepMs` at a time (and letting every task
 * run in between), up to `limitMs` of simulated time. Rejects if it has not settled by then.
 */
export async function settle<T>(clock: ManualClock, promise: Promise<T>, options: { stepMs?: number; limitMs?: number } = {}): Promise<T> {
  const stepMs = options.stepMs ?? 100;
  const limitMs = options.limitMs ?? 3_600_000;
  let done = false;
  let value: T | undefined;
  let failure: { error: unknown } | undefined;
  promise.then(
    (v) => {
      done = true;
      value = v;
    },
    (error: unknown) => {
      done = true;
      failure = { error };
    },
  );
  await flush();
  for (let elapsed = 0; !done; elapsed += stepMs) {
    if (elapsed >= limitMs) throw new Error(`did not settle within ${limitMs} ms of simulated time`);
    await clock.advance(stepMs);
    await flush();
  }
  if (failure) throw failure.error;
  return value as T;
}

/** Moves the clock until `condition` holds (checked after every step). */
export async function advanceUntil(clock: ManualClock, condition: () => boolean, options: { stepMs?: number; limitMs?: number } = {}): Promise<void> {
  const stepMs = options.stepMs ?? 100;
  const limitMs = options.limitMs ?? 3_600_000;
  await flush();
  for (let elapsed = 0; !condition(); elapsed += stepMs) {
    if (elapsed >= limitMs) throw new Error(`condition not met within ${limitMs} ms of simulated time`);
    await clock.advance(stepMs);
    await flush();
  }
}

// ---- A whole node, wired for the update flow

export const OLD_DIGEST = `sha256:${'a'.repeat(64)}`;
export const NEW_DIGEST = `sha256:${'b'.repeat(64)}`;

export interface FakeWorldOptions {
  /** Overrides of the service config (before schema defaults apply). */
  service?: Partial<ServiceInput>;
  clockStartMs?: number;
  random?: RandomSource;
  /** The target image is already in the local store (no pull). */
  imagePresent?: boolean;
}

type ServiceInput = z.input<typeof serviceSchema>;

/**
 * One node running service `web` on OLD_DIGEST, healthy, with every port faked, and a timeline of
 * journal writes, runtime mutations and readiness changes in the order they happened.
 */
export function createFakeWorld(options: FakeWorldOptions = {}) {
  const clock = new ManualClock(options.clockStartMs ?? 0);
  const runtime = new FakeRuntime(clock);
  runtime.addContainer({ name: 'web', service: 'web', digest: OLD_DIGEST });
  const coordinator = new FakeCoordinator(clock);
  const readiness = new FakeReadiness(clock, { web: { healthy: true, draining: false } });
  const healthProbe = FakeHealthProbe.backedBy(clock, runtime, 'web');
  const hooks = new FakeHooks(clock);
  const journal = new MemoryUpdateJournal();
  const { logger, lines } = captureLogger();
  const steps: UpdateStep[] = [];
  const timeline: string[] = [];
  journal.onChange = (op) => {
    timeline.push(op === 'write' ? `journal:${journal.snapshot()[0]?.step ?? '?'}` : 'journal:clear');
  };
  runtime.onMutation = (op, args) => {
    timeline.push(`runtime:${op}:${String(args[0])}${op === 'rename' ? `>${String(args[1])}` : ''}`);
  };
  readiness.onChange = (event) => {
    timeline.push(`ready:${event.status}`);
  };
  const service = serviceSchema.parse({
    group: 'web',
    image: 'registry.test/app:latest',
    containerName: 'web',
    health: {
      http: { url: 'http://127.0.0.1:8080/health' },
      intervalMs: 1_000,
      consecutivePasses: 3,
      deadlineMs: 30_000,
      minHealthyMs: 5_000,
    },
    drainSeconds: 10,
    readmitSeconds: 5,
    stopTimeoutSeconds: 7,
    ...options.service,
  });
  const target = { digest: NEW_DIGEST, imageByDigest: `registry.test/app@${NEW_DIGEST}` };
  if (options.imagePresent) runtime.addImage(target.imageByDigest);
  const deps = {
    runtime,
    coordinator,
    readiness,
    healthProbe,
    hooks,
    journal,
    clock,
    random: options.random ?? fixedRandom(0.5),
    logger,
    nodeId: 'node-1',
    onStep: (step: UpdateStep) => {
      steps.push(step);
    },
  };
  /** Log lines of the update steps (the structured one-per-step lines). */
  const stepLines = () => lines.filter((l) => typeof l.step === 'string' && 'durationMs' in l);
  return { clock, runtime, coordinator, readiness, healthProbe, hooks, journal, logger, lines, stepLines, steps, timeline, service, target, deps };
}

/** The drain state store in memory; a write can be made to fail. */
export class MemoryDrainStateStore implements DrainStateStore {
  private readonly states = new Map<string, DrainState>();
  failNextWrite: Error | undefined;

  constructor(initial: Iterable<DrainState> = []) {
    for (const state of initial) this.states.set(state.service, { ...state });
  }

  read(service: string): Promise<DrainState | undefined> {
    const state = this.states.get(service);
    return Promise.resolve(state === undefined ? undefined : { ...state });
  }

  write(state: DrainState): Promise<void> {
    if (this.failNextWrite) {
      const error = this.failNextWrite;
      this.failNextWrite = undefined;
      return Promise.reject(error);
    }
    this.states.set(state.service, drainStateSchema.parse(state));
    return Promise.resolve();
  }

  clear(service: string): Promise<void> {
    this.states.delete(service);
    return Promise.resolve();
  }

  snapshot(service: string): DrainState | undefined {
    const state = this.states.get(service);
    return state === undefined ? undefined : { ...state };
  }
}
