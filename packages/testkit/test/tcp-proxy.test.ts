import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startTcpProxy, testDatabaseServerUrl, type TcpProxy } from '../src/index.js';

let proxy: TcpProxy | undefined;
afterAll(async () => proxy?.close());

describe('startTcpProxy', () => {
  it('forwards to PostgreSQL, refuses while cut, and forwards again when restored', async () => {
    const server = new URL(testDatabaseServerUrl());
    proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    const query = async (): Promise<unknown> => {
      const client = new pg.Client({
        connectionString: proxy?.via(testDatabaseServerUrl()),
        connectionTimeoutMillis: 1_000,
      });
      try {
        await client.connect();
        return (await client.query<{ one: number }>('select 1 as one')).rows[0]?.one;
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    expect(await query()).toBe(1);

    const held = new pg.Client({ connectionString: proxy.via(testDatabaseServerUrl()) });
    held.on('error', () => undefined);
    await held.connect();
    proxy.cut();
    await expect(held.query('select 1')).rejects.toThrow();
    await expect(query()).rejects.toThrow();

    proxy.restore();
    expect(await query()).toBe(1);
  });
});
