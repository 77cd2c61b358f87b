import type Docker from 'dockerode';
import type { ContainerSpec } from '../ports.js';

/** Labels Baton puts on every container it creates. */
export const LABEL_SERVICE = 'baton.service';
export const LABEL_DIGEST = 'baton.digest';
export const LABEL_IMAGE = 'baton.image';

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
