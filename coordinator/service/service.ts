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
import { resolvePolicy } from '../leases/policy.js';
import {
  decideAcquire,
  decideForget,
  decideGroupAction,
  decideHeartbeat,
  decideRelease,
  decideRenew,
  expireLeases,
} from '../leases/rules.js';
import { applyChanges, emptyGroupState } from '../state/apply.js';
import type { Change, GroupState, LeaseRecord } from '../state/model.js';
import type { Store } from '../store/store.js';
import type { StoreWritability } from '../store/write-failure.js';
import { EventFeed } from './event-feed.js';
import { groupStatusOf } from './group-status.js';
import { repositoryOfImage, tagOfImage } from './images.js';
import { KeyedSerializer } from './group-locks.js';
import { NodeReports } from './node-reports.js';
import { startSweeps, type RunningSweeps } from './sweeps.js';
import { UnsavedHeartbeats } from './unsaved-heartbeats.js';

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
  /** How often soft heartbeat state is written to the store (time of `clock`). */
  heartbeatFlushIntervalMs?: number;
  /** How often expired leases are swept even when no request touches their group (time of `clock`). */
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
  private readonly reports: NodeReports;
  private readonly unsavedHeartbeats: UnsavedHeartbeats;
  private readonly feed: EventFeed;
  private sweeps: RunningSweeps | undefined;
  private readonly recentEventCount: number;

  constructor(private readonly options: CoordinatorServiceOptions) {
    this.recentEventCount = options.recentEventCount ?? 50;
    this.reports = new NodeReports(options.logger);
    this.unsavedHeartbeats = new UnsavedHeartbeats(options.store, options.logger);
    this.feed = new EventFeed(options.logger);
  }

  /** Loads every group from the store and starts the background sweeps. */
  async start(): Promise<void> {
    for (const name of await this.options.store.listGroups()) {
      const state = await this.options.store.loadGroup(name);
      if (state) this.groups.set(name, state);
    }
    this.sweeps = startSweeps(this.options.clock, this.options.logger, [
      { name: 'heartbeat-flush', intervalMs: this.options.heartbeatFlushIntervalMs ?? 2_000, run: () => this.unsavedHeartbeats.flush() },
      { name: 'lease-expiry', intervalMs: this.options.expirySweepIntervalMs ?? 1_000, run: () => this.sweepExpiredLeases() },
    ]);
  }

  /** Stops the sweeps (waiting for a run in progress) and writes the heartbeats not yet saved. */
  async stop(): Promise<void> {
    await this.sweeps?.stop();
    this.sweeps = undefined;
    await this.unsavedHeartbeats.flush();
  }

  /** Called with the events of every committed decision (for the status page's live feed). */
  onEvents(listener: (events: BatonEvent[]) => void): () => void {
    return this.feed.onEvents(listener);
  }

  // ---- Agent requests

  heartbeat(nodeId: string, body: HeartbeatBody): Promise<HeartbeatResponse> {
    return this.withGroup(body.group, async (state, nowMs) => {
      const pollNow = this.reports.takePoll(body.group, nodeId);
      const decision = decideHeartbeat(state, nodeId, body, nowMs, pollNow, this.options.config.heartbeatIntervalMs);
      await this.commit(state, decision.changes);
      this.reports.noteHeartbeat(body.group, nodeId, body);
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
      if (action === 'rollback' || action === 'retry') for (const nodeId of state.nodes.keys()) this.reports.requestPoll(group, nodeId);
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
        this.unsavedHeartbeats.forget(name, nodeId);
        this.reports.forget(name, nodeId);
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
        if (decision.result.ended !== undefined) this.reports.requestPoll(name, nodeId);
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
          this.reports.requestPoll(state.group.name, node.nodeId);
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
      .map((state) => groupStatusOf(state, resolvePolicy(this.options.config, state.group.name), this.reports, nowMs));
  }

  readEvents(query: { afterSeq?: number; group?: string; limit: number; newestFirst?: boolean }): Promise<BatonEvent[]> {
    return this.options.store.readEvents(query);
  }

  /** Whether the store can commit (GET /healthz): cheap while writes succeed. */
  storeWritable(): Promise<StoreWritability> {
    return this.options.store.writable();
  }

  // ---- Internals

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
    this.unsavedHeartbeats.note(batch);
    this.feed.publish(events);
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

function groupAfter(state: GroupState, changes: Change[]): GroupState['group'] {
  let group = state.group;
  for (const change of changes) if (change.kind === 'put-group') group = change.group;
  return group;
}
