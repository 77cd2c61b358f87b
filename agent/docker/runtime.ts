import Docker from 'dockerode';
import { parseDigestReference, sameRepository } from '../../shared/image-ref.js';
import type { Logger } from '../../shared/logger.js';
import type { ContainerInfo, ContainerRuntime, ContainerSpec } from '../ports.js';
import { toContainerInfo } from './container-info.js';
import { LABEL_DIGEST, LABEL_SERVICE, toCreateOptions } from './container-spec.js';
import { asEngineError, callEngine, detailOf } from './engine-call.js';
import {
  ContainerConflictError,
  ContainerNotFoundError,
  ImageNotPresentError,
  ImagePullError,
  InvalidImageReferenceError,
  type DockerOperation,
} from './errors.js';
import { pullFailure, readPull, type DockerAuthConfig } from './pull.js';

export * from './errors.js';
export { toContainerInfo } from './container-info.js';
export { LABEL_DIGEST, LABEL_IMAGE, LABEL_SERVICE, toCreateOptions } from './container-spec.js';
export type { DockerAuthConfig } from './pull.js';

export interface DockerRuntimeOptions {
  /** The engine's unix socket, e.g. /var/run/docker.sock. */
  socketPath: string;
  /** Bound on every call to the engine (config `docker.requestTimeoutMs`). */
  timeoutMs: number;
  logger: Logger;
  /** Bound on a whole pull, stream included; default `timeoutMs`. */
  pullTimeoutMs?: number;
  /** Registry credentials for pulls: fixed, or chosen per image reference (undefined: anonymous). */
  authconfig?: DockerAuthConfig | ((imageByDigest: string) => DockerAuthConfig | undefined);
}

/** The agent's ContainerRuntime on a Docker engine, through dockerode. */
export class DockerRuntime implements ContainerRuntime {
  private readonly docker: Docker;
  private readonly log: Logger;

  constructor(private readonly options: DockerRuntimeOptions) {
    this.docker = new Docker({ socketPath: options.socketPath });
    this.log = options.logger.child({ component: 'docker' });
  }

  async inspect(name: string): Promise<ContainerInfo | undefined> {
    const raw = await this.inspectByName('inspect', name);
    return raw === undefined ? undefined : this.info('inspect', raw);
  }

  async listForService(service: string): Promise<ContainerInfo[]> {
    const summaries = await this.call('list', service, (abortSignal) =>
      this.docker.listContainers({ all: true, filters: { label: [`${LABEL_SERVICE}=${service}`] }, abortSignal }),
    );
    const infos: ContainerInfo[] = [];
    for (const summary of summaries) {
      const raw = await this.inspectById('list', summary.Id);
      if (raw !== undefined) infos.push(await this.info('list', raw)); // removed meanwhile: skip
    }
    return infos.sort((a, b) => a.name.localeCompare(b.name));
  }

  async pull(imageByDigest: string, signal?: AbortSignal): Promise<void> {
    const reference = parseDigestReference(imageByDigest);
    if (reference === undefined) throw notByDigest('pull', imageByDigest);
    const auth = typeof this.options.authconfig === 'function' ? this.options.authconfig(imageByDigest) : this.options.authconfig;
    const timeoutMs = this.options.pullTimeoutMs ?? this.options.timeoutMs;
    this.log.info({ image: imageByDigest }, 'pulling image');
    const events = await this.call('pull', imageByDigest, (abortSignal) => readPull(this.docker, imageByDigest, reference, auth, abortSignal), {
      timeoutMs,
      signal,
    });
    const failure = pullFailure(imageByDigest, events);
    if (failure !== undefined) throw failure;
    if (!(await this.hasImage(imageByDigest))) {
      throw new ImagePullError(imageByDigest, 'the pull ended but the image is not in the engine', false);
    }
    this.log.info({ image: imageByDigest, status: events.at(-1)?.status }, 'pulled image');
  }

  async hasImage(imageByDigest: string): Promise<boolean> {
    // dockerode's image inspect takes no abort signal: call() still bounds the wait.
    return this.call('hasImage', imageByDigest, async () => {
      try {
        await this.docker.getImage(imageByDigest).inspect();
        return true;
      } catch (error) {
        if (asEngineError(error).statusCode === 404) return false;
        throw error;
      }
    });
  }

  async create(spec: ContainerSpec, service: string, imageByDigest: string, digest: string): Promise<ContainerInfo> {
    if (parseDigestReference(imageByDigest) === undefined) throw notByDigest('create', imageByDigest);
    const body = toCreateOptions(spec, service, imageByDigest, digest);
    await this.call('create', spec.name, async (abortSignal) => {
      try {
        await this.docker.createContainer({ ...body, abortSignal });
      } catch (error) {
        const engineError = asEngineError(error);
        if (engineError.statusCode === 409) throw new ContainerConflictError('create', spec.name, detailOf(engineError), error);
        if (engineError.statusCode === 404 && /image/i.test(detailOf(engineError))) {
          throw new ImageNotPresentError('create', imageByDigest, error);
        }
        throw error;
      }
    });
    this.log.info({ container: spec.name, service, image: imageByDigest }, 'created container');
    const created = await this.inspectByName('create', spec.name);
    if (created === undefined) throw new ContainerNotFoundError('create', spec.name); // removed at once by someone else
    return this.info('create', created);
  }

  async start(name: string): Promise<void> {
    const id = await this.requireId('start', name);
    await this.call('start', name, async (abortSignal) => {
      try {
        await this.docker.getContainer(id).start({ abortSignal });
      } catch (error) {
        const { statusCode } = asEngineError(error);
        if (statusCode === 304) return; // already running
        if (statusCode === 404) throw new ContainerNotFoundError('start', name, error);
        throw error;
      }
    });
    this.log.info({ container: name }, 'started container');
  }

  async stop(name: string, timeoutSeconds: number): Promise<void> {
    const id = await this.requireId('stop', name);
    await this.call(
      'stop',
      name,
      async (abortSignal) => {
        try {
          await this.docker.getContainer(id).stop({ t: timeoutSeconds, abortSignal });
        } catch (error) {
          const { statusCode } = asEngineError(error);
          if (statusCode === 304) return; // already stopped
          if (statusCode === 404) throw new ContainerNotFoundError('stop', name, error);
          throw error;
        }
      },
      // The engine answers once the container has exited: up to the kill timeout, plus the usual bound.
      { timeoutMs: timeoutSeconds * 1000 + this.options.timeoutMs },
    );
    this.log.info({ container: name, timeoutSeconds }, 'stopped container');
  }

  async rename(from: string, to: string): Promise<void> {
    const id = await this.requireId('rename', from);
    await this.call('rename', from, async (abortSignal) => {
      try {
        await this.docker.getContainer(id).rename({ name: to, abortSignal });
      } catch (error) {
        const engineError = asEngineError(error);
        if (engineError.statusCode === 404) throw new ContainerNotFoundError('rename', from, error);
        if (engineError.statusCode === 409) throw new ContainerConflictError('rename', to, detailOf(engineError), error);
        throw error;
      }
    });
    this.log.info({ container: from, to }, 'renamed container');
  }

  /** Removes the container, running or not (force), with its anonymous volumes; a missing one is fine. */
  async remove(name: string): Promise<void> {
    const raw = await this.inspectByName('remove', name);
    if (raw === undefined) return;
    await this.call('remove', name, async (abortSignal) => {
      try {
        await this.docker.getContainer(raw.Id).remove({ force: true, v: true, abortSignal });
      } catch (error) {
        const engineError = asEngineError(error);
        if (engineError.statusCode === 404) return;
        if (engineError.statusCode === 409 && /already in progress/i.test(detailOf(engineError))) {
          await this.waitUntilGone(raw.Id, abortSignal);
          return;
        }
        throw error;
      }
    });
    this.log.info({ container: name }, 'removed container');
  }

  async pruneImages(keep: string[]): Promise<string[]> {
    const kept = keep.map((reference) => {
      const parsed = parseDigestReference(reference);
      if (parsed === undefined) throw notByDigest('pruneImages', reference);
      return parsed;
    });
    const repository = kept[0]?.repository;
    if (repository === undefined || kept.some((k) => k.repository !== repository)) {
      throw new InvalidImageReferenceError(keep.join(', ') || '(none)', 'docker pruneImages takes references of one repository');
    }
    const keptDigests = new Set(kept.map((k) => k.digest));
    const removed: string[] = [];
    await this.call('pruneImages', repository, async (abortSignal) => {
      const images = await this.docker.listImages({ abortSignal });
      for (const image of images) {
        const ours = (image.RepoDigests ?? []).flatMap((text) => {
          const parsed = parseDigestReference(text);
          return parsed !== undefined && sameRepository(parsed.repository, repository) ? [parsed] : [];
        });
        if (ours.length === 0 || ours.some((ref) => keptDigests.has(ref.digest))) continue;
        // Tagged by someone (a `docker pull app:1`): not Baton's to remove.
        if ((image.RepoTags ?? []).some((tag) => tag !== '<none>:<none>')) continue;
        try {
          await this.docker.getImage(image.Id).remove({ abortSignal });
          removed.push(`${repository}@${ours[0]?.digest ?? image.Id}`);
        } catch (error) {
          const engineError = asEngineError(error);
          // 409: a container (another service's, or a stopped one) still uses it; 404: gone already.
          if (engineError.statusCode === 409 || engineError.statusCode === 404) continue;
          throw error;
        }
      }
    });
    if (removed.length > 0) this.log.info({ images: removed }, 'removed images no longer needed');
    return removed;
  }

  // ---- helpers

  private async waitUntilGone(id: string, abortSignal: AbortSignal): Promise<void> {
    while (!abortSignal.aborted) {
      try {
        await this.docker.getContainer(id).inspect({ abortSignal });
      } catch (error) {
        if (asEngineError(error).statusCode === 404) return;
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async requireId(operation: DockerOperation, name: string): Promise<string> {
    const raw = await this.inspectByName(operation, name);
    if (raw === undefined) throw new ContainerNotFoundError(operation, name);
    return raw.Id;
  }

  /**
   * The container named exactly `name`. The engine also resolves ids and id prefixes at this
   * endpoint; a container found that way is not the one asked for.
   */
  private async inspectByName(operation: DockerOperation, name: string): Promise<Docker.ContainerInspectInfo | undefined> {
    const raw = await this.inspectById(operation, name);
    return raw?.Name === `/${name}` ? raw : undefined;
  }

  private inspectById(operation: DockerOperation, idOrName: string): Promise<Docker.ContainerInspectInfo | undefined> {
    return this.call(operation, idOrName, async (abortSignal) => {
      try {
        return await this.docker.getContainer(idOrName).inspect({ abortSignal });
      } catch (error) {
        if (asEngineError(error).statusCode === 404) return undefined;
        throw error;
      }
    });
  }

  private async info(operation: DockerOperation, raw: Docker.ContainerInspectInfo): Promise<ContainerInfo> {
    if (raw.Config?.Labels?.[LABEL_DIGEST] !== undefined) return toContainerInfo(raw, undefined);
    const repoDigests = await this.call(operation, raw.Image, async () => {
      try {
        return (await this.docker.getImage(raw.Image).inspect()).RepoDigests ?? [];
      } catch (error) {
        if (asEngineError(error).statusCode === 404) return []; // image removed under the container
        throw error;
      }
    });
    return toContainerInfo(raw, repoDigests);
  }

  private call<T>(
    operation: DockerOperation,
    target: string,
    run: (abortSignal: AbortSignal) => Promise<T>,
    bounds: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    return callEngine(this.options.socketPath, operation, target, run, { ...bounds, timeoutMs: bounds.timeoutMs ?? this.options.timeoutMs });
  }
}

function notByDigest(operation: DockerOperation, image: string): InvalidImageReferenceError {
  return new InvalidImageReferenceError(image, `docker ${operation} takes a repo@<digest> reference`);
}

export function createDockerRuntime(options: DockerRuntimeOptions): ContainerRuntime {
  return new DockerRuntime(options);
}
