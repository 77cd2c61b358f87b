/** The agent's registry client: image references, credentials, platform and `resolve`. */
export { createRegistryClient, isLoopbackRegistry, registryScheme } from './client.js';
export type { ClosableRegistryClient, RegistryClientOptions } from './client.js';
export {
  createCredentialStore,
  credentialsFromDockerConfig,
  loadCredentialStore,
  noCredentials,
  normalizeRegistryHost,
} from './credentials.js';
export type { CredentialStore, CredentialStoreOptions, LoadCredentialsOptions, RegistryCredentials } from './credentials.js';
export * from './errors.js';
export { formatPlatform, matchPlatform, normalizePlatform, ociPlatform } from './platform.js';
export type { Platform } from './platform.js';
export {
  DOCKER_HUB_REGISTRY,
  formatByDigest,
  formatImageReference,
  isDockerHub,
  isValidDigest,
  parseImageReference,
} from './reference.js';
export { MediaType, acceptedManifestTypes } from './schemas.js';
