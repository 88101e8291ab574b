// `pnpm spec:validate [--spec-dir DIR] [--env-file FILE]` (see flow-spec.ts).
import { runValidateCli } from './flow-spec.js';

process.exitCode = runValidateCli(process.argv.slice(2));
