import { z } from 'zod';
import { BatonError } from './errors.js';

/**
 * Image references and content digests, after the grammar of github.com/distribution/reference
 * (the one `docker pull` uses): `[domain[:port]/]path[:tag][@digest]`.
 */

/** A reference split into its parts, Docker Hub names normalized (`nginx` → `registry-1.docker.io`, `library/nginx`). */
export interface ImageReference {
  /** Registry host[:port], e.g. `127.0.0.1:5000` or `registry-1.docker.io`. */
  registry: string;
  /** Repository path, e.g. `library/app`. */
  repository: string;
  /** Tag, e.g. `latest`; undefined when the reference pins a digest. */
  tag: string | undefined;
  /** Digest pinned in the reference (`name@sha256:...`), if any. */
  digest: string | undefined;
}

/** The text is not an image reference (or not the kind the caller needs). */
export class InvalidImageReferenceError extends BatonError {
  constructor(
    readonly reference: string,
    readonly reason: string,
  ) {
    super('IMAGE_REFERENCE_INVALID', `invalid image reference ${JSON.stringify(reference)}: ${reason}`);
  }
}

// ---- digests

/** Hex digits of each digest algorithm Baton accepts (registered algorithms of go-digest). */
const hexDigitsByAlgorithm = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof hexDigitsByAlgorithm;

/** `^(?:sha256:<64 hex>|...)$` for the algorithms given, lower-case hex only as Docker writes them. */
function digestPatternOf(algorithms: readonly DigestAlgorithm[]): RegExp {
  const alternatives = algorithms.map((algorithm) => `${algorithm}:[a-f0-9]{${hexDigitsByAlgorithm[algorithm]}}`);
  return new RegExp(`^(?:${alternatives.join('|')})$`);
}

const digestPattern = digestPatternOf(['sha256', 'sha512']);
const sha256DigestPattern = digestPatternOf(['sha256']);

/** `sha256:<64 hex>` or `sha512:<128 hex>`. */
export function isDigest(text: string): boolean {
  return digestPattern.test(text);
}

export const digestSchema = z.string().regex(digestPattern, 'must be a content digest like sha256:<64 hex digits>');

/** Narrower than digestSchema, for where only sha256 is verified (the registry client hashes index bodies with it). */
export const sha256DigestSchema = z.string().regex(sha256DigestPattern, 'must be sha256:<64 lower-case hex digits>');

// ---- references

/** The host Docker Hub's registry API answers on; `docker.io` and `index.docker.io` are its names in references. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', DOCKER_HUB_REGISTRY]);

const alphaNumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = new RegExp(`^${alphaNumeric}(?:${separator}${alphaNumeric})*$`);
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainPattern = new RegExp(`^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]{1,5})?$`);
const tagPattern = /^[\w][\w.-]{0,127}$/;
const anchoredHexId = /^[a-f0-9]{64}$/;
/** Docker's limit on the whole name (domain and path). */
const nameTotalLengthMax = 255;
const portMax = 65_535;

export function isDockerHub(registry: string): boolean {
  return DOCKER_HUB_NAMES.has(registry.toLowerCase());
}

/**
 * Parses an image reference the way `docker pull` does. The first component is a registry host
 * when it contains `.` or `:`, is `localhost`, or has upper-case letters; otherwise the image is
 * on Docker Hub, where single-component names get the `library/` prefix. The tag defaults to
 * `latest` unless a digest is pinned. Throws InvalidImageReferenceError.
 */
export function parseImageReference(text: string): ImageReference {
  const fail = (reason: string): never => {
    throw new InvalidImageReferenceError(text, reason);
  };
  if (text.length === 0) fail('empty reference');
  if (/\s/.test(text)) fail('must not contain white space');

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) fail(`digest ${JSON.stringify(digest)} must be sha256:<64 hex digits> or sha512:<128 hex digits>`);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) fail(`tag ${JSON.stringify(tag)} must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }

  const name = rest;
  if (name === '') fail('missing repository name');
  if (name.length > nameTotalLengthMax) fail(`name longer than ${nameTotalLengthMax} characters`);
  if (anchoredHexId.test(name)) fail('a 64-hex-digit image id is not a repository name');

  const slash = name.indexOf('/');
  const first = slash === -1 ? name : name.slice(0, slash);
  const hasDomain =
    slash !== -1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());

  let registry = DOCKER_HUB_REGISTRY;
  let repository = name;
  if (hasDomain) {
    if (!domainPattern.test(first)) fail(`registry host ${JSON.stringify(first)} is not a valid host[:port]`);
    const port = /:(\d+)$/.exec(first)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > portMax)) fail(`registry port ${port} out of range`);
    registry = first.toLowerCase();
    repository = name.slice(slash + 1);
  }
  if (isDockerHub(registry)) {
    registry = DOCKER_HUB_REGISTRY;
    // Official images live under `library/` (Docker adds it for `docker.io/x`, `index.docker.io/x` and plain `x`).
    if (!repository.includes('/')) repository = `library/${repository}`;
  }

  if (repository === '') fail('missing repository name');
  if (repository !== repository.toLowerCase()) fail('repository name must be lowercase');
  for (const component of repository.split('/')) {
    if (!pathComponent.test(component)) {
      fail(
        component === ''
          ? 'empty path component (double or trailing slash)'
          : `path component ${JSON.stringify(component)} must be lowercase letters and digits, separated by '.', '_', '__' or '-'`,
      );
    }
  }

  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, tag, digest };
}

/** parseImageReference, or undefined for text that is not a reference. */
export function tryParseImageReference(text: string): ImageReference | undefined {
  try {
    return parseImageReference(text);
  } catch (error) {
    if (error instanceof InvalidImageReferenceError) return undefined;
    throw error;
  }
}

/**
 * `name@digest` with no tag, the form that pulls exactly one manifest: the name as written
 * (`app`, `127.0.0.1:5000/team/app`) and the digest; undefined for any other text.
 */
export function parseDigestReference(text: string): { repository: string; digest: string } | undefined {
  const ref = tryParseImageReference(text);
  if (ref?.digest === undefined || ref.tag !== undefined) return undefined;
  return { repository: text.slice(0, text.lastIndexOf('@')), digest: ref.digest };
}

/** Whether two references name the same repository on the same registry (`nginx` and `docker.io/library/nginx:1` do). */
export function sameRepository(a: string, b: string): boolean {
  const refA = tryParseImageReference(a);
  const refB = tryParseImageReference(b);
  return refA !== undefined && refB !== undefined && refA.registry === refB.registry && refA.repository === refB.repository;
}

/** The host part as Docker writes it: `docker.io` for Docker Hub, the registry host otherwise. */
function referenceDomain(ref: ImageReference): string {
  return isDockerHub(ref.registry) ? 'docker.io' : ref.registry;
}

/** `registry/repository@sha256:...`, the form `docker pull` takes to pull exactly that manifest. */
export function formatByDigest(ref: ImageReference, digest: string): string {
  if (!isDigest(digest)) throw new InvalidImageReferenceError(digest, 'not a sha256:<64 hex> or sha512:<128 hex> digest');
  return `${referenceDomain(ref)}/${ref.repository}@${digest}`;
}

/** Writes a reference back in its fully qualified form, e.g. `docker.io/library/nginx:1.27`. */
export function formatImageReference(ref: ImageReference): string {
  return (
    `${referenceDomain(ref)}/${ref.repository}` +
    (ref.tag === undefined ? '' : `:${ref.tag}`) +
    (ref.digest === undefined ? '' : `@${ref.digest}`)
  );
}

/** A zod schema of reference text that follows the grammar (the text is kept as written). */
export const imageReferenceTextSchema = z.string().superRefine((text, context) => {
  try {
    parseImageReference(text);
  } catch (error) {
    if (!(error instanceof InvalidImageReferenceError)) throw error;
    context.addIssue({ code: 'custom', message: `not an image reference: ${error.reason}` });
  }
});
