// The shapes the vhost-user backend exposes: its options, the transport replies go to, and the mirror of
// negotiated state the API shows. Kept apart from backend.ts so the state machine reads on its own.
import type { NativeSwitch } from '../dataplane/native.js';
import type { VhostLog } from './log.js';

export interface BackendOptions {
  native: NativeSwitch;
  portId: number;
  /** Queue pairs offered (GET_QUEUE_NUM); rings are numbered 0..2*queuePairs-1 (even: guest RX). */
  queuePairs: number;
  /** Largest MTU the port accepts from NET_SET_MTU. */
  mtu: number;
  /** False removes the checksum/TSO feature bits from what we offer. */
  offloads: boolean;
  log: VhostLog;
  /** A frontend that gets this many requests wrong on one connection is disconnected. */
  maxProtocolErrors?: number;
}

/** Where replies go: a VhostUserChannel, or a fake in unit tests. */
export interface BackendTransport {
  send(request: number, flags: number, payload: Buffer): boolean;
  close(reason: string): void;
}

export type FdState = 'unset' | 'fd' | 'nofd';

export interface RingState {
  index: number;
  /** SET_VRING_NUM; 0 until set. */
  num: number;
  addrSet: boolean;
  /** Last SET_VRING_BASE, or the value GET_VRING_BASE returned. */
  base: number;
  kick: FdState;
  call: FdState;
  err: FdState;
  /** Between SET_VRING_KICK and GET_VRING_BASE. */
  started: boolean;
  enabled: boolean;
}

export interface BackendInfo {
  portId: number;
  owner: boolean;
  features: bigint;
  featureNames: string[];
  protocolFeatures: bigint;
  protocolFeatureNames: string[];
  /** From NET_SET_MTU, if the frontend sent one. */
  mtu: number | null;
  memRegions: number;
  rings: RingState[];
  ready: boolean;
  protocolErrors: number;
  lastError: string | null;
}

export interface BackendEvents {
  /** At least one queue pair started and enabled: link up. */
  ready: [];
  /** No queue pair carries traffic any more (ring stopped/disabled, reset, disconnect). */
  down: [reason: string];
}

export function newRing(index: number): RingState {
  return { index, num: 0, addrSet: false, base: 0, kick: 'unset', call: 'unset', err: 'unset', started: false, enabled: false };
}
