import { describe, expect, it } from 'vitest';
import { writeFailureOf } from './write-failure.js';

const failure = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('writeFailureOf', () => {
  it('names the errors that mean the database cannot be written, with their code', () => {
    expect(writeFailureOf(failure('SQLITE_READONLY', 'attempt to write a readonly database'))).toBe('attempt to write a readonly database (SQLITE_READONLY)');
    expect(writeFailureOf(failure('SQLITE_FULL', 'database or disk is full'))).toBe('database or disk is full (SQLITE_FULL)');
    expect(writeFailureOf(failure('SQLITE_IOERR_SHMSIZE', 'disk I/O error'))).toBe('disk I/O error (SQLITE_IOERR_SHMSIZE); is its file system full or read-only?');
    expect(writeFailureOf(failure('EROFS', "EROFS: read-only file system, mkdir '/data'"))).toBe("EROFS: read-only file system, mkdir '/data'");
  });

  it('leaves every other error alone: a rule or batch bug is not a store that cannot commit', () => {
    expect(writeFailureOf(failure('SQLITE_CONSTRAINT_CHECK', 'CHECK constraint failed'))).toBeUndefined();
    expect(writeFailureOf(failure('SQLITE_BUSY', 'database is locked'))).toBeUndefined();
    expect(writeFailureOf(new Error('no code'))).toBeUndefined();
    expect(writeFailureOf('SQLITE_FULL')).toBeUndefined();
  });
});
