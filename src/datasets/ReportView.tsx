/**
 * A validation report: the summary (format, subsets, images, annotations, annotations
 * per label, box sizes) and the findings grouped by code, the first few of a large group
 * with "show all". Every text is rendered as text.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React, { useState } from 'react';

import { LabelCounts } from '../components/LabelCounts';

import type { BoxStats, ValidationReport } from '../api';
import {
  fewAnnotationsWarning,
  groupFindings,
  type IFindingGroup
} from './report';

const FIRST_ITEMS = 5;

function FindingGroup(props: {
  group: IFindingGroup;
  trans: TranslationBundle;
}): JSX.Element {
  const { group, trans } = props;
  const [all, setAll] = useState(false);
  const shown = all ? group.findings : group.findings.slice(0, FIRST_ITEMS);
  const hints = new Set(group.findings.map(f => f.hint).filter(Boolean));
  const oneHint = hints.size === 1 ? [...hints][0] : null;
  return (
    <li
      className={`jp-CvatTrain-findingGroup jp-mod-${group.severity}`}
      data-code={group.code}
    >
      <div className="jp-CvatTrain-findingHead">
        <span className={`jp-CvatTrain-severity jp-mod-${group.severity}`}>
          {group.severity === 'error' ? trans.__('Error') : trans.__('Warning')}
        </span>{' '}
        <code>{group.code}</code>{' '}
        <span className="jp-CvatTrain-count">×{group.findings.length}</span>
      </div>
      {oneHint ? <div className="jp-CvatTrain-hint">{oneHint}</div> : null}
      <ul className="jp-CvatTrain-findingItems">
        {shown.map((finding, i) => (
          <li key={i}>
            {finding.item && !finding.message.includes(finding.item) ? (
              <div className="jp-CvatTrain-item">{finding.item}</div>
            ) : null}
            <span>{finding.message}</span>
            {!oneHint && finding.hint ? (
              <div className="jp-CvatTrain-hint">{finding.hint}</div>
            ) : null}
          </li>
        ))}
      </ul>
      {group.findings.length > FIRST_ITEMS ? (
        <button
          className="jp-CvatTrain-link"
          onClick={() => setAll(!all)}
          aria-expanded={all}
        >
          {all
            ? trans.__('Show fewer')
            : trans.__('Show all %1', group.findings.length)}
        </button>
      ) : null}
    </li>
  );
}

function stats(s: BoxStats | undefined): string {
  if (!s || s.median === undefined) {
    return '—';
  }
  const r = (n: number | undefined) =>
    n === undefined ? '?' : Math.round(n).toString();
  return `${r(s.min)}–${r(s.max)} px, median ${r(s.median)}`;
}

export function ReportView(props: {
  report: ValidationReport;
  trans: TranslationBundle;
}): JSX.Element {
  const { report, trans } = props;
  const few = fewAnnotationsWarning(report);
  // the server's few-annotations finding is the note above: not listed twice
  const groups = groupFindings(report).filter(
    g => !(few && g.code === 'few-annotations')
  );
  const labels = Object.entries(report.labels ?? {}).sort(
    (a, b) => (b[1] ?? 0) - (a[1] ?? 0)
  );
  const subsets = Object.entries(report.subsets ?? {});
  return (
    <div className="jp-CvatTrain-report" data-ok={report.ok ? 'true' : 'false'}>
      <div
        className={
          'jp-CvatTrain-verdict ' + (report.ok ? 'jp-mod-ok' : 'jp-mod-error')
        }
        role="status"
      >
        {report.ok
          ? trans.__(
              '✓ Ready to train: no errors, %1.',
              trans._n('%1 warning', '%1 warnings', report.warnings.length)
            )
          : trans.__(
              '✕ Not trainable: %1, %2.',
              trans._n('%1 error', '%1 errors', report.errors.length),
              trans._n('%1 warning', '%1 warnings', report.warnings.length)
            )}
      </div>
      <dl className="jp-CvatTrain-summary">
        <dt>{trans.__('Format')}</dt>
        <dd>{report.format ?? trans.__('not recognised')}</dd>
        <dt>{trans.__('Images')}</dt>
        <dd>{report.images}</dd>
        <dt>{trans.__('Annotations')}</dt>
        <dd>{report.annotations}</dd>
        {subsets.length > 0 ? (
          <>
            <dt>{trans.__('Subsets')}</dt>
            <dd>{subsets.map(([name, n]) => `${name} (${n})`).join(', ')}</dd>
          </>
        ) : null}
        {report.box_size?.width ? (
          <>
            <dt>{trans.__('Box width')}</dt>
            <dd>{stats(report.box_size.width)}</dd>
            <dt>{trans.__('Box height')}</dt>
            <dd>{stats(report.box_size.height)}</dd>
          </>
        ) : null}
      </dl>
      {few ? (
        <div className="jp-CvatTrain-warningNote" role="note">
          {few}
        </div>
      ) : null}
      <LabelCounts
        counts={labels}
        className="jp-CvatTrain-labels"
        trans={trans}
      />
      {groups.length > 0 ? (
        <ul className="jp-CvatTrain-findings" aria-label={trans.__('Findings')}>
          {groups.map(group => (
            <FindingGroup
              key={group.severity + group.code}
              group={group}
              trans={trans}
            />
          ))}
        </ul>
      ) : null}
    </div>
  );
}
