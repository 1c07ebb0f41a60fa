// Issue 7 with a real libvirtd (started by this file, see lib-libvirt.ts): libvirt domains whose <interface>,
// <memoryBacking> and <qemu:override>/<qemu:commandline> come from `vhost-switch vif PORT --format libvirt`
// boot the test kernel+initramfs (direct kernel boot, TCG), their NICs connect and they ping each other through
// the switch, with switch server ports and with switch client ports. Then a port created with the CLI while a
// domain runs is hot-plugged with `virsh attach-device` (the vif output as it is), passes traffic, is detached
// with `virsh detach-device`, goes idle, and `vhost-switch port del` removes it while the other ports carry on.
//
// QEMU runs as libvirt-qemu (libvirt's default), so the socket directory is set up as docs/attach.md says:
// root:<QEMU's group> 2770, server-mode port sockets with socketGroup = that group (mode 0660).
//
//   domain A (eth0 169.254.40.1/16, eth1 169.254.50.1/24 hot-plugged) --vhu-a/vhu-h-- switch --vhu-b-- domain B
//   domain C (169.254.41.1/16) --vhu-c (client)-- switch --vhu-d (client)-- domain D (169.254.41.2/16)
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logFilePath, makeRunDir, requireTool, waitUntil } from '../../harness/env.js';
import { guestImage } from '../support/qemu.js';
import { cli, DaemonProcess } from '../integration/support/daemon.js';
import { Libvirtd, pingReceived, qemuVersion, splitVifLibvirt, testDomainXml, type Domain, type VifLibvirt } from './lib-libvirt.js';
import { portCounters, portState, waitPortState } from './switch-daemon.js';
import { libvirtDomainXml } from '../../src/attach/libvirt.js';
import type { PortInfo } from '../../src/attach/vif-port.js';

const execFileP = promisify(execFile);

describe('libvirt domains from `vhost-switch vif --format libvirt`', () => {
  let run: string;
  let sockDir: string;
  let imgDir: string;
  let lv: Libvirtd;
  let sw: DaemonProcess;
  let qemu: string;
  let qemuVer: string;
  let qemuGid: number;
  let kernel: string;
  let initrd: string;
  let a: Domain | undefined;
  let b: Domain | undefined;

  // A host without libvirtd, virsh or QEMU makes every test below FAIL with what to install (not skip).
  let setupError: unknown;
  const needSetup = () => {
    if (setupError) throw setupError;
  };
  beforeAll(async () => {
    setupError = await setup().then(
      () => undefined,
      (e: unknown) => e,
    );
  });

  async function setup(): Promise<void> {
    qemu = requireTool('qemu-system-x86_64');
    requireTool('libvirtd');
    requireTool('virsh');
    qemuVer = await qemuVersion(qemu);
    run = makeRunDir('lv-attach');
    // libvirt-qemu must be able to traverse the run directory to reach the socket directory.
    fs.chmodSync(run, 0o711);
    lv = await Libvirtd.start(path.join(run, 'libvirt'));

    // The QEMU user's group: the socket directory and the switch's server-mode sockets belong to it.
    const { stdout } = await execFileP('id', ['-g', 'libvirt-qemu']).catch(() => {
      throw new Error("no user libvirt-qemu (libvirt's QEMU user on Debian): install libvirt-daemon-system");
    });
    qemuGid = Number(stdout.trim());
    sockDir = path.join(run, 'sock');
    fs.mkdirSync(sockDir);
    fs.chownSync(sockDir, 0, qemuGid);
    fs.chmodSync(sockDir, 0o2770);

    // libvirt's dynamic ownership chowns the kernel and initrd to the QEMU user while a domain runs: give it copies.
    const img = await guestImage();
    imgDir = path.join(run, 'img');
    fs.mkdirSync(imgDir, { mode: 0o755 });
    kernel = path.join(imgDir, 'vmlinuz');
    initrd = path.join(imgDir, 'initrd');
    fs.copyFileSync(img.kernel, kernel);
    fs.copyFileSync(img.initrd, initrd);

    const swDir = path.join(run, 'switch');
    fs.mkdirSync(swDir);
    const config = {
      switch: { threads: 1, socketDirs: [sockDir] },
      ports: ['vhu-a', 'vhu-b'].map((name) => ({ name, type: 'vhost-user', mode: 'server', socket: path.join(sockDir, name), socketGroup: qemuGid })),
    };
    fs.writeFileSync(path.join(swDir, 'switch.json'), JSON.stringify(config, null, 2));
    sw = await DaemonProcess.start(swDir, ['--config', path.join(swDir, 'switch.json')]);
  }

  afterAll(async () => {
    await lv?.stop();
    await sw?.stop();
  });

  async function vifLibvirt(port: string): Promise<VifLibvirt> {
    const r = await cli(sw.runDir, ['vif', port, '--format', 'libvirt', '--accel', 'tcg', '--qemu-version', qemuVer]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return splitVifLibvirt(r.stdout);
  }

  async function startDomain(name: string, ip: string, nics: VifLibvirt[], hotplugReady = false): Promise<Domain> {
    const consoleSocket = path.join(run, `${name}.con`);
    const consoleLog = logFilePath(`libvirt-${name}-console`);
    const xml = testDomainXml({ name, ip, nics, hotplugReady, kernel, initrd, emulator: qemu, consoleSocket, consoleLog });
    return lv.defineAndStart(name, xml, consoleSocket, consoleLog);
  }

  const macOf = (v: VifLibvirt) => /<mac address='([0-9a-f:]+)'\/>/.exec(v.interface)![1]!;

  it('doctor finds the socket directory usable by libvirt\'s QEMU user', async () => {
    needSetup();
    const r = await cli(sw.runDir, ['doctor', '--socket-dir', sockDir, '--json']);
    const checks = (JSON.parse(r.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks;
    const dirCheck = checks.find((c) => c.name === 'socket-dir');
    expect(dirCheck, r.stdout).toBeDefined();
    expect(dirCheck!.ok, dirCheck!.detail).toBe(true);
    expect(dirCheck!.detail).toMatch(/libvirt-qemu/);
  });

  it('server-mode switch ports: two domains boot, their NICs connect, they ping each other', async () => {
    needSetup();
    const va = await vifLibvirt('vhu-a');
    const vb = await vifLibvirt('vhu-b');
    // The switch listens: libvirt's side is the client, reconnecting; QEMU 7.2 TCG: vectors=0 via <qemu:override>.
    expect(va.interface).toContain(`<source type='unix' path='${path.join(sockDir, 'vhu-a')}' mode='client'>`);
    expect(va.interface).toContain("<reconnect enabled='yes' timeout='1'/>");
    expect(va.override).toContain("<qemu:device alias='ua-vhu-a'>");
    expect(va.override).toContain("<qemu:property name='vectors' type='unsigned' value='0'/>");
    expect(va.memoryBacking).toContain("<source type='memfd'/>");

    // A also gets the -global vectors=0 line: the hot-plug test below plugs a NIC into it.
    [a, b] = await Promise.all([startDomain('vs-a', '169.254.40.1/16', [va], true), startDomain('vs-b', '169.254.40.2/16', [vb])]);
    expect(await a.interfaces()).toEqual([{ type: 'vhostuser', source: path.join(sockDir, 'vhu-a'), mac: macOf(va) }]);
    await Promise.all([a.waitReady(), b.waitReady()]);
    await Promise.all([a.waitLink('eth0'), b.waitLink('eth0')]);
    await waitPortState(sw, 'vhu-a', (s) => s === 'ready');
    await waitPortState(sw, 'vhu-b', (s) => s === 'ready');
    expect((await a.runOk('cat /sys/class/net/eth0/address')).trim()).toBe(macOf(va));

    expect(pingReceived(await a.runOk('ping -c 3 -W 5 169.254.40.2', 60_000))).toEqual({ sent: 3, received: 3 });
    expect(pingReceived(await b.runOk('ping -c 3 -W 5 169.254.40.1', 60_000))).toEqual({ sent: 3, received: 3 });
    for (const p of ['vhu-a', 'vhu-b']) {
      const c = await portCounters(sw, p);
      expect(c.rxPackets).toBeGreaterThanOrEqual(6);
      expect(c.txPackets).toBeGreaterThanOrEqual(6);
    }
  }, 900_000);

  it('hot-plug: a port added while the domain runs, attach-device, traffic, detach-device, idle, port del', async () => {
    needSetup();
    if (!a || !b) throw new Error('needs the domains of the previous test');
    const hot = path.join(sockDir, 'vhu-h');
    const add = await cli(sw.runDir, ['port', 'add', 'vhu-h', '--mode', 'server', '--socket', hot, '--socket-group', String(qemuGid)]);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(fs.statSync(hot).gid).toBe(qemuGid);
    const vh = await vifLibvirt('vhu-h');
    const xmlFile = path.join(run, 'vhu-h.xml');
    fs.writeFileSync(xmlFile, vh.text); // the whole output, notes included, as a user would pass it

    await lv.virsh(['attach-device', 'vs-a', xmlFile, '--live']);
    expect((await a.interfaces()).map((i) => i.source)).toEqual([path.join(sockDir, 'vhu-a'), hot]);
    await waitPortState(sw, 'vhu-h', (s) => s === 'ready');
    // eth1 is the hot-plugged NIC: its own /24 so that traffic to 169.254.50.2 leaves through it, and
    // arp_ignore=1 so that only eth1 answers ARP for 169.254.50.1 (the replies come back through it too).
    await a.runOk(
      'i=0; while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 150 ]; do i=$((i+1)); sleep 0.2; done; ' +
        'echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/all/arp_announce; ' +
        'ip addr add 169.254.50.1/24 dev eth1 && ip link set eth1 up',
      60_000,
    );
    expect((await a.runOk('cat /sys/class/net/eth1/address')).trim()).toBe(macOf(vh));
    await a.waitLink('eth1');
    await b.runOk('ip addr add 169.254.50.2/24 dev eth0');
    const before = await portCounters(sw, 'vhu-h');
    expect(pingReceived(await a.runOk('ping -c 3 -W 5 169.254.50.2', 60_000))).toEqual({ sent: 3, received: 3 });
    const after = await portCounters(sw, 'vhu-h');
    expect(after.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(3); // echo requests from eth1
    expect(after.txPackets - before.txPackets).toBeGreaterThanOrEqual(3); // echo replies to eth1

    // Detach with the same document; the guest sees the NIC go (ACPI eject) and the port goes idle.
    await lv.virsh(['detach-device', 'vs-a', xmlFile, '--live']);
    await waitUntil(async () => (await a!.interfaces()).length === 1, 60_000, 'libvirt to drop the detached NIC', 500);
    await a.runOk('i=0; while [ -e /sys/class/net/eth1 ] && [ $i -lt 150 ]; do i=$((i+1)); sleep 0.2; done; [ ! -e /sys/class/net/eth1 ]', 60_000);
    await waitPortState(sw, 'vhu-h', (s) => s === 'listening' || s === 'connecting', 60_000);

    const del = await cli(sw.runDir, ['port', 'del', 'vhu-h']);
    expect(del).toMatchObject({ code: 0, stdout: 'port vhu-h removed\n' });
    expect(fs.existsSync(hot)).toBe(false);
    const list = JSON.parse((await cli(sw.runDir, ['port', 'list', '--json'])).stdout) as Array<{ name: string }> | { ports: Array<{ name: string }> };
    const names = (Array.isArray(list) ? list : list.ports).map((p) => p.name);
    expect(names).toEqual(['vhu-a', 'vhu-b']);
    // The other ports did not notice.
    expect(await portState(sw, 'vhu-a')).toBe('ready');
    expect(await portState(sw, 'vhu-b')).toBe('ready');
    expect(pingReceived(await a.runOk('ping -c 3 -W 5 169.254.40.2', 60_000))).toEqual({ sent: 3, received: 3 });
    expect(lv.alive()).toBe(true);
    expect(sw.alive()).toBe(true);
  }, 600_000);

  it('client-mode switch ports (QEMU listens, libvirt mode=server): two domains ping each other', async () => {
    needSetup();
    // One pair of guests at a time on this machine.
    await lv.destroyAndUndefine('vs-a');
    await lv.destroyAndUndefine('vs-b');
    a = b = undefined;
    await waitPortState(sw, 'vhu-a', (s) => s !== 'ready', 60_000);

    for (const name of ['vhu-c', 'vhu-d']) {
      const r = await cli(sw.runDir, ['port', 'add', name, '--mode', 'client', '--socket', path.join(sockDir, name)]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const vc = await vifLibvirt('vhu-c');
    const vd = await vifLibvirt('vhu-d');
    expect(vc.interface).toContain(`<source type='unix' path='${path.join(sockDir, 'vhu-c')}' mode='server'/>`);
    expect(vc.interface).not.toContain('<reconnect');

    // QEMU (libvirt-qemu) creates the sockets in the 2770 directory; `virsh start` returns once the switch,
    // retrying, has connected (QEMU waits for its vhost-user backend before running the guest).
    const [c, d] = await Promise.all([startDomain('vs-c', '169.254.41.1/16', [vc]), startDomain('vs-d', '169.254.41.2/16', [vd])]);
    expect(fs.statSync(path.join(sockDir, 'vhu-c')).isSocket()).toBe(true);
    await Promise.all([c.waitReady(), d.waitReady()]);
    await Promise.all([c.waitLink('eth0'), d.waitLink('eth0')]);
    await waitPortState(sw, 'vhu-c', (s) => s === 'ready');
    await waitPortState(sw, 'vhu-d', (s) => s === 'ready');
    expect(pingReceived(await c.runOk('ping -c 3 -W 5 169.254.41.2', 60_000))).toEqual({ sent: 3, received: 3 });
    expect(pingReceived(await d.runOk('ping -c 3 -W 5 169.254.41.1', 60_000))).toEqual({ sent: 3, received: 3 });
    for (const p of ['vhu-c', 'vhu-d']) {
      const cnt = await portCounters(sw, p);
      expect(cnt.rxPackets).toBeGreaterThanOrEqual(6);
      expect(cnt.txPackets).toBeGreaterThanOrEqual(6);
    }
  }, 900_000);

  it("src/attach/libvirt.ts libvirtDomainXml (hotplug: true): libvirt accepts the whole domain, the guest boots, its NIC gets ready", async () => {
    needSetup();
    // After the client-mode pair: one guest at a time.
    await lv.destroyAndUndefine('vs-c');
    await lv.destroyAndUndefine('vs-d');
    const port = await sw.api.call<PortInfo>('GET', '/v1/ports/vhu-a');
    expect(await portState(sw, 'vhu-a')).toBe('listening');
    const serialLog = logFilePath('libvirt-vs-e-console');
    const xml = libvirtDomainXml({
      name: 'vs-e', memoryMiB: 256, ports: [port], accel: 'tcg', qemuVersion: qemuVer, emulator: qemu,
      kernel, initrd, cmdline: 'console=ttyS0 quiet panic=-1 vs.ip=169.254.43.1/16', serialLog, hotplug: true,
    });
    expect(xml).toContain('<acpi/>');
    expect(xml).toContain("<qemu:arg value='virtio-net-pci.vectors=0'/>");
    const file = path.join(run, 'vs-e.xml');
    fs.writeFileSync(file, xml);
    try {
      await lv.virsh(['define', file]);
      await lv.virsh(['start', 'vs-e']);
      await waitUntil(() => /^VS-GUEST-READY/m.test(fs.existsSync(serialLog) ? fs.readFileSync(serialLog, 'latin1') : ''), 240_000, 'the guest of vs-e to boot', 500);
      await waitPortState(sw, 'vhu-a', (s) => s === 'ready');
    } finally {
      await lv.destroyAndUndefine('vs-e');
    }
  }, 600_000);
});
