// libvirt: the <interface type='vhostuser'> of a port, the domain settings vhost-user needs (shared memory,
// <qemu:override> for what libvirt does not write), the notes that go with them, and a whole domain.
import { novaDevnameFromNeutronId, qemuSocketMode } from './neutron.js';
import { attr, childElements, el, firstChild, parseXmlElement, renderXml, type XmlElement, type XmlNode } from './xml.js';
import { libvirtAliasFor, needsTcgMsixWorkaround, portMac, validatePort, type PortInfo, type VifOptions } from './vif-port.js';

/** The <interface type='vhostuser'> element for a port. */
export function libvirtInterfaceElement(port: PortInfo, opts: VifOptions = {}): XmlElement {
  validatePort(port);
  const nova = opts.style === 'nova';
  const qemuMode = qemuSocketMode(port.mode);
  const children: XmlNode[] = [el('mac', { address: portMac(port) }), el('model', { type: 'virtio' })];
  // Nova: <driver> only when queues (multiqueue flavor/image) or queue sizes are set; no driver name for vhostuser.
  const queues = port.queues > 1 ? port.queues : undefined;
  if (queues !== undefined || port.rxQueueSize !== undefined || port.txQueueSize !== undefined) {
    children.push(el('driver', { queues, rx_queue_size: port.rxQueueSize, tx_queue_size: port.txQueueSize }));
  }
  const sourceKids: XmlNode[] = [];
  if (!nova && qemuMode === 'client') {
    // QEMU is the client: reconnect so a restarted switch is picked up again (libvirt >= 4.1).
    sourceKids.push(el('reconnect', { enabled: 'yes', timeout: opts.reconnectSeconds ?? 1 }));
  }
  children.push(el('source', { type: 'unix', path: port.socket, mode: qemuMode }, sourceKids));
  const target = nova ? (opts.neutronPortId ? novaDevnameFromNeutronId(opts.neutronPortId) : opts.targetDev) : opts.targetDev;
  if (target) children.push(el('target', { dev: target }));
  if (!nova) {
    // Nova's format_dom writes <mtu> only for bridge/ethernet; see VifOptions.libvirtMtu for why we don't either.
    if (opts.libvirtMtu) children.push(el('mtu', { size: port.mtu }));
    children.push(el('alias', { name: opts.alias ?? libvirtAliasFor(port.name) }));
  }
  return el('interface', { type: 'vhostuser' }, children);
}

export function libvirtInterfaceXml(port: PortInfo, opts: VifOptions = {}): string {
  return renderXml(libvirtInterfaceElement(port, opts));
}

/** <memoryBacking> that gives vhost-user the guest memory it needs (shared, fd-backed). */
export function libvirtMemoryBackingElement(kind: 'memfd' | 'hugepages' | 'file' = 'memfd'): XmlElement {
  const kids: XmlNode[] = [];
  if (kind === 'hugepages') kids.push(el('hugepages'));
  else kids.push(el('source', { type: kind }));
  kids.push(el('access', { mode: 'shared' }));
  return el('memoryBacking', {}, kids);
}

export interface QemuOverrideProperty {
  name: string;
  type: 'string' | 'signed' | 'unsigned' | 'bool' | 'remove';
  value?: string | number;
}

/**
 * <qemu:override> (libvirt >= 8.2) setting -device properties of devices by alias; needs
 * xmlns:qemu on <domain>. libvirt applies it when the domain starts, not to hot-plugged devices.
 */
export function libvirtOverrideElement(devices: { alias: string; props: QemuOverrideProperty[] }[]): XmlElement {
  return el(
    'qemu:override',
    {},
    devices.map((d) =>
      el('qemu:device', { alias: d.alias }, [el('qemu:frontend', {}, d.props.map((p) => el('qemu:property', { name: p.name, type: p.type, value: p.value })))]),
    ),
  );
}

/** The -device properties a port needs beyond what libvirt writes: vectors=0 (QEMU 7.2 TCG) and host_mtu (MTU != 1500). */
export function libvirtOverrideProps(port: PortInfo, opts: VifOptions = {}): QemuOverrideProperty[] {
  const props: QemuOverrideProperty[] = [];
  if (needsTcgMsixWorkaround(opts)) props.push({ name: 'vectors', type: 'unsigned', value: 0 });
  if (port.mtu !== 1500 && !opts.libvirtMtu) props.push({ name: 'host_mtu', type: 'unsigned', value: port.mtu });
  return props;
}

/** <qemu:override> giving the devices vectors=0 (the QEMU 7.2 TCG MSI-X workaround). */
export function libvirtTcgOverrideElement(aliases: string[]): XmlElement {
  return libvirtOverrideElement(aliases.map((alias) => ({ alias, props: [{ name: 'vectors', type: 'unsigned', value: 0 }] })));
}

export const LIBVIRT_QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';

/** How a domain's memory is (or is not) shareable with a vhost-user backend. */
export interface SharedMemoryCheck {
  ok: boolean;
  via?: string;
  problem?: string;
}

/**
 * Does a libvirt domain give vhost-user shared, fd-backed guest memory? Accepts
 * <memoryBacking><access mode='shared'/> (with memfd, file, hugepages or libvirt's default file backing),
 * or NUMA cells all carrying memAccess='shared' (how Nova does it for hugepage flavors).
 */
export function domainSharedMemory(domainXml: string): SharedMemoryCheck {
  const dom = parseXmlElement(domainXml);
  if (dom.name !== 'domain') return { ok: false, problem: `root element is <${dom.name}>, not <domain>` };
  const mb = firstChild(dom, 'memoryBacking');
  const globalShared = attr(firstChild(mb, 'access') ?? el('x'), 'mode') === 'shared';
  const cells = childElements(firstChild(dom, 'cpu', 'numa') ?? el('x'), 'cell');
  const privateCells = cells.filter((c) => attr(c, 'memAccess') === 'private');
  const sharedCells = cells.filter((c) => attr(c, 'memAccess') === 'shared');
  const source = attr(firstChild(mb, 'source') ?? el('x'), 'type');
  const huge = firstChild(mb, 'hugepages') !== undefined;
  const backing = huge ? 'hugepages' : source ?? 'default';
  if (globalShared && privateCells.length === 0) return { ok: true, via: `memoryBacking access=shared (${backing})` };
  if (cells.length > 0 && sharedCells.length === cells.length) return { ok: true, via: `NUMA memAccess=shared (${backing})` };
  if (privateCells.length > 0) return { ok: false, problem: `NUMA cell(s) ${privateCells.map((c) => attr(c, 'id')).join(',')} have memAccess='private'` };
  if (huge || source) return { ok: false, problem: `guest memory is ${backing}-backed but private; add <access mode='shared'/>` };
  return { ok: false, problem: 'guest memory is private anonymous memory; vhost-user needs shared, fd-backed memory' };
}

export function libvirtNotes(port: PortInfo, opts: VifOptions): XmlNode[] {
  const notes: XmlNode[] = [];
  let memOk = false;
  if (opts.domainXml !== undefined) {
    const chk = domainSharedMemory(opts.domainXml);
    memOk = chk.ok;
    if (!chk.ok) notes.push({ comment: `This domain cannot use vhost-user yet: ${chk.problem}.` });
  }
  if (!memOk) {
    const kind = opts.memory?.backend ?? 'memfd';
    notes.push({
      comment: [
        'vhost-user needs guest memory the switch can map: put this in <domain> (memfd, libvirt >= 4.10)',
        renderXml(libvirtMemoryBackingElement(kind)),
        'or, with hugepages (Nova flavors with hw:mem_page_size do this):',
        renderXml(libvirtMemoryBackingElement('hugepages')),
        'or mark every NUMA cell shared: <cpu><numa><cell id=\'0\' cpus=\'0-1\' memory=\'1048576\' unit=\'KiB\' memAccess=\'shared\'/></numa></cpu>',
      ].join('\n'),
    });
  }
  const alias = opts.alias ?? libvirtAliasFor(port.name);
  const props = libvirtOverrideProps(port, opts);
  if (props.length) {
    const why = [
      needsTcgMsixWorkaround(opts) ? 'QEMU 7.2 without KVM (TCG): this NIC needs vectors=0 (no MSI-X).' : '',
      props.some((p) => p.name === 'host_mtu') ? `MTU ${port.mtu}: the guest learns it from host_mtu (libvirt's <mtu> would make libvirt look for an Open vSwitch port and fail).` : '',
    ].filter(Boolean);
    notes.push({
      comment: [
        ...why,
        `In <domain xmlns:qemu='${LIBVIRT_QEMU_NS}'>, after <devices>:`,
        renderXml(libvirtOverrideElement([{ alias, props }])),
        ...(needsTcgMsixWorkaround(opts)
          ? [
              'libvirt applies overrides only at domain start, not to hot-plugged NICs. For hot-plugged single-queue',
              'NICs add this to the domain (libvirt sets vectors itself on multiqueue NICs, which -global cannot change):',
              renderXml(libvirtVectorsGlobalElement()).replace(/\n\s*/g, ''),
              ...(props.some((p) => p.name === 'host_mtu') ? ['and set the MTU inside the guest (ip link set dev eth0 mtu N).'] : []),
            ]
          : ['libvirt applies overrides only at domain start, not to hot-plugged NICs: set a hot-plugged NIC\'s MTU inside the guest (ip link set dev eth0 mtu N).']),
      ].join('\n'),
    });
  }
  if (!needsTcgMsixWorkaround(opts) && opts.accel === undefined) {
    notes.push({ comment: 'If the guest runs on QEMU 7.2 without KVM (TCG), its NIC needs vectors=0: ask vhost-switch vif for this port with accel tcg to get the override.' });
  }
  if (qemuSocketMode(port.mode) === 'server') {
    notes.push({ comment: 'QEMU is the socket server here: at domain start it waits for the switch to connect before running the guest; a hot-plugged NIC does not wait.' });
  }
  return notes;
}

// ---------------------------------------------------------------------------------------------
// A whole domain, for tests and for users starting from nothing.

export interface LibvirtDomainSpec {
  name: string;
  memoryMiB: number;
  vcpus?: number;
  ports: PortInfo[];
  accel?: 'kvm' | 'tcg';
  qemuVersion?: string;
  memoryBacking?: 'memfd' | 'hugepages';
  emulator?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** Serial console to this file (for tests to read). */
  serialLog?: string;
  uuid?: string;
  /**
   * Ready for NICs hot-plugged with `virsh attach-device` (off by default): <features><acpi/></features>, without
   * which QEMU's i440fx 'pc' machine refuses device_add ("Bus 'pci.0' does not support hotplugging"), and, when
   * the QEMU 7.2 TCG workaround applies, the -global virtio-net-pci.vectors=0 <qemu:commandline> (a hot-plugged
   * NIC gets no <qemu:override>, and QEMU 7.2 TCG crashes when it starts with MSI-X).
   */
  hotplug?: boolean;
}

/** <qemu:commandline> making vectors=0 the default of every virtio-net-pci device, hot-plugged ones included. */
export function libvirtVectorsGlobalElement(): XmlElement {
  return el('qemu:commandline', {}, [el('qemu:arg', { value: '-global' }), el('qemu:arg', { value: 'virtio-net-pci.vectors=0' })]);
}

export function libvirtDomainXml(spec: LibvirtDomainSpec): string {
  const vcpus = spec.vcpus ?? 1;
  const kib = spec.memoryMiB * 1024;
  const os: XmlNode[] = [el('type', { arch: 'x86_64', machine: 'pc' }, [{ text: 'hvm' }])];
  if (spec.kernel) os.push(el('kernel', {}, [{ text: spec.kernel }]));
  if (spec.initrd) os.push(el('initrd', {}, [{ text: spec.initrd }]));
  if (spec.cmdline) os.push(el('cmdline', {}, [{ text: spec.cmdline }]));
  const devices: XmlNode[] = [];
  if (spec.emulator) devices.push(el('emulator', {}, [{ text: spec.emulator }]));
  for (const p of spec.ports) devices.push(libvirtInterfaceElement(p, { accel: spec.accel, qemuVersion: spec.qemuVersion }));
  if (spec.serialLog) {
    devices.push(el('serial', { type: 'file' }, [el('source', { path: spec.serialLog }), el('target', { port: 0 })]));
    devices.push(el('console', { type: 'file' }, [el('source', { path: spec.serialLog }), el('target', { type: 'serial', port: 0 })]));
  }
  devices.push(el('memballoon', { model: 'none' }));
  const children: XmlNode[] = [
    el('name', {}, [{ text: spec.name }]),
    ...(spec.uuid ? [el('uuid', {}, [{ text: spec.uuid }])] : []),
    el('memory', { unit: 'KiB' }, [{ text: String(kib) }]),
    el('vcpu', {}, [{ text: String(vcpus) }]),
    libvirtMemoryBackingElement(spec.memoryBacking ?? 'memfd'),
    el('os', {}, os),
    el('cpu', {}, [el('numa', {}, [el('cell', { id: 0, cpus: vcpus > 1 ? `0-${vcpus - 1}` : '0', memory: kib, unit: 'KiB', memAccess: 'shared' })])]),
    ...(spec.hotplug ? [el('features', {}, [el('acpi')])] : []),
    el('on_reboot', {}, [{ text: 'destroy' }]),
    el('devices', {}, devices),
  ];
  const overrides = spec.ports
    .map((p) => ({ alias: libvirtAliasFor(p.name), props: libvirtOverrideProps(p, spec) }))
    .filter((d) => d.props.length > 0);
  if (overrides.length) children.push(libvirtOverrideElement(overrides));
  const globalVectors = spec.hotplug === true && needsTcgMsixWorkaround(spec);
  if (globalVectors) children.push(libvirtVectorsGlobalElement());
  const attrs: Record<string, string> = { type: spec.accel === 'tcg' ? 'qemu' : 'kvm' };
  if (overrides.length || globalVectors) attrs['xmlns:qemu'] = LIBVIRT_QEMU_NS;
  return renderXml(el('domain', attrs, children)) + '\n';
}
