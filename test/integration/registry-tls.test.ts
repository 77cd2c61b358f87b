/**
 * The agent's registry client over TLS against a real docker-registry: a CA made here with
 * openssl, a registry that requires client certificates (mutual TLS), and `registry.tls` read by
 * `loadRegistryTls` as the agent reads it at start. With `registry.tls` set the agent speaks TLS
 * to loopback registries too; images are pushed to a plain registry that serves the same storage.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type ClosableRegistryClient } from '../../agent/registry/client.js';
import { noCredentials } from '../../agent/registry/credentials.js';
import { RegistryConnectionError } from '../../agent/registry/errors.js';
import { loadRegistryTls, type RegistryTls } from '../../agent/registry/tls.js';
import { systemClock } from '../../shared/clock.js';
import { ConfigError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/logger.js';
import { pushImage } from '../../tools/fleet/oci.js';
import { startRegistry, type RunningRegistry } from '../../tools/fleet/registry.js';
import { createTestCa, type IssuedCertificate, type TestCa } from '../../tools/fleet/test-ca.js';

// With registry.tls set, the agent speaks TLS to loopback registries too.
const hostAddress = '127.0.0.1';

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('registry client over mutual TLS', () => {
  let dir: string;
  let ca: TestCa;
  let client: IssuedCertificate;
  let plain: RunningRegistry;
  let secure: RunningRegistry;
  const clients: ClosableRegistryClient[] = [];

  const registryClient = (tls: RegistryTls | undefined) => {
    const c = createRegistryClient({
      timeoutMs: 5_000,
      credentials: noCredentials,
      platform: { os: 'linux', architecture: 'amd64' },
      insecureRegistries: [],
      logger: silentLogger(),
      clock: systemClock,
      ...(tls === undefined ? {} : { tls }),
    });
    clients.push(c);
    return c;
  };

  /** The resolve fails to connect; returns the transport error's cause as text. */
  const refusedCause = async (tls: RegistryTls | undefined): Promise<string> => {
    await pushImage(plain.url, 'team/app', 'v1');
    const error = await registryClient(tls)
      .resolve(`${secure.host}/team/app:v1`)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryConnectionError);
    return String((error as Error).cause);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'baton-registry-tls-'));
    ca = await createTestCa(dir);
    const server = await ca.issueServer('registry', { ips: [hostAddress] });
    client = await ca.issueClient('node-1');
    plain = await startRegistry();
    secure = await startRegistry({
      listenHost: hostAddress,
      storageDir: plain.storageDir,
      tls: { ...server, clientCaFile: ca.certFile },
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await secure?.stop();
    await plain?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves a tag over https with the configured CA and client certificate', async () => {
    const pushed = await pushImage(plain.url, 'team/app', 'v1');
    const tls = await loadRegistryTls({ caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile });
    expect(secure.url).toMatch(/^https:/);
    await expect(registryClient(tls).resolve(`${secure.host}/team/app:v1`)).resolves.toMatchObject({ digest: pushed.digest });
  });

  it('without the CA, the registry certificate is not trusted', async () => {
    const tls = await loadRegistryTls({ certFile: client.certFile, keyFile: client.keyFile });
    expect(await refusedCause(tls)).toMatch(/certificate/i);
  });

  it('with the CA but no client certificate, the registry refuses the connection', async () => {
    const tls = await loadRegistryTls({ caFile: ca.certFile });
    // TLS 1.3: the registry verifies the (absent) client certificate after the handshake and hangs up.
    expect(await refusedCause(tls)).toMatch(/other side closed|certificate|alert/i);
  });

  it('a client certificate of another CA is refused too', async () => {
    const otherDir = join(dir, 'other');
    await mkdir(otherDir);
    const other = await createTestCa(otherDir, 'another CA');
    const stranger = await other.issueClient('stranger');
    const tls = await loadRegistryTls({ caFile: ca.certFile, ...stranger });
    expect(await refusedCause(tls)).toMatch(/other side closed|certificate|alert/i);
  });

  it('refuses at start, naming the field: an unreadable file, a file that holds no certificate, a key of another certificate', async () => {
    const missing = await configError(loadRegistryTls({ caFile: join(dir, 'absent.crt') }));
    expect(missing.problems).toEqual([{ path: 'registry.tls.caFile', message: expect.stringMatching(/cannot read .*absent\.crt: ENOENT/) }]);

    const notCert = await configError(loadRegistryTls({ caFile: client.keyFile }));
    expect(notCert.problems).toEqual([{ path: 'registry.tls.caFile', message: expect.stringMatching(/holds no PEM certificate/) }]);

    const garbled = join(dir, 'garbled.crt');
    await writeFile(garbled, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    const bad = await configError(loadRegistryTls({ caFile: garbled }));
    expect(bad.problems).toEqual([{ path: 'registry.tls.caFile', message: expect.stringMatching(/does not parse/) }]);

    const notKey = await configError(loadRegistryTls({ certFile: client.certFile, keyFile: client.certFile }));
    expect(notKey.problems).toEqual([{ path: 'registry.tls.keyFile', message: expect.stringMatching(/no usable unencrypted PEM private key/) }]);

    const mismatched = await configError(loadRegistryTls({ certFile: client.certFile, keyFile: ca.keyFile }));
    expect(mismatched.problems).toEqual([{ path: 'registry.tls.keyFile', message: expect.stringMatching(/is not the private key of the certificate/) }]);
  });
});
