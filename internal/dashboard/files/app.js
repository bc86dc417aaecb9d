// keyhub's dashboard: sign-in, then pages (who am I, keys, one key, audit
// events, connections) over the public REST API and the WebSocket. Every
// value from the API reaches the page through textContent, never as HTML.
// A new key's secret exists only in the secret dialog, which is emptied
// when it closes: it is never stored, logged or put in a URL.

import { Client, isSessionError, sentence } from './api.js';
import { Session } from './session.js';
import { LiveEvents } from './live.js';
import { showUsage } from './usage.js';
import {
  $, el, plural, when, whenLong, relative, showNotice, hideNotice, runNoticeAction,
  setPageState, busy, confirmAction, copyText,
} from './ui.js';

const pageSize = 20;
const keyPageLimit = 200; // the API's largest page
const soon = 7 * 86400 * 1000; // a key expiring within this is highlighted
const maxMetadataBytes = 4096; // the API's bound on a key's metadata, as compact JSON

const state = {
  config: null,
  session: null,
  api: null,
  live: null,
  page: '',
  // Every key of the account (all statuses), read page after page: the
  // keys page searches, sorts and counts them, and events and connections
  // name keys on any page, not only the first.
  keys: { all: [], byId: new Map(), shown: pageSize, pinned: new Set() },
  events: { cursor: null },
  key: { id: '', cursor: null, usageHours: 24, usageShown: '' },
  me: null,
  meToken: '', // the session state.me was read with
};

// ---- errors --------------------------------------------------------------

// describe is an error in the user's words.
function describe(err) {
  return typeof err.describe === 'function' ? err.describe() : sentence(err.message || String(err));
}

// report shows an error in the notice; a lost session has already sent the
// user back to sign-in.
function report(err) {
  if (!isSessionError(err)) {
    showNotice(describe(err));
  }
}

// load runs a page's reads with its status line: "Loading…" while they run,
// and on failure the reason with a Try again button.
async function load(stateId, what, read) {
  setPageState(stateId, { loading: `Loading ${what}…` });
  try {
    await read();
    setPageState(stateId, null);
  } catch (err) {
    if (isSessionError(err)) {
      setPageState(stateId, null);
      return;
    }
    setPageState(stateId, { error: `${what[0].toUpperCase()}${what.slice(1)} could not be loaded. ${describe(err)}`, retry: () => load(stateId, what, read) });
  }
}

// ---- routing -------------------------------------------------------------

const pages = {
  me: { show: showMe, title: () => $('me-title').textContent },
  keys: { show: showKeys, title: () => $('keys-title').textContent },
  key: { show: showKey, title: () => 'Key' },
  events: { show: showEvents, leave: () => state.live.stop(), title: () => $('events-title').textContent },
  connections: { show: showConnections, title: () => $('connections-title').textContent },
  settings: { show: showSettings, title: () => $('settings-title').textContent },
};

// wanted is the page the address names: [page, parameter].
function wanted() {
  const path = window.location.hash.replace(/^#\/?/, '');
  const match = /^keys\/([0-9a-f-]{36})$/.exec(path);
  if (match) {
    return ['key', match[1]];
  }
  // Own properties only: pages[path] also finds what every object
  // inherits (#/constructor, #/toString, #/__proto__). The key page needs
  // its id (#/keys/<id>).
  return [Object.hasOwn(pages, path) && path !== 'key' ? path : '', ''];
}

function route() {
  const signedIn = Boolean(state.session.token());
  const [name, param] = wanted();
  // Signed out, the address keeps the page asked for: sign-in leads there.
  const page = signedIn ? (name || 'me') : 'signin';
  if (state.page && pages[state.page] && pages[state.page].leave) {
    pages[state.page].leave();
  }
  state.page = page;
  $('loading').hidden = true;
  for (const section of document.querySelectorAll('main > section')) {
    section.hidden = section.id !== `page-${page}`;
  }
  $('nav').hidden = !signedIn;
  $('signed-in-as').textContent = signedIn ? state.session.email() : '';
  const navPage = page === 'key' ? 'keys' : page;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.page === navPage) {
      link.setAttribute('aria-current', 'page');
    } else {
      link.removeAttribute('aria-current');
    }
  }
  document.title = `${page === 'signin' ? 'Sign in' : pages[page].title()} · keyhub`;
  if (page === 'signin') {
    showSignIn();
  } else {
    pages[page].show(param);
  }
}

// go shows page, through the hash when it changes.
function go(page) {
  if (window.location.hash === `#/${page}`) {
    route();
  } else {
    window.location.hash = `#/${page}`;
  }
}

// ---- sign-in -------------------------------------------------------------

function showSignIn() {
  const cfg = state.config;
  const supabase = Boolean(cfg.supabase_url && cfg.supabase_anon_key);
  $('dev-form').hidden = !cfg.dev_sign_in;
  $('supabase-form').hidden = !supabase;
  $('signin-unavailable').hidden = cfg.dev_sign_in || supabase;
}

// signedIn goes where the user was (the address kept the page), or to
// "who am I" on a first visit.
function signedIn() {
  const [name] = wanted();
  if (name) {
    route();
  } else {
    go('me');
  }
}

async function onDevSignIn(event) {
  event.preventDefault();
  hideNotice();
  await busy(event.target.querySelector('button[type=submit]'), async () => {
    try {
      await state.session.signInDev($('dev-email').value.trim());
      signedIn();
    } catch (err) {
      showNotice(sentence(err.message));
    }
  });
}

async function onSupabaseSignIn(event) {
  event.preventDefault();
  hideNotice();
  const password = $('sb-password');
  await busy(event.target.querySelector('button[type=submit]'), async () => {
    try {
      await state.session.signInSupabase($('sb-email').value.trim(), password.value);
      password.value = '';
      signedIn();
    } catch (err) {
      showNotice(sentence(err.message));
    }
  });
}

// onSessionExpiring warns before a session that cannot renew itself ends;
// in dev mode one click gets a new one for the same email.
function onSessionExpiring(endsAt) {
  const action = state.config.dev_sign_in && state.session.current.kind === 'dev'
    ? { label: 'Stay signed in', run: () => state.session.signInDev(state.session.email()).catch(report) }
    : null;
  showNotice(`Your session ends ${relative(new Date(endsAt).toISOString())} (at ${new Date(endsAt).toLocaleTimeString()}).${action ? '' : ' Save your work: you will have to sign in again.'}`, { kind: 'info', action });
}

// ---- who am I ------------------------------------------------------------

function fillDetails(list, rows) {
  list.replaceChildren();
  for (const [term, value] of rows) {
    list.append(el('dt', {}, term), el('dd', {}, value));
  }
}

async function me() {
  const token = state.session.token();
  state.me = await state.api.get('/v1/me');
  state.meToken = token;
  return state.me;
}

// knowMe reads who is signed in unless this session already did: pages
// that name people say "you" for the user's own acts without an email.
async function knowMe() {
  if (!state.me || state.meToken !== state.session.token()) {
    await me();
  }
}

// ---- who acted -----------------------------------------------------------

// person names a user by email; without one (a user with none, or one no
// longer in this account: the API shows no address then), "you" or
// "another user", never a bare id.
function person(userId, email) {
  if (email) {
    return email;
  }
  return state.me && state.meToken === state.session.token() && state.me.user_id === userId ? 'you' : 'another user';
}

// actorOf names who acted on an event: the user by email, and the key
// they used (by its name when the page knows it); keyhub itself when
// nobody did (an expiry, an automatic rotation).
function actorOf(event) {
  if (!event.actor_user_id && !event.actor_key_id) {
    return 'keyhub';
  }
  const who = person(event.actor_user_id, event.actor_email);
  return event.actor_key_id ? `${who} with key ${keyLabel(event.actor_key_id)}` : who;
}

// creatorOf names who created a key, as nodes: the user by email, and
// the creating key when a key created it (keyPart shows it; its prefix by
// default); keyhub for an automatic rotation.
function creatorOf(key, keyPart = (c) => c.key_prefix || c.key_id) {
  const c = key.created_by;
  if (!c) {
    return ['keyhub (automatic rotation)'];
  }
  const who = person(c.user_id, c.email);
  return c.key_id ? [`${who} with key `, keyPart(c)] : [who];
}

// creatorLink is creatorOf for the key's page: the creating key by name,
// linked to its own page while this account has it.
function creatorLink(key) {
  return el('span', {}, ...creatorOf(key, (c) => (state.keys.byId.has(c.key_id)
    ? el('a', { href: `#/keys/${c.key_id}` }, keyLabel(c.key_id))
    : c.key_prefix || c.key_id)));
}

// actorCell is an event's "By" cell: two lines at most (an address and a
// key's name can be long on a phone), all of it in the tooltip.
function actorCell(event) {
  const who = actorOf(event);
  return el('td', { class: 'actor', title: who }, el('span', { class: 'clamp' }, who));
}

function showMe() {
  return load('me-state', 'your account', async () => {
    const who = await me();
    fillDetails($('me-details'), [
      ['Email', who.email || '—'],
      ['Tier', who.tier],
      ['Signed in with', who.auth_method === 'jwt' ? 'user session' : `API key ${who.key_prefix}`],
      ['Scopes', who.scopes.join(', ')],
      ['Session ends', whenLong(who.expires_at)],
      ['User id', who.user_id],
      ['Account (owner) id', who.owner_id],
    ]);
    const l = who.limits;
    fillDetails($('me-limits'), [
      ['Active keys', String(l.max_active_keys)],
      ['Open connections per key', String(l.max_connections)],
      ['Messages per minute', String(l.messages_per_minute)],
      ['Largest message', `${Math.round(l.max_message_bytes / 1024)} KiB`],
      ['Connection lifetime', `${Math.round(l.session_seconds / 60)} min`],
    ]);
  });
}

// ---- the key list --------------------------------------------------------

// offerProductScopes adds a box for every scope the session holds that the
// picker lacks: the server's product scopes (PRODUCT_SCOPES). A session
// holds every scope, so /v1/me lists them all.
async function offerProductScopes() {
  const me = await state.api.get('/v1/me');
  const picker = $('create-scopes');
  const offered = new Set([...picker.querySelectorAll('input[name=scopes]')].map((box) => box.value));
  for (const scope of me.scopes.filter((s) => !offered.has(s))) {
    // defaultChecked: the form's reset after a create checks it again.
    const box = el('input', { type: 'checkbox', name: 'scopes', value: scope, defaultChecked: true, checked: true });
    picker.insertBefore(el('label', {}, box, ` ${scope}`), $('scopes-error'));
  }
}

function rememberKey(key) {
  const copy = { ...key };
  delete copy.key; // a create's or refresh's answer carries the secret: never kept
  const known = state.keys.byId.get(key.id);
  if (known) {
    Object.assign(known, copy);
  } else {
    state.keys.byId.set(key.id, copy);
    state.keys.all.push(copy);
  }
}

// keyLabel names a key by its name and prefix, or by its id while the page
// does not know it.
function keyLabel(id) {
  const key = state.keys.byId.get(id);
  return key ? `${key.name} (${key.prefix})` : id;
}

// loadAllKeys reads every key of the account, page after page (one page
// of 100 used to leave the older keys as bare ids).
async function loadAllKeys() {
  let cursor = null;
  do {
    const query = new URLSearchParams({ status: 'all', limit: String(keyPageLimit) });
    if (cursor) {
      query.set('cursor', cursor);
    }
    const page = await state.api.get(`/v1/keys?${query}`);
    page.data.forEach(rememberKey);
    cursor = page.next_cursor;
  } while (cursor);
}

// nameKeys looks up, one by one, the keys of ids the page does not know
// (created since the list was read).
async function nameKeys(ids) {
  const unknown = [...new Set(ids)].filter((id) => id && !state.keys.byId.has(id));
  await Promise.all(unknown.map(async (id) => {
    try {
      rememberKey(await state.api.get(`/v1/keys/${encodeURIComponent(id)}`));
    } catch (err) {
      if (err.status !== 404) {
        throw err;
      }
    }
  }));
}

function expiresSoon(key, now = Date.now()) {
  return key.status === 'active' && key.expires_at && new Date(key.expires_at).getTime() - now < soon;
}

const sorts = {
  newest: (a, b) => b.created_at.localeCompare(a.created_at),
  oldest: (a, b) => a.created_at.localeCompare(b.created_at),
  name: (a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }),
  // Never used, or never expiring, goes last.
  used: (a, b) => (b.last_used_at || '').localeCompare(a.last_used_at || ''),
  expires: (a, b) => (a.expires_at || '\uffff').localeCompare(b.expires_at || '\uffff'),
};

// visibleKeys applies the search, the status filter and the sort. Keys
// changed on this view (revoked, refreshed) stay where they are until
// the filter changes, so an action never makes the list jump.
function visibleKeys() {
  const status = $('keys-status').value;
  const search = $('keys-search').value.trim().toLowerCase();
  return state.keys.all
    .filter((key) => state.keys.pinned.has(key.id)
      || status === 'all'
      || (status === 'expiring' ? expiresSoon(key) : key.status === status))
    .filter((key) => !search || key.name.toLowerCase().includes(search) || key.prefix.toLowerCase().includes(search))
    .sort(sorts[$('keys-sort').value] || sorts.newest);
}

function renderKeys() {
  const list = visibleKeys();
  const body = $('keys-table').tBodies[0];
  body.replaceChildren(...list.slice(0, state.keys.shown).map(keyRow));
  $('keys-more').hidden = list.length <= state.keys.shown;
  const active = state.keys.all.filter((key) => key.status === 'active').length;
  const total = state.keys.all.length;
  let count = `${active} active of ${plural(total, 'key')}`;
  if ($('keys-search').value.trim() || $('keys-status').value !== 'all') {
    count = `${plural(list.length, 'key')} shown · ${count}`;
  }
  $('keys-count').textContent = count;
  $('keys-empty').hidden = list.length > 0;
  $('keys-empty').textContent = total === 0 ? 'No keys yet: create your first one above.' : 'No keys match.';
}

// rerenderKeys shows the list again after a change, as many rows as
// before, keeping focus on the key acted on.
function rerenderKeys(focusId) {
  const { scrollX, scrollY } = window;
  renderKeys();
  if (focusId) {
    const link = document.querySelector(`#keys-table tr[data-key-id="${focusId}"] a`);
    if (link) {
      link.focus({ preventScroll: true });
    }
  }
  // Replacing the rows that held focus lets the browser move the page:
  // it stays where the user was.
  window.scrollTo(scrollX, scrollY);
}

function showKeys() {
  return load('keys-state', 'your keys', async () => {
    state.keys.all = [];
    state.keys.byId.clear();
    state.keys.pinned.clear();
    state.keys.shown = pageSize;
    await Promise.all([loadAllKeys(), offerProductScopes(), knowMe()]);
    // The create form is open for a first key and folded otherwise, so the
    // list is what a phone shows first.
    $('create-panel').open = !state.keys.all.some((key) => key.status === 'active');
    renderKeys();
  });
}

function copyButton(label, value, what) {
  const button = el('button', { type: 'button', class: 'link copy', 'aria-label': `${label}`, dataset: { copy: value } }, 'Copy');
  button.addEventListener('click', async () => {
    if (await copyText(value)) {
      button.textContent = 'Copied';
      showNotice(`${what} copied to the clipboard.`, { kind: 'info' });
    } else {
      showNotice(`${what} could not be copied: the browser refused. It is ${value}`, { kind: 'info' });
    }
  });
  return button;
}

function keyActions(key, container, withEdit = false) {
  if (key.status === 'active') {
    if (withEdit) {
      const edit = el('button', { type: 'button', class: 'edit secondary', 'aria-label': `Edit ${key.name}: its name, allowed networks, scopes and metadata` }, 'Edit');
      edit.addEventListener('click', () => busy(edit, () => editKey(key)));
      container.append(edit);
    }
    if (!key.disabled_at) {
      const refresh = el('button', { type: 'button', class: 'refresh secondary', 'aria-label': `Refresh ${key.name}: a new secret` }, 'Refresh');
      refresh.addEventListener('click', () => busy(refresh, () => refreshKey(key)));
      container.append(refresh);
    }
    const pause = key.disabled_at
      ? el('button', { type: 'button', class: 'enable secondary', 'aria-label': `Enable ${key.name}: it works again` }, 'Enable')
      : el('button', { type: 'button', class: 'disable secondary', 'aria-label': `Disable ${key.name}: it stops working until enabled` }, 'Disable');
    pause.addEventListener('click', () => busy(pause, () => setDisabled(key, !key.disabled_at)));
    const revoke = el('button', { type: 'button', class: 'revoke danger', 'aria-label': `Revoke ${key.name}: it stops working` }, 'Revoke');
    revoke.addEventListener('click', () => busy(revoke, () => revokeKey(key)));
    container.append(pause, revoke);
  }
  return container;
}

// statusClass is the badge of a key: a disabled key is still active, but
// refused until it is enabled.
function statusClass(key) {
  return key.status === 'active' && key.disabled_at ? 'disabled' : key.status;
}

function statusText(key) {
  if (key.status === 'active' && key.disabled_at) {
    return 'disabled';
  }
  if (key.status === 'active' && key.expires_at && key.replaced_by) {
    return 'active (grace)';
  }
  return key.status;
}

function keyRow(key) {
  const expiring = expiresSoon(key);
  const expires = key.expires_at ? when(key.expires_at) : 'never';
  return el('tr', { dataset: { keyId: key.id, prefix: key.prefix, status: key.status, disabled: key.disabled_at ? 'yes' : 'no' }, class: expiring ? 'expiring' : '' },
    el('td', {}, el('a', { href: `#/keys/${key.id}` }, key.name)),
    el('td', { class: 'wide' }, el('code', {}, key.prefix),
      copyButton(`Copy the prefix of ${key.name}`, key.prefix, 'Prefix'),
      copyButton(`Copy the id of ${key.name}`, key.id, 'Key id')),
    el('td', {}, el('span', { class: `status ${statusClass(key)}` }, statusText(key))),
    el('td', { class: 'scopes wide' }, key.scopes.join(' ')),
    el('td', { class: 'wide' }, when(key.created_at), el('span', { class: 'sub creator' }, 'by ', ...creatorOf(key))),
    el('td', { class: `wide${expiring ? ' soon' : ''}` }, expires),
    el('td', { class: 'wide' }, when(key.last_used_at, 'never used')),
    keyActions(key, el('td', { class: 'actions' })));
}

// ---- create, refresh, revoke ---------------------------------------------

function onCreateKey(event) {
  event.preventDefault();
  busy($('create-submit'), () => createKey(event.target));
}

// createBody reads the form, or says what is missing next to the field
// (the API's wording, "scopes must not be empty", is not for this form).
function createBody(form) {
  const name = $('create-name').value.trim();
  const scopes = [...form.querySelectorAll('input[name=scopes]:checked')].map((box) => box.value);
  $('create-name-error').hidden = Boolean(name);
  $('create-name').setAttribute('aria-invalid', String(!name));
  $('scopes-error').hidden = scopes.length > 0;
  $('create-scopes').setAttribute('aria-invalid', String(scopes.length === 0));
  const body = { name, scopes };
  const expiry = $('create-expiry').value;
  let dateOK = true;
  if (expiry === 'date') {
    const day = $('create-date').value;
    const at = day ? new Date(`${day}T00:00:00`) : null;
    dateOK = Boolean(at) && at.getTime() > Date.now() + 60_000;
    $('create-date-hint').textContent = dateOK ? 'The key stops working at the start of that day, your time.' : 'Choose a date after today.';
    $('create-date-hint').className = dateOK ? 'hint' : 'field-error';
    if (dateOK) {
      body.expires_at = at.toISOString();
    }
  } else if (expiry) {
    body.expires_in = Number(expiry);
  }
  if (!name) {
    $('create-name').focus();
    return null;
  }
  if (scopes.length === 0) {
    form.querySelector('input[name=scopes]').focus();
    return null;
  }
  if (!dateOK) {
    $('create-date').focus();
    return null;
  }
  return body;
}

async function createKey(form) {
  hideNotice();
  const body = createBody(form);
  if (!body) {
    return;
  }
  try {
    const created = await state.api.post('/v1/keys', body);
    form.reset();
    $('create-date-row').hidden = true;
    rememberKey(created);
    state.keys.pinned.add(created.id);
    renderKeys();
    showSecret(created);
  } catch (err) {
    report(err);
  }
}

// ---- the secret dialog ---------------------------------------------------

let secretCopied = false;

function showSecret(created) {
  const api = state.config.api_url || window.location.origin;
  $('secret-name').textContent = `${created.name} (${created.prefix})`;
  $('secret-value').value = created.key;
  $('secret-export').value = `export KEYHUB_API_KEY=${created.key}`;
  $('secret-curl').value = `curl -H "Authorization: Bearer $KEYHUB_API_KEY" ${api.replace(/\/+$/, '')}/v1/me`;
  $('secret-copied').textContent = '';
  $('secret-not-copied').hidden = true;
  $('secret-done').textContent = 'I have stored it safely';
  secretCopied = false;
  $('secret-dialog').showModal();
  $('secret-value').select();
}

async function copySecretField(id, what) {
  if (!(await copyText($(id).value, $(id)))) {
    // The field stays selected: the user can copy it by hand.
    $('secret-copied').textContent = `The browser refused to copy ${what}: it is selected, press Ctrl+C (⌘C).`;
    return;
  }
  secretCopied = true;
  $('secret-not-copied').hidden = true;
  $('secret-done').textContent = 'I have stored it safely';
  $('secret-copied').textContent = `Copied ${what} to the clipboard.`;
}

// closeSecret closes the dialog, but the first attempt without a copy
// only warns: the secret cannot be shown again.
function closeSecret(event) {
  if (!secretCopied && $('secret-not-copied').hidden) {
    if (event) {
      event.preventDefault(); // Escape
    }
    $('secret-not-copied').hidden = false;
    $('secret-done').textContent = 'Close without copying';
    return;
  }
  $('secret-dialog').close();
  // At once: the dialog's close event comes a task later, and until then
  // the hidden fields would still hold the secret.
  forgetSecret();
}

function forgetSecret() {
  for (const id of ['secret-value', 'secret-export', 'secret-curl']) {
    $(id).value = '';
  }
  $('secret-name').textContent = '';
  $('secret-copied').textContent = '';
}

// ---- refresh and revoke --------------------------------------------------

// refreshKey asks for the grace period, then refreshes; it resolves when
// all is done, so the button that started it stays busy that long.
async function refreshKey(key) {
  const dialog = $('refresh-dialog');
  $('refresh-name').textContent = key.name;
  $('refresh-grace').value = '0';
  $('refresh-form').querySelector('input[name=grace][value="0"]').checked = true;
  dialog.returnValue = '';
  dialog.showModal();
  await new Promise((resolve) => dialog.addEventListener('close', resolve, { once: true }));
  if (dialog.returnValue !== 'ok') {
    return;
  }
  hideNotice();
  try {
    const grace = Math.min(86400, Math.max(0, Math.round(Number($('refresh-grace').value || '0'))));
    const result = await state.api.post(`/v1/keys/${key.id}/refresh`, { grace_period: grace });
    rememberKey(result.old_key);
    rememberKey(result.new_key);
    state.keys.pinned.add(result.old_key.id).add(result.new_key.id);
    afterChange(key.id);
    showSecret(result.new_key);
  } catch (err) {
    report(err);
  }
}

function onGracePreset(event) {
  if (event.target.name === 'grace' && event.target.value !== 'custom') {
    $('refresh-grace').value = event.target.value;
  }
}

// childrenOf are the keys still working in their grace period after key
// replaced them: revoking key ends their grace too.
function childrenOf(key) {
  return state.keys.all.filter((other) => other.replaced_by === key.id && other.status === 'active');
}

// chainOf is id and the keys that replaced it, one after the other (a
// refresh's successor, its successor...), as far as the page knows them.
function chainOf(id) {
  const chain = [];
  for (let at = id; at && !chain.includes(at); at = state.keys.byId.get(at)?.replaced_by) {
    chain.push(at);
  }
  return chain;
}

// madeWith are the working keys that revoking key also ends: every key made
// with it, transitively (the cascade: whoever held key could get them). The
// API says who created each key (created_by); keyhub's rules add that a
// refresh passes a key's children to its successor, and that a successor
// can be obtained through whatever its predecessor could. Grace-period
// predecessors (childrenOf) are counted apart.
function madeWith(key) {
  const children = new Map(); // the key whose revoke ends them -> keys
  for (const other of state.keys.all) {
    const creator = other.created_by?.key_id;
    // A key refreshing itself creates its successor: not its child.
    if (!creator || chainOf(creator).includes(other.id)) {
      continue;
    }
    const chain = chainOf(creator);
    const parent = chain[chain.length - 1];
    if (!children.has(parent)) {
      children.set(parent, []);
    }
    children.get(parent).push(other.id);
  }
  const reached = new Set([key.id]);
  // The walk passes through keys that already ended: what was made with
  // them ends too.
  for (const queue = [key.id]; queue.length;) {
    for (const child of children.get(queue.shift()) || []) {
      for (const id of chainOf(child).filter((id) => !reached.has(id))) {
        reached.add(id);
        queue.push(id);
      }
    }
  }
  const graced = new Set(childrenOf(key).map((other) => other.id));
  return [...reached].map((id) => state.keys.byId.get(id))
    .filter((other) => other && other.id !== key.id && other.status === 'active' && !graced.has(other.id));
}

async function revokeKey(key) {
  // A key in use, with a predecessor in its grace period, or with keys
  // made with it stops more than itself: its name must be typed to revoke
  // it. Every key of the account is read first (the key's page may know
  // only a few), page after page.
  let open = [];
  try {
    open = (await state.api.get('/v1/ws/connections')).data.filter((c) => c.key_prefix === key.prefix);
  } catch {
    open = []; // no ws:connect, or no socket support: nothing to warn about
  }
  try {
    await loadAllKeys();
  } catch (err) {
    report(err);
    return;
  }
  const children = childrenOf(key);
  const made = madeWith(key);
  const stops = [];
  if (open.length) {
    stops.push(`its ${plural(open.length, 'open connection')} will be closed`);
  }
  if (children.length) {
    stops.push(`${plural(children.length, 'older key')} in a grace period will stop too`);
  }
  if (made.length) {
    stops.push(`${plural(made.length, 'working key')} made with it will be revoked too`);
  }
  const ok = await confirmAction({
    title: `Revoke ${key.name}?`,
    text: `Everything using ${key.name} (${key.prefix}), and every key made with it, stops working at once${stops.length ? `, ${stops.join(', and ')}` : ''}. This cannot be undone.`,
    confirm: 'Revoke key',
    typeToConfirm: open.length || children.length || made.length ? key.name : '',
  });
  if (!ok) {
    return;
  }
  hideNotice();
  try {
    const revoked = await state.api.del(`/v1/keys/${key.id}`);
    rememberKey(revoked);
    state.keys.pinned.add(key.id);
    afterChange(key.id);
  } catch (err) {
    report(err);
  }
}

// setDisabled disables or enables a key. Disabling asks first: the key,
// and every key made with it, stop working until it is enabled.
async function setDisabled(key, disable) {
  if (disable) {
    const ok = await confirmAction({
      title: `Disable ${key.name}?`,
      text: `${key.name} (${key.prefix}), and every key made with it, are refused until you enable it again; its open connections close. Nothing is revoked or replaced.`,
      confirm: 'Disable key',
    });
    if (!ok) {
      return;
    }
  }
  hideNotice();
  try {
    const changed = await state.api.post(`/v1/keys/${key.id}/${disable ? 'disable' : 'enable'}`);
    rememberKey(changed);
    state.keys.pinned.add(key.id);
    showNotice(`${changed.name} is ${disable ? 'disabled: it is refused until you enable it' : 'enabled: it works again'}.`, { kind: 'info' });
    afterChange(key.id);
  } catch (err) {
    report(err);
  }
}

// editKey renames a key and sets the networks it may be used from, its
// scopes and its metadata, in a dialog; nothing is sent when nothing changed. The scopes
// offered are the create form's (product scopes included), checked as the
// key holds them.
async function editKey(key) {
  const dialog = $('edit-dialog');
  await offerProductScopes();
  $('edit-title-name').textContent = key.name;
  $('edit-name').value = key.name;
  $('edit-cidrs').value = (key.allowed_cidrs || []).join('\n');
  $('edit-metadata').value = hasMetadata(key.metadata) ? JSON.stringify(key.metadata, null, 2) : '';
  showMetadataError('');
  const picker = $('edit-scopes');
  for (const label of picker.querySelectorAll('label')) {
    label.remove();
  }
  for (const box of $('create-scopes').querySelectorAll('input[name=scopes]')) {
    const choice = el('input', { type: 'checkbox', name: 'edit-scopes', value: box.value, checked: key.scopes.includes(box.value) });
    picker.insertBefore(el('label', {}, choice, ` ${box.value}`), $('edit-scopes-error'));
  }
  showScopesError(false);
  $('edit-error').hidden = true;
  dialog.returnValue = '';
  dialog.showModal();
  for (;;) {
    await new Promise((resolve) => dialog.addEventListener('close', resolve, { once: true }));
    if (dialog.returnValue !== 'ok') {
      return;
    }
    const body = {};
    const name = $('edit-name').value.trim();
    if (name !== key.name) {
      body.name = name;
    }
    const cidrs = $('edit-cidrs').value.split(/[\s,]+/).filter(Boolean);
    if (cidrs.join(' ') !== (key.allowed_cidrs || []).join(' ')) {
      body.allowed_cidrs = cidrs;
    }
    const metadata = readMetadata($('edit-metadata').value);
    showMetadataError(metadata.error || '');
    if (metadata.error) {
      // Said next to the field, before anything is sent.
      dialog.returnValue = '';
      dialog.showModal();
      $('edit-metadata').focus();
      continue;
    }
    if (canonicalJSON(metadata.value) !== canonicalJSON(key.metadata || {})) {
      body.metadata = metadata.value;
    }
    const scopes = [...picker.querySelectorAll('input:checked')].map((box) => box.value);
    if (scopes.length === 0) {
      // Said next to the boxes, before anything is sent.
      showScopesError(true);
      dialog.returnValue = '';
      dialog.showModal();
      picker.querySelector('input').focus();
      continue;
    }
    showScopesError(false);
    if ([...scopes].sort().join(' ') !== [...key.scopes].sort().join(' ')) {
      body.scopes = scopes;
    }
    if (Object.keys(body).length === 0) {
      return;
    }
    try {
      const changed = await state.api.patch(`/v1/keys/${key.id}`, body);
      rememberKey(changed);
      state.keys.pinned.add(key.id);
      afterChange(key.id);
      return;
    } catch (err) {
      if (![400, 403, 409].includes(err.status)) {
        report(err);
        return;
      }
      // A bad name, network or scope, a scope the session may not give,
      // a key no longer active: say so in the dialog, with what was typed.
      $('edit-error').textContent = err.describe();
      $('edit-error').hidden = false;
      dialog.returnValue = '';
      dialog.showModal();
    }
  }
}

// ---- a key's metadata ------------------------------------------------------

function hasMetadata(metadata) {
  return Boolean(metadata) && Object.keys(metadata).length > 0;
}

// metadataView shows a key's metadata as indented JSON, as text (a value
// may hold markup: it is never HTML), or says there is none.
function metadataView(metadata) {
  return hasMetadata(metadata) ? el('pre', { class: 'metadata' }, JSON.stringify(metadata, null, 2)) : 'none';
}

// readMetadata reads the edit dialog's metadata field by the API's rule (a
// JSON object of at most 4 KiB as compact JSON, which is what is sent):
// {value}, or {error} in the user's words. An empty field is no metadata.
function readMetadata(text) {
  if (!text.trim()) {
    return { value: {} };
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `Metadata is not valid JSON: ${err.message}.` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: 'Metadata must be a JSON object, in braces, such as {"team": "infra"}.' };
  }
  const bytes = new TextEncoder().encode(JSON.stringify(value)).length;
  if (bytes > maxMetadataBytes) {
    return { error: `Metadata is ${bytes} bytes as compact JSON: at most ${maxMetadataBytes} are allowed.` };
  }
  return { value };
}

// canonicalJSON writes value with its objects' names sorted: the server
// may return the names in another order than they were typed, which is no
// change.
function canonicalJSON(value) {
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJSON).join(',')}]`;
  }
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((name) => `${JSON.stringify(name)}:${canonicalJSON(value[name])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function showMetadataError(text) {
  $('edit-metadata-error').textContent = text;
  $('edit-metadata-error').hidden = !text;
  $('edit-metadata').setAttribute('aria-invalid', String(Boolean(text)));
}

function showScopesError(shown) {
  $('edit-scopes-error').hidden = !shown;
  $('edit-scopes').setAttribute('aria-invalid', String(shown));
}

// afterChange shows a changed key where the user is: the list keeps its
// rows and scroll, focus goes to the key's row (or page), and the whole
// list is read again behind (a revoke can end a predecessor's grace).
async function afterChange(id) {
  if (state.page === 'key') {
    showKey(id);
    return;
  }
  rerenderKeys(id);
  try {
    await loadAllKeys();
    const active = document.activeElement;
    const focused = active && active.closest('#keys-table') ? active.closest('tr')?.dataset.keyId : '';
    rerenderKeys(focused || '');
  } catch (err) {
    report(err);
  }
}

// ---- one key -------------------------------------------------------------

async function showKey(id) {
  state.key.id = id;
  await Promise.all([loadKeyUsage(), load('key-state', 'the key', async () => {
    const [key, connections, history] = await Promise.all([
      state.api.get(`/v1/keys/${encodeURIComponent(id)}`),
      state.api.get('/v1/ws/connections').catch(() => ({ data: [] })),
      state.api.get(`/v1/keys/${encodeURIComponent(id)}/events?limit=${pageSize}`),
      knowMe(),
    ]);
    rememberKey(key);
    await nameKeys([key.replaced_by, key.created_by?.key_id, ...history.data.map((event) => event.actor_key_id)]);
    $('key-title').textContent = key.name;
    document.title = `${key.name} · keyhub`;
    const mine = connections.data.filter((c) => c.key_prefix === key.prefix);
    fillDetails($('key-details'), [
      ['Status', el('span', { class: `status ${statusClass(key)}` }, statusText(key))],
      ['Prefix', el('span', {}, el('code', {}, key.prefix), copyButton('Copy the prefix', key.prefix, 'Prefix'))],
      ['Id', el('span', {}, el('code', {}, key.id), copyButton('Copy the id', key.id, 'Key id'))],
      ['Scopes', key.scopes.join(', ')],
      ['Created', whenLong(key.created_at)],
      ['Created by', creatorLink(key)],
      ['Expires', key.expires_at ? whenLong(key.expires_at) : 'never'],
      ['Last used', lastUse(key)],
      ['Connected from', mine.length ? mine.map((c) => c.remote_addr).join(', ') : 'no open connection'],
      ['Revoked', whenLong(key.revoked_at, 'no')],
      ['Disabled', whenLong(key.disabled_at, 'no')],
      ['Allowed networks', key.allowed_cidrs && key.allowed_cidrs.length ? key.allowed_cidrs.join(', ') : 'any'],
      ['Metadata', metadataView(key.metadata)],
      ['Replaced by', key.replaced_by ? el('a', { href: `#/keys/${key.replaced_by}` }, keyLabel(key.replaced_by)) : '—'],
    ]);
    $('key-actions').replaceChildren();
    keyActions(key, $('key-actions'), true);
    const body = $('key-connections-table').tBodies[0];
    body.replaceChildren(...mine.map((c) => el('tr', { dataset: { connectionId: c.id } },
      el('td', {}, c.machine_id || '—'),
      el('td', {}, c.hostname || '—'),
      el('td', {}, c.remote_addr || '—'),
      el('td', { class: 'wide' }, when(c.connected_at)),
      el('td', { class: 'wide' }, when(c.last_activity_at)))));
    $('key-connections-empty').hidden = mine.length > 0;
    const historyBody = $('key-history-table').tBodies[0];
    historyBody.replaceChildren(...history.data.map(historyRow));
    state.key.cursor = history.next_cursor;
    $('key-history-more').hidden = !history.next_cursor;
  })]);
}

// lastUse says when a key was last used and, where the server knows,
// from which address and with which agent (as text: never markup).
function lastUse(key) {
  if (!key.last_used_at) {
    return 'never used';
  }
  return el('span', { id: 'key-last-use' }, whenLong(key.last_used_at),
    key.last_used_ip ? ' from ' : '', key.last_used_ip ? el('code', {}, key.last_used_ip) : '',
    key.last_used_user_agent ? ` with ${key.last_used_user_agent}` : '');
}

// loadKeyUsage shows the key's requests of the chosen period (the last
// 24 h or 7 days). Another key's figures never stay on the page while
// this one's load: a new key starts blank.
function loadKeyUsage() {
  const { id, usageHours: hours } = state.key;
  for (const button of document.querySelectorAll('.usage-range')) {
    button.setAttribute('aria-pressed', String(Number(button.dataset.hours) === hours));
  }
  if (state.key.usageShown !== id) {
    $('key-usage-summary').textContent = '';
    $('key-usage-figure').hidden = true;
    $('key-usage-details').hidden = true;
  }
  return load('key-usage-state', 'the key\'s usage', async () => {
    const from = new Date(Date.now() - hours * 3600 * 1000).toISOString();
    const usage = await state.api.get(`/v1/keys/${encodeURIComponent(id)}/usage?from=${encodeURIComponent(from)}`);
    // A later choice (another key, another period) wins.
    if (state.key.id === id && state.key.usageHours === hours) {
      showUsage(usage, hours);
      state.key.usageShown = id;
    }
  });
}

async function moreKeyHistory() {
  const query = new URLSearchParams({ limit: String(pageSize), cursor: state.key.cursor });
  try {
    const page = await state.api.get(`/v1/keys/${encodeURIComponent(state.key.id)}/events?${query}`);
    await nameKeys(page.data.map((event) => event.actor_key_id));
    const body = $('key-history-table').tBodies[0];
    for (const event of page.data) {
      if (!body.querySelector(`tr[data-event-id="${event.id}"]`)) {
        body.append(historyRow(event));
      }
    }
    state.key.cursor = page.next_cursor;
    $('key-history-more').hidden = !page.next_cursor;
  } catch (err) {
    report(err);
  }
}

function historyRow(event) {
  return el('tr', { dataset: { eventId: String(event.id), type: event.type } },
    el('td', {}, when(event.created_at)),
    el('td', {}, el('span', { class: `status ${event.type}` }, event.type)),
    actorCell(event),
    el('td', { class: 'wide' }, event.ip_address || '—'),
    el('td', { class: 'ua wide', title: event.user_agent || '' }, event.user_agent || '—'));
}

// ---- audit events --------------------------------------------------------

async function showEvents() {
  await load('events-state', 'the audit events', async () => {
    await Promise.all([loadKeyChoices(), knowMe()]);
    await loadEvents(false);
  });
  if (state.page === 'events') {
    state.live.start();
  }
}

async function loadKeyChoices() {
  await loadAllKeys();
  const select = $('events-key');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '' }, 'all keys'));
  for (const key of [...state.keys.all].sort(sorts.newest)) {
    addKeyChoice(key.id);
  }
  select.value = chosen;
}

// addKeyChoice offers a key in the events' key filter, once.
function addKeyChoice(id) {
  const select = $('events-key');
  if (state.keys.byId.has(id) && ![...select.options].some((option) => option.value === id)) {
    select.append(el('option', { value: id }, keyLabel(id)));
  }
}

function eventsPath(more) {
  const query = new URLSearchParams({ limit: String(pageSize) });
  const type = $('events-type').value;
  if (type) {
    query.set('type', type);
  }
  if (more && state.events.cursor) {
    query.set('cursor', state.events.cursor);
  }
  const key = $('events-key').value;
  return key ? `/v1/keys/${encodeURIComponent(key)}/events?${query}` : `/v1/events?${query}`;
}

async function loadEvents(more) {
  const page = await state.api.get(eventsPath(more));
  await nameKeys(page.data.flatMap((event) => [event.key_id, event.actor_key_id]));
  const body = $('events-table').tBodies[0];
  if (!more) {
    body.replaceChildren();
  }
  for (const event of page.data) {
    // An event already listed (a page read twice, or one that came live)
    // is not listed again.
    if (!body.querySelector(`tr[data-event-id="${event.id}"]`)) {
      body.append(eventRow(event, false));
    }
  }
  state.events.cursor = page.next_cursor;
  $('events-more').hidden = !page.next_cursor;
  $('events-empty').hidden = body.rows.length > 0;
}

function reloadEvents() {
  return load('events-state', 'the audit events', () => loadEvents(false));
}

async function moreEvents() {
  try {
    await loadEvents(true);
  } catch (err) {
    report(err);
  }
}

function eventRow(event, live) {
  return el('tr', { dataset: { eventId: String(event.id), type: event.type, live: live ? 'true' : 'false' }, class: live ? 'live-row' : '' },
    el('td', {}, when(event.created_at), live ? el('span', { class: 'badge' }, 'live') : ''),
    el('td', {}, el('span', { class: `status ${event.type}` }, event.type)),
    el('td', { title: keyLabel(event.key_id) }, el('span', { class: 'clamp' }, state.keys.byId.has(event.key_id) ? el('a', { href: `#/keys/${event.key_id}` }, keyLabel(event.key_id)) : event.key_id)),
    actorCell(event),
    el('td', { class: 'wide' }, event.ip_address || '—'),
    el('td', { class: 'ua wide', title: event.user_agent || '' }, event.user_agent || '—'));
}

function matchesFilters(event) {
  const type = $('events-type').value;
  const key = $('events-key').value;
  return (!type || type === event.type) && (!key || key === event.key_id);
}

async function onLiveEvent(event) {
  if (!matchesFilters(event)) {
    return;
  }
  if (!state.keys.byId.has(event.key_id)) {
    await nameKeys([event.key_id, event.actor_key_id]).catch(() => {});
    addKeyChoice(event.key_id);
  }
  const body = $('events-table').tBodies[0];
  if (!body.querySelector(`tr[data-event-id="${event.id}"]`)) {
    body.prepend(eventRow(event, true));
  }
  $('events-empty').hidden = true;
}

// explainLiveFailure finds why a socket was refused before it opened: the
// browser only reports 1006. The likely reason is the tier's connection
// limit, held by another tab or program.
async function explainLiveFailure() {
  const [who, list] = await Promise.all([me(), state.api.get('/v1/ws/connections')]);
  const limit = who.limits.max_connections;
  const mine = list.data.filter((c) => !c.key_prefix && !state.live.ownIds.has(c.id));
  if (mine.length >= limit) {
    return `your ${who.tier} tier allows ${plural(limit, 'live connection')} per user, and another tab or program is using it. Close it on the Connections page, or close the other tab`;
  }
  return '';
}

// ---- connections ---------------------------------------------------------

function showConnections() {
  return load('connections-state', 'the connections', async () => {
    const [list] = await Promise.all([state.api.get('/v1/ws/connections'), loadAllKeys().catch(() => {})]);
    const byPrefix = new Map(state.keys.all.map((key) => [key.prefix, key]));
    const body = $('connections-table').tBodies[0];
    body.replaceChildren();
    // This tab's own sockets (the events page's, closing as it was left)
    // are not listed: closing them would only cut the page's own feed.
    for (const c of list.data.filter((conn) => !state.live.ownIds.has(conn.id))) {
      const key = byPrefix.get(c.key_prefix);
      const label = key ? `${key.name} (${c.key_prefix})` : c.key_prefix || 'user session';
      const close = el('button', { type: 'button', class: 'close-connection danger', 'aria-label': `Close the connection of ${label}` }, 'Close');
      close.addEventListener('click', () => busy(close, () => closeConnection(c, label)));
      body.append(el('tr', { dataset: { connectionId: c.id, keyPrefix: c.key_prefix || '' } },
        el('td', {}, key ? el('a', { href: `#/keys/${key.id}` }, label) : label),
        el('td', { class: 'wide' }, c.machine_id || '—'),
        el('td', {}, c.hostname || '—'),
        el('td', { class: 'wide' }, c.remote_addr || '—'),
        el('td', { class: 'wide' }, when(c.connected_at)),
        el('td', { class: 'wide' }, when(c.last_activity_at)),
        el('td', { class: 'actions' }, close)));
    }
    $('connections-empty').hidden = body.rows.length > 0;
  });
}

async function closeConnection(c, label) {
  const ok = await confirmAction({
    title: 'Close this connection?',
    text: `The client of ${label} is told "closed by owner" and may reconnect. To stop it for good, revoke its key.`,
    confirm: 'Close connection',
  });
  if (!ok) {
    return;
  }
  hideNotice();
  try {
    await state.api.del(`/v1/ws/connections/${c.id}`);
    // The close handshake finishes on its own time: listing again at once
    // could still show the connection, so the row goes now.
    const row = document.querySelector(`#connections-table tr[data-connection-id="${c.id}"]`);
    if (row) {
      row.remove();
    }
    $('connections-empty').hidden = $('connections-table').tBodies[0].rows.length > 0;
    $('connections-reload').focus(); // the row and its button are gone
    showNotice(`Connection of ${label} closed.`, { kind: 'info' });
  } catch (err) {
    report(err);
  }
}

// ---- settings: the owner's policy ----------------------------------------

// lifetimeText names a lifetime in seconds: whole days as days, else hours.
function lifetimeText(seconds) {
  return seconds % 86400 === 0 ? plural(seconds / 86400, 'day') : `${Math.round(seconds / 360) / 10} h`;
}

// showPolicy sets the form to a policy; a lifetime set elsewhere (mk, the
// API) that no option names gets an option of its own.
function showPolicy(policy) {
  const select = $('policy-lifetime');
  select.querySelector('option[data-custom]')?.remove();
  const value = policy.max_key_lifetime === null ? '' : String(policy.max_key_lifetime);
  if (![...select.options].some((option) => option.value === value)) {
    select.append(el('option', { value, dataset: { custom: 'yes' } }, lifetimeText(policy.max_key_lifetime)));
  }
  select.value = value;
  for (const radio of document.querySelectorAll('#policy-form input[name=leak]')) {
    radio.checked = radio.value === policy.leak_policy;
  }
}

function showSettings() {
  $('policy-saved').textContent = '';
  return load('settings-state', 'your account\'s rules', async () => {
    showPolicy(await state.api.get('/v1/owner/policy'));
  });
}

async function savePolicy() {
  hideNotice();
  $('policy-saved').textContent = '';
  const lifetime = $('policy-lifetime').value;
  const leak = document.querySelector('#policy-form input[name=leak]:checked');
  const body = { max_key_lifetime: lifetime ? Number(lifetime) : null };
  if (leak) {
    body.leak_policy = leak.value;
  }
  try {
    const policy = await state.api.patch('/v1/owner/policy', body);
    showPolicy(policy);
    $('policy-saved').textContent = 'Saved.';
  } catch (err) {
    report(err);
  }
}

// ---- start ---------------------------------------------------------------

async function main() {
  try {
    const response = await fetch('config.json', { cache: 'no-store' });
    state.config = await response.json();
  } catch {
    $('loading').textContent = 'The dashboard could not load its settings. Reload the page to try again.';
    return;
  }
  const apiURL = state.config.api_url || '';
  state.session = new Session(state.config, apiURL || window.location.origin);
  state.api = new Client(apiURL, () => state.session.token(), () => state.session.clear('Your session has expired. Sign in again: you will be back on this page, with what you typed.'));
  state.live = new LiveEvents({
    socketURL: () => state.api.socketURL('/v1/ws'),
    onEvent: onLiveEvent,
    onStatus: (text) => {
      $('live-status').textContent = `Live updates: ${text}`;
    },
    explain: explainLiveFailure,
    canRetry: () => Boolean(state.session.token()) && state.page === 'events',
  });
  state.session.onChange = (message) => {
    if (message) {
      showNotice(message, { kind: 'info' });
    }
    if (!state.session.token()) {
      route();
    }
  };
  state.session.onExpiring = onSessionExpiring;
  state.session.restore();

  $('dev-form').addEventListener('submit', onDevSignIn);
  $('supabase-form').addEventListener('submit', onSupabaseSignIn);
  $('sign-out').addEventListener('click', async () => {
    state.live.stop();
    await state.session.signOut();
    window.location.hash = '';
  });
  $('notice-close').addEventListener('click', hideNotice);
  $('notice-action').addEventListener('click', (e) => busy(e.currentTarget, runNoticeAction));
  $('create-form').addEventListener('submit', onCreateKey);
  $('create-expiry').addEventListener('change', () => {
    $('create-date-row').hidden = $('create-expiry').value !== 'date';
  });
  for (const id of ['keys-status', 'keys-sort']) {
    $(id).addEventListener('change', () => {
      state.keys.pinned.clear();
      state.keys.shown = pageSize;
      renderKeys();
    });
  }
  $('keys-search').addEventListener('input', () => {
    state.keys.pinned.clear();
    state.keys.shown = pageSize;
    renderKeys();
  });
  $('keys-more').addEventListener('click', () => {
    const first = state.keys.shown;
    state.keys.shown += pageSize;
    renderKeys();
    // Keyboard users continue from the first new row.
    document.querySelector(`#keys-table tbody tr:nth-child(${first + 1}) a`)?.focus();
  });
  $('events-type').addEventListener('change', reloadEvents);
  $('events-key').addEventListener('change', reloadEvents);
  $('events-more').addEventListener('click', (e) => busy(e.currentTarget, moreEvents));
  $('key-history-more').addEventListener('click', (e) => busy(e.currentTarget, moreKeyHistory));
  for (const button of document.querySelectorAll('.usage-range')) {
    button.addEventListener('click', () => {
      state.key.usageHours = Number(button.dataset.hours);
      busy(button, loadKeyUsage);
    });
  }
  $('connections-reload').addEventListener('click', (e) => busy(e.currentTarget, showConnections));
  $('policy-form').addEventListener('submit', (e) => {
    e.preventDefault();
    busy($('policy-save'), savePolicy);
  });
  $('refresh-form').addEventListener('change', onGracePreset);
  $('refresh-grace').addEventListener('input', () => {
    $('refresh-form').querySelector('input[name=grace][value=custom]').checked = true;
  });
  $('secret-copy').addEventListener('click', () => copySecretField('secret-value', 'the secret'));
  $('secret-copy-export').addEventListener('click', () => copySecretField('secret-export', 'the export line'));
  $('secret-copy-curl').addEventListener('click', () => copySecretField('secret-curl', 'the curl line'));
  $('secret-done').addEventListener('click', () => closeSecret(null));
  $('secret-dialog').addEventListener('cancel', closeSecret);
  $('secret-dialog').addEventListener('close', forgetSecret);
  window.addEventListener('hashchange', () => {
    route();
    $('main').focus(); // keyboard and screen-reader users land on the new page
  });
  route();
}

main();
