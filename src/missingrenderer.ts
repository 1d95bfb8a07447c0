// Renders a missing-import output (missingimport.ts) in a notebook: the kernel's line and an
// "Install <distribution>" button that installs it for good through the Packages panel.

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import {
  IMissingImport,
  MISSING_IMPORT_MIME,
  readMissingImport
} from './missingimport';

/** Where the renderer sends its offer and its click. */
export interface IMissingImportHandler {
  /** The panel learns of the missing module (to offer it too). */
  offer(missing: IMissingImport): void;
  /** Install the distribution (the panel's own install, with its notification and log). */
  install(missing: IMissingImport): Promise<boolean>;
  /** False when the authorizer does not allow changes. */
  readonly writable: boolean;
}

/** Renders the output: the kernel's line, and an "Install <distribution>" button. */
export class MissingImportRenderer
  extends Widget
  implements IRenderMime.IRenderer
{
  constructor(
    private readonly _handler: IMissingImportHandler,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-bifrost-missing-import');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const missing = readMissingImport(model.data[MISSING_IMPORT_MIME]);
    this.node.textContent = '';
    const line = document.createElement('span');
    line.textContent = String(model.data['text/plain'] ?? '');
    this.node.appendChild(line);
    if (!missing) {
      return;
    }
    this._handler.offer(missing);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'jp-mod-styled jp-bifrost-button';
    button.textContent = this._trans.__('Install %1', missing.distribution);
    button.title = this._trans.__(
      'Install %1 for good: saved for this workspace, there after every restart',
      missing.distribution
    );
    button.disabled = !this._handler.writable;
    button.onclick = async () => {
      button.disabled = true;
      const ok = await this._handler.install(missing);
      button.textContent = ok
        ? this._trans.__('Installed %1', missing.distribution)
        : this._trans.__('Install %1', missing.distribution);
      button.disabled = ok;
    };
    this.node.appendChild(button);
  }
}
