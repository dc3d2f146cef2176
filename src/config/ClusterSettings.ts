/**
 * The runtime view of the `cluster:` section: every timeout in milliseconds, the addresses the
 * coordinator binds and advertises, the launcher and its ssh options. clusterSettingsOf() is the
 * one place that derives it from a resolved config; the coordinator, node agents, ranks and
 * launchers all read these fields and never the raw section. Must never hold a default: every
 * value comes from the config (whose defaults are declared once, in schema.ts).
 */
import { hostname } from 'node:os';
import type { JobConfig } from './JobConfig.js';

export interface SshOptions {
  /** ssh port; null: the client configuration */
  port: number | null;
  user: string | null;
  identityFile: string | null;
  strictHostKeyChecking: 'yes' | 'accept-new' | 'no';
  connectTimeoutS: number;
  /** extra `-o` options (`Key=Value`) */
  options: string[];
}

export interface ClusterSettings {
  heartbeatIntervalMs: number;
  /** a peer is dead after this many missed heartbeats */
  missLimit: number;
  stepTimeoutMs: number;
  collectiveTimeoutMs: number;
  rendezvousTimeoutMs: number;
  maxRestarts: number;
  restartWindowMs: number;
  shutdownGraceMs: number;
  /** a newly started rank may stay silent this long before missed heartbeats count */
  startupGraceMs: number;
  /**
   * how long agents and ranks keep going while the coordinator is silent (a pause, a cut-off
   * network) before they stop; the coordinator gives a silent node agent as long
   */
  coordinatorGraceMs: number;
  /** node agents keep a warm standby process per rank for restarts */
  standbyRanks: boolean;
  bindHost: string;
  /** the address agents and ranks dial (MASTER_ADDR), as seen from the coordinator's host */
  advertiseHost: string;
  /** the coordinator's ROUTER port (0: ephemeral) */
  port: number;
  launcher: JobConfig['cluster']['launcher'];
  /** how another host runs this program (a shell fragment) */
  agentCommand: string;
  ssh: SshOptions;
  visualizer: JobConfig['cluster']['visualizer'];
}

const WILDCARD = new Set(['0.0.0.0', '*', '::', '[::]']);

export function clusterSettingsOf(c: JobConfig['cluster']): ClusterSettings {
  return {
    heartbeatIntervalMs: c.heartbeat_interval_s * 1000,
    missLimit: c.heartbeat_miss_limit,
    stepTimeoutMs: c.step_timeout_s * 1000,
    collectiveTimeoutMs: c.collective_timeout_s * 1000,
    rendezvousTimeoutMs: c.rendezvous_timeout_s * 1000,
    maxRestarts: c.max_restarts,
    restartWindowMs: c.restart_window_s * 1000,
    shutdownGraceMs: c.shutdown_grace_s * 1000,
    startupGraceMs: c.startup_grace_s * 1000,
    coordinatorGraceMs: c.coordinator_grace_s * 1000,
    standbyRanks: c.standby_ranks,
    bindHost: c.bind_address,
    // a wildcard bind is dialled through this host's name unless an address is advertised
    advertiseHost: c.advertise_address ?? (WILDCARD.has(c.bind_address) ? hostname() : c.bind_address),
    port: c.coordinator_port,
    launcher: c.launcher,
    agentCommand: c.agent_command,
    ssh: {
      port: c.ssh.port,
      user: c.ssh.user,
      identityFile: c.ssh.identity_file,
      strictHostKeyChecking: c.ssh.strict_host_key_checking,
      connectTimeoutS: c.ssh.connect_timeout_s,
      options: [...c.ssh.options],
    },
    visualizer: { ...c.visualizer },
  };
}
