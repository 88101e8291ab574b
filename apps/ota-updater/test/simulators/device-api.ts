// A loopback stand-in for the printer's device API, the receiver of OTA progress reports. It
// records what it accepted and fails the ways a busy or broken device API does: 5xx, no answer,
// a reset connection, or not running at all (close it: its port then refuses connections).
import type { WireProgress } from '../../src/progress-wire.js';
import { sendJson, startHttpSimulator, type RecordedRequest } from '@upgrade/testkit';

/** How the simulator answers: 2xx, HTTP 500, never, or by resetting the connection. */
export type DeviceApiMode = 'ok' | 'error' | 'hang' | 'reset';

/** Options of {@link startDeviceApiSimulator}. */
export interface DeviceApiSimulatorOptions {
  /** Default `/api/v1.0/ota/progress`, the production path. */
  path?: string;
  /** Default `ok`. */
  mode?: DeviceApiMode;
}

/** A running device API simulator. */
export interface DeviceApiSimulator {
  /** The full progress URL, what the reporter's `url` should be. */
  readonly url: string;
  /** Bodies of the reports answered 2xx, parsed, in arrival order. */
  readonly accepted: WireProgress[];
  /** Every request received, whatever the mode did with it. */
  readonly requests: RecordedRequest[];
  setMode(mode: DeviceApiMode): void;
  /** Stops listening: the device API is down, its port refuses connections. */
  close(): Promise<void>;
}

/** Starts the simulator on an ephemeral loopback port. */
export async function startDeviceApiSimulator(
  options: DeviceApiSimulatorOptions = {},
): Promise<DeviceApiSimulator> {
  const path = options.path ?? '/api/v1.0/ota/progress';
  let mode: DeviceApiMode = options.mode ?? 'ok';
  const accepted: WireProgress[] = [];
  const sim = await startHttpSimulator({
    [`POST ${path}`]: (request, response) => {
      switch (mode) {
        case 'ok':
          accepted.push(JSON.parse(request.body) as WireProgress);
          sendJson(response, 200, { code: 0, msg: 'ok' });
          return;
        case 'error':
          sendJson(response, 500, { code: 500, msg: 'internal error' });
          return;
        case 'hang':
          // No answer: the socket stays open until the client gives up or the simulator closes.
          return;
        case 'reset':
          response.socket?.destroy();
          return;
      }
    },
  });
  return {
    url: `${sim.url}${path}`,
    accepted,
    requests: sim.requests,
    setMode: (next) => {
      mode = next;
    },
    close: () => sim.close(),
  };
}
