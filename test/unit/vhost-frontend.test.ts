// VhostUserFrontend against a scripted backend peer: acks, refusals, mismatched replies, silence.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { native } from '../../src/dataplane/native.js';
import { VhostUserChannel, type VhostUserMessage } from '../../src/vhost/channel.js';
import { VhostUserFrontend } from '../../src/vhost/frontend.js';
import * as P from '../../src/vhost/protocol.js';

const a = native();
const REPLY = P.VHOST_USER_VERSION | P.VHOST_USER_REPLY_MASK;

let dir: string;
let lfd: number;
let backend: VhostUserChannel;
let seen: VhostUserMessage[];
let fe: VhostUserFrontend;

/** script(msg) answers each request the frontend sends, or stays silent when it returns undefined. */
function connect(script: (m: VhostUserMessage) => { request?: number; payload: Buffer } | undefined, timeoutMs = 2000): void {
  const sock = path.join(dir, 's');
  fe = VhostUserFrontend.connect(sock, { timeoutMs });
  backend = new VhostUserChannel(a.unixAccept(lfd));
  backend.on('message', (m) => {
    seen.push({ ...m, fds: [...m.fds] });
    const r = script(m);
    if (r) backend.send(r.request ?? m.request, REPLY, r.payload);
  });
  backend.start();
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhf-'));
  lfd = a.unixListen(path.join(dir, 's'), 4);
  seen = [];
});

afterEach(() => {
  fe?.close();
  backend?.close();
  a.closeFd(lfd);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('VhostUserFrontend', () => {
  it('sets NEED_REPLY once REPLY_ACK is negotiated and turns a non-zero ack into a rejection', async () => {
    connect((m) => {
      if (m.request === P.VHOST_USER_GET_FEATURES) return { payload: P.encodeU64(1n << 30n) };
      if (m.request === P.VHOST_USER_GET_PROTOCOL_FEATURES) return { payload: P.encodeU64(0b11001n) };
      if (m.request === P.VHOST_USER_GET_QUEUE_NUM) return { payload: P.encodeU64(4n) };
      if (m.flags & P.VHOST_USER_NEED_REPLY_MASK) return { payload: P.encodeU64(m.request === P.VHOST_USER_SET_VRING_NUM ? 3n : 0n) };
      return undefined;
    });
    const n = await fe.negotiate({ protocolFeatures: 0b01001n });
    expect(n).toEqual({ features: 1n << 30n, protocolFeatures: 0b01001n, queueNum: 4 });
    expect(seen.map((m) => P.requestName(m.request).replace('VHOST_USER_', ''))).toEqual([
      'SET_OWNER', 'GET_FEATURES', 'GET_PROTOCOL_FEATURES', 'SET_PROTOCOL_FEATURES', 'GET_QUEUE_NUM', 'SET_FEATURES',
    ]);
    expect(seen[3]!.flags & P.VHOST_USER_NEED_REPLY_MASK).toBe(0);
    expect(seen[5]!.flags & P.VHOST_USER_NEED_REPLY_MASK).toBe(P.VHOST_USER_NEED_REPLY_MASK);
    await expect(fe.setVringNum(0, 256)).rejects.toThrow(/VHOST_USER_SET_VRING_NUM refused by the backend \(status 3\)/);
  });

  it('sends fds and the NOFD flag as the spec lays them out', async () => {
    connect(() => undefined);
    const fd = fs.openSync('/dev/null', 'r');
    await fe.setVringCall(2, fd);
    await fe.setVringKick(3, null);
    fs.closeSync(fd);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toHaveLength(2);
    expect(P.decodeVringFd(seen[0]!.payload)).toEqual({ index: 2, noFd: false });
    expect(seen[0]!.fds).toHaveLength(1);
    expect(P.decodeVringFd(seen[1]!.payload)).toEqual({ index: 3, noFd: true });
    expect(seen[1]!.fds).toHaveLength(0);
  });

  it('rejects a reply to another request, and a reply that never comes', async () => {
    connect((m) => (m.request === P.VHOST_USER_GET_FEATURES ? { request: P.VHOST_USER_GET_QUEUE_NUM, payload: P.encodeU64(1n) } : undefined), 200);
    await expect(fe.getFeatures()).rejects.toMatchObject({ code: 'UNEXPECTED_REPLY' });
    expect(fe.unexpectedReplies).toBe(1);
    const closed = new Promise<string>((r) => fe.on('close', r));
    await expect(fe.getQueueNum()).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(await closed).toMatch(/reply timeout/);
    await expect(fe.getFeatures()).rejects.toThrow(/connection closed/);
  });

  it('rejects pending requests when the backend hangs up, and short replies as protocol errors', async () => {
    connect((m) => {
      if (m.request === P.VHOST_USER_GET_FEATURES) return { payload: Buffer.alloc(0) };
      backend.close('bye');
      return undefined;
    });
    await expect(fe.getFeatures()).rejects.toMatchObject({ code: 'SHORT_PAYLOAD' });
    await expect(fe.getVringBase(0)).rejects.toThrow(/VHOST_USER_GET_VRING_BASE: connection closed \((eof|recvmsg failed.*)\)/);
  });
});
