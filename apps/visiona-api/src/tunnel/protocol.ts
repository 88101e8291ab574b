// What the API and the agent agree on besides HTTP/2 itself: where the agent dials and the
// WebSocket close codes (4000-4999 are left to applications by RFC 6455) that say why the API
// ended a connection, so the agent knows whether reconnecting makes sense.

/** The route agents dial, with `Authorization: Bearer <session token>`. */
export const AGENT_CONNECT_PATH = '/api/agent/connect';

export const CLOSE_CODES = {
  /** The API is shutting down: reconnect (to this or another instance) with backoff. */
  goingAway: 1001,
  /** Ended by the API for another reason (missed heartbeat, explicit disconnect): reconnect. */
  closedByApi: 4000,
  /** Another connection of the same device took over: this agent is a duplicate, do not reconnect. */
  replaced: 4001,
  /** The session token was revoked (the device was unpaired): pair again before reconnecting. */
  revoked: 4003,
} as const;

export type CloseCode = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];
