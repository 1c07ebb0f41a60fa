// "How do I plug QEMU into this port?" printed by `run` at start, so the first experience needs no manual.
// `vhost-switch vif PORT --format qemu|libvirt|nova` (src/vif.ts) gives the full per-tool versions.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { PortInfo } from '../switch.js';
import { exactlyOne, UsageError, type CliContext } from './context.js';

/** The shared-memory backend vhost-user needs: the switch maps guest RAM, so it must be a shareable fd. */
export function qemuMemoryArgs(size = '1G'): string {
  return `-object memory-backend-memfd,id=mem0,size=${size},share=on -machine memory-backend=mem0 -m ${size}`;
}

/** -chardev/-netdev/-device for one port. QEMU's socket role is the opposite of the switch's. */
export function qemuPortArgs(port: Pick<PortInfo, 'name' | 'mode' | 'socket' | 'queues' | 'mtu' | 'mac'>): string[] {
  const chr = `chr-${port.name}`;
  const net = `net-${port.name}`;
  // Switch = server: QEMU connects and, with reconnect, comes back by itself after a switch restart.
  // Switch = client: QEMU listens (wait=off so the guest boots before the switch connects).
  const chardev =
    port.mode === 'server'
      ? `-chardev socket,id=${chr},path=${port.socket},reconnect=1`
      : `-chardev socket,id=${chr},path=${port.socket},server=on,wait=off`;
  const netdev = `-netdev vhost-user,id=${net},chardev=${chr}${port.queues > 1 ? `,queues=${port.queues}` : ''}`;
  const dev = [
    `-device virtio-net-pci,netdev=${net}`,
    port.mac ? `mac=${port.mac}` : undefined,
    port.queues > 1 ? 'mq=on' : undefined,
    port.mtu !== 1500 ? `host_mtu=${port.mtu}` : undefined,
    // vectors=0: INTx instead of MSI-X, which sidesteps the QEMU 7.2 TCG MSI-X crash; drop it under KVM if you like.
    'vectors=0',
  ]
    .filter(Boolean)
    .join(',');
  return [chardev, netdev, dev];
}

export function attachHints(ports: PortInfo[]): string {
  if (ports.length === 0) return 'no ports yet: add one with `vhost-switch port add NAME`\n';
  const lines = ['To attach a QEMU guest, add to its command line the shared-memory backend:', `  ${qemuMemoryArgs()}`, 'and, for one port:'];
  for (const p of ports) {
    lines.push(`  # ${p.name} (${p.mode === 'server' ? 'the switch listens; QEMU connects' : 'QEMU listens; the switch connects'})`);
    for (const a of qemuPortArgs(p)) lines.push(`  ${a}`);
  }
  lines.push('(QEMU >= 9.2 spells reconnect=1 as reconnect-ms=1000.)');
  return lines.join('\n') + '\n';
}

/**
 * `vhost-switch vif PORT --format libvirt|qemu|nova|json [flags]`: the port as the daemon reports it, rendered
 * by src/vif.ts with every flag of VIF_CLI_FLAGS (--accel, --qemu-version, --memory, --domain, ...).
 */
export async function vifUsage(): Promise<string> {
  const { VIF_CLI_FLAGS } = await import('../vif.js');
  return `usage: vhost-switch vif PORT [--format libvirt|qemu|nova|json] [options]\n${VIF_CLI_FLAGS.map((f) => `  ${f.flag}${f.value ? ' ' + f.value : ''}  ${f.help}`).join('\n')}`;
}

export async function vifCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { VIF_CLI_FLAGS, formatVif, vifOptionsFromFlags } = await import('../vif.js');
  const usage = await vifUsage();
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const f of VIF_CLI_FLAGS) options[f.flag.slice(2)] = { type: f.value ? 'string' : 'boolean' };
  options.format!.short = 'f';
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options });
  const name = exactlyOne(positionals, 'PORT', usage);
  const flags = { ...(values as Record<string, string | boolean | undefined>) };
  if (flags.format === undefined && ctx.json) flags.format = 'json';
  let parsed: ReturnType<typeof vifOptionsFromFlags>;
  try {
    parsed = vifOptionsFromFlags(flags, (p) => fs.readFileSync(p, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw e; // --domain FILE unreadable: an operational error
    throw new UsageError((e as Error).message, usage);
  }
  const port = await ctx.client.call<PortInfo>('GET', `/v1/ports/${encodeURIComponent(name)}`);
  ctx.out(formatVif(port, parsed.format, parsed.opts));
  return 0;
}
