// "How do I plug QEMU into this port?" printed by `run` at start, so the first experience needs no manual.
// `vhost-switch vif PORT --format qemu|libvirt|nova` (src/attach/vif.ts) gives the full per-tool versions.
import fs from 'node:fs';
import type { Command } from 'commander';
import type { PortInfo } from '../switch/port.js';
import { qemuMemoryArgs, qemuNicArgs } from '../attach/qemu.js';
import { VIF_CLI_FLAGS, vifOptionsFromFlags } from '../attach/vif-flags.js';
import { usage, type CliContext, type CliHost } from './context.js';

/**
 * How QEMU runs guests on this host: with KVM when /dev/kvm can be opened, else TCG. vhost-user is local, so the
 * switch's host is the guests' host; the QEMU arguments we print follow from it (vectors=0 only without KVM).
 */
export function hostAccel(kvm = '/dev/kvm'): 'kvm' | 'tcg' {
  try {
    fs.accessSync(kvm, fs.constants.R_OK | fs.constants.W_OK);
    return 'kvm';
  } catch {
    return 'tcg';
  }
}

/** -chardev/-netdev/-device for one port, one option and its value per entry: src/attach/qemu.ts's, for this host. */
export function qemuPortArgs(port: PortInfo, accel: 'kvm' | 'tcg' = hostAccel()): string[] {
  const args = qemuNicArgs(port, { accel });
  const out: string[] = [];
  for (let i = 0; i < args.length; i += 2) out.push(`${args[i]} ${args[i + 1]}`);
  return out;
}

export function attachHints(all: PortInfo[]): string {
  const ports = all.filter((p) => p.type === 'vhost-user');  // nic and tap ports take no guest
  if (ports.length === 0) return 'no vhost-user ports yet: add one with `vhost-switch port add NAME`\n';
  const lines = ['To attach a QEMU guest, add to its command line the shared-memory backend:', `  ${qemuMemoryArgs().join(' ')}`, 'and, for one port:'];
  for (const p of ports) {
    lines.push(`  # ${p.name} (${p.mode === 'server' ? 'the switch listens; QEMU connects' : 'QEMU listens; the switch connects'})`);
    for (const a of qemuPortArgs(p)) lines.push(`  ${a}`);
  }
  lines.push('(QEMU >= 9.2 spells reconnect=1 as reconnect-ms=1000; `vhost-switch vif PORT --format qemu` says more.)');
  return lines.join('\n') + '\n';
}

/**
 * `vhost-switch vif PORT --format libvirt|qemu|nova|json [flags]`: the port as the daemon reports it, rendered
 * by src/attach/vif.ts with every flag of VIF_CLI_FLAGS (--accel, --qemu-version, --memory, --domain, ...).
 */
export function registerVif(program: Command, host: CliHost): void {
  const cmd = program
    .command('vif')
    .description('how to attach a VM to a port: libvirt <interface>, QEMU arguments, Nova/Neutron vif_details')
    .argument('<port>');
  for (const f of VIF_CLI_FLAGS) cmd.option(f.flag === '--format' ? `-f, --format <${f.value}>` : f.value ? `${f.flag} <${f.value}>` : f.flag, f.help);
  cmd.action(host.action(vifCommand));
}

async function vifCommand(ctx: CliContext, name: string, values: Record<string, string | boolean | undefined>, cmd: Command): Promise<number> {
  const { formatVif } = await import('../attach/vif.js');
  // vif-flags.ts reads the flags by their spelling on the command line (--qemu-version), commander by camelCase.
  const flags: Record<string, string | boolean | undefined> = {};
  for (const f of VIF_CLI_FLAGS) {
    const dashed = f.flag.slice(2);
    const key = dashed === 'no-notes' ? 'notes' : dashed.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    if (dashed === 'no-notes') {
      if (values.notes === false) flags.notes = false;
    } else if (values[key] !== undefined) flags[dashed] = values[key];
  }
  if (flags.format === undefined && ctx.json) flags.format = 'json';
  flags.accel ??= hostAccel();  // the guests run here: KVM or not is this host's
  let parsed: ReturnType<typeof vifOptionsFromFlags>;
  try {
    parsed = vifOptionsFromFlags(flags, (p) => fs.readFileSync(p, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw e; // --domain FILE unreadable: an operational error
    throw usage(cmd, (e as Error).message);
  }
  const port = await ctx.client.call<PortInfo>('GET', `/v1/ports/${encodeURIComponent(name)}`);
  ctx.out(formatVif(port, parsed.format, parsed.opts));
  return 0;
}
