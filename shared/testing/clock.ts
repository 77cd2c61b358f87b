import type { Clock } from '../clock.js';

interface Sleeper {
  wakeAtMs: number;
  resolve: () => void;
}

/** A clock that moves only when told to; sleepers wake in order as time passes them. */
export class ManualClock implements Clock {
  private currentMs: number;
  private sleepers: Sleeper[] = [];

  constructor(startMs = 1_700_000_000_000) {
    this.currentMs = startMs;
  }

  nowMs(): number {
    return this.currentMs;
  }

  sleep(durationMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(signal?.reason);
      };
      // Like systemClock: the abort listener goes when the sleep ends, so long-lived signals do not collect them.
      const sleeper: Sleeper = {
        wakeAtMs: this.currentMs + Math.max(0, durationMs),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Moves time forward, waking every sleeper whose time has come, earliest first. */
  async advance(durationMs: number): Promise<void> {
    const targetMs = this.currentMs + durationMs;
    for (;;) {
      const due = this.sleepers
        .filter((s) => s.wakeAtMs <= targetMs)
        .sort((a, b) => a.wakeAtMs - b.wakeAtMs)[0];
      if (!due) break;
      this.sleepers = this.sleepers.filter((s) => s !== due);
      this.currentMs = Math.max(this.currentMs, due.wakeAtMs);
      due.resolve();
      // Let the woken task run before the next sleeper is considered.
      await new Promise<void>((r) => setImmediate(r));
    }
    this.currentMs = targetMs;
  }

  pendingSleepers(): number {
    return this.sleepers.length;
  }
}
