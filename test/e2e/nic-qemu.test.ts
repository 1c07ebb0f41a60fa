// Issue 6 through real peers: a QEMU guest on a vhost-user port reaches kernel endpoints on the far side of
// veth pairs bound as `nic` ports, one on AF_XDP (the default, `auto`) and one forced to AF_PACKET, and one
// behind a `tap` port the switch creates: ping and iperf3 TCP in both directions. A second guest carries
// jumbo frames (MTU 9000) through a nic port. The kernel endpoints live in network namespaces this test
// creates (link-local only).
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, trackChild, uniqueSocketPath } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import { cli, type DaemonProcess } from '../integration/support/daemon.js';
import { fullStats, startSpecSwitch } from './lib-e2e.js';
import { portCounters, startSwitch, waitPortState } from './switch-daemon.js';

const ip = (...a: string[]) => execFileSync('ip', a, { encoding: 'utf8' });

describe('NIC and tap ports with a QEMU guest', () => {
  const guests: Guest[] = [];
  const daemons: DaemonProcess[] = [];
  const cleanup: (() => void)[] = [];
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await Promise.all(daemons.map((d) => d.stop()));
    for (const c of cleanup.reverse()) {
      try {
        c();
      } catch {
        /* already gone */
      }
    }
  });

  function namespace(tag: string): string {
    const ns = `vs-e2e-${tag}-${process.pid}`;
    ip('netns', 'add', ns);
    cleanup.push(() => ip('netns', 'del', ns));
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  function iperfServer(ns: string): void {
    const p = spawn('ip', ['netns', 'exec', ns, 'iperf3', '-s', '-1'], { stdio: 'ignore' });
    trackChild(p, `iperf3 -s in ${ns}`);
  }

  /** A veth pair: `outside` stays here for the switch, its peer goes into a new namespace as addr. */
  function vethTo(tag: string, addr: string, mtu?: number): { ns: string; outside: string } {
    const ns = namespace(tag);
    const outside = `vse${tag}${process.pid % 10000}`;
    const far = `far${tag}`;
    ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', far);
    cleanup.push(() => ip('link', 'del', outside));
    ip('link', 'set', far, 'netns', ns);
    if (mtu) {
      ip('link', 'set', outside, 'mtu', String(mtu));
      ip('-n', ns, 'link', 'set', far, 'mtu', String(mtu));
    }
    ip('-n', ns, 'addr', 'add', `${addr}/16`, 'dev', far);
    ip('-n', ns, 'link', 'set', far, 'up');
    return { ns, outside };
  }

  /** ping, then iperf3 TCP from the guest and back to it (-R), against a server in ns at addr. */
  async function pingAndTcp(g: Guest, ns: string, addr: string): Promise<string> {
    const ping = await g.run(`ping -c 3 -W 5 ${addr}`, 60_000);
    expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);
    let out = '';
    for (const dir of ['', ' -R']) {
      iperfServer(ns);
      await new Promise((r) => setTimeout(r, 500));
      const tcp = await g.run(`iperf3 -c ${addr} -t 3 -f m${dir}`, 90_000);
      expect(tcp.exitCode, tcp.output).toBe(0);
      expect(tcp.output).toMatch(/receiver/);
      out += tcp.output;
    }
    return out;
  }

  async function portInfo(d: DaemonProcess, name: string): Promise<{ activeBackend?: string; backendNote?: string }> {
    const r = await d.api.request('GET', `/v1/ports/${name}`);
    expect(r.status).toBe(200);
    return r.body as { activeBackend?: string; backendNote?: string };
  }

  it('guest <-> kernel endpoints through nic ports (AF_XDP by default, AF_PACKET forced) and a tap port: ping and iperf3 both ways', async () => {
    requireTool('qemu-system-x86_64');
    requireTool('iperf3');
    requireTool('ip');
    const dir = makeRunDir('nic');
    const sock = uniqueSocketPath(dir, 'vm');
    const d = await startSwitch(dir, [{ name: 'vm', mode: 'server', socket: sock }]);
    daemons.push(d);

    // nic, default backend (auto): AF_XDP on a veth.
    const x = vethTo('x', '169.254.60.2');
    const added = await cli(dir, ['port', 'add', 'uplink', '--type', 'nic', '--iface', x.outside]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect((await portInfo(d, 'uplink')).activeBackend).toBe('af_xdp');
    // nic forced to AF_PACKET.
    const pk = vethTo('p', '169.254.62.2');
    const added2 = await cli(dir, ['port', 'add', 'uplink2', '--type', 'nic', '--iface', pk.outside, '--backend', 'af_packet']);
    expect(added2.code, added2.stderr).toBe(0);
    expect((await portInfo(d, 'uplink2')).activeBackend).toBe('af_packet');

    const g = await startGuest({ name: 'nic-vm', netdevs: [{ socket: sock, mode: 'client', mac: '52:54:00:00:60:01', reconnect: 1 }], ip: '169.254.60.1/16' });
    guests.push(g);
    await g.waitReady();
    await g.waitLink('eth0');
    await waitPortState(d, 'vm', (s) => s === 'ready');
    // Over AF_XDP the endpoint's TCP checksums arrive pending (veth offload): csum.h recognises them.
    const xdpOut = await pingAndTcp(g, x.ns, '169.254.60.2');
    const up = await fullStats(d, 'uplink');
    expect(up.rxPackets).toBeGreaterThan(100);
    expect(up.txPackets).toBeGreaterThan(100);
    const pkOut = await pingAndTcp(g, pk.ns, '169.254.62.2');
    const up2 = await fullStats(d, 'uplink2');
    expect(up2.rxPackets).toBeGreaterThan(100);
    expect(up2.txPackets).toBeGreaterThan(100);
    for (const s of [up, up2]) for (const reason of ['badHeader', 'offload', 'mtu']) expect(s.drops[reason] ?? 0, `${s.name} ${reason}`).toBe(0);

    // tap: the switch creates vst*, the test moves it into another namespace as 169.254.61.2.
    const tap = `vst${process.pid % 100000}`;
    const tapAdded = await cli(dir, ['port', 'add', 'tap0', '--type', 'tap', '--iface', tap]);
    expect(tapAdded.code, tapAdded.stderr).toBe(0);
    const ns2 = namespace('tap');
    ip('link', 'set', tap, 'netns', ns2);
    ip('-n', ns2, 'addr', 'add', '169.254.61.2/16', 'dev', tap);
    ip('-n', ns2, 'link', 'set', tap, 'up');
    const tapOut = await pingAndTcp(g, ns2, '169.254.61.2');
    console.log(xdpOut, pkOut, tapOut);
  });

  it('jumbo frames: a guest with MTU 9000 reaches a kernel endpoint through a nic port in single 9000-byte frames', async () => {
    requireTool('qemu-system-x86_64');
    requireTool('iperf3');
    requireTool('ip');
    const dir = makeRunDir('nic-jumbo');
    const sock = uniqueSocketPath(dir, 'vm');
    const d = await startSpecSwitch(dir, [{ name: 'vm', mode: 'server', socket: sock, mtu: 9000 }]);
    daemons.push(d);
    const j = vethTo('j', '169.254.63.2', 9000);
    const added = await cli(dir, ['port', 'add', 'uplink', '--type', 'nic', '--iface', j.outside, '--mtu', '9000']);
    expect(added.code, added.stderr).toBe(0);
    // AF_XDP chunks here are at most 4 KiB: auto falls back to AF_PACKET and says why.
    const info = await portInfo(d, 'uplink');
    expect(info.activeBackend).toBe('af_packet');
    expect(info.backendNote).toMatch(/MTU 9000/);

    const g = await startGuest({ name: 'jumbo-vm', netdevs: [{ socket: sock, mode: 'client', mac: '52:54:00:00:63:01', reconnect: 1 }], ip: '169.254.63.1/16', mtu: 9000 });
    guests.push(g);
    await g.waitReady();
    await g.waitLink('eth0');
    await waitPortState(d, 'vm', (s) => s === 'ready');
    expect(await g.runOk('ip link show eth0')).toMatch(/mtu 9000/);
    const before = await fullStats(d, 'uplink');
    // 8972 bytes of ICMP data: a 9000-byte IP packet, which the guest (MTU 9000) sends unfragmented and
    // the endpoint answers with the same size.
    const ping = await g.run('ping -c 3 -W 5 -s 8972 169.254.63.2', 60_000);
    expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);
    const after = await fullStats(d, 'uplink');
    // Frames of 9014 bytes went each way: at least 3 of them, and no frame was cut or dropped for size.
    expect(after.txBytes - before.txBytes).toBeGreaterThanOrEqual(3 * 9014);
    expect(after.rxBytes - before.rxBytes).toBeGreaterThanOrEqual(3 * 9014);
    expect(after.txPackets - before.txPackets).toBeLessThan(3 * 2 + 4);  // not fragments (ARP aside)
    for (const s of [after, await fullStats(d, 'vm')]) expect(s.drops.mtu ?? 0, `${s.name} mtu drops`).toBe(0);
    iperfServer(j.ns);
    await new Promise((r) => setTimeout(r, 500));
    const tcp = await g.run('iperf3 -c 169.254.63.2 -t 3 -f m', 90_000);
    expect(tcp.exitCode, tcp.output).toBe(0);
    console.log(ping.output, tcp.output);
  });
});
