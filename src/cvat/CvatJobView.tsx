/**
 * The CVAT part of a job view (cvat-pull, cvat-push, cvat-auto-annotate): which task and
 * what moved; a pull that succeeded offers "Validate" (the Datasets section with the
 * export) and "Train on this export" (the Train form prefilled), as the Datasets section
 * does.
 */
import React from 'react';

import type { Job } from '../api';
import type { IPanelContext } from '../panel/context';

/** The export a pull wrote (relative to the server root, as the spec shows it), or ''. */
export function pulledExport(job: Job): string {
  if (job.kind !== 'cvat-pull' || job.state !== 'succeeded') {
    return '';
  }
  const output = job.spec?.output;
  return typeof output === 'string' ? output : '';
}

/** A finished pull's validation summary from its outputs, or null. */
function validation(job: Job): Record<string, unknown> | null {
  const v = job.outputs?.validation;
  return typeof v === 'object' && v !== null
    ? (v as Record<string, unknown>)
    : null;
}

/** The cvat block of a job view. */
export function CvatJobView(props: {
  job: Job;
  ctx: IPanelContext;
}): JSX.Element {
  const { job, ctx } = props;
  const { trans } = ctx;
  const spec = job.spec ?? {};
  const task = String(spec.task_id ?? '?');
  const exported = pulledExport(job);
  const v = validation(job);
  const errors = typeof v?.errors === 'number' ? v.errors : 0;
  let title: string;
  switch (job.kind) {
    case 'cvat-pull':
      title = trans.__(
        'CVAT task %1 → %2 (%3)',
        task,
        String(spec.output ?? ''),
        String(spec.format ?? 'cvat')
      );
      break;
    case 'cvat-push':
      title = trans.__(
        '%1 → CVAT task %2 (%3)',
        String(spec.source ?? ''),
        task,
        spec.replace ? trans.__('replace') : trans.__('add')
      );
      break;
    default:
      title = trans.__(
        'Auto-annotate CVAT task %1 with %2 (%3)',
        task,
        String(spec.model ?? ''),
        spec.replace ? trans.__('replace') : trans.__('add')
      );
  }
  return (
    <section
      className="jp-CvatTrain-cvatJob"
      aria-label={trans.__('CVAT')}
      data-kind={job.kind}
    >
      <h3>{title}</h3>
      {job.state === 'failed' &&
      /CVAT_HOST|CVAT_ACCESS_TOKEN/.test(job.message) ? (
        <div className="jp-CvatTrain-cvatFix jp-CvatTrain-cvatJobFix">
          {trans.__(
            'The job reads CVAT_HOST and CVAT_ACCESS_TOKEN (or CVAT_USERNAME and CVAT_PASSWORD) from the environment of the Jupyter server that started it: set them in the shell that starts `jupyter lab`, restart it, and run the job again. The CVAT section’s "Test connection" checks them.'
          )}
        </div>
      ) : null}
      {v ? (
        <dl className="jp-CvatTrain-cvatFacts">
          <dt>{trans.__('Images')}</dt>
          <dd>{String(v.images ?? '?')}</dd>
          <dt>{trans.__('Annotations')}</dt>
          <dd>{String(v.annotations ?? '?')}</dd>
          <dt>{trans.__('Validation errors')}</dt>
          <dd>{String(errors)}</dd>
        </dl>
      ) : null}
      {exported ? (
        <div className="jp-CvatTrain-actions" role="toolbar">
          <button
            className="jp-mod-styled jp-CvatTrain-cvatValidate"
            title={trans.__('Validate this export in the Datasets section')}
            onClick={() => {
              ctx.state.datasetPath = exported;
              void ctx.state.validate();
              ctx.showDatasets?.();
            }}
          >
            {trans.__('Validate')}
          </button>
          <button
            className="jp-mod-styled jp-mod-accept jp-CvatTrain-cvatTrainOn"
            disabled={errors > 0}
            title={
              errors > 0
                ? trans.__(
                    'The export has validation errors: validate it to see them'
                  )
                : trans.__('Open the Train form with this export')
            }
            onClick={() => {
              ctx.state.datasetPath = exported;
              ctx.state.prefillTrain({ dataset: exported }, 'dataset');
              ctx.showTrain();
            }}
          >
            {trans.__('Train on this export')}
          </button>
        </div>
      ) : null}
    </section>
  );
}
