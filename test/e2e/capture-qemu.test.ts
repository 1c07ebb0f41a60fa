// Packet capture on a running switch, the first thing reached for when a VM cannot ping: two QEMU guests ping,
// `vhost-switch capture` on one port writes a pcap file, and tshark (not our code) reads ICMP both ways in it;
// `-w -` streams the same to a pipe.
//
//   guest a (169.254.23.1) --cap-a-- vhost-switch --cap-b-- guest b (169.254.23.2)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, trackChild, uniqueSocketPath, waitUntil } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import { BIN, cli, type DaemonProcess } from '../integration/support/daemon.js';
import { startSwitch, waitPortState } from './switch-daemon.js';

describe('packet capture', () => {
  const guests: Guest[] = [];
  let d: DaemonProcess | undefined;
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await d?.stop();
  });

  it('a capture on one port, read by tshark, shows the guests\' ICMP both ways; --direction and -w - work', async () => {
    requireTool('qemu-system-x86_64');
    const tshark = requireTool('tshark');
    const dir = makeRunDir('capture');
    const sockA = uniqueSocketPath(dir, 'a');
    const sockB = uniqueSocketPath(dir, 'b');
    d = await startSwitch(dir, [
      { name: 'cap-a', mode: 'server', socket: sockA },
      { name: 'cap-b', mode: 'server', socket: sockB },
    ]);
    const a = await startGuest({ name: 'cap-a', netdevs: [{ socket: sockA, mode: 'client', mac: '52:54:00:00:23:01', reconnect: 1 }], ip: '169.254.23.1/16' });
    guests.push(a);
    const b = await startGuest({ name: 'cap-b', netdevs: [{ socket: sockB, mode: 'client', mac: '52:54:00:00:23:02', reconnect: 1 }], ip: '169.254.23.2/16' });
    guests.push(b);
    await Promise.all([a.waitReady(), b.waitReady()]);
    await Promise.all([a.waitLink('eth0'), b.waitLink('eth0')]);
    await waitPortState(d, 'cap-a', (s) => s === 'ready');
    await waitPortState(d, 'cap-b', (s) => s === 'ready');
    expect((await a.run('ping -c 2 -W 5 169.254.23.2', 60_000)).output).toMatch(/2 packets received/); // ARP settled

    // Both directions of port cap-a, to a file, until Ctrl-C: 5 requests in, 5 replies out.
    const file = path.join(dir, 'a.pcap');
    const capture = spawn(process.execPath, [BIN, '--run-dir', dir, 'capture', 'cap-a', '-w', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(capture, 'capture to a file');
    let captureErr = '';
    capture.stderr.on('data', (c: Buffer) => (captureErr += c.toString()));
    const captureExit = new Promise<number | null>((resolve) => capture.on('exit', resolve));
    await waitUntil(() => fs.existsSync(file) && fs.statSync(file).size >= 24, 10_000, 'the pcap header');
    const ping = await a.run('ping -c 5 -i 0.5 -W 5 169.254.23.2', 60_000);
    expect(ping.output).toMatch(/5 packets received/);
    const icmp = () => {
      const lines = execFileSync(tshark, ['-r', file, '-Y', 'icmp', '-T', 'fields', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'icmp.type'], { encoding: 'utf8' })
        .trim()
        .split('\n');
      return {
        requests: lines.filter((l) => l === '169.254.23.1\t169.254.23.2\t8').length,
        replies: lines.filter((l) => l === '169.254.23.2\t169.254.23.1\t0').length,
      };
    };
    // The capture drains its ring every 20 ms: wait for the last reply to reach the file, then Ctrl-C.
    await waitUntil(() => icmp().replies >= 5, 10_000, 'five replies in the file');
    capture.kill('SIGINT');
    expect(await captureExit).toBe(0);
    expect(captureErr).toMatch(/^capture stopped; \d+ bytes written to .*a\.pcap$/m);
    expect(icmp()).toEqual({ requests: 5, replies: 5 });
    // The daemon stopped the capture when the client went.
    await waitUntil(() => /msg="capture stopped" port=cap-a/.test(d!.stderr), 10_000, 'the capture stopped');

    // Only what the switch sends to cap-b, streamed to a pipe: the requests, no replies.
    const child = spawn(process.execPath, [BIN, '--run-dir', dir, 'capture', 'cap-b', '-w', '-', '--direction', 'out', '--count', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child, 'capture to stdout');
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await waitUntil(() => Buffer.concat(chunks).length >= 24, 10_000, 'the streamed pcap header');
    await a.run('ping -c 3 -i 0.5 -W 5 169.254.23.2', 60_000);
    expect(await exited).toBe(0);
    const piped = path.join(dir, 'b-out.pcap');
    fs.writeFileSync(piped, Buffer.concat(chunks));
    // Three frames the switch sent to cap-b: the echo requests (an ARP may be among them), never b's replies.
    const out = execFileSync(tshark, ['-r', piped, '-Y', 'icmp', '-T', 'fields', '-e', 'icmp.type'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    expect(out.length).toBeGreaterThan(0);
    expect(new Set(out)).toEqual(new Set(['8']));

    // One capture per port at a time; a port that does not exist is a clear error.
    const started = () => (d!.stderr.match(/msg="capture started" port=cap-a/g) ?? []).length;
    const before = started();
    const busy = cli(dir, ['capture', 'cap-a', '-w', path.join(dir, 'x.pcap'), '--count', '1'], 60_000);
    await waitUntil(() => started() > before, 10_000, 'the first capture running');
    expect((await d.api.request('GET', '/v1/ports/cap-a/capture?count=1')).status).toBe(409);
    await a.run('ping -c 1 -W 5 169.254.23.2', 60_000);
    expect((await busy).code).toBe(0);
    const missing = await cli(dir, ['capture', 'nope', '-w', path.join(dir, 'y.pcap')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no port named "nope"/);
  });
});
