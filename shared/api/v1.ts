import { z } from 'zod';
import { digestSchema } from '../image-ref.js';

/**
 * Every message of the coordinator's HTTP API v1. Both sides validate with these schemas:
 * the coordinator every request body, the agent and CLI every response.
 */

// No control characters: ids end up in logs, URLs and HTML (where they are escaped).
// eslint-disable-next-line no-control-regex -- rejecting control characters is the point
const printable = /^[^\u0000-\u001f\u007f]+$/;

export const nodeIdSchema = z.string().min(1).max(253).regex(printable, 'must not contain control characters');
export const groupNameSchema = z.string().min(1).max(128).regex(printable, 'must not contain control characters');
export { digestSchema };
export const imageReferenceSchema = z.string().min(1).max(512).regex(printable, 'must not contain control characters');
export const leaseIdSchema = z.string().min(1).max(64);
export const fencingTokenSchema = z.number().int().positive();

export type NodeId = z.infer<typeof nodeIdSchema>;
export type Digest = z.infer<typeof digestSchema>;

/** Health of a node's service as its agent sees it; only `healthy` counts as in service. */
export const nodeHealthSchema = z.enum(['healthy', 'unhealthy', 'starting', 'draining', 'stopped', 'unknown']);
export type NodeHealth = z.infer<typeof nodeHealthSchema>;

/**
 * Why a service is not in service, as its readiness endpoint answers it (body of the 503) and the
 * heartbeat reports it: the update flow drains it, an operator drained the node, or the live probe failed.
 */
export const healthReasonSchema = z.enum([
  'draining',
  'drained',
  'engine-unreachable',
  'container-missing',
  'container-stopped',
  'container-paused',
  'container-restarting',
  'check-failed',
  'starting',
]);
export type HealthReason = z.infer<typeof healthReasonSchema>;

/** The agent's update steps; `idle` when no update is in flight. */
export const updateStepSchema = z.enum([
  'idle',
  'poll',
  'compare',
  'pull',
  'lease',
  'drain',
  'stop',
  'start',
  'health',
  'success',
  'rollback',
  'reconcile',
]);
export type UpdateStep = z.infer<typeof updateStepSchema>;

/**
 * Why a lease is not granted. Waiting helps for `busy`, `unhealthy-peer` and `paused`; `stale`
 * means the tag has moved since the agent looked (poll again); `drained` that an operator drained
 * the node (it updates once undrained); the rest end the attempt.
 */
export const refusalReasonSchema = z.enum([
  'busy',
  'unhealthy-peer',
  'halted',
  'paused',
  'aborted',
  'superseded',
  'stale',
  'rolled-back',
  'drained',
]);
export type RefusalReason = z.infer<typeof refusalReasonSchema>;

export const rolloutStateSchema = z.enum(['in-progress', 'completed', 'halted', 'paused', 'aborted', 'superseded']);
export type RolloutState = z.infer<typeof rolloutStateSchema>;

/** What opened a rollout: a push an agent saw, `baton rollback`, or `baton retry`. */
export const rolloutCauseSchema = z.enum(['push', 'rollback', 'retry']);
export type RolloutCause = z.infer<typeof rolloutCauseSchema>;

/** A rollout's number in its group: 1, 2, 3... in the order they opened. */
export const rolloutSeqSchema = z.number().int().nonnegative();

export const releaseOutcomeSchema = z.enum([
  'updated', // the node now serves the target digest and is healthy
  'failed', // the target digest failed its health checks; the node rolled back; the rollout halts
  'abandoned', // the node gave the lease back before changing anything (shutdown, pull error, lost interest)
]);
export type ReleaseOutcome = z.infer<typeof releaseOutcomeSchema>;

/** Why and since when a node is drained, as the heartbeat, the status and the drain answer tell it. */
export const drainInfoSchema = z.object({
  reason: z.string().nullable(),
  sinceMs: z.number().int(),
});
export type DrainInfo = z.infer<typeof drainInfoSchema>;

// ---- POST /v1/nodes/{nodeId}/heartbeat

/** The longest `configProblem` a heartbeat may carry. */
export const configProblemMaxLength = 1_000;

export const heartbeatRequestSchema = z.strictObject({
  group: groupNameSchema,
  host: z.string().min(1).max(253),
  image: imageReferenceSchema,
  currentDigest: digestSchema.nullable(),
  health: nodeHealthSchema,
  step: updateStepSchema.default('idle'),
  agentVersion: z.string().min(1).max(64),
  /**
   * Set while the agent runs on its last known good config because its config file is invalid: one
   * line naming the bad fields. Left out otherwise (so older coordinators, which refuse unknown
   * fields, still take the heartbeats of agents whose config is fine).
   */
  configProblem: z.string().min(1).max(configProblemMaxLength).regex(printable, 'must not contain control characters').nullable().optional(),
  /** Why the service is not healthy, when it is not (left out when healthy, for older coordinators). */
  healthReason: healthReasonSchema.nullable().optional(),
});
export type HeartbeatRequest = z.input<typeof heartbeatRequestSchema>;

export const heartbeatResponseSchema = z.object({
  /** Poll the registry now instead of waiting for the schedule (a push notification arrived). */
  pollNow: z.boolean(),
  /** The group is paused: start no update. */
  paused: z.boolean(),
  heartbeatIntervalMs: z.number().int().positive(),
  targetDigest: digestSchema.nullable(),
  rolloutState: rolloutStateSchema.nullable(),
  /** The group's current rollout's seq (0 before any): sent back as a lease request's observedAfterSeq. */
  rolloutSeq: rolloutSeqSchema.default(0),
  /** Set while a rollback is open or completed: run targetDigest while the tag points at this digest. */
  rolledBackFrom: digestSchema.nullable().default(null),
  /**
   * Set while an operator has drained this node in this group (`baton drain`): keep the service out
   * of the balancer (readiness 503 `drained`) and start no update until it is null again.
   */
  drained: drainInfoSchema.nullable().default(null),
});
export type HeartbeatResponse = z.infer<typeof heartbeatResponseSchema>;

// ---- POST /v1/leases

export const leaseRequestSchema = z.strictObject({
  nodeId: nodeIdSchema,
  group: groupNameSchema,
  targetDigest: digestSchema,
  image: imageReferenceSchema.optional(),
  /**
   * The highest rollout seq the agent knew before the registry poll that found targetDigest. A
   * digest other than the current rollout's opens a new rollout only when this is at least the
   * current seq (the tag moved after that rollout opened); otherwise the request is `stale`.
   * Absent (older agents): only a digest the group never rolled out opens one.
   */
  observedAfterSeq: rolloutSeqSchema.optional(),
});
export type LeaseRequest = z.infer<typeof leaseRequestSchema>;

export const leaseGrantSchema = z.object({
  granted: z.literal(true),
  leaseId: leaseIdSchema,
  fencingToken: fencingTokenSchema,
  group: groupNameSchema,
  nodeId: nodeIdSchema,
  targetDigest: digestSchema,
  rolloutId: z.string(),
  rolloutSeq: rolloutSeqSchema.default(0),
  ttlMs: z.number().int().positive(),
  expiresAtMs: z.number().int(),
});
export type LeaseGrant = z.infer<typeof leaseGrantSchema>;

export const leaseRefusalSchema = z.object({
  granted: z.literal(false),
  reason: refusalReasonSchema,
  retryAfterMs: z.number().int().nonnegative(),
  message: z.string(),
  /** The group's current rollout's seq (0 before any), so a `stale` agent knows what to look after. */
  rolloutSeq: rolloutSeqSchema.default(0),
});
export type LeaseRefusal = z.infer<typeof leaseRefusalSchema>;

/** 200 with a grant, or 409 with a refusal. */
export const leaseDecisionSchema = z.discriminatedUnion('granted', [leaseGrantSchema, leaseRefusalSchema]);
export type LeaseDecision = z.infer<typeof leaseDecisionSchema>;

// ---- POST /v1/leases/{leaseId}/renew

export const renewRequestSchema = z.strictObject({ fencingToken: fencingTokenSchema });
export type RenewRequest = z.infer<typeof renewRequestSchema>;

export const renewResponseSchema = z.object({
  leaseId: leaseIdSchema,
  fencingToken: fencingTokenSchema,
  ttlMs: z.number().int().positive(),
  expiresAtMs: z.number().int(),
});
export type RenewResponse = z.infer<typeof renewResponseSchema>;

// ---- POST /v1/leases/{leaseId}/release

export const releaseRequestSchema = z.strictObject({
  fencingToken: fencingTokenSchema,
  outcome: releaseOutcomeSchema,
  message: z.string().max(2_000).optional(),
});
export type ReleaseRequest = z.infer<typeof releaseRequestSchema>;

export const releaseResponseSchema = z.object({
  leaseId: leaseIdSchema,
  outcome: releaseOutcomeSchema,
  rolloutState: rolloutStateSchema,
});
export type ReleaseResponse = z.infer<typeof releaseResponseSchema>;

// ---- POST /v1/groups/{group}/pause|resume|abort|rollback|retry

/**
 * Operator actions on a group. `rollback` opens a rollout back to the previous completed digest;
 * `retry` opens a new rollout of the digest a halted, aborted or rolled-back rollout targeted.
 */
export const groupActions = ['pause', 'resume', 'abort', 'rollback', 'retry'] as const;
export type GroupActionName = (typeof groupActions)[number];

export const groupActionRequestSchema = z.strictObject({ reason: z.string().max(2_000).optional() });
export type GroupActionRequest = z.infer<typeof groupActionRequestSchema>;

export const groupActionResponseSchema = z.object({
  group: groupNameSchema,
  paused: z.boolean(),
  rolloutState: rolloutStateSchema.nullable(),
  /** The group's current rollout after the action (a new one after rollback or retry). */
  rolloutSeq: rolloutSeqSchema.default(0),
  targetDigest: digestSchema.nullable().default(null),
});
export type GroupActionResponse = z.infer<typeof groupActionResponseSchema>;

// ---- POST /v1/nodes/{nodeId}/drain and /undrain

export const drainReasonMaxLength = 500;

/** Drains NODE in every group it belongs to, or only in `group`. */
export const drainRequestSchema = z.strictObject({
  group: groupNameSchema.optional(),
  reason: z.string().min(1).max(drainReasonMaxLength).regex(printable, 'must not contain control characters').optional(),
});
export type DrainRequest = z.infer<typeof drainRequestSchema>;

export const undrainRequestSchema = z.strictObject({ group: groupNameSchema.optional() });
export type UndrainRequest = z.infer<typeof undrainRequestSchema>;

/** Per group: the drain now (null once undrained), and whether this request changed anything. */
export const drainResponseSchema = z.object({
  nodeId: nodeIdSchema,
  groups: z.array(z.object({ group: groupNameSchema, drained: drainInfoSchema.nullable(), changed: z.boolean() })),
});
export type DrainResponse = z.infer<typeof drainResponseSchema>;

// ---- POST /v1/registry/events (the distribution registry's notification envelope)

export const registryEventSchema = z.looseObject({
  id: z.string().optional(),
  timestamp: z.string().optional(),
  action: z.string(),
  target: z
    .looseObject({
      mediaType: z.string().optional(),
      digest: z.string().optional(),
      repository: z.string().min(1),
      url: z.string().optional(),
      tag: z.string().optional(),
    })
    .optional(),
  request: z.looseObject({ host: z.string().optional() }).optional(),
});
export const registryEnvelopeSchema = z.looseObject({ events: z.array(registryEventSchema).max(10_000) });
export type RegistryEnvelope = z.infer<typeof registryEnvelopeSchema>;

// ---- Event log

export const eventTypeSchema = z.enum([
  'node-joined',
  'node-forgotten',
  'rollout-opened',
  'rollout-superseded',
  'rollout-completed',
  'grant',
  'refusal',
  'renew',
  'release',
  'expiry',
  'halt',
  'pause',
  'resume',
  'abort',
  'registry-push',
  'drain',
  'undrain',
]);
export type EventType = z.infer<typeof eventTypeSchema>;

export const eventSchema = z.object({
  seq: z.number().int().positive(),
  atMs: z.number().int(),
  type: eventTypeSchema,
  group: z.string(),
  nodeId: z.string().nullable(),
  digest: z.string().nullable(),
  leaseId: z.string().nullable(),
  fencingToken: z.number().int().nullable(),
  reason: z.string().nullable(),
  outcome: z.string().nullable(),
  message: z.string().nullable(),
});
export type BatonEvent = z.infer<typeof eventSchema>;

// ---- GET /v1/status

export const maxUnavailableSchema = z.union([
  z.number().int().positive(),
  z.string().regex(/^(100|[1-9]?[0-9])%$/, 'must be a whole number of nodes or a percentage like "25%"'),
]);
export type MaxUnavailable = z.infer<typeof maxUnavailableSchema>;

export const statusNodeSchema = z.object({
  nodeId: z.string(),
  group: z.string(),
  host: z.string(),
  image: z.string(),
  currentDigest: z.string().nullable(),
  health: nodeHealthSchema,
  step: updateStepSchema,
  agentVersion: z.string(),
  lastHeartbeatMs: z.number().int(),
  silent: z.boolean(),
  /** The agent's last heartbeat said it runs on its last known good config: why (kept in memory only). */
  configProblem: z.string().nullable().default(null),
  /** Why the node's service is not healthy, as its last heartbeat said (kept in memory only). */
  healthReason: z.string().nullable().default(null),
  /** An operator drained the node (`baton drain`): why and since when; it holds one of the group's slots. */
  drained: drainInfoSchema.nullable().default(null),
});

export const statusLeaseSchema = z.object({
  leaseId: z.string(),
  group: z.string(),
  nodeId: z.string(),
  targetDigest: z.string(),
  fencingToken: z.number().int(),
  grantedAtMs: z.number().int(),
  expiresAtMs: z.number().int(),
  timeLeftMs: z.number().int(),
});

export const statusRolloutSchema = z.object({
  rolloutId: z.string(),
  group: z.string(),
  seq: rolloutSeqSchema,
  cause: rolloutCauseSchema,
  targetDigest: z.string(),
  image: z.string().nullable(),
  state: rolloutStateSchema,
  openedAtMs: z.number().int(),
  endedAtMs: z.number().int().nullable(),
  completedAtMs: z.number().int().nullable(),
  rolledBackFrom: z.string().nullable(),
  haltedByNodeId: z.string().nullable(),
  haltReason: z.string().nullable(),
  progress: z.object({
    totalNodes: z.number().int(),
    onTarget: z.number().int(),
    updating: z.number().int(),
  }),
});

export const statusGroupSchema = z.object({
  name: z.string(),
  paused: z.boolean(),
  policy: z.object({
    maxUnavailable: maxUnavailableSchema,
    effectiveMaxUnavailable: z.number().int(),
    leaseTtlMs: z.number().int(),
    heartbeatMissLimitMs: z.number().int(),
  }),
  rollout: statusRolloutSchema.nullable(),
  nodes: z.array(statusNodeSchema),
  leases: z.array(statusLeaseSchema),
});

export const statusResponseSchema = z.object({
  serverTimeMs: z.number().int(),
  groups: z.array(statusGroupSchema),
  events: z.array(eventSchema),
});
export type StatusResponse = z.infer<typeof statusResponseSchema>;

// ---- GET /v1/figures (deployment figures, computed from the event log)

export const figuresResponseSchema = z.object({
  serverTimeMs: z.number().int(),
  /** Time of the oldest event the figures are computed from; null before any event. */
  sinceMs: z.number().int().nullable(),
  rollouts: z.object({
    succeeded: z.number().int().nonnegative(),
    failed: z.number().int().nonnegative(),
    aborted: z.number().int().nonnegative(),
    superseded: z.number().int().nonnegative(),
    open: z.number().int().nonnegative(),
    /** succeeded / (succeeded + failed + aborted); null while none of them has ended. */
    successRate: z.number().min(0).max(1).nullable(),
    /** Opened (or reopened) to completed, over the most recent completions. */
    medianDurationMs: z.number().int().nonnegative().nullable(),
  }),
  /** From a node's grant to its `failed` release, over the most recent rollbacks. */
  rollback: z.object({
    count: z.number().int().nonnegative(),
    lastMs: z.number().int().nonnegative().nullable(),
    medianMs: z.number().int().nonnegative().nullable(),
    maxMs: z.number().int().nonnegative().nullable(),
  }),
  /**
   * Time to roll the fleet back: from a rollout back to an earlier good digest opening (by
   * `baton rollback`, or the first lease request after the tag was pointed back at it) to every
   * node running it, over the most recent fleet rollbacks.
   */
  fleetRollback: z.object({
    count: z.number().int().nonnegative(),
    lastMs: z.number().int().nonnegative().nullable(),
    medianMs: z.number().int().nonnegative().nullable(),
    maxMs: z.number().int().nonnegative().nullable(),
  }),
  updates: z.object({
    lastHour: z.number().int().nonnegative(),
    last24h: z.number().int().nonnegative(),
    /** Nodes updated per hour while a rollout was open, over the most recent rollouts. */
    perHourWhileRolling: z.number().nonnegative().nullable(),
  }),
});
export type FiguresResponse = z.infer<typeof figuresResponseSchema>;

// ---- GET /v1/events/stream (server-sent events)

/** `event: snapshot`: the whole status and figures, sent on connect, after events (debounced) and periodically. */
export const streamSnapshotSchema = z.object({ status: statusResponseSchema, figures: figuresResponseSchema });
export type StreamSnapshot = z.infer<typeof streamSnapshotSchema>;
/** `event: events`: events just committed, oldest first; the SSE id is the last one's seq. */
export const streamEventsSchema = z.object({ events: z.array(eventSchema) });

// ---- Errors (4xx/5xx bodies)

export const errorCodeSchema = z.enum([
  'bad-request',
  'unauthorized',
  'forbidden',
  'not-found',
  'stale-token',
  'conflict',
  'lease-ended',
  'payload-too-large',
  'unsupported-media-type',
  'internal',
]);
export const errorResponseSchema = z.object({
  error: errorCodeSchema,
  message: z.string(),
  /** Dotted path of the offending field for validation errors. */
  field: z.string().optional(),
});
export type ErrorResponse = z.infer<typeof errorResponseSchema>;

export const apiPaths = {
  heartbeat: (nodeId: string) => `/v1/nodes/${encodeURIComponent(nodeId)}/heartbeat`,
  node: (nodeId: string) => `/v1/nodes/${encodeURIComponent(nodeId)}`,
  drain: (nodeId: string) => `/v1/nodes/${encodeURIComponent(nodeId)}/drain`,
  undrain: (nodeId: string) => `/v1/nodes/${encodeURIComponent(nodeId)}/undrain`,
  leases: '/v1/leases',
  renew: (leaseId: string) => `/v1/leases/${encodeURIComponent(leaseId)}/renew`,
  release: (leaseId: string) => `/v1/leases/${encodeURIComponent(leaseId)}/release`,
  status: '/v1/status',
  groupAction: (group: string, action: GroupActionName) =>
    `/v1/groups/${encodeURIComponent(group)}/${action}`,
  registryEvents: '/v1/registry/events',
  figures: '/v1/figures',
  eventStream: '/v1/events/stream',
  metrics: '/metrics',
  statusPage: '/',
  healthz: '/healthz',
} as const;
