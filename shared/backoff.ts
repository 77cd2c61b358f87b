import type { RandomSource } from './random.js';

export interface BackoffPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
}

export const defaultBackoff: BackoffPolicy = { initialDelayMs: 1_000, maxDelayMs: 60_000, multiplier: 2 };

/**
 * Delay before retry number `attempt` (0-based): exponential growth capped at maxDelayMs,
 * with "equal jitter" (half fixed, half random) so retries from many nodes spread out
 * but never collapse to zero.
 */
export function backoffDelayMs(attempt: number, random: RandomSource, policy: BackoffPolicy = defaultBackoff): number {
  const ceilingMs = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** Math.max(0, attempt));
  const half = ceilingMs / 2;
  return Math.round(half + random.next() * half);
}

/** Adds up to `splayMs` of random delay to a base delay: the jitter used for schedules and hints like retryAfterMs. */
export function withJitterMs(baseMs: number, splayMs: number, random: RandomSource): number {
  return Math.round(baseMs + random.next() * Math.max(0, splayMs));
}
