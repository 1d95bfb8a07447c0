// What the panel's buttons do beyond the model: JupyterLab dialogs (change version, roll
// back, export) and a Notification per change that ends in success or the specific error,
// with a "Show log" action.

import {
  Dialog,
  InputDialog,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { APIError } from './api';
import { describeError, notificationText } from './errors';
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
  const notify = async (
    pending: string,
    run: () => Promise<IChangeOutcome>
  ): Promise<IChangeOutcome> => {
    const id = Notification.emit(pending, 'in-progress', { autoClose: false });
    const outcome = await run();
    Notification.update({
      id,
      message: notificationText(outcome),
      type: outcome.ok ? (outcome.detail ? 'warning' : 'success') : 'error',
      autoClose: outcome.ok ? 5000 : false,
      actions: [{ label: trans.__('Show log'), callback: showLog }]
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
      await notify(trans.__('Removing %1…', name), () => model.remove(name));
    },
    upgrade: async spec => {
      await notify(trans.__('Upgrading %1…', spec), () => model.upgrade(spec));
    },
    changeVersion: async row => {
      const answer = await InputDialog.getText({
        title: trans.__('Change the version of %1', row.name),
        label: trans.__(
          'Requirement to install (for example %1==1.0)',
          row.name
        ),
        text: row.spec,
        okLabel: trans.__('Install'),
        cancelLabel: trans.__('Cancel')
      });
      const spec = answer.value?.trim();
      if (answer.button.accept && spec) {
        await notify(trans.__('Installing %1…', spec), () =>
          model.changeVersion(spec)
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
        const words =
          error instanceof APIError
            ? describeError(error.status, error.body, trans)
            : { message: String(error) };
        Notification.error(trans.__('Export failed: %1', words.message), {
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
