import { tryParseImageReference } from '../../shared/image-ref.js';

/**
 * The repository and tag of an image reference as the distribution registry names them in
 * its notifications: `127.0.0.1:5000/team/app:v2` → repository `team/app`, tag `v2`.
 * Text that is not a reference has neither (it matches no notification).
 */
export function repositoryOfImage(image: string): string | undefined {
  return tryParseImageReference(image)?.repository;
}

/** The tag, `latest` when none is written; undefined when the reference pins a digest. */
export function tagOfImage(image: string): string | undefined {
  const ref = tryParseImageReference(image);
  return ref?.digest === undefined ? ref?.tag : undefined;
}
