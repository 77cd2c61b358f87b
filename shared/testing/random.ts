import type { RandomSource } from '../random.js';

/** Always returns the same value: handy to pin jitter at its minimum, middle or maximum. */
export function fixedRandom(value: number): RandomSource {
  if (value < 0 || value >= 1) throw new RangeError('fixedRandom value must be in [0, 1)');
  return { next: () => value };
}
