/**
 * The Train form's "Run on" choice: this machine, or the server's Ray cluster (GET
 * backends). Shown only when the server has more than one backend.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import type { BackendList } from '../api';

/**
 * The select, or nothing when `backends` is null (not known) or has one entry. `value`:
 * the chosen backend's id, '' for the server's default; `onChange` gets '' when the
 * default is chosen again (the job then names no backend).
 */
export function BackendChoice(props: {
  backends: BackendList | null;
  value: string;
  onChange: (value: string) => void;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { backends, value, onChange, trans } = props;
  if (!backends || backends.backends.length < 2) {
    return null;
  }
  return (
    <div className="jp-CvatTrain-row">
      <label className="jp-CvatTrain-inline jp-CvatTrain-backendChoice">
        {trans.__('Run on')}{' '}
        <select
          className="jp-mod-styled jp-CvatTrain-backend"
          value={value || backends.default}
          onChange={e =>
            onChange(e.target.value === backends.default ? '' : e.target.value)
          }
          aria-label={trans.__('Run on')}
        >
          {backends.backends.map(b => (
            <option key={b.id} value={b.id} title={b.address}>
              {b.id === 'local'
                ? trans.__('This machine')
                : trans.__('Ray cluster at %1', b.address ?? '')}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}
