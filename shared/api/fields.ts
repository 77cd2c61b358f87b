import { z } from 'zod';
import { digestSchema } from '../image-ref.js';

/** The fields the API's messages are made of: ids, digests, and the words both sides share. */

/**
 * Characters no string from outside may carry: C0 controls (tab and newlines too), DEL, C1
 * controls, the line and paragraph separators, and the bidi embeddings, overrides and isolates
 * (U+202A-U+202E, U+2066-U+2069) that reorder what a terminal or a page shows. Stored strings end
 * up in logs, terminals and HTML; spaces and every other printable character are fine.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const controlCharacters = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const controlCharacterRun = new RegExp(`${controlCharacters.source}+`, 'g');

export const noControlCharactersMessage = 'must not contain control characters (C0, C1, line separators or bidi overrides)';

/** Whether `text` is free of every character `controlCharacters` matches. */
export function isPrintable(text: string): boolean {
  return !controlCharacters.test(text);
}

/**
 * A string from outside that is stored or shown: `min` to `max` characters (UTF-16 units), no
 * control characters. A refusal names the field (the route's validation adds its path).
 */
export function printableText(max: number, min = 0) {
  return z.string().min(min).max(max).refine(isPrintable, noControlCharactersMessage);
}

/** Text made fit for `printableText`: each run of control characters becomes one space, trimmed, at most `max` characters. */
export function toPrintableLine(text: string, max: number): string {
  const line = text.replace(controlCharacterRun, ' ').replace(/ {2,}/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** The longest node id: a fully qualified domain name. */
export const nodeIdMaxLength = 253;
export const groupNameMaxLength = 128;
export const leaseIdMaxLength = 64;

export const nodeIdSchema = printableText(nodeIdMaxLength, 1);
export const groupNameSchema = printableText(groupNameMaxLength, 1);
export { digestSchema };
export const imageReferenceSchema = printableText(512, 1);
export const leaseIdSchema = printableText(leaseIdMaxLength, 1);
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

const finalRefusals: ReadonlySet<RefusalReason> = new Set(['halted', 'aborted', 'superseded', 'rolled-back']);

/** Refusals waiting does not change: this digest is not granted again in the group's current rollout. */
export function isFinalRefusal(reason: RefusalReason): boolean {
  return finalRefusals.has(reason);
}

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
