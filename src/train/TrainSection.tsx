/**
 * The sidebar's Train section: the model catalog (GET templates) as a list; the chosen
 * template's form generated from its parameters (FormComponent); the export, a checkpoint
 * to start from (an earlier train job's model, or a path), where it runs (this machine or
 * the server's Ray cluster, offered only when it has one: GET backends), device and GPUs; "Start
 * training" answers at once: the server's 400/404 at the field it concerns, a 422 with the
 * validation report inline, success opens the job view.
 */
import {
  FormComponent,
  type IFormComponentProps
} from '@jupyterlab/ui-components';
import type { ReadonlyJSONObject } from '@lumino/coreutils';
import validatorAjv8 from '@rjsf/validator-ajv8';
import React, { useEffect, useMemo, useState } from 'react';

import {
  ApiRequestError,
  listBackends,
  listDevices,
  listTemplates,
  type BackendList,
  type DeviceList,
  type Template,
  type TrainSpec,
  type ValidationReport
} from '../api';
import { useSignal } from '../components/hooks';
import { Section } from '../components/Section';
import { PathField } from '../datasets/DatasetsSection';
import { ReportView } from '../datasets/ReportView';
import { BackendChoice } from './backend';
import { BrokenTemplates } from './broken';
import type { IPanelContext } from '../panel/context';
import {
  fieldOfError,
  formToParameters,
  parameterErrorField,
  parametersToFormData,
  templateToForm
} from './form';

/** The state DB key of the form's draft (what was filled in, kept across reloads). */
const DRAFT_KEY = 'train-draft';
/** Milliseconds of quiet before the draft is saved. */
const DRAFT_SAVE_DELAY = 400;

/** A GPU's memory, e.g. "141 GB". */
function gigabytes(bytes: number | undefined): string {
  return bytes ? `${Math.round(bytes / 1e9)} GB` : '';
}

type Catalog =
  | { kind: 'loading' }
  | { kind: 'ok'; templates: Template[]; broken: string[] }
  | { kind: 'error'; message: string };

interface IErrors {
  general?: string;
  dataset?: string;
  checkpoint?: string;
  template?: string;
  device?: string;
  form?: Record<string, { __errors: string[] }>;
  report?: ValidationReport;
}

/** Earlier train jobs' trained models, newest first: [label, path]. */
function trainedModels(ctx: IPanelContext): [string, string][] {
  const out: [string, string][] = [];
  for (const job of ctx.model.jobs) {
    if (job.kind !== 'train' || job.state !== 'succeeded') {
      continue;
    }
    const template = String(job.spec?.template ?? '');
    const dataset = String(job.spec?.dataset ?? '');
    const map =
      typeof job.outputs.map === 'number'
        ? ` · mAP ${job.outputs.map.toFixed(3)}`
        : '';
    out.push([
      `${template} · ${dataset}${map} (${job.id})`,
      `${job.dir}/output/model`
    ]);
  }
  return out;
}

function Train(props: { ctx: IPanelContext }): JSX.Element {
  const { ctx } = props;
  const { state, trans } = ctx;
  useSignal(state.changed);
  useSignal(ctx.model.changed);
  const [catalog, setCatalog] = useState<Catalog>({ kind: 'loading' });
  const [name, setName] = useState<string>('');
  const [formData, setFormData] = useState<Record<string, unknown>>({});
  const [checkpoint, setCheckpoint] = useState('');
  const [resume, setResume] = useState(false);
  const [epochs, setEpochs] = useState('');
  const [device, setDevice] = useState(ctx.settings().defaultDevice || 'auto');
  const [gpus, setGpus] = useState('');
  const [errors, setErrors] = useState<IErrors>({});
  const [busy, setBusy] = useState(false);
  const [seenPrefill, setSeenPrefill] = useState(0);
  const [devices, setDevices] = useState<DeviceList | null>(null);
  const [backends, setBackends] = useState<BackendList | null>(null);
  // '' = the server's default backend (a job then has no "backend" in its spec)
  const [backend, setBackend] = useState('');
  // the draft is saved only once the saved one was looked at, so defaults never overwrite it
  const [draftLooked, setDraftLooked] = useState(!ctx.store);

  const load = () => {
    setCatalog({ kind: 'loading' });
    listTemplates()
      .then(reply => {
        setCatalog({
          kind: 'ok',
          templates: reply.templates,
          broken: reply.broken ?? []
        });
        setName(current => current || reply.templates[0]?.name || '');
      })
      .catch((error: Error) =>
        setCatalog({ kind: 'error', message: error.message })
      );
  };
  useEffect(load, []);
  useEffect(() => {
    listDevices()
      .then(setDevices)
      .catch(() => setDevices(null)); // the plain choices stay; the server says no at start
    listBackends()
      .then(setBackends)
      .catch(() => setBackends(null)); // no choice shown: jobs go where the server sends them
  }, []);

  const templates = catalog.kind === 'ok' ? catalog.templates : [];
  const template = templates.find(t => t.name === name) ?? null;
  const form = useMemo(
    () => (template ? templateToForm(template) : null),
    [template]
  );

  // a new template: its defaults (a prefill below may then overwrite them)
  useEffect(() => {
    setFormData(form ? { ...form.formData } : {});
    setErrors({});
  }, [form]);

  // the saved draft, once the catalog is there, unless something already asked for a prefill
  useEffect(() => {
    if (catalog.kind !== 'ok' || draftLooked || !ctx.store) {
      return;
    }
    ctx.store
      .fetch(DRAFT_KEY)
      .then(draft => {
        const spec = draft as Partial<TrainSpec> | undefined;
        if (spec && typeof spec === 'object' && !state.prefill) {
          state.prefillTrain(spec, 'draft');
        }
      })
      .catch(() => undefined)
      .finally(() => setDraftLooked(true));
  }, [catalog.kind]);

  // a prefill from Datasets, Run again, Fine-tune, Resume or the saved draft
  const prefill = state.prefill;
  useEffect(() => {
    if (!prefill || prefill.serial === seenPrefill || catalog.kind !== 'ok') {
      return;
    }
    setSeenPrefill(prefill.serial);
    const spec = prefill.spec;
    // a saved draft arrives asynchronously: it never replaces a path typed meanwhile
    // (the Datasets section shares the field and is usable before the catalog loads)
    const typed = prefill.reason === 'draft' && state.datasetPath.trim() !== '';
    if (spec.dataset && !typed) {
      state.datasetPath = String(spec.dataset);
    }
    if (prefill.reason === 'dataset') {
      return;
    }
    const wanted = templates.find(t => t.name === spec.template);
    const chosen = wanted ?? template;
    if (wanted) {
      setName(wanted.name);
    }
    const chosenForm = chosen ? templateToForm(chosen) : null;
    const values = chosenForm
      ? parametersToFormData(chosenForm, spec.parameters)
      : {};
    setTimeout(() => setFormData(values), 0); // after the template's own defaults
    setCheckpoint(spec.checkpoint ? String(spec.checkpoint) : '');
    setResume(Boolean(spec.resume));
    setEpochs(
      spec.epochs !== undefined && spec.epochs !== null
        ? String(spec.epochs)
        : ''
    );
    setDevice(
      spec.device ? String(spec.device) : ctx.settings().defaultDevice || 'auto'
    );
    setGpus(spec.gpus ? String(spec.gpus) : '');
    setBackend(spec.backend ? String(spec.backend) : '');
    setErrors({});
  }, [prefill?.serial, catalog.kind]);

  /** The spec the form describes now, or null before a template is chosen. */
  const currentSpec = (): TrainSpec | null => {
    if (!template || !form) {
      return null;
    }
    const spec: TrainSpec = {
      kind: 'train',
      template: template.name,
      dataset: state.datasetPath.trim(),
      parameters: formToParameters(form, formData),
      checkpoint: checkpoint.trim() || null,
      device: device || 'auto'
    };
    if (resume && checkpoint.trim()) {
      spec.resume = true;
    }
    if (epochs.trim()) {
      spec.epochs = epochs.trim();
    }
    if (gpus.trim()) {
      spec.gpus = Number(gpus);
    }
    if (backend) {
      spec.backend = backend as TrainSpec['backend'];
    }
    return spec;
  };

  // save the draft a moment after the last change
  useEffect(() => {
    const spec = draftLooked && ctx.store ? currentSpec() : null;
    if (!spec) {
      return;
    }
    const timer = setTimeout(
      () => void ctx.store?.save(DRAFT_KEY, spec).catch(() => undefined),
      DRAFT_SAVE_DELAY
    );
    return () => clearTimeout(timer);
  }, [
    draftLooked,
    name,
    formData,
    checkpoint,
    resume,
    epochs,
    device,
    gpus,
    backend,
    state.datasetPath
  ]);

  const start = async () => {
    const spec = currentSpec();
    if (!spec || !form) {
      return;
    }
    if (!spec.dataset) {
      setErrors({
        dataset: trans.__(
          'Give the CVAT export to train on (Datasets above, or type its path).'
        )
      });
      return;
    }
    setBusy(true);
    setErrors({});
    try {
      const job = await ctx.model.start(spec);
      ctx.openJob(job.id);
    } catch (error) {
      setErrors(errorsOf(error, form));
    } finally {
      setBusy(false);
    }
  };

  const errorsOf = (error: unknown, f: NonNullable<typeof form>): IErrors => {
    if (!(error instanceof ApiRequestError)) {
      return { general: (error as Error)?.message || String(error) };
    }
    const message = error.message;
    if (error.status === 422 && error.reply?.details) {
      return {
        dataset: message,
        report: error.reply.details as unknown as ValidationReport
      };
    }
    const field = fieldOfError(message, [
      'dataset',
      'checkpoint',
      'template',
      'parameters',
      'device',
      'epochs',
      'gpus'
    ]);
    if (field === 'parameters' || field === 'epochs') {
      const target =
        field === 'epochs' ? null : parameterErrorField(message, f);
      if (target) {
        return {
          form: { [target]: { __errors: [message] } },
          general: message
        };
      }
    }
    if (
      field === 'dataset' ||
      field === 'checkpoint' ||
      field === 'template' ||
      field === 'device'
    ) {
      return { [field]: message };
    }
    return { general: message };
  };

  // focus goes to the first field the server's answer is about
  useEffect(() => {
    const formField = Object.keys(errors.form ?? {})[0];
    const id = errors.dataset
      ? 'jp-CvatTrain-trainDataset'
      : formField
        ? `root_${formField}`
        : errors.checkpoint
          ? 'jp-CvatTrain-checkpoint'
          : null;
    if (id) {
      (document.getElementById(id) as HTMLElement | null)?.focus();
    }
  }, [errors]);

  const models = trainedModels(ctx);
  const checkpointIsListed = models.some(([, path]) => path === checkpoint);
  return (
    <div className="jp-CvatTrain-section jp-CvatTrain-train">
      {catalog.kind === 'loading' ? (
        <div className="jp-CvatTrain-empty">
          {trans.__('Loading the model catalog…')}
        </div>
      ) : null}
      {catalog.kind === 'error' ? (
        <div className="jp-CvatTrain-error" role="alert">
          {trans.__(
            'The model catalog could not be loaded: %1',
            catalog.message
          )}{' '}
          <button className="jp-CvatTrain-link" onClick={load}>
            {trans.__('Try again')}
          </button>
        </div>
      ) : null}
      {templates.length > 0 ? (
        <fieldset className="jp-CvatTrain-catalog">
          <legend>{trans.__('Model')}</legend>
          <div
            role="radiogroup"
            aria-label={trans.__('Model template')}
            className="jp-CvatTrain-templates"
          >
            {templates.map((t, i) => (
              <label
                key={t.name}
                className={
                  'jp-CvatTrain-template' +
                  (t.name === name ? ' jp-mod-selected' : '')
                }
                data-template={t.name}
              >
                <input
                  type="radio"
                  name="jp-CvatTrain-template"
                  value={t.name}
                  checked={t.name === name}
                  onChange={() => setName(t.name)}
                />
                <span className="jp-CvatTrain-templateName">
                  {t.displayName || t.name}
                  {i === 0 ? (
                    <span className="jp-CvatTrain-badge">
                      {trans.__('default')}
                    </span>
                  ) : null}
                </span>
                <span className="jp-CvatTrain-templateMeta">
                  {[t.task, t.framework, t.name].filter(Boolean).join(' · ')}
                </span>
                {t.name === name && t.description ? (
                  <span className="jp-CvatTrain-templateDesc">
                    {t.description}
                  </span>
                ) : null}
              </label>
            ))}
          </div>
          {errors.template ? (
            <div className="jp-CvatTrain-fieldError" role="alert">
              {errors.template}
            </div>
          ) : null}
        </fieldset>
      ) : null}
      {catalog.kind === 'ok' ? (
        <BrokenTemplates broken={catalog.broken} trans={trans} />
      ) : null}
      {template && form ? (
        <>
          <PathField
            id="jp-CvatTrain-trainDataset"
            label={trans.__('CVAT export to train on')}
            value={state.datasetPath}
            placeholder="data/export.zip"
            onChange={value => (state.datasetPath = value)}
            ctx={ctx}
            invalid={errors.dataset}
          />
          {errors.report ? (
            <ReportView report={errors.report} trans={trans} />
          ) : null}
          <div className="jp-CvatTrain-form" data-template={template.name}>
            <FormComponent
              schema={form.schema as IFormComponentProps['schema']}
              uiSchema={form.uiSchema}
              formData={formData as ReadonlyJSONObject}
              validator={
                validatorAjv8 as unknown as IFormComponentProps['validator']
              }
              onChange={e =>
                setFormData((e.formData ?? {}) as Record<string, unknown>)
              }
              extraErrors={
                (errors.form ?? {}) as IFormComponentProps['extraErrors']
              }
              showErrorList={false}
              liveValidate={false}
              compact={false}
              showModifiedFromDefault={true}
            />
          </div>
          <HyperparameterKeys template={template} ctx={ctx} />
          <div className="jp-CvatTrain-field">
            <label htmlFor="jp-CvatTrain-checkpoint">
              {trans.__('Start from')}
            </label>
            <select
              id="jp-CvatTrain-checkpointChoice"
              className="jp-mod-styled jp-CvatTrain-input"
              aria-label={trans.__('Start from')}
              value={
                checkpoint === ''
                  ? ''
                  : checkpointIsListed
                    ? checkpoint
                    : '__path__'
              }
              onChange={e => {
                const value = e.target.value;
                setResume(false);
                setCheckpoint(value === '__path__' ? checkpoint || ' ' : value);
              }}
            >
              <option
                value=""
                title={trans.__(
                  'pretrained: true loads the COCO weights; false trains from scratch'
                )}
              >
                {trans.__('Template weights (default)')}
              </option>
              {models.map(([label, path]) => (
                <option key={path} value={path}>
                  {trans.__('Fine-tune: %1', label)}
                </option>
              ))}
              <option value="__path__">
                {trans.__('Model or checkpoint path…')}
              </option>
            </select>
            {checkpoint !== '' && !checkpointIsListed ? (
              <input
                id="jp-CvatTrain-checkpoint"
                className="jp-mod-styled jp-CvatTrain-input"
                value={checkpoint.trim() === '' ? '' : checkpoint}
                placeholder="cvat-train-runs/JOB/output/model"
                aria-invalid={errors.checkpoint ? true : undefined}
                onChange={e => setCheckpoint(e.target.value || ' ')}
              />
            ) : null}
            {errors.checkpoint ? (
              <div
                id="jp-CvatTrain-checkpoint-error"
                className="jp-CvatTrain-fieldError"
                role="alert"
              >
                {errors.checkpoint}
              </div>
            ) : null}
            {checkpoint.trim() !== '' ? (
              <label className="jp-CvatTrain-check">
                <input
                  type="checkbox"
                  checked={resume}
                  onChange={e => setResume(e.target.checked)}
                />{' '}
                {trans.__(
                  'Resume that run (same optimizer and schedule) instead of fine-tuning'
                )}
              </label>
            ) : null}
            {resume ? (
              <label className="jp-CvatTrain-inline">
                {trans.__('Train until epoch')}{' '}
                <input
                  className="jp-mod-styled jp-CvatTrain-small"
                  inputMode="numeric"
                  value={epochs}
                  onChange={e => setEpochs(e.target.value)}
                  aria-label={trans.__('Train until epoch')}
                />
              </label>
            ) : null}
          </div>
          <BackendChoice
            backends={backends}
            value={backend}
            onChange={setBackend}
            trans={trans}
          />
          <div className="jp-CvatTrain-row">
            <label className="jp-CvatTrain-inline">
              {trans.__('Device')}{' '}
              <select
                className="jp-mod-styled"
                value={device}
                onChange={e => setDevice(e.target.value)}
                aria-label={trans.__('Device')}
              >
                <option
                  value="auto"
                  title={trans.__(
                    'a GPU when the server has one, else the CPU'
                  )}
                >
                  auto
                </option>
                <option value="cpu">cpu</option>
                {devices === null || devices.gpus > 0 ? (
                  <option
                    value="cuda"
                    title={trans.__(
                      'GPU 0, or as many GPUs as "GPUs" says (one process each)'
                    )}
                  >
                    cuda
                  </option>
                ) : null}
                {(devices?.devices ?? [])
                  .filter(d => d.id.startsWith('cuda:'))
                  .map(d => (
                    <option key={d.id} value={d.id}>
                      {[d.id, d.name, gigabytes(d.memory_bytes)]
                        .filter(Boolean)
                        .join(' · ')}
                    </option>
                  ))}
                {device &&
                !['auto', 'cpu', 'cuda'].includes(device) &&
                !devices?.devices.some(d => d.id === device) ? (
                  <option value={device}>{device}</option>
                ) : null}
              </select>
            </label>
            <label className="jp-CvatTrain-inline">
              {trans.__('GPUs')}{' '}
              <input
                className="jp-mod-styled jp-CvatTrain-small"
                inputMode="numeric"
                placeholder="1"
                value={gpus}
                disabled={device === 'cpu' || devices?.gpus === 0}
                title={
                  devices?.gpus
                    ? trans.__('1 to %1 on this server', devices.gpus)
                    : undefined
                }
                onChange={e => setGpus(e.target.value.replace(/[^0-9]/g, ''))}
                aria-label={trans.__('Number of GPUs')}
              />
            </label>
          </div>
          {devices?.note ? (
            <div className="jp-CvatTrain-dim jp-CvatTrain-deviceNote">
              {devices.note}
            </div>
          ) : null}
          {errors.device ? (
            <div className="jp-CvatTrain-fieldError" role="alert">
              {errors.device}
            </div>
          ) : null}
          {errors.general ? (
            <div className="jp-CvatTrain-error" role="alert">
              {errors.general}
            </div>
          ) : null}
          <div className="jp-CvatTrain-buttons">
            <button
              className="jp-mod-styled jp-mod-accept jp-CvatTrain-start"
              disabled={busy}
              aria-busy={busy}
              onClick={start}
            >
              {busy ? trans.__('Starting…') : trans.__('Start training')}
            </button>
          </div>
        </>
      ) : null}
    </div>
  );
}

/** The template's valid hyperparameter keys with their defaults and help, folded. */
function HyperparameterKeys(props: {
  template: Template;
  ctx: IPanelContext;
}): JSX.Element | null {
  const keys = Object.entries(props.template.hyperparameter_keys ?? {});
  const trans = props.ctx.trans;
  if (keys.length === 0) {
    return null;
  }
  return (
    <details className="jp-CvatTrain-keys">
      <summary>
        {trans.__('Valid hyperparameter keys (%1)', keys.length)}
      </summary>
      <dl>
        {keys.map(([key, info]) => (
          <React.Fragment key={key}>
            <dt>
              <code>{key}</code>{' '}
              <span className="jp-CvatTrain-dim">
                {info.type}
                {info.default !== null ? ` = ${String(info.default)}` : ''}
              </span>
            </dt>
            <dd>{info.help}</dd>
          </React.Fragment>
        ))}
      </dl>
    </details>
  );
}

/** The Train section as a widget of the sidebar's accordion. */
export class TrainSection extends Section {
  constructor(private _ctx: IPanelContext) {
    super(_ctx.trans.__('Train'), 'jp-CvatTrain-trainSection');
  }

  protected renderBody(): JSX.Element {
    return <Train ctx={this._ctx} />;
  }
}
