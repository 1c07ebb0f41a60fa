// The report states only what its samples support: bimodal figures show their modes, and a "higher"/"lower"
// against an anchor needs samples that do not overlap. Judged on the committed run (bench/results/latest.json).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { markdown } from '../../bench/report.js';
import type { BenchResults } from '../../bench/run.js';

const root = path.resolve(import.meta.dirname, '../..');
const run = JSON.parse(fs.readFileSync(path.join(root, 'bench/results/latest.json'), 'utf8')) as BenchResults;

describe('bench report (bench/report.ts)', () => {
  const md = markdown(run);
  const row = (size: string, dut: string) => md.split('\n').find((l) => l.startsWith(`| ${size} | ${dut} |`)) ?? '';

  it('shows both modes of a bimodal figure instead of one median across them', () => {
    // vhost-switch at 64 B with testpmd: 3.08, 3.20, 3.26, 3.64 and one 5.86.
    expect(row('64 B', 'vhost-switch')).toContain('3.229 (3.081–3.643) ×4 or 5.863 ×1');
  });

  it('calls every comparison level where the samples overlap', () => {
    const verdictRow = (size: string, gen: string) => md.split('\n').find((l) => l.startsWith(`| ${size} | ${gen} |`)) ?? '';
    // 512 B, testpmd generator: ours 2.36–3.17, OVS 1.44–2.98, testpmd 1.95–3.80: a lead at the medians, not in the samples.
    expect(verdictRow('512 B', 'testpmd virtio-user')).toMatch(/^\| 512 B \| testpmd virtio-user \| level \(.*\) \| level \(.*\) \|$/);
  });

  it('calls higher only where every sample is above every sample of the anchor', () => {
    const r = structuredClone(run);
    const ours = r.throughput.find((t) => t.dut === 'vhost-switch' && t.gen === 'testpmd' && t.size === '1518')!;
    const ovs = r.throughput.find((t) => t.dut === 'ovs' && t.gen === 'testpmd' && t.size === '1518')!;
    ours.mpps = { median: 3.0, min: 2.95, max: 3.05, n: 5 };
    ovs.mpps = { median: 1.3, min: 1.14, max: 2.29, n: 5 };
    const line = markdown(r).split('\n').find((l) => l.startsWith('| 1518 B | testpmd virtio-user |'))!;
    expect(line).toContain('| higher (2.31× at the medians) |');
    ovs.mpps = { median: 1.3, min: 1.14, max: 2.96, n: 5 };
    expect(markdown(r).split('\n').find((l) => l.startsWith('| 1518 B | testpmd virtio-user |'))).toContain('| level (2.31× at the medians) |');
  });
});
