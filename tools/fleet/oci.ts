import { createHash, randomUUID } from 'node:crypto';
import { MediaType } from '../../agent/registry/schemas.js';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';

/**
 * Pushes images straight through the distribution HTTP API: no Docker engine needed. Every image
 * is real: a gzip'd tar layer, a config blob whose diff_ids match it, and a Docker v2 or OCI
 * manifest; indexes reference one such manifest per platform.
 */

/** The registry's media types, as the agent's registry client knows them. */
export const MediaTypes = MediaType;

export interface ImagePlatform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
}

export interface PushedImage {
  /** Digest of the manifest: what a tag resolves to and what `docker pull repo@digest` takes. */
  digest: string;
  mediaType: string;
  size: number;
  platform: ImagePlatform;
  config: Blob;
  layers: Blob[];
}

export interface PushedIndex {
  digest: string;
  mediaType: string;
  manifests: PushedImage[];
}

export interface PushImageOptions {
  /** Docker v2 schema 2 (default) or OCI. */
  format?: 'docker' | 'oci';
  platform?: ImagePlatform;
  /** Files of the single layer, path → content. Default: `/baton-image.txt` holding the label. */
  files?: Record<string, string>;
  /** Makes the image unique (config label and default file content); random by default. */
  label?: string;
  /** Image config: Cmd, Env, Healthcheck... merged into the config's `config` object. */
  imageConfig?: Record<string, unknown>;
}

export interface PushIndexOptions {
  /** OCI index (default) or Docker manifest list; the platform manifests follow. */
  format?: 'oci' | 'docker';
  /** Default linux/amd64 and linux/arm64. */
  platforms?: ImagePlatform[];
  label?: string;
}

export const sha256 = (data: Uint8Array | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function assertLoopback(registryUrl: string): URL {
  const url = new URL(registryUrl);
  if (!(url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname))) {
    throw new Error(`test registries are on loopback only, got ${registryUrl}`);
  }
  return url;
}

async function failure(what: string, statusCode: number, body: { text(): Promise<string> }): Promise<Error> {
  const text = await body.text().catch(() => '');
  return new Error(`${what} answered ${statusCode}: ${text.slice(0, 500)}`);
}

// ---- tar + gzip

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function tarHeader(path: string, size: number, mode: number): Buffer {
  const header = Buffer.alloc(512, 0);
  if (Buffer.byteLength(path) > 100) throw new Error(`tar path too long for this helper: ${path}`);
  header.write(path, 0, 100, 'utf8');
  header.write(octal(mode, 8), 100, 8, 'ascii');
  header.write(octal(0, 8), 108, 8, 'ascii'); // uid
  header.write(octal(0, 8), 116, 8, 'ascii'); // gid
  header.write(octal(size, 12), 124, 12, 'ascii');
  header.write(octal(0, 12), 136, 12, 'ascii'); // mtime: fixed, so layers are reproducible
  header.write('        ', 148, 8, 'ascii'); // checksum counts as spaces while summing
  header.write('0', 156, 1, 'ascii'); // regular file
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  header.write('root', 265, 32, 'ascii');
  header.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return header;
}

/** A ustar archive of regular files (paths relative to the root, no leading slash needed). */
export function createTar(files: Record<string, string | Uint8Array>): Buffer {
  const parts: Buffer[] = [];
  for (const [rawPath, content] of Object.entries(files)) {
    const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content);
    parts.push(tarHeader(rawPath.replace(/^\/+/, ''), data.length, 0o644), data);
    const padding = (512 - (data.length % 512)) % 512;
    if (padding > 0) parts.push(Buffer.alloc(padding, 0));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

/** A gzip'd tar layer and its diff_id (the digest of the uncompressed tar). */
export function createLayer(files: Record<string, string | Uint8Array>): { blob: Buffer; diffId: string } {
  const tar = createTar(files);
  return { blob: gzipSync(tar), diffId: sha256(tar) };
}

// ---- registry API

/** True when the registry already holds the blob. */
export async function blobExists(registryUrl: string, repository: string, digest: string): Promise<boolean> {
  const base = assertLoopback(registryUrl);
  const res = await request(new URL(`/v2/${repository}/blobs/${digest}`, base), { method: 'HEAD' });
  await res.body.dump();
  return res.statusCode === 200;
}

/** Uploads a blob: `POST /v2/<name>/blobs/uploads/`, then `PUT <location>?digest=`. */
export async function pushBlob(registryUrl: string, repository: string, content: Uint8Array, mediaType = 'application/octet-stream'): Promise<Blob> {
  const base = assertLoopback(registryUrl);
  const digest = sha256(content);
  const blob = { mediaType, digest, size: content.length };
  if (await blobExists(registryUrl, repository, digest)) return blob;

  const started = await request(new URL(`/v2/${repository}/blobs/uploads/`, base), { method: 'POST' });
  if (started.statusCode !== 202) throw await failure(`POST /v2/${repository}/blobs/uploads/`, started.statusCode, started.body);
  await started.body.dump();
  const location = started.headers.location;
  if (typeof location !== 'string') throw new Error('blob upload answered without a Location header');
  const uploadUrl = new URL(location, base);
  assertLoopback(uploadUrl.href);
  uploadUrl.searchParams.set('digest', digest);

  const finished = await request(uploadUrl, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(content.length) },
    body: Buffer.from(content),
  });
  if (finished.statusCode !== 201) throw await failure(`PUT blob ${digest}`, finished.statusCode, finished.body);
  await finished.body.dump();
  return blob;
}

/** PUTs a manifest (or index) under a tag or its digest; returns the digest the registry computed. */
export async function pushManifest(
  registryUrl: string,
  repository: string,
  reference: string,
  manifest: string | Uint8Array,
  mediaType: string,
): Promise<string> {
  const base = assertLoopback(registryUrl);
  const body = typeof manifest === 'string' ? Buffer.from(manifest, 'utf8') : Buffer.from(manifest);
  const res = await request(new URL(`/v2/${repository}/manifests/${reference}`, base), {
    method: 'PUT',
    headers: { 'content-type': mediaType },
    body,
  });
  if (res.statusCode !== 201) throw await failure(`PUT /v2/${repository}/manifests/${reference}`, res.statusCode, res.body);
  await res.body.dump();
  const digest = res.headers['docker-content-digest'];
  const expected = sha256(body);
  if (digest !== expected) throw new Error(`registry answered digest ${String(digest)} for a manifest whose digest is ${expected}`);
  return expected;
}

/** Deletes a manifest by digest (the registries from startRegistry allow it); every tag pointing at it goes too. */
export async function deleteManifest(registryUrl: string, repository: string, digest: string): Promise<void> {
  const base = assertLoopback(registryUrl);
  const res = await request(new URL(`/v2/${repository}/manifests/${digest}`, base), { method: 'DELETE' });
  if (res.statusCode !== 202) throw await failure(`DELETE /v2/${repository}/manifests/${digest}`, res.statusCode, res.body);
  await res.body.dump();
}

/**
 * Pushes a single-platform image: one layer, its config, its manifest. With a tag, the tag points
 * at it; with `undefined`, it is pushed by digest only (as for the members of an index).
 */
export async function pushImage(
  registryUrl: string,
  repository: string,
  tag: string | undefined,
  options: PushImageOptions = {},
): Promise<PushedImage> {
  const format = options.format ?? 'docker';
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const label = options.label ?? randomUUID();
  const oci = format === 'oci';

  const layer = createLayer(options.files ?? { 'baton-image.txt': `${label}\n` });
  const layerBlob = await pushBlob(registryUrl, repository, layer.blob, oci ? MediaTypes.ociLayerGzip : MediaTypes.dockerLayerGzip);
  const created = '2026-01-01T00:00:00Z';
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant === undefined ? {} : { variant: platform.variant }),
    created,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Labels: { 'baton.test.label': label },
      ...options.imageConfig,
    },
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, created_by: 'baton tools/fleet/oci.ts' }],
  };
  const configBlob = await pushBlob(
    registryUrl,
    repository,
    Buffer.from(JSON.stringify(config), 'utf8'),
    oci ? MediaTypes.ociConfig : MediaTypes.dockerConfig,
  );
  const mediaType = oci ? MediaTypes.ociManifest : MediaTypes.dockerManifest;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: configBlob,
    layers: [layerBlob],
  });
  const digest = await pushManifest(registryUrl, repository, tag ?? sha256(manifest), manifest, mediaType);
  return { digest, mediaType, size: Buffer.byteLength(manifest), platform, config: configBlob, layers: [layerBlob] };
}

/**
 * Pushes a multi-platform image: one manifest per platform (by digest), then an OCI index (or a
 * Docker manifest list) referencing them, under `tag`.
 */
export async function pushIndex(
  registryUrl: string,
  repository: string,
  tag: string,
  options: PushIndexOptions = {},
): Promise<PushedIndex> {
  const oci = (options.format ?? 'oci') === 'oci';
  const platforms = options.platforms ?? [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64' },
  ];
  const label = options.label ?? randomUUID();
  const manifests: PushedImage[] = [];
  for (const platform of platforms) {
    const name = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
    manifests.push(
      await pushImage(registryUrl, repository, undefined, { format: oci ? 'oci' : 'docker', platform, label: `${label} ${name}` }),
    );
  }
  const mediaType = oci ? MediaTypes.ociIndex : MediaTypes.dockerManifestList;
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: manifests.map((m) => ({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      platform: m.platform,
    })),
  });
  const digest = await pushManifest(registryUrl, repository, tag, index, mediaType);
  return { digest, mediaType, manifests };
}
