// service.start / stop / status: the caller names a service from the config, never a unit.
import { UpgradeError } from '@upgrade/core';
import type { ServiceConfig } from '../config.js';
import type { AgentContext } from '../context.js';
import type { ResultOf } from '../protocol.js';
import { systemctlChange, systemctlIsActive } from '../systemctl.js';
import { fetchHealth } from './http-health.js';

export function findService(ctx: AgentContext, name: string): ServiceConfig {
  const service = ctx.config.services.find((s) => s.name === name);
  if (service === undefined)
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `service "${name}" is not configured on ${ctx.config.nodeId}; known: ${ctx.config.services.map((s) => s.name).join(', ') || 'none'}`,
      { details: { field: 'service' } },
    );
  return service;
}

export async function stopService(
  ctx: AgentContext,
  args: { service: string },
): Promise<ResultOf<'service.stop'>> {
  const service = findService(ctx, args.service);
  await systemctlChange(ctx, 'stop', service.unit);
  return { service: service.name, active: await systemctlIsActive(ctx, service.unit) };
}

export async function startService(
  ctx: AgentContext,
  args: { service: string },
): Promise<ResultOf<'service.start'>> {
  const service = findService(ctx, args.service);
  await systemctlChange(ctx, 'start', service.unit);
  return { service: service.name, active: await systemctlIsActive(ctx, service.unit) };
}

export async function serviceStatus(
  ctx: AgentContext,
  args: { service: string },
): Promise<ResultOf<'service.status'>> {
  const service = findService(ctx, args.service);
  const active = await systemctlIsActive(ctx, service.unit);
  let version: string | null = null;
  if (active && service.healthUrl !== undefined) {
    const health = await fetchHealth(service.healthUrl, Math.min(5_000, ctx.remaining()), ctx.signal);
    version = health.version;
  }
  return { service: service.name, active, version };
}
