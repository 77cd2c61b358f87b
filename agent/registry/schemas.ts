import { z } from 'zod';
import { sha256DigestSchema } from '../../shared/image-ref.js';

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** What the agent asks for, multi-platform first: the order of the `Accept` header. */
export const acceptedManifestTypes = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
] as const;

export const indexMediaTypes: ReadonlySet<string> = new Set([MediaType.ociIndex, MediaType.dockerManifestList]);
export const manifestMediaTypes: ReadonlySet<string> = new Set([MediaType.ociManifest, MediaType.dockerManifest]);

export const platformSchema = z.object({
  architecture: z.string().min(1),
  os: z.string().min(1),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
});

export const descriptorSchema = z.object({
  mediaType: z.string().min(1),
  digest: sha256DigestSchema,
  size: z.number().int().nonnegative(),
  platform: platformSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

/** An OCI image index or a Docker manifest list (the same shape). */
export const imageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
});
export type ImageIndex = z.infer<typeof imageIndexSchema>;

/** Answer of a bearer-token endpoint (Docker token authentication spec). */
export const tokenResponseSchema = z
  .object({
    token: z.string().min(1).optional(),
    access_token: z.string().min(1).optional(),
    expires_in: z.number().positive().optional(),
    issued_at: z.string().optional(),
  })
  .refine((t) => t.token !== undefined || t.access_token !== undefined, {
    message: 'has neither token nor access_token',
  });

/** The part of a Docker client config.json the agent reads; anything else (credsStore, proxies...) is ignored. */
export const dockerConfigSchema = z.object({
  auths: z
    .record(
      z.string().min(1),
      z.object({
        auth: z.string().optional(),
        username: z.string().optional(),
        password: z.string().optional(),
        identitytoken: z.string().optional(),
        email: z.string().optional(),
      }),
    )
    .default({}),
  credsStore: z.string().optional(),
  credHelpers: z.record(z.string(), z.string()).optional(),
});
export type DockerConfig = z.infer<typeof dockerConfigSchema>;
