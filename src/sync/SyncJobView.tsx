/**
 * The sync part of a job view: files and bytes done / total, rate and ETA from the
 * job's latest progress event, and at the end the summary (copied, updated, deleted,
 * skipped, failed, refused; bytes and time; the first errors). A preview (dry run)
 * shows its plan instead.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React, { useEffect, useState } from 'react';

import {
  getSyncPlan,
  type Job,
  type JobEvent,
  type SyncPlanPage
} from '../api';
import { formatDuration } from '../jobs/time';
import { formatBytes, PLAN_PAGE, syncProgress } from './model';
import { PlanTable } from './SyncSection';

/** The summary of a finished sync: the job's outputs, else its last summary event. */
export function syncSummary(
  job: Job,
  events: readonly JobEvent[]
): Record<string, unknown> | null {
  if (typeof job.outputs?.copied === 'number') {
    return job.outputs as Record<string, unknown>;
  }
  for (let i = events.length - 1; i >= 0; i--) {
    if (events[i].type === 'summary') {
      return events[i] as Record<string, unknown>;
    }
  }
  return null;
}

const COUNTS = [
  'copied',
  'updated',
  'deleted',
  'skipped',
  'failed',
  'refused'
] as const;

function countLabel(name: (typeof COUNTS)[number], trans: TranslationBundle) {
  switch (name) {
    case 'copied':
      return trans.__('Copied');
    case 'updated':
      return trans.__('Updated');
    case 'deleted':
      return trans.__('Deleted');
    case 'skipped':
      return trans.__('Skipped (same)');
    case 'failed':
      return trans.__('Failed');
    case 'refused':
      return trans.__('Refused');
  }
}

function PreviewPlan(props: { job: Job; trans: TranslationBundle }) {
  const { job, trans } = props;
  const [page, setPage] = useState<SyncPlanPage | null>(null);
  const [problem, setProblem] = useState('');
  useEffect(() => {
    if (job.state !== 'succeeded') {
      return;
    }
    let live = true;
    getSyncPlan(job.id, { limit: PLAN_PAGE })
      .then(p => live && setPage(p))
      .catch(e => live && setProblem((e as Error).message));
    return () => {
      live = false;
    };
  }, [job.id, job.state]);
  if (problem) {
    return <div className="jp-CvatTrain-error">{problem}</div>;
  }
  return page ? <PlanTable page={page} trans={trans} /> : null;
}

/** The sync block of a job view. */
export function SyncJobView(props: {
  job: Job;
  events: readonly JobEvent[];
  trans: TranslationBundle;
}): JSX.Element {
  const { job, events, trans } = props;
  const spec = job.spec ?? {};
  const dryRun = spec.dry_run === true;
  const progress = syncProgress(events);
  const summary = syncSummary(job, events);
  const final = ['succeeded', 'failed', 'cancelled'].includes(job.state);
  const errors = Array.isArray(summary?.errors)
    ? (summary?.errors as unknown[]).filter(e => typeof e === 'string')
    : [];
  return (
    <section
      className="jp-CvatTrain-syncJob"
      aria-label={trans.__('Sync')}
      data-dry-run={dryRun ? 'true' : 'false'}
    >
      <h3>
        {spec.direction === 'down'
          ? trans.__(
              '%1 → %2',
              String(spec.storage ?? ''),
              String(spec.workspace ?? '')
            )
          : trans.__(
              '%1 → %2',
              String(spec.workspace ?? ''),
              String(spec.storage ?? '')
            )}
        {dryRun ? ' ' + trans.__('(preview: nothing moves)') : ''}
      </h3>
      {!final && progress ? (
        <dl className="jp-CvatTrain-syncProgress">
          <dt>{trans.__('Files')}</dt>
          <dd>
            {progress.filesDone} / {progress.filesTotal}
          </dd>
          <dt>{trans.__('Bytes')}</dt>
          <dd>
            {formatBytes(progress.bytesDone)} /{' '}
            {formatBytes(progress.bytesTotal)}
          </dd>
          <dt>{trans.__('Rate')}</dt>
          <dd>
            {progress.rate !== null ? `${formatBytes(progress.rate)}/s` : '—'}
          </dd>
          <dt>{trans.__('ETA')}</dt>
          <dd>{formatDuration(progress.eta)}</dd>
        </dl>
      ) : null}
      {!final && !progress ? (
        <div className="jp-CvatTrain-dim">
          {trans.__('Listing both sides…')}
        </div>
      ) : null}
      {summary && !dryRun ? (
        <table className="jp-CvatTrain-table jp-CvatTrain-syncSummary">
          <caption>
            {trans.__(
              '%1 transferred in %2',
              formatBytes(Number(summary.bytes ?? 0)),
              formatDuration(Number(summary.seconds ?? 0) * 1000)
            )}
          </caption>
          <tbody>
            {COUNTS.map(name => (
              <tr key={name} data-count={name}>
                <th scope="row">{countLabel(name, trans)}</th>
                <td className="jp-mod-number">{String(summary[name] ?? 0)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {typeof summary?.delete_refused === 'string' ? (
        <div className="jp-CvatTrain-error">{summary.delete_refused}</div>
      ) : null}
      {errors.length > 0 ? (
        <details className="jp-CvatTrain-syncErrors">
          <summary>{trans._n('%1 error', '%1 errors', errors.length)}</summary>
          <ul>
            {errors.map((e, i) => (
              <li key={i}>{e as string}</li>
            ))}
          </ul>
        </details>
      ) : null}
      {dryRun ? <PreviewPlan job={job} trans={trans} /> : null}
    </section>
  );
}
