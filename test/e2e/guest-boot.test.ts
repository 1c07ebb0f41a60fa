// Proves the QEMU harness: a TCG guest without a NIC boots the busybox
// initramfs, and commands typed on its serial console come back with their
// output and exit status.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool } from '../../harness/env.js';
import { formatCommandLine, guestImage, startGuest, type Guest } from '../support/qemu.js';

describe('guest harness (no NIC)', () => {
  let guest: Guest;
  let bootMs = 0;

  beforeAll(async () => {
    requireTool('qemu-system-x86_64');
    guest = await startGuest({ name: 'boot' });
    bootMs = await guest.waitReady();
    console.log(`guest booted in ${bootMs} ms (TCG); log: ${guest.logFile}`);
    console.log(formatCommandLine(guest.binary, guest.args));
  });

  afterAll(async () => {
    await guest?.stop();
  });

  it('boots within the TCG budget', () => {
    expect(bootMs).toBeGreaterThan(0);
    expect(bootMs).toBeLessThan(120_000);
  });

  it('runs uname -r: the Debian kernel the image was built for', async () => {
    const { kernel } = await guestImage();
    const r = await guest.run('uname -r', 20_000);
    expect(r.exitCode).toBe(0);
    expect(kernel).toBe(`/boot/vmlinuz-${r.output.trim()}`);
  });

  it('returns output and exit status', async () => {
    expect(await guest.run('echo hi')).toEqual({ output: 'hi\n', exitCode: 0 });
    expect((await guest.run('false')).exitCode).toBe(1);
    expect(await guest.run("sh -c 'echo out; echo err >&2; exit 7'")).toEqual({ output: 'out\nerr\n', exitCode: 7 });
    expect(await guest.run('printf "no newline"')).toEqual({ output: 'no newline', exitCode: 0 });
  });

  it('handles quotes, multi-line commands and commands that run in sequence', async () => {
    expect((await guest.run(`echo "it's" 'a "test"'`)).output).toBe(`it's a "test"\n`);
    expect((await guest.run('for i in 1 2 3; do\n  echo $i\ndone')).output).toBe('1\n2\n3\n');
    const results = await Promise.all([guest.run('echo one'), guest.run('echo two'), guest.run('echo three')]);
    expect(results.map((r) => r.output)).toEqual(['one\n', 'two\n', 'three\n']);
  });

  it('has the tools the network tests need', async () => {
    const r = await guest.run('iperf3 --version; ip -V; ping -h 2>&1 | head -1; lsmod | grep -c "^virtio_net "', 20_000);
    expect(r.output).toMatch(/iperf 3\./);
    expect(r.output.trim().split('\n').pop()).toBe('1');
  });

  it('interrupts a command that times out and stays usable', async () => {
    await expect(guest.run('sleep 30', 2_000)).rejects.toThrow(/timed out/);
    expect((await guest.run('echo alive', 10_000)).output).toBe('alive\n');
  });

  it('stops cleanly', async () => {
    const exit = await guest.stop();
    expect(exit.code === 0 || exit.signal !== null).toBe(true);
  });
});
