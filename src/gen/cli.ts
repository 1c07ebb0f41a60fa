// `vhost-switch gen`: our packet generator against any vhost-user socket (vhost-switch, DPDK's net_vhost,
// OVS-DPDK, QEMU's vhost-user backends...). The handshake runs here in TypeScript (VirtioUserPort); the packet
// loop runs in C++ on its own thread (the native Generator), so printing a line a second costs it nothing.
import { parseArgs } from 'node:util';
import {
  DEFAULT_DST_MAC,
  DEFAULT_SRC_MAC,
  GenSession,
  IMIX_AVG_BYTES,
  checkMac,
  defaultFirstBurst,
  latencyOf,
  parseSize,
  rateBetween,
  type AttachMode,
  type GenRole,
  type GenSnapshot,
  type Rate,
} from './bench-session.js';

export const GEN_USAGE = `usage: vhost-switch gen --socket PATH[,PATH2] [options]

Attaches our virtio driver (a memfd "guest") to vhost-user sockets and sends, receives or forwards frames.

  --socket PATH[,PATH2]   vhost-user socket(s); one port per socket
  --mode connect|listen   connect: the backend listens (default); listen: we listen, the backend connects (client mode)
  --role source|sink|io   io (default with two sockets): forward what port 0 receives to port 1 and back, primed by
                          a first burst like testpmd's "start tx_first"; source (default with one socket): send on
                          port 0 (and sink on port 1 when there are two sockets, which measures latency); sink: count only
  --rate PPS              source: frames per second (total); 0 or absent = as fast as the ring takes them
  --size N|imix           frame size in bytes, 60-9000 (default 64); imix = 7:4:1 of 64/570/1518
  --duration S            seconds to run (default 10; Ctrl-C stops early)
  --src-mac MAC           port 0's source MAC (default ${DEFAULT_SRC_MAC}); port 1 uses it as destination
  --dst-mac MAC           port 0's destination MAC (default ${DEFAULT_DST_MAC}); port 1 uses it as source
  --first-burst N         io: frames injected per port at start (default 32; 36 for imix)
  --queue-size N          virtqueue size (default 256)
  --packed                packed virtqueues (VIRTIO_F_RING_PACKED) instead of split ones
  --cpu N                 pin the generator thread to CPU N
  --timeout MS            handshake (and, with --mode listen, accept) timeout (default 15000)
  --json                  print one JSON object at the end instead of the per-second lines

Per second it prints received and sent Mpps per port; at the end the rates over the whole run (Mpps and Gbit/s of
frame bytes, without FCS or preamble) and, for sink ports, latency p50/p99 from the TSC stamp in each frame.
`;

class GenUsageError extends Error {}

interface GenArgs {
  sockets: string[];
  mode: AttachMode;
  role: GenRole;
  ratePps: number;
  sizes: number[];
  sizeLabel: string;
  durationS: number;
  srcMac: string;
  dstMac: string;
  firstBurst?: number;
  queueSize?: number;
  packed: boolean;
  cpu?: number;
  timeoutMs: number;
  json: boolean;
}

function intArg(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(n) || n < min || n > max) throw new GenUsageError(`${name} must be a number ${min}-${max}`);
  return n;
}

export function parseGenArgs(argv: string[]): GenArgs | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        socket: { type: 'string', short: 's', multiple: true },
        mode: { type: 'string' },
        role: { type: 'string' },
        rate: { type: 'string' },
        size: { type: 'string' },
        duration: { type: 'string', short: 'd' },
        'src-mac': { type: 'string' },
        'dst-mac': { type: 'string' },
        'first-burst': { type: 'string' },
        'queue-size': { type: 'string' },
        packed: { type: 'boolean' },
        cpu: { type: 'string' },
        timeout: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new GenUsageError((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const sockets = (v.socket ?? []).flatMap((s) => s.split(',')).filter(Boolean);
  if (sockets.length === 0) throw new GenUsageError('--socket is required');
  if (sockets.length > 64) throw new GenUsageError('at most 64 sockets');
  const mode = (v.mode ?? 'connect') as AttachMode;
  if (mode !== 'connect' && mode !== 'listen') throw new GenUsageError('--mode must be connect or listen');
  const role = (v.role ?? (sockets.length >= 2 ? 'io' : 'source')) as GenRole;
  if (!['source', 'sink', 'io'].includes(role)) throw new GenUsageError('--role must be source, sink or io');
  if (role === 'io' && sockets.length % 2 !== 0) throw new GenUsageError('--role io needs two sockets (--socket A,B)');
  let sizes: number[];
  try {
    sizes = parseSize(v.size ?? '64');
  } catch (e) {
    throw new GenUsageError(`--size: ${(e as Error).message}`);
  }
  let srcMac: string, dstMac: string;
  try {
    srcMac = checkMac(v['src-mac'] ?? DEFAULT_SRC_MAC, '--src-mac');
    dstMac = checkMac(v['dst-mac'] ?? DEFAULT_DST_MAC, '--dst-mac');
  } catch (e) {
    throw new GenUsageError((e as Error).message);
  }
  const queueSize = intArg(v['queue-size'], '--queue-size', 16, 32768);
  if (queueSize !== undefined && !v.packed && (queueSize & (queueSize - 1)) !== 0) throw new GenUsageError('--queue-size must be a power of 2 (any size with --packed)');
  return {
    sockets,
    mode,
    role,
    ratePps: Math.round(intArg(v.rate, '--rate', 0, 1e9) ?? 0),
    sizes,
    sizeLabel: (v.size ?? '64').toLowerCase(),
    durationS: intArg(v.duration, '--duration', 0.1, 86400 * 7) ?? 10,
    srcMac,
    dstMac,
    firstBurst: intArg(v['first-burst'], '--first-burst', 0, 32768),
    queueSize,
    packed: v.packed ?? false,
    cpu: intArg(v.cpu, '--cpu', 0, 4095),
    timeoutMs: intArg(v.timeout, '--timeout', 1, 3_600_000) ?? 15000,
    json: v.json ?? false,
  };
}

const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);

/** txRingFull counts frames that did not fit: an io port drops them, a source port tries again on its next pass. */
function ringFull(n: number, role: GenRole): string {
  if (!n) return '';
  return role === 'io' ? `  dropped (tx ring full) ${n}` : `  tx ring full ×${n} (retried)`;
}

function secondLine(t: number, a: GenSnapshot, b: GenSnapshot, role: GenRole): string {
  const per = b.ports.map((_, i) => rateBetween(a, b, [i]));
  const all = rateBetween(a, b);
  const ports = per.map((r, i) => `p${i} rx ${f3(r.rxMpps)} tx ${f3(r.txMpps)}`).join('  ');
  return `${String(t).padStart(4)}s  ${ports}  | rx ${f3(all.rxMpps)} Mpps ${f2(all.rxGbps)} Gbit/s${role === 'io' ? ringFull(all.txRingFull, role) : ''}\n`;
}

/** The whole run: what was asked, and its Rate from the first snapshot to the last. */
export interface GenSummary extends Rate {
  sockets: string[];
  mode: AttachMode;
  role: GenRole;
  size: string;
  sizes: number[];
  avgFrameBytes: number;
  ratePps: number;
  ports: Array<{ role: string; rxPackets: string; txPackets: string; rxBytes: string; txBytes: string; txRingFull: string }>;
  latency?: { p50Us: number; p99Us: number; samples: number };
}

export async function main(argv: string[]): Promise<number> {
  let args: GenArgs | 'help';
  try {
    args = parseGenArgs(argv);
  } catch (e) {
    if (e instanceof GenUsageError) {
      process.stderr.write(`vhost-switch gen: ${e.message}\n\n${GEN_USAGE}`);
      return 2;
    }
    throw e;
  }
  if (args === 'help') {
    process.stdout.write(GEN_USAGE);
    return 0;
  }
  const a = args;
  const out = (s: string) => void process.stdout.write(s);
  let session: GenSession;
  try {
    session = await GenSession.attach(a.sockets, { mode: a.mode, queueSize: a.queueSize, timeoutMs: a.timeoutMs, packed: a.packed });
  } catch (e) {
    process.stderr.write(`vhost-switch gen: ${(e as Error).message}\n`);
    return 1;
  }
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    wake?.();
  };
  let wake: (() => void) | undefined;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    session.start({
      role: a.role,
      sizes: a.sizes,
      ratePps: a.ratePps,
      srcMac: a.srcMac,
      dstMac: a.dstMac,
      firstBurst: a.firstBurst ?? defaultFirstBurst(a.sizes),
      cpu: a.cpu,
    });
    if (!a.json) {
      const roles = session.roles.map((r, i) => `p${i}=${r.role}`).join(' ');
      out(`gen: ${a.sockets.length} port(s) ${a.mode}ed, ${roles}, size ${a.sizeLabel}${a.ratePps ? `, ${a.ratePps} pps` : ''}, ${a.durationS} s\n`);
    }
    const first = session.snapshot();
    let prev = first;
    const endNs = first.tNs + BigInt(Math.round(a.durationS * 1e9));
    for (let t = 1; !interrupted; t++) {
      const left = Number(endNs - process.hrtime.bigint()) / 1e6;
      if (left <= 0) break;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, Math.min(1000, left));
      });
      const s = session.snapshot();
      if (!a.json && Number(s.tNs - prev.tNs) > 0.5e9) out(secondLine(t, prev, s, a.role));
      prev = s;
    }
    const last = session.stop()!;
    const r = rateBetween(first, last);
    const lat = latencyOf(last, session.roles);
    const avg = a.sizes.length > 1 ? IMIX_AVG_BYTES : a.sizes[0]!;
    const summary: GenSummary = {
      sockets: a.sockets,
      mode: a.mode,
      role: a.role,
      size: a.sizeLabel,
      sizes: a.sizes,
      avgFrameBytes: avg,
      ratePps: a.ratePps,
      ...r,
      ports: last.ports.map((p, i) => ({
        role: session.roles[i]!.role,
        rxPackets: String(p.rxPackets - first.ports[i]!.rxPackets),
        txPackets: String(p.txPackets - first.ports[i]!.txPackets),
        rxBytes: String(p.rxBytes - first.ports[i]!.rxBytes),
        txBytes: String(p.txBytes - first.ports[i]!.txBytes),
        txRingFull: String(p.txRingFull - first.ports[i]!.txRingFull),
      })),
      latency: lat,
    };
    if (a.json) out(JSON.stringify(summary, null, 2) + '\n');
    else {
      out(
        `summary: ${f2(r.seconds)} s  rx ${f3(r.rxMpps)} Mpps ${f2(r.rxGbps)} Gbit/s  tx ${f3(r.txMpps)} Mpps ${f2(r.txGbps)} Gbit/s` +
          ringFull(r.txRingFull, a.role) +
          '\n',
      );
      if (lat) out(`latency: p50 ${f2(lat.p50Us)} us  p99 ${f2(lat.p99Us)} us  (${lat.samples} samples)\n`);
      else if (a.role === 'io') out('latency: n/a in io mode (frames keep circulating); use --role source with two sockets\n');
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    session.close();
  }
}
