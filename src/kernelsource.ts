// The model's view of "the active notebook's kernel": follows INotebookTracker's current
// widget, its kernel changes and restarts, the cells it runs (an import changes what the
// kernel has loaded), and restarts it on request.

import type { ISessionContext } from '@jupyterlab/apputils';
import { NotebookActions, type INotebookTracker } from '@jupyterlab/notebook';
import type { Kernel } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import type { IKernelSource } from './model';

/** An IKernelSource over the notebook tracker (no tracker: never a kernel). */
export class NotebookKernelSource implements IKernelSource {
  constructor(private readonly _tracker: INotebookTracker | null) {
    _tracker?.currentChanged.connect(this._follow, this);
    NotebookActions.executed.connect(this._onExecuted, this);
    this._follow();
  }

  readonly changed: ISignal<this, void> = new Signal<this, void>(this);

  get kernel(): Kernel.IKernelConnection | null {
    return this._context?.session?.kernel ?? null;
  }

  /** The active notebook's file name (never its kernel's id); null when none is active. */
  get name(): string | null {
    const path = this._tracker?.currentWidget?.context.path;
    return path ? (path.split('/').pop() ?? path) : null;
  }

  async restart(): Promise<void> {
    await this._context?.restartKernel();
  }

  private _follow(): void {
    this._context?.kernelChanged.disconnect(this._emit, this);
    this._context?.statusChanged.disconnect(this._onStatus, this);
    this._context = this._tracker?.currentWidget?.sessionContext ?? null;
    this._context?.kernelChanged.connect(this._emit, this);
    this._context?.statusChanged.connect(this._onStatus, this);
    this._emit();
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    // A restart keeps the kernel object: its fresh process is ready again when idle.
    if (status === 'restarting' || status === 'autorestarting') {
      this._restarted = true;
    } else if (status === 'idle' && this._restarted) {
      this._restarted = false;
      this._emit();
    }
  }

  private _onExecuted(
    _: unknown,
    args: { notebook: unknown; success: boolean }
  ): void {
    // A cell of the active notebook ran: it may have imported a package. (The panel's own
    // silent requests are not cells, so they do not come back here.)
    if (args.notebook === this._tracker?.currentWidget?.content) {
      this._emit();
    }
  }

  private _emit(): void {
    (this.changed as Signal<this, void>).emit();
  }

  private _context: ISessionContext | null = null;
  private _restarted = false;
}
