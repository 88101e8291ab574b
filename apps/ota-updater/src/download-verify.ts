// The checks a finished download must pass, each with its own error code, and the signature
// scheme. Kept apart from the transfer so the rules read in one place.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { UpgradeError } from '@upgrade/core';
import type { DownloadRequest } from './ports.js';
import type { PartialDigests } from './download-partial.js';

const MD5_HEX = /^[0-9a-f]{32}$/i;
const SHA256_HEX = /^[0-9a-f]{64}$/i;
const ED25519_SIGNATURE_BYTES = 64;

/** Refuses a request the download could not check or would write outside its directory. */
export function checkDownloadRequest(request: DownloadRequest): void {
  const invalid = (field: string, why: string): UpgradeError =>
    new UpgradeError('VALIDATION_FAILED', `download request: ${field} ${why}`, { details: { field } });
  let url: URL;
  try {
    url = new URL(request.packageUrl);
  } catch {
    throw invalid('packageUrl', 'is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('packageUrl', 'must be http(s)');
  if (!Number.isSafeInteger(request.packageSize) || request.packageSize <= 0)
    throw invalid('packageSize', 'must be a positive integer number of bytes');
  if (!MD5_HEX.test(request.packageMd5)) throw invalid('packageMd5', 'must be 32 hex digits');
  if (request.packageSha256 !== undefined && !SHA256_HEX.test(request.packageSha256))
    throw invalid('packageSha256', 'must be 64 hex digits');
}

/** The configured public key, which must be ed25519 (PEM text or a KeyObject). */
export function loadPublicKey(key: string | KeyObject): KeyObject {
  let object: KeyObject;
  try {
    object = typeof key === 'string' ? createPublicKey(key) : key;
  } catch (error) {
    throw new UpgradeError('CONFIG_INVALID', 'the package signing public key is not a valid PEM key', {
      cause: error,
    });
  }
  if (object.type !== 'public' || object.asymmetricKeyType !== 'ed25519')
    throw new UpgradeError(
      'CONFIG_INVALID',
      `the package signing key must be an ed25519 public key, is ${object.asymmetricKeyType ?? object.type}`,
    );
  return object;
}

/** The request's signature bytes; a missing or malformed one fails before anything is downloaded. */
export function decodeSignature(request: DownloadRequest): Buffer {
  if (request.signature === undefined || request.signature === '')
    throw new UpgradeError(
      'SIGNATURE_INVALID',
      `package ${request.version} carries no signature, and this device accepts signed packages only`,
    );
  const bytes = Buffer.from(request.signature, 'base64');
  if (bytes.length !== ED25519_SIGNATURE_BYTES)
    throw new UpgradeError(
      'SIGNATURE_INVALID',
      `package ${request.version} signature is not a base64 ed25519 signature (${bytes.length} bytes, expected 64)`,
    );
  return bytes;
}

/**
 * Checks MD5, then SHA-256 when the request has one, then the signature when a key is configured.
 *
 * Signature scheme: ed25519 over the 32 raw bytes of the package's SHA-256 digest, i.e.
 * `crypto.sign(null, sha256(package), privateKey)`. Ed25519 cannot be verified incrementally, and
 * signing the whole package would mean holding it in memory; the digest is computed while
 * streaming anyway. Signing with OpenSSL 3 (`-rawin` needs a file, not a pipe):
 * `openssl dgst -sha256 -binary pkg.zip > pkg.sha256`, then
 * `openssl pkeyutl -sign -rawin -inkey key.pem -in pkg.sha256 | base64 -w0`
 */
export function verifyPackage(
  request: DownloadRequest,
  digests: PartialDigests,
  signing: { key: KeyObject; signature: Buffer } | null,
): void {
  const want = request.packageMd5.toLowerCase();
  if (digests.md5 !== want)
    throw new UpgradeError(
      'MD5_MISMATCH',
      `package ${request.version} MD5 is ${digests.md5}, expected ${want}: the file was corrupted in transit or package_md5 is wrong`,
      { details: { expected: want, actual: digests.md5 } },
    );
  const digest = digests.sha256;
  if ((request.packageSha256 !== undefined || signing !== null) && digest === null)
    throw new UpgradeError('INTERNAL', `package ${request.version}: SHA-256 was needed but not computed`);
  const sha256 = digest?.toString('hex') ?? '';
  if (request.packageSha256 !== undefined && digest !== null) {
    if (!Buffer.from(request.packageSha256, 'hex').equals(digest))
      throw new UpgradeError(
        'CHECKSUM_MISMATCH',
        `package ${request.version} SHA-256 is ${sha256}, expected ${request.packageSha256.toLowerCase()}`,
        { details: { expected: request.packageSha256.toLowerCase(), actual: sha256 } },
      );
  }
  if (signing !== null && digest !== null && !verify(null, digest, signing.key, signing.signature))
    throw new UpgradeError(
      'SIGNATURE_INVALID',
      `package ${request.version} signature does not match its content under the configured public key`,
    );
}
