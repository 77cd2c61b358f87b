import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BatonError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { Readiness } from '../ports.js';

/**
 * The readiness endpoint load balancers health-check: `GET /ready/<service>` answers 200 `ok`
 * only while that service is healthy and not draining, so draining a node is just answering 503
 * here until the balancer has stopped sending. `GET /healthz` answers 200 while the agent runs.
 * `HEAD` is answered like `GET`, without a body.
 */

export interface ReadinessServerOptions {
  /** `host:port` (`[v6]:port` for IPv6); port 0 picks a free port. */
  listen: string;
  logger: Logger;
  /** Service (container) names served under /ready/<name>. */
  services: string[];
  /** When given, `GET /metrics` answers its text (Prometheus exposition format); prom-client renders asynchronously. */
  metrics?: () => string | Promise<string>;
}

/** Why a service is not ready; `starting` until it has been healthy once. */
export type NotReadyReason = 'draining' | 'unhealthy' | 'starting';

export interface ServiceReadiness {
  ready: boolean;
  reason: NotReadyReason | undefined;
}

export interface ReadinessServer extends Readiness {
  start(): Promise<{ address: string; port: number }>;
  stop(): Promise<void>;
  /** What `/ready/<service>` answers now; undefined for an unknown service. */
  status(service: string): ServiceReadiness | undefined;
}

interface ServiceState {
  healthy: boolean;
  draining: boolean;
  everHealthy: boolean;
}

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(listen) ?? /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[2]);
  if (!match?.[1] || !Number.isInteger(port) || port > 65_535) {
    throw new BatonError('READINESS_LISTEN_INVALID', `readiness listen address must be host:port, got ${JSON.stringify(listen)}`);
  }
  return { host: match[1], port };
}

export function createReadinessServer(options: ReadinessServerOptions): ReadinessServer {
  const { logger, metrics } = options;
  const { host, port } = parseListen(options.listen);
  const states = new Map<string, ServiceState>();
  for (const service of options.services) {
    states.set(service, { healthy: false, draining: false, everHealthy: false });
  }

  const statusOf = (state: ServiceState): ServiceReadiness => {
    if (state.draining) return { ready: false, reason: 'draining' };
    if (!state.healthy) return { ready: false, reason: state.everHealthy ? 'unhealthy' : 'starting' };
    return { ready: true, reason: undefined };
  };

  const stateOf = (service: string): ServiceState => {
    const state = states.get(service);
    if (!state) {
      throw new BatonError('READINESS_UNKNOWN_SERVICE', `readiness: unknown service ${JSON.stringify(service)}`);
    }
    return state;
  };

  const update = (service: string, change: (state: ServiceState) => void): void => {
    const state = stateOf(service);
    const before = statusOf(state);
    change(state);
    const after = statusOf(state);
    if (before.ready !== after.ready || before.reason !== after.reason) {
      logger.info({ service, ready: after.ready, reason: after.reason ?? null }, 'readiness changed');
    }
  };

  const answer = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: string,
    extraHeaders: Record<string, string> = {},
  ): void => {
    const headers: Record<string, string | number> = {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
      ...extraHeaders,
    };
    // A not-ready answer closes the connection: a balancer that keeps connections to a
    // draining node open would otherwise keep a path to it.
    if (status === 503) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      answer(req, res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      return;
    }
    if (path === '/healthz') {
      answer(req, res, 200, 'ok');
      return;
    }
    if (path === '/metrics' && metrics) {
      Promise.resolve()
        .then(metrics)
        .then(
          (text) => answer(req, res, 200, text, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }),
          (err: unknown) => {
            logger.warn({ err }, 'metrics failed');
            answer(req, res, 500, 'metrics failed');
          },
        )
        .catch((err: unknown) => {
          logger.error({ err }, 'metrics answer failed');
          res.destroy();
        });
      return;
    }
    if (path.startsWith('/ready/')) {
      let service: string;
      try {
        service = decodeURIComponent(path.slice('/ready/'.length));
      } catch {
        answer(req, res, 400, 'bad service name');
        return;
      }
      const state = states.get(service);
      if (!state) {
        answer(req, res, 404, 'unknown service');
        return;
      }
      const status = statusOf(state);
      if (status.ready) answer(req, res, 200, 'ok');
      else answer(req, res, 503, status.reason ?? 'unhealthy');
      return;
    }
    answer(req, res, 404, 'not found');
  };

  let server: Server | undefined;

  return {
    setHealthy(service, healthy) {
      update(service, (state) => {
        state.healthy = healthy;
        if (healthy) state.everHealthy = true;
      });
    },

    setDraining(service, draining) {
      update(service, (state) => {
        state.draining = draining;
      });
    },

    status(service) {
      const state = states.get(service);
      return state ? statusOf(state) : undefined;
    },

    async start() {
      if (server) throw new BatonError('READINESS_ALREADY_STARTED', 'readiness server already started');
      const created = createServer(
        { requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000 },
        (req, res) => {
          try {
            handle(req, res);
          } catch (err) {
            logger.error({ err }, 'readiness request failed');
            if (!res.headersSent) answer(req, res, 500, 'internal error');
            else res.destroy();
          }
        },
      );
      created.maxHeadersCount = 50;
      server = created;
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => {
          server = undefined;
          reject(
            new BatonError('READINESS_LISTEN_FAILED', `readiness endpoint cannot listen on ${options.listen}: ${err.message}`, {
              cause: err,
            }),
          );
        };
        created.once('error', onError);
        created.listen({ host, port }, () => {
          created.off('error', onError);
          created.on('error', (err) => logger.error({ err }, 'readiness server error'));
          resolve();
        });
      });
      const address = created.address() as AddressInfo;
      logger.info({ address: address.address, port: address.port }, 'readiness endpoint listening');
      return { address: address.address, port: address.port };
    },

    async stop() {
      const current = server;
      if (!current) return;
      server = undefined;
      await new Promise<void>((resolve) => {
        current.close(() => resolve());
        current.closeAllConnections();
      });
    },
  };
}
