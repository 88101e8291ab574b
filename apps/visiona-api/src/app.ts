// Builds the HTTP app from ready stores; never listens (main.ts does).
import fastifyCookie from '@fastify/cookie';
import fastifyRateLimit from '@fastify/rate-limit';
import { systemClock, type Clock, type HealthCheck } from '@upgrade/core';
import { createService, type LoggerOption, type ServiceApp } from '@upgrade/service';
import { createAccounts } from './accounts.js';
import { agentRoutes } from './http/agent.js';
import { authRoutes, cookieAuthenticator, type LoginRateLimit, type SessionCookie } from './http/auth.js';
import { deviceRoutes } from './http/devices.js';
import { registerHealthz } from './http/healthz.js';
import { modelRoutes } from './http/models.js';
import { SHARED_SCHEMAS } from './http/schemas.js';
import { registerStrictInput } from './http/strict-input.js';
import { systemRoutes } from './http/system.js';
import { createPairing } from './pairing.js';
import type { UserSessionStore } from './ports.js';
import type { PersistentStores } from './stores/index.js';
import { createTunnelSessionStore } from './stores/tunnel-sessions.memory.js';
import { registerTunnel, type AgentConnection, type TunnelHub, type TunnelRegistry } from './tunnel/index.js';
import { API_SERVER_NAME, BUILD_COMMIT, SERVICE_NAME, SERVICE_VERSION } from './version.js';

/** Behaviour the operator configures. */
export interface AppSettings {
  cookie: SessionCookie;
  loginRateLimit: LoginRateLimit;
  /** Pairing attempts per client address and window. Default 30 a minute. */
  pairRateLimit?: LoginRateLimit;
  pairingCodeTtlMs: number;
  /** Reported by /api/system/info. */
  phase: string;
  /** Behind a load balancer: trust X-Forwarded-For (true, or the proxies' addresses / CIDRs). */
  trustProxy?: boolean | string;
  tunnel?: {
    heartbeatIntervalMs?: number;
    requestTimeoutMs?: number;
    /** `TUNNEL_INTERNAL_TOKEN`: the instances' shared secret, required with a shared `tunnelRegistry`. */
    internalToken?: string;
  };
}

export interface AppDeps {
  stores: PersistentStores;
  sessions: UserSessionStore;
  /** What GET /healthz pings: PostgreSQL and Redis when they are configured. */
  healthChecks: HealthCheck[];
  settings: AppSettings;
  /** A shared (Redis) counter store for the rate limits; default: this instance's memory. */
  rateLimitStore?: new (globalOptions: unknown) => unknown;
  /**
   * Which instance holds which agent, shared by the instances (Redis): requests for agents connected
   * to another instance go through it. Default: this instance's agents only.
   */
  tunnelRegistry?: TunnelRegistry;
  clock?: Clock;
  logger?: LoggerOption;
}

/** Pairing attempts per client address and minute, unless configured. */
const PAIR_RATE_LIMIT: LoginRateLimit = { max: 30, windowMs: 60_000 };

/**
 * The visiona-api: accounts, models, devices, pairing, the agent tunnel and system endpoints, plus
 * /healthz in the body visionA probes read, the kit's /metrics and /docs. The tunnel hub is closed with the app.
 */
export async function buildApp(deps: AppDeps): Promise<ServiceApp> {
  const { stores, settings } = deps;
  const clock = deps.clock ?? systemClock;
  const app = await createService({
    name: SERVICE_NAME,
    version: SERVICE_VERSION,
    logger: deps.logger ?? 'info',
    healthChecks: deps.healthChecks,
    // /healthz answers the body visionA probes read (http/healthz.ts), on the kit's checks.
    healthRoute: false,
    // The router matches ids of any length a request line can carry, so an id over its schema's
    // 100 characters is a 400 naming `id` like any other bad id, not the router's 414.
    maxParamLength: 16_384,
    ...(settings.trustProxy === undefined ? {} : { trustProxy: settings.trustProxy }),
    openapi: {
      title: 'visiona-api',
      description:
        'The visionA backend: accounts, AI models, edge devices paired with one-time codes, and HTTP requests to each device’s local agent through the tunnel the agent dials out.',
    },
  });
  registerHealthz(app);
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
  registerStrictInput(app, SHARED_SCHEMAS);
  await app.register(fastifyCookie);
  await app.register(fastifyRateLimit, {
    global: false,
    ...(deps.rateLimitStore === undefined ? {} : { store: deps.rateLimitStore as never }),
  });

  const accounts = createAccounts({ users: stores.users, sessions: deps.sessions });
  const authenticate = cookieAuthenticator(accounts, settings.cookie);
  const pairing = createPairing({
    devices: stores.devices,
    pairingTokens: stores.pairingTokens,
    clock,
    codeTtlMs: settings.pairingCodeTtlMs,
  });
  const hub: TunnelHub = await registerTunnel(app, {
    sessionTokens: stores.sessionTokens,
    devices: stores.devices,
    tunnels: createTunnelSessionStore<AgentConnection>(clock),
    logger: app.log,
    clock,
    ...(settings.tunnel ?? {}),
    ...(deps.tunnelRegistry === undefined ? {} : { registry: deps.tunnelRegistry }),
  });
  app.addHook('onClose', () => hub.close());

  await app.register(authRoutes, {
    accounts,
    cookie: settings.cookie,
    loginRateLimit: settings.loginRateLimit,
  });
  await app.register(modelRoutes, { models: stores.models, authenticate });
  await app.register(deviceRoutes, { devices: stores.devices, pairing, hub, authenticate });
  await app.register(agentRoutes, { pairing, pairRateLimit: settings.pairRateLimit ?? PAIR_RATE_LIMIT });
  await app.register(systemRoutes, {
    devices: stores.devices,
    hub,
    authenticate,
    info: { service: API_SERVER_NAME, version: BUILD_COMMIT, phase: settings.phase },
  });
  return app;
}
