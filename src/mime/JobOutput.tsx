/**
 * The live job card of a notebook output (`application/vnd.jupyter-cvat-train.job+json`):
 * state, progress with ETA, message, the per-epoch chart of a training job, the last log
 * lines, and Cancel / Open TensorBoard / Open job view (the app's commands); the chart
 * shows from the first epoch's end, so a fresh card stays short. It ends
 * green (succeeded) or red (failed; cancelled in the warning colour, as in the panel) with
 * the job's final message. Everything comes from the app's one job store and the job's
 * shared stream follower, so the card needs no kernel, and comes back after a page reload
 * from the saved output's job id alone.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import type { ServerConnection } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import React, { useMemo, useState } from 'react';

import { CommandIDs } from '../commands';
import { useNow, useSignal } from '../components/hooks';
import { jobSubject, ProgressBar, StateChip } from '../components/JobBits';
import { LogView } from '../components/LogView';
import { MetricsChart } from '../components/MetricsChart';
import { epochSeries } from '../jobs/metrics';
import type { JobsModel } from '../jobs/model';
import { isFinal } from '../jobs/model';
import { formatDuration, formatTime, jobDuration } from '../jobs/time';
import { JobLookup } from './lookup';
import {
  JOB_MIME_TYPE,
  parseJobPayload,
  type IJobPayload,
  type PayloadResult
} from './payload';

/** What a job output gets from the app: the one job store, commands, translation. */
export interface IJobOutputContext {
  store: JobsModel;
  commands: JupyterFrontEnd['commands'];
  trans: TranslationBundle;
  settings?: ServerConnection.ISettings;
}

interface IButton {
  label: string;
  className: string;
  title: string;
  /** Why it does not apply now, or null. */
  disabled: string | null;
  run: () => Promise<unknown>;
}

function Buttons(props: {
  buttons: IButton[];
  onError: (message: string | null) => void;
}): JSX.Element {
  const [busy, setBusy] = useState<string | null>(null);
  return (
    <div className="jp-CvatTrain-actions" role="toolbar">
      {props.buttons.map(b => (
        <button
          key={b.className}
          className={`jp-mod-styled ${b.className}`}
          disabled={b.disabled !== null || busy !== null}
          title={b.disabled ?? b.title}
          aria-label={b.label}
          onClick={async () => {
            setBusy(b.className);
            props.onError(null);
            try {
              await b.run();
            } catch (error) {
              props.onError((error as Error).message ?? String(error));
            } finally {
              setBusy(null);
            }
          }}
        >
          {b.label}
        </button>
      ))}
    </div>
  );
}

function Notice(props: {
  payload: IJobPayload;
  kind: 'dim' | 'error';
  children: React.ReactNode;
  phase: string;
}): JSX.Element {
  return (
    <div
      className="jp-CvatTrain-jobOutputCard"
      data-job-id={props.payload.jobId}
      data-phase={props.phase}
    >
      <div className="jp-CvatTrain-jobOutputHead">
        <span className="jp-CvatTrain-jobOutputTitle">
          {props.payload.name || props.payload.jobId}
        </span>
      </div>
      <div
        className={
          props.kind === 'error' ? 'jp-CvatTrain-error' : 'jp-CvatTrain-dim'
        }
        role={props.kind === 'error' ? 'alert' : 'status'}
      >
        {props.children}
      </div>
    </div>
  );
}

/** The card of a known job, or what stands in for it while it is not. */
export function JobOutputCard(props: {
  lookup: JobLookup;
  payload: IJobPayload;
  ctx: IJobOutputContext;
}): JSX.Element {
  const { lookup, payload, ctx } = props;
  const { trans, commands } = ctx;
  useSignal(lookup.changed);
  const job = lookup.job;
  const follower = lookup.follower;
  const running = job?.state === 'running';
  const now = useNow(1000, running);
  const [problem, setProblem] = useState<string | null>(null);
  const events = follower?.events ?? [];
  const series = useMemo(
    () => (job?.kind === 'train' ? epochSeries(events) : []),
    [job?.kind, events.length]
  );

  if (lookup.phase === 'missing') {
    return (
      <Notice payload={payload} kind="error" phase="missing">
        {trans.__(
          "Job %1 is not in this server's runs root, or deleted. `cvat-train jobs` (or the CVAT Train panel) lists the jobs this server has.",
          payload.jobId
        )}
      </Notice>
    );
  }
  if (lookup.phase === 'unreachable') {
    return (
      <Notice payload={payload} kind="error" phase="unreachable">
        {trans.__(
          'The server does not answer (%1); this output tries again.',
          lookup.problem
        )}
      </Notice>
    );
  }
  if (!job || !follower) {
    return (
      <Notice payload={payload} kind="dim" phase="checking">
        {trans.__('Looking for job %1…', payload.jobId)}
      </Notice>
    );
  }

  const final = isFinal(job.state);
  const isTrain = job.kind === 'train';
  const note =
    follower.status === 'reconnecting'
      ? trans.__('Connection lost (%1); reconnecting…', follower.problem)
      : '';
  const buttons: IButton[] = [
    {
      label: trans.__('Cancel'),
      className: 'jp-CvatTrain-cancel',
      title: trans.__('Stop this job (it stops at a safe point)'),
      disabled: final ? trans.__('The job has ended') : null,
      run: () => commands.execute(CommandIDs.cancelJob, { jobId: job.id })
    },
    // only a training job has a TensorBoard: the button is not shown on the others
    ...(isTrain
      ? [
          {
            label: trans.__('Open TensorBoard'),
            className: 'jp-CvatTrain-tensorboard',
            title: trans.__("Open this job's TensorBoard"),
            disabled: null,
            run: () =>
              commands.execute(CommandIDs.openTensorBoard, { jobId: job.id })
          }
        ]
      : []),
    {
      label: trans.__('Open job view'),
      className: 'jp-CvatTrain-openJob',
      title: trans.__('Open this job in a tab (settings, full log, AP table)'),
      disabled: null,
      run: () => commands.execute(CommandIDs.openJob, { jobId: job.id })
    }
  ];
  const duration = jobDuration(job, now);
  const title = payload.name || jobSubject(job) || job.id;
  return (
    <div
      className={`jp-CvatTrain-jobOutputCard jp-mod-${job.state}`}
      data-job-id={job.id}
      data-state={job.state}
      data-phase="known"
    >
      <div className="jp-CvatTrain-jobOutputHead">
        {title.toLowerCase().startsWith(job.kind) ? null : (
          <span className="jp-CvatTrain-kind">{job.kind}</span>
        )}
        <span className="jp-CvatTrain-jobOutputTitle">{title}</span>
        <StateChip state={job.state} trans={trans} />
      </div>
      <div className="jp-CvatTrain-dim">
        {job.id}
        {job.started_at
          ? ' · ' + trans.__('started %1', formatTime(job.started_at))
          : ''}
        {duration !== null ? ' · ' + formatDuration(duration) : ''}
      </div>
      {!final ? <ProgressBar job={job} now={now} trans={trans} /> : null}
      {job.message ? (
        <div
          className={'jp-CvatTrain-jobOutputMessage jp-mod-' + job.state}
          role="status"
        >
          {job.message}
        </div>
      ) : final ? (
        <div
          className={'jp-CvatTrain-jobOutputMessage jp-mod-' + job.state}
          role="status"
        >
          {job.state === 'succeeded'
            ? trans.__('The job succeeded.')
            : job.state === 'failed'
              ? trans.__('The job failed.')
              : trans.__('The job was cancelled.')}
        </div>
      ) : null}
      <Buttons buttons={buttons} onError={setProblem} />
      {problem ? (
        <div className="jp-CvatTrain-error" role="alert">
          {problem}
        </div>
      ) : null}
      {isTrain && series.length > 0 ? (
        <MetricsChart series={series} trans={trans} />
      ) : null}
      <LogView
        lines={follower.log.lines}
        dropped={follower.log.dropped}
        trans={trans}
        note={note}
      />
    </div>
  );
}

/**
 * The renderer of a job output. Not safe (`safe: false` in its factory): it makes
 * authenticated calls and offers actions, so an untrusted notebook shows the output's
 * static `text/html` (or `text/plain`) instead.
 */
export class JobOutputRenderer
  extends ReactWidget
  implements IRenderMime.IRenderer
{
  constructor(private _ctx: IJobOutputContext) {
    super();
    this.addClass('jp-CvatTrain-jobOutput');
  }

  /** Take the output's data: check it, and look the job up (again when its id changed). */
  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const result = parseJobPayload(model.data[JOB_MIME_TYPE]);
    if (!result.ok || this._lookup?.jobId !== result.payload.jobId) {
      this._lookup?.dispose();
      this._lookup = null;
      if (result.ok) {
        this._lookup = new JobLookup({
          jobId: result.payload.jobId,
          store: this._ctx.store,
          settings: this._ctx.settings
        });
        this._lookup.start();
      }
    }
    this._result = result;
    this.update();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._lookup?.dispose();
    this._lookup = null;
    super.dispose();
  }

  protected render(): JSX.Element | null {
    const result = this._result;
    if (!result) {
      return null;
    }
    if (!result.ok || !this._lookup) {
      return (
        <div className="jp-CvatTrain-jobOutputCard" data-phase="invalid">
          <div className="jp-CvatTrain-error" role="alert">
            {result.ok
              ? ''
              : this._ctx.trans.__(
                  'This job output cannot be shown: %1',
                  result.problem
                )}
          </div>
        </div>
      );
    }
    return (
      <JobOutputCard
        key={result.payload.jobId}
        lookup={this._lookup}
        payload={result.payload}
        ctx={this._ctx}
      />
    );
  }

  private _lookup: JobLookup | null = null;
  private _result: PayloadResult | null = null;
}
