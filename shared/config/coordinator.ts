import { z } from 'zod';
import { groupNameSchema, maxUnavailableSchema } from '../api/v1.js';
import { hostPortSchema } from '../host-port.js';
import { parseEnvBoolean, parseEnvList, parseEnvNumber, type EnvironmentOverride } from './load.js';

const tokenSchema = z.string().min(16, 'tokens must be at least 16 characters long');

export const groupPolicySchema = z.strictObject({
  maxUnavailable: maxUnavailableSchema.optional(),
  leaseTtlMs: z.number().int().min(1_000).max(3_600_000).optional(),
  heartbeatMissLimitMs: z.number().int().min(1_000).max(3_600_000).optional(),
});

/** What a webhook can be told about; each maps to one event of the log (see coordinator/notifications). */
export const notificationKindSchema = z.enum([
  'rollout-started',
  'node-updated',
  'node-rolled-back',
  'rollout-halted',
  'rollout-completed',
]);
export type NotificationKind = z.infer<typeof notificationKindSchema>;

export const webhookSchema = z.strictObject({
  url: z
    .string()
    .url()
    .refine((text) => /^https?:\/\//i.test(text), 'must be an http:// or https:// URL'),
  /** Only these kinds; every kind when left out. */
  events: z.array(notificationKindSchema).min(1).optional(),
  /** Per attempt, until the response headers arrive. */
  timeoutMs: z.number().int().min(100).max(120_000).default(5_000),
  /** Attempts per notification, the first included; then it is dropped with a warning. */
  maxAttempts: z.number().int().min(1).max(20).default(5),
  /** Exponential backoff with jitter between attempts (shared/backoff.ts). */
  backoff: z
    .strictObject({
      initialDelayMs: z.number().int().min(1).max(600_000).default(1_000),
      maxDelayMs: z.number().int().min(1).max(3_600_000).default(60_000),
    })
    .default({ initialDelayMs: 1_000, maxDelayMs: 60_000 }),
  /** When set, every body is signed: `x-baton-signature: sha256=<HMAC-SHA256 of the body, hex>`. */
  secret: z.string().min(16, 'a webhook secret must be at least 16 characters long').optional(),
  /** Extra request headers, e.g. an Authorization header the receiver expects. */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/), z.string()).default({}),
});
export type WebhookConfig = z.output<typeof webhookSchema>;

export const coordinatorConfigSchema = z.strictObject({
  listen: hostPortSchema('127.0.0.1:7070').default('127.0.0.1:7070'),
  dataFile: z.string().min(1).default('./baton.db'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How often agents are told to heartbeat. */
  heartbeatIntervalMs: z.number().int().min(500).max(600_000).default(5_000),
  /** A node whose last heartbeat is older than this is silent, and blocks grants in its group. */
  heartbeatMissLimitMs: z.number().int().min(1_000).max(3_600_000).default(15_000),
  leaseTtlMs: z.number().int().min(1_000).max(3_600_000).default(30_000),
  maxUnavailable: maxUnavailableSchema.default(1),
  groups: z.record(groupNameSchema, groupPolicySchema).default({}),
  /** Largest request body accepted, in bytes; larger ones get 413. */
  bodyLimitBytes: z.number().int().min(1_024).max(16 * 1_024 * 1_024).default(256 * 1_024),
  auth: z
    .strictObject({
      /** Tokens agents may present; any one of them is accepted. */
      agentTokens: z.array(tokenSchema).default([]),
      /** One shared token every agent may present (simpler than a list for small fleets). */
      joinToken: tokenSchema.optional(),
      /** Needed for pause, resume, abort and forget. Also accepted wherever an agent token is. */
      adminToken: tokenSchema.optional(),
      /** Serve GET /v1/status and the status page without a token. */
      publicStatus: z.boolean().default(false),
    })
    .default({ agentTokens: [], publicStatus: false }),
  /** JSON POSTs on rollout milestones, queued and retried off the request path. */
  notifications: z
    .strictObject({
      webhooks: z.array(webhookSchema).max(20).default([]),
      /** Notifications waiting per webhook; the oldest is dropped (with a warning) beyond this. */
      queueLimit: z.number().int().min(1).max(100_000).default(1_000),
    })
    .default({ webhooks: [], queueLimit: 1_000 }),
});

export type CoordinatorConfig = z.output<typeof coordinatorConfigSchema>;
export type GroupPolicyOverrides = z.output<typeof groupPolicySchema>;

export const coordinatorEnvironmentOverrides: EnvironmentOverride[] = [
  { variable: 'BATON_LISTEN', path: ['listen'] },
  { variable: 'BATON_DATA', path: ['dataFile'] },
  { variable: 'BATON_LOG_LEVEL', path: ['logLevel'] },
  { variable: 'BATON_HEARTBEAT_INTERVAL_MS', path: ['heartbeatIntervalMs'], parse: parseEnvNumber },
  { variable: 'BATON_HEARTBEAT_MISS_LIMIT_MS', path: ['heartbeatMissLimitMs'], parse: parseEnvNumber },
  { variable: 'BATON_LEASE_TTL_MS', path: ['leaseTtlMs'], parse: parseEnvNumber },
  {
    variable: 'BATON_MAX_UNAVAILABLE',
    path: ['maxUnavailable'],
    parse: (text) => (text.trim().endsWith('%') ? text.trim() : parseEnvNumber(text)),
  },
  { variable: 'BATON_AGENT_TOKENS', path: ['auth', 'agentTokens'], parse: parseEnvList },
  { variable: 'BATON_JOIN_TOKEN', path: ['auth', 'joinToken'] },
  { variable: 'BATON_ADMIN_TOKEN', path: ['auth', 'adminToken'] },
  { variable: 'BATON_PUBLIC_STATUS', path: ['auth', 'publicStatus'], parse: parseEnvBoolean },
  {
    variable: 'BATON_WEBHOOK_URLS',
    path: ['notifications', 'webhooks'],
    parse: (text) => parseEnvList(text).map((url) => ({ url })),
  },
];
