// keepalived: the priority lives in its config file (`priority N` inside vrrp_instance); a reload
// is SIGHUP to the pid in its pid file. Who holds the VIP is read from the interface itself.
import { readFile } from 'node:fs/promises';
import { UpgradeError } from '@upgrade/core';
import type { AgentContext } from '../context.js';
import { writeAtomic } from '../files.js';
import type { ResultOf, VrrpState } from '../protocol.js';

const PRIORITY_LINE = /^(\s*priority\s+)(\d+)(\s*(?:[#!].*)?)$/gm;

async function readKeepalivedConfig(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new UpgradeError(
      'CONFIG_INVALID',
      `cannot read keepalived config ${path}: ${(error as Error).message}`,
    );
  }
}

function priorities(text: string, path: string): number[] {
  const found = [...text.matchAll(PRIORITY_LINE)].map((m) => Number(m[2]));
  if (found.length === 0)
    throw new UpgradeError('CONFIG_INVALID', `keepalived config ${path} has no "priority N" line to change`);
  return found;
}

/** The live keepalived pid from its pid file, or null when it is not running (zombies count as gone). */
export async function keepalivedPid(pidFile: string): Promise<number | null> {
  let pid: number;
  try {
    pid = Number((await readFile(pidFile, 'utf8')).trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1) return null;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') ? null : pid;
  } catch {
    return null;
  }
}

export async function setPriority(
  ctx: AgentContext,
  args: { priority: number },
): Promise<ResultOf<'keepalived.set_priority'>> {
  const { configFile, pidFile } = ctx.config.keepalived;
  const text = await readKeepalivedConfig(configFile);
  const previous = priorities(text, configFile)[0] ?? 0;
  const updated = text.replace(
    PRIORITY_LINE,
    (_all, head: string, _n: string, tail: string) => `${head}${args.priority}${tail}`,
  );
  if (updated !== text) await writeAtomic(configFile, updated);
  const pid = await keepalivedPid(pidFile);
  if (pid === null)
    throw new UpgradeError(
      'UNAVAILABLE',
      `keepalived is not running (no live pid in ${pidFile}); priority ${args.priority} is written to ${configFile} and applies when it starts`,
    );
  process.kill(pid, 'SIGHUP');
  return { previous, current: args.priority };
}

export async function keepalivedStatus(ctx: AgentContext): Promise<ResultOf<'keepalived.status'>> {
  const { configFile, vip } = ctx.config.keepalived;
  const priority = priorities(await readKeepalivedConfig(configFile), configFile)[0] ?? 0;
  const { state, holdsVip } = await vrrpState(ctx);
  return { state, priority, holdsVip, vip };
}

/** MASTER when keepalived runs and the VIP is on the interface; FAULT when the interface cannot be read. */
export async function vrrpState(
  ctx: AgentContext,
): Promise<{ state: VrrpState; holdsVip: boolean; detail: string }> {
  const { pidFile, vip, interface: dev, ipCommand = ['ip'] } = ctx.config.keepalived;
  const running = (await keepalivedPid(pidFile)) !== null;
  const result = await ctx.run([...ipCommand, '-o', 'addr', 'show', 'dev', dev]);
  if (result.code !== 0)
    return { state: running ? 'FAULT' : 'STOPPED', holdsVip: false, detail: `interface ${dev} not readable` };
  const holdsVip = listsAddress(result.stdout, vip);
  if (!running)
    return {
      state: 'STOPPED',
      holdsVip,
      detail: holdsVip ? `keepalived stopped but ${vip} is still on ${dev}` : 'keepalived not running',
    };
  return holdsVip
    ? { state: 'MASTER', holdsVip, detail: `holds ${vip} on ${dev}` }
    : { state: 'BACKUP', holdsVip, detail: `${vip} not on ${dev}` };
}

/** True when `ip -o addr` output lists `address` (as `inet A/len` or `inet6 A/len`). */
export function listsAddress(output: string, address: string): boolean {
  const wanted = address.toLowerCase();
  return output.split('\n').some((line) => {
    const match = /\binet6?\s+([0-9a-fA-F:.]+)\//.exec(line);
    return match?.[1]?.toLowerCase() === wanted;
  });
}
