/**
 * The CVAT Train sidebar panel. A placeholder for now: it shows the server
 * extension's version, fetched over the REST API, which proves the round trip
 * browser → server extension → browser.
 */
import { ReactWidget } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { getVersion } from './api';
import { cvatTrainIcon } from './icons';

/** The widget id; also the sidebar tab's `data-id`. */
export const PANEL_ID = 'jupyter-cvat-train-panel';

type VersionState =
  | { kind: 'loading' }
  | { kind: 'ok'; version: string }
  | { kind: 'error'; message: string };

function ServerVersion(): JSX.Element {
  const [state, setState] = useState<VersionState>({ kind: 'loading' });
  useEffect(() => {
    let cancelled = false;
    getVersion()
      .then(reply => {
        if (!cancelled) {
          setState({ kind: 'ok', version: reply.version });
        }
      })
      .catch((error: Error) => {
        if (!cancelled) {
          setState({ kind: 'error', message: error.message });
        }
      });
    return () => {
      cancelled = true;
    };
  }, []);

  switch (state.kind) {
    case 'loading':
      return (
        <p className="jp-CvatTrainPanel-version">Contacting the server…</p>
      );
    case 'ok':
      return (
        <p className="jp-CvatTrainPanel-version" data-version={state.version}>
          Server extension jupyter_cvat_train {state.version}
        </p>
      );
    case 'error':
      return (
        <p className="jp-CvatTrainPanel-version jp-CvatTrainPanel-error">
          The server extension did not answer: {state.message}. Is
          jupyter_cvat_train enabled (`jupyter server extension list`)?
        </p>
      );
  }
}

/** The left-sidebar panel. */
export class CvatTrainPanel extends ReactWidget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-CvatTrainPanel');
    this.title.icon = cvatTrainIcon;
    this.title.caption = 'CVAT Train';
  }

  protected render(): JSX.Element {
    return (
      <>
        <h2>CVAT Train</h2>
        <ServerVersion />
      </>
    );
  }
}
