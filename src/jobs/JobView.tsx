/**
 * The job view, a main-area tab per job: header (state, message, progress with ETA,
 * times, the spec folded), actions (only those of the job's kind; each disabled with a
 * reason when it does not apply in the job's state),
 * the live log, and for a training job the per-epoch chart and the per-label AP table of
 * the best epoch. Restored after a reload by the plugin's WidgetTracker.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { annotatePrefillOf } from '../annotate/mapping';
import { AnnotateDetails } from '../annotate/AnnotateJobView';
import type { Job } from '../api';
import { useNow, useSignal } from '../components/hooks';
import { jobSubject, ProgressBar, StateChip } from '../components/JobBits';
import { LogView } from '../components/LogView';
import { MetricsChart } from '../components/MetricsChart';
import { CvatJobView } from '../cvat/CvatJobView';
import { CVAT_KINDS } from '../cvat/model';
import type { IPanelContext } from '../panel/context';
import { SyncJobView } from '../sync/SyncJobView';
import { bestEpoch, epochSeries } from './metrics';
import { isFinal } from './model';
import type { JobFollower } from './stream';
import { formatDuration, formatTime, jobDuration } from './time';
import { jobBackend } from './backend';

interface IAction {
  label: string;
  className: string;
  /** The job kinds it applies to (every kind when absent); hidden on the others. */
  kinds?: readonly string[];
  /** Why it does not apply now, or null when it does. */
  disabled: string | null;
  run: () => void | Promise<void>;
  title: string;
}

/** Actions of a training job only, and those that "Run again" knows. */
const TRAIN: readonly string[] = ['train'];
const RERUN: readonly string[] = ['train', 'annotate'];
const ANNOTATE: readonly string[] = ['annotate'];

function Actions(props: { actions: IAction[] }): JSX.Element {
  return (
    <div className="jp-CvatTrain-actions" role="toolbar">
      {props.actions.map(a => (
        <button
          key={a.className}
          className={`jp-mod-styled ${a.className}`}
          disabled={a.disabled !== null}
          title={a.disabled ?? a.title}
          aria-label={a.label}
          onClick={() => void a.run()}
        >
          {a.label}
        </button>
      ))}
    </div>
  );
}

function SpecBlock(props: {
  job: Job;
  ctx: IPanelContext;
}): JSX.Element | null {
  const spec = props.job.spec;
  const trans = props.ctx.trans;
  if (!spec) {
    return (
      <div className="jp-CvatTrain-dim">
        {trans.__('The job folder has no readable job.json.')}
      </div>
    );
  }
  const rows = Object.entries(spec).filter(
    ([, v]) => v !== null && v !== undefined && v !== ''
  );
  return (
    <details className="jp-CvatTrain-spec">
      <summary>{trans.__('Settings (job.json)')}</summary>
      <dl>
        {rows.map(([key, value]) => (
          <React.Fragment key={key}>
            <dt>{key}</dt>
            <dd>
              {typeof value === 'object' ? (
                <pre>
                  {Object.entries(value as Record<string, unknown>)
                    .map(
                      ([k, v]) =>
                        `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`
                    )
                    .join('\n')}
                </pre>
              ) : (
                String(value)
              )}
            </dd>
          </React.Fragment>
        ))}
      </dl>
    </details>
  );
}

function JobViewContent(props: {
  jobId: string;
  ctx: IPanelContext;
  follower: JobFollower;
}): JSX.Element {
  const { jobId, ctx, follower } = props;
  const { model, trans } = ctx;
  useSignal(model.changed);
  useSignal(follower.changed);
  const job = model.get(jobId);
  const running = job?.state === 'running';
  const now = useNow(1000, running);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  if (!job) {
    return (
      <div className="jp-CvatTrain-jobView jp-mod-missing">
        <h2>{jobId}</h2>
        <div className="jp-CvatTrain-error" role="alert">
          {follower.status === 'deleted'
            ? trans.__(
                'This job was deleted (in another tab or from the command line). Its view can be closed.'
              )
            : model.reachability === 'unreachable'
              ? trans.__(
                  'The server does not answer; this view reconnects when it is back.'
                )
              : model.loaded
                ? trans.__('No job %1 on this server: it was removed.', jobId)
                : trans.__('Loading…')}
        </div>
      </div>
    );
  }
  const final = isFinal(job.state);
  const series = job.kind === 'train' ? epochSeries(follower.events) : [];
  const best = bestEpoch(series);
  const spec = job.spec ?? {};
  const isTrain = job.kind === 'train';
  const succeeded = job.state === 'succeeded';
  const hasCheckpoint = isTrain && (final || series.length > 0);
  const act = async (name: string, fn: () => Promise<unknown>) => {
    setBusy(name);
    setProblem(null);
    try {
      await fn();
    } catch (error) {
      setProblem((error as Error).message);
    } finally {
      setBusy(null);
    }
  };
  const trainSpec = {
    template: spec.template as string | undefined,
    dataset: spec.dataset as string | undefined,
    parameters: spec.parameters as Record<string, unknown> | undefined,
    device: spec.device as string | undefined,
    gpus: spec.gpus as number | undefined
  };
  // a custom template's run (the user's own code): its spec records the code's commit;
  // its model is the user's format, which neither fine-tune nor auto-annotate can load
  const isCustom = isTrain && 'code_commit' in spec;
  const notBuiltIn = isCustom
    ? trans.__(
        "A custom template's run: its model is in the user's code's own format"
      )
    : null;
  const actions: IAction[] = [
    {
      label: busy === 'cancel' ? trans.__('Cancelling…') : trans.__('Cancel'),
      className: 'jp-CvatTrain-cancel',
      title: trans.__('Stop this job (it stops at a safe point)'),
      disabled: final
        ? trans.__('The job has ended')
        : busy
          ? trans.__('Working…')
          : null,
      run: () => act('cancel', () => model.cancel(job.id))
    },
    {
      label: trans.__('Open TensorBoard'),
      className: 'jp-CvatTrain-tensorboard',
      kinds: TRAIN,
      title: trans.__("Open this job's TensorBoard in a tab"),
      disabled: null,
      run: () => ctx.openTensorBoard(job.id)
    },
    {
      label: trans.__('Show output folder'),
      className: 'jp-CvatTrain-showFolder',
      title: trans.__("Show the job's folder in the file browser"),
      disabled: job.dir.startsWith('/')
        ? trans.__('The job folder is outside the server root')
        : null,
      run: () => ctx.showInBrowser(job.dir)
    },
    {
      label: trans.__('Run again'),
      className: 'jp-CvatTrain-rerun',
      kinds: RERUN,
      title:
        job.kind === 'annotate'
          ? trans.__('The Auto-annotate form with the same settings')
          : trans.__('The Train form with the same settings'),
      disabled: job.spec ? null : trans.__('The job has no readable settings'),
      run: () => {
        if (job.kind === 'annotate') {
          ctx.autoAnnotate?.(annotatePrefillOf(spec));
          return;
        }
        ctx.state.prefillTrain(
          {
            ...trainSpec,
            checkpoint: spec.resume ? null : (spec.checkpoint as string | null)
          },
          'rerun'
        );
        ctx.showTrain();
      }
    },
    {
      label: trans.__('Resume…'),
      className: 'jp-CvatTrain-resume',
      kinds: TRAIN,
      title: trans.__(
        'The Train form set to continue this run from its last checkpoint (optionally with more epochs)'
      ),
      disabled:
        notBuiltIn ??
        (!final
          ? trans.__('The job is still running')
          : succeeded || hasCheckpoint
            ? null
            : trans.__('No checkpoint was written')),
      run: () => {
        ctx.state.prefillTrain(
          {
            ...trainSpec,
            checkpoint: `${job.dir}/output/checkpoints`,
            resume: true
          },
          'resume'
        );
        ctx.showTrain();
      }
    },
    {
      label: trans.__('Fine-tune from this model'),
      className: 'jp-CvatTrain-finetune',
      kinds: TRAIN,
      title: trans.__("The Train form starting from this job's trained model"),
      disabled:
        notBuiltIn ??
        (succeeded
          ? null
          : trans.__('Only a job that succeeded has a trained model')),
      run: () => {
        ctx.state.prefillTrain(
          {
            ...trainSpec,
            dataset: undefined,
            checkpoint: `${job.dir}/output/model`
          },
          'finetune'
        );
        ctx.showTrain();
      }
    },
    {
      label: trans.__('Auto-annotate with this model…'),
      className: 'jp-CvatTrain-autoAnnotate',
      kinds: TRAIN,
      title: trans.__("The Auto-annotate form with this job's trained model"),
      disabled:
        notBuiltIn ??
        (succeeded
          ? null
          : trans.__('Only a job that succeeded has a trained model')),
      run: () => ctx.autoAnnotate?.({ model: `${job.dir}/output/model` })
    },
    {
      label: trans.__('Push to a CVAT task…'),
      className: 'jp-CvatTrain-pushToCvat',
      kinds: ANNOTATE,
      title: trans.__(
        "The CVAT section's push form with this job's annotations"
      ),
      disabled: succeeded
        ? null
        : trans.__('Only a job that succeeded has annotations to send'),
      run: () => ctx.pushToCvat?.(job.dir)
    }
  ];
  const note =
    follower.status === 'reconnecting'
      ? trans.__('Connection lost (%1); reconnecting…', follower.problem)
      : follower.status === 'connecting'
        ? trans.__('Connecting…')
        : '';
  const labels = best
    ? Object.entries(best.perLabel).sort((a, b) => a[0].localeCompare(b[0]))
    : [];
  return (
    <div
      className="jp-CvatTrain-jobView"
      data-job-id={job.id}
      data-state={job.state}
    >
      <header className="jp-CvatTrain-jobViewHead">
        <h2>
          <span className="jp-CvatTrain-kind">{job.kind}</span>{' '}
          {jobSubject(job) || job.id}
        </h2>
        <StateChip state={job.state} trans={trans} />
      </header>
      <div className="jp-CvatTrain-dim">{job.id}</div>
      {job.message ? (
        <div
          className={'jp-CvatTrain-jobMessage jp-mod-' + job.state}
          role="status"
        >
          {job.message}
        </div>
      ) : null}
      {!final ? <ProgressBar job={job} now={now} trans={trans} /> : null}
      <dl className="jp-CvatTrain-times">
        <dt>{trans.__('Created')}</dt>
        <dd>{formatTime(job.created_at)}</dd>
        <dt>{trans.__('Started')}</dt>
        <dd>{formatTime(job.started_at)}</dd>
        <dt>{trans.__('Ended')}</dt>
        <dd>{formatTime(job.ended_at)}</dd>
        <dt>{trans.__('Duration')}</dt>
        <dd>{formatDuration(jobDuration(job, now))}</dd>
        {jobBackend(job) === 'ray' ? (
          <>
            <dt>{trans.__('Runs on')}</dt>
            <dd className="jp-CvatTrain-backendTag">
              {trans.__('Ray cluster')}
            </dd>
          </>
        ) : null}
      </dl>
      <SpecBlock job={job} ctx={ctx} />
      <Actions
        actions={actions.filter(a => !a.kinds || a.kinds.includes(job.kind))}
      />
      {problem ? (
        <div className="jp-CvatTrain-error" role="alert">
          {problem}
        </div>
      ) : null}
      {isTrain && !isCustom ? (
        <section
          className="jp-CvatTrain-metrics"
          aria-label={trans.__('Metrics')}
        >
          <h3>{trans.__('Loss and mAP per epoch')}</h3>
          <MetricsChart series={series} trans={trans} />
          {best && labels.length > 0 ? (
            <table className="jp-CvatTrain-table jp-CvatTrain-ap">
              <caption>
                {trans.__(
                  'AP per label, best epoch (%1): mAP@[.5:.95] %2',
                  best.epoch,
                  best.map?.toFixed(4) ?? '—'
                )}
              </caption>
              <thead>
                <tr>
                  <th scope="col">{trans.__('Label')}</th>
                  <th scope="col" className="jp-mod-number">
                    AP@[.5:.95]
                  </th>
                </tr>
              </thead>
              <tbody>
                {labels.map(([label, ap]) => (
                  <tr key={label}>
                    <td>{label}</td>
                    <td className="jp-mod-number">
                      {ap === null ? '—' : ap.toFixed(4)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </section>
      ) : null}
      {job.kind === 'annotate' ? (
        <AnnotateDetails job={job} events={follower.events} ctx={ctx} />
      ) : null}
      {CVAT_KINDS.includes(job.kind) ? (
        <CvatJobView job={job} ctx={ctx} />
      ) : null}
      {job.kind === 'sync' ? (
        <SyncJobView job={job} events={follower.events} trans={trans} />
      ) : null}
      <section className="jp-CvatTrain-logSection" aria-label={trans.__('Log')}>
        <h3>{trans.__('Log')}</h3>
        <LogView
          lines={follower.log.lines}
          dropped={follower.log.dropped}
          trans={trans}
          note={note}
        />
      </section>
    </div>
  );
}

/** The React content of a job tab; holds a reference on the job's follower while open. */
class JobViewBody extends ReactWidget {
  constructor(
    readonly jobId: string,
    private _ctx: IPanelContext
  ) {
    super();
    this.addClass('jp-CvatTrain-jobViewBody');
    this._follower = _ctx.model.follow(jobId);
  }

  dispose(): void {
    if (!this.isDisposed) {
      this._ctx.model.release(this.jobId);
    }
    super.dispose();
  }

  protected render(): JSX.Element {
    return (
      <JobViewContent
        jobId={this.jobId}
        ctx={this._ctx}
        follower={this._follower}
      />
    );
  }

  private _follower: JobFollower;
}

/** The job tab: a MainAreaWidget titled after the job. */
export class JobView extends MainAreaWidget<JobViewBody> {
  constructor(jobId: string, ctx: IPanelContext) {
    super({ content: new JobViewBody(jobId, ctx) });
    this.jobId = jobId;
    this.id = `jp-CvatTrain-job-${jobId}`;
    this.addClass('jp-CvatTrain-jobTab');
    this.title.closable = true;
    this.title.caption = jobId;
    const update = () => {
      const job = ctx.model.get(jobId);
      this.title.label = job
        ? `${job.kind}: ${jobSubject(job) || jobId}`
        : jobId;
    };
    update();
    ctx.model.changed.connect(update, this);
  }

  readonly jobId: string;
}
