// Issue 7: the QEMU arguments `vhost-switch vif PORT --format qemu` prints, used as they are, boot guests whose
// NICs pass traffic through the switch. One guest per socket mode: on a server-mode port (QEMU connects,
// reconnect=1) and on a client-mode port (QEMU listens, server=on,wait=off); they ping each other.
// Only the guest's own part is added: machine, TCG, kernel + initramfs, serial console on stdio.
//
//   guest q1 (169.254.42.1) --q-srv (switch listens)-- vhost-switch --q-cli (switch connects)-- guest q2 (169.254.42.2)
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool } from '../../harness/env.js';
import { Guest, guestImage } from '../support/qemu.js';
import { cli, DaemonProcess } from '../integration/support/daemon.js';
import { pingReceived, qemuVersion } from './lib-libvirt.js';
import { portCounters, startSwitch, waitPortState } from './switch-daemon.js';

/** The shell text `vif --format qemu` prints (comments, one option per line, '\' continuations) as argv. */
function shellWords(text: string): string[] {
  const body = text
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const words: string[] = [];
  let cur: string | undefined;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === "'") {
      const end = body.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${body}`);
      cur = (cur ?? '') + body.slice(i + 1, end);
      i = end;
    } else if (ch === '\\' && i + 1 < body.length) {
      cur = (cur ?? '') + body[++i];
    } else if (/\s/.test(ch)) {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
    } else if (ch === '"' || ch === '$' || ch === '`') {
      throw new Error(`unexpected ${ch} in vif output (only single quotes are expected): ${body}`);
    } else cur = (cur ?? '') + ch;
  }
  if (cur !== undefined) words.push(cur);
  return words;
}

describe('QEMU guests started with `vhost-switch vif --format qemu` arguments', () => {
  const guests: Guest[] = [];
  let sw: DaemonProcess | undefined;
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await sw?.stop();
  });

  it('a guest on a server-mode port and one on a client-mode port boot and ping each other', async () => {
    const qemu = requireTool('qemu-system-x86_64');
    const version = await qemuVersion(qemu);
    const dir = makeRunDir('vif-qemu');
    sw = await startSwitch(dir, [
      { name: 'q-srv', mode: 'server', socket: path.join(dir, 'q-srv.sock') },
      { name: 'q-cli', mode: 'client', socket: path.join(dir, 'q-cli.sock') },
    ]);
    const img = await guestImage();

    const vifArgs = async (port: string) => {
      const r = await cli(dir, ['vif', port, '--format', 'qemu', '--accel', 'tcg', '--qemu-version', version, '--memory', '256M']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return { text: r.stdout, args: shellWords(r.stdout) };
    };
    const srv = await vifArgs('q-srv');
    const cl = await vifArgs('q-cli');
    // What the guests get, from the printed text: shared memfd memory of the -m size, the chardev role, vectors=0.
    expect(srv.args.slice(0, 6)).toEqual(['-m', '256M', '-object', 'memory-backend-memfd,id=mem0,size=256M,share=on', '-numa', 'node,memdev=mem0']);
    expect(srv.args).toContain(`socket,id=chr-q-srv,path=${path.join(dir, 'q-srv.sock')},reconnect=1`);
    expect(cl.args).toContain(`socket,id=chr-q-cli,path=${path.join(dir, 'q-cli.sock')},server=on,wait=off`);
    for (const v of [srv, cl]) expect(v.args.find((a) => a.startsWith('virtio-net-pci,'))).toMatch(/,vectors=0$/);
    const macOf = (args: string[]) => /mac=([0-9a-f:]+)/.exec(args.find((a) => a.startsWith('virtio-net-pci,'))!)![1]!;

    const boot = (name: string, ip: string, nicArgs: string[]) => {
      const args = [
        '-name', name,
        '-machine', 'pc',
        '-accel', 'tcg',
        '-smp', '1',
        '-nodefaults',
        '-no-user-config',
        '-no-reboot',
        '-display', 'none',
        '-chardev', 'stdio,id=con0,signal=off',
        '-serial', 'chardev:con0',
        '-kernel', img.kernel,
        '-initrd', img.initrd,
        '-append', `console=ttyS0 quiet panic=-1 vs.ip=${ip}`,
        ...nicArgs,
      ];
      const g = new Guest(name, qemu, args);
      guests.push(g);
      return g;
    };
    const q1 = boot('vif-q1', '169.254.42.1/16', srv.args);
    const q2 = boot('vif-q2', '169.254.42.2/16', cl.args);
    await Promise.all([q1.waitReady(), q2.waitReady()]);
    await Promise.all([q1.waitLink('eth0'), q2.waitLink('eth0')]);
    await waitPortState(sw, 'q-srv', (s) => s === 'ready');
    await waitPortState(sw, 'q-cli', (s) => s === 'ready');
    expect((await q1.runOk('cat /sys/class/net/eth0/address')).trim()).toBe(macOf(srv.args));
    expect((await q2.runOk('cat /sys/class/net/eth0/address')).trim()).toBe(macOf(cl.args));

    expect(pingReceived(await q1.runOk('ping -c 3 -W 5 169.254.42.2', 60_000))).toEqual({ sent: 3, received: 3 });
    expect(pingReceived(await q2.runOk('ping -c 3 -W 5 169.254.42.1', 60_000))).toEqual({ sent: 3, received: 3 });
    for (const p of ['q-srv', 'q-cli']) {
      const c = await portCounters(sw, p);
      expect(c.rxPackets).toBeGreaterThanOrEqual(6);
      expect(c.txPackets).toBeGreaterThanOrEqual(6);
    }
  }, 600_000);
});
