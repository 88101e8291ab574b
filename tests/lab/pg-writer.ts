// A client writing through the VIP, the way the application does (db.host = the VIP): every
// `intervalMs` a fresh connection to the VIP's PostgreSQL inserts the next id into a table and
// counts it acknowledged only when the server answered CommandComplete and ReadyForQuery (the
// commit returned). Afterwards the test compares the acknowledged ids with the rows present.
// Spoken in the PostgreSQL wire protocol itself (trust auth, simple query), so the tests need no
// driver; each attempt is bounded by `timeoutMs`.
import { connect, type Socket } from 'node:net';

export interface WriterOptions {
  host: string;
  port: number;
  database: string;
  user: string;
  table: string;
  intervalMs: number;
  timeoutMs: number;
}

export interface WriterReport {
  attempts: number;
  /** Ids whose insert was acknowledged (committed). */
  acked: number[];
  failed: number;
  /** Error kinds (SQLSTATE or socket error code) and how many of each. */
  errors: Record<string, number>;
  /** Longest time between two acknowledged inserts (or start/stop and the nearest ack), ms. */
  longestGapMs: number;
}

export interface Writer {
  stop(): Promise<WriterReport>;
}

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function startup(user: string, database: string): Buffer {
  const params = Buffer.from(`user\0${user}\0database\0${database}\0\0`, 'utf8');
  const body = Buffer.alloc(8 + params.length);
  body.writeInt32BE(body.length, 0);
  body.writeInt32BE(196608, 4);
  params.copy(body, 8);
  return body;
}

/** One insert on a fresh connection: resolves on commit, rejects with an Error whose `code` says why. */
function insertOnce(options: WriterOptions, id: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let socket: Socket | null = null;
    let buffer = Buffer.alloc(0);
    let phase: 'startup' | 'query' | 'done' = 'startup';
    let completed = false;
    let settled = false;
    const finish = (error: (Error & { code?: string }) | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (socket !== null) {
        if (error === null) socket.end(message('X', Buffer.alloc(0)));
        socket.destroy();
      }
      if (error === null) resolve();
      else reject(error);
    };
    const fail = (code: string, text: string): void => finish(Object.assign(new Error(text), { code }));
    const timer = setTimeout(
      () => fail('TIMEOUT', `no answer within ${options.timeoutMs} ms`),
      options.timeoutMs,
    );
    socket = connect({ host: options.host, port: options.port });
    socket.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? 'SOCKET', error.message));
    socket.on('close', () => fail('CLOSED', 'connection closed before the answer'));
    socket.on('connect', () => socket?.write(startup(options.user, options.database)));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 5) {
        const type = String.fromCharCode(buffer[0] ?? 0);
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) return;
        const body = buffer.subarray(5, 1 + length);
        buffer = buffer.subarray(1 + length);
        if (type === 'E') {
          const fields = new Map<string, string>();
          let at = 0;
          while (at < body.length && body[at] !== 0) {
            const end = body.indexOf(0, at + 1);
            fields.set(String.fromCharCode(body[at] ?? 0), body.toString('utf8', at + 1, end));
            at = end + 1;
          }
          fail(fields.get('C') ?? 'ERROR', fields.get('M') ?? 'error');
          return;
        }
        if (type === 'C') completed = true;
        if (type === 'Z') {
          if (phase === 'startup') {
            phase = 'query';
            socket?.write(
              message('Q', Buffer.from(`insert into ${options.table} (id) values (${id})\0`, 'utf8')),
            );
          } else if (completed) {
            phase = 'done';
            finish(null);
            return;
          }
        }
      }
    });
  });
}

/** Starts writing; `stop()` waits for the attempt in flight and reports. */
export function startWriter(options: WriterOptions): Writer {
  const acked: number[] = [];
  const errors: Record<string, number> = {};
  let attempts = 0;
  let failed = 0;
  let stopped = false;
  const started = performance.now();
  let lastAck = started;
  let longestGapMs = 0;
  const loop = (async () => {
    let id = 0;
    while (!stopped) {
      const at = performance.now();
      id++;
      attempts++;
      try {
        await insertOnce(options, id);
        const now = performance.now();
        longestGapMs = Math.max(longestGapMs, now - lastAck);
        lastAck = now;
        acked.push(id);
      } catch (error) {
        failed++;
        const code = (error as { code?: string }).code ?? 'ERROR';
        errors[code] = (errors[code] ?? 0) + 1;
      }
      const wait = options.intervalMs - (performance.now() - at);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      longestGapMs = Math.max(longestGapMs, performance.now() - lastAck);
      return { attempts, acked, failed, errors, longestGapMs: Math.round(longestGapMs) };
    },
  };
}

export function formatWriterReport(r: WriterReport, rows: number): string {
  const kinds = Object.entries(r.errors)
    .map(([k, n]) => `${k} x${n}`)
    .join(', ');
  return `${r.acked.length} acknowledged writes, ${rows} rows present, ${r.failed} failed of ${r.attempts}${
    kinds === '' ? '' : ` (${kinds})`
  }, longest gap ${r.longestGapMs} ms`;
}
