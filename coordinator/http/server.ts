import Fastify, { LogController, type FastifyReply } from 'fastify';
import { ApiError, toErrorResponse } from '../../shared/api/errors.js';
import { groupActions } from '../../shared/api/operator-messages.js';
import { apiRoutes, groupActionRoutes, maxEncodedParamLength } from '../../shared/api/routes.js';
import type { Logger } from '../../shared/logger.js';
import type { CoordinatorService } from '../service/service.js';
import type { AuthConfig } from './auth.js';
import { serveRoute, type RouteHandler } from './serve-route.js';

export interface HttpServerOptions {
  service: CoordinatorService;
  auth: AuthConfig;
  logger: Logger;
  bodyLimitBytes: number;
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
    // The router's default (100) would answer 414 to node ids the schemas allow (up to 253 characters).
    routerOptions: { maxParamLength: maxEncodedParamLength },
    // Errors the router raises before any route (a parameter longer than any valid one, a malformed
    // URL) are answered from the catalogue too.
    frameworkErrors: (error, _request, reply: FastifyReply) => {
      const { status, body } = toErrorResponse(new ApiError('bad-request', error.message, 'path'));
      void reply.code(status).send(body);
    },
  });

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

  const serve = <R extends (typeof apiRoutes)[keyof typeof apiRoutes]>(route: R, handler: RouteHandler<R>): void =>
    serveRoute(app, options.auth, route, handler);

  // Live, and able to commit: a store that cannot (read-only, full disk) answers 503 with the reason.
  serve(apiRoutes.healthz, async () => {
    const store = await service.storeWritable();
    if (!store.ok) throw new ApiError('unavailable', `the store cannot commit: ${store.reason}`);
    return { ok: true } as const;
  });
  serve(apiRoutes.heartbeat, ({ params, body }) => service.heartbeat(params.nodeId, body));
  serve(apiRoutes.forget, ({ params, query }) => service.forget(params.nodeId, query.group));
  serve(apiRoutes.drain, ({ params, body }) => service.drain(params.nodeId, body.group, body.reason));
  serve(apiRoutes.undrain, ({ params, body }) => service.undrain(params.nodeId, body.group));
  serve(apiRoutes.acquire, async ({ body }, reply) => {
    const decision = await service.acquire(body);
    if (decision.granted) return decision;
    void reply.header('retry-after', Math.ceil(decision.retryAfterMs / 1_000));
    return reply.code(409).send(decision);
  });
  serve(apiRoutes.renew, ({ params, body }) => service.renew(params.leaseId, body));
  serve(apiRoutes.release, ({ params, body }) => service.release(params.leaseId, body));
  for (const action of groupActions) {
    serve(groupActionRoutes[action], ({ params, body }) => service.groupAction(params.group, action, body.reason));
  }
  serve(apiRoutes.registryEvents, ({ body }) => service.registryEvents(body));
  serve(apiRoutes.status, () => service.status());
  serve(apiRoutes.events, async ({ query }) => {
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
