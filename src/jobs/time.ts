/**
 * Times of a job as the panel shows them: start, end, duration and the ETA of a running
 * job from its progress.
 */
import type { Job } from '../api';

/** Milliseconds of an ISO timestamp, or null when absent or unparsable. */
export function parseTime(value: string | null | undefined): number | null {
  if (!value) {
    return null;
  }
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

/** A duration as `1 h 02 min`, `3 min 05 s` or `12 s`; `—` for null. */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) {
    return '—';
  }
  const s = Math.round(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  }
  return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
}

/** A timestamp in the browser's locale, short; `—` when absent. */
export function formatTime(value: string | null | undefined): string {
  const ms = parseTime(value);
  if (ms === null) {
    return '—';
  }
  return new Date(ms).toLocaleString(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit'
  });
}

/** How long the job ran (until now while it runs); null when it never started. */
export function jobDuration(job: Job, now = Date.now()): number | null {
  const start = parseTime(job.started_at);
  if (start === null) {
    return null;
  }
  const end = parseTime(job.ended_at) ?? (job.state === 'running' ? now : null);
  return end === null ? null : Math.max(0, end - start);
}

/** Progress as a fraction in [0, 1], or null when the total is unknown. */
export function progressFraction(job: Job): number | null {
  const { done, total } = job.progress;
  if (total === null || total <= 0) {
    return null;
  }
  return Math.min(1, Math.max(0, done / total));
}

/**
 * The estimated time left of a running job, by the rate so far; null when it cannot be
 * told (not running, nothing done yet, no total).
 */
export function jobEta(job: Job, now = Date.now()): number | null {
  const fraction = progressFraction(job);
  const elapsed = jobDuration(job, now);
  if (
    job.state !== 'running' ||
    fraction === null ||
    fraction <= 0 ||
    elapsed === null
  ) {
    return null;
  }
  return (elapsed * (1 - fraction)) / fraction;
}

/** A timestamp for a list row: the time alone when it is today, else day and time. */
export function formatTimeShort(
  value: string | null | undefined,
  now = Date.now()
): string {
  const ms = parseTime(value);
  if (ms === null) {
    return '—';
  }
  const date = new Date(ms);
  const today = new Date(now).toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString(undefined, {
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit'
      })
    : date.toLocaleString(undefined, {
        month: 'short',
        day: 'numeric',
        hour: '2-digit',
        minute: '2-digit'
      });
}
