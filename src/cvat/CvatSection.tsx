/**
 * The sidebar's CVAT section: "Test connection" (the CVAT server the Jupyter server's
 * environment names: host, user, server version, or what is missing and how to set it),
 * and three forms, each starting a job and opening its view: Pull a task's export,
 * Push annotations to a task (prefilled from an annotate job's view), and Auto-annotate
 * a task with a trained model. A refusal of the server is shown at the field it names.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import type { Job } from '../api';
import { trainedModels } from '../annotate/mapping';
import { useSignal } from '../components/hooks';
import { Section } from '../components/Section';
import { PathField } from '../datasets/DatasetsSection';
import type { IPanelContext } from '../panel/context';
import { ConnectionView } from './ConnectionView';
import { PULL_FORMATS, type CvatModel, type FieldErrors } from './model';

/** The "Another model folder…" choice of the model select. */
const OTHER = '\u0000other';

function FieldError(props: { id: string; error?: string }) {
  return props.error ? (
    <div
      id={`${props.id}-error`}
      className="jp-CvatTrain-fieldError"
      role="alert"
    >
      {props.error}
    </div>
  ) : null;
}

function TextField(props: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  placeholder?: string;
  error?: string;
  numeric?: boolean;
}): JSX.Element {
  return (
    <div className="jp-CvatTrain-field">
      <label htmlFor={props.id}>{props.label}</label>
      <input
        id={props.id}
        className="jp-mod-styled jp-CvatTrain-input"
        value={props.value}
        placeholder={props.placeholder}
        spellCheck={false}
        inputMode={props.numeric ? 'numeric' : undefined}
        aria-invalid={props.error ? true : undefined}
        aria-describedby={props.error ? `${props.id}-error` : undefined}
        onChange={e => props.onChange(e.target.value)}
      />
      <FieldError id={props.id} error={props.error} />
    </div>
  );
}

function Buttons(props: {
  className: string;
  label: string;
  busy: boolean;
  disabled: boolean;
  onClick: () => void;
  trans: TranslationBundle;
  error?: string;
}): JSX.Element {
  return (
    <>
      <div className="jp-CvatTrain-buttons">
        <button
          className={`jp-mod-styled jp-mod-accept ${props.className}`}
          disabled={props.disabled}
          aria-busy={props.busy}
          onClick={props.onClick}
        >
          {props.busy ? props.trans.__('Starting…') : props.label}
        </button>
      </div>
      {props.error ? (
        <div className="jp-CvatTrain-error" role="alert">
          {props.error}
        </div>
      ) : null}
    </>
  );
}

function ReplaceChoice(props: {
  name: string;
  replace: boolean;
  onChange: (replace: boolean) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { trans } = props;
  return (
    <fieldset className="jp-CvatTrain-cvatReplace">
      <legend>{trans.__('The task’s annotations')}</legend>
      <label className="jp-CvatTrain-check">
        <input
          type="radio"
          name={props.name}
          value="append"
          checked={!props.replace}
          onChange={() => props.onChange(false)}
        />{' '}
        {trans.__('Add to them')}
      </label>
      <label className="jp-CvatTrain-check">
        <input
          type="radio"
          name={props.name}
          value="replace"
          checked={props.replace}
          onChange={() => props.onChange(true)}
        />{' '}
        {trans.__('Replace them')}
      </label>
    </fieldset>
  );
}

function Cvat(props: { ctx: IPanelContext; cvat: CvatModel }): JSX.Element {
  const { ctx, cvat } = props;
  const { trans } = ctx;
  useSignal(cvat.changed);
  useSignal(ctx.model.changed);
  const started = (job: Job | null) => {
    if (job) {
      ctx.openJob(job.id);
    }
  };
  const pull = cvat.pull;
  const push = cvat.push;
  const aa = cvat.autoAnnotate;
  const pullErr: FieldErrors = cvat.errors('pull');
  const pushErr: FieldErrors = cvat.errors('push');
  const aaErr: FieldErrors = cvat.errors('autoAnnotate');
  const busy = cvat.starting !== '';
  const models = trainedModels(ctx.model.jobs);
  const listed = models.some(m => m.path === aa.model);
  const [other, setOther] = React.useState(false);
  const choice = listed ? aa.model : other || aa.model ? OTHER : '';
  return (
    <div className="jp-CvatTrain-section jp-CvatTrain-cvat">
      <div className="jp-CvatTrain-buttons">
        <button
          className="jp-mod-styled jp-CvatTrain-cvatTest"
          onClick={() => void cvat.testConnection()}
          disabled={cvat.checking}
          aria-busy={cvat.checking}
          title={trans.__(
            'Log in to the CVAT server named in the Jupyter server’s environment'
          )}
        >
          {cvat.checking ? trans.__('Testing…') : trans.__('Test connection')}
        </button>
      </div>
      {cvat.checkProblem ? (
        <div className="jp-CvatTrain-error" role="alert">
          {cvat.checkProblem}
        </div>
      ) : null}
      {cvat.connection ? (
        <ConnectionView connection={cvat.connection} trans={trans} />
      ) : null}

      <details
        className="jp-CvatTrain-cvatForm jp-CvatTrain-cvatPull"
        open={cvat.focus === '' || cvat.focus === 'pull'}
        onToggle={e =>
          cvat.toggled('pull', (e.target as HTMLDetailsElement).open)
        }
      >
        <summary>{trans.__('Pull a task’s export')}</summary>
        <TextField
          id="jp-CvatTrain-cvatPullTask"
          label={trans.__('Task id')}
          value={pull.taskId}
          placeholder="42"
          numeric
          error={pullErr.task_id}
          onChange={value => cvat.setPull({ taskId: value })}
        />
        <div className="jp-CvatTrain-field">
          <label htmlFor="jp-CvatTrain-cvatPullFormat">
            {trans.__('Export format')}
          </label>
          <select
            id="jp-CvatTrain-cvatPullFormat"
            className="jp-mod-styled jp-CvatTrain-input"
            value={pull.format}
            onChange={e => cvat.setPull({ format: e.target.value })}
          >
            {PULL_FORMATS.map(f => (
              <option key={f.id} value={f.id}>
                {f.label}
              </option>
            ))}
          </select>
          <FieldError id="jp-CvatTrain-cvatPullFormat" error={pullErr.format} />
        </div>
        <PathField
          id="jp-CvatTrain-cvatPullOutput"
          label={trans.__('Save as (a new .zip under the server root)')}
          value={pull.output}
          placeholder={
            /^\d+$/.test(pull.taskId.trim())
              ? `cvat-task-${pull.taskId.trim()}.zip`
              : 'data/cvat-task-42.zip'
          }
          onChange={value => cvat.setPull({ output: value })}
          ctx={ctx}
          invalid={pullErr.output || null}
        />
        <label className="jp-CvatTrain-check">
          <input
            type="checkbox"
            className="jp-CvatTrain-cvatOverwrite"
            checked={pull.overwrite}
            onChange={e => cvat.setPull({ overwrite: e.target.checked })}
          />{' '}
          {trans.__('Overwrite the file if it exists')}
        </label>
        <Buttons
          className="jp-CvatTrain-cvatPullStart"
          label={trans.__('Pull')}
          busy={cvat.starting === 'pull'}
          disabled={busy}
          trans={trans}
          error={pullErr['']}
          onClick={() => void cvat.startPull().then(started)}
        />
      </details>

      <details
        className="jp-CvatTrain-cvatForm jp-CvatTrain-cvatPush"
        open={cvat.focus === 'push'}
        onToggle={e =>
          cvat.toggled('push', (e.target as HTMLDetailsElement).open)
        }
      >
        <summary>{trans.__('Push annotations to a task')}</summary>
        <PathField
          id="jp-CvatTrain-cvatPushSource"
          label={trans.__('Annotations (an annotate job’s folder or a zip)')}
          value={push.source}
          placeholder="cvat-train-runs/<job>"
          onChange={value => cvat.setPush({ source: value })}
          ctx={ctx}
          invalid={pushErr.source || null}
        />
        <TextField
          id="jp-CvatTrain-cvatPushTask"
          label={trans.__('Task id')}
          value={push.taskId}
          placeholder="42"
          numeric
          error={pushErr.task_id}
          onChange={value => cvat.setPush({ taskId: value })}
        />
        <ReplaceChoice
          name="jp-CvatTrain-cvatPushReplace"
          replace={push.replace}
          onChange={replace => cvat.setPush({ replace })}
          trans={trans}
        />
        <Buttons
          className="jp-CvatTrain-cvatPushStart"
          label={trans.__('Push')}
          busy={cvat.starting === 'push'}
          disabled={busy}
          trans={trans}
          error={pushErr['']}
          onClick={() => void cvat.startPush().then(started)}
        />
      </details>

      <details
        className="jp-CvatTrain-cvatForm jp-CvatTrain-cvatAutoAnnotate"
        open={cvat.focus === 'autoAnnotate'}
        onToggle={e =>
          cvat.toggled('autoAnnotate', (e.target as HTMLDetailsElement).open)
        }
      >
        <summary>{trans.__('Auto-annotate a task')}</summary>
        <TextField
          id="jp-CvatTrain-cvatAaTask"
          label={trans.__('Task id')}
          value={aa.taskId}
          placeholder="42"
          numeric
          error={aaErr.task_id}
          onChange={value => cvat.setAutoAnnotate({ taskId: value })}
        />
        <div className="jp-CvatTrain-field">
          <label htmlFor="jp-CvatTrain-cvatAaModelChoice">
            {trans.__('Model')}
          </label>
          <select
            id="jp-CvatTrain-cvatAaModelChoice"
            className="jp-mod-styled jp-CvatTrain-input"
            value={choice}
            onChange={e => {
              const v = e.target.value;
              setOther(v === OTHER);
              cvat.setAutoAnnotate({ model: v === OTHER ? '' : v });
            }}
          >
            <option value="">{trans.__('— choose a model —')}</option>
            {models.map(m => (
              <option key={m.path} value={m.path}>
                {m.label}
              </option>
            ))}
            <option value={OTHER}>{trans.__('Another model folder…')}</option>
          </select>
          {choice !== OTHER ? (
            <FieldError
              id="jp-CvatTrain-cvatAaModelChoice"
              error={aaErr.model}
            />
          ) : null}
        </div>
        {choice === OTHER ? (
          <PathField
            id="jp-CvatTrain-cvatAaModel"
            label={trans.__('Model folder (with classes.csv)')}
            value={aa.model}
            placeholder="cvat-train-runs/<job>/output/model"
            onChange={value => cvat.setAutoAnnotate({ model: value })}
            ctx={ctx}
            invalid={aaErr.model || null}
          />
        ) : null}
        <TextField
          id="jp-CvatTrain-cvatAaThreshold"
          label={trans.__('Confidence threshold (0–1; empty: the model’s)')}
          value={aa.threshold}
          placeholder="0.5"
          error={aaErr.threshold}
          onChange={value => cvat.setAutoAnnotate({ threshold: value })}
        />
        <ReplaceChoice
          name="jp-CvatTrain-cvatAaReplace"
          replace={aa.replace}
          onChange={replace => cvat.setAutoAnnotate({ replace })}
          trans={trans}
        />
        <Buttons
          className="jp-CvatTrain-cvatAaStart"
          label={trans.__('Auto-annotate')}
          busy={cvat.starting === 'autoAnnotate'}
          disabled={busy}
          trans={trans}
          error={aaErr['']}
          onClick={() => void cvat.startAutoAnnotate().then(started)}
        />
      </details>
    </div>
  );
}

/** The CVAT section as a widget of the sidebar. */
export class CvatSection extends Section {
  constructor(
    private _ctx: IPanelContext,
    readonly model: CvatModel
  ) {
    super(_ctx.trans.__('CVAT'), 'jp-CvatTrain-cvatSection');
  }

  protected renderBody(): JSX.Element {
    return <Cvat ctx={this._ctx} cvat={this.model} />;
  }
}
