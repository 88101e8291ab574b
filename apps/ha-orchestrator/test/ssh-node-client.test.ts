// The SSH transport against a real OpenSSH server on loopback, running the real agent.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rejectionOf, startTcpProxy, useTestDatabase, type TcpProxy } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createSshNodeClient, type SshNodeOptions } from '../src/adapters/ssh-node-client.js';
import type { NodeClient } from '../src/ports.js';
import { agentArgv, createTestNode, type TestNode } from './support/agent-node.js';
import { removeTestSshd, sshdSkipReason, startTestSshd, type TestSshd } from './support/sshd.js';

const skipReason = sshdSkipReason();
if (skipReason !== null) console.warn(`ssh transport tests skipped: ${skipReason}`);

const testDb = useTestDatabase();
vi.setConfig({ testTimeout: 60_000 });

describe.skipIf(skipReason !== null)(
  `ssh transport against a real sshd${skipReason === null ? '' : ` (skipped: ${skipReason})`}`,
  () => {
    let sshd: TestSshd;
    let node: TestNode;
    let proxy: TcpProxy;
    const clients: NodeClient[] = [];

    beforeAll(async () => {
      sshd = await startTestSshd();
      node = await createTestNode(testDb.url);
      proxy = await startTcpProxy({ host: '127.0.0.1', port: sshd.port });
    });

    afterAll(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await proxy?.close();
      await removeTestSshd(sshd);
      await node?.cleanup();
    });

    const agentCommand = (config = node.configPath): string => [...agentArgv(), '--config', config].join(' ');

    function client(overrides: Partial<SshNodeOptions> = {}): NodeClient {
      const created = createSshNodeClient({
        id: 'node-a',
        host: '127.0.0.1',
        port: sshd.port,
        username: sshd.username,
        privateKey: sshd.privateKey,
        knownHosts: sshd.knownHosts,
        agentCommand: agentCommand(),
        connectTimeoutMs: 5_000,
        callTimeoutMs: 20_000,
        ...overrides,
      });
      clients.push(created);
      return created;
    }

    it('runs the agent over SSH and reuses one connection for several calls', async () => {
      const before = await sshd.acceptedConnections();
      const nodeA = client();
      const first = await nodeA.call('replication.status', {});
      expect(first).toMatchObject({
        role: 'primary',
        connected: false,
        standbys: 0,
        inSync: false,
        lagBytes: null,
        detail: 'no standby connected',
      });
      const health = await nodeA.call('health', {});
      expect(health.database).toMatchObject({ ok: true, role: 'primary' });
      expect(health.keepalived).toMatchObject({ state: 'MASTER', holdsVip: true });
      expect(await sshd.acceptedConnections()).toBe(before + 1);
      expect(nodeA.address).toBe(`127.0.0.1:${sshd.port}`);
    });

    it('maps agent errors to UpgradeErrors with the agent’s code', async () => {
      const error = await rejectionOf(client().call('service.stop', { service: 'nope' }));
      expect(error.code).toBe('VALIDATION_FAILED');
      expect(error.message).toMatch(/service "nope" is not configured on node-a/);
      expect(error.details).toMatchObject({ node: 'node-a', op: 'service.stop' });
    });

    it('uploads a 20 MiB file by SFTP into the staging dir and checks its SHA-256', async () => {
      const local = join(node.root, 'big.jar');
      const content = randomBytes(20 * 1024 * 1024);
      await writeFile(local, content);
      const expected = createHash('sha256').update(content).digest('hex');
      const nodeA = client();
      const { sha256 } = await nodeA.putFile(local, 'task1-app-2.0.0.jar');
      expect(sha256).toBe(expected);
      expect(await sha256Of(join(node.config.stagingDir, 'task1-app-2.0.0.jar'))).toBe(expected);
      // A second upload of the same name replaces the first.
      await writeFile(local, 'small');
      expect((await nodeA.putFile(local, 'task1-app-2.0.0.jar')).sha256).toBe(
        createHash('sha256').update('small').digest('hex'),
      );
      expect(await readFile(join(node.config.stagingDir, 'task1-app-2.0.0.jar'), 'utf8')).toBe('small');
      expect((await rejectionOf(nodeA.putFile(local, '../escape.jar'))).code).toBe('VALIDATION_FAILED');
      await nodeA.call('staging.clean', { prefix: 'task1-' });
    });

    it('refuses a server whose host key is not the pinned one', async () => {
      const error = await rejectionOf(client({ knownHosts: sshd.wrongKnownHosts }).call('health', {}));
      expect(error.code).toBe('UNREACHABLE');
      expect(error.message).toMatch(/host key mismatch/);
      const unlisted = await rejectionOf(client({ knownHosts: '' }).call('health', {}));
      expect(unlisted.message).toMatch(/host key mismatch/);
    });

    it('answers TIMEOUT when the agent does not answer in time', async () => {
      const hang = join(node.root, 'hang.sh');
      await writeFile(hang, '#!/bin/sh\nexec sleep 600\n', { mode: 0o755 });
      const hanging = await node.writeConfig({ systemctl: { command: hang } });
      const config = join(node.root, 'hanging-ssh.json');
      await writeFile(config, await readFile(hanging, 'utf8'));
      await node.writeConfig();
      const started = Date.now();
      const error = await rejectionOf(
        client({ agentCommand: agentCommand(config) }).call(
          'service.status',
          { service: 'app' },
          { timeoutMs: 2_500 },
        ),
      );
      expect(error.code).toBe('TIMEOUT');
      expect(error.retryable).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('is FORBIDDEN when the SSH caller address is outside the agent’s allow-list', async () => {
      const strict = join(node.root, 'strict.json');
      await writeFile(
        strict,
        JSON.stringify({ ...node.config, allowedCallers: ['10.99.0.0/24'], allowLocal: false }),
      );
      const error = await rejectionOf(client({ agentCommand: agentCommand(strict) }).call('health', {}));
      expect(error.code).toBe('FORBIDDEN');
      expect(error.message).toBe('caller 127.0.0.1 is not in the allow-list of node-a');
    });

    it('reconnects once when the reused connection was dropped', async () => {
      const nodeA = client({ port: proxy.port, knownHosts: sshd.knownHostsFor(proxy.port) });
      await nodeA.call('rsync.status', {});
      const before = await sshd.acceptedConnections();
      proxy.cut();
      proxy.restore();
      expect(await nodeA.call('rsync.status', {})).toMatchObject({ lastResult: null });
      expect(await sshd.acceptedConnections()).toBe(before + 1);

      proxy.cut();
      const started = Date.now();
      const down = await rejectionOf(nodeA.call('rsync.status', {}));
      expect(down.code).toBe('UNREACHABLE');
      expect(down.retryable).toBe(true);
      expect(Date.now() - started).toBeLessThan(3_000);
      proxy.restore();
    });

    it('is UNREACHABLE quickly when sshd is stopped', async () => {
      await sshd.stop();
      const started = Date.now();
      const error = await rejectionOf(client().call('health', {}));
      expect(error.code).toBe('UNREACHABLE');
      expect(error.message).toMatch(/cannot connect: ECONNREFUSED/);
      expect(Date.now() - started).toBeLessThan(2_000);
    });
  },
);

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
