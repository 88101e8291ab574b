// What travels on the wire: snake_case JSON, dates as ISO strings. The domain types (ports.ts)
// are converted here, in one place, by the `to*Body` functions.
import { Type, type Static } from '@upgrade/service';
import type { Device, Model, User, UserSession } from '../ports.js';

const DateTime = Type.String({ format: 'date-time' });
const Uuid = Type.String({ format: 'uuid' });

export const UserBody = Type.Object(
  { id: Uuid, email: Type.String(), created_at: DateTime },
  { $id: 'User', description: 'An account (the password hash never leaves the server)' },
);

export const SessionBody = Type.Object(
  {
    expires_at: Type.String({ format: 'date-time', description: 'ends here unless used again' }),
    absolute_expires_at: Type.String({
      format: 'date-time',
      description: 'ends here however much it is used',
    }),
  },
  { $id: 'Session' },
);

export const Credentials = Type.Object(
  {
    email: Type.String({ format: 'email', maxLength: 254 }),
    password: Type.String({ minLength: 8, maxLength: 256 }),
  },
  { additionalProperties: false },
);

/** The password policy of a new account: 8 to 256 characters, not all of them whitespace. */
export const NewCredentials = Type.Object(
  {
    email: Credentials.properties.email,
    password: Type.String({
      minLength: 8,
      maxLength: 256,
      pattern: '\\S',
      description: 'at least 8 characters, not all whitespace',
    }),
  },
  { additionalProperties: false },
);

/** The largest value a PostgreSQL integer column holds. */
const INT4_MAX = 2_147_483_647;

export const SignedInBody = Type.Object({ user: Type.Ref('User'), session: Type.Ref('Session') });

export const ModelBody = Type.Object(
  {
    id: Uuid,
    owner_id: Uuid,
    name: Type.String(),
    chip: Type.String({ description: 'the NPU the model is compiled for, e.g. hailo8, rk3588' }),
    source: Type.String({ description: 'where the model came from, e.g. upload, zoo, conversion' }),
    labels: Type.Array(Type.String()),
    input_shape: Type.Array(Type.Integer(), { description: 'input tensor shape, e.g. [1, 3, 640, 640]' }),
    faa_object_key: Type.Union([Type.String(), Type.Null()], {
      description: 'object-storage key of the model file; null until uploaded',
    }),
    created_at: DateTime,
    updated_at: DateTime,
  },
  { $id: 'Model' },
);

const Name = Type.String({ minLength: 1, maxLength: 200 });
const Token = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9._-]+$' });

export const ModelInputBody = Type.Object(
  {
    name: Name,
    chip: Token,
    source: Token,
    labels: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 10_000, default: [] }),
    input_shape: Type.Array(Type.Integer({ minimum: 1, maximum: INT4_MAX }), { minItems: 1, maxItems: 8 }),
    faa_object_key: Type.Optional(
      Type.Union([Type.String({ minLength: 1, maxLength: 1024 }), Type.Null()], {
        description: 'omitted or null keeps the stored key',
      }),
    ),
  },
  { additionalProperties: false, $id: 'ModelInput' },
);

export type ModelInputWire = Static<typeof ModelInputBody>;

export const DeviceBody = Type.Object(
  {
    id: Uuid,
    owner_id: Uuid,
    serial: Type.String(),
    name: Type.String(),
    pairing_status: Type.Union([Type.Literal('pending'), Type.Literal('paired'), Type.Literal('unpaired')]),
    online_status: Type.Union([Type.Literal('online'), Type.Literal('offline')], {
      description: 'as the last heartbeat recorded it',
    }),
    tunnel_connected: Type.Boolean({
      description: "whether the agent's tunnel is open now, to any instance of the API",
    }),
    agent_last_seen_at: Type.Union([DateTime, Type.Null()]),
    created_at: DateTime,
    updated_at: DateTime,
  },
  { $id: 'Device' },
);

export const Paging = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  offset: Type.Integer({ minimum: 0, maximum: INT4_MAX, default: 0 }),
});

/** A page of `item`s with the total matching count. */
export const PageOf = (item: string) =>
  Type.Object({
    items: Type.Array(Type.Ref(item)),
    total: Type.Integer({ description: 'rows matching in all, across pages' }),
    limit: Type.Integer(),
    offset: Type.Integer(),
  });

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

export function toUserBody(user: Pick<User, 'id' | 'email' | 'createdAt'>): Static<typeof UserBody> {
  return { id: user.id, email: user.email, created_at: user.createdAt.toISOString() };
}

export function toSessionBody(session: UserSession): Static<typeof SessionBody> {
  return {
    expires_at: session.expiresAt.toISOString(),
    absolute_expires_at: session.absoluteExpiresAt.toISOString(),
  };
}

export function toModelBody(model: Model): Static<typeof ModelBody> {
  return {
    id: model.id,
    owner_id: model.ownerId,
    name: model.name,
    chip: model.chip,
    source: model.source,
    labels: model.labels,
    input_shape: model.inputShape,
    faa_object_key: model.faaObjectKey,
    created_at: model.createdAt.toISOString(),
    updated_at: model.updatedAt.toISOString(),
  };
}

export function toDeviceBody(device: Device, tunnelConnected: boolean): Static<typeof DeviceBody> {
  return {
    id: device.id,
    owner_id: device.ownerId,
    serial: device.serial,
    name: device.name,
    pairing_status: device.pairingStatus,
    online_status: device.onlineStatus,
    tunnel_connected: tunnelConnected,
    agent_last_seen_at: device.agentLastSeenAt?.toISOString() ?? null,
    created_at: device.createdAt.toISOString(),
    updated_at: device.updatedAt.toISOString(),
  };
}

/** The schemas routes reference by `$id`; added to the app once. */
export const SHARED_SCHEMAS = [UserBody, SessionBody, ModelBody, ModelInputBody, DeviceBody];
