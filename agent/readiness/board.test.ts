/** The board: single flight, the cache on an injected clock, and the flags against the live probe. */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../shared/logger.js';
import { createReadinessBoard } from './board.js';
import type { ProbeResult } from './probe.js';
import type { ProbeVerdict } from './truth.js';
import { ManualClock } from '../../shared/testing/clock.js';

/** A probe the test answers by hand: each call waits until `answer` is called. */
class ManualProbe {
  calls = 0;
  verdict: ProbeVerdict = { pass: true };
  private waiting: Array<() => void> = [];

  readonly probe = (): Promise<ProbeResult> => {
    this.calls += 1;
    return new Promise<ProbeResult>((resolve) => {
      this.waiting.push(() => resolve({ verdict: this.verdict, container: undefined }));
    });
  };

  answer(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

function setup(cacheMs = 250) {
  const clock = new ManualClock();
  const probe = new ManualProbe();
  const board = createReadinessBoard({ services: ['web'], probe: probe.probe, clock, cacheMs, logger: silentLogger() });
  return { clock, probe, board };
}

describe('readiness board', () => {
  it('single flight: concurrent checks share one probe', async () => {
    const { probe, board } = setup();
    const answers = Promise.all(Array.from({ length: 50 }, () => board.check('web')));
    await tick();
    expect(probe.calls).toBe(1);
    probe.answer();
    const all = await answers;
    expect(new Set(all.map((a) => JSON.stringify(a)))).toEqual(new Set([JSON.stringify({ ready: true, reason: undefined })]));
    expect(probe.calls).toBe(1);
  });

  it('answers from the cache for probeCacheMs after the probe started, then probes again', async () => {
    const { clock, probe, board } = setup(250);
    const first = board.check('web');
    await tick();
    probe.answer();
    await first;
    await clock.advance(250);
    await board.check('web'); // 250 ms old: still good
    expect(probe.calls).toBe(1);

    probe.verdict = { pass: false, reason: 'check-failed' };
    await clock.advance(1);
    const second = board.check('web');
    await tick();
    expect(probe.calls).toBe(2);
    probe.answer();
    expect(await second).toEqual({ ready: false, reason: 'check-failed' });
    expect(board.status('web')).toEqual({ ready: false, reason: 'check-failed' });
  });

  it('with probeCacheMs 0, probes for every request that finds no probe in flight', async () => {
    const { clock, probe, board } = setup(0);
    for (let i = 0; i < 3; i += 1) {
      const answer = board.check('web');
      await tick();
      probe.answer();
      await answer;
      await clock.advance(1);
    }
    expect(probe.calls).toBe(3);
  });

  it('draining answers 503 without a probe; a drain that starts during a probe wins over its pass', async () => {
    const { probe, board } = setup();
    board.setDraining('web', true);
    expect(await board.check('web')).toEqual({ ready: false, reason: 'draining' });
    expect(probe.calls).toBe(0);

    board.setDraining('web', false);
    const during = board.check('web');
    await tick();
    board.setDraining('web', true);
    probe.answer();
    expect(await during).toEqual({ ready: false, reason: 'draining' });
  });

  it('drained (an operator drain) answers 503 drained without a probe, over the update flow; undrained, the live probe answers again', async () => {
    const { probe, board } = setup();
    board.setDrained('web', true);
    expect(await board.check('web')).toEqual({ ready: false, reason: 'drained' });
    board.setDraining('web', true);
    board.setDraining('web', false);
    board.setHealthy('web', true);
    expect(await board.check('web')).toEqual({ ready: false, reason: 'drained' });
    expect(probe.calls).toBe(0);

    board.setDrained('web', false);
    probe.verdict = { pass: false, reason: 'check-failed' };
    const live = board.check('web');
    await tick();
    probe.answer();
    expect(await live).toEqual({ ready: false, reason: 'check-failed' });
  });

  it('a hold (setHealthy false) answers starting while the probe passes; setHealthy true lifts it', async () => {
    const { probe, board } = setup();
    board.setHealthy('web', false);
    const held = board.check('web');
    await tick();
    probe.answer();
    expect(await held).toEqual({ ready: false, reason: 'starting' });
    board.setHealthy('web', true);
    expect(await board.check('web')).toEqual({ ready: true, reason: undefined });
  });

  it('a probe that rejects counts as a failed check; an unknown service throws', async () => {
    const clock = new ManualClock();
    const board = createReadinessBoard({
      services: ['web'],
      probe: () => Promise.reject(new Error('boom')),
      clock,
      cacheMs: 250,
      logger: silentLogger(),
    });
    expect(await board.check('web')).toEqual({ ready: false, reason: 'check-failed' });
    await expect(board.check('other')).rejects.toThrow(/unknown service/);
    expect(board.has('other')).toBe(false);
    expect(board.status('other')).toBeUndefined();
  });
});
