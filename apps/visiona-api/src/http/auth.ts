// /api/auth: register, sign in (session cookie), sign out, who am I. Sign-in is rate limited per
// client address and email; the session itself lives in the user-session store (Redis or memory).
import { Type, errorResponses, type ServicePlugin } from '@upgrade/service';
import type { Accounts, SignedIn } from '../accounts.js';
import { Credentials, NewCredentials, SignedInBody, toSessionBody, toUserBody } from './schemas.js';

/** How the session cookie is set. */
export interface SessionCookie {
  name: string;
  /** HTTPS only. */
  secure: boolean;
  /** The cookie's Max-Age: the session's absolute lifetime. */
  maxAgeMs: number;
}

/** The sign-in rate limit. */
export interface LoginRateLimit {
  max: number;
  windowMs: number;
}

export interface AuthRoutesDeps {
  accounts: Accounts;
  cookie: SessionCookie;
  loginRateLimit: LoginRateLimit;
}

export const authRoutes: ServicePlugin<AuthRoutesDeps> = async (app, deps) => {
  const { accounts, cookie } = deps;
  const cookieOptions = {
    path: '/',
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: cookie.secure,
  };

  app.post(
    '/api/auth/register',
    {
      schema: {
        summary: 'Create an account',
        tags: ['auth'],
        body: NewCredentials,
        response: { 201: Type.Object({ user: Type.Ref('User') }), ...errorResponses(400, 409, 503) },
      },
    },
    async (request, reply) => {
      const user = await accounts.register(request.body.email, request.body.password);
      return reply.code(201).send({ user: toUserBody(user) });
    },
  );

  app.post(
    '/api/auth/login',
    {
      config: {
        rateLimit: {
          max: deps.loginRateLimit.max,
          timeWindow: deps.loginRateLimit.windowMs,
          // After parsing, so the key can hold the email: guessing one account's password from one
          // address is limited without one noisy neighbour locking everyone at that address out.
          hook: 'preValidation',
          keyGenerator: (request) => `${request.ip}|${emailOf(request.body)}`,
          errorResponseBuilder: (_request, context) => tooManyAttempts(context.after),
        },
      },
      schema: {
        summary: 'Sign in: sets the session cookie (HttpOnly, SameSite=Lax)',
        description: `Rate limited to ${deps.loginRateLimit.max} attempts per ${deps.loginRateLimit.windowMs / 1000} s per client address and email (429).`,
        tags: ['auth'],
        body: Credentials,
        response: { 200: SignedInBody, ...errorResponses(400, 401, 429, 503) },
      },
    },
    async (request, reply) => {
      const { sessionId, session, user } = await accounts.login(request.body.email, request.body.password);
      reply.setCookie(cookie.name, sessionId, {
        ...cookieOptions,
        maxAge: Math.floor(cookie.maxAgeMs / 1000),
      });
      return { user: toUserBody(user), session: toSessionBody(session) };
    },
  );

  app.post(
    '/api/auth/logout',
    {
      schema: {
        summary: 'Sign out: ends the session and clears the cookie',
        tags: ['auth'],
        response: { 204: Type.Null(), ...errorResponses(503) },
      },
    },
    async (request, reply) => {
      await accounts.logout(request.cookies[cookie.name]);
      reply.clearCookie(cookie.name, cookieOptions);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/api/auth/me',
    {
      schema: {
        summary: 'The signed-in user and their session',
        tags: ['auth'],
        response: { 200: SignedInBody, ...errorResponses(401, 503) },
      },
    },
    async (request) => {
      const { user, session } = await accounts.currentUser(request.cookies[cookie.name]);
      return { user: toUserBody(user), session: toSessionBody(session) };
    },
  );
};

function emailOf(body: unknown): string {
  const email = typeof body === 'object' && body !== null ? (body as { email?: unknown }).email : undefined;
  return typeof email === 'string' ? email.trim().toLowerCase() : '';
}

/**
 * The 429 of the rate limit plugin, which throws whatever this returns. Shaped like fastify's own
 * client errors (a `FST_` code and a `statusCode`), so the shared error handler answers it in the
 * envelope as TOO_MANY_REQUESTS with this message.
 */
function tooManyAttempts(after: string): Error {
  return Object.assign(new Error(`too many sign-in attempts; try again in ${after}`), {
    code: 'FST_ERR_RATE_LIMITED',
    statusCode: 429,
  });
}

/** Who a request is signed in as: UNAUTHORIZED without a live session, UNAVAILABLE when the store is down. */
export type Authenticate = (request: { cookies: Record<string, string | undefined> }) => Promise<SignedIn>;

/** The `Authenticate` of the session cookie. */
export function cookieAuthenticator(accounts: Accounts, cookie: SessionCookie): Authenticate {
  return (request) => accounts.authenticate(request.cookies[cookie.name]);
}
