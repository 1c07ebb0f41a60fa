// A NativeSwitch stand-in that records the vhost-user setters and honours the fd ownership contract of
// src/dataplane/native.ts (fds handed over are closed when replaced, on resetPort, or when the call fails): the vhost-user
// backend's unit tests (test/unit). Not shipped: nothing under src/ knows it.
import type { FdbEntry, LogInfo, LogRegion, MemRegion, NativeSwitch, PortOptions, NicPortOptions, ParkStats, PortStats, ThreadStats, VringAddr } from '../../src/dataplane/native.js';

export interface FakeCall {
  method: string;
  args: unknown[];
}

export class FakeNativeSwitch implements NativeSwitch {
  readonly calls: FakeCall[] = [];
  /** What getVringBase returns, per "port:index"; 0 by default. */
  readonly vringBase = new Map<string, number>();
  /** fds currently owned, per "port:kind:index" (kind mem uses the region number). */
  readonly owned = new Map<string, number>();
  private readonly failures = new Map<string, Error>();
  private nextPort = 0;

  /** closeFd: how owned fds are released; a no-op for fake numbers, fs.closeSync for real ones. */
  constructor(private readonly closeFd: (fd: number) => void = () => {}) {}

  /** The next call to `method` throws `message` (as native setters do on bad input). */
  failNext(method: keyof NativeSwitch, message = `${method} refused`): void {
    this.failures.set(method, new Error(message));
  }

  callsTo(method: keyof NativeSwitch): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  private record(method: string, args: unknown[], fds: number[] = []): void {
    this.calls.push({ method, args });
    const err = this.failures.get(method);
    if (err) {
      this.failures.delete(method);
      for (const fd of fds) if (fd >= 0) this.closeFd(fd);
      throw err;
    }
  }

  private own(key: string, fd: number): void {
    const old = this.owned.get(key);
    if (old !== undefined) this.closeFd(old);
    if (fd >= 0) this.owned.set(key, fd);
    else this.owned.delete(key);
  }

  private releasePort(id: number): void {
    for (const [key, fd] of [...this.owned]) {
      if (key.startsWith(`${id}:`)) {
        this.closeFd(fd);
        this.owned.delete(key);
      }
    }
  }

  addPort(opts: PortOptions): number {
    this.record('addPort', [opts]);
    return this.nextPort++;
  }
  /** Host ports' backends as the real switch reports them: auto and af_xdp give af_xdp here. */
  private readonly backends = new Map<number, 'af_packet' | 'af_xdp' | 'tap'>();
  addNicPort(opts: NicPortOptions): number {
    this.record('addNicPort', [opts]);
    const id = this.nextPort++;
    this.backends.set(id, opts.kind === 'tap' ? 'tap' : !opts.backend || opts.backend === 'af_packet' ? 'af_packet' : 'af_xdp');
    return id;
  }
  removePort(id: number): void {
    this.record('removePort', [id]);
    this.releasePort(id);
  }
  resetPort(id: number): void {
    this.record('resetPort', [id]);
    this.releasePort(id);
  }
  setFeatures(id: number, features: bigint): void {
    this.record('setFeatures', [id, features]);
  }
  setMemTable(id: number, regions: MemRegion[]): void {
    this.record('setMemTable', [id, regions], regions.map((r) => r.fd));
    for (const [key, fd] of [...this.owned]) {
      if (key.startsWith(`${id}:mem:`)) {
        this.closeFd(fd);
        this.owned.delete(key);
      }
    }
    regions.forEach((r, i) => this.own(`${id}:mem:${i}`, r.fd));
  }
  addMemReg(id: number, region: MemRegion): void {
    this.record('addMemReg', [id, region], [region.fd]);
    this.own(`${id}:mem:${region.guestPhysAddr}`, region.fd);
  }
  remMemReg(id: number, region: Omit<MemRegion, 'fd'>): void {
    this.record('remMemReg', [id, region]);
    const key = `${id}:mem:${region.guestPhysAddr}`;
    const fd = this.owned.get(key);
    if (fd !== undefined) {
      this.closeFd(fd);
      this.owned.delete(key);
    }
  }
  maxMemSlots(): number {
    return 32;
  }
  setVringNum(id: number, index: number, num: number): void {
    this.record('setVringNum', [id, index, num]);
  }
  setVringAddr(id: number, index: number, addr: VringAddr): void {
    this.record('setVringAddr', [id, index, addr]);
  }
  setLogBase(id: number, log: LogRegion): void {
    this.record('setLogBase', [id, log], [log.fd]);
    this.own(`${id}:log:0`, log.fd);
  }
  logInfo(id: number): LogInfo {
    return { size: 0n, outside: 0n, logging: false };
  }
  sendRarp(id: number, mac: string): void {
    this.record('sendRarp', [id, mac]);
  }
  setVringBase(id: number, index: number, base: number): void {
    this.record('setVringBase', [id, index, base]);
    this.vringBase.set(`${id}:${index}`, base);
  }
  getVringBase(id: number, index: number): number {
    this.record('getVringBase', [id, index]);
    return this.vringBase.get(`${id}:${index}`) ?? 0;
  }
  setVringKick(id: number, index: number, fd: number): void {
    this.record('setVringKick', [id, index, fd], [fd]);
    this.own(`${id}:kick:${index}`, fd);
  }
  setVringCall(id: number, index: number, fd: number): void {
    this.record('setVringCall', [id, index, fd], [fd]);
    this.own(`${id}:call:${index}`, fd);
  }
  setVringErr(id: number, index: number, fd: number): void {
    this.record('setVringErr', [id, index, fd], [fd]);
    this.own(`${id}:err:${index}`, fd);
  }
  setVringEnable(id: number, index: number, enable: boolean): void {
    this.record('setVringEnable', [id, index, enable]);
  }
  portStats(id: number): PortStats {
    const backend = this.backends.get(id);
    const nic = backend ? { backend, ...(backend === 'af_xdp' ? { xdpMode: 'generic' as const } : {}) } : {};
    return { id, name: `port${id}`, rxPackets: 0n, rxBytes: 0n, txPackets: 0n, txBytes: 0n, drops: {}, broken: false, ...nic, queues: [] };
  }
  threadStats(): ThreadStats[] {
    return [];
  }
  parkStats(): ParkStats {
    return { control: 0n, housekeeping: 0n };
  }
  tscHz(): number {
    return 1e9;
  }
  startCapture(): void {
    throw new Error('the fake switch does not capture');
  }
  readCapture(): null {
    return null;
  }
  stopCapture(): void {}
  updatePort(id: number, opts: unknown): void {
    this.record('updatePort', [id, opts]);
  }
  fdbList(): FdbEntry[] {
    return [];
  }
  fdbAdd(mac: string, vlan: number, portId: number): void {
    this.record('fdbAdd', [mac, vlan, portId]);
  }
  fdbRemove(mac: string, vlan: number): boolean {
    this.record('fdbRemove', [mac, vlan]);
    return true;
  }
  fdbFlush(portId?: number): void {
    this.record('fdbFlush', [portId]);
  }
  close(): void {
    this.record('close', []);
    for (const fd of this.owned.values()) this.closeFd(fd);
    this.owned.clear();
  }
}
