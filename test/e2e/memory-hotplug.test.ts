// Memory hot-plug through real QEMU 7.2: a guest started with DIMM slots (-m 256M,slots=4,maxmem=1G) takes a
// pc-dimm (QMP object-add memory-backend-memfd,share=on + device_add pc-dimm) while another guest pings it. QEMU
// hands the switch the new region with ADD_MEM_REG (CONFIGURE_MEM_SLOTS), the port shows it, and traffic goes on.
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, uniqueSocketPath } from '../../harness/env.js';
import { Qmp } from '../support/qmp.js';
import { startGuest, type Guest } from '../support/qemu.js';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { logLines, parsePing, pingUntilOk } from './lib-e2e.js';
import { startSwitch, waitPortState } from './switch-daemon.js';

const DIMM_MIB = 128;

describe('memory hot-plug of a guest on a switch port', () => {
  const guests: Guest[] = [];
  const daemons: DaemonProcess[] = [];
  const qmps: Qmp[] = [];
  afterAll(async () => {
    for (const q of qmps) q.close();
    await Promise.all(guests.map((g) => g.stop()));
    await Promise.all(daemons.map((d) => d.stop()));
  });

  it('a pc-dimm added while pinging: ADD_MEM_REG, the port maps it, pings go on, then a second DIMM', async () => {
    requireTool('qemu-system-x86_64');
    const dir = makeRunDir('memhp');
    const sockS = uniqueSocketPath(dir, 's');
    const sockH = uniqueSocketPath(dir, 'h');
    const qmpPath = uniqueSocketPath(dir, 'qmp');
    const d = await startSwitch(dir, [
      { name: 'vhu-s', mode: 'server', socket: sockS },
      { name: 'vhu-h', mode: 'server', socket: sockH },
    ]);
    daemons.push(d);
    const s = await startGuest({ name: 'memhp-s', netdevs: [{ socket: sockS, mode: 'client', mac: '52:54:00:00:40:01', reconnect: 1 }], ip: '169.254.40.1/16' });
    guests.push(s);
    const h = await startGuest({
      name: 'memhp-h',
      netdevs: [{ socket: sockH, mode: 'client', mac: '52:54:00:00:40:02', reconnect: 1 }],
      ip: '169.254.40.2/16',
      memSlots: { slots: 4, maxMiB: 1024 },
      append: ['memhp_default_state=online'],  // the guest uses the DIMM as soon as it comes
      extraArgs: ['-qmp', `unix:${qmpPath},server=on,wait=off`],
    });
    guests.push(h);
    await Promise.all([s.waitReady(), h.waitReady()]);
    await Promise.all([s.waitLink('eth0', 120_000), h.waitLink('eth0', 120_000)]);
    await waitPortState(d, 'vhu-h', (st) => st === 'ready');
    await pingUntilOk(s, '169.254.40.2');
    const q = await Qmp.connect(qmpPath);
    qmps.push(q);

    const port = async () => (await d.api.request('GET', '/v1/ports/vhu-h')).body as { memRegions: number };
    const before = await port();
    expect(before.memRegions).toBeGreaterThanOrEqual(1);
    expect(logLines(d, /protocol features negotiated/).some((l) => l.includes('vhu-h') && l.includes('CONFIGURE_MEM_SLOTS'))).toBe(true);
    const online = async () => Number((await h.runOk('grep -l online /sys/devices/system/memory/memory*/state | wc -l')).trim());
    const onlineBefore = await online();

    await s.runOk('ping -i 0.2 -c 100 -W 2 169.254.40.2 > /tmp/hp-ping.log 2>&1 &');
    await new Promise((r) => setTimeout(r, 2000));
    for (const [i, id] of ['dimm1', 'dimm2'].entries()) {
      await q.execute('object-add', { 'qom-type': 'memory-backend-memfd', id, size: DIMM_MIB * 1024 * 1024, share: true });
      await q.execute('device_add', { driver: 'pc-dimm', id: `${id}-dev`, memdev: id });
      const want = before.memRegions + i + 1;
      const end = Date.now() + 30_000;
      while ((await port()).memRegions < want && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      expect((await port()).memRegions).toBe(want);
      await new Promise((r) => setTimeout(r, 3000));
    }
    const out = await s.runOk('wait; cat /tmp/hp-ping.log', 120_000);
    const p = parsePing(out);
    console.log(`memory hot-plug: regions ${before.memRegions} -> ${(await port()).memRegions}; ping ${p.received}/${p.transmitted}`);
    expect(logLines(d, /memory region added/).filter((l) => l.includes('vhu-h')).length).toBeGreaterThanOrEqual(before.memRegions + 2);
    // The guest onlined the DIMMs' memory blocks, and the port kept carrying its traffic.
    expect(await online()).toBeGreaterThan(onlineBefore);
    expect(p.received).toBeGreaterThanOrEqual(p.transmitted - 5);
    const back = await h.runOk('ping -c 3 -W 5 169.254.40.1', 60_000);
    expect(parsePing(back).received).toBe(3);
    expect(d.alive()).toBe(true);
  });
});
