import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
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
  type ErrorResponse,
} from '../../shared/api/v1.js';
import type { Logger } from '../../shared/logger.js';
import { ConflictError, LeaseConflictError, NotFoundError, type CoordinatorService } from '../service/service.js';
import { authorize, type Access, type AuthConfig } from './auth.js';
import { presentedToken } from './credentials.js';

export interface HttpServerOptions {
  service: CoordinatorService;
  auth: AuthConfig;
  logger: Logger;
  bodyLimitBytes: number;
}

/** A request the API refuses before anything is decided; nothing stored changes. */
class BadRequestError extends Error {
  constructor(
    message: string,
    readonly field: string | undefined,
  ) {
    super(message);
  }
}

function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'path' | 'query'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue ? [where, ...issue.path.map(String)].join('.') : where;
  const message = result.error.issues
    .map((i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`)
    .join('; ');
  throw new BadRequestError(message, field);
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

function sendError(reply: FastifyReply, status: number, body: ErrorResponse): FastifyReply {
  return reply.code(status).send(body);
}

/**
 * The coordinator's HTTP API v1. Bodies are validated with the shared zod schemas, never
 * trusted. The status page is a plugin of its own, registered beside it (coordinator/build.ts).
 */
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

  const guard =
    (access: Access) =>
    async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const verdict = authorize(options.auth, access, presentedToken(request));
      if (!verdict.allowed) {
        await sendError(reply, verdict.status, {
          error: verdict.status === 401 ? 'unauthorized' : 'forbidden',
          message: verdict.message,
        });
      }
    };

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (error instanceof BadRequestError) {
      return sendError(reply, 400, { error: 'bad-request', message: error.message, ...(error.field ? { field: error.field } : {}) });
    }
    if (error instanceof NotFoundError) return sendError(reply, 404, { error: 'not-found', message: error.message });
    if (error instanceof LeaseConflictError) return sendError(reply, 409, { error: error.reason, message: error.message });
    if (error instanceof ConflictError) return sendError(reply, 409, { error: 'conflict', message: error.message });
    if (error.statusCode === 413) return sendError(reply, 413, { error: 'payload-too-large', message: error.message });
    if (error.statusCode === 415) {
      return sendError(reply, 415, { error: 'unsupported-media-type', message: 'send application/json' });
    }
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, 400, { error: 'bad-request', message: error.message, field: 'body' });
    }
    request.log.error({ err: error, url: request.url }, 'request failed');
    return sendError(reply, 500, { error: 'internal', message: 'internal error' });
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(reply, 404, { error: 'not-found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

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
