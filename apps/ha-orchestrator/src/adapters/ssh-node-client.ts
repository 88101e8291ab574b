// NodeClient over SSH (ssh2): key auth, the node's host key pinned from known_hosts, one connection
// reused across calls. Each call execs the node agent, writes one JSON request line and reads one
// JSON answer line. Files go to the agent's staging dir by SFTP, streamed (a jar is never held in
// memory), hashed on the way out and checked against the agent's own hash of what landed.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ERROR_CODES, UpgradeError, abortError, isUpgradeError, type ErrorCode } from '@upgrade/core';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { isPlainName } from '../agent/names.js';
import type { AgentOp, AgentResponse, ArgsOf, ResultOf } from '../agent/protocol.js';
import type { CallOptions, NodeClient } from '../ports.js';
import { isPinnedKey, parseKnownHosts } from './known-hosts.js';

/** pino-compatible subset. */
export interface SshLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface SshNodeOptions {
  /** Node id from the configuration, e.g. `node-a`. */
  id: string;
  host: string;
  port: number;
  username: string;
  privateKey: string | Buffer;
  /** known_hosts content; the node's host key must be listed for host (or [host]:port). */
  knownHosts: string;
  /** The command line that runs the agent on the node, e.g. `/usr/local/bin/ha-node-agent --config /etc/ha-agent.json`. */
  agentCommand: string;
  connectTimeoutMs: number;
  /** Default deadline of a call (connect + run + answer) when the caller gives none. */
  callTimeoutMs: number;
  /** SSH keepalive on the reused connection. Default 15 s; 0 turns it off. */
  keepaliveIntervalMs?: number;
  logger?: SshLogger;
}

/** Most stderr kept from one agent run, for messages. */
const MAX_STDERR = 16 * 1024;
/** Most stdout read while looking for the answer line. */
const MAX_ANSWER = 8 * 1024 * 1024;

/**
 * A NodeClient that runs the node agent over SSH.
 *
 * @example createSshNodeClient({ id: 'node-a', host: '10.99.0.11', port: 22, username: 'root', privateKey, knownHosts, agentCommand: 'ha-node-agent --config /etc/ha-agent.json', connectTimeoutMs: 10_000, callTimeoutMs: 60_000 })
 */
export function createSshNodeClient(options: SshNodeOptions): NodeClient {
  const address = `${options.host}:${options.port}`;
  const knownHosts = parseKnownHosts(options.knownHosts);
  const log = options.logger;
  let current: Promise<Client> | null = null;
  let stagingDir: string | null = null;
  /** The TIMEOUT errors `bounded` aborts its calls with, to tell them from a caller's abort. */
  const callTimeouts = new WeakSet<object>();

  const unreachable = (message: string, cause?: unknown, retryable = true): UpgradeError =>
    new UpgradeError('UNREACHABLE', `${options.id} (${address}): ${message}`, {
      retryable,
      cause,
      details: { node: options.id, address },
    });

  const connect = (): Promise<Client> =>
    new Promise<Client>((resolve, reject) => {
      const client = new Client();
      let hostKeyRejected = false;
      let ready = false;
      client.on('ready', () => {
        ready = true;
        log?.debug({ node: options.id, address }, 'ssh connected');
        resolve(client);
      });
      client.on('error', (error: Error & { level?: string; code?: string }) => {
        if (ready) {
          log?.warn({ node: options.id, address, err: error.message }, 'ssh connection error');
          return;
        }
        if (hostKeyRejected)
          reject(
            unreachable(
              'host key mismatch: the key the server presented is not pinned for it in known_hosts; ' +
                'check the node, then update known_hosts if its key really changed',
              error,
              false,
            ),
          );
        else if (error.level === 'client-authentication')
          reject(
            unreachable(
              `public key authentication as ${options.username} refused; check authorized_keys on the node`,
              error,
              false,
            ),
          );
        else if (error.level === 'client-timeout')
          reject(unreachable(`no SSH handshake within ${options.connectTimeoutMs} ms`, error));
        else reject(unreachable(`cannot connect: ${error.code ?? error.message}`, error));
      });
      client.on('close', () => {
        if (!ready) reject(unreachable('connection closed during the SSH handshake'));
        void dropIf(client);
      });
      try {
        client.connect({
          host: options.host,
          port: options.port,
          username: options.username,
          privateKey: options.privateKey,
          readyTimeout: options.connectTimeoutMs,
          keepaliveInterval: options.keepaliveIntervalMs ?? 15_000,
          keepaliveCountMax: 3,
          tryKeyboard: false,
          hostVerifier: (key: Buffer): boolean => {
            const ok = isPinnedKey(knownHosts, options.host, options.port, key);
            if (!ok) hostKeyRejected = true;
            return ok;
          },
        });
      } catch (error) {
        // ssh2 throws synchronously for an unreadable private key.
        reject(unreachable(`cannot use the private key: ${(error as Error).message}`, error, false));
      }
    });

  /** The reused connection, connecting when there is none. */
  const connection = (): Promise<Client> => {
    if (current !== null) return current;
    const attempt = connect();
    current = attempt;
    attempt.catch(() => {
      if (current === attempt) current = null;
    });
    return attempt;
  };

  /** Forgets `client` if it is the reused connection (it closed or failed). */
  const dropIf = async (client: Client): Promise<void> => {
    const held = current;
    if (held === null) return;
    try {
      if ((await held) === client) {
        if (current === held) current = null;
        client.end();
      }
    } catch {
      // that connection never came up
    }
  };

  /**
   * Runs `fn` under the call's deadline and the caller's signal. The signal's reason tells the two
   * apart: the call's own TIMEOUT, or the caller's abort.
   */
  const bounded = async <T>(
    what: string,
    callOptions: CallOptions | undefined,
    fn: (deadline: number, signal: AbortSignal) => Promise<T>,
  ): Promise<T> => {
    const timeoutMs = callOptions?.timeoutMs ?? options.callTimeoutMs;
    const outer = callOptions?.signal;
    if (outer?.aborted) throw abortError(outer);
    const controller = new AbortController();
    const timeout = new UpgradeError(
      'TIMEOUT',
      `${options.id}: ${what} got no answer within ${timeoutMs} ms`,
      {
        details: { node: options.id, timeoutMs },
      },
    );
    const timer = setTimeout(() => controller.abort(timeout), timeoutMs);
    callTimeouts.add(timeout);
    const onOuter = (): void => controller.abort(abortError(outer ?? controller.signal));
    outer?.addEventListener('abort', onOuter, { once: true });
    try {
      return await fn(Date.now() + timeoutMs, controller.signal);
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    }
  };

  /**
   * The connection, or the deadline's reason when it comes first. A call whose own deadline passes
   * before it has a connection (a reused one found dead, and no new handshake in the time left)
   * could not reach the node: UNREACHABLE, not a slow agent's TIMEOUT.
   */
  const connectionWithin = (signal: AbortSignal): Promise<Client> =>
    new Promise<Client>((resolve, reject) => {
      const stopped = (): UpgradeError =>
        callTimeouts.has(signal.reason as object)
          ? unreachable(`no SSH connection before the call's deadline (${(signal.reason as Error).message})`)
          : abortError(signal);
      if (signal.aborted) {
        reject(stopped());
        return;
      }
      const onAbort = (): void => reject(stopped());
      signal.addEventListener('abort', onAbort, { once: true });
      connection().then(
        (client) => {
          signal.removeEventListener('abort', onAbort);
          resolve(client);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });

  const openExec = (client: Client): Promise<ClientChannel> =>
    new Promise((resolve, reject) => {
      try {
        client.exec(options.agentCommand, (error, channel) => (error ? reject(error) : resolve(channel)));
      } catch (error) {
        // ssh2 throws when the connection is already gone.
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });

  /** One agent run: exec, write the request line, read the answer line. */
  const exchange = (
    channel: ClientChannel,
    request: string,
    requestId: string,
    signal: AbortSignal,
  ): Promise<AgentResponse> =>
    new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let exitCode: number | null = null;
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = (): void =>
        finish(() => {
          // The agent has its own deadline; this makes sure it goes now.
          try {
            channel.signal('KILL');
          } catch {
            // the channel is closing already
          }
          channel.close();
          reject(abortError(signal));
        });
      signal.addEventListener('abort', onAbort, { once: true });
      channel.on('data', (chunk: Buffer) => {
        if (settled) return;
        stdout += chunk.toString('utf8');
        const newline = stdout.indexOf('\n');
        if (newline !== -1) {
          const line = stdout.slice(0, newline);
          finish(() => {
            try {
              resolve(parseAnswer(line, requestId));
            } catch (error) {
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          });
        } else if (stdout.length > MAX_ANSWER)
          finish(() => {
            channel.close();
            reject(
              new UpgradeError('UNAVAILABLE', `${options.id}: agent answer larger than ${MAX_ANSWER} bytes`),
            );
          });
      });
      channel.stderr.on('data', (chunk: Buffer) => {
        if (stderr.length < MAX_STDERR) stderr += chunk.toString('utf8');
      });
      // A channel torn down under a write (the connection lost) emits 'error': the call fails as
      // unreachable instead of the error ending the process. The stderr side only loses text.
      channel.on('error', (error: Error) =>
        finish(() =>
          reject(unreachable(`channel failed before the agent answered: ${error.message}`, error)),
        ),
      );
      channel.stderr.on('error', () => undefined);
      channel.on('exit', (code: number | null) => {
        exitCode = code;
      });
      channel.on('close', () => {
        if (stderr.trim() !== '')
          log?.debug({ node: options.id, requestId, stderr: stderr.trim() }, 'agent stderr');
        finish(() => {
          if (exitCode === null) {
            reject(unreachable('connection lost before the agent answered'));
            return;
          }
          const notFound = exitCode === 126 || exitCode === 127;
          reject(
            new UpgradeError(
              'UNAVAILABLE',
              `${options.id}: the agent exited with code ${exitCode} without an answer` +
                (notFound ? '; check agentCommand' : '') +
                (stderr.trim() === '' ? '' : `: ${stderr.trim().slice(0, 400)}`),
              { retryable: !notFound, details: { node: options.id, exitCode } },
            ),
          );
        });
      });
      channel.end(`${request}\n`);
    });

  const parseAnswer = (line: string, requestId: string): AgentResponse => {
    let answer: unknown;
    try {
      answer = JSON.parse(line);
    } catch {
      throw new UpgradeError(
        'UNAVAILABLE',
        `${options.id}: the agent answered with something that is not JSON: ${line.slice(0, 200)}`,
      );
    }
    if (typeof answer !== 'object' || answer === null || typeof (answer as { ok?: unknown }).ok !== 'boolean')
      throw new UpgradeError('UNAVAILABLE', `${options.id}: the agent's answer is not an AgentResponse`);
    const response = answer as AgentResponse;
    // An answer without our request id (e.g. a config error before the request was read) still counts.
    if (response.requestId !== requestId && response.requestId !== '')
      throw new UpgradeError(
        'UNAVAILABLE',
        `${options.id}: the agent answered request ${response.requestId}, not ${requestId}`,
      );
    return response;
  };

  /** Sends one request (with one reconnect when the reused connection turned out dead). */
  const request = (op: string, args: unknown, callOptions?: CallOptions): Promise<unknown> =>
    bounded(op, callOptions, async (deadline, signal) => {
      const requestId = randomBytes(8).toString('hex');
      for (let attempt = 0; ; attempt++) {
        const client = await connectionWithin(signal);
        let channel: ClientChannel;
        try {
          channel = await openExec(client);
        } catch (error) {
          await dropIf(client);
          if (attempt === 0) {
            log?.debug(
              { node: options.id, err: (error as Error).message },
              'reused ssh connection is gone; reconnecting',
            );
            continue;
          }
          throw unreachable(`cannot run the agent: ${(error as Error).message}`, error);
        }
        const remaining = Math.max(1, deadline - Date.now());
        // The agent stops a little before our deadline, so its TIMEOUT answer (children killed) arrives.
        const agentTimeout = Math.max(
          1,
          remaining - Math.min(2_000, Math.max(200, Math.floor(remaining * 0.2))),
        );
        const line = JSON.stringify({ op, args, timeoutMs: agentTimeout, requestId });
        const started = Date.now();
        const response = await exchange(channel, line, requestId, signal);
        log?.debug(
          { node: options.id, op, requestId, ok: response.ok, ms: Date.now() - started },
          'agent call',
        );
        if (response.ok) return response.result;
        const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(response.error.code)
          ? (response.error.code as ErrorCode)
          : 'INTERNAL';
        throw new UpgradeError(code, response.error.message, {
          retryable: response.error.retryable,
          details: { node: options.id, op, requestId },
        });
      }
    });

  const openSftp = (client: Client): Promise<SFTPWrapper> =>
    new Promise((resolve, reject) => {
      try {
        client.sftp((error, sftp) => {
          if (error) {
            reject(error);
            return;
          }
          // Errors of the session itself surface through the pending operation (pipeline, rename);
          // one arriving between operations is logged here rather than ending the process.
          sftp.on('error', (e: Error) =>
            log?.warn({ node: options.id, err: e.message }, 'SFTP session error'),
          );
          resolve(sftp);
        });
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });

  const sftpCall = (fn: (cb: (error: Error | null | undefined) => void) => void): Promise<void> =>
    new Promise((resolve, reject) => fn((error) => (error ? reject(error) : resolve())));

  return {
    id: options.id,
    address,

    async call<O extends AgentOp>(op: O, args: ArgsOf<O>, callOptions?: CallOptions): Promise<ResultOf<O>> {
      return (await request(op, args, callOptions)) as ResultOf<O>;
    },

    async putFile(localPath, stagedName, callOptions) {
      if (!isPlainName(stagedName))
        throw new UpgradeError('VALIDATION_FAILED', `staged name "${stagedName}" must be a plain file name`);
      return bounded(`upload of ${stagedName}`, callOptions, async (deadline, signal) => {
        const remainingOptions = (): CallOptions => ({
          timeoutMs: Math.max(1, deadline - Date.now()),
          signal,
        });
        if (stagingDir === null)
          stagingDir = ((await request('staging.info', {}, remainingOptions())) as { dir: string }).dir;
        const client = await connectionWithin(signal);
        let sftp: SFTPWrapper;
        try {
          sftp = await openSftp(client);
        } catch (error) {
          await dropIf(client);
          throw unreachable(`cannot open SFTP: ${(error as Error).message}`, error);
        }
        const final = `${stagingDir}/${stagedName}`;
        const partial = `${stagingDir}/.${stagedName}.part-${randomBytes(4).toString('hex')}`;
        const hash = createHash('sha256');
        const tap = new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            hash.update(chunk);
            callback(null, chunk);
          },
        });
        try {
          await pipeline(createReadStream(localPath), tap, sftp.createWriteStream(partial, { mode: 0o600 }), {
            signal,
          });
          // posix-rename replaces an older upload of the same name; plain SFTP rename would refuse.
          await sftpCall((cb) => sftp.ext_openssh_rename(partial, final, cb));
        } catch (error) {
          await sftpCall((cb) => sftp.unlink(partial, cb)).catch(() => undefined);
          if (signal.aborted) throw abortError(signal);
          if (isUpgradeError(error)) throw error;
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' && (error as NodeJS.ErrnoException).path === localPath)
            throw new UpgradeError('VALIDATION_FAILED', `local file ${localPath} does not exist`);
          throw unreachable(`upload of ${stagedName} failed: ${(error as Error).message}`, error);
        } finally {
          sftp.end();
        }
        const sent = hash.digest('hex');
        const landed = (await request('staging.sha256', { stagedName }, remainingOptions())) as {
          sha256: string;
        };
        if (landed.sha256 !== sent)
          throw new UpgradeError(
            'CHECKSUM_MISMATCH',
            `${options.id}: ${stagedName} has SHA-256 ${landed.sha256} on the node but ${sent} was sent; upload again`,
          );
        return { sha256: landed.sha256 };
      });
    },

    async close() {
      const held = current;
      current = null;
      stagingDir = null;
      if (held === null) return;
      try {
        const client = await held;
        await new Promise<void>((resolve) => {
          client.once('close', () => resolve());
          client.end();
          setTimeout(resolve, 1_000).unref();
        });
      } catch {
        // it never connected
      }
    },
  };
}
