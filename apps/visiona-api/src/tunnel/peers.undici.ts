// Sends a request on to the instance holding the device's tunnel, over undici (keep-alive pools
// per instance). The holder enforces the request's timeout against the agent; this side waits a
// little longer so the holder's own TIMEOUT answer arrives first when it can.
import { UpgradeError, type ErrorCode } from '@upgrade/core';
import { Agent, request as undiciRequest } from 'undici';
import {
  FORWARD_REQUEST_HEADER,
  NOT_HELD,
  FORWARD_RESPONSE_HEADER,
  decodeResponseMeta,
  encodeRequestMeta,
  internalForwardUrl,
} from './internal-protocol.js';
import type { TunnelHolder } from './registry.js';
import type { TunnelPeers, TunnelRequest, TunnelResponse } from './types.js';

/** Margin over the request's timeout for the hop between instances. */
const HOP_GRACE_MS = 1_000;

export interface UndiciTunnelPeersOptions {
  /** `TUNNEL_INTERNAL_TOKEN`, shared by every instance. */
  internalToken: string;
  /** Bound on opening a connection to another instance. Default 1000 ms. */
  connectTimeoutMs?: number;
}

export function createUndiciTunnelPeers(options: UndiciTunnelPeersOptions): TunnelPeers {
  const dispatcher = new Agent({
    connect: { timeout: options.connectTimeoutMs ?? 1_000 },
    keepAliveTimeout: 10_000,
  });
  const authorization = `Bearer ${options.internalToken}`;

  const forward = async (
    holder: TunnelHolder,
    deviceId: string,
    request: TunnelRequest,
    timeoutMs: number,
  ): Promise<TunnelResponse> => {
    const body =
      typeof request.body === 'string' ? Buffer.from(request.body) : (request.body ?? Buffer.alloc(0));
    const via = `instance ${holder.instanceId}`;
    let response: Awaited<ReturnType<typeof undiciRequest>>;
    let payload: Buffer;
    try {
      response = await undiciRequest(internalForwardUrl(holder.url, deviceId), {
        method: 'POST',
        dispatcher,
        headers: {
          authorization,
          'content-type': 'application/octet-stream',
          [FORWARD_REQUEST_HEADER]: encodeRequestMeta(request, timeoutMs),
        },
        body,
        headersTimeout: timeoutMs + HOP_GRACE_MS,
        bodyTimeout: timeoutMs + HOP_GRACE_MS,
      });
      payload = Buffer.from(await response.body.arrayBuffer());
    } catch (error) {
      if (isHopTimeout(error)) {
        throw new UpgradeError(
          'TIMEOUT',
          `the agent of device ${deviceId} did not answer through ${via} within ${timeoutMs} ms`,
          { cause: error },
        );
      }
      // Left in the registry: a restarting instance comes back, a dead one's entries expire.
      throw new UpgradeError(
        'UNAVAILABLE',
        `${via}, which holds the tunnel of device ${deviceId}, cannot be reached; retry shortly`,
        { cause: error },
      );
    }

    if (response.statusCode === 200) {
      const meta = decodeResponseMeta(response.headers[FORWARD_RESPONSE_HEADER]);
      if (meta !== undefined) return { ...meta, body: payload };
    }
    throw holderFailure(response.statusCode, errorCodeOf(payload), deviceId, via);
  };

  let closed: Promise<void> | undefined;
  return {
    forward,
    close: () => (closed ??= dispatcher.close()),
  };
}

/** The holder's error answer as this side's error; 5xx envelopes carry the code, never a message. */
function holderFailure(
  status: number,
  code: string | undefined,
  deviceId: string,
  via: string,
): UpgradeError {
  switch (code) {
    case 'TIMEOUT':
      return new UpgradeError(
        'TIMEOUT',
        `the agent of device ${deviceId} did not answer in time (via ${via})`,
      );
    case 'UNREACHABLE':
      return new UpgradeError(
        'UNREACHABLE',
        `the agent of device ${deviceId} reset the request or answered too much (via ${via})`,
        { retryable: false },
      );
    case 'NOT_FOUND':
      return new UpgradeError(
        'UNAVAILABLE',
        `the agent of device ${deviceId} is no longer connected to ${via}; retry once it reconnects`,
        { details: NOT_HELD },
      );
    case 'UNAUTHORIZED':
      return new UpgradeError(
        'UNAVAILABLE',
        `${via} refused this instance's TUNNEL_INTERNAL_TOKEN; every instance must share the same one`,
      );
    default:
      return new UpgradeError(
        'UNAVAILABLE',
        `${via} failed the request for device ${deviceId} (HTTP ${status}); retry`,
      );
  }
}

function errorCodeOf(payload: Buffer): ErrorCode | undefined {
  try {
    const parsed = JSON.parse(payload.toString('utf8')) as { error?: { code?: unknown } };
    const code = parsed.error?.code;
    return typeof code === 'string' ? (code as ErrorCode) : undefined;
  } catch {
    return undefined;
  }
}

function isHopTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
}
