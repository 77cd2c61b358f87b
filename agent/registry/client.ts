import { createHash } from 'node:crypto';
import { Agent, type Dispatcher } from 'undici';
import type { Clock } from '../../shared/clock.js';
import { formatHost, readHostWithOptionalPort } from '../../shared/host-port.js';
import type { Logger } from '../../shared/logger.js';
import { formatImageReference, parseImageReference, sha256DigestSchema, type ImageReference } from '../../shared/image-ref.js';
import type { RegistryClient, ResolvedDigest } from '../ports.js';
import { Authenticator } from './auth.js';
import type { CredentialStore } from './credentials.js';
import {
  InvalidDigestHeaderError,
  ManifestNotFoundError,
  PlatformNotFoundError,
  RegistryAuthError,
  RegistryProtocolError,
} from './errors.js';
import { createSender, headerValue, statusError, type HttpRequest, type HttpResponse } from './http.js';
import { formatPlatform, matchPlatform, type Platform } from './platform.js';
import type { RegistryTls } from './tls.js';
import { acceptedManifestTypes, imageIndexSchema, indexMediaTypes, manifestMediaTypes } from './schemas.js';

export interface RegistryClientOptions {
  /** Deadline of every single request (connect, headers and body). */
  timeoutMs: number;
  credentials: CredentialStore;
  /** This host's platform, e.g. from `ociPlatform(process.platform, process.arch)`. */
  platform: Platform;
  /** Registries spoken to over plain HTTP, as `host[:port]` (or `host` for every port); loopback always is. */
  insecureRegistries: string[];
  logger: Logger;
  clock: Clock;
  /** Transport; tests pass a MockAgent or a counting wrapper. Default: an undici Agent the client owns. */
  dispatcher?: Dispatcher;
  /** CAs and client certificate of the Agent the client creates (from `loadRegistryTls`); ignored with `dispatcher`. */
  tls?: RegistryTls;
  /** How many index digest → platform digest answers are kept (default 256). */
  indexCacheSize?: number;
}

export interface ClosableRegistryClient extends RegistryClient {
  /** Closes the undici Agent the client created; a dispatcher passed in is left alone. */
  close(): Promise<void>;
}

/** An index or manifest list is at most a few KiB; the OCI spec lets registries refuse more than 4 MiB. */
const MAX_INDEX_BYTES = 4 * 1024 * 1024;
const ACCEPT = acceptedManifestTypes.join(', ');

/** The registry's host without its port, IPv6 in brackets as references write it. */
function hostOf(registry: string): string {
  const reading = readHostWithOptionalPort(registry);
  return reading.ok ? formatHost(reading.value.host) : registry;
}

/** `localhost`, 127.0.0.0/8 and ::1: Docker speaks plain HTTP to these. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = hostOf(registry.toLowerCase());
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * `http` for registries listed as insecure (`host:port`, or `host` for any port) and, unless
 * `registry.tls` is set, for loopback ones (as Docker does); `https` otherwise. With `registry.tls`
 * the operator asked for TLS: a loopback registry then speaks it too, unless listed as insecure.
 */
export function registryScheme(registry: string, insecureRegistries: string[], tlsConfigured = false): 'http' | 'https' {
  if (!tlsConfigured && isLoopbackRegistry(registry)) return 'http';
  const wanted = registry.toLowerCase();
  for (const entry of insecureRegistries) {
    const normalized = entry
      .trim()
      .toLowerCase()
      .replace(/^https?:\/\//, '')
      .replace(/\/.*$/, '');
    if (normalized === wanted || normalized === hostOf(wanted)) return 'http';
  }
  return 'https';
}

function mediaTypeOf(res: HttpResponse): string | undefined {
  const value = headerValue(res.headers, 'content-type');
  return value?.split(';')[0]?.trim().toLowerCase() || undefined;
}

/** The registry client of the agent: `resolve` turns an image tag into the digest this host should run. */
export function createRegistryClient(options: RegistryClientOptions): ClosableRegistryClient {
  const { clock, logger, timeoutMs } = options;
  const ownDispatcher =
    options.dispatcher === undefined
      ? new Agent({
          connectTimeout: timeoutMs,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          ...(options.tls === undefined ? {} : { connect: options.tls }),
        })
      : undefined;
  const send = createSender(options.dispatcher ?? (ownDispatcher as Agent), timeoutMs);
  const auth = new Authenticator({ credentials: options.credentials, clock, send, logger });
  const indexCacheSize = options.indexCacheSize ?? 256;
  /** `registry/repository@indexDigest` → platform manifest digest; digests are content addresses, so never stale. */
  const platformDigests = new Map<string, string>();

  const baseUrl = (ref: ImageReference): string => `${registryScheme(ref.registry, options.insecureRegistries, options.tls !== undefined)}://${ref.registry}`;

  /** Sends with whatever authorization the registry asked for; after a 401 learns the challenge and retries once. */
  async function exchange(ref: ImageReference, req: HttpRequest, signal?: AbortSignal): Promise<HttpResponse> {
    const withAuth = (authorization: string | undefined): HttpRequest =>
      authorization === undefined ? req : { ...req, headers: { ...req.headers, authorization } };
    const first = await auth.authorization(ref.registry, ref.repository, signal);
    const res = await send(withAuth(first), signal);
    if (res.status !== 401) return res;
    auth.unauthorized(ref.registry, ref.repository, res.headers, first);
    const second = await auth.authorization(ref.registry, ref.repository, signal);
    if (second === undefined) throw new RegistryAuthError(ref.registry, 'answered 401 and no authorization can be sent');
    const retried = await send(withAuth(second), signal);
    if (retried.status === 401) {
      try {
        // Forget a refused token so the next poll asks for a fresh one.
        auth.unauthorized(ref.registry, ref.repository, retried.headers, second);
      } catch {
        // The refusal below says it all.
      }
      throw new RegistryAuthError(ref.registry, `refused the ${second.split(' ')[0]} authorization for ${ref.repository}`);
    }
    return retried;
  }

  function checkStatus(ref: ImageReference, reference: string, req: HttpRequest, res: HttpResponse): void {
    if (res.status === 200) return;
    if (res.status === 404) throw new ManifestNotFoundError(ref.registry, ref.repository, reference);
    if (res.status === 403) throw new RegistryAuthError(ref.registry, `access to ${ref.repository} denied (403)`);
    throw statusError(ref.registry, req, res, clock.nowMs());
  }

  async function resolvePlatform(ref: ImageReference, image: string, indexDigest: string, signal?: AbortSignal): Promise<string> {
    const cacheKey = `${ref.registry}/${ref.repository}@${indexDigest}`;
    const cached = platformDigests.get(cacheKey);
    if (cached !== undefined) {
      platformDigests.delete(cacheKey);
      platformDigests.set(cacheKey, cached);
      return cached;
    }
    // By digest, not by tag: the tag may have moved since the HEAD, the digest cannot.
    const url = `${baseUrl(ref)}/v2/${ref.repository}/manifests/${indexDigest}`;
    const req: HttpRequest = { method: 'GET', url, headers: { accept: ACCEPT }, maxBodyBytes: MAX_INDEX_BYTES };
    const res = await exchange(ref, req, signal);
    checkStatus(ref, indexDigest, req, res);
    const actual = `sha256:${createHash('sha256').update(res.body).digest('hex')}`;
    if (actual !== indexDigest) throw new RegistryProtocolError(url, `body has digest ${actual}, not the requested ${indexDigest}`);
    let document: unknown;
    try {
      document = JSON.parse(res.body.toString('utf8'));
    } catch (error) {
      throw new RegistryProtocolError(url, 'image index is not valid JSON', { cause: error });
    }
    const parsed = imageIndexSchema.safeParse(document);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new RegistryProtocolError(url, `invalid image index: ${problems}`);
    }
    const runnable = parsed.data.manifests.filter((m) => manifestMediaTypes.has(m.mediaType));
    const chosen = runnable[matchPlatform(options.platform, runnable.map((m) => m.platform))];
    if (chosen === undefined) {
      const available = runnable.flatMap((m) => (m.platform ? [formatPlatform(m.platform)] : []));
      throw new PlatformNotFoundError(image, formatPlatform(options.platform), available);
    }
    platformDigests.set(cacheKey, chosen.digest);
    while (platformDigests.size > indexCacheSize) {
      const oldest = platformDigests.keys().next().value;
      if (oldest === undefined) break;
      platformDigests.delete(oldest);
    }
    logger.debug(
      { image, indexDigest, platform: formatPlatform(options.platform), digest: chosen.digest },
      'multi-platform index resolved',
    );
    return chosen.digest;
  }

  async function resolve(image: string, signal?: AbortSignal): Promise<ResolvedDigest> {
    const ref = parseImageReference(image);
    const reference = ref.digest ?? (ref.tag as string);
    const url = `${baseUrl(ref)}/v2/${ref.repository}/manifests/${reference}`;
    const req: HttpRequest = { method: 'HEAD', url, headers: { accept: ACCEPT } };
    const res = await exchange(ref, req, signal);
    checkStatus(ref, reference, req, res);

    const header = headerValue(res.headers, 'docker-content-digest');
    let tagDigest: string;
    if (header === undefined && ref.digest !== undefined) {
      tagDigest = ref.digest; // Asked by digest: the answer cannot be anything else.
    } else {
      const parsed = sha256DigestSchema.safeParse(header?.trim());
      if (!parsed.success) throw new InvalidDigestHeaderError(url, header);
      tagDigest = parsed.data;
      if (ref.digest !== undefined && ref.digest !== tagDigest) {
        throw new RegistryProtocolError(url, `answered digest ${tagDigest} for ${ref.digest}`);
      }
    }

    const mediaType = mediaTypeOf(res);
    if (mediaType === undefined) throw new RegistryProtocolError(url, 'answered without a Content-Type');
    if (manifestMediaTypes.has(mediaType)) return { digest: tagDigest, tagDigest, mediaType };
    if (indexMediaTypes.has(mediaType)) {
      const digest = await resolvePlatform(ref, formatImageReference(ref), tagDigest, signal);
      return { digest, tagDigest, mediaType };
    }
    throw new RegistryProtocolError(url, `unsupported manifest media type ${JSON.stringify(mediaType)}`);
  }

  return {
    resolve,
    close: async () => {
      await ownDispatcher?.close();
    },
  };
}
