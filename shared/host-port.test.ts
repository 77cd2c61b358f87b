import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  InvalidHostPortError,
  formatHost,
  hostPortSchema,
  parseHostPort,
  readHostPort,
  readHostWithOptionalPort,
} from './host-port.js';

describe('readHostPort', () => {
  it.each([
    ['127.0.0.1:7070', '127.0.0.1', 7070],
    ['localhost:80', 'localhost', 80],
    ['coordinator.internal:443', 'coordinator.internal', 443],
    ['[::1]:7070', '::1', 7070],
    ['[::]:0', '::', 0],
    ['[2001:db8::1]:65535', '2001:db8::1', 65_535],
    ['[::ffff:127.0.0.1]:7071', '::ffff:127.0.0.1', 7071],
    ['0.0.0.0:0', '0.0.0.0', 0],
  ])('%s → %s, port %d', (text, host, port) => {
    expect(readHostPort(text)).toEqual({ ok: true, value: { host, port } });
    expect(parseHostPort(text)).toEqual({ host, port });
  });

  it.each([
    ['7070', /must be host:port, e.g. 127.0.0.1:7070, got "7070"/],
    ['127.0.0.1', /must be host:port/],
    ['127.0.0.1:', /must be host:port/],
    [':7070', /must be host:port/],
    ['::1:7070', /must be host:port/],
    ['[::1]', /must be host:port/],
    ['[::1:7070', /must be host:port/],
    ['host:port', /must be host:port/],
    ['host:-1', /must be host:port/],
    ['host:123456', /must be host:port/],
    ['ho st:80', /must be host:port/],
    ['http://127.0.0.1:7070', /must be host:port/],
    ['127.0.0.1:65536', /port must be between 0 and 65535, got 65536/],
    ['[::1]:99999', /port must be between 0 and 65535, got 99999/],
  ])('rejects %j', (text, reason) => {
    const reading = readHostPort(text);
    expect(reading.ok).toBe(false);
    expect(reading.ok ? '' : reading.reason).toMatch(reason);
    expect(() => parseHostPort(text)).toThrow(InvalidHostPortError);
  });
});

describe('readHostWithOptionalPort', () => {
  it.each([
    ['registry.example.com', 'registry.example.com', undefined],
    ['127.0.0.1:5000', '127.0.0.1', 5000],
    ['[::1]', '::1', undefined],
    ['[::1]:5000', '::1', 5000],
  ])('%s', (text, host, port) => {
    expect(readHostWithOptionalPort(text)).toEqual({ ok: true, value: { host, port } });
  });
});

describe('formatHost', () => {
  it('brackets IPv6 literals only', () => {
    expect(formatHost('::1')).toBe('[::1]');
    expect(formatHost('127.0.0.1')).toBe('127.0.0.1');
    expect(formatHost('localhost')).toBe('localhost');
  });
});

describe('hostPortSchema', () => {
  const config = z.object({ readiness: z.object({ listen: hostPortSchema('127.0.0.1:7071') }) });

  it('keeps the text as written', () => {
    expect(config.parse({ readiness: { listen: '[::1]:7071' } }).readiness.listen).toBe('[::1]:7071');
  });

  it('names the field and what is wrong with it', () => {
    const result = config.safeParse({ readiness: { listen: '127.0.0.1:70000' } });
    expect(result.error?.issues).toEqual([
      expect.objectContaining({ path: ['readiness', 'listen'], message: 'port must be between 0 and 65535, got 70000' }),
    ]);
    const bad = config.safeParse({ readiness: { listen: '7071' } });
    expect(bad.error?.issues[0]?.message).toBe('must be host:port, e.g. 127.0.0.1:7071, got "7071"');
  });
});
