import { getTasks } from 'node-cron';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/logger.js';
import { seededRandom } from '../../shared/random.js';
import {
  PollScheduler,
  cronCadence,
  cronPeriodMs,
  fnv1a32,
  nextPollAtMs,
  staggerOffsetMs,
  type CronTickSource,
} from './schedule.js';
import { ManualClock } from '../../shared/testing/clock.js';
import { fixedRandom } from '../../shared/testing/random.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const T0 = 1_699_999_800_000; // a whole multiple of 5 minutes since the epoch

const flush = async (rounds = 5): Promise<void> => {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
};

describe('fnv1a32 / staggerOffsetMs', () => {
  it('matches the FNV-1a reference values', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('is stable and inside the period', () => {
    for (const id of ['web-1', 'web-2', 'db.example.com', 'ü-node']) {
      const offset = staggerOffsetMs(id, MINUTE);
      expect(offset).toBe(staggerOffsetMs(id, MINUTE));
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(offset).toBeLessThan(MINUTE);
    }
  });
});

describe('nextPollAtMs', () => {
  const base = { periodMs: MINUTE, random: fixedRandom(0), splayMs: 0 };

  it.each([
    ['node-', (i: number) => `node-${i}`],
    ['host.example.com', (i: number) => `host${i}.example.com`],
    ['web-001', (i: number) => `web-${String(i).padStart(3, '0')}`],
    ['10.0.0.x', (i: number) => `10.0.0.${i}`],
  ])('spreads 100 ids like %s over the period: no 6 s bucket holds more than 2x its share', (_name, id) => {
    for (const periodMs of [MINUTE, 5 * MINUTE]) {
      const buckets = new Array<number>(10).fill(0);
      for (let i = 0; i < 100; i++) {
        const at = nextPollAtMs({ ...base, periodMs, nowMs: T0, nodeId: id(i) });
        const inPeriod = (at - T0) % periodMs;
        const bucket = Math.floor(inPeriod / (periodMs / 10));
        buckets[bucket] = (buckets[bucket] ?? 0) + 1;
      }
      expect(Math.max(...buckets)).toBeLessThanOrEqual(20);
      expect(buckets.filter((b) => b === 0)).toHaveLength(0);
    }
  });

  it('is stable for one id: same offset in every period', () => {
    const first = nextPollAtMs({ ...base, nowMs: T0, nodeId: 'web-7' });
    const offset = staggerOffsetMs('web-7', MINUTE);
    expect(first).toBe(T0 + offset);
    expect(nextPollAtMs({ ...base, nowMs: first, nodeId: 'web-7' })).toBe(first + MINUTE);
    expect(nextPollAtMs({ ...base, nowMs: first - 1, nodeId: 'web-7' })).toBe(first);
    expect(nextPollAtMs({ ...base, nowMs: T0 + 10 * MINUTE + offset - 1, nodeId: 'web-7' })).toBe(
      T0 + 10 * MINUTE + offset,
    );
  });

  it('keeps jitter in [0, splayMs)', () => {
    const random = seededRandom(42);
    const offset = staggerOffsetMs('web-3', MINUTE);
    for (let i = 0; i < 1_000; i++) {
      const nowMs = T0 + i * 7_919;
      const at = nextPollAtMs({ nowMs, periodMs: MINUTE, nodeId: 'web-3', random, splayMs: 5_000 });
      const jitter = (((at - offset) % MINUTE) + MINUTE) % MINUTE;
      expect(jitter).toBeGreaterThanOrEqual(0);
      expect(jitter).toBeLessThan(5_000);
    }
    const max = nextPollAtMs({ nowMs: T0, periodMs: MINUTE, nodeId: 'web-3', random: fixedRandom(0.999_999_999), splayMs: 5_000 });
    expect(max).toBe(T0 + offset + 4_999);
  });

  it('caps splay at one period', () => {
    const offset = staggerOffsetMs('n', MINUTE);
    const at = nextPollAtMs({ nowMs: T0, periodMs: MINUTE, nodeId: 'n', random: fixedRandom(0.5), splayMs: 10 * MINUTE });
    expect(at).toBe(T0 + offset + MINUTE / 2);
  });

  it('is never in the past nor now', () => {
    const random = seededRandom(7);
    for (let i = 0; i < 2_000; i++) {
      const nowMs = T0 + Math.floor(random.next() * 10 * MINUTE);
      const periodMs = [1_000, 15_000, MINUTE, 7 * MINUTE][i % 4] ?? MINUTE;
      const at = nextPollAtMs({ nowMs, periodMs, nodeId: `n${i}`, random, splayMs: 3_000 });
      expect(at).toBeGreaterThan(nowMs);
      expect(at - nowMs).toBeLessThanOrEqual(periodMs + 3_000);
    }
  });

  it('does not poll twice in the slot of the last poll, whatever the jitter', () => {
    const offset = staggerOffsetMs('web-9', MINUTE);
    // Polled with a large jitter; the next draw is small: the small one would still be ahead in this slot.
    const polledAt = T0 + offset + 4_000;
    const withoutLast = nextPollAtMs({ nowMs: polledAt + 10, periodMs: MINUTE, nodeId: 'web-9', random: fixedRandom(0.9), splayMs: 5_000 });
    expect(withoutLast).toBe(T0 + offset + 4_500);
    const withLast = nextPollAtMs({
      nowMs: polledAt + 10,
      periodMs: MINUTE,
      nodeId: 'web-9',
      random: fixedRandom(0.9),
      splayMs: 5_000,
      lastPollAtMs: polledAt,
    });
    expect(withLast).toBe(T0 + MINUTE + offset + 4_500);
  });

  it('rejects a bad period', () => {
    expect(() => nextPollAtMs({ ...base, nowMs: T0, nodeId: 'n', periodMs: 0 })).toThrow(RangeError);
    expect(() => nextPollAtMs({ ...base, nowMs: T0, nodeId: 'n', periodMs: 1.5 })).toThrow(RangeError);
  });
});

describe('cronPeriodMs / cronCadence', () => {
  it.each([
    ['* * * * *', MINUTE],
    ['*/5 * * * *', 5 * MINUTE],
    ['*/30 * * * *', 30 * MINUTE],
    ['0 * * * *', 60 * MINUTE],
    ['15 * * * *', 60 * MINUTE],
    ['* * * * * *', 1_000],
    ['*/15 * * * * *', 15_000],
    ['0,30 * * * * *', 30_000],
    ['0 * * * * *', MINUTE],
  ])('%s is exact with period %d ms', (expression, periodMs) => {
    expect(cronCadence(expression)).toEqual({ expression, kind: 'exact', periodMs });
    expect(cronPeriodMs(expression)).toBe(periodMs);
  });

  it.each([
    ['*/7 * * * *', 4 * MINUTE], // 0,7,...,56 then 0: the wrap is the smallest gap
    ['0,10,45 * * * *', 10 * MINUTE],
    ['*/10 0-29 * * * *', 10_000],
    ['0 */2 * * *', 2 * 60 * MINUTE],
    ['0 9-17 * * 1-5', 60 * MINUTE],
    ['0 3 * * *', 24 * 60 * MINUTE],
    ['30 4 * * 1', 24 * 60 * MINUTE],
    ['0 3 L * *', 24 * 60 * MINUTE],
  ])('%s is driven by node-cron with smallest tick interval %d ms', (expression, periodMs) => {
    expect(cronCadence(expression)).toEqual({ expression, kind: 'cron', periodMs });
  });

  it.each(['', 'bad', '* * * *', '61 * * * *', '*/0 * * * *', '* * * * * * *'])(
    'rejects %j with a ConfigError',
    (expression) => {
      expect(() => cronPeriodMs(expression)).toThrow(ConfigError);
      try {
        cronPeriodMs(expression);
      } catch (err) {
        expect((err as ConfigError).problems[0]?.path).toBe('schedule.cron');
      }
    },
  );
});

/** Fake tick source for irregular expressions. */
function fakeTicks(): CronTickSource & { tick(): void; started: string[]; stopped: number } {
  let listener: (() => void) | undefined;
  const source = {
    started: [] as string[],
    stopped: 0,
    start(expression: string, onTick: () => void) {
      source.started.push(expression);
      listener = onTick;
      return {
        stop: () => {
          source.stopped++;
          listener = undefined;
        },
      };
    },
    tick() {
      listener?.();
    },
  };
  return source;
}

describe('PollScheduler', () => {
  const nodeId = 'web-42';
  const offset = staggerOffsetMs(nodeId, MINUTE);

  function make(options: { cron?: string; splayMs?: number; random?: number; tickSource?: CronTickSource } = {}) {
    const clock = new ManualClock(T0);
    const polls: number[] = [];
    const scheduler = new PollScheduler({
      nodeId,
      cron: options.cron ?? '* * * * *',
      splayMs: options.splayMs ?? 0,
      clock,
      random: fixedRandom(options.random ?? 0),
      logger: silentLogger(),
      tickSource: options.tickSource,
    });
    return { clock, polls, scheduler };
  }

  it('polls once per period at the node offset', async () => {
    const { clock, polls, scheduler } = make();
    scheduler.start(async () => {
      polls.push(clock.nowMs());
    });
    await flush();
    expect(scheduler.nextPollDueAtMs).toBe(T0 + offset);
    await clock.advance(offset - 1);
    expect(polls).toEqual([]);
    await clock.advance(1);
    await flush();
    expect(polls).toEqual([T0 + offset]);
    await clock.advance(3 * MINUTE);
    await flush();
    expect(polls).toEqual([T0 + offset, T0 + MINUTE + offset, T0 + 2 * MINUTE + offset, T0 + 3 * MINUTE + offset]);
    await scheduler.stop();
  });

  it('adds jitter from the injected random source', async () => {
    const { clock, polls, scheduler } = make({ splayMs: 10_000, random: 0.25 });
    scheduler.start(async () => {
      polls.push(clock.nowMs());
    });
    await flush();
    await clock.advance(2 * MINUTE);
    await flush();
    expect(polls[0]).toBe(T0 + offset + 2_500);
    expect(polls[1]).toBe(T0 + MINUTE + offset + 2_500);
  });

  it('pollNow skips the wait, and the schedule skips the rest of that slot', async () => {
    const { clock, polls, scheduler } = make();
    scheduler.start(async () => {
      polls.push(clock.nowMs());
    });
    await flush();
    await clock.advance(offset + 1_000); // first scheduled poll done
    await flush();
    expect(polls).toEqual([T0 + offset]);
    await clock.advance(10_000);
    scheduler.pollNow();
    await flush();
    expect(polls).toEqual([T0 + offset, T0 + offset + 11_000]);
    expect(scheduler.nextPollDueAtMs).toBe(T0 + MINUTE + offset);
    await scheduler.stop();
  });

  it('never runs two polls at once; a hint during a poll runs one more poll after it', async () => {
    const { clock, scheduler } = make();
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    let finish: (() => void) | undefined;
    scheduler.start(async () => {
      calls++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((resolve) => {
        finish = resolve;
      });
      running--;
    });
    await flush();
    scheduler.pollNow();
    await flush();
    expect(calls).toBe(1);
    // More hints and scheduled times pass while the poll is stuck.
    scheduler.pollNow();
    scheduler.pollNow();
    await clock.advance(3 * MINUTE);
    await flush();
    expect(calls).toBe(1);
    finish?.();
    await flush();
    expect(calls).toBe(2); // the hints collapse into one follow-up poll
    finish?.();
    await flush();
    expect(calls).toBe(2);
    expect(maxRunning).toBe(1);
    const stopping = scheduler.stop();
    await stopping;
  });

  it('keeps going when a poll throws', async () => {
    const { clock, scheduler } = make();
    let calls = 0;
    scheduler.start(async () => {
      calls++;
      throw new Error('registry down');
    });
    await flush();
    await clock.advance(offset + 2 * MINUTE);
    await flush();
    expect(calls).toBe(3);
    await scheduler.stop();
  });

  it('stop() aborts the running poll, waits for it, and nothing runs afterwards', async () => {
    const { clock, scheduler } = make();
    let calls = 0;
    let aborted = false;
    scheduler.start(async (signal) => {
      calls++;
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted = signal.aborted;
    });
    await flush();
    scheduler.pollNow();
    await flush();
    await scheduler.stop();
    expect(aborted).toBe(true);
    expect(clock.pendingSleepers()).toBe(0);
    scheduler.pollNow();
    await clock.advance(10 * MINUTE);
    await flush();
    expect(calls).toBe(1);
    expect(() => scheduler.start(async () => undefined)).toThrow();
  });

  it('stop() while waiting cancels the sleep', async () => {
    const { clock, scheduler } = make();
    scheduler.start(async () => undefined);
    await flush();
    expect(clock.pendingSleepers()).toBe(1);
    await scheduler.stop();
    expect(clock.pendingSleepers()).toBe(0);
  });

  describe('irregular expressions (node-cron drives the ticks)', () => {
    const cron = '0 9-17 * * 1-5'; // hourly in office hours: smallest tick interval one hour
    const HOUR = 60 * MINUTE;
    const hourOffset = staggerOffsetMs(nodeId, HOUR);

    it('delays every tick by the node offset plus jitter, modulo the tick interval', async () => {
      const ticks = fakeTicks();
      const { clock, polls, scheduler } = make({ cron, splayMs: 5_000, random: 0.5, tickSource: ticks });
      expect(scheduler.cadence).toEqual({ expression: cron, kind: 'cron', periodMs: HOUR });
      scheduler.start(async () => {
        polls.push(clock.nowMs());
      });
      await flush();
      expect(ticks.started).toEqual([cron]);
      await clock.advance(HOUR);
      expect(polls).toEqual([]); // no tick, no poll
      ticks.tick();
      await flush();
      const delay = (hourOffset + 2_500) % HOUR;
      expect(scheduler.nextPollDueAtMs).toBe(T0 + HOUR + delay);
      await clock.advance(delay);
      await flush();
      expect(polls).toEqual([T0 + HOUR + delay]);
      await scheduler.stop();
      expect(ticks.stopped).toBe(1);
    });

    it('skips a tick that arrives while the previous one is still pending', async () => {
      const ticks = fakeTicks();
      const { clock, polls, scheduler } = make({ cron, tickSource: ticks });
      scheduler.start(async () => {
        polls.push(clock.nowMs());
      });
      await flush();
      ticks.tick();
      await flush();
      ticks.tick(); // during the stagger delay
      await clock.advance(HOUR);
      await flush();
      expect(polls).toEqual([T0 + hourOffset]);
      await scheduler.stop();
    });

    it('pollNow works without a tick and during the stagger delay', async () => {
      const ticks = fakeTicks();
      const { clock, polls, scheduler } = make({ cron, tickSource: ticks });
      scheduler.start(async () => {
        polls.push(clock.nowMs());
      });
      await flush();
      scheduler.pollNow();
      await flush();
      expect(polls).toEqual([T0]);
      ticks.tick();
      await flush();
      await clock.advance(10);
      scheduler.pollNow();
      await flush();
      expect(polls).toEqual([T0, T0 + 10]);
      await clock.advance(HOUR);
      await flush();
      expect(polls).toHaveLength(2); // the delayed tick was consumed by the hint
      await scheduler.stop();
    });
  });

  it('the default tick source is a node-cron task whose ticks drive the polls, destroyed on stop', async () => {
    const cron = '0 3 * * *'; // daily: irregular, so node-cron ticks
    const { clock, polls, scheduler } = make({ cron });
    const pollTasks = () => [...getTasks().values()].filter((task) => task.name === 'baton-poll');
    scheduler.start(async () => {
      polls.push(clock.nowMs());
    });
    await flush();
    const [task] = pollTasks();
    expect(pollTasks()).toHaveLength(1);
    expect(task?.getPattern()).toBe(cron);
    await task?.execute(); // what node-cron runs at 03:00
    await flush();
    const delayMs = staggerOffsetMs(nodeId, DAY);
    expect(scheduler.nextPollDueAtMs).toBe(T0 + delayMs);
    await clock.advance(delayMs);
    await flush();
    expect(polls).toEqual([T0 + delayMs]);
    await scheduler.stop();
    await flush();
    expect(pollTasks()).toEqual([]);
  });

  it('rejects an invalid expression at construction', () => {
    expect(() => make({ cron: 'every minute' })).toThrow(ConfigError);
  });
});
