// The control API in this process: a real VSwitch over FakeNativeSwitch (test/support) with inert endpoints (no sockets but the control
// socket), for fast tests of the API and of the CLI's main() without spawning a daemon.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createApiServer, listenUnix } from '../../../src/api/server.js';
import { createLogger } from '../../../src/log.js';
import type { NativeAddon } from '../../../src/dataplane/native.js';
import { VSwitch } from '../../../src/switch/model.js';
import type { EndpointParams, EndpointState } from '../../../src/switch/port.js';
// @ts-expect-error plain JS helper
import { FakeNativeSwitch } from '../../support/fake-native-switch.js';

export class InertEndpoint extends EventEmitter {
  state: EndpointState = 'closed';
  protocolErrors = 0;
  constructor(readonly p: EndpointParams) {
    super();
  }
  start(): void {
    this.state = this.p.mode === 'server' ? 'listening' : 'connecting';
    this.emit('state', this.state, 'closed');
  }
  close(): void {
    this.state = 'closed';
  }
}

export interface InProcessApi {
  dir: string;
  socket: string;
  vswitch: VSwitch;
  server: http.Server;
  close(): Promise<void>;
}

export async function startInProcessApi(): Promise<InProcessApi> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-inproc-'));
  const socket = path.join(dir, 'control.sock');
  const log = createLogger({ level: 'error', write: () => {} });
  const vswitch = new VSwitch({
    native: { Switch: FakeNativeSwitch } as unknown as NativeAddon,
    threads: 1,
    agingSeconds: 300,
    runDir: dir,
    socketDirs: [],
    log,
    endpointFactory: (p) => new InertEndpoint(p),
    persist: async () => {},
  });
  const server = createApiServer({ vswitch, version: '1.2.3', features: ['test'], log });
  await listenUnix(server, socket);
  return {
    dir,
    socket,
    vswitch,
    server,
    close: async () => {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await vswitch.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
