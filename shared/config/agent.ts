import { z } from 'zod';
import { groupNameSchema, imageReferenceSchema, nodeIdSchema, printableText } from '../api/v1.js';
import { hostPortSchema } from '../host-port.js';
import { imageReferenceTextSchema } from '../image-ref.js';
import { parseEnvList, type EnvironmentOverride } from './load.js';

/** The agent's state directory when neither the file nor BATON_STATE_DIR names one. */
export const defaultAgentStateDir = '/var/lib/baton';

const durationMs = (min: number, max: number) => z.number().int().min(min).max(max);

export const httpHealthCheckSchema = z.strictObject({
  /** e.g. http://127.0.0.1:8080/health */
  url: z.url({ protocol: /^https?$/ }),
  expectedStatus: z.number().int().min(100).max(599).default(200),
  timeoutMs: durationMs(100, 60_000).default(2_000),
});

export const healthCheckSchema = z
  .strictObject({
    http: httpHealthCheckSchema.optional(),
    /** Also require the image's own Docker HEALTHCHECK to report healthy. */
    docker: z.boolean().default(false),
    /** Between checks while an update waits for the new container to become healthy. */
    intervalMs: durationMs(100, 600_000).default(1_000),
    /** Between checks of the running service when no update is under way (readiness, auto-heal). */
    idleIntervalMs: durationMs(500, 600_000).default(5_000),
    /** Consecutive passing checks needed before the new container counts as healthy. */
    consecutivePasses: z.number().int().min(1).max(100).default(3),
    /** The passes must be reached within this long after start, or the update fails. */
    deadlineMs: durationMs(1_000, 3_600_000).default(60_000),
    /** After the passes, the container must stay healthy this long (checked at every interval). */
    minHealthyMs: durationMs(0, 3_600_000).default(5_000),
  })
  .refine((h) => h.http !== undefined || h.docker, {
    message: 'a health check needs an http check, docker: true, or both',
  });

const hookSchema = z.strictObject({
  command: z.string().min(1),
  timeoutMs: durationMs(100, 600_000).default(30_000),
});

export const serviceSchema = z.strictObject({
  /** The group this node's service belongs to: the unit of a rollout. */
  group: groupNameSchema,
  /** Image to follow, by tag: `registry/name:tag`. */
  image: imageReferenceSchema.pipe(imageReferenceTextSchema),
  /** Container name; also the service's name on the readiness endpoint (/ready/<name>). */
  containerName: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, 'must be a valid Docker container name'),
  command: z.array(z.string()).optional(),
  entrypoint: z.array(z.string()).optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid variable name'), z.string()).default({}),
  ports: z
    .array(
      z.strictObject({
        containerPort: z.number().int().min(1).max(65_535),
        hostPort: z.number().int().min(1).max(65_535),
        protocol: z.enum(['tcp', 'udp']).default('tcp'),
        hostIp: z.string().optional(),
      }),
    )
    .default([]),
  volumes: z
    .array(
      z.strictObject({
        source: z.string().min(1),
        target: z.string().startsWith('/', 'must be an absolute path in the container'),
        readOnly: z.boolean().default(false),
      }),
    )
    .default([]),
  labels: z.record(z.string(), z.string()).default({}),
  restartPolicy: z.enum(['no', 'always', 'unless-stopped', 'on-failure']).default('unless-stopped'),
  networkMode: z.string().min(1).default('host'),
  user: z.string().optional(),
  /** SIGTERM, then SIGKILL after this many seconds. */
  stopTimeoutSeconds: z.number().int().min(0).max(3_600).default(10),
  health: healthCheckSchema,
  /** How long readiness answers 503 before the container is stopped, so the load balancer stops sending. */
  drainSeconds: z.number().min(0).max(3_600).default(10),
  /** After success, how long readiness answers 200 before the old container is removed and the lease released. */
  readmitSeconds: z.number().min(0).max(3_600).default(5),
  /** Pull the new image before taking a lease, while the old container still serves. */
  prePull: z.boolean().default(true),
  /**
   * After a successful update, remove this service's other images (same repository, not tagged,
   * not used by a container), keeping the one it runs and the one it ran before: a rollback then
   * needs no pull, and the disk does not fill with one image per release.
   */
  pruneImages: z.boolean().default(true),
  hooks: z
    .strictObject({
      preDrain: hookSchema.optional(),
      postReady: hookSchema.optional(),
    })
    .default({}),
});
export type ServiceConfig = z.output<typeof serviceSchema>;

export const agentConfigSchema = z
  .strictObject({
    /** Stable id of this node; defaults to the host name (filled in by main). */
    nodeId: nodeIdSchema,
    /** Address the load balancer reaches this host at; shown on the status page. */
    host: printableText(253, 1),
    coordinator: z.strictObject({
      /** One or more coordinator URLs, tried in order. */
      urls: z.array(z.url({ protocol: /^https?$/ })).min(1),
      token: z.string().min(1).optional(),
      tokenFile: z.string().min(1).optional(),
      requestTimeoutMs: durationMs(100, 120_000).default(5_000),
    }),
    docker: z
      .strictObject({
        socketPath: z.string().min(1).default('/var/run/docker.sock'),
        requestTimeoutMs: durationMs(1_000, 3_600_000).default(120_000),
      })
      .default({ socketPath: '/var/run/docker.sock', requestTimeoutMs: 120_000 }),
    registry: z
      .strictObject({
        /** A Docker config.json with `auths` entries. */
        dockerConfigPath: z.string().min(1).optional(),
        username: z.string().min(1).optional(),
        passwordFile: z.string().min(1).optional(),
        requestTimeoutMs: durationMs(100, 120_000).default(10_000),
        /** Use plain HTTP for these registries (loopback registries always do). */
        insecureRegistries: z.array(z.string()).default([]),
        /**
         * TLS to the registries (the agent's HEAD; pulls are the engine's): a PEM CA bundle trusted
         * besides Node.js's public CAs, and a client certificate and key for registries that require one.
         */
        tls: z
          .strictObject({
            caFile: z.string().min(1).optional(),
            certFile: z.string().min(1).optional(),
            keyFile: z.string().min(1).optional(),
          })
          .superRefine((t, ctx) => {
            if (t.certFile !== undefined && t.keyFile === undefined) ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'certFile needs keyFile' });
            if (t.keyFile !== undefined && t.certFile === undefined) ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'keyFile needs certFile' });
          })
          .optional(),
      })
      .default({ insecureRegistries: [], requestTimeoutMs: 10_000 }),
    schedule: z
      .strictObject({
        /** node-cron expression for polls; default every minute. */
        cron: z.string().min(1).default('* * * * *'),
        /** Extra random delay added to each poll, at most this many ms. */
        splayMs: durationMs(0, 3_600_000).default(5_000),
      })
      .default({ cron: '* * * * *', splayMs: 5_000 }),
    readiness: z
      .strictObject({
        /** Ignored when systemd passes a listening socket (baton-agent.socket). */
        listen: hostPortSchema('127.0.0.1:7071').default('127.0.0.1:7071'),
        /** A live probe's result answers /ready and the heartbeat for this long; concurrent requests share one probe. */
        probeCacheMs: durationMs(0, 10_000).default(250),
        /** The probe's inspect must answer within this long, or the engine counts as unreachable (503). */
        engineTimeoutMs: durationMs(100, 60_000).default(2_000),
      })
      .default({ listen: '127.0.0.1:7071', probeCacheMs: 250, engineTimeoutMs: 2_000 }),
    /** Where the agent keeps its small state file (current update, for crash recovery). */
    stateDir: z.string().min(1).default(defaultAgentStateDir),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    services: z.array(serviceSchema).min(1),
  })
  .refine((c) => c.registry.username === undefined || c.registry.passwordFile !== undefined, {
    message: 'registry.username needs registry.passwordFile',
    path: ['registry', 'passwordFile'],
  })
  .refine((c) => new Set(c.services.map((s) => s.containerName)).size === c.services.length, {
    message: 'container names must be unique',
    path: ['services'],
  });
export type AgentConfig = z.output<typeof agentConfigSchema>;

export const agentEnvironmentOverrides: EnvironmentOverride[] = [
  { variable: 'BATON_NODE_ID', path: ['nodeId'] },
  { variable: 'BATON_HOST', path: ['host'] },
  { variable: 'BATON_COORDINATOR_URLS', path: ['coordinator', 'urls'], parse: parseEnvList },
  { variable: 'BATON_TOKEN', path: ['coordinator', 'token'] },
  { variable: 'BATON_TOKEN_FILE', path: ['coordinator', 'tokenFile'] },
  { variable: 'BATON_DOCKER_SOCKET', path: ['docker', 'socketPath'] },
  { variable: 'BATON_READINESS_LISTEN', path: ['readiness', 'listen'] },
  { variable: 'BATON_STATE_DIR', path: ['stateDir'] },
  { variable: 'BATON_LOG_LEVEL', path: ['logLevel'] },
];
