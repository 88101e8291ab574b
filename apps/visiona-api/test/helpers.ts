// Builds the real app over real backends (PostgreSQL, Redis) the way main.ts does, and talks to it
// with app.inject as a browser would: cookies in, cookies out.
import { loadConfig, type ServiceApp } from '@upgrade/service';
import { buildApp, type AppSettings } from '../src/app.js';
import { EnvSchema, type Env } from '../src/config.js';
import { openBackends, type BackendConfig, type Backends } from '../src/main.js';

/** The defaults of every setting, as a test starts from. */
export function defaultEnv(overrides: Record<string, string> = {}): Env {
  return loadConfig(EnvSchema, { LOG_LEVEL: 'silent', ...overrides });
}

export const TEST_SETTINGS: AppSettings = {
  cookie: { name: 'visiona_session', secure: true, maxAgeMs: 86_400_000 },
  loginRateLimit: { max: 5, windowMs: 60_000 },
  pairingCodeTtlMs: 600_000,
  phase: 'beta',
};

export interface TestApi {
  app: ServiceApp;
  backends: Backends;
  close(): Promise<void>;
}

/** The app over the backends `env` names (memory when unset). */
export async function startTestApi(
  env: Partial<Record<keyof BackendConfig, string>> = {},
  settings: Partial<AppSettings> = {},
): Promise<TestApi> {
  const config = defaultEnv(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)));
  const backends = await openBackends(config);
  const app = await buildApp({
    stores: backends.stores,
    sessions: backends.sessions,
    healthChecks: backends.healthChecks,
    settings: { ...TEST_SETTINGS, ...settings },
    ...(backends.rateLimitStore === undefined ? {} : { rateLimitStore: backends.rateLimitStore }),
    logger: false,
  });
  await app.ready();
  return {
    app,
    backends,
    close: async () => {
      await app.close();
      await backends.close();
    },
  };
}

/** What a response looks like to a test. */
export interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | number | undefined>;
}

export type ErrorBody = { error: { code: string; message: string; requestId: string; details?: unknown } };

/** A browser: keeps the session cookie between calls. */
export class Client {
  cookie: string | undefined;
  constructor(
    private readonly app: ServiceApp,
    private readonly ip = '10.0.0.1',
  ) {}

  async call<T = Record<string, unknown>>(
    method: string,
    url: string,
    payload?: unknown,
  ): Promise<Answer<T>> {
    const res = await this.app.inject({
      method: method as 'GET',
      url,
      remoteAddress: this.ip,
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      ...(this.cookie === undefined ? {} : { cookies: { visiona_session: this.cookie } }),
    });
    const set = res.cookies.find((c) => c.name === 'visiona_session');
    if (set !== undefined) this.cookie = set.value === '' ? undefined : set.value;
    const text = res.body;
    let body: unknown = text;
    try {
      body = text === '' ? null : JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    return { status: res.statusCode, body: body as T, headers: res.headers };
  }

  /** Registers and signs in. */
  async signUp(email: string, password = 'correct horse battery'): Promise<{ id: string }> {
    const reg = await this.call<{ user: { id: string } }>('POST', '/api/auth/register', { email, password });
    if (reg.status !== 201) throw new Error(`register ${email}: ${reg.status} ${JSON.stringify(reg.body)}`);
    const login = await this.call('POST', '/api/auth/login', { email, password });
    if (login.status !== 200) throw new Error(`login ${email}: ${login.status}`);
    return reg.body.user;
  }
}
