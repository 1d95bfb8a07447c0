// The JupyterLab (and Notebook 7) plugin: registers the Packages sidebar panel, its commands
// (open: palette, Settings menu, launcher; refresh, export, settings: the panel's toolbar),
// its settings, and wires the model to the server's events and the active notebook's kernel.

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { refreshIcon } from '@jupyterlab/ui-components';

import { createActions } from './actions';
import { packagesIcon } from './icon';
import { NotebookKernelSource } from './kernelsource';
import { DEFAULT_SETTINGS, IModelSettings, PackagesModel } from './model';
import { CommandIDs, PackagesPanel } from './panel';
import { SearchModel } from './search';
import { MISSING_IMPORT_MIME } from './missingimport';
import { MissingImportRenderer } from './missingrenderer';

const PLUGIN_ID = 'bifrost-ext:plugin';
const COMMAND = CommandIDs.open;
const PANEL_ID = 'bifrost-packages';
/** Just after the Extension Manager (rank 1000) in the left sidebar. */
const SIDEBAR_RANK = 1001;

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'The Packages panel: install, see, fix and roll back persistent packages.',
  autoStart: true,
  optional: [
    ILayoutRestorer,
    ITranslator,
    ICommandPalette,
    ILauncher,
    IMainMenu,
    ISettingRegistry,
    INotebookTracker,
    IRenderMimeRegistry
  ],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    translator: ITranslator | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    mainMenu: IMainMenu | null,
    settingRegistry: ISettingRegistry | null,
    tracker: INotebookTracker | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const trans = (translator ?? nullTranslator).load('bifrost_ext');
    const model = new PackagesModel({
      serverSettings: app.serviceManager.serverSettings,
      trans,
      kernels: new NotebookKernelSource(tracker),
      events: app.serviceManager.events
    });
    const search = new SearchModel(app.serviceManager.serverSettings, trans);
    const showLog = () => {
      app.shell.activateById(PANEL_ID);
      panel.showLog();
    };
    const actions = createActions(model, trans, showLog);
    const panel = new PackagesPanel({
      model,
      search,
      actions,
      trans,
      commands: app.commands,
      translator: translator ?? undefined
    });
    panel.id = PANEL_ID;
    panel.node.setAttribute('role', 'region');
    panel.node.setAttribute('aria-label', trans.__('Packages section'));
    panel.disposed.connect(() => {
      model.dispose();
      search.dispose();
    });
    app.shell.add(panel, 'left', { rank: SIDEBAR_RANK, type: 'Packages' });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(COMMAND, {
      label: trans.__('Packages'),
      caption: trans.__("Python packages of this workspace's kernels"),
      icon: packagesIcon,
      execute: () => {
        app.shell.activateById(PANEL_ID);
      }
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: trans.__('Read the packages again'),
      icon: args => (args.toolbar ? refreshIcon : undefined),
      execute: () => model.refresh()
    });
    app.commands.addCommand(CommandIDs.exportAs, {
      label: args =>
        typeof args.label === 'string'
          ? trans.__(args.label)
          : trans.__('Export the requirements'),
      execute: args => actions.exportAs(String(args.format))
    });
    app.commands.addCommand(CommandIDs.settings, {
      label: trans.__('Settings of the Packages panel'),
      execute: () =>
        app.commands.execute('settingeditor:open', { query: 'Packages' })
    });
    palette?.addItem({ command: COMMAND, category: trans.__('Packages') });
    mainMenu?.settingsMenu.addGroup([{ command: COMMAND }], 100);
    launcher?.add({ command: COMMAND, category: trans.__('Other'), rank: 10 });

    // A notebook's "module not found" output: its line and, in a trusted notebook, an install
    // (confirmed, of the server's name for the module), also offered in the panel. Not safe:
    // an untrusted notebook's output shows its text/plain line only. Before the notebooks
    // open, so their registries have it.
    rendermime?.addFactory(
      {
        safe: false,
        mimeTypes: [MISSING_IMPORT_MIME],
        createRenderer: () =>
          new MissingImportRenderer(
            {
              resolve: module => model.resolveMissing(module),
              offer: offer => model.offerMissing(offer),
              install: async offer => {
                const outcome = await actions.installMissing(offer);
                return outcome === null ? null : outcome.ok;
              },
              get writable() {
                return !model.readOnly;
              }
            },
            trans
          )
      },
      0
    );

    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings) => {
        const composite = settings.composite as Partial<IModelSettings>;
        model.configure({
          pollInterval: Number(
            composite.pollInterval ?? DEFAULT_SETTINGS.pollInterval
          ),
          historyLength: Number(
            composite.historyLength ?? DEFAULT_SETTINGS.historyLength
          ),
          maxLogLines: Number(
            composite.maxLogLines ?? DEFAULT_SETTINGS.maxLogLines
          )
        });
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error('bifrost-ext: could not load the settings', reason);
        });
    }
  }
};

export default plugin;
