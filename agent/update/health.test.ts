import { describe, expect, it } from 'vitest';
import { FakeHealthProbe, FakeRuntime, settle } from './testing/fakes.js';
import { waitUntilHealthy, type HealthCheckConfig } from './health.js';
import { ManualClock } from '../../shared/testing/clock.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const URL = 'http://127.0.0.1:8080/health';

function setup(options: { answers?: boolean[]; health?: Partial<HealthCheckConfig> } = {}) {
  const clock = new ManualClock(0);
  const runtime = new FakeRuntime(clock);
  runtime.addContainer({ name: 'web', service: 'web', digest: DIGEST });
  const probe =
    options.answers === undefined
      ? FakeHealthProbe.backedBy(clock, runtime, 'web')
      : FakeHealthProbe.scripted(clock, options.answers);
  const health: HealthCheckConfig = {
    http: { url: URL, expectedStatus: 200, timeoutMs: 2_000 },
    docker: false,
    intervalMs: 1_000,
    idleIntervalMs: 5_000,
    consecutivePasses: 3,
    deadlineMs: 10_000,
    minHealthyMs: 5_000,
    ...options.health,
  };
  const wait = (signal?: AbortSignal) => waitUntilHealthy({ runtime, healthProbe: probe, clock }, 'web', health, signal);
  const checkTimes = () => probe.calls.map((c) => c.atMs);
  return { clock, runtime, probe, health, wait, checkTimes };
}

describe('waitUntilHealthy', () => {
  it('needs the consecutive passes, then the minimum healthy time, checked every interval', async () => {
    const t = setup();
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result).toEqual({ healthy: true, checks: 8, elapsedMs: 7_000 });
    // passes at 0, 1 s, 2 s; then the 5 s window, checked every second
    expect(t.checkTimes()).toEqual([0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000]);
    expect(t.probe.calls.every((c) => c.url === URL)).toBe(true);
  });

  it('starts counting again after a failed check', async () => {
    const t = setup({ answers: [true, true, false, true, true, true] });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result.healthy).toBe(true);
    // passes reached at 5 s (checks 4..6), then 5 s of window
    expect(result.elapsedMs).toBe(10_000);
  });

  it('fails when the passes are not reached by the deadline', async () => {
    const t = setup({ answers: [false] });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result.healthy).toBe(false);
    expect(t.checkTimes()).toEqual([0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000, 10_000]);
    expect(result).toMatchObject({ elapsedMs: 10_000, checks: 11 });
    if (!result.healthy) expect(result.reason).toMatch(/not healthy within 10000 ms \(0 of 3 consecutive passes/);
  });

  it('counts a check made exactly at the deadline', async () => {
    const answers = [...Array<boolean>(8).fill(false), true, true, true];
    const t = setup({ answers, health: { minHealthyMs: 0 } });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result).toEqual({ healthy: true, checks: 11, elapsedMs: 10_000 });
  });

  it('fails on one failed check inside the minimum healthy window', async () => {
    const t = setup({ answers: [true, true, true, true, true, false, true] });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result.healthy).toBe(false);
    expect(result.elapsedMs).toBe(5_000);
    if (!result.healthy) expect(result.reason).toMatch(/^unhealthy 3000 ms after passing its checks/);
  });

  it('checks once more at the end of a window that is not a whole number of intervals', async () => {
    const t = setup({ health: { minHealthyMs: 2_500 } });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result.healthy).toBe(true);
    expect(t.checkTimes()).toEqual([0, 1_000, 2_000, 3_000, 4_000, 4_500]);
  });

  it('fails at once when the container stops running, long before the deadline', async () => {
    const t = setup({ health: { deadlineMs: 60_000 } });
    t.runtime.setImageBehaviour(DIGEST, { exitsAfterMs: 0 });
    await t.runtime.stop('web', 10);
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result.healthy).toBe(false);
    expect(result.elapsedMs).toBe(0);
    if (!result.healthy) expect(result.reason).toBe('container web is not running (exit code 0)');
  });

  it('fails at once when the container exits during the minimum healthy window', async () => {
    const t = setup({ health: { http: undefined, docker: true } });
    // restart it now so its exit is scheduled relative to the wait
    await t.runtime.stop('web', 10);
    await t.runtime.start('web');
    t.runtime.setImageBehaviour(DIGEST, { exitsAfterMs: 3_500 });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result.healthy).toBe(false);
    expect(result.elapsedMs).toBe(4_000);
    if (!result.healthy) expect(result.reason).toContain('container web is not running (exit code 1)');
  });

  it('uses the Docker HEALTHCHECK: starting does not pass, healthy does', async () => {
    const t = setup({ health: { http: undefined, docker: true, minHealthyMs: 0 } });
    await t.runtime.stop('web', 10);
    await t.runtime.start('web');
    t.runtime.setImageBehaviour(DIGEST, { healthyAfterMs: 2_000 });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result).toEqual({ healthy: true, checks: 5, elapsedMs: 4_000 });
    expect(t.probe.calls).toEqual([]);
  });

  it('fails at once with docker: true when the image has no HEALTHCHECK', async () => {
    const t = setup({ health: { http: undefined, docker: true } });
    t.runtime.setImageBehaviour(DIGEST, { hasHealthcheck: false });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result).toMatchObject({ healthy: false, reason: 'docker: the image has no HEALTHCHECK', elapsedMs: 0 });
  });

  it('needs both checks when both are configured', async () => {
    const t = setup({ answers: [false], health: { docker: true } });
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result.healthy).toBe(false);
    if (!result.healthy) expect(result.reason).toContain(`last failure: http: ${URL} did not answer 200`);
  });

  it('treats a probe error as a failed check, not as the end', async () => {
    const t = setup();
    let calls = 0;
    t.probe.respond = () => {
      calls += 1;
      if (calls === 1) throw new Error('ECONNREFUSED');
      return true;
    };
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result).toEqual({ healthy: true, checks: 9, elapsedMs: 8_000 });
  });

  it('fails when the container does not exist', async () => {
    const t = setup();
    await t.runtime.stop('web', 10);
    await t.runtime.remove('web');
    const result = await settle(t.clock, t.wait(), { stepMs: 10 });
    expect(result).toMatchObject({ healthy: false, reason: 'container web does not exist' });
  });

  it('rejects with the signal reason when aborted', async () => {
    const t = setup({ answers: [false] });
    const controller = new AbortController();
    const waiting = t.wait(controller.signal);
    await t.clock.advance(2_500);
    controller.abort(new Error('shutdown'));
    await expect(waiting).rejects.toThrow('shutdown');
  });
});
