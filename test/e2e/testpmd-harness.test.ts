// Proves the testpmd harness and documents the DPDK anchor topology used to
// compare the switch with a known-good vhost-user backend:
//
//   testpmd B (CPU 1)                          testpmd A (CPU 0)
//   net_virtio_user0 --- vhost-user a.sock --- net_vhost0 (client=0: listens)
//   net_virtio_user1 --- vhost-user b.sock --- net_vhost1 (client=0: listens)
//
// A stands where the switch will stand (a vhost-user backend forwarding port 0
// <-> port 1 in io mode); B is the DPDK "guest" that injects a first burst
// (start tx_first) and then loops whatever comes back. Later tests replace A
// with vhost-switch and keep B unchanged.
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireHugepages, requireTool, sleep, uniqueSocketPath } from '../../harness/env.js';
import { startTestpmd, type NicStats, type Testpmd } from '../../harness/testpmd.js';

describe('testpmd harness: net_vhost <-> net_virtio_user', () => {
  const started: Testpmd[] = [];
  afterAll(async () => {
    // testpmd busy-polls a core: always stop it (setup.ts also kills leftovers)
    await Promise.all(started.map((t) => t.quit()));
  });

  it('forwards packets in a loop and reports port stats', async () => {
    requireTool('dpdk-testpmd');
    requireHugepages(256);
    const dir = makeRunDir('testpmd');
    const sockA = uniqueSocketPath(dir, 'a');
    const sockB = uniqueSocketPath(dir, 'b');

    const a = await startTestpmd({
      name: 'vhost-backend',
      cpu: 0,
      ports: [
        { type: 'vhost', iface: sockA, queues: 1, client: false },
        { type: 'vhost', iface: sockB, queues: 1, client: false },
      ],
    });
    started.push(a);
    const b = await startTestpmd({
      name: 'virtio-user',
      cpu: 1,
      ports: [
        { type: 'virtio_user', path: sockA, queues: 1, mac: '02:00:00:00:00:01' },
        { type: 'virtio_user', path: sockB, queues: 1, mac: '02:00:00:00:00:02' },
      ],
    });
    started.push(b);
    console.log(`A: ${a.binary} ${a.args.join(' ')}\nB: ${b.binary} ${b.args.join(' ')}`);

    await a.cmd('set fwd io');
    await b.cmd('set fwd io');
    await a.start();
    await b.start({ txFirst: true });
    await sleep(3000);
    const fwdB = await b.stop(); // B first: nothing new enters the loop
    await sleep(300); // A drains what B had sent
    const fwdA = await a.stop();
    const statsA = await a.portStats();
    const statsB = await b.portStats();
    console.log(JSON.stringify({ fwdA, fwdB, statsA, statsB }, null, 1));

    expect(statsA.map((s) => s.port)).toEqual([0, 1]);
    expect(statsB.map((s) => s.port)).toEqual([0, 1]);
    const min = 10_000; // conservative: even a slow CI machine loops far more in 3 s
    for (const s of [...statsA, ...statsB] as NicStats[]) {
      expect(s.rxPackets).toBeGreaterThan(min);
      expect(s.txPackets).toBeGreaterThan(min);
      expect(s.rxErrors).toBe(0);
    }
    // Everything B sent on virtio_userN reached A's vhostN (A kept polling after B stopped).
    expect(statsA[0]!.rxPackets).toBe(statsB[0]!.txPackets);
    expect(statsA[1]!.rxPackets).toBe(statsB[1]!.txPackets);
    // B cannot receive more than A transmitted towards it.
    expect(statsB[0]!.rxPackets).toBeLessThanOrEqual(statsA[0]!.txPackets);
    expect(statsB[1]!.rxPackets).toBeLessThanOrEqual(statsA[1]!.txPackets);
    // The forward statistics printed by `stop` parse too.
    expect(fwdB.ports.map((p) => p.port)).toEqual([0, 1]);
    expect(fwdB.total!.txPackets).toBeGreaterThan(min);
    expect(fwdA.total!.rxPackets).toBeGreaterThan(min);

    expect((await b.quit()).code).toBe(0);
    expect((await a.quit()).code).toBe(0);
  });
});
