// The Packages panel: a SidePanel in the Extension Manager's style. Its header is the install
// box (which searches the index as the user types), its toolbar holds refresh, export and
// settings, and its content is an accordion of separate section widgets (environment,
// installed, history, installer log), each collapsible and each re-rendered on its own: the
// log is appended to line by line, outside React, so a streaming install touches nothing else.

import type { TranslationBundle } from '@jupyterlab/translation';
import {
  MenuSvg,
  ReactWidget,
  SidePanel,
  ToolbarButton,
  UseSignal,
  downloadIcon,
  refreshIcon,
  settingsIcon
} from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import type { Message } from '@lumino/messaging';
import { AccordionPanel, Widget } from '@lumino/widgets';
import * as React from 'react';

import type { IPanelActions } from './actions';
import { packagesIcon } from './icon';
import type { LogChange, PackagesModel } from './model';
import type { SearchModel } from './search';
import { InstallBox } from './installbox';
import {
  EnvironmentView,
  HistoryView,
  InstalledView,
  NoticesView
} from './sections';

/** The commands the panel's toolbar and menus run (registered once, in index.ts). */
export const CommandIDs = {
  open: 'bifrost:open-packages',
  refresh: 'bifrost:refresh-packages',
  exportAs: 'bifrost:export-packages',
  settings: 'bifrost:packages-settings'
};

/** Which section is which, in the accordion's order. */
export const SECTIONS = ['environment', 'installed', 'history', 'log'] as const;

/** The sidebar panel. */
export class PackagesPanel extends SidePanel {
  constructor(options: PackagesPanel.IOptions) {
    const { model, search, actions, trans, commands } = options;
    super({ translator: options.translator });
    this._model = model;
    this.addClass('jp-bifrost-Panel');
    this.title.icon = packagesIcon;
    // Beside the Extension Manager's "PyPI Manager": what this one is about.
    this.title.caption = trans.__(
      "Python packages of this workspace's kernels"
    );

    // A small uppercase title as the Extension Manager's "PyPI Manager" has, saying which
    // packages these are; its tooltip the caption.
    const title = new Widget({ node: document.createElement('h2') });
    title.addClass('jp-bifrost-title');
    title.node.textContent = trans.__('Kernel packages');
    title.node.title = this.title.caption;
    this.header.addWidget(title);

    const header = ReactWidget.create(
      <UseSignal signal={model.stateChanged}>
        {() => (
          <>
            <InstallBox
              model={model}
              search={search}
              actions={actions}
              trans={trans}
            />
            <NoticesView model={model} actions={actions} trans={trans} />
          </>
        )}
      </UseSignal>
    );
    header.addClass('jp-bifrost-header');
    this.header.addWidget(header);

    const exportMenu = new MenuSvg({ commands });
    exportMenu.addClass('jp-bifrost-export-menu');
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: trans.__('Read the packages again'),
        onClick: () => void model.refresh()
      })
    );
    this.toolbar.addItem(
      'export',
      new ToolbarButton({
        icon: downloadIcon,
        label: trans.__('Export'),
        tooltip: trans.__('Export the requirements'),
        onClick: () => {
          exportMenu.clearItems();
          for (const format of model.status?.export_formats ?? []) {
            exportMenu.addItem({
              command: CommandIDs.exportAs,
              args: { format: format.format, label: format.label }
            });
          }
          const button = this.toolbar.node.querySelector(
            '[data-command="bifrost-export"]'
          );
          const box = (button ?? this.toolbar.node).getBoundingClientRect();
          exportMenu.open(box.left, box.bottom);
        },
        dataset: { command: 'bifrost-export' }
      })
    );
    this.toolbar.addItem(
      'settings',
      new ToolbarButton({
        icon: settingsIcon,
        tooltip: trans.__('Settings of the Packages panel'),
        onClick: () => void commands.execute(CommandIDs.settings)
      })
    );

    this._environment = section(
      'environment',
      trans.__('Environment'),
      <UseSignal signal={model.stateChanged}>
        {() => <EnvironmentView model={model} trans={trans} />}
      </UseSignal>
    );
    this._installed = new InstalledSection(model, actions, trans);
    this._history = section(
      'history',
      trans.__('History'),
      <UseSignal signal={model.stateChanged}>
        {() => <HistoryView model={model} actions={actions} trans={trans} />}
      </UseSignal>
    );
    this._log = new LogSection(model, trans);
    for (const widget of [
      this._environment,
      this._installed,
      this._history,
      this._log
    ]) {
      this.addWidget(widget);
    }
    model.logChanged.connect((_, change) => {
      if (change.kind === 'reset') {
        this.expandSection('log');
      }
    });
  }

  /** The accordion the sections sit in. */
  get accordion(): AccordionPanel {
    return this.content as AccordionPanel;
  }

  /** Expand a section (by its name in SECTIONS). */
  expandSection(name: (typeof SECTIONS)[number]): void {
    this.accordion.expand(SECTIONS.indexOf(name));
  }

  /** Open the installer log and move the focus to it. */
  showLog(): void {
    this.expandSection('log');
    requestAnimationFrame(() => this._log.focus());
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this._sized) {
      this._sized = true;
      // Once laid out: the installed list gets most of the height; the log opens with a
      // change (and keeps the share it had when closed).
      requestAnimationFrame(() => {
        this.accordion.collapse(SECTIONS.indexOf('log'));
        this.accordion.setRelativeSizes([2, 7, 4, 3]);
      });
    }
    // A layout restored with the panel open shows it without an after-show message.
    if (this.isVisible) {
      this._model.setVisible(true);
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this._model.setVisible(false);
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._model.setVisible(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._model.setVisible(false);
  }

  private _model: PackagesModel;
  private _environment: Widget;
  private _installed: InstalledSection;
  private _history: Widget;
  private _log: LogSection;
  private _sized = false;
}

export namespace PackagesPanel {
  export interface IOptions {
    model: PackagesModel;
    search: SearchModel;
    actions: IPanelActions;
    trans: TranslationBundle;
    commands: CommandRegistry;
    translator?: import('@jupyterlab/translation').ITranslator;
  }
}

/** A section of the accordion: its title is the collapsible header. */
function section(name: string, label: string, element: JSX.Element): Widget {
  const widget = ReactWidget.create(element);
  widget.addClass('jp-bifrost-section');
  widget.node.dataset.section = name;
  widget.title.label = label;
  return widget;
}

/** The installed packages: a windowed list of requirement lines and their trees. */
class InstalledSection extends ReactWidget {
  constructor(
    private readonly _model: PackagesModel,
    private readonly _actions: IPanelActions,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-bifrost-section');
    this.addClass('jp-bifrost-installed');
    this.node.dataset.section = 'installed';
    this.title.label = _trans.__('Installed');
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this._model.stateChanged}>
        {() => (
          <InstalledView
            model={this._model}
            actions={this._actions}
            trans={this._trans}
            scroller={this.node}
          />
        )}
      </UseSignal>
    );
  }
}

/**
 * The installer log: a `<pre role="log">` the model's lines are appended to as text nodes
 * (never markup), without React and without re-rendering anything else.
 */
class LogSection extends Widget {
  constructor(
    private readonly _model: PackagesModel,
    trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-bifrost-section');
    this.addClass('jp-bifrost-log');
    this.node.dataset.section = 'log';
    this.node.dataset.bifrost = 'log';
    this.title.label = trans.__('Installer log');
    this._placeholder = trans.__('(no output yet)');
    const pre = (this._pre = document.createElement('pre'));
    pre.setAttribute('role', 'log');
    pre.setAttribute('aria-label', trans.__('Installer log'));
    pre.tabIndex = 0;
    pre.className = 'jp-bifrost-log-lines';
    pre.textContent = this._placeholder;
    this.node.appendChild(pre);
    _model.logChanged.connect(this._onLog, this);
  }

  focus(): void {
    this._pre.focus();
  }

  private _onLog(_: PackagesModel, change: LogChange): void {
    const pre = this._pre;
    if (change.kind === 'reset') {
      pre.textContent = '';
      this._count = 0;
      return;
    }
    const max = this._model.settings.maxLogLines;
    for (const line of change.lines) {
      pre.appendChild(
        document.createTextNode((this._count ? '\n' : '') + line)
      );
      this._count++;
    }
    while (this._count > max && pre.firstChild) {
      pre.removeChild(pre.firstChild);
      this._count--;
    }
    this.node.scrollTop = this.node.scrollHeight;
  }

  private _pre: HTMLPreElement;
  private _placeholder: string;
  private _count = 0;
}
