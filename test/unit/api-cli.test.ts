// The CLI's main() in this process against an in-process API: argument handling, output formats, exit codes, and
// the arithmetic of `stats --watch`.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { computeRates, renderRates, type StatsSample } from '../../src/cli/stats.js';
import { human, table } from '../../src/cli/format.js';
import { attachHints, qemuPortArgs } from '../../src/cli/attach.js';
import type { PortInfo } from '../../src/switch/port.js';
import { startInProcessApi, type InProcessApi } from '../integration/support/inproc.js';

let api: InProcessApi;

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main([...args, '--control', api.socket], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

beforeAll(async () => {
  api = await startInProcessApi();
});
afterAll(async () => {
  await api.close();
});

describe('main()', () => {
  it('port add passes flag values through typed; "0600" stays octal', async () => {
    const r = await cli('port', 'add', 'p1', '--queues', '3', '--vlan', '7', '--socket-mode', '0600', '--mac', '52:54:00:00:00:01', '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ name: 'p1', queues: 3, vlan: 7, socketMode: 0o600, mac: '52:54:00:00:00:01' });
  });

  it('port list: a table, or JSON', async () => {
    const t = await cli('port', 'list');
    expect(t.out.split('\n')[0]).toMatch(/^NAME\s+ID\s+TYPE\s+STATE\s+QUEUES\s+VLAN\s+MTU\s+MAC\s+ORIGIN\s+SOCKET\/IFACE$/);
    expect(t.out).toMatch(/^p1\s+0\s+vhost-user:server\s+listening\s+3\s+7\s+1500\s+52:54:00:00:00:01\s+api\s+\S+p1\.sock$/m);
    expect(JSON.parse((await cli('--json', 'port', 'list')).out)[0].name).toBe('p1');
  });

  it('global options may come before the command', async () => {
    let out = '';
    const code = await main(['--control', api.socket, 'port', 'show', 'p1'], { out: (t) => (out += t), err: () => {} });
    expect(code).toBe(0);
    expect(out).toMatch(/^mode\s+server \(the switch listens\)$/m);
    expect(out).toMatch(/^drops\s+\S+ \(noRoute 1, queueFull 1152921504606846976\)$/m);
  });

  it('refusals: exit 1 and the daemon\'s message; usage errors: exit 2', async () => {
    expect(await cli('port', 'add', 'p1')).toMatchObject({ code: 1, err: 'vhost-switch: name: port "p1" already exists (HTTP 409)\n', out: '' });
    const usage = await cli('port', 'add');
    expect(usage.code).toBe(2);
    expect(usage.err).toContain("missing required argument 'name'");
    expect((await cli('stats', '--count', '0', '--watch')).code).toBe(2);
    const run = async (...args: string[]) => {
      let err = '';
      const code = await main(['run', ...args], { out: () => {}, err: (t) => (err += t) });
      return { code, err };
    };
    expect(await run('--threads', 'x')).toMatchObject({ code: 2, err: expect.stringContaining('--threads must be an integer') });
    expect((await run('--cpus', '3-1')).err).toContain('--cpus: range "3-1" is backwards');
    expect((await run('--log-level', 'loud')).err).toContain("argument 'loud' is invalid. Allowed choices are debug, info, warn, error");
    expect((await run('--threds', '2')).err).toContain("unknown option '--threds'\n(Did you mean --threads?)");
  });

  it('help exits 0, no command exits 2', async () => {
    const noop = { out: () => {}, err: () => {} };
    expect(await main(['help'], noop)).toBe(0);
    expect(await main(['--help'], noop)).toBe(0);
    expect(await main([], noop)).toBe(2);
    expect((await cli('port', '--help')).out).toContain('add [options] <name>');
    expect((await cli('port', 'add', '--help')).out).toContain('--queue-affinity <q:t,...>');
    expect(await main(['--version'], noop)).toBe(0);
  });

  it('completion bash: a script bash accepts, completing commands, subcommands and each command\'s options', async () => {
    const r = await cli('completion', 'bash');
    expect(r.code).toBe(0);
    const complete = (...words: string[]) =>
      execFileSync('bash', ['-c', `${r.out}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _vhost_switch; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' }).trim().split(' ');
    expect(complete('vhost-switch', 'po')).toEqual(['port']);
    expect(complete('vhost-switch', 'port', '')).toEqual(expect.arrayContaining(['add', 'set', 'del', 'list', 'show']));
    expect(complete('vhost-switch', '--run-dir', '/x', 'port', 'add', 'vm1', '--vlan-m')).toEqual(['--vlan-mode']);
    expect(complete('vhost-switch', 'capture', 'vm1', '--dir')).toEqual(['--direction']);
    expect((await cli('completion', 'zsh')).code).toBe(2);
  });

  it('gen is a hook for the traffic generator', async () => {
    const r = await cli('gen', '--help');
    // Either the generator answers, or the hook says it is not built; never an unknown command.
    expect(r.err).not.toContain('unknown command');
  });
});

describe('stats --watch arithmetic', () => {
  const sample = (rx: number, drops: number, busy: number, idle: number, pkts: number): StatsSample => ({
    ports: [{ name: 'a', state: 'ready', rxPackets: rx, rxBytes: rx * 100, txPackets: rx / 2, txBytes: rx * 50, drops: { x: drops, y: '0' }, broken: false }],
    threads: [{ thread: 0, busyCycles: busy, idleCycles: idle, packets: pkts, cyclesPerPacket: 99, sleeping: false }],
  });

  it('rates are deltas over the interval; cycles/packet over the interval too', () => {
    const r = computeRates(sample(1000, 5, 1000, 1000, 10), sample(3000, 9, 5000, 2000, 30), 2);
    expect(r.ports[0]).toMatchObject({ rxPps: 1000, rxBps: 100 * 1000 * 8, txPps: 500, dropsPerSec: 2, drops: 9 });
    expect(r.threads[0]).toMatchObject({ pps: 10, cyclesPerPacket: 200, busyPercent: 80 });
  });

  it('a new port or an idle thread shows zeros / the lifetime figure, not nonsense', () => {
    const before: StatsSample = { ports: [], threads: [] };
    const r = computeRates(before, sample(1e9, 1, 0, 0, 0), 1);
    expect(r.ports[0]!.rxPps).toBe(0);
    expect(r.threads[0]!.cyclesPerPacket).toBe(99);
    expect(r.threads[0]!.busyPercent).toBe(0);
  });

  it('counters sent as strings (past 2^53) are handled', () => {
    const a = sample(0, 0, 0, 0, 0);
    const b = sample(0, 0, 0, 0, 0);
    a.ports[0]!.rxPackets = '9007199254740993';
    b.ports[0]!.rxPackets = '9007199254741993';
    expect(computeRates(a, b, 1).ports[0]!.rxPps).toBe(1000);
  });

  it('renders a readable frame', () => {
    const text = renderRates(computeRates(sample(0, 0, 0, 0, 0), sample(2_500_000, 0, 10, 30, 5), 1), 1, new Date(0));
    expect(text).toMatch(/^PORT\s+STATE\s+RX PPS\s+RX BIT\/S\s+TX PPS\s+TX BIT\/S\s+DROPS\/S\s+DROPS$/m);
    expect(text).toMatch(/^a\s+ready\s+2\.50M\s+2\.00G\s+1\.25M/m);
    expect(text).toMatch(/^THREAD\s+PPS\s+CYCLES\/PKT\s+BUSY %\s+STATE$/m);
  });
});

describe('formatting helpers', () => {
  it('human', () => {
    expect(human(999)).toBe('999');
    expect(human(12_345)).toBe('12.35k');
    expect(human(123_456_789)).toBe('123M');
    expect(human(1.5)).toBe('1.5');
  });

  it('table right-aligns numbers', () => {
    expect(table(['A', 'N'], [['x', 1], ['yy', 100]])).toBe('A     N\nx     1\nyy  100');
  });

  it('QEMU arguments: QEMU is the client of a server port and the server of a client port', () => {
    const base = { name: 'p', socket: '/r/p.sock', queues: 1, mtu: 1500 };
    expect(qemuPortArgs({ ...base, mode: 'server' } as PortInfo, 'tcg')[0]).toBe('-chardev socket,id=chr-p,path=/r/p.sock,reconnect=1');
    expect(qemuPortArgs({ ...base, mode: 'client' } as PortInfo, 'tcg')[0]).toBe('-chardev socket,id=chr-p,path=/r/p.sock,server=on,wait=off');
    // vectors=0 (the QEMU 7.2 TCG MSI-X workaround) only without KVM; with KVM a multiqueue NIC gets its vectors.
    const mq = { ...base, mode: 'server', queues: 4, mtu: 9000 } as PortInfo;
    expect(qemuPortArgs(mq, 'tcg')[2]).toMatch(/^-device virtio-net-pci,netdev=net-p,id=nic-p,mac=[\da-f:]+,host_mtu=9000,mq=on,vectors=0$/);
    expect(qemuPortArgs(mq, 'kvm')[2]).toMatch(/,mq=on,vectors=10$/);
    expect(qemuPortArgs({ ...base, mode: 'server' } as PortInfo, 'kvm')[2]).not.toContain('vectors');
    // The start hints skip nic and tap ports (no socket, no guest).
    const hints = attachHints([{ ...base, name: 'up', type: 'nic', iface: 'eth1', socket: '', mode: 'server' } as PortInfo, { ...base, type: 'vhost-user', mode: 'server' } as PortInfo]);
    expect(hints).toContain('chr-p');
    expect(hints).not.toContain('up');
  });
});
