import type { ErrorCode } from '@upgrade/core';
import { Type, type Static, type TRef } from 'typebox';

/**
 * Codes for failures the HTTP layer itself detects (malformed requests, limits), beside the domain's
 * `ErrorCode`s. Stable like them: clients branch on these strings.
 */
export type HttpErrorCode =
  | 'BAD_REQUEST'
  | 'INVALID_JSON'
  | 'METHOD_NOT_ALLOWED'
  | 'NOT_ACCEPTABLE'
  | 'REQUEST_TIMEOUT'
  | 'PAYLOAD_TOO_LARGE'
  | 'URI_TOO_LONG'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'TOO_MANY_REQUESTS';

/** Every code an error response can carry. */
export type ResponseErrorCode = ErrorCode | HttpErrorCode;

/** The schema id routes reference (`Type.Ref('ErrorResponse')`) and the OpenAPI component name. */
export const ERROR_RESPONSE_ID = 'ErrorResponse';

/** The one error envelope of every service: `{ error: { code, message, requestId, details? } }`. */
export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable machine-readable code, e.g. VALIDATION_FAILED, NOT_FOUND' }),
      message: Type.String({ description: 'Human-readable; generic for 5xx responses' }),
      requestId: Type.String({ description: 'Echoes the x-request-id header; quote it when reporting' }),
      details: Type.Optional(
        Type.Record(Type.String(), Type.Unknown(), { description: 'Client-safe structured detail' }),
      ),
    }),
  },
  { $id: ERROR_RESPONSE_ID, description: 'Error envelope shared by every endpoint' },
);

/** The error envelope as sent. */
export type ErrorBody = Static<typeof ErrorResponse>;

/**
 * Response schemas for the error statuses a route documents, all pointing at the shared envelope.
 *
 * @example schema: { response: { 200: Device, ...errorResponses(400, 404) } }
 */
export function errorResponses<const S extends number>(...statuses: S[]): Record<S, TRef<'ErrorResponse'>> {
  const ref = Type.Ref(ERROR_RESPONSE_ID);
  return Object.fromEntries(statuses.map((s) => [s, ref])) as Record<S, TRef<'ErrorResponse'>>;
}
