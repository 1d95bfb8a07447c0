// The install box's state: what the user typed, the index's names for its last word (asked as
// the user types, debounced, an answer to an older query dropped), and for a chosen name the
// versions the index has. The server asks the index (bifrost's settings and credentials);
// the browser never does. With the index unreachable the box says so and still installs.

import type { ServerConnection } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import { VDomModel } from '@jupyterlab/ui-components';
import { Debouncer } from '@lumino/polling';

import { IProject, ISearchResult, getProject, searchIndex } from './api';
import { describeFailure } from './errors';

/** How long typing pauses before the index is asked. */
export const SEARCH_DELAY_MS = 200;

/** How many names the list shows. */
export const SEARCH_LIMIT = 12;

/** What the server accepts as the start of a project name (api_handlers SEARCH_QUERY). */
const NAME_PREFIX = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The word of `text` to search for: its last, when it is a bare name (no version yet). */
export function searchTerm(text: string): string | null {
  if (/\s$/.test(text)) {
    return null;
  }
  const words = text.trim().split(/\s+/);
  const last = words[words.length - 1] ?? '';
  return NAME_PREFIX.test(last) ? last : null;
}

/** The search box's model. */
export class SearchModel extends VDomModel {
  constructor(
    private readonly _server: ServerConnection.ISettings,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this._debouncer = new Debouncer(() => this._search(), SEARCH_DELAY_MS);
  }

  /** The text in the box. */
  text = '';
  /** The names the index has for the last word; null: no search (or not yet answered). */
  result: ISearchResult | null = null;
  /** The chosen project's versions; null: none chosen. */
  project: IProject | null = null;
  /** A project is being read. */
  loadingProject = false;
  /** Why the index could not be asked (the server did not answer, or refused the query). */
  error: string | null = null;

  /** The list is showing (names or versions). */
  get open(): boolean {
    return this.project !== null || this.result !== null || this.error !== null;
  }

  /** Whether the index answered the last question (false: "unreachable", typed specs only). */
  get reachable(): boolean {
    const index = this.project?.index ?? this.result?.index;
    return index ? index.reachable : true;
  }

  /** The index's one line on why it is unreachable. */
  get indexMessage(): string | null {
    const index = this.project?.index ?? this.result?.index;
    return index && !index.reachable
      ? (index.message ?? this._trans.__('the index did not answer'))
      : null;
  }

  /** The user typed: search for the last word after a pause. */
  setText(text: string): void {
    this.text = text;
    this.project = null;
    const term = searchTerm(text);
    if (term === null) {
      ++this._ticket; // an answer on its way is stale now
      this.result = null;
      this.error = null;
      void this._debouncer.stop();
    } else {
      void this._debouncer.invoke();
    }
    this.stateChanged.emit();
  }

  /** Close the list, keeping the text. */
  close(): void {
    ++this._ticket;
    void this._debouncer.stop();
    this.result = null;
    this.project = null;
    this.error = null;
    this.stateChanged.emit();
  }

  /** Show the versions of `name` (a name from the list, or any name). */
  async choose(name: string): Promise<void> {
    const ticket = ++this._ticket;
    void this._debouncer.stop();
    this.loadingProject = true;
    this.error = null;
    this.stateChanged.emit();
    let project: IProject | null = null;
    let error: string | null = null;
    try {
      project = await getProject(this._server, name);
    } catch (reason) {
      error = describeFailure(reason, this._trans).message;
    }
    if (ticket !== this._ticket || this.isDisposed) {
      return;
    }
    this.loadingProject = false;
    this.project = project;
    this.error = error;
    this.stateChanged.emit();
  }

  /** The box's text with its last word replaced by `spec`. */
  withLastWord(spec: string): string {
    const words = this.text.trim().split(/\s+/).filter(Boolean);
    words.pop();
    return [...words, spec].join(' ');
  }

  /** The search is settled (for tests): the debouncer fired and its answer arrived. */
  get pending(): Promise<void> {
    return this._pending;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._debouncer.dispose();
    super.dispose();
  }

  private _search(): Promise<void> {
    this._pending = this._ask();
    return this._pending;
  }

  private async _ask(): Promise<void> {
    const term = searchTerm(this.text);
    if (term === null) {
      return;
    }
    const ticket = ++this._ticket;
    let result: ISearchResult | null = null;
    let error: string | null = null;
    try {
      result = await searchIndex(this._server, term, SEARCH_LIMIT);
    } catch (reason) {
      error = describeFailure(reason, this._trans).message;
    }
    // Answers can cross: one to a query the user has typed past is dropped.
    if (ticket !== this._ticket || this.isDisposed) {
      return;
    }
    this.result = result;
    this.error = error;
    this.stateChanged.emit();
    if (result && result.index.reachable && result.names.length === 0) {
      // "Not in the index", with the close names the index can offer, before any install.
      await this.choose(term);
    }
  }

  private _debouncer: Debouncer;
  private _ticket = 0;
  private _pending: Promise<void> = Promise.resolve();
}
