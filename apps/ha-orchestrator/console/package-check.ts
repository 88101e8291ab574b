// What the page can check about a package before sending it: that it is a ZIP within the size
// limit, that the signature is a base64 64-byte ed25519 signature, and, where the browser can
// (Web Crypto Ed25519 on a secure origin, such as 127.0.0.1 or https), that the signature verifies
// against one of the orchestrator's signing keys. The orchestrator checks all of it again.
import { formatBytes } from './format.js';
import type { PackagePolicy } from './types.js';

export interface Check {
  ok: boolean | null;
  text: string;
}

/** Above this the file is not read into the page to verify it (the server still does). */
const MAX_VERIFY_BYTES = 512 * 1024 * 1024;

export function decodeBase64(text: string): Uint8Array<ArrayBuffer> | null {
  const clean = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(clean)) return null;
  try {
    return Uint8Array.from(atob(clean), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

export async function checkPackage(
  file: File,
  signatureText: string,
  policy: PackagePolicy,
): Promise<Check[]> {
  const checks: Check[] = [];
  const sizeOk = file.size > 0 && file.size <= policy.max_package_bytes;
  checks.push({
    ok: sizeOk,
    text:
      file.size === 0
        ? 'The file is empty.'
        : `Size ${formatBytes(file.size)}${sizeOk ? '' : `, over the limit of ${formatBytes(policy.max_package_bytes)}`}.`,
  });
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const zip = head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
  checks.push({
    ok: zip,
    text: zip
      ? 'It is a ZIP file.'
      : 'It is not a ZIP file (an upgrade package is a ZIP with manifest.json).',
  });
  const signature = decodeBase64(signatureText);
  const sigOk = signature !== null && signature.length === 64;
  checks.push({
    ok: sigOk,
    text: sigOk
      ? 'The signature is a 64-byte ed25519 signature.'
      : 'The signature must be the base64 of a 64-byte ed25519 signature (the .sig file of the release).',
  });
  if (!sizeOk || !zip || !sigOk || signature === null) return checks;
  checks.push(await verifySignature(file, signature, policy));
  return checks;
}

async function verifySignature(
  file: File,
  signature: Uint8Array<ArrayBuffer>,
  policy: PackagePolicy,
): Promise<Check> {
  const later = (why: string): Check => ({
    ok: null,
    text: `Signature not verified in this browser (${why}); the orchestrator verifies it on upload.`,
  });
  if (policy.signing_keys.length === 0) return later('the orchestrator lists no signing key');
  if (!globalThis.isSecureContext || globalThis.crypto?.subtle === undefined)
    return later('this page is not on a secure origin');
  if (file.size > MAX_VERIFY_BYTES) return later('the file is too large to read here');
  const data = await file.arrayBuffer();
  try {
    for (const key of policy.signing_keys) {
      const der = decodeBase64(key.spki);
      if (der === null) continue;
      const publicKey = await crypto.subtle.importKey('spki', der, { name: 'Ed25519' }, false, ['verify']);
      if (await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, signature, data))
        return { ok: true, text: `The signature verifies with signing key ${key.key_id}.` };
    }
  } catch {
    return later('this browser has no Ed25519');
  }
  return {
    ok: false,
    text: `The signature does not verify against any of the orchestrator's ${policy.signing_keys.length} signing key(s): sign the exact ZIP you upload, with the release key.`,
  };
}
