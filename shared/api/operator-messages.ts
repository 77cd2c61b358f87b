import { z } from 'zod';
import {
  digestSchema,
  drainInfoSchema,
  groupNameSchema,
  nodeHealthSchema,
  nodeIdSchema,
  printableText,
  rolloutCauseSchema,
  rolloutSeqSchema,
  rolloutStateSchema,
  updateStepSchema,
} from './fields.js';

/** What operators (the CLI, the status page) send the coordinator and read from it. */

// ---- POST /v1/groups/{group}/pause|resume|abort|rollback|retry

/**
 * Operator actions on a group. `rollback` opens a rollout back to the previous completed digest;
 * `retry` opens a new rollout of the digest a halted, aborted or rolled-back rollout targeted.
 */
export const groupActions = ['pause', 'resume', 'abort', 'rollback', 'retry'] as const;
export type GroupActionName = (typeof groupActions)[number];

export const groupActionRequestSchema = z.strictObject({ reason: printableText(2_000).optional() });
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
  reason: printableText(drainReasonMaxLength, 1).optional(),
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

// ---- DELETE /v1/nodes/{nodeId}[?group=]

export const forgetQuerySchema = z.strictObject({ group: groupNameSchema.optional() });
/** The groups the node was forgotten in. */
export const forgetResponseSchema = z.object({ nodeId: z.string(), groups: z.array(z.string()) });
export type ForgetResponse = z.infer<typeof forgetResponseSchema>;

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

// ---- GET /v1/events?afterSeq=&limit=&group=

/** Without afterSeq: the newest `limit` events; with it: the `limit` events after it. Oldest first either way. */
export const eventsQuerySchema = z.strictObject({
  afterSeq: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
  group: groupNameSchema.optional(),
});
export const eventsResponseSchema = z.object({ events: z.array(eventSchema) });

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

/** Where the stream starts (a `Last-Event-ID` header wins): the events after this seq; one that is not a seq is ignored. */
export const streamQuerySchema = z.object({ afterSeq: z.coerce.number().int().nonnegative().optional().catch(undefined) });

/** `event: snapshot`: the whole status and figures, sent on connect, after events (debounced) and periodically. */
export const streamSnapshotSchema = z.object({ status: statusResponseSchema, figures: figuresResponseSchema });
export type StreamSnapshot = z.infer<typeof streamSnapshotSchema>;
/** `event: events`: events just committed, oldest first (as GET /v1/events answers them); the SSE id is the last one's seq. */
export const streamEventsSchema = eventsResponseSchema;
