/**
 * The answer of "Test connection" in the CVAT section (GET cvat/connection): host,
 * user and CVAT version, or the server's reason and where the variables are read.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import type { CvatConnection } from '../api';

/** The answer of GET cvat/connection. */
export function ConnectionView(props: {
  connection: CvatConnection;
  trans: TranslationBundle;
}): JSX.Element {
  const { connection: c, trans } = props;
  if (c.ok) {
    return (
      <div className="jp-CvatTrain-cvatConnection jp-mod-ok" role="status">
        <dl className="jp-CvatTrain-cvatFacts">
          <dt>{trans.__('Host')}</dt>
          <dd>{c.host}</dd>
          <dt>{trans.__('User')}</dt>
          <dd>{c.user ?? '?'}</dd>
          <dt>{trans.__('CVAT version')}</dt>
          <dd>{c.server_version ?? '?'}</dd>
          {c.source ? (
            <>
              <dt>{trans.__('Settings from')}</dt>
              <dd>{c.source}</dd>
            </>
          ) : null}
        </dl>
      </div>
    );
  }
  return (
    <div className="jp-CvatTrain-cvatConnection jp-mod-failed" role="status">
      <div className="jp-CvatTrain-cvatMessage">
        {c.host
          ? trans.__('Not connected to %1: %2', c.host, c.message)
          : trans.__('Not connected: %1', c.message)}
      </div>
      <div className="jp-CvatTrain-cvatFix">
        {trans.__(
          'CVAT_HOST and CVAT_ACCESS_TOKEN (or CVAT_USERNAME and CVAT_PASSWORD) are read from the environment of the Jupyter server, not from this browser: set them in the shell that starts `jupyter lab`, then restart it.'
        )}
      </div>
    </div>
  );
}
