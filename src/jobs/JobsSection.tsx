/**
 * The sidebar's Jobs section: every job of every kind, newest first, filtered by state
 * and kind; a running job's row moves live (the store follows its stream). A finished
 * job can be removed in place (its files kept unless "also delete its files" is ticked).
 */
import React, { useState } from 'react';

import type { Job, JobKind, JobState } from '../api';
import { useNow, useSignal } from '../components/hooks';
import { Section } from '../components/Section';
import {
  jobSubject,
  ProgressBar,
  StateChip,
  stateLabel
} from '../components/JobBits';
import type { IPanelContext } from '../panel/context';
import { isFinal } from './model';
import { formatDuration, formatTimeShort, jobDuration } from './time';
import { jobBackend } from './backend';

const STATES: JobState[] = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'cancelled'
];
const KINDS: JobKind[] = ['train', 'annotate', 'sync', 'validate'];

function JobRow(props: {
  job: Job;
  ctx: IPanelContext;
  now: number;
}): JSX.Element {
  const { job, ctx, now } = props;
  const trans = ctx.trans;
  const [confirming, setConfirming] = useState(false);
  const [withFiles, setWithFiles] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const final = isFinal(job.state);
  const remove = async () => {
    setBusy(true);
    setProblem(null);
    try {
      await ctx.model.remove(job.id, withFiles);
    } catch (error) {
      setProblem((error as Error).message);
      setBusy(false);
    }
  };
  const subject = jobSubject(job);
  return (
    <li
      className="jp-CvatTrain-job"
      data-job-id={job.id}
      data-state={job.state}
      data-kind={job.kind}
    >
      <div className="jp-CvatTrain-jobHead">
        <button
          className="jp-CvatTrain-jobOpen"
          onClick={() => ctx.openJob(job.id)}
          title={trans.__('Open the job view of %1', job.id)}
        >
          <span className="jp-CvatTrain-kind">{job.kind}</span>{' '}
          <span className="jp-CvatTrain-subject">{subject || job.id}</span>
        </button>
        <StateChip state={job.state} trans={trans} />
      </div>
      {!final ? (
        <ProgressBar job={job} now={now} trans={trans} compact />
      ) : null}
      <div className="jp-CvatTrain-jobMeta">
        <span title={trans.__('Started')}>
          {formatTimeShort(job.started_at ?? job.created_at, now)}
        </span>
        {job.ended_at ? (
          <span title={trans.__('Ended')}>
            → {formatTimeShort(job.ended_at, now)}
          </span>
        ) : null}
        <span title={trans.__('Duration')}>
          · {formatDuration(jobDuration(job, now))}
        </span>
        {jobBackend(job) === 'ray' ? (
          <span
            className="jp-CvatTrain-backendTag"
            title={trans.__('Runs as a Ray job on the cluster')}
          >
            {trans.__('Ray')}
          </span>
        ) : null}
      </div>
      {job.message && final ? (
        <div className={'jp-CvatTrain-jobMessage jp-mod-' + job.state}>
          {job.message}
        </div>
      ) : null}
      <div className="jp-CvatTrain-jobActions">
        {!final ? (
          <button
            className="jp-mod-styled jp-CvatTrain-small"
            disabled={busy}
            onClick={async () => {
              setBusy(true);
              try {
                await ctx.model.cancel(job.id);
              } catch (error) {
                setProblem((error as Error).message);
              } finally {
                setBusy(false);
              }
            }}
          >
            {trans.__('Cancel')}
          </button>
        ) : confirming ? (
          <span
            className="jp-CvatTrain-confirm"
            role="group"
            aria-label={trans.__('Remove this job?')}
          >
            <label className="jp-CvatTrain-check">
              <input
                type="checkbox"
                checked={withFiles}
                onChange={e => setWithFiles(e.target.checked)}
              />{' '}
              {trans.__('also delete its files')}
            </label>
            <button
              className="jp-mod-styled jp-mod-warn jp-CvatTrain-small"
              disabled={busy}
              onClick={remove}
            >
              {trans.__('Remove')}
            </button>
            <button
              className="jp-mod-styled jp-CvatTrain-small"
              onClick={() => setConfirming(false)}
            >
              {trans.__('Keep')}
            </button>
          </span>
        ) : (
          <button
            className="jp-mod-styled jp-CvatTrain-small"
            title={trans.__(
              'Remove this job from the list (its files are kept unless you choose otherwise)'
            )}
            onClick={() =>
              ctx.settings().confirmDestructiveActions
                ? setConfirming(true)
                : remove()
            }
          >
            {trans.__('Remove…')}
          </button>
        )}
      </div>
      {problem ? (
        <div className="jp-CvatTrain-error" role="alert">
          {problem}
        </div>
      ) : null}
    </li>
  );
}

function Jobs(props: { ctx: IPanelContext }): JSX.Element {
  const { ctx } = props;
  const { model, trans } = ctx;
  useSignal(model.changed);
  const [state, setState] = useState<'' | JobState>('');
  const [kind, setKind] = useState<'' | JobKind>('');
  const anyRunning = model.jobs.some(j => j.state === 'running');
  const now = useNow(1000, anyRunning);
  const jobs = model.jobs.filter(
    j => (!state || j.state === state) && (!kind || j.kind === kind)
  );
  return (
    <div className="jp-CvatTrain-section jp-CvatTrain-jobs">
      <div className="jp-CvatTrain-row jp-CvatTrain-filters">
        <select
          className="jp-mod-styled"
          aria-label={trans.__('Filter by state')}
          value={state}
          onChange={e => setState(e.target.value as JobState | '')}
        >
          <option value="">{trans.__('All states')}</option>
          {STATES.map(s => (
            <option key={s} value={s}>
              {stateLabel(s, trans)}
            </option>
          ))}
        </select>
        <select
          className="jp-mod-styled"
          aria-label={trans.__('Filter by kind')}
          value={kind}
          onChange={e => setKind(e.target.value as JobKind | '')}
        >
          <option value="">{trans.__('All kinds')}</option>
          {KINDS.map(k => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
        <button
          className="jp-mod-styled jp-CvatTrain-iconButton"
          title={trans.__('Refresh the job list')}
          aria-label={trans.__('Refresh the job list')}
          onClick={() => void model.refresh().catch(() => undefined)}
        >
          ⟳
        </button>
      </div>
      {model.reachability === 'unreachable' ? (
        <div className="jp-CvatTrain-error" role="alert">
          {trans.__(
            'The server does not answer (%1); retrying…',
            model.problem
          )}
        </div>
      ) : null}
      {!model.loaded && model.reachability !== 'unreachable' ? (
        <div className="jp-CvatTrain-empty">{trans.__('Loading jobs…')}</div>
      ) : null}
      {model.loaded && jobs.length === 0 ? (
        <div className="jp-CvatTrain-empty">
          {model.jobs.length === 0
            ? trans.__(
                'No job yet: validate an export and start a training above.'
              )
            : trans.__('No job matches these filters.')}
        </div>
      ) : null}
      <ul className="jp-CvatTrain-jobList" aria-label={trans.__('Jobs')}>
        {jobs.map(job => (
          <JobRow key={job.id} job={job} ctx={ctx} now={now} />
        ))}
      </ul>
    </div>
  );
}

/** The Jobs section as a widget of the sidebar's accordion. */
export class JobsSection extends Section {
  constructor(private _ctx: IPanelContext) {
    super(_ctx.trans.__('Jobs'), 'jp-CvatTrain-jobsSection');
  }

  protected renderBody(): JSX.Element {
    return <Jobs ctx={this._ctx} />;
  }
}
