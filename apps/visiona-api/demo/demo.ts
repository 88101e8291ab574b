// `pnpm demo`: the real service (in-memory stores unless DATABASE_URL / REDIS_URL are set), a user
// who registers and issues a pairing code, the reference agent pairing with it and dialling the
// tunnel, and one request through the tunnel. Then it serves /docs until Ctrl-C.
// --once: exit after the request went through.
import { randomBytes } from 'node:crypto';
import { startReferenceAgent } from '../src/agent/index.js';
import { loadVisionaConfig } from '../src/config.js';
import { startVisionaApi } from '../src/main.js';

const once = process.argv.includes('--once');
const config = loadVisionaConfig({
  ...process.env,
  PORT: process.env.PORT ?? '8320',
  HOST: process.env.HOST ?? '127.0.0.1',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  // Plain HTTP on loopback: a Secure cookie would not come back from a non-localhost browser.
  SESSION_COOKIE_SECURE: 'false',
});
const api = await startVisionaApi(config, { handleSignals: !once });
const base = api.address;
console.log(
  `visiona-api on ${base} (database: ${api.backends.where.database}, sessions: ${api.backends.where.sessions})`,
);

async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  cookie?: string,
): Promise<{ status: number; body: T; cookie?: string }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(cookie === undefined ? {} : { cookie }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const setCookie = res.headers.get('set-cookie')?.split(';')[0];
  return {
    status: res.status,
    body: (await res.json()) as T,
    ...(setCookie === undefined ? {} : { cookie: setCookie }),
  };
}

const email = 'demo@visiona.example';
const password = 'demo password 1234';
const registered = await call('POST', '/api/auth/register', { email, password });
console.log(`1. register ${email}: ${registered.status === 201 ? 'created' : 'exists already'}`);
const login = await call<{ user: { id: string } }>('POST', '/api/auth/login', { email, password });
if (login.status !== 200 || login.cookie === undefined)
  throw new Error(`sign-in failed with ${login.status}`);
console.log(`2. signed in as ${login.body.user.id} (session cookie set)`);

const issued = await call<{ pairing_code: string; expires_at: string }>(
  'POST',
  '/api/devices/pairing-tokens',
  undefined,
  login.cookie,
);
console.log(
  `3. pairing code ${issued.body.pairing_code.slice(0, 8)}… (shown once, valid until ${issued.body.expires_at})`,
);

// What an agent does with the code: trade it for its session token, once.
const serial = `DEMO-${randomBytes(4).toString('hex').toUpperCase()}`;
const paired = await call<{ device: { id: string }; session_token: string }>('POST', '/api/agent/pair', {
  pairing_code: issued.body.pairing_code,
  serial,
  name: 'demo camera',
});
if (paired.status !== 201)
  throw new Error(`pairing failed with ${paired.status}: ${JSON.stringify(paired.body)}`);
const deviceId = paired.body.device.id;
console.log(`4. agent paired device ${serial} as ${deviceId}`);

const agent = startReferenceAgent({ apiUrl: base, sessionToken: paired.body.session_token });
await agent.connected;
console.log('5. agent connected its tunnel');

// This user has one device: /api/system/deps asks it without a device_id.
const deps = await call<Record<string, unknown>>('GET', '/api/system/deps', undefined, login.cookie);
console.log(`6. GET /api/system/deps through the tunnel -> ${deps.status} ${JSON.stringify(deps.body)}`);
const health = await call<Record<string, unknown>>('GET', '/api/system/health', undefined, login.cookie);
console.log(`   /api/system/health -> ${JSON.stringify(health.body)}`);

console.log(`API docs: ${base}/docs`);
if (once) {
  await agent.close();
  await api.stop();
  if (deps.status !== 200) process.exit(1);
} else {
  console.log('serving until Ctrl-C');
  const stopAgent = () => void agent.close();
  process.once('SIGINT', stopAgent);
  process.once('SIGTERM', stopAgent);
}
