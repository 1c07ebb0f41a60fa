// How a VM attaches to a vhost-switch port: libvirt <interface type='vhostuser'> XML, QEMU arguments,
// and the Neutron binding / Nova VIF that OpenStack uses (VIF_TYPE_VHOSTUSER).
//
// vif-port.ts holds the port and its rules, libvirt.ts and qemu.ts each tool's rendering, neutron.ts OpenStack's
// view; this file renders a port in the format asked for (`vhost-switch vif PORT --format F`).
//
// Written from the public documentation of libvirt (formatdomain "vhost-user interface",
// "memoryBacking", NUMA memAccess; drvqemu "Overriding properties of QEMU devices"), QEMU
// (chardev socket, -netdev vhost-user, virtio-net-pci, memory backends) and Nova's libvirt driver
// (nova/virt/libvirt/config.py LibvirtConfigGuestInterface.format_dom, designer.py
// set_vif_host_backend_vhostuser_config, vif.py _set_config_VIFVHostUser).
import { neutronBinding, novaNetworkModelVif, osVifObject, qemuSocketMode } from './neutron.js';
import { renderXml } from './xml.js';
import { libvirtAliasFor, portMac, validatePort, VIF_FORMATS, type PortInfo, type VifFormat, type VifOptions } from './vif-port.js';
import { libvirtInterfaceXml, libvirtMemoryBackingElement, libvirtNotes, libvirtOverrideElement, libvirtOverrideProps } from './libvirt.js';
import { formatArgLines, qemuArgs, qemuNotes } from './qemu.js';

// ---------------------------------------------------------------------------------------------
// OpenStack

function novaInput(port: PortInfo, opts: VifOptions) {
  return { mode: port.mode, socket: port.socket, portSecurity: port.portSecurity, mac: portMac(port), mtu: port.mtu, neutronPortId: opts.neutronPortId };
}

export function novaDocument(port: PortInfo, opts: VifOptions = {}): Record<string, unknown> {
  validatePort(port);
  const input = novaInput(port, opts);
  return {
    neutron_port_binding: neutronBinding(port, opts.hostId),
    nova_network_model_vif: novaNetworkModelVif(input),
    os_vif: osVifObject(input),
  };
}

// ---------------------------------------------------------------------------------------------
// The entry point the CLI calls.

export interface VifRendering {
  /** The document itself (XML, shell arguments, JSON). */
  output: string;
  /** Human notes that go with it (also appended as comments to libvirt/qemu output unless notes:false). */
  notes: string[];
}

export function describeVif(port: PortInfo, format: VifFormat, opts: VifOptions = {}): VifRendering {
  switch (format) {
    case 'libvirt': {
      const xml = libvirtInterfaceXml(port, opts);
      const notes = opts.style === 'nova' ? [] : libvirtNotes(port, opts);
      return { output: xml, notes: notes.map((c) => ('comment' in c ? c.comment : '')) };
    }
    case 'qemu':
      return { output: formatArgLines(qemuArgs(port, opts)), notes: qemuNotes(port, opts) };
    case 'nova':
      return { output: JSON.stringify(novaDocument(port, opts), null, 2), notes: [] };
    case 'json': {
      validatePort(port);
      const alias = opts.alias ?? libvirtAliasFor(port.name);
      const doc = {
        port: { ...port, mac: portMac(port) },
        qemu_socket_mode: qemuSocketMode(port.mode),
        libvirt: {
          interface: libvirtInterfaceXml(port, { ...opts, style: 'vhost-switch' }),
          memory_backing: renderXml(libvirtMemoryBackingElement(opts.memory?.backend ?? 'memfd')),
          qemu_override: libvirtOverrideProps(port, opts).length ? renderXml(libvirtOverrideElement([{ alias, props: libvirtOverrideProps(port, opts) }])) : null,
          notes: libvirtNotes(port, { ...opts, style: 'vhost-switch' }).map((c) => ('comment' in c ? c.comment : '')),
        },
        qemu: { args: qemuArgs(port, opts), notes: qemuNotes(port, opts) },
        ...novaDocument(port, opts),
      };
      return { output: JSON.stringify(doc, null, 2), notes: [] };
    }
    default:
      throw new Error(`unknown format ${JSON.stringify(format)}; use ${VIF_FORMATS.join(', ')}`);
  }
}

/**
 * The text `vhost-switch vif PORT --format F` prints. libvirt output stays one XML document
 * (notes are comments after the element, so the text can go straight to `virsh attach-device`);
 * qemu output is shell comments followed by the arguments; nova/json are JSON.
 */
export function formatVif(port: PortInfo, format: VifFormat, opts: VifOptions = {}): string {
  const r = describeVif(port, format, opts);
  if (opts.notes === false || r.notes.length === 0) return r.output + '\n';
  if (format === 'libvirt') return [r.output, ...r.notes.map((c) => renderXml({ comment: c }))].join('\n') + '\n';
  if (format === 'qemu') {
    const comments = r.notes.flatMap((n) => n.split('\n')).map((l) => `# ${l}`);
    return [...comments, r.output].join('\n') + '\n';
  }
  return r.output + '\n';
}
