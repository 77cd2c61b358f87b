import { describe, expect, it } from 'vitest';
import { isFinalRefusal, isPrintable, printableText, refusalReasonSchema, toPrintableLine } from './fields.js';

describe('isFinalRefusal', () => {
  it('is true for the refusals of an ended or replaced rollout, false for those waiting or a new poll changes', () => {
    const final = refusalReasonSchema.options.filter(isFinalRefusal);
    expect(final).toEqual(['halted', 'aborted', 'superseded', 'rolled-back']);
  });
});

describe('printable text', () => {
  const refused = [
    ...Array.from({ length: 0x20 }, (_, code) => code),
    0x7f,
    ...Array.from({ length: 0x20 }, (_, index) => 0x80 + index),
    0x2028,
    0x2029,
    0x202a,
    0x202b,
    0x202c,
    0x202d,
    0x202e,
    0x2066,
    0x2067,
    0x2068,
    0x2069,
  ];

  it.each(refused.map((code) => [`U+${code.toString(16).padStart(4, '0')}`, code] as const))('refuses %s', (_name, code) => {
    expect(isPrintable(`a${String.fromCharCode(code)}b`)).toBe(false);
    const result = printableText(100).safeParse(`a${String.fromCharCode(code)}b`);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toBe('must not contain control characters (C0, C1, line separators or bidi overrides)');
  });

  it('takes spaces, punctuation, letters of any script, emoji and the bidi marks that override nothing', () => {
    for (const text of ['web 1', 'rack 4 · ünïcödé', '主机', 'שלום', '🚀', 'a\u200eb', 'a\u00a0b', '']) {
      expect(isPrintable(text), text).toBe(true);
    }
  });

  it('keeps its bounds', () => {
    expect(printableText(3, 1).safeParse('').success).toBe(false);
    expect(printableText(3, 1).safeParse('abcd').success).toBe(false);
    expect(printableText(3, 1).safeParse('abc').success).toBe(true);
  });

  it('makes any text one printable line, each run of controls one space, cut with an ellipsis', () => {
    expect(toPrintableLine('health check failed:\n  exit 1\r\n\u001b[31mred\u001b[0m\u202e', 100)).toBe('health check failed: exit 1 [31mred [0m');
    expect(toPrintableLine('abcdef', 4)).toBe('abc…');
    expect(isPrintable(toPrintableLine('\u009b\u2066x\u0000', 10))).toBe(true);
  });
});
