/**
 * Following one job over `WS jobs/{id}/stream`: its state, its log (a LogBuffer) and its
 * events, resumed from the byte offsets already taken after any drop, so no line or
 * event is shown twice. The socket reconnects with backoff until the job ends; a job
 * deleted on the server ends the follower with `deleted`.
 */
import type { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import {
  jobStreamURL,
  parseStreamMessage,
  type Job,
  type JobEvent,
  type StreamMessage
} from '../api';
import { LogBuffer } from './log';

/** The follower's connection: live, waiting to reconnect, ended (final state), or gone. */
export type FollowStatus =
  'connecting' | 'live' | 'reconnecting' | 'ended' | 'deleted';

/** A minimal WebSocket, so that tests can give one of their own. */
export interface ISocket {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(code?: number): void;
}

/** Makes a socket for a URL (the browser's WebSocket by default). */
export type SocketFactory = (url: string) => ISocket;

export interface IFollowerOptions {
  jobId: string;
  settings?: ServerConnection.ISettings;
  maxLogLines?: number;
  createSocket?: SocketFactory;
  /** Called with each job object the stream sends (state and end). */
  onJob?: (job: Job) => void;
  /** Called with each new event (after the follower took it). */
  onEvent?: (event: JobEvent) => void;
  /** Called once when the server says the job was deleted. */
  onDeleted?: (jobId: string, message: string) => void;
  /** First and longest reconnect delays, ms. */
  backoff?: { first: number; max: number };
}

/** One job's stream. Call `start()`; `dispose()` closes it. */
export class JobFollower {
  constructor(options: IFollowerOptions) {
    this.jobId = options.jobId;
    this._options = options;
    this.log = new LogBuffer(options.maxLogLines ?? 5000);
    this._delay = options.backoff?.first ?? 1000;
  }

  readonly jobId: string;
  /** The log lines taken so far. */
  readonly log: LogBuffer;

  /** The events taken so far, in file order. */
  get events(): readonly JobEvent[] {
    return this._events;
  }

  /** Where events.jsonl will be resumed from. */
  get eventsOffset(): number {
    return this._eventsOffset;
  }

  get status(): FollowStatus {
    return this._status;
  }

  /** The last message of an error or deletion, else ''. */
  get problem(): string {
    return this._problem;
  }

  /** Emitted after new log text, events or a status change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Connect (again) from the offsets taken so far. */
  start(): void {
    if (
      this._disposed ||
      this._socket ||
      this._status === 'ended' ||
      this._status === 'deleted'
    ) {
      return;
    }
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    const url = jobStreamURL(
      this.jobId,
      { log: this.log.nextOffset, events: this._eventsOffset },
      this._options.settings
    );
    let socket: ISocket;
    try {
      socket = (this._options.createSocket ?? defaultSocket)(url);
    } catch (error) {
      this._scheduleReconnect(String(error));
      return;
    }
    this._socket = socket;
    if (this._status !== 'reconnecting') {
      this._setStatus('connecting');
    }
    socket.onopen = () => {
      this._delay = this._options.backoff?.first ?? 1000;
    };
    socket.onmessage = ev => {
      if (typeof ev.data === 'string') {
        let message: StreamMessage;
        try {
          message = parseStreamMessage(ev.data);
        } catch {
          return; // not JSON: not the API's; ignore it
        }
        this.handle(message);
      }
    };
    socket.onerror = () => {
      /* onclose follows */
    };
    socket.onclose = () => {
      this._socket = null;
      if (
        !this._disposed &&
        this._status !== 'ended' &&
        this._status !== 'deleted'
      ) {
        this._scheduleReconnect('the server does not answer');
      }
    };
  }

  /** Take one stream message (exposed for tests and for other sources of messages). */
  handle(message: StreamMessage): void {
    switch (message.type) {
      case 'state':
        this._problem = '';
        this._setStatus('live', false);
        this._options.onJob?.(message.job);
        break;
      case 'log':
        if (
          this.log.append(message.offset, message.next_offset, message.text)
        ) {
          this._changed.emit();
        }
        break;
      case 'event':
        if (message.next_offset > this._eventsOffset) {
          this._eventsOffset = message.next_offset;
          this._events.push(message.event);
          this._options.onEvent?.(message.event);
          this._changed.emit();
        }
        break;
      case 'end':
        this._options.onJob?.(message.job);
        this._setStatus('ended');
        break;
      case 'error':
        this._problem = message.message;
        if (/was deleted/.test(message.message)) {
          this._setStatus('deleted');
          this._options.onDeleted?.(this.jobId, message.message);
        } else {
          this._changed.emit();
        }
        break;
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close(1000);
    }
    Signal.clearData(this);
  }

  private _scheduleReconnect(problem: string): void {
    this._problem = problem;
    this._setStatus('reconnecting');
    const max = this._options.backoff?.max ?? 30000;
    const delay = this._delay;
    this._delay = Math.min(max, this._delay * 2);
    this._timer = setTimeout(() => {
      this._timer = null;
      this.start();
    }, delay);
  }

  private _setStatus(status: FollowStatus, always = true): void {
    if (this._status !== status) {
      this._status = status;
      this._changed.emit();
    } else if (always) {
      this._changed.emit();
    }
  }

  private _options: IFollowerOptions;
  private _socket: ISocket | null = null;
  private _events: JobEvent[] = [];
  private _eventsOffset = 0;
  private _status: FollowStatus = 'connecting';
  private _problem = '';
  private _delay: number;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}

function defaultSocket(url: string): ISocket {
  return new WebSocket(url) as unknown as ISocket;
}
