import { describe, expect, it } from 'vitest';
import { escapeForTerminal, jsonForTerminal, renderTable } from './format.js';

describe('escapeForTerminal', () => {
  it('shows every control character as an escape and leaves the rest as it is', () => {
    expect(escapeForTerminal('a\u001b[2Jb\nc\u007f\u009b\u202e\u2066\u2028 é 主 🚀 \\x')).toBe('a\\x1b[2Jb\\x0ac\\x7f\\x9b\\u202e\\u2066\\u2028 é 主 🚀 \\x');
  });

  it('is what the table cells go through, so columns line up on the escaped text', () => {
    expect(renderTable(['A', 'B'], [['x\u001by', 'z']])).toBe('A       B\nx\\x1by  z');
  });
});

describe('jsonForTerminal', () => {
  it('escapes what JSON.stringify leaves raw and parses back to the same value', () => {
    const value = { host: 'a\u001b\u009b\u202e\u2028\u007fb', list: [1, 'c'] };
    const text = jsonForTerminal(value, 2);
    expect(text).not.toMatch(/[\u007f-\u009f\u2028\u202e]/);
    expect(text).toContain('\\u009b\\u202e\\u2028\\u007f');
    expect(JSON.parse(text)).toEqual(value);
  });
});
