// `pnpm spec:lint`: the two spec documents are well formed (see flow-spec.ts).
import { runLintCli } from './flow-spec.js';

process.exitCode = runLintCli(process.argv.slice(2));
