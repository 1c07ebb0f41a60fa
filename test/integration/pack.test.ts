// The package as an operator installs it: `npm pack` gives a tarball with the built JavaScript, the addon's
// sources and the docs (no tests, fuzzers or benchmarks), and `npm install -g` of that tarball into an empty
// prefix builds the addon and puts a working `vhost-switch` on that prefix's PATH.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, repoRoot, trackChild, waitUntil } from '../../harness/env.js';

const T = { timeout: 600_000 };
const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
let daemon: ReturnType<typeof spawn> | undefined;
afterAll(() => void daemon?.kill('SIGTERM'));

describe('npm pack and install', T, () => {
  it('the packed tarball installs into an empty prefix; vhost-switch --version, doctor and run work from it', async () => {
    const dir = makeRunDir('pack');
    const npm = (...args: string[]) => execFileSync('npm', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 540_000 });
    // --ignore-scripts: dist/ is already built (npm test compiles first), and a prepack rebuilding it here would
    // rewrite files that daemons of other tests are loading.
    const packed = JSON.parse(npm('pack', repoRoot, '--pack-destination', dir, '--json', '--ignore-scripts')) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['bin/vhost-switch.js', 'dist/src/cli/main.js', 'binding.gyp', 'native/switch/switch.cc', 'docs/openapi.yaml', 'systemd/vhost-switch.service']));
    expect(files.filter((f) => /^(test|fuzz|bench|dist\/test|dist\/bench|build)\//.test(f) || f.endsWith('.map'))).toEqual([]);

    const prefix = path.join(dir, 'prefix');
    npm('install', '-g', '--prefix', prefix, path.join(dir, packed[0]!.filename));
    const bin = path.join(prefix, 'bin', 'vhost-switch');
    expect(execFileSync(bin, ['--version'], { encoding: 'utf8' })).toBe(`vhost-switch ${version}\n`);
    const doctor = JSON.parse(execFileSync(bin, ['doctor', '--json'], { encoding: 'utf8' }).toString()) as { checks: Array<{ name: string }> };
    expect(doctor.checks.map((c) => c.name)).toContain('qemu');

    // The installed daemon runs its embedded default config on the addon the install built.
    const runDir = path.join(dir, 'run');
    daemon = spawn(bin, ['run', '--run-dir', runDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(daemon, 'installed vhost-switch');
    const list = await waitUntil(() => {
      try {
        return execFileSync(bin, ['--run-dir', runDir, 'port', 'list', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        return undefined;
      }
    }, 20_000, 'the installed daemon');
    expect((JSON.parse(list) as Array<{ name: string }>).map((p) => p.name)).toEqual(['vhu0', 'vhu1']);
    daemon.kill('SIGTERM');
  });
});
