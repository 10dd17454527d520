/**
 * The data of a job output in a notebook: what `Job._repr_mimebundle_` puts under
 * `application/vnd.jupyter-cvat-train.job+json`, `{jobId, name, kind}` (no URLs, no
 * secrets). A notebook's outputs are untrusted input: the data is checked field by field
 * before anything uses it, and a problem is named with the fix.
 */

/** The MIME type of a job output. */
export const JOB_MIME_TYPE = 'application/vnd.jupyter-cvat-train.job+json';

/** The job ids the server's routes accept (jobs/store.py JOB_ID_RE), '.' and '..' aside. */
const JOB_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Longest `name` and `kind` kept (characters); longer ones are cut with an ellipsis. */
export const MAX_LABEL_CHARS = 200;

/** A checked job output. */
export interface IJobPayload {
  /** The job's id in the server's runs root. */
  jobId: string;
  /** A label for people ('' when the data has none). */
  name: string;
  /** The job's kind as the kernel saw it ('' when the data has none). */
  kind: string;
}

/** The result of `parseJobPayload`: the payload, or a problem for a person. */
export type PayloadResult =
  { ok: true; payload: IJobPayload } | { ok: false; problem: string };

function label(value: unknown, field: string): string | { problem: string } {
  if (value === undefined || value === null) {
    return '';
  }
  if (typeof value !== 'string') {
    return {
      problem: `"${field}" is ${typeName(value)}, expected a string`
    };
  }
  return value.length > MAX_LABEL_CHARS
    ? value.slice(0, MAX_LABEL_CHARS - 1) + '…'
    : value;
}

/** What a JSON value is, for a message: 'a number', 'an object', 'a list', 'null'. */
function typeName(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'a list';
  }
  const type = typeof value;
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** `value` for a message: quoted, cut at 60 characters. */
function shown(value: string): string {
  const cut = value.length > 60 ? value.slice(0, 59) + '…' : value;
  return JSON.stringify(cut);
}

/**
 * Check the data of a job output.
 *
 * @param data - the value under JOB_MIME_TYPE in an output's bundle (any JSON).
 * @returns `{ok: true, payload}`, or `{ok: false, problem}` with one sentence naming
 *   the field and the fix: `data` not an object, `jobId` missing, not a string or not a
 *   job id (letters, digits, `.`, `_`, `-`; at most 128 characters), `name` or `kind`
 *   not a string. Long `name`/`kind` values are cut to MAX_LABEL_CHARS characters.
 */
export function parseJobPayload(data: unknown): PayloadResult {
  const fix = 'display the job object again (e.g. run the cell)';
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return {
      ok: false,
      problem: `The job output's data is ${typeName(data)}, expected an object {jobId, name, kind}: ${fix}.`
    };
  }
  const record = data as Record<string, unknown>;
  const jobId = record.jobId;
  if (jobId === undefined || jobId === null || jobId === '') {
    return {
      ok: false,
      problem: `The job output has no "jobId": ${fix}.`
    };
  }
  if (typeof jobId !== 'string') {
    return {
      ok: false,
      problem: `The job output's "jobId" is ${typeName(jobId)}, expected a string: ${fix}.`
    };
  }
  if (!JOB_ID_RE.test(jobId) || jobId === '.' || jobId === '..') {
    return {
      ok: false,
      problem: `The job output's "jobId" ${shown(jobId)} is not a job id (letters, digits, ".", "_" and "-", at most 128 characters): ${fix}.`
    };
  }
  const name = label(record.name, 'name');
  if (typeof name !== 'string') {
    return {
      ok: false,
      problem: `The job output's ${name.problem}: ${fix}.`
    };
  }
  const kind = label(record.kind, 'kind');
  if (typeof kind !== 'string') {
    return {
      ok: false,
      problem: `The job output's ${kind.problem}: ${fix}.`
    };
  }
  return { ok: true, payload: { jobId, name, kind } };
}
