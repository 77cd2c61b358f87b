/**
 * A bounded, steady, open-loop HTTP load for end-to-end tests (through HAProxy, on loopback only).
 *
 * Requests are sent at a fixed rate for a fixed duration whatever the answers' latency (open loop:
 * a slow or stuck server does not slow the load down and hide its own trouble). Every
 * `1 / slowShare`-th request is a slow one (`/cgi-bin/slow?1` by default: a request that is in
 * flight when a node drains); the others ask `/version`, whose answer (`v1`, `v2`...) is recorded per
 * second so the switch from one version to the next is visible. Every answer that is not 2xx and
 * every socket error or timeout is a failure, kept with its time and details. The load stops by
 * itself after `durationMs` (plus at most `timeoutMs` for the last answers), or at `stop()`.
 */
import { Pool, errors as undiciErrors } from 'undici';

export interface LoadOptions {
  /** Base URL, e.g. HAProxy's `http://127.0.0.1:<port>`. Must be a loopback address. */
  url: string;
  /** Requests per second; default 40. */
  ratePerSecond?: number;
  /** How long to send; the load always ends by itself. */
  durationMs: number;
  /** Share of slow requests; default 0.1 (every 10th). 0 for none. */
  slowShare?: number;
  /** Default `/cgi-bin/slow?1`. */
  slowPath?: string;
  /** Default `/version`. */
  fastPath?: string;
  /** A request taking longer than this counts as failed (timeout); default 10 s. */
  timeoutMs?: number;
  /** Connections to the target at most; default 64. */
  connections?: number;
}

export interface LoadFailure {
  /** Wall-clock time the request was sent (ms since epoch). */
  sentAtMs: number;
  /** How long until it failed. */
  afterMs: number;
  path: string;
  /** HTTP status, when there was an answer. */
  status?: number;
  /** Error code or message, when there was no answer. */
  error?: string;
  /** The start of the answer's body, for non-2xx. */
  body?: string;
}

export interface VersionSecond {
  /** Start of the second (ms since epoch, rounded down to the second). */
  atMs: number;
  /** `/version` answers in that second, by body. */
  counts: Record<string, number>;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LoadResult {
  startedAtMs: number;
  endedAtMs: number;
  /** Requests sent. */
  sent: number;
  /** Requests that got a 2xx answer. */
  ok: number;
  /** Answers that were not 2xx. */
  non2xx: number;
  /** Socket errors and timeouts. */
  errors: number;
  /** non2xx + errors. */
  failed: number;
  /** Every failure, in order (capped at 1,000; the counters are exact). */
  failures: LoadFailure[];
  /** Latencies of successful requests, ms. */
  latency: { all: LatencySummary; fast: LatencySummary; slow: LatencySummary };
  /** `/version` answers per second. */
  versions: VersionSecond[];
  /** First and last time each version was seen (ms since epoch). */
  versionSpans: Record<string, { firstMs: number; lastMs: number; count: number }>;
  /** The rate asked for and the rate achieved. */
  ratePerSecond: number;
  achievedRatePerSecond: number;
}

export interface RunningLoad {
  /** Resolves when the load has ended by itself (or after `stop()`). */
  done: Promise<LoadResult>;
  /** Stops sending now, waits for the answers in flight, resolves with the results. */
  stop(): Promise<LoadResult>;
  /** Counters so far (while running). */
  progress(): { sent: number; ok: number; failed: number; inFlight: number };
  /** Failures so far. */
  failuresSoFar(): LoadFailure[];
}

export function startLoad(options: LoadOptions): RunningLoad {
  const target = new URL(options.url);
  if (!/^127\.\d+\.\d+\.\d+$/.test(target.hostname) && target.hostname !== 'localhost') {
    throw new Error(`startLoad: loopback targets only, got ${options.url}`);
  }
  const rate = options.ratePerSecond ?? 40;
  const slowShare = options.slowShare ?? 0.1;
  const slowEvery = slowShare > 0 ? Math.max(1, Math.round(1 / slowShare)) : 0;
  const slowPath = options.slowPath ?? '/cgi-bin/slow?1';
  const fastPath = options.fastPath ?? '/version';
  const timeoutMs = options.timeoutMs ?? 10_000;
  const pool = new Pool(target.origin, {
    connections: options.connections ?? 64,
    pipelining: 1,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connectTimeout: Math.min(timeoutMs, 5_000),
  });

  const startedAtMs = Date.now();
  const startedPerf = performance.now();
  let sent = 0;
  let ok = 0;
  let non2xx = 0;
  let errorCount = 0;
  let inFlight = 0;
  const failures: LoadFailure[] = [];
  const fastLatencies: number[] = [];
  const slowLatencies: number[] = [];
  const versionSeconds = new Map<number, Record<string, number>>();
  const spans: Record<string, { firstMs: number; lastMs: number; count: number }> = {};
  const pending = new Set<Promise<void>>();
  let sending = true;
  let timer: NodeJS.Timeout | undefined;
  let resolveSendingDone!: () => void;
  const sendingDone = new Promise<void>((resolve) => (resolveSendingDone = resolve));

  const fail = (failure: LoadFailure): void => {
    if (failures.length < 1_000) failures.push(failure);
  };

  const one = async (index: number): Promise<void> => {
    const slow = slowEvery > 0 && index % slowEvery === slowEvery - 1;
    const path = slow ? slowPath : fastPath;
    const sentAtMs = Date.now();
    const t0 = performance.now();
    inFlight += 1;
    try {
      const answer = await pool.request({
        path,
        method: 'GET',
        headers: { 'cache-control': 'no-store' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = await answer.body.text();
      const elapsed = performance.now() - t0;
      if (answer.statusCode >= 200 && answer.statusCode < 300) {
        ok += 1;
        (slow ? slowLatencies : fastLatencies).push(elapsed);
        if (!slow) {
          const version = body.trim().slice(0, 40);
          const second = Math.floor(Date.now() / 1_000) * 1_000;
          const counts = versionSeconds.get(second) ?? {};
          counts[version] = (counts[version] ?? 0) + 1;
          versionSeconds.set(second, counts);
          const span = (spans[version] ??= { firstMs: Date.now(), lastMs: Date.now(), count: 0 });
          span.lastMs = Date.now();
          span.count += 1;
        }
      } else {
        non2xx += 1;
        fail({ sentAtMs, afterMs: Math.round(elapsed), path, status: answer.statusCode, body: body.slice(0, 200) });
      }
    } catch (error) {
      errorCount += 1;
      fail({ sentAtMs, afterMs: Math.round(performance.now() - t0), path, error: describeError(error) });
    } finally {
      inFlight -= 1;
    }
  };

  const tick = (): void => {
    if (!sending) return;
    const elapsed = performance.now() - startedPerf;
    const due = Math.min(Math.floor((elapsed * rate) / 1_000), Math.floor((options.durationMs * rate) / 1_000));
    while (sent < due) {
      const request = one(sent);
      sent += 1;
      pending.add(request);
      void request.finally(() => pending.delete(request));
    }
    if (elapsed >= options.durationMs) {
      endSending();
      return;
    }
    timer = setTimeout(tick, 5);
  };
  const endSending = (): void => {
    if (!sending) return;
    sending = false;
    clearTimeout(timer);
    resolveSendingDone();
  };

  const finish = async (): Promise<LoadResult> => {
    await sendingDone;
    await Promise.allSettled([...pending]);
    await pool.close().catch(() => undefined);
    const endedAtMs = Date.now();
    const all = [...fastLatencies, ...slowLatencies];
    const versions = [...versionSeconds.entries()].sort((a, b) => a[0] - b[0]).map(([atMs, counts]) => ({ atMs, counts }));
    const activeSeconds = Math.max(0.001, Math.min(options.durationMs, performance.now() - startedPerf) / 1_000);
    return {
      startedAtMs,
      endedAtMs,
      sent,
      ok,
      non2xx,
      errors: errorCount,
      failed: non2xx + errorCount,
      failures: [...failures],
      latency: { all: summarize(all), fast: summarize(fastLatencies), slow: summarize(slowLatencies) },
      versions,
      versionSpans: structuredClone(spans),
      ratePerSecond: rate,
      achievedRatePerSecond: Math.round((sent / activeSeconds) * 10) / 10,
    };
  };

  tick();
  const done = finish();
  return {
    done,
    stop: () => {
      endSending();
      return done;
    },
    progress: () => ({ sent, ok, failed: non2xx + errorCount, inFlight }),
    failuresSoFar: () => [...failures],
  };
}

/** Runs a load to its end. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return startLoad(options).done;
}

export function summarize(values: number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0);
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(sorted[sorted.length - 1] ?? 0) };
}

/** A short text for a report: counts, latency and the version switch. */
export function describeLoad(result: LoadResult): string {
  const spans = Object.entries(result.versionSpans)
    .map(([v, s]) => `${v}: ${s.count} answers, ${new Date(s.firstMs).toISOString().slice(11, 23)}–${new Date(s.lastMs).toISOString().slice(11, 23)}`)
    .join('; ');
  return (
    `${result.sent} sent (${result.achievedRatePerSecond}/s of ${result.ratePerSecond}/s), ${result.ok} ok, ${result.non2xx} non-2xx, ` +
    `${result.errors} errors; p99 ${result.latency.fast.p99} ms fast, ${result.latency.slow.p99} ms slow; versions: ${spans}` +
    (result.failures.length > 0 ? `\nfailures:\n${result.failures.slice(0, 20).map((f) => JSON.stringify(f)).join('\n')}` : '')
  );
}

function describeError(error: unknown): string {
  if (error instanceof undiciErrors.UndiciError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const cause = (error as { cause?: unknown }).cause;
    const causeText = cause instanceof Error ? ` (${(cause as { code?: string }).code ?? cause.message})` : '';
    return `${typeof code === 'string' ? `${code}: ` : ''}${error.name}: ${error.message}${causeText}`;
  }
  return String(error);
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
