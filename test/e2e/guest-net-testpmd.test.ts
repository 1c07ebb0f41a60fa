// Proves the QEMU NIC command line (vhost-user netdev, virtio-net-pci with
// vectors=0) against a known-good vhost-user backend: testpmd with two net_vhost
// ports in io mode is a two-port wire between two guests.
//
//   guest a (eth0 169.254.10.1) --a.sock-- testpmd net_vhost0 <io> net_vhost1 --b.sock-- guest b (eth0 169.254.10.2)
//
// testpmd listens (client=0), QEMU connects (mode 'client', reconnect=1).
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireHugepages, requireTool, uniqueSocketPath } from '../../harness/env.js';
import { formatCommandLine, startGuest, type Guest } from '../support/qemu.js';
import { startTestpmd, type Testpmd } from '../../harness/testpmd.js';

describe('guest NICs over vhost-user (testpmd as the backend)', () => {
  const guests: Guest[] = [];
  let pmd: Testpmd | undefined;
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await pmd?.quit();
  });

  it('two guests ping each other through testpmd', async () => {
    requireTool('qemu-system-x86_64');
    requireTool('dpdk-testpmd');
    requireHugepages(128);
    const dir = makeRunDir('gnet');
    const sockA = uniqueSocketPath(dir, 'a');
    const sockB = uniqueSocketPath(dir, 'b');
    pmd = await startTestpmd({
      name: 'wire',
      cpu: 1,
      ports: [
        { type: 'vhost', iface: sockA, client: false },
        { type: 'vhost', iface: sockB, client: false },
      ],
    });
    await pmd.start();

    const a = await startGuest({
      name: 'net-a',
      netdevs: [{ socket: sockA, mode: 'client', mac: '52:54:00:00:10:01', reconnect: 1 }],
      ip: '169.254.10.1/16',
    });
    guests.push(a);
    const b = await startGuest({
      name: 'net-b',
      netdevs: [{ socket: sockB, mode: 'client', mac: '52:54:00:00:10:02', reconnect: 1 }],
      ip: '169.254.10.2/16',
    });
    guests.push(b);
    console.log(formatCommandLine(a.binary, a.args));
    const [bootA, bootB] = await Promise.all([a.waitReady(), b.waitReady()]);
    console.log(`boot with NIC: a ${bootA} ms, b ${bootB} ms (two TCG guests at once, testpmd polling)`);

    expect(await a.runOk('cat /sys/class/net/eth0/address')).toBe('52:54:00:00:10:01\n');
    expect(await a.runOk('ip -4 addr show dev eth0')).toMatch(/inet 169\.254\.10\.1\/16/);
    await Promise.all([a.waitLink('eth0'), b.waitLink('eth0')]);
    expect(await b.runOk('cat /sys/class/net/eth0/operstate')).toBe('up\n');

    const ping = await a.run('ping -c 3 -W 5 169.254.10.2', 60_000);
    console.log(ping.output);
    expect(ping.exitCode).toBe(0);
    expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);

    const stats = await pmd.portStats();
    expect(stats[0]!.rxPackets).toBeGreaterThanOrEqual(3);
    expect(stats[1]!.rxPackets).toBeGreaterThanOrEqual(3);
  });
});
