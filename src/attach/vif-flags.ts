// The CLI's flags for `vhost-switch vif PORT --format F [flags]`, in one place so the CLI and the
// notes of libvirt.ts and qemu.ts (which mention --accel tcg) agree.
import { parseVersion, QEMU_SIZE_RE, VIF_FORMATS, type VifFormat, type VifOptions } from './vif-port.js';

export const VIF_CLI_FLAGS: readonly { flag: string; value?: string; help: string }[] = [
  { flag: '--format', value: 'libvirt|qemu|nova|json', help: 'what to print (default libvirt)' },
  { flag: '--accel', value: 'kvm|tcg', help: 'how the guest runs (default: kvm when this host can open /dev/kvm, else tcg); tcg on QEMU 7.2 adds vectors=0' },
  { flag: '--qemu-version', value: 'X.Y.Z', help: 'QEMU version (reconnect vs reconnect-ms, the 7.2 TCG workaround)' },
  { flag: '--memory', value: 'SIZE', help: 'guest memory for the QEMU memory arguments (default 1G)' },
  { flag: '--memory-backend', value: 'memfd|hugepages|file', help: 'guest memory backend (default memfd)' },
  { flag: '--reconnect', value: 'SECONDS', help: 'QEMU reconnect interval when QEMU is the client (default 1)' },
  { flag: '--domain', value: 'FILE', help: 'libvirt: an existing domain XML; print the memory block only if it lacks shared memory' },
  { flag: '--style', value: 'vhost-switch|nova', help: "libvirt: 'nova' prints exactly what Nova's libvirt driver writes" },
  { flag: '--neutron-port-id', value: 'UUID', help: 'Neutron port id for nova/json output' },
  { flag: '--host-id', value: 'HOST', help: 'binding:host_id for nova/json output' },
  { flag: '--no-notes', help: 'print the document only' },
];

/** Turn parsed CLI flags (name without '--' -> value) into VifOptions; throws with the flag's name on bad input. */
export function vifOptionsFromFlags(flags: Record<string, string | boolean | undefined>, readFile?: (p: string) => string): { format: VifFormat; opts: VifOptions } {
  const known = new Set(VIF_CLI_FLAGS.map((f) => f.flag.slice(2)).concat(['notes']));
  for (const k of Object.keys(flags)) if (flags[k] !== undefined && !known.has(k)) throw new Error(`--${k}: unknown option for vif`);
  const str = (k: string): string | undefined => {
    const v = flags[k];
    if (v === undefined || v === false) return undefined;
    if (v === true) throw new Error(`--${k} needs a value`);
    return v;
  };
  const oneOf = <T extends string>(k: string, allowed: readonly T[]): T | undefined => {
    const v = str(k);
    if (v !== undefined && !allowed.includes(v as T)) throw new Error(`--${k} must be one of ${allowed.join(', ')}, not ${JSON.stringify(v)}`);
    return v as T | undefined;
  };
  const format = oneOf('format', VIF_FORMATS) ?? 'libvirt';
  const opts: VifOptions = {};
  const accel = oneOf('accel', ['kvm', 'tcg'] as const);
  if (accel) opts.accel = accel;
  const qv = str('qemu-version');
  if (qv !== undefined) {
    if (!parseVersion(qv)) throw new Error(`--qemu-version must look like 7.2.0, not ${JSON.stringify(qv)}`);
    opts.qemuVersion = qv;
  }
  const size = str('memory');
  const backend = oneOf('memory-backend', ['memfd', 'hugepages', 'file'] as const);
  if (size !== undefined || backend !== undefined) {
    if (size !== undefined && !QEMU_SIZE_RE.test(size)) throw new Error(`--memory must be a QEMU size such as 1G or 512M, not ${JSON.stringify(size)}`);
    opts.memory = { ...(size !== undefined ? { size } : {}), ...(backend ? { backend } : {}) };
  }
  const rc = str('reconnect');
  if (rc !== undefined) {
    if (!/^\d+$/.test(rc) || Number(rc) < 1 || Number(rc) > 3600) throw new Error('--reconnect must be whole seconds from 1 to 3600');
    opts.reconnectSeconds = Number(rc);
  }
  const dom = str('domain');
  if (dom !== undefined) {
    if (!readFile) throw new Error('--domain needs a file reader');
    opts.domainXml = readFile(dom);
  }
  const style = oneOf('style', ['vhost-switch', 'nova'] as const);
  if (style) opts.style = style;
  const pid = str('neutron-port-id');
  if (pid !== undefined) {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(pid)) throw new Error('--neutron-port-id must be a UUID');
    opts.neutronPortId = pid.toLowerCase();
  }
  const hid = str('host-id');
  if (hid !== undefined) opts.hostId = hid;
  if (flags['no-notes'] === true || flags.notes === false) opts.notes = false;
  return { format, opts };
}
