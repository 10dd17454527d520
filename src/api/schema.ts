/**
 * The request, reply and websocket message shapes of {base_url}cvat-train/api/.
 *
 * GENERATED from jupyter_cvat_train/server/api-schema.json by scripts/generate-api.js:
 * do not edit; change the schema, then run `jlpm generate:api`.
 */

export type JobKind =
  | 'train'
  | 'annotate'
  | 'sync'
  | 'validate'
  | 'cvat-pull'
  | 'cvat-push'
  | 'cvat-auto-annotate';
export type JobState =
  'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
/**
 * ISO 8601, as the job runtime writes it (UTC, milliseconds, Z).
 */
export type Timestamp = string;
/**
 * Where the job runs: 'local' (a process on the server's machine) or 'ray' (a Ray job on the cluster set by CvatTrainApp.ray_address). Omitted or null: the server's CvatTrainApp.job_backend. An unknown name is a 400 naming the valid ones; 'ray' on a server without a cluster is a 409.
 */
export type JobBackendName = ('local' | 'ray') | null;
/**
 * The body of POST jobs, by kind; paths are relative to the server root.
 */
export type JobSpec =
  | TrainSpec
  | AnnotateSpec
  | SyncSpec
  | ValidateSpec
  | CvatPullSpec
  | CvatPushSpec
  | CvatAutoAnnotateSpec;
/**
 * A text frame of WS jobs/{job_id}/stream (JSON).
 */
export type StreamMessage =
  | StreamStateMessage
  | StreamLogMessage
  | StreamEventMessage
  | StreamEndMessage
  | StreamErrorMessage;

/**
 * The JSON body of every 4xx/5xx answer of the REST routes.
 */
export interface ApiError {
  /**
   * What went wrong and how to fix it, for a person.
   */
  message: string;
  /**
   * The HTTP status, repeated.
   */
  code: number;
  /**
   * Extra JSON for the client or null: the dataset's validation report for a 422 of POST jobs, {error} for a template or parameter mistake.
   */
  details: {
    [k: string]: unknown | undefined;
  } | null;
}
export interface VersionReply {
  /**
   * The Python package version, e.g. "0.1.0".
   */
  version: string;
}
/**
 * One form field of a template, in Onepanel's parameter schema.
 */
export interface TemplateParameter {
  name: string;
  /**
   * The default, as text (YAML for textarea.textarea).
   */
  value?: string | null;
  displayName?: string;
  type?:
    | 'input.text'
    | 'input.number'
    | 'input.radio'
    | 'select.select'
    | 'textarea.textarea';
  visibility?: 'public' | 'protected' | 'internal' | 'private';
  required?: boolean;
  hint?: string;
  options?: {
    [k: string]: unknown | undefined;
  }[];
  [k: string]: unknown | undefined;
}
/**
 * One valid key of the hyperparameters text.
 */
export interface HyperparameterKey {
  type: 'int' | 'float' | 'str' | 'bool';
  /**
   * The template's default (null: none, derived from the data).
   */
  default: number | string | boolean | null;
  help: string;
  choices?: string[];
  min?: number;
  max?: number;
}
/**
 * A model template: its YAML document as written (Onepanel's schema), plus the parsed defaults and the valid hyperparameter keys.
 */
export interface Template {
  name: string;
  displayName?: string;
  /**
   * e.g. pytorch.
   */
  framework?: string;
  /**
   * A registered model family, e.g. ssdlite, fasterrcnn.
   */
  family: string;
  task?: 'detection' | 'instance-segmentation';
  description?: string;
  parameters: TemplateParameter[];
  /**
   * Hyperparameter name -> default value; epochs null when derived from the data.
   */
  defaults: {
    [k: string]: unknown | undefined;
  };
  hyperparameter_keys: {
    [k: string]: HyperparameterKey;
  };
  [k: string]: unknown | undefined;
}
export interface TemplateList {
  /**
   * The recommended default first, then by name.
   */
  templates: Template[];
  /**
   * The template files of the user folders that were skipped, one message each: the file, the line where known, the problem and the fix.
   */
  broken?: string[];
}
export interface ValidateRequest {
  /**
   * A CVAT export (zip or folder) relative to the server root (or absolute inside it).
   */
  path: string;
  /**
   * Force a format id; null or absent: detect it.
   */
  format?: string | null;
}
/**
 * One problem found in an export.
 */
export interface Finding {
  /**
   * A stable id, e.g. missing-image, degenerate-box.
   */
  code: string;
  severity: 'error' | 'warning';
  message: string;
  /**
   * The file or image it is about; null for the export.
   */
  item: string | null;
  /**
   * What to do about it.
   */
  hint: string;
}
/**
 * Percentiles of a box measure in pixels; empty when the export has no valid box.
 */
export interface BoxStats {
  min?: number;
  p5?: number;
  median?: number;
  mean?: number;
  p95?: number;
  max?: number;
}
/**
 * Box width, height and area statistics; empty when the export could not be read.
 */
export interface BoxSize {
  width?: BoxStats;
  height?: BoxStats;
  area?: BoxStats;
}
/**
 * The validation report of a CVAT export (also `cvat-train validate --json`).
 */
export interface ValidationReport {
  /**
   * The export as the server resolved it.
   */
  path: string;
  /**
   * The format id; null when unreadable.
   */
  format: string | null;
  images: number;
  annotations: number;
  /**
   * Label name -> annotations.
   */
  labels: {
    [k: string]: number | undefined;
  };
  /**
   * Subset name -> images.
   */
  subsets: {
    [k: string]: number | undefined;
  };
  errors: Finding[];
  warnings: Finding[];
  box_size: BoxSize;
  /**
   * True when there is no error: the export can be trained on.
   */
  ok: boolean;
}
export interface JobProgress {
  done: number;
  total: number | null;
  /**
   * e.g. images, steps, bytes.
   */
  unit: string | null;
}
/**
 * A job as the server lists it.
 */
export interface Job {
  id: string;
  kind: JobKind;
  state: JobState;
  /**
   * Why it failed or was cancelled, or the kind's final message.
   */
  message: string;
  progress: JobProgress;
  created_at: Timestamp | null;
  started_at: Timestamp | null;
  ended_at: Timestamp | null;
  /**
   * The job folder, relative to the server root (posix) when inside it, else absolute.
   */
  dir: string;
  /**
   * What the job returned when it ended (per kind: e.g. a validation summary, the model folder).
   */
  outputs: {
    [k: string]: unknown | undefined;
  };
  /**
   * The job's spec (job.json) as queued: kind, template, dataset, parameters, ...; path fields relative to the server root when inside it. Null when job.json is missing, unreadable or too long to show.
   */
  spec: {
    [k: string]: unknown | undefined;
  } | null;
}
export interface JobList {
  /**
   * In creation order.
   */
  jobs: Job[];
}
/**
 * POST jobs for a training job. Other keys are kept in job.json as given.
 */
export interface TrainSpec {
  kind: 'train';
  /**
   * A template name (GET templates).
   */
  template: string;
  /**
   * A CVAT export inside the server root.
   */
  dataset: string;
  format?: string | null;
  /**
   * The template's form values {name: value}, or hyperparameter text(s).
   */
  parameters?:
    | {
        [k: string]: unknown | undefined;
      }
    | string
    | unknown[]
    | null;
  /**
   * Fine-tune from (or with resume, continue) this model/checkpoint path.
   */
  checkpoint?: string | null;
  resume?: boolean;
  /**
   * auto, cpu, cuda or cuda:N.
   */
  device?: string | null;
  epochs?: number | string | null;
  backend?: JobBackendName;
  [k: string]: unknown | undefined;
}
/**
 * POST jobs for an auto-annotation job.
 */
export interface AnnotateSpec {
  kind: 'annotate';
  /**
   * A folder, zip of images or CVAT export.
   */
  images: string;
  /**
   * A trained model folder (model.pt, classes.csv, model.json).
   */
  model: string;
  /**
   * An older name of model (the server takes either).
   */
  model_dir?: string;
  /**
   * The zip to write (a new file unless overwrite).
   */
  output?: string | null;
  format?: 'coco' | 'cvat' | 'yolo';
  threshold?: number;
  max_detections?: number;
  mapping?:
    | {
        [k: string]: (string | null) | undefined;
      }
    | string[];
  keep_existing?: boolean;
  overwrite?: boolean;
  preview?: number;
  engine?: 'torch' | 'onnx';
  device?: string;
  batch_size?: number;
  workers?: number;
  tolerance?: number;
  backend?: JobBackendName;
  [k: string]: unknown | undefined;
}
/**
 * POST jobs for a sync between a workspace folder and object storage.
 */
export interface SyncSpec {
  kind: 'sync';
  direction: 'up' | 'down';
  /**
   * A folder inside the server root.
   */
  workspace: string;
  /**
   * s3://bucket/prefix or file:///path.
   */
  storage: string;
  delete?: boolean;
  dry_run?: boolean;
  checksum?: boolean;
  include?: string | string[];
  exclude?: string | string[];
  endpoint_url?: string | null;
  backend?: JobBackendName;
  [k: string]: unknown | undefined;
}
/**
 * POST jobs for a validation job (the report becomes the job's outputs).
 */
export interface ValidateSpec {
  kind: 'validate';
  dataset: string;
  format?: string | null;
  backend?: JobBackendName;
  [k: string]: unknown | undefined;
}
/**
 * POST jobs to download a CVAT task's export into the workspace (a new zip), then validate it. The CVAT host and credentials come from the server's environment (CVAT_HOST with CVAT_ACCESS_TOKEN or CVAT_USERNAME/CVAT_PASSWORD) or the CVAT SDK's default profile, never from the spec.
 */
export interface CvatPullSpec {
  kind: 'cvat-pull';
  /**
   * The CVAT task id (in the task's URL, /tasks/<id>).
   */
  task_id: number;
  /**
   * A new .zip inside the root, in an existing folder.
   */
  output: string;
  /**
   * cvat (default), coco, yolo, voc, labelme, mot, tfrecord, or a CVAT format name.
   */
  format?: string | null;
  include_images?: boolean | null;
  overwrite?: boolean | null;
  backend?: JobBackendName;
  [k: string]: unknown | undefined;
}
/**
 * POST jobs to send annotations (an annotate job's folder or an annotations zip) to a CVAT task as shapes; labels and images are matched by name before anything is sent.
 */
export interface CvatPushSpec {
  kind: 'cvat-push';
  /**
   * The CVAT task id (in the task's URL, /tasks/<id>).
   */
  task_id: number;
  source: string;
  /**
   * Replace the task's annotations (else add to them).
   */
  replace?: boolean | null;
  backend?: JobBackendName;
  [k: string]: unknown | undefined;
}
/**
 * POST jobs to auto-annotate a CVAT task with a trained model folder, run where the job runs (the CVAT SDK's immediate mode).
 */
export interface CvatAutoAnnotateSpec {
  kind: 'cvat-auto-annotate';
  /**
   * The CVAT task id (in the task's URL, /tasks/<id>).
   */
  task_id: number;
  model: string;
  threshold?: number | null;
  replace?: boolean | null;
  device?: string | null;
  backend?: JobBackendName;
  [k: string]: unknown | undefined;
}
/**
 * A piece of job.log: bytes [offset, next_offset), at most 1 MiB, whole lines while the job runs.
 */
export interface JobLog {
  offset: number;
  /**
   * Ask for this offset next.
   */
  next_offset: number;
  /**
   * UTF-8 decoded (bad bytes replaced).
   */
  text: string;
  state: JobState;
}
export interface TensorBoardReply {
  /**
   * {base_url}proxy/<port>/
   */
  url: string;
  port: number;
}
/**
 * One line of the job's events.jsonl. The job runtime writes {type, time, ...}: state {state, message?}, progress {done, total, unit, ...}, warning {message}, and per kind plan, stage, metrics, summary. A line that is not JSON comes as {type: "unparsed", text}.
 */
export interface JobEvent {
  type: string;
  time?: Timestamp;
  state?: JobState;
  message?: string;
  done?: number;
  total?: number | null;
  unit?: string | null;
  text?: string;
  [k: string]: unknown | undefined;
}
/**
 * The job as it is: first on connect, then whenever its state or message changes.
 */
export interface StreamStateMessage {
  type: 'state';
  job: Job;
}
/**
 * New bytes of job.log [offset, next_offset), whole lines until the job ends.
 */
export interface StreamLogMessage {
  type: 'log';
  offset: number;
  next_offset: number;
  text: string;
}
/**
 * One event, at bytes [offset, next_offset) of events.jsonl.
 */
export interface StreamEventMessage {
  type: 'event';
  offset: number;
  next_offset: number;
  event: JobEvent;
}
/**
 * The job ended (final state); the server then closes the socket (1000).
 */
export interface StreamEndMessage {
  type: 'end';
  job: Job;
}
/**
 * The job was deleted (close 1000) or following it failed (close 1011).
 */
export interface StreamErrorMessage {
  type: 'error';
  message: string;
}
export interface Device {
  /**
   * What a train spec's device takes: auto, cpu or cuda:N.
   */
  id: string;
  /**
   * A name to show (the GPU's model for cuda:N).
   */
  name: string;
  /**
   * A GPU's total memory in bytes.
   */
  memory_bytes?: number;
}
export interface DeviceList {
  devices: Device[];
  /**
   * How many CUDA GPUs torch sees.
   */
  gpus: number;
  /**
   * torch's version, or null when it cannot be imported.
   */
  torch: string | null;
  /**
   * One line for the user: the GPU count, or why none was found.
   */
  note?: string;
}
export interface BackendList {
  /**
   * Where a job without "backend" runs (CvatTrainApp.job_backend).
   */
  default: 'local' | 'ray';
  /**
   * local first, then ray when a cluster is set.
   *
   * @minItems 1
   */
  backends: [Backend, ...Backend[]];
}
export interface Backend {
  /**
   * The name "backend" in POST jobs takes.
   */
  id: 'local' | 'ray';
  /**
   * What the form shows: 'This machine', or 'Ray cluster at <address>'.
   */
  name: string;
  /**
   * The Ray dashboard's URL (http(s)://host:port, never with credentials).
   */
  address?: string;
}
/**
 * The labels of a trained model folder.
 */
export interface ModelLabels {
  /**
   * The folder as the client named it.
   */
  path: string;
  /**
   * Label names; labels[k] has class id k+1.
   *
   * @minItems 1
   */
  labels: [string, ...string[]];
}
/**
 * What an annotate job would find at a path.
 */
export interface AnnotateImages {
  path: string;
  kind: 'folder' | 'zip' | 'export';
  /**
   * How many images would be annotated.
   */
  images: number;
  /**
   * A CVAT export's labels (the target label set); null for plain images.
   */
  labels: string[] | null;
  /**
   * A CVAT export's format id; null for plain images.
   */
  format: string | null;
}
export interface StorageCheckRequest {
  /**
   * s3://bucket/prefix or file:///path (a folder inside the server root).
   */
  storage: string;
  /**
   * An S3-compatible endpoint; must be allowed (as for a sync job).
   */
  endpoint_url?: string | null;
  /**
   * The workspace folder (relative to the server root): adds a 'workspace' step (fails when it and a file:// storage contain each other).
   */
  workspace?: string | null;
  /**
   * Whether to check writing (a probe object put, then deleted).
   */
  write?: boolean;
}
export interface StorageCheckStep {
  name:
    | 'credentials'
    | 'endpoint'
    | 'bucket'
    | 'list'
    | 'write'
    | 'folder'
    | 'workspace';
  status: 'ok' | 'failed' | 'skipped' | 'warning';
  message: string;
  /**
   * What to do ('' when nothing).
   */
  fix: string;
}
/**
 * Who the server is to the storage. Never holds a secret nor a whole key id.
 */
export interface StorageIdentity {
  /**
   * Whether credentials were found (file://: always).
   */
  found: boolean;
  /**
   * Where the credentials come from, in words.
   */
  source: string | null;
  /**
   * botocore's name of the credential provider (env, shared-credentials-file, iam-role, ...).
   */
  method?: string | null;
  profile?: string;
  region?: string;
  /**
   * '…' and the last 4 characters of the access key id.
   */
  access_key_hint?: string | null;
  /**
   * file://: the server process's user.
   */
  user?: string;
}
export interface StorageCheck {
  /**
   * The canonical storage URI.
   */
  storage: string;
  scheme: 's3' | 'file';
  endpoint_url: string | null;
  identity: StorageIdentity;
  steps: StorageCheckStep[];
  ok: boolean;
  seconds: number;
}
export interface SyncPlanAction {
  op: 'copy' | 'update' | 'delete';
  /**
   * The file's path relative to the workspace folder / storage prefix.
   */
  key: string;
  /**
   * Bytes to transfer (0 for a delete).
   */
  bytes: number;
}
export interface SyncPlanPage {
  job_id: string;
  direction: 'up' | 'down';
  storage: string;
  offset: number;
  /**
   * Actions in the whole plan.
   */
  total: number;
  actions: SyncPlanAction[];
  /**
   * Files to copy (absent at the destination).
   */
  copied: number;
  /**
   * Files to update (changed).
   */
  updated: number;
  /**
   * Files to delete at the destination.
   */
  deleted: number;
  /**
   * Files already the same.
   */
  skipped: number;
  /**
   * Keys refused (they would land outside the workspace).
   */
  refused: number;
  /**
   * Bytes to transfer.
   */
  bytes: number;
  /**
   * Whether this page reaches the plan's end.
   */
  complete: boolean;
}
export interface CvatConnection {
  ok: boolean;
  host: string | null;
  user: string | null;
  /**
   * Where the settings came from: 'environment' or 'cvat-sdk profile NAME'.
   */
  source: string | null;
  server_version: string | null;
  message: string;
}
export interface TemplateCheckRequest {
  /**
   * A .yaml / .yml template file, relative to the server root (or absolute inside it).
   */
  path: string;
}
export interface TemplateCheck {
  /**
   * The file, relative to the server root.
   */
  path: string;
  /**
   * Whether the file is a usable template.
   */
  ok: boolean;
  template?: Template;
  /**
   * With ok, for a custom template: what it would run with its parameters' defaults (placeholder paths); empty for a model family's template.
   */
  commands?: {
    /**
     * The training command's argv.
     */
    command?: string[];
    /**
     * The annotate command's argv, or null without one.
     */
    annotate?: string[] | null;
    /**
     * Whether the commands run through /bin/sh (values shell-quoted).
     */
    shell?: boolean;
  };
  /**
   * Without ok: the problems, one 'FILE:LINE: problem and fix' line each (file names relative to the root).
   */
  errors?: string[];
}
