// QEMU: the -chardev/-netdev/-device arguments of a port, its guest-memory arguments, and the notes that go with them.
import { qemuSocketMode } from './neutron.js';
import { needsTcgMsixWorkaround, parseVersion, portMac, QEMU_SIZE_RE, qemuIdFor, validatePort, versionAtLeast, type GuestMemory, type PortInfo, type VifOptions } from './vif-port.js';

/** Shell-quote one argument when it needs it. */
export function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** In a QEMU option value, a ',' is written ',,'. */
function qemuOptValue(v: string): string {
  return v.replace(/,/g, ',,');
}

export function qemuMemoryArgs(mem: GuestMemory = {}, id = 'mem0'): string[] {
  const size = mem.size ?? '1G';
  if (!QEMU_SIZE_RE.test(size)) throw new Error(`memory size ${JSON.stringify(size)} is not QEMU size syntax (e.g. 1G, 512M)`);
  const backend = mem.backend ?? 'memfd';
  let obj: string;
  if (backend === 'memfd') obj = `memory-backend-memfd,id=${id},size=${size},share=on`;
  else {
    const p = mem.path ?? (backend === 'hugepages' ? '/dev/hugepages' : '/dev/shm');
    obj = `memory-backend-file,id=${id},size=${size},mem-path=${qemuOptValue(p)},share=on`;
  }
  return ['-m', size, '-object', obj, '-numa', `node,memdev=${id}`];
}

/** The -chardev/-netdev/-device arguments for one port. */
export function qemuNicArgs(port: PortInfo, opts: VifOptions = {}): string[] {
  validatePort(port);
  const chr = qemuIdFor('chr', port.name);
  const net = qemuIdFor('net', port.name);
  const dev = qemuIdFor('nic', port.name);
  let chardev = `socket,id=${chr},path=${qemuOptValue(port.socket)}`;
  if (qemuSocketMode(port.mode) === 'server') chardev += ',server=on,wait=off';
  else {
    const secs = opts.reconnectSeconds ?? 1;
    const v = parseVersion(opts.qemuVersion);
    // 'reconnect' (seconds) was deprecated in QEMU 9.2 in favour of 'reconnect-ms'.
    chardev += v && versionAtLeast(v, 9, 2) ? `,reconnect-ms=${secs * 1000}` : `,reconnect=${secs}`;
  }
  let netdev = `vhost-user,id=${net},chardev=${chr}`;
  if (port.queues > 1) netdev += `,queues=${port.queues}`;
  const d: string[] = [`virtio-net-pci`, `netdev=${net}`, `id=${dev}`, `mac=${portMac(port)}`, `host_mtu=${port.mtu}`];
  if (port.rxQueueSize) d.push(`rx_queue_size=${port.rxQueueSize}`);
  if (port.txQueueSize) d.push(`tx_queue_size=${port.txQueueSize}`);
  if (port.queues > 1) d.push('mq=on');
  if (needsTcgMsixWorkaround(opts)) d.push('vectors=0');
  else if (port.queues > 1) d.push(`vectors=${2 * port.queues + 2}`);
  return ['-chardev', chardev, '-netdev', netdev, '-device', d.join(',')];
}

export function qemuArgs(port: PortInfo, opts: VifOptions = {}): string[] {
  const mem = opts.memoryArgs === false ? [] : qemuMemoryArgs(opts.memory);
  return [...mem, ...qemuNicArgs(port, opts)];
}

/** Arguments as shell text, one option and its value per line. */
export function formatArgLines(args: string[]): string {
  const lines: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('-') && i + 1 < args.length && !args[i + 1]!.startsWith('-')) {
      lines.push(`${a} ${shellQuote(args[i + 1]!)}`);
      i++;
    } else lines.push(shellQuote(a));
  }
  return lines.join(' \\\n');
}

export function qemuNotes(port: PortInfo, opts: VifOptions): string[] {
  const n: string[] = [];
  if (qemuSocketMode(port.mode) === 'client') {
    n.push(`The switch listens on ${port.socket}; QEMU connects (at start-up it waits, retrying, until the socket accepts) and reconnects every ${opts.reconnectSeconds ?? 1} s, so a restarted switch is picked up again.`);
  } else {
    n.push(`QEMU listens on ${port.socket}; at start-up it waits until the switch connects (a vhost-user netdev does so even with wait=off), and the switch reconnects whenever QEMU restarts.`);
  }
  if (opts.memoryArgs !== false) n.push('Guest memory must be shared and fd-backed; the -m size and the memory backend size must match. Add these memory arguments once per guest.');
  if (needsTcgMsixWorkaround(opts)) n.push('QEMU 7.2 without KVM (TCG): vectors=0 turns MSI-X off for this NIC (the known 7.2 TCG MSI-X crash).');
  else if (opts.accel === undefined) n.push('On QEMU 7.2 without KVM (TCG) add vectors=0 to -device (or pass --accel tcg).');
  return n;
}
