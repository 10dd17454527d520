/**
 * The sidebar's Datasets section: a path (typed, the file browser's selection, or
 * picked), Validate, the report, and "Train on this export" (disabled, saying why, while
 * the report has errors).
 */
import { folderIcon } from '@jupyterlab/ui-components';
import React from 'react';

import { useSignal } from '../components/hooks';
import { Section } from '../components/Section';
import type { IPanelContext } from '../panel/context';
import { ReportView } from './ReportView';
import { trainBlockedReason } from './report';

export function PathField(props: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  ctx: IPanelContext;
  placeholder?: string;
  invalid?: string | null;
}): JSX.Element {
  const { ctx } = props;
  const trans = ctx.trans;
  return (
    <div className="jp-CvatTrain-field">
      <label htmlFor={props.id}>{props.label}</label>
      <div className="jp-CvatTrain-pathRow">
        <input
          id={props.id}
          className="jp-mod-styled jp-CvatTrain-input"
          value={props.value}
          placeholder={props.placeholder}
          spellCheck={false}
          aria-invalid={props.invalid ? true : undefined}
          aria-describedby={props.invalid ? `${props.id}-error` : undefined}
          onChange={e => props.onChange(e.target.value)}
        />
        {ctx.pickPath ? (
          <button
            className="jp-mod-styled jp-CvatTrain-iconButton"
            title={trans.__('Choose a file or folder…')}
            aria-label={trans.__('Choose a file or folder…')}
            onClick={async () => {
              const picked = await ctx.pickPath?.();
              if (picked) {
                props.onChange(picked);
              }
            }}
          >
            <folderIcon.react tag="span" />
          </button>
        ) : null}
      </div>
      <button
        className="jp-CvatTrain-link jp-CvatTrain-useSelection"
        onClick={() => {
          const selected = ctx.browserSelection();
          if (selected) {
            props.onChange(selected);
          }
        }}
      >
        {trans.__("Use the file browser's selection")}
      </button>
      {props.invalid ? (
        <div
          id={`${props.id}-error`}
          className="jp-CvatTrain-fieldError"
          role="alert"
        >
          {props.invalid}
        </div>
      ) : null}
    </div>
  );
}

function Datasets(props: { ctx: IPanelContext }): JSX.Element {
  const { ctx } = props;
  const { state, trans } = ctx;
  useSignal(state.changed);
  const report = state.report;
  const path = state.datasetPath;
  const busy = state.validating;
  const problem = state.problem || null;
  const blocked = report ? trainBlockedReason(report) : null;
  return (
    <div className="jp-CvatTrain-section jp-CvatTrain-datasets">
      <PathField
        id="jp-CvatTrain-datasetPath"
        label={trans.__('CVAT export (zip or folder)')}
        value={path}
        placeholder="data/export.zip"
        onChange={value => (state.datasetPath = value)}
        ctx={ctx}
        invalid={problem}
      />
      <div className="jp-CvatTrain-buttons">
        <button
          className="jp-mod-styled jp-mod-accept jp-CvatTrain-validate"
          onClick={() => void state.validate()}
          disabled={busy}
          aria-busy={busy}
        >
          {busy ? trans.__('Validating…') : trans.__('Validate')}
        </button>
        {report ? (
          <button
            className="jp-mod-styled jp-CvatTrain-trainOn"
            disabled={blocked !== null}
            title={blocked ?? trans.__('Open the Train form with this export')}
            onClick={() => {
              state.prefillTrain({ dataset: path.trim() }, 'dataset');
              ctx.showTrain();
            }}
          >
            {trans.__('Train on this export')}
          </button>
        ) : null}
      </div>
      {blocked ? <div className="jp-CvatTrain-blocked">{blocked}</div> : null}
      {report ? <ReportView report={report} trans={trans} /> : null}
    </div>
  );
}

/** The Datasets section as a widget of the sidebar's accordion. */
export class DatasetsSection extends Section {
  constructor(private _ctx: IPanelContext) {
    super(_ctx.trans.__('Datasets'), 'jp-CvatTrain-datasets');
  }

  protected renderBody(): JSX.Element {
    return <Datasets ctx={this._ctx} />;
  }
}
