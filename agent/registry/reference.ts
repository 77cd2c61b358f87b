import type { ImageReference } from '../ports.js';
import { InvalidImageReferenceError } from './errors.js';

/** The host Docker Hub's registry API answers on; `docker.io` and `index.docker.io` are its names in references. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', DOCKER_HUB_REGISTRY]);

// The grammar of github.com/distribution/reference (the one `docker pull` uses).
const alphaNumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = new RegExp(`^${alphaNumeric}(?:${separator}${alphaNumeric})*$`);
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainPattern = new RegExp(
  `^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]{1,5})?$`,
);
const tagPattern = /^[\w][\w.-]{0,127}$/;
const digestPattern = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const anchoredHexId = /^[a-f0-9]{64}$/;
/** Docker's limit on the whole name (domain and path). */
const nameTotalLengthMax = 255;

export function isDockerHub(registry: string): boolean {
  return DOCKER_HUB_NAMES.has(registry.toLowerCase());
}

export function isValidDigest(text: string): boolean {
  return digestPattern.test(text);
}

/**
 * Parses an image reference the way `docker pull` does:
 * `[registry[:port]/]path[:tag][@sha256:...]`. The first component is a registry host when it
 * contains `.` or `:`, is `localhost`, or has upper-case letters; otherwise the image is on Docker
 * Hub (`registry-1.docker.io`), where single-component names get the `library/` prefix. The tag
 * defaults to `latest` unless a digest is pinned.
 */
export function parseImageReference(text: string): ImageReference {
  const fail = (reason: string): never => {
    throw new InvalidImageReferenceError(text, reason);
  };
  if (text.length === 0) fail('empty reference');
  if (text !== text.trim() || /\s/.test(text)) fail('must not contain white space');

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isValidDigest(digest)) fail(`digest ${JSON.stringify(digest)} must be sha256:<64 hex digits> or sha512:<128 hex digits>`);
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

  let registry: string;
  let repository: string;
  if (hasDomain) {
    if (!domainPattern.test(first)) fail(`registry host ${JSON.stringify(first)} is not a valid host[:port]`);
    const port = /:(\d+)$/.exec(first)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535)) fail(`registry port ${port} out of range`);
    registry = first.toLowerCase();
    repository = name.slice(slash + 1);
  } else {
    registry = DOCKER_HUB_REGISTRY;
    repository = name;
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

/** The host part as Docker writes it: `docker.io` for Docker Hub, the registry host otherwise. */
function referenceDomain(ref: ImageReference): string {
  return isDockerHub(ref.registry) ? 'docker.io' : ref.registry;
}

/** `registry/repository@sha256:...`, the form `docker pull` takes to pull exactly that manifest. */
export function formatByDigest(ref: ImageReference, digest: string): string {
  if (!isValidDigest(digest)) throw new InvalidImageReferenceError(digest, 'not a sha256:<64 hex> or sha512:<128 hex> digest');
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
