import { describe, expect, it } from 'vitest';
import { stillSettled } from './poller.js';

describe('stillSettled', () => {
  const settled = { digest: 'sha256:b', why: 'failed its health checks here', atMs: 0 };

  it('holds the digest back while the tag shows it, for 15 minutes at most', () => {
    expect(stillSettled(settled, 'sha256:b', 15 * 60_000 - 1)).toBe(settled);
    expect(stillSettled(settled, 'sha256:b', 15 * 60_000)).toBeUndefined();
    expect(stillSettled(settled, 'sha256:c', 1)).toBeUndefined(); // the tag moved on
    expect(stillSettled(settled, undefined, 1)).toBeUndefined(); // the container runs it already
  });
});
