import type { Clock } from './clock.js';

/**
 * Runs `tick` every `intervalMs` of `clock` time, each run starting `intervalMs` after the
 * previous one ended (never two at once), until `signal` aborts. Resolves once it has
 * stopped; a tick that throws stops the loop with its error, so `tick` catches what it can
 * live with.
 */
export async function runEvery(clock: Clock, intervalMs: number, signal: AbortSignal, tick: () => Promise<void>): Promise<void> {
  while (!signal.aborted) {
    try {
      await clock.sleep(intervalMs, signal);
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
    await tick();
  }
}
