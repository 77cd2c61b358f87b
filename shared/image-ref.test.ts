import { describe, expect, it } from 'vitest';
import {
  DOCKER_HUB_REGISTRY,
  InvalidImageReferenceError,
  digestSchema,
  formatByDigest,
  formatImageReference,
  imageReferenceTextSchema,
  isDigest,
  parseDigestReference,
  parseImageReference,
  sameRepository,
  sha256DigestSchema,
} from './image-ref.js';

const D = `sha256:${'a'.repeat(64)}`;
const D512 = `sha512:${'c'.repeat(128)}`;

describe('parseImageReference', () => {
  it.each([
    ['nginx', DOCKER_HUB_REGISTRY, 'library/nginx', 'latest', undefined],
    ['nginx:1.27', DOCKER_HUB_REGISTRY, 'library/nginx', '1.27', undefined],
    ['team/app:v2', DOCKER_HUB_REGISTRY, 'team/app', 'v2', undefined],
    ['docker.io/nginx', DOCKER_HUB_REGISTRY, 'library/nginx', 'latest', undefined],
    ['index.docker.io/team/app', DOCKER_HUB_REGISTRY, 'team/app', 'latest', undefined],
    ['registry-1.docker.io/nginx:1', DOCKER_HUB_REGISTRY, 'library/nginx', '1', undefined],
    ['127.0.0.1:5000/app', '127.0.0.1:5000', 'app', 'latest', undefined],
    ['127.0.0.1:5000/team/app:v1', '127.0.0.1:5000', 'team/app', 'v1', undefined],
    ['localhost/app:v1', 'localhost', 'app', 'v1', undefined],
    ['localhost:5000/app', 'localhost:5000', 'app', 'latest', undefined],
    ['registry.example.com/a/b/c:t', 'registry.example.com', 'a/b/c', 't', undefined],
    ['Registry.Example.com/app', 'registry.example.com', 'app', 'latest', undefined],
    ['MyHost/app', 'myhost', 'app', 'latest', undefined],
    ['[::1]:5000/app:v1', '[::1]:5000', 'app', 'v1', undefined],
    ['ghcr.io/o/my_app-x.y__z:v1.2-rc_3', 'ghcr.io', 'o/my_app-x.y__z', 'v1.2-rc_3', undefined],
    [`nginx@${D}`, DOCKER_HUB_REGISTRY, 'library/nginx', undefined, D],
    [`127.0.0.1:5000/app:v1@${D}`, '127.0.0.1:5000', 'app', 'v1', D],
    ['localhost:5000', DOCKER_HUB_REGISTRY, 'library/localhost', '5000', undefined],
    [`app@${D512}`, DOCKER_HUB_REGISTRY, 'library/app', undefined, D512],
    ['[2001:db8::1]/app', '[2001:db8::1]', 'app', 'latest', undefined],
    ['docker.io/library/nginx', DOCKER_HUB_REGISTRY, 'library/nginx', 'latest', undefined],
    ['localhost:5000/app:V_1', 'localhost:5000', 'app', 'V_1', undefined],
    ['r.io/a---b/c__d', 'r.io', 'a---b/c__d', 'latest', undefined],
    ['r.io:1/app', 'r.io:1', 'app', 'latest', undefined],
  ])('%s', (text, registry, repository, tag, digest) => {
    expect(parseImageReference(text)).toEqual({ registry, repository, tag, digest });
  });

  it.each([
    ['', /empty/],
    [' nginx', /white space/],
    ['Nginx', /lowercase/],
    ['127.0.0.1:5000/App', /lowercase/],
    ['app:', /tag ""/],
    ['app:-bad', /tag/],
    [`app:${'x'.repeat(129)}`, /tag/],
    ['app@sha256:abc', /digest/],
    [`app@md5:${'a'.repeat(32)}`, /digest/],
    [`app@sha256:${'A'.repeat(64)}`, /digest/],
    ['a//b', /empty path component/],
    ['app/', /empty path component/],
    ['127.0.0.1:5000/', /missing repository/],
    ['a/-b', /path component "-b"/],
    ['a/b..c', /path component/],
    ['bad_host.com:/app', /registry host/],
    ['host.com:99999/app', /port 99999/],
    ['a'.repeat(64), /image id/],
    [`r.io/${'a'.repeat(260)}`, /longer than 255/],
    [':tag', /missing repository/],
    [`app@sha512:${'a'.repeat(64)}`, /digest/],
    [`app@sha256:${'a'.repeat(128)}`, /digest/],
    [`app@${D}@${D}`, /digest/],
    ['r.io:0/app', /port 0/],
    ['-r.io/app', /registry host "-r.io"/],
    ['-app', /path component "-app"/],
    ['r.io/a___b', /path component/],
    ['r.io/_app', /path component/],
    ['app\tname', /white space/],
  ])('rejects %j', (text, reason) => {
    let caught: unknown;
    try {
      parseImageReference(text);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidImageReferenceError);
    expect(caught).toMatchObject({ code: 'IMAGE_REFERENCE_INVALID', reference: text });
    expect((caught as Error).message).toMatch(reason);
  });
});

describe('formatByDigest', () => {
  it('writes registry/repository@digest, with docker.io for Docker Hub', () => {
    expect(formatByDigest(parseImageReference('127.0.0.1:5000/team/app:v1'), D)).toBe(`127.0.0.1:5000/team/app@${D}`);
    expect(formatByDigest(parseImageReference('nginx:1'), D)).toBe(`docker.io/library/nginx@${D}`);
    expect(formatByDigest(parseImageReference(`app@sha256:${'b'.repeat(64)}`), D)).toBe(`docker.io/library/app@${D}`);
  });

  it('refuses something that is not a digest', () => {
    expect(() => formatByDigest(parseImageReference('app'), 'latest')).toThrow(InvalidImageReferenceError);
  });

  it('round-trips through formatImageReference', () => {
    for (const text of ['nginx', `127.0.0.1:5000/a/b:v1@${D}`, 'ghcr.io/o/app:1']) {
      const ref = parseImageReference(text);
      expect(parseImageReference(formatImageReference(ref))).toEqual(ref);
    }
    expect(formatImageReference(parseImageReference('nginx'))).toBe('docker.io/library/nginx:latest');
  });
});

describe('digests', () => {
  it.each([
    [D, true],
    [D512, true],
    [`sha256:${'a'.repeat(63)}`, false],
    [`sha256:${'A'.repeat(64)}`, false],
    [`sha512:${'a'.repeat(64)}`, false],
    [`sha384:${'a'.repeat(96)}`, false],
    [`md5:${'a'.repeat(32)}`, false],
    [` ${D}`, false],
    ['', false],
  ])('%s is a digest: %s', (text, expected) => {
    expect(isDigest(text)).toBe(expected);
    expect(digestSchema.safeParse(text).success).toBe(expected);
  });

  it('sha256DigestSchema takes sha256 only', () => {
    expect(sha256DigestSchema.safeParse(D).success).toBe(true);
    expect(sha256DigestSchema.safeParse(D512).success).toBe(false);
  });
});

describe('parseDigestReference', () => {
  const image = `127.0.0.1:5000/team/app@${D}`;

  it('splits name@digest references, with or without a registry port, keeping the name as written', () => {
    expect(parseDigestReference(image)).toEqual({ repository: '127.0.0.1:5000/team/app', digest: D });
    expect(parseDigestReference(`app@${D}`)).toEqual({ repository: 'app', digest: D });
    expect(parseDigestReference(`app@${D512}`)).toEqual({ repository: 'app', digest: D512 });
  });

  it.each([
    '127.0.0.1:5000/app:v1',
    `127.0.0.1:5000/app:v1@${D}`,
    `app@sha256:${'a'.repeat(63)}`,
    `app@sha256:${'A'.repeat(64)}`,
    `@${D}`,
    `app@sha512:${'a'.repeat(64)}`,
    'app',
  ])('rejects %s', (reference) => {
    expect(parseDigestReference(reference)).toBeUndefined();
  });
});

describe('sameRepository', () => {
  it.each([
    ['nginx', `docker.io/library/nginx@${D}`, true],
    ['team/app', 'index.docker.io/team/app:v1', true],
    ['127.0.0.1:5000/app', `127.0.0.1:5000/app@${D}`, true],
    ['127.0.0.1:5000/app', '127.0.0.1:5001/app', false],
    ['app', 'other', false],
    ['app', 'Not A Reference', false],
  ])('%s ~ %s: %s', (a, b, expected) => {
    expect(sameRepository(a, b)).toBe(expected);
  });
});

describe('imageReferenceTextSchema', () => {
  it('keeps valid text as written and names the grammar problem otherwise', () => {
    expect(imageReferenceTextSchema.parse('nginx:1')).toBe('nginx:1');
    const result = imageReferenceTextSchema.safeParse('Bad/Name');
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(/not an image reference: repository name must be lowercase/);
  });
});
