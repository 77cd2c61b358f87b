import { describe, expect, it } from 'vitest';
import { ManualClock } from './testing/clock.js';
import { runEvery } from './ticker.js';

/** runEvery at 100 ms on a manual clock from 0, noting the time of each tick; `work` runs inside each. */
function ticking(work: (clock: ManualClock) => Promise<void> = async () => undefined) {
  const clock = new ManualClock(0);
  const controller = new AbortController();
  const ticks: number[] = [];
  const loop = runEvery(clock, 100, controller.signal, async () => {
    ticks.push(clock.nowMs());
    await work(clock);
  });
  return { clock, ticks, loop, stop: () => controller.abort() };
}

describe('runEvery', () => {
  it('ticks as the clock passes each interval and stops when aborted', async () => {
    const { clock, ticks, loop, stop } = ticking();
    await clock.advance(99);
    expect(ticks).toEqual([]);
    await clock.advance(1);
    await clock.advance(100);
    expect(ticks).toEqual([100, 200]);
    stop();
    await loop;
    await clock.advance(1_000);
    expect(ticks).toEqual([100, 200]);
    expect(clock.pendingSleepers()).toBe(0);
  });

  it('waits the whole interval after a slow tick ends, so ticks never overlap', async () => {
    const { clock, ticks, loop, stop } = ticking((time) => time.sleep(50));
    await clock.advance(100);
    await clock.advance(50);
    await clock.advance(99);
    expect(ticks).toEqual([100]);
    await clock.advance(1);
    expect(ticks).toEqual([100, 250]);
    stop();
    await clock.advance(50);
    await loop;
  });
});
