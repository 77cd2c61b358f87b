import { describe, expect, it } from 'vitest';
import { createFormat } from './format.js';

const { shortDigest, imageName, duration, ago, compact } = createFormat();

describe('status page formatting', () => {
  it('shortens digests and names images by their last path part', () => {
    expect(shortDigest(`sha256:${'ab'.repeat(32)}`)).toBe('sha256:abababababab');
    expect(shortDigest(null)).toBe('—');
    expect(imageName('127.0.0.1:5000/team/app:v2')).toBe('app:v2');
    expect(imageName(`registry.example/app@sha256:${'0'.repeat(64)}`)).toBe('app:latest');
    expect(imageName(null)).toBeNull();
  });

  it('writes durations in the two largest units that matter', () => {
    expect(duration(null)).toBe('—');
    expect(duration(-5_000)).toBe('0 s');
    expect(duration(42_000)).toBe('42 s');
    expect(duration(120_000)).toBe('2 min');
    expect(duration(125_000)).toBe('2 min 5 s');
    expect(duration(3 * 3_600_000 + 60_000)).toBe('3 h 1 min');
    expect(duration(50 * 3_600_000)).toBe('2 d 2 h');
    expect(ago(10_000, 10_500)).toBe('just now');
    expect(ago(10_000, 70_000)).toBe('1 min ago');
  });

  it('compacts digests and rollout ids inside event messages', () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    expect(compact(`rollout 0123abcd-0000-4000-8000-00000000000f of ${digest}`)).toBe('rollout 0123abcd of sha256:cccccccccccc');
  });
});
