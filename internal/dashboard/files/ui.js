// Small pieces every page of the dashboard uses: building elements (always
// through textContent, never HTML), times in the viewer's words and time
// zone, the notice, a page's loading or failed state, busy buttons and the
// confirmation dialog.

export const $ = (id) => document.getElementById(id);

/** el builds an element; children are nodes or text. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (name === 'class') {
      node.className = value;
    } else if (name.startsWith('aria-') || name === 'role') {
      node.setAttribute(name, value);
    } else {
      node[name] = value;
    }
  }
  for (const child of children) {
    node.append(child ?? '');
  }
  return node;
}

/** plural counts: plural(1, 'key') is "1 key", plural(2, 'key') "2 keys". */
export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

const units = [
  ['year', 365 * 86400],
  ['month', 30 * 86400],
  ['day', 86400],
  ['h', 3600],
  ['min', 60],
];

/** relative says how far iso is from now: "in 23 h", "5 min ago", "just now". */
export function relative(iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const size = Math.abs(seconds);
  if (size < 60) {
    return seconds >= 0 ? 'in less than a minute' : 'just now';
  }
  for (const [unit, length] of units) {
    if (size >= length) {
      const count = Math.floor(size / length);
      const text = unit === 'h' || unit === 'min' ? `${count} ${unit}` : plural(count, unit);
      return seconds >= 0 ? `in ${text}` : `${text} ago`;
    }
  }
  return 'now';
}

const absoluteFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' }).formatToParts(new Date())
  .find((part) => part.type === 'timeZoneName')?.value ?? '';

/** absolute is iso as a date and time of the viewer's time zone, named. */
export function absolute(iso) {
  return `${absoluteFormat.format(new Date(iso))} ${zone}`.trim();
}

/**
 * when shows a time relative to now ("in 23 h"), the date in the viewer's
 * time zone as its tooltip; empty says what a missing time means.
 */
export function when(iso, empty = '—') {
  if (!iso) {
    return empty;
  }
  return el('time', { dateTime: iso, title: absolute(iso) }, relative(iso));
}

/** whenLong shows a time both ways: "in 23 h (6 Dec 2026, 09:00 UTC)". */
export function whenLong(iso, empty = '—') {
  if (!iso) {
    return empty;
  }
  return el('time', { dateTime: iso }, `${relative(iso)} (${absolute(iso)})`);
}

let noticeAction = null;

/**
 * showNotice shows text above the page; action ({label, run}) adds a button
 * (retry, stay signed in).
 */
export function showNotice(text, { kind = 'error', action = null } = {}) {
  $('notice-text').textContent = text;
  $('notice').className = `notice ${kind}`;
  const button = $('notice-action');
  noticeAction = action;
  button.hidden = !action;
  button.textContent = action ? action.label : '';
  $('notice').hidden = false;
}

export function hideNotice() {
  $('notice').hidden = true;
  noticeAction = null;
}

/** runNoticeAction runs the notice's action (its button's click). */
export async function runNoticeAction() {
  const action = noticeAction;
  hideNotice();
  if (action) {
    await action.run();
  }
}

/**
 * setPageState says what a page is doing in its status line: loading
 * (text), failed (error with a retry), or nothing (null).
 */
export function setPageState(id, state) {
  const box = $(id);
  const section = box.closest('section');
  box.replaceChildren();
  box.className = 'page-state';
  section.removeAttribute('aria-busy');
  if (!state) {
    return;
  }
  if (state.loading) {
    section.setAttribute('aria-busy', 'true');
    box.append(el('span', { class: 'spinner' }, state.loading));
    return;
  }
  box.className = 'page-state error';
  box.append(el('span', {}, state.error), ' ');
  if (state.retry) {
    const retry = el('button', { type: 'button', class: 'secondary retry' }, 'Try again');
    retry.addEventListener('click', () => busy(retry, state.retry));
    box.append(retry);
  }
}

/**
 * busy runs action while button is disabled (and marked busy for assistive
 * technology), and ignores the button while it is: a double click, or a
 * second Enter, would otherwise send the request twice (two keys created,
 * one secret lost). It returns action's result, or undefined when the
 * button was already busy.
 */
export async function busy(button, action) {
  if (button.disabled) {
    return undefined;
  }
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/**
 * confirmAction asks before a destructive action: a titled dialog whose
 * confirm button names the action, Cancel focused first; with typeToConfirm
 * the user must type that text before confirming. Resolves to true when
 * confirmed.
 */
export function confirmAction({ title, text, confirm, typeToConfirm = '' }) {
  const dialog = $('confirm-dialog');
  const yes = $('confirm-yes');
  const typed = $('confirm-type');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  yes.textContent = confirm;
  $('confirm-type-row').hidden = !typeToConfirm;
  $('confirm-expected').textContent = typeToConfirm;
  typed.value = '';
  yes.disabled = Boolean(typeToConfirm);
  const check = () => {
    yes.disabled = typed.value.trim() !== typeToConfirm;
  };
  typed.addEventListener('input', check);
  dialog.returnValue = '';
  dialog.showModal();
  (typeToConfirm ? typed : $('confirm-cancel')).focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      typed.removeEventListener('input', check);
      yes.disabled = false;
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
  });
}

/**
 * copyText puts text on the clipboard and says whether it could: the
 * Clipboard API, else a copy of the selection (of input, or of a field
 * made for the purpose). A page must not say "copied" when nothing was:
 * the Clipboard API is missing on a plain-http page served from another
 * host, and a browser may refuse it.
 */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Fall back to the selection below.
  }
  const field = input || document.createElement('textarea');
  if (!input) {
    field.value = text;
    field.setAttribute('readonly', '');
    field.className = 'sr-only';
    document.body.append(field);
  }
  let copied = false;
  try {
    field.select();
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  } finally {
    if (!input) {
      field.remove();
    }
  }
  return copied;
}
