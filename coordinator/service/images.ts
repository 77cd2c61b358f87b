/**
 * The repository and tag of an image reference as the distribution registry names them in
 * its notifications: `127.0.0.1:5000/team/app:v2` → repository `team/app`, tag `v2`.
 */
export function repositoryOfImage(image: string): string {
  const withoutDigest = image.split('@')[0] ?? image;
  const parts = withoutDigest.split('/');
  const first = parts[0] ?? '';
  const hasRegistryHost = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const path = (hasRegistryHost ? parts.slice(1) : parts).join('/');
  const lastSlash = path.lastIndexOf('/');
  const colon = path.indexOf(':', lastSlash + 1);
  const repository = colon === -1 ? path : path.slice(0, colon);
  return !hasRegistryHost && !repository.includes('/') ? `library/${repository}` : repository;
}

export function tagOfImage(image: string): string | undefined {
  if (image.includes('@')) return undefined;
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  return colon === -1 ? 'latest' : image.slice(colon + 1);
}
