import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { CvatTrainPanel } from './panel';

/** Adds the CVAT Train panel to the left sidebar. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-cvat-train:plugin',
  description:
    'A sidebar panel to validate CVAT exports, train detectors and auto-annotate images.',
  autoStart: true,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null) => {
    const panel = new CvatTrainPanel();
    app.shell.add(panel, 'left', { rank: 900 });
    if (restorer) {
      restorer.add(panel, panel.id);
    }
  }
};

export default plugin;
