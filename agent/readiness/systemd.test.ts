import { describe, expect, it } from 'vitest';
import { inheritedSockets, unsetListenEnvironment } from './systemd.js';

describe('socket activation (sd_listen_fds)', () => {
  it('takes the sockets passed to this process, from fd 3 up, with their names', () => {
    expect(inheritedSockets({ LISTEN_PID: '42', LISTEN_FDS: '1' }, 42)).toEqual({ fds: [3], names: [] });
    expect(inheritedSockets({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'readiness:other' }, 42)).toEqual({
      fds: [3, 4],
      names: ['readiness', 'other'],
    });
  });

  it('ignores variables meant for another process, missing or malformed', () => {
    expect(inheritedSockets({ LISTEN_PID: '41', LISTEN_FDS: '1' }, 42)).toBeUndefined();
    expect(inheritedSockets({ LISTEN_FDS: '1' }, 42)).toBeUndefined();
    expect(inheritedSockets({ LISTEN_PID: '42' }, 42)).toBeUndefined();
    expect(inheritedSockets({ LISTEN_PID: '42', LISTEN_FDS: '0' }, 42)).toBeUndefined();
    expect(inheritedSockets({ LISTEN_PID: '42', LISTEN_FDS: 'x' }, 42)).toBeUndefined();
    expect(inheritedSockets({ LISTEN_PID: '042', LISTEN_FDS: '1' }, 42)).toBeUndefined();
  });

  it('unsets the variables so that children do not inherit them', () => {
    const environment: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '1', LISTEN_FDNAMES: 'r', PATH: '/bin' };
    unsetListenEnvironment(environment);
    expect(environment).toEqual({ PATH: '/bin' });
  });
});
