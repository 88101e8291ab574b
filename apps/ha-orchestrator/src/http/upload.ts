// Receives the multipart upload of POST /api/v1/upgrade/trigger: the `package` file is streamed to
// disk (never held in memory) while its SHA-256 is computed; `signature` is a small text field.
// The two may come in either order.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UpgradeError } from '@upgrade/core';
import type { Multipart } from '@fastify/multipart';
import { packageError } from '../package.js';

export interface ReceivedUpload {
  packagePath: string;
  packageSha256: string;
  sizeBytes: number;
  signature: string;
}

/** The part of a fastify request (with @fastify/multipart registered) an upload needs. */
export interface UploadRequest {
  isMultipart(): boolean;
  parts(options?: {
    limits?: { fileSize?: number; files?: number; fields?: number; fieldSize?: number };
  }): AsyncIterableIterator<Multipart>;
}

const PACKAGE_FIELD = 'package';
const SIGNATURE_FIELD = 'signature';

/** Stores the upload as `<dir>/package.zip`; the caller owns `dir` and removes it on failure. */
export async function receiveUpload(
  request: UploadRequest,
  dir: string,
  maxPackageBytes: number,
): Promise<ReceivedUpload> {
  if (!request.isMultipart())
    throw packageError(
      'NOT_MULTIPART',
      'send the package as multipart/form-data with the fields "package" (file) and "signature"',
    );
  const packagePath = join(dir, 'package.zip');
  let received: { sha256: string; size: number } | null = null;
  let signature: string | null = null;
  const parts = request.parts({
    limits: { fileSize: maxPackageBytes, files: 1, fields: 4, fieldSize: 4096 },
  });
  for await (const part of parts) {
    if (part.type === 'file') {
      if (part.fieldname !== PACKAGE_FIELD) {
        part.file.resume();
        throw packageError(
          'UNEXPECTED_FIELD',
          `unexpected file field "${part.fieldname}"; send the file as "package"`,
        );
      }
      const hash = createHash('sha256');
      let size = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _encoding, callback: TransformCallback) {
          hash.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(part.file, tap, createWriteStream(packagePath, { flags: 'wx', mode: 0o600 }));
      if (part.file.truncated) throw tooLarge(maxPackageBytes);
      received = { sha256: hash.digest('hex'), size };
    } else if (part.fieldname === SIGNATURE_FIELD) {
      signature = typeof part.value === 'string' ? part.value : String(part.value);
    } else {
      throw packageError(
        'UNEXPECTED_FIELD',
        `unexpected field "${part.fieldname}"; send only "package" and "signature"`,
      );
    }
  }
  if (received === null) throw packageError('PACKAGE_MISSING', 'the "package" file field is missing');
  if (received.size === 0) throw packageError('NOT_A_ZIP', 'the uploaded package is empty');
  if (signature === null || signature.trim() === '')
    throw packageError(
      'SIGNATURE_MISSING',
      'the "signature" field is missing: send the base64 ed25519 signature',
    );
  return { packagePath, packageSha256: received.sha256, sizeBytes: received.size, signature };
}

function tooLarge(limit: number): UpgradeError {
  return new UpgradeError('VALIDATION_FAILED', `the package is larger than the limit of ${limit} bytes`, {
    status: 413,
    details: { reason: 'TOO_LARGE', limitBytes: limit },
  });
}
