// A complete, valid environment for the service, with the files it names written under `dir`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOKEN, signingKeys } from './helpers.js';

export function writeConfigEnv(dir: string, publicPem = signingKeys().publicPem): Record<string, string> {
  const keysDir = join(dir, 'signing-keys');
  mkdirSync(keysDir, { recursive: true });
  writeFileSync(join(keysDir, 'release.pem'), publicPem);
  writeFileSync(
    join(dir, 'id_ed25519'),
    '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n',
  );
  writeFileSync(
    join(dir, 'known_hosts'),
    '10.99.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests\n',
  );
  const node = (id: string, host: string) => ({
    id,
    host,
    port: 22,
    username: 'haupgrade',
    privateKeyFile: join(dir, 'id_ed25519'),
    agentCommand: 'sudo /usr/local/bin/ha-node-agent',
  });
  return {
    DATA_DIR: join(dir, 'data'),
    API_TOKENS: `ops:${TOKEN}`,
    HA_NODES: JSON.stringify([node('node-a', '10.99.0.11'), node('node-b', '10.99.0.12')]),
    SSH_KNOWN_HOSTS_FILE: join(dir, 'known_hosts'),
    VIP: '10.99.0.100',
    SIGNING_PUBLIC_KEYS_DIR: keysDir,
  };
}
