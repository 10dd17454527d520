/**
 * Small pieces every job surface shares: the state chip (text and an icon, never colour
 * alone), the progress bar with ETA, and a line naming what a job works on.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import type { Job, JobState } from '../api';
import { formatDuration, jobEta, progressFraction } from '../jobs/time';

/** A state's words, through the translation bundle (literal strings, for extraction). */
export function stateLabel(state: JobState, trans: TranslationBundle): string {
  switch (state) {
    case 'queued':
      return trans.__('Queued');
    case 'running':
      return trans.__('Running');
    case 'succeeded':
      return trans.__('Succeeded');
    case 'failed':
      return trans.__('Failed');
    case 'cancelled':
      return trans.__('Cancelled');
  }
}

const STATE_MARK: Record<JobState, string> = {
  queued: '◷',
  running: '▶',
  succeeded: '✓',
  failed: '✕',
  cancelled: '⊘'
};

export function StateChip(props: {
  state: JobState;
  trans: TranslationBundle;
}): JSX.Element {
  return (
    <span
      className={`jp-CvatTrain-state jp-mod-${props.state}`}
      data-state={props.state}
    >
      <span aria-hidden="true">{STATE_MARK[props.state]}</span>{' '}
      {stateLabel(props.state, props.trans)}
    </span>
  );
}

/** Progress as a bar with `done/total unit` and, while running, the ETA. */
export function ProgressBar(props: {
  job: Job;
  now: number;
  trans: TranslationBundle;
  compact?: boolean;
}): JSX.Element | null {
  const { job, trans } = props;
  const fraction = progressFraction(job);
  if (fraction === null && job.progress.done === 0) {
    return null;
  }
  const eta = jobEta(job, props.now);
  const unit = job.progress.unit ?? '';
  const text =
    job.progress.total !== null
      ? `${job.progress.done}/${job.progress.total} ${unit}`.trim()
      : `${job.progress.done} ${unit}`.trim();
  const percent = fraction === null ? null : Math.round(fraction * 100);
  return (
    <div
      className={
        'jp-CvatTrain-progress' + (props.compact ? ' jp-mod-compact' : '')
      }
    >
      <div
        className="jp-CvatTrain-progressTrack"
        role="progressbar"
        aria-label={trans.__('Progress')}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent ?? undefined}
        aria-valuetext={text}
      >
        <div
          className="jp-CvatTrain-progressFill"
          style={{ width: `${percent ?? 0}%` }}
        />
      </div>
      <span className="jp-CvatTrain-progressText">
        {text}
        {percent !== null ? ` (${percent} %)` : ''}
        {eta !== null ? ' · ' + trans.__('ETA %1', formatDuration(eta)) : ''}
      </span>
    </div>
  );
}

function baseName(path: unknown): string {
  if (typeof path !== 'string' || !path) {
    return '';
  }
  const parts = path.replace(/\/+$/, '').split('/');
  return parts[parts.length - 1] || path;
}

/** What a job works on, in a few words, from its spec. */
export function jobSubject(job: Job): string {
  const spec = job.spec ?? {};
  switch (job.kind) {
    case 'train':
      return [spec.template, baseName(spec.dataset)]
        .filter(Boolean)
        .join(' · ');
    case 'validate':
      return baseName(spec.dataset);
    case 'annotate':
      return [baseName(spec.images), baseName(spec.output)]
        .filter(Boolean)
        .join(' → ');
    case 'sync':
      return `${spec.direction === 'down' ? '↓' : '↑'} ${baseName(spec.workspace)} ⇄ ${String(spec.storage ?? '')}`;
    case 'cvat-pull':
      return `task ${String(spec.task_id ?? '?')} → ${baseName(spec.output)}`;
    case 'cvat-push':
      return `${baseName(spec.source)} → task ${String(spec.task_id ?? '?')}`;
    case 'cvat-auto-annotate':
      return `task ${String(spec.task_id ?? '?')}`;
    default:
      return '';
  }
}
