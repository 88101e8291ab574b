// Who may call: sshd puts "client_ip client_port server_ip server_port" in SSH_CONNECTION. The
// caller's address must be in the config's allow-list; without SSH_CONNECTION (run on the node
// itself) only when the config allows local calls. The SSH key decides who logs in; this decides
// from where, so a leaked key alone is not enough.
import { BlockList, isIP } from 'node:net';
import { UpgradeError } from '@upgrade/core';
import type { AgentConfig } from './config.js';

/** Builds the allow-list; CONFIG_INVALID for an entry that is not an address or a CIDR block. */
export function buildAllowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefixText] = entry.split('/');
    const family = isIP(address);
    if (family === 0)
      throw new UpgradeError(
        'CONFIG_INVALID',
        `agent config: allowedCallers: "${entry}" is not an IP address`,
      );
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefixText === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const prefix = Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128))
      throw new UpgradeError(
        'CONFIG_INVALID',
        `agent config: allowedCallers: "${entry}" has a bad prefix length`,
      );
    list.addSubnet(address, prefix, type);
  }
  return list;
}

/** The caller's source address from SSH_CONNECTION, null when the variable is absent. */
export function callerAddress(environment: NodeJS.ProcessEnv): string | null {
  const value = environment.SSH_CONNECTION;
  if (value === undefined || value.trim() === '') return null;
  return value.trim().split(/\s+/)[0] ?? null;
}

/** Throws FORBIDDEN unless this caller may use the agent. */
export function checkCaller(config: AgentConfig, environment: NodeJS.ProcessEnv): void {
  const address = callerAddress(environment);
  if (address === null) {
    if (config.allowLocal === true) return;
    throw new UpgradeError(
      'FORBIDDEN',
      `local calls are not allowed on ${config.nodeId} (no SSH_CONNECTION); set allowLocal in the agent config`,
    );
  }
  const list = buildAllowList(config.allowedCallers);
  // sshd on a dual-stack socket reports IPv4 callers as ::ffff:a.b.c.d.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped?.[1] ?? address;
  const family = isIP(plain);
  if (family !== 0 && list.check(plain, family === 4 ? 'ipv4' : 'ipv6')) return;
  throw new UpgradeError('FORBIDDEN', `caller ${address} is not in the allow-list of ${config.nodeId}`, {
    details: { caller: address },
  });
}
