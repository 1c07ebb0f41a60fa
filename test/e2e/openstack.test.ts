// OpenStack through real components: RabbitMQ, neutron-server (ML2, mechanism_drivers = vhost_switch, noauth,
// SQLite), the project's vhost-switch-neutron-agent and the vhost-switch daemon. Everything is driven through
// Neutron's REST API and checked in Neutron (bindings, statuses, agents) and in the switch (its control API).
// Nova's own code renders the interface of each bound port, and a private libvirtd boots domains with it on two
// compute hosts (a switch and an agent each, their trunk NICs the two ends of a veth pair). All services listen on
// 127.0.0.1 only; guests use link-local addresses.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { libvirtMemoryBackingElement, libvirtVectorsGlobalElement } from '../../src/attach/libvirt.js';
import { renderXml } from '../../src/attach/xml.js';
import { logFilePath, makeRunDir, requireTool, waitUntil } from '../../harness/env.js';
import { guestImage } from '../support/qemu.js';
import { cli, DaemonProcess } from '../integration/support/daemon.js';
import { Libvirtd, pingReceived, testDomainXml, type Domain } from './lib-libvirt.js';
import { portCounters, waitPortState } from './switch-daemon.js';
import { Agent, installOpenstackPackage, Neutron, novaRender, startRabbit, type Rabbit } from './lib-openstack.js';

const HOST = 'compute-e2e';
// A second compute host: its own switch and agent; the two trunk NICs are the ends of one veth pair (the wire).
const HOST2 = 'compute-e2e-2';
const ip = (...a: string[]) => execFileSync('ip', a, { encoding: 'utf8' });

interface NPort {
  id: string;
  status: string;
  mac_address: string;
  network_id: string;
  fixed_ips: { ip_address: string }[];
  'binding:vif_type': string;
  'binding:vif_details': Record<string, unknown>;
  'binding:host_id': string;
}

interface SPort {
  name: string;
  id: number;
  type: string;
  mode: string;
  socket: string;
  vlan: number;
  vlanMode: string;
  mac?: string;
  mtu: number;
  iface?: string;
  portSecurity: boolean;
  allowedIps: string[];
  allowedMacs: string[];
}

describe('OpenStack: Neutron ML2 vhost_switch driver and agent', () => {
  let dir: string;
  let site: string;
  let rabbit: Rabbit;
  let neutron: Neutron;
  let agent: Agent;
  let sw: DaemonProcess;
  let swArgs: string[];
  let socketDir: string;
  let agent2: Agent;
  let sw2: DaemonProcess;
  let socketDir2: string;
  const uplink = `vsos${process.pid % 10000}`;
  const uplink2 = `${uplink}p`;
  const nets: Record<string, string> = {};
  const subnets: Record<string, string> = {};
  let lv: Libvirtd | undefined;
  const vms: Record<string, { dom: Domain; port: NPort; ip: string; sw: DaemonProcess }> = {};

  const switchPorts = async (): Promise<SPort[]> => ((await sw.api.request('GET', '/v1/ports')).body as { ports: SPort[] }).ports;
  const switchPort = async (neutronId: string): Promise<SPort | undefined> =>
    (await switchPorts()).find((p) => p.name === 'vhu' + neutronId.slice(0, 11));
  const getPort = async (id: string): Promise<NPort> => (await neutron.ok<{ port: NPort }>('GET', `/ports/${id}`)).port;
  const waitStatus = (id: string, status: string, ms = 60_000) =>
    waitUntil(async () => (await getPort(id)).status === status, ms, `port ${id} ${status}`, 500);

  async function network(name: string, body: Record<string, unknown>, cidr?: string): Promise<string> {
    const n = await neutron.ok<{ network: { id: string } }>('POST', '/networks', { network: { name, ...body } });
    if (cidr) {
      const sub = await neutron.ok<{ subnet: { id: string } }>('POST', '/subnets', {
        // Neutron picks addresses from .100-.200; the VMs ask for fixed ones below .100
        subnet: {
          network_id: n.network.id,
          ip_version: 4,
          cidr,
          enable_dhcp: false,
          gateway_ip: null,
          allocation_pools: [{ start: cidr.replace(/0\/24$/, '100'), end: cidr.replace(/0\/24$/, '200') }],
        },
      });
      subnets[name] = sub.subnet.id;
    }
    nets[name] = n.network.id;
    return n.network.id;
  }

  async function port(net: string, extra: Record<string, unknown> = {}, host = HOST): Promise<NPort> {
    const r = await neutron.ok<{ port: NPort }>('POST', '/ports', {
      port: { network_id: nets[net], 'binding:host_id': host, device_owner: 'compute:nova', device_id: randomUUID(), ...extra },
    });
    return r.port;
  }

  function startAgent(host = HOST, dirForSockets = socketDir, switchDir = 'switch', iface = uplink): Agent {
    return Agent.start(dir, {
      host,
      transportUrl: rabbit.url,
      site,
      controlSocket: path.join(dir, switchDir, 'control.sock'),
      socketDir: dirForSockets,
      mappings: { physnet1: iface },
    });
  }

  /** A socket directory QEMU (libvirt's unprivileged user) can create sockets in: its group's, setgid. */
  function qemuSocketDir(name: string): string {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    fs.chownSync(d, 0, Number(execFileSync('id', ['-g', 'libvirt-qemu'], { encoding: 'utf8' }).trim()));
    fs.chmodSync(d, 0o2770);
    return d;
  }

  async function startSwitchIn(name: string, sockets: string): Promise<{ d: DaemonProcess; args: string[] }> {
    const runDir = path.join(dir, name);
    fs.mkdirSync(runDir);
    const config = path.join(runDir, 'switch.json');
    fs.writeFileSync(config, JSON.stringify({ switch: { threads: 1, socketDirs: [sockets] }, ports: [] }));
    const args = ['--config', config];
    return { d: await DaemonProcess.start(runDir, args), args };
  }

  beforeAll(async () => {
    dir = makeRunDir('openstack');
    site = installOpenstackPackage(dir);
    fs.chmodSync(dir, 0o711); // QEMU's user traverses it to the socket directories
    socketDir = qemuSocketDir('vhu');
    socketDir2 = qemuSocketDir('vhu2');
    ip('link', 'add', uplink, 'type', 'veth', 'peer', 'name', uplink2);
    ip('link', 'set', uplink, 'up');
    ip('link', 'set', uplink2, 'up');
    ({ d: sw, args: swArgs } = await startSwitchIn('switch', socketDir));
    ({ d: sw2 } = await startSwitchIn('switch2', socketDir2));
    rabbit = await startRabbit(dir);
    neutron = await Neutron.start(dir, {
      transportUrl: rabbit.url,
      site,
      vlanRanges: ['physnet1:100:199', 'physnet2:200:299'],
      agentDownTime: 9, // at least twice the agents' report_interval (3 s)
    });
    agent = startAgent();
    agent2 = startAgent(HOST2, socketDir2, 'switch2', uplink2);
  }, 240_000);

  afterAll(async () => {
    await lv?.stop();
    await agent?.stop();
    await agent2?.stop();
    await neutron?.service.stop();
    await rabbit?.stop();
    await sw?.stop();
    await sw2?.stop();
    try {
      ip('link', 'del', uplink);
    } catch {
      /* never created */
    }
  }, 60_000);

  it('the agents of both hosts report their state: alive in GET /v2.0/agents with socket dir, mappings and switch version', async () => {
    const a = await waitUntil(
      async () => {
        const r = await neutron.ok<{ agents: { agent_type: string; host: string; alive: boolean; configurations: Record<string, unknown> }[] }>('GET', '/agents');
        return r.agents.find((x) => x.agent_type === 'vhost-switch agent' && x.host === HOST && x.alive && x.configurations.switch_version);
      },
      60_000,
      'agent alive with switch_version',
      1000,
    );
    expect(a.configurations).toMatchObject({
      socket_dir: socketDir,
      interface_mappings: { physnet1: uplink },
      network_types: ['flat', 'vlan'],
      port_security: true,
      switch_version: expect.any(String),
    });
    const second = await waitUntil(
      async () => (await neutron.ok<{ agents: { host: string; alive: boolean; configurations: Record<string, unknown> }[] }>('GET', '/agents')).agents.find((x) => x.host === HOST2 && x.alive && x.configurations.switch_version),
      60_000,
      'second agent alive',
      1000,
    );
    expect(second.configurations).toMatchObject({ socket_dir: socketDir2, interface_mappings: { physnet1: uplink2 } });
  }, 90_000);

  let p1: NPort, p2: NPort, p3: NPort;

  it('binds ports on a VLAN provider network: vif_type vhostuser, the vif_details, ACTIVE, in the switch with VLAN and MAC', async () => {
    await network('net1', { 'provider:network_type': 'vlan', 'provider:physical_network': 'physnet1', 'provider:segmentation_id': 101 }, '169.254.10.0/24');
    await network('net2', { 'provider:network_type': 'vlan', 'provider:physical_network': 'physnet1', 'provider:segmentation_id': 102 }, '169.254.20.0/24');
    p1 = await port('net1');
    p2 = await port('net1');
    p3 = await port('net2');
    for (const p of [p1, p2, p3]) {
      expect(p['binding:vif_type']).toBe('vhostuser');
      expect(p['binding:vif_details']).toEqual({
        vhostuser_socket: path.join(socketDir, 'vhu' + p.id.slice(0, 11)),
        vhostuser_mode: 'server',
        vhostuser_ovs_plug: false,
        port_filter: true,
        connectivity: 'l2',
      });
    }
    for (const [p, vlan] of [[p1, 101], [p2, 101], [p3, 102]] as const) {
      await waitStatus(p.id, 'ACTIVE');
      const s = (await switchPort(p.id))!;
      expect(s).toMatchObject({
        type: 'vhost-user',
        mode: 'client',
        socket: path.join(socketDir, 'vhu' + p.id.slice(0, 11)),
        vlan,
        vlanMode: 'access',
        mac: p.mac_address,
        mtu: 1500,
        portSecurity: true,
      });
      expect(s.allowedIps).toContain(p.fixed_ips[0].ip_address);
    }
    const up = (await switchPorts()).find((s) => s.type === 'nic');
    expect(up).toMatchObject({ iface: uplink, vlanMode: 'trunk' });
  }, 120_000);

  it('vhost-switch vif --format nova prints the vif_details Neutron holds', async () => {
    const r = await cli(path.join(dir, 'switch'), ['vif', 'vhu' + p1.id.slice(0, 11), '--format', 'nova', '--neutron-port-id', p1.id]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { neutron_port_binding: { 'binding:vif_details': unknown } };
    // ML2 adds bound_drivers (which driver bound each level) to what the driver set.
    const { bound_drivers: boundDrivers, ...details } = (await getPort(p1.id))['binding:vif_details'];
    expect(boundDrivers).toEqual({ '0': 'vhost_switch' });
    expect(doc.neutron_port_binding['binding:vif_details']).toEqual(details);
  });

  it("Nova's own code turns the bound port into an os-vif VIFVHostUser (noop plugin) and a vhostuser <interface>", async () => {
    const p = await getPort(p1.id);
    const n = (await neutron.ok<{ network: unknown }>('GET', `/networks/${p.network_id}`)).network;
    const r = novaRender(p, n);
    const sock = path.join(socketDir, 'vhu' + p.id.slice(0, 11));
    expect(r.osvif).toEqual({ object: 'VIFVHostUser', plugin: 'noop', mode: 'server', path: sock, vif_name: 'tap' + p.id.slice(0, 11) });
    expect(r.xml).toContain('<interface type="vhostuser">');
    expect(r.xml).toContain(`<mac address="${p.mac_address}"/>`);
    expect(r.xml).toContain(`<source type="unix" mode="server" path="${sock}"/>`);
  }, 60_000);

  it('libvirt domains with the <interface> Nova renders: one network pings, another VLAN cannot, spoofing gets nothing', async () => {
    const qemu = requireTool('qemu-system-x86_64');
    lv = await Libvirtd.start(path.join(dir, 'libvirt'));
    // libvirt's dynamic ownership chowns the kernel and initrd to the QEMU user while a domain runs: copies.
    const img = await guestImage();
    const kernel = path.join(dir, 'vmlinuz');
    const initrd = path.join(dir, 'initrd');
    fs.copyFileSync(img.kernel, kernel);
    fs.copyFileSync(img.initrd, initrd);
    // vm-a and vm-b on this host; vm-x (same network) and vm-c (VLAN 102) on the second host, across the wire.
    const plan: Array<[string, string, string, string]> = [
      ['vm-a', 'net1', '169.254.10.11', HOST],
      ['vm-b', 'net1', '169.254.10.12', HOST],
      ['vm-x', 'net1', '169.254.10.13', HOST2],
      ['vm-c', 'net2', '169.254.20.14', HOST2],
    ];
    for (const [name, net, addr, host] of plan) {
      const p = await port(net, { fixed_ips: [{ subnet_id: subnets[net], ip_address: addr }] }, host);
      expect(p['binding:vif_details'].vhostuser_socket).toBe(path.join(host === HOST ? socketDir : socketDir2, 'vhu' + p.id.slice(0, 11)));
      await waitStatus(p.id, 'ACTIVE');
      const bound = await getPort(p.id);
      const n = (await neutron.ok<{ network: unknown }>('GET', `/networks/${p.network_id}`)).network;
      const nova = novaRender(bound, n);
      const consoleSocket = path.join(dir, `${name}.con`);
      const consoleLog = logFilePath(`libvirt-${name}-console`);
      const xml = testDomainXml({
        name,
        // one /16 for all: vm-c would reach the others at L3 if VLAN 102 were not kept apart from VLAN 101
        ip: `${addr}/16`,
        nics: [
          {
            interface: nova.xml.trim(),
            memoryBacking: renderXml(libvirtMemoryBackingElement('memfd')),
            // QEMU 7.2 under TCG: virtio-net without MSI-X; a -global leaves Nova's <interface> as Nova wrote it
            commandline: renderXml(libvirtVectorsGlobalElement()),
            text: nova.xml,
          },
        ],
        hotplugReady: true,
        kernel,
        initrd,
        emulator: qemu,
        consoleSocket,
        consoleLog,
      });
      vms[name] = { dom: await lv.defineAndStart(name, xml, consoleSocket, consoleLog), port: bound, ip: addr, sw: host === HOST ? sw : sw2 };
    }
    await Promise.all(Object.values(vms).map((v) => v.dom.waitReady()));
    await Promise.all(Object.values(vms).map((v) => v.dom.waitLink('eth0')));
    for (const v of Object.values(vms)) {
      // the switch, as the vhost-user client, connected to the socket QEMU created
      await waitPortState(v.sw, 'vhu' + v.port.id.slice(0, 11), (st) => st === 'ready', 60_000);
      expect((await v.dom.runOk('cat /sys/class/net/eth0/address')).trim()).toBe(v.port.mac_address);
    }
    const { 'vm-a': a, 'vm-b': b, 'vm-x': x, 'vm-c': c } = vms;
    expect(pingReceived(await a!.dom.runOk(`ping -c 3 -W 5 ${b!.ip}`, 60_000))).toEqual({ sent: 3, received: 3 });
    expect(pingReceived(await x!.dom.runOk(`ping -c 3 -W 5 ${a!.ip}`, 60_000))).toEqual({ sent: 3, received: 3 });
    // vm-c is on net2 (VLAN 102): nothing of VLAN 101 reaches it, on the wire or in either switch.
    expect(pingReceived((await c!.dom.run(`ping -c 3 -W 2 ${a!.ip}`, 60_000)).output).received).toBe(0);

    // vm-a claims vm-b's address (gratuitous ARP, then answers ARP for it): port security drops that.
    const name = (p: NPort) => 'vhu' + p.id.slice(0, 11);
    const before = await portCounters(sw, name(a!.port));
    await a!.dom.runOk(`ip addr add ${b!.ip}/16 dev eth0 && arping -U -c 3 -I eth0 ${b!.ip}`, 30_000);
    await x!.dom.runOk('ip neigh flush dev eth0');
    expect(pingReceived(await x!.dom.runOk(`ping -c 3 -W 5 ${b!.ip}`, 60_000))).toEqual({ sent: 3, received: 3 });
    expect(await x!.dom.runOk(`ip neigh show ${b!.ip}`)).toContain(b!.port.mac_address);
    const after = await portCounters(sw, name(a!.port));
    expect((after.drops.spoofed ?? 0) - (before.drops.spoofed ?? 0)).toBeGreaterThanOrEqual(3);
    await a!.dom.runOk(`ip addr del ${b!.ip}/16 dev eth0`);
  }, 600_000);

  it('a port on an unmapped physnet or of an unsupported network type is not bound (binding_failed, logged)', async () => {
    await network('unmapped', { 'provider:network_type': 'vlan', 'provider:physical_network': 'physnet2', 'provider:segmentation_id': 200 });
    const bad = await port('unmapped');
    expect(bad['binding:vif_type']).toBe('binding_failed');
    expect(neutron.log()).toMatch(/vhost_switch does not bind segment .* physnet physnet2/);
    await network('flatnet2', { 'provider:network_type': 'flat', 'provider:physical_network': 'physnet2' });
    expect((await port('flatnet2'))['binding:vif_type']).toBe('binding_failed');
    await network('localnet', { 'provider:network_type': 'local' });
    expect((await port('localnet'))['binding:vif_type']).toBe('binding_failed');
    expect(neutron.log()).toMatch(/vhost_switch does not bind segment .*\(local, physnet None\)/);
    expect(await switchPort(bad.id)).toBeUndefined();
  }, 60_000);

  it('allowed address pairs update the switch port; the other ports are not touched', async () => {
    const before = await switchPorts();
    await neutron.ok('PUT', `/ports/${p2.id}`, { port: { allowed_address_pairs: [{ ip_address: '169.254.99.0/24' }] } });
    await waitUntil(async () => (await switchPort(p2.id))?.allowedIps.includes('169.254.99.0/24'), 30_000, 'pair in the switch', 500);
    const after = await switchPorts();
    const id = (ps: SPort[], n: NPort) => ps.find((s) => s.name === 'vhu' + n.id.slice(0, 11))!.id;
    expect(id(after, p1)).toBe(id(before, p1));
    expect(id(after, p3)).toBe(id(before, p3));
    await waitStatus(p2.id, 'ACTIVE');
  }, 60_000);

  it("network MTU changed in Neutron: that network's switch ports follow (network_update), the others are untouched", async () => {
    const before = await switchPorts();
    await neutron.ok('PUT', `/networks/${nets.net2}`, { network: { mtu: 1400 } });
    await waitUntil(async () => (await switchPort(p3.id))?.mtu === 1400, 30_000, 'MTU 1400 in the switch', 500);
    const after = await switchPorts();
    const id = (ps: SPort[], n: NPort) => ps.find((s) => s.name === 'vhu' + n.id.slice(0, 11))!.id;
    expect(id(after, p1)).toBe(id(before, p1));
    expect(id(after, p2)).toBe(id(before, p2));
    expect((await switchPort(p1.id))!.mtu).toBe(1500);
    await waitStatus(p3.id, 'ACTIVE');
  }, 60_000);

  it('agent restart: ports created meanwhile appear, deleted ones go, unchanged ones are not recreated', async () => {
    await agent.stop();
    const before = await switchPorts();
    const gone = p3.id;
    await neutron.ok('DELETE', `/ports/${gone}`);
    const p4 = await port('net2');
    agent = startAgent();
    await waitStatus(p4.id, 'ACTIVE');
    await waitUntil(async () => (await switchPort(gone)) === undefined, 30_000, 'deleted port gone', 500);
    const after = await switchPorts();
    // every other port (the VMs' included, and the uplink) is the same data-plane port as before
    const kept = (ps: SPort[]) => ps.filter((s) => s.name !== 'vhu' + gone.slice(0, 11) && s.name !== 'vhu' + p4.id.slice(0, 11)).map((s) => `${s.name}:${s.id}`);
    expect(kept(after)).toEqual(kept(before));
    expect(kept(after).length).toBe(5); // p1, p2, vm-a, vm-b, the uplink
    expect((await switchPort(p4.id))!.vlan).toBe(102);
    p3 = p4;
    const deleted = [...agent.log().matchAll(/Deleted switch port (\S+)/g)].map((m) => m[1]);
    expect(deleted).toEqual(['vhu' + gone.slice(0, 11)]);
  }, 90_000);

  it('port deleted in Neutron: gone from the switch', async () => {
    const p = await port('net1');
    await waitStatus(p.id, 'ACTIVE');
    expect(await switchPort(p.id)).toBeDefined();
    await neutron.ok('DELETE', `/ports/${p.id}`);
    await waitUntil(async () => (await switchPort(p.id)) === undefined, 30_000, 'port gone from the switch', 500);
  }, 60_000);

  it('switch restart: ports back (from its state, or from the agent when it has none), VMs reconnect, ports stay ACTIVE', async () => {
    const names = (await switchPorts()).map((s) => s.name).sort();
    await sw.stop();
    await new Promise((r) => setTimeout(r, 3000));
    sw = await DaemonProcess.start(path.join(dir, 'switch'), swArgs);
    await waitUntil(async () => (await switchPorts()).map((s) => s.name).sort().join() === names.join(), 30_000, 'ports back', 500);
    const p = await port('net1');
    await waitStatus(p.id, 'ACTIVE');
    for (const q of [p1, p2, p3]) expect((await getPort(q.id)).status).toBe('ACTIVE');
    await neutron.ok('DELETE', `/ports/${p.id}`);
    // The switch connects to QEMU's sockets again: the VMs talk as before.
    const a = vms['vm-a'];
    const b = vms['vm-b'];
    if (!a || !b) throw new Error('needs the VMs of the libvirt test');
    await waitPortState(sw, 'vhu' + a.port.id.slice(0, 11), (st) => st === 'ready', 60_000);
    await waitUntil(
      async () => pingReceived((await a.dom.run(`ping -c 1 -W 2 ${b.ip}`, 30_000)).output).received === 1,
      90_000,
      'vm-a reaches vm-b after the switch restart',
      1000,
    );

    // Again, but the switch lost its state: the agent puts every port back, and only those.
    await sw.stop();
    fs.rmSync(path.join(dir, 'switch', 'state.json'));
    sw = await DaemonProcess.start(path.join(dir, 'switch'), swArgs);
    await waitUntil(async () => (await switchPorts()).map((s) => s.name).sort().join() === names.join(), 30_000, 'ports back from the agent', 500);
    for (const q of [p1, p2, p3]) expect((await switchPort(q.id))!.mac).toBe(q.mac_address);
    await waitPortState(sw, 'vhu' + a.port.id.slice(0, 11), (st) => st === 'ready', 60_000);
    await waitUntil(
      async () => pingReceived((await a.dom.run(`ping -c 1 -W 2 ${b.ip}`, 30_000)).output).received === 1,
      90_000,
      'vm-a reaches vm-b after a switch restart without state',
      1000,
    );
    // recreating a switch port does not fetch the port from Neutron again, so its status never left ACTIVE
    for (const q of [p1, p2, p3]) expect((await getPort(q.id)).status).toBe('ACTIVE');
  }, 240_000);

  it('a switch that refuses a port (socket dir not allowed): the port stays DOWN, the reason is logged, nothing else moves', async () => {
    const badDir = path.join(dir, 'not-allowed');
    fs.mkdirSync(badDir);
    const other = startAgent('compute-bad', badDir);
    try {
      await waitUntil(
        async () => (await neutron.ok<{ agents: { host: string; alive: boolean }[] }>('GET', '/agents')).agents.some((a) => a.host === 'compute-bad' && a.alive),
        60_000,
        'second agent alive',
        1000,
      );
      const before = await switchPorts();
      const p = await port('net1', {}, 'compute-bad');
      expect(p['binding:vif_type']).toBe('vhostuser');
      await waitUntil(() => /stays DOWN: the switch refused the port/.test(other.log()), 30_000, 'refusal logged', 500);
      await waitStatus(p.id, 'DOWN', 30_000);
      expect(other.log()).toMatch(new RegExp(`Port ${p.id} stays DOWN: the switch refused the port: socket`));
      expect((await switchPorts()).map((s) => `${s.name}:${s.id}`)).toEqual(before.map((s) => `${s.name}:${s.id}`));
      for (const q of [p1, p2, p3]) expect((await getPort(q.id)).status).toBe('ACTIVE');
      await neutron.ok('DELETE', `/ports/${p.id}`);
    } finally {
      await other.stop();
    }
  }, 120_000);

  it('Neutron restart: the agent keeps going and wires ports created afterwards', async () => {
    await neutron.service.stop();
    neutron = await Neutron.restart(neutron);
    // The restart outlasts this test's 9 s agent_down_time, so Neutron comes back counting the agent dead until
    // its next state report lands: the agent keeping going is that report, and a port bound before it would be
    // binding_failed (the next test shows that case on purpose).
    await waitUntil(
      async () => (await neutron.ok<{ agents: { host: string; alive: boolean }[] }>('GET', '/agents')).agents.find((a) => a.host === HOST)?.alive,
      60_000,
      'agent alive again after the Neutron restart',
      500,
    );
    const p = await port('net2');
    await waitStatus(p.id, 'ACTIVE', 90_000);
    expect((await switchPort(p.id))!.vlan).toBe(102);
  }, 180_000);

  it('agent stopped: after agent_down_time Neutron no longer binds to the host (binding_failed, logged)', async () => {
    await agent.stop();
    await waitUntil(
      async () => !(await neutron.ok<{ agents: { host: string; alive: boolean }[] }>('GET', '/agents')).agents.find((a) => a.host === HOST)!.alive,
      60_000,
      'agent dead in Neutron',
      1000,
    );
    const p = await port('net1');
    expect(p['binding:vif_type']).toBe('binding_failed');
    expect(neutron.log()).toMatch(new RegExp(`vhost_switch does not bind port ${p.id}: the vhost-switch agent on host ${HOST} is not alive`));
  }, 90_000);
});
