import { BatonError } from '../../shared/errors.js';

/** A store that cannot commit: the process exits EX_CANTCREAT at start, and /healthz answers 503. */
export type StoreWritability = { ok: true } | { ok: false; reason: string };

// SQLite's result codes (and the file system's) that say the database cannot be written, as
// opposed to a batch a rule got wrong: read-only file or mount, full disk, I/O error, no access.
const sqliteCodes = /^SQLITE_(READONLY|FULL|IOERR|CANTOPEN|PERM|NOTADB|CORRUPT)/;
const systemCodes = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'EIO']);

/**
 * Why `error` means the database cannot be written, in one line (`attempt to write a readonly
 * database (SQLITE_READONLY)`), or undefined when it means something else.
 */
export function writeFailureOf(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  if (code === undefined || !(sqliteCodes.test(code) || systemCodes.has(code))) return undefined;
  const hint = code.startsWith('SQLITE_IOERR')
    ? '; is its file system full or read-only?'
    : code.startsWith('SQLITE_CANTOPEN')
      ? '; is it or its folder read-only or out of reach?'
      : '';
  const message = error.message.split('\n')[0] ?? '';
  return `${message.includes(code) ? message : `${message} (${code})`}${hint}`;
}

/** The database at `path` cannot be written: read-only, on a full disk, or not reachable. */
export class StoreUnwritableError extends BatonError {
  constructor(
    readonly path: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super('STORE_UNWRITABLE', `cannot write the database ${path}: ${reason}`, options);
  }
}
