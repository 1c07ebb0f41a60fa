// How often one frontend's control requests park the poll threads, counted by the native switch (parkStats):
// while parked, no port's frames move, so a frontend that could park them at will (a stream of invalid requests,
// or reconnecting in a loop) would take throughput from every honest guest. Over real sockets, a native Switch
// with one poll thread and a VhostUserEndpoint in this process; counts, not time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtioUserPort } from '../../src/gen/virtio-user.js';
import { native, type NativeSwitch } from '../../src/dataplane/native.js';
import { VhostUserEndpoint } from '../../src/vhost/endpoint.js';
import * as P from '../../src/vhost/protocol.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

let dir: string;
let sw: NativeSwitch;
let ep: VhostUserEndpoint;
let socket: string;
const keep: VirtioUserPort[] = []; // a Driver's fds close when it is collected: keep every one until the end

const controlParks = () => sw.parkStats().control;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-parks-'));
  sw = new (native().Switch)({ threads: 1 });
  socket = path.join(dir, 'e.sock');
  const id = sw.addPort({ name: 'e', vlan: 0, queuePairs: 1, mtu: 1500 });
  ep = new VhostUserEndpoint({ native: sw, portId: id, name: 'e', mode: 'server', socketPath: socket, queuePairs: 1, mtu: 1500, offloads: true, log: () => {} });
  ep.start();
});

afterAll(async () => {
  ep?.close();
  sw?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function connect(): Promise<VirtioUserPort> {
  const p = await VirtioUserPort.connect(socket);
  keep.push(p);
  await waitFor(() => ep.state === 'ready', 3000, 'port ready');
  return p;
}

async function disconnect(p: VirtioUserPort): Promise<void> {
  p.close();
  await waitFor(() => ep.state === 'listening', 3000, 'endpoint listening again');
}

describe('parks of the poll threads per frontend', () => {
  it('a whole connection (handshake of one queue pair, then hang-up) parks them 3 times: each SET_VRING_KICK, and the reset', async () => {
    const p0 = controlParks();
    const p = await connect();
    // Features, memory table, ring sizes, bases and addresses come while no ring runs: applied in the kicks' parks.
    expect(controlParks() - p0).toBe(2n);
    await disconnect(p);
    expect(controlParks() - p0).toBe(3n);
  });

  it('a burst of invalid requests on a live connection parks them 0 times (each refused, counted, answered)', async () => {
    const p = await connect();
    const { memFd, memSize, memUva, vrings } = p.driver.info();
    const NEED = P.VHOST_USER_VERSION | P.VHOST_USER_NEED_REPLY_MASK;
    const fail = P.encodeU64(1n);
    const outside = { index: 1, flags: 0, desc: 1n << 50n, used: (1n << 50n) + 0x4000n, avail: (1n << 50n) + 0x2000n, log: 0n };
    const bad: Array<[number, Buffer, number[]]> = [
      // refused by the backend's checks
      [P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 1, num: 3 }), []],
      [P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 9, num: 256 }), []],
      [P.VHOST_USER_SET_VRING_ADDR, P.encodeVringAddr({ ...outside, index: 9 }), []],
      [P.VHOST_USER_SET_VRING_BASE, P.encodeVringState({ index: 1, num: 1 << 20 }), []],
      [P.VHOST_USER_SET_VRING_KICK, P.encodeVringFd({ index: 0, noFd: false }), []],
      // refused by the native switch, before it parks
      [P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 1, num: 512 }), []], // the ring is running
      [P.VHOST_USER_SET_VRING_BASE, P.encodeVringState({ index: 1, num: 7 }), []], // the ring is running
      [P.VHOST_USER_SET_VRING_ADDR, P.encodeVringAddr(outside), []], // outside guest memory
      [P.VHOST_USER_SET_VRING_ADDR, P.encodeVringAddr({ ...outside, flags: 2 }), []], // unknown flags
      [P.VHOST_USER_SET_VRING_KICK, P.encodeVringFd({ index: 1, noFd: false }), [memFd]], // not an eventfd
      [P.VHOST_USER_SET_MEM_TABLE, P.encodeMemoryTable([{ guestPhysAddr: 0n, size: 0n, userAddr: memUva, mmapOffset: 0n }]), [memFd]],
      [
        P.VHOST_USER_SET_MEM_TABLE,
        P.encodeMemoryTable([
          { guestPhysAddr: 0n, size: memSize, userAddr: memUva, mmapOffset: 0n },
          { guestPhysAddr: 4096n, size: memSize, userAddr: memUva + memSize, mmapOffset: 0n },
        ]),
        [memFd, memFd],
      ], // overlapping regions
    ];
    const err0 = ep.protocolErrors;
    const p0 = controlParks();
    const rounds = 6; // 72 errors: below the 100 after which the connection is dropped
    for (let r = 0; r < rounds; r++) {
      for (const [request, payload, fds] of bad) {
        expect(await p.frontend.call(request, payload, fds, NEED), P.requestName(request)).toEqual(fail);
      }
    }
    expect(ep.protocolErrors - err0).toBe(rounds * bad.length);
    expect(controlParks() - p0).toBe(0n);
    // The port still works and is still the same: a valid request on a running ring parks once.
    expect(ep.state).toBe('ready');
    await p.frontend.setVringAddr(1, { flags: 0, desc: vrings[1]!.desc, used: vrings[1]!.used, avail: vrings[1]!.avail, log: 0n });
    expect(controlParks() - p0).toBe(1n);
    await disconnect(p);
  });
});
