import { z } from 'zod';
import {
  digestSchema,
  drainInfoSchema,
  fencingTokenSchema,
  groupNameSchema,
  healthReasonSchema,
  imageReferenceSchema,
  leaseIdSchema,
  nodeHealthSchema,
  nodeIdSchema,
  printableText,
  refusalReasonSchema,
  releaseOutcomeSchema,
  rolloutSeqSchema,
  rolloutStateSchema,
  updateStepSchema,
} from './fields.js';

/** What agents (and the registry's notifications) send the coordinator, and its answers. */

// ---- POST /v1/nodes/{nodeId}/heartbeat

/** The longest `configProblem` a heartbeat may carry. */
export const configProblemMaxLength = 1_000;

export const heartbeatRequestSchema = z.strictObject({
  group: groupNameSchema,
  host: printableText(253, 1),
  image: imageReferenceSchema,
  currentDigest: digestSchema.nullable(),
  health: nodeHealthSchema,
  step: updateStepSchema.default('idle'),
  agentVersion: printableText(64, 1),
  /**
   * Set while the agent runs on its last known good config because its config file is invalid: one
   * line naming the bad fields. Left out otherwise (so older coordinators, which refuse unknown
   * fields, still take the heartbeats of agents whose config is fine).
   */
  configProblem: printableText(configProblemMaxLength, 1).nullable().optional(),
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

export const releaseMessageMaxLength = 2_000;

export const releaseRequestSchema = z.strictObject({
  fencingToken: fencingTokenSchema,
  outcome: releaseOutcomeSchema,
  /** Why, in one line (the agent makes it one with toPrintableLine). */
  message: printableText(releaseMessageMaxLength).optional(),
});
export type ReleaseRequest = z.infer<typeof releaseRequestSchema>;

export const releaseResponseSchema = z.object({
  leaseId: leaseIdSchema,
  outcome: releaseOutcomeSchema,
  rolloutState: rolloutStateSchema,
});
export type ReleaseResponse = z.infer<typeof releaseResponseSchema>;

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
