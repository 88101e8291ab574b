// The WebSocket as the byte stream HTTP/2 runs on. Unlike ws's createWebSocketStream, writes made
// while a send is in flight are coalesced into one WebSocket message (`writev`): HTTP/2 writes many
// small frames (HEADERS, DATA, WINDOW_UPDATE, PING acks), and one message each would cost a frame
// header, a mask and a syscall per frame.
import { Duplex } from 'node:stream';
import { WebSocket } from 'ws';

/** Coalesced writes go out in messages of at most this size (the API accepts up to 1 MiB). */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** A duplex over an open WebSocket: binary messages in, binary messages out, backpressure both ways. */
export function webSocketDuplex(ws: WebSocket): Duplex {
  const send = (data: Buffer, callback: (error?: Error | null) => void): void => {
    if (ws.readyState !== WebSocket.OPEN) {
      callback(new Error('the WebSocket is closed'));
      return;
    }
    ws.send(data, { binary: true }, (error) => callback(error ?? null));
  };
  const duplex = new Duplex({
    allowHalfOpen: false,
    read: () => ws.resume(),
    write: (chunk: Buffer, _encoding, callback) => {
      const messages = coalesce([chunk]);
      const last = messages.pop() ?? Buffer.alloc(0);
      for (const message of messages) send(message, () => undefined);
      send(last, callback);
    },
    writev: (chunks, callback) => {
      const messages = coalesce(chunks.map(({ chunk }) => chunk as Buffer));
      const last = messages.pop() ?? Buffer.alloc(0);
      // ws queues sends in order; the last one's callback covers them all.
      for (const message of messages) send(message, () => undefined);
      send(last, callback);
    },
    final: (callback) => {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      callback();
    },
    // The owner picks the close code (it calls ws.close first); a bare destroy just ends the socket.
    destroy: (error, callback) => {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      callback(error);
    },
  });
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    const chunk = Buffer.isBuffer(data)
      ? data
      : Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.from(data);
    if (!duplex.push(chunk)) ws.pause();
  });
  ws.once('close', () => {
    duplex.push(null);
    duplex.destroy();
  });
  ws.on('error', (error) => duplex.destroy(error));
  return duplex;
}

/** Concatenates chunks into as few messages as fit MAX_MESSAGE_BYTES; a bigger chunk is split. */
function coalesce(chunks: Buffer[]): Buffer[] {
  const messages: Buffer[] = [];
  let pending: Buffer[] = [];
  let size = 0;
  for (const whole of chunks) {
    for (let at = 0; at < whole.length;) {
      const piece = whole.subarray(at, at + MAX_MESSAGE_BYTES - size);
      at += piece.length;
      pending.push(piece);
      size += piece.length;
      if (size === MAX_MESSAGE_BYTES) {
        messages.push(Buffer.concat(pending, size));
        pending = [];
        size = 0;
      }
    }
  }
  if (size > 0) messages.push(Buffer.concat(pending, size));
  return messages;
}
