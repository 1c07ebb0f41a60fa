// The library surface: embed the switch (startDaemon / VSwitch), talk to a running one (ApiClient), or reuse the
// schemas that validate ports and config files.
export { startDaemon, runDaemon, packageVersion, FEATURES, type Daemon, type DaemonOptions } from './daemon.js';
export { VSwitch } from './switch/model.js';
export { SwitchError } from './switch/errors.js';
export type { PortInfo, PortOrigin, EndpointFactory, EndpointParams, EndpointLike, EndpointState } from './switch/port.js';
export type { FdbView } from './switch/views.js';
export { createApiServer, listenUnix, type ApiOptions, type SwitchApi } from './api/server.js';
export { renderMetrics } from './api/metrics.js';
export { ApiClient, ApiError, UnreachableError } from './cli/client.js';
export {
  configSchema,
  portSpecSchema,
  fdbSpecSchema,
  defaultConfig,
  loadConfigFile,
  parseWith,
  ValidationError,
  DEFAULT_CONFIG_JSON,
  type Config,
  type PortSpec,
  type PortSpecInput,
  type FdbSpec,
} from './config.js';
export { StateStore, writeFileAtomic, type PersistedState } from './switch/state.js';
export { createLogger, parseLevel, type Logger, type Level } from './log.js';
export { resolveRunDir, resolveControlSocket, controlSocketPath } from './host/runDir.js';
