// The service manager's notification protocol (sd_notify(3)), for `Type=notify` units: READY=1 once the control
// socket and the config ports are up, RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 when shutting
// down, and WATCHDOG=1 every half WATCHDOG_USEC while the poll threads make progress (a stalled poll thread
// stops the pings, and systemd restarts the service). Without NOTIFY_SOCKET it does nothing.
import type { Logger } from '../log.js';

export interface NotifyEnv {
  NOTIFY_SOCKET?: string;
  WATCHDOG_USEC?: string;
  WATCHDOG_PID?: string;
}

/** Sends one datagram (the addon's notifySend). */
export type NotifySend = (socketPath: string, message: string) => void;

export class ServiceNotifier {
  private timer: NodeJS.Timeout | undefined;
  private stalledBefore = false;

  private constructor(
    private readonly socket: string,
    private readonly send: NotifySend,
    private readonly log: Logger,
    /** Watchdog period in ms (half of WATCHDOG_USEC), or undefined when no watchdog was asked for. */
    readonly watchdogMs: number | undefined,
  ) {}

  /** A notifier when the daemon runs under a service manager (NOTIFY_SOCKET set), else undefined. */
  static fromEnv(env: NotifyEnv, send: NotifySend, log: Logger, pid = process.pid): ServiceNotifier | undefined {
    const socket = env.NOTIFY_SOCKET;
    if (!socket) return undefined;
    let watchdogMs: number | undefined;
    const usec = Number(env.WATCHDOG_USEC);
    // WATCHDOG_PID names the process the watchdog is for: a child that inherited the variables must not ping.
    const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === pid;
    if (env.WATCHDOG_USEC && (!Number.isInteger(usec) || usec <= 0)) log.warn('WATCHDOG_USEC is not a positive integer; no watchdog pings', { value: env.WATCHDOG_USEC });
    else if (env.WATCHDOG_USEC && forUs) watchdogMs = Math.max(1, Math.floor(usec / 2000));
    return new ServiceNotifier(socket, send, log, watchdogMs);
  }

  notify(...fields: string[]): void {
    try {
      this.send(this.socket, fields.join('\n'));
    } catch (err) {
      this.log.warn('cannot notify the service manager', { socket: this.socket, err: err as Error });
    }
  }

  ready(status: string): void {
    this.notify('READY=1', `STATUS=${status}`, `MAINPID=${process.pid}`);
  }

  /** RELOADING=1 carries the time it started, as systemd's Type=notify-reload wants it. */
  reloading(): void {
    const nowUs = process.hrtime.bigint() / 1000n;
    this.notify('RELOADING=1', `MONOTONIC_USEC=${nowUs}`, 'STATUS=reloading the config');
  }

  stopping(): void {
    this.stopWatchdog();
    this.notify('STOPPING=1', 'STATUS=stopping');
  }

  /** Pings every watchdogMs while stalled() is empty; logs once when a stall starts and when it ends. */
  startWatchdog(stalled: () => number[]): void {
    if (this.watchdogMs === undefined || this.timer) return;
    this.timer = setInterval(() => {
      const threads = stalled();
      if (threads.length === 0) {
        if (this.stalledBefore) this.log.info('poll threads make progress again; watchdog pings resumed');
        this.stalledBefore = false;
        this.notify('WATCHDOG=1');
        return;
      }
      if (!this.stalledBefore)
        this.log.error('poll thread stalled: watchdog pings stopped (the service manager restarts the switch)', { threads: threads.join(',') });
      this.stalledBefore = true;
      this.notify(`STATUS=poll thread ${threads.join(',')} stalled`);
    }, this.watchdogMs);
    this.timer.unref();
  }

  stopWatchdog(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
