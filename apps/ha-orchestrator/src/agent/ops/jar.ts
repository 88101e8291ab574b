// jar.install: the staged jar, checked against its SHA-256, replaces the installed one atomically;
// the previous jar and version are kept beside it (`<jar>.previous`, `<versionFile>.previous`).
import { readFile } from 'node:fs/promises';
import type { AgentContext } from '../context.js';
import { copyAtomic, exists, writeAtomic } from '../files.js';
import type { ResultOf } from '../protocol.js';
import { verifiedStagedFile } from './staging.js';

export async function readVersion(path: string): Promise<string | null> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    return text === '' ? null : text;
  } catch {
    return null;
  }
}

export async function installJar(
  ctx: AgentContext,
  args: { stagedName: string; sha256: string; version: string },
): Promise<ResultOf<'jar.install'>> {
  const { path, versionFile } = ctx.config.jar;
  const staged = await verifiedStagedFile(ctx, args.stagedName, args.sha256);
  const previousVersion = await readVersion(versionFile);
  if (await exists(path)) await copyAtomic(path, `${path}.previous`);
  if (previousVersion !== null) await writeAtomic(`${versionFile}.previous`, `${previousVersion}\n`);
  await copyAtomic(staged, path);
  await writeAtomic(versionFile, `${args.version}\n`);
  return { version: args.version, path, previousVersion };
}
