// formatVif and friends against documents that mirror Nova's libvirt driver (test/fixtures/vif/nova,
// each citing the Nova code it follows) and against vhost-switch's own golden outputs
// (test/fixtures/vif/vhost-switch; regenerate with VIF_UPDATE_FIXTURES=1 after a deliberate change).
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { attr, canonicalXml, childElements, firstChild, parseXml, parseXmlElement, renderXml, type XmlElement } from '../../src/attach/xml.js';
import { defaultMacFor, needsTcgMsixWorkaround, validatePort, type PortInfo, type VifFormat, type VifOptions } from '../../src/attach/vif-port.js';
import { domainSharedMemory, libvirtDomainXml, libvirtInterfaceElement, libvirtOverrideProps } from '../../src/attach/libvirt.js';
import { qemuArgs, qemuNicArgs } from '../../src/attach/qemu.js';
import { vifOptionsFromFlags } from '../../src/attach/vif-flags.js';
import { describeVif, formatVif } from '../../src/attach/vif.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, '..', 'fixtures', 'vif');
const nova = (f: string) => readFileSync(path.join(fixtures, 'nova', f), 'utf8');
const json = (f: string) => {
  const o = JSON.parse(nova(f)) as Record<string, unknown>;
  delete o._source;
  return o;
};

const CLIENT_ID = 'dc065497-3c8d-4f44-8fb4-e1d33c16a536';
const SERVER_ID = '6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

/** The switch listens (Neutron vhostuser_mode=client). */
const switchServer: PortInfo = {
  name: 'vhudc065497-3c',
  mode: 'server',
  socket: '/run/vhost-switch/vhudc065497-3c',
  queues: 1,
  mtu: 1500,
  mac: 'fa:16:3e:2a:95:01',
};
/** The switch connects (Neutron vhostuser_mode=server). */
const switchClient: PortInfo = {
  name: 'vhu6f1b2c3d-4e',
  mode: 'client',
  socket: '/run/vhost-switch/vhu6f1b2c3d-4e',
  queues: 1,
  mtu: 1500,
  mac: 'fa:16:3e:2a:95:02',
};

/** Remove the named child elements anywhere in the tree (for "ours = Nova's + these additions"). */
function without(e: XmlElement, names: string[]): XmlElement {
  return {
    ...e,
    children: e.children
      .filter((c) => !('name' in c && names.includes(c.name)))
      .map((c) => ('name' in c ? without(c, names) : c)),
  };
}

describe('libvirt XML in Nova style matches what Nova writes', () => {
  const cases: [string, PortInfo, VifOptions][] = [
    ['libvirt-vhostuser-client.xml', switchServer, { neutronPortId: CLIENT_ID }],
    ['libvirt-vhostuser-server.xml', switchClient, { neutronPortId: SERVER_ID }],
    ['libvirt-vhostuser-client-queues.xml', { ...switchServer, queues: 4, rxQueueSize: 512, txQueueSize: 1024 }, { neutronPortId: CLIENT_ID }],
    ['libvirt-vhostuser-server-mtu9000.xml', { ...switchClient, mtu: 9000 }, { neutronPortId: SERVER_ID }],
  ];
  for (const [file, port, opts] of cases) {
    it(file, () => {
      const ours = describeVif(port, 'libvirt', { ...opts, style: 'nova' }).output;
      expect(canonicalXml(ours)).toBe(canonicalXml(nova(file)));
    });
  }
});

describe('libvirt XML in vhost-switch style = Nova + reconnect, alias (and no tap target)', () => {
  const cases: [string, PortInfo, string[]][] = [
    // QEMU is the client: reconnect added inside <source>.
    ['libvirt-vhostuser-client.xml', switchServer, ['reconnect', 'alias']],
    ['libvirt-vhostuser-client-queues.xml', { ...switchServer, queues: 4, rxQueueSize: 512, txQueueSize: 1024 }, ['reconnect', 'alias']],
    // QEMU is the server: no reconnect.
    ['libvirt-vhostuser-server.xml', switchClient, ['alias']],
    ['libvirt-vhostuser-server-mtu9000.xml', { ...switchClient, mtu: 9000 }, ['alias']],
  ];
  for (const [file, port, added] of cases) {
    it(file, () => {
      const ours = libvirtInterfaceElement(port);
      for (const name of added) {
        const found = name === 'reconnect' ? firstChild(ours, 'source', 'reconnect') : firstChild(ours, name);
        expect(found, `<${name}> present`).toBeDefined();
      }
      if (!added.includes('reconnect')) expect(firstChild(ours, 'source', 'reconnect')).toBeUndefined();
      // Like Nova, no <mtu>: libvirt 9.0 would look for an OVS port to set it on and fail to start the domain.
      expect(firstChild(ours, 'mtu')).toBeUndefined();
      expect(canonicalXml(without(ours, ['reconnect', 'alias']))).toBe(
        canonicalXml(without(parseXmlElement(nova(file)), ['target'])),
      );
    });
  }

  it('libvirt mode is QEMU\'s side, the reverse of the switch\'s', () => {
    expect(attr(firstChild(libvirtInterfaceElement(switchServer), 'source')!, 'mode')).toBe('client');
    expect(attr(firstChild(libvirtInterfaceElement(switchClient), 'source')!, 'mode')).toBe('server');
  });

  it('reconnect timeout is 1 s by default and configurable', () => {
    const r = (o: VifOptions) => attr(firstChild(libvirtInterfaceElement(switchServer, o), 'source', 'reconnect')!, 'timeout');
    expect(r({})).toBe('1');
    expect(r({ reconnectSeconds: 5 })).toBe('5');
  });

  it('<mtu> only when asked for', () => {
    expect(attr(firstChild(libvirtInterfaceElement({ ...switchServer, mtu: 9000 }, { libvirtMtu: true }), 'mtu')!, 'size')).toBe('9000');
  });

  it('MTU != 1500 goes through a host_mtu override (and vectors=0 under 7.2 TCG)', () => {
    expect(libvirtOverrideProps(switchServer)).toEqual([]);
    expect(libvirtOverrideProps({ ...switchServer, mtu: 9000 })).toEqual([{ name: 'host_mtu', type: 'unsigned', value: 9000 }]);
    expect(libvirtOverrideProps({ ...switchServer, mtu: 9000 }, { libvirtMtu: true })).toEqual([]);
    expect(libvirtOverrideProps({ ...switchServer, mtu: 9000 }, { accel: 'tcg', qemuVersion: '7.2.1' }).map((p) => p.name)).toEqual(['vectors', 'host_mtu']);
    const text = formatVif({ ...switchServer, mtu: 9000 }, 'libvirt', { accel: 'kvm' });
    expect(text).toContain("<qemu:property name='host_mtu' type='unsigned' value='9000'/>");
    expect(text).not.toContain("name='vectors'");
  });

  it('driver element only where meaningful', () => {
    expect(firstChild(libvirtInterfaceElement(switchServer), 'driver')).toBeUndefined();
    const d = firstChild(libvirtInterfaceElement({ ...switchServer, txQueueSize: 1024 }), 'driver')!;
    expect(d.attrs).toEqual([['tx_queue_size', '1024']]);
  });
});

describe('Neutron binding and Nova VIF', () => {
  it('binding:vif_details for a switch-server port', () => {
    const doc = JSON.parse(formatVif(switchServer, 'nova', { neutronPortId: CLIENT_ID, hostId: 'compute-1' }));
    expect(doc.neutron_port_binding).toEqual(json('neutron-binding-vhostuser-client.json'));
  });
  it('binding:vif_details for a switch-client port', () => {
    const doc = JSON.parse(formatVif(switchClient, 'nova', { neutronPortId: SERVER_ID }));
    expect(doc.neutron_port_binding).toEqual(json('neutron-binding-vhostuser-server.json'));
  });
  it('the Nova network model VIF', () => {
    const doc = JSON.parse(formatVif(switchServer, 'nova', { neutronPortId: CLIENT_ID }));
    expect(doc.nova_network_model_vif).toEqual(json('network-model-vif-vhostuser-client.json'));
    expect(doc.os_vif).toMatchObject({ plugin: 'noop', vif_name: 'tapdc065497-3c', mode: 'client', path: switchServer.socket });
  });
  it('json format carries everything and parses', () => {
    const doc = JSON.parse(formatVif(switchServer, 'json', { neutronPortId: CLIENT_ID }));
    expect(doc.qemu_socket_mode).toBe('client');
    expect(canonicalXml(doc.libvirt.interface)).toBe(canonicalXml(libvirtInterfaceElement(switchServer)));
    expect(doc.qemu.args).toEqual(qemuArgs(switchServer));
    expect(doc.neutron_port_binding['binding:vif_details'].vhostuser_mode).toBe('client');
    expect(doc.libvirt.qemu_override).toBeNull();
  });
});

describe('QEMU arguments', () => {
  it('switch server: QEMU is a reconnecting client', () => {
    expect(qemuNicArgs(switchServer)).toEqual([
      '-chardev', 'socket,id=chr-vhudc065497-3c,path=/run/vhost-switch/vhudc065497-3c,reconnect=1',
      '-netdev', 'vhost-user,id=net-vhudc065497-3c,chardev=chr-vhudc065497-3c',
      '-device', 'virtio-net-pci,netdev=net-vhudc065497-3c,id=nic-vhudc065497-3c,mac=fa:16:3e:2a:95:01,host_mtu=1500',
    ]);
  });
  it('switch client: QEMU listens without waiting', () => {
    expect(qemuNicArgs(switchClient)[1]).toBe('socket,id=chr-vhu6f1b2c3d-4e,path=/run/vhost-switch/vhu6f1b2c3d-4e,server=on,wait=off');
  });
  it('multiqueue: queues, mq=on and vectors=2N+2', () => {
    const a = qemuNicArgs({ ...switchServer, queues: 4 });
    expect(a[3]).toMatch(/,queues=4$/);
    expect(a[5]).toMatch(/,mq=on,vectors=10$/);
  });
  it('QEMU 7.2 under TCG: vectors=0, also with multiqueue', () => {
    expect(qemuNicArgs(switchServer, { accel: 'tcg', qemuVersion: '7.2.22' })[5]).toMatch(/,vectors=0$/);
    expect(qemuNicArgs({ ...switchServer, queues: 2 }, { accel: 'tcg', qemuVersion: '7.2.0' })[5]).toMatch(/,mq=on,vectors=0$/);
    expect(qemuNicArgs(switchServer, { accel: 'kvm', qemuVersion: '7.2.22' })[5]).not.toMatch(/vectors/);
    expect(qemuNicArgs(switchServer, { accel: 'tcg', qemuVersion: '8.2.0' })[5]).not.toMatch(/vectors/);
    expect(needsTcgMsixWorkaround({ accel: 'tcg' })).toBe(true);
  });
  it('QEMU >= 9.2 gets reconnect-ms', () => {
    expect(qemuNicArgs(switchServer, { qemuVersion: '9.2.0', reconnectSeconds: 2 })[1]).toMatch(/,reconnect-ms=2000$/);
    expect(qemuNicArgs(switchServer, { qemuVersion: '9.1.3' })[1]).toMatch(/,reconnect=1$/);
  });
  it('shared guest memory arguments', () => {
    expect(qemuArgs(switchServer).slice(0, 6)).toEqual(['-m', '1G', '-object', 'memory-backend-memfd,id=mem0,size=1G,share=on', '-numa', 'node,memdev=mem0']);
    expect(qemuArgs(switchServer, { memory: { size: '2G', backend: 'hugepages' } })[3]).toBe(
      'memory-backend-file,id=mem0,size=2G,mem-path=/dev/hugepages,share=on',
    );
    expect(qemuArgs(switchServer, { memoryArgs: false })[0]).toBe('-chardev');
  });
  it('commas in a socket path are doubled and odd characters are shell-quoted', () => {
    const p = { ...switchServer, socket: "/tmp/a,b c'd" };
    expect(qemuNicArgs(p)[1]).toContain("path=/tmp/a,,b c'd,");
    expect(formatVif(p, 'qemu', { notes: false })).toContain(`-chardev 'socket,id=chr-vhudc065497-3c,path=/tmp/a,,b c'\\''d,reconnect=1'`);
  });
});

describe('validation', () => {
  const bad: [string, Partial<PortInfo>][] = [
    ['name', { name: '../x' }],
    ['mode', { mode: 'both' as never }],
    ['socket', { socket: 'relative/sock' }],
    ['queues', { queues: 0 }],
    ['mtu', { mtu: 67 }],
    ['mac', { mac: '01:00:5e:00:00:01' }],
    ['mac', { mac: 'zz:00:00:00:00:00' }],
    ['rxQueueSize', { rxQueueSize: 300 }],
  ];
  for (const [what, patch] of bad) {
    it(`refuses a bad ${what}`, () => {
      expect(() => validatePort({ ...switchServer, ...patch })).toThrow(what === 'mode' ? /mode/ : new RegExp(what));
    });
  }
  it('refuses an unknown format', () => {
    expect(() => formatVif(switchServer, 'yaml' as VifFormat)).toThrow(/unknown format/);
  });
  it('a port without a MAC gets a stable locally derived one', () => {
    const { mac: _mac, ...noMac } = switchServer;
    const a = formatVif(noMac, 'libvirt');
    expect(a).toContain(`<mac address='${defaultMacFor(noMac.name)}'/>`);
    expect(defaultMacFor('a')).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(defaultMacFor('a')).not.toBe(defaultMacFor('b'));
  });
});

describe('guest shared memory in a domain', () => {
  it('accepts Nova\'s hugepage domain (NUMA memAccess=shared)', () => {
    expect(domainSharedMemory(nova('domain-hugepages-numa.xml'))).toMatchObject({ ok: true, via: expect.stringContaining('NUMA') });
  });
  it('accepts Nova\'s file-backed domain (access mode=shared)', () => {
    expect(domainSharedMemory(nova('domain-file-backed.xml'))).toMatchObject({ ok: true, via: expect.stringContaining('file') });
  });
  it('refuses private hugepages', () => {
    expect(domainSharedMemory(nova('domain-hugepages-private.xml'))).toMatchObject({ ok: false, problem: expect.stringContaining('private') });
  });
  it('refuses plain anonymous memory and a cell that is private despite a shared default', () => {
    expect(domainSharedMemory('<domain><memory>1</memory></domain>').ok).toBe(false);
    const mixed = `<domain><memoryBacking><access mode='shared'/></memoryBacking><cpu><numa>
      <cell id='0' cpus='0' memory='1' memAccess='private'/></numa></cpu></domain>`;
    expect(domainSharedMemory(mixed)).toMatchObject({ ok: false, problem: expect.stringContaining('cell') });
  });
  it('prints the memory block only when the domain lacks shared memory', () => {
    const withNeeds = formatVif(switchServer, 'libvirt', { domainXml: '<domain/>' });
    expect(withNeeds).toContain('cannot use vhost-user yet');
    expect(withNeeds).toContain("<access mode='shared'/>");
    const fine = formatVif(switchServer, 'libvirt', { domainXml: nova('domain-file-backed.xml') });
    expect(fine).not.toContain('memoryBacking');
  });
});

describe('libvirt output stays one XML document (virsh attach-device takes it as is)', () => {
  for (const [port, opts] of [
    [switchServer, {}],
    [switchClient, { accel: 'tcg', qemuVersion: '7.2.22' }],
  ] as [PortInfo, VifOptions][]) {
    it(`${port.mode} ${opts.accel ?? ''}`, () => {
      const text = formatVif(port, 'libvirt', opts);
      const nodes = parseXml(text).filter((n) => !('text' in n && !n.text.trim()));
      expect(nodes.filter((n) => 'name' in n)).toHaveLength(1);
      expect(nodes.slice(1).every((n) => 'comment' in n)).toBe(true);
      for (const n of nodes) if ('comment' in n) expect(n.comment).not.toContain('--');
    });
  }
  it('the TCG note carries the exact qemu:override', () => {
    const text = formatVif(switchClient, 'libvirt', { accel: 'tcg', qemuVersion: '7.2.22' });
    const override = [
      '<qemu:override>',
      "    <qemu:device alias='ua-vhu6f1b2c3d-4e'>",
      '      <qemu:frontend>',
      "        <qemu:property name='vectors' type='unsigned' value='0'/>",
      '      </qemu:frontend>',
      '    </qemu:device>',
      '  </qemu:override>',
    ].join('\n');
    expect(text).toContain(override);
    expect(text).toContain("xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'");
  });
});

describe('XML reader/writer', () => {
  it('round-trips escaping', () => {
    const e: XmlElement = { name: 'a', attrs: [['p', `<&'">`]], children: [{ text: 'x<y&z' }] };
    const back = parseXmlElement(renderXml(e));
    expect(attr(back, 'p')).toBe(`<&'">`);
    expect(back.children).toEqual([{ text: 'x<y&z' }]);
  });
  it('rejects mismatched and unclosed tags', () => {
    expect(() => parseXml('<a><b></a>')).toThrow(/does not close/);
    expect(() => parseXml('<a>')).toThrow(/not closed/);
    expect(() => parseXml("<a x='1' x='2'/>")).toThrow(/duplicate/);
  });
  it('canonical form ignores attribute order, quotes, comments and whitespace', () => {
    expect(canonicalXml(`<?xml version="1.0"?><!-- c --><a y="2" x='1'>\n <b/> </a>`)).toBe(canonicalXml(`<a x="1" y="2"><b/></a>`));
    expect(childElements(parseXmlElement('<a><b/><c/><b/></a>'), 'b')).toHaveLength(2);
  });
});

// Exact text of vhost-switch's own outputs, so a change in what users paste is always deliberate.
describe('golden outputs', () => {
  const goldens: [string, () => string][] = [
    ['libvirt-switch-server.xml', () => formatVif(switchServer, 'libvirt')],
    ['libvirt-switch-client-mq-tcg.xml', () => formatVif({ ...switchClient, queues: 4, rxQueueSize: 512, txQueueSize: 1024, mtu: 9000 }, 'libvirt', { accel: 'tcg', qemuVersion: '7.2.22' })],
    ['qemu-switch-server.sh', () => formatVif(switchServer, 'qemu')],
    ['qemu-switch-client-mq-tcg.sh', () => formatVif({ ...switchClient, queues: 4 }, 'qemu', { accel: 'tcg', qemuVersion: '7.2.22', memory: { size: '512M' } })],
    ['nova-switch-server.json', () => formatVif(switchServer, 'nova', { neutronPortId: CLIENT_ID })],
    ['domain-two-ports-tcg.xml', () => libvirtDomainXml({
      name: 'vs-guest', memoryMiB: 256, vcpus: 2, ports: [switchServer, switchClient], accel: 'tcg', qemuVersion: '7.2.22',
      kernel: '/boot/vmlinuz', initrd: '/tmp/initrd.img', cmdline: 'console=ttyS0', serialLog: '/tmp/vs-guest.log',
    })],
  ];
  for (const [file, make] of goldens) {
    it(file, () => {
      const p = path.join(fixtures, 'vhost-switch', file);
      const text = make();
      if (process.env.VIF_UPDATE_FIXTURES) writeFileSync(p, text);
      expect(text).toBe(readFileSync(p, 'utf8'));
    });
  }
});

// libvirt's own RelaxNG schema, when the host has it (libvirt-clients + libvirt-daemon + xmllint).
const schemaOk = existsSync('/usr/share/libvirt/schemas/domain.rng') && (() => {
  try {
    execFileSync('sh', ['-c', 'command -v virt-xml-validate && command -v xmllint'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('libvirt schema (virt-xml-validate)', () => {
  // Fails (never skips) where the schema or its tools are missing: .ci/run installs them.
  it('has libvirt\'s domain schema, virt-xml-validate and xmllint', () => {
    expect(schemaOk, 'install libvirt-clients, libvirt-daemon-system and libxml2-utils').toBe(true);
  });
  const validate = (xml: string) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vif-'));
    const f = path.join(dir, 'domain.xml');
    writeFileSync(f, xml);
    const r = spawnSync('virt-xml-validate', [f, 'domain'], { encoding: 'utf8' });
    // virt-xml-validate prints "<file> validates" (on stderr) and exits 0 when the document is valid.
    return r.status === 0 ? `${r.stdout}${r.stderr}` : `invalid (${r.status}): ${r.stdout}${r.stderr}`;
  };
  const wrap = (iface: string) => `<domain type='kvm'><name>t</name><memory>262144</memory><os><type>hvm</type></os><devices>${iface}</devices></domain>`;
  for (const [label, port, opts] of [
    ['switch server', switchServer, {}],
    ['switch client, mq, sizes', { ...switchClient, queues: 4, rxQueueSize: 512, txQueueSize: 1024 }, {}],
    ['nova style', switchServer, { style: 'nova', neutronPortId: CLIENT_ID }],
  ] as [string, PortInfo, VifOptions][]) {
    it(`interface: ${label}`, () => {
      expect(validate(wrap(formatVif(port, 'libvirt', opts)))).toMatch(/validates/);
    });
  }
  it('whole domain with the TCG override and hugepages', () => {
    expect(validate(libvirtDomainXml({ name: 'g', memoryMiB: 256, ports: [switchServer, switchClient], accel: 'tcg', qemuVersion: '7.2.0', memoryBacking: 'hugepages' }))).toMatch(/validates/);
  });
  for (const f of ['libvirt-vhostuser-client-queues.xml', 'domain-hugepages-numa.xml', 'domain-file-backed.xml']) {
    it(`Nova fixture ${f}`, () => {
      const x = nova(f);
      expect(validate(f.startsWith('domain') ? x.replace('</domain>', '<os><type>hvm</type></os></domain>') : wrap(x))).toMatch(/validates/);
    });
  }
});

describe('vifOptionsFromFlags (the CLI flags)', () => {
  it('maps flags to options', () => {
    const r = vifOptionsFromFlags({ format: 'qemu', accel: 'tcg', 'qemu-version': '7.2.22', memory: '512M', 'memory-backend': 'hugepages', reconnect: '3', 'no-notes': true });
    expect(r).toEqual({ format: 'qemu', opts: { accel: 'tcg', qemuVersion: '7.2.22', memory: { size: '512M', backend: 'hugepages' }, reconnectSeconds: 3, notes: false } });
    expect(vifOptionsFromFlags({})).toEqual({ format: 'libvirt', opts: {} });
    expect(vifOptionsFromFlags({ domain: '/d.xml' }, () => '<domain/>').opts.domainXml).toBe('<domain/>');
  });
  it('names the flag that is wrong', () => {
    expect(() => vifOptionsFromFlags({ format: 'yaml' })).toThrow(/--format must be one of/);
    expect(() => vifOptionsFromFlags({ accel: 'hvf' })).toThrow(/--accel/);
    expect(() => vifOptionsFromFlags({ 'qemu-version': 'new' })).toThrow(/--qemu-version/);
    expect(() => vifOptionsFromFlags({ memory: 'lots' })).toThrow(/--memory/);
    expect(() => vifOptionsFromFlags({ reconnect: '0' })).toThrow(/--reconnect/);
    expect(() => vifOptionsFromFlags({ 'neutron-port-id': 'x' })).toThrow(/--neutron-port-id/);
    expect(() => vifOptionsFromFlags({ accel: true })).toThrow(/--accel needs a value/);
    expect(() => vifOptionsFromFlags({ bogus: 'x' })).toThrow(/--bogus: unknown/);
  });
});
