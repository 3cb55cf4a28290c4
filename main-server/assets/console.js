// Solme operator console: a client of the admin API (/admin/v1, docs/API.md).
//
// Rules this file keeps:
// - Data from the server only ever reaches the page as text (textContent / text
//   nodes via el()), never parsed as markup. The page's Content-Security-Policy allows no
//   inline script anyway.
// - The personal token is sent once, to open a console session (POST /sessions), and
//   is not kept. The session secret lives in sessionStorage (this tab only) and is sent
//   as a bearer header; nothing is stored in cookies, so cross-site requests carry
//   nothing, and nothing secret ever goes into a URL.
// - Controls the signed-in role may not use are hidden (data-needs="manage" or
//   "admin", and not built for table rows); the server refuses them anyway.
'use strict';

(function () {
  const SESSION_KEY = 'solme.console.session';
  /** The signed-in account, `{name, role}`, once known. */
  let me = null;

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers ------------------------------------------------------------

  /** Builds an element; strings and numbers become text nodes, null is skipped. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key in node && key !== 'list') node[key] = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A button that runs `action` when clicked; with a `question`, only once the operator
  // confirms it.
  function button(text, cls, question, action) {
    return el('button', {
      type: 'button',
      class: cls,
      text,
      onclick: async () => {
        if (question && !window.confirm(question)) return;
        await action();
      },
    });
  }

  function fill(tbody, rows, columns, emptyText) {
    tbody.replaceChildren(...rows);
    if (rows.length === 0) {
      tbody.append(el('tr', {}, el('td', { colSpan: columns, class: 'empty', text: emptyText })));
    }
  }

  function fmtTime(value) {
    if (!value) return '—';
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }

  function fmtDate(value) {
    if (!value) return '—';
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    return d.toISOString().slice(0, 10);
  }

  /** `<input type=date>` value (YYYY-MM-DD) to RFC 3339 midnight UTC, '' to null. */
  function dateToApi(value) {
    return value ? value + 'T00:00:00Z' : null;
  }

  function dueCell(server) {
    if (server.retired_at) {
      return el('td', {}, el('span', { class: 'badge bad', text: 'retired' }),
        ' ', el('span', { class: 'hint', text: fmtDate(server.retired_at) }));
    }
    const days = server.days_until_due;
    if (days === null || days === undefined) {
      return el('td', {}, el('span', { class: 'badge warn', text: 'never synced' }));
    }
    if (days < 0) {
      return el('td', {}, el('span', {
        class: 'badge bad',
        text: 'overdue by ' + -days + (days === -1 ? ' day' : ' days'),
      }));
    }
    return el('td', {}, el('span', {
      class: days <= 30 ? 'badge warn' : 'badge ok',
      text: 'in ' + days + (days === 1 ? ' day' : ' days'),
    }), ' ', el('span', { class: 'hint', text: fmtDate(server.valid_until) }));
  }

  function serverLink(id) {
    if (!id) return '—';
    return el('a', { href: '#server/' + encodeURIComponent(id), class: 'mono', text: id });
  }

  /** The badge of an id marked a possible copy (null when it is not). */
  function copyBadge(server) {
    if (!server.possible_copy_since) return null;
    return el('span', {
      class: 'badge bad copy-badge',
      text: 'possible copy',
      title: 'Two installations seem to synchronize with this id\'s key pair (since '
        + fmtTime(server.possible_copy_since) + '); its page shows why.',
    });
  }

  /** An id's link with its possible-copy badge, for tables of ids. */
  function serverCell(server) {
    return el('td', {}, serverLink(server.server_id), server.possible_copy_since ? ' ' : null, copyBadge(server));
  }

  /** What a customer's copy policy does, in words. */
  function copyPolicyWords(policy) {
    return policy === 'refuse'
      ? 'refused: a marked id\'s syncs are refused until an operator dismisses the mark'
      : 'warned: a marked id is shown here, its syncs still answered';
  }

  function keyCell(server) {
    return el('td', {}, server.bound_fingerprint
      ? el('span', { class: 'mono', title: server.bound_fingerprint, text: shortFingerprint(server.bound_fingerprint) })
      : el('span', { class: 'hint', text: 'not bound' }));
  }

  function lastSyncCell(server) {
    return el('td', {}, fmtTime(server.last_sync_at),
      server.last_sync_channel ? el('span', { class: 'hint', text: ' (' + server.last_sync_channel + ')' }) : null);
  }

  // ---- messages ---------------------------------------------------------------

  let messageTimer = null;

  function showMessage(text, kind) {
    const box = $('message');
    box.textContent = text;
    box.className = 'message ' + (kind || 'info');
    box.hidden = false;
    clearTimeout(messageTimer);
    if (kind !== 'error') {
      messageTimer = setTimeout(() => { box.hidden = true; }, 6000);
    }
  }

  function showError(err) {
    if (err instanceof ApiError) showMessage(sentence(inWords(err.message)) + ' (' + err.code + ')', 'error');
    else showMessage('Error: ' + (err && err.message ? err.message : String(err)), 'error');
  }

  /** The API's names of the fields the console's forms set, with the forms' labels. */
  const FIELD_LABELS = {
    valid_from: 'Valid from',
    valid_until: 'Valid until',
    max_borrow_hours: 'Longest borrow',
    seats: 'Seats',
    feature: 'Feature',
    reason: 'Reason',
    name: 'Name',
    emails: 'Contact emails',
    email: 'Email',
    customer_id: 'Customer',
    due_within_days: 'Due within',
    limit: 'Entries',
    policy: 'When an id is marked',
    message_id: 'Mail',
  };

  /**
   * An API message in the console's words: the fields it names are called by the
   * labels of the forms that set them, and the advice meant for API and command-line
   * callers becomes what to do on this page.
   */
  function inWords(text) {
    let out = String(text)
      .replace(/\(override_unauthenticated: true, or --override-unauthenticated-sender\)/g,
        '(tick "approve although the sender was not authenticated")')
      .replace(/\s*\((force|confirm_ended|confirm_duplicate_name)\)/g, '');
    for (const [field, label] of Object.entries(FIELD_LABELS)) {
      out = out.replace(new RegExp('`?\\b' + field + '\\b`?', 'g'), (match) =>
        (/^[a-z]+$/.test(field) && !match.includes('`') ? match : '"' + label + '"'));
    }
    return out;
  }

  /** A message as a sentence: capital first letter, final full stop. */
  function sentence(text) {
    const t = String(text).trim();
    if (!t) return t;
    // An address or an id opening the message keeps its spelling.
    const first = /^[a-z]+\b(?![@.\-])/.test(t) ? t.charAt(0).toUpperCase() + t.slice(1) : t;
    return /[.!?]$/.test(first) ? first : first + '.';
  }

  // ---- the API ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  function session() { return sessionStorage.getItem(SESSION_KEY) || ''; }

  /** Forgets the session of this tab and whose it was. */
  function forgetSession() {
    sessionStorage.removeItem(SESSION_KEY);
    me = null;
  }

  /** Calls the admin API with this tab's session, or with `bearer` (sign-in). */
  async function api(method, path, body, bearer) {
    const headers = { Authorization: 'Bearer ' + (bearer || session()), Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch('/admin/v1' + path, init);
    } catch (e) {
      throw new ApiError('UNREACHABLE', 'the main server did not answer (' + e.message + ')', 0);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!response.ok) {
      const code = data && typeof data.code === 'string' ? data.code : 'HTTP_' + response.status;
      const message = data && typeof data.message === 'string' ? data.message : response.statusText;
      if (response.status === 401 && !bearer) {
        // The session expired, was ended, or its account was revoked or rotated.
        forgetSession();
        showSignIn();
        throw new ApiError(code, 'your console session has ended (it expired, was signed out, '
          + 'or your account was revoked or given a new token): sign in again with your personal token', 401);
      }
      throw new ApiError(code, message, response.status);
    }
    return data;
  }

  /** Runs an action from a button or form, reporting success or the API's refusal. */
  async function act(work, success) {
    try {
      await work();
      if (success) showMessage(success, 'ok');
      return true;
    } catch (err) {
      showError(err);
      return false;
    }
  }

  // ---- views ------------------------------------------------------------------

  const VIEWS = ['sign-in', 'customers', 'customer', 'servers', 'server', 'requests', 'audit', 'operators'];

  /** Whether the signed-in role may use controls that need `need` ('manage', 'admin'). */
  function may(need) {
    const role = me ? me.role : '';
    if (need === 'manage') return role === 'operator' || role === 'admin';
    if (need === 'admin') return role === 'admin';
    return false;
  }

  /** Shows who is signed in and hides what their role may not use. */
  function applyRole() {
    $('session-operator').textContent = 'Signed in as ' + me.name + ' (' + me.role + ')';
    document.body.dataset.role = me.role;
    for (const node of document.querySelectorAll('[data-needs]')) node.hidden = !may(node.dataset.needs);
  }

  function showView(name) {
    for (const view of VIEWS) $('view-' + view).hidden = view !== name;
    const tab = name === 'server' ? 'servers' : name === 'customer' ? 'customers' : name;
    for (const link of document.querySelectorAll('#nav a')) {
      if (link.dataset.view === tab) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  function showSignIn() {
    $('nav').hidden = true;
    $('session').hidden = true;
    delete document.body.dataset.role;
    hideIssued();
    showView('sign-in');
    $('token').focus();
  }

  async function route() {
    if (!session()) {
      showSignIn();
      return;
    }
    try {
      // After a reload only the session is known: ask whose it is before showing
      // anything, so that no control of another role shows even for a moment.
      if (!me) me = await api('GET', '/whoami');
    } catch (err) {
      showError(err);
      return;
    }
    applyRole();
    $('nav').hidden = false;
    $('session').hidden = false;
    showClock().catch(() => { $('clock-banner').hidden = true; });
    const hash = decodeURIComponent(location.hash.replace(/^#/, ''));
    const [name, arg] = hash.split('/', 2);
    if (name !== 'operators') hideIssued();
    try {
      switch (name) {
        case 'servers': showView('servers'); await loadServers(); break;
        case 'server': showView('server'); await loadServer(arg); break;
        case 'customer': showView('customer'); await loadCustomer(arg); break;
        case 'requests': showView('requests'); await loadRequests(); break;
        case 'audit': showView('audit'); await loadAudit(auditAt); break;
        case 'operators':
          if (may('admin')) { showView('operators'); await loadOperators(); break; }
        // falls through: only an admin sees the operators
        default: showView('customers'); await loadCustomers(); break;
      }
    } catch (err) {
      showError(err);
    }
  }

  /**
   * Says so when the server runs on a simulated clock (a test or demonstration
   * installation): every date it writes (syncs, license files, reminders, the audit
   * log) follows that clock, not this computer's.
   */
  async function showClock() {
    const clock = await api('GET', '/clock');
    const banner = $('clock-banner');
    if (!clock.simulated) {
      banner.hidden = true;
      return;
    }
    const days = Math.round(clock.offset_seconds / 86400);
    const away = days === 0 ? 'less than a day from real time'
      : Math.abs(days) + (Math.abs(days) === 1 ? ' day ' : ' days ') + (days > 0 ? 'ahead of' : 'behind') + ' real time';
    banner.textContent = 'This server runs on a simulated clock: ' + fmtTime(clock.now) + ' (' + away + '). '
      + 'Every date it writes (syncs, license files, reminders, the audit log) follows that clock.';
    banner.hidden = false;
  }

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  // Customers

  /** Customers per page: the registry may hold 100,000; "More" asks for the next page. */
  const CUSTOMERS_PAGE = 100;
  /** Last customer shown, the cursor of the next page (null: nothing shown yet). */
  let customersAfter = null;
  /** How many customers the view shows. */
  let customersShown = 0;
  /** Counts the view's loads, so that an answer overtaken by a newer search is dropped. */
  let customersLoad = 0;

  /** One customer's row: name, contacts and, for operators, adding an email and an id. */
  function customerRow(c) {
    const emailInput = el('input', { type: 'email', required: true, placeholder: 'new@address', maxLength: 254 });
    let row = null;
    const addEmail = el('form', {
      class: 'inline compact',
      onsubmit: async (event) => {
        event.preventDefault();
        let changed = null;
        const ok = await act(async () => {
          changed = await api('POST', '/customers/' + encodeURIComponent(c.id) + '/emails',
            { email: emailInput.value.trim() });
        }, 'Email added to ' + c.name + '.');
        // The row changes in place: the pages shown above and below stay.
        if (ok && changed) row.replaceWith(customerRow(changed));
      },
    }, emailInput, el('button', { type: 'submit', class: 'secondary', text: 'Add' }));
    const allocate = el('button', {
      type: 'button',
      text: 'Allocate id',
      onclick: () => allocateFor(c.id, c.name),
    });
    row = el('tr', {},
      el('td', {}, el('a', { href: '#customer/' + encodeURIComponent(c.id) }, el('strong', { text: c.name })),
        el('div', { class: 'hint mono', text: c.id }),
        c.reminders_enabled === false ? el('div', { class: 'hint', text: 'reminders off' }) : null),
      el('td', {}, c.emails.length ? el('ul', { class: 'plain' }, c.emails.map((e) => el('li', { text: e })))
        : el('span', { class: 'hint', text: 'none' })),
      may('manage') ? el('td', {}, addEmail) : null,
      may('manage') ? el('td', {}, allocate) : null);
    return row;
  }

  /**
   * Loads the first page of customers (by name), of those whose name starts with the
   * search box's text if any; with `more`, the next page below the shown ones.
   */
  async function loadCustomers(more) {
    const load = ++customersLoad;
    const name = $('customers-name').value.trimStart();
    const params = new URLSearchParams({ limit: String(CUSTOMERS_PAGE) });
    if (name) params.set('name', name);
    if (more && customersAfter) params.set('after', customersAfter);
    const customers = await api('GET', '/customers?' + params.toString());
    if (load !== customersLoad) return;
    const rows = customers.map(customerRow);
    if (more) {
      $('customers-body').append(...rows);
      customersShown += customers.length;
    } else {
      fill($('customers-body'), rows, may('manage') ? 4 : 2,
        name ? 'No customer\'s name starts with "' + name + '".' : 'No customers yet.');
      customersShown = customers.length;
    }
    if (customers.length > 0) customersAfter = customers[customers.length - 1].id;
    else if (!more) customersAfter = null;
    // A full page may have a successor; a shorter one is the last.
    const last = customers.length < CUSTOMERS_PAGE;
    $('customers-more').hidden = last;
    const count = customersShown + (customersShown === 1 ? ' customer' : ' customers');
    $('customers-status').textContent = (name
      ? 'Showing ' + (last ? '' : 'the first ') + count + ' whose name starts with "' + name + '"'
      : 'Showing ' + (last ? '' : 'the first ') + count)
      + ', by name.' + (last ? '' : ' More shows the next ' + CUSTOMERS_PAGE + '.');
  }

  /**
   * A search-as-you-type customer picker: typing in the input `inputId` lists the
   * customers whose name starts with the text (the first PICKER_MATCHES, asked of the
   * server) in the list `inputId + '-matches'`; choosing one puts its name in the input
   * and keeps its id. `skip()` names a customer to leave out (or null). Returns
   * `{ chosen(), reset() }`; `chosen()` is `{ id, name }` or null.
   */
  function customerPicker(inputId, skip) {
    const input = $(inputId);
    const list = $(inputId + '-matches');
    let chosen = null;
    /** The customers listed now (a single one is taken without a click). */
    let matches = [];
    let searches = 0;
    let timer = null;

    function show(customers, text, full) {
      matches = customers;
      const items = customers.map((c) => el('li', {}, el('button', {
        type: 'button',
        class: 'pick',
        onclick: () => {
          chosen = { id: c.id, name: c.name };
          input.value = c.name;
          list.hidden = true;
          input.focus();
        },
      }, el('span', { text: c.name }), el('span', { class: 'hint mono', text: c.id }))));
      if (customers.length === 0) {
        items.push(el('li', { class: 'hint', text: 'No other customer\'s name starts with "' + text + '".' }));
      } else if (full) {
        items.push(el('li', { class: 'hint', text: 'The first ' + PICKER_MATCHES
          + ' matches, by name: type more of the name to find others.' }));
      }
      list.replaceChildren(...items);
      list.hidden = false;
    }

    async function search() {
      const text = input.value.trimStart();
      const search = ++searches;
      if (!text) {
        matches = [];
        list.hidden = true;
        return;
      }
      const params = new URLSearchParams({ name: text, limit: String(PICKER_MATCHES + 1) });
      let customers;
      try {
        customers = await api('GET', '/customers?' + params.toString());
      } catch (err) {
        showError(err);
        return;
      }
      if (search !== searches) return;
      const left = skip();
      const others = customers.filter((c) => c.id !== left);
      show(others.slice(0, PICKER_MATCHES), text, others.length > PICKER_MATCHES);
    }

    input.addEventListener('input', () => {
      chosen = null;
      clearTimeout(timer);
      timer = setTimeout(() => { search().catch(showError); }, 200);
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') list.hidden = true;
    });

    return {
      chosen() {
        if (chosen && input.value.trim() === chosen.name) return chosen;
        return matches.length === 1 ? { id: matches[0].id, name: matches[0].name } : null;
      },
      reset() {
        chosen = null;
        matches = [];
        ++searches;
        clearTimeout(timer);
        input.value = '';
        list.hidden = true;
      },
    };
  }
  /** Customers a picker lists at most: enough to choose among, small to send. */
  const PICKER_MATCHES = 20;

  // One customer: contacts, the reminder switch, and the reminders recorded

  const REMINDER_NAMES = { '30d': '30 days before', '7d': '7 days before', '1d': '1 day before', passed: 'limit passed' };
  const REMINDER_STATES = { pending: 'waiting for the mail gateway', handed: 'mailed', cancelled: 'cancelled (no longer due)' };

  async function loadCustomer(id) {
    if (!id) throw new ApiError('NOT_FOUND', 'no customer id in the address', 404);
    const [c, reminders] = await Promise.all([
      api('GET', '/customers/' + encodeURIComponent(id)),
      api('GET', '/customers/' + encodeURIComponent(id) + '/reminders'),
    ]);
    currentCustomer = c;
    showCustomerServers(c);
    $('copy-policy-state').textContent = 'Possible copies of ' + c.name + '\'s ids are ' + copyPolicyWords(c.copy_policy) + '.';
    $('copy-policy').value = c.copy_policy;
    $('customer-title').textContent = c.name;
    const dl = $('customer-facts');
    dl.replaceChildren(
      el('dt', { text: 'Customer id' }), el('dd', { class: 'mono', text: c.id }));
    $('rename-name').value = c.name;
    const contacts = c.emails.map((email) => el('li', {},
      el('span', { text: email }),
      may('manage') ? button('Remove', 'secondary remove-contact',
        'Remove ' + email + ' from ' + c.name + '? It gets no more reminders or key-clear notices.',
        async () => {
          const ok = await act(() => api('DELETE', '/customers/' + encodeURIComponent(c.id) + '/emails/'
            + encodeURIComponent(email)), email + ' removed from ' + c.name + '.');
          if (ok) loadCustomer(id).catch(showError);
        }) : null));
    $('contacts-list').replaceChildren(...(contacts.length ? contacts
      : [el('li', { class: 'hint', text: 'No contact address.' })]));
    $('reminders-state').textContent = c.reminders_enabled
      ? 'Reminder mails are on.' : 'Reminder mails are off: no reminder is sent to this customer.';
    const switchButton = $('reminders-switch');
    switchButton.textContent = c.reminders_enabled ? 'Switch reminders off' : 'Switch reminders on';
    switchButton.onclick = async () => {
      const enabled = !c.reminders_enabled;
      const ok = await act(() => api('PUT', '/customers/' + encodeURIComponent(c.id) + '/reminders', { enabled }),
        'Reminder mails for ' + c.name + ' switched ' + (enabled ? 'on' : 'off') + '.');
      if (ok) loadCustomer(id).catch(showError);
    };
    const rows = reminders.map((r) => el('tr', {},
      el('td', {}, serverLink(r.server_id)),
      el('td', { text: REMINDER_NAMES[r.threshold] || r.threshold }),
      el('td', { text: fmtTime(r.valid_until) }),
      el('td', { text: REMINDER_STATES[r.state] || r.state }),
      el('td', { text: fmtTime(r.created_at) }),
      el('td', { text: fmtTime(r.handed_at) }),
      el('td', { text: r.recipients.length ? r.recipients.join(', ') : '—' })));
    fill($('reminders-body'), rows, 7, 'No reminders recorded yet.');
  }

  /** The customer shown on the customer page. */
  let currentCustomer = null;

  /** The customer's ids: the first page the customer came with, "More" for the next. */
  function showCustomerServers(c) {
    const row = (s) => el('tr', {}, serverCell(s), keyCell(s), lastSyncCell(s), dueCell(s), el('td', { text: s.licenses.length }));
    fill($('customer-servers-body'), c.servers.map(row), 5, 'No license server ids yet.');
    let shown = c.servers.length;
    let after = shown ? c.servers[shown - 1].server_id : null;
    const more = $('customer-servers-more');
    const describe = () => {
      more.replaceChildren('Showing ' + shown + ' of ' + c.servers_total + ' ids, by id. ');
      if (shown < c.servers_total && after) {
        more.append(button('More', 'secondary', null, async () => {
          const params = new URLSearchParams({ customer_id: c.id, limit: '100', after });
          try {
            const page = await api('GET', '/servers?' + params.toString());
            $('customer-servers-body').append(...page.map(row));
            shown += page.length;
            if (page.length) after = page[page.length - 1].server_id;
            else shown = c.servers_total;
            describe();
          } catch (err) {
            showError(err);
          }
        }));
      }
    };
    more.hidden = c.servers_total <= c.servers.length;
    if (!more.hidden) describe();
  }

  /**
   * Sends a change with `send(confirmed)`; when the server asks for a confirmation
   * (a second customer of the same name, …), asks the operator with the server's
   * reason and sends it again confirmed. Resolves to the answer, or null when the
   * operator declined.
   */
  async function sendConfirming(send) {
    try {
      return await send(false);
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 'CONFIRMATION_REQUIRED') throw err;
      if (!window.confirm(sentence(inWords(err.message)) + '\n\nGo on anyway?')) return null;
      return send(true);
    }
  }

  async function allocateFor(customerId, customerName) {
    if (!window.confirm('Allocate a new license server id for ' + customerName + '? '
      + 'Ids are never reused: one allocated by mistake stays in the registry.')) {
      showMessage('Nothing allocated.', 'info');
      return;
    }
    let server = null;
    const ok = await act(async () => {
      server = await api('POST', '/servers', { customer_id: customerId });
    });
    if (ok && server) {
      showMessage('Allocated license server id ' + server.server_id + '.', 'ok');
      allocatePicker.reset();
      go('#server/' + server.server_id);
    }
  }

  function splitEmails(text) {
    return text.split(/[\s,;]+/).map((s) => s.trim()).filter((s) => s.length > 0);
  }

  // Servers

  let dueFilter = null;
  /** Whether the list shows only the ids whose license changes are not installed. */
  let notInstalledFilter = false;

  /** A page of the ids whose licenses changed after the file their server holds was
   *  issued (or that hold none): `GET /installations?not_installed=true`. */
  async function loadNotInstalled(more) {
    const params = new URLSearchParams({ limit: String(SERVERS_PAGE), not_installed: 'true' });
    if (more && serversAfter) params.set('after', serversAfter);
    const list = await api('GET', '/installations?' + params.toString());
    $('servers-filter').textContent = 'Showing ids with changes not yet installed on their server.';
    const rows = list.map((i) => el('tr', {},
      el('td', {}, serverLink(i.server_id)),
      el('td', {}, el('a', { href: '#customer/' + encodeURIComponent(i.customer_id), text: i.customer_name || i.customer_id })),
      el('td', { colSpan: 4, class: 'installation', text: i.summary })));
    if (more) $('servers-body').append(...rows);
    else fill($('servers-body'), rows, 6, 'Every id\'s server holds its newest licenses.');
    if (list.length > 0) serversAfter = list[list.length - 1].server_id;
    else if (!more) serversAfter = null;
    $('servers-more').hidden = list.length < SERVERS_PAGE;
  }
  /** Ids per page: the registry may hold a million; "More" asks for the next page. */
  const SERVERS_PAGE = 100;
  /** Last id shown, the cursor of the next page (null: nothing shown yet). */
  let serversAfter = null;

  /** Loads the first page of ids, or with `more` the next page below the shown ones. */
  async function loadServers(more) {
    if (notInstalledFilter) return loadNotInstalled(more);
    const params = new URLSearchParams({ limit: String(SERVERS_PAGE) });
    if (dueFilter !== null) params.set('due_within_days', String(dueFilter));
    if (more && serversAfter) params.set('after', serversAfter);
    const servers = await api('GET', '/servers?' + params.toString());
    $('servers-filter').textContent = dueFilter === null
      ? 'Showing all ids.'
      : 'Showing ids never synced or due within ' + dueFilter + ' days (overdue included).';
    const rows = servers.map((s) => el('tr', {},
      serverCell(s),
      el('td', {}, el('a', { href: '#customer/' + encodeURIComponent(s.customer_id), text: s.customer_name })),
      keyCell(s),
      lastSyncCell(s),
      dueCell(s),
      el('td', { text: s.licenses.length })));
    if (more) $('servers-body').append(...rows);
    else fill($('servers-body'), rows, 6, dueFilter === null ? 'No license server ids yet.' : 'Nothing due.');
    if (servers.length > 0) serversAfter = servers[servers.length - 1].server_id;
    else if (!more) serversAfter = null;
    // A full page may have a successor; a shorter one is the last.
    $('servers-more').hidden = servers.length < SERVERS_PAGE;
  }

  function shortFingerprint(fp) {
    return fp.length > 23 ? fp.slice(0, 23) + '…' : fp;
  }

  // One server

  let currentServer = null;
  /** The id shown on the id page, as last read. */
  let currentServerView = null;

  async function loadServer(id) {
    currentServer = id || null;
    if (!id) throw new ApiError('NOT_FOUND', 'no server id in the address', 404);
    const s = await api('GET', '/servers/' + encodeURIComponent(id));
    // Which license file the server confirmed holding (receipts and later syncs).
    const installation = await api('GET', '/servers/' + encodeURIComponent(id) + '/installation');
    $('server-title').textContent = s.server_id;
    const facts = [
      ['Customer', s.customer_name],
      ['Revision', String(s.revision)],
      ['Local server holds', s.holds ? s.holds.summary : '—'],
      ['License file', installation.summary],
      ['License files issued', String(s.sequence)],
      ['Bound key fingerprint', s.bound_fingerprint || 'not bound (the next sync binds its key pair)'],
      ['Bound at', fmtTime(s.bound_at)],
      ['Last sync', s.last_sync_at ? fmtTime(s.last_sync_at) + ' via ' + (s.last_sync_channel || '?') : 'never'],
      ['License file valid until', fmtTime(s.valid_until)],
    ];
    if (s.retired_at) facts.push(['Retired', fmtTime(s.retired_at) + ': its syncs are refused']);
    facts.push(['Possible copies', (s.possible_copy_since ? 'marked since ' + fmtTime(s.possible_copy_since) + '; ' : 'not marked; ')
      + 'the customer\'s policy: ' + copyPolicyWords(s.copy_policy)]);
    const dl = $('server-facts');
    dl.replaceChildren();
    for (const [term, value] of facts) {
      dl.append(el('dt', { text: term }), el('dd', { class: term.includes('fingerprint') && s.bound_fingerprint ? 'mono' : null, text: value }));
    }
    const due = dueCell(s);
    dl.append(el('dt', { text: 'Days until due' }), el('dd', {}, ...due.childNodes));
    $('server-copy-badge').replaceChildren(...[copyBadge(s)].filter(Boolean));
    showPossibleCopy(s);
    showStandby(s);
    $('clear-form').querySelector('button').disabled = !s.bound_fingerprint;
    $('server-changes').hidden = Boolean(s.retired_at);
    currentServerView = s;
    movePicker.reset();

    const rows = s.licenses.map((l) => (may('manage') ? licenseRow(s.server_id, l) : licenseText(l)));
    fill($('licenses-body'), rows, may('manage') ? 6 : 5, 'No licenses.');
    const usage = await api('GET', '/servers/' + encodeURIComponent(id) + '/usage?limit=30');
    showUsage(usage);
    await showUsageChart(id);
  }

  /**
   * The usage chart the server draws (GET /servers/{id}/usage.svg), put into the page's
   * markup so that its hover titles show.
   */
  async function showUsageChart(id) {
    const unavailable = () => $('usage-charts').replaceChildren(
      el('p', { class: 'hint', text: 'The chart could not be loaded; the table below has the same figures.' }));
    let text;
    try {
      const response = await fetch('/admin/v1/servers/' + encodeURIComponent(id) + '/usage.svg?limit=30', {
        headers: { Authorization: 'Bearer ' + session(), Accept: 'image/svg+xml' },
        cache: 'no-store', credentials: 'omit', redirect: 'error',
      });
      if (!response.ok) return unavailable();
      text = await response.text();
    } catch (e) {
      return unavailable();
    }
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    const root = doc.documentElement;
    if (!root || root.nodeName !== 'svg' || doc.getElementsByTagName('parsererror').length > 0) {
      return unavailable();
    }
    for (const bad of root.querySelectorAll('script, foreignObject')) bad.remove();
    root.setAttribute('width', '100%');
    root.removeAttribute('height');
    root.setAttribute('role', 'img');
    root.setAttribute('aria-label', 'Highest seats in use per sync, with the seats held');
    $('usage-charts').replaceChildren(document.importNode(root, true));
  }

  /** A number of days in words. */
  function daysText(days) {
    return days === 1 ? '1 day' : days + ' days';
  }

  /**
   * The id's standby server (the one its primary last named in a sync) and failover
   * period; a manager's form shows the period to change it.
   */
  function showStandby(s) {
    $('server-standby').replaceChildren(...(s.standby_fingerprint
      ? ['Standby server: ', el('span', { class: 'mono', text: s.standby_fingerprint }),
        ', registered ' + fmtTime(s.standby_registered_at) + '.']
      : ['No standby server registered.']));
    $('server-failover').textContent = 'Failover period: ' + daysText(s.failover_days)
      + ' (how long a promoted standby may issue seats while its primary is down; '
      + 'the license files naming a standby carry it).';
    $('failover-days').value = String(s.failover_days);
  }

  /** The evidence of a possible copy on the id page, and (for a manager) the dismissal. */
  function showPossibleCopy(s) {
    const box = $('possible-copy');
    const copy = s.possible_copy;
    box.hidden = !copy;
    if (!copy) return;
    $('possible-copy-explanation').textContent = 'Marked since ' + fmtTime(copy.since) + '. ' + copy.explanation;
    const rows = copy.requests.map((r) => el('tr', { class: r.went_back ? 'went-back' : null },
      el('td', { class: 'nowrap', text: fmtTime(r.made_at) }),
      el('td', { text: r.channel }),
      el('td', { text: r.request_counter === null ? 'not sent' : String(r.request_counter) }),
      el('td', { text: r.held_sequence === null ? 'none' : 'file ' + r.held_sequence }),
      el('td', { text: 'file ' + r.answered_sequence }),
      el('td', {}, r.went_back ? el('span', { class: 'badge bad', text: 'went back' }) : null)));
    fill($('possible-copy-body'), rows, 6, 'The requests were forgotten.');
  }

  function showUsage(syncs) {
    const rows = [];
    for (const sync of syncs) {
      if (sync.features.length === 0) {
        rows.push(el('tr', {}, el('td', { text: fmtTime(sync.synced_at) }), el('td', { text: sync.channel }),
          el('td', { colSpan: 5, class: 'hint', text: 'no use reported' })));
      }
      for (const f of sync.features) {
        const refusals = Object.entries(f.refusals || {}).map(([code, n]) => code + ' ' + n).join(', ') || 'none';
        rows.push(el('tr', {},
          el('td', { text: fmtTime(sync.synced_at) }), el('td', { text: sync.channel }),
          el('td', {}, el('strong', { text: f.feature })), el('td', { text: f.seats_total }),
          el('td', { text: f.peak_in_use }), el('td', { text: Number(f.seat_hours).toFixed(2) }),
          el('td', { text: refusals })));
      }
    }
    rows.reverse();
    fill($('usage-body'), rows, 7, 'No sync has reported usage yet.');
  }

  /** A license as text, for a role that may not change it. */
  function licenseText(license) {
    return el('tr', {},
      el('td', {}, el('strong', { text: license.feature })),
      el('td', { text: license.seats }),
      el('td', { text: fmtDate(license.valid_from) }),
      el('td', { text: license.valid_until ? fmtDate(license.valid_until) : 'perpetual' }),
      el('td', { text: license.max_borrow_hours ? license.max_borrow_hours + ' hours' : 'not borrowable' }));
  }

  function licenseRow(serverId, license) {
    const seats = el('input', { type: 'number', min: 1, value: license.seats, class: 'narrow', required: true });
    const from = el('input', { type: 'date', value: license.valid_from ? fmtDate(license.valid_from) : '' });
    const until = el('input', { type: 'date', value: license.valid_until ? fmtDate(license.valid_until) : '' });
    const borrow = el('input', {
      type: 'number', min: 1, max: 8784, class: 'narrow borrow-hours', placeholder: 'no borrowing',
      value: license.max_borrow_hours || '', title: 'Longest offline borrow in hours (1 to 8784); empty: not borrowable',
    });
    const path = '/servers/' + encodeURIComponent(serverId) + '/licenses/' + encodeURIComponent(license.id);
    const save = button('Save', 'secondary', null, async () => {
      const change = {};
      if (Number(seats.value) !== license.seats) change.seats = Number(seats.value);
      if (from.value !== (license.valid_from ? fmtDate(license.valid_from) : '')) change.valid_from = dateToApi(from.value);
      if (until.value !== (license.valid_until ? fmtDate(license.valid_until) : '')) change.valid_until = dateToApi(until.value);
      const hours = borrow.value.trim() === '' ? null : Number(borrow.value);
      if (hours !== (license.max_borrow_hours || null)) change.max_borrow_hours = hours;
      if (Object.keys(change).length === 0) {
        showMessage('Nothing changed.', 'info');
        return;
      }
      let changed = null;
      const ok = await act(async () => {
        changed = await sendConfirming((confirmed) => api('PATCH', path,
          Object.assign({}, change, confirmed ? { confirm_ended: true } : {})));
      });
      if (!ok) return;
      if (changed) {
        showMessage('License ' + license.feature + ' changed.', 'ok');
        loadServer(serverId).catch(showError);
      } else {
        showMessage('Not changed: ' + license.feature + ' keeps its terms.', 'info');
      }
    });
    const remove = button('Remove', 'danger',
      'Remove the license "' + license.feature + '"? Local servers lose it at their next sync.',
      async () => {
        if (await act(() => api('DELETE', path), 'License ' + license.feature + ' removed.')) {
          loadServer(serverId).catch(showError);
        }
      });
    return el('tr', {},
      el('td', {}, el('strong', { text: license.feature })),
      el('td', {}, seats),
      el('td', {}, from),
      el('td', {}, until, license.valid_until ? null : el('span', { class: 'hint', text: ' perpetual' })),
      el('td', {}, borrow, ' hours'),
      el('td', { class: 'actions' }, save, ' ', remove));
  }

  // Key-clear requests

  async function loadRequests() {
    const status = $('requests-status').value;
    const query = status ? '?status=' + encodeURIComponent(status) : '';
    const requests = await api('GET', '/key-clear-requests' + query);
    // What deciding needs, for the requests still to decide (each one's own GET).
    const pending = requests.filter((r) => r.status === 'pending').slice(0, MAX_WEIGHED);
    const details = new Map((await Promise.all(pending.map((r) =>
      api('GET', '/key-clear-requests/' + encodeURIComponent(r.id)).catch(() => null))))
      .filter(Boolean).map((d) => [d.id, d]));
    const rows = [];
    for (const r of requests) {
      rows.push(el('tr', { class: details.has(r.id) ? 'weighed' : null },
        el('td', { text: fmtTime(r.created_at) }),
        el('td', {}, serverLink(r.server_id)),
        el('td', {}, el('div', { text: r.sender }), senderCheck(r)),
        el('td', { class: 'text' }, el('div', { class: 'quote', text: r.text || '' }),
          el('div', { class: 'hint mono', text: r.message_id })),
        el('td', {}, el('span', { class: 'badge ' + statusClass(r.status), text: r.status })),
        el('td', {}, r.status !== 'pending' ? decisionText(r)
          : may('manage') ? decisionForm(r, details.get(r.id)) : el('span', { class: 'hint', text: 'waiting for an operator' }))));
      // What deciding it needs, on a row of its own below the request.
      if (details.has(r.id)) {
        rows.push(el('tr', { class: 'weigh' }, el('td', { colSpan: 6 },
          el('div', { class: 'weigh-title', text: 'What to weigh' }), weighFacts(details.get(r.id)))));
      }
    }
    fill($('requests-body'), rows, 6, status ? 'No ' + status + ' requests.' : 'No requests.');
  }

  /** Pending requests whose facts the list shows (each is one more request to the API). */
  const MAX_WEIGHED = 50;

  /**
   * What an operator weighs before clearing a key pair: whose id it is, the key pair
   * and last sync now, how long the installation holding the last license file keeps
   * issuing anyway, and whom else of the customer to ask.
   */
  function weighFacts(d) {
    const facts = [
      ['Customer', el('a', { href: '#customer/' + encodeURIComponent(d.customer_id), text: d.customer_name })],
      ['Key pair now', d.bound_fingerprint
        ? el('span', { class: 'mono', title: d.bound_fingerprint, text: shortFingerprint(d.bound_fingerprint) })
        : 'none bound (cleared already, or never synced)'],
      ['Last sync', d.last_sync_at ? fmtTime(d.last_sync_at) + ' by ' + (d.last_sync_channel || '?') : 'never'],
      ['Keeps issuing until', d.valid_until
        ? fmtDate(d.valid_until) + ' (' + daysWords(d.days_until_due) + '): the installation holding the last license file issues seats until then, cleared or not'
        : 'no license file issued'],
      ['Other contacts', d.other_contacts.length ? d.other_contacts.join(', ') : 'none: the sender is the only contact'],
    ];
    if (d.possible_copy_since) facts.push(['Possible copy', 'marked since ' + fmtTime(d.possible_copy_since)]);
    if (d.retired_at) facts.push(['Retired', fmtTime(d.retired_at)]);
    const dl = el('dl', { class: 'facts compact weigh-facts' });
    for (const [term, value] of facts) dl.append(el('dt', { text: term }), el('dd', {}, value));
    return dl;
  }

  function daysWords(days) {
    if (days === null || days === undefined) return 'no end known';
    if (days < 0) return 'ended ' + -days + (days === -1 ? ' day ago' : ' days ago');
    return days + (days === 1 ? ' day' : ' days') + ' from now';
  }

  function statusClass(status) {
    return status === 'approved' ? 'ok' : status === 'rejected' ? 'bad' : 'warn';
  }

  /** Whether the receiving mail server authenticated the sender (SPF, DKIM, DMARC). */
  function senderCheck(r) {
    const authenticated = r.sender_auth === 'authenticated';
    return el('div', { class: 'sender-check' },
      el('span', { class: 'badge ' + (authenticated ? 'ok' : 'bad'), text: 'sender ' + (r.sender_auth || 'not checked') }),
      r.sender_auth_detail ? el('div', { class: 'hint', text: r.sender_auth_detail }) : null);
  }

  function decisionText(r) {
    return el('div', {},
      el('div', { text: (r.operator || '?') + ', ' + fmtTime(r.decided_at) }),
      r.reason ? el('div', { class: 'hint', text: r.reason }) : null);
  }

  function decisionForm(r, detail) {
    const reason = el('input', { type: 'text', placeholder: 'reason (required to reject)', maxLength: 500 });
    // Approving a request whose sender was not authenticated needs an explicit override.
    const override = r.sender_auth === 'authenticated' ? null
      : el('input', { type: 'checkbox', class: 'override-unauthenticated' });
    const decide = async (verb) => {
      const text = reason.value.trim();
      if (verb === 'reject' && !text) {
        showMessage('A rejection needs a reason: the sender is told.', 'error');
        reason.focus();
        return;
      }
      if (verb === 'approve' && override && !override.checked) {
        showMessage('The sender was not authenticated: confirm the request otherwise, then tick the override to approve it.', 'error');
        override.focus();
        return;
      }
      const issuing = detail && detail.valid_until
        ? ' The installation holding its last license file keeps issuing seats until ' + fmtDate(detail.valid_until) + '.'
        : '';
      if (verb === 'approve' && !window.confirm('Approve and clear the key pair of ' + r.server_id + '?' + issuing)) return;
      const body = text ? { reason: text } : {};
      if (verb === 'approve' && override) body.override_unauthenticated = true;
      const ok = await act(() => api('POST', '/key-clear-requests/' + encodeURIComponent(r.id) + '/' + verb, body),
        'Request ' + (verb === 'approve' ? 'approved; the key pair is cleared.' : 'rejected.'));
      if (ok) loadRequests().catch(showError);
    };
    return el('div', { class: 'inline compact' }, reason,
      override ? el('label', { class: 'override' }, override, 'approve although the sender was not authenticated') : null,
      el('button', { type: 'button', text: 'Approve', onclick: () => decide('approve') }),
      el('button', { type: 'button', class: 'danger', text: 'Reject', onclick: () => decide('reject') }));
  }

  // Audit

  /** The cursor of the page shown: `{before}` or `{after}`, or null for the newest. */
  let auditAt = null;
  /** The cursors around the page shown. */
  let auditAround = { older: null, newer: null };

  /** The filter form as query parameters (empty fields left out). */
  function auditFilter() {
    const params = new URLSearchParams();
    const text = (id) => $(id).value.trim();
    const put = (name, value) => { if (value) params.set(name, value); };
    put('server_id', text('audit-server'));
    put('customer_id', text('audit-customer'));
    put('actor', text('audit-actor'));
    put('action', text('audit-action'));
    put('outcome', $('audit-outcome').value);
    put('from', dateToApi($('audit-from').value));
    // "Up to and including" a day: the API's `to` is exclusive, so the next midnight.
    const to = $('audit-to').value;
    if (to) {
      const next = new Date(to + 'T00:00:00Z');
      next.setUTCDate(next.getUTCDate() + 1);
      params.set('to', next.toISOString().slice(0, 10));
    }
    put('q', text('audit-q'));
    return params;
  }

  async function loadAudit(at) {
    auditAt = at || null;
    const params = auditFilter();
    params.set('limit', String(Math.max(1, Math.min(1000, Number($('audit-limit').value) || 100))));
    if (auditAt && auditAt.before) params.set('before', auditAt.before);
    if (auditAt && auditAt.after) params.set('after', auditAt.after);
    const page = await api('GET', '/audit/entries?' + params.toString());
    const rows = page.entries.map((a) => el('tr', {},
      el('td', { class: 'nowrap', text: fmtTime(a.at) }),
      el('td', { text: a.actor }),
      el('td', { text: a.action }),
      el('td', {}, serverLink(a.server_id)),
      el('td', {}, el('span', { class: 'badge ' + (a.outcome === 'OK' ? 'ok' : 'bad'), text: a.outcome })),
      el('td', { class: 'text', text: a.detail })));
    fill($('audit-body'), rows, 6, auditAt ? 'No more entries match.' : 'No entry matches.');
    auditAround = { older: page.older, newer: page.newer };
    $('audit-older').disabled = !page.older;
    $('audit-newer').disabled = !page.newer;
    const search = page.search;
    $('audit-search').hidden = !(search && !search.complete);
    if (search && !search.complete) {
      $('audit-search').textContent = 'The search looked at the ' + search.limit.toLocaleString('en')
        + ' entries back to ' + fmtTime(search.stopped_at) + ' for this page; "Older entries" searches on.';
    }
    showChainStatus(page.chain);
  }

  /** "Verified up to entry N at T", or "broken at N", from a page's chain status. */
  function showChainStatus(chain) {
    let line;
    if (chain.broken) {
      line = [el('span', { class: 'badge bad', text: 'broken' }),
        ' at position ' + chain.broken.chain_seq + ' (found ' + fmtTime(chain.broken.found_at) + '): ' + chain.broken.message];
    } else if (chain.verified_at) {
      const behind = chain.head_seq - chain.verified_seq;
      line = [el('span', { class: 'badge ok', text: 'verified' }),
        ' up to position ' + chain.verified_seq + ' at ' + fmtTime(chain.verified_at)
        + (behind > 0 ? '; ' + behind + (behind === 1 ? ' newer entry' : ' newer entries') + ' not verified yet.' : '.')];
    } else {
      line = [el('span', { class: 'badge warn', text: 'not verified' }),
        ' ' + chain.head_seq + ' sealed ' + (chain.head_seq === 1 ? 'entry' : 'entries') + ' not verified yet.'];
    }
    $('audit-status').replaceChildren('Hash chain: ', ...line);
  }

  // Walks the hash chain on the server: the whole of it, or only the entries sealed
  // since the last intact walk (after checking where that one ended).
  async function verifyChain(full) {
    const v = await api('GET', '/audit/verify' + (full ? '?full=true' : ''));
    const waiting = v.unsealed === 0 ? ''
      : '; ' + v.unsealed + (v.unsealed === 1 ? ' new entry is' : ' new entries are') + ' not sealed yet';
    const walked = v.incremental
      ? ' ' + v.checked + ' new sealed ' + (v.checked === 1 ? 'entry' : 'entries') + ' checked after position ' + v.started_after
      : ' ' + v.checked + ' sealed ' + (v.checked === 1 ? 'entry' : 'entries') + ' checked';
    const line = v.intact
      ? [el('span', { class: 'badge ok', text: 'intact' }), walked + ', newest at position ' + v.head_seq + waiting + '.']
      : [el('span', { class: 'badge bad', text: v.problem.kind }), ' ' + v.problem.message];
    $('audit-chain').replaceChildren('Hash chain: ', ...line);
    $('audit-chain').hidden = false;
    await loadAudit(auditAt);
  }

  // Downloads every entry matching the filters (the session is a header, never part
  // of a URL, so the file is fetched here and handed to the browser to save).
  async function exportAudit(format) {
    const params = auditFilter();
    params.set('format', format);
    let response;
    try {
      response = await fetch('/admin/v1/audit/export?' + params.toString(), {
        headers: { Authorization: 'Bearer ' + session() },
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
      });
    } catch (e) {
      throw new ApiError('UNREACHABLE', 'the main server did not answer (' + e.message + ')', 0);
    }
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch (_) { data = null; }
      throw new ApiError(data && data.code ? data.code : 'HTTP_' + response.status,
        data && data.message ? data.message : response.statusText, response.status);
    }
    // A transfer broken off part-way rejects here: no partial file is offered.
    const blob = await response.blob();
    const link = $('audit-download');
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.download = 'solme-audit.' + format;
    link.click();
    showMessage('Audit log downloaded as ' + format.toUpperCase() + '.', 'ok');
  }

  // Operators (admin only)

  async function loadOperators() {
    const operators = await api('GET', '/operators');
    const rows = operators.map((o) => {
      const path = '/operators/' + encodeURIComponent(o.name);
      const actions = o.revoked_at ? null : [
        button('New token', 'secondary',
          'Give ' + o.name + ' a new token? The current one (and its console sessions) stop working at once.',
          async () => {
            let issued = null;
            if (await act(async () => { issued = await api('POST', path + '/rotate'); }, 'New token for ' + o.name + '.')) {
              showIssued(issued);
              loadOperators().catch(showError);
            }
          }),
        ' ',
        button('Revoke', 'danger',
          'Revoke ' + o.name + '? Its token and console sessions stop working at once.',
          async () => {
            if (await act(() => api('POST', path + '/revoke'), o.name + ' revoked.')) loadOperators().catch(showError);
          }),
      ];
      return el('tr', {},
        el('td', {}, el('strong', { text: o.name })),
        el('td', { text: o.role }),
        el('td', { text: fmtTime(o.created_at) }),
        el('td', { text: o.revoked_at ? fmtTime(o.revoked_at) : '—' }),
        el('td', { class: 'actions' }, actions));
    });
    fill($('operators-body'), rows, 5, 'No operators.');
  }

  /** Shows a personal token the server issued, this once. */
  function showIssued(issued) {
    $('issued-name').textContent = issued.name + ' (' + issued.role + ')';
    $('issued-value').value = issued.token;
    $('issued-token').hidden = false;
  }

  function hideIssued() {
    $('issued-token').hidden = true;
    $('issued-value').value = '';
  }

  // ---- wiring -----------------------------------------------------------------

  function onSubmit(id, handler) {
    $(id).addEventListener('submit', (event) => {
      event.preventDefault();
      handler(event);
    });
  }

  /** The customer pickers of the ids view (allocate) and of the id page (move). */
  let allocatePicker = null;
  let movePicker = null;

  function init() {
    allocatePicker = customerPicker('allocate-customer', () => null);
    // The id's own customer is no place to move it to.
    movePicker = customerPicker('move-customer', () => (currentServerView ? currentServerView.customer_id : null));

    onSubmit('customers-search', () => loadCustomers().catch(showError));
    let customersTimer = null;
    $('customers-name').addEventListener('input', () => {
      clearTimeout(customersTimer);
      customersTimer = setTimeout(() => { loadCustomers().catch(showError); }, 250);
    });
    $('customers-more').addEventListener('click', () => {
      loadCustomers(true).catch(showError);
    });
    $('sign-in-note').textContent = 'Paste your personal operator token (from `main-server admin operator add`; the first admin\'s is the admin-token file in the main server\'s data directory).';

    onSubmit('sign-in-form', async () => {
      const token = $('token').value.trim();
      $('token').value = '';
      $('message').hidden = true;
      forgetSession();
      try {
        const opened = await api('POST', '/sessions', undefined, token);
        sessionStorage.setItem(SESSION_KEY, opened.session);
        me = { name: opened.name, role: opened.role };
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          showMessage('That token is not valid (unknown, replaced by a new one, or revoked): '
            + 'check it and paste it again.', 'error');
        } else {
          showError(err);
        }
        showSignIn();
        return;
      }
      route();
    });

    $('sign-out').addEventListener('click', async () => {
      const who = me ? me.name : '';
      let ended = true;
      try {
        await api('DELETE', '/sessions/current');
      } catch (err) {
        // 401: the session had ended already; anything else: the server was not told.
        ended = err instanceof ApiError && err.status === 401;
      }
      forgetSession();
      showSignIn();
      showMessage(ended ? 'Signed out' + (who ? ' (' + who + ')' : '') + '.'
        : 'Signed out of this tab, but the server could not be told: the session ends by itself within 8 hours.',
      ended ? 'info' : 'error');
    });

    onSubmit('customer-form', async () => {
      const body = { name: $('customer-name').value.trim(), emails: splitEmails($('customer-emails').value) };
      let added = null;
      const ok = await act(async () => {
        added = await sendConfirming((confirmed) => api('POST', '/customers',
          Object.assign({}, body, { confirm_duplicate_name: confirmed })));
      });
      if (!ok) return;
      if (added) {
        showMessage('Customer ' + added.name + ' added.', 'ok');
        $('customer-form').reset();
        loadCustomers().catch(showError);
      } else {
        showMessage('Nothing added: a customer named ' + body.name + ' exists already.', 'info');
      }
    });

    onSubmit('rename-form', async () => {
      const c = currentCustomer;
      if (!c) return;
      const name = $('rename-name').value.trim();
      let renamed = null;
      const ok = await act(async () => {
        renamed = await sendConfirming((confirmed) => api('PATCH', '/customers/' + encodeURIComponent(c.id),
          { name, confirm_duplicate_name: confirmed }));
      });
      if (!ok) return;
      if (renamed) {
        showMessage(c.name + ' renamed to ' + renamed.name + '.', 'ok');
        loadCustomer(c.id).catch(showError);
      } else {
        showMessage('Not renamed: ' + c.name + ' keeps its name.', 'info');
      }
    });

    onSubmit('due-form', () => {
      const days = Number.parseInt($('due-days').value, 10);
      dueFilter = Number.isNaN(days) ? null : days;
      notInstalledFilter = false;
      loadServers().catch(showError);
    });
    $('show-not-installed').addEventListener('click', () => {
      notInstalledFilter = true;
      loadServers().catch(showError);
    });
    $('show-all').addEventListener('click', () => {
      notInstalledFilter = false;
      dueFilter = null;
      loadServers().catch(showError);
    });
    $('servers-more').addEventListener('click', () => {
      loadServers(true).catch(showError);
    });
    onSubmit('allocate-form', () => {
      const customer = allocatePicker.chosen();
      if (customer) allocateFor(customer.id, customer.name);
      else showMessage('Choose the customer from the list: type the start of its name, then click it.', 'error');
    });

    onSubmit('license-form', async () => {
      if (!currentServer) return;
      const body = {
        feature: $('license-feature').value.trim(),
        seats: Number($('license-seats').value),
        valid_from: dateToApi($('license-from').value),
        valid_until: dateToApi($('license-until').value),
      };
      const id = currentServer;
      let added = null;
      const ok = await act(async () => {
        added = await sendConfirming((confirmed) => api('POST', '/servers/' + encodeURIComponent(id) + '/licenses',
          Object.assign({}, body, { confirm_ended: confirmed })));
      });
      if (!ok) return;
      if (added) {
        showMessage('License ' + added.feature + ' added.', 'ok');
        $('license-form').reset();
        loadServer(id).catch(showError);
      } else {
        showMessage('Not added: ' + body.feature + ' would already have ended.', 'info');
      }
    });

    onSubmit('clear-form', async () => {
      if (!currentServer) return;
      const reason = $('clear-reason').value.trim();
      if (!reason) {
        showMessage('Clearing a key pair needs a reason.', 'error');
        return;
      }
      const id = currentServer;
      if (!window.confirm('Clear the key pair of ' + id + '? The installation holding it can no longer sync.')) return;
      if (await act(() => api('POST', '/servers/' + encodeURIComponent(id) + '/key-clear', { reason }),
        'Key pair cleared.')) {
        $('clear-form').reset();
        loadServer(id).catch(showError);
      }
    });

    onSubmit('move-form', async () => {
      if (!currentServer) return;
      const customer = movePicker.chosen();
      if (!customer) {
        showMessage('Choose the customer from the list: type the start of its name, then click it.', 'error');
        return;
      }
      const customerId = customer.id;
      const to = customer.name;
      const from = currentServerView ? currentServerView.customer_name : 'its customer';
      if (!window.confirm('Move ' + currentServer + ' from ' + from + ' to ' + to + '? '
        + 'Reminders and key-clear notices then go to ' + to + "'s contacts.")) return;
      const id = currentServer;
      if (await act(() => api('POST', '/servers/' + encodeURIComponent(id) + '/move', { customer_id: customerId }),
        'Moved to ' + to + '.')) {
        loadServer(id).catch(showError);
      }
    });

    onSubmit('retire-form', async () => {
      if (!currentServer) return;
      const reason = $('retire-reason').value.trim();
      if (!reason) {
        showMessage('Retiring an id needs a reason.', 'error');
        return;
      }
      const id = currentServer;
      if (!window.confirm('Retire ' + id + '? Its syncs are refused from now on; the id is never used again.')) return;
      let retired = null;
      const ok = await act(async () => {
        retired = await sendConfirming((confirmed) => api('POST', '/servers/' + encodeURIComponent(id) + '/retire',
          { reason, force: confirmed }));
      });
      if (!ok) return;
      if (retired) {
        showMessage('Retired ' + id + '.', 'ok');
        $('retire-form').reset();
        loadServer(id).catch(showError);
      } else {
        showMessage('Not retired: ' + id + ' keeps synchronizing.', 'info');
      }
    });

    onSubmit('dismiss-form', async () => {
      if (!currentServer) return;
      const id = currentServer;
      const reason = $('dismiss-reason').value.trim();
      if (!window.confirm('Dismiss the possible copy mark of ' + id + '? Its history of requests is forgotten, '
        + 'so only new evidence marks it again. Do this when you know it is no copy (a restored backup, '
        + 'a lost mail) or the copy is gone.')) {
        showMessage('The mark stays.', 'info');
        return;
      }
      if (await act(() => api('POST', '/servers/' + encodeURIComponent(id) + '/possible-copy/dismiss',
        reason ? { reason } : {}), 'Possible copy mark of ' + id + ' dismissed.')) {
        $('dismiss-form').reset();
        loadServer(id).catch(showError);
      }
    });

    onSubmit('failover-form', async () => {
      const s = currentServerView;
      if (!s) return;
      const text = $('failover-days').value.trim();
      // A whole number goes as one; anything else as typed, for the server to refuse in words.
      const days = /^[0-9]+$/.test(text) ? Number(text) : text;
      if (days === s.failover_days) {
        showMessage('Nothing changed.', 'info');
        return;
      }
      if (await act(() => api('PUT', '/servers/' + encodeURIComponent(s.server_id) + '/failover-period', { days }),
        'The failover period of ' + s.server_id + ' is now ' + daysText(days) + '.')) {
        loadServer(s.server_id).catch(showError);
      }
    });

    onSubmit('copy-policy-form', async () => {
      const c = currentCustomer;
      if (!c) return;
      const policy = $('copy-policy').value;
      if (policy === c.copy_policy) {
        showMessage('Nothing changed.', 'info');
        return;
      }
      if (policy === 'refuse' && !window.confirm('Refuse the syncs of ' + c.name + '\'s ids while they are marked a '
        + 'possible copy? A marked installation then stops getting license files until an operator dismisses the mark.')) {
        $('copy-policy').value = c.copy_policy;
        showMessage('Nothing changed.', 'info');
        return;
      }
      if (await act(() => api('PUT', '/customers/' + encodeURIComponent(c.id) + '/copy-policy', { policy }),
        'Possible copies of ' + c.name + '\'s ids are now ' + copyPolicyWords(policy) + '.')) {
        loadCustomer(c.id).catch(showError);
      }
    });

    onSubmit('requests-form', () => loadRequests().catch(showError));
    $('requests-status').addEventListener('change', () => loadRequests().catch(showError));
    onSubmit('audit-form', () => loadAudit(null).catch(showError));
    $('audit-verify').addEventListener('click', () => verifyChain(true).catch(showError));
    $('audit-verify-new').addEventListener('click', () => verifyChain(false).catch(showError));
    $('audit-older').addEventListener('click', () => loadAudit({ before: auditAround.older }).catch(showError));
    $('audit-newer').addEventListener('click', () => loadAudit({ after: auditAround.newer }).catch(showError));
    $('audit-export-csv').addEventListener('click', () => exportAudit('csv').catch(showError));
    $('audit-export-json').addEventListener('click', () => exportAudit('json').catch(showError));

    onSubmit('operator-form', async () => {
      const body = { name: $('operator-name').value.trim(), role: $('operator-role').value };
      let issued = null;
      if (await act(async () => { issued = await api('POST', '/operators', body); }, 'Operator ' + body.name + ' added.')) {
        $('operator-form').reset();
        showIssued(issued);
        loadOperators().catch(showError);
      }
    });

    window.addEventListener('hashchange', route);
    document.body.dataset.console = 'ready';
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
