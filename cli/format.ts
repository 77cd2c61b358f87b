import type { BatonEvent } from '../shared/api/v1.js';

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function renderTable(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `sha256:0123456789ab` — enough to tell digests apart in a table. */
export function shortDigest(digest: string | null | undefined): string {
  if (digest === null || digest === undefined) return '-';
  const colon = digest.indexOf(':');
  return colon < 0 ? digest.slice(0, 19) : `${digest.slice(0, colon)}:${digest.slice(colon + 1, colon + 13)}`;
}

export function formatDuration(ms: number): string {
  const seconds = Math.round(Math.abs(ms) / 1_000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h${String(minutes % 60).padStart(2, '0')}m`;
  return `${Math.floor(hours / 24)}d`;
}

export function formatAge(atMs: number, nowMs: number): string {
  return `${formatDuration(nowMs - atMs)} ago`;
}

/** One line per event: time, sequence, type, group, then the fields that are set. */
export function formatEvent(event: BatonEvent): string {
  const fields: string[] = [];
  if (event.nodeId !== null) fields.push(`node=${event.nodeId}`);
  if (event.digest !== null) fields.push(`digest=${shortDigest(event.digest)}`);
  if (event.leaseId !== null) fields.push(`lease=${event.leaseId}`);
  if (event.fencingToken !== null) fields.push(`token=${event.fencingToken}`);
  if (event.outcome !== null) fields.push(`outcome=${event.outcome}`);
  if (event.reason !== null) fields.push(`reason=${JSON.stringify(event.reason)}`);
  if (event.message !== null) fields.push(`message=${JSON.stringify(event.message)}`);
  return [new Date(event.atMs).toISOString(), `#${event.seq}`, event.type.padEnd(18), event.group, ...fields].join(' ');
}
