import { describe, expect, it } from 'vitest';
import { backoffDelayMs, withJitterMs } from './backoff.js';
import { fixedRandom } from './testing/random.js';

describe('backoffDelayMs', () => {
  const policy = { initialDelayMs: 1_000, maxDelayMs: 8_000, multiplier: 2 };
  it('grows exponentially between half and all of the ceiling', () => {
    expect(backoffDelayMs(0, fixedRandom(0), policy)).toBe(500);
    expect(backoffDelayMs(0, fixedRandom(0.999999), policy)).toBe(1_000);
    expect(backoffDelayMs(2, fixedRandom(0), policy)).toBe(2_000);
  });
  it('is capped at maxDelayMs', () => {
    expect(backoffDelayMs(30, fixedRandom(0.999999), policy)).toBe(8_000);
  });
  it('adds jitter up to the splay', () => {
    expect(withJitterMs(1_000, 500, fixedRandom(0.5))).toBe(1_250);
  });
});
