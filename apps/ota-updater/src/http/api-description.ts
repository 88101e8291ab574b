// The device-facing API: `{ code, msg, data }` envelopes as the printer's software speaks them
// (seed 004): `code` the HTTP status as a number, `msg` for people (`success` for the progress),
// errors with `data: null` and their stable name in `error_code`.
import { UpgradeError, isUpgradeError } from '@upgrade/core';
import { Type, mapError, type ServicePlugin, type Static, type TSchema } from '@upgrade/service';
import { isValidVersion } from '../manifest.js';
import type { DownloadRequest } from '../ports.js';
import { toWireProgress } from '../progress-wire.js';
import type { Updater } from '../updater.js';

const Md5 = Type.String({ pattern: '^[0-9a-fA-F]{32}$', description: 'hex MD5 of the package' });
const Version = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$', description: 'e.g. 2.4.1' });

const DownloadBody = Type.Object(
  {
    version: Version,
    package_url: Type.String({
      pattern: '^https?://',
      maxLength: 2048,
      description: 'http(s) URL with a host',
    }),
    package_name: Type.String({ minLength: 1, maxLength: 255 }),
    package_size: Type.Integer({
      minimum: 1,
      maximum: Number.MAX_SAFE_INTEGER,
      description: 'bytes, a whole number up to 2^53 - 1',
    }),
    package_md5: Md5,
    package_sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$' })),
    signature: Type.Optional(
      Type.String({ description: 'base64 ed25519 signature over the SHA-256 digest' }),
    ),
  },
  { additionalProperties: false },
);

const Envelope = <T extends TSchema>(data: T) =>
  Type.Object({
    code: Type.Integer({ description: 'the HTTP status, e.g. 200' }),
    msg: Type.String(),
    data,
  });

const Stage = Type.String({
  description:
    'idle, downloading, verifying, downloaded, deploying, health_check, success, rolling_back, rolled_back, failed',
});
const ProgressData = Type.Object({
  stage: Stage,
  progress: Type.Integer({ minimum: 0, maximum: 100, description: 'percent' }),
  message: Type.String(),
  error: Type.Union([Type.String(), Type.Null()], { description: 'what went wrong, for people' }),
  error_code: Type.Union([Type.String(), Type.Null()], {
    description: 'stable name of the error, e.g. MD5_MISMATCH; null without error',
  }),
});
const AcceptedData = Type.Object({ version: Type.String(), stage: Stage });
const VersionsData = Type.Object({
  current: Type.Union([Type.String(), Type.Null()]),
  previous: Type.Union([Type.String(), Type.Null()]),
  factory: Type.Boolean(),
  others: Type.Array(Type.String()),
});
const ErrorEnvelope = Type.Object({
  code: Type.Integer({ description: 'the HTTP status, e.g. 400' }),
  msg: Type.String(),
  data: Type.Null(),
  error_code: Type.String({ description: 'stable error name, e.g. VALIDATION_FAILED, CONFLICT, NOT_FOUND' }),
  requestId: Type.String(),
});
const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, ErrorEnvelope]));

export const otaRoutes: ServicePlugin<{ updater: Updater }> = async (app, { updater }) => {
  // This API speaks `{code, msg, data}`: the kit's mapping decides status and code, this shapes it.
  app.setErrorHandler((error, request, reply) => {
    const { status, body } = mapError(error, request.id);
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    return reply
      .code(status)
      .header('content-type', 'application/json; charset=utf-8')
      .send(
        JSON.stringify({
          code: status,
          msg: body.error.message,
          data: null,
          error_code: body.error.code,
          requestId: body.error.requestId,
        }),
      );
  });

  app.post(
    '/api/v1.0/download',
    {
      schema: {
        summary: 'Download and verify a package in the background',
        tags: ['ota'],
        body: DownloadBody,
        response: { 200: Envelope(AcceptedData), 202: Envelope(AcceptedData), ...errors(400, 409) },
      },
    },
    async (request, reply) => {
      checkDownloadBody(request.body);
      const outcome = await updater.startDownload(toDownloadRequest(request.body));
      if (outcome === 'current')
        return reply.code(200).send({
          code: 200,
          msg: 'this release is already installed and running; nothing to do',
          data: { version: request.body.version, stage: 'success' },
        });
      return reply.code(202).send({
        code: 202,
        msg: 'download started',
        data: { version: request.body.version, stage: 'downloading' },
      });
    },
  );

  app.post(
    '/api/v1.0/update',
    {
      schema: {
        summary: 'Deploy a downloaded, verified version',
        tags: ['ota'],
        body: Type.Object({ version: Version }, { additionalProperties: false }),
        response: { 202: Envelope(AcceptedData), ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      checkVersion(request.body.version);
      await updater.startUpdate(request.body.version);
      return reply.code(202).send({
        code: 202,
        msg: 'update started',
        data: { version: request.body.version, stage: 'deploying' },
      });
    },
  );

  app.post(
    '/api/v1.0/cancel',
    {
      schema: {
        summary: 'Cancel a download, or a deploy that has not switched yet',
        tags: ['ota'],
        response: { 200: Envelope(ProgressData), ...errors(409) },
      },
    },
    async () => {
      await updater.cancel();
      return { code: 200, msg: 'cancelled', data: toWireProgress(updater.progress()) };
    },
  );

  app.get(
    '/api/v1.0/progress',
    {
      schema: {
        summary: 'Where the update stands',
        tags: ['ota'],
        response: { 200: Envelope(ProgressData) },
      },
      logLevel: 'warn',
    },
    async () => ({ code: 200, msg: 'success', data: toWireProgress(updater.progress()) }),
  );

  app.get(
    '/api/v1.0/versions',
    { schema: { summary: 'Installed versions', tags: ['ota'], response: { 200: Envelope(VersionsData) } } },
    async () => {
      try {
        return { code: 200, msg: 'success', data: await updater.versions() };
      } catch (error) {
        if (isUpgradeError(error)) throw error;
        throw new UpgradeError('INTERNAL', 'could not read the installed versions', { cause: error });
      }
    },
  );
};

/** What the schema cannot say: a URL with a host, a version name the snapshot layout can use. */
function checkDownloadBody(body: Static<typeof DownloadBody>): void {
  checkVersion(body.version);
  let url: URL | null = null;
  try {
    url = new URL(body.package_url);
  } catch {
    // reported below
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '')
    throw invalidField(
      'package_url',
      'must be an http or https URL with a host, e.g. https://cdn.example.com/1.2.0.zip',
    );
}

function checkVersion(version: string): void {
  if (!isValidVersion(version))
    throw invalidField(
      'version',
      `"${version}" is reserved or not a version: use letters, digits, '.', '_', '+' or '-' (e.g. 1.2.3), not current, previous or factory`,
    );
}

function invalidField(field: string, why: string): UpgradeError {
  return new UpgradeError('VALIDATION_FAILED', `${field} ${why}`, { details: { field } });
}

function toDownloadRequest(body: Static<typeof DownloadBody>): DownloadRequest {
  return {
    version: body.version,
    packageUrl: body.package_url,
    packageName: body.package_name,
    packageSize: body.package_size,
    packageMd5: body.package_md5.toLowerCase(),
    ...(body.package_sha256 === undefined ? {} : { packageSha256: body.package_sha256.toLowerCase() }),
    ...(body.signature === undefined ? {} : { signature: body.signature }),
  };
}
