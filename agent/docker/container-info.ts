import type Docker from 'dockerode';
import { parseDigestReference, sameRepository } from '../../shared/image-ref.js';
import type { ContainerInfo, ContainerStatus, DockerHealth } from '../ports.js';
import { LABEL_DIGEST } from './container-spec.js';

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
  const parsed = repoDigests.flatMap((entry) => parseDigestReference(entry) ?? []);
  return (parsed.find((entry) => sameRepository(entry.repository, image)) ?? parsed[0])?.digest ?? null;
}
