// Channel + backend + frontend over real AF_UNIX sockets (the addon's socket functions), with a fake data
// plane. The addon is wrapped so every fd the backend side receives can be checked to be closed exactly
// once, by the channel or by "native".
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { native, type NativeAddon } from '../../src/dataplane/native.js';
import { VhostUserChannel } from '../../src/vhost/channel.js';
import { VhostUserEndpoint, type EndpointState } from '../../src/vhost/endpoint.js';
import { FakeNativeSwitch } from '../support/fake-native-switch.js';
import { offeredFeatures } from '../../src/vhost/features.js';
import { VhostUserFrontend } from '../../src/vhost/frontend.js';
import * as P from '../../src/vhost/protocol.js';

const NEED = P.VHOST_USER_VERSION | P.VHOST_USER_NEED_REPLY_MASK;

async function waitFor(pred: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function trackingAddon() {
  const a = native();
  const received: number[] = [];
  const closed: number[] = [];
  const addon: NativeAddon = {
    ...a,
    FdWatcher: a.FdWatcher,
    recvMsg(fd, max) {
      const r = a.recvMsg(fd, max);
      if (r) received.push(...r.fds);
      return r;
    },
    closeFd(fd) {
      closed.push(fd);
      a.closeFd(fd);
    },
  };
  return { addon, received, closed };
}

let dir: string;
let socketPath: string;
let t: ReturnType<typeof trackingAddon>;
let sw: FakeNativeSwitch;
let nativeClosed: number[];
let logs: string[];
let endpoints: VhostUserEndpoint[];
let frontends: VhostUserFrontend[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhu-'));
  socketPath = path.join(dir, 'p0.sock');
  t = trackingAddon();
  nativeClosed = [];
  sw = new FakeNativeSwitch({
    closeFd: (fd) => {
      nativeClosed.push(fd);
      fs.closeSync(fd);
    },
  });
  logs = [];
  endpoints = [];
  frontends = [];
});

afterEach(() => {
  for (const f of frontends) f.close();
  for (const e of endpoints) e.close();
  // Every fd that reached the backend side was closed exactly once, by the channel or by "native".
  const all = [...t.closed, ...nativeClosed];
  for (const fd of t.received) expect(all.filter((x) => x === fd).length, `fd ${fd}`).toBeGreaterThanOrEqual(1);
  fs.rmSync(dir, { recursive: true, force: true });
});

function endpoint(extra: Partial<ConstructorParameters<typeof VhostUserEndpoint>[0]> = {}): VhostUserEndpoint {
  const e = new VhostUserEndpoint({
    native: sw,
    addon: t.addon,
    portId: 0,
    name: 'p0',
    mode: 'server',
    socketPath,
    queuePairs: 1,
    mtu: 1500,
    offloads: true,
    log: (level, msg) => logs.push(`${level} ${msg}`),
    channel: { messageTimeoutMs: 200 },
    ...extra,
  });
  endpoints.push(e);
  return e;
}

function frontend(): VhostUserFrontend {
  const f = VhostUserFrontend.connect(socketPath, { addon: t.addon, timeoutMs: 2000 });
  frontends.push(f);
  return f;
}

function devNull(): number {
  return fs.openSync('/dev/null', 'r');
}

const regions = [
  { guestPhysAddr: 0n, size: 0x100000n, userAddr: 0x7f0000000000n, mmapOffset: 0n },
  { guestPhysAddr: 0x100000n, size: 0x100000n, userAddr: 0x7f0000100000n, mmapOffset: 0n },
];

describe('vhost-user over a unix socket (server mode)', () => {
  it('runs the QEMU start-up sequence to link up, stops a ring, and resets the port on disconnect', async () => {
    const ep = endpoint({ socketMode: 0o660 });
    const states: EndpointState[] = [];
    ep.on('state', (s) => states.push(s));
    ep.start();
    expect(ep.state).toBe('listening');
    const st = fs.statSync(socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);

    const fe = frontend();
    const n = await fe.negotiate();
    expect(n.features).toBe(offeredFeatures({ offloads: true }));
    expect(n.queueNum).toBe(1);
    expect(fe.replyAck).toBe(true);

    const memFds = [devNull(), devNull()];
    await fe.setMemTable(regions.map((r, i) => ({ ...r, fd: memFds[i]! })));
    memFds.forEach((fd) => fs.closeSync(fd));
    for (const index of [0, 1]) {
      await fe.setVringNum(index, 256);
      await fe.setVringBase(index, 0);
      await fe.setVringAddr(index, { flags: 0, desc: 0x1000n, used: 0x3000n, avail: 0x2000n, log: 0n });
      const call = devNull();
      await fe.setVringCall(index, call);
      fs.closeSync(call);
      await fe.setVringKick(index, null);
      await fe.setVringEnable(index, true);
    }
    await waitFor(() => ep.state === 'ready', 'ready');
    expect(ep.frontend).toMatchObject({ memRegions: 2, ready: true, protocolErrors: 0 });
    expect(ep.frontend!.rings.map((r) => r.kick)).toEqual(['nofd', 'nofd']);
    expect(sw.callsTo('setMemTable')[0]![1]).toHaveLength(2);

    sw.vringBase.set('0:1', 42);
    expect(await fe.getVringBase(1)).toBe(42);
    await waitFor(() => ep.state === 'connected', 'link down after GET_VRING_BASE');

    fe.close();
    await waitFor(() => ep.state === 'listening', 'listening again');
    expect(sw.callsTo('resetPort')).toEqual([[0]]);
    expect(ep.frontend).toBeNull();
    expect(states).toEqual(['listening', 'connected', 'ready', 'connected', 'listening']);
    expect(t.received.length).toBe(4);

    ep.close();
    expect(ep.state).toBe('closed');
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('survives wrong fd counts and unsupported requests, closing their fds', async () => {
    const ep = endpoint();
    ep.start();
    const fe = frontend();
    await fe.negotiate();
    const fd = devNull();
    const ack = await fe.call(P.VHOST_USER_SET_MEM_TABLE, P.encodeMemoryTable(regions), [fd], NEED);
    expect(P.decodeU64(ack)).toBe(1n);
    const ack2 = await fe.call(P.VHOST_USER_SET_LOG_FD, Buffer.alloc(0), [fd, fd], NEED);
    expect(P.decodeU64(ack2)).toBe(1n);
    fs.closeSync(fd);
    expect(await fe.getFeatures()).toBe(offeredFeatures({ offloads: true }));
    expect(ep.protocolErrors).toBe(2);
    expect(t.received).toHaveLength(3);
    for (const r of t.received) expect(t.closed).toContain(r);
    expect(sw.callsTo('setMemTable')).toEqual([]);
  });

  it('keeps up with a flood of requests, in order', async () => {
    const ep = endpoint();
    ep.start();
    const fe = frontend();
    for (let i = 0; i < 3000; i++) fe.send(P.VHOST_USER_SET_VRING_NUM, P.VHOST_USER_VERSION, P.encodeVringState({ index: i % 2, num: 256 }));
    const replies = await Promise.all(Array.from({ length: 300 }, () => fe.getFeatures()));
    expect(new Set(replies)).toEqual(new Set([offeredFeatures({ offloads: true })]));
    expect(sw.callsTo('setVringNum')).toHaveLength(3000);
    expect(ep.state).toBe('connected');
  });

  it('closes a connection whose message is cut mid-way, after the timeout', async () => {
    const ep = endpoint();
    ep.start();
    const fe = frontend();
    const closed = new Promise<string>((r) => fe.on('close', r));
    const wire = P.encodeMessage(P.VHOST_USER_SET_FEATURES, P.VHOST_USER_VERSION, P.encodeU64(1n));
    const started = Date.now();
    fe.channel.sendRaw(wire.subarray(0, 7));
    await waitFor(() => ep.state === 'connected', 'connected');
    expect(await closed).toBe('eof');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await waitFor(() => ep.state === 'listening', 'listening');
    expect(ep.protocolErrors).toBe(1);
    expect(logs).toContain('warn vhost-user framing error, closing connection');
  });

  it('closes the fds of a message cut in its payload', async () => {
    const ep = endpoint();
    ep.start();
    const fe = frontend();
    const closed = new Promise<string>((r) => fe.on('close', r));
    const wire = P.encodeMessage(P.VHOST_USER_SET_MEM_TABLE, P.VHOST_USER_VERSION, P.encodeMemoryTable(regions));
    const fd = devNull();
    fe.channel.sendRaw(wire.subarray(0, 20), [fd]);
    fs.closeSync(fd);
    await closed;
    expect(t.received).toHaveLength(1);
    expect(t.closed).toContain(t.received[0]);
  });

  it('drops a connection at once on an oversized payload or wrong version bits', async () => {
    const ep = endpoint();
    ep.start();
    for (const header of [
      P.encodeHeader({ request: P.VHOST_USER_SET_FEATURES, flags: 1, size: 1 << 20 }),
      P.encodeHeader({ request: P.VHOST_USER_GET_FEATURES, flags: 2, size: 0 }),
    ]) {
      const fe = frontend();
      const closed = new Promise<string>((r) => fe.on('close', r));
      const started = Date.now();
      fe.channel.sendRaw(header);
      expect(await closed).toBe('eof');
      expect(Date.now() - started).toBeLessThan(150);
    }
    await waitFor(() => ep.state === 'listening', 'listening');
    expect(ep.protocolErrors).toBe(2);
  });

  it('refuses a second frontend while one is attached', async () => {
    const ep = endpoint();
    ep.start();
    const fe1 = frontend();
    await fe1.getFeatures();
    const fe2 = frontend();
    const closed = new Promise<string>((r) => fe2.on('close', r));
    await expect(fe2.getFeatures()).rejects.toThrow(/connection closed/);
    // EOF, or a reset when the switch closed it with our request unread.
    expect(await closed).toMatch(/^eof$|reset by peer/);
    expect(ep.refusedConnections).toBe(1);
    expect(logs).toContain('warn refused a second vhost-user frontend while one is attached');
    expect(await fe1.getQueueNum()).toBe(1);
  });

  it('accepts a restarted frontend whose predecessor is already gone', async () => {
    const ep = endpoint();
    ep.start();
    const fe1 = frontend();
    await fe1.getFeatures();
    fe1.close();
    const fe2 = frontend(); // connects before the switch has had a chance to see fe1's EOF
    expect(await fe2.getQueueNum()).toBe(1);
    expect(ep.refusedConnections).toBe(0);
    expect(ep.connections).toBe(2);
  });

  it('replaces a stale socket but never a regular file', () => {
    const lfd = native().unixListen(socketPath, 1);
    native().closeFd(lfd); // the file stays behind, as after a crash
    const ep = endpoint();
    ep.start();
    expect(ep.state).toBe('listening');
    ep.close();

    const file = path.join(dir, 'not-a-socket');
    fs.writeFileSync(file, 'keep me');
    const ep2 = endpoint({ socketPath: file });
    expect(() => ep2.start()).toThrow(/not a socket/);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  });
});

describe('vhost-user over a unix socket (client mode)', () => {
  it('retries while the peer is absent and reconnects after it drops', async () => {
    const ep = endpoint({ mode: 'client', reconnectMinMs: 20, reconnectMaxMs: 200 });
    ep.start();
    expect(ep.state).toBe('connecting');
    await new Promise((r) => setTimeout(r, 100));
    expect(ep.state).toBe('connecting');

    // Now "QEMU" starts listening.
    const a = native();
    const lfd = a.unixListen(socketPath, 1);
    try {
      const accept = async () => {
        let fd = -1;
        await waitFor(() => (fd = a.unixAccept(lfd)) >= 0, 'the switch to connect');
        const fe = new VhostUserFrontend(new VhostUserChannel(fd, { addon: t.addon }), { timeoutMs: 2000 });
        frontends.push(fe);
        return fe;
      };
      const fe = await accept();
      await fe.negotiate();
      expect(ep.state).toBe('connected');
      expect(ep.connections).toBe(1);

      fe.close(); // guest reboot / QEMU restart
      const fe2 = await accept();
      expect(await fe2.getQueueNum()).toBe(1);
      expect(ep.connections).toBe(2);
      expect(sw.callsTo('resetPort').length).toBeGreaterThanOrEqual(1);
    } finally {
      ep.close();
      a.closeFd(lfd);
    }
    expect(ep.state).toBe('closed');
    expect(fs.existsSync(socketPath)).toBe(true); // QEMU's socket is not ours to remove
  });
});
