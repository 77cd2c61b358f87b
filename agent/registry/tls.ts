import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { z } from 'zod';
import type { AgentConfig } from '../../shared/config/agent.js';
import { ConfigError } from '../../shared/errors.js';

/**
 * The agent config's `registry.tls`, read and checked at start: a CA bundle the registry client
 * trusts besides the public CAs Node.js ships, and a client certificate with its key for registries that ask
 * for one (mutual TLS). Every file must be readable and hold what its field says, or the agent
 * does not start, with an error naming the field.
 */

export type RegistryTlsConfig = NonNullable<AgentConfig['registry']['tls']>;

/** What undici's `connect` options take. */
export interface RegistryTls {
  /** Node.js's bundled root CAs (`tls.rootCertificates`) followed by the configured ones: a private CA is added, not substituted. */
  ca?: string[];
  cert?: string;
  key?: string;
}

const pemBlocks = (text: string, label: string): string[] =>
  text.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`, 'g')) ?? [];

function parsesAsCertificate(pem: string): boolean {
  try {
    new X509Certificate(pem);
    return true;
  } catch {
    return false;
  }
}

/** One or more PEM certificates, each of which parses. */
const certificatesSchema = z
  .string()
  .transform((text) => pemBlocks(text, 'CERTIFICATE'))
  .refine((blocks) => blocks.length > 0, 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)')
  .refine((blocks) => blocks.every(parsesAsCertificate), 'holds a PEM certificate that does not parse');

/** A PEM private key (PKCS#8, PKCS#1 or SEC1), unencrypted. */
const privateKeySchema = z.string().transform((text, ctx): KeyObject => {
  try {
    return createPrivateKey(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `holds no usable unencrypted PEM private key (${(error as Error).message})` });
    return z.NEVER;
  }
});

export type ReadText = (path: string) => Promise<string>;
const readUtf8: ReadText = (path) => readFile(path, 'utf8');

async function readField(path: string, field: string, read: ReadText): Promise<string> {
  try {
    return await read(path);
  } catch (error) {
    throw new ConfigError(path, [{ path: field, message: `cannot read ${path}: ${(error as Error).message}` }]);
  }
}

function parseField<S extends z.ZodType<unknown, string>>(schema: S, text: string, path: string, field: string): z.output<S> {
  const result = schema.safeParse(text);
  if (result.success) return result.data;
  throw new ConfigError(path, [{ path: field, message: `${path} ${result.error.issues[0]?.message ?? 'is not valid'}` }]);
}

/** Reads and checks the files `registry.tls` names; undefined when there is nothing to configure. */
export async function loadRegistryTls(config: RegistryTlsConfig | undefined, read: ReadText = readUtf8): Promise<RegistryTls | undefined> {
  if (config === undefined) return undefined;
  const tls: RegistryTls = {};
  if (config.caFile !== undefined) {
    const text = await readField(config.caFile, 'registry.tls.caFile', read);
    tls.ca = [...rootCertificates, ...parseField(certificatesSchema, text, config.caFile, 'registry.tls.caFile')];
  }
  if (config.certFile !== undefined || config.keyFile !== undefined) {
    if (config.certFile === undefined || config.keyFile === undefined) {
      throw new ConfigError('agent config', [{ path: 'registry.tls', message: 'certFile and keyFile go together' }]);
    }
    const certText = await readField(config.certFile, 'registry.tls.certFile', read);
    const chain = parseField(certificatesSchema, certText, config.certFile, 'registry.tls.certFile');
    const keyText = await readField(config.keyFile, 'registry.tls.keyFile', read);
    const key = parseField(privateKeySchema, keyText, config.keyFile, 'registry.tls.keyFile');
    if (!new X509Certificate(chain[0] as string).checkPrivateKey(key)) {
      throw new ConfigError(config.keyFile, [
        { path: 'registry.tls.keyFile', message: `${config.keyFile} is not the private key of the certificate in ${config.certFile}` },
      ]);
    }
    tls.cert = chain.join('\n');
    tls.key = keyText;
  }
  return tls;
}
