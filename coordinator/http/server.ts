import Fastify, { LogController, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  drainRequestSchema,
  groupActionRequestSchema,
  groupActions,
  groupNameSchema,
  heartbeatRequestSchema,
  leaseIdSchema,
  leaseRequestSchema,
  nodeIdSchema,
  registryEnvelopeSchema,
  releaseRequestSchema,
  renewRequestSchema,
  undrainRequestSchema,
} from '../../shared/api/v1.js';
import { ApiError, toErrorResponse } from '../../shared/api/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { CoordinatorService } from '../service/service.js';
import { registerStatusRoutes, type StatusRoutesOptions } from '../status-page/routes.js';
import { presentedToken } from '../status-page/session.js';
import { requireAccess, type Access, type AuthConfig } from './auth.js';

export interface HttpServerOptions {
  service: CoordinatorService;
  auth: AuthConfig;
  logger: Logger;
  bodyLimitBytes: number;
  /** Status page, event stream, figures and metrics settings. */
  status?: Pick<StatusRoutesOptions, 'processMetrics' | 'notifier' | 'snapshotIntervalMs'>;
}

function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'path' | 'query'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue ? [where, ...issue.path.map(String)].join('.') : where;
  const message = result.error.issues
    .map((i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`)
    .join('; ');
  // Refused before anything is decided: nothing stored changes.
  throw new ApiError('bad-request', message, field);
}

const eventsQuerySchema = z.strictObject({
  afterSeq: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
  group: groupNameSchema.optional(),
});

const forgetQuerySchema = z.strictObject({ group: groupNameSchema.optional() });

// Built once: zod compiles a schema on first use, and a schema made per request is compiled per request.
const nodeParamsSchema = z.object({ nodeId: nodeIdSchema });
const leaseParamsSchema = z.object({ leaseId: leaseIdSchema });
const groupParamsSchema = z.object({ group: groupNameSchema });

/** The coordinator's HTTP API v1. Bodies are validated with the shared zod schemas, never trusted. */
export function createHttpServer(options: HttpServerOptions) {
  const { service } = options;
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'http' }),
    // One line per state change comes from the service; per-request lines would drown them.
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger: with request logging off it only costs a pino child per call.
    childLoggerFactory: (logger) => logger,
    bodyLimit: options.bodyLimitBytes,
    return503OnClosing: true,
  });

  const guard = (access: Access) => async (request: FastifyRequest): Promise<void> =>
    requireAccess(options.auth, access, presentedToken(request));

  // Every error answer of the API and the status page, from the one catalogue (shared/api/errors.ts).
  app.setErrorHandler((error, request, reply) => {
    const { status, body } = toErrorResponse(error);
    // Only an error the catalogue does not name is logged; its answer says nothing of it.
    if (body.error === 'internal') request.log.error({ err: error, url: request.url }, 'request failed');
    return reply.code(status).send(body);
  });

  app.setNotFoundHandler((request) => {
    throw new ApiError('not-found', `no route ${request.method} ${request.url.split('?')[0]}`);
  });

  app.get('/healthz', async () => ({ ok: true }));

  app.post('/v1/nodes/:nodeId/heartbeat', { onRequest: guard('agent') }, async (request) => {
    const { nodeId } = parse(nodeParamsSchema, request.params, 'path');
    const body = parse(heartbeatRequestSchema, request.body, 'body');
    return service.heartbeat(nodeId, body);
  });

  app.delete('/v1/nodes/:nodeId', { onRequest: guard('admin') }, async (request) => {
    const { nodeId } = parse(nodeParamsSchema, request.params, 'path');
    const { group } = parse(forgetQuerySchema, request.query, 'query');
    return service.forget(nodeId, group);
  });

  // The body is optional: a bare POST drains the node in every group, without a reason.
  app.post('/v1/nodes/:nodeId/drain', { onRequest: guard('admin') }, async (request) => {
    const { nodeId } = parse(nodeParamsSchema, request.params, 'path');
    const body = parse(drainRequestSchema, request.body ?? {}, 'body');
    return service.drain(nodeId, body.group, body.reason);
  });

  app.post('/v1/nodes/:nodeId/undrain', { onRequest: guard('admin') }, async (request) => {
    const { nodeId } = parse(nodeParamsSchema, request.params, 'path');
    const body = parse(undrainRequestSchema, request.body ?? {}, 'body');
    return service.undrain(nodeId, body.group);
  });

  app.post('/v1/leases', { onRequest: guard('agent') }, async (request, reply) => {
    const body = parse(leaseRequestSchema, request.body, 'body');
    const decision = await service.acquire(body);
    if (decision.granted) return decision;
    void reply.header('retry-after', Math.ceil(decision.retryAfterMs / 1_000));
    return reply.code(409).send(decision);
  });

  app.post('/v1/leases/:leaseId/renew', { onRequest: guard('agent') }, async (request) => {
    const { leaseId } = parse(leaseParamsSchema, request.params, 'path');
    const body = parse(renewRequestSchema, request.body, 'body');
    return service.renew(leaseId, body);
  });

  app.post('/v1/leases/:leaseId/release', { onRequest: guard('agent') }, async (request) => {
    const { leaseId } = parse(leaseParamsSchema, request.params, 'path');
    const body = parse(releaseRequestSchema, request.body, 'body');
    return service.release(leaseId, body);
  });

  for (const action of groupActions) {
    app.post(`/v1/groups/:group/${action}`, { onRequest: guard('admin') }, async (request) => {
      const { group } = parse(groupParamsSchema, request.params, 'path');
      // The body is optional here: a bare POST pauses without a reason.
      const body = parse(groupActionRequestSchema, request.body ?? {}, 'body');
      return service.groupAction(group, action, body.reason);
    });
  }

  app.post('/v1/registry/events', { onRequest: guard('agent') }, async (request) => {
    const body = parse(registryEnvelopeSchema, request.body, 'body');
    return service.registryEvents(body);
  });

  app.get('/v1/status', { onRequest: guard('read') }, async () => service.status());

  app.get('/v1/events', { onRequest: guard('read') }, async (request) => {
    const query = parse(eventsQuerySchema, request.query, 'query');
    const events = await service.readEvents({
      limit: query.limit,
      ...(query.afterSeq !== undefined ? { afterSeq: query.afterSeq } : { newestFirst: true }),
      ...(query.group !== undefined ? { group: query.group } : {}),
    });
    return { events: query.afterSeq === undefined ? events.reverse() : events };
  });

  registerStatusRoutes(app, { service, auth: options.auth, logger: options.logger, ...options.status });

  // JSON only: anything else is 415 rather than a string that fails validation.
  app.removeContentTypeParser('text/plain');

  // The distribution registry posts notifications as application/vnd.docker.distribution.events.v1+json.
  app.addContentTypeParser(
    'application/vnd.docker.distribution.events.v1+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'ignore'),
  );

  return app;
}

export type CoordinatorHttpServer = ReturnType<typeof createHttpServer>;
