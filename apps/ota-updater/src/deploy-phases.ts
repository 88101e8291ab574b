// The phases of a deploy, the record persisted at each, and how they map to progress and to the
// OTA stages a watcher sees. Kept apart from deploy.ts so the flow there stays the whole story.
import type { OtaStage } from './ports.js';

/** The phases of a deploy, in the order a good one passes them; the last four only on failure. */
export const DEPLOY_PHASES = [
  'unpacking',
  'stopping',
  'switched',
  'starting',
  'health_check',
  'committed',
  'rolling_back_previous',
  'rolling_back_factory',
  'rolled_back',
  'failed',
] as const;
export type DeployPhase = (typeof DEPLOY_PHASES)[number];

/** What the service persists on every phase change: all resumeDeploy needs after a power cut. */
export interface DeployRecord {
  version: string;
  phase: DeployPhase;
  /** What `current` pointed at before the deploy: the first rollback target. */
  from: string | null;
  /** What `previous` pointed at before the deploy: restored by a rollback to `from`. */
  previousBefore: string | null;
  /** Why the deploy is rolling back or failed; null while it goes well. */
  error: { code: string; message: string } | null;
  startedAt: number;
}

/** Sent with every phase change. */
export interface PhaseDetail {
  record: DeployRecord;
  progress: number;
  message: string;
}

/** Called on every phase change; the service persists `detail.record` here. */
export type PhaseListener = (phase: DeployPhase, detail: PhaseDetail) => void | Promise<void>;

/** Overall progress (0-100) reported when a phase starts. */
export const PHASE_PROGRESS: Record<DeployPhase, number> = {
  unpacking: 5,
  stopping: 45,
  switched: 55,
  starting: 60,
  health_check: 70,
  committed: 100,
  rolling_back_previous: 80,
  rolling_back_factory: 90,
  rolled_back: 100,
  failed: 100,
};
/** Unpacking reports from PHASE_PROGRESS.unpacking up to this, by bytes written. */
export const UNPACK_PROGRESS_END = 40;

/** The OTA stage (GET /progress) a deploy phase belongs to. */
export function stageOfPhase(phase: DeployPhase): OtaStage {
  switch (phase) {
    case 'unpacking':
    case 'stopping':
    case 'switched':
    case 'starting':
      return 'deploying';
    case 'health_check':
      return 'health_check';
    case 'committed':
      return 'success';
    case 'rolling_back_previous':
    case 'rolling_back_factory':
      return 'rolling_back';
    case 'rolled_back':
      return 'rolled_back';
    case 'failed':
      return 'failed';
  }
}

/** One deploy's record and the way its phase changes are announced. */
export interface PhaseRun {
  record: DeployRecord;
  phase(phase: DeployPhase, message: string, options?: { bestEffort?: boolean }): Promise<void>;
}

/**
 * Tracks `record` and announces each phase to `listener` with a copy of it; a listener's throw
 * propagates unless the phase is announced as best effort (during a rollback).
 */
export function startPhaseRun(listener: PhaseListener | undefined, record: DeployRecord): PhaseRun {
  return {
    record,
    async phase(phase, message, phaseOptions = {}) {
      record.phase = phase;
      try {
        await listener?.(phase, { record: { ...record }, progress: PHASE_PROGRESS[phase], message });
      } catch (error) {
        if (phaseOptions.bestEffort !== true) throw error;
      }
    },
  };
}
