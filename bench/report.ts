// Results → bench/results/latest.{json,md,svg}. The Markdown is meant to be pasted into the README as is; the SVG is
// a hand-written grouped bar chart (no dependencies): Mpps per frame size, one bar per DUT and generator, with the
// min–max of the samples as whiskers.
import fs from 'node:fs';
import path from 'node:path';
import type { BenchResults, ThroughputResult } from './run.js';
import type { Spread } from './lib/util.js';
import { compare, describeModes, modes } from './lib/stats.js';
import type { DutName, GenName } from './types.js';

const DUT_LABEL: Record<DutName, string> = { 'vhost-switch': 'vhost-switch', testpmd: 'testpmd (raw DPDK vhost)', ovs: 'OVS-DPDK' };
const GEN_LABEL: Record<GenName, string> = { testpmd: 'testpmd virtio-user', gen: 'our generator' };
const SIZE_LABEL = (s: string) => (s === 'imix' ? 'IMIX' : `${s} B`);

function fmt(s: Spread | undefined, digits: number, scale = 1): string {
  if (!s) return 'n/a';
  const v = (x: number) => (x * scale).toFixed(digits);
  return s.n > 1 ? `${v(s.median)} (${v(s.min)}–${v(s.max)})` : v(s.median);
}

export function markdown(r: BenchResults): string {
  const m = r.machine;
  const o = r.options;
  const lines: string[] = [];
  const refGen = o.generators[0];
  lines.push(`### Benchmark: vhost-switch vs. raw DPDK vhost and OVS-DPDK`);
  lines.push('');
  lines.push(
    `Machine: ${m.cpuModel}, ${m.cpus} CPUs, ${m.memGiB} GiB, kernel ${m.kernel}, ${m.os}; DPDK ${m.dpdk}; OVS ${m.ovs}; Node ${m.node}. ` +
      `Run ${m.date.slice(0, 16).replace('T', ' ')} UTC, ${Math.round(r.elapsedS / 60)} min (load average ${m.loadAvg.join(' / ')} at the start` +
      `${r.loadAvgEnd ? `, ${r.loadAvgEnd.join(' / ')} at the end` : ''}; anything above ~0.1 means other work shared the two CPUs).`,
  );
  lines.push('');
  lines.push(
    `Topology: generator on CPU ${o.genCpu} with two virtio ports in an io-forwarding loop (primed like testpmd's ` +
      `\`start tx_first\`), DUT on CPU ${o.dutCpu} with two vhost-user ports. ${o.samples} sample(s) per figure, ` +
      `${o.durationS} s windows after ${o.warmupS} s of warm-up; DUTs alternate within each sample. ` +
      (o.samples > 1 ? 'Cells show the median (min–max).' : 'One sample: no spread.') +
      (o.inOrder === false ? ' The testpmd generator ran with in_order=0 (no VIRTIO_F_IN_ORDER with any DUT).' : '') +
      (o.packed ? ' Packed virtqueues (VIRTIO_F_RING_PACKED) on every port.' : ''),
  );
  if (Object.keys(r.versions).length) {
    lines.push('');
    lines.push(`DUTs: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join('; ')}.`);
  }
  lines.push('');
  const gens = o.generators;
  const head = ['Size', 'DUT', ...gens.map((g) => `Mpps (${GEN_LABEL[g]})`), ...gens.map((g) => `Gbit/s (${GEN_LABEL[g]})`), `DUT cycles/pkt${gens.length > 1 ? ` (${refGen})` : ''}`, 'DUT busy', 'DUT frames/pass'];
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`|${head.map(() => '---').join('|')}|`);
  for (const size of o.sizes) {
    for (const dut of o.duts) {
      const cell = (g: GenName) => r.throughput.find((t) => t.dut === dut && t.gen === g && t.size === size);
      const ref = cell(refGen!) ?? gens.map(cell).find(Boolean);
      lines.push(
        `| ${SIZE_LABEL(size)} | ${DUT_LABEL[dut]} | ${gens.map((g) => mppsCell(cell(g))).join(' | ')} | ${gens.map((g) => fmt(cell(g)?.gbps, 2)).join(' | ')} | ${fmt(ref?.cyclesPerPacket, 0)} | ${fmt(ref?.busy, 0, 100)}${ref?.busy ? '%' : ''} | ${fmt(ref?.framesPerPass, 1)} |`,
      );
    }
  }
  lines.push('');
  lines.push(
    'Mpps and Gbit/s: frames received by the generator on both ports (the sum of both directions through the DUT); ' +
      'Gbit/s counts frame bytes without FCS, preamble and gap. DUT cycles/pkt: the DUT\'s own busy cycles per packet ' +
      '(vhost-switch: poll-thread counters; OVS-DPDK: `pmd-stats-show` processing cycles; testpmd reports none). ' +
      'DUT busy: share of the DUT poll thread\'s cycles spent on packets. DUT frames/pass: the mean burst vhost-switch found ' +
      'per busy poll pass (both ports).',
  );
  if (r.c2c?.length) {
    lines.push('');
    lines.push(`Core-to-core cache-line round trip between CPU ${o.genCpu} and CPU ${o.dutCpu}, measured with both idle before each DUT ` +
      `instance (bench/native/c2c.cc; on a VM it depends on where the host runs the two vCPUs): ` +
      `${describeModes(r.c2c.map((x) => x.ns), 0)} ns over ${r.c2c.length} probes. Each throughput sample keeps the probe before it (c2cNs in latest.json).`);
  }
  lines.push('', ...verdicts(r));
  lines.push(...latencyTable(r));
  if (r.idle.length) {
    lines.push('');
    lines.push('| DUT | CPU use when idle (two ports attached, no traffic; a busy-polling DUT shows less than 100% only when other work takes its CPU) |');
    lines.push('|---|---|');
    for (const i of r.idle) lines.push(`| ${DUT_LABEL[i.dut]} | ${fmt(i.cpu, 1, 100)}% of a core |`);
  }
  if (r.scale.length) {
    lines.push('');
    lines.push('| vhost-switch ports attached (traffic on two, 64 B) | ' + gens.map((g) => `Mpps (${GEN_LABEL[g]}) | cycles/pkt`).join(' | ') + ' |');
    lines.push('|---|' + gens.map(() => '---|---').join('|') + '|');
    for (const n of [...new Set(r.scale.map((s) => s.ports))].sort((a, b) => a - b)) {
      const cells = gens.map((g) => {
        const e = r.scale.find((s) => s.ports === n && s.gen === g);
        return `${fmt(e?.mpps, 3)} | ${fmt(e?.cyclesPerPacket, 0)}`;
      });
      lines.push(`| ${n} | ${cells.join(' | ')} |`);
    }
  }
  if (r.fdb) {
    const f = r.fdb;
    const c = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(0));
    lines.push('');
    lines.push(`FDB with ${f.learned.toLocaleString('en')} learned MACs (native switch, fdbSizeLog2 21, one poll thread on CPU ${o.dutCpu}):`);
    lines.push('');
    lines.push('| Phase | Mpps | cycles/pkt |');
    lines.push('|---|---|---|');
    lines.push(`| io loop, 3 MACs in the table | ${f.baseline.mpps.toFixed(3)} | ${c(f.baseline.cyclesPerPacket)} |`);
    lines.push(`| learning ${f.macs.toLocaleString('en')} new MACs (${f.learnSeconds.toFixed(2)} s) | ${f.learnMpps.toFixed(3)} | ${c(f.learnCyclesPerPacket)} |`);
    lines.push(`| io loop, table full | ${f.full.mpps.toFixed(3)} | ${c(f.full.cyclesPerPacket)} |`);
    lines.push(`| one learned destination, JS sender (control) | ${f.randomControl.mpps.toFixed(3)} | ${c(f.randomControl.cyclesPerPacket)} |`);
    lines.push(`| random destination among all learned, JS sender | ${f.random.mpps.toFixed(3)} | ${c(f.random.cyclesPerPacket)} |`);
  }
  if (r.nic?.figures.length) lines.push('', ...nicTable(r));
  if (r.errors.length) {
    lines.push('');
    lines.push('Failures in this run:');
    lines.push('');
    for (const e of r.errors) lines.push(`- ${e.what}: ${e.message.replace(/\|/g, '\\|')}`);
  }
  lines.push('');
  return lines.join('\n');
}

/** Mpps as median (min–max), or each mode with its count when the samples fell into more than one. */
function mppsCell(t: ThroughputResult | undefined): string {
  if (!t?.mpps) return 'n/a';
  return modes(t.samples.map((x) => x.mpps)).length > 1 ? describeModes(t.samples.map((x) => x.mpps), 3) : fmt(t.mpps, 3);
}

/** vhost-switch against each anchor, per size and generator: higher or lower only where the samples do not overlap. */
function verdicts(r: BenchResults): string[] {
  const o = r.options;
  const anchors = o.duts.filter((d) => d !== 'vhost-switch');
  if (!o.duts.includes('vhost-switch') || !anchors.length) return [];
  const out = [
    `vhost-switch's Mpps against each anchor in this run: "higher" or "lower" only where every sample of one is above every ` +
      `sample of the other (at least 3 each), otherwise "level"; a figure whose samples fell into two modes is level with ` +
      `whatever its modes straddle.`,
    '',
    `| Size | Generator | ${anchors.map((a) => `vs ${DUT_LABEL[a]}`).join(' | ')} |`,
    `|---|---|${anchors.map(() => '---').join('|')}|`,
  ];
  const get = (d: DutName, g: GenName, size: string) => r.throughput.find((t) => t.dut === d && t.gen === g && t.size === size)?.mpps;
  for (const size of o.sizes)
    for (const g of o.generators) {
      const us = get('vhost-switch', g, size);
      const cells = anchors.map((a) => {
        const them = get(a, g, size);
        if (!us || !them) return 'n/a';
        return `${compare(us, them)} (${(us.median / them.median).toFixed(2)}× at the medians)`;
      });
      out.push(`| ${SIZE_LABEL(size)} | ${GEN_LABEL[g]} | ${cells.join(' | ')} |`);
    }
  return out;
}

/** Latency at equal offered load: every DUT at the same rates, with loss, p50/p99/p99.9 and the lowest p99 where it holds. */
function latencyTable(r: BenchResults): string[] {
  const o = r.options;
  const rows = r.latency.filter((l) => typeof l.ratePps === 'number');
  if (!rows.length) return [];
  const out = [
    '',
    `Latency at equal load: our generator sends on one port at each offered rate, the same for every DUT, and receives ` +
      `on the other (TSC stamps; histogram with 8 buckets per octave). Cells: p50 / p99 / p99.9 µs, loss. "Lowest p99" ` +
      `names a DUT only where every one of its p99 samples is below every sample of each other DUT.`,
    '',
    `| Size | Offered Mpps | ${o.duts.map((d) => DUT_LABEL[d]).join(' | ')} | Lowest p99 |`,
    `|---|---|${o.duts.map(() => '---').join('|')}|---|`,
  ];
  for (const size of o.sizes) {
    const rates = [...new Set(rows.filter((l) => l.size === size).map((l) => l.ratePps))].sort((a, b) => a - b);
    for (const rate of rates) {
      const get = (d: DutName) => rows.find((l) => l.dut === d && l.size === size && l.ratePps === rate);
      const cells = o.duts.map((d) => {
        const l = get(d);
        if (!l?.p99Us) return 'n/a';
        return `${fmt(l.p50Us, 1)} / ${fmt(l.p99Us, 1)} / ${fmt(l.p999Us, 1)}, ${fmt(l.loss, 2, 100)}%`;
      });
      const lowest = o.duts.find((d) => o.duts.every((x) => x === d || compare(get(d)?.p99Us, get(x)?.p99Us) === 'lower'));
      out.push(`| ${SIZE_LABEL(size)} | ${(rate / 1e6).toFixed(3)} | ${cells.join(' | ')} | ${lowest ? DUT_LABEL[lowest] : 'none clear'} |`);
    }
  }
  return out;
}

/** NIC ports (bench/nic.ts): a row per path, a column pair per direction, per size. */
function nicTable(r: BenchResults): string[] {
  const nic = r.nic!;
  const o = r.options;
  const out: string[] = [];
  out.push(`NIC ports: guest ↔ veth through a \`nic\` port, beside the kernel's own bridge between two veths with the same sender ` +
    `(${nic.sender}; switch on CPU ${o.dutCpu}; bench/nic.ts):`);
  out.push('');
  out.push('| Size | Path | wire → guest Mpps | guest → wire Mpps | Gbit/s (wire → guest / guest → wire) | switch cycles/pkt (wire → guest / guest → wire) |');
  out.push('|---|---|---|---|---|---|');
  const get = (p: string, d: string, size: string) => nic.figures.find((f) => f.path === p && f.direction === d && f.size === size);
  for (const size of o.nicSizes) {
    const k = get('kernel', 'wire-to-wire', size);
    out.push(`| ${SIZE_LABEL(size)} | kernel bridge, veth → veth | ${fmt(k?.mpps, 3)} (veth → veth) | | ${fmt(k?.gbps, 2)} | |`);
    for (const p of ['af_xdp', 'af_packet']) {
      const a = get(p, 'wire-to-guest', size), b = get(p, 'guest-to-wire', size);
      out.push(`| ${SIZE_LABEL(size)} | vhost-switch, ${p === 'af_xdp' ? 'AF_XDP' : 'AF_PACKET'} | ${fmt(a?.mpps, 3)} | ${fmt(b?.mpps, 3)} | ` +
        `${fmt(a?.gbps, 2)} / ${fmt(b?.gbps, 2)} | ${fmt(a?.cyclesPerPacket, 0)} / ${fmt(b?.cyclesPerPacket, 0)} |`);
    }
  }
  out.push('');
  out.push('wire → guest: testpmd sends into the veth; the rate is what our virtio port (the "guest") received. guest → wire: ' +
    'our virtio port sends as fast as its ring takes frames; the rate is what arrived at the far end of the veth. ' +
    'The kernel figure is the same sender through a Linux bridge to a second veth: the host kernel forwarding between veths, ' +
    'with RPS putting the bridge on the switch\'s CPU so that both have one CPU for the sender and one for forwarding. ' +
    'Guest → wire has a different sender (our virtio port): compare it with the kernel figure only as a bound.');
  return out;
}

const COLORS: Record<DutName, string> = { 'vhost-switch': '#1f77b4', testpmd: '#7f7f7f', ovs: '#ff7f0e' };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function svgChart(r: BenchResults): string {
  const o = r.options;
  const series: Array<{ dut: DutName; gen: GenName }> = [];
  for (const gen of o.generators) for (const dut of o.duts) series.push({ dut, gen });
  const cell = (size: string, s: { dut: DutName; gen: GenName }): ThroughputResult | undefined =>
    r.throughput.find((t) => t.dut === s.dut && t.gen === s.gen && t.size === size);
  const maxV = Math.max(0.1, ...r.throughput.map((t) => t.mpps?.max ?? 0));
  const niceMax = (() => {
    const p = 10 ** Math.floor(Math.log10(maxV));
    for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= maxV) return k * p;
    return 10 * p;
  })();
  const W = 860, H = 420, left = 60, right = 20, top = 50, bottom = 110;
  const plotW = W - left - right, plotH = H - top - bottom;
  const groupW = plotW / Math.max(1, o.sizes.length);
  const barW = Math.min(36, (groupW * 0.8) / Math.max(1, series.length));
  const y = (v: number) => top + plotH - (v / niceMax) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Mpps through the DUT (both directions), median of ${o.samples} sample(s), min–max whiskers</text>`);
  out.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(`${r.machine.cpuModel}, ${r.machine.cpus} CPUs, kernel ${r.machine.kernel}, ${r.machine.date.slice(0, 10)}`)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (niceMax * i) / 5;
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${+v.toFixed(2)}</text>`);
  }
  out.push(`<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">Mpps</text>`);
  o.sizes.forEach((size, gi) => {
    const gx = left + gi * groupW + (groupW - barW * series.length) / 2;
    series.forEach((s, si) => {
      const c = cell(size, s);
      const x = gx + si * barW;
      const v = c?.mpps;
      const fill = COLORS[s.dut];
      const opacity = s.gen === o.generators[0] ? 1 : 0.55;
      if (v) {
        out.push(`<rect x="${(x + 1).toFixed(1)}" y="${y(v.median).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(top + plotH - y(v.median)).toFixed(1)}" fill="${fill}" fill-opacity="${opacity}"><title>${esc(`${s.dut}, ${GEN_LABEL[s.gen]}, ${SIZE_LABEL(size)}: ${v.median.toFixed(3)} Mpps`)}</title></rect>`);
        if (v.n > 1) {
          const cx = (x + barW / 2).toFixed(1);
          out.push(`<line x1="${cx}" x2="${cx}" y1="${y(v.max).toFixed(1)}" y2="${y(v.min).toFixed(1)}" stroke="black"/>`);
          for (const w of [v.min, v.max]) out.push(`<line x1="${(x + barW / 2 - 4).toFixed(1)}" x2="${(x + barW / 2 + 4).toFixed(1)}" y1="${y(w).toFixed(1)}" y2="${y(w).toFixed(1)}" stroke="black"/>`);
        }
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y(v.n > 1 ? v.max : v.median) - 4).toFixed(1)}" text-anchor="middle" font-size="9">${v.median.toFixed(2)}</text>`);
      } else {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${top + plotH - 4}" text-anchor="middle" font-size="9" fill="#a00">n/a</text>`);
      }
    });
    out.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle" font-weight="bold">${SIZE_LABEL(size)}</text>`);
  });
  out.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="black"/>`);
  series.forEach((s, i) => {
    const col = i % 3, row = Math.floor(i / 3);
    const lx = left + col * 260, ly = H - bottom + 45 + row * 20;
    out.push(`<rect x="${lx}" y="${ly - 10}" width="14" height="12" fill="${COLORS[s.dut]}" fill-opacity="${s.gen === o.generators[0] ? 1 : 0.55}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly}">${esc(`${DUT_LABEL[s.dut]} · ${GEN_LABEL[s.gen]}`)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export function writeReports(r: BenchResults, outDir: string): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  const files = {
    json: path.join(outDir, 'latest.json'),
    md: path.join(outDir, 'latest.md'),
    svg: path.join(outDir, 'latest.svg'),
  };
  fs.writeFileSync(files.json, JSON.stringify(r, null, 2) + '\n');
  fs.writeFileSync(files.md, markdown(r));
  fs.writeFileSync(files.svg, svgChart(r));
  return Object.values(files);
}
