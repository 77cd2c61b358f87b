import { describe, expect, it } from 'vitest';
import { basicAuthorization, parseWwwAuthenticate, tokenMarginMs } from './auth.js';

describe('parseWwwAuthenticate', () => {
  it('reads a Docker bearer challenge', () => {
    expect(
      parseWwwAuthenticate([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      ]),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nginx:pull' },
      },
    ]);
  });

  it('reads several challenges, token values, escapes and odd spacing', () => {
    expect(
      parseWwwAuthenticate([
        'Basic realm="Registry \\"Realm\\"" , Bearer realm = "https://a/t", service=svc, error="insufficient_scope"',
        'Newauth',
      ]),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'Registry "Realm"' } },
      { scheme: 'bearer', params: { realm: 'https://a/t', service: 'svc', error: 'insufficient_scope' } },
      { scheme: 'newauth', params: {} },
    ]);
  });

  it('survives garbage', () => {
    expect(parseWwwAuthenticate(['', '  ,, ', '"unterminated', 'Bearer realm="x'])).toEqual([
      { scheme: 'unterminated', params: {} },
      { scheme: 'bearer', params: { realm: 'x' } },
    ]);
  });
});

describe('helpers', () => {
  it('encodes basic credentials', () => {
    expect(basicAuthorization({ username: 'user', password: 'p:w' })).toBe(`Basic ${Buffer.from('user:p:w').toString('base64')}`);
  });

  it('keeps a margin of at most 10 s and at most half the lifetime', () => {
    expect(tokenMarginMs(60_000)).toBe(10_000);
    expect(tokenMarginMs(300_000)).toBe(10_000);
    expect(tokenMarginMs(4_000)).toBe(2_000);
  });
});
