import type { z } from 'zod';
import type { FiguresResponse, StatusResponse, streamEventsSchema } from '../../../shared/api/v1.js';

/** The wire shapes the page reads, as the coordinator's schemas define them (types only: nothing here runs). */
export type { BatonEvent, FiguresResponse, GroupActionName, StatusResponse, StreamSnapshot } from '../../../shared/api/v1.js';
export type StatusGroup = StatusResponse['groups'][number];
export type StatusNode = StatusGroup['nodes'][number];
export type StatusLease = StatusGroup['leases'][number];
export type StatusRollout = NonNullable<StatusGroup['rollout']>;
/** `event: events` on the live stream. */
export type StreamEvents = z.infer<typeof streamEventsSchema>;

/** What the page knows: the last snapshot, and the skew between the server's clock and the browser's. */
export interface PageModel {
  status: StatusResponse | null;
  figures: FiguresResponse | null;
  skewMs: number;
}

export type NodeAction = 'drain' | 'undrain';
