/**
 * The "CVAT Train" sidebar: a SidePanel whose accordion holds the Datasets, Train, Sync, CVAT
 * and Jobs sections (none modal), under a header that says when the server extension is
 * missing or its version differs from this frontend's, and names the fix.
 */
import { ReactWidget, SidePanel } from '@jupyterlab/ui-components';
import type { TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';
import { Panel } from '@lumino/widgets';
import React from 'react';

import { ApiRequestError, getVersion } from '../api';
import { DatasetsSection } from '../datasets/DatasetsSection';
import { useSignal } from '../components/hooks';
import { CvatModel } from '../cvat/model';
import { CvatSection } from '../cvat/CvatSection';
import { cvatTrainIcon } from '../icons';
import { JobsSection } from '../jobs/JobsSection';
import { SyncModel, type Direction } from '../sync/model';
import { SyncSection } from '../sync/SyncSection';
import { TrainSection } from '../train/TrainSection';
import { FRONTEND_VERSION } from '../version';
import type { IPanelContext } from './context';

/** The widget id; also the sidebar tab's `data-id`. */
export const PANEL_ID = 'jupyter-cvat-train-panel';

/** What the version check found. */
export type ServerCheck =
  | { kind: 'checking' }
  | { kind: 'ok'; version: string }
  | { kind: 'missing' }
  | { kind: 'mismatch'; version: string }
  | { kind: 'unreachable'; message: string };

/** Ask `GET version` and compare it with this frontend's version. */
export async function checkServer(): Promise<ServerCheck> {
  try {
    const { version } = await getVersion();
    return version === FRONTEND_VERSION
      ? { kind: 'ok', version }
      : { kind: 'mismatch', version };
  } catch (error) {
    if (error instanceof ApiRequestError && error.status === 404) {
      return { kind: 'missing' };
    }
    return { kind: 'unreachable', message: (error as Error).message };
  }
}

/** Holds the last server check and says when it changes. */
export class ServerStatus {
  get changed(): ISignal<this, void> {
    return this._changed;
  }
  get check(): ServerCheck {
    return this._check;
  }
  async refresh(): Promise<ServerCheck> {
    this._check = await checkServer();
    this._changed.emit();
    return this._check;
  }
  private _check: ServerCheck = { kind: 'checking' };
  private _changed = new Signal<this, void>(this);
}

function ServerBanner(props: {
  status: ServerStatus;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { status, trans } = props;
  useSignal(status.changed);
  const check = status.check;
  switch (check.kind) {
    case 'checking':
    case 'ok':
      return null;
    case 'missing':
      return (
        <div className="jp-CvatTrain-banner jp-mod-error" role="alert">
          {trans.__(
            'The jupyter_cvat_train server extension does not answer (404): this panel cannot work without it. Check that it is enabled with `jupyter server extension list`; if it is missing, reinstall the package (`pip install jupyter_cvat_train`) and restart JupyterLab.'
          )}
        </div>
      );
    case 'mismatch':
      return (
        <div className="jp-CvatTrain-banner jp-mod-warn" role="alert">
          {trans.__(
            'The server extension is version %1 but this panel is %2: reinstall jupyter_cvat_train so both match, restart JupyterLab and reload the page.',
            check.version,
            FRONTEND_VERSION
          )}
        </div>
      );
    case 'unreachable':
      return (
        <div className="jp-CvatTrain-banner jp-mod-error" role="alert">
          {trans.__(
            'The Jupyter server does not answer (%1). The panel retries on its own.',
            check.message
          )}{' '}
          <button
            className="jp-CvatTrain-link"
            onClick={() => void status.refresh()}
          >
            {trans.__('Check now')}
          </button>
        </div>
      );
  }
}

class Header extends ReactWidget {
  constructor(
    private _status: ServerStatus,
    private _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-CvatTrain-header');
  }
  protected render(): JSX.Element {
    return (
      <>
        <h2 className="jp-CvatTrain-title">{this._trans.__('CVAT Train')}</h2>
        <ServerBanner status={this._status} trans={this._trans} />
      </>
    );
  }
}

/** The left-sidebar panel. */
export class CvatTrainPanel extends SidePanel {
  constructor(
    ctx: IPanelContext,
    readonly server: ServerStatus
  ) {
    super({ content: new Panel() });
    this.id = PANEL_ID;
    this.addClass('jp-CvatTrainPanel');
    this.title.icon = cvatTrainIcon;
    this.title.caption = ctx.trans.__('CVAT Train');
    this.header.addWidget(new Header(server, ctx.trans));
    this.datasets = new DatasetsSection(ctx);
    this.train = new TrainSection(ctx);
    this.sync = new SyncSection(ctx, new SyncModel(ctx.model, ctx.store));
    this.cvat = new CvatSection(ctx, new CvatModel(ctx.model));
    this.jobs = new JobsSection(ctx);
    this.addWidget(this.datasets);
    this.addWidget(this.train);
    this.addWidget(this.sync);
    this.addWidget(this.cvat);
    this.addWidget(this.jobs);
  }

  readonly datasets: DatasetsSection;
  readonly train: TrainSection;
  readonly sync: SyncSection;
  readonly cvat: CvatSection;

  /** Show the CVAT section's push form, prefilled with `source`. */
  openCvatPush(source: string): void {
    this.cvat.model.prefillPush(source);
    this.cvat.expand();
  }

  /** Show the Sync section, prefilled with `folder` (and its last location) when given. */
  openSync(folder: string | null, direction: Direction): void {
    if (folder) {
      this.sync.model.prefillFolder(folder);
    }
    this.sync.model.suggested = direction;
    this.sync.expand();
  }
  readonly jobs: JobsSection;

  /** Unfold a section and scroll it into view. */
  expand(
    section: DatasetsSection | TrainSection | JobsSection | CvatSection
  ): void {
    section.expand();
  }
}
