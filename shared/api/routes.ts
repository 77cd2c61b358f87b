import { z } from 'zod';
import {
  heartbeatRequestSchema,
  heartbeatResponseSchema,
  leaseDecisionSchema,
  leaseRequestSchema,
  registryEnvelopeSchema,
  releaseRequestSchema,
  releaseResponseSchema,
  renewRequestSchema,
  renewResponseSchema,
} from './agent-messages.js';
import { groupNameMaxLength, groupNameSchema, leaseIdMaxLength, leaseIdSchema, nodeIdMaxLength, nodeIdSchema } from './fields.js';
import {
  drainRequestSchema,
  drainResponseSchema,
  eventsQuerySchema,
  eventsResponseSchema,
  figuresResponseSchema,
  forgetQuerySchema,
  forgetResponseSchema,
  groupActionRequestSchema,
  groupActionResponseSchema,
  statusResponseSchema,
  streamQuerySchema,
  undrainRequestSchema,
  type GroupActionName,
} from './operator-messages.js';

/**
 * Every route of the coordinator, declared once: the server registers and validates from it, the
 * agent's client and the CLI build their requests and check the answers with it.
 */

/** Who may call: anyone; any token (nobody when status is public); an agent, join or admin token; the admin token. */
export type Access = 'public' | 'read' | 'agent' | 'admin';

export interface ApiRoute {
  /** Names the call in logs and error messages. */
  readonly name: string;
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** `:name` segments are the params, e.g. `/v1/leases/:leaseId/renew`. */
  readonly path: string;
  readonly access: Access;
  readonly params?: z.ZodType<Record<string, string>>;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  /** A request without a body is read as `{}` (a bare POST pauses, drains, ... without a reason). */
  readonly bodyOptional?: true;
  /** The JSON answer: 200, or for acquire 200 and 409; absent when the answer is not JSON (a page, a stream, metrics). */
  readonly response?: z.ZodType;
}

const route = <const R extends ApiRoute>(definition: R): R => definition;

/**
 * The longest a valid path parameter can be once URI-encoded, as it reaches the server's router: a
 * UTF-16 unit encodes to at most 9 characters (`%E2%80%A6`), so 9 times the longest the schemas
 * allow (a 253-character node id). The server's router must take at least this much.
 */
export const maxEncodedParamLength = 9 * Math.max(nodeIdMaxLength, groupNameMaxLength, leaseIdMaxLength);

const nodeParamsSchema = z.object({ nodeId: nodeIdSchema });
const leaseParamsSchema = z.object({ leaseId: leaseIdSchema });
const groupParamsSchema = z.object({ group: groupNameSchema });

function groupActionRoute<const A extends GroupActionName>(action: A) {
  return route({
    name: action,
    method: 'POST',
    path: `/v1/groups/:group/${action}`,
    access: 'admin',
    params: groupParamsSchema,
    body: groupActionRequestSchema,
    bodyOptional: true,
    response: groupActionResponseSchema,
  });
}

/** POST /v1/groups/{group}/pause|resume|abort|rollback|retry, by action. */
export const groupActionRoutes = {
  pause: groupActionRoute('pause'),
  resume: groupActionRoute('resume'),
  abort: groupActionRoute('abort'),
  rollback: groupActionRoute('rollback'),
  retry: groupActionRoute('retry'),
} as const satisfies Record<GroupActionName, ApiRoute>;

export const apiRoutes = {
  heartbeat: route({
    name: 'heartbeat',
    method: 'POST',
    path: '/v1/nodes/:nodeId/heartbeat',
    access: 'agent',
    params: nodeParamsSchema,
    body: heartbeatRequestSchema,
    response: heartbeatResponseSchema,
  }),
  forget: route({
    name: 'forget',
    method: 'DELETE',
    path: '/v1/nodes/:nodeId',
    access: 'admin',
    params: nodeParamsSchema,
    query: forgetQuerySchema,
    response: forgetResponseSchema,
  }),
  drain: route({
    name: 'drain',
    method: 'POST',
    path: '/v1/nodes/:nodeId/drain',
    access: 'admin',
    params: nodeParamsSchema,
    body: drainRequestSchema,
    bodyOptional: true,
    response: drainResponseSchema,
  }),
  undrain: route({
    name: 'undrain',
    method: 'POST',
    path: '/v1/nodes/:nodeId/undrain',
    access: 'admin',
    params: nodeParamsSchema,
    body: undrainRequestSchema,
    bodyOptional: true,
    response: drainResponseSchema,
  }),
  acquire: route({
    name: 'acquire',
    method: 'POST',
    path: '/v1/leases',
    access: 'agent',
    body: leaseRequestSchema,
    response: leaseDecisionSchema,
  }),
  renew: route({
    name: 'renew',
    method: 'POST',
    path: '/v1/leases/:leaseId/renew',
    access: 'agent',
    params: leaseParamsSchema,
    body: renewRequestSchema,
    response: renewResponseSchema,
  }),
  release: route({
    name: 'release',
    method: 'POST',
    path: '/v1/leases/:leaseId/release',
    access: 'agent',
    params: leaseParamsSchema,
    body: releaseRequestSchema,
    response: releaseResponseSchema,
  }),
  // The registry reads nothing of the answer.
  registryEvents: route({ name: 'registry events', method: 'POST', path: '/v1/registry/events', access: 'agent', body: registryEnvelopeSchema }),
  status: route({ name: 'status', method: 'GET', path: '/v1/status', access: 'read', response: statusResponseSchema }),
  events: route({
    name: 'events',
    method: 'GET',
    path: '/v1/events',
    access: 'read',
    query: eventsQuerySchema,
    response: eventsResponseSchema,
  }),
  figures: route({ name: 'figures', method: 'GET', path: '/v1/figures', access: 'read', response: figuresResponseSchema }),
  eventStream: route({ name: 'event stream', method: 'GET', path: '/v1/events/stream', access: 'read', query: streamQuerySchema }),
  metrics: route({ name: 'metrics', method: 'GET', path: '/metrics', access: 'read' }),
  // The page answers everyone: a sign-in page without a valid token.
  statusPage: route({ name: 'status page', method: 'GET', path: '/', access: 'public' }),
  healthz: route({ name: 'healthz', method: 'GET', path: '/healthz', access: 'public', response: z.object({ ok: z.literal(true) }) }),
  ...groupActionRoutes,
} as const satisfies Record<string, ApiRoute>;

type Input<S> = S extends z.ZodType ? z.input<S> : never;

/** What a client sends on a route: its params, its query (values as they go in the URL) and its body. */
export type RouteRequest<R extends ApiRoute> = (R extends { params: infer P } ? { params: Input<P> } : { params?: never }) &
  (R extends { query: infer Q } ? { query?: { [K in keyof Input<Q>]?: string | number | undefined } } : { query?: never }) &
  (R extends { body: infer B } ? (R extends { bodyOptional: true } ? { body?: Input<B> } : { body: Input<B> }) : { body?: never });

/** The answer a client reads from a route, once checked with its response schema. */
export type RouteAnswer<R extends ApiRoute> = R extends { response: infer S extends z.ZodType } ? z.output<S> : never;

/** The route's path with its params filled in (URI-encoded) and its query, e.g. `/v1/nodes/web%201?group=web`. */
export function pathOf(route: ApiRoute, request: { params?: Record<string, string>; query?: Record<string, string | number | undefined> }): string {
  const path = route.path.replace(/:(\w+)/g, (_, name: string) => {
    const value = request.params?.[name];
    if (value === undefined) throw new TypeError(`${route.name}: missing path parameter ${name}`);
    return encodeURIComponent(value);
  });
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(request.query ?? {})) if (value !== undefined) query.set(name, String(value));
  const search = query.toString();
  return search === '' ? path : `${path}?${search}`;
}
