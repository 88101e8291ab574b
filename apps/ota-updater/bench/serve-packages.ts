// The package server of the benches in a process of its own, so that sending a 1 GiB body costs
// the service nothing. Env: BENCH_PACKAGES (JSON `{path: {size, seed}}`), BENCH_FAULTS (JSON
// PackageFaults, e.g. a throttle). Prints one JSON line `{url, digests}` once the digests are
// computed, then serves until SIGTERM or until its stdin closes (the bench went away).
import {
  packageDigest,
  startPackageServer,
  type PackageDigest,
  type PackageFaults,
  type PackageSpec,
} from '../test/simulators/package-server.js';

const packages = JSON.parse(process.env.BENCH_PACKAGES ?? '{}') as Record<string, PackageSpec>;
const faults = JSON.parse(process.env.BENCH_FAULTS ?? '{}') as PackageFaults;
const digests: Record<string, PackageDigest> = {};
for (const [path, spec] of Object.entries(packages)) digests[path] = packageDigest(spec);
const server = await startPackageServer({ packages, faults });
process.stdout.write(`${JSON.stringify({ url: server.url, digests })}\n`);

const stop = (): void => {
  void server.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
