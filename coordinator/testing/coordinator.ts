import { coordinatorConfigSchema } from '../../shared/config/coordinator.js';
import { silentLogger } from '../../shared/logger.js';
import { ManualClock } from '../../shared/testing/clock.js';
import { fixedRandom } from '../../shared/testing/random.js';
import { buildCoordinator, type Coordinator, type CoordinatorTuning } from '../build.js';
import type { Store } from '../store/store.js';

/**
 * A whole coordinator on the SQLite file `dataFile` (or the store given), on a manual clock (at
 * 1 000 ms unless given), silent, with fixed randomness; it serves nothing (use `app.inject()`
 * or `listen()`).
 */
export function buildTestCoordinator(
  dataFile: string,
  options: { clock?: ManualClock; newId?: () => string; store?: Store; config?: Record<string, unknown>; tuning?: CoordinatorTuning } = {},
): Promise<Coordinator> {
  const config = coordinatorConfigSchema.parse({ listen: '127.0.0.1:0', dataFile, ...options.config });
  let ids = 0;
  return buildCoordinator(
    config,
    {
      clock: options.clock ?? new ManualClock(1_000),
      random: fixedRandom(0.5),
      logger: silentLogger(),
      newId: options.newId ?? (() => `id-${(ids += 1)}`),
      ...(options.store ? { store: options.store } : {}),
    },
    options.tuning,
  );
}
