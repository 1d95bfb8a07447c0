// Renders a missing-import output (missingimport.ts) in a notebook: the kernel's line and, in
// a trusted notebook, an "Install <distribution>…" button whose distribution the server named
// for the module (never the output), and whose click asks first, naming it and the workspace.

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import {
  IMissingOffer,
  MISSING_IMPORT_MIME,
  readMissingImport
} from './missingimport';

/** Where the renderer asks what installs a module, and sends its offer and its click. */
export interface IMissingImportHandler {
  /** The server's distribution for the module, or null when it has none. */
  resolve(module: string): Promise<IMissingOffer | null>;
  /** The panel learns of the missing module (to offer it too). */
  offer(offer: IMissingOffer): void;
  /** Confirm, then install (the panel's own install); null when the user cancelled. */
  install(offer: IMissingOffer): Promise<boolean | null>;
  /** False when the authorizer does not allow changes. */
  readonly writable: boolean;
}

/** Renders the output: the kernel's line, and for a trusted output an install button. */
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
    // An untrusted output (a notebook file someone else wrote) gets no button and no offer;
    // the registry already renders it as text/plain, this is for any other host.
    if (!missing || !model.trusted) {
      return;
    }
    const offer = await this._handler.resolve(missing.module);
    if (!offer || this.isDisposed) {
      return;
    }
    // The output's own line may name another package (whoever wrote the file chose it):
    // once the server has answered, the line says what the button installs.
    line.textContent = this._trans.__(
      'bifrost: to install it for good: %bifrost install %1',
      offer.distribution
    );
    this._handler.offer(offer);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'jp-mod-styled jp-bifrost-button';
    const label = () => this._trans.__('Install %1…', offer.distribution);
    button.textContent = label();
    button.title = this._trans.__(
      "Install %1 for good into workspace '%2': saved, there after every restart",
      offer.distribution,
      offer.workspace
    );
    button.disabled = !this._handler.writable;
    button.onclick = async () => {
      button.disabled = true;
      const ok = await this._handler.install(offer);
      button.textContent = ok
        ? this._trans.__('Installed %1', offer.distribution)
        : label();
      button.disabled = ok === true;
    };
    this.node.appendChild(button);
  }
}
