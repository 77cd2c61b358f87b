import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { StatusResponse } from '../../shared/api/v1.js';
import type { Clock } from '../../shared/clock.js';
import { batonVersion } from '../../shared/version.js';
import type { Logger } from '../../shared/logger.js';
import { ApiError, toErrorResponse } from '../../shared/api/errors.js';
import { apiRoutes } from '../../shared/api/routes.js';
import { authIsConfigured, authorize, type AuthConfig } from '../http/auth.js';
import { cookieValue, presentedToken, sessionCookieName } from '../http/credentials.js';
import { serveRoute } from '../http/serve-route.js';
import type { FleetAnalytics } from '../metrics/analytics.js';
import type { CoordinatorMetrics } from '../metrics/prometheus.js';
import { renderSignInPage, renderStatusPage, statusPageCsp } from './page.js';
import { clearedSessionCookie, sessionCookie } from './session.js';
import { StatusStream, type StatusStreamOptions } from './stream.js';

export interface StatusPageOptions {
  /** The coordinator's state and its events, as the page and its live feed show them. */
  service: StatusStreamOptions['source'] & { status(): Promise<StatusResponse> };
  auth: AuthConfig;
  logger: Logger;
  clock: Clock;
  /** Deployment figures; the coordinator owns them (and stops them). */
  analytics: FleetAnalytics;
  /** Prometheus metrics; the coordinator owns them (and stops them). */
  metrics: CoordinatorMetrics;
  /** How often the event stream sends a snapshot while someone listens. */
  snapshotIntervalMs?: number;
}

const pageQuerySchema = z.object({ token: z.string().max(4_096).optional(), signout: z.string().optional() });

const pageHeaders = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': statusPageCsp,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/**
 * What operators look at, as a fastify plugin (encapsulated: its hooks stay in its own
 * context): the status page (GET /), its live feed (GET /v1/events/stream), deployment
 * figures (GET /v1/figures) and Prometheus metrics (GET /metrics). Every one reads like
 * GET /v1/status: public when auth.publicStatus, else with any valid token (as a bearer
 * token, or the page's session cookie).
 */
export const statusPage: FastifyPluginAsync<StatusPageOptions> = async (app, options) => {
  const { service, auth, analytics, metrics } = options;
  const logger = options.logger.child({ component: 'status' });
  const stream = new StatusStream({
    snapshot: async () => ({ status: await service.status(), figures: analytics.figures() }),
    source: service,
    logger,
    clock: options.clock,
    ...(options.snapshotIntervalMs !== undefined ? { intervalMs: options.snapshotIntervalMs } : {}),
  });

  // Before the server closes: ends the live feeds, which would otherwise hold it open.
  app.addHook('preClose', async () => stream.close());

  const page = (reply: FastifyReply, status: number, html: string): FastifyReply => reply.code(status).headers(pageHeaders).send(html);

  app.get(apiRoutes.statusPage.path, async (request, reply) => {
    const query = pageQuerySchema.safeParse(request.query);
    const { token, signout } = query.success ? query.data : {};
    if (signout !== undefined) {
      return reply.code(303).header('set-cookie', clearedSessionCookie(request)).header('location', '/').send();
    }
    if (token !== undefined) {
      // A token handed over once in the URL becomes a cookie; the redirect drops it from the address bar.
      if (!authIsConfigured(auth)) return reply.code(303).header('location', '/').send();
      if (!authorize(auth, 'read', token).allowed) {
        return page(reply, 401, renderSignInPage({ message: 'That token was not accepted.' }));
      }
      return reply.code(303).header('set-cookie', sessionCookie(request, token)).header('location', '/').send();
    }
    const presented = presentedToken(request);
    if (!authorize(auth, 'read', presented).allowed) {
      const hadCookie = cookieValue(request.headers.cookie, sessionCookieName) !== undefined;
      if (hadCookie) void reply.header('set-cookie', clearedSessionCookie(request));
      return page(reply, 401, renderSignInPage(hadCookie ? { message: 'Your session is no longer valid; sign in again.' } : {}));
    }
    const admin = authorize(auth, 'admin', presented).allowed;
    const signedIn = authIsConfigured(auth) && cookieValue(request.headers.cookie, sessionCookieName) !== undefined;
    return page(reply, 200, renderStatusPage({ admin, signedIn, version: batonVersion }));
  });

  serveRoute(app, auth, apiRoutes.figures, async () => {
    await analytics.ready;
    return analytics.figures();
  });

  serveRoute(app, auth, apiRoutes.metrics, async (_request, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });

  serveRoute(app, auth, apiRoutes.eventStream, async ({ query }, reply, request) => {
    const lastEventId = Number(request.headers['last-event-id']);
    const afterSeq = Number.isSafeInteger(lastEventId) && lastEventId >= 0 ? lastEventId : query.afterSeq;
    await analytics.ready;
    reply.hijack();
    const accepted = await stream.add(reply.raw, afterSeq);
    if (!accepted) {
      // The reply is hijacked: written by hand, with the catalogue's code and status.
      const { status, body } = toErrorResponse(new ApiError('unavailable', 'too many status page listeners; try again later'));
      reply.raw.writeHead(status, { 'content-type': 'application/json', 'retry-after': '10' });
      reply.raw.end(JSON.stringify(body));
    }
  });
};
