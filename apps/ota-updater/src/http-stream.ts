// A GET over plain HTTP/1.1 whose body is read into ONE reused buffer: the package download's
// client. Node's own client gets every socket read in a fresh 64 KiB Buffer that dies at once but
// is freed only by a GC, which V8 starts for it after ~32 MiB of them piled up, and glibc keeps much
// of that afterwards: a 1 GiB download added 35-42 MiB to the service's RSS that way. Here the
// socket reads into its `onread` buffer, the head is parsed by hand (status line, headers) and the
// body handed out as views of that buffer (Content-Length, chunked, or up to the close), the
// socket paused until the reader asks for more, so a view is valid until the next `next()`.
// https:// and anything unusual go to node:http / node:https (http-client.ts), which handle TLS.
// Every failure has the shape http-client.ts gives it: HttpClientError for timeouts and aborts,
// Node-style codes (ECONNRESET, HPE_*) for what the server did, so download-http.ts words them.
import { connect, type Socket } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import {
  HTTP_CLIENT_CODES,
  HttpClientError,
  sendRequest,
  type HttpAnswer,
  type SendOptions,
} from './http-client.js';

/** One socket read at most; the size of node's own reads. */
const READ_BUFFER_BYTES = 64 * 1024;
/** A status line and headers longer than this are not a package server's. */
const MAX_HEAD_BYTES = 64 * 1024;

/** A protocol error of the answer, with the code Node's parser would give it. */
function protocolError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

/**
 * Sends a GET and resolves once the answer's head arrived. The body's chunks are views of one
 * buffer: each is valid until the next call of the iterator's `next()` (read it, copy or hash it,
 * then ask for the next). Falls back to {@link sendRequest} for anything but a plain http: GET.
 */
export function sendStreamingGet(url: URL, options: SendOptions): Promise<HttpAnswer> {
  if (url.protocol !== 'http:' || (options.method ?? 'GET') !== 'GET' || options.body !== undefined)
    return sendRequest(url, options);
  return new Promise<HttpAnswer>((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted === true) {
      reject(abortedBy(signal));
      return;
    }
    const readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    let head: Buffer | null = Buffer.allocUnsafe(0);
    let framing: Framing | null = null;
    // chunked: the size line being read, the data left in the current chunk, the CRLF after it.
    let chunkLine = '';
    let chunkLeft = 0;
    let chunkCrlf = 0;
    let trailer: string | null = null;
    /** Views of readBuffer not yet handed out; the socket is paused while there are any. */
    const pieces: Buffer[] = [];
    let ended = false;
    let failure: Error | null = null;
    let waiter: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | null = null;
    let answered = false;
    let timer: NodeJS.Timeout | null = null;

    const arm = (ms: number, code: string, text: string): void => {
      disarm();
      timer = setTimeout(() => socket.destroy(new HttpClientError(code, text)), ms);
    };
    const disarm = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    };
    const onAbort = (): void => {
      socket.destroy(signal === undefined ? new Error('aborted') : abortedBy(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    /** The body is over (cleanly or not): wake the reader. */
    const finish = (error: Error | null): void => {
      if (ended || failure !== null) return;
      if (error === null) ended = true;
      else failure = error;
      signal?.removeEventListener('abort', onAbort);
      wake();
    };
    const wake = (): void => {
      if (waiter === null) return;
      const w = waiter;
      const piece = pieces.shift();
      if (piece !== undefined) {
        waiter = null;
        w.resolve({ value: piece, done: false });
      } else if (failure !== null) {
        waiter = null;
        w.reject(failure);
      } else if (ended) {
        waiter = null;
        w.resolve({ value: undefined, done: true });
      }
    };

    /** Takes the body bytes of `data[from..to)` into `pieces`, following the framing. */
    const takeBody = (data: Buffer, from: number, to: number): void => {
      let at = from;
      while (at < to && !ended && framing !== null) {
        if (framing.kind === 'close') {
          pieces.push(data.subarray(at, to));
          return;
        }
        if (framing.kind === 'length') {
          const n = Math.min(framing.left, to - at);
          if (n > 0) pieces.push(data.subarray(at, at + n));
          framing.left -= n;
          at += n;
          if (framing.left === 0) finish(null);
          return;
        }
        // chunked
        if (trailer !== null) {
          // After the last chunk: trailer lines up to an empty one; their content is not used.
          const byte = data[at++];
          trailer += String.fromCharCode(byte ?? 0);
          if (trailer.endsWith('\r\n') || trailer === '\n') {
            if (trailer === '\r\n' || trailer === '\n') finish(null);
            trailer = '';
          }
          continue;
        }
        if (chunkCrlf > 0) {
          const byte = data[at++];
          if (byte === 0x0a) chunkCrlf = 0;
          else if (byte !== 0x0d) throw protocolError('HPE_INVALID_CHUNK_SIZE', 'missing CRLF after a chunk');
          continue;
        }
        if (chunkLeft > 0) {
          const n = Math.min(chunkLeft, to - at);
          pieces.push(data.subarray(at, at + n));
          chunkLeft -= n;
          at += n;
          if (chunkLeft === 0) chunkCrlf = 1;
          continue;
        }
        const byte = data[at++] ?? 0;
        if (byte !== 0x0a) {
          chunkLine += String.fromCharCode(byte);
          if (chunkLine.length > 1024)
            throw protocolError('HPE_INVALID_CHUNK_SIZE', 'chunk size line too long');
          continue;
        }
        const sizeText = chunkLine.replace(/\r$/, '').split(';', 1)[0]?.trim() ?? '';
        chunkLine = '';
        if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText))
          throw protocolError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
        chunkLeft = Number.parseInt(sizeText, 16);
        if (chunkLeft === 0) trailer = '';
      }
    };

    /** Parses the head once complete; returns where the body starts in `data`, or -1 for "more". */
    const takeHead = (data: Buffer, from: number, to: number): number => {
      const before = head?.length ?? 0;
      head = Buffer.concat([head ?? Buffer.alloc(0), data.subarray(from, to)]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > MAX_HEAD_BYTES)
          throw protocolError('HPE_HEADER_OVERFLOW', 'answer headers too large');
        return -1;
      }
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
      if (status === null) throw protocolError('HPE_INVALID_CONSTANT', 'not an HTTP/1.x status line');
      const code = Number(status[1]);
      const headers: IncomingHttpHeaders = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon <= 0) throw protocolError('HPE_INVALID_HEADER_TOKEN', 'malformed header line');
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        // The first of a repeated header counts, as node:http does for the ones read here.
        if (headers[name] === undefined) headers[name] = value;
      }
      const bodyStart = from + (end + 4 - before);
      head = null;
      if (code >= 100 && code < 200) {
        // An interim answer (100 Continue): the real one follows.
        head = Buffer.allocUnsafe(0);
        return bodyStart < to ? takeHead(data, bodyStart, to) : -1;
      }
      const te = headers['transfer-encoding'];
      const length = headers['content-length'];
      if (code === 204 || code === 304) framing = { kind: 'length', left: 0 };
      else if (typeof te === 'string' && /(?:^|,)\s*chunked\s*$/i.test(te)) framing = { kind: 'chunked' };
      else if (typeof length === 'string') {
        if (!/^\d+$/.test(length))
          throw protocolError('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length');
        framing = { kind: 'length', left: Number(length) };
      } else framing = { kind: 'close' };
      disarm();
      answered = true;
      resolve({
        status: code,
        headers,
        body: { [Symbol.asyncIterator]: () => iterator },
        close: () => {
          socket.destroy();
        },
      });
      if (framing.kind === 'length' && framing.left === 0) finish(null);
      return bodyStart;
    };

    const onRead = (nread: number, data: Buffer): boolean => {
      try {
        let at = 0;
        if (head !== null) {
          at = takeHead(data, 0, nread);
          if (at === -1) return true;
        }
        takeBody(data, at, nread);
      } catch (error) {
        socket.destroy(error as Error);
        return false;
      }
      if (pieces.length === 0) return true;
      wake();
      // Paused until every view of this read is consumed: the next read would overwrite them.
      return false;
    };

    const iterator: AsyncIterator<Buffer> = {
      next: () => {
        const piece = pieces.shift();
        if (piece !== undefined) return Promise.resolve({ value: piece, done: false });
        if (failure !== null) return Promise.reject(failure);
        if (ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise<IteratorResult<Buffer>>((res, rej) => {
          waiter = { resolve: res, reject: rej };
          // Returning false from onread stopped reading without marking the socket paused.
          socket.resume();
        });
      },
      return: () => {
        socket.destroy();
        finish(null);
        return Promise.resolve({ value: undefined, done: true });
      },
    };

    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const socket: Socket = connect({
      host,
      port: url.port === '' ? 80 : Number(url.port),
      onread: { buffer: readBuffer, callback: onRead },
    });
    arm(
      options.connectTimeoutMs,
      HTTP_CLIENT_CODES.connectTimeout,
      `could not connect within ${options.connectTimeoutMs} ms`,
    );
    socket.once('connect', () =>
      arm(
        options.headersTimeoutMs,
        HTTP_CLIENT_CODES.headersTimeout,
        `no answer headers within ${options.headersTimeoutMs} ms`,
      ),
    );
    socket.on('error', (error: Error) => {
      disarm();
      if (!answered) {
        answered = true;
        signal?.removeEventListener('abort', onAbort);
        reject(error);
        return;
      }
      finish(error);
    });
    socket.on('end', () => {
      // The server closed its side: complete only when the framing says the body is.
      if (!answered) {
        socket.destroy(protocolError('ECONNRESET', 'socket hang up'));
        return;
      }
      if (framing?.kind === 'close') finish(null);
      else finish(protocolError('ECONNRESET', 'aborted'));
    });
    socket.on('close', () => {
      disarm();
      if (!answered) {
        answered = true;
        signal?.removeEventListener('abort', onAbort);
        reject(protocolError('ECONNRESET', 'socket hang up'));
        return;
      }
      if (framing?.kind === 'close') finish(null);
      else finish(protocolError('ECONNRESET', 'aborted'));
    });

    const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
    if (url.username !== '' || url.password !== '') {
      const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
      lines.push(`authorization: Basic ${Buffer.from(credentials).toString('base64')}`);
    }
    for (const [name, value] of Object.entries(options.headers ?? {})) lines.push(`${name}: ${value}`);
    lines.push('connection: close', '', '');
    socket.write(lines.join('\r\n'));
  });
}

function abortedBy(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new HttpClientError(HTTP_CLIENT_CODES.aborted, 'request aborted');
}
