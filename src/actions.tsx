// What the panel's buttons do beyond the model: JupyterLab dialogs (remove, change version
// from the index's list, roll back, export) and one Notification for the panel's changes,
// updated from "Installing…" to its end rather than stacked, with "Show log" and, when the
// active kernel holds another version now, "Restart kernel".

import {
  Dialog,
  Notification,
  ReactWidget,
  showDialog
} from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IProject, getProject } from './api';
import { describeFailure, notificationText } from './errors';
import { VersionList } from './installbox';
import type { IMissingOffer } from './missingimport';
import type { IChangeOutcome, IRequirementRow, PackagesModel } from './model';

/** The panel's user actions; each returns when the action (and its notification) is done. */
export interface IPanelActions {
  install(specs: string[]): Promise<IChangeOutcome>;
  /** Ask first, naming what is installed where; null when the user cancelled. */
  installMissing(offer: IMissingOffer): Promise<IChangeOutcome | null>;
  remove(name: string): Promise<void>;
  upgrade(spec: string): Promise<void>;
  changeVersion(row: IRequirementRow): Promise<void>;
  rollback(revision: number): Promise<void>;
  exportAs(format: string): Promise<void>;
  restartKernel(): Promise<void>;
}

/** Build the actions for a model; `showLog` opens and focuses the installer log. */
export function createActions(
  model: PackagesModel,
  trans: TranslationBundle,
  showLog: () => void
): IPanelActions {
  // The panel's one notification: a new change takes it over instead of stacking another.
  let current: string | null = null;
  const show = (options: {
    message: string;
    type: Notification.TypeOptions;
    autoClose: number | false;
    actions?: Notification.IAction[];
  }): void => {
    if (current !== null && Notification.manager.has(current)) {
      Notification.update({ id: current, ...options });
    } else {
      current = Notification.emit(options.message, options.type, {
        autoClose: options.autoClose,
        actions: options.actions
      });
    }
  };
  const notify = async (
    pending: string,
    run: () => Promise<IChangeOutcome>
  ): Promise<IChangeOutcome> => {
    show({ message: pending, type: 'in-progress', autoClose: false });
    const outcome = await run();
    const buttons: Notification.IAction[] = [
      { label: trans.__('Show log'), callback: showLog, displayType: 'link' }
    ];
    if (outcome.ok && outcome.restart && model.hasKernel) {
      buttons.unshift({
        label: trans.__('Restart kernel'),
        callback: () => void model.restartKernel(),
        displayType: 'accent'
      });
    }
    show({
      message: notificationText(outcome),
      type: outcome.ok ? (outcome.detail ? 'warning' : 'success') : 'error',
      autoClose: outcome.ok ? 5000 : false,
      actions: buttons
    });
    return outcome;
  };

  return {
    install: specs =>
      notify(trans.__('Installing %1…', specs.join(' ')), () =>
        model.install(specs)
      ),
    installMissing: async offer => {
      // A click in a notebook output, which someone else may have written: never an install
      // without the user reading what it is (the server's name) and where it goes.
      const answer = await showDialog({
        title: trans.__('Install %1?', offer.distribution),
        body: trans.__(
          "A notebook could not import the module %1. Installing %2 saves it to workspace '%3': every kernel of the workspace gets it, after every restart.",
          offer.module,
          offer.distribution,
          offer.workspace
        ),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.okButton({ label: trans.__('Install') })
        ]
      });
      if (!answer.button.accept) {
        return null;
      }
      showLog();
      return notify(trans.__('Installing %1…', offer.distribution), () =>
        model.install([offer.distribution])
      );
    },
    remove: async name => {
      const workspace = model.requirements?.workspace ?? '';
      const answer = await showDialog({
        title: trans.__('Remove %1?', name),
        body: trans.__(
          "%1 is removed from workspace '%2' with the dependencies nothing else needs. Kernels that already imported it keep it until they restart.",
          name,
          workspace
        ),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.warnButton({ label: trans.__('Remove') })
        ]
      });
      if (answer.button.accept) {
        await notify(trans.__('Removing %1…', name), () => model.remove(name));
      }
    },
    upgrade: async spec => {
      await notify(trans.__('Upgrading %1…', spec), () => model.upgrade(spec));
    },
    changeVersion: async row => {
      const picker = new VersionPicker(model, row, trans);
      const answer = await showDialog({
        title: trans.__('Change the version of %1', row.name),
        body: picker,
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.okButton({ label: trans.__('Install') })
        ],
        focusNodeSelector: '[role="option"]'
      });
      const version = answer.value;
      if (answer.button.accept && version) {
        await notify(trans.__('Installing %1==%2…', row.name, version), () =>
          model.changeVersion(row.name, version)
        );
      }
    },
    rollback: async revision => {
      const answer = await showDialog({
        title: trans.__('Roll back to revision %1?', revision),
        body: trans.__(
          'The requirements of revision %1 are installed from its lock and saved as a new revision. Kernels that already imported a changed package need a restart.',
          revision
        ),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.warnButton({ label: trans.__('Roll back') })
        ]
      });
      if (answer.button.accept) {
        await notify(trans.__('Rolling back to revision %1…', revision), () =>
          model.rollback(revision)
        );
      }
    },
    exportAs: async format => {
      let exported;
      try {
        exported = await model.exportAs(format);
      } catch (error) {
        show({
          message: trans.__(
            'Export failed: %1',
            describeFailure(error, trans).message
          ),
          type: 'error',
          autoClose: false
        });
        return;
      }
      download(exported.filename, exported.content);
      await showDialog({
        title: exported.filename,
        body: React.createElement(
          'pre',
          { className: 'jp-bifrost-export', 'data-bifrost': 'export' },
          exported.content
        ),
        buttons: [Dialog.okButton({ label: trans.__('Close') })]
      });
    },
    restartKernel: () => model.restartKernel()
  };
}

/** The Change version dialog's body: the index's versions of a requirement, one to pick. */
class VersionPicker
  extends ReactWidget
  implements Dialog.IBodyWidget<string | null>
{
  constructor(
    model: PackagesModel,
    private readonly _row: IRequirementRow,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-bifrost-version-picker');
    getProject(model.serverSettings, _row.name).then(
      project => {
        this._project = project;
        this.update();
      },
      error => {
        this._error = describeFailure(error, _trans).message;
        this.update();
      }
    );
  }

  getValue(): string | null {
    return this._selected;
  }

  protected render(): JSX.Element {
    const trans = this._trans;
    const project = this._project;
    if (this._error) {
      return (
        <p role="alert">
          {trans.__('The index could not be read: %1', this._error)}
        </p>
      );
    }
    if (!project) {
      return <p>{trans.__('Reading the versions of %1…', this._row.name)}</p>;
    }
    if (!project.index.reachable) {
      return (
        <p role="alert">
          {trans.__(
            'The package index is unreachable (%1).',
            project.index.message ?? ''
          )}
        </p>
      );
    }
    if (!project.found) {
      return (
        <p>
          {trans.__(
            '%1 is not in the index %2',
            project.name,
            project.index.label
          )}
        </p>
      );
    }
    return (
      <div>
        <p className="jp-bifrost-search-note">
          {trans.__(
            'Saved as %1, locked at %2. Pick a version: %3 is saved pinned to it.',
            this._row.spec,
            this._row.locked ?? '—',
            this._row.name
          )}
        </p>
        <VersionList
          project={project}
          trans={trans}
          selected={this._selected}
          onPick={version => {
            this._selected = version;
            this.update();
          }}
        />
      </div>
    );
  }

  private _project: IProject | null = null;
  private _error: string | null = null;
  private _selected: string | null = null;
}

/** Offer a text as a file download. */
function download(filename: string, content: string): void {
  const url = URL.createObjectURL(new Blob([content], { type: 'text/plain' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  // Revoked later: some browsers start reading the blob only after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}
