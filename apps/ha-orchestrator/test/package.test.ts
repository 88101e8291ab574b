// The upload format on its own: manifest rules, version order, signing keys, unpack limits.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rejectionOf } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  compareVersions,
  decodeSignature,
  loadPublicKeys,
  parsePackageManifest,
  parsePublicKeys,
  toUpgradePackage,
  unpackUpgradePackage,
  verifyPackageSignature,
} from '../src/package.js';
import { buildPackage, sha256, signPackage, signingKeys } from './helpers.js';

const dirs: string[] = [];
const temp = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'ha-pkg-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const undo = { path: 'sql/1.rollback.sql', sha256: 'c'.repeat(64) };
const manifest = (over: Record<string, unknown> = {}) =>
  JSON.stringify({ version: '2.4.0', jar: 'app.jar', jarSha256: 'a'.repeat(64), schemaScripts: [], ...over });

describe('manifest.json', () => {
  it('accepts the documented format', () => {
    expect(
      parsePackageManifest(
        manifest({
          schemaScripts: [{ path: 'sql/1.sql', sha256: 'b'.repeat(64), rollback: undo }],
          minFromVersion: '2.3.0',
        }),
      ),
    ).toEqual({
      version: '2.4.0',
      jar: 'app.jar',
      jarSha256: 'a'.repeat(64),
      schemaScripts: [{ path: 'sql/1.sql', sha256: 'b'.repeat(64), rollback: undo }],
      minFromVersion: '2.3.0',
    });
  });

  it('refuses a schema script without its rollback script with ROLLBACK_SCRIPT_MISSING, naming the script', () => {
    const error = (() => {
      try {
        parsePackageManifest(manifest({ schemaScripts: [{ path: 'sql/1.sql', sha256: 'b'.repeat(64) }] }));
      } catch (e) {
        return e as { code: string; message: string; details: unknown };
      }
      throw new Error('accepted');
    })();
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.details).toEqual({ reason: 'ROLLBACK_SCRIPT_MISSING' });
    expect(error.message).toMatch(
      /^manifest\.json schemaScripts\[0\] \(sql\/1\.sql\) has no rollback script/,
    );
    // A package without a schema change needs none.
    expect(parsePackageManifest(manifest()).schemaScripts).toEqual([]);
  });

  it.each([
    ['not JSON', '{'],
    ['an array', '[]'],
    ['an unknown field', manifest({ healthUrl: 'x' })],
    ['a missing version', manifest({ version: undefined })],
    ['a version with spaces', manifest({ version: '2 4' })],
    ['an uppercase checksum', manifest({ jarSha256: 'A'.repeat(64) })],
    ['a jar that is not a .jar', manifest({ jar: 'app.war' })],
    ['an absolute jar path', manifest({ jar: '/opt/app.jar' })],
    [
      'a traversing script path',
      manifest({ schemaScripts: [{ path: '../x.sql', sha256: 'b'.repeat(64), rollback: undo }] }),
    ],
    [
      'a script that is not .sql',
      manifest({ schemaScripts: [{ path: 'x.sh', sha256: 'b'.repeat(64), rollback: undo }] }),
    ],
    [
      'a rollback script that is not .sql',
      manifest({
        schemaScripts: [{ path: 'x.sql', sha256: 'b'.repeat(64), rollback: { ...undo, path: 'x.sh' } }],
      }),
    ],
    ['schemaScripts not an array', manifest({ schemaScripts: 'x.sql' })],
    [
      'the same file twice',
      manifest({
        schemaScripts: [
          { path: 'a.sql', sha256: 'b'.repeat(64), rollback: undo },
          { path: 'a.sql', sha256: 'b'.repeat(64), rollback: { ...undo, path: 'b.sql' } },
        ],
      }),
    ],
  ])('refuses %s with MANIFEST_INVALID', (_what, text) => {
    expect(() => parsePackageManifest(text)).toThrow(
      expect.objectContaining({ details: { reason: 'MANIFEST_INVALID' } }),
    );
  });
});

describe('compareVersions', () => {
  it('orders numerically, segment by segment', () => {
    expect(compareVersions('2.10.0', '2.9.1')).toBe(1);
    expect(compareVersions('2.3', '2.3.0')).toBe(0);
    expect(compareVersions('1.0.0', '1.0.1')).toBe(-1);
  });
});

describe('signing keys and signatures', () => {
  it('loads ed25519 keys from a directory and a PEM list, and refuses other key types', async () => {
    const dir = temp();
    writeFileSync(join(dir, 'release.pem'), signingKeys().publicPem);
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const keys = await loadPublicKeys({ dir, pems: signingKeys().publicPem + signingKeys().publicPem });
    expect(keys).toHaveLength(3);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    expect(() => parsePublicKeys(rsa, 'x')).toThrow(/ed25519/);
    expect(() => parsePublicKeys('nothing here', 'x')).toThrow(/PEM/);
  });

  it('verifies the exact bytes only', async () => {
    const dir = temp();
    const { publicKey, privateKey } = signingKeys();
    const zip = await buildPackage();
    writeFileSync(join(dir, 'p.zip'), zip);
    await verifyPackageSignature(join(dir, 'p.zip'), decodeSignature(signPackage(zip, privateKey)), [
      publicKey,
    ]);
    const tampered = Buffer.from(zip);
    tampered.writeUInt8((tampered.at(-1) ?? 0) ^ 1, tampered.length - 1);
    writeFileSync(join(dir, 'p.zip'), tampered);
    const error = await rejectionOf(
      verifyPackageSignature(join(dir, 'p.zip'), decodeSignature(signPackage(zip, privateKey)), [publicKey]),
    );
    expect(error).toMatchObject({ code: 'SIGNATURE_INVALID', status: 403 });
    expect(() => decodeSignature(Buffer.alloc(32).toString('base64'))).toThrow(/64-byte/);
  });
});

describe('unpackUpgradePackage', () => {
  it('unpacks and describes the package for the flow', async () => {
    const dir = temp();
    const jar = Buffer.from('the jar');
    const zip = await buildPackage({ jar, scripts: [{ path: 'sql/001.sql', content: 'select 1;' }] });
    writeFileSync(join(dir, 'package.zip'), zip);
    const unpacked = await unpackUpgradePackage(join(dir, 'package.zip'), join(dir, 'files'));
    const pkg = toUpgradePackage(unpacked, sha256(zip), dir);
    expect(pkg).toEqual({
      version: '2.4.0',
      jarPath: join(dir, 'files', 'app.jar'),
      jarSha256: sha256(jar),
      schemaScripts: [
        {
          path: join(dir, 'files', 'sql', '001.sql'),
          sha256: sha256('select 1;'),
          rollback: {
            path: join(dir, 'files', 'sql', '001.rollback.sql'),
            sha256: sha256('-- undoes sql/001.sql\n'),
            // Kept in the task's journal too: undoing it must not depend on WORK_DIR.
            content: '-- undoes sql/001.sql\n',
          },
        },
      ],
      packageSha256: sha256(zip),
      workDir: dir,
    });
    expect(readdirSync(join(dir, 'files')).sort()).toEqual(['app.jar', 'manifest.json', 'sql']);
  });

  it('stops at the entry and total limits, before and while inflating', async () => {
    const dir = temp();
    const zip = await buildPackage({ jar: Buffer.alloc(200_000, 1) });
    writeFileSync(join(dir, 'package.zip'), zip);
    const entry = await rejectionOf(
      unpackUpgradePackage(join(dir, 'package.zip'), join(dir, 'a'), {
        maxEntries: 10,
        maxEntryBytes: 100_000,
        maxTotalBytes: 1e9,
      }),
    );
    expect(entry.details).toEqual({ reason: 'TOO_LARGE' });
    const count = await rejectionOf(
      unpackUpgradePackage(join(dir, 'package.zip'), join(dir, 'b'), {
        maxEntries: 2,
        maxEntryBytes: 1e9,
        maxTotalBytes: 1e9,
      }),
    );
    expect(count.details).toEqual({ reason: 'TOO_LARGE' });
  });
});
