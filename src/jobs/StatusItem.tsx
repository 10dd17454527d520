/** The status-bar item: how many jobs run and wait; a click opens the panel. */
import type { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import React from 'react';

import { useSignal } from '../components/hooks';
import type { JobsModel } from './model';

function Status(props: {
  model: JobsModel;
  trans: TranslationBundle;
  onClick: () => void;
}): JSX.Element | null {
  const { model, trans } = props;
  useSignal(model.changed);
  const counts = model.counts();
  if (counts.running === 0 && counts.queued === 0) {
    return null;
  }
  const running = model.jobs.find(j => j.state === 'running');
  const progress =
    running && running.progress.total
      ? ` · ${running.progress.done}/${running.progress.total} ${running.progress.unit ?? ''}`.trimEnd()
      : '';
  const text =
    trans.__(
      'CVAT Train: %1 running, %2 queued',
      counts.running,
      counts.queued
    ) + progress;
  return (
    <button
      className="jp-CvatTrain-status"
      title={trans.__('Open the CVAT Train panel')}
      aria-label={text}
      onClick={props.onClick}
    >
      ⟳ {text}
    </button>
  );
}

export class StatusItem extends ReactWidget {
  constructor(
    private _model: JobsModel,
    private _trans: TranslationBundle,
    private _onClick: () => void
  ) {
    super();
    this.addClass('jp-CvatTrain-statusItem');
  }
  protected render(): JSX.Element {
    return (
      <Status model={this._model} trans={this._trans} onClick={this._onClick} />
    );
  }
}
