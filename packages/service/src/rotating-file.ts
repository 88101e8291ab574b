import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

/** A log destination that keeps at most `files` files of at most `maxBytes` each. */
export interface RotatingFile {
  write(line: string): void;
  /** Closes the current file; later writes reopen it. */
  close(): void;
}

/**
 * Appends lines to `path`; when the next line would pass `maxBytes`, `path` becomes `path.1`,
 * `path.1` becomes `path.2`, ... and the oldest beyond `files - 1` rotations is deleted. Writes are
 * synchronous: a line is on its way to the disk before the call returns, so a crash or power cut
 * loses no line that was logged (on a device, the last lines before a failure matter most).
 *
 * @example createService({ name, version, logger: { stream: createRotatingFile({ path: '/var/log/ota-updater/ota.log' }) } })
 */
export function createRotatingFile(options: {
  path: string;
  maxBytes?: number;
  files?: number;
}): RotatingFile {
  const maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
  const files = Math.max(1, options.files ?? 3);
  mkdirSync(dirname(options.path), { recursive: true });
  let fd: number | null = null;
  let size = 0;

  const open = (): number => {
    if (fd === null) {
      fd = openSync(options.path, 'a', 0o640);
      size = fstatSync(fd).size;
    }
    return fd;
  };

  const rotate = (): void => {
    if (fd !== null) closeSync(fd);
    fd = null;
    rmSync(`${options.path}.${files - 1}`, { force: true });
    for (let i = files - 2; i >= 1; i--) {
      if (existsSync(`${options.path}.${i}`)) renameSync(`${options.path}.${i}`, `${options.path}.${i + 1}`);
    }
    if (files > 1) renameSync(options.path, `${options.path}.1`);
    else rmSync(options.path, { force: true });
  };

  return {
    write(line) {
      const bytes = Buffer.byteLength(line);
      open();
      if (size > 0 && size + bytes > maxBytes) rotate();
      const target = open();
      writeSync(target, line);
      size += bytes;
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
