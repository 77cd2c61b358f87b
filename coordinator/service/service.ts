import type {
  BatonEvent,
  DrainResponse,
  GroupActionName,
  GroupActionResponse,
  HeartbeatResponse,
  LeaseDecision,
  LeaseRequest,
  RegistryEnvelope,
  ReleaseRequest,
  ReleaseResponse,
  RenewRequest,
  RenewResponse,
  StatusResponse,
} from '../../shared/api/v1.js';
import type { heartbeatRequestSchema } from '../../shared/api/v1.js';
import { ApiError } from '../../shared/api/errors.js';
import type { Clock } from '../../shared/clock.js';
import type { CoordinatorConfig } from '../../shared/config/coordinator.js';
import type { Logger } from '../../shared/logger.js';
import type { z } from 'zod';
import { decideDrain, decideUndrain, drainInfoOf } from '../leases/drain.js';
import { effectiveMaxUnavailable, resolvePolicy } from '../leases/policy.js';
import {
  currentRollout,
  decideAcquire,
  decideForget,
  decideGroupAction,
  decideHeartbeat,
  decideRelease,
  decideRenew,
  expireLeases,
  isSilent,
  progressOf,
} from '../leases/rules.js';
import { applyChanges, emptyGroupState } from '../state/apply.js';
import type { Change, GroupState, LeaseRecord, NodeRecord } from '../state/model.js';
import type { Store } from '../store/store.js';
import { repositoryOfImage, tagOfImage } from './images.js';
import { KeyedSerializer } from './group-locks.js';

export type HeartbeatBody = z.output<typeof heartbeatRequestSchema>;


export class NotFoundError extends ApiError {
  constructor(message: string) {
    super('not-found', message);
  }
}

/** A renew or release the coordinator refuses: stale fencing token, or a lease that has ended. */
export class LeaseConflictError extends ApiError {
  constructor(
    readonly reason: 'stale-token' | 'lease-ended',
    message: string,
  ) {
    super(reason, message);
  }
}

export class ConflictError extends ApiError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export interface CoordinatorServiceOptions {
  config: CoordinatorConfig;
  store: Store;
  clock: Clock;
  logger: Logger;
  /** New lease and rollout ids; crypto.randomUUID in production. */
  newId: () => string;
  /** How often soft heartbeat state is written to the store. */
  heartbeatFlushIntervalMs?: number;
  /** How often expired leases are swept even when no request touches their group. */
  expirySweepIntervalMs?: number;
  recentEventCount?: number;
}

/**
 * Owns the coordinator's state: every request becomes a pure decision (coordinator/leases)
 * over the cached group state, whose durable changes are committed to the store before the
 * cache changes and before the caller is answered.
 */
export class CoordinatorService {
  private readonly groups = new Map<string, GroupState>();
  private readonly serializer = new KeyedSerializer();
  private readonly pendingPolls = new Map<string, Set<string>>();
  private readonly unsavedHeartbeats = new Map<string, NodeRecord>();
  /** What each node's last heartbeat said is wrong with its config file: soft state, never stored. */
  private readonly configProblems = new Map<string, string>();
  /** Why each node's service is not healthy, as its last heartbeat said: soft state, resent with every beat. */
  private readonly healthReasons = new Map<string, string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly recentEventCount: number;
  private readonly eventListeners = new Set<(events: BatonEvent[]) => void>();

  constructor(private readonly options: CoordinatorServiceOptions) {
    this.recentEventCount = options.recentEventCount ?? 50;
  }

  /** Loads every group from the store and starts the background sweeps. */
  async start(): Promise<void> {
    for (const name of await this.options.store.listGroups()) {
      const state = await this.options.store.loadGroup(name);
      if (state) this.groups.set(name, state);
    }
    const flushMs = this.options.heartbeatFlushIntervalMs ?? 2_000;
    const sweepMs = this.options.expirySweepIntervalMs ?? 1_000;
    this.timers.push(setInterval(() => void this.flushHeartbeats(), flushMs).unref());
    this.timers.push(setInterval(() => void this.sweepExpiredLeases(), sweepMs).unref());
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await this.flushHeartbeats();
  }

  /** Called with the events of every committed decision (for the status page's live feed). */
  onEvents(listener: (events: BatonEvent[]) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  // ---- Agent requests

  heartbeat(nodeId: string, body: HeartbeatBody): Promise<HeartbeatResponse> {
    return this.withGroup(body.group, async (state, nowMs) => {
      const pending = this.pendingPolls.get(body.group);
      const pollNow = pending?.delete(nodeId) ?? false;
      const decision = decideHeartbeat(state, nodeId, body, nowMs, pollNow, this.options.config.heartbeatIntervalMs);
      await this.commit(state, decision.changes);
      this.noteConfigProblem(body.group, nodeId, body.configProblem ?? null);
      const key = heartbeatKey(body.group, nodeId);
      if (body.healthReason === undefined || body.healthReason === null || body.health === 'healthy') this.healthReasons.delete(key);
      else this.healthReasons.set(key, body.healthReason);
      return decision.result;
    });
  }

  acquire(request: LeaseRequest): Promise<LeaseDecision> {
    return this.withGroup(request.group, async (state, nowMs) => {
      const policy = resolvePolicy(this.options.config, request.group);
      const ids = { leaseId: this.options.newId(), rolloutId: this.options.newId() };
      const decision = decideAcquire(state, request, policy, nowMs, ids);
      await this.commit(state, decision.changes);
      if (decision.result.kind === 'not-found') throw new NotFoundError(decision.result.message);
      return decision.result.decision;
    });
  }

  async renew(leaseId: string, request: RenewRequest): Promise<RenewResponse> {
    const known = await this.findLeaseOrThrow(leaseId);
    return this.withGroup(known.group, async (state, nowMs) => {
      const policy = resolvePolicy(this.options.config, known.group);
      const ended = state.activeLeases.has(leaseId) ? undefined : await this.options.store.findLease(leaseId);
      const decision = decideRenew(state, leaseId, request, policy, nowMs, ended);
      await this.commit(state, decision.changes);
      const result = decision.result;
      if (result.kind === 'renewed') return result.response;
      throw this.leaseError(leaseId, result);
    });
  }

  async release(leaseId: string, request: ReleaseRequest): Promise<ReleaseResponse> {
    const known = await this.findLeaseOrThrow(leaseId);
    return this.withGroup(known.group, async (state, nowMs) => {
      const ended = state.activeLeases.has(leaseId) ? undefined : await this.options.store.findLease(leaseId);
      const decision = decideRelease(state, leaseId, request, nowMs, ended);
      await this.commit(state, decision.changes);
      const result = decision.result;
      if (result.kind === 'released') return result.response;
      throw this.leaseError(leaseId, result);
    });
  }

  // ---- Operator requests

  groupAction(group: string, action: GroupActionName, reason: string | undefined): Promise<GroupActionResponse> {
    if (!this.groups.has(group)) return Promise.reject(new NotFoundError(`unknown group ${JSON.stringify(group)}`));
    return this.withGroup(group, async (state, nowMs) => {
      const decision = decideGroupAction(state, action, reason, nowMs, this.options.newId());
      await this.commit(state, decision.changes);
      if (decision.result.kind === 'conflict') throw new ConflictError(decision.result.message);
      // A rollback or retry is a new rollout: every node looks now instead of at its next poll.
      if (action === 'rollback' || action === 'retry') for (const nodeId of state.nodes.keys()) this.pollSet(group).add(nodeId);
      return decision.result.response;
    });
  }

  /** Forgets a node in every group it belongs to (or only in `group`). */
  async forget(nodeId: string, group?: string): Promise<{ nodeId: string; groups: string[] }> {
    const groups = this.groupsOfNode(nodeId, group);
    for (const name of groups) {
      await this.withGroup(name, async (state, nowMs) => {
        const decision = decideForget(state, nodeId, nowMs);
        await this.commit(state, decision.changes);
        this.unsavedHeartbeats.delete(heartbeatKey(name, nodeId));
        this.configProblems.delete(heartbeatKey(name, nodeId));
        this.healthReasons.delete(heartbeatKey(name, nodeId));
      });
    }
    return { nodeId, groups };
  }

  /**
   * Drains a node in every group it belongs to (or only in `group`), each drain taking one of its
   * group's slots. All or nothing as far as the coordinator can tell: every group is asked first,
   * and if any refuses, nothing is drained and the refusals are the answer (409). (A grant in
   * another group between the check and the drain may still refuse that group alone; the message
   * then says which groups were drained, and draining again is harmless.)
   */
  async drain(nodeId: string, group: string | undefined, reason: string | undefined): Promise<DrainResponse> {
    const groups = this.groupsOfNode(nodeId, group);
    const refusals: string[] = [];
    for (const name of groups) {
      const state = this.groups.get(name);
      if (state === undefined) continue;
      const policy = resolvePolicy(this.options.config, name);
      const dryRun = decideDrain(state, nodeId, reason, policy, this.options.clock.nowMs(), 'dry-run');
      if (dryRun.result.kind === 'refused') refusals.push(dryRun.result.message);
    }
    if (refusals.length > 0) throw new ConflictError(`node ${nodeId} not drained: ${refusals.join('; ')}`);
    const answer: DrainResponse = { nodeId, groups: [] };
    for (const name of groups) {
      await this.withGroup(name, async (state, nowMs) => {
        const decision = decideDrain(state, nodeId, reason, resolvePolicy(this.options.config, name), nowMs, this.options.newId());
        await this.commit(state, decision.changes);
        const result = decision.result;
        if (result.kind === 'not-found') throw new NotFoundError(result.message);
        if (result.kind === 'refused') {
          const done = answer.groups.map((g) => g.group);
          const already = done.length === 0 ? '' : ` (drained meanwhile in ${done.join(', ')}; \`baton undrain\` or drain again)`;
          throw new ConflictError(`node ${nodeId} not drained: ${result.message}${already}`);
        }
        answer.groups.push({ group: name, drained: drainInfoOf(result.drain), changed: result.changed });
      });
    }
    return answer;
  }

  /** Ends a node's drains in every group it belongs to (or only in `group`); the agent learns it at its next heartbeat. */
  async undrain(nodeId: string, group: string | undefined): Promise<DrainResponse> {
    const answer: DrainResponse = { nodeId, groups: [] };
    for (const name of this.groupsOfNode(nodeId, group)) {
      await this.withGroup(name, async (state, nowMs) => {
        const decision = decideUndrain(state, nodeId, nowMs);
        await this.commit(state, decision.changes);
        if (decision.result.kind === 'not-found') throw new NotFoundError(decision.result.message);
        // Back in service: look at the tag now rather than at the next scheduled poll.
        if (decision.result.ended !== undefined) this.pollSet(name).add(nodeId);
        answer.groups.push({ group: name, drained: null, changed: decision.result.ended !== undefined });
      });
    }
    return answer;
  }

  /** A registry push: every node following the pushed repository and tag polls on its next heartbeat. */
  registryEvents(envelope: RegistryEnvelope): { accepted: number; groupsToPoll: string[] } {
    const groupsToPoll = new Set<string>();
    let accepted = 0;
    for (const event of envelope.events) {
      const target = event.target;
      if (event.action !== 'push' || !target) continue;
      // Blob pushes carry no tag and a layer media type; only manifests move a tag.
      if (target.tag === undefined && !(target.mediaType ?? '').includes('manifest')) continue;
      accepted += 1;
      for (const state of this.groups.values()) {
        for (const node of state.nodes.values()) {
          if (repositoryOfImage(node.image) !== target.repository) continue;
          if (target.tag !== undefined && tagOfImage(node.image) !== target.tag) continue;
          this.pollSet(state.group.name).add(node.nodeId);
          groupsToPoll.add(state.group.name);
        }
      }
    }
    const groups = [...groupsToPoll].sort();
    if (groups.length > 0) this.options.logger.info({ event: 'registry-push', groups }, 'registry push: nodes will poll now');
    return { accepted, groupsToPoll: groups };
  }

  // ---- Reads

  async status(): Promise<StatusResponse> {
    const nowMs = this.options.clock.nowMs();
    const groups = this.groupStatuses(nowMs);
    const events = await this.options.store.readEvents({ limit: this.recentEventCount, newestFirst: true });
    return { serverTimeMs: nowMs, groups, events };
  }

  /** Every group as GET /v1/status shows it, from the cache alone (for metrics scrapes). */
  groupStatuses(nowMs: number = this.options.clock.nowMs()): StatusResponse['groups'] {
    return [...this.groups.values()]
      .sort((a, b) => a.group.name.localeCompare(b.group.name))
      .map((state) => this.groupStatus(state, nowMs));
  }

  /** The clock every decision reads; figures and metrics measure time with it too. */
  get clock(): Clock {
    return this.options.clock;
  }

  readEvents(query: { afterSeq?: number; group?: string; limit: number; newestFirst?: boolean }): Promise<BatonEvent[]> {
    return this.options.store.readEvents(query);
  }

  // ---- Internals

  private groupStatus(state: GroupState, nowMs: number): StatusResponse['groups'][number] {
    const policy = resolvePolicy(this.options.config, state.group.name);
    const rollout = currentRollout(state);
    return {
      name: state.group.name,
      paused: state.group.paused,
      policy: {
        maxUnavailable: policy.maxUnavailable,
        effectiveMaxUnavailable: effectiveMaxUnavailable(policy, state.nodes.size),
        leaseTtlMs: policy.leaseTtlMs,
        heartbeatMissLimitMs: policy.heartbeatMissLimitMs,
      },
      rollout: rollout ? { ...rollout, progress: progressOf(state, rollout) } : null,
      nodes: [...state.nodes.values()]
        .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
        .map((node) => ({
          nodeId: node.nodeId,
          group: node.group,
          host: node.host,
          image: node.image,
          currentDigest: node.currentDigest,
          health: node.health,
          step: node.step,
          agentVersion: node.agentVersion,
          lastHeartbeatMs: node.lastHeartbeatMs,
          silent: isSilent(node, policy, nowMs),
          configProblem: this.configProblems.get(heartbeatKey(node.group, node.nodeId)) ?? null,
          healthReason: this.healthReasons.get(heartbeatKey(node.group, node.nodeId)) ?? null,
          drained: drainInfoOf(state.activeDrains.get(node.nodeId)),
        })),
      leases: [...state.activeLeases.values()].map((lease) => ({
        leaseId: lease.leaseId,
        group: lease.group,
        nodeId: lease.nodeId,
        targetDigest: lease.targetDigest,
        fencingToken: lease.fencingToken,
        grantedAtMs: lease.grantedAtMs,
        expiresAtMs: lease.expiresAtMs,
        timeLeftMs: Math.max(0, lease.expiresAtMs - nowMs),
      })),
    };
  }

  /** Keeps (or clears) a node's reported config problem, logging when it appears or goes away. */
  private noteConfigProblem(group: string, nodeId: string, problem: string | null): void {
    const key = heartbeatKey(group, nodeId);
    const before = this.configProblems.get(key);
    if (problem === null) {
      if (before === undefined) return;
      this.configProblems.delete(key);
      this.options.logger.info({ group, node: nodeId }, 'node runs on a valid config again');
      return;
    }
    this.configProblems.set(key, problem);
    if (before !== problem) {
      this.options.logger.warn({ group, node: nodeId, configProblem: problem }, 'node runs on its last known good config: its config file is invalid');
    }
  }

  /** The groups `nodeId` belongs to (only `group`, if given); NotFoundError when none. */
  private groupsOfNode(nodeId: string, group: string | undefined): string[] {
    const groups = [...this.groups.values()]
      .filter((state) => (group === undefined || state.group.name === group) && state.nodes.has(nodeId))
      .map((state) => state.group.name)
      .sort();
    if (groups.length === 0) {
      throw new NotFoundError(`unknown node ${JSON.stringify(nodeId)}${group === undefined ? '' : ` in group ${JSON.stringify(group)}`}`);
    }
    return groups;
  }

  private pollSet(group: string): Set<string> {
    let set = this.pendingPolls.get(group);
    if (!set) {
      set = new Set();
      this.pendingPolls.set(group, set);
    }
    return set;
  }

  private async findLeaseOrThrow(leaseId: string): Promise<LeaseRecord> {
    for (const state of this.groups.values()) {
      const active = state.activeLeases.get(leaseId);
      if (active) return active;
    }
    const stored = await this.options.store.findLease(leaseId);
    if (!stored) throw new NotFoundError(`unknown lease ${JSON.stringify(leaseId)}`);
    return stored;
  }

  private leaseError(leaseId: string, result: { kind: string; endedAs?: string | null }): Error {
    if (result.kind === 'not-found') return new NotFoundError(`unknown lease ${JSON.stringify(leaseId)}`);
    if (result.kind === 'stale-token') {
      return new LeaseConflictError('stale-token', `fencing token does not match lease ${leaseId}`);
    }
    return new LeaseConflictError('lease-ended', `lease ${leaseId} has ended (${result.endedAs ?? 'ended'})`);
  }

  /** Serializes work on one group; expired leases are ended first, so every rule sees only live ones. */
  private withGroup<T>(group: string, work: (state: GroupState, nowMs: number) => Promise<T>): Promise<T> {
    return this.serializer.run(group, async () => {
      const state = this.groups.get(group) ?? emptyGroupState(group);
      const nowMs = this.options.clock.nowMs();
      await this.commit(state, expireLeases(state, nowMs).changes);
      return work(state, nowMs);
    });
  }

  /**
   * Durable changes are committed to the store first, then applied to the cache: a failed
   * commit leaves both as they were. Heartbeats only touch the cache and are flushed later.
   */
  private async commit(state: GroupState, changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    const durable = changes.some((change) => change.kind !== 'heartbeat');
    let events: BatonEvent[] = [];
    let batch = changes;
    if (durable) {
      const nextGroup = { ...groupAfter(state, changes), version: state.group.version + 1 };
      batch = [...changes.filter((change) => change.kind !== 'put-group'), { kind: 'put-group', group: nextGroup }];
      events = await this.options.store.commit(state.group.name, state.group.version, batch);
    }
    applyChanges(state, batch);
    this.groups.set(state.group.name, state);
    for (const change of batch) {
      if (change.kind === 'heartbeat') this.unsavedHeartbeats.set(heartbeatKey(change.node.group, change.node.nodeId), change.node);
      if (change.kind === 'put-node') this.unsavedHeartbeats.delete(heartbeatKey(change.node.group, change.node.nodeId));
    }
    for (const event of events) this.logEvent(event);
    if (events.length > 0) for (const listener of this.eventListeners) listener(events);
  }

  private logEvent(event: BatonEvent): void {
    this.options.logger.info(
      {
        event: event.type,
        seq: event.seq,
        group: event.group,
        node: event.nodeId ?? undefined,
        digest: event.digest ?? undefined,
        leaseId: event.leaseId ?? undefined,
        fencingToken: event.fencingToken ?? undefined,
        reason: event.reason ?? undefined,
        outcome: event.outcome ?? undefined,
      },
      event.message ?? event.type,
    );
  }

  /**
   * Writes soft heartbeat state in small chunks, yielding between them: the store is
   * synchronous, and one large batch would hold up grants for tens of milliseconds.
   */
  private async flushHeartbeats(): Promise<void> {
    if (this.unsavedHeartbeats.size === 0) return;
    const nodes = [...this.unsavedHeartbeats.values()];
    this.unsavedHeartbeats.clear();
    for (let start = 0; start < nodes.length; start += heartbeatFlushChunk) {
      const chunk = nodes.slice(start, start + heartbeatFlushChunk);
      try {
        await this.options.store.saveHeartbeats(chunk);
      } catch (error) {
        this.options.logger.warn({ err: error, nodes: chunk.length }, 'could not save heartbeats; will retry');
        for (const node of chunk) {
          const key = heartbeatKey(node.group, node.nodeId);
          if (!this.unsavedHeartbeats.has(key)) this.unsavedHeartbeats.set(key, node);
        }
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private async sweepExpiredLeases(): Promise<void> {
    const nowMs = this.options.clock.nowMs();
    for (const state of this.groups.values()) {
      const due = [...state.activeLeases.values()].some((lease) => lease.expiresAtMs <= nowMs);
      if (!due) continue;
      try {
        await this.withGroup(state.group.name, async () => undefined);
      } catch (error) {
        this.options.logger.error({ err: error, group: state.group.name }, 'expiry sweep failed');
      }
    }
  }
}

const heartbeatFlushChunk = 250;

function heartbeatKey(group: string, nodeId: string): string {
  return `${group}\u0000${nodeId}`;
}

function groupAfter(state: GroupState, changes: Change[]): GroupState['group'] {
  let group = state.group;
  for (const change of changes) if (change.kind === 'put-group') group = change.group;
  return group;
}
