// keyhub's dashboard: sign-in, then four pages (who am I, keys, audit
// events, connections) over the public REST API and the WebSocket. Every
// value from the API reaches the page through textContent, never as HTML.
// A new key's secret exists only in the secret dialog, which is emptied
// when it closes: it is never stored, logged or put in a URL.

import { Client, isSessionError } from './api.js';
import { Session } from './session.js';

const $ = (id) => document.getElementById(id);
const pageSize = 20;

const state = {
  config: null,
  session: null,
  api: null,
  page: '',
  keys: { cursor: null },
  events: { cursor: null, socket: null },
  // Every key the page has seen, by id: events and the key filter name
  // keys on any page of the key list, not only the first.
  keysById: new Map(),
};

// ---- small DOM helpers ---------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (name === 'class') {
      node.className = value;
    } else if (name.startsWith('aria-')) {
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

function when(iso) {
  if (!iso) {
    return '—';
  }
  const at = new Date(iso);
  return el('time', { dateTime: iso, title: at.toISOString() }, at.toLocaleString());
}

function showNotice(text, kind = 'error') {
  $('notice-text').textContent = text;
  $('notice').className = `notice ${kind}`;
  $('notice').hidden = false;
}

function hideNotice() {
  $('notice').hidden = true;
}

// report shows an API error with its code and message; a lost session
// has already sent the user back to sign-in.
function report(err) {
  if (isSessionError(err)) {
    return;
  }
  showNotice(typeof err.describe === 'function' ? err.describe() : String(err.message || err));
}

function confirmAction(text) {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

// busy runs action while button is disabled (and marked busy for
// assistive technology), and ignores the button while it is: a double
// click, or a second Enter, would otherwise send the request twice (two
// keys created, one secret lost). It returns action's result, or
// undefined when the button was already busy.
async function busy(button, action) {
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

// ---- routing -------------------------------------------------------------

const pages = {
  me: { show: showMe },
  keys: { show: showKeys },
  events: { show: showEvents, leave: stopLive },
  connections: { show: showConnections },
};

function route() {
  const signedIn = Boolean(state.session.token());
  const wanted = window.location.hash.replace(/^#\/?/, '');
  // Own properties only: pages[wanted] also finds what every object
  // inherits (#/constructor, #/toString, #/__proto__).
  const known = Object.hasOwn(pages, wanted);
  let page = signedIn ? (known ? wanted : 'me') : 'signin';
  if (!signedIn && wanted && known) {
    page = 'signin';
  }
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
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.page === page) {
      link.setAttribute('aria-current', 'page');
    } else {
      link.removeAttribute('aria-current');
    }
  }
  document.title = `${page === 'signin' ? 'Sign in' : $(`${page}-title`).textContent} · keyhub`;
  if (page === 'signin') {
    showSignIn();
  } else {
    pages[page].show();
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

async function onDevSignIn(event) {
  event.preventDefault();
  hideNotice();
  try {
    await state.session.signInDev($('dev-email').value.trim());
    go('me');
  } catch (err) {
    showNotice(err.message);
  }
}

async function onSupabaseSignIn(event) {
  event.preventDefault();
  hideNotice();
  const password = $('sb-password');
  try {
    await state.session.signInSupabase($('sb-email').value.trim(), password.value);
    password.value = '';
    go('me');
  } catch (err) {
    showNotice(err.message);
  }
}

// ---- who am I ------------------------------------------------------------

function fillDetails(list, rows) {
  list.replaceChildren();
  for (const [term, value] of rows) {
    list.append(el('dt', {}, term), el('dd', {}, value));
  }
}

async function showMe() {
  try {
    const me = await state.api.get('/v1/me');
    fillDetails($('me-details'), [
      ['Email', me.email || '—'],
      ['Tier', me.tier],
      ['Signed in with', me.auth_method === 'jwt' ? 'user session' : `API key ${me.key_prefix}`],
      ['Scopes', me.scopes.join(', ')],
      ['Session ends', when(me.expires_at)],
      ['User id', me.user_id],
      ['Account (owner) id', me.owner_id],
    ]);
    const l = me.limits;
    fillDetails($('me-limits'), [
      ['Active keys', String(l.max_active_keys)],
      ['Open connections per key', String(l.max_connections)],
      ['Messages per minute', String(l.messages_per_minute)],
      ['Largest message', `${Math.round(l.max_message_bytes / 1024)} KiB`],
      ['Connection lifetime', `${Math.round(l.session_seconds / 60)} min`],
    ]);
  } catch (err) {
    report(err);
  }
}

// ---- keys ----------------------------------------------------------------

async function showKeys() {
  await Promise.all([loadKeys(false), offerProductScopes()]);
}

// offerProductScopes adds a box for every scope the session holds that the
// picker lacks: the server's product scopes (PRODUCT_SCOPES). A session
// holds every scope, so /v1/me lists them all.
async function offerProductScopes() {
  const me = await state.api.get('/v1/me');
  const picker = $('create-scopes');
  const offered = new Set([...picker.querySelectorAll('input[name=scopes]')].map((box) => box.value));
  for (const scope of me.scopes.filter((s) => !offered.has(s))) {
    picker.append(el('label', {}, el('input', { type: 'checkbox', name: 'scopes', value: scope, checked: true }), ` ${scope}`));
  }
}

async function loadKeys(more) {
  const status = $('keys-status').value;
  const query = new URLSearchParams({ status, limit: String(pageSize) });
  if (more && state.keys.cursor) {
    query.set('cursor', state.keys.cursor);
  }
  try {
    const page = await state.api.get(`/v1/keys?${query}`);
    const body = $('keys-table').tBodies[0];
    if (!more) {
      body.replaceChildren();
    }
    for (const key of page.data) {
      rememberKey(key);
      // A key already listed (a page read twice) is not listed again.
      if (!body.querySelector(`tr[data-key-id="${key.id}"]`)) {
        body.append(keyRow(key));
      }
    }
    state.keys.cursor = page.next_cursor;
    $('keys-more').hidden = !page.next_cursor;
    $('keys-empty').hidden = body.rows.length > 0;
  } catch (err) {
    report(err);
  }
}

function keyRow(key) {
  const actions = el('td', { class: 'actions' });
  if (key.status === 'active') {
    actions.append(el('button', { type: 'button', class: 'refresh', 'aria-label': `Refresh ${key.name}`, onclick: (e) => busy(e.currentTarget, () => refreshKey(key)) }, 'Refresh'));
  }
  if (!key.revoked_at) {
    actions.append(el('button', { type: 'button', class: 'revoke danger', 'aria-label': `Revoke ${key.name}`, onclick: (e) => busy(e.currentTarget, () => revokeKey(key)) }, 'Revoke'));
  }
  let status = key.status;
  if (key.status === 'active' && key.expires_at && key.replaced_by) {
    status = 'active (grace)';
  }
  return el('tr', { dataset: { keyId: key.id, prefix: key.prefix, status: key.status } },
    el('td', {}, key.name),
    el('td', {}, el('code', {}, key.prefix)),
    el('td', {}, el('span', { class: `status ${key.status}` }, status)),
    el('td', { class: 'scopes' }, key.scopes.join(' ')),
    el('td', {}, when(key.created_at)),
    el('td', {}, when(key.expires_at)),
    el('td', {}, when(key.last_used_at)),
    actions);
}

function onCreateKey(event) {
  event.preventDefault();
  busy($('create-submit'), () => createKey(event.target));
}

async function createKey(form) {
  hideNotice();
  const body = {
    name: $('create-name').value.trim(),
    scopes: [...form.querySelectorAll('input[name=scopes]:checked')].map((box) => box.value),
  };
  const expiry = $('create-expiry').value;
  if (expiry) {
    body.expires_in = Number(expiry);
  }
  try {
    const created = await state.api.post('/v1/keys', body);
    form.reset();
    showSecret(created);
    await loadKeys(false);
  } catch (err) {
    report(err);
  }
}

function showSecret(created) {
  $('secret-name').textContent = `${created.name} (${created.prefix})`;
  $('secret-value').value = created.key;
  $('secret-copied').textContent = '';
  $('secret-dialog').showModal();
  $('secret-value').select();
}

async function copySecret() {
  const input = $('secret-value');
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand('copy');
  }
  $('secret-copied').textContent = 'Copied to the clipboard.';
}

function forgetSecret() {
  $('secret-value').value = '';
  $('secret-name').textContent = '';
  $('secret-copied').textContent = '';
}

// refreshKey asks for the grace period, then refreshes; it resolves when
// all is done, so the row's button stays busy that long.
async function refreshKey(key) {
  const dialog = $('refresh-dialog');
  $('refresh-name').textContent = key.name;
  $('refresh-grace').value = '0';
  dialog.returnValue = '';
  dialog.showModal();
  await new Promise((resolve) => dialog.addEventListener('close', resolve, { once: true }));
  if (dialog.returnValue !== 'ok') {
    return;
  }
  hideNotice();
  try {
    const grace = Number($('refresh-grace').value || '0');
    const result = await state.api.post(`/v1/keys/${key.id}/refresh`, { grace_period: grace });
    showSecret(result.new_key);
    await loadKeys(false);
  } catch (err) {
    report(err);
  }
}

async function revokeKey(key) {
  if (!(await confirmAction(`Revoke ${key.name} (${key.prefix})? Everything using it stops working at once.`))) {
    return;
  }
  hideNotice();
  try {
    await state.api.del(`/v1/keys/${key.id}`);
    await loadKeys(false);
  } catch (err) {
    report(err);
  }
}

// ---- key names -----------------------------------------------------------

const keyPageLimit = 200; // the API's largest page

function rememberKey(key) {
  state.keysById.set(key.id, key);
}

// keyLabel names a key by its name and prefix, or by its id while the page
// does not know it.
function keyLabel(id) {
  const key = state.keysById.get(id);
  return key ? `${key.name} (${key.prefix})` : id;
}

// loadAllKeys reads every key of the account, page after page (a list of
// one page of 100 used to leave the older keys as bare ids).
async function loadAllKeys() {
  const all = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ status: 'all', limit: String(keyPageLimit) });
    if (cursor) {
      query.set('cursor', cursor);
    }
    const page = await state.api.get(`/v1/keys?${query}`);
    for (const key of page.data) {
      rememberKey(key);
      all.push(key);
    }
    cursor = page.next_cursor;
  } while (cursor);
  return all;
}

// nameKeys looks up, one by one, the keys of ids the page does not know
// (created since the list was read).
async function nameKeys(ids) {
  const unknown = [...new Set(ids)].filter((id) => id && !state.keysById.has(id));
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

// ---- audit events --------------------------------------------------------

async function showEvents() {
  await loadKeyChoices();
  await loadEvents(false);
  startLive();
}

async function loadKeyChoices() {
  try {
    const keys = await loadAllKeys();
    const select = $('events-key');
    const chosen = select.value;
    select.replaceChildren(el('option', { value: '' }, 'all keys'));
    for (const key of keys) {
      addKeyChoice(key.id);
    }
    select.value = chosen;
  } catch (err) {
    report(err);
  }
}

// addKeyChoice offers a key in the events' key filter, once.
function addKeyChoice(id) {
  const select = $('events-key');
  if (state.keysById.has(id) && ![...select.options].some((option) => option.value === id)) {
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
  try {
    const page = await state.api.get(eventsPath(more));
    const body = $('events-table').tBodies[0];
    if (!more) {
      body.replaceChildren();
    }
    await nameKeys(page.data.flatMap((event) => [event.key_id, event.actor_key_id]));
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
  } catch (err) {
    report(err);
  }
}

// actorOf names who acted: a key (by its prefix when the page knows it), a
// signed-in user, or keyhub itself (an expiry has no actor).
function actorOf(event) {
  if (event.actor_key_id) {
    return `key ${keyLabel(event.actor_key_id)}`;
  }
  return event.actor_user_id ? 'dashboard user' : 'keyhub';
}

function eventRow(event, live) {
  const key = keyLabel(event.key_id);
  return el('tr', { dataset: { eventId: String(event.id), type: event.type, live: live ? 'true' : 'false' }, class: live ? 'live-row' : '' },
    el('td', {}, when(event.created_at), live ? el('span', { class: 'badge' }, 'live') : ''),
    el('td', {}, el('span', { class: `status ${event.type}` }, event.type)),
    el('td', {}, key),
    el('td', { class: 'actor' }, actorOf(event)),
    el('td', {}, event.ip_address || '—'),
    el('td', { class: 'ua' }, event.user_agent || '—'));
}

function matchesFilters(event) {
  const type = $('events-type').value;
  const key = $('events-key').value;
  return (!type || type === event.type) && (!key || key === event.key_id);
}

function setLive(text) {
  $('live-status').textContent = `Live updates: ${text}`;
}

// startLive opens the events WebSocket with a one-use ticket (a browser
// cannot set headers on a WebSocket) and subscribes to the audit stream.
async function startLive() {
  stopLive();
  setLive('connecting…');
  let socket;
  try {
    socket = new WebSocket(await state.api.socketURL('/v1/ws'));
  } catch (err) {
    setLive('off');
    report(err);
    return;
  }
  state.events.socket = socket;
  socket.addEventListener('message', async (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    if (data.type === 'welcome') {
      socket.send(JSON.stringify({ type: 'subscribe', topic: 'events' }));
    } else if (data.type === 'subscribed') {
      setLive('on');
    } else if (data.type === 'event' && matchesFilters(data.event)) {
      if (!state.keysById.has(data.event.key_id)) {
        await nameKeys([data.event.key_id, data.event.actor_key_id]);
        addKeyChoice(data.event.key_id);
      }
      const body = $('events-table').tBodies[0];
      if (!body.querySelector(`tr[data-event-id="${data.event.id}"]`)) {
        body.prepend(eventRow(data.event, true));
      }
      $('events-empty').hidden = true;
    } else if (data.type === 'error') {
      const retry = data.retry_after_ms ? ` Try again in ${Math.ceil(data.retry_after_ms / 1000)} s.` : '';
      showNotice(`${data.code}: ${data.message || 'live updates failed'}.${retry}`);
    }
  });
  socket.addEventListener('close', (close) => {
    if (state.events.socket !== socket) {
      return; // replaced or stopped on purpose
    }
    state.events.socket = null;
    if (close.code === 4000 && state.page === 'events' && state.session.token()) {
      startLive(); // the socket ended with the old access token; the session has a newer one
      return;
    }
    setLive(`off (closed: ${close.code}${close.reason ? ` ${close.reason}` : ''})`);
  });
}

function stopLive() {
  const socket = state.events.socket;
  state.events.socket = null;
  if (socket) {
    socket.close(1000, 'page left');
  }
  setLive('off');
}

// ---- connections ---------------------------------------------------------

async function showConnections() {
  try {
    const list = await state.api.get('/v1/ws/connections');
    const body = $('connections-table').tBodies[0];
    body.replaceChildren();
    for (const c of list.data) {
      const label = c.key_prefix || 'user session';
      body.append(el('tr', { dataset: { connectionId: c.id, keyPrefix: c.key_prefix || '' } },
        el('td', {}, c.key_prefix ? el('code', {}, c.key_prefix) : 'user session'),
        el('td', {}, c.machine_id || '—'),
        el('td', {}, c.hostname || '—'),
        el('td', {}, c.remote_addr || '—'),
        el('td', {}, when(c.connected_at)),
        el('td', {}, when(c.last_activity_at)),
        el('td', { class: 'actions' }, el('button', { type: 'button', class: 'close-connection danger', 'aria-label': `Close the connection of ${label}`, onclick: (e) => busy(e.currentTarget, () => closeConnection(c, label)) }, 'Close'))));
    }
    $('connections-empty').hidden = list.data.length > 0;
  } catch (err) {
    report(err);
  }
}

async function closeConnection(c, label) {
  if (!(await confirmAction(`Close the connection of ${label}? The client is told "closed by owner" and may reconnect.`))) {
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
    showNotice(`Connection of ${label} closed.`, 'info');
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
    $('loading').textContent = 'The dashboard configuration (config.json) could not be loaded.';
    return;
  }
  const apiURL = state.config.api_url || '';
  state.session = new Session(state.config, apiURL || window.location.origin);
  state.api = new Client(apiURL, () => state.session.token(), () => state.session.clear('Your session has expired. Sign in again.'));
  state.session.onChange = (message) => {
    if (message) {
      showNotice(message, 'info');
    }
    if (!state.session.token()) {
      route();
    }
  };
  state.session.restore();

  $('dev-form').addEventListener('submit', onDevSignIn);
  $('supabase-form').addEventListener('submit', onSupabaseSignIn);
  $('sign-out').addEventListener('click', async () => {
    stopLive();
    await state.session.signOut();
    window.location.hash = '';
  });
  $('notice-close').addEventListener('click', hideNotice);
  $('create-form').addEventListener('submit', onCreateKey);
  $('keys-status').addEventListener('change', () => loadKeys(false));
  $('keys-more').addEventListener('click', (e) => busy(e.currentTarget, () => loadKeys(true)));
  $('events-type').addEventListener('change', () => loadEvents(false));
  $('events-key').addEventListener('change', () => loadEvents(false));
  $('events-more').addEventListener('click', (e) => busy(e.currentTarget, () => loadEvents(true)));
  $('connections-reload').addEventListener('click', (e) => busy(e.currentTarget, showConnections));
  $('secret-copy').addEventListener('click', copySecret);
  $('secret-done').addEventListener('click', () => {
    forgetSecret();
    $('secret-dialog').close();
  });
  $('secret-dialog').addEventListener('close', forgetSecret);
  window.addEventListener('hashchange', () => {
    route();
    $('main').focus(); // keyboard and screen-reader users land on the new page
  });
  route();
}

main();
