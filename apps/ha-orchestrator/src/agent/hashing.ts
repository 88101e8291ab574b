// MD5 and SHA-256 of a file in one streaming read: backups and jars can be large.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export interface FileDigests {
  sizeBytes: number;
  md5: string;
  sha256: string;
}

export async function hashFile(path: string): Promise<FileDigests> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  let sizeBytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    const buffer = chunk as Buffer;
    md5.update(buffer);
    sha256.update(buffer);
    sizeBytes += buffer.length;
  }
  return { sizeBytes, md5: md5.digest('hex'), sha256: sha256.digest('hex') };
}

export async function sha256File(path: string): Promise<string> {
  const sha256 = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    sha256.update(chunk as Buffer);
  return sha256.digest('hex');
}
