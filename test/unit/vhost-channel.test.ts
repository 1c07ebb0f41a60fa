// VhostUserChannel framing against a raw peer socket that the test drives byte by byte.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { native } from '../../src/dataplane/native.js';
import { takeFds, VhostUserChannel, type VhostUserMessage } from '../../src/vhost/channel.js';
import * as P from '../../src/vhost/protocol.js';

const a = native();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

let dir: string;
let lfd: number;
let peer: number;
let channel: VhostUserChannel;
let messages: VhostUserMessage[];
let closeReason: string | null;

/** A connected pair: `peer` is a raw non-blocking fd the test writes to, `channel` the side under test. */
function pair(opts: ConstructorParameters<typeof VhostUserChannel>[1] = {}): void {
  peer = a.unixConnect(path.join(dir, 's'));
  const fd = a.unixAccept(lfd);
  channel = new VhostUserChannel(fd, { messageTimeoutMs: 300, ...opts });
  channel.on('message', (m) => messages.push({ ...m, fds: [...m.fds] }));
  channel.on('close', (r) => (closeReason = r));
  channel.start();
}

/** Everything the peer can read right now, as replies. */
function drain(): Buffer {
  const parts: Buffer[] = [];
  for (;;) {
    const r = a.recvMsg(peer, 65536);
    if (!r || r.data.length === 0) break;
    parts.push(r.data);
  }
  return Buffer.concat(parts);
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhc-'));
  lfd = a.unixListen(path.join(dir, 's'), 4);
  messages = [];
  closeReason = null;
});

afterEach(() => {
  channel?.close('test done');
  a.closeFd(peer);
  a.closeFd(lfd);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('VhostUserChannel', () => {
  it('assembles a message written a few bytes at a time, with its fd on the first byte', async () => {
    pair();
    const wire = P.encodeMessage(P.VHOST_USER_SET_VRING_CALL, P.VHOST_USER_VERSION, P.encodeVringFd({ index: 1, noFd: false }));
    const fd = fs.openSync('/dev/null', 'r');
    let kept = -1;
    channel.on('message', (m) => (kept = takeFds(m)[0] ?? -1));
    a.sendMsg(peer, wire.subarray(0, 1), [fd]);
    fs.closeSync(fd);
    for (const [from, to] of [[1, 5], [5, 12], [12, 15], [15, 20]] as const) {
      await sleep(20);
      expect(messages).toHaveLength(0);
      a.sendMsg(peer, wire.subarray(from, to), []);
    }
    await waitFor(() => messages.length === 1, 'the message');
    expect(messages[0]).toMatchObject({ request: P.VHOST_USER_SET_VRING_CALL, flags: 1, fds: [kept] });
    expect(P.decodeVringFd(messages[0]!.payload)).toEqual({ index: 1, noFd: false });
    expect(kept).toBeGreaterThanOrEqual(0);
    expect(fs.fstatSync(kept).isCharacterDevice()).toBe(true); // taken, so still open
    fs.closeSync(kept);
    expect(closeReason).toBeNull();
  });

  it('closes fds nobody took', async () => {
    pair();
    const fd = fs.openSync('/dev/null', 'r');
    a.sendMsg(peer, P.encodeMessage(P.VHOST_USER_SET_LOG_FD, P.VHOST_USER_VERSION), [fd]);
    fs.closeSync(fd);
    await waitFor(() => messages.length === 1, 'the message');
    const received = messages[0]!.fds[0]!;
    // Closed: the number is free, or already reused by something that is not our /dev/null.
    let target = '';
    try {
      target = fs.readlinkSync(`/proc/self/fd/${received}`);
    } catch {
      // gone
    }
    expect(target).not.toBe('/dev/null');
  });

  it('delivers back-to-back messages from one read burst, zero-length payloads included', async () => {
    pair({ messagesPerEvent: 4 });
    const burst = Buffer.concat(Array.from({ length: 50 }, (_, i) => P.encodeMessage(i % 2 ? P.VHOST_USER_GET_FEATURES : P.VHOST_USER_SET_OWNER, 1)));
    a.sendMsg(peer, burst, []);
    await waitFor(() => messages.length === 50, '50 messages');
    expect(messages.map((m) => m.request).slice(0, 4)).toEqual([3, 1, 3, 1]);
  });

  it('queues replies while the peer does not read, and flushes them in order', async () => {
    pair();
    const n = 5000;
    for (let i = 0; i < n; i++) channel.send(P.VHOST_USER_GET_VRING_BASE, 5, P.encodeVringState({ index: 0, num: i }));
    expect(channel.closed).toBe(false);
    const got: number[] = [];
    let rest = Buffer.alloc(0);
    await waitFor(() => {
      rest = Buffer.concat([rest, drain()]);
      while (rest.length >= 20) {
        got.push(P.decodeVringState(rest.subarray(12, 20)).num);
        rest = rest.subarray(20);
      }
      return got.length === n;
    }, 'all replies');
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('gives up on a peer that never reads', () => {
    pair({ maxSendQueueBytes: 64 * 1024 });
    for (let i = 0; i < 20000 && !channel.closed; i++) channel.send(P.VHOST_USER_GET_FEATURES, 5, P.encodeU64(1n));
    expect(closeReason).toMatch(/peer is not reading/);
  });

  it('reports a cut message by timeout and an EOF mid-message', async () => {
    pair();
    a.sendMsg(peer, P.encodeHeader({ request: 2, flags: 1, size: 8 }), []);
    await waitFor(() => closeReason !== null, 'timeout');
    expect(closeReason).toMatch(/incomplete after 300 ms/);
    expect(channel.protocolErrors).toBe(1);

    a.closeFd(peer);
    closeReason = null;
    pair();
    a.sendMsg(peer, P.encodeHeader({ request: 2, flags: 1, size: 8 }).subarray(0, 5), []);
    await sleep(20);
    a.closeFd(peer);
    peer = -1;
    await waitFor(() => closeReason !== null, 'eof');
    expect(closeReason).toBe('eof in the middle of a message');
  });
});
