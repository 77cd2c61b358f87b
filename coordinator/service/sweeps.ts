import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import { runEvery } from '../../shared/ticker.js';

/** Work the coordinator does on a timer rather than on a request. */
export interface Sweep {
  name: string;
  intervalMs: number;
  run(): Promise<void>;
}

export interface RunningSweeps {
  /** Stops every sweep and waits for runs in progress to end. */
  stop(): Promise<void>;
}

/** Runs each sweep on `clock` time until stopped; a run that fails is logged and the next one comes as usual. */
export function startSweeps(clock: Clock, logger: Logger, sweeps: readonly Sweep[]): RunningSweeps {
  const controller = new AbortController();
  const loops = sweeps.map((sweep) =>
    runEvery(clock, sweep.intervalMs, controller.signal, async () => {
      try {
        await sweep.run();
      } catch (error) {
        logger.error({ err: error, sweep: sweep.name }, 'sweep failed');
      }
    }),
  );
  return {
    stop: async () => {
      controller.abort();
      await Promise.all(loops);
    },
  };
}
