import type { GroupActionName } from './operator-messages.js';

export const apiPaths = {
  heartbeat: (nodeId: string) => `/v1/nodes/${encodeURIComponent(nodeId)}/heartbeat`,
  node: (nodeId: string) => `/v1/nodes/${encodeURIComponent(nodeId)}`,
  drain: (nodeId: string) => `/v1/nodes/${encodeURIComponent(nodeId)}/drain`,
  undrain: (nodeId: string) => `/v1/nodes/${encodeURIComponent(nodeId)}/undrain`,
  leases: '/v1/leases',
  renew: (leaseId: string) => `/v1/leases/${encodeURIComponent(leaseId)}/renew`,
  release: (leaseId: string) => `/v1/leases/${encodeURIComponent(leaseId)}/release`,
  status: '/v1/status',
  groupAction: (group: string, action: GroupActionName) =>
    `/v1/groups/${encodeURIComponent(group)}/${action}`,
  registryEvents: '/v1/registry/events',
  figures: '/v1/figures',
  eventStream: '/v1/events/stream',
  metrics: '/metrics',
  statusPage: '/',
  healthz: '/healthz',
} as const;
