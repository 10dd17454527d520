/**
 * The sidebar's Sync section: a workspace folder and a storage location (s3:// or
 * file://, an endpoint for S3-compatible servers), include/exclude patterns, "delete
 * files in the destination that are not in the source" (off by default) and "compare by
 * checksum"; "Test connection" (which identity the server's AWS credential chain gives,
 * and what it can do there); "Preview" (the plan, before anything moves); and the two
 * sync buttons, which start a job and open its view. A sync that deletes asks first,
 * naming how many files. Recently used pairs are offered again.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import type { StorageCheck, StorageCheckStep, SyncPlanPage } from '../api';
import { useSignal } from '../components/hooks';
import { Section } from '../components/Section';
import { PathField } from '../datasets/DatasetsSection';
import type { IPanelContext } from '../panel/context';
import { formatBytes, type Direction, type SyncModel } from './model';

const STEP_MARK: Record<StorageCheckStep['status'], string> = {
  ok: '✓',
  failed: '✕',
  skipped: '–',
  warning: '!'
};

function stepLabel(name: string, trans: TranslationBundle): string {
  switch (name) {
    case 'credentials':
      return trans.__('Credentials');
    case 'endpoint':
      return trans.__('Endpoint');
    case 'bucket':
      return trans.__('Bucket');
    case 'list':
      return trans.__('Can list');
    case 'write':
      return trans.__('Can write');
    case 'folder':
      return trans.__('Folder');
    case 'workspace':
      return trans.__('Workspace');
    default:
      return name;
  }
}

/** The identity line and the steps of a connection check. */
export function CheckView(props: {
  check: StorageCheck;
  trans: TranslationBundle;
}): JSX.Element {
  const { check, trans } = props;
  const id = check.identity;
  let who: string;
  if (check.scheme === 'file') {
    who = trans.__(
      'Files are read and written as the server user %1.',
      id.user ?? '?'
    );
  } else if (!id.found) {
    who = trans.__('The server found no AWS credentials.');
  } else {
    who = trans.__(
      'The server signs as: %1; profile %2; region %3%4.',
      id.source ?? '?',
      id.profile ?? 'default',
      id.region ?? '?',
      id.access_key_hint ? trans.__('; access key %1', id.access_key_hint) : ''
    );
  }
  return (
    <div
      className={
        'jp-CvatTrain-syncCheck' + (check.ok ? ' jp-mod-ok' : ' jp-mod-failed')
      }
      role="status"
    >
      <div className="jp-CvatTrain-syncIdentity">{who}</div>
      <ul className="jp-CvatTrain-syncSteps">
        {check.steps.map(step => (
          <li
            key={step.name}
            className={'jp-CvatTrain-syncStep jp-mod-' + step.status}
            data-step={step.name}
            data-status={step.status}
          >
            <span className="jp-CvatTrain-syncMark" aria-hidden="true">
              {STEP_MARK[step.status]}
            </span>{' '}
            <strong>{stepLabel(step.name, trans)}</strong>: {step.message}
            {step.fix ? (
              <div className="jp-CvatTrain-syncFix">{step.fix}</div>
            ) : null}
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The totals line of a plan. */
export function planTotals(
  page: SyncPlanPage,
  trans: TranslationBundle
): string {
  return trans.__(
    'Would copy %1, update %2, delete %3; %4 already the same; %5 to transfer.',
    page.copied,
    page.updated,
    page.deleted,
    page.skipped,
    formatBytes(page.bytes)
  );
}

/** The plan table of a preview (the first page) with its totals. */
export function PlanTable(props: {
  page: SyncPlanPage;
  trans: TranslationBundle;
  onOpenJob?: () => void;
}): JSX.Element {
  const { page, trans } = props;
  const opLabel = (op: string) =>
    op === 'copy'
      ? trans.__('copy')
      : op === 'update'
        ? trans.__('update')
        : trans.__('delete');
  return (
    <div className="jp-CvatTrain-syncPlan">
      <div className="jp-CvatTrain-syncTotals" role="status">
        {planTotals(page, trans)}
        {page.refused > 0
          ? ' ' +
            trans.__(
              '%1 key(s) refused (they would land outside the workspace).',
              page.refused
            )
          : ''}
      </div>
      {page.total === 0 ? (
        <div className="jp-CvatTrain-dim">
          {trans.__('Nothing to do: both sides are the same.')}
        </div>
      ) : (
        <table className="jp-CvatTrain-table jp-CvatTrain-planTable">
          <thead>
            <tr>
              <th scope="col">{trans.__('Action')}</th>
              <th scope="col">{trans.__('File')}</th>
              <th scope="col" className="jp-mod-number">
                {trans.__('Bytes')}
              </th>
            </tr>
          </thead>
          <tbody>
            {page.actions.map(a => (
              <tr
                key={a.op + a.key}
                className={'jp-mod-' + a.op}
                data-op={a.op}
              >
                <td>{opLabel(a.op)}</td>
                <td className="jp-CvatTrain-planKey" title={a.key}>
                  {a.key}
                </td>
                <td className="jp-mod-number">
                  {a.op === 'delete' ? '' : formatBytes(a.bytes)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page.total > page.actions.length ? (
        <div className="jp-CvatTrain-dim">
          {trans.__(
            'Showing the first %1 of %2 actions (largest first, then deletes).',
            page.actions.length,
            page.total
          )}{' '}
          {props.onOpenJob ? (
            <button className="jp-CvatTrain-link" onClick={props.onOpenJob}>
              {trans.__('The whole plan is in the preview job’s log')}
            </button>
          ) : null}
        </div>
      ) : null}
    </div>
  );
}

/** Ask before a sync deletes files; resolves true when the user agrees. */
export async function confirmDeletes(
  count: number,
  page: SyncPlanPage,
  workspace: string,
  trans: TranslationBundle
): Promise<boolean> {
  const where =
    page.direction === 'up'
      ? trans.__('in %1', page.storage)
      : trans.__('in the workspace folder %1', workspace);
  const result = await showDialog({
    title: trans.__('Delete files?'),
    body: trans._n(
      'This sync will delete %1 file %2 that is not in the source. Deleted files cannot be restored from here.',
      'This sync will delete %1 files %2 that are not in the source. Deleted files cannot be restored from here.',
      count,
      where
    ),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.warnButton({
        label: trans._n(
          'Delete %1 file and sync',
          'Delete %1 files and sync',
          count
        )
      })
    ]
  });
  return result.button.accept;
}

function Field(props: {
  id: string;
  label: string;
  value: string;
  placeholder?: string;
  hint?: string;
  onChange: (value: string) => void;
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
        aria-describedby={props.hint ? `${props.id}-hint` : undefined}
        onChange={e => props.onChange(e.target.value)}
      />
      {props.hint ? (
        <div id={`${props.id}-hint`} className="jp-CvatTrain-hint">
          {props.hint}
        </div>
      ) : null}
    </div>
  );
}

function Sync(props: { ctx: IPanelContext; sync: SyncModel }): JSX.Element {
  const { ctx, sync } = props;
  const { trans } = ctx;
  useSignal(sync.changed);
  const f = sync.form;
  const preview = sync.preview;
  const busy = sync.starting !== '' || (preview?.running ?? false);
  const start = async (direction: Direction) => {
    const job = await sync.startSync(direction, (count, page) =>
      confirmDeletes(count, page, f.workspace, trans)
    );
    if (job) {
      ctx.openJob(job.id);
    }
  };
  const suggested = sync.suggested;
  return (
    <div className="jp-CvatTrain-section jp-CvatTrain-sync">
      {sync.recent.length > 0 ? (
        <div className="jp-CvatTrain-field">
          <label htmlFor="jp-CvatTrain-syncRecent">
            {trans.__('Recently used')}
          </label>
          <select
            id="jp-CvatTrain-syncRecent"
            className="jp-mod-styled jp-CvatTrain-input"
            value=""
            onChange={e => {
              const pair = sync.recent[Number(e.target.value)];
              if (pair) {
                sync.usePair(pair);
              }
            }}
          >
            <option value="">
              {trans.__('Choose a folder ⇄ location pair…')}
            </option>
            {sync.recent.map((p, i) => (
              <option key={i} value={i}>
                {`${p.workspace} ⇄ ${p.storage}`}
                {p.endpointUrl ? ` (${p.endpointUrl})` : ''}
              </option>
            ))}
          </select>
        </div>
      ) : null}
      <PathField
        id="jp-CvatTrain-syncWorkspace"
        label={trans.__('Workspace folder')}
        value={f.workspace}
        placeholder="data/exports"
        onChange={value => sync.setForm({ workspace: value })}
        ctx={ctx}
      />
      <Field
        id="jp-CvatTrain-syncStorage"
        label={trans.__('Storage location')}
        value={f.storage}
        placeholder="s3://bucket/prefix"
        hint={trans.__(
          's3://bucket/prefix, or file:///path for a folder on the server'
        )}
        onChange={value => sync.setForm({ storage: value })}
      />
      <Field
        id="jp-CvatTrain-syncEndpoint"
        label={trans.__('Endpoint URL (S3-compatible servers)')}
        value={f.endpointUrl}
        placeholder={trans.__('empty for AWS S3')}
        onChange={value => sync.setForm({ endpointUrl: value })}
      />
      <details className="jp-CvatTrain-syncOptions">
        <summary>{trans.__('Options')}</summary>
        <Field
          id="jp-CvatTrain-syncInclude"
          label={trans.__('Include (globs, comma-separated)')}
          value={f.include}
          placeholder="*.zip, images/*"
          onChange={value => sync.setForm({ include: value })}
        />
        <Field
          id="jp-CvatTrain-syncExclude"
          label={trans.__('Exclude (globs, comma-separated)')}
          value={f.exclude}
          placeholder="*.tmp"
          onChange={value => sync.setForm({ exclude: value })}
        />
        <label className="jp-CvatTrain-check">
          <input
            type="checkbox"
            className="jp-CvatTrain-syncChecksum"
            checked={f.checksum}
            onChange={e => sync.setForm({ checksum: e.target.checked })}
          />{' '}
          {trans.__('Compare by checksum (slower; ignores modification times)')}
        </label>
      </details>
      <label className="jp-CvatTrain-check">
        <input
          type="checkbox"
          className="jp-CvatTrain-syncDelete"
          checked={f.deleteExtra}
          onChange={e => sync.setForm({ deleteExtra: e.target.checked })}
        />{' '}
        {trans.__('Delete files in the destination that are not in the source')}
      </label>
      <div className="jp-CvatTrain-buttons">
        <button
          className="jp-mod-styled jp-CvatTrain-syncTest"
          onClick={() => void sync.testConnection()}
          disabled={sync.checking}
          aria-busy={sync.checking}
          title={trans.__(
            'Check, with the server’s credentials, that the location can be reached, listed and written'
          )}
        >
          {sync.checking ? trans.__('Testing…') : trans.__('Test connection')}
        </button>
      </div>
      {sync.checkProblem ? (
        <div className="jp-CvatTrain-error" role="alert">
          {sync.checkProblem}
        </div>
      ) : null}
      {sync.check ? <CheckView check={sync.check} trans={trans} /> : null}
      <div className="jp-CvatTrain-buttons">
        <button
          className="jp-mod-styled jp-CvatTrain-syncPreviewUp"
          disabled={busy}
          title={trans.__(
            'Show what a sync to object storage would do; nothing moves'
          )}
          onClick={() => void sync.runPreview('up')}
        >
          {trans.__('Preview ↑')}
        </button>
        <button
          className="jp-mod-styled jp-CvatTrain-syncPreviewDown"
          disabled={busy}
          title={trans.__(
            'Show what a sync to the workspace would do; nothing moves'
          )}
          onClick={() => void sync.runPreview('down')}
        >
          {trans.__('Preview ↓')}
        </button>
      </div>
      <div className="jp-CvatTrain-buttons">
        <button
          className={
            'jp-mod-styled jp-CvatTrain-syncUp' +
            (suggested !== 'down' ? ' jp-mod-accept' : '')
          }
          disabled={busy}
          aria-busy={sync.starting === 'up'}
          onClick={() => void start('up')}
        >
          {sync.starting === 'up'
            ? trans.__('Starting…')
            : trans.__('Sync to object storage')}
        </button>
        <button
          className={
            'jp-mod-styled jp-CvatTrain-syncDown' +
            (suggested === 'down' ? ' jp-mod-accept' : '')
          }
          disabled={busy}
          aria-busy={sync.starting === 'down'}
          onClick={() => void start('down')}
        >
          {sync.starting === 'down'
            ? trans.__('Starting…')
            : trans.__('Sync to workspace')}
        </button>
      </div>
      {sync.problem ? (
        <div
          className="jp-CvatTrain-error jp-CvatTrain-syncProblem"
          role="alert"
        >
          {sync.problem}
        </div>
      ) : null}
      {preview ? (
        <section
          className="jp-CvatTrain-syncPreview"
          aria-label={trans.__('Preview')}
          data-direction={preview.direction}
        >
          <h4>
            {preview.direction === 'up'
              ? trans.__('Preview: workspace → object storage')
              : trans.__('Preview: object storage → workspace')}
            {preview.page && !sync.previewCurrent ? (
              <span className="jp-CvatTrain-dim">
                {' '}
                {trans.__('(the form changed since)')}
              </span>
            ) : null}
          </h4>
          {preview.running ? (
            <div className="jp-CvatTrain-dim" role="status">
              {trans.__('Listing both sides…')}
            </div>
          ) : null}
          {preview.problem ? (
            <div className="jp-CvatTrain-error" role="alert">
              {preview.problem}
            </div>
          ) : null}
          {preview.page ? (
            <PlanTable
              page={preview.page}
              trans={trans}
              onOpenJob={
                preview.jobId
                  ? () => ctx.openJob(preview.jobId as string)
                  : undefined
              }
            />
          ) : null}
        </section>
      ) : null}
    </div>
  );
}

/** The Sync section as a widget of the sidebar. */
export class SyncSection extends Section {
  constructor(
    private _ctx: IPanelContext,
    readonly model: SyncModel
  ) {
    super(_ctx.trans.__('Sync'), 'jp-CvatTrain-syncSection');
  }

  protected renderBody(): JSX.Element {
    return <Sync ctx={this._ctx} sync={this.model} />;
  }
}
