// The real daemon driven through the real CLI: what an operator types and reads, and every error path with the
// message and exit status they get (0 ok, 1 refused by the daemon, 2 wrong arguments).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { hostAccel } from '../../src/cli/attach.js';
import { makeRunDir } from '../../harness/env.js';
import { cli, DaemonProcess } from './support/daemon.js';

const T = { timeout: 60_000 };
let runDir: string;
let d: DaemonProcess;
const run = (...args: string[]) => cli(runDir, args);

beforeAll(async () => {
  runDir = makeRunDir('cli');
  fs.mkdirSync(path.join(runDir, 'extra'));
  fs.writeFileSync(
    path.join(runDir, 'switch.json'),
    JSON.stringify({
      switch: { threads: 1, socketDirs: ['extra'] },
      ports: [
        { name: 'vhu0', mode: 'server', socket: 'vhu0.sock', mac: '52:54:00:00:00:a0' },
        { name: 'c0', mode: 'client', socket: 'extra/c0.sock', queues: 2 },
      ],
      fdb: [{ mac: '52:54:00:00:00:b0', port: 'vhu0' }],
    }),
  );
  fs.writeFileSync(path.join(runDir, 'plain-file'), 'not a socket');
  d = await DaemonProcess.start(runDir, ['--config', path.join(runDir, 'switch.json')]);
}, 30_000);

afterAll(async () => {
  if (d?.alive()) {
    const exit = await d.stop('SIGTERM');
    expect(exit.code).toBe(0);
    expect(fs.existsSync(path.join(runDir, 'control.sock'))).toBe(false);
  }
}, 30_000);

describe('daemon start', T, () => {
  it('prints how to attach QEMU to each port', () => {
    expect(d.stdout).toContain('-object memory-backend-memfd,id=mem0,size=1G,share=on');
    expect(d.stdout).toContain(`-chardev socket,id=chr-vhu0,path=${runDir}/vhu0.sock,reconnect=1`);
    expect(d.stdout).toContain(`-chardev socket,id=chr-c0,path=${runDir}/extra/c0.sock,server=on,wait=off`);
    expect(d.stdout).toContain('-netdev vhost-user,id=net-c0,chardev=chr-c0,queues=2');
    // vectors=0 (the QEMU 7.2 TCG workaround) only on a host without KVM.
    const tail = hostAccel() === 'tcg' ? ',vectors=0' : '';
    expect(d.stdout).toContain(`-device virtio-net-pci,netdev=net-vhu0,id=nic-vhu0,mac=52:54:00:00:00:a0,host_mtu=1500${tail}\n`);
  });

  it('the start hints, port add and vif --format qemu give the same QEMU arguments', async () => {
    const device = (text: string) => /-device (virtio-net-pci,netdev=net-(\S+?),\S+)/.exec(text)?.[1]?.replace(/^'|'$/g, '');
    const hint = d.stdout.split('\n').find((l) => l.includes('netdev=net-vhu0,'))!;
    const vif = (await run('vif', 'vhu0', '--format', 'qemu')).stdout;
    expect(device(vif)).toBe(device(hint));
    const added = await run('port', 'add', 'qa1', '--mac', '52:54:00:00:00:e1');
    try {
      const vifAdded = (await run('vif', 'qa1', '--format', 'qemu')).stdout;
      expect(device(added.stdout)).toBe(device(vifAdded));
      expect(added.stdout).toContain(`-chardev socket,id=chr-qa1,path=${runDir}/qa1.sock,reconnect=1`);
    } finally {
      await run('port', 'del', 'qa1');
    }
  });

  it('logs one structured line per event, with the port name', () => {
    expect(d.stderr).toMatch(/^time=\S+ level=info msg="port added" port=vhu0 id=\d+ origin=config/m);
    expect(d.stderr).toMatch(/level=info msg="control socket ready" socket=\S+control.sock ports=2/);
  });

  it('control socket 0660; server port socket created', () => {
    expect(fs.statSync(path.join(runDir, 'control.sock')).mode & 0o777).toBe(0o660);
    expect(fs.lstatSync(path.join(runDir, 'vhu0.sock')).isSocket()).toBe(true);
  });
});

describe('ports', T, () => {
  it('port list and show give a host port\'s type and interface, not a socket', async () => {
    const tap = `vsl${process.pid % 100000}`;
    expect((await run('port', 'add', 'tl1', '--type', 'tap', '--iface', tap)).code).toBe(0);
    try {
      expect((await run('port', 'list')).stdout).toMatch(new RegExp(`^tl1\\s+\\d+\\s+tap\\s+\\S+\\s+1\\s+0\\s+1500\\s+-\\s+api\\s+${tap}$`, 'm'));
      const show = (await run('port', 'show', 'tl1')).stdout;
      expect(show).toMatch(new RegExp(`^iface\\s+${tap}$`, 'm'));
      expect(show).not.toMatch(/^socket\s/m);
    } finally {
      await run('port', 'del', 'tl1');
    }
  });

  it('port add --may-exist: the same port again is fine, the same name with other settings is refused', async () => {
    expect((await run('port', 'add', 'me1', '--mtu', '2000', '--may-exist')).code).toBe(0);
    try {
      const again = await run('port', 'add', 'me1', '--mtu', '2000', '--may-exist', '--json');
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ name: 'me1', mtu: 2000 });
      const other = await run('port', 'add', 'me1', '--mtu', '1500', '--may-exist');
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/port "me1" exists with a different mtu \(HTTP 409\)/);
      expect((await run('port', 'add', 'me1', '--mtu', '2000')).stderr).toMatch(/already exists/);
    } finally {
      await run('port', 'del', 'me1');
    }
  });

  it('port list shows config ports; --json for machines', async () => {
    const r = await run('port', 'list');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+ID\s+TYPE\s+STATE/);
    expect(r.stdout).toMatch(/^vhu0\s+\d+\s+vhost-user:server\s+listening\s+1\s+0\s+1500\s+52:54:00:00:00:a0\s+config/m);
    expect(r.stdout).toMatch(/^c0\s+\d+\s+vhost-user:client\s+connecting\s+2/m);
    const j = JSON.parse((await run('port', 'list', '--json')).stdout);
    expect(j.map((p: { name: string }) => p.name)).toEqual(['vhu0', 'c0']);
  });

  it('port add / show / del', async () => {
    const add = await run('port', 'add', 'vm1', '--mode', 'server', '--socket', 'vm1.sock', '--queues', '2', '--vlan', '10', '--mtu', '9000', '--mac', '52:54:00:00:00:01');
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toContain(`port vm1 added`);
    expect(add.stdout).toContain('host_mtu=9000');
    expect(fs.lstatSync(path.join(runDir, 'vm1.sock')).isSocket()).toBe(true);

    const show = await run('port', 'show', 'vm1');
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^queues\s+2$/m);
    expect(show.stdout).toMatch(/^vlan\s+10$/m);
    expect(show.stdout).toMatch(/^origin\s+api$/m);
    expect(show.stdout).toMatch(/^QUEUE\s+STARTED/m);
    const j = JSON.parse((await run('port', 'show', 'vm1', '--json')).stdout);
    expect(j).toMatchObject({ name: 'vm1', mtu: 9000, mac: '52:54:00:00:00:01', stats: { rxPackets: 0 } });

    const del = await run('port', 'del', 'vm1');
    expect(del).toMatchObject({ code: 0, stdout: 'port vm1 removed\n' });
    expect(fs.existsSync(path.join(runDir, 'vm1.sock'))).toBe(false);
  });

  it('port add --port-security --allowed-mac --allowed-ip: shown by port show, stored, counted under spoofed', async () => {
    const add = await run('port', 'add', 'sec1', '--mac', '52:54:00:00:00:51', '--port-security', '--allowed-mac', '52:54:00:00:00:52',
      '--allowed-ip', '169.254.51.1,169.254.52.0/24', '--allowed-ip', 'FE80::5054:FF:FE00:51');
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    const show = await run('port', 'show', 'sec1');
    expect(show.stdout).toMatch(
      /^port security\s+on \(MACs 52:54:00:00:00:51, 52:54:00:00:00:52; addresses 169\.254\.51\.1, 169\.254\.52\.0\/24, fe80::5054:ff:fe00:51\)$/m,
    );
    expect(show.stdout).toMatch(/^drops\s+0 \(.*spoofed 0.*\)$/m);
    const j = JSON.parse((await run('port', 'show', 'sec1', '--json')).stdout);
    expect(j).toMatchObject({ portSecurity: true, allowedMacs: ['52:54:00:00:00:52'], allowedIps: ['169.254.51.1', '169.254.52.0/24', 'fe80::5054:ff:fe00:51'] });
    expect(j.stats.drops.spoofed).toBe(0);
    const stored = JSON.parse(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8'));
    expect(stored.ports.find((p: { name: string }) => p.name === 'sec1')).toMatchObject({ portSecurity: true, allowedIps: j.allowedIps });
    expect((await run('port', 'del', 'sec1')).code).toBe(0);

    const macOnly = await run('port', 'add', 'sec2', '--mac', '52:54:00:00:00:53', '--port-security');
    expect(macOnly.code).toBe(0);
    expect((await run('port', 'show', 'sec2')).stdout).toMatch(/^port security\s+on \(MACs 52:54:00:00:00:53; addresses any \(only the source MAC is checked\)\)$/m);
    expect((await run('port', 'show', 'vhu0')).stdout).toMatch(/^port security\s+off$/m);
    expect((await run('port', 'del', 'sec2')).code).toBe(0);

    const noMac = await run('port', 'add', 'sec3', '--port-security');
    expect(noMac.code).toBe(1);
    expect(noMac.stderr).toContain('mac: is required with portSecurity');
    const noSec = await run('port', 'add', 'sec3', '--mac', '52:54:00:00:00:54', '--allowed-ip', '169.254.51.1');
    expect(noSec.code).toBe(1);
    expect(noSec.stderr).toContain('allowedIps: needs portSecurity: true');
    const badIp = await run('port', 'add', 'sec3', '--mac', '52:54:00:00:00:54', '--port-security', '--allowed-ip', '169.254.51.1/40');
    expect(badIp.code).toBe(1);
    expect(badIp.stderr).toContain('allowedIps[0]: must be an IPv4 or IPv6 address or prefix');
  });

  it('vif prints attach instructions for a port', async () => {
    const r = await run('vif', 'vhu0', '--format', 'qemu');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('vhost-user');
    expect(r.stdout).toContain(path.join(runDir, 'vhu0.sock'));
  });
});

describe('stats and fdb', T, () => {
  it('stats: totals per port and per thread, --json, --watch', async () => {
    const r = await run('stats');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^PORT\s+STATE\s+RX PKTS/m);
    expect(r.stdout).toMatch(/^THREAD\s+PACKETS\s+CYCLES\/PKT/m);
    const j = JSON.parse((await run('stats', '--json')).stdout);
    expect(j.ports.map((p: { name: string }) => p.name)).toEqual(['vhu0', 'c0']);
    expect(j.threads[0]).toHaveProperty('cyclesPerPacket');
    const w = await run('stats', '--watch', '--interval', '0.2', '--count', '2');
    expect(w.code).toBe(0);
    expect(w.stdout.match(/RX PPS/g)).toHaveLength(2);
    expect(w.stdout).toMatch(/^vhu0\s+listening\s+0\s+0\s+0\s+0\s+0\s+0$/m);
  });

  it('fdb add, list, flush', async () => {
    const add = await run('fdb', 'add', '52:54:00:00:00:0c', '--port', 'vhu0', '--vlan', '0');
    expect(add).toMatchObject({ code: 0, stdout: 'static entry 52:54:00:00:00:0c vlan 0 → vhu0\n' });
    const list = await run('fdb', 'list');
    expect(list.stdout).toMatch(/^52:54:00:00:00:0c\s+0\s+vhu0\s+static/m);
    expect(list.stdout).toMatch(/^52:54:00:00:00:b0\s+0\s+vhu0\s+static/m); // from the config file
    expect(list.stdout).toMatch(/^52:54:00:00:00:a0\s+0\s+vhu0\s+static/m); // the port's own MAC
    expect((await run('fdb', 'flush', '--port', 'vhu0')).code).toBe(0);
    expect((await run('fdb', 'flush')).stdout).toBe('forwarding table flushed\n');
    const j = JSON.parse((await run('fdb', 'list', '--json')).stdout);
    expect(j.filter((e: { static: boolean }) => e.static)).toHaveLength(3);
  });

  it('fdb del: an API entry (gone from state.json too); the config\'s entries and a port\'s own MAC are refused', async () => {
    expect((await run('fdb', 'add', '52:54:00:00:00:0d', '--port', 'vhu0')).code).toBe(0);
    expect(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8')).toContain('52:54:00:00:00:0d');
    expect(await run('fdb', 'del', '52:54:00:00:00:0d', '--vlan', '0')).toMatchObject({ code: 0, stdout: 'static entry 52:54:00:00:00:0d vlan 0 removed\n' });
    expect(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8')).not.toContain('52:54:00:00:00:0d');
    const again = await run('fdb', 'del', '52:54:00:00:00:0d');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no entry for 52:54:00:00:00:0d vlan 0 \(HTTP 404\)/);
    expect((await run('fdb', 'del', '52:54:00:00:00:b0')).stderr).toMatch(/declared in the config file.*\(HTTP 409\)/);
    expect((await run('fdb', 'del', '52:54:00:00:00:a0')).stderr).toMatch(/port vhu0's own MAC.*\(HTTP 409\)/);
    expect((await run('fdb', 'del', '52:54:00:00:00:b0', '--vlan', 'x')).stderr).toMatch(/vlan/);
    expect((await run('fdb', 'del')).code).toBe(2);
  });

  it('version reports the CLI and the daemon', async () => {
    const j = JSON.parse((await run('version', '--json')).stdout);
    expect(j.cli).toMatch(/^\d+\.\d+\.\d+/);
    expect(j.daemon.features).toContain('state-restore');
  });
});
describe('VLAN modes and static entries', T, () => {
  it('a static entry on a VLAN the port is not on is refused, naming both VLANs; its own VLAN is accepted', async () => {
    expect((await run('port', 'add', 'vl1', '--socket', 'vl1.sock', '--vlan', '100')).code).toBe(0);
    try {
      const bad = await run('fdb', 'add', '52:54:00:aa:bb:cc', '--port', 'vl1', '--vlan', '7');
      expect(bad.stderr.trim()).toBe('vhost-switch: vlan: port "vl1" is an access port of VLAN 100, not on VLAN 7 (HTTP 422)');
      expect(bad.code).toBe(1);
      const untagged = await run('fdb', 'add', '52:54:00:aa:bb:cc', '--port', 'vl1');
      expect(untagged.stderr.trim()).toMatch(/port "vl1" is an access port of VLAN 100, not on VLAN 0/);
      const list = JSON.parse((await run('fdb', 'list', '--json')).stdout) as Array<{ mac: string }>;
      expect(list.map((e) => e.mac)).not.toContain('52:54:00:aa:bb:cc');
      expect((await run('fdb', 'add', '52:54:00:aa:bb:cc', '--port', 'vl1', '--vlan', '100')).code).toBe(0);
    } finally {
      await run('port', 'del', 'vl1');
    }
  });

  it('guest trunk: --vlan-mode trunk --allowed-vlans, shown by port show; entries only on its VLANs', async () => {
    const add = await run('port', 'add', 'gt1', '--socket', 'gt1.sock', '--vlan-mode', 'trunk', '--allowed-vlans', '100,200-210', '--vlan', '5');
    expect(add.stderr).toBe('');
    expect(add.stdout).toContain('a trunk of native VLAN 5 and tagged VLANs 100,200-210');
    try {
      const show = await run('port', 'show', 'gt1');
      expect(show.stdout).toMatch(/^vlan mode\s+trunk$/m);
      expect(show.stdout).toMatch(/^vlan\s+5 \(native, untagged\)$/m);
      expect(show.stdout).toMatch(/^allowed vlans\s+100,200-210$/m);
      expect(JSON.parse((await run('port', 'show', 'gt1', '--json')).stdout)).toMatchObject({ vlanMode: 'trunk', trunk: true, vlan: 5, allowedVlans: [100, ...Array.from({ length: 11 }, (_, i) => 200 + i)] });
      expect((await run('port', 'list')).stdout).toMatch(/^gt1\s+\d+\s+vhost-user:server\s+listening\s+1\s+5\+T:100,200-210\s/m);
      expect((await run('fdb', 'add', '52:54:00:aa:bb:01', '--port', 'gt1', '--vlan', '205')).code).toBe(0);
      expect((await run('fdb', 'add', '52:54:00:aa:bb:02', '--port', 'gt1', '--vlan', '5')).code).toBe(0);
      const bad = await run('fdb', 'add', '52:54:00:aa:bb:03', '--port', 'gt1', '--vlan', '300');
      expect(bad.stderr.trim()).toBe('vhost-switch: vlan: port "gt1" is a trunk of native VLAN 5 and tagged VLANs 100,200-210, not on VLAN 300 (HTTP 422)');
    } finally {
      await run('port', 'del', 'gt1');
    }
  });

  it('--trunk is vlanMode trunk with every VLAN allowed', async () => {
    expect((await run('port', 'add', 'gt2', '--socket', 'gt2.sock', '--trunk')).code).toBe(0);
    try {
      expect(JSON.parse((await run('port', 'show', 'gt2', '--json')).stdout)).toMatchObject({ vlanMode: 'trunk', trunk: true, vlan: 0 });
      expect((await run('port', 'show', 'gt2')).stdout).toMatch(/^allowed vlans\s+all \(1-4094\)$/m);
    } finally {
      await run('port', 'del', 'gt2');
    }
  });
});

describe('errors: message and exit status', T, () => {
  const cases: Array<[string[], number, RegExp]> = [
    [['port', 'add', 'vhu0'], 1, /^vhost-switch: name: port "vhu0" already exists \(HTTP 409\)$/],
    [['port', 'add', 'x', '--queues', 'abc'], 1, /queues: must be a number \(queue pairs\) \(HTTP 422\)/],
    [['port', 'add', 'x', '--queues', '0', '--mtu', '10'], 1, /queues: must be at least 1; mtu: must be at least 68/],
    [['port', 'add', 'x', '--mode', 'both'], 2, /option '--mode <mode>' argument 'both' is invalid\. Allowed choices are server, client/],
    [['port', 'add', 'x', '--vlan', '4095'], 1, /vlan: must be at most 4094/],
    [['port', 'add', 'x', '--vlan-mode', 'hybrid'], 2, /argument 'hybrid' is invalid\. Allowed choices are access, trunk/],
    [['port', 'add', 'x', '--allowed-vlans', '100'], 1, /allowedVlans: is only for trunk ports \(vlanMode "trunk"\) \(HTTP 422\)/],
    [['port', 'add', 'x', '--trunk', '--allowed-vlans', '100,5000'], 1, /allowedVlans: VLAN 5000 is not an integer 1-4094/],
    [['port', 'add', 'x', '--trunk', '--vlan-mode', 'access'], 1, /trunk: true contradicts vlanMode "access"/],
    [['port', 'add', 'x', '--mac', 'ff:ff:ff:ff:ff:ff'], 1, /mac: must be a unicast address/],
    [['port', 'add', 'x', '--socket', '/etc/x.sock'], 1, /socket: \/etc\/x.sock is outside the allowed socket directories/],
    [['port', 'add', 'x', '--socket', 'plain-file'], 1, /socket: \S+plain-file exists and is not a socket; refusing to replace it \(HTTP 422\)/],
    [['port', 'add', 'x', '--socket', 'vhu0.sock'], 1, /socket: \S+vhu0.sock is already used by port "vhu0" \(HTTP 409\)/],
    [['port', 'add', 'x', '--socket-group', 'no-such-group-x'], 1, /socketGroup: no group named "no-such-group-x"/],
    [['port', 'add', 'bad/name'], 1, /name: must be 1-64 characters/],
    [['port', 'del', 'vhu0'], 1, /name: port "vhu0" is declared in the config file; remove it there and reload \(SIGHUP\) \(HTTP 409\)/],
    [['port', 'del', 'nope'], 1, /name: no port named "nope" \(HTTP 404\)/],
    [['port', 'show', 'nope'], 1, /no port named "nope" \(HTTP 404\)/],
    [['fdb', 'add', '52:54:00:00:00:01', '--port', 'nope'], 1, /port: no port named "nope" \(HTTP 422\)/],
    [['fdb', 'add', 'not-a-mac', '--port', 'vhu0'], 1, /mac: must be a MAC address/],
    [['fdb', 'flush', '--port', 'nope'], 1, /no port named "nope" \(HTTP 404\)/],
    [['vif', 'nope', '--format', 'qemu'], 1, /no port named "nope"/],
    [['port'], 2, /Usage: vhost-switch port \[options\] \[command\]/],
    [['port', 'frob'], 2, /unknown command 'frob'/],
    [['port', 'ad', 'x'], 2, /unknown command 'ad'\n\(Did you mean add\?\)/],
    [['port', 'add'], 2, /missing required argument 'name'/],
    [['port', 'add', 'a', 'b'], 2, /too many arguments for 'add'\. Expected 1 argument but got 2/],
    [['port', 'add', 'a', '--colour', 'red'], 2, /unknown option '--colour'/],
    [['port', 'add', 'a', '--vlna', '3'], 2, /unknown option '--vlna'\n\(Did you mean --vlan\?\)/],
    [['fdb', 'add', '52:54:00:00:00:01'], 2, /required option '--port <name>' not specified/],
    [['stats', '--watch', '--interval', '0'], 2, /--interval must be between/],
    [['vif', 'vhu0', '--format', 'xml'], 2, /--format must be one of libvirt, qemu, nova, json/],
    [['frobnicate'], 2, /unknown command 'frobnicate'/],
  ];

  it.each(cases)('%j → exit %i', async (args, code, message) => {
    const before = (await d.api.call<{ ports: unknown[] }>('GET', '/v1/ports')).ports;
    const r = await run(...args);
    expect(r.stderr.trim()).toMatch(message);
    expect(r.code).toBe(code);
    expect(r.stdout).toBe('');
    expect((await d.api.call<{ ports: unknown[] }>('GET', '/v1/ports')).ports).toEqual(before);
  });

  it('--json errors are the API error body', async () => {
    const r = await run('port', 'add', 'vhu0', '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stderr)).toEqual({ error: 'name: port "vhu0" already exists', field: 'name', reason: 'port "vhu0" already exists' });
  });

  it('no daemon at --control: says so and how to fix it', async () => {
    const r = await cli(undefined, ['port', 'list', '--control', path.join(runDir, 'nothing.sock')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach vhost-switch at \S+nothing.sock \(ENOENT\): is the daemon running\?/);
  });
});
