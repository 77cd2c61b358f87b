import type {
  HeartbeatRequest,
  HeartbeatResponse,
  LeaseDecision,
  LeaseRequest,
  ReleaseRequest,
  ReleaseResponse,
  RenewResponse,
} from '../shared/api/v1.js';

/**
 * The agent's effects, each behind a small interface: the update state machine sees only
 * these, so unit tests drive it with fakes and integration tests with the real thing.
 */

// ---- Registry (agent/registry)

export interface ResolvedDigest {
  /** Digest to pull and run on this host: the platform manifest's for a multi-platform index. */
  digest: string;
  /** Digest the tag points at (the index's own digest for a multi-platform image). */
  tagDigest: string;
  mediaType: string;
}

export interface RegistryClient {
  /** One cheap request: the digest the image reference's tag points at now, for this host's platform. */
  resolve(image: string, signal?: AbortSignal): Promise<ResolvedDigest>;
}

// ---- Container runtime (agent/docker)

export interface PortBinding {
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostPort: number;
  hostIp?: string;
}

export interface VolumeMount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** Everything the agent declares about a service's container; the image is given separately, by digest. */
export interface ContainerSpec {
  name: string;
  command?: string[];
  entrypoint?: string[];
  env: Record<string, string>;
  ports: PortBinding[];
  volumes: VolumeMount[];
  labels: Record<string, string>;
  restartPolicy: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  networkMode: string;
  stopTimeoutSeconds: number;
  user?: string;
}

export type DockerHealth = 'healthy' | 'unhealthy' | 'starting' | 'none';

/**
 * Docker's container state (`State.Status`, with `State.Paused` and `State.Restarting` winning):
 * only `running` serves. `paused` and `restarting` are not `running` in ContainerInfo.running either.
 */
export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerInfo {
  id: string;
  name: string;
  /** The image reference the container was created with (`repo@sha256:...` when Baton made it). */
  image: string;
  /** The digest Baton created it from (label `baton.digest`), or the image's repo digest otherwise. */
  digest: string | null;
  /** Running, and neither paused nor restarting: `status === 'running'`. */
  running: boolean;
  status: ContainerStatus;
  /** Container's exit code when it is not running. */
  exitCode: number | null;
  health: DockerHealth;
  labels: Record<string, string>;
}

export interface ContainerRuntime {
  /** The container with this exact name, or undefined. */
  inspect(name: string): Promise<ContainerInfo | undefined>;
  /** Containers carrying label `baton.service=<service>` (current, old kept for rollback, or half-made). */
  listForService(service: string): Promise<ContainerInfo[]>;
  /** Pulls `image` (a `repo@sha256:...` reference). */
  pull(imageByDigest: string, signal?: AbortSignal): Promise<void>;
  hasImage(imageByDigest: string): Promise<boolean>;
  /** Creates (not starts) a container from the spec and image, labelled with service and digest. */
  create(spec: ContainerSpec, service: string, imageByDigest: string, digest: string): Promise<ContainerInfo>;
  start(name: string): Promise<void>;
  /** SIGTERM (or the image's stop signal), then SIGKILL after `timeoutSeconds`. */
  stop(name: string, timeoutSeconds: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(name: string): Promise<void>;
  /**
   * Removes the images of the repository of `keep` (`repo@sha256:...` references, one repository)
   * other than those: images a container still uses, or that carry a tag, are left. Returns the
   * references removed.
   */
  pruneImages(keep: string[]): Promise<string[]>;
}

// ---- Coordinator (agent/coordinator)

/** Raised by the client when the coordinator refuses a renew or release (409) or does not know the lease (404). */
export interface CoordinatorClient {
  heartbeat(nodeId: string, body: HeartbeatRequest, signal?: AbortSignal): Promise<HeartbeatResponse>;
  /** Resolves with the grant or the refusal; throws on transport errors and unexpected answers. */
  acquire(body: LeaseRequest, signal?: AbortSignal): Promise<LeaseDecision>;
  /** Throws LeaseLostError when the coordinator says the lease is gone or the token is stale. */
  renew(leaseId: string, fencingToken: number, signal?: AbortSignal): Promise<RenewResponse>;
  release(leaseId: string, body: ReleaseRequest, signal?: AbortSignal): Promise<ReleaseResponse>;
}

// ---- Readiness endpoint (agent/readiness)

export interface Readiness {
  /** `GET /ready/<service>` answers 200 only when the service is healthy and not draining. */
  setDraining(service: string, draining: boolean): void;
  setHealthy(service: string, healthy: boolean): void;
}

// ---- HTTP health probe (agent/update)

export interface HealthProbe {
  /** One check: true when `url` answers with `expectedStatus` within `timeoutMs`. */
  check(url: string, expectedStatus: number, timeoutMs: number): Promise<boolean>;
}

// ---- Hooks (pre-drain, post-ready)

export interface HookRunner {
  /** Runs a shell command; resolves with its exit code, or rejects after `timeoutMs`. */
  run(command: string, timeoutMs: number, environment: Record<string, string>): Promise<number>;
}
