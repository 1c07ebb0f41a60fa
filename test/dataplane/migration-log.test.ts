// Live migration's dirty log through real vhost-user sockets: our own frontend negotiates LOG_SHMFD, hands the
// switch a log as QEMU does (SET_LOG_BASE, LOG_ALL, VHOST_VRING_F_LOG), and every byte the switch then writes into
// the receiving guest's memory lies in a page whose bit is set. Bad logs are refused with a reply, and SEND_RARP
// moves the guest's FDB entry.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtioUserPort, ethFrame } from '../../src/gen/virtio-user.js';
import { native, type NativeSwitch } from '../../src/dataplane/native.js';
import { VhostUserEndpoint } from '../../src/vhost/endpoint.js';
import {
  bit,
  VHOST_F_LOG_ALL,
  VHOST_USER_PROTOCOL_F_LOG_SHMFD,
  VHOST_USER_PROTOCOL_F_RARP,
  VHOST_USER_PROTOCOL_F_REPLY_ACK,
} from '../../src/vhost/features.js';
import * as P from '../../src/vhost/protocol.js';

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const BCAST = 'ff:ff:ff:ff:ff:ff';
const PAGE = 4096;
const PROTO = bit(VHOST_USER_PROTOCOL_F_REPLY_ACK) | bit(VHOST_USER_PROTOCOL_F_LOG_SHMFD) | bit(VHOST_USER_PROTOCOL_F_RARP);

interface Rig {
  sw: NativeSwitch;
  dir: string;
  ports: { id: number; ep: VhostUserEndpoint; socket: string }[];
  frontends: VirtioUserPort[];
  fds: number[];
}
let rig: Rig | undefined;

async function makeRig(bufB = 2048): Promise<{ r: Rig; a: VirtioUserPort; b: VirtioUserPort }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-mig-'));
  const sw = new (native().Switch)({ threads: 1 });
  const ports = [0, 1].map((i) => {
    const socket = path.join(dir, `p${i}.sock`);
    const id = sw.addPort({ name: `p${i}`, queuePairs: 1, mtu: 9000 });
    const ep = new VhostUserEndpoint({
      native: sw, portId: id, name: `p${i}`, mode: 'server', socketPath: socket,
      queuePairs: 1, mtu: 9000, offloads: true, log: () => {}, reconnectMinMs: 20, reconnectMaxMs: 100,
    });
    ep.start();
    return { id, ep, socket };
  });
  rig = { sw, dir, ports, frontends: [], fds: [] };
  const a = await VirtioUserPort.connect(ports[0].socket, { protocolFeatures: PROTO, bufSize: 16384 });
  const b = await VirtioUserPort.connect(ports[1].socket, { protocolFeatures: PROTO, bufSize: bufB });
  rig.frontends.push(a, b);
  await waitFor(() => ports.every((p) => p.ep.state === 'ready'));
  return { r: rig, a, b };
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((res) => setTimeout(res, 5));
  }
}

/** A log file on tmpfs, one bit per page of the port's memory, as QEMU's memfd. */
function makeLog(r: Rig, port: VirtioUserPort, extra = 0): { fd: number; size: bigint; read: () => Buffer } {
  const size = Math.ceil(Number(port.driver.info().memSize) / PAGE / 8);
  const file = path.join('/dev/shm', `vs-mig-log-${process.pid}-${r.fds.length}`);
  const fd = fs.openSync(file, 'w+');
  fs.unlinkSync(file);
  fs.ftruncateSync(fd, size + extra);
  r.fds.push(fd);
  const read = () => {
    const b = Buffer.alloc(size);
    fs.readSync(fd, b, 0, size, 0);
    return b;
  };
  return { fd, size: BigInt(size), read };
}

function memory(port: VirtioUserPort): Buffer {
  const info = port.driver.info();
  const b = Buffer.alloc(Number(info.memSize));
  fs.readSync(info.memFd, b, 0, b.length, 0);
  return b;
}

const logged = (bits: Buffer, gpa: number) => ((bits[Math.floor(gpa / PAGE / 8)]! >> (Math.floor(gpa / PAGE) % 8)) & 1) === 1;

/** What QEMU sends when migration starts: SET_LOG_BASE, then LOG_ALL, then VHOST_VRING_F_LOG on every ring. */
async function startLogging(port: VirtioUserPort, log: { fd: number; size: bigint }): Promise<void> {
  expect(await port.frontend.setLogBase(log.size, 0n, log.fd)).toBe(0n);
  await port.frontend.setFeatures(port.negotiated.features | bit(VHOST_F_LOG_ALL));
  const info = port.driver.info();
  for (let q = 0; q < info.vrings.length; q++) {
    const v = info.vrings[q]!;
    await port.frontend.setVringAddr(q, { flags: P.VHOST_VRING_F_LOG, desc: v.desc, used: v.used, avail: v.avail, log: v.used - info.memUva });
  }
}

afterEach(async () => {
  if (!rig) return;
  for (const f of rig.frontends) f.close();
  for (const p of rig.ports) await p.ep.close();
  rig.sw.close();
  for (const fd of rig.fds) fs.closeSync(fd);
  fs.rmSync(rig.dir, { recursive: true, force: true });
  rig = undefined;
});

describe('dirty logging through the vhost-user handshake', () => {
  it('every byte written into the receiving guest, mergeable chains and used ring included, is logged', async () => {
    const { r, a, b } = await makeRig(512);
    expect(a.negotiated.protocolFeatures & PROTO).toBe(PROTO);
    r.sw.fdbAdd(MAC_B, 0, r.ports[1]!.id);
    const log = makeLog(r, b);
    await startLogging(b, log);
    expect(r.sw.logInfo(r.ports[1]!.id)).toMatchObject({ size: log.size, logging: true });
    const before = memory(b);
    const sizes = [60, 1500, 4000, 9000];
    expect(a.send(sizes.map((n, i) => ethFrame(MAC_B, MAC_A, n, Buffer.alloc(n - 14, 0x40 + i))))).toBe(4);
    await waitFor(() => r.sw.portStats(r.ports[1]!.id).txPackets === 4n);
    const after = memory(b);
    const bits = log.read();
    let changed = 0;
    for (let i = 0; i < after.length; i++) {
      if (after[i] === before[i]) continue;
      changed++;
      if (!logged(bits, i)) throw new Error(`byte at gpa 0x${i.toString(16)} written but its page is not logged`);
    }
    expect(changed).toBeGreaterThan(1500 + 4000 + 9000);
    const info = b.driver.info();
    expect(logged(bits, Number(info.vrings[0]!.used - info.memUva))).toBe(true);
    expect(r.sw.logInfo(r.ports[1]!.id).outside).toBe(0n);
  });

  it('nothing is logged while LOG_ALL and VHOST_VRING_F_LOG are off', async () => {
    const { r, a, b } = await makeRig();
    const log = makeLog(r, b);
    expect(await b.frontend.setLogBase(log.size, 0n, log.fd)).toBe(0n);
    expect(a.send([ethFrame(BCAST, MAC_A), ethFrame(MAC_B, MAC_A, 1500)])).toBe(2);
    expect(await b.recvSome(2)).toHaveLength(2);
    expect(log.read().every((x) => x === 0)).toBe(true);
    expect(r.sw.logInfo(r.ports[1]!.id)).toMatchObject({ logging: false });
  });

  it('malformed SET_LOG_BASE is refused with a reply and the port keeps forwarding', async () => {
    const { r, a, b } = await makeRig();
    const log = makeLog(r, b);
    const fe = b.frontend;
    expect(await fe.setLogBase(log.size, 0n, null)).toBe(1n);                  // no fd
    expect(await fe.setLogBase(log.size + 4096n, 0n, log.fd)).toBe(1n);       // longer than the file
    expect(await fe.setLogBase(log.size, 8192n, log.fd)).toBe(1n);            // offset past the end
    expect(await fe.setLogBase(4096n, (1n << 64n) - 100n, log.fd)).toBe(1n);  // offset + size overflows
    expect(await fe.setLogBase(0n, 0n, log.fd)).toBe(1n);                     // empty
    expect(await fe.setLogBase(1n << 40n, 0n, log.fd)).toBe(1n);              // over the limit
    const sock = fs.openSync(r.dir, 'r');                                     // not a regular file
    r.fds.push(sock);
    expect(await fe.setLogBase(log.size, 0n, sock)).toBe(1n);
    const short = await fe.call(P.VHOST_USER_SET_LOG_BASE, Buffer.alloc(8), [log.fd]);
    expect(P.decodeU64(short)).toBe(1n);
    expect(r.sw.logInfo(r.ports[1]!.id).size).toBe(0n);
    expect(a.send([ethFrame(BCAST, MAC_A)])).toBe(1);
    expect(await b.recvSome(1)).toHaveLength(1);
    expect(fe.closed).toBe(false);
  });

  it('SEND_RARP moves the FDB entry to the announcing port and floods the RARP', async () => {
    const { r, a, b } = await makeRig();
    expect(b.send([ethFrame(BCAST, MAC_B)])).toBe(1);
    expect(await a.recvSome(1)).toHaveLength(1);
    const guest = '52:54:00:00:10:01';
    expect(a.send([ethFrame(BCAST, guest)])).toBe(1);  // the guest, still on its old port
    expect(await b.recvSome(1)).toHaveLength(1);
    expect(r.sw.fdbList().find((e) => e.mac === guest)?.portId).toBe(r.ports[0]!.id);
    await b.frontend.sendRarp(guest);
    expect(r.sw.fdbList().find((e) => e.mac === guest)?.portId).toBe(r.ports[1]!.id);
    const got = await a.recvSome(1);
    expect(got).toHaveLength(1);
    expect(got[0]!.readUInt16BE(12)).toBe(0x8035);
    expect(got[0]!.subarray(6, 12).toString('hex')).toBe('525400001001');
  });
});

