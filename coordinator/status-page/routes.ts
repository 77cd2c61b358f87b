import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { StatusResponse } from '../../shared/api/v1.js';
import type { Clock } from '../../shared/clock.js';
import { batonVersion } from '../../shared/version.js';
import type { Logger } from '../../shared/logger.js';
import { authIsConfigured, authorize, type AuthConfig } from '../http/auth.js';
import { cookieValue, presentedToken, sessionCookieName } from '../http/credentials.js';
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
const streamQuerySchema = z.object({ afterSeq: z.coerce.number().int().nonnegative().optional() });

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

  const readGuard = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const verdict = authorize(auth, 'read', presentedToken(request));
    if (!verdict.allowed) {
      await reply.code(verdict.status).send({ error: verdict.status === 401 ? 'unauthorized' : 'forbidden', message: verdict.message });
    }
  };

  const page = (reply: FastifyReply, status: number, html: string): FastifyReply => reply.code(status).headers(pageHeaders).send(html);

  app.get('/', async (request, reply) => {
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

  app.get('/v1/figures', { onRequest: readGuard }, async () => {
    await analytics.ready;
    return analytics.figures();
  });

  app.get('/metrics', { onRequest: readGuard }, async (_request, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });

  app.get('/v1/events/stream', { onRequest: readGuard }, async (request, reply) => {
    const query = streamQuerySchema.safeParse(request.query);
    const lastEventId = Number(request.headers['last-event-id']);
    const afterSeq = Number.isSafeInteger(lastEventId) && lastEventId >= 0 ? lastEventId : query.success ? query.data.afterSeq : undefined;
    await analytics.ready;
    reply.hijack();
    const accepted = await stream.add(reply.raw, afterSeq);
    if (!accepted) {
      reply.raw.writeHead(503, { 'content-type': 'application/json', 'retry-after': '10' });
      reply.raw.end(JSON.stringify({ error: 'internal', message: 'too many status page listeners; try again later' }));
    }
  });
};
