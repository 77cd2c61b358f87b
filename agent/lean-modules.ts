import Module, { createRequire } from 'node:module';

/**
 * Keeps modules the agent never uses out of its memory. Import this first in the agent's main,
 * before anything that loads dockerode.
 *
 * dockerode loads, at require time, two large dependencies the agent never calls:
 * - `ssh2` (through docker-modem, for `ssh://` Docker hosts; the agent talks to a unix socket),
 *   about 14 MB of RSS with its crypto set-up;
 * - `@grpc/grpc-js` and `@grpc/proto-loader` (with protobufjs), for BuildKit sessions.
 * Each gets a stand-in in the CommonJS module cache that loads the real module on first use, so
 * an `ssh://` host or a BuildKit build would still work, just loaded late. Nothing here changes
 * behaviour: only when the modules are read from disk.
 */
const require = createRequire(import.meta.url);

type Loader = () => Record<string | symbol, unknown>;

function deferModule(specifier: string, resolveFrom: string, makeExports: (load: Loader) => unknown): void {
  let resolved: string;
  try {
    resolved = createRequire(resolveFrom).resolve(specifier);
  } catch {
    return; // not installed where expected: leave module loading alone
  }
  if (require.cache[resolved] !== undefined) return; // already loaded for real
  const stand = new Module(resolved);
  const load: Loader = () => {
    if (require.cache[resolved] === stand) delete require.cache[resolved];
    return require(resolved) as Record<string | symbol, unknown>;
  };
  stand.filename = resolved;
  stand.loaded = true;
  stand.exports = makeExports(load);
  require.cache[resolved] = stand;
}

/** Every property read goes to the real module (loaded then). */
const forwardAll = (load: Loader): unknown =>
  new Proxy({}, { get: (_target, property) => load()[property], has: (_target, property) => property in load() });

function locate(specifier: string, from: string): string | undefined {
  try {
    return createRequire(from).resolve(specifier);
  } catch {
    return undefined;
  }
}

const dockerode = locate('dockerode', import.meta.url);
const dockerModem = dockerode === undefined ? undefined : locate('docker-modem', dockerode);
if (dockerode !== undefined) {
  deferModule('@grpc/grpc-js', dockerode, forwardAll);
  deferModule('@grpc/proto-loader', dockerode, forwardAll);
}
if (dockerModem !== undefined) {
  // docker-modem reads `require('ssh2').Client` once at load: hand it a constructor that builds
  // the real client when (if ever) an ssh:// connection is made.
  deferModule('ssh2', dockerModem, (load) => {
    function LazySshClient(...args: unknown[]): unknown {
      const Client = load().Client as new (...a: unknown[]) => unknown;
      return new Client(...args);
    }
    return new Proxy({ Client: LazySshClient } as Record<string | symbol, unknown>, {
      get: (target, property) => (property === 'Client' ? target.Client : load()[property]),
    });
  });
}
