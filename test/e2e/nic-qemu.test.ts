// Issue 6 through real peers: a QEMU guest on a vhost-user port reaches a kernel endpoint on the far side
// of a veth pair bound as a `nic` port (AF_PACKET), and one behind a `tap` port the switch creates: ping
// and iperf3 TCP. The kernel endpoints live in network namespaces this test creates (link-local only).
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, trackChild, uniqueSocketPath } from '../support/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import { cli, type DaemonProcess } from '../integration/support/daemon.js';
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

  it('guest <-> kernel endpoint through a nic port (veth) and through a tap port: ping and iperf3', async () => {
    requireTool('qemu-system-x86_64');
    requireTool('iperf3');
    requireTool('ip');
    const dir = makeRunDir('nic');
    const sock = uniqueSocketPath(dir, 'vm');
    const d = await startSwitch(dir, [{ name: 'vm', mode: 'server', socket: sock }]);
    daemons.push(d);

    // nic: veth pair, far end in a namespace with 169.254.60.2.
    const ns = namespace('veth');
    const outside = `vse${process.pid % 100000}`;
    ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', 'far0');
    cleanup.push(() => ip('link', 'del', outside));
    ip('link', 'set', 'far0', 'netns', ns);
    ip('-n', ns, 'addr', 'add', '169.254.60.2/16', 'dev', 'far0');
    ip('-n', ns, 'link', 'set', 'far0', 'up');
    const added = await cli(dir, ['port', 'add', 'uplink', '--type', 'nic', '--iface', outside]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);

    const g = await startGuest({ name: 'nic-vm', netdevs: [{ socket: sock, mode: 'client', mac: '52:54:00:00:60:01', reconnect: 1 }], ip: '169.254.60.1/16' });
    guests.push(g);
    await g.waitReady();
    await g.waitLink('eth0');
    await waitPortState(d, 'vm', (s) => s === 'ready');
    const ping = await g.run('ping -c 3 -W 5 169.254.60.2', 60_000);
    expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);
    iperfServer(ns);
    await new Promise((r) => setTimeout(r, 500));
    const tcp = await g.run('iperf3 -c 169.254.60.2 -t 3 -f m', 90_000);
    expect(tcp.exitCode, tcp.output).toBe(0);
    expect(tcp.output).toMatch(/receiver/);
    const up = await portCounters(d, 'uplink');
    expect(up.rxPackets).toBeGreaterThan(100);
    expect(up.txPackets).toBeGreaterThan(100);

    // tap: the switch creates vst*, the test moves it into another namespace as 169.254.61.2.
    const tap = `vst${process.pid % 100000}`;
    const tapAdded = await cli(dir, ['port', 'add', 'tap0', '--type', 'tap', '--iface', tap]);
    expect(tapAdded.code, tapAdded.stderr).toBe(0);
    const ns2 = namespace('tap');
    ip('link', 'set', tap, 'netns', ns2);
    ip('-n', ns2, 'addr', 'add', '169.254.61.2/16', 'dev', tap);
    ip('-n', ns2, 'link', 'set', tap, 'up');
    const ping2 = await g.run('ping -c 3 -W 5 169.254.61.2', 60_000);
    expect(ping2.output).toMatch(/3 packets transmitted, 3 packets received/);
    iperfServer(ns2);
    await new Promise((r) => setTimeout(r, 500));
    const tcp2 = await g.run('iperf3 -c 169.254.61.2 -t 3 -f m', 90_000);
    expect(tcp2.exitCode, tcp2.output).toBe(0);
    console.log(tcp.output, tcp2.output);
  });
});
