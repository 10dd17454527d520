/**
 * The form preview of a template file being edited (Onepanel's "Show Parameters Form
 * Preview"): the file browser's and the editor's "Preview training form" on a .yaml /
 * .yml file asks the server to check it (`POST templates/check`, the code of
 * `cvat-train template check`; nothing in the file runs) and shows, in a main-area tab,
 * the Train form it would give (the same `templateToForm` → `FormComponent` as the Train
 * section) with the commands a custom template would run, or its `FILE:LINE` errors.
 * The tab checks the file again each time it is saved (index.ts connects the contents
 * manager's `fileChanged`).
 */
import {
  FormComponent,
  ReactWidget,
  type IFormComponentProps
} from '@jupyterlab/ui-components';
import type { ServerConnection } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { ReadonlyJSONObject } from '@lumino/coreutils';
import validatorAjv8 from '@rjsf/validator-ajv8';
import React from 'react';

import { checkTemplateFile } from '../api';
import type { ITemplateForm } from './form';
import { previewState, type PreviewState } from './previewModel';

/** The generated form, as the Train section renders it; its values stay in the tab. */
function PreviewForm(props: { form: ITemplateForm }): JSX.Element {
  const { form } = props;
  const [data, setData] = React.useState<Record<string, unknown>>(
    form.formData
  );
  return (
    <FormComponent
      schema={form.schema as IFormComponentProps['schema']}
      uiSchema={form.uiSchema}
      formData={data as ReadonlyJSONObject}
      validator={validatorAjv8 as unknown as IFormComponentProps['validator']}
      onChange={e => setData((e.formData ?? {}) as Record<string, unknown>)}
      showErrorList={false}
      liveValidate={false}
      compact={false}
      showModifiedFromDefault={true}
    />
  );
}

/** The preview's content (the widget holds the state). */
export function PreviewView(props: {
  path: string;
  state: PreviewState;
  trans: TranslationBundle;
  onRefresh: () => void;
}): JSX.Element {
  const { path, state, trans, onRefresh } = props;
  return (
    <div className="jp-CvatTrain-formPreview" data-path={path}>
      <div className="jp-CvatTrain-previewHeader">
        <span>{trans.__('Training form of %1', path)}</span>
        <button className="jp-CvatTrain-link" onClick={onRefresh}>
          {trans.__('Check again')}
        </button>
      </div>
      <div className="jp-CvatTrain-previewNote">
        {trans.__(
          'Checked as the catalog loads it, again on each save; nothing in the file runs.'
        )}
      </div>
      {state.kind === 'loading' ? (
        <div className="jp-CvatTrain-empty">{trans.__('Checking…')}</div>
      ) : null}
      {state.kind === 'error' ? (
        <div className="jp-CvatTrain-error" role="alert">
          {state.message}
        </div>
      ) : null}
      {state.kind === 'broken' ? (
        <div className="jp-CvatTrain-previewErrors" role="alert">
          <div className="jp-CvatTrain-error">
            {trans._n(
              'This template has %1 problem: it is not in the catalog.',
              'This template has %1 problems: it is not in the catalog.',
              state.lines.length
            )}
          </div>
          <ul>
            {state.lines.map((b, i) => (
              <li key={i}>
                {b.where ? <code>{b.where}</code> : null}
                {b.where ? ': ' : null}
                <span>{b.error}</span>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {state.kind === 'ok' ? (
        <>
          <div className="jp-CvatTrain-template jp-mod-selected">
            <span className="jp-CvatTrain-templateName">
              {state.template.displayName || state.template.name}
            </span>
            <span className="jp-CvatTrain-templateMeta">
              {[
                state.template.task,
                state.template.framework,
                state.template.name
              ]
                .filter(Boolean)
                .join(' · ')}
            </span>
            {state.template.description ? (
              <span className="jp-CvatTrain-templateDesc">
                {state.template.description}
              </span>
            ) : null}
          </div>
          <div
            className="jp-CvatTrain-form"
            data-template={state.template.name}
          >
            <PreviewForm key={JSON.stringify(state.form)} form={state.form} />
          </div>
          {state.form.fields.length === 0 ? (
            <div className="jp-CvatTrain-empty">
              {trans.__('This template has no parameters in its form.')}
            </div>
          ) : null}
          {state.commands.length ? (
            <pre className="jp-CvatTrain-previewCommands">
              {state.commands.join('\n')}
            </pre>
          ) : null}
        </>
      ) : null}
    </div>
  );
}

/** The main-area content of one file's preview; :meth:`refresh` checks the file again. */
export class TemplatePreview extends ReactWidget {
  constructor(
    readonly path: string,
    private readonly trans: TranslationBundle,
    private readonly settings?: ServerConnection.ISettings
  ) {
    super();
    this.addClass('jp-CvatTrain-previewWidget');
    this.refresh();
  }

  /** The current preview. */
  get state(): PreviewState {
    return this._state;
  }

  /** Ask the server to check the file again (the latest answer wins). */
  refresh(): void {
    const ticket = ++this._ticket;
    checkTemplateFile(this.path, this.settings)
      .then(reply => previewState(reply))
      .catch((error: Error): PreviewState => ({
        kind: 'error',
        message: error.message
      }))
      .then(state => {
        if (ticket === this._ticket && !this.isDisposed) {
          this._state = state;
          this.update();
        }
      });
  }

  protected render(): JSX.Element {
    return (
      <PreviewView
        path={this.path}
        state={this._state}
        trans={this.trans}
        onRefresh={() => this.refresh()}
      />
    );
  }

  private _state: PreviewState = { kind: 'loading' };
  private _ticket = 0;
}
