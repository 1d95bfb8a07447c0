// The Packages panel's state and the only code that changes it: what is saved, locked and
// loaded, the status, the history, the dependency tree, permissions, the change under way and
// its log. A VDomModel as the Extension Manager's: views render it and call it, nothing here
// touches the DOM. The installer's lines go out through `logChanged` alone, so a streaming
// install re-renders the log and nothing else.

import type { Event, Kernel, ServerConnection } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import { VDomModel } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  ChangeRoute,
  IChangeBody,
  IChangeResult,
  IErrorBody,
  IExport,
  IRequirements,
  IRevision,
  IStatus,
  ITree,
  canWrite,
  change,
  getDistribution,
  getExport,
  getHistory,
  getRequirements,
  getStatus,
  getTree
} from './api';
import { IErrorWords, describeError, describeFailure } from './errors';
import {
  LoadedVersions,
  REPORT_EXPRESSION,
  decodeKernelReport
} from './kernelreport';
import { IMissingOffer, readMissingOffer } from './missingimport';
import { describeVersionChanges, readVersions } from './versions';
import { canonicalName, projectName, withoutVersion } from './requirements';
import { ITreeLine, treeLines } from './tree';

/** The jupyter_events schema of the server's "requirements changed" events. */
export const EVENT_SCHEMA_ID = 'https://bifrost-ext.dev/events/packages/v1';

/** How many missing-import offers the panel keeps (the newest). */
const MAX_MISSING_OFFERS = 5;

/** How long the panel waits for a kernel to report its loaded versions. */
const KERNEL_REPORT_TIMEOUT_MS = 10000;

/** The longest the status poll backs off to while the server fails. */
const POLL_MAX_MS = 60000;

/** The active notebook's kernel, as far as the model needs it. */
export interface IKernelSource {
  /** Emitted when the active notebook, its kernel, or the kernel's process changes. */
  readonly changed: ISignal<unknown, void>;
  readonly kernel: Kernel.IKernelConnection | null;
  /** The active notebook's file name (what the panel says it follows); null: none. */
  readonly name?: string | null;
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
  /** The active kernel holds another version of something the change moved. */
  restart?: boolean;
}

/** What the installer log was told: new lines, or a fresh start (a change began). */
export type LogChange = { kind: 'reset' } | { kind: 'append'; lines: string[] };

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
export class PackagesModel extends VDomModel {
  constructor(options: PackagesModel.IOptions) {
    super();
    this._server = options.serverSettings;
    this._trans = options.trans;
    this._kernels = options.kernels ?? null;
    this._events = options.events ?? null;
    this._kernels?.changed.connect(this._onKernelChanged, this);
    this._events?.stream.connect(this._onEvent, this);
    this._poll = new Poll({
      auto: false,
      factory: () => this._pollStatus(),
      frequency: this._frequency(),
      // Not while the browser tab is hidden; the panel being hidden stops it altogether.
      standby: 'when-hidden',
      name: 'bifrost-ext:status'
    });
  }

  /** Installer output, apart from `stateChanged`: only the log listens to it. */
  get logChanged(): ISignal<this, LogChange> {
    return this._logChanged;
  }

  requirements: IRequirements | null = null;
  status: IStatus | null = null;
  history: IRevision[] = [];
  loaded: LoadedVersions | null = null;
  readOnly = false;
  /** What the change under way does, in the user's words; null when idle. */
  busy: string | null = null;
  /** Why the last change failed. */
  error: IErrorWords | null = null;
  /** Why the last refresh could not read everything. */
  loadError: IErrorWords | null = null;
  /** The last change's success, in the user's words. */
  message: string | null = null;
  /** True until the first refresh has answered. */
  loading = true;
  /** The dependency graph, once a requirement was expanded; null before. */
  tree: ITree | null = null;
  /** Why the tree could not be read. */
  treeError: string | null = null;

  /** The installer's lines of the last change (at most `maxLogLines`). */
  get log(): readonly string[] {
    return this._log;
  }

  /** The active notebook's name; null when no notebook is active. */
  get kernelName(): string | null {
    return this._kernels?.name ?? null;
  }

  /** Whether a notebook (with a kernel) is active. */
  get hasKernel(): boolean {
    return !!this._kernels?.kernel;
  }

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

  get settings(): IModelSettings {
    return this._settings;
  }

  /** The server settings the panel's requests use (the search box asks the same server). */
  get serverSettings(): ServerConnection.ISettings {
    return this._server;
  }

  /** One row per saved requirement, with its locked and loaded versions. */
  get rows(): IRequirementRow[] {
    if (this._rows === null) {
      const locked = this.requirements?.locked ?? {};
      this._rows = (this.requirements?.requirements ?? []).map(spec => {
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
    return this._rows;
  }

  /**
   * The installed section's lines: each requirement, and under an expanded one what it
   * pulled in (expanded lazily, a cycle marked and not expanded again).
   */
  get lines(): ITreeLine[] {
    if (this._lines === null) {
      this._lines = treeLines(this.rows, this.tree, this._expanded);
    }
    return this._lines;
  }

  /** Whether the line at `path` (names from a root, joined by `/`) is expanded. */
  isExpanded(path: string): boolean {
    return this._expanded.has(path);
  }

  /** Expand or collapse a line; the first expansion reads the tree. */
  toggle(path: string): void {
    if (this._expanded.has(path)) {
      this._expanded.delete(path);
    } else {
      this._expanded.add(path);
      if (this.tree === null) {
        void this.loadTree();
      }
    }
    this._changed();
  }

  /** Read the dependency tree (`GET api/packages/tree`). */
  async loadTree(): Promise<void> {
    try {
      this.tree = await getTree(this._server);
      this.treeError = null;
    } catch (error) {
      this.treeError = describeFailure(error, this._trans).message;
    }
    this._changed();
  }

  configure(settings: Partial<IModelSettings>): void {
    this._settings = { ...this._settings, ...settings };
    this._poll.frequency = this._frequency();
    if (this._visible) {
      void (this._interval() === Poll.NEVER
        ? this._poll.stop()
        : this._poll.start());
    }
  }

  /** The panel is shown (read everything, poll the status) or hidden (stop polling). */
  setVisible(visible: boolean): void {
    if (this._visible === visible) {
      return;
    }
    this._visible = visible;
    if (visible) {
      void this.refresh();
      if (this._interval() !== Poll.NEVER) {
        void this._poll.start();
      }
    } else {
      void this._poll.stop();
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
      if (this._refreshAgain && !this.isDisposed) {
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
    if (ticket === this._kernelTicket && !this.isDisposed) {
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

  /** Pin a saved requirement to one version (`name==version`). */
  changeVersion(name: string, version: string): Promise<IChangeOutcome> {
    return this.install([`${name}==${version}`]);
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

  /** Fetch an export; errors are JupyterLab's ResponseError/NetworkError for the caller. */
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
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
    super.dispose();
  }

  private _frequency(): { interval: number; backoff: boolean; max: number } {
    const interval = this._interval();
    return { interval, backoff: true, max: Math.max(interval, POLL_MAX_MS) };
  }

  private _interval(): number {
    const seconds = this._settings.pollInterval;
    return seconds > 0 ? seconds * 1000 : Poll.NEVER;
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
    if (this.isDisposed) {
      return;
    }
    this.loading = false;
    const failed = [requirements, history, status].find(
      r => r.status === 'rejected'
    );
    if (requirements.status === 'fulfilled') {
      const moved = this.requirements?.hash !== requirements.value.hash;
      this.requirements = requirements.value;
      if (moved && this.tree !== null) {
        void this.loadTree(); // the tree is the environment's: it moved with the hash
      }
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
      failed?.status === 'rejected'
        ? describeFailure(failed.reason, this._trans)
        : null;
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
    this._log = [];
    this._logChanged.emit({ kind: 'reset' });
    this.error = null;
    this.message = null;
    this._changed();
    let result: IChangeResult | null = null;
    let outcome: IChangeOutcome;
    try {
      result = await change(this._server, route, body, line =>
        this._appendLog(line)
      );
      outcome = this._outcome(route, body, result);
    } catch (error) {
      outcome = { ok: false, ...describeFailure(error, this._trans) };
    }
    this.busy = null;
    if (outcome.ok) {
      this.message = outcome.message;
    } else {
      this.error = { message: outcome.message, detail: outcome.detail };
      if (result?.status === 403) {
        this._forbidden = true;
        this.readOnly = true;
      }
    }
    this._changed();
    if (!this.isDisposed) {
      await this.refresh();
    }
    if (outcome.ok) {
      outcome.restart = this.rows.some(row => row.stale);
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
        ...describeError(result.status, result.body as IErrorBody, this._trans)
      };
    }
    const answer = result.body as IChangeBody;
    const warning =
      typeof answer.warning === 'string' ? answer.warning : undefined;
    // The server's one line for the change, the one the magic prints, when it sends one.
    if (typeof answer.summary === 'string' && answer.summary) {
      return { ok: true, message: answer.summary, detail: warning };
    }
    const workspace = String(answer.workspace ?? '');
    const installed = Array.isArray(answer.installed) ? answer.installed : [];
    const names = installed.map(i => `${i.name} ${i.version}`).join(', ');
    const packages = (body as { packages?: string[] }).packages ?? [];
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
        packages.join(', '),
        workspace
      );
      const orphans = Array.isArray(answer.orphans) ? answer.orphans : [];
      if (orphans.length) {
        message +=
          ' ' +
          this._trans.__(
            '(also removed, nothing else needs them: %1)',
            orphans.join(', ')
          );
      }
    } else if (answer.changed === false) {
      message = this._trans.__(
        "Already saved in workspace '%1': %2",
        workspace,
        names || packages.join(', ')
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
    return { ok: true, message, detail: warning };
  }

  private _appendLog(line: string): void {
    this._log.push(line);
    const max = this._settings.maxLogLines;
    if (this._log.length > max) {
      this._log.splice(0, this._log.length - max);
    }
    this._logChanged.emit({ kind: 'append', lines: [line] });
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
    this._changed(); // the kernel's name, at once; its versions when it answers
    void this.refreshLoaded();
  }

  private _onEvent(_: unknown, event: Event.Emission): void {
    if (event.schema_id === EVENT_SCHEMA_ID) {
      void this.refresh();
    }
  }

  /**
   * The backstop for changes no event announced (a CLI on a server without Redis). A
   * failure rejects, so the poll backs off.
   */
  private async _pollStatus(): Promise<void> {
    if (this._refreshing || this.isDisposed) {
      return;
    }
    const status = await getStatus(this._server);
    if (this.isDisposed) {
      return;
    }
    this.status = status;
    const saved = status.database.ok ? status.database.hash : null;
    if (saved && this.requirements && saved !== this.requirements.hash) {
      void this.refresh();
    }
    this._changed();
  }

  private _changed(): void {
    if (!this.isDisposed) {
      this._rows = null;
      this._lines = null;
      this.stateChanged.emit();
    }
  }

  private _server: ServerConnection.ISettings;
  private _trans: TranslationBundle;
  private _kernels: IKernelSource | null;
  private _events: Event.IManager | null;
  private _settings: IModelSettings = DEFAULT_SETTINGS;
  private _visible = false;
  private _poll: Poll;
  private _refreshing: Promise<void> | null = null;
  private _refreshAgain = false;
  private _kernelTicket = 0;
  private _forbidden = false;
  private _missing: IMissingOffer[] = [];
  private _resolved = new Map<string, Promise<IMissingOffer | null>>();
  private _log: string[] = [];
  private _logChanged = new Signal<this, LogChange>(this);
  private _expanded = new Set<string>();
  private _rows: IRequirementRow[] | null = null;
  private _lines: ITreeLine[] | null = null;
}

export namespace PackagesModel {
  export interface IOptions {
    serverSettings: ServerConnection.ISettings;
    trans: TranslationBundle;
    kernels?: IKernelSource | null;
    events?: Event.IManager | null;
  }
}
