import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  closeGracefully,
  createService,
  exitOnSignals,
  listenAndServe,
  type LoggerOption,
  type ServiceApp,
} from '../src/index.js';
import { collectLogs, deferred, listenLocal } from './helpers.js';

/**
 * An app whose /slow handler waits until the test releases it, whose /hang handler never answers,
 * and whose onClose hook is recorded. `entered` resolves when either handler starts.
 */
async function build(logger: LoggerOption = false) {
  const app = await createService({
    name: 'shutdown-test',
    version: '0.0.0',
    logger,
    metrics: { defaultMetrics: false },
    openapi: { docsPath: false },
  });
  const entered = deferred();
  const release = deferred();
  const events: string[] = [];
  app.get('/slow', async () => {
    entered.resolve();
    await release.promise;
    events.push('slow answered');
    return { done: true };
  });
  app.get('/hang', () => {
    entered.resolve();
    return new Promise(() => undefined);
  });
  app.addHook('onClose', (_instance, done) => {
    events.push('pool closed');
    done();
  });
  return { app, entered, release, events };
}

function connectionRefused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

const apps: ServiceApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

describe('closeGracefully', () => {
  it('lets an in-flight request finish, refuses new connections, then runs close hooks', async () => {
    const { app, entered, release, events } = await build();
    const base = await listenLocal(app);
    const inFlight = request(`${base}/slow`);
    await entered.promise;

    const closing = closeGracefully(app, {
      shutdownTimeoutMs: 5000,
      onClose: () => void events.push('onClose'),
    });
    // preClose hooks run first; the listening socket closes a tick or two later.
    await vi.waitFor(() => expect(app.server.listening).toBe(false));
    expect(await connectionRefused(base)).toBe(true);
    expect(events).toEqual([]);

    release.resolve();
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(res.headers.connection).toBe('close');
    expect(await res.body.json()).toEqual({ done: true });
    expect(await closing).toBe('closed');
    expect(events).toEqual(['slow answered', 'pool closed', 'onClose']);
  });

  it('answers a request still arriving on an open connection with 503 in the shared envelope', async () => {
    const logs = collectLogs();
    const { app, entered, release } = await build({ stream: logs.stream });
    const base = await listenLocal(app);
    const inFlight = request(`${base}/slow`);
    await entered.promise;
    // A client that had started a request when the drain began: half its headers are on the wire.
    const { port } = new URL(base);
    const accepted = new Promise<Socket>((resolve) => app.server.once('connection', resolve));
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    const serverSide = await accepted;
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const ended = new Promise((resolve) => socket.once('close', resolve));
    const partial = 'GET /slow HTTP/1.1\r\nHost: x\r\n';
    socket.write(partial);
    // The server must have read (and so begun parsing) the request before the drain starts.
    await vi.waitFor(() => expect(serverSide.bytesRead).toBe(partial.length));

    const closing = closeGracefully(app, { shutdownTimeoutMs: 5000 });
    await vi.waitFor(() => expect(app.server.listening).toBe(false));
    socket.write('x-request-id: late-1\r\n\r\n');
    await ended;

    const [head, body] = received.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head).toMatch(/\r\nconnection: close\r\n/i);
    expect(body).toBe(
      '{"error":{"code":"UNAVAILABLE","message":"Service Unavailable","requestId":"late-1"}}',
    );
    expect(logs.lines).toContainEqual(
      expect.objectContaining({ reqId: 'late-1', msg: 'refused: shutting down' }),
    );
    release.resolve();
    expect((await inFlight).statusCode).toBe(200);
    expect(await closing).toBe('closed');
  });

  it('cuts connections and reports timeout when work outlives the deadline', async () => {
    const { app, entered } = await build();
    const base = await listenLocal(app);
    const stuck = request(`${base}/hang`).then(
      () => 'answered',
      () => 'connection cut',
    );
    await entered.promise;
    const started = performance.now();
    expect(await closeGracefully(app, { shutdownTimeoutMs: 100 })).toBe('timeout');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await stuck).toBe('connection cut');
  });

  it('reports failed when a close hook throws', async () => {
    const { app } = await build();
    await listenLocal(app);
    const outcome = await closeGracefully(app, {
      onClose: () => Promise.reject(new Error('could not release the advisory lock')),
    });
    expect(outcome).toBe('failed');
  });
});

describe('exitOnSignals', () => {
  it('drains on SIGTERM and exits 0', async () => {
    const { app, entered, release } = await build();
    const signals = new EventEmitter();
    const exited = deferred<number>();
    const { address } = await listenAndServe(
      app,
      { port: 0, host: '127.0.0.1' },
      { source: signals, exit: exited.resolve },
    );
    const inFlight = request(`${address}/slow`);
    await entered.promise;
    signals.emit('SIGTERM', 'SIGTERM');
    release.resolve();
    expect((await inFlight).statusCode).toBe(200);
    expect(await exited.promise).toBe(0);
  });

  it('exits 1 when the deadline passes', async () => {
    const { app, entered } = await build();
    const signals = new EventEmitter();
    const exited = deferred<number>();
    const base = await listenLocal(app);
    exitOnSignals(app, { source: signals, exit: exited.resolve, shutdownTimeoutMs: 50 });
    const stuck = request(`${base}/hang`).catch(() => undefined);
    await entered.promise;
    signals.emit('SIGINT', 'SIGINT');
    expect(await exited.promise).toBe(1);
    await stuck;
  });

  it('exits 1 at once on a second signal, and stops listening when uninstalled', async () => {
    const { app, entered, release } = await build();
    apps.push(app);
    const signals = new EventEmitter();
    const codes: number[] = [];
    const base = await listenLocal(app);
    const stop = exitOnSignals(app, { source: signals, exit: (code) => void codes.push(code) });
    const inFlight = request(`${base}/slow`);
    await entered.promise;
    signals.emit('SIGTERM', 'SIGTERM');
    signals.emit('SIGTERM', 'SIGTERM');
    expect(codes).toEqual([1]);
    stop();
    expect(signals.listenerCount('SIGTERM')).toBe(0);
    release.resolve();
    await inFlight;
  });
});
