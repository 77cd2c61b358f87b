import { BatonError } from '../../shared/errors.js';

/**
 * Everything the registry client raises on purpose. The update loop catches RegistryError as a
 * whole: a registry that misbehaves skips a poll, it never takes a node down (I4).
 */
export class RegistryError extends BatonError {}

/** 404 for the manifest: the tag (or digest) does not exist, or the repository does not. */
export class ManifestNotFoundError extends RegistryError {
  constructor(
    readonly registry: string,
    readonly repository: string,
    readonly reference: string,
  ) {
    super('REGISTRY_MANIFEST_NOT_FOUND', `manifest ${repository}:${reference} not found on ${registry}`);
  }
}

/** 429, or 503 with Retry-After: come back later. `retryAfterMs` is undefined when the registry gave no hint. */
export class RegistryRateLimitedError extends RegistryError {
  constructor(
    readonly registry: string,
    readonly status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super(
      'REGISTRY_RATE_LIMITED',
      `registry ${registry} answered ${status}` +
        (retryAfterMs === undefined ? '' : `, retry after ${Math.round(retryAfterMs / 1000)} s`),
    );
  }
}

/** Credentials missing or rejected, or the token endpoint refused or gave a token the registry then refused. */
export class RegistryAuthError extends RegistryError {
  constructor(
    readonly registry: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('REGISTRY_AUTH_FAILED', `registry ${registry}: ${message}`, options);
  }
}

/** A request got no (complete) answer within the configured timeout. */
export class RegistryTimeoutError extends RegistryError {
  constructor(
    readonly url: string,
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super('REGISTRY_TIMEOUT', `no answer from ${url} within ${timeoutMs} ms`, options);
  }
}

/** Connection refused or reset, DNS failure, TLS failure: the registry (or its token endpoint) could not be reached. */
export class RegistryConnectionError extends RegistryError {
  constructor(
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    const detail = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super('REGISTRY_UNREACHABLE', `cannot reach ${url}${detail}`, options);
  }
}

/** A status the protocol does not allow here (500, 400, a redirect, 503 without Retry-After...). */
export class UnexpectedRegistryStatusError extends RegistryError {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
  ) {
    super('REGISTRY_UNEXPECTED_STATUS', `${method} ${url} answered ${status}`);
  }
}

/** The Docker-Content-Digest header is missing or not a `sha256:<64 hex>` digest. */
export class InvalidDigestHeaderError extends RegistryError {
  constructor(
    readonly url: string,
    readonly received: string | undefined,
  ) {
    super(
      'REGISTRY_DIGEST_INVALID',
      received === undefined
        ? `${url} answered without a Docker-Content-Digest header`
        : `${url} answered with a malformed Docker-Content-Digest header ${JSON.stringify(received.slice(0, 100))}`,
    );
  }
}

/** Any other answer that breaks the distribution protocol: unknown media type, invalid index, digest mismatch. */
export class RegistryProtocolError extends RegistryError {
  constructor(
    readonly url: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('REGISTRY_PROTOCOL', `${url}: ${message}`, options);
  }
}

/** A multi-platform index has no manifest this host can run. */
export class PlatformNotFoundError extends RegistryError {
  constructor(
    readonly image: string,
    readonly wanted: string,
    readonly available: string[],
  ) {
    super(
      'REGISTRY_PLATFORM_NOT_FOUND',
      `${image} has no manifest for ${wanted} (available: ${available.length === 0 ? 'none' : available.join(', ')})`,
    );
  }
}
