// The download's HTTP client (src/http-stream.ts) against a raw TCP server on loopback that writes
// answers byte for byte: framings (Content-Length, chunked, up to the close), an interim 100, a
// head split across reads, and what a broken server does (a bad status line, a bad chunk size, a
// body cut short). The body arrives as views of one buffer: the test copies each before the next.
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sendStreamingGet } from '../src/http-stream.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
});

/** A server whose every connection is answered by `answer`; resolves with its URL. */
async function serve(answer: (socket: Socket, request: string) => void): Promise<URL> {
  const server = createServer((socket) => {
    let request = '';
    socket.on('data', (d: Buffer) => {
      request += d.toString('latin1');
      if (request.includes('\r\n\r\n')) answer(socket, request);
    });
    socket.on('error', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return new URL(`http://127.0.0.1:${port}/pkg.zip?x=1`);
}

const limits = { connectTimeoutMs: 2_000, headersTimeoutMs: 2_000 };

/** Status, headers and the whole body (each view copied before asking for the next). */
async function get(url: URL, headers: Record<string, string> = {}) {
  const answer = await sendStreamingGet(url, { ...limits, headers });
  const parts: Buffer[] = [];
  try {
    for await (const chunk of answer.body) parts.push(Buffer.from(chunk));
  } finally {
    answer.close();
  }
  return { status: answer.status, headers: answer.headers, body: Buffer.concat(parts).toString('latin1') };
}

async function failureOf(url: URL): Promise<{ code?: string; message: string }> {
  try {
    await get(url);
  } catch (error) {
    return { code: (error as { code?: string }).code, message: (error as Error).message };
  }
  throw new Error('no failure');
}

describe('the download HTTP client', () => {
  it('sends a GET with the path, query and headers, and reads a Content-Length body', async () => {
    let seen = '';
    const body = Buffer.alloc(300_000, 0x62);
    const url = await serve((socket, request) => {
      seen = request;
      socket.end(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nETag: "v1"\r\n\r\n`),
          body,
        ]),
      );
    });
    const answer = await get(url, { range: 'bytes=5-' });
    expect(seen).toMatch(/^GET \/pkg\.zip\?x=1 HTTP\/1\.1\r\n/);
    expect(seen).toContain('range: bytes=5-\r\n');
    expect(seen).toContain(`host: ${url.host}\r\n`);
    expect(answer).toMatchObject({ status: 200, headers: { etag: '"v1"', 'content-length': '300000' } });
    expect(answer.body).toBe(body.toString('latin1'));
  });

  it('decodes a chunked body written a few bytes at a time, after an interim 100 and a head split across reads', async () => {
    const url = await serve((socket) => {
      const text =
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n';
      let at = 0;
      const timer = setInterval(() => {
        socket.write(text.slice(at, at + 7));
        at += 7;
        if (at >= text.length) {
          clearInterval(timer);
          socket.end();
        }
      }, 1);
    });
    expect(await get(url)).toMatchObject({ status: 200, body: 'hello 0123456789' });
  });

  it('reads a body without length up to the close', async () => {
    const url = await serve((socket) =>
      socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>portal</html>'),
    );
    expect(await get(url)).toMatchObject({ status: 200, body: '<html>portal</html>' });
  });

  it('fails a body cut short of its Content-Length with ECONNRESET', async () => {
    const url = await serve((socket) =>
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this'),
    );
    expect(await failureOf(url)).toMatchObject({ code: 'ECONNRESET' });
  });

  it("names a server's answer that is not HTTP the way node:http does", async () => {
    const garbage = await serve((socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'));
    expect(await failureOf(garbage)).toMatchObject({ code: 'HPE_INVALID_CONSTANT' });
    const badChunk = await serve((socket) =>
      socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'),
    );
    expect(await failureOf(badChunk)).toMatchObject({ code: 'HPE_INVALID_CHUNK_SIZE' });
    const badLength = await serve((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n'));
    expect(await failureOf(badLength)).toMatchObject({ code: 'HPE_INVALID_CONTENT_LENGTH' });
    const closed = await serve((socket) => socket.end());
    expect(await failureOf(closed)).toMatchObject({ code: 'ECONNRESET', message: 'socket hang up' });
  });

  it('gives up on silent servers with HEADERS_TIMEOUT, and on an abort with its reason', async () => {
    const silent = await serve(() => undefined);
    await expect(
      sendStreamingGet(silent, { connectTimeoutMs: 2_000, headersTimeoutMs: 50 }),
    ).rejects.toMatchObject({
      code: 'HEADERS_TIMEOUT',
    });
    const slow = await serve((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const controller = new AbortController();
    const answer = await sendStreamingGet(slow, { ...limits, signal: controller.signal });
    const chunks = answer.body[Symbol.asyncIterator]();
    const first: IteratorResult<Buffer> = await chunks.next();
    expect(first.done === true ? null : first.value.toString()).toBe('abc');
    const pending = chunks.next();
    controller.abort(new Error('stalled'));
    await expect(pending).rejects.toThrow('stalled');
    answer.close();
  });
});
