// The Solme license server manager page. Everything goes through the manager API
// (/manager/v1/…), which answers only on this machine and only to calls carrying the
// X-Solme-Manager header. Text from the server is inserted with textContent only.
"use strict";

(function () {
  const API = "/manager/v1/";
  const REFRESH_MS = 5000;
  const VALIDITY_DAYS = 366;

  // What a refusal means and what to do, in the customer's words. The server's own
  // message is shown beside it.
  const REFUSALS = {
    ID_IN_USE: {
      title: "this license server id is in use by another key pair",
      remedy: (id) =>
        "Another installation (or this server before it was reinstalled) is bound to this id. " +
        "If this is your server, email " + licensing() + " naming the id " + id +
        " and ask Solme to clear the key pair; then synchronize again.",
    },
    UNKNOWN_SERVER_ID: {
      title: "Solme does not know this license server id",
      remedy: () => "Check the id of this server against the one Solme sent you.",
    },
    BAD_SIGNATURE: {
      title: "the file is not signed by Solme, or it was changed after signing",
      remedy: () =>
        "Import the license file exactly as it came from " + licensing() + " (the attachment, or the whole " +
        "text pasted unchanged). If it still fails, ask " + licensing() + " to send it again.",
    },
    WRONG_SERVER: {
      title: "the license file was made for another license server",
      remedy: () =>
        "Import the license file that answers this server's own sync data (check the id in the " +
        "file's header). If this server was reinstalled, export new sync data and email it.",
    },
    OLDER_LICENSE_FILE: {
      title: "this server already has this license file or a newer one",
      remedy: () =>
        "Nothing to do: the licenses installed are at least as recent. An older file is refused " +
        "so that licenses cannot be rolled back.",
    },
    MALFORMED: {
      title: "this is not a license file, or it is damaged",
      remedy: () =>
        "Use the license file attached to Solme's reply, or paste its whole text from " +
        "-----BEGIN to -----END.",
    },
    UNSUPPORTED_VERSION: {
      title: "the file comes from a newer version of the Solme licensing system",
      remedy: () => "Update this license server, or ask " + licensing() + " for a file it can read.",
    },
    STALE_REQUEST: {
      title: "this computer's clock is too far from Solme's",
      remedy: () => "Correct this computer's clock (enable NTP), then synchronize again.",
    },
    REPLAYED_REQUEST: {
      title: "the main server has already answered this request",
      remedy: () => "Synchronize again (a new request is made each time).",
    },
    CLOCK_ROLLBACK: {
      title: "the system clock went back behind a time this server has already seen",
      remedy: () => "Correct this computer's clock.",
    },
    SERVING_ELSEWHERE: {
      title: "the primary still answers or issues seats",
      remedy: () =>
        "A primary that answers is not down: nothing to promote. If the primary is stopped and this " +
        "still appears, wait until it has been silent for the time the message names.",
    },
    FAILOVER_ENDED: {
      title: "the failover period Solme allows is used up",
      remedy: () =>
        "Bring the primary back, or ask " + licensing() + " to make this server the id's primary by a key clearing.",
    },
    UNAUTHORIZED: {
      title: "the manager refused the request",
      remedy: () =>
        "Open the manager on the license server's own computer, at http://127.0.0.1:PORT/ or " +
        "http://localhost:PORT/.",
    },
  };

  const STATES = {
    synchronized: { label: "Synchronized", cls: "state-ok" },
    warning: { label: "Synchronize soon", cls: "state-warn" },
    expired: { label: "Synchronization expired", cls: "state-bad" },
    never_synchronized: { label: "Never synchronized", cls: "state-bad" },
    clock_rollback: { label: "System clock went back", cls: "state-bad" },
  };

  // A server of a standby pair that does not issue in the usual way: its own badge (a
  // primary that serves keeps the synchronization's).
  const PAIR_STATES = {
    following: { label: "Standby: follows the primary", cls: "state-unknown" },
    promoted: { label: "Standby: promoted, issues seats", cls: "state-warn" },
    stepping_down: { label: "Standby: handing back to the primary", cls: "state-warn" },
    fenced: { label: "Not issuing: the standby was promoted", cls: "state-bad" },
    waiting: { label: "Waiting for the standby's word", cls: "state-warn" },
  };

  // The sync channels in the words of the command line (local-server's wording module).
  const CHANNELS = { internet: "over the internet", file: "by email", primary: "copied from the primary" };

  let lastStatus = null;
  let autoSyncPending = false;

  // ---- small helpers -------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  /** An element with text (never parsed as HTML) and children. */
  function el(tag, opts, children) {
    const node = document.createElement(tag);
    if (opts && opts.cls) node.className = opts.cls;
    if (opts && opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.appendChild(child);
    }
    return node;
  }

  function setText(id, text) {
    $(id).textContent = text === null || text === undefined || text === "" ? "–" : String(text);
  }

  // Dates on this page are said as the command line says them: 2027-01-31 14:05 UTC.
  function fmtDate(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function fmtDay(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toISOString().slice(0, 10);
  }

  /** Solme's licensing address, as this server is configured with it. */
  function licensing() {
    return lastStatus && lastStatus.licensing_address ? lastStatus.licensing_address : "Solme's licensing address";
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function serverId() {
    return lastStatus && lastStatus.server_id ? lastStatus.server_id : "of this server";
  }

  /**
   * Calls the manager API. Resolves to {ok, status, data, headers}; data is parsed JSON
   * when the answer is JSON, else text. Rejects only when the server cannot be reached.
   */
  async function api(method, path, body, contentType) {
    const headers = { "X-Solme-Manager": "1" };
    if (contentType) headers["Content-Type"] = contentType;
    const resp = await fetch(API + path, {
      method: method,
      headers: headers,
      body: body,
      cache: "no-store",
      credentials: "same-origin",
      redirect: "error",
    });
    const text = await resp.text();
    let data = text;
    if ((resp.headers.get("Content-Type") || "").startsWith("application/json")) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = text;
      }
    }
    return { ok: resp.ok, status: resp.status, data: data, headers: resp.headers };
  }

  function showConnectionProblem(message) {
    const banner = $("connection");
    banner.textContent = message;
    banner.hidden = false;
  }

  function clearConnectionProblem() {
    $("connection").hidden = true;
  }

  const UNREACHABLE =
    "The license server does not answer. Is `local-server serve` still running? " +
    "This page tries again every few seconds.";

  /** Fills `box` with a headline, lines and a tone (ok, warn, bad, busy). */
  function showResult(box, tone, headline, lines) {
    box.replaceChildren();
    box.className = "result result-" + tone;
    box.appendChild(el("p", { cls: "headline", text: headline }));
    for (const line of lines || []) {
      if (line === null || line === undefined) continue;
      box.appendChild(typeof line === "string" ? el("p", { text: line }) : line);
    }
    box.hidden = false;
  }

  /** An error answer {code, message} (or anything else) as a headline and lines. */
  function describeRefusal(resp, what) {
    const body = resp.data;
    if (body && typeof body === "object" && body.code) {
      const known = REFUSALS[body.code];
      const headline = known
        ? what + " refused: " + known.title + " (" + body.code + ")."
        : what + " refused (" + body.code + ").";
      const lines = [body.message ? "Details: " + body.message : null];
      if (known) lines.push(labelled("What to do: ", known.remedy(serverId())));
      return { headline: headline, lines: lines };
    }
    if (resp.status === 413) {
      return { headline: what + " refused: the file is far too large to be a license file.", lines: [] };
    }
    return {
      headline: what + " failed (HTTP " + resp.status + ").",
      lines: [typeof body === "string" && body ? body.slice(0, 500) : "See the license server's log."],
    };
  }

  function labelled(label, text) {
    return el("p", null, [el("strong", { text: label }), document.createTextNode(text)]);
  }

  /** Runs `work` with `button` disabled and a "working" note in `box`. */
  async function busy(button, box, note, work) {
    button.disabled = true;
    showResult(box, "busy", note, []);
    try {
      await work();
    } catch (e) {
      showResult(box, "bad", UNREACHABLE, []);
    } finally {
      button.disabled = false;
    }
  }

  // ---- status --------------------------------------------------------------------

  function stateSentence(s) {
    const until = fmtDate(s.valid_until);
    switch (s.state) {
      case "synchronized":
        return "Licenses are issued. The next synchronization is due before " + until + ".";
      case "warning":
        return (
          "Licenses are issued only until " + until + ": synchronize within " +
          plural(s.days_left, "day") + " (Server → Synchronize Server, or by email)."
        );
      case "expired":
        return (
          "No licenses are issued: the last synchronization is more than " + VALIDITY_DAYS +
          " days old. Synchronize now (Server → Synchronize Server, or by email)."
        );
      case "never_synchronized":
        return (
          "No licenses are issued until this server synchronizes with Solme for the first " +
          "time: Server → Synchronize Server, or synchronize by email (File → Export Sync Data)."
        );
      default:
        return s.message || "";
    }
  }

  /** A license's validity in the page's date format. */
  function licenseValidity(t) {
    const now = Date.now();
    let text;
    if (!t.valid_from && !t.valid_until) text = "perpetual";
    else if (!t.valid_from) text = "until " + fmtDay(t.valid_until);
    else if (!t.valid_until) text = "from " + fmtDay(t.valid_from) + ", perpetual";
    else text = fmtDay(t.valid_from) + " to " + fmtDay(t.valid_until);
    if (t.valid_from && new Date(t.valid_from).getTime() > now) text += " (not yet valid)";
    else if (t.valid_until && new Date(t.valid_until).getTime() <= now) text += " (ended)";
    return text;
  }

  function renderStatus(s) {
    lastStatus = s;
    const paired = s.pair ? PAIR_STATES[s.pair.state] : null;
    const state = paired || STATES[s.state] || { label: s.state, cls: "state-unknown" };
    const badge = $("state");
    badge.textContent = state.label;
    badge.className = "state " + state.cls;
    // The server's own message says why a server of a pair does not issue.
    $("state-message").textContent = paired || (s.pair && !s.issuing) ? s.message : stateSentence(s);
    renderPair(s.pair);
    $("header-id").textContent = "Server " + s.server_id;
    $("licensing-address").textContent = licensing();
    const banner = $("clock-banner");
    if (s.clock) {
      banner.textContent = "This server runs on a simulated clock: its date is " + fmtDate(s.now) + " (" + s.clock + "). " +
        "Licenses, leases and synchronization all follow this date.";
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }

    setText("valid-until", fmtDate(s.valid_until));
    if (s.days_left === null || s.days_left === undefined) {
      setText("days-left", null);
    } else if (s.days_left < 0) {
      setText("days-left", "none (ran out " + plural(-s.days_left, "day") + " ago)");
    } else {
      setText("days-left", s.days_left + " of " + VALIDITY_DAYS);
    }
    if (s.last_sync_at) {
      const channel = CHANNELS[s.last_sync_channel] || s.last_sync_channel || "";
      const seq = s.license_file_sequence ? ", license file #" + s.license_file_sequence : "";
      setText("last-sync", fmtDate(s.last_sync_at) + " " + (channel ? "(" + channel + seq + ")" : seq));
    } else {
      setText("last-sync", "never");
    }
    if (s.last_attempt_at && s.last_attempt_error) {
      const times = s.consecutive_failures > 1 ? " (" + s.consecutive_failures + " in a row)" : "";
      setText("last-attempt", fmtDate(s.last_attempt_at) + times + ": " + s.last_attempt_error);
    } else {
      setText("last-attempt", "none");
    }
    if (s.auto_sync === "off") {
      setText("auto-sync-info", "off");
    } else {
      const next = s.next_auto_sync_at ? ", next run " + fmtDate(s.next_auto_sync_at) : "";
      setText("auto-sync-info", s.auto_sync + next + " (while the server runs)");
    }
    const select = $("auto-sync");
    if (!autoSyncPending && document.activeElement !== select) select.value = s.auto_sync;
    setText("customer", s.customer);
    setText("server-id", s.server_id);
    setText("fingerprint", s.fingerprint);
    setText("main-server", (s.main_server || []).join(", then "));
    setText("proxy", s.proxy || "none");

    const rows = $("licenses");
    rows.replaceChildren();
    for (const f of s.features || []) {
      const ok = f.state === "ok";
      rows.appendChild(
        el("tr", ok ? (f.availability === "over_license" ? { cls: "over" } : null) : { cls: "inactive" }, [
          el("td", { text: f.feature }),
          el("td", { cls: "num", text: f.seats_total }),
          el("td", { cls: "num", text: f.in_use }),
          el("td", { cls: "num", text: f.free }),
          el("td", { text: ok && !s.issuing ? "not issued now (see above)" : f.availability_text }),
        ])
      );
    }
    const terms = $("terms");
    terms.replaceChildren();
    for (const t of s.licenses || []) {
      terms.appendChild(
        el("tr", null, [
          el("td", { text: t.feature }),
          el("td", { cls: "num", text: t.seats }),
          el("td", { text: licenseValidity(t) }),
          el("td", { text: t.borrowable ? "up to " + plural(t.max_borrow_hours, "hour") : "not borrowable" }),
        ])
      );
    }
    $("terms-block").hidden = (s.licenses || []).length === 0;
    const borrowed = $("borrowed");
    borrowed.replaceChildren();
    for (const b of s.borrowed || []) {
      borrowed.appendChild(
        el("tr", null, [
          el("td", { text: b.feature }),
          el("td", { text: b.user }),
          el("td", { text: b.host }),
          el("td", { text: fmtDate(b.until) }),
        ])
      );
    }
    $("borrowed-block").hidden = (s.borrowed || []).length === 0;

    const any = (s.features || []).length > 0;
    $("no-licenses").hidden = any;
    $("licenses-table").hidden = !any;
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshes every few seconds.";
  }

  // ---- the standby pair -----------------------------------------------------------

  /** The pair in the server's words; on a standby that follows, the promotion. */
  function renderPair(p) {
    $("pair-block").hidden = !p;
    if (!p) return;
    $("pair-title").textContent = p.role === "standby" ? "This server is a standby" : "Standby server";
    $("pair-lines").replaceChildren(...(p.text || []).map((t) => el("li", { text: t })));
    $("pair-warnings").replaceChildren(
      ...(p.warnings || []).map((w) => el("p", { cls: "result result-bad", text: "Warning: " + w }))
    );
    const promotable = p.role === "standby" && p.state === "following";
    $("promote-button").hidden = !promotable;
    if (!promotable) $("promote-confirm").hidden = true;
  }

  /** Step 1: say what a promotion does, and ask. */
  function askPromote() {
    $("promote-reason").value = "";
    $("promote-result").hidden = true;
    $("promote-confirm").hidden = false;
    $("promote-reason").focus();
  }

  function cancelPromote() {
    $("promote-confirm").hidden = true;
  }

  /** Step 2: the administrator confirmed; the server checks again before it promotes. */
  async function confirmPromote() {
    $("promote-confirm").hidden = true;
    const box = $("promote-result");
    const reason = $("promote-reason").value.trim();
    await busy($("promote-yes"), box, "Promoting… this server calls the primary one last time first.", async () => {
      const body = JSON.stringify(reason ? { reason: reason } : {});
      const resp = await api("POST", "promote", body, "application/json");
      if (resp.ok && resp.data && typeof resp.data === "object" && resp.data.failover_ends) {
        showResult(box, "ok", "This standby server is promoted: it issues seats now.", [
          "It issues until the primary is back or until " + fmtDate(resp.data.failover_ends) +
            " at the latest (the failover period Solme allows). When the primary runs again, this server hands back to it by itself.",
        ]);
      } else {
        const r = describeRefusal(resp, "Promotion");
        r.lines.push("This server was not promoted.");
        showResult(box, "bad", r.headline, r.lines);
      }
      await refresh();
    });
  }

  // ---- who holds what -------------------------------------------------------------

  function renderLeases(list) {
    const rows = $("leases");
    rows.replaceChildren();
    for (const l of list.leases || []) {
      const until = l.borrowed ? "borrowed, back by " + fmtDate(l.expires_at) : fmtDate(l.expires_at);
      rows.appendChild(
        el("tr", { cls: l.borrowed ? "borrowed" : null }, [
          el("td", { text: l.feature }),
          el("td", { text: l.user }),
          el("td", { text: l.host }),
          el("td", { text: l.client }),
          el("td", { text: fmtDate(l.since) }),
          el("td", { text: until }),
          el("td", { cls: "row-action" }, leaseActions(l)),
        ])
      );
    }
    const any = (list.leases || []).length > 0;
    $("leases-table").hidden = !any;
    $("no-leases").hidden = any;
  }

  /** The controls of one row of the leases table. */
  function leaseActions(l) {
    const button = el("button", { cls: "take-back", text: "Take Back…" });
    button.type = "button";
    button.dataset.lease = l.lease_id;
    button.addEventListener("click", () => askTakeBack(l));
    return [button];
  }

  // The lease the administrator is asked about; nothing is taken back before "Take Back".
  let pendingTakeBack = null;

  /** Step 1: say what taking this seat back does, and ask. */
  function askTakeBack(l) {
    pendingTakeBack = l;
    const who = l.user + " on " + l.host;
    $("take-back-question").textContent = "Take back the seat of " + l.feature + " held by " + who + "?";
    $("take-back-effect").textContent = l.borrowed
      ? "This borrowed seat is free at once; its borrow token is refused if it is presented to this server again " +
        "(the user's offline copy keeps running until " + fmtDate(l.expires_at) + " unless it checks with the server)."
      : "The seat is free at once; " + l.client + " is refused at its next heartbeat and must check out again.";
    $("take-back-reason").value = "";
    $("take-back-result").hidden = true;
    $("take-back-confirm").hidden = false;
    $("take-back-reason").focus();
  }

  function cancelTakeBack() {
    pendingTakeBack = null;
    $("take-back-confirm").hidden = true;
  }

  /** Step 2: the administrator confirmed. */
  async function confirmTakeBack() {
    const l = pendingTakeBack;
    if (!l) return;
    pendingTakeBack = null;
    $("take-back-confirm").hidden = true;
    const box = $("take-back-result");
    const reason = $("take-back-reason").value.trim();
    await busy($("take-back-yes"), box, "Taking the seat back…", async () => {
      const body = JSON.stringify(reason ? { reason: reason } : {});
      const resp = await api("POST", "leases/" + encodeURIComponent(l.lease_id) + "/take-back", body, "application/json");
      if (resp.ok && resp.data && typeof resp.data === "object") {
        const d = resp.data;
        showResult(box, "ok", "Took back the seat of " + d.feature + " held by " + d.user + " on " + d.host + ".", [
          "It is free now, and recorded in the report log" + (d.reason ? " with your reason." : "."),
        ]);
      } else {
        const r = describeRefusal(resp, "Taking the seat back");
        showResult(box, "bad", r.headline, r.lines);
      }
      await refresh();
    });
  }

  async function refreshLeases() {
    try {
      const resp = await api("GET", "leases");
      if (resp.ok && resp.data && typeof resp.data === "object") renderLeases(resp.data);
    } catch (e) {
      // The status refresh reports an unreachable server.
    }
  }

  async function refresh() {
    let resp;
    try {
      resp = await api("GET", "status");
    } catch (e) {
      showConnectionProblem(UNREACHABLE);
      return;
    }
    if (resp.ok && resp.data && typeof resp.data === "object") {
      clearConnectionProblem();
      renderStatus(resp.data);
      await refreshLeases();
    } else {
      const r = describeRefusal(resp, "Reading the status");
      showConnectionProblem(r.headline + " " + (resp.data && resp.data.message ? resp.data.message : ""));
    }
  }

  // ---- usage: period, chart and report -------------------------------------------

  const REASONS = {
    NO_SEATS: "all seats in use",
    OPTIONS_DENIED: "refused by the options file",
    NOT_SYNCHRONIZED: "server not synchronized",
    SYNC_EXPIRED: "synchronization ran out",
    CLOCK_ROLLBACK: "clock set back",
    FEATURE_UNKNOWN: "no license for the feature",
    LICENSE_EXPIRED: "license not valid",
    MALFORMED: "bad request",
  };
  // The period shown: the last N days, or from one day to another (both included).
  let period = { days: 7 };
  const DAY_MS = 86400000;

  /** The query of the period for the manager API (`to` excluded, as the CLI reads it). */
  function periodQuery() {
    if (period.days) return "days=" + period.days;
    const to = new Date(Date.parse(period.to + "T00:00:00Z") + DAY_MS).toISOString().slice(0, 10);
    return "from=" + encodeURIComponent(period.from) + "&to=" + encodeURIComponent(to);
  }

  function periodWords() {
    if (period.days) return "The last " + period.days + " days, to now (times in UTC).";
    return "From " + period.from + " to " + period.to + ", both days included (UTC).";
  }

  /** Reads the two date fields; null (with the reason shown) when they make no period. */
  function periodFromFields() {
    const from = $("period-from").value;
    const to = $("period-to").value;
    const problem = $("period-error");
    let why = null;
    if (!from || !to) {
      why = "Choose both dates: the first and the last day of the period.";
    } else if (from > to) {
      why = "The start date (" + from + ") is after the end date (" + to + "): choose a start on or before the end.";
    }
    problem.textContent = why || "";
    problem.hidden = !why;
    return why ? null : { from: from, to: to };
  }

  function showPeriodRefusal(resp, what) {
    const box = $("period-error");
    const r = describeRefusal(resp, what);
    box.textContent = r.headline + (resp.data && resp.data.message ? " " + resp.data.message : "");
    box.hidden = false;
  }

  /** The chart, drawn by the server as SVG, put into the page so its hover titles show. */
  async function refreshChart() {
    const resp = await api("GET", "usage.svg?" + periodQuery());
    const box = $("usage-chart");
    if (!resp.ok || typeof resp.data !== "string") {
      showPeriodRefusal(resp, "The chart");
      return;
    }
    const doc = new DOMParser().parseFromString(resp.data, "image/svg+xml");
    const root = doc.documentElement;
    if (!root || root.nodeName !== "svg" || doc.getElementsByTagName("parsererror").length > 0) {
      box.replaceChildren(el("p", { cls: "chart-problem muted", text: "The chart could not be shown." }));
      return;
    }
    // Nothing that runs: the server's chart has no script; drop any all the same.
    for (const bad of root.querySelectorAll("script, foreignObject")) bad.remove();
    root.setAttribute("role", "img");
    root.setAttribute("aria-label", "Seats in use: " + periodWords());
    box.replaceChildren(document.importNode(root, true));
  }

  function refusalsText(refusals) {
    const list = Object.entries(refusals || {}).map(([code, n]) => n + " " + (REASONS[code] || code) + " (" + code + ")");
    return list.length ? list.join(", ") : "none";
  }

  function renderReport(r) {
    const rows = $("report");
    rows.replaceChildren();
    for (const f of r.features || []) {
      const users = (f.busiest_users || []).map((u) => u.user + " (" + Number(u.seat_hours).toFixed(2) + ")").join(", ");
      const waited = f.queue_granted ? " (" + f.queue_granted + " after waiting)" : "";
      rows.appendChild(
        el("tr", null, [
          el("td", { text: f.feature }),
          el("td", { cls: "num", text: f.peak_in_use }),
          el("td", { cls: "num", text: Number(f.seat_hours).toFixed(2) }),
          el("td", { cls: "num", text: f.check_outs + f.queue_granted + waited }),
          el("td", { cls: "num", text: f.borrows }),
          el("td", { text: refusalsText(f.refusals) }),
          el("td", { text: users || "–" }),
        ])
      );
    }
    const any = (r.features || []).length > 0;
    $("report-table").hidden = !any;
    $("no-report").hidden = any;
  }

  async function refreshUsage() {
    $("period-words").textContent = periodWords();
    try {
      const resp = await api("GET", "report?" + periodQuery());
      if (!resp.ok || !resp.data || typeof resp.data !== "object") {
        showPeriodRefusal(resp, "The report");
        return;
      }
      $("period-error").hidden = true;
      renderReport(resp.data);
      await refreshChart();
    } catch (e) {
      // The status refresh reports an unreachable server.
    }
  }

  function showPeriod(next) {
    period = next;
    $("period-error").hidden = true;
    refreshUsage();
  }

  /** The report as CSV (the same as `local-server report --csv`), saved by the browser. */
  async function downloadCsv() {
    const next = period.days ? period : periodFromFields();
    if (!next) return;
    period = next;
    const resp = await fetch(API + "report.csv?" + periodQuery(), {
      headers: { "X-Solme-Manager": "1" },
      cache: "no-store",
      credentials: "same-origin",
    });
    if (!resp.ok) {
      let data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      showPeriodRefusal({ ok: false, status: resp.status, data: data }, "The CSV download");
      return;
    }
    const blob = await resp.blob();
    const cd = resp.headers.get("Content-Disposition") || "";
    const m = /filename="([A-Za-z0-9._-]+)"/.exec(cd);
    const link = el("a", { text: "CSV" });
    link.href = URL.createObjectURL(blob);
    link.download = m ? m[1] : "usage-report.csv";
    link.click();
  }

  // ---- changes (sync and import) -------------------------------------------------

  function licenseDates(list) {
    return (list || [])
      .map((l) => {
        if (!l.valid_from && !l.valid_until) return "perpetual";
        return (l.valid_from ? fmtDay(l.valid_from) : "now") + " to " + (l.valid_until ? fmtDay(l.valid_until) : "no end");
      })
      .join(", ");
  }

  function changeLines(c) {
    const was = c.previous_valid_until ? " (was " + fmtDay(c.previous_valid_until) + ")" : "";
    const lines = [
      "License file #" + c.sequence + " for " + c.customer + ": synchronized until " + fmtDay(c.valid_until) + was + ".",
    ];
    const items = [];
    for (const a of c.added || []) {
      items.push("Added " + a.feature + ": " + plural(a.seats_after || 0, "seat") + " (" + licenseDates(a.licenses_after) + ")");
    }
    for (const r of c.removed || []) {
      items.push("Removed " + r.feature + " (had " + plural(r.seats_before || 0, "seat") + ")");
    }
    for (const ch of c.changed || []) {
      if (ch.seats_before !== ch.seats_after) {
        items.push(
          "Changed " + ch.feature + ": " + (ch.seats_before || 0) + " → " + plural(ch.seats_after || 0, "seat") +
            " (" + licenseDates(ch.licenses_after) + ")"
        );
      } else {
        items.push("Changed " + ch.feature + ": dates now " + licenseDates(ch.licenses_after));
      }
    }
    if (items.length === 0) {
      lines.push("Licenses: no change.");
    } else {
      lines.push(el("ul", null, items.map((t) => el("li", { text: t }))));
    }
    return lines;
  }

  // ---- actions -------------------------------------------------------------------

  async function synchronize() {
    const box = $("sync-result");
    await busy($("sync-button"), box, "Synchronizing with Solme's main server…", async () => {
      const resp = await api("POST", "sync");
      const body = resp.data;
      if (resp.ok && body && typeof body === "object" && body.endpoint) {
        showResult(box, "ok", "Synchronized through " + body.endpoint + ".", changeLines(body.changes));
      } else if (body && body.code === "UNAVAILABLE") {
        // The main server out of reach, or another synchronization running: the
        // message says which.
        showResult(box, "bad", "The synchronization could not be done right now.", [
          "Details: " + body.message,
          labelled(
            "What to do: ",
            "Try again in a minute; if it keeps failing, use Diagnose to find out why. " +
              "Meanwhile you can synchronize by email (File → Export Sync Data)."
          ),
        ]);
      } else {
        const r = describeRefusal(resp, "Synchronization");
        showResult(box, "bad", r.headline, r.lines);
      }
      await refresh();
    });
  }

  async function setAutoSync() {
    const select = $("auto-sync");
    const box = $("auto-sync-result");
    const mode = select.value;
    autoSyncPending = true;
    select.disabled = true;
    try {
      const resp = await api("PUT", "auto-sync", JSON.stringify({ mode: mode }), "application/json");
      if (resp.ok) {
        const next = resp.data.next_auto_sync_at;
        showResult(
          box,
          "ok",
          mode === "off"
            ? "Automatic synchronization is off."
            : "Automatic synchronization: " + mode + (next ? ", next run " + fmtDate(next) : "") + ".",
          mode === "off" ? [] : ["It runs while `local-server serve` runs; failures are retried with growing pauses."]
        );
      } else {
        const r = describeRefusal(resp, "Changing automatic synchronization");
        showResult(box, "bad", r.headline, r.lines);
      }
    } catch (e) {
      showResult(box, "bad", UNREACHABLE, []);
    } finally {
      autoSyncPending = false;
      select.disabled = false;
      await refresh();
    }
  }

  function fileNameFrom(resp) {
    const cd = resp.headers.get("Content-Disposition") || "";
    const m = /filename="([A-Za-z0-9._-]+)"/.exec(cd);
    if (m) return m[1];
    return "sync-data-" + (lastStatus ? lastStatus.server_id : "server") + ".txt";
  }

  async function exportSyncData() {
    const box = $("export-result");
    await busy($("export-button"), box, "Making the sync data…", async () => {
      const resp = await api("POST", "sync-data");
      if (!resp.ok || typeof resp.data !== "string") {
        const r = describeRefusal(resp, "Export");
        showResult(box, "bad", r.headline, r.lines);
        return;
      }
      const name = fileNameFrom(resp);
      const url = URL.createObjectURL(new Blob([resp.data], { type: "text/plain" }));
      const link = el("a", { text: "Download the file again" });
      link.href = url;
      link.download = name;
      const text = el("textarea", { cls: "armored", text: resp.data });
      text.readOnly = true;
      text.rows = 6;
      text.spellcheck = false;
      showResult(box, "ok", "Sync data saved as " + name + ".", [
        "Email this file (or the text below, copied whole) to " + licensing() + " from an address registered with Solme. " +
          "The license file comes back to that address: import it below.",
        el("p", null, [link]),
        text,
      ]);
      link.click();
    });
  }

  // The text of the license file previewed, waiting for the customer's confirmation.
  let pendingImport = null;

  function shortfallLines(c) {
    const short = c.seats_below_use || [];
    if (short.length === 0) return [];
    return [
      el("p", { cls: "headline", text: "More seats in use than the file gives:" }),
      el("ul", null, short.map((s) =>
        el("li", { text: s.feature + ": " + plural(s.seats_after, "seat") + ", " + s.in_use + " in use now" +
          " (no new check-outs until enough are returned)" }))),
    ];
  }

  /** Step 1: what the file would change, with the import's checks; nothing applied. */
  async function importLicenseFile() {
    const box = $("import-result");
    const fileInput = $("import-file");
    const pasted = $("import-text");
    await busy($("import-button"), box, "Checking the license file…", async () => {
      pendingImport = null;
      let text = pasted.value;
      if (fileInput.files && fileInput.files.length > 0) {
        text = await fileInput.files[0].text();
      }
      if (!text.trim()) {
        showResult(box, "warn", "Choose the license file, or paste its text, first.", []);
        return;
      }
      const resp = await api("POST", "license-file/preview", text, "text/plain; charset=utf-8");
      if (resp.ok && resp.data && typeof resp.data === "object" && resp.data.changes) {
        pendingImport = text;
        const c = resp.data.changes;
        const confirm = el("button", { cls: "primary", text: "Confirm Import" });
        confirm.type = "button";
        confirm.id = "import-confirm";
        confirm.addEventListener("click", confirmImport);
        const cancel = el("button", { text: "Cancel" });
        cancel.type = "button";
        cancel.id = "import-cancel";
        cancel.addEventListener("click", () => {
          pendingImport = null;
          showResult(box, "warn", "Import cancelled. Nothing was changed.", []);
        });
        showResult(box, "warn", "Preview: nothing is changed until you confirm.", [
          ...changeLines(c),
          ...shortfallLines(c),
          el("div", { cls: "row" }, [confirm, cancel]),
        ]);
      } else {
        const r = describeRefusal(resp, "Import");
        r.lines.push("Nothing was changed.");
        showResult(box, "bad", r.headline, r.lines);
      }
    });
  }

  /** Step 2: the customer confirmed; the import runs its checks again and applies. */
  async function confirmImport() {
    const box = $("import-result");
    const text = pendingImport;
    pendingImport = null;
    if (text === null) return;
    await busy($("import-button"), box, "Importing…", async () => {
      const resp = await api("POST", "license-file", text, "text/plain; charset=utf-8");
      if (resp.ok && resp.data && typeof resp.data === "object") {
        showResult(box, "ok", "License file imported.", [...changeLines(resp.data), ...shortfallLines(resp.data)]);
        $("import-file").value = "";
        $("import-text").value = "";
      } else {
        const r = describeRefusal(resp, "Import");
        r.lines.push("Nothing was changed.");
        showResult(box, "bad", r.headline, r.lines);
      }
      await refresh();
    });
  }

  /** The support bundle: a binary download, so fetched here rather than through api(). */
  async function downloadSupportBundle() {
    const box = $("bundle-result");
    await busy($("bundle-button"), box, "Making the support bundle… it runs a diagnosis first.", async () => {
      const resp = await fetch(API + "support-bundle", {
        method: "POST",
        headers: { "X-Solme-Manager": "1" },
        credentials: "same-origin",
      });
      if (!resp.ok) {
        let data = null;
        try { data = await resp.json(); } catch (e) { data = null; }
        const r = describeRefusal({ ok: false, status: resp.status, data: data }, "The support bundle");
        showResult(box, "bad", r.headline, r.lines);
        return;
      }
      const blob = await resp.blob();
      const name = fileNameFrom(resp).replace(/\.txt$/, ".tar.gz");
      const link = el("a", { text: "Download it again" });
      link.href = URL.createObjectURL(blob);
      link.download = name;
      showResult(box, "ok", "Support bundle saved as " + name + " (" + blob.size + " bytes).", [
        "Send it to your Solme support contact with a few words on what goes wrong. It holds no private key and no password.",
        el("p", null, [link]),
      ]);
      link.click();
    });
  }

  const OUTCOME_LABELS = { ok: "OK", warn: "WARN", fail: "FAIL", skipped: "SKIPPED" };

  async function diagnose() {
    const box = $("diagnose-result");
    await busy($("diagnose-button"), box, "Diagnosing… this can take up to a minute when connections time out.", async () => {
      const resp = await api("POST", "diagnose");
      const report = resp.data;
      if (!resp.ok || !report || typeof report !== "object" || !report.checks) {
        const r = describeRefusal(resp, "Diagnosis");
        showResult(box, "bad", r.headline, r.lines);
        return;
      }
      const list = el(
        "ol",
        { cls: "checks" },
        report.checks.map((c) => {
          const parts = [
            el("span", { cls: "outcome outcome-" + c.outcome, text: OUTCOME_LABELS[c.outcome] || c.outcome }),
            el("span", { cls: "check-name", text: c.check }),
            el("span", { cls: "check-detail", text: c.detail }),
          ];
          if (c.cause_title) {
            parts.push(el("div", { cls: "check-cause" }, [labelled("Cause: ", c.cause_title + " (" + c.cause + ").")]));
          }
          // The first problem's remedy is shown above the list; say it only once.
          if (c.remedy && c.cause !== report.cause) {
            parts.push(el("div", { cls: "check-cause" }, [labelled("What to do: ", c.remedy)]));
          }
          return el("li", { cls: "check check-" + c.outcome }, parts);
        })
      );
      const lines = [report.remedy ? labelled("What to do: ", report.remedy) : null, list];
      showResult(box, report.cause ? "bad" : "ok", report.summary, lines);
      await refresh();
    });
  }

  // ---- wiring --------------------------------------------------------------------

  function closeMenus() {
    for (const d of document.querySelectorAll("details.menu")) d.open = false;
  }

  function reveal(id, focusId) {
    const section = $(id);
    section.scrollIntoView({ behavior: "smooth", block: "start" });
    section.classList.remove("flash");
    void section.offsetWidth; // restart the highlight animation
    section.classList.add("flash");
    if (focusId) $(focusId).focus({ preventScroll: true });
  }

  function start() {
    $("sync-button").addEventListener("click", synchronize);
    $("auto-sync").addEventListener("change", setAutoSync);
    $("export-button").addEventListener("click", exportSyncData);
    $("import-button").addEventListener("click", importLicenseFile);
    $("bundle-button").addEventListener("click", downloadSupportBundle);
    $("diagnose-button").addEventListener("click", diagnose);
    $("take-back-yes").addEventListener("click", confirmTakeBack);
    $("take-back-no").addEventListener("click", cancelTakeBack);
    $("promote-button").addEventListener("click", askPromote);
    $("promote-yes").addEventListener("click", confirmPromote);
    $("promote-no").addEventListener("click", cancelPromote);

    $("menu-sync").addEventListener("click", () => {
      closeMenus();
      reveal("sync-panel");
      synchronize();
    });
    $("menu-auto-sync").addEventListener("click", () => {
      closeMenus();
      reveal("sync-panel", "auto-sync");
    });
    $("menu-diagnose").addEventListener("click", () => {
      closeMenus();
      reveal("diagnose-panel");
      diagnose();
    });
    $("menu-export").addEventListener("click", () => {
      closeMenus();
      reveal("file-panel");
      exportSyncData();
    });
    $("menu-import").addEventListener("click", () => {
      closeMenus();
      reveal("file-panel", "import-file");
    });
    // One menu open at a time; a click elsewhere closes them.
    for (const d of document.querySelectorAll("details.menu")) {
      d.addEventListener("toggle", () => {
        if (!d.open) return;
        for (const other of document.querySelectorAll("details.menu")) if (other !== d) other.open = false;
      });
    }
    document.addEventListener("click", (e) => {
      if (!e.target.closest("details.menu")) closeMenus();
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") closeMenus();
    });

    $("usage-7").addEventListener("click", () => showPeriod({ days: 7 }));
    $("usage-30").addEventListener("click", () => showPeriod({ days: 30 }));
    $("period-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const next = periodFromFields();
      if (next) showPeriod(next);
    });
    $("report-csv").addEventListener("click", downloadCsv);
    const today = new Date().toISOString().slice(0, 10);
    $("period-to").value = today;
    $("period-from").value = new Date(Date.now() - 6 * DAY_MS).toISOString().slice(0, 10);

    refresh();
    refreshUsage();
    setInterval(() => {
      if (!document.hidden) refresh();
    }, REFRESH_MS);
    setInterval(() => {
      if (!document.hidden) refreshUsage();
    }, 60000);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
  }

  start();
})();
