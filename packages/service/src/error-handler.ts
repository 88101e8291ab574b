import { STATUS_CODES } from 'node:http';
import { isUpgradeError, UpgradeError } from '@upgrade/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorBody, ResponseErrorCode } from './error-response.js';
import { REQUEST_ID_HEADER } from './request-id.js';

/** What an error becomes on the wire. */
export interface MappedError {
  status: number;
  body: ErrorBody;
}

/** Used for fastify's own errors, whose codes (`FST_ERR_*`) are internal names, not a contract. */
const CODE_BY_STATUS: Readonly<Record<number, ResponseErrorCode>> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'TOO_MANY_REQUESTS',
  502: 'UNREACHABLE',
  503: 'UNAVAILABLE',
  504: 'TIMEOUT',
};

const INVALID_JSON = new Set(['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY']);

/**
 * Maps any thrown value to a status and the shared envelope. 4xx keep their message (written for
 * the client); 5xx get the status' generic text and no details, whatever the error said: internal
 * messages hold hosts, SQL and paths. The real error is for the log, keyed by request id.
 */
export function mapError(error: unknown, requestId: string): MappedError {
  if (isUpgradeError(error)) {
    const status = error.status >= 400 && error.status <= 599 ? error.status : 500;
    return status >= 500
      ? serverError(status, error.code, requestId)
      : clientError(status, error.code, error.message, requestId, error.details);
  }
  if (isFastifyError(error)) {
    if (error.validation !== undefined) return validationError(error, requestId);
    const status = error.statusCode ?? 500;
    if (status >= 500) return serverError(status, CODE_BY_STATUS[status] ?? 'INTERNAL', requestId);
    const code = INVALID_JSON.has(error.code) ? 'INVALID_JSON' : (CODE_BY_STATUS[status] ?? 'BAD_REQUEST');
    return clientError(status, code, error.message, requestId);
  }
  return serverError(500, 'INTERNAL', requestId);
}

/**
 * Sends the envelope for `error` and logs it: 5xx with the full error at `error`, 4xx as one line at
 * `info` (a client mistake is not an incident).
 */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body } = mapError(error, request.id);
  if (status >= 500) request.log.error({ err: error, code: body.error.code }, 'request failed');
  else request.log.info({ code: body.error.code, reason: body.error.message }, 'request rejected');
  return sendEnvelope(request, reply, { status, body });
}

/** Sends a mapped error as is, whatever response schema the route declares for that status. */
export function sendEnvelope(
  request: FastifyRequest,
  reply: FastifyReply,
  mapped: MappedError,
): FastifyReply {
  return (
    reply
      .code(mapped.status)
      // Set here too: framework errors (bad URL) and early failures skip the onRequest hook.
      .header(REQUEST_ID_HEADER, request.id)
      .type('application/json; charset=utf-8')
      // A route's schema for this status (e.g. /healthz's 503 report) must not reshape the envelope.
      .serializer((payload: unknown) => JSON.stringify(payload))
      .send(mapped.body)
  );
}

/** One error handler and one 404 handler for the whole app, so every failure has the same shape. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) => {
    // The query string is left out of the message: it can carry tokens.
    const path = request.url.split('?', 1)[0] ?? '';
    return sendError(new UpgradeError('NOT_FOUND', `no route for ${request.method} ${path}`), request, reply);
  });
}

function validationError(error: FastifyError, requestId: string): MappedError {
  const location = error.validationContext ?? 'request';
  const fields = (error.validation ?? []).map((v) => {
    const missing = (v.params as { missingProperty?: unknown }).missingProperty;
    const pointer = typeof missing === 'string' ? `${v.instancePath}/${missing}` : v.instancePath;
    const field = pointer.split('/').filter(Boolean).join('.');
    return { location, field: field === '' ? location : field, message: v.message ?? 'is invalid' };
  });
  return clientError(400, 'VALIDATION_FAILED', error.message, requestId, { fields });
}

function clientError(
  status: number,
  code: ResponseErrorCode,
  message: string,
  requestId: string,
  details?: Record<string, unknown>,
): MappedError {
  const error = details === undefined ? { code, message, requestId } : { code, message, details, requestId };
  return { status, body: { error } };
}

function serverError(status: number, code: ResponseErrorCode, requestId: string): MappedError {
  return {
    status,
    body: { error: { code, message: STATUS_CODES[status] ?? 'Internal Server Error', requestId } },
  };
}

/** fastify's own errors (and its plugins'): their 4xx messages are fixed texts, safe to return. */
function isFastifyError(error: unknown): error is FastifyError {
  if (!(error instanceof Error)) return false;
  const code: unknown = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('FST_');
}
