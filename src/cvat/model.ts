/**
 * The CVAT section's state: the connection test (`GET cvat/connection`, made with the
 * Jupyter server's environment: CVAT_HOST, CVAT_ACCESS_TOKEN, ...), and three forms that
 * each start a job: pull a task's export (`cvat-pull`), push an annotate job's result or
 * an annotations zip to a task (`cvat-push`), and auto-annotate a task with a trained
 * model folder (`cvat-auto-annotate`).
 *
 * The spec builders are pure functions (tested with jest): they check what the browser
 * can check (a task id, a path given, a threshold in [0, 1]) and say which field is
 * wrong; what only the server knows (the path exists, the model folder has classes.csv,
 * the output exists) comes back as its 400/404/409 message, put at the field it names.
 * No host, token or password passes through here: the server reads them from its
 * environment.
 */
import { ISignal, Signal } from '@lumino/signaling';

import {
  ApiRequestError,
  getCvatConnection,
  type CvatAutoAnnotateSpec,
  type CvatConnection,
  type CvatPullSpec,
  type CvatPushSpec,
  type Job
} from '../api';
import type { JobsModel } from '../jobs/model';

/** The job kinds of this section. */
export const CVAT_KINDS: readonly string[] = [
  'cvat-pull',
  'cvat-push',
  'cvat-auto-annotate'
];

/**
 * The export formats a pull offers: those our validation reads (datasets.formats), by
 * our short name (the server maps each to CVAT's exporter name).
 */
export const PULL_FORMATS: readonly { id: string; label: string }[] = [
  { id: 'cvat', label: 'CVAT for images 1.1' },
  { id: 'coco', label: 'COCO 1.0' },
  { id: 'yolo', label: 'YOLO 1.1' },
  { id: 'voc', label: 'PASCAL VOC 1.1' },
  { id: 'labelme', label: 'LabelMe 3.0' },
  { id: 'mot', label: 'MOT 1.1' },
  { id: 'tfrecord', label: 'TFRecord 1.0' }
];

export interface IPullForm {
  taskId: string;
  format: string;
  /** A new .zip under the server root; empty: `cvat-task-<id>.zip` at the root. */
  output: string;
  overwrite: boolean;
}

export interface IPushForm {
  taskId: string;
  /** An annotate job's folder or an annotations zip, under the server root. */
  source: string;
  replace: boolean;
}

export interface IAutoAnnotateForm {
  taskId: string;
  /** A trained model folder (output/model of a train job). */
  model: string;
  /** Empty: the model's default. */
  threshold: string;
  replace: boolean;
}

/** Field name -> what is wrong with it (empty when nothing is). */
export type FieldErrors = Record<string, string>;

/** A spec, or the fields that keep it from being one. */
export type Built<T> =
  { spec: T; errors?: undefined } | { spec?: undefined; errors: FieldErrors };

/** A CVAT task id typed in a field: the number, or why it is not one. */
export function parseTaskId(text: string): number | string {
  const t = text.trim();
  if (!t) {
    return 'Give the CVAT task id (the number in the task’s URL, /tasks/<id>).';
  }
  if (!/^\d+$/.test(t) || Number(t) < 1 || !Number.isSafeInteger(Number(t))) {
    return `"${t}" is not a task id: a whole number >= 1 (the number in /tasks/<id>).`;
  }
  return Number(t);
}

/** The default output of a pull of task `taskId`. */
export function defaultPullOutput(taskId: number): string {
  return `cvat-task-${taskId}.zip`;
}

/** The `cvat-pull` spec of the form, or its field errors. */
export function pullSpec(form: IPullForm): Built<CvatPullSpec> {
  const errors: FieldErrors = {};
  const task = parseTaskId(form.taskId);
  if (typeof task === 'string') {
    errors.task_id = task;
  }
  const output =
    form.output.trim() ||
    (typeof task === 'number' ? defaultPullOutput(task) : '');
  if (output && !output.toLowerCase().endsWith('.zip')) {
    errors.output = `"${output}" must name a .zip file (the export is a zip).`;
  }
  if (!PULL_FORMATS.some(f => f.id === form.format)) {
    errors.format = `Choose an export format (${PULL_FORMATS.map(f => f.id).join(', ')}).`;
  }
  if (Object.keys(errors).length > 0) {
    return { errors };
  }
  return {
    spec: {
      kind: 'cvat-pull',
      task_id: task as number,
      output,
      format: form.format,
      include_images: true,
      overwrite: form.overwrite
    }
  };
}

/** The `cvat-push` spec of the form, or its field errors. */
export function pushSpec(form: IPushForm): Built<CvatPushSpec> {
  const errors: FieldErrors = {};
  const task = parseTaskId(form.taskId);
  if (typeof task === 'string') {
    errors.task_id = task;
  }
  if (!form.source.trim()) {
    errors.source =
      'Give what to send: an annotate job’s folder or an annotations zip under the server root.';
  }
  if (Object.keys(errors).length > 0) {
    return { errors };
  }
  return {
    spec: {
      kind: 'cvat-push',
      task_id: task as number,
      source: form.source.trim(),
      replace: form.replace
    }
  };
}

/** The `cvat-auto-annotate` spec of the form, or its field errors. */
export function autoAnnotateSpec(
  form: IAutoAnnotateForm
): Built<CvatAutoAnnotateSpec> {
  const errors: FieldErrors = {};
  const task = parseTaskId(form.taskId);
  if (typeof task === 'string') {
    errors.task_id = task;
  }
  if (!form.model.trim()) {
    errors.model =
      'Choose a trained model (a finished train job, or a model folder with classes.csv).';
  }
  let threshold: number | null = null;
  const t = form.threshold.trim();
  if (t) {
    const value = Number(t);
    if (!Number.isFinite(value) || value < 0 || value > 1) {
      errors.threshold = `"${t}" is not a confidence threshold: a number from 0 to 1, or empty for the model’s default.`;
    } else {
      threshold = value;
    }
  }
  if (Object.keys(errors).length > 0) {
    return { errors };
  }
  return {
    spec: {
      kind: 'cvat-auto-annotate',
      task_id: task as number,
      model: form.model.trim(),
      threshold,
      replace: form.replace
    }
  };
}

/**
 * The field a server refusal of POST jobs is about: its message starts with the spec
 * field's name ("task_id: ...", "output: ..."), and a 409 of a pull is its output that
 * exists; '' (the form as a whole) when it names none of `fields`.
 */
export function fieldOfError(
  error: unknown,
  fields: readonly string[]
): { field: string; message: string } {
  const message =
    error instanceof Error ? error.message || String(error) : String(error);
  const named = /^([a-z_]+):/.exec(message)?.[1];
  if (named && fields.includes(named)) {
    return { field: named, message };
  }
  if (
    error instanceof ApiRequestError &&
    error.status === 409 &&
    fields.includes('output')
  ) {
    return { field: 'output', message };
  }
  return { field: '', message };
}

type FormName = 'pull' | 'push' | 'autoAnnotate';

const FIELDS: Record<FormName, readonly string[]> = {
  pull: ['task_id', 'output', 'format'],
  push: ['task_id', 'source'],
  autoAnnotate: ['task_id', 'model', 'threshold']
};

export class CvatModel {
  constructor(private _jobs: JobsModel) {}

  /** Emitted when anything shown changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  // -- connection test ------------------------------------------------------------------

  get connection(): CvatConnection | null {
    return this._connection;
  }
  get checking(): boolean {
    return this._checking;
  }
  /** Why the test itself failed (the Jupyter server did not answer), '' when it did. */
  get checkProblem(): string {
    return this._checkProblem;
  }

  /** GET cvat/connection. */
  async testConnection(): Promise<void> {
    this._checking = true;
    this._checkProblem = '';
    this._connection = null;
    this._changed.emit();
    try {
      this._connection = await getCvatConnection();
    } catch (error) {
      this._checkProblem = (error as Error).message || String(error);
    } finally {
      this._checking = false;
      this._changed.emit();
    }
  }

  // -- forms --------------------------------------------------------------------------

  get pull(): Readonly<IPullForm> {
    return this._pull;
  }
  get push(): Readonly<IPushForm> {
    return this._push;
  }
  get autoAnnotate(): Readonly<IAutoAnnotateForm> {
    return this._aa;
  }

  setPull(fields: Partial<IPullForm>): void {
    this._pull = { ...this._pull, ...fields };
    this._clear('pull');
  }
  setPush(fields: Partial<IPushForm>): void {
    this._push = { ...this._push, ...fields };
    this._clear('push');
  }
  setAutoAnnotate(fields: Partial<IAutoAnnotateForm>): void {
    this._aa = { ...this._aa, ...fields };
    this._clear('autoAnnotate');
  }

  /** The field errors of a form ('' key: the form as a whole). */
  errors(form: FormName): FieldErrors {
    return this._errors[form];
  }

  /** Which form is being started ('' when none). */
  get starting(): FormName | '' {
    return this._starting;
  }

  /**
   * Which form the section shows open: '' before the user chose (the pull form), 'none'
   * after they folded the open one.
   */
  get focus(): FormName | '' | 'none' {
    return this._focus;
  }

  /** The user unfolded (`open`) or folded a form. */
  toggled(form: FormName, open: boolean): void {
    const current = this._focus === '' ? 'pull' : this._focus;
    if (open && current !== form) {
      this._focus = form;
      this._changed.emit();
    } else if (!open && current === form) {
      this._focus = 'none';
      this._changed.emit();
    }
  }

  /** Prefill the push form with `source` (an annotate job's folder) and show it. */
  prefillPush(source: string): void {
    this._push = { ...this._push, source };
    this._errors.push = {};
    this._focus = 'push';
    this._changed.emit();
  }

  startPull(): Promise<Job | null> {
    return this._start('pull', pullSpec(this._pull));
  }
  startPush(): Promise<Job | null> {
    return this._start('push', pushSpec(this._push));
  }
  startAutoAnnotate(): Promise<Job | null> {
    return this._start('autoAnnotate', autoAnnotateSpec(this._aa));
  }

  dispose(): void {
    Signal.clearData(this);
  }

  private async _start(
    form: FormName,
    built: Built<CvatPullSpec | CvatPushSpec | CvatAutoAnnotateSpec>
  ): Promise<Job | null> {
    if (built.errors) {
      this._errors[form] = built.errors;
      this._changed.emit();
      return null;
    }
    this._starting = form;
    this._errors[form] = {};
    this._changed.emit();
    try {
      return await this._jobs.start(built.spec);
    } catch (error) {
      const { field, message } = fieldOfError(error, FIELDS[form]);
      this._errors[form] = { [field]: message };
      return null;
    } finally {
      this._starting = '';
      this._changed.emit();
    }
  }

  private _clear(form: FormName): void {
    this._errors[form] = {};
    this._changed.emit();
  }

  private _connection: CvatConnection | null = null;
  private _checking = false;
  private _checkProblem = '';
  private _pull: IPullForm = {
    taskId: '',
    format: 'cvat',
    output: '',
    overwrite: false
  };
  private _push: IPushForm = { taskId: '', source: '', replace: false };
  private _aa: IAutoAnnotateForm = {
    taskId: '',
    model: '',
    threshold: '',
    replace: false
  };
  private _errors: Record<FormName, FieldErrors> = {
    pull: {},
    push: {},
    autoAnnotate: {}
  };
  private _starting: FormName | '' = '';
  private _focus: FormName | '' | 'none' = '';
  private _changed = new Signal<this, void>(this);
}
