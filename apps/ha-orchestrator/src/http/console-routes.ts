// What the console needs besides the upgrade routes: the rules a package must meet, so the page
// can check a file and its signature in the browser before sending a byte (the server checks them
// again on upload; a signature covers the whole ZIP, so the server can only verify it once the
// upload has arrived).
import { createHash, type KeyObject } from 'node:crypto';
import { Type, errorResponses, type ServicePlugin } from '@upgrade/service';

export interface ConsoleRoutesDeps {
  packages: { keys: readonly KeyObject[]; maxPackageBytes: number };
}

export const PackagePolicyResponse = Type.Object({
  max_package_bytes: Type.Integer({ description: 'MAX_PACKAGE_BYTES: a larger upload is refused with 413' }),
  signing_keys: Type.Array(
    Type.Object({
      key_id: Type.String({ description: 'first 16 hex digits of the SHA-256 of the key (SPKI DER)' }),
      spki: Type.String({ description: 'the ed25519 public key, SPKI DER in base64 (public, not a secret)' }),
    }),
    { description: 'the keys a package signature may verify against' },
  ),
});

export const consoleRoutes: ServicePlugin<ConsoleRoutesDeps> = async (app, deps) => {
  const keys = deps.packages.keys.map((key) => {
    const der = key.export({ type: 'spki', format: 'der' });
    return {
      key_id: createHash('sha256').update(der).digest('hex').slice(0, 16),
      spki: der.toString('base64'),
    };
  });
  app.get(
    '/api/v1/upgrade/package-policy',
    {
      schema: {
        summary: 'The size limit and the signing public keys a package is checked against',
        description:
          'For clients that check a package before uploading it (the console verifies the signature in the ' +
          'browser). The trigger route checks everything again.',
        tags: ['upgrade'],
        response: { 200: PackagePolicyResponse, ...errorResponses(401, 403) },
      },
    },
    async () => ({ max_package_bytes: deps.packages.maxPackageBytes, signing_keys: keys }),
  );
};
