/**
 * The statechart visualizer: its server (the client is plain browser files in ./client, served
 * from the package root, never bundled). `up` starts it with the coordinator's EventLog:
 *   const viz = await startVizServer({ host, port, live: coord.events, runDir: outputDir, logger });
 *   ... viz.url ... await viz.close();
 */
export { startVizServer, type VizServer, type VizServerOptions } from './startVizServer.js';
export type { VizMode } from './runSources.js';
