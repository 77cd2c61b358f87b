import { describe, expect, it } from 'vitest';
import { ServiceState } from './state.js';

function stateWithCounts() {
  const counts = { changed: 0, pollWanted: 0 };
  const state = new ServiceState({ changed: () => (counts.changed += 1), pollWanted: () => (counts.pollWanted += 1) });
  return { state, counts };
}

describe('ServiceState.exclusive', () => {
  it('runs one body at a time; a second caller gets false and its whenBusy runs before any await', async () => {
    const { state } = stateWithCounts();
    let release: () => void = () => undefined;
    const first = state.exclusive(() => new Promise<void>((resolve) => (release = resolve)));
    let whenBusyRan = false;
    const second = state.exclusive(
      () => Promise.reject(new Error('must not run')),
      () => (whenBusyRan = true),
    );
    expect(whenBusyRan).toBe(true); // synchronously, in the call itself
    expect(await second).toBe(false);
    release();
    expect(await first).toBe(true);
    expect(state.isBusy).toBe(false);
  });

  it('runs a deferred poll once the container is free, but not while stopping', async () => {
    const { state, counts } = stateWithCounts();
    await state.exclusive(async () => state.deferPoll());
    expect(counts.pollWanted).toBe(1);
    await state.exclusive(async () => undefined);
    expect(counts.pollWanted).toBe(1); // once per deferral
    state.stopping = true;
    await state.exclusive(async () => state.deferPoll());
    expect(counts.pollWanted).toBe(1);
  });
});

describe('ServiceState.followRollout', () => {
  it('forgets a settled digest on a newer rollout only, and reports a changed rollback pin', () => {
    const { state } = stateWithCounts();
    state.settled = { digest: 'sha256:b', why: 'lease refused: halted', atMs: 0 };
    expect(state.followRollout(0, null, null)).toEqual({ forgotten: undefined, pinChanged: false });
    expect(state.settled).toBeDefined();
    expect(state.followRollout(2, 'sha256:b', 'sha256:a')).toEqual({ forgotten: { digest: 'sha256:b', why: 'lease refused: halted', atMs: 0 }, pinChanged: true });
    expect(state.digestToRun('sha256:b')).toBe('sha256:a');
    expect(state.followRollout(1, 'sha256:b', 'sha256:a')).toEqual({ forgotten: undefined, pinChanged: false }); // seq only grows
    expect(state.knownRolloutSeq).toBe(2);
  });

  it('beats on a step change only', () => {
    const { state, counts } = stateWithCounts();
    state.setStep('pull');
    state.setStep('pull');
    expect(counts.changed).toBe(1);
  });
});
