/**
 * The client of the server extension's API, `{base_url}cvat-train/api/`.
 *
 * Every request of the panel goes through `requestAPI`, which sends the server token
 * and the XSRF header (`ServerConnection.makeRequest`). The request, reply and
 * websocket message types come from the one contract,
 * jupyter_cvat_train/server/api-schema.json, generated into ./schema.ts
 * (`jlpm generate:api`); tests/test_api_contract.py checks the server against it.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type {
  ApiError,
  BackendList,
  CvatConnection,
  DeviceList,
  Job,
  JobList,
  JobLog,
  JobSpec,
  StorageCheck,
  StorageCheckRequest,
  StreamMessage,
  SyncPlanPage,
  TemplateCheck,
  TemplateList,
  TensorBoardReply,
  ValidateRequest,
  ValidationReport,
  VersionReply
} from './schema';

export * from './schema';

/** Path of the extension's API below the server's base URL. */
export const API_NAMESPACE = 'cvat-train/api';

/**
 * A 4xx/5xx reply of the API. `message` is the server's message (a sentence that names
 * the problem and the fix); `reply` is the whole `{message, code, details}` body, or null
 * when the body was not the API's JSON (e.g. a proxy's HTML error page).
 */
export class ApiRequestError extends ServerConnection.ResponseError {
  constructor(
    response: Response,
    message: string,
    readonly reply: ApiError | null
  ) {
    super(response, message);
    this.name = 'ApiRequestError';
  }

  /** The HTTP status of the reply. */
  get status(): number {
    return this.response.status;
  }
}

function isApiError(data: unknown): data is ApiError {
  return (
    typeof data === 'object' &&
    data !== null &&
    typeof (data as ApiError).message === 'string' &&
    typeof (data as ApiError).code === 'number'
  );
}

/**
 * Call the server extension and parse its JSON reply.
 *
 * @param endPoint path below `{base_url}cvat-train/api/`, e.g. `jobs/abc/log?offset=10`.
 * @param init fetch options (method, body, ...); a body is sent as given (JSON text: use
 *   `JSON.stringify`); the Content-Type is application/json unless `init.headers` says otherwise.
 * @param settings server settings; by default those of the running JupyterLab.
 * @returns the parsed JSON body, or null for an empty body (204).
 * @throws ServerConnection.NetworkError when the server cannot be reached;
 *   ApiRequestError on a 4xx/5xx, whose message is the server's message.
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  const headers = new settings.Headers(init.headers);
  if (!headers.has('Content-Type')) {
    headers.set('Content-Type', 'application/json');
  }
  const response = await ServerConnection.makeRequest(
    url,
    { ...init, headers },
    settings
  );
  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text; // not JSON (e.g. an HTML error page from a proxy)
    }
  }
  if (!response.ok) {
    const reply = isApiError(data) ? data : null;
    const message =
      reply?.message ??
      `${response.status} ${response.statusText}`.trim() +
        (typeof data === 'string' && data ? `: ${data.slice(0, 200)}` : '');
    throw new ApiRequestError(response, message, reply);
  }
  return data as T;
}

function post<T>(
  endPoint: string,
  body: unknown,
  settings?: ServerConnection.ISettings
): Promise<T> {
  return requestAPI<T>(
    endPoint,
    { method: 'POST', body: JSON.stringify(body) },
    settings
  );
}

function jobPath(jobId: string, ...rest: string[]): string {
  return ['jobs', encodeURIComponent(jobId), ...rest].join('/');
}

/** `GET version`: the server extension's version. */
export function getVersion(
  settings?: ServerConnection.ISettings
): Promise<VersionReply> {
  return requestAPI<VersionReply>('version', {}, settings);
}

/** `GET templates`: the model catalog with its parameter schemas. */
export function listTemplates(
  settings?: ServerConnection.ISettings
): Promise<TemplateList> {
  return requestAPI<TemplateList>('templates', {}, settings);
}

/**
 * `POST templates/check`: a template file inside the server root checked as the catalog
 * would load it (the form preview); 200 with `ok` false and its `FILE:LINE` errors when
 * it is broken.
 */
export function checkTemplateFile(
  path: string,
  settings?: ServerConnection.ISettings
): Promise<TemplateCheck> {
  return post<TemplateCheck>('templates/check', { path }, settings);
}

/** `GET devices`: auto, cpu and each CUDA GPU of the server (probed once per server). */
export function listDevices(
  settings?: ServerConnection.ISettings
): Promise<DeviceList> {
  return requestAPI<DeviceList>('devices', {}, settings);
}

/**
 * `GET backends`: where jobs may run (this machine; the Ray cluster when the server has
 * one) and where a job without `backend` goes.
 */
export function listBackends(
  settings?: ServerConnection.ISettings
): Promise<BackendList> {
  return requestAPI<BackendList>('backends', {}, settings);
}

/** `POST datasets/validate`: the validation report of an export in the server root. */
export function validateDataset(
  request: ValidateRequest,
  settings?: ServerConnection.ISettings
): Promise<ValidationReport> {
  return post<ValidationReport>('datasets/validate', request, settings);
}

/** `GET jobs`: every job, in creation order. */
export function listJobs(
  settings?: ServerConnection.ISettings
): Promise<JobList> {
  return requestAPI<JobList>('jobs', {}, settings);
}

/**
 * `POST jobs`: check a spec and queue the job. A 422 (the dataset fails validation)
 * throws an ApiRequestError whose `reply.details` is the ValidationReport.
 */
export function createJob(
  spec: JobSpec,
  settings?: ServerConnection.ISettings
): Promise<Job> {
  return post<Job>('jobs', spec, settings);
}

/** `GET jobs/{id}`. */
export function getJob(
  jobId: string,
  settings?: ServerConnection.ISettings
): Promise<Job> {
  return requestAPI<Job>(jobPath(jobId), {}, settings);
}

/**
 * `DELETE jobs/{id}`: cancel a queued or running job (resolves to the job as it is now),
 * or forget a finished one (resolves to null; `removeFiles` also removes its folder).
 */
export function deleteJob(
  jobId: string,
  options: { removeFiles?: boolean } = {},
  settings?: ServerConnection.ISettings
): Promise<Job | null> {
  const query = options.removeFiles ? '?remove_files=true' : '';
  return requestAPI<Job | null>(
    jobPath(jobId) + query,
    { method: 'DELETE' },
    settings
  );
}

/** `GET jobs/{id}/log?offset=N`: job.log from byte `offset`, and the next offset. */
export function getJobLog(
  jobId: string,
  offset = 0,
  settings?: ServerConnection.ISettings
): Promise<JobLog> {
  return requestAPI<JobLog>(
    `${jobPath(jobId, 'log')}?offset=${Math.max(0, Math.floor(offset))}`,
    {},
    settings
  );
}

/** `POST jobs/{id}/tensorboard`: start TensorBoard (idempotent); where it answers. */
export function startTensorBoard(
  jobId: string,
  settings?: ServerConnection.ISettings
): Promise<TensorBoardReply> {
  return post<TensorBoardReply>(jobPath(jobId, 'tensorboard'), {}, settings);
}

/**
 * `POST storage/check`: test a storage location with the server's credentials (which
 * identity, endpoint, bucket, list, write); a 403 when the endpoint is not allowed.
 */
export function checkStorage(
  request: StorageCheckRequest,
  settings?: ServerConnection.ISettings
): Promise<StorageCheck> {
  return post<StorageCheck>('storage/check', request, settings);
}

/**
 * `GET cvat/connection`: the CVAT connection test with the Jupyter server's environment
 * (CVAT_HOST, CVAT_ACCESS_TOKEN...): host, user, server version, or why not (never a
 * secret).
 */
export function getCvatConnection(
  settings?: ServerConnection.ISettings
): Promise<CvatConnection> {
  return requestAPI<CvatConnection>('cvat/connection', {}, settings);
}

/** `GET jobs/{id}/plan`: a page of a sync preview's plan (a 409 while it has none). */
export function getSyncPlan(
  jobId: string,
  page: { offset?: number; limit?: number } = {},
  settings?: ServerConnection.ISettings
): Promise<SyncPlanPage> {
  const offset = Math.max(0, Math.floor(page.offset ?? 0));
  const limit = Math.max(1, Math.floor(page.limit ?? 500));
  return requestAPI<SyncPlanPage>(
    `${jobPath(jobId, 'plan')}?offset=${offset}&limit=${limit}`,
    {},
    settings
  );
}

/**
 * The websocket URL of `jobs/{id}/stream`, resuming from byte offsets of job.log and
 * events.jsonl; the token is appended when the settings ask for it.
 */
export function jobStreamURL(
  jobId: string,
  offsets: { log?: number; events?: number } = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const query: Record<string, string> = {
    log_offset: String(offsets.log ?? 0),
    events_offset: String(offsets.events ?? 0)
  };
  if (settings.appendToken && settings.token) {
    query.token = settings.token;
  }
  return (
    URLExt.join(settings.wsUrl, API_NAMESPACE, jobPath(jobId, 'stream')) +
    URLExt.objectToQueryString(query)
  );
}

/** One text frame of the job stream, parsed (the server sends StreamMessage JSON). */
export function parseStreamMessage(frame: string): StreamMessage {
  return JSON.parse(frame) as StreamMessage;
}
