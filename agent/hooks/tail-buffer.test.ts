import { describe, expect, it } from 'vitest';
import { TailBuffer } from './tail-buffer.js';

describe('TailBuffer', () => {
  it('keeps everything below the limit', () => {
    const tail = new TailBuffer(16);
    tail.append(Buffer.from('hello '));
    tail.append(Buffer.from('world'));
    expect(tail.text()).toBe('hello world');
    expect([tail.totalBytes, tail.droppedBytes]).toEqual([11, 0]);
  });

  it('keeps exactly the last limitBytes, across and within chunks', () => {
    const tail = new TailBuffer(8);
    for (const part of ['0123', '4567', '89ab', 'cdef']) tail.append(Buffer.from(part));
    expect(tail.text()).toBe('89abcdef');
    tail.append(Buffer.from('gh'));
    expect(tail.text()).toBe('abcdefgh');
    tail.append(Buffer.from('a chunk longer than the limit'));
    expect(tail.text()).toBe('he limit');
    expect([tail.totalBytes, tail.droppedBytes]).toEqual([16 + 2 + 29, 16 + 2 + 29 - 8]);
  });

  it('holds at most limitBytes however much is written', () => {
    const tail = new TailBuffer(1024);
    const chunk = Buffer.alloc(1000, 'x');
    for (let i = 0; i < 10_000; i += 1) tail.append(chunk);
    expect(tail.totalBytes).toBe(10_000_000);
    expect(Buffer.byteLength(tail.text())).toBe(1024);
  });

  it('leaves out a character the cut split instead of garbling it', () => {
    const tail = new TailBuffer(5);
    tail.append(Buffer.from('aé€z')); // a(1) é(2) €(3) z(1): the last 5 bytes cut é in half
    expect(tail.text()).toBe('€z');
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new TailBuffer(0)).toThrow(RangeError);
    expect(() => new TailBuffer(1.5)).toThrow(RangeError);
  });
});
