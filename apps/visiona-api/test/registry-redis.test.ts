// The Redis tunnel registry across a dropped Redis connection: the claims subscription comes back
// by itself, and closing the registry while that re-subscription is still unanswered rejects
// nothing that nobody handles (an unhandled rejection ends a service process).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { useRedisPrefix, waitFor } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import type { BackendLogger } from '../src/backend-log.js';
import { createRedisTunnelRegistry, type RedisTunnelRegistry } from '../src/tunnel/registry.redis.js';

const redis = useRedisPrefix();

/**
 * A loopback proxy to Redis that can drop every connection and, once told to, stop passing the
 * server's replies on a connection as soon as its client sends SUBSCRIBE: the re-subscription a
 * client makes after reconnecting stays unanswered for as long as the test needs.
 */
interface HoldingProxy {
  url: string;
  /** Resolves once a client sent SUBSCRIBE on a new connection and its reply is being held. */
  holdNextSubscribeReply(): Promise<void>;
  /** Resets every open connection, as a Redis restart or a network cut does. */
  dropConnections(): void;
  close(): Promise<void>;
}

async function startHoldingProxy(target: URL): Promise<HoldingProxy> {
  const open = new Set<Socket>();
  let onSubscribe: (() => void) | undefined;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    open.add(client).add(upstream);
    let held = false;
    client.on('data', (chunk: Buffer) => {
      if (onSubscribe !== undefined && /subscribe/i.test(chunk.toString('latin1'))) {
        held = true;
        onSubscribe();
        onSubscribe = undefined;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!held) client.write(chunk);
    });
    const drop = (): void => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    holdNextSubscribeReply: () =>
      new Promise<void>((resolve) => {
        onSubscribe = resolve;
      }),
    dropConnections: () => {
      for (const socket of open) socket.resetAndDestroy();
      open.clear();
    },
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('Redis tunnel registry across a dropped connection', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const open = (url: string, instanceId: string, logger?: BackendLogger): RedisTunnelRegistry => {
    const registry = createRedisTunnelRegistry({
      url,
      instanceId,
      advertiseUrl: `http://${instanceId}.invalid`,
      keyPrefix: redis.prefix,
      timeoutMs: 500,
      ...(logger === undefined ? {} : { logger }),
    });
    cleanups.push(() => registry.close());
    return registry;
  };
  const proxied = async (): Promise<HoldingProxy> => {
    const proxy = await startHoldingProxy(new URL(redis.url));
    cleanups.push(() => proxy.close());
    return proxy;
  };

  it('closes while the re-subscription after a reconnect is unanswered without an unhandled rejection', async () => {
    const proxy = await proxied();
    const registry = open(proxy.url, 'a');
    await registry.ready();

    const unhandled: unknown[] = [];
    const record = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', record);
    cleanups.push(async () => process.off('unhandledRejection', record));

    const resubscribing = proxy.holdNextSubscribeReply();
    proxy.dropConnections();
    await resubscribing;
    await registry.close();
    // Rejections surface after the microtasks of the current turn; two turns of the loop suffice.
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(unhandled.map(String)).toEqual([]);
  });

  it('hears claims again once the dropped connection is back', async () => {
    const proxy = await proxied();
    const a = open(proxy.url, 'a');
    const b = open(redis.url, 'b');
    await Promise.all([a.ready(), b.ready()]);
    const heard: string[] = [];
    a.onClaim((deviceId, connectionId) => heard.push(`${deviceId}/${connectionId}`));

    proxy.dropConnections();

    let n = 0;
    await waitFor(
      async () => {
        n += 1;
        const now = new Date();
        await b.claim('device-1', { connectionId: `c${n}`, connectedAt: now, lastSeenAt: now });
        return heard.length > 0;
      },
      { what: 'a claim made elsewhere to reach the reconnected registry' },
    );
    expect(heard[0]).toMatch(/^device-1\/c\d+$/);
  });

  it('logs the lost connection once and its return once, and the calls answer again', async () => {
    const proxy = await proxied();
    const lines: string[] = [];
    const logger: BackendLogger = {
      info: (details, message) => lines.push(`info ${message} ${JSON.stringify(details)}`),
      warn: (details, message) => lines.push(`warn ${message} ${JSON.stringify(details)}`),
    };
    const registry = open(proxy.url, 'a', logger);
    await registry.ready();

    proxy.dropConnections();
    await waitFor(() => lines.some((line) => line.startsWith('info Redis connection back')), {
      what: 'the registry to reconnect',
    });

    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^warn Redis connection lost; its calls answer 503 until it is back \{"redis":"tunnel registry"(,"code":"[A-Z]+")?\}$/,
    );
    expect(lines[1]).toBe('info Redis connection back {"redis":"tunnel registry"}');
    expect(await registry.locate('device-1')).toBeUndefined();
  });
});
