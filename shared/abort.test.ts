import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { linkAbort } from './abort.js';

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

describe('linkAbort', () => {
  it('aborts with the reason of the first source that aborts, and detaches from all of them', () => {
    const shutdown = new AbortController();
    const poll = new AbortController();
    const link = linkAbort(shutdown.signal, undefined, poll.signal);
    expect(link.signal.aborted).toBe(false);
    expect([listeners(shutdown.signal), listeners(poll.signal)]).toEqual([1, 1]);
    poll.abort('poll ended');
    expect(link.signal.aborted).toBe(true);
    expect(link.signal.reason).toBe('poll ended');
    expect([listeners(shutdown.signal), listeners(poll.signal)]).toEqual([0, 0]);
    shutdown.abort('shutdown');
    expect(link.signal.reason).toBe('poll ended');
  });

  it('starts aborted when a source already is, without listening to any', () => {
    const live = new AbortController();
    const link = linkAbort(live.signal, AbortSignal.abort('gone'));
    expect(link.signal.aborted).toBe(true);
    expect(link.signal.reason).toBe('gone');
    expect(listeners(live.signal)).toBe(0);
  });

  it('dispose() leaves a long-lived source with no listeners, however many links it had', () => {
    const shutdown = new AbortController();
    for (let beat = 0; beat < 1_000; beat++) linkAbort(shutdown.signal).dispose();
    expect(listeners(shutdown.signal)).toBe(0);
  });

  it('a disposed link no longer follows its sources', () => {
    const shutdown = new AbortController();
    const link = linkAbort(shutdown.signal);
    link.dispose();
    shutdown.abort();
    expect(link.signal.aborted).toBe(false);
  });

  it('abort() ends the link alone: the sources stay as they are and are let go', () => {
    const shutdown = new AbortController();
    const link = linkAbort(shutdown.signal);
    link.abort(new Error('timeout'));
    expect(link.signal.aborted).toBe(true);
    expect((link.signal.reason as Error).message).toBe('timeout');
    expect(shutdown.signal.aborted).toBe(false);
    expect(listeners(shutdown.signal)).toBe(0);
  });

  it('with no sources it is a plain controller', () => {
    const link = linkAbort();
    expect(link.signal.aborted).toBe(false);
    link.abort();
    expect(link.signal.aborted).toBe(true);
  });
});
