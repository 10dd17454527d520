/** What the panel's React parts get from the plugin: models, translation and actions. */
import type { TranslationBundle } from '@jupyterlab/translation';

import type { IAnnotatePrefill } from '../annotate/mapping';
import type { JobsModel } from '../jobs/model';
import type { PanelState } from './state';

/** The user's settings (schema/plugin.json) the parts read. */
export interface IPanelSettings {
  confirmDestructiveActions: boolean;
  defaultDevice: string;
  tensorboardOpenIn: 'tab' | 'browser';
}

/**
 * The workspace's state database (JupyterLab's IStateDB, keys prefixed with the plugin
 * id), for what the panel remembers across reloads: the Train form's draft, recent
 * sync pairs. Absent (no IStateDB) means nothing is remembered.
 */
export interface IPanelStore {
  fetch: (key: string) => Promise<unknown>;
  save: (key: string, value: unknown) => Promise<void>;
}

export interface IPanelContext {
  model: JobsModel;
  state: PanelState;
  trans: TranslationBundle;
  settings: () => IPanelSettings;
  store?: IPanelStore;
  /** The file browser's selected item (path relative to the server root), or null. */
  browserSelection: () => string | null;
  /** Let the user pick a file or folder (a file dialog); null when cancelled. */
  pickPath?: () => Promise<string | null>;
  /** Open the job view of a job. */
  openJob: (jobId: string) => void;
  /** Show a path (file or folder) in the file browser. */
  showInBrowser: (path: string) => void;
  /** Open a job's TensorBoard. */
  openTensorBoard: (jobId: string) => void;
  /** Bring the Train section into view. */
  showTrain: () => void;
  /** Open the Auto-annotate tab, prefilled (images, model folder, settings). */
  autoAnnotate?: (prefill: IAnnotatePrefill) => void;
  /** Bring the Datasets section into view. */
  showDatasets?: () => void;
  /** The CVAT section's push form, prefilled with `source` (an annotate job's folder). */
  pushToCvat?: (source: string) => void;
}
