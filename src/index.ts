/**
 * The CVAT Train frontend: the sidebar panel (Datasets, Train, Jobs), a main-area tab per
 * job (restored after a reload), TensorBoard tabs, notifications when jobs end, a
 * status-bar item and palette commands; all fed by one JobsModel.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  Notification,
  WidgetTracker
} from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { FileDialog, IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStateDB } from '@jupyterlab/statedb';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { IFrame, ToolbarButton } from '@jupyterlab/ui-components';
import type { Contents } from '@jupyterlab/services';
import type {
  ReadonlyPartialJSONObject,
  ReadonlyPartialJSONValue
} from '@lumino/coreutils';

import { startTensorBoard, type Job } from './api';
import { CommandIDs, PALETTE_CATEGORY } from './commands';
import { cvatTrainIcon } from './icons';
import { AnnotateDialog, AnnotateRequest } from './annotate/AnnotateDialog';
import type { IAnnotatePrefill } from './annotate/mapping';
import { JobView } from './jobs/JobView';
import { JobsModel } from './jobs/model';
import { StatusItem } from './jobs/StatusItem';
import { registerJobOutput } from './mime';
import type { IPanelContext, IPanelSettings } from './panel/context';
import { CvatTrainPanel, PANEL_ID, ServerStatus } from './panel/Panel';
import { PanelState } from './panel/state';
import { syncDownTouches } from './sync/refresh';
import { TemplatePreview } from './train/preview';

const PLUGIN_ID = 'jupyter-cvat-train:plugin';

interface ISettings extends IPanelSettings {
  fallbackPollInterval: number;
  notifyOnJobEnd: 'always' | 'failures' | 'never';
  logBufferLines: number;
  showStatusBarItem: boolean;
}

const DEFAULTS: ISettings = {
  fallbackPollInterval: 10000,
  defaultDevice: 'auto',
  confirmDestructiveActions: true,
  notifyOnJobEnd: 'always',
  logBufferLines: 5000,
  tensorboardOpenIn: 'tab',
  showStatusBarItem: true
};

/** TensorBoard's page in a sandboxed iframe (jupyter-server-proxy's sandbox list). */
const TENSORBOARD_SANDBOX: IFrame.SandboxExceptions[] = [
  'allow-same-origin',
  'allow-scripts',
  'allow-popups',
  'allow-forms',
  'allow-downloads',
  'allow-modals'
];

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'A sidebar panel to validate CVAT exports, train detectors and follow the jobs.',
  autoStart: true,
  optional: [
    ILayoutRestorer,
    ISettingRegistry,
    ITranslator,
    ICommandPalette,
    IStatusBar,
    IDefaultFileBrowser,
    IDocumentManager,
    IStateDB,
    IRenderMimeRegistry
  ],
  activate: async (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    registry: ISettingRegistry | null,
    translator: ITranslator | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    browser: IDefaultFileBrowser | null,
    docManager: IDocumentManager | null,
    stateDB: IStateDB | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyter_cvat_train');
    let settings: ISettings = { ...DEFAULTS };
    const settingsLoaded = registry
      ? registry
          .load(PLUGIN_ID)
          .then(loaded => {
            const read = () => {
              settings = {
                ...DEFAULTS,
                ...(loaded.composite as Partial<ISettings>)
              };
              model.setPollInterval(settings.fallbackPollInterval);
              model.maxLogLines = settings.logBufferLines;
            };
            loaded.changed.connect(read);
            read();
          })
          .catch(reason =>
            console.warn('cvat-train: settings not loaded', reason)
          )
      : Promise.resolve();

    const model = new JobsModel({
      settings: app.serviceManager.serverSettings,
      pollInterval: DEFAULTS.fallbackPollInterval,
      maxLogLines: DEFAULTS.logBufferLines
    });
    void model.refresh().catch(() => undefined); // the list first: settings load meanwhile
    if (rendermime) {
      // job outputs in notebooks: the live card, on this one store (src/mime)
      registerJobOutput(rendermime, {
        store: model,
        commands: app.commands,
        trans,
        settings: app.serviceManager.serverSettings
      });
    }
    const state = new PanelState();
    const server = new ServerStatus();
    const tracker = new WidgetTracker<JobView>({ namespace: 'cvat-train-job' });
    const tensorboards = new WidgetTracker<MainAreaWidget<IFrame>>({
      namespace: 'cvat-train-tensorboard'
    });

    const browserSelection = (): string | null => {
      if (!browser) {
        return null;
      }
      const first = browser.selectedItems().next();
      return first && !first.done ? first.value.path : null;
    };

    const openJob = (jobId: string): JobView => {
      const existing = tracker.find(w => w.jobId === jobId);
      if (existing) {
        app.shell.activateById(existing.id);
        return existing;
      }
      const view = new JobView(jobId, ctx);
      void tracker.add(view);
      app.shell.add(view, 'main');
      app.shell.activateById(view.id);
      return view;
    };

    const openTensorBoard = async (jobId: string) => {
      let url: string;
      try {
        url = (await startTensorBoard(jobId, app.serviceManager.serverSettings))
          .url;
      } catch (error) {
        Notification.error(
          trans.__('TensorBoard did not start: %1', (error as Error).message),
          {
            autoClose: false
          }
        );
        return;
      }
      if (settings.tensorboardOpenIn === 'browser') {
        window.open(url, '_blank', 'noopener');
        return;
      }
      const id = `jp-CvatTrain-tensorboard-${jobId}`;
      const existing = tensorboards.find(w => w.id === id);
      if (existing) {
        app.shell.activateById(id);
        return;
      }
      const frame = new IFrame({
        sandbox: TENSORBOARD_SANDBOX,
        referrerPolicy: 'same-origin'
      });
      frame.url = url;
      frame.addClass('jp-CvatTrain-tensorboardFrame');
      const widget = new MainAreaWidget({ content: frame });
      widget.id = id;
      widget.title.label = trans.__('TensorBoard: %1', jobId);
      widget.title.icon = cvatTrainIcon;
      widget.title.closable = true;
      widget.toolbar.addItem(
        'open-in-browser',
        new ToolbarButton({
          label: trans.__('Open in a browser tab'),
          tooltip: trans.__('Open TensorBoard in a new browser tab'),
          onClick: () => window.open(url, '_blank', 'noopener')
        })
      );
      void tensorboards.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(id);
    };

    // the Auto-annotate tab: one, prefilled by the commands that open it
    const annotateRequest = new AnnotateRequest();
    let annotateTab: AnnotateDialog | null = null;
    const annotateTracker = new WidgetTracker<AnnotateDialog>({
      namespace: 'cvat-train-annotate'
    });
    const openAnnotate = (prefill: IAnnotatePrefill) => {
      if (!annotateTab || annotateTab.isDisposed) {
        annotateTab = new AnnotateDialog(ctx, annotateRequest);
        void annotateTracker.add(annotateTab);
        app.shell.add(annotateTab, 'main');
      }
      annotateRequest.prefill(prefill);
      app.shell.activateById(annotateTab.id);
    };

    const ctx: IPanelContext = {
      model,
      state,
      trans,
      settings: () => settings,
      store: stateDB
        ? {
            fetch: key => stateDB.fetch(`${PLUGIN_ID}:${key}`),
            save: async (key, value) => {
              await stateDB.save(
                `${PLUGIN_ID}:${key}`,
                value as ReadonlyPartialJSONValue
              );
            }
          }
        : undefined,
      browserSelection,
      pickPath: docManager
        ? async () => {
            const result = await FileDialog.getOpenFiles({
              manager: docManager,
              title: trans.__('Choose a CVAT export, model or checkpoint'),
              translator: translator ?? nullTranslator
            });
            const item = result.button.accept ? result.value?.[0] : undefined;
            return item ? item.path : null;
          }
        : undefined,
      openJob: jobId => void openJob(jobId),
      showInBrowser: path =>
        void app.commands.execute('filebrowser:go-to-path', {
          path: '/' + path,
          dontShowBrowser: false
        }),
      openTensorBoard: jobId => void openTensorBoard(jobId),
      showTrain: () => {
        app.shell.activateById(PANEL_ID);
        panel.expand(panel.train);
      },
      autoAnnotate: prefill => openAnnotate(prefill),
      showDatasets: () => {
        app.shell.activateById(PANEL_ID);
        panel.expand(panel.datasets);
      },
      pushToCvat: source => {
        app.shell.activateById(PANEL_ID);
        panel.openCvatPush(source);
      }
    };

    const panel = new CvatTrainPanel(ctx, server);
    app.shell.add(panel, 'left', { rank: 900 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
      void restorer.restore(tracker, {
        command: CommandIDs.openJob,
        args: widget => ({ jobId: widget.jobId }),
        name: widget => widget.jobId
      });
      void restorer.restore(annotateTracker, {
        command: CommandIDs.autoAnnotate,
        name: () => 'auto-annotate'
      });
    }

    // the server check, again when the server comes back
    void server.refresh();
    // the header follows the jobs' reachability: gone (said so), back (checked again)
    model.changed.connect(() => {
      const unreachable = server.check.kind === 'unreachable';
      if (unreachable !== (model.reachability === 'unreachable')) {
        void server.refresh();
      }
    });

    // an annotate job's zip, one click away from its notification
    const annotateZipAction = (job: Job) => {
      const zip = job.outputs.output;
      return job.kind === 'annotate' &&
        job.state === 'succeeded' &&
        typeof zip === 'string' &&
        !zip.startsWith('/')
        ? [
            {
              label: trans.__('Show in file browser'),
              callback: () => ctx.showInBrowser(zip)
            }
          ]
        : [];
    };

    // a sync down that ended may have changed the folder the file browser shows
    model.jobEnded.connect((_, job: Job) => {
      if (browser && syncDownTouches(job, browser.model.path)) {
        void browser.model.refresh().catch(() => undefined);
      }
    });

    model.jobEnded.connect((_, job: Job) => {
      const failed = job.state !== 'succeeded';
      if (
        settings.notifyOnJobEnd === 'never' ||
        (settings.notifyOnJobEnd === 'failures' && !failed)
      ) {
        return;
      }
      const what = `${job.kind} ${job.id}`;
      const message =
        job.state === 'succeeded'
          ? trans.__('Job %1 succeeded. %2', what, job.message)
          : job.state === 'failed'
            ? trans.__('Job %1 failed: %2', what, job.message)
            : trans.__('Job %1 was cancelled.', what);
      Notification.emit(
        message,
        job.state === 'succeeded'
          ? 'success'
          : job.state === 'failed'
            ? 'error'
            : 'warning',
        {
          autoClose: failed ? false : 10000,
          actions: [
            { label: trans.__('Open'), callback: () => void openJob(job.id) },
            ...annotateZipAction(job)
          ]
        }
      );
    });

    app.commands.addCommand(CommandIDs.openPanel, {
      label: trans.__('Open the CVAT Train panel'),
      execute: () => app.shell.activateById(PANEL_ID)
    });
    app.commands.addCommand(CommandIDs.openJob, {
      label: args =>
        args.jobId
          ? trans.__('Open job %1', String(args.jobId))
          : trans.__('Open a job'),
      execute: args => {
        const jobId = String(args.jobId ?? '');
        return jobId ? openJob(jobId) : undefined;
      }
    });
    const isExport = () => {
      const path = browserSelection();
      if (!path || !browser) {
        return false;
      }
      const first = browser.selectedItems().next();
      return first && !first.done
        ? first.value.type === 'directory' || /\.zip$/i.test(path)
        : false;
    };
    app.commands.addCommand(CommandIDs.validate, {
      label: trans.__('Validate CVAT export'),
      icon: cvatTrainIcon,
      caption: trans.__('Validate the selected zip or folder as a CVAT export'),
      isVisible: isExport,
      execute: async () => {
        const path = browserSelection();
        if (path) {
          state.datasetPath = path;
        }
        app.shell.activateById(PANEL_ID);
        panel.expand(panel.datasets);
        await state.validate();
      }
    });
    app.commands.addCommand(CommandIDs.trainOn, {
      label: trans.__('Train a model on this export…'),
      icon: cvatTrainIcon,
      isVisible: isExport,
      execute: () => {
        const path = browserSelection();
        if (path) {
          state.prefillTrain({ dataset: path }, 'dataset');
        }
        ctx.showTrain();
      }
    });
    app.commands.addCommand(CommandIDs.autoAnnotate, {
      label: args =>
        args.fromBrowser
          ? trans.__('Auto-annotate with a model…')
          : trans.__('Auto-annotate images…'),
      icon: cvatTrainIcon,
      caption: trans.__(
        'Pre-annotate images (a folder, a zip or a CVAT export) with a trained model'
      ),
      isVisible: args => (args.fromBrowser ? isExport() : true),
      execute: args => {
        const images = args.fromBrowser ? browserSelection() : null;
        openAnnotate({
          ...(images ? { images } : {}),
          ...(typeof args.model === 'string' ? { model: args.model } : {})
        });
      }
    });
    // Sync: the file browser's folder menu and the palette open the Sync section
    const isFolder = () => {
      if (!browser) {
        return false;
      }
      const first = browser.selectedItems().next();
      return !!first && !first.done && first.value.type === 'directory';
    };
    for (const [id, direction] of [
      [CommandIDs.syncUp, 'up'],
      [CommandIDs.syncDown, 'down']
    ] as const) {
      app.commands.addCommand(id, {
        label:
          direction === 'up'
            ? trans.__('Sync to object storage…')
            : trans.__('Sync from object storage…'),
        icon: cvatTrainIcon,
        caption:
          direction === 'up'
            ? trans.__(
                'Open the Sync section with this folder, to copy it to object storage'
              )
            : trans.__(
                'Open the Sync section with this folder, to copy object storage into it'
              ),
        isVisible: args => (args.fromBrowser ? isFolder() : true),
        execute: args => {
          app.shell.activateById(PANEL_ID);
          panel.openSync(
            args.fromBrowser ? browserSelection() : null,
            direction
          );
        }
      });
    }
    // "Preview training form" on a template file (.yaml / .yml): the file browser's and
    // the editor's context menus; a main-area tab per file, checked again on each save
    const isTemplateFile = (path: string | null): path is string =>
      !!path && /\.ya?ml$/i.test(path);
    const editorPath = (): string | null => {
      const current = app.shell.currentWidget;
      return current && docManager
        ? (docManager.contextForWidget(current)?.path ?? null)
        : null;
    };
    const previewPath = (args: ReadonlyPartialJSONObject): string | null =>
      typeof args.path === 'string'
        ? args.path
        : args.fromBrowser
          ? browserSelection()
          : editorPath();
    const previews = new Map<string, MainAreaWidget<TemplatePreview>>();
    let previewCount = 0;
    const openPreview = (path: string) => {
      const open = previews.get(path);
      if (open && !open.isDisposed) {
        open.content.refresh();
        app.shell.activateById(open.id);
        return;
      }
      const content = new TemplatePreview(
        path,
        trans,
        app.serviceManager.serverSettings
      );
      const widget = new MainAreaWidget({ content });
      widget.id = `jp-CvatTrain-preview-${++previewCount}`;
      widget.title.label = trans.__('Form: %1', PathExt.basename(path));
      widget.title.caption = trans.__('Training form preview of %1', path);
      widget.title.icon = cvatTrainIcon;
      widget.title.closable = true;
      const onSaved = (_: unknown, change: Contents.IChangedArgs) => {
        if (change.type === 'save' && change.newValue?.path === path) {
          content.refresh();
        }
      };
      app.serviceManager.contents.fileChanged.connect(onSaved);
      widget.disposed.connect(() => {
        app.serviceManager.contents.fileChanged.disconnect(onSaved);
        previews.delete(path);
      });
      previews.set(path, widget);
      app.shell.add(widget, 'main', { mode: 'split-right' });
      app.shell.activateById(widget.id);
    };
    app.commands.addCommand(CommandIDs.previewTemplate, {
      label: trans.__('Preview training form'),
      icon: cvatTrainIcon,
      caption: trans.__(
        'Show the Train form this template file gives, or its problems (checked again on each save)'
      ),
      isVisible: args => isTemplateFile(previewPath(args)),
      execute: args => {
        const path = previewPath(args);
        if (isTemplateFile(path)) {
          openPreview(path);
        }
      }
    });
    app.commands.addCommand(CommandIDs.newTraining, {
      label: trans.__('New training…'),
      execute: () => ctx.showTrain()
    });
    app.commands.addCommand(CommandIDs.refreshJobs, {
      label: trans.__('Refresh the CVAT Train job list'),
      execute: () => model.refresh().catch(() => undefined)
    });
    // the job of args.jobId (a notebook's job output), else the current job tab's
    const currentJob = (args: { jobId?: unknown } = {}) =>
      typeof args.jobId === 'string' && args.jobId
        ? model.get(args.jobId)
        : tracker.currentWidget
          ? model.get(tracker.currentWidget.jobId)
          : undefined;
    app.commands.addCommand(CommandIDs.cancelJob, {
      label: trans.__('Cancel the current job'),
      isEnabled: args => {
        const job = currentJob(args);
        return !!job && (job.state === 'queued' || job.state === 'running');
      },
      execute: async args => {
        const job = currentJob(args);
        if (job) {
          await model.cancel(job.id);
        }
      }
    });
    app.commands.addCommand(CommandIDs.openTensorBoard, {
      label: trans.__("Open the current job's TensorBoard"),
      isEnabled: args => currentJob(args)?.kind === 'train',
      execute: args => {
        const job = currentJob(args);
        return job ? openTensorBoard(job.id) : undefined;
      }
    });
    if (palette) {
      for (const command of [
        CommandIDs.openPanel,
        CommandIDs.validate,
        CommandIDs.newTraining,
        CommandIDs.syncUp,
        CommandIDs.syncDown,
        CommandIDs.autoAnnotate,
        CommandIDs.refreshJobs,
        CommandIDs.cancelJob,
        CommandIDs.openTensorBoard
      ]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }

    if (statusBar) {
      const item = new StatusItem(model, trans, () =>
        app.shell.activateById(PANEL_ID)
      );
      statusBar.registerStatusItem('jupyter-cvat-train:status', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => settings.showStatusBarItem
      });
    }

    await settingsLoaded;
  }
};

export default plugin;
