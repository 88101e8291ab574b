import { UpgradeError } from '@upgrade/core';
import type { Static, TObject, TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { coerceEnvValue } from './config-coerce.js';
import { describeMismatch, isSecretName } from './config-messages.js';

/** One variable that is missing or wrong, with a message safe to print (secrets never echoed). */
export interface ConfigIssue {
  variable: string;
  message: string;
}

/**
 * The configuration could not be loaded. `message` is the whole multi-line explanation an operator
 * needs, naming every bad variable at once, so a deploy is fixed in one round trip, not one per typo.
 */
export class ConfigError extends UpgradeError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map((i) => `  ${i.variable}: ${i.message}`);
    super('CONFIG_INVALID', `Invalid configuration:\n${lines.join('\n')}`, {
      details: { issues: issues.map((i) => ({ ...i })) },
    });
    this.issues = issues;
  }
}

/** True for the error `loadConfig` throws (also across duplicated copies of this package). */
export function isConfigError(error: unknown): error is UpgradeError {
  return error instanceof UpgradeError && error.code === 'CONFIG_INVALID';
}

/**
 * Reads and validates env variables against a typebox object schema: strings become numbers,
 * booleans (`true/false/1/0/yes/no/on/off`) and JSON values (objects, arrays; arrays of scalars also
 * as `a,b,c`), defaults fill unset variables, an empty value counts as unset. Throws a `ConfigError`
 * naming every bad variable; values of variables named like secrets are never echoed.
 *
 * @example const config = loadConfig(Type.Object({ PORT: Type.Integer({ default: 3000 }) }))
 */
export function loadConfig<T extends TObject>(
  schema: T,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Static<T> {
  const required = new Set(schema.required as readonly string[] | undefined);
  const properties = schema.properties as Readonly<Record<string, TSchema>>;
  const config: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  for (const [name, property] of Object.entries(properties)) {
    const raw = env[name];
    if (raw === undefined || raw === '') {
      const fallback = defaultOf(property);
      if (fallback !== undefined) config[name] = structuredClone(fallback);
      else if (required.has(name)) issues.push({ variable: name, message: 'is required but not set' });
      continue;
    }
    const secret = isSecretName(name);
    const coerced = coerceEnvValue(property, raw);
    if (!coerced.ok) {
      const detail = coerced.detail === undefined || secret ? '' : ` (${coerced.detail})`;
      issues.push({ variable: name, message: `${coerced.reason}${detail}` });
      continue;
    }
    if (!Value.Check(property, coerced.value)) {
      issues.push({ variable: name, message: describeMismatch(property, coerced.value, raw, secret) });
      continue;
    }
    config[name] = coerced.value;
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return config as Static<T>;
}

function defaultOf(schema: TSchema): unknown {
  return (schema as { default?: unknown }).default;
}
