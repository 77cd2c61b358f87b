import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate and its key, as PEM files. */
export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
}

export interface TestCa extends IssuedCertificate {
  /** A server certificate for these IP addresses and DNS names. */
  issueServer(name: string, names: { ips?: string[]; dns?: string[] }): Promise<IssuedCertificate>;
  /** A client certificate (extended key usage clientAuth) with this common name. */
  issueClient(name: string): Promise<IssuedCertificate>;
}

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { timeout: 30_000 });
}

/**
 * A throwaway certificate authority made with `openssl` in `dir`: P-256 keys, valid for one day,
 * for tests that speak TLS to a real server (the registry). Nothing here is for production use.
 */
export async function createTestCa(dir: string, commonName = 'baton test CA'): Promise<TestCa> {
  const ca: IssuedCertificate = { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') };
  await openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', ca.keyFile, '-out', ca.certFile, '-days', '1', '-subj', `/CN=${commonName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);

  async function issue(name: string, extensions: string): Promise<IssuedCertificate> {
    const out: IssuedCertificate = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
    const csr = join(dir, `${name}.csr`);
    const extFile = join(dir, `${name}.ext`);
    await writeFile(extFile, extensions);
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', out.keyFile, '-out', csr, '-subj', `/CN=${name}`]);
    await openssl([
      'x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial',
      '-out', out.certFile, '-days', '1', '-extfile', extFile,
    ]);
    return out;
  }

  return {
    ...ca,
    issueServer(name, names) {
      const alt = [...(names.ips ?? []).map((ip) => `IP:${ip}`), ...(names.dns ?? []).map((dns) => `DNS:${dns}`)];
      if (alt.length === 0) throw new Error('a server certificate needs at least one IP address or DNS name');
      return issue(name, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${alt.join(',')}\n`);
    },
    issueClient(name) {
      return issue(name, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
    },
  };
}
