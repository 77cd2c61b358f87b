import type { BatonEvent } from '../../shared/api/v1.js';
import type { Logger } from '../../shared/logger.js';

/** Committed events: one log line each, then every listener (the status page's live feed, metrics, notifications). */
export class EventFeed {
  private readonly listeners = new Set<(events: BatonEvent[]) => void>();

  constructor(private readonly logger: Logger) {}

  onEvents(listener: (events: BatonEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(events: BatonEvent[]): void {
    if (events.length === 0) return;
    for (const event of events) this.log(event);
    for (const listener of this.listeners) listener(events);
  }

  private log(event: BatonEvent): void {
    this.logger.info(
      {
        event: event.type,
        seq: event.seq,
        group: event.group,
        node: event.nodeId ?? undefined,
        digest: event.digest ?? undefined,
        leaseId: event.leaseId ?? undefined,
        fencingToken: event.fencingToken ?? undefined,
        reason: event.reason ?? undefined,
        outcome: event.outcome ?? undefined,
      },
      event.message ?? event.type,
    );
  }
}
