import { describe, expect, it } from 'vitest';
import { ManualClock } from './testing/clock.js';

describe('ManualClock', () => {
  it('wakes sleepers in time order and only when time passes them', async () => {
    const clock = new ManualClock(0);
    const woke: string[] = [];
    void clock.sleep(200).then(() => woke.push(`b@${clock.nowMs()}`));
    void clock.sleep(100).then(() => woke.push(`a@${clock.nowMs()}`));
    await clock.advance(99);
    expect(woke).toEqual([]);
    await clock.advance(150);
    expect(woke).toEqual(['a@100', 'b@200']);
    expect(clock.nowMs()).toBe(249);
  });

  it('rejects a sleep whose signal is aborted', async () => {
    const clock = new ManualClock(0);
    const controller = new AbortController();
    const sleeping = clock.sleep(1_000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
    expect(clock.pendingSleepers()).toBe(0);
  });
});
