// Groups the throughput samples of the runs below a folder by generator in-order setting, DUT and the mode of
// the core-to-core probe before each sample (fast: under 150 ns): node group-by-mode.cjs DIR
const fs = require('fs'), path = require('path');
const dir = process.argv[2];
const cells = {};
for (const run of fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, 'latest.json'))).sort()) {
  const r = JSON.parse(fs.readFileSync(path.join(dir, run, 'latest.json'), 'utf8'));
  const io = r.options.inOrder === false ? 'in_order=0' : 'in_order=1';
  for (const t of r.throughput) for (const s of t.samples) {
    const mode = s.c2cNs === undefined ? '?' : s.c2cNs < 150 ? 'fast' : 'slow';
    const k = `${io} ${t.dut} ${mode}`;
    (cells[k] ??= []).push(s.mpps);
  }
}
const med = (a) => { const b = [...a].sort((x, y) => x - y); const n = b.length; return n % 2 ? b[(n - 1) / 2] : (b[n / 2 - 1] + b[n / 2]) / 2; };
console.log('| generator | DUT | c2c mode | n | median Mpps | min–max |\n|---|---|---|---|---|---|');
for (const k of Object.keys(cells).sort()) {
  const [io, dut, mode] = k.split(' ');
  const a = cells[k];
  console.log(`| ${io} | ${dut} | ${mode} | ${a.length} | ${med(a).toFixed(2)} | ${Math.min(...a).toFixed(2)}–${Math.max(...a).toFixed(2)} |`);
}
