import { randomBytes } from 'node:crypto';

/** Randomness enters Baton only through this interface, so jitter is exact in tests. */
export interface RandomSource {
  /** A number in [0, 1). */
  next(): number;
}

export const systemRandom: RandomSource = {
  next: () => randomBytes(6).readUIntBE(0, 6) / 2 ** 48,
};

/** Deterministic source (mulberry32) for tests and simulations. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return {
    next: () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}
