// Production runs PostgreSQL 14 while tests run on a newer server, so a feature added after 14
// would pass here and fail there. The migrations and the stores' SQL are checked for the ones
// docs/visiona-api/database.md lists.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const AFTER_14: [RegExp, string][] = [
  [/\bMERGE\s+INTO\b/i, 'MERGE (15)'],
  [/\bNULLS\s+NOT\s+DISTINCT\b|\bnullsNotDistinct\s*\(/i, 'UNIQUE NULLS NOT DISTINCT (15)'],
  [/\bregexp_(count|like|substr|instr)\s*\(/i, 'regexp_count/like/substr/instr (15)'],
  [/\bsecurity_invoker\b/i, 'security_invoker views (15)'],
  [/\bany_value\s*\(/i, 'any_value (16)'],
  [/\bJSON_(ARRAY|OBJECT|ARRAYAGG|OBJECTAGG|TABLE|QUERY|VALUE|EXISTS)\s*\(/, 'SQL/JSON functions (16, 17)'],
  [/\bIS\s+(NOT\s+)?JSON\b/i, 'IS JSON (16)'],
];

function filesIn(folder: string, extension: string): { name: string; text: string }[] {
  const url = new URL(`../${folder}/`, import.meta.url);
  return readdirSync(url)
    .filter((name) => name.endsWith(extension))
    .map((name) => ({ name: `${folder}/${name}`, text: readFileSync(new URL(name, url), 'utf8') }));
}

describe('PostgreSQL 14', () => {
  it('the migrations and the stores use nothing newer than PostgreSQL 14', () => {
    const sources = [
      ...filesIn('drizzle', '.sql'),
      ...filesIn('src/stores', '.ts'),
      ...filesIn('src/db', '.ts'),
    ];
    expect(sources.map((s) => s.name)).toContain('drizzle/0000_init.sql');
    const found = sources.flatMap(({ name, text }) =>
      AFTER_14.filter(([pattern]) => pattern.test(text)).map(([, feature]) => `${name}: ${feature}`),
    );
    expect(found).toEqual([]);
  });
});
