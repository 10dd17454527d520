/** The command ids of the extension (palette category "CVAT Train"). */
export const CommandIDs = {
  openPanel: 'cvat-train:open-panel',
  validate: 'cvat-train:validate',
  trainOn: 'cvat-train:train-on',
  newTraining: 'cvat-train:new-training',
  syncUp: 'cvat-train:sync-up',
  syncDown: 'cvat-train:sync-down',
  autoAnnotate: 'cvat-train:auto-annotate',
  openJob: 'cvat-train:open-job',
  cancelJob: 'cvat-train:cancel-job',
  openTensorBoard: 'cvat-train:open-tensorboard',
  refreshJobs: 'cvat-train:refresh-jobs',
  previewTemplate: 'cvat-train:preview-template-form'
} as const;

/** The palette category. */
export const PALETTE_CATEGORY = 'CVAT Train';
