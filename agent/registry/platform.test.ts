import { describe, expect, it } from 'vitest';
import { formatPlatform, matchPlatform, normalizePlatform, ociPlatform, type Platform } from './platform.js';

describe('ociPlatform', () => {
  it.each([
    ['linux', 'x64', undefined, { os: 'linux', architecture: 'amd64' }],
    ['linux', 'arm64', undefined, { os: 'linux', architecture: 'arm64' }],
    ['linux', 'arm', '7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux', 'arm', '6', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux', 'arm', undefined, { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux', 'arm', 'nonsense', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux', 'ia32', undefined, { os: 'linux', architecture: '386' }],
    ['linux', 'ppc64', undefined, { os: 'linux', architecture: 'ppc64le' }],
    ['aix', 'ppc64', undefined, { os: 'aix', architecture: 'ppc64' }],
    ['linux', 's390x', undefined, { os: 'linux', architecture: 's390x' }],
    ['linux', 'riscv64', undefined, { os: 'linux', architecture: 'riscv64' }],
    ['linux', 'mipsel', undefined, { os: 'linux', architecture: 'mipsle' }],
    ['win32', 'x64', undefined, { os: 'windows', architecture: 'amd64' }],
    ['darwin', 'arm64', undefined, { os: 'darwin', architecture: 'arm64' }],
  ])('%s %s (arm %s)', (platform, arch, armVersion, expected) => {
    expect(ociPlatform(platform, arch, armVersion)).toEqual(expected);
  });
});

describe('normalizePlatform and formatPlatform', () => {
  it('follows containerd', () => {
    expect(normalizePlatform({ os: 'Linux', architecture: 'x86_64' })).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(normalizePlatform({ os: 'linux', architecture: 'aarch64', variant: 'v8' })).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(normalizePlatform({ os: 'linux', architecture: 'arm' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(normalizePlatform({ os: 'linux', architecture: 'armel' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' });
    expect(normalizePlatform({ os: 'linux', architecture: 'amd64', variant: '' })).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })).toBe('linux/arm/v7');
    expect(formatPlatform({ os: 'linux', architecture: 'amd64' })).toBe('linux/amd64');
  });
});

describe('matchPlatform', () => {
  const index: Array<Platform | undefined> = [
    { os: 'unknown', architecture: 'unknown' }, // a buildx attestation
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64', variant: 'v8' },
    { os: 'linux', architecture: 'arm', variant: 'v6' },
    { os: 'linux', architecture: 'arm', variant: 'v7' },
    undefined,
    { os: 'windows', architecture: 'amd64' },
  ];

  it('finds the exact platform', () => {
    expect(matchPlatform({ os: 'linux', architecture: 'amd64' }, index)).toBe(1);
    expect(matchPlatform({ os: 'linux', architecture: 'arm64' }, index)).toBe(2);
    expect(matchPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' }, index)).toBe(4);
    expect(matchPlatform({ os: 'windows', architecture: 'amd64' }, index)).toBe(6);
  });

  it('falls back to an older variant of the same architecture only', () => {
    expect(matchPlatform({ os: 'linux', architecture: 'arm', variant: 'v8' }, index)).toBe(4);
    expect(matchPlatform({ os: 'linux', architecture: 'arm', variant: 'v6' }, index)).toBe(3);
    expect(matchPlatform({ os: 'linux', architecture: 'arm', variant: 'v5' }, index)).toBe(-1);
    expect(matchPlatform({ os: 'linux', architecture: 'amd64', variant: 'v3' }, index)).toBe(1);
    expect(matchPlatform({ os: 'linux', architecture: 's390x' }, index)).toBe(-1);
    // An amd64 host without a variant does not take an image built for v3.
    expect(matchPlatform({ os: 'linux', architecture: 'amd64' }, [{ os: 'linux', architecture: 'amd64', variant: 'v3' }])).toBe(-1);
  });

  it('prefers the first of equal entries, and a v2 entry over plain amd64 on a v3 host', () => {
    const twice: Platform[] = [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'amd64', variant: 'v2' },
      { os: 'linux', architecture: 'amd64' },
    ];
    expect(matchPlatform({ os: 'linux', architecture: 'amd64' }, twice)).toBe(0);
    expect(matchPlatform({ os: 'linux', architecture: 'amd64', variant: 'v3' }, twice)).toBe(1);
  });
});
