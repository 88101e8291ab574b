// systemctl as configured for this node (the host's, or the fake one in tests and the lab).
import { UpgradeError } from '@upgrade/core';
import type { AgentContext } from './context.js';
import { excerpt } from './exec.js';

/** `systemctl is-active` exits 3 for inactive, failed and unknown units. */
const NOT_ACTIVE = 3;

export async function systemctlChange(
  ctx: AgentContext,
  verb: 'start' | 'stop',
  unit: string,
): Promise<void> {
  const { command, env } = ctx.config.systemctl;
  const result = await ctx.run([command, verb, unit], { env });
  if (result.code !== 0)
    throw new UpgradeError(
      'DEPLOYMENT_FAILED',
      `systemctl ${verb} ${unit} failed (exit ${result.code}): ${excerpt(result)}; see journalctl -u ${unit} on the node`,
      { details: { unit, verb, exitCode: result.code } },
    );
}

export async function systemctlIsActive(ctx: AgentContext, unit: string): Promise<boolean> {
  const { command, env } = ctx.config.systemctl;
  const result = await ctx.run([command, 'is-active', unit], { env });
  if (result.code === 0) return result.stdout.trim() === 'active';
  if (result.code === NOT_ACTIVE) return false;
  throw new UpgradeError(
    'UNAVAILABLE',
    `systemctl is-active ${unit} failed (exit ${result.code}): ${excerpt(result)}`,
    { details: { unit, exitCode: result.code } },
  );
}
