import { describe, expect, it } from 'vitest';
import { ManualClock } from './testing/clock.js';
import { runEvery } from './ticker.js';

describe('runEvery', () => {
  it('ticks as the clock passes each interval and stops when aborted', async () => {
    const clock = new ManualClock(0);
    const controller = new AbortController();
    const ticks: number[] = [];
    const loop = runEvery(clock, 100, controller.signal, async () => {
      ticks.push(clock.nowMs());
    });
    await clock.advance(99);
    expect(ticks).toEqual([]);
    await clock.advance(1);
    await clock.advance(100);
    expect(ticks).toEqual([100, 200]);
    controller.abort();
    await loop;
    await clock.advance(1_000);
    expect(ticks).toEqual([100, 200]);
    expect(clock.pendingSleepers()).toBe(0);
  });

  it('waits the whole interval after a slow tick ends, so ticks never overlap', async () => {
    const clock = new ManualClock(0);
    const controller = new AbortController();
    const ticks: number[] = [];
    const loop = runEvery(clock, 100, controller.signal, async () => {
      ticks.push(clock.nowMs());
      await clock.sleep(50);
    });
    await clock.advance(100);
    await clock.advance(50);
    await clock.advance(99);
    expect(ticks).toEqual([100]);
    await clock.advance(1);
    expect(ticks).toEqual([100, 250]);
    controller.abort();
    await clock.advance(50);
    await loop;
  });
});
