// Accounts and browser sessions: register, sign in, sign out, and who a session cookie belongs to.
// Written against the stores only; the HTTP layer maps cookies and statuses.
import { UpgradeError, isUpgradeError } from '@upgrade/core';
import { hashPassword, verifyPassword } from './passwords.js';
import type { SessionUser, User, UserSession, UserSessionStore, UserStore } from './ports.js';

/** What the account flows need. */
export interface AccountsDeps {
  users: UserStore;
  sessions: UserSessionStore;
}

/** A signed-in user (never the password hash) and the session that says so. */
export interface SignedIn {
  user: SessionUser;
  session: UserSession;
}

/** The account use cases. */
export interface Accounts {
  /** CONFLICT when the email (in any case) is taken. */
  register(email: string, password: string): Promise<User>;
  /** UNAUTHORIZED for an unknown email or a wrong password, alike. */
  login(email: string, password: string): Promise<SignedIn & { sessionId: string }>;
  /** Ends the session; a missing or ended one is fine. */
  logout(sessionId: string | undefined): Promise<void>;
  /**
   * The session's user, with the session's idle deadline pushed back; UNAUTHORIZED without one.
   * One session-store call: the user comes from the session record (see `endSessionsOf`).
   */
  authenticate(sessionId: string | undefined): Promise<SignedIn>;
  /**
   * Like `authenticate`, but the user is read afresh from the user store (GET /api/auth/me): the
   * account as it stands, and UNAVAILABLE when the user store is down.
   */
  currentUser(sessionId: string | undefined): Promise<SignedIn>;
  /**
   * Ends every session of the user. Sessions carry the user, so removing a user must come with
   * this call: it is what takes a removed user's access away. Returns how many sessions ended.
   */
  endSessionsOf(userId: string): Promise<number>;
}

const WRONG_CREDENTIALS = 'email or password is wrong';

/** The account use cases over a user store and a session store. */
export function createAccounts(deps: AccountsDeps): Accounts {
  // Verifying against a real hash when the email is unknown keeps both failures equally slow, so
  // response times do not tell which emails have accounts.
  let decoy: Promise<string> | undefined;
  const decoyHash = (): Promise<string> => (decoy ??= hashPassword('decoy password, never matches'));

  const signedIn = async (sessionId: string | undefined, fresh: boolean): Promise<SignedIn> => {
    if (sessionId === undefined || sessionId === '') throw notSignedIn();
    const session = await deps.sessions.touch(sessionId);
    if (session === null) throw notSignedIn();
    if (session.user !== undefined && !fresh) return { user: session.user, session };
    // A session that names its user only (started before sessions recorded the user) is checked
    // against the user store, as every session was before.
    const user = await deps.users.get(session.userId);
    if (user === null) throw notSignedIn();
    return { user: toSessionUser(user), session };
  };

  return {
    register: async (email, password) => {
      const taken = (cause?: unknown): UpgradeError =>
        new UpgradeError('CONFLICT', 'an account with this email already exists; sign in instead', {
          cause,
        });
      // Asked before the hash: a database that cannot answer fails the request within its query
      // deadline instead of after a hash plus that deadline, and a taken email costs no hash.
      if ((await deps.users.findByEmail(email.trim())) !== null) throw taken();
      const passwordHash = await hashPassword(password);
      try {
        return await deps.users.create({ email: email.trim(), passwordHash });
      } catch (error) {
        // Another registration of the same email won the race since the check.
        if (isUpgradeError(error, 'CONFLICT')) throw taken(error);
        throw error;
      }
    },
    login: async (email, password) => {
      const user = await deps.users.findByEmail(email.trim());
      const matches = await verifyPassword(password, user?.passwordHash ?? (await decoyHash()));
      if (user === null || !matches) throw new UpgradeError('UNAUTHORIZED', WRONG_CREDENTIALS);
      const { sessionId, session } = await deps.sessions.create(toSessionUser(user));
      return { sessionId, session, user: toSessionUser(user) };
    },
    logout: async (sessionId) => {
      if (sessionId !== undefined && sessionId !== '') await deps.sessions.destroy(sessionId);
    },
    authenticate: (sessionId) => signedIn(sessionId, false),
    currentUser: (sessionId) => signedIn(sessionId, true),
    endSessionsOf: (userId) => deps.sessions.destroyForUser(userId),
  };
}

function toSessionUser(user: User): SessionUser {
  return { id: user.id, email: user.email, createdAt: user.createdAt };
}

function notSignedIn(): UpgradeError {
  return new UpgradeError('UNAUTHORIZED', 'not signed in: POST /api/auth/login first');
}
