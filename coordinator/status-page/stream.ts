import type { ServerResponse } from 'node:http';
import type { BatonEvent, StreamSnapshot } from '../../shared/api/v1.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import { runEvery } from '../../shared/ticker.js';

export interface StatusStreamOptions {
  /** The whole picture, as GET /v1/status plus GET /v1/figures. */
  snapshot: () => Promise<StreamSnapshot>;
  source: {
    onEvents(listener: (events: BatonEvent[]) => void): () => void;
    readEvents(query: { afterSeq?: number; limit: number }): Promise<BatonEvent[]>;
  };
  logger: Logger;
  /** Times the periodic and the debounced snapshots. */
  clock: Clock;
  /** A snapshot goes out at least this often while anyone listens. */
  intervalMs?: number;
  /** After events, a snapshot follows within this much time (bursts share one). */
  debounceMs?: number;
  maxClients?: number;
  /** A client that lets this much pile up unread is cut off (it reconnects and starts afresh). */
  maxBufferedBytes?: number;
}

const BACKFILL_LIMIT = 500;

/**
 * GET /v1/events/stream: server-sent events. `events` carries each batch of committed
 * events as it happens (the SSE id is the last seq, so a reconnecting EventSource sends
 * Last-Event-ID and gets what it missed); `snapshot` carries the status and figures, on
 * connect, shortly after events, and every `intervalMs`. One snapshot is built per tick and
 * shared by every client; no timer runs while nobody listens.
 */
export class StatusStream {
  private readonly clients = new Set<ServerResponse>();
  private readonly intervalMs: number;
  private readonly debounceMs: number;
  private readonly maxClients: number;
  private readonly maxBufferedBytes: number;
  /** Stops the periodic snapshots; set while anyone listens. */
  private ticker: AbortController | undefined;
  /** Cancels the snapshot due after recent events; set while one is due. */
  private debounce: AbortController | undefined;
  private building = false;
  private rebuild = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly options: StatusStreamOptions) {
    this.intervalMs = options.intervalMs ?? 2_000;
    this.debounceMs = options.debounceMs ?? 200;
    this.maxClients = options.maxClients ?? 100;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1_024 * 1_024;
    this.unsubscribe = options.source.onEvents((events) => this.onEvents(events));
  }

  get size(): number {
    return this.clients.size;
  }

  /** Takes over a response; false (and nothing written) when there are too many listeners. */
  async add(response: ServerResponse, afterSeq: number | undefined): Promise<boolean> {
    if (this.clients.size >= this.maxClients) return false;
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
    });
    response.write('retry: 3000\n\n');
    this.clients.add(response);
    response.once('close', () => this.remove(response));
    this.startTicker();
    try {
      if (afterSeq !== undefined) {
        const missed = await this.options.source.readEvents({ afterSeq, limit: BACKFILL_LIMIT });
        if (missed.length > 0) this.send(response, eventsMessage(missed));
      }
      this.send(response, snapshotMessage(await this.options.snapshot()));
    } catch (error) {
      this.options.logger.warn({ err: error }, 'status stream: could not start a client');
      this.remove(response);
      response.destroy();
    }
    return true;
  }

  close(): void {
    this.unsubscribe();
    this.stopTimers();
    for (const client of this.clients) client.end();
    this.clients.clear();
  }

  private remove(response: ServerResponse): void {
    this.clients.delete(response);
    if (this.clients.size === 0) this.stopTimers();
  }

  private startTicker(): void {
    if (this.ticker) return;
    this.ticker = new AbortController();
    void runEvery(this.options.clock, this.intervalMs, this.ticker.signal, () => this.broadcastSnapshot());
  }

  private stopTimers(): void {
    this.ticker?.abort();
    this.debounce?.abort();
    this.ticker = undefined;
    this.debounce = undefined;
  }

  private onEvents(events: BatonEvent[]): void {
    if (this.clients.size === 0) return;
    const message = eventsMessage(events);
    for (const client of this.clients) this.send(client, message);
    if (this.debounce) return;
    const debounce = new AbortController();
    this.debounce = debounce;
    this.options.clock.sleep(this.debounceMs, debounce.signal).then(
      () => {
        if (this.debounce === debounce) this.debounce = undefined;
        void this.broadcastSnapshot();
      },
      () => undefined, // cancelled: nobody listens any more
    );
  }

  private async broadcastSnapshot(): Promise<void> {
    if (this.clients.size === 0) return;
    if (this.building) {
      this.rebuild = true;
      return;
    }
    this.building = true;
    try {
      const message = snapshotMessage(await this.options.snapshot());
      for (const client of this.clients) this.send(client, message);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'status stream: could not build a snapshot');
    } finally {
      this.building = false;
      if (this.rebuild) {
        this.rebuild = false;
        void this.broadcastSnapshot();
      }
    }
  }

  private send(client: ServerResponse, message: string): void {
    if (client.destroyed || client.writableEnded) return;
    if (client.writableLength > this.maxBufferedBytes) {
      this.options.logger.warn({ bufferedBytes: client.writableLength }, 'status stream: client too slow, disconnecting');
      this.remove(client);
      client.destroy();
      return;
    }
    client.write(message);
  }
}

function eventsMessage(events: BatonEvent[]): string {
  const last = events.at(-1);
  return `${last ? `id: ${last.seq}\n` : ''}event: events\ndata: ${JSON.stringify({ events })}\n\n`;
}

function snapshotMessage(snapshot: StreamSnapshot): string {
  return `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`;
}
