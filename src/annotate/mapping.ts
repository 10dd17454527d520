/**
 * The Auto-annotate dialog's logic, kept apart from React so it is unit-tested:
 * the class mapping table (model labels → target labels), what it sends as the job's
 * `mapping`, what it flags before start, and the trained models of finished train jobs.
 *
 * The rules follow the core (jupyter_cvat_train/annotate/mapping.py): a model label maps
 * to the target label of the same name, compared case-insensitively; several model labels
 * may map to one target label; an empty target drops the label; with a CVAT export as
 * input, a target must be one of the export's labels.
 */
import type { Job } from '../api';

/** One row of the mapping table: a model label and its target ('' = drop). */
export interface IMappingRow {
  model: string;
  target: string;
}

/**
 * The table's first state: each model label mapped to the target label of the same name
 * (case-insensitive), or dropped when the export has none; without target labels (plain
 * images) each label keeps its name.
 *
 * @param modelLabels the model's labels (classes.csv order).
 * @param targetLabels the export's labels, or null for plain images.
 */
export function initialMapping(
  modelLabels: readonly string[],
  targetLabels: readonly string[] | null
): IMappingRow[] {
  if (!targetLabels) {
    return modelLabels.map(model => ({ model, target: model }));
  }
  const byLower = new Map<string, string>();
  for (const t of targetLabels) {
    if (!byLower.has(t.toLowerCase())) {
      byLower.set(t.toLowerCase(), t);
    }
  }
  return modelLabels.map(model => ({
    model,
    target: targetLabels.includes(model)
      ? model
      : (byLower.get(model.toLowerCase()) ?? '')
  }));
}

/**
 * Keep the user's choices when the labels change: a row whose model label was there
 * before keeps its target; new rows get the initial mapping.
 */
export function mergeMapping(
  previous: readonly IMappingRow[],
  modelLabels: readonly string[],
  targetLabels: readonly string[] | null
): IMappingRow[] {
  const before = new Map(previous.map(r => [r.model, r.target]));
  return initialMapping(modelLabels, targetLabels).map(row =>
    before.has(row.model) ? { ...row, target: before.get(row.model)! } : row
  );
}

/** What the table says, for its notes and the Start button. */
export interface IMappingCheck {
  /** Rows whose target is not a label of the export: "model → target" texts. */
  unknown: string[];
  /** Model labels dropped (no target). */
  dropped: string[];
  /** The export's labels no model label maps to. */
  unmappedTargets: string[];
  /** Model labels whose detections are kept. */
  kept: number;
}

/**
 * Check the table against the export's labels (none for plain images): a target that is
 * not one of them (case-insensitively) is flagged; dropped and unmapped labels listed.
 */
export function checkMapping(
  rows: readonly IMappingRow[],
  targetLabels: readonly string[] | null
): IMappingCheck {
  const lower = new Set((targetLabels ?? []).map(t => t.toLowerCase()));
  const unknown: string[] = [];
  const dropped: string[] = [];
  const used = new Set<string>();
  for (const row of rows) {
    const target = row.target.trim();
    if (!target) {
      dropped.push(row.model);
      continue;
    }
    used.add(target.toLowerCase());
    if (targetLabels && !lower.has(target.toLowerCase())) {
      unknown.push(`${row.model} → ${target}`);
    }
  }
  const unmappedTargets = (targetLabels ?? []).filter(
    t => !used.has(t.toLowerCase())
  );
  return {
    unknown,
    dropped,
    unmappedTargets,
    kept: rows.length - dropped.length
  };
}

/**
 * The job spec's `mapping`: every model label with its target ('' drops it), so the job
 * does exactly what the table shows.
 */
export function mappingSpec(
  rows: readonly IMappingRow[]
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const row of rows) {
    out[row.model] = row.target.trim();
  }
  return out;
}

/** What the Auto-annotate form is opened with (a command, a job's "Run again"). */
export interface IAnnotatePrefill {
  images?: string;
  model?: string;
  threshold?: number;
  maxDetections?: number;
  format?: string;
  keepExisting?: boolean;
  preview?: number;
  device?: string;
  /** model label -> target label ('' or null drops it) */
  mapping?: Record<string, string | null>;
}

/**
 * The prefill of "Run again" for an annotate job: its spec (job.json, as the API shows
 * it) as the form's fields; the output is left out (it exists now: a new one is made).
 */
export function annotatePrefillOf(
  spec: Record<string, unknown>
): IAnnotatePrefill {
  const out: IAnnotatePrefill = {};
  const text = (k: string) =>
    typeof spec[k] === 'string' ? (spec[k] as string) : undefined;
  const num = (k: string) =>
    typeof spec[k] === 'number' ? (spec[k] as number) : undefined;
  out.images = text('images');
  out.model = text('model') ?? text('model_dir');
  out.threshold = num('threshold');
  out.maxDetections = num('max_detections');
  out.format = text('format');
  out.preview = num('preview');
  out.device = text('device');
  if (typeof spec.keep_existing === 'boolean') {
    out.keepExisting = spec.keep_existing;
  }
  const mapping = spec.mapping;
  if (mapping && typeof mapping === 'object' && !Array.isArray(mapping)) {
    out.mapping = mapping as Record<string, string | null>;
  } else if (Array.isArray(mapping)) {
    out.mapping = Object.fromEntries(
      mapping
        .filter((p): p is string => typeof p === 'string' && p.includes('='))
        .map(p => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)])
    );
  }
  for (const key of Object.keys(out) as (keyof IAnnotatePrefill)[]) {
    if (out[key] === undefined) {
      delete out[key];
    }
  }
  return out;
}

/** A trained model a finished train job left: what to show, and its folder. */
export interface ITrainedModel {
  label: string;
  path: string;
  jobId: string;
}

/** The model folders of train jobs that succeeded, newest first. */
export function trainedModels(jobs: readonly Job[]): ITrainedModel[] {
  const out: ITrainedModel[] = [];
  for (const job of jobs) {
    if (job.kind !== 'train' || job.state !== 'succeeded') {
      continue;
    }
    const template = String(job.spec?.template ?? '');
    const dataset = String(job.spec?.dataset ?? '');
    const map =
      typeof job.outputs.map === 'number'
        ? ` · mAP ${job.outputs.map.toFixed(3)}`
        : '';
    out.push({
      label: `${template} · ${dataset}${map} (${job.id})`,
      path: `${job.dir}/output/model`,
      jobId: job.id
    });
  }
  return out.sort((a, b) => (a.jobId < b.jobId ? 1 : -1));
}

/**
 * Where the view fetches a file an annotate job names (a path relative to the server
 * root, as the API shows it): beneath the job's output folder through
 * `jobs/{id}/files/…`, else through the Contents API's `files/…` (inside the root); null
 * for a path outside the root (absolute), which the browser cannot reach.
 */
export function fileRoute(
  job: Pick<Job, 'id' | 'dir'>,
  path: string
): { kind: 'job'; rel: string } | { kind: 'contents'; path: string } | null {
  const prefix = `${job.dir}/output/`;
  if (path.startsWith(prefix)) {
    return { kind: 'job', rel: path.slice(prefix.length) };
  }
  if (path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path)) {
    return null;
  }
  return { kind: 'contents', path };
}
