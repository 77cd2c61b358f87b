import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRoutes, errorResponseSchema, pathOf, type ApiRoute } from '../../shared/api/v1.js';
import type { Coordinator } from '../build.js';
import { buildTestCoordinator } from '../testing/coordinator.js';
import type { CoordinatorHttpServer } from './server.js';

const agentToken = 'agent-token-0123456789';
const adminToken = 'admin-token-0123456789';
const routes: ApiRoute[] = Object.values(apiRoutes);
const urlOf = (route: ApiRoute) => pathOf(route, { params: { nodeId: 'ghost', leaseId: 'no-lease', group: 'no-group' } });

describe('the coordinator serves the route table', () => {
  let dir: string;
  let coordinator: Coordinator;
  let app: CoordinatorHttpServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-http-'));
    const auth = { agentTokens: [agentToken], adminToken, publicStatus: false };
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'), { config: { auth, bodyLimitBytes: 4_096 } });
    app = coordinator.app;
  });
  afterAll(async () => {
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(routes.filter((route) => route.access !== 'public').map((route) => [route.name, route] as const))(
    '%s answers 401 unauthorized without a token',
    async (_name, route) => {
      const answer = await app.inject({ method: route.method, url: urlOf(route) });
      expect(answer.statusCode).toBe(401);
      expect(errorResponseSchema.parse(answer.json())).toEqual({ error: 'unauthorized', message: 'a bearer token is required' });
    },
  );

  it.each(routes.filter((route) => route.access === 'admin').map((route) => [route.name, route] as const))(
    '%s answers 403 forbidden to an agent token',
    async (_name, route) => {
      const answer = await app.inject({ method: route.method, url: urlOf(route), headers: { authorization: `Bearer ${agentToken}` } });
      expect(answer.statusCode).toBe(403);
      expect(errorResponseSchema.parse(answer.json()).error).toBe('forbidden');
    },
  );

  it('answers the public routes to anyone, and an unknown route with not-found', async () => {
    expect((await app.inject({ method: 'GET', url: apiRoutes.healthz.path })).json()).toEqual({ ok: true });
    expect((await app.inject({ method: 'GET', url: apiRoutes.statusPage.path })).statusCode).toBe(401);
    const unknown = await app.inject({ method: 'GET', url: '/v1/nothing?x=1' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: 'not-found', message: 'no route GET /v1/nothing' });
  });

  it('validates with the route schemas before anything runs, naming the field', async () => {
    const answer = await app.inject({
      method: 'POST',
      url: pathOf(apiRoutes.renew, { params: { leaseId: 'no-lease' } }),
      headers: { authorization: `Bearer ${agentToken}` },
      payload: { fencingToken: 'one' },
    });
    expect(answer.statusCode).toBe(400);
    expect(errorResponseSchema.parse(answer.json())).toMatchObject({ error: 'bad-request', field: 'body.fencingToken' });
    const unknownLease = await app.inject({
      method: 'POST',
      url: pathOf(apiRoutes.renew, { params: { leaseId: 'no-lease' } }),
      headers: { authorization: `Bearer ${agentToken}` },
      payload: { fencingToken: 1 },
    });
    expect(unknownLease.statusCode).toBe(404);
    expect(errorResponseSchema.parse(unknownLease.json()).error).toBe('not-found');
  });
});
