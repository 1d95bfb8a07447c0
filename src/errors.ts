// What the user reads for each error status the API answers (the contract's list): pure,
// so every status's words are unit-tested. An installer's failure is worded by the server
// (its `kind` and one-line `message`, the same in the magic and the CLI); the panel shows
// that line, and the installer's output only as details, never as the headline.

import type { TranslationBundle } from '@jupyterlab/translation';

/** Lines of installer output a 422 shows. */
export const OUTPUT_TAIL = 20;

/** An error in the user's words: one line, and for a failed install the output's tail. */
export interface IErrorWords {
  message: string;
  detail?: string;
}

/** The words for an answer with this status and body (status 0: no answer at all). */
export function describeError(
  status: number,
  body: Record<string, any>,
  trans: TranslationBundle
): IErrorWords {
  const message = typeof body.message === 'string' ? body.message : '';
  switch (status) {
    case 0:
      return {
        message: trans.__('The server did not answer; nothing was changed')
      };
    case 400:
      // A refusal the server words itself (an invalid spec, the operator's policy).
      if (typeof body.kind === 'string' && message) {
        return { message };
      }
      if (typeof body.spec === 'string' && body.spec) {
        return {
          message: trans.__(
            '“%1” was refused: %2; nothing was saved',
            body.spec,
            typeof body.reason === 'string' && body.reason
              ? body.reason
              : message
          )
        };
      }
      return { message: trans.__('Refused: %1; nothing was saved', message) };
    case 403:
      return {
        message: trans.__(
          "Read-only: your server's authorizer does not allow changes to packages"
        )
      };
    case 404:
      if (Array.isArray(body.names) && body.names.length > 0) {
        return {
          message: trans.__(
            'Not in the requirements: %1',
            body.names.join(', ')
          )
        };
      }
      return { message: trans.__('Not found: %1', message) };
    case 409:
      return {
        message: trans.__('The requirements changed meanwhile; try again')
      };
    case 422:
      return {
        message: message || trans.__('The installer failed; nothing was saved'),
        detail: outputTail(body.output)
      };
    case 503:
      // A failure of a kind the server names (its package directory) says itself what it is.
      if (typeof body.kind === 'string' && message) {
        return { message };
      }
      return {
        message: trans.__('The database is unavailable; nothing was saved')
      };
    default:
      return {
        message: trans.__(
          'The server answered %1: %2',
          status,
          message || trans.__('no reason given')
        )
      };
  }
}

/** The last OUTPUT_TAIL lines of an installer's output (a string or a list of lines). */
export function outputTail(output: unknown): string {
  const lines =
    typeof output === 'string'
      ? output.split(/\r?\n/)
      : Array.isArray(output)
        ? output.map(String)
        : [];
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') {
    lines.pop();
  }
  return lines.slice(-OUTPUT_TAIL).join('\n');
}

/** How a change ended, as a notification shows it. */
export interface IOutcomeWords extends IErrorWords {
  ok: boolean;
}

/**
 * The notification's text for a change's outcome: a success with its warning, a failure's
 * one line alone (its details are in the panel, behind "Show details", and in the log).
 */
export function notificationText(outcome: IOutcomeWords): string {
  return outcome.ok && outcome.detail
    ? `${outcome.message}\n${outcome.detail}`
    : outcome.message;
}
