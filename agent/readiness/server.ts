import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BatonError } from '../../shared/errors.js';
import { readHostPort, type HostPort } from '../../shared/host-port.js';
import type { Logger } from '../../shared/logger.js';
import type { ReadinessBoard } from './board.js';

/**
 * The readiness endpoint load balancers health-check: `GET /ready/<service>` answers 200 `ok` only
 * while that service is not draining and its live probe passes (board.ts), else 503 with the reason
 * (`draining`, `engine-unreachable`, `container-stopped`, `check-failed`...) as the body. So draining
 * a node is just answering 503 here until the balancer has stopped sending. `GET /healthz` answers
 * 200 while the agent runs. `HEAD` is answered like `GET`, without a body.
 *
 * It listens on `listen`, or on a socket inherited from systemd (socket activation, systemd.ts):
 * then the socket outlives the agent process, and a balancer's check made while the agent restarts
 * waits in the socket's queue for the next agent instead of being refused.
 */

export interface ReadinessServerOptions {
  /** `host:port` (`[v6]:port` for IPv6); port 0 picks a free port. Ignored when `inheritedFd` is given. */
  listen: string;
  /** A listening socket's file descriptor passed by systemd (LISTEN_FDS): served instead of binding `listen`. */
  inheritedFd?: number;
  logger: Logger;
  /** The services served under /ready/<name>, with their flags and live probes. */
  board: ReadinessBoard;
  /** When given, `GET /metrics` answers its text (Prometheus exposition format); prom-client renders asynchronously. */
  metrics?: () => string | Promise<string>;
}

export interface ReadinessServer {
  /** The address served: bound from `listen`, or the inherited socket's (`port` 0 for a unix socket). */
  start(): Promise<{ address: string; port: number }>;
  stop(): Promise<void>;
}

/** On stop: idle connections are closed after this long, every connection after stopGraceMs. */
const idleGraceMs = 250;
const stopGraceMs = 2_000;

export function parseListen(listen: string): HostPort {
  const reading = readHostPort(listen, '127.0.0.1:7071');
  if (!reading.ok) throw new BatonError('READINESS_LISTEN_INVALID', `readiness listen address ${reading.reason}`);
  return reading.value;
}

export function createReadinessServer(options: ReadinessServerOptions): ReadinessServer {
  const { logger, metrics, board } = options;
  const { host, port } = parseListen(options.listen);
  let stopping = false;

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
    // draining node open would otherwise keep a path to it. So does every answer once stopping.
    if (status === 503 || stopping) headers.connection = 'close';
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
      if (!board.has(service)) {
        answer(req, res, 404, 'unknown service');
        return;
      }
      board.check(service).then(
        (status) => {
          if (status.ready) answer(req, res, 200, 'ok');
          else answer(req, res, 503, status.reason);
        },
        (err: unknown) => {
          logger.error({ err, service }, 'readiness check failed');
          answer(req, res, 500, 'internal error');
        },
      );
      return;
    }
    answer(req, res, 404, 'not found');
  };

  let server: Server | undefined;

  return {
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
      const where = options.inheritedFd === undefined ? options.listen : `the inherited socket (fd ${options.inheritedFd})`;
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => {
          server = undefined;
          reject(
            new BatonError('READINESS_LISTEN_FAILED', `readiness endpoint cannot listen on ${where}: ${err.message}`, {
              cause: err,
            }),
          );
        };
        created.once('error', onError);
        const target = options.inheritedFd === undefined ? { host, port } : { fd: options.inheritedFd };
        created.listen(target, () => {
          created.off('error', onError);
          created.on('error', (err) => logger.error({ err }, 'readiness server error'));
          resolve();
        });
      });
      const bound = created.address();
      const address = typeof bound === 'string' || bound === null ? { address: bound ?? '', port: 0 } : boundAddress(bound);
      logger.info(
        { address: address.address, port: address.port, socketActivated: options.inheritedFd !== undefined },
        'readiness endpoint listening',
      );
      return address;
    },

    async stop() {
      const current = server;
      if (!current) return;
      server = undefined;
      stopping = true;
      // No new connections from here on (with an inherited socket, the next ones wait in systemd's
      // queue for the next agent). A request already accepted is still answered: idle keep-alive
      // connections go after a moment (a connection just accepted may not have sent its request yet),
      // and whatever is left after stopGraceMs.
      await new Promise<void>((resolve) => {
        const idle = setTimeout(() => current.closeIdleConnections(), idleGraceMs);
        const all = setTimeout(() => current.closeAllConnections(), stopGraceMs);
        current.close(() => {
          clearTimeout(idle);
          clearTimeout(all);
          resolve();
        });
      });
    },
  };
}

function boundAddress(bound: AddressInfo): { address: string; port: number } {
  return { address: bound.address, port: bound.port };
}
