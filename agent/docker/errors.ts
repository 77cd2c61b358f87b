import { BatonError } from '../../shared/errors.js';

/** Docker operations the runtime performs; carried by its errors. */
export type DockerOperation =
  | 'inspect'
  | 'list'
  | 'pull'
  | 'hasImage'
  | 'create'
  | 'start'
  | 'stop'
  | 'rename'
  | 'remove'
  | 'pruneImages';

/** Base of every error the Docker runtime raises. */
export class DockerRuntimeError extends BatonError {
  constructor(
    code: string,
    readonly operation: DockerOperation,
    /** Container name or image reference the operation was about. */
    readonly target: string,
    message: string,
    /** HTTP status of the engine's answer, when there was one. */
    readonly statusCode?: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The engine's socket cannot be reached (missing, refused, reset). */
export class DockerUnavailableError extends DockerRuntimeError {
  constructor(operation: DockerOperation, target: string, socketPath: string, cause: unknown) {
    super(
      'DOCKER_UNAVAILABLE',
      operation,
      target,
      `docker ${operation} ${target}: engine unavailable at ${socketPath}: ${messageOf(cause)}`,
      undefined,
      { cause },
    );
  }
}

/** The call did not finish within the runtime's timeout (or the caller aborted it). */
export class DockerTimeoutError extends DockerRuntimeError {
  constructor(
    operation: DockerOperation,
    target: string,
    readonly timeoutMs: number,
    readonly aborted = false,
  ) {
    super(
      aborted ? 'DOCKER_ABORTED' : 'DOCKER_TIMEOUT',
      operation,
      target,
      aborted ? `docker ${operation} ${target}: aborted` : `docker ${operation} ${target}: no answer within ${timeoutMs} ms`,
    );
  }
}

/** The engine answered with an error this runtime does not turn into a more specific one. */
export class DockerApiError extends DockerRuntimeError {
  constructor(operation: DockerOperation, target: string, statusCode: number | undefined, detail: string, cause?: unknown) {
    super(
      'DOCKER_API_ERROR',
      operation,
      target,
      `docker ${operation} ${target}: ${statusCode === undefined ? '' : `HTTP ${statusCode}: `}${detail}`,
      statusCode,
      { cause },
    );
  }
}

/** start, stop or rename of a container that does not exist. */
export class ContainerNotFoundError extends DockerRuntimeError {
  constructor(operation: DockerOperation, name: string, cause?: unknown) {
    super('CONTAINER_NOT_FOUND', operation, name, `docker ${operation}: no container named ${name}`, 404, { cause });
  }
}

/** create or rename onto a name that is taken (or a removal already in progress). */
export class ContainerConflictError extends DockerRuntimeError {
  constructor(operation: DockerOperation, name: string, detail: string, cause?: unknown) {
    super('CONTAINER_CONFLICT', operation, name, `docker ${operation} ${name}: ${detail}`, 409, { cause });
  }
}

/** create of a container whose image is not in the engine's store: pull it first. */
export class ImageNotPresentError extends DockerRuntimeError {
  constructor(operation: DockerOperation, image: string, cause?: unknown) {
    super('IMAGE_NOT_PRESENT', operation, image, `docker ${operation}: image ${image} is not present; pull it first`, 404, { cause });
  }
}

/** A pull failed: the registry does not have the manifest, refused access, or the transfer broke. */
export class ImagePullError extends DockerRuntimeError {
  constructor(
    image: string,
    detail: string,
    /** The registry said the manifest (or repository) does not exist. */
    readonly notFound: boolean,
    statusCode?: number,
    cause?: unknown,
  ) {
    super(notFound ? 'IMAGE_NOT_FOUND' : 'IMAGE_PULL_FAILED', 'pull', image, `docker pull ${image}: ${detail}`, statusCode, { cause });
  }
}

/** Raised where the runtime requires a `repo@<digest>` reference and gets something else. */
export { InvalidImageReferenceError } from '../../shared/image-ref.js';

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
