// The logging shape the vhost-user code takes: one function, so a port's child Logger, a test spy or a
// no-op all fit without the protocol code knowing about log formats.
import type { Fields, Level } from '../log.js';

export type VhostLog = (level: Level, msg: string, fields?: Fields) => void;

export const silentLog: VhostLog = () => {};
