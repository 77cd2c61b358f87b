import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ApiError } from '../../shared/api/errors.js';
import type { ApiRoute } from '../../shared/api/routes.js';
import type { Logger } from '../../shared/logger.js';
import { presentedToken } from './credentials.js';
import { requireAccess, type AuthConfig } from './auth.js';

/** The API's app, or a plugin's encapsulated context (whose logger is fastify's base type). */
export type CoordinatorApp = FastifyInstance<Server, IncomingMessage, ServerResponse, Logger> | FastifyInstance;

type Output<S> = S extends z.ZodType ? z.output<S> : undefined;

/** A route's request once validated with the route's schemas: what a handler works on. */
export interface ValidRequest<R extends ApiRoute> {
  params: R extends { params: infer P } ? Output<P> : undefined;
  query: R extends { query: infer Q } ? Output<Q> : undefined;
  body: R extends { body: infer B } ? Output<B> : undefined;
}

/** What a handler returns: the JSON answer as the route's response schema reads it, or the reply it sent itself. */
type Answer<R extends ApiRoute> = (R extends { response: infer S extends z.ZodType } ? z.input<S> : unknown) | FastifyReply;

export type RouteHandler<R extends ApiRoute> = (
  request: ValidRequest<R>,
  reply: FastifyReply,
  raw: FastifyRequest,
) => Answer<R> | Promise<Answer<R>>;

function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'path' | 'query'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue ? [where, ...issue.path.map(String)].join('.') : where;
  const message = result.error.issues.map((i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`).join('; ');
  // Refused before anything is decided: nothing stored changes.
  throw new ApiError('bad-request', message, field);
}

/**
 * Registers a route of the table (shared/api/routes.ts): its access is checked on request, its
 * params, query and body are validated with its schemas (400 naming the field), and only then
 * does the handler run.
 */
export function serveRoute<R extends ApiRoute>(app: CoordinatorApp, auth: AuthConfig, route: R, handler: RouteHandler<R>): void {
  app.route({
    method: route.method,
    url: route.path,
    ...(route.access === 'public'
      ? {}
      : { onRequest: async (request: FastifyRequest) => requireAccess(auth, route.access, presentedToken(request)) }),
    handler: async (request, reply) => {
      const valid = {
        params: route.params ? parse(route.params, request.params, 'path') : undefined,
        query: route.query ? parse(route.query, request.query, 'query') : undefined,
        body: route.body ? parse(route.body, route.bodyOptional ? (request.body ?? {}) : request.body, 'body') : undefined,
      } as ValidRequest<R>;
      return handler(valid, reply, request);
    },
  });
}
