/**
 * The Sync section's state: the form (workspace folder, storage location, endpoint,
 * include/exclude, delete, checksum), the connection check, the preview (a dry-run sync
 * job whose plan the server serves by pages), starting a sync, and the recently used
 * folder/location pairs kept in the state DB.
 *
 * Credentials never pass through here: the server uses its own AWS credential chain,
 * and the check only says which identity that is.
 */
import { ISignal, Signal } from '@lumino/signaling';

import {
  ApiRequestError,
  checkStorage,
  getSyncPlan,
  type Job,
  type JobEvent,
  type StorageCheck,
  type SyncPlanPage,
  type SyncSpec
} from '../api';
import type { JobsModel } from '../jobs/model';
import { isFinal } from '../jobs/model';
import type { IPanelStore } from '../panel/context';

export type Direction = 'up' | 'down';

/** A folder/location pair as remembered. */
export interface ISyncPair {
  workspace: string;
  storage: string;
  endpointUrl: string;
}

export interface ISyncForm extends ISyncPair {
  /** Glob patterns, one per line or comma-separated. */
  include: string;
  exclude: string;
  deleteExtra: boolean;
  checksum: boolean;
}

/** The state-DB key of the recent pairs (below the plugin id). */
export const RECENT_KEY = 'sync:recent';
/** How many pairs are remembered. */
export const MAX_RECENT = 8;
/** Plan rows fetched for the preview table. */
export const PLAN_PAGE = 200;

/** Patterns typed in a field: split on new lines and commas, blanks dropped. */
export function splitPatterns(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map(p => p.trim())
    .filter(p => p.length > 0);
}

/** `n` bytes in words: 0 B, 1.5 kB, 12.3 MB, ... (decimal units, as the CLI prints). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) {
    return '—';
  }
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = n;
  let i = 0;
  while (value >= 1000 && i < units.length - 1) {
    value /= 1000;
    i += 1;
  }
  return i === 0 ? `${value} B` : `${value.toFixed(1)} ${units[i]}`;
}

/** The pair list with `pair` first (same workspace+storage+endpoint replaced), capped. */
export function addRecent(recent: ISyncPair[], pair: ISyncPair): ISyncPair[] {
  const same = (p: ISyncPair) =>
    p.workspace === pair.workspace &&
    p.storage === pair.storage &&
    p.endpointUrl === pair.endpointUrl;
  return [pair, ...recent.filter(p => !same(p))].slice(0, MAX_RECENT);
}

/** Pairs read back from the state DB: anything malformed is dropped. */
export function parseRecent(value: unknown): ISyncPair[] {
  if (!Array.isArray(value)) {
    return [];
  }
  return value
    .filter(
      (p): p is ISyncPair =>
        typeof p === 'object' &&
        p !== null &&
        typeof p.workspace === 'string' &&
        typeof p.storage === 'string' &&
        typeof p.endpointUrl === 'string'
    )
    .slice(0, MAX_RECENT);
}

/** A normalized folder path for comparisons ('a/b/' and '/a/b' are 'a/b'). */
function folderKey(path: string): string {
  return path.trim().replace(/^\/+|\/+$/g, '');
}

/** What the preview shows. */
export interface IPreview {
  direction: Direction;
  /** The dry-run job. */
  jobId: string | null;
  /** The first page of its plan, when it succeeded. */
  page: SyncPlanPage | null;
  /** Why there is no plan ('' when there is, or while it runs). */
  problem: string;
  running: boolean;
  /** The form as it was when the preview started (a later change makes it stale). */
  formKey: string;
}

export class SyncModel {
  constructor(
    private _jobs: JobsModel,
    private _store?: IPanelStore
  ) {
    void this._load();
  }

  /** Emitted when anything shown changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get form(): Readonly<ISyncForm> {
    return this._form;
  }

  /** Change form fields; the connection check and preview are kept but marked stale. */
  setForm(fields: Partial<ISyncForm>): void {
    this._form = { ...this._form, ...fields };
    if ('storage' in fields || 'endpointUrl' in fields) {
      this._check = null;
      this._checkProblem = '';
    }
    this._problem = '';
    this._changed.emit();
  }

  get recent(): readonly ISyncPair[] {
    return this._recent;
  }

  /** Fill the form with a remembered pair. */
  usePair(pair: ISyncPair): void {
    this.setForm({ ...pair });
  }

  /**
   * Prefill for a folder (the file browser's "Sync … object storage…"): the folder and
   * the last location it was synced with, if any.
   */
  prefillFolder(folder: string): void {
    const last = this._recent.find(
      p => folderKey(p.workspace) === folderKey(folder)
    );
    this.setForm(last ? { ...last, workspace: folder } : { workspace: folder });
  }

  /** Which direction the file browser asked for ('' when none), for emphasis. */
  get suggested(): Direction | '' {
    return this._suggested;
  }
  set suggested(direction: Direction | '') {
    this._suggested = direction;
    this._changed.emit();
  }

  // -- connection check ------------------------------------------------------------------

  get check(): StorageCheck | null {
    return this._check;
  }
  get checking(): boolean {
    return this._checking;
  }
  get checkProblem(): string {
    return this._checkProblem;
  }

  /** POST storage/check with the form's location (and workspace, for the overlap step). */
  async testConnection(): Promise<void> {
    const missing = this._missing(false);
    if (missing) {
      this._checkProblem = missing;
      this._changed.emit();
      return;
    }
    this._checking = true;
    this._checkProblem = '';
    this._check = null;
    this._changed.emit();
    try {
      this._check = await checkStorage({
        storage: this._form.storage.trim(),
        endpoint_url: this._form.endpointUrl.trim() || null,
        workspace: this._form.workspace.trim() || null
      });
    } catch (error) {
      this._checkProblem = (error as Error).message || String(error);
    } finally {
      this._checking = false;
      this._changed.emit();
    }
  }

  // -- preview and sync ------------------------------------------------------------------

  get preview(): IPreview | null {
    return this._preview;
  }

  /** Whether the preview was made with the form as it is now. */
  get previewCurrent(): boolean {
    return this._preview !== null && this._preview.formKey === this._formKey();
  }

  /** A refusal or mistake of the last start ('' when none). */
  get problem(): string {
    return this._problem;
  }

  /** Whether a start is under way. */
  get starting(): Direction | '' {
    return this._starting;
  }

  /** The spec of a sync job for the form. */
  spec(direction: Direction, dryRun: boolean): SyncSpec {
    const f = this._form;
    return {
      kind: 'sync',
      direction,
      workspace: f.workspace.trim(),
      storage: f.storage.trim(),
      endpoint_url: f.endpointUrl.trim() || null,
      include: splitPatterns(f.include),
      exclude: splitPatterns(f.exclude),
      delete: f.deleteExtra,
      checksum: f.checksum,
      dry_run: dryRun
    };
  }

  /**
   * Run the dry run (a sync job with dry_run) and fetch the first page of its plan.
   * Resolves to the preview (its `problem` says why when there is no plan).
   */
  async runPreview(direction: Direction): Promise<IPreview> {
    const missing = this._missing(true);
    if (missing) {
      this._problem = missing;
      this._changed.emit();
      return {
        direction,
        jobId: null,
        page: null,
        problem: missing,
        running: false,
        formKey: ''
      };
    }
    const preview: IPreview = {
      direction,
      jobId: null,
      page: null,
      problem: '',
      running: true,
      formKey: this._formKey()
    };
    this._preview = preview;
    this._problem = '';
    this._changed.emit();
    try {
      const job = await this._jobs.start(this.spec(direction, true));
      preview.jobId = job.id;
      this._changed.emit();
      const done = await this._waitFinal(job.id);
      if (done.state !== 'succeeded') {
        preview.problem = done.message || done.state;
      } else {
        preview.page = await getSyncPlan(job.id, { limit: PLAN_PAGE });
      }
    } catch (error) {
      preview.problem = (error as Error).message || String(error);
    } finally {
      preview.running = false;
      this._changed.emit();
    }
    return preview;
  }

  /**
   * Start a sync. With "delete" ticked, a preview runs first (unless a current one
   * exists for this direction) and `confirmDelete(count, preview)` must say yes when it
   * would delete files; nothing is started otherwise. Resolves to the job, or null when
   * nothing was started (the reason is in `problem`, or the user said no).
   */
  async startSync(
    direction: Direction,
    confirmDelete: (count: number, page: SyncPlanPage) => Promise<boolean>
  ): Promise<Job | null> {
    const missing = this._missing(true);
    if (missing) {
      this._problem = missing;
      this._changed.emit();
      return null;
    }
    this._starting = direction;
    this._problem = '';
    this._changed.emit();
    try {
      if (this._form.deleteExtra) {
        let preview = this._preview;
        if (
          !preview ||
          !this.previewCurrent ||
          preview.direction !== direction ||
          !preview.page
        ) {
          preview = await this.runPreview(direction);
        }
        if (!preview.page) {
          this._problem = preview.problem;
          return null;
        }
        if (
          preview.page.deleted > 0 &&
          !(await confirmDelete(preview.page.deleted, preview.page))
        ) {
          return null;
        }
      }
      const job = await this._jobs.start(this.spec(direction, false));
      await this._remember();
      return job;
    } catch (error) {
      this._problem =
        error instanceof ApiRequestError || error instanceof Error
          ? error.message
          : String(error);
      return null;
    } finally {
      this._starting = '';
      this._changed.emit();
    }
  }

  dispose(): void {
    Signal.clearData(this);
  }

  private _missing(needWorkspace: boolean): string {
    if (needWorkspace && !this._form.workspace.trim()) {
      return 'Give the workspace folder (a folder under the server root).';
    }
    if (!this._form.storage.trim()) {
      return 'Give the storage location: s3://bucket/prefix or file:///path.';
    }
    return '';
  }

  private _formKey(): string {
    const { workspace, storage, endpointUrl, include, exclude } = this._form;
    return JSON.stringify([
      workspace.trim(),
      storage.trim(),
      endpointUrl.trim(),
      splitPatterns(include),
      splitPatterns(exclude),
      this._form.deleteExtra,
      this._form.checksum
    ]);
  }

  /** The job once final, from the jobs store (which follows unfinished jobs' streams). */
  private _waitFinal(jobId: string): Promise<Job> {
    return new Promise<Job>((resolve, reject) => {
      const stop = () => {
        this._jobs.changed.disconnect(look);
        this._jobs.jobRemoved.disconnect(removed);
      };
      const look = () => {
        const job = this._jobs.get(jobId);
        if (job && isFinal(job.state)) {
          stop();
          resolve(job);
        }
      };
      const removed = (_: unknown, id: string) => {
        if (id === jobId) {
          stop();
          reject(new Error(`The preview job ${jobId} was removed.`));
        }
      };
      this._jobs.changed.connect(look);
      this._jobs.jobRemoved.connect(removed);
      look();
    });
  }

  private async _load(): Promise<void> {
    if (!this._store) {
      return;
    }
    try {
      this._recent = parseRecent(await this._store.fetch(RECENT_KEY));
      if (this._recent.length > 0 && !this._form.storage) {
        this._form = { ...this._form, ...this._recent[0] };
      }
      this._changed.emit();
    } catch (error) {
      console.warn('cvat-train: recent sync pairs not loaded', error);
    }
  }

  private async _remember(): Promise<void> {
    const f = this._form;
    this._recent = addRecent(this._recent, {
      workspace: f.workspace.trim(),
      storage: f.storage.trim(),
      endpointUrl: f.endpointUrl.trim()
    });
    this._changed.emit();
    try {
      await this._store?.save(RECENT_KEY, this._recent);
    } catch (error) {
      console.warn('cvat-train: recent sync pairs not saved', error);
    }
  }

  private _form: ISyncForm = {
    workspace: '',
    storage: '',
    endpointUrl: '',
    include: '',
    exclude: '',
    deleteExtra: false,
    checksum: false
  };
  private _recent: ISyncPair[] = [];
  private _suggested: Direction | '' = '';
  private _check: StorageCheck | null = null;
  private _checking = false;
  private _checkProblem = '';
  private _preview: IPreview | null = null;
  private _problem = '';
  private _starting: Direction | '' = '';
  private _changed = new Signal<this, void>(this);
}

/** What a sync's progress events carry (see jupyter_cvat_train/storage/job.py). */
export interface ISyncProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Bytes per second, or null when not known yet. */
  rate: number | null;
  /** Milliseconds left at that rate, or null. */
  eta: number | null;
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
    ? value
    : null;
}

/** The latest progress of a sync job, from its events (null before the first). */
export function syncProgress(
  events: readonly JobEvent[]
): ISyncProgress | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.type !== 'progress') {
      continue;
    }
    const bytesDone = num(e.done) ?? 0;
    const bytesTotal = num(e.total) ?? 0;
    const rate = num(e.rate);
    return {
      filesDone: num(e.files_done) ?? 0,
      filesTotal: num(e.files_total) ?? 0,
      bytesDone,
      bytesTotal,
      rate,
      eta:
        rate && rate > 0 && bytesTotal >= bytesDone
          ? ((bytesTotal - bytesDone) / rate) * 1000
          : null
    };
  }
  return null;
}
