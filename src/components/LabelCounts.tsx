/** A table of annotations per label (a validation report's, an annotate job's). */
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

export function LabelCounts(props: {
  counts: [string, number | undefined][];
  className: string;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { counts, className, trans } = props;
  if (counts.length === 0) {
    return null;
  }
  return (
    <table className={`jp-CvatTrain-table ${className}`}>
      <caption>{trans.__('Annotations per label')}</caption>
      <thead>
        <tr>
          <th scope="col">{trans.__('Label')}</th>
          <th scope="col" className="jp-mod-number">
            {trans.__('Annotations')}
          </th>
        </tr>
      </thead>
      <tbody>
        {counts.map(([label, n]) => (
          <tr key={label}>
            <td>{label}</td>
            <td className="jp-mod-number">{n}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
