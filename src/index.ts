// The library surface: embed the switch (startDaemon / VSwitch), talk to a running one (ApiClient), or reuse the
// schemas that validate ports and config files.
export { startDaemon, runDaemon, packageVersion, FEATURES, type Daemon, type DaemonOptions } from './daemon.js';
export { VSwitch, SwitchError, type PortInfo, type FdbView, type PortOrigin, type EndpointFactory, type EndpointParams, type EndpointLike, type EndpointState } from './switch/model.js';
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
