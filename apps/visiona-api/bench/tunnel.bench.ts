// The tunnel's overhead: one agent handler served three ways on loopback, measured alike.
//   direct h1   - the handler on a plain node:http server, through an undici keep-alive pool
//   direct h2   - the handler on an HTTP/2 server over TCP (the tunnel's protocol without the WebSocket)
//   tunnel      - hub.forward(): HTTP/2 over the agent's WebSocket, the API as client
// Prints p50/p99 of sequential small round trips, requests/s with 100 in flight, and MiB/s of a
// 1 MiB echo. Nothing asserts on time: the figures are for reading beside each other.
// Run: pnpm --filter @upgrade/visiona-api exec tsx bench/tunnel.bench.ts
// Env: BENCH_TUNNEL_ROUNDS (sequential round trips, default 2000), BENCH_TUNNEL_CONCURRENT_TOTAL
// (requests of the concurrent run, default 5000).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { availableParallelism, cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { systemClock } from '@upgrade/core';
import { createService } from '@upgrade/service';
import { Pool } from 'undici';
import { startReferenceAgent, type AgentHandler } from '../src/agent/index.js';
import { createMemoryStores } from '../src/stores/index.js';
import { createTunnelSessionStore } from '../src/stores/tunnel-sessions.memory.js';
import { newToken } from '../src/tokens.js';
import { registerTunnel, type AgentConnection } from '../src/tunnel/index.js';

const ROUNDS = Number(process.env.BENCH_TUNNEL_ROUNDS ?? 2000);
const CONCURRENT_TOTAL = Number(process.env.BENCH_TUNNEL_CONCURRENT_TOTAL ?? 5000);
const IN_FLIGHT = 100;
const BIG = Buffer.alloc(1024 * 1024, 7);
const BIG_ROUNDS = 50;

/** GET answers a small JSON; POST echoes its body. */
const handler: AgentHandler = async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = req.method === 'POST' ? Buffer.concat(chunks) : Buffer.from('{"status":"ok"}');
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
};

/** One way of sending a request: returns the response body length. */
type Send = (method: 'GET' | 'POST', path: string, body?: Buffer) => Promise<number>;

async function directH1(): Promise<{ send: Send; close: () => Promise<void> }> {
  // The HTTP/2 compatibility API mirrors node:http's; the handler runs unchanged on both.
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void handler(req as unknown as http2.Http2ServerRequest, res as unknown as http2.Http2ServerResponse);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
    connections: IN_FLIGHT,
  });
  return {
    send: async (method, path, body) => {
      const answer = await pool.request({ method, path, ...(body === undefined ? {} : { body }) });
      return (await answer.body.arrayBuffer()).byteLength;
    },
    close: async () => {
      await pool.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function directH2(): Promise<{ send: Send; close: () => Promise<void> }> {
  const server = http2.createServer(
    { settings: { initialWindowSize: 1 << 20 } },
    (req, res) => void handler(req, res),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
    settings: { initialWindowSize: 1 << 20 },
  });
  session.on('connect', () => session.setLocalWindowSize(16 << 20));
  return {
    send: (method, path, body) =>
      new Promise((resolve, reject) => {
        const stream = session.request(
          { ':method': method, ':path': path },
          { endStream: body === undefined },
        );
        let size = 0;
        stream.on('data', (chunk: Buffer) => (size += chunk.length));
        stream.on('end', () => resolve(size));
        stream.on('error', reject);
        if (body !== undefined) stream.end(body);
      }),
    close: async () => {
      session.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function tunnel(): Promise<{ send: Send; close: () => Promise<void> }> {
  const stores = createMemoryStores(systemClock);
  const app = await createService({ name: 'visiona-api', version: 'bench', logger: false });
  const hub = await registerTunnel(app, {
    sessionTokens: stores.sessionTokens,
    devices: stores.devices,
    tunnels: createTunnelSessionStore<AgentConnection>(systemClock),
    logger: app.log,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const owner = await stores.users.create({ email: 'bench@example.com', passwordHash: 'x' });
  const device = await stores.devices.create({ ownerId: owner.id, serial: 'BENCH', name: 'bench' });
  const token = newToken();
  await stores.sessionTokens.create({ tokenHash: token.hash, deviceId: device.id });
  const agent = startReferenceAgent({
    apiUrl: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    sessionToken: token.raw,
    handler,
  });
  await agent.connected;
  while (!hub.isConnected(device.id)) await systemClock.sleep(5);
  return {
    send: async (method, path, body) =>
      (await hub.forward(device.id, { method, path, ...(body === undefined ? {} : { body }) })).body.length,
    close: async () => {
      await agent.close();
      await app.close();
    },
  };
}

interface Figures {
  p50Us: number;
  p99Us: number;
  requestsPerSecond: number;
  mibPerSecond: number;
}

async function measure(send: Send): Promise<Figures> {
  for (let i = 0; i < 200; i += 1) await send('GET', '/health'); // warm-up
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    const started = performance.now();
    await send('GET', '/health');
    times.push((performance.now() - started) * 1000);
  }
  times.sort((a, b) => a - b);

  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < CONCURRENT_TOTAL) {
        next += 1;
        await send('GET', '/health');
      }
    }),
  );
  const requestsPerSecond = CONCURRENT_TOTAL / ((performance.now() - started) / 1000);

  const bigStarted = performance.now();
  for (let i = 0; i < BIG_ROUNDS; i += 1) {
    if ((await send('POST', '/echo', BIG)) !== BIG.length) throw new Error('echo lost bytes');
  }
  // Both directions count: the body goes to the agent and comes back.
  const mibPerSecond = (2 * BIG_ROUNDS) / ((performance.now() - bigStarted) / 1000);
  return {
    p50Us: times[Math.floor(times.length * 0.5)] ?? 0,
    p99Us: times[Math.floor(times.length * 0.99)] ?? 0,
    requestsPerSecond,
    mibPerSecond,
  };
}

const rows: [string, Figures][] = [];
for (const [name, start] of [
  ['direct h1', directH1],
  ['direct h2', directH2],
  ['tunnel', tunnel],
] as const) {
  const target = await start();
  try {
    rows.push([name, await measure(target.send)]);
  } finally {
    await target.close();
  }
}

console.log(
  `node ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'}), ` +
    `${ROUNDS} sequential, ${CONCURRENT_TOTAL} with ${IN_FLIGHT} in flight, ${BIG_ROUNDS} x 1 MiB echo`,
);
console.log('what        p50 µs   p99 µs   req/s (100 in flight)   MiB/s (1 MiB echo, both ways)');
for (const [name, f] of rows) {
  console.log(
    `${name.padEnd(10)} ${f.p50Us.toFixed(0).padStart(7)} ${f.p99Us.toFixed(0).padStart(8)} ` +
      `${f.requestsPerSecond.toFixed(0).padStart(23)} ${f.mibPerSecond.toFixed(0).padStart(31)}`,
  );
}
const base = rows[0]?.[1];
const through = rows[2]?.[1];
if (base !== undefined && through !== undefined) {
  console.log(
    `tunnel overhead vs direct h1: +${(through.p50Us - base.p50Us).toFixed(0)} µs p50 per round trip, ` +
      `${((through.requestsPerSecond / base.requestsPerSecond) * 100).toFixed(0)}% of its req/s, ` +
      `${((through.mibPerSecond / base.mibPerSecond) * 100).toFixed(0)}% of its MiB/s`,
  );
}
