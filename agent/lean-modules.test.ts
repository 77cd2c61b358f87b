import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

describe('lean-modules: dockerode without ssh2 and gRPC until they are used', () => {
  it('defers ssh2 and @grpc/* and still hands out working modules on first use', async () => {
    const require = createRequire(import.meta.url);
    const dockerode = require.resolve('dockerode');
    const modem = createRequire(dockerode).resolve('docker-modem');
    const ssh2Path = createRequire(modem).resolve('ssh2');
    const grpcPath = createRequire(dockerode).resolve('@grpc/grpc-js');
    expect(require.cache[ssh2Path]).toBeUndefined(); // each test file runs in its own process (pool: forks)

    await import('./lean-modules.js');
    const Docker = (require('dockerode') as { default?: unknown }).default ?? require('dockerode');
    expect(typeof Docker).toBe('function');
    // dockerode is loaded; the real ssh2 and grpc are not.
    expect((require.cache[ssh2Path] as { filename?: string } | undefined)?.filename).toBe(ssh2Path);
    const ssh2 = createRequire(modem)('ssh2') as { Client: new () => { connect: unknown; end: () => void } };
    expect(require.cache[ssh2Path]?.loaded).toBe(true);

    // First use: the real modules load and work.
    const client = new ssh2.Client();
    expect(typeof client.connect).toBe('function');
    client.end();
    const grpc = createRequire(dockerode)('@grpc/grpc-js') as { Server: unknown; ServerCredentials: { createInsecure: () => unknown } };
    expect(typeof grpc.Server).toBe('function');
    expect(grpc.ServerCredentials.createInsecure()).toBeDefined();
    expect(require.cache[grpcPath]?.exports).not.toBe(grpc); // the stand-in gave way to the real module
  });
});
