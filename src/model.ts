// The Packages panel's state and the only code that changes it: what is saved, locked and
// loaded, the status, the history, permissions, the change under way and its log. The view
// renders it; nothing here touches the DOM.

import type { Event, Kernel, ServerConnection } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import {
  APIError,
  ChangeRoute,
  IChangeResult,
  IExport,
  IRequirements,
  IRevision,
  IStatus,
  canWrite,
  change,
  getDistribution,
  getExport,
  getHistory,
  getRequirements,
  getStatus
} from './api';
import { IErrorWords, describeError } from './errors';
import {
  LoadedVersions,
  REPORT_EXPRESSION,
  decodeKernelReport
} from './kernelreport';
import { IMissingOffer, readMissingOffer } from './missingimport';
import { describeVersionChanges, readVersions } from './versions';
import { canonicalName, projectName, withoutVersion } from './requirements';

/** The jupyter_events schema of the server's "requirements changed" events. */
export const EVENT_SCHEMA_ID = 'https://bifrost-ext.dev/events/packages/v1';

/** How many missing-import offers the panel keeps (the newest). */
const MAX_MISSING_OFFERS = 5;

/** How long the panel waits for a kernel to report its loaded versions. */
const KERNEL_REPORT_TIMEOUT_MS = 10000;

/** The active notebook's kernel, as far as the model needs it. */
export interface IKernelSource {
  /** Emitted when the active kernel changes or restarts. */
  readonly changed: ISignal<unknown, void>;
  readonly kernel: Kernel.IKernelConnection | null;
  restart(): Promise<void>;
}

/** One saved requirement as a row shows it. */
export interface IRequirementRow {
  name: string;
  spec: string;
  locked: string | null;
  /** The version the active kernel has loaded; null when unknown or not loaded. */
  loaded: string | null;
  /** Loaded and locked differ: the kernel needs a restart to use the saved version. */
  stale: boolean;
}

/** How a change ended, for the notification. */
export interface IChangeOutcome {
  ok: boolean;
  message: string;
  detail?: string;
}

/** Settings the user may change at run time (schema/plugin.json). */
export interface IModelSettings {
  pollInterval: number;
  historyLength: number;
  maxLogLines: number;
}

export const DEFAULT_SETTINGS: IModelSettings = {
  pollInterval: 5,
  historyLength: 50,
  maxLogLines: 1000
};

/** The panel's model. */
export class PackagesModel implements IDisposable {
  constructor(options: PackagesModel.IOptions) {
    this._server = options.serverSettings;
    this._trans = options.trans;
    this._kernels = options.kernels ?? null;
    this._events = options.events ?? null;
    this._kernels?.changed.connect(this._onKernelChanged, this);
    this._events?.stream.connect(this._onEvent, this);
  }

  readonly stateChanged: ISignal<this, void> = new Signal<this, void>(this);

  requirements: IRequirements | null = null;
  status: IStatus | null = null;
  history: IRevision[] = [];
  loaded: LoadedVersions | null = null;
  readOnly = false;
  /** What the change under way does, in the user's words; null when idle. */
  busy: string | null = null;
  log: string[] = [];
  logOpen = false;
  /** Why the last change failed. */
  error: IErrorWords | null = null;
  /** Why the last refresh could not read everything. */
  loadError: IErrorWords | null = null;
  /** The last change's success, in the user's words. */
  message: string | null = null;
  /** True until the first refresh has answered. */
  loading = true;

  /** Why the saved requirements fail validation (the server's words), or null. */
  get savedError(): string | null {
    const reason = this.requirements?.saved_error ?? this.status?.saved_error;
    return typeof reason === 'string' ? reason : null;
  }

  /** Modules a notebook could not import whose distribution is not saved: offered to install. */
  get missing(): IMissingOffer[] {
    const saved = new Set(this.rows.map(row => row.name));
    return this._missing.filter(
      offer => !saved.has(canonicalName(offer.distribution))
    );
  }

  /**
   * What installs a module a notebook could not import, by the server's table (asked once
   * per module); null when the server refuses the name or cannot answer.
   */
  resolveMissing(module: string): Promise<IMissingOffer | null> {
    let answer = this._resolved.get(module);
    if (!answer) {
      answer = getDistribution(this._server, module).then(
        readMissingOffer,
        () => {
          this._resolved.delete(module); // asked again next time: the server may be back
          return null;
        }
      );
      this._resolved.set(module, answer);
    }
    return answer;
  }

  /** A notebook output said a module is missing (each distribution offered once). */
  offerMissing(offer: IMissingOffer): void {
    const name = canonicalName(offer.distribution);
    if (this._missing.some(m => canonicalName(m.distribution) === name)) {
      return;
    }
    this._missing = [offer, ...this._missing].slice(0, MAX_MISSING_OFFERS);
    this._changed();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  get settings(): IModelSettings {
    return this._settings;
  }

  /** One row per saved requirement, with its locked and loaded versions. */
  get rows(): IRequirementRow[] {
    const locked = this.requirements?.locked ?? {};
    return (this.requirements?.requirements ?? []).map(spec => {
      const name = projectName(spec);
      const lockedVersion = locked[name] ?? null;
      const loadedVersion = this.loaded?.[name] ?? null;
      return {
        name,
        spec,
        locked: lockedVersion,
        loaded: loadedVersion,
        stale:
          lockedVersion !== null &&
          loadedVersion !== null &&
          loadedVersion !== lockedVersion
      };
    });
  }

  configure(settings: Partial<IModelSettings>): void {
    this._settings = { ...this._settings, ...settings };
    if (this._visible) {
      this._schedulePoll();
    }
  }

  /** The panel is shown (poll the status) or hidden (stop polling). */
  setVisible(visible: boolean): void {
    this._visible = visible;
    if (visible) {
      void this.refresh();
      this._schedulePoll();
    } else {
      this._stopPoll();
    }
  }

  setLogOpen(open: boolean): void {
    if (this.logOpen !== open) {
      this.logOpen = open;
      this._changed();
    }
  }

  /** Reload requirements, history, status, permissions and loaded versions. */
  refresh(): Promise<void> {
    if (this._refreshing) {
      this._refreshAgain = true;
      return this._refreshing;
    }
    this._refreshing = this._refresh().finally(() => {
      this._refreshing = null;
      if (this._refreshAgain && !this._disposed) {
        this._refreshAgain = false;
        void this.refresh();
      }
    });
    return this._refreshing;
  }

  /** Ask the active kernel which versions it has loaded. */
  async refreshLoaded(): Promise<void> {
    const ticket = ++this._kernelTicket;
    const loaded = await this._kernelReport();
    if (ticket === this._kernelTicket && !this._disposed) {
      this.loaded = loaded;
      this._changed();
    }
  }

  install(specs: string[]): Promise<IChangeOutcome> {
    return this._change(
      'install',
      { packages: specs },
      this._trans.__('Installing %1…', specs.join(' '))
    );
  }

  /** Install the newest version the index offers: the spec loses its version constraint. */
  upgrade(spec: string): Promise<IChangeOutcome> {
    const unpinned = withoutVersion(spec);
    return this._change(
      'install',
      { packages: [unpinned] },
      this._trans.__('Upgrading %1…', unpinned)
    );
  }

  changeVersion(spec: string): Promise<IChangeOutcome> {
    return this.install([spec]);
  }

  remove(name: string): Promise<IChangeOutcome> {
    return this._change(
      'uninstall',
      { packages: [name] },
      this._trans.__('Removing %1…', name)
    );
  }

  rollback(revision: number): Promise<IChangeOutcome> {
    return this._change(
      'rollback',
      { revision },
      this._trans.__('Rolling back to revision %1…', revision)
    );
  }

  /** Fetch an export; errors come back as APIError for the caller to show. */
  exportAs(format: string): Promise<IExport> {
    return getExport(this._server, format);
  }

  /** Restart the active kernel so it loads the saved versions. */
  async restartKernel(): Promise<void> {
    if (this._kernels) {
      await this._kernels.restart();
      await this.refreshLoaded();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._stopPoll();
    Signal.clearData(this);
  }

  private async _refresh(): Promise<void> {
    const server = this._server;
    const loaded = this.refreshLoaded();
    const [requirements, history, status, writable] = await Promise.allSettled([
      getRequirements(server),
      getHistory(server, this._settings.historyLength),
      getStatus(server),
      canWrite(server)
    ]);
    await loaded;
    if (this._disposed) {
      return;
    }
    this.loading = false;
    const failed = [requirements, history, status].find(
      r => r.status === 'rejected'
    );
    if (requirements.status === 'fulfilled') {
      this.requirements = requirements.value;
    }
    if (history.status === 'fulfilled') {
      this.history = history.value.revisions;
    }
    if (status.status === 'fulfilled') {
      this.status = status.value;
    }
    if (writable.status === 'fulfilled') {
      // A change the authorizer refused outweighs what api/me said (until a reload).
      this.readOnly = this._forbidden || !writable.value;
    }
    this.loadError =
      failed?.status === 'rejected' ? this._words(failed.reason) : null;
    this._changed();
  }

  private async _change(
    route: ChangeRoute,
    body: object,
    doing: string
  ): Promise<IChangeOutcome> {
    if (this.busy) {
      return {
        ok: false,
        message: this._trans.__('Another change is under way; try again')
      };
    }
    this.busy = doing;
    this.log = [];
    this.logOpen = true;
    this.error = null;
    this.message = null;
    this._changed();
    let result: IChangeResult;
    try {
      result = await change(this._server, route, body, line =>
        this._appendLog(line)
      );
    } catch (error) {
      result = {
        status: error instanceof APIError ? error.status : 0,
        body: error instanceof APIError ? error.body : {}
      };
    }
    const outcome = this._outcome(route, body, result);
    this.busy = null;
    if (outcome.ok) {
      this.message = outcome.message;
    } else {
      this.error = { message: outcome.message, detail: outcome.detail };
      if (result.status === 403) {
        this._forbidden = true;
        this.readOnly = true;
      }
    }
    this._changed();
    if (!this._disposed) {
      await this.refresh();
    }
    return outcome;
  }

  private _outcome(
    route: ChangeRoute,
    body: object,
    result: IChangeResult
  ): IChangeOutcome {
    if (result.status !== 200) {
      return {
        ok: false,
        ...describeError(result.status, result.body, this._trans)
      };
    }
    const answer = result.body;
    const workspace = String(answer.workspace ?? '');
    const installed: { name: string; version: string }[] = Array.isArray(
      answer.installed
    )
      ? answer.installed
      : [];
    const names = installed.map(i => `${i.name} ${i.version}`).join(', ');
    let message: string;
    if (route === 'rollback') {
      message = this._trans.__(
        "Rolled back to revision %1; saved to workspace '%2'",
        (body as { revision: number }).revision,
        workspace
      );
    } else if (route === 'uninstall') {
      message = this._trans.__(
        "Removed %1; saved to workspace '%2'",
        (body as { packages: string[] }).packages.join(', '),
        workspace
      );
    } else if (answer.changed === false) {
      message = this._trans.__(
        "Already saved in workspace '%1': %2",
        workspace,
        names || (body as { packages: string[] }).packages.join(', ')
      );
    } else {
      message = this._trans.__(
        "Installed %1; saved to workspace '%2'",
        names,
        workspace
      );
    }
    // Which changes the change did not name is the server's answer, as for the magic.
    const others = describeVersionChanges(
      readVersions(answer.also_changed),
      this._trans
    );
    if (others) {
      message += ' ' + this._trans.__('(also changed: %1)', others);
    }
    const warning =
      typeof answer.warning === 'string' ? answer.warning : undefined;
    return { ok: true, message, detail: warning };
  }

  private _appendLog(line: string): void {
    this.log = [...this.log, line].slice(-this._settings.maxLogLines);
    this._changed();
  }

  private async _kernelReport(): Promise<LoadedVersions | null> {
    const kernel = this._kernels?.kernel ?? null;
    if (!kernel || kernel.isDisposed) {
      return null;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>(resolve => {
      timer = setTimeout(() => resolve(null), KERNEL_REPORT_TIMEOUT_MS);
    });
    const report = (async () => {
      const future = kernel.requestExecute(
        {
          code: '',
          silent: true,
          store_history: false,
          user_expressions: { bifrost: REPORT_EXPRESSION }
        },
        true
      );
      const reply = await future.done;
      const content = reply.content;
      return content.status === 'ok'
        ? decodeKernelReport(content.user_expressions?.bifrost)
        : null;
    })().catch(() => null);
    try {
      return await Promise.race([report, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private _onKernelChanged(): void {
    void this.refreshLoaded();
  }

  private _onEvent(_: unknown, event: Event.Emission): void {
    if (event.schema_id === EVENT_SCHEMA_ID) {
      void this.refresh();
    }
  }

  private _schedulePoll(): void {
    this._stopPoll();
    const seconds = this._settings.pollInterval;
    if (seconds > 0) {
      this._poll = setInterval(() => void this._pollStatus(), seconds * 1000);
    }
  }

  private _stopPoll(): void {
    if (this._poll !== undefined) {
      clearInterval(this._poll);
      this._poll = undefined;
    }
  }

  /** The backstop for changes no event announced (a CLI on a server without Redis). */
  private async _pollStatus(): Promise<void> {
    if (this._refreshing || this._disposed) {
      return;
    }
    let status: IStatus;
    try {
      status = await getStatus(this._server);
    } catch {
      return;
    }
    if (this._disposed) {
      return;
    }
    this.status = status;
    const saved = status.database.ok ? status.database.hash : null;
    if (saved && this.requirements && saved !== this.requirements.hash) {
      void this.refresh();
    }
    this._changed();
  }

  private _words(error: unknown): IErrorWords {
    return error instanceof APIError
      ? describeError(error.status, error.body, this._trans)
      : { message: String(error) };
  }

  private _changed(): void {
    if (!this._disposed) {
      (this.stateChanged as Signal<this, void>).emit();
    }
  }

  private _server: ServerConnection.ISettings;
  private _trans: TranslationBundle;
  private _kernels: IKernelSource | null;
  private _events: Event.IManager | null;
  private _settings: IModelSettings = DEFAULT_SETTINGS;
  private _visible = false;
  private _poll: ReturnType<typeof setInterval> | undefined;
  private _refreshing: Promise<void> | null = null;
  private _refreshAgain = false;
  private _kernelTicket = 0;
  private _forbidden = false;
  private _missing: IMissingOffer[] = [];
  private _resolved = new Map<string, Promise<IMissingOffer | null>>();
  private _disposed = false;
}

export namespace PackagesModel {
  export interface IOptions {
    serverSettings: ServerConnection.ISettings;
    trans: TranslationBundle;
    kernels?: IKernelSource | null;
    events?: Event.IManager | null;
  }
}
