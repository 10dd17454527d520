/**
 * The one job store of the frontend: the sidebar's job list, the job views, the status
 * bar and the notifications all read it.
 *
 * It is fed by each unfinished job's websocket (state changes as they happen), and by a
 * list refresh (`GET jobs`) when it starts and then every `pollInterval` ms as a
 * fallback that also finds jobs started elsewhere (the CLI, a notebook); that poll backs
 * off while the server does not answer and stands by while the page is hidden.
 * A job that ends while the store watches it emits `jobEnded` once.
 */
import type { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  ApiRequestError,
  createJob,
  deleteJob,
  listJobs,
  type Job,
  type JobEvent,
  type JobSpec,
  type JobState
} from '../api';
import { JobFollower, type SocketFactory } from './stream';

/** The states in which a job is done. */
export const FINAL_STATES: readonly JobState[] = [
  'succeeded',
  'failed',
  'cancelled'
];

/** Whether `state` is final. */
export function isFinal(state: JobState): boolean {
  return FINAL_STATES.includes(state);
}

/** Whether the store reaches the server. */
export type Reachability = 'unknown' | 'ok' | 'unreachable';

export interface IJobsModelOptions {
  settings?: ServerConnection.ISettings;
  /** ms between list refreshes (the fallback); 0 turns polling off (tests). */
  pollInterval?: number;
  /** Lines of log kept per followed job. */
  maxLogLines?: number;
  createSocket?: SocketFactory;
  /** Reconnect delays of the job streams, ms. */
  backoff?: { first: number; max: number };
}

/** Newest first: by created_at, then id (ids start with the creation time). */
export function compareNewestFirst(a: Job, b: Job): number {
  const ta = a.created_at ?? '';
  const tb = b.created_at ?? '';
  if (ta !== tb) {
    return ta < tb ? 1 : -1;
  }
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export class JobsModel {
  constructor(options: IJobsModelOptions = {}) {
    this._options = options;
    const interval = options.pollInterval ?? 10000;
    if (interval > 0) {
      this._poll = new Poll({
        factory: () => this.refresh(),
        frequency: { interval, backoff: true, max: Math.max(interval, 60000) },
        standby: 'when-hidden',
        name: 'jupyter-cvat-train:jobs'
      });
    }
  }

  /** Emitted when any job changed, appeared or disappeared. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted once for each job seen unfinished that reached a final state. */
  get jobEnded(): ISignal<this, Job> {
    return this._jobEnded;
  }

  /** Emitted with the id of a job that is gone from the server. */
  get jobRemoved(): ISignal<this, string> {
    return this._jobRemoved;
  }

  /** Whether the last list refresh reached the server. */
  get reachability(): Reachability {
    return this._reachability;
  }

  /** The last refresh's problem ('' when none). */
  get problem(): string {
    return this._problem;
  }

  /** Whether a list refresh has completed since the start. */
  get loaded(): boolean {
    return this._loaded;
  }

  /** Every job, newest first. */
  get jobs(): readonly Job[] {
    if (this._sorted === null) {
      this._sorted = [...this._jobs.values()].sort(compareNewestFirst);
    }
    return this._sorted;
  }

  /** One job, or undefined when the store does not know it. */
  get(jobId: string): Job | undefined {
    return this._jobs.get(jobId);
  }

  /** How many jobs are in each state. */
  counts(): Record<JobState, number> {
    const out: Record<JobState, number> = {
      queued: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      cancelled: 0
    };
    for (const job of this._jobs.values()) {
      out[job.state] += 1;
    }
    return out;
  }

  /** Lines of log kept by followers made from now on. */
  set maxLogLines(lines: number) {
    this._options = { ...this._options, maxLogLines: lines };
  }

  /** Change the fallback poll's interval (ms). */
  setPollInterval(interval: number): void {
    if (this._poll && interval > 0) {
      this._poll.frequency = {
        interval,
        backoff: true,
        max: Math.max(interval, 60000)
      };
    }
  }

  /**
   * Read the list from the server (GET jobs) and follow the unfinished jobs. Jobs gone
   * from the list are removed. Rejects when the server does not answer (the poll then
   * backs off).
   */
  async refresh(): Promise<void> {
    let jobs: Job[];
    const asked = ++this._clock; // what the store knew before this request
    try {
      jobs = (await listJobs(this._options.settings)).jobs;
    } catch (error) {
      this._setReachability('unreachable', (error as Error).message);
      throw error;
    }
    if (this._disposed) {
      return;
    }
    this._loaded = true;
    this._setReachability('ok', '');
    const seen = new Set<string>();
    let changed = false;
    for (const job of jobs) {
      seen.add(job.id);
      changed = this._put(job) || changed;
    }
    // gone from the server: known before the request went out and not in its reply (a job
    // created while the request was under way is not in it, and stays)
    for (const id of [...this._jobs.keys()]) {
      if (!seen.has(id) && (this._since.get(id) ?? 0) < asked) {
        this._drop(id);
        changed = true;
      }
    }
    for (const [id, entry] of this._followers) {
      if (!seen.has(id) && entry.since < asked) {
        entry.follower.handle({
          type: 'error',
          message: `job ${id} was deleted`
        });
      }
    }
    if (changed || !this._firstEmitted) {
      this._firstEmitted = true;
      this._touch();
    }
  }

  /** Take a job object (from a stream or a reply); followed when unfinished. */
  update(job: Job): void {
    if (this._disposed || this._removed.has(job.id)) {
      return;
    }
    if (this._put(job)) {
      this._touch();
    }
  }

  /**
   * The follower of a job's stream, shared: each caller holds a reference and must call
   * `release(jobId)` when done. The store also holds one while the job is unfinished.
   */
  follow(jobId: string): JobFollower {
    const entry = this._acquire(jobId);
    return entry.follower;
  }

  /** Give back a reference taken with `follow`. */
  release(jobId: string): void {
    const entry = this._followers.get(jobId);
    if (!entry) {
      return;
    }
    entry.refs -= 1;
    if (entry.refs <= 0) {
      entry.follower.dispose();
      this._followers.delete(jobId);
    }
  }

  /** POST jobs; the new job joins the store. Throws ApiRequestError as the server says. */
  async start(spec: JobSpec): Promise<Job> {
    const job = await createJob(spec, this._options.settings);
    this.update(job);
    return job;
  }

  /** Cancel a queued or running job (DELETE jobs/{id}); resolves to the job as it is. */
  async cancel(jobId: string): Promise<Job | null> {
    const job = await deleteJob(jobId, {}, this._options.settings);
    if (job) {
      this.update(job);
    }
    return job;
  }

  /** Forget a finished job (DELETE jobs/{id}); `removeFiles` also deletes its folder. */
  async remove(jobId: string, removeFiles = false): Promise<void> {
    try {
      await deleteJob(jobId, { removeFiles }, this._options.settings);
    } catch (error) {
      if (!(error instanceof ApiRequestError && error.status === 404)) {
        throw error;
      }
    }
    this._drop(jobId);
    this._touch();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._poll?.dispose();
    for (const entry of this._followers.values()) {
      entry.follower.dispose();
    }
    this._followers.clear();
    Signal.clearData(this);
  }

  /** Store `job`; returns whether anything changed. Emits jobEnded on a final transition. */
  private _put(job: Job): boolean {
    const before = this._jobs.get(job.id);
    if (
      before &&
      (sameJob(before, job) || stateRank(job.state) < stateRank(before.state))
    ) {
      return false; // unchanged, or an older reply (a job never goes back to an earlier state)
    }
    if (!before) {
      this._since.set(job.id, this._clock);
    }
    this._jobs.set(job.id, job);
    this._sorted = null;
    if (!isFinal(job.state)) {
      this._watched.add(job.id);
      if (!this._autoFollowed.has(job.id)) {
        this._autoFollowed.add(job.id);
        this._acquire(job.id);
      }
    } else {
      if (this._watched.delete(job.id)) {
        this._jobEnded.emit(job);
      }
      if (this._autoFollowed.delete(job.id)) {
        this.release(job.id);
      }
    }
    return true;
  }

  private _drop(jobId: string): void {
    if (!this._jobs.delete(jobId)) {
      return;
    }
    this._since.delete(jobId);
    this._sorted = null;
    this._watched.delete(jobId);
    if (this._autoFollowed.delete(jobId)) {
      this.release(jobId);
    }
    this._jobRemoved.emit(jobId);
  }

  private _acquire(jobId: string): IFollowerEntry {
    let entry = this._followers.get(jobId);
    if (!entry) {
      const follower = new JobFollower({
        jobId,
        settings: this._options.settings,
        maxLogLines: this._options.maxLogLines,
        createSocket: this._options.createSocket,
        backoff: this._options.backoff,
        onJob: job => this.update(job),
        onEvent: event => this._progressEvent(jobId, event),
        onDeleted: id => {
          this._removed.add(id);
          this._drop(id);
          this._touch();
        }
      });
      entry = { follower, refs: 0, since: this._clock };
      this._followers.set(jobId, entry);
      follower.start();
    }
    entry.refs += 1;
    return entry;
  }

  /** A progress event moves the job's progress (the stream sends state only on changes). */
  private _progressEvent(jobId: string, event: JobEvent): void {
    const job = this._jobs.get(jobId);
    if (!job || isFinal(job.state) || event.type !== 'progress') {
      return;
    }
    if (typeof event.done !== 'number' || event.done < 0) {
      return;
    }
    const total = typeof event.total === 'number' ? event.total : null;
    const unit = typeof event.unit === 'string' ? event.unit : null;
    this.update({ ...job, progress: { done: event.done, total, unit } });
  }

  private _setReachability(value: Reachability, problem: string): void {
    if (value !== this._reachability || problem !== this._problem) {
      this._reachability = value;
      this._problem = problem;
      this._touch();
    }
  }

  private _touch(): void {
    this._changed.emit();
  }

  private _options: IJobsModelOptions;
  private _poll: Poll | null = null;
  private _jobs = new Map<string, Job>();
  private _sorted: Job[] | null = null;
  private _watched = new Set<string>();
  private _autoFollowed = new Set<string>();
  private _removed = new Set<string>();
  private _followers = new Map<string, IFollowerEntry>();
  /** A counter of list requests; `_since`: the counter when each job joined the store. */
  private _clock = 0;
  private _since = new Map<string, number>();
  private _reachability: Reachability = 'unknown';
  private _problem = '';
  private _loaded = false;
  private _firstEmitted = false;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
  private _jobEnded = new Signal<this, Job>(this);
  private _jobRemoved = new Signal<this, string>(this);
}

/** A shared follower: its references, and the list-request counter when it was made. */
interface IFollowerEntry {
  follower: JobFollower;
  refs: number;
  since: number;
}

/** queued < running < a final state: the order a job's states come in. */
function stateRank(state: JobState): number {
  return state === 'queued' ? 0 : state === 'running' ? 1 : 2;
}

function sameJob(a: Job, b: Job): boolean {
  return (
    a.state === b.state &&
    a.message === b.message &&
    a.started_at === b.started_at &&
    a.ended_at === b.ended_at &&
    a.progress.done === b.progress.done &&
    a.progress.total === b.progress.total &&
    a.progress.unit === b.progress.unit &&
    JSON.stringify(a.outputs) === JSON.stringify(b.outputs)
  );
}
