// Memory hot-plug through the vhost-user handshake: our frontend negotiates CONFIGURE_MEM_SLOTS, adds a region
// (ADD_MEM_REG) while the port runs, a receive buffer placed in it gets a frame, and after REM_MEM_REG a buffer
// there is refused as outside the guest's memory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtioUserPort, ethFrame } from '../../src/gen/virtio-user.js';
import { native, type NativeSwitch } from '../../src/dataplane/native.js';
import { VhostUserEndpoint } from '../../src/vhost/endpoint.js';
import { bit, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, VHOST_USER_PROTOCOL_F_REPLY_ACK } from '../../src/vhost/features.js';
import * as P from '../../src/vhost/protocol.js';

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const DIMM = 2n << 20n;
const VRING_DESC_F_WRITE = 2;

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ADD_MEM_REG / REM_MEM_REG through the handshake', () => {
  it('a receive buffer in an added region gets the frame; after removal it is out of bounds', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-slots-'));
    const sw: NativeSwitch = new (native().Switch)({ threads: 1 });
    const eps = [0, 1].map((i) => {
      const id = sw.addPort({ name: `p${i}`, queuePairs: 1, mtu: 1500 });
      const ep = new VhostUserEndpoint({
        native: sw, portId: id, name: `p${i}`, mode: 'server', socketPath: path.join(dir, `p${i}.sock`),
        queuePairs: 1, mtu: 1500, offloads: false, log: () => {}, reconnectMinMs: 20, reconnectMaxMs: 100,
      });
      ep.start();
      return { id, ep, socket: path.join(dir, `p${i}.sock`) };
    });
    const proto = bit(VHOST_USER_PROTOCOL_F_REPLY_ACK) | bit(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
    const a = await VirtioUserPort.connect(eps[0]!.socket, { protocolFeatures: proto });
    const b = await VirtioUserPort.connect(eps[1]!.socket, { protocolFeatures: proto });
    const file = path.join('/dev/shm', `vs-slots-${process.pid}`);
    const fd = fs.openSync(file, 'w+');
    fs.unlinkSync(file);
    fs.ftruncateSync(fd, Number(DIMM));
    cleanup = async () => {
      a.close();
      b.close();
      for (const e of eps) await e.ep.close();
      sw.close();
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    };
    await waitFor(() => eps.every((e) => e.ep.state === 'ready'));
    expect(b.negotiated.protocolFeatures & proto).toBe(proto);
    const maxSlots = P.decodeU64(await b.frontend.call(P.VHOST_USER_GET_MAX_MEM_SLOTS));
    expect(maxSlots).toBe(BigInt(sw.maxMemSlots()));

    const info = b.driver.info();
    const dimm = { guestPhysAddr: info.memSize + (16n << 20n), size: DIMM, userAddr: info.memUva + (1n << 36n), mmapOffset: 0n };
    await b.frontend.command(P.VHOST_USER_ADD_MEM_REG, P.encodeSingleMemRegion(dimm), [fd]);
    expect(eps[1]!.ep.frontend!.memRegions).toBe(2);
    // The next receive buffer (descriptor 0, posted first) now lies in the DIMM.
    b.driver.writeDesc(0, 0, dimm.guestPhysAddr + 4096n, 2048, VRING_DESC_F_WRITE, 0);
    sw.fdbAdd(MAC_B, 0, eps[1]!.id);
    const f = ethFrame(MAC_B, MAC_A, 300, Buffer.alloc(286, 0x5a));
    expect(a.send([f])).toBe(1);
    const got = await b.recvSome(1);
    expect(got).toHaveLength(1);
    const inDimm = Buffer.alloc(300);
    fs.readSync(fd, inDimm, 0, 300, 4096 + info.hdrLen);
    expect(inDimm.equals(f)).toBe(true);

    await b.frontend.command(P.VHOST_USER_REM_MEM_REG, P.encodeSingleMemRegion(dimm));
    expect(eps[1]!.ep.frontend!.memRegions).toBe(1);
    await expect(b.frontend.command(P.VHOST_USER_REM_MEM_REG, P.encodeSingleMemRegion(dimm))).rejects.toThrow(/refused/);
    // A buffer still pointing there is outside the guest's memory now: the receive ring stops, nothing is written.
    b.driver.writeDesc(0, 1, dimm.guestPhysAddr + 8192n, 2048, VRING_DESC_F_WRITE, 0);
    expect(a.send([f])).toBe(1);
    await waitFor(() => sw.portStats(eps[1]!.id).broken);
    const after = Buffer.alloc(300);
    fs.readSync(fd, after, 0, 300, 8192 + info.hdrLen);
    expect(after.every((x) => x === 0)).toBe(true);
  });
});
