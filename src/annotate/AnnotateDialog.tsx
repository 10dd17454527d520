/**
 * The Auto-annotate form, a main-area tab (not modal: the job it starts runs on its own
 * and opens in its job view): the images (a folder, a zip of images or a CVAT export),
 * the model (a finished train job's model, or any model folder), confidence threshold,
 * max detections, output format, keep the export's annotations, previews, and the class
 * mapping table (model labels → target labels, prefilled by case-insensitive name,
 * many-to-one and drop allowed; a target the export does not have is flagged before
 * start). What the server finds at the paths (GET annotate/images, GET models/labels) is
 * shown as they are typed, so bad input is told before anything starts.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import React, { useEffect, useRef, useState } from 'react';

import {
  ApiRequestError,
  listDevices,
  type AnnotateImages,
  type AnnotateSpec,
  type DeviceList
} from '../api';
import { useSignal } from '../components/hooks';
import { PathField } from '../datasets/DatasetsSection';
import { cvatTrainIcon } from '../icons';
import type { IPanelContext } from '../panel/context';
import { getAnnotateImages, getModelLabels } from './api';
import {
  checkMapping,
  mappingSpec,
  mergeMapping,
  trainedModels,
  type IAnnotatePrefill,
  type IMappingRow
} from './mapping';

/** The form's prefill channel: commands call `prefill`, the form follows `changed`. */
export class AnnotateRequest {
  get changed(): ISignal<this, void> {
    return this._changed;
  }
  get current(): (IAnnotatePrefill & { serial: number }) | null {
    return this._current;
  }
  prefill(p: IAnnotatePrefill): void {
    this._current = { ...p, serial: (this._current?.serial ?? 0) + 1 };
    this._changed.emit();
  }
  private _current: (IAnnotatePrefill & { serial: number }) | null = null;
  private _changed = new Signal<this, void>(this);
}

/** The output formats the core writes (annotate/writers.py FORMATS). */
const FORMATS: [AnnotateSpec['format'] & string, string][] = [
  ['coco', 'COCO 1.0'],
  ['cvat', 'CVAT for images 1.1'],
  ['yolo', 'YOLO 1.1']
];

const OTHER = '__path__';
const LOOKUP_DELAY = 400; // ms after the last keystroke

type Lookup<T> =
  | { kind: 'idle' }
  | { kind: 'loading' }
  | { kind: 'ok'; value: T; path: string }
  | { kind: 'error'; message: string; path: string };

/** Ask `fetch(path)` a moment after `path` stops changing; the latest answer wins. */
function useLookup<T>(
  path: string,
  fetch: (path: string) => Promise<T>
): Lookup<T> {
  const [state, setState] = useState<Lookup<T>>({ kind: 'idle' });
  useEffect(() => {
    const p = path.trim();
    if (!p) {
      setState({ kind: 'idle' });
      return;
    }
    let live = true;
    setState({ kind: 'loading' });
    const timer = setTimeout(() => {
      fetch(p)
        .then(value => live && setState({ kind: 'ok', value, path: p }))
        .catch(
          (error: Error) =>
            live && setState({ kind: 'error', message: error.message, path: p })
        );
    }, LOOKUP_DELAY);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [path]);
  return state;
}

function imagesSummary(
  info: AnnotateImages,
  trans: IPanelContext['trans']
): string {
  switch (info.kind) {
    case 'export':
      return trans._n(
        'A CVAT export (%2) with %1 image; its labels are the targets: %3',
        'A CVAT export (%2) with %1 images; its labels are the targets: %3',
        info.images,
        info.format ?? '?',
        (info.labels ?? []).join(', ')
      );
    case 'zip':
      return trans._n(
        'A zip with %1 image',
        'A zip with %1 images',
        info.images
      );
    default:
      return trans._n(
        'A folder with %1 image',
        'A folder with %1 images',
        info.images
      );
  }
}

function MappingTable(props: {
  rows: IMappingRow[];
  targets: string[] | null;
  onChange: (rows: IMappingRow[]) => void;
  ctx: IPanelContext;
}): JSX.Element {
  const { rows, targets, ctx } = props;
  const trans = ctx.trans;
  const lower = new Set((targets ?? []).map(t => t.toLowerCase()));
  const set = (i: number, target: string) =>
    props.onChange(rows.map((r, k) => (k === i ? { ...r, target } : r)));
  return (
    <table className="jp-CvatTrain-table jp-CvatTrain-mapping">
      <caption>
        {targets
          ? trans.__(
              "Model labels → the export's labels (several may map to one; empty drops the label)"
            )
          : trans.__(
              'Model labels → the labels written (rename, merge several into one, or leave empty to drop)'
            )}
      </caption>
      <thead>
        <tr>
          <th scope="col">{trans.__('Model label')}</th>
          <th scope="col">{trans.__('Target label')}</th>
          <th scope="col">
            <span className="jp-CvatTrain-visuallyHidden">
              {trans.__('Drop')}
            </span>
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row, i) => {
          const target = row.target.trim();
          const unknown =
            targets !== null &&
            target !== '' &&
            !lower.has(target.toLowerCase());
          const id = `jp-CvatTrain-map-${i}`;
          return (
            <tr
              key={row.model}
              data-model={row.model}
              className={
                unknown ? 'jp-mod-invalid' : target ? '' : 'jp-mod-dropped'
              }
            >
              <td>
                <label htmlFor={id}>{row.model}</label>
              </td>
              <td>
                <input
                  id={id}
                  className="jp-mod-styled jp-CvatTrain-input"
                  list="jp-CvatTrain-targetLabels"
                  value={row.target}
                  placeholder={trans.__('(dropped)')}
                  aria-invalid={unknown ? true : undefined}
                  spellCheck={false}
                  onChange={e => set(i, e.target.value)}
                />
                {unknown ? (
                  <div className="jp-CvatTrain-fieldError" role="alert">
                    {trans.__('The export has no label "%1"', target)}
                  </div>
                ) : !target ? (
                  <div className="jp-CvatTrain-dim">
                    {trans.__('dropped: its detections are not written')}
                  </div>
                ) : null}
              </td>
              <td>
                <button
                  className="jp-mod-styled jp-CvatTrain-drop"
                  title={trans.__('Drop this label')}
                  aria-label={trans.__('Drop %1', row.model)}
                  disabled={!target}
                  onClick={() => set(i, '')}
                >
                  {trans.__('Drop')}
                </button>
              </td>
            </tr>
          );
        })}
      </tbody>
      {targets ? (
        <datalist id="jp-CvatTrain-targetLabels">
          {targets.map(t => (
            <option key={t} value={t} />
          ))}
        </datalist>
      ) : null}
    </table>
  );
}

function AnnotateForm(props: {
  ctx: IPanelContext;
  request: AnnotateRequest;
}): JSX.Element {
  const { ctx, request } = props;
  const { trans } = ctx;
  useSignal(request.changed);
  useSignal(ctx.model.changed);
  const models = trainedModels(ctx.model.jobs);
  const [images, setImages] = useState('');
  const [choice, setChoice] = useState('');
  const [modelPath, setModelPath] = useState('');
  const [threshold, setThreshold] = useState(0.5);
  const [maxDetections, setMaxDetections] = useState('100');
  const [format, setFormat] = useState<string>('cvat');
  const [keepExisting, setKeepExisting] = useState(false);
  const [previews, setPreviews] = useState('4');
  const [output, setOutput] = useState('');
  const [device, setDevice] = useState(ctx.settings().defaultDevice || 'auto');
  const [rows, setRows] = useState<IMappingRow[]>([]);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<{
    field: 'images' | 'model' | 'output' | 'general';
    message: string;
  } | null>(null);
  const [seen, setSeen] = useState(0);
  const [devices, setDevices] = useState<DeviceList | null>(null);
  useEffect(() => {
    listDevices()
      .then(setDevices)
      .catch(() => setDevices(null)); // the plain choices stay
  }, []);
  // a prefilled mapping, applied once the model's labels are known
  const pendingMapping = useRef<{
    rows: IMappingRow[];
    images?: string;
    model?: string;
  } | null>(null);

  // a prefill from a command (context menu, a train job's view)
  const current = request.current;
  useEffect(() => {
    if (!current || current.serial === seen) {
      return;
    }
    setSeen(current.serial);
    if (current.images !== undefined) {
      setImages(current.images);
    }
    if (current.model !== undefined) {
      const listed = models.some(m => m.path === current.model);
      setChoice(listed ? current.model : current.model ? OTHER : '');
      setModelPath(listed ? '' : current.model);
    }
    if (current.threshold !== undefined) {
      setThreshold(current.threshold);
    }
    if (current.maxDetections !== undefined) {
      setMaxDetections(String(current.maxDetections));
    }
    if (current.format !== undefined) {
      setFormat(current.format);
    }
    if (current.keepExisting !== undefined) {
      setKeepExisting(current.keepExisting);
    }
    if (current.preview !== undefined) {
      setPreviews(String(current.preview));
    }
    if (current.device !== undefined) {
      setDevice(current.device);
    }
    if (current.mapping) {
      pendingMapping.current = {
        rows: Object.entries(current.mapping).map(([model, target]) => ({
          model,
          target: target ?? ''
        })),
        images: current.images,
        model: current.model
      };
    }
    setProblem(null);
  }, [current?.serial]);

  // the newest trained model is the default choice
  useEffect(() => {
    if (models.length > 0) {
      setChoice(c => c || models[0].path);
    }
  }, [models.length]);

  const model = choice === OTHER ? modelPath : choice;
  const imagesInfo = useLookup(images, getAnnotateImages);
  const labels = useLookup(model, getModelLabels);
  const targets =
    imagesInfo.kind === 'ok' && imagesInfo.value.kind === 'export'
      ? (imagesInfo.value.labels ?? [])
      : null;
  const modelLabels = labels.kind === 'ok' ? labels.value.labels : null;
  const targetsKey = targets ? targets.join('\n') : '\0';
  const lastTargets = useRef(targetsKey);
  useEffect(() => {
    // new model labels keep the rows' choices; a new target set prefills again by name
    const fresh = lastTargets.current !== targetsKey;
    lastTargets.current = targetsKey;
    if (!modelLabels) {
      setRows([]);
      return;
    }
    // a prefilled mapping waits until both lookups answered for the paths now shown
    const pending = pendingMapping.current;
    const settled =
      pending !== null &&
      imagesInfo.kind !== 'idle' &&
      imagesInfo.kind !== 'loading' &&
      imagesInfo.path === (pending.images ?? images).trim() &&
      labels.kind === 'ok' &&
      labels.path === (pending.model ?? model).trim();
    if (pending && !settled) {
      return;
    }
    pendingMapping.current = null;
    setRows(previous =>
      mergeMapping(
        pending?.rows ?? (fresh ? [] : previous),
        modelLabels,
        targets
      )
    );
  }, [
    modelLabels?.join('\n'),
    targetsKey,
    imagesInfo,
    labels,
    current?.serial
  ]);

  const check = checkMapping(rows, targets);
  const maxDet = Number(maxDetections);
  const nPreviews = Number(previews);
  const blocked: string | null = !images.trim()
    ? trans.__('Choose the images to annotate')
    : imagesInfo.kind === 'error'
      ? trans.__('The images cannot be used: %1', imagesInfo.message)
      : !model.trim()
        ? trans.__('Choose a model')
        : labels.kind === 'error'
          ? trans.__('The model cannot be used: %1', labels.message)
          : imagesInfo.kind !== 'ok' || labels.kind !== 'ok'
            ? trans.__('Looking at the images and the model…')
            : check.unknown.length > 0
              ? trans._n(
                  'The export has no label for %2: change the target, or drop it',
                  'The export has no labels for %2: change the targets, or drop them',
                  check.unknown.length,
                  check.unknown.join(', ')
                )
              : check.kept === 0
                ? trans.__(
                    'Every model label is dropped: nothing would be written'
                  )
                : !Number.isInteger(maxDet) || maxDet < 1
                  ? trans.__(
                      'Max detections: give a whole number of at least 1'
                    )
                  : !Number.isInteger(nPreviews) || nPreviews < 0
                    ? trans.__('Previews: give a whole number (0 for none)')
                    : null;

  const start = async () => {
    if (blocked) {
      return;
    }
    const spec: AnnotateSpec = {
      kind: 'annotate',
      images: images.trim(),
      model: model.trim(),
      format: format as AnnotateSpec['format'],
      threshold,
      max_detections: maxDet,
      mapping: mappingSpec(rows),
      keep_existing: targets !== null && keepExisting,
      preview: nPreviews,
      device: device || 'auto'
    };
    if (output.trim()) {
      spec.output = output.trim();
    }
    setBusy(true);
    setProblem(null);
    try {
      const job = await ctx.model.start(spec);
      ctx.openJob(job.id);
    } catch (error) {
      const message = (error as Error)?.message || String(error);
      const field = /^images\b/.test(message)
        ? 'images'
        : /^model\b/.test(message)
          ? 'model'
          : /^output\b/.test(message) ||
              (error instanceof ApiRequestError && error.status === 409)
            ? 'output'
            : 'general';
      setProblem({ field, message });
    } finally {
      setBusy(false);
    }
  };

  const fieldProblem = (field: 'images' | 'model' | 'output') =>
    problem?.field === field ? problem.message : null;
  return (
    <div className="jp-CvatTrain-annotate">
      <h2>{trans.__('Auto-annotate')}</h2>
      <p className="jp-CvatTrain-dim">
        {trans.__(
          'Pre-annotate images with a trained model: the result is a zip CVAT imports (Upload annotations), with a preview of the first images.'
        )}
      </p>
      <PathField
        id="jp-CvatTrain-annotateImages"
        label={trans.__('Images (a folder, a zip of images, or a CVAT export)')}
        value={images}
        onChange={setImages}
        ctx={ctx}
        placeholder="data/new-batch"
        invalid={
          fieldProblem('images') ??
          (imagesInfo.kind === 'error' ? imagesInfo.message : null)
        }
      />
      <div className="jp-CvatTrain-lookup" aria-live="polite">
        {imagesInfo.kind === 'loading'
          ? trans.__('Looking…')
          : imagesInfo.kind === 'ok'
            ? imagesSummary(imagesInfo.value, trans)
            : ''}
      </div>
      <div className="jp-CvatTrain-field">
        <label htmlFor="jp-CvatTrain-annotateModelChoice">
          {trans.__('Model')}
        </label>
        <select
          id="jp-CvatTrain-annotateModelChoice"
          className="jp-mod-styled"
          value={choice}
          onChange={e => setChoice(e.target.value)}
        >
          <option value="">{trans.__('— choose a model —')}</option>
          {models.map(m => (
            <option key={m.path} value={m.path}>
              {m.label}
            </option>
          ))}
          <option value={OTHER}>{trans.__('Another model folder…')}</option>
        </select>
      </div>
      {choice === OTHER ? (
        <PathField
          id="jp-CvatTrain-annotateModel"
          label={trans.__('Model folder (with model.pt and classes.csv)')}
          value={modelPath}
          onChange={setModelPath}
          ctx={ctx}
          placeholder="cvat-train-runs/<job>/output/model"
          invalid={
            fieldProblem('model') ??
            (labels.kind === 'error' ? labels.message : null)
          }
        />
      ) : labels.kind === 'error' || fieldProblem('model') ? (
        <div className="jp-CvatTrain-fieldError" role="alert">
          {fieldProblem('model') ??
            (labels.kind === 'error' ? labels.message : '')}
        </div>
      ) : null}
      <div className="jp-CvatTrain-lookup" aria-live="polite">
        {labels.kind === 'loading'
          ? trans.__('Reading the model labels…')
          : labels.kind === 'ok'
            ? trans._n(
                'The model has %1 label',
                'The model has %1 labels',
                labels.value.labels.length
              )
            : ''}
      </div>
      <div className="jp-CvatTrain-annotateGrid">
        <div className="jp-CvatTrain-field">
          <label htmlFor="jp-CvatTrain-annotateThreshold">
            {trans.__('Confidence threshold')}{' '}
            <output
              className="jp-CvatTrain-thresholdValue"
              htmlFor="jp-CvatTrain-annotateThreshold"
            >
              {threshold.toFixed(2)}
            </output>
          </label>
          <input
            id="jp-CvatTrain-annotateThreshold"
            type="range"
            min={0}
            max={1}
            step={0.05}
            value={threshold}
            aria-valuetext={threshold.toFixed(2)}
            onChange={e => setThreshold(Number(e.target.value))}
          />
        </div>
        <div className="jp-CvatTrain-field">
          <label htmlFor="jp-CvatTrain-annotateMaxDet">
            {trans.__('Max detections per image')}
          </label>
          <input
            id="jp-CvatTrain-annotateMaxDet"
            className="jp-mod-styled jp-CvatTrain-input"
            type="number"
            min={1}
            value={maxDetections}
            onChange={e => setMaxDetections(e.target.value)}
          />
        </div>
        <div className="jp-CvatTrain-field">
          <label htmlFor="jp-CvatTrain-annotateFormat">
            {trans.__('Output format')}
          </label>
          <select
            id="jp-CvatTrain-annotateFormat"
            className="jp-mod-styled"
            value={format}
            onChange={e => setFormat(e.target.value)}
          >
            {FORMATS.map(([id, name]) => (
              <option key={id} value={id}>
                {name}
              </option>
            ))}
          </select>
        </div>
        <div className="jp-CvatTrain-field">
          <label htmlFor="jp-CvatTrain-annotatePreview">
            {trans.__('Preview images')}
          </label>
          <input
            id="jp-CvatTrain-annotatePreview"
            className="jp-mod-styled jp-CvatTrain-input"
            type="number"
            min={0}
            value={previews}
            onChange={e => setPreviews(e.target.value)}
          />
        </div>
        <div className="jp-CvatTrain-field">
          <label htmlFor="jp-CvatTrain-annotateDevice">
            {trans.__('Device')}
          </label>
          <select
            id="jp-CvatTrain-annotateDevice"
            className="jp-mod-styled"
            value={device}
            onChange={e => setDevice(e.target.value)}
          >
            {(
              devices?.devices ?? [
                { id: 'auto', name: 'auto' },
                { id: 'cpu', name: 'CPU' },
                { id: 'cuda', name: 'GPU (CUDA)' }
              ]
            ).map(d => (
              <option key={d.id} value={d.id} title={d.name}>
                {d.id.startsWith('cuda:')
                  ? `${d.id} · ${d.name}`
                  : d.id === 'auto'
                    ? 'auto'
                    : d.name}
              </option>
            ))}
            {device &&
            !(devices?.devices ?? []).some(d => d.id === device) &&
            !(devices === null && ['auto', 'cpu', 'cuda'].includes(device)) ? (
              <option value={device}>{device}</option>
            ) : null}
          </select>
          {devices?.note ? (
            <div className="jp-CvatTrain-dim">{devices.note}</div>
          ) : null}
        </div>
        <div className="jp-CvatTrain-field jp-CvatTrain-annotateOutputField">
          <label htmlFor="jp-CvatTrain-annotateOutput">
            {trans.__('Output zip (optional)')}
          </label>
          <input
            id="jp-CvatTrain-annotateOutput"
            className="jp-mod-styled jp-CvatTrain-input"
            value={output}
            placeholder={trans.__("the job's output/annotations.zip")}
            spellCheck={false}
            aria-invalid={fieldProblem('output') ? true : undefined}
            onChange={e => setOutput(e.target.value)}
          />
          {fieldProblem('output') ? (
            <div className="jp-CvatTrain-fieldError" role="alert">
              {fieldProblem('output')}
            </div>
          ) : null}
        </div>
      </div>
      <label
        className="jp-CvatTrain-check"
        title={
          targets
            ? trans.__(
                "Keep the export's own annotations beside the model's (CVAT's “clean previous annotations” off)"
              )
            : trans.__('Only a CVAT export has annotations to keep')
        }
      >
        <input
          id="jp-CvatTrain-annotateKeep"
          type="checkbox"
          checked={targets !== null && keepExisting}
          disabled={targets === null}
          onChange={e => setKeepExisting(e.target.checked)}
        />{' '}
        {trans.__("Keep the export's existing annotations")}
      </label>
      {rows.length > 0 ? (
        <>
          <MappingTable
            rows={rows}
            targets={targets}
            onChange={setRows}
            ctx={ctx}
          />
          <div className="jp-CvatTrain-mappingNotes" aria-live="polite">
            {check.dropped.length > 0 ? (
              <div className="jp-CvatTrain-dim">
                {trans.__('Dropped model labels: %1', check.dropped.join(', '))}
              </div>
            ) : null}
            {check.unmappedTargets.length > 0 ? (
              <div className="jp-CvatTrain-dim">
                {trans.__(
                  'Export labels no model label maps to: %1',
                  check.unmappedTargets.join(', ')
                )}
              </div>
            ) : null}
          </div>
        </>
      ) : null}
      <div className="jp-CvatTrain-actions">
        <button
          className="jp-mod-styled jp-mod-accept jp-CvatTrain-annotateStart"
          disabled={busy || blocked !== null}
          title={blocked ?? trans.__('Start the annotate job')}
          onClick={() => void start()}
        >
          {busy ? trans.__('Starting…') : trans.__('Start auto-annotation')}
        </button>
      </div>
      {blocked &&
      images.trim() &&
      model.trim() &&
      imagesInfo.kind !== 'error' &&
      labels.kind !== 'error' ? (
        <div
          className={
            imagesInfo.kind === 'ok' && labels.kind === 'ok'
              ? 'jp-CvatTrain-blocked'
              : 'jp-CvatTrain-dim'
          }
        >
          {blocked}
        </div>
      ) : null}
      {problem?.field === 'general' ? (
        <div className="jp-CvatTrain-error" role="alert">
          {problem.message}
        </div>
      ) : null}
    </div>
  );
}

class AnnotateBody extends ReactWidget {
  constructor(
    private _ctx: IPanelContext,
    private _request: AnnotateRequest
  ) {
    super();
    this.addClass('jp-CvatTrain-annotateBody');
  }
  protected render(): JSX.Element {
    return <AnnotateForm ctx={this._ctx} request={this._request} />;
  }
}

/** The Auto-annotate tab's id (one tab; commands prefill it). */
export const ANNOTATE_ID = 'jp-CvatTrain-annotate';

/** The Auto-annotate tab. */
export class AnnotateDialog extends MainAreaWidget<AnnotateBody> {
  constructor(ctx: IPanelContext, request: AnnotateRequest) {
    super({ content: new AnnotateBody(ctx, request) });
    this.id = ANNOTATE_ID;
    this.addClass('jp-CvatTrain-annotateTab');
    this.title.label = ctx.trans.__('Auto-annotate');
    this.title.icon = cvatTrainIcon;
    this.title.closable = true;
  }
}
