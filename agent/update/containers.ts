import type { ServiceConfig } from '../../shared/config/agent.js';
import type { ContainerInfo, ContainerRuntime, ContainerSpec } from '../ports.js';

/** While a new container runs under the service's name, the previous one waits under this name for a rollback. */
export function oldContainerName(name: string): string {
  return `${name}-baton-old`;
}

/** The container spec the agent declares for a service (the image is given separately, by digest). */
export function containerSpecFor(service: ServiceConfig): ContainerSpec {
  return {
    name: service.containerName,
    command: service.command,
    entrypoint: service.entrypoint,
    env: { ...service.env },
    ports: service.ports.map((p) => ({
      containerPort: p.containerPort,
      hostPort: p.hostPort,
      protocol: p.protocol,
      ...(p.hostIp === undefined ? {} : { hostIp: p.hostIp }),
    })),
    volumes: service.volumes.map((v) => ({ source: v.source, target: v.target, readOnly: v.readOnly })),
    labels: { ...service.labels },
    restartPolicy: service.restartPolicy,
    networkMode: service.networkMode,
    stopTimeoutSeconds: service.stopTimeoutSeconds,
    user: service.user,
  };
}

/** Stops (when running) and removes a container. */
export async function stopAndRemove(runtime: ContainerRuntime, info: ContainerInfo, stopTimeoutSeconds: number): Promise<void> {
  if (info.running) await runtime.stop(info.name, stopTimeoutSeconds);
  await runtime.remove(info.name);
}

export interface RestoreReport {
  /** What was done, in order, in words (for logs and the reconcile report). */
  actions: string[];
  /** The container now under the service's name, running; undefined when there is none to restore. */
  container: ContainerInfo | undefined;
  /** True when the container under the service's name is the previous one (or was kept because no other exists). */
  isPrevious: boolean;
}

/**
 * Puts the previous container back in service under `name`, whatever state an interrupted update
 * left: a container under `name` that is not the previous one (the new one, never proven) is stopped
 * and removed, `<name>-baton-old` is renamed back, and the result is started if it is stopped.
 *
 * `previousContainerId` identifies the previous container (its id survives the rename). Without it
 * (no journal), the container under `<name>-baton-old` is taken as the previous one whenever it exists.
 * When the only container left is a new one (the previous one is gone), it is kept and started rather
 * than leaving the service with nothing: `isPrevious` is then false.
 */
export async function restorePrevious(
  runtime: ContainerRuntime,
  name: string,
  previousContainerId: string | undefined,
  stopTimeoutSeconds: number,
): Promise<RestoreReport> {
  const actions: string[] = [];
  const oldName = oldContainerName(name);
  let current = await runtime.inspect(name);
  const backup = await runtime.inspect(oldName);

  const currentIsPrevious =
    current !== undefined &&
    (previousContainerId !== undefined ? current.id === previousContainerId : backup === undefined);
  let isPrevious = currentIsPrevious;

  if (current !== undefined && currentIsPrevious) {
    if (backup !== undefined) {
      // A leftover from an older interruption: the previous container is already in place.
      await stopAndRemove(runtime, backup, stopTimeoutSeconds);
      actions.push(`removed leftover ${oldName} (${backup.id})`);
    }
  } else if (current !== undefined && backup !== undefined) {
    await stopAndRemove(runtime, current, stopTimeoutSeconds);
    actions.push(`removed new container ${name} (${current.id}, ${current.digest ?? 'unknown digest'})`);
    current = undefined;
  } else if (current !== undefined) {
    actions.push(`kept ${name} (${current.id}): no previous container to restore`);
  }

  if (current === undefined && backup !== undefined) {
    await runtime.rename(oldName, name);
    actions.push(`renamed ${oldName} back to ${name}`);
    current = { ...backup, name };
    isPrevious = true;
  }
  if (current === undefined) return { actions, container: undefined, isPrevious: false };

  if (!current.running) {
    await runtime.start(name);
    actions.push(`started ${name}`);
  }
  const final = await runtime.inspect(name);
  return { actions, container: final ?? current, isPrevious };
}
