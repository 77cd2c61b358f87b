import Docker from 'dockerode';
import { linkAbort } from '../../shared/abort.js';
import { parseDigestReference, sameRepository } from '../../shared/image-ref.js';
import type { Logger } from '../../shared/logger.js';
import type { ContainerInfo, ContainerRuntime, ContainerSpec, ContainerStatus, DockerHealth } from '../ports.js';
import {
  ContainerConflictError,
  ContainerNotFoundError,
  DockerApiError,
  DockerRuntimeError,
  DockerTimeoutError,
  DockerUnavailableError,
  ImageNotPresentError,
  ImagePullError,
  InvalidImageReferenceError,
  messageOf,
  type DockerOperation,
} from './errors.js';

export * from './errors.js';

/** Labels Baton puts on every container it creates. */
export const LABEL_SERVICE = 'baton.service';
export const LABEL_DIGEST = 'baton.digest';
export const LABEL_IMAGE = 'baton.image';

/** Credentials sent with a pull (`X-Registry-Auth`), as the Docker API takes them. */
export interface DockerAuthConfig {
  username?: string;
  password?: string;
  /** base64(username:password) */
  auth?: string;
  serveraddress?: string;
  identitytoken?: string;
  registrytoken?: string;
}

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

/** Docker's container state, mapped into the agent's terms. */
export function toContainerInfo(raw: Docker.ContainerInspectInfo, imageRepoDigests: string[] | undefined): ContainerInfo {
  const labels = raw.Config?.Labels ?? {};
  const state = raw.State;
  const status = toStatus(state);
  const running = status === 'running';
  const neverStarted = status === 'created';
  return {
    id: raw.Id,
    name: raw.Name.replace(/^\//, ''),
    image: raw.Config?.Image ?? raw.Image,
    digest: labels[LABEL_DIGEST] ?? repoDigestFor(raw.Config?.Image ?? '', imageRepoDigests ?? []),
    running,
    status,
    exitCode: running || neverStarted ? null : state.ExitCode,
    health: toHealth(state.Health?.Status),
    labels: { ...labels },
  };
}

const containerStatuses: ReadonlySet<string> = new Set<ContainerStatus>(['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead']);

/** Paused and Restarting win over Running (Docker reports Running: true for both); an unknown Status counts as exited. */
function toStatus(state: Docker.ContainerInspectInfo['State']): ContainerStatus {
  if (state.Paused === true) return 'paused';
  if (state.Restarting === true) return 'restarting';
  if (state.Running === true) return 'running';
  const status: string = state.Status;
  return containerStatuses.has(status) && status !== 'running' ? (status as ContainerStatus) : 'exited';
}

function toHealth(status: string | undefined): DockerHealth {
  return status === 'healthy' || status === 'unhealthy' || status === 'starting' ? status : 'none';
}

/** The digest of the image's repo digest for the container's repository, else the first one. */
function repoDigestFor(image: string, repoDigests: string[]): string | null {
  const parsed = repoDigests.flatMap((entry) => {
    const at = entry.lastIndexOf('@');
    return at < 0 ? [] : [{ name: entry.slice(0, at), digest: entry.slice(at + 1) }];
  });
  return (parsed.find((entry) => sameRepository(entry.name, image)) ?? parsed[0])?.digest ?? null;
}

/** The engine's create body for a spec; exported for unit tests. */
export function toCreateOptions(
  spec: ContainerSpec,
  service: string,
  imageByDigest: string,
  digest: string,
): Docker.ContainerCreateOptions {
  const exposedPorts: Record<string, object> = {};
  const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const port of spec.ports) {
    const key = `${port.containerPort}/${port.protocol}`;
    exposedPorts[key] = {};
    (portBindings[key] ??= []).push({ HostIp: port.hostIp ?? '', HostPort: String(port.hostPort) });
  }
  return {
    name: spec.name,
    Image: imageByDigest,
    Cmd: spec.command,
    Entrypoint: spec.entrypoint,
    Env: Object.entries(spec.env).map(([name, value]) => `${name}=${value}`),
    Labels: { ...spec.labels, [LABEL_SERVICE]: service, [LABEL_DIGEST]: digest, [LABEL_IMAGE]: imageByDigest },
    ExposedPorts: exposedPorts,
    StopTimeout: spec.stopTimeoutSeconds,
    User: spec.user,
    HostConfig: {
      PortBindings: portBindings,
      // `docker run -v` semantics: an absolute source is a bind mount (created if missing), a
      // name is a named volume.
      Binds: spec.volumes.map((v) => `${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`),
      RestartPolicy: { Name: spec.restartPolicy, MaximumRetryCount: 0 },
      NetworkMode: spec.networkMode,
    },
  };
}

interface EngineError {
  statusCode?: number;
  code?: string;
  message: string;
  json?: unknown;
}

function asEngineError(error: unknown): EngineError {
  if (typeof error === 'object' && error !== null && 'message' in error) return error as EngineError;
  return { message: String(error) };
}

/** The engine's own message (`{"message": ...}`), else the client's. */
function detailOf(error: EngineError): string {
  const json = error.json as { message?: unknown } | undefined;
  if (json !== null && typeof json === 'object' && typeof json.message === 'string') return json.message;
  return error.message;
}

const unavailableCodes = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EACCES', 'ENOTSOCK', 'ECONNABORTED']);

interface PullEvent {
  status?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
}

const notFoundPattern = /manifest unknown|not found|does not exist|repository name not known|name unknown|no such/i;

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
    const events = await this.call(
      'pull',
      imageByDigest,
      async (abortSignal) => {
        let stream: NodeJS.ReadableStream;
        try {
          const query = { fromImage: reference.repository, tag: reference.digest, abortSignal };
          stream = auth === undefined ? await this.docker.createImage(query) : await this.docker.createImage(auth, query);
        } catch (error) {
          const engineError = asEngineError(error);
          if (engineError.statusCode !== undefined) {
            const detail = detailOf(engineError);
            throw new ImagePullError(imageByDigest, detail, engineError.statusCode === 404 || notFoundPattern.test(detail), engineError.statusCode, error);
          }
          throw error;
        }
        try {
          return await readJsonLines<PullEvent>(stream);
        } catch (error) {
          if (abortSignal.aborted) throw error; // call() reports the timeout or the caller's abort
          throw new ImagePullError(imageByDigest, `the progress stream broke off: ${messageOf(error)}`, false, undefined, error);
        }
      },
      { timeoutMs, signal },
    );
    const failed = events.find((event) => event.error !== undefined || event.errorDetail !== undefined);
    if (failed !== undefined) {
      const detail = failed.errorDetail?.message ?? failed.error ?? 'failed';
      throw new ImagePullError(imageByDigest, detail, notFoundPattern.test(detail));
    }
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

  /**
   * Runs one engine call bounded by the timeout (and the caller's signal), and turns what goes
   * wrong into named errors.
   */
  private async call<T>(
    operation: DockerOperation,
    target: string,
    run: (abortSignal: AbortSignal) => Promise<T>,
    bounds: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    const timeoutMs = bounds.timeoutMs ?? this.options.timeoutMs;
    if (bounds.signal?.aborted) throw new DockerTimeoutError(operation, target, timeoutMs, true);
    const bounded = linkAbort(bounds.signal);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      bounded.abort();
    }, timeoutMs);
    // Not every dockerode call stops at its signal: the race ends the wait regardless.
    const aborted = new Promise<never>((_, reject) => {
      const onAbort = (): void => reject(new DockerTimeoutError(operation, target, timeoutMs, !timedOut));
      bounded.signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      return await Promise.race([run(bounded.signal), aborted]);
    } catch (error) {
      if (error instanceof DockerRuntimeError) throw error;
      if (bounded.signal.aborted) throw new DockerTimeoutError(operation, target, timeoutMs, !timedOut);
      const engineError = asEngineError(error);
      if (engineError.statusCode === undefined && engineError.code !== undefined && unavailableCodes.has(engineError.code)) {
        throw new DockerUnavailableError(operation, target, this.options.socketPath, error);
      }
      throw new DockerApiError(operation, target, engineError.statusCode, detailOf(engineError), error);
    } finally {
      clearTimeout(timer);
      bounded.dispose();
    }
  }
}

/** Reads a JSON-lines progress stream to its end; fails if it breaks off before. */
function readJsonLines<T>(stream: NodeJS.ReadableStream): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const events: T[] = [];
    let buffer = '';
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      if (error) reject(error);
      else resolve(events);
    };
    const take = (line: string) => {
      const trimmed = line.trim();
      if (trimmed === '') return;
      try {
        events.push(JSON.parse(trimmed) as T);
      } catch {
        // not JSON: ignore the line
      }
    };
    stream.on('data', (chunk: Buffer | string) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        take(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    });
    stream.on('end', () => {
      take(buffer);
      finish();
    });
    stream.on('error', (error: Error) => finish(error));
    stream.on('close', () => finish(new Error('the progress stream closed before its end')));
  });
}

function notByDigest(operation: DockerOperation, image: string): InvalidImageReferenceError {
  return new InvalidImageReferenceError(image, `docker ${operation} takes a repo@<digest> reference`);
}

export function createDockerRuntime(options: DockerRuntimeOptions): ContainerRuntime {
  return new DockerRuntime(options);
}
