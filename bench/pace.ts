/**
 * Starts `task(0)`, `task(1)`, ... at a steady pace, the n-th `n * spacingMs` after the start
 * (catching up when the event loop was busy), while `isRunning()`; resolves once every task
 * started has ended.
 */
export async function runPaced(spacingMs: number, isRunning: () => boolean, task: (index: number) => Promise<void>): Promise<void> {
  const startedAt = performance.now();
  let started = 0;
  const inFlight = new Set<Promise<void>>();
  while (isRunning()) {
    const due = Math.floor((performance.now() - startedAt) / spacingMs);
    while (started < due && isRunning()) {
      const running: Promise<void> = task(started).finally(() => inFlight.delete(running));
      inFlight.add(running);
      started += 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all(inFlight);
}
