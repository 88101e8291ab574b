// A package server that misbehaves at the TCP level, where an HTTP server library would not let it:
// a short 200 body (a captive portal or CDN error page), a body ended by FIN and then RST mid-way,
// redirect loops and redirects to file://. Raw sockets on loopback, one behaviour per path.
import { createServer, type Socket } from 'node:net';

/** What the server does for a path. */
export type HostileBehaviour =
  /** 200 with `body` (default a 23-byte page) and its true Content-Length. */
  | { kind: 'short'; body?: Buffer; contentLength?: boolean }
  /** 200 announcing `size` bytes, sends `sendBytes` of them, then FIN, then RST `rstAfterMs` later. */
  | { kind: 'fin-rst'; size: number; sendBytes: number; rstAfterMs?: number }
  /** 302 to itself, forever. */
  | { kind: 'redirect-loop' }
  /** 302 to `location` (e.g. file:///etc/passwd). */
  | { kind: 'redirect'; location: string };

export interface HostileServer {
  readonly url: string;
  urlOf(path: string): string;
  /** Requests received per path. */
  readonly hits: Map<string, number>;
  close(): Promise<void>;
}

/** The 23 bytes a captive portal answered in the field. */
export const CAPTIVE_PAGE = Buffer.from('<html>login first</html>'.slice(0, 23));

/** Starts the server on an ephemeral loopback port. */
export async function startHostileServer(paths: Record<string, HostileBehaviour>): Promise<HostileServer> {
  const sockets = new Set<Socket>();
  const hits = new Map<string, number>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    const onData = (data: Buffer): void => {
      head += data.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      const path = /^[A-Z]+ (\S+) HTTP/.exec(head)?.[1] ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      answer(socket, paths[path]);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const url = `http://127.0.0.1:${address.port}`;
  return {
    url,
    urlOf: (path) => `${url}${path}`,
    hits,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function answer(socket: Socket, behaviour: HostileBehaviour | undefined): void {
  if (behaviour === undefined) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  switch (behaviour.kind) {
    case 'short': {
      const body = behaviour.body ?? CAPTIVE_PAGE;
      const length = behaviour.contentLength === false ? '' : `Content-Length: ${body.length}\r\n`;
      socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n${length}Connection: close\r\n\r\n`);
      socket.end(body);
      return;
    }
    case 'fin-rst': {
      socket.write(
        `HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: ${behaviour.size}\r\nConnection: close\r\n\r\n`,
      );
      socket.write(Buffer.alloc(behaviour.sendBytes, 0x61));
      socket.end();
      setTimeout(() => {
        if (!socket.destroyed) socket.resetAndDestroy();
      }, behaviour.rstAfterMs ?? 1).unref();
      return;
    }
    case 'redirect-loop':
      socket.end('HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    case 'redirect':
      socket.end(
        `HTTP/1.1 302 Found\r\nLocation: ${behaviour.location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      return;
  }
}
