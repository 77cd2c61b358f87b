import { controlCharacters, type BatonEvent } from '../shared/api/v1.js';

const controlCharacter = new RegExp(controlCharacters.source, 'g');
// The control characters JSON.stringify leaves as they are (it escapes C0 in strings; C0 outside them is its own indentation).
const notEscapedByJson = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const escapeOne = (character: string): string => {
  const code = character.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
};

/**
 * Text from the coordinator made safe to print: every control character the API refuses (C0 such
 * as ESC and newlines, DEL, C1, U+2028/9, bidi overrides and isolates) is shown as `\xNN` or
 * `\uNNNN` instead of acting on the terminal. Every renderer of the CLI prints through it.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(controlCharacter, escapeOne);
}

/**
 * JSON of an answer, safe to print: JSON.stringify already escapes C0 controls, this also escapes
 * C1, the separators and bidi controls (`\u009b`, `\u202e`, ...); it parses back to the same value.
 */
export function jsonForTerminal(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(notEscapedByJson, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. Cells are escaped for the terminal. */
export function renderTable(headers: string[], rawRows: string[][]): string {
  const rows = rawRows.map((row) => row.map(escapeForTerminal));
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

/** One line per event: time, sequence, type, group, then the fields that are set; escaped for the terminal. */
export function formatEvent(event: BatonEvent): string {
  const fields: string[] = [];
  if (event.nodeId !== null) fields.push(`node=${event.nodeId}`);
  if (event.digest !== null) fields.push(`digest=${shortDigest(event.digest)}`);
  if (event.leaseId !== null) fields.push(`lease=${event.leaseId}`);
  if (event.fencingToken !== null) fields.push(`token=${event.fencingToken}`);
  if (event.outcome !== null) fields.push(`outcome=${event.outcome}`);
  if (event.reason !== null) fields.push(`reason=${JSON.stringify(event.reason)}`);
  if (event.message !== null) fields.push(`message=${JSON.stringify(event.message)}`);
  return escapeForTerminal([new Date(event.atMs).toISOString(), `#${event.seq}`, event.type.padEnd(18), event.group, ...fields].join(' '));
}
