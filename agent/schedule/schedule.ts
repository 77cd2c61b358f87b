import { createTask, parse, validateDetailed, type Logger as CronLogger } from 'node-cron';
import type { Clock } from '../../shared/clock.js';
import { ConfigError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { RandomSource } from '../../shared/random.js';

/**
 * When an agent polls the registry.
 *
 * A fleet must not poll (and so update) in lock-step: every node polls once per period, at an
 * offset inside the period taken from a stable hash of its node id, so nodes spread evenly over
 * the period and a node keeps its place across restarts. A little random jitter on top keeps
 * nodes whose offsets happen to collide apart.
 */

/** FNV-1a, 32 bits, over the UTF-8 bytes of `text`: small, stable across versions and platforms. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** The node's stable place in a period: FNV-1a of its id modulo the period, in [0, periodMs). */
export function staggerOffsetMs(nodeId: string, periodMs: number): number {
  assertPeriod(periodMs);
  return fnv1a32(nodeId) % periodMs;
}

export interface NextPollInput {
  nowMs: number;
  /** Length of one period; slots are aligned on the Unix epoch, so all nodes share them. */
  periodMs: number;
  nodeId: string;
  random: RandomSource;
  /** Jitter in [0, splayMs) added to every poll; values above periodMs are capped at periodMs. */
  splayMs: number;
  /** When the last poll ran (scheduled or not): no second poll is scheduled in that poll's slot. */
  lastPollAtMs?: number;
}

/**
 * The next poll time: the smallest `k * periodMs + offset + jitter` after `nowMs`, where `offset`
 * is the node's stagger offset and `jitter` is drawn once per call in [0, min(splayMs, periodMs)).
 * With `lastPollAtMs`, slot k (the span [k * periodMs + offset, (k + 1) * periodMs + offset)) that
 * already saw a poll is skipped, so a node polls at most once per slot however the jitter falls
 * (a "poll now" hint is the only way to poll more often).
 */
export function nextPollAtMs(input: NextPollInput): number {
  const { nowMs, periodMs, nodeId, random, lastPollAtMs } = input;
  assertPeriod(periodMs);
  const offset = staggerOffsetMs(nodeId, periodMs);
  const splayMs = Math.min(Math.max(0, Math.floor(input.splayMs)), periodMs);
  const jitter = splayMs > 0 ? Math.min(splayMs - 1, Math.floor(random.next() * splayMs)) : 0;
  const delay = offset + jitter;
  let slot = Math.floor((nowMs - delay) / periodMs) + 1;
  if (lastPollAtMs !== undefined) {
    slot = Math.max(slot, Math.floor((lastPollAtMs - offset) / periodMs) + 1);
  }
  return slot * periodMs + delay;
}

function assertPeriod(periodMs: number): void {
  if (!Number.isInteger(periodMs) || periodMs <= 0) {
    throw new RangeError(`periodMs must be a positive integer, got ${periodMs}`);
  }
}

// ---- Cron expressions

/**
 * How a cron expression is followed.
 * - `exact`: the expression ticks every `periodMs` exactly (`* * * * *`, `*\/N * * * *` with N
 *   dividing 60, `*\/N * * * * *` with N dividing 60, and anything equivalent such as
 *   `0,30 * * * * *` or `15 * * * *`). The scheduler computes the ticks itself on epoch-aligned
 *   periods (UTC: with a time zone off by a non-whole hour, the slots are not the local ones, but
 *   the spacing is the same), and each node polls at its offset in the period.
 * - `cron`: anything else (ranges, lists with uneven gaps, hours, days...). node-cron drives the
 *   ticks, in the local time zone, and each tick is delayed by the node's offset plus jitter,
 *   modulo `periodMs`: the smallest interval between two ticks that can be read off the
 *   expression (seconds, then minutes, then hours; one day when it fires at most daily). The
 *   delayed poll therefore lands before the next tick, and the fleet spreads over that interval.
 *   Note that the spread covers the whole interval: a daily expression sets a daily cadence, not
 *   a time of day. Across a DST change the real gap can be shorter than `periodMs`; a tick that
 *   arrives while the previous one is still waiting or polling is skipped.
 */
export interface CronCadence {
  expression: string;
  kind: 'exact' | 'cron';
  periodMs: number;
}

const SECOND_MS = 1_000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Validates `expression` with node-cron; throws ConfigError (exit code 78) when it is invalid. */
export function cronCadence(expression: string): CronCadence {
  const validation = validateDetailed(expression);
  if (!validation.valid) {
    throw new ConfigError('schedule.cron', [
      {
        path: 'schedule.cron',
        message:
          `invalid cron expression ${JSON.stringify(expression)}: ` +
          (validation.errors.map((e) => e.message).join('; ') || 'not accepted by node-cron'),
      },
    ]);
  }
  const fields = validation.fields ?? parse(expression);
  const seconds = sortedNumbers(fields.second);
  const minutes = sortedNumbers(fields.minute);
  const hours = sortedNumbers(fields.hour);
  const everyDay =
    isRange(fields.dayOfMonth, 1, 31) && isRange(fields.month, 1, 12) && isRange(fields.dayOfWeek, 0, 6);

  if (everyDay && isRange(hours, 0, 23)) {
    if (seconds.length > 1 && isRange(minutes, 0, 59)) {
      const step = evenStep(seconds, 60);
      if (step !== undefined) return { expression, kind: 'exact', periodMs: step * SECOND_MS };
    }
    if (seconds.length === 1) {
      const step = evenStep(minutes, 60);
      if (step !== undefined) return { expression, kind: 'exact', periodMs: step * MINUTE_MS };
    }
  }

  let periodMs: number;
  if (seconds.length > 1) periodMs = smallestGap(seconds, 60) * SECOND_MS;
  else if (minutes.length > 1) periodMs = smallestGap(minutes, 60) * MINUTE_MS;
  else if (hours.length > 1) periodMs = smallestGap(hours, 24) * HOUR_MS;
  else periodMs = DAY_MS;
  return { expression, kind: 'cron', periodMs };
}

/**
 * The period the stagger spreads over for `expression`: its exact period for simple expressions,
 * else the smallest interval between two ticks (see CronCadence). Throws ConfigError when invalid.
 */
export function cronPeriodMs(expression: string): number {
  return cronCadence(expression).periodMs;
}

function sortedNumbers(values: (number | string)[]): number[] {
  return values.filter((v): v is number => typeof v === 'number').sort((a, b) => a - b);
}

function isRange(values: (number | string)[], from: number, to: number): boolean {
  const numbers = new Set(values);
  if (numbers.size !== to - from + 1) return false;
  for (let v = from; v <= to; v++) if (!numbers.has(v)) return false;
  return true;
}

/** The step when `values` are evenly spaced around the whole cycle (one value: step = modulus). */
function evenStep(values: number[], modulus: number): number | undefined {
  if (values.length === 0 || modulus % values.length !== 0) return undefined;
  const step = modulus / values.length;
  return values.every((v, i) => v === (values[0] ?? 0) + i * step) ? step : undefined;
}

/** Smallest distance between consecutive values around the cycle. */
function smallestGap(values: number[], modulus: number): number {
  let gap = modulus - (values[values.length - 1] ?? 0) + (values[0] ?? 0);
  for (let i = 1; i < values.length; i++) gap = Math.min(gap, (values[i] ?? 0) - (values[i - 1] ?? 0));
  return Math.max(1, gap);
}

// ---- The scheduler

/** Source of the ticks of irregular cron expressions (node-cron in production, a fake in tests). */
export interface CronTickSource {
  /** Calls `onTick` at every tick of `expression` until `stop` is called. */
  start(expression: string, onTick: () => void, logger: Logger): { stop(): void };
}

export const nodeCronTicks: CronTickSource = {
  start(expression, onTick, logger) {
    const cronLogger: CronLogger = {
      info: (message) => logger.debug({ source: 'node-cron' }, message),
      warn: (message) => logger.warn({ source: 'node-cron' }, message),
      error: (message, err) => logger.error({ source: 'node-cron', err }, String(message)),
      debug: (message) => logger.debug({ source: 'node-cron' }, String(message)),
    };
    const task = createTask(expression, () => onTick(), { name: 'baton-poll', logger: cronLogger });
    void Promise.resolve(task.start()).catch((err: unknown) =>
      logger.error({ err }, 'could not start the cron schedule'),
    );
    return {
      stop: () => {
        void Promise.resolve(task.destroy()).catch(() => undefined);
      },
    };
  },
};

export interface PollSchedulerOptions {
  nodeId: string;
  /** node-cron expression (agent config `schedule.cron`); validated by the constructor. */
  cron: string;
  /** Random delay added to each poll, in [0, splayMs). */
  splayMs: number;
  clock: Clock;
  random: RandomSource;
  logger: Logger;
  /** Ticks for expressions that are not `exact`; node-cron by default. */
  tickSource?: CronTickSource;
}

type WakeReason = 'timer' | 'tick' | 'hint' | 'stop';

/**
 * Runs `onPoll` on the node's staggered schedule. At most one poll runs at a time; a "poll now"
 * hint wakes the scheduler at once, or, when it arrives during a poll, runs one more poll right
 * after it (the running poll may have looked before the push). A poll that throws is logged and
 * the schedule goes on. Time passes only through the injected clock.
 */
export class PollScheduler {
  readonly cadence: CronCadence;
  private readonly nodeId: string;
  private readonly splayMs: number;
  private readonly clock: Clock;
  private readonly random: RandomSource;
  private readonly logger: Logger;
  private readonly tickSource: CronTickSource;

  private started = false;
  private stopped = false;
  private hintPending = false;
  private waitingForTick = false;
  private wake: ((reason: WakeReason) => void) | undefined;
  private loop: Promise<void> | undefined;
  private ticks: { stop(): void } | undefined;
  private readonly pollAbort = new AbortController();
  private lastPollAtMs: number | undefined;
  private dueAtMs: number | undefined;

  constructor(options: PollSchedulerOptions) {
    this.cadence = cronCadence(options.cron);
    this.nodeId = options.nodeId;
    this.splayMs = options.splayMs;
    this.clock = options.clock;
    this.random = options.random;
    this.logger = options.logger;
    this.tickSource = options.tickSource ?? nodeCronTicks;
  }

  /** When the next scheduled poll is due, if one is being waited for (undefined while waiting for a cron tick). */
  get nextPollDueAtMs(): number | undefined {
    return this.dueAtMs;
  }

  /** Starts the schedule; `onPoll` receives a signal that aborts when the scheduler stops. */
  start(onPoll: (signal: AbortSignal) => Promise<void>): void {
    if (this.started || this.stopped) throw new Error('a PollScheduler starts once');
    this.started = true;
    this.logger.info(
      { cron: this.cadence.expression, kind: this.cadence.kind, periodMs: this.cadence.periodMs, splayMs: this.splayMs },
      'poll schedule started',
    );
    if (this.cadence.kind === 'cron') {
      this.ticks = this.tickSource.start(this.cadence.expression, () => this.onTick(), this.logger);
      this.loop = this.runCronLoop(onPoll);
    } else {
      this.loop = this.runExactLoop(onPoll);
    }
  }

  /** The coordinator's "poll now" hint: skip the wait (or poll again right after the running poll). */
  pollNow(): void {
    if (this.stopped) return;
    this.hintPending = true;
    this.wake?.('hint');
  }

  /** Stops the schedule, aborts the running poll's signal and waits for it to finish. */
  async stop(): Promise<void> {
    if (this.stopped) {
      await this.loop;
      return;
    }
    this.stopped = true;
    this.ticks?.stop();
    this.wake?.('stop');
    this.pollAbort.abort(new Error('poll scheduler stopped'));
    await this.loop;
    this.logger.info('poll schedule stopped');
  }

  private async runExactLoop(onPoll: (signal: AbortSignal) => Promise<void>): Promise<void> {
    for (;;) {
      const nowMs = this.clock.nowMs();
      const dueAtMs = nextPollAtMs({
        nowMs,
        periodMs: this.cadence.periodMs,
        nodeId: this.nodeId,
        random: this.random,
        splayMs: this.splayMs,
        lastPollAtMs: this.lastPollAtMs,
      });
      this.dueAtMs = dueAtMs;
      const reason = await this.waitFor(dueAtMs - nowMs);
      this.dueAtMs = undefined;
      if (reason === 'stop') return;
      await this.poll(onPoll, reason);
    }
  }

  private async runCronLoop(onPoll: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const periodMs = this.cadence.periodMs;
    const offset = staggerOffsetMs(this.nodeId, periodMs);
    for (;;) {
      this.waitingForTick = true;
      let reason = await this.waitFor(undefined);
      this.waitingForTick = false;
      if (reason === 'stop') return;
      if (reason === 'tick') {
        const jitter = Math.floor(this.random.next() * Math.max(0, Math.min(this.splayMs, periodMs)));
        const delayMs = (offset + jitter) % periodMs;
        this.dueAtMs = this.clock.nowMs() + delayMs;
        reason = await this.waitFor(delayMs);
        this.dueAtMs = undefined;
        if (reason === 'stop') return;
      }
      await this.poll(onPoll, reason);
    }
  }

  private onTick(): void {
    if (this.waitingForTick) this.wake?.('tick');
    else this.logger.debug('cron tick while a poll is pending or running: skipped');
  }

  /** Waits `sleepMs` on the clock (forever when undefined) or until a tick, hint or stop. */
  private waitFor(sleepMs: number | undefined): Promise<WakeReason> {
    if (this.stopped) return Promise.resolve('stop');
    if (this.hintPending) return Promise.resolve('hint');
    return new Promise<WakeReason>((resolve) => {
      const sleepAbort = new AbortController();
      const done = (reason: WakeReason): void => {
        if (this.wake !== done) return;
        this.wake = undefined;
        sleepAbort.abort();
        resolve(reason);
      };
      this.wake = done;
      if (sleepMs !== undefined) {
        this.clock.sleep(Math.max(0, sleepMs), sleepAbort.signal).then(
          () => done('timer'),
          () => undefined, // aborted because something else woke us
        );
      }
    });
  }

  private async poll(onPoll: (signal: AbortSignal) => Promise<void>, reason: WakeReason): Promise<void> {
    this.hintPending = false;
    this.lastPollAtMs = this.clock.nowMs();
    this.logger.debug({ reason }, 'poll');
    try {
      await onPoll(this.pollAbort.signal);
    } catch (err) {
      if (!this.stopped) this.logger.warn({ err }, 'poll failed; the schedule goes on');
    }
  }
}
