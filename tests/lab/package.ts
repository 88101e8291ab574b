// Signed upgrade packages for ha-orchestrator's trigger endpoint, as a release pipeline builds them:
// a ZIP with manifest.json, the jar and the schema scripts (apps/ha-orchestrator/src/package.ts),
// signed with ed25519 over the exact ZIP bytes. The ZIP is written here (stored entries, no
// compression) so the tests need no archive library.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

export interface SigningKeys {
  privateKey: KeyObject;
  /** SPKI PEM, for the orchestrator's SIGNING_PUBLIC_KEYS_DIR. */
  publicPem: string;
}

export function createSigningKeys(): SigningKeys {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export interface SchemaScript {
  path: string;
  sql: string;
  /** The script that undoes it (the package is refused without one). */
  rollback: { path: string; sql: string };
}

export interface PackageSpec {
  version: string;
  /** Jar contents (the lab's `standInJar(version, fault?)`). */
  jar: Buffer;
  schemaScripts?: SchemaScript[];
  minFromVersion?: string;
}

export interface SignedPackage {
  version: string;
  zip: Buffer;
  /** base64 ed25519 signature over `zip`. */
  signature: string;
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** Builds the package ZIP and signs it. */
export function buildSignedPackage(spec: PackageSpec, keys: SigningKeys): SignedPackage {
  const scripts = spec.schemaScripts ?? [];
  const manifest = {
    version: spec.version,
    jar: 'app.jar',
    jarSha256: sha256(spec.jar),
    schemaScripts: scripts.map((s) => ({
      path: s.path,
      sha256: sha256(s.sql),
      rollback: { path: s.rollback.path, sha256: sha256(s.rollback.sql) },
    })),
    ...(spec.minFromVersion === undefined ? {} : { minFromVersion: spec.minFromVersion }),
  };
  const zip = writeZip([
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest, null, 2)) },
    { name: 'app.jar', data: spec.jar },
    ...scripts.flatMap((s) => [
      { name: s.path, data: Buffer.from(s.sql) },
      { name: s.rollback.path, data: Buffer.from(s.rollback.sql) },
    ]),
  ]);
  return { version: spec.version, zip, signature: sign(null, zip, keys.privateKey).toString('base64') };
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC_TABLE[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** A ZIP of regular files (mode 0644, stored), as `zip -0` writes it. */
export function writeZip(files: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  // 2026-01-01 00:00 in DOS format: a fixed time keeps the bytes (and the signature) reproducible.
  const dosTime = 0;
  const dosDate = ((2026 - 1980) << 9) | (1 << 5) | 1;
  for (const file of files) {
    const name = Buffer.from(file.name, 'utf8');
    const crc = crc32(file.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(dosTime, 10);
    local.writeUInt16LE(dosDate, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(file.data.length, 18);
    local.writeUInt32LE(file.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, file.data);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(dosTime, 12);
    central.writeUInt16LE(dosDate, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(file.data.length, 20);
    central.writeUInt32LE(file.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(0, 30); // extra
    central.writeUInt16LE(0, 32); // comment
    central.writeUInt16LE(0, 34); // disk
    central.writeUInt16LE(0, 36); // internal attributes
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38); // regular file, rw-r--r--
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + file.data.length;
  }
  const centralSize = centrals.reduce((sum, b) => sum + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}
