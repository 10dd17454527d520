/**
 * Finding the job of a notebook output in the app's one job store, and following it.
 *
 * A job output names a job by id only. The store may not know it yet (the kernel started
 * it after the last list refresh), so the output asks `GET jobs/{id}` once: the job joins
 * the store (which follows an unfinished job's websocket), or a 404 says the server does
 * not have it (another runs root, or deleted) and nothing is followed, so no spinner runs
 * forever. While the server does not answer, the lookup retries with backoff.
 *
 * Once known, the output takes a reference on the store's shared follower of the job (one
 * websocket per job, whatever number of outputs and tabs show it) for the log and events,
 * and gives it back on `dispose()`.
 */
import type { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiRequestError, getJob, type Job } from '../api';
import type { JobsModel } from '../jobs/model';
import type { JobFollower } from '../jobs/stream';

/**
 * Where the lookup is: asking the server, found (followed), not on the server (or gone
 * since), or the server did not answer (a retry is scheduled).
 */
export type LookupPhase = 'checking' | 'known' | 'missing' | 'unreachable';

export interface IJobLookupOptions {
  jobId: string;
  store: JobsModel;
  settings?: ServerConnection.ISettings;
  /** Retry delays while the server does not answer, ms (doubling from first to max). */
  retry?: { first: number; max: number };
}

export class JobLookup {
  constructor(options: IJobLookupOptions) {
    this.jobId = options.jobId;
    this._options = options;
    this._delay = options.retry?.first ?? 2000;
    options.store.changed.connect(this._onStoreChanged, this);
    options.store.jobRemoved.connect(this._onRemoved, this);
  }

  readonly jobId: string;

  /** Emitted when the phase, the job or its follower's log/events change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get phase(): LookupPhase {
    return this._phase;
  }

  /** The last problem: the server's message for a failed lookup, else ''. */
  get problem(): string {
    return this._problem;
  }

  /** The job as the store has it (undefined until known, and after it is gone). */
  get job(): Job | undefined {
    return this._phase === 'known'
      ? this._options.store.get(this.jobId)
      : undefined;
  }

  /** The shared follower of the job's stream, while known. */
  get follower(): JobFollower | null {
    return this._follower;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Look the job up (in the store, else on the server). Safe to call again. */
  start(): void {
    if (this._disposed || this._phase === 'known' || this._pending) {
      return;
    }
    if (this._options.store.get(this.jobId)) {
      this._known();
      return;
    }
    this._pending = true;
    getJob(this.jobId, this._options.settings).then(
      job => {
        this._pending = false;
        if (this._disposed) {
          return;
        }
        this._options.store.update(job);
        if (this._options.store.get(this.jobId)) {
          this._known();
        } else {
          // the store refused it: it saw the job deleted
          this._set('missing', '');
        }
      },
      (error: unknown) => {
        this._pending = false;
        if (this._disposed) {
          return;
        }
        if (error instanceof ApiRequestError && error.status === 404) {
          this._set('missing', error.message);
          return;
        }
        this._set('unreachable', (error as Error).message ?? String(error));
        this._scheduleRetry();
      }
    );
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this._releaseFollower();
    Signal.disconnectReceiver(this);
    Signal.clearData(this);
  }

  private _known(): void {
    if (!this._follower) {
      this._follower = this._options.store.follow(this.jobId);
      this._follower.changed.connect(this._emit, this);
    }
    this._delay = this._options.retry?.first ?? 2000;
    this._set('known', '');
  }

  private _scheduleRetry(): void {
    if (this._timer !== null) {
      return;
    }
    const delay = this._delay;
    this._delay = Math.min(this._options.retry?.max ?? 30000, delay * 2);
    this._timer = setTimeout(() => {
      this._timer = null;
      this.start();
    }, delay);
  }

  private _onStoreChanged(): void {
    // a list refresh may bring the job in before the lookup's own request answers
    if (this._phase !== 'known' && this._options.store.get(this.jobId)) {
      if (this._timer !== null) {
        clearTimeout(this._timer);
        this._timer = null;
      }
      this._known();
      return;
    }
    if (this._phase === 'known') {
      this._emit();
    }
  }

  private _onRemoved(_: JobsModel, jobId: string): void {
    if (jobId === this.jobId && this._phase === 'known') {
      this._releaseFollower();
      this._set('missing', '');
    }
  }

  private _releaseFollower(): void {
    if (this._follower) {
      this._follower.changed.disconnect(this._emit, this);
      this._follower = null;
      this._options.store.release(this.jobId);
    }
  }

  private _set(phase: LookupPhase, problem: string): void {
    this._phase = phase;
    this._problem = problem;
    this._emit();
  }

  private _emit(): void {
    this._changed.emit();
  }

  private _options: IJobLookupOptions;
  private _phase: LookupPhase = 'checking';
  private _problem = '';
  private _pending = false;
  private _delay: number;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _follower: JobFollower | null = null;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}
